//! How a fake agent "hangs": it does nothing until it is killed, as a stuck model does — or
//! until its working directory is gone. A sandbox is deleted when its test ends; its daemon
//! is killed first and then its agents, and an agent the daemon was starting at that moment
//! (still in the confinement trampoline, not yet an agent by its executable) escaped that
//! pass and hung on forever, orphaned. Agents that must outlive their daemon (re-attached by
//! the next one) keep their worktree, so they keep waiting.

use std::time::Duration;

/// Waits until killed, or until the current directory no longer exists.
pub fn hang() -> ! {
    loop {
        std::thread::sleep(Duration::from_millis(250));
        if std::env::current_dir().is_err() {
            std::process::exit(0);
        }
    }
}
