//! The identity the daemon's own commits (a worker's leftovers, merges) are made with: the
//! user's when git has one configured, else a fallback, so a fresh machine never fails a
//! merge for want of `user.email`. What git said is kept a while per directory, since every
//! merge commits.

use std::path::{Path, PathBuf};

use super::git;

/// How long what git said about a directory's identity is trusted: every merge commits, and
/// asking costs a process on the way to each.
const IDENTITY_KEPT: std::time::Duration = std::time::Duration::from_secs(30);

/// `-c user.name=… -c user.email=…` when git has no identity configured, so the daemon's own
/// commits never fail on a fresh machine; nothing when the user has one (what git said is
/// kept per directory for [`IDENTITY_KEPT`]).
pub(super) async fn args(dir: &Path) -> Vec<&'static str> {
    type Kept = std::collections::HashMap<PathBuf, (std::time::Instant, bool)>;
    static KEPT: std::sync::OnceLock<std::sync::Mutex<Kept>> = std::sync::OnceLock::new();
    let kept = KEPT.get_or_init(Default::default);
    let known = kept.lock().ok().and_then(|k| {
        k.get(dir)
            .filter(|(at, _)| at.elapsed() < IDENTITY_KEPT)
            .map(|&(_, has)| has)
    });
    let has_identity = match known {
        Some(has) => has,
        None => {
            let has = git(dir, &["config", "user.email"])
                .await
                .is_ok_and(|e| !e.is_empty());
            if let Ok(mut k) = kept.lock() {
                k.retain(|_, (at, _)| at.elapsed() < IDENTITY_KEPT);
                k.insert(dir.to_path_buf(), (std::time::Instant::now(), has));
            }
            has
        }
    };
    if has_identity {
        Vec::new()
    } else {
        vec![
            "-c",
            "user.name=orchestrator",
            "-c",
            "user.email=orchestrator@localhost",
        ]
    }
}
