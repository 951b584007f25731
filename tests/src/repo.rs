//! Throwaway git repositories for tests, built with the real `git` under the sandbox's HOME
//! (no system or user config leaks in).

use std::path::{Path, PathBuf};
use std::process::Command;

/// Runs `git args` in `dir` with a fixed identity; panics with git's stderr on failure.
pub fn git(dir: &Path, home: &Path, args: &[&str]) -> String {
    try_git(dir, home, args)
        .unwrap_or_else(|e| panic!("git {args:?} in {} failed: {e}", dir.display()))
}

/// Runs `git args` in `dir` with a fixed identity: its output, or its stderr when it failed.
pub fn try_git(dir: &Path, home: &Path, args: &[&str]) -> Result<String, String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("HOME", home)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Test")
        .env("GIT_AUTHOR_EMAIL", "test@example.invalid")
        .env("GIT_COMMITTER_NAME", "Test")
        .env("GIT_COMMITTER_EMAIL", "test@example.invalid")
        .output()
        .expect("run git");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// A new repository at `dir` on branch `main` with one commit holding `README.md`.
pub fn init(dir: &Path, home: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).expect("create the repo dir");
    git(dir, home, &["init", "-q", "-b", "main"]);
    std::fs::write(dir.join("README.md"), "# demo\n").expect("write README");
    git(dir, home, &["add", "README.md"]);
    git(dir, home, &["commit", "-q", "-m", "initial"]);
    dir.to_path_buf()
}

/// A repository with no commit at all.
pub fn init_empty(dir: &Path, home: &Path) -> PathBuf {
    std::fs::create_dir_all(dir).expect("create the repo dir");
    git(dir, home, &["init", "-q", "-b", "main"]);
    dir.to_path_buf()
}

/// Every file under `dir` but `.git` and `.orchestrator`, with its bytes.
pub fn snapshot(dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut std::collections::BTreeMap<PathBuf, Vec<u8>>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            let rel = p.strip_prefix(root).expect("under the root").to_path_buf();
            if rel == Path::new(".git") || rel == Path::new(".orchestrator") {
                continue;
            }
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                out.insert(rel, Vec::new());
                walk(root, &p, out);
            } else {
                out.insert(rel, std::fs::read(&p).unwrap_or_default());
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}
