//! One worktree command at a time per repository. Git does not guard `worktree add` against
//! another running beside it: each lists the repository's worktrees while the other is
//! half-written, and fails ("failed to read .git/worktrees/<name>/commondir"). Workers' worktrees
//! are created off the scheduling loop, several at once, and finished ones removed while
//! others are created — so every `worktree add`, `remove` and `prune` the daemon runs in a
//! repository waits for the one before it.
//!
//! **Invariant:** a repository is keyed by the path its callers name it by (the run's
//! project, as stored), the same for every worktree command of a run.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

/// The lock of `top`'s worktree commands, held while the guard lives.
pub async fn worktrees(top: &Path) -> tokio::sync::OwnedMutexGuard<()> {
    static LOCKS: OnceLock<Mutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>> = OnceLock::new();
    let lock = {
        let mut all = LOCKS
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        Arc::clone(all.entry(top.to_path_buf()).or_default())
    };
    lock.lock_owned().await
}
