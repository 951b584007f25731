//! `orchestrate watch` on a real terminal (a pseudo-terminal): a task's key opens its worker's
//! live output, any key returns to the run, `q` quits, and the terminal is left as it was.

use std::io::{Read, Write};
use std::process::Stdio;
use std::sync::{Arc, Mutex};

use nix::sys::termios::{self, LocalFlags};
use orchestrator_tests::sandbox::Sandbox;
use orchestrator_tests::wait::{DEADLINE, until};

/// What the terminal has shown so far, read from the pty's master side by a thread.
struct Screen {
    seen: Arc<Mutex<String>>,
}

impl Screen {
    fn read_from(mut master: std::fs::File) -> Screen {
        let seen = Arc::new(Mutex::new(String::new()));
        let into = seen.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            // EIO once the last process holding the terminal has gone.
            while let Ok(n @ 1..) = master.read(&mut buf) {
                into.lock()
                    .expect("screen")
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Screen { seen }
    }

    fn len(&self) -> usize {
        self.seen.lock().expect("screen").len()
    }

    /// Waits until everything shown after byte `from` holds each of `wanted`.
    fn shows(&self, from: usize, wanted: &[&str]) {
        until(
            &format!("the terminal to show {wanted:?}"),
            DEADLINE,
            || {
                let s = self.seen.lock().expect("screen");
                let after = s.get(from..).unwrap_or("");
                wanted.iter().all(|w| after.contains(w)).then_some(())
            },
        );
    }
}

#[test]
fn a_tasks_key_opens_its_live_output_and_q_quits() {
    let sb = Sandbox::new();
    let repo = crate::lifecycle::one_running_task(&sb, "Watch it", "hang");
    let pty = nix::pty::openpty(None, None).expect("openpty");
    let slave = std::fs::File::from(pty.slave);
    let mut child = sb
        .command(&orchestrator_tests::bins::bins().orchestrate)
        .args(["watch"])
        .current_dir(&repo)
        .stdin(Stdio::from(slave.try_clone().expect("slave")))
        .stdout(Stdio::from(slave.try_clone().expect("slave")))
        .stderr(Stdio::from(slave.try_clone().expect("slave")))
        .spawn()
        .expect("spawn watch");
    let mut master = std::fs::File::from(pty.master);
    let screen = Screen::read_from(master.try_clone().expect("master"));

    screen.shows(0, &["KEY TASK", "press a task's key"]);
    let keyed = termios::tcgetattr(&slave).expect("tcgetattr");
    assert!(
        !keyed.local_flags.contains(LocalFlags::ICANON),
        "watch reads single keys"
    );

    let at = screen.len();
    master.write_all(b"1").expect("press 1");
    screen.shows(at, &["── task a, live", "── task a · session s-"]);

    let at = screen.len();
    master.write_all(b" ").expect("press space");
    screen.shows(at, &["KEY TASK", "press a task's key"]);

    master.write_all(b"q").expect("press q");
    let status = until("watch to quit", DEADLINE, || {
        child.try_wait().expect("try_wait")
    });
    assert!(status.success(), "{status}");
    let after = termios::tcgetattr(&slave).expect("tcgetattr");
    assert!(
        after
            .local_flags
            .contains(LocalFlags::ICANON | LocalFlags::ECHO),
        "the terminal is back in line mode"
    );
    sb.orchestrate_in(&repo, &["cancel"]).ok();
}
