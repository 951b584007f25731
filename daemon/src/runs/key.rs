//! The key a project's runs are stored under: its work tree's top level as git names it
//! (symlinks resolved), else the path as given (a deleted project keeps its runs).
//!
//! Asking git costs a process (~1–2 ms, most of an `orchestrate status`), so the answer is
//! kept per path and reused only while it still holds: the path, resolved, lies under the
//! kept top level and no directory between them holds a `.git` of its own (a repository
//! created inside since) — a few `stat`s. Anything else asks git again.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use crate::git;

/// Paths remembered at most (the map is emptied when full; a miss only costs a process).
const KEPT: usize = 1024;

fn kept() -> &'static Mutex<HashMap<String, PathBuf>> {
    static KEPT_TOPS: OnceLock<Mutex<HashMap<String, PathBuf>>> = OnceLock::new();
    KEPT_TOPS.get_or_init(Default::default)
}

/// The key `path`'s runs are stored under.
pub async fn project_key(path: &str) -> String {
    let remembered = kept().lock().ok().and_then(|m| m.get(path).cloned());
    if let Some(top) = remembered {
        let p = PathBuf::from(path);
        let check = top.clone();
        let holds = tokio::task::spawn_blocking(move || still_top(&p, &check))
            .await
            .unwrap_or(false);
        if holds {
            return top.display().to_string();
        }
    }
    match git::toplevel(Path::new(path)).await {
        Ok(Some(top)) => {
            if let Ok(mut m) = kept().lock() {
                if m.len() >= KEPT {
                    m.clear();
                }
                m.insert(path.to_owned(), top.clone());
            }
            top.display().to_string()
        }
        _ => path.trim_end_matches('/').to_owned(),
    }
}

/// Whether `top` is still the work tree `path` is in: `top` holds `.git`, and `path`
/// (resolved) is `top` or under it with no `.git` in between.
fn still_top(path: &Path, top: &Path) -> bool {
    let Ok(mut at) = path.canonicalize() else {
        return false;
    };
    if !at.starts_with(top) || !top.join(".git").exists() {
        return false;
    }
    while at != top {
        if at.join(".git").exists() {
            return false;
        }
        if !at.pop() {
            return false;
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::still_top;

    #[test]
    fn a_kept_top_level_holds_until_a_repository_appears_between() {
        let d = tempfile::tempdir().expect("tempdir");
        let top = d.path().canonicalize().expect("canonical");
        std::fs::create_dir(top.join(".git")).expect(".git");
        let deep = top.join("a/b");
        std::fs::create_dir_all(&deep).expect("dirs");
        assert!(still_top(&deep, &top));
        assert!(still_top(&top, &top));
        // A repository created inside since: the path is in that one now.
        std::fs::write(top.join("a/.git"), "gitdir: elsewhere").expect("inner");
        assert!(!still_top(&deep, &top));
        // Not under it at all, or gone.
        assert!(!still_top(&std::env::temp_dir(), &top));
        assert!(!still_top(&top.join("missing"), &top));
    }
}
