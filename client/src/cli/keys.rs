//! Single key presses for the interactive views (`watch`): the terminal is switched out of line
//! mode (no echo, no waiting for Enter; Ctrl-C still interrupts) while a [`Keys`] lives and put
//! back as it was when it drops, and a thread hands each byte read from stdin to the async side.
//! Only where both stdin and stdout are terminals; elsewhere there are no keys.

use std::io::{IsTerminal, Read};

use nix::sys::termios::{self, LocalFlags, SetArg, SpecialCharacterIndices, Termios};
use tokio::sync::mpsc;

/// Key presses while the terminal is in single-key mode.
pub struct Keys {
    saved: Termios,
    rx: mpsc::UnboundedReceiver<u8>,
}

impl Keys {
    /// Single-key mode on this terminal, or `None` when stdin or stdout is not one (a pipe, a
    /// file, a test) or its mode cannot be changed.
    pub fn open() -> Option<Keys> {
        let stdin = std::io::stdin();
        if !stdin.is_terminal() || !std::io::stdout().is_terminal() {
            return None;
        }
        let saved = termios::tcgetattr(&stdin).ok()?;
        let mut raw = saved.clone();
        raw.local_flags
            .remove(LocalFlags::ICANON | LocalFlags::ECHO);
        raw.control_chars[SpecialCharacterIndices::VMIN as usize] = 1;
        raw.control_chars[SpecialCharacterIndices::VTIME as usize] = 0;
        termios::tcsetattr(&stdin, SetArg::TCSANOW, &raw).ok()?;
        let (tx, rx) = mpsc::unbounded_channel();
        // A blocking read per byte; the thread ends with the process (or when stdin closes).
        std::thread::spawn(move || {
            let mut b = [0u8; 1];
            while let Ok(1) = std::io::stdin().lock().read(&mut b) {
                if tx.send(b[0]).is_err() {
                    break;
                }
            }
        });
        Some(Keys { saved, rx })
    }

    /// The next key pressed.
    pub async fn next(&mut self) -> Option<u8> {
        self.rx.recv().await
    }

    /// Forgets keys pressed so far (say, the rest of an arrow key's escape sequence).
    pub fn drain(&mut self) {
        while self.rx.try_recv().is_ok() {}
    }
}

impl Drop for Keys {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(std::io::stdin(), SetArg::TCSANOW, &self.saved);
    }
}

/// The keys that pick a task in `watch`, in the order of its table: `q` quits, so it is none.
pub const TASK_KEYS: &str = "123456789abcdefghijklmnoprstuvwxyzABCDEFGHIJKLMNOPRSTUVWXYZ";

/// The key of the task in row `i`, if the table has one that far down.
pub fn task_key(i: usize) -> Option<char> {
    TASK_KEYS.chars().nth(i)
}

/// The row a key picks.
pub fn row_of(key: u8) -> Option<usize> {
    TASK_KEYS.bytes().position(|k| k == key)
}

#[cfg(test)]
mod tests {
    use super::{TASK_KEYS, row_of, task_key};

    #[test]
    fn every_row_key_picks_its_row_and_q_picks_none() {
        for (i, k) in TASK_KEYS.chars().enumerate() {
            assert_eq!(task_key(i), Some(k));
            assert_eq!(row_of(k as u8), Some(i));
        }
        assert_eq!(row_of(b'q'), None);
        assert_eq!(row_of(b'Q'), None);
        assert_eq!(task_key(TASK_KEYS.len()), None);
    }
}
