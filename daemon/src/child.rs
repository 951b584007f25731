//! Commands the daemon runs to their end itself — the `--gate`, and later setup commands — as
//! bounded children: stdout and stderr read from one pipe as they come, the first
//! [`LOG_MAX`] bytes kept in a log file and the last [`TAIL`] bytes in memory (written after
//! the kept part, and returned for messages and prompts), their own process group, a timeout,
//! and the whole group stopped (SIGTERM, SIGKILL after a grace) on cancel, on timeout, and
//! when the future is dropped.
//!
//! **Invariants:** neither the daemon's memory nor the disk grows with a child's output (a
//! gate printing without end costs at most `LOG_MAX + TAIL` bytes of file and `TAIL` of RAM);
//! no process of a child outlives its `run` — its group is stopped when the run is cancelled
//! or paused, when its timeout passes, when the leader exits (what it left in the background),
//! and when the daemon stops (the future is dropped).

use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;

/// How much of the end of a child's output is kept for the task's failure and the log.
pub const TAIL: usize = 64 * 1024;

/// How much of the start of a child's output its log file keeps.
pub const LOG_MAX: u64 = 8 << 20;

/// After SIGTERM a child's group gets this long before SIGKILL.
pub const GRACE: Duration = Duration::from_secs(5);

/// How a bounded child ended.
#[derive(Debug)]
pub enum Exit {
    /// It exited (with this code; `None`: killed by a signal).
    Exited(Option<i32>),
    /// It ran past its timeout and its group was stopped.
    TimedOut(Duration),
    /// The run was cancelled or paused, or the daemon is stopping: its group was stopped.
    Stopped,
}

/// A finished child: how it ended, the end of its output, and the file holding it.
#[derive(Debug)]
pub struct Ran {
    pub exit: Exit,
    /// The last [`TAIL`] bytes of stdout and stderr (interleaved as written), lossily UTF-8,
    /// with a first line saying how much came before when there was more.
    pub tail: String,
    pub log: PathBuf,
    /// Bytes the child wrote in all.
    pub bytes: u64,
}

impl Ran {
    pub fn success(&self) -> bool {
        matches!(self.exit, Exit::Exited(Some(0)))
    }
}

/// What has been read of a child's output.
struct Output {
    file: std::fs::File,
    written: u64,
    tail: VecDeque<u8>,
    total: u64,
}

impl Output {
    fn take(&mut self, chunk: &[u8]) {
        self.total += chunk.len() as u64;
        if self.written < LOG_MAX {
            let keep = chunk.len().min((LOG_MAX - self.written) as usize);
            if self.file.write_all(&chunk[..keep]).is_ok() {
                self.written += keep as u64;
            }
        }
        self.tail.extend(chunk);
        let over = self.tail.len().saturating_sub(TAIL);
        self.tail.drain(..over);
    }

    /// Takes what one read of the pipe gave; false once the pipe is done (EOF or an error).
    fn took(&mut self, read: std::io::Result<usize>, buf: &[u8]) -> bool {
        match read {
            Ok(n) if n > 0 => {
                self.take(&buf[..n]);
                true
            }
            _ => false,
        }
    }

    /// Writes the tail after the kept start (when they do not overlap) and returns it.
    fn finish(mut self) -> String {
        let tail: Vec<u8> = self.tail.into_iter().collect();
        let before = self.total - tail.len() as u64;
        if self.total > self.written {
            let skipped = before.saturating_sub(self.written);
            let _ = write!(self.file, "\n[… {skipped} bytes not kept …]\n");
            let from = (self.written.saturating_sub(before)) as usize;
            let _ = self.file.write_all(&tail[from.min(tail.len())..]);
        }
        let text = String::from_utf8_lossy(&tail).into_owned();
        if before > 0 {
            // Start at a line when one begins near, and say that the output was longer.
            let start = text.find('\n').filter(|i| *i < 1024).map_or(0, |i| i + 1);
            format!("[… {before} earlier bytes]\n{}", &text[start..])
        } else {
            text
        }
    }
}

