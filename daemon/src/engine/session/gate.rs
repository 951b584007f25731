//! The start gate: an agent session starts as the daemon's trampoline, which waits on a pipe
//! for the daemon's word before it execs the agent. The daemon says it only once the
//! session's process is recorded in SQLite, so a daemon killed between spawning a session
//! and recording it leaves nothing running: the pipe closes with the daemon and the
//! trampoline exits without starting anything. A restarted daemon can then trust that a
//! session with no recorded process never ran (`executor::recover`), and remove its worktree
//! and branch.
//!
//! **Invariant:** an agent process runs only if its session row names it.

use std::os::fd::{AsRawFd, OwnedFd};

use nix::fcntl::{FcntlArg, FdFlag, OFlag, fcntl};

/// The daemon's ends of one session's gate.
pub(super) struct Gate {
    /// Inherited by the child at its number (the only end without close-on-exec), closed here
    /// once the child is spawned.
    read: Option<OwnedFd>,
    write: OwnedFd,
}

impl Gate {
    /// Arms `cmd` if it starts through the trampoline (the only program that waits); `None`
    /// for any other command, which starts at once.
    pub(super) fn arm(cmd: &mut tokio::process::Command) -> std::io::Result<Option<Self>> {
        let gated = cmd
            .as_std()
            .get_args()
            .next()
            .is_some_and(|a| a == crate::confine::TRAMPOLINE);
        if !gated {
            return Ok(None);
        }
        let (read, write) = nix::unistd::pipe2(OFlag::O_CLOEXEC)?;
        fcntl(&read, FcntlArg::F_SETFD(FdFlag::empty()))?;
        cmd.env(crate::confine::GATE_VAR, read.as_raw_fd().to_string());
        Ok(Some(Self {
            read: Some(read),
            write,
        }))
    }

    /// The child holds its end now.
    pub(super) fn spawned(&mut self) {
        self.read = None;
    }

    /// Lets the session start (its process is recorded). Dropping the gate instead makes the
    /// trampoline exit without starting it.
    pub(super) fn open(self) {
        let _ = nix::unistd::write(&self.write, b"g");
    }
}
