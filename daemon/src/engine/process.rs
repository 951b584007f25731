//! Which process is which. A session's process is known by its pid **and** its start time, so a
//! pid the system recycled after the session exited is never taken for it; the session's
//! process group (it leads its own) is what gets signalled.

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;

/// A process as the daemon recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identity {
    pub pid: i32,
    /// Opaque, from the kernel; equal only for the same process.
    pub start: i64,
}

impl Identity {
    /// The identity of a running process, if it runs (zombies do not).
    pub fn of(pid: i32) -> Option<Self> {
        start_time(pid).map(|start| Self { pid, start })
    }

    /// Whether this very process still runs.
    pub fn alive(&self) -> bool {
        start_time(self.pid) == Some(self.start)
    }

    /// Signals the process group this process leads (sessions are spawned as group leaders).
    pub fn signal_group(&self, sig: Signal) {
        if self.alive() {
            let _ = killpg(Pid::from_raw(self.pid), sig);
        }
    }
}

/// How long what is left of a session's group gets to end by itself, and then after SIGTERM.
const LEFTOVER_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Ends what is left of a session's process group once its leader exited. It first gets
/// [`LEFTOVER_WAIT`] to end by itself — a `git commit` the session started finishes, where
/// killing it between writing its commit and moving the branch would leave a commit no ref
/// names — then SIGTERM, then SIGKILL. Returns at once when nothing is left (the usual case).
pub async fn end_group(pgid: i32) {
    let gone = || async {
        let until = tokio::time::Instant::now() + LEFTOVER_WAIT;
        while group_runs(pgid) {
            if tokio::time::Instant::now() >= until {
                return false;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        true
    };
    if gone().await {
        return;
    }
    let _ = killpg(Pid::from_raw(pgid), Signal::SIGTERM);
    if !gone().await {
        let _ = killpg(Pid::from_raw(pgid), Signal::SIGKILL);
    }
}

/// Whether any process of group `pgid` still runs (zombies do not: an orphan whose new parent
/// has not reaped it yet can do nothing more).
fn group_runs(pgid: i32) -> bool {
    if killpg(Pid::from_raw(pgid), None).is_err() {
        return false;
    }
    live_member(pgid).unwrap_or(true)
}

/// Whether `/proc` shows a member of group `pgid` that is not a zombie; `None` where there is
/// no `/proc` to ask.
#[cfg(target_os = "linux")]
fn live_member(pgid: i32) -> Option<bool> {
    let dir = std::fs::read_dir("/proc").ok()?;
    Some(dir.flatten().any(|e| {
        let name = e.file_name();
        let Some(pid) = name
            .to_str()
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
        else {
            return false;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return false;
        };
        // After the command name: state, ppid, pgrp.
        let Some(rest) = stat.rfind(')').map(|i| &stat[i + 2..]) else {
            return false;
        };
        let mut f = rest.split_whitespace();
        let state = f.next().unwrap_or("Z");
        let group = f.nth(1).and_then(|g| g.parse::<i32>().ok());
        group == Some(pgid) && state != "Z" && state != "X"
    }))
}

#[cfg(not(target_os = "linux"))]
fn live_member(_pgid: i32) -> Option<bool> {
    None
}

/// Field 22 of `/proc/<pid>/stat` (clock ticks after boot); `None` for zombies and the gone.
#[cfg(target_os = "linux")]
fn start_time(pid: i32) -> Option<i64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    let mut fields = rest.split_whitespace();
    let state = fields.next()?;
    if state == "Z" || state == "X" {
        return None;
    }
    // `rest` starts at field 3 (state); the start time is field 22.
    fields.nth(18)?.parse().ok()
}

/// The BSD info's start time (seconds and microseconds); `None` for zombies and the gone.
#[cfg(target_os = "macos")]
#[allow(unsafe_code)]
fn start_time(pid: i32) -> Option<i64> {
    // SAFETY: proc_bsdinfo is plain old data; all zeroes is a valid value.
    let mut info: libc::proc_bsdinfo = unsafe { std::mem::zeroed() };
    let size = std::mem::size_of::<libc::proc_bsdinfo>() as libc::c_int;
    // SAFETY: `info` is a writable proc_bsdinfo of exactly `size` bytes.
    let n = unsafe {
        libc::proc_pidinfo(
            pid,
            libc::PROC_PIDTBSDINFO,
            0,
            (&mut info as *mut libc::proc_bsdinfo).cast(),
            size,
        )
    };
    if n != size || info.pbi_status == libc::SZOMB {
        return None;
    }
    Some(info.pbi_start_tvsec as i64 * 1_000_000 + info.pbi_start_tvusec as i64)
}

#[cfg(not(any(target_os = "linux", target_os = "macos")))]
fn start_time(pid: i32) -> Option<i64> {
    // No start time here: the pid alone (a recycled pid could be mistaken).
    nix::sys::signal::kill(Pid::from_raw(pid), None)
        .ok()
        .map(|()| 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_process_is_itself_and_a_gone_one_is_not() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        let id = Identity::of(child.id() as i32).expect("running");
        assert!(id.alive());
        assert!(
            !Identity {
                start: id.start + 1,
                ..id
            }
            .alive(),
            "another start time is another process"
        );
        child.kill().expect("kill");
        // A zombie until reaped: already not alive.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while id.alive() && std::time::Instant::now() < deadline {
            std::thread::yield_now();
        }
        assert!(!id.alive(), "a zombie is not alive");
        child.wait().expect("reap");
        assert!(!id.alive());
        assert!(Identity::of(child.id() as i32).is_none());
    }
}