/// Runs `cmd` (stdin `/dev/null`, stdout and stderr into one pipe) in its own process group
/// until it exits, `timeout` passes, or `stop` or `stop_also` is cancelled; its output is
/// kept in `log` (bounded) and its tail returned.
pub async fn run(
    mut cmd: tokio::process::Command,
    log: &Path,
    timeout: Duration,
    stop: &CancellationToken,
    stop_also: &CancellationToken,
) -> std::io::Result<Ran> {
    let path = log.to_path_buf();
    let file = tokio::task::spawn_blocking(move || crate::mirror::create_file(&path))
        .await
        .map_err(std::io::Error::other)??;
    let (reader, writer) = std::io::pipe()?;
    cmd.stdin(std::process::Stdio::null())
        .stdout(writer.try_clone()?)
        .stderr(writer)
        .process_group(0)
        .kill_on_drop(false);
    let mut child = cmd.spawn()?;
    // The command holds the pipe's write ends: without dropping it, the read never ends.
    drop(cmd);
    let mut group = Group(child.id().map(|p| nix::unistd::Pid::from_raw(p as i32)));
    let mut pipe = tokio::net::unix::pipe::Receiver::from_owned_fd(reader.into())?;
    let mut out = Output {
        file,
        written: 0,
        tail: VecDeque::with_capacity(TAIL),
        total: 0,
    };
    let mut buf = vec![0u8; 64 * 1024];
    let deadline = tokio::time::sleep(timeout);
    tokio::pin!(deadline);
    let mut open = true;
    let exit = loop {
        tokio::select! {
            n = pipe.read(&mut buf), if open => open = out.took(n, &buf),
            status = child.wait() => break Exit::Exited(status?.code()),
            _ = &mut deadline => break Exit::TimedOut(timeout),
            _ = stop.cancelled() => break Exit::Stopped,
            _ = stop_also.cancelled() => break Exit::Stopped,
        }
    };
    if !matches!(exit, Exit::Exited(_)) {
        group.signal(nix::sys::signal::Signal::SIGTERM);
        let waited = async {
            loop {
                tokio::select! {
                    n = pipe.read(&mut buf), if open => open = out.took(n, &buf),
                    s = child.wait() => return s,
                }
            }
        };
        if tokio::time::timeout(GRACE, waited).await.is_err() {
            group.signal(nix::sys::signal::Signal::SIGKILL);
            let _ = child.wait().await;
        }
    }
    // Whatever the leader left running in its group (a backgrounded `yes &`) goes with it.
    group.signal(nix::sys::signal::Signal::SIGKILL);
    group.0 = None;
    // What was written before the end, up to what the pipe still holds.
    while open {
        open = match tokio::time::timeout(Duration::from_millis(200), pipe.read(&mut buf)).await {
            Ok(n) => out.took(n, &buf),
            Err(_) => false,
        };
    }
    let bytes = out.total;
    let tail = tokio::task::spawn_blocking(move || out.finish())
        .await
        .map_err(std::io::Error::other)?;
    Ok(Ran {
        exit,
        tail,
        log: log.to_path_buf(),
        bytes,
    })
}

/// A child's process group, stopped whole when dropped (the daemon stopping, an aborted
/// engine task).
struct Group(Option<nix::unistd::Pid>);

impl Group {
    fn signal(&self, sig: nix::sys::signal::Signal) {
        if let Some(p) = self.0 {
            let _ = nix::sys::signal::killpg(p, sig);
        }
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.signal(nix::sys::signal::Signal::SIGKILL);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> tokio::process::Command {
        let mut c = tokio::process::Command::new("sh");
        c.arg("-c").arg(script);
        c
    }

    fn alive(pid: i32) -> bool {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
    }

    #[tokio::test]
    async fn endless_output_goes_to_the_file_and_only_the_tail_comes_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("gate.log");
        let never = CancellationToken::new();
        let ran = run(
            sh("yes 'all work and no play' | head -c 3000000; echo LAST LINE; exit 3"),
            &log,
            Duration::from_secs(60),
            &never,
            &never,
        )
        .await
        .expect("run");
        assert!(matches!(ran.exit, Exit::Exited(Some(3))), "{:?}", ran.exit);
        assert!(ran.tail.len() < TAIL + 200, "{}", ran.tail.len());
        assert!(
            ran.tail.trim_end().ends_with("LAST LINE"),
            "{}",
            &ran.tail[ran.tail.len() - 50..]
        );
        assert!(ran.tail.starts_with("[… "), "says it was cut");
        assert_eq!(ran.bytes, 3_000_000 + 10);
        let kept = std::fs::read(&log).expect("log");
        assert_eq!(
            kept.len() as u64,
            3_000_000 + 10,
            "all of it, under LOG_MAX"
        );
    }

    #[tokio::test]
    async fn the_log_keeps_the_start_and_the_end_of_endless_output() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("flood.log");
        let never = CancellationToken::new();
        let ran = run(
            sh("yes 'flood' | head -c 20000000; echo THE END"),
            &log,
            Duration::from_secs(60),
            &never,
            &never,
        )
        .await
        .expect("run");
        assert!(ran.success());
        let kept = std::fs::read_to_string(&log).expect("log");
        assert!(
            kept.len() as u64 <= LOG_MAX + TAIL as u64 + 100,
            "{}",
            kept.len()
        );
        assert!(kept.starts_with("flood\n") && kept.trim_end().ends_with("THE END"));
        assert!(kept.contains("bytes not kept"));
    }

    #[tokio::test]
    async fn timeout_and_cancel_stop_the_whole_group() {
        let dir = tempfile::tempdir().expect("tempdir");
        let never = CancellationToken::new();
        let pidfile = dir.path().join("pid");
        let script = format!(
            "sleep 300 & echo $! > {}; trap '' TERM; while :; do sleep 1; done",
            pidfile.display()
        );
        let ran = run(
            sh(&script),
            &dir.path().join("a.log"),
            Duration::from_millis(300),
            &never,
            &never,
        )
        .await
        .expect("run");
        assert!(matches!(ran.exit, Exit::TimedOut(_)), "{:?}", ran.exit);
        let bg: i32 = std::fs::read_to_string(&pidfile)
            .expect("pid")
            .trim()
            .parse()
            .expect("pid");
        assert!(!alive(bg), "the backgrounded child went with its group");

        let cancel = CancellationToken::new();
        let c2 = cancel.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(200)).await;
            c2.cancel();
        });
        let ran = run(
            sh("sleep 300"),
            &dir.path().join("b.log"),
            Duration::from_secs(600),
            &never,
            &cancel,
        )
        .await
        .expect("run");
        assert!(matches!(ran.exit, Exit::Stopped), "{:?}", ran.exit);
    }
}
