//! What a worktree has checked out, and where its git directories are, read from git's own
//! files instead of by starting git: these reads are on the way to every merge, where each
//! git process costs milliseconds on a busy machine. Only the plain layout is read — a `.git`
//! folder or `gitdir:` file, a `HEAD` that names a branch under `refs/heads/` or holds a
//! commit id. For anything else (the reftable backend, whose `HEAD` file names
//! `refs/heads/.invalid`; a symbolic `HEAD` outside `refs/heads/`; a file that cannot be read
//! or parsed) the file readers ([`read`], [`users_of`], [`dirs`]) return `None`, and the async
//! ones git's callers use ([`head_id`], [`checked_out_in`], `git::git_dirs`) ask git.
//!
//! **Invariant:** a `Some` answer is the one git gives for the same files (the tests compare
//! both on real repositories).

use std::path::{Path, PathBuf};

use super::GitError;

/// A worktree's `HEAD`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Head {
    /// On this branch (the short name, under `refs/heads/`).
    Branch(String),
    /// Detached at this commit.
    Detached(String),
}

/// The git directory of the worktree at `dir` (its top level): `.git` itself, or where its
/// `gitdir:` file points.
fn git_dir_of(dir: &Path) -> Option<PathBuf> {
    let dot = dir.join(".git");
    let m = std::fs::symlink_metadata(&dot).ok()?;
    if m.is_dir() {
        return Some(dot);
    }
    if !m.is_file() {
        return None;
    }
    let text = std::fs::read_to_string(&dot).ok()?;
    let to = Path::new(text.strip_prefix("gitdir: ")?.trim_end());
    Some(if to.is_absolute() {
        to.to_path_buf()
    } else {
        dir.join(to)
    })
}

/// Whether `s` is a full commit id (SHA-1 or SHA-256, in hex), as git's files hold them.
pub(super) fn is_id(s: &str) -> bool {
    matches!(s.len(), 40 | 64) && s.bytes().all(|c| c.is_ascii_hexdigit())
}

fn parse(text: &str) -> Option<Head> {
    let t = text.trim_end();
    if let Some(r) = t.strip_prefix("ref: ") {
        let b = r.strip_prefix("refs/heads/")?;
        // `.invalid` is what a reftable repository keeps in the file.
        return (!b.is_empty() && b != ".invalid").then(|| Head::Branch(b.to_owned()));
    }
    is_id(t).then(|| Head::Detached(t.to_owned()))
}

fn head_in(git_dir: &Path) -> Option<Head> {
    parse(&std::fs::read_to_string(git_dir.join("HEAD")).ok()?)
}

/// The git directory of the main worktree `top` (its `.git` folder), which is also the
/// repository's common one; `None` when `top` is a linked worktree or has no `.git` folder.
pub fn main_git_dir(top: &Path) -> Option<PathBuf> {
    let dot = top.join(".git");
    let is_main = std::fs::symlink_metadata(&dot).ok()?.is_dir() && !dot.join("commondir").exists();
    is_main.then_some(dot)
}

/// The worktree at `dir`'s own git directory and the repository's common one (blocking): a
/// linked worktree's `commondir` file names the common one, relative to its own.
pub fn dirs(dir: &Path) -> Option<(PathBuf, PathBuf)> {
    let own = git_dir_of(dir)?;
    let common = match std::fs::read_to_string(own.join("commondir")) {
        Ok(text) => std::fs::canonicalize(own.join(text.trim_end())).ok()?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => own.clone(),
        Err(_) => return None,
    };
    Some((own, common))
}

/// The `HEAD` of the worktree whose top level is `dir` (blocking; a few small reads).
pub fn read(dir: &Path) -> Option<Head> {
    head_in(&git_dir_of(dir)?)
}

/// The worktrees of the repository whose main worktree is `top` that have `branch` checked
/// out, as `git worktree list` names them (blocking). `None` when `top` is not a main
/// worktree with a `.git` folder or any `HEAD` cannot be read this way.
pub fn users_of(top: &Path, branch: &str) -> Option<Vec<PathBuf>> {
    let common = main_git_dir(top)?;
    let on = |h: Head| matches!(h, Head::Branch(b) if b == branch);
    let mut found = Vec::new();
    if on(head_in(&common)?) {
        found.push(top.to_path_buf());
    }
    let linked = match std::fs::read_dir(common.join("worktrees")) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Some(found),
        Err(_) => return None,
    };
    for entry in linked {
        let admin = entry.ok()?.path();
        if on(head_in(&admin)?) {
            // `gitdir` holds the worktree's `.git` file's path.
            let dot_git = std::fs::read_to_string(admin.join("gitdir")).ok()?;
            found.push(Path::new(dot_git.trim_end()).parent()?.to_path_buf());
        }
    }
    Some(found)
}

/// The `HEAD` of the worktree whose top level is `dir`, read from its files when it can be
/// ([`head::read`]; `None` otherwise: ask git).
pub async fn head(dir: &Path) -> Option<Head> {
    let d = dir.to_path_buf();
    tokio::task::spawn_blocking(move || read(&d))
        .await
        .ok()
        .flatten()
}

/// The commit checked out in the worktree whose top level is `dir`: read from its `HEAD`
/// file when detached there (the integration worktree always is), else from git.
pub async fn head_id(dir: &Path) -> Result<String, GitError> {
    match head(dir).await {
        Some(Head::Detached(id)) => Ok(id),
        _ => super::rev_parse(dir, "HEAD").await,
    }
}

/// The worktrees of the repository at `top` that have `branch` checked out: read from git's
/// files where they are plain ([`users_of`]), else from `git worktree list`.
pub async fn checked_out_in(top: &Path, branch: &str) -> Result<Vec<PathBuf>, GitError> {
    let (t, b) = (top.to_path_buf(), branch.to_owned());
    match tokio::task::spawn_blocking(move || users_of(&t, &b)).await {
        Ok(Some(found)) => Ok(found),
        _ => checked_out_in_by_git(top, branch).await,
    }
}

/// [`checked_out_in`], asking git.
pub(crate) async fn checked_out_in_by_git(
    top: &Path,
    branch: &str,
) -> Result<Vec<PathBuf>, GitError> {
    let out = super::runner::git(top, &["worktree", "list", "--porcelain"]).await?;
    let want = format!("branch refs/heads/{branch}");
    let mut found = Vec::new();
    let mut current: Option<&str> = None;
    for line in out.lines() {
        if let Some(p) = line.strip_prefix("worktree ") {
            current = Some(p);
        } else if line == want
            && let Some(p) = current
        {
            found.push(PathBuf::from(p));
        }
    }
    Ok(found)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::git;

    /// A repository on `main` with a worktree on `feature`, one detached and one on `main`'s
    /// sibling `run`; each answer is compared with git's.
    #[tokio::test]
    async fn heads_and_users_read_from_files_agree_with_git() {
        let dir = tempfile::tempdir().expect("tempdir");
        let top = dir.path().join("repo");
        std::fs::create_dir(&top).expect("mkdir");
        git(&top, &["init", "-q", "-b", "main"]);
        git(&top, &["commit", "-q", "--allow-empty", "-m", "a"]);
        let (feature, detached, run) = (
            dir.path().join("wt-feature"),
            dir.path().join("wt-detached"),
            dir.path().join("wt-run"),
        );
        let path = |p: &Path| p.display().to_string();
        git(
            &top,
            &["worktree", "add", "-q", "-b", "feature", &path(&feature)],
        );
        git(
            &top,
            &["worktree", "add", "-q", "--detach", &path(&detached)],
        );
        git(&top, &["worktree", "add", "-q", "-b", "run", &path(&run)]);

        for wt in [&top, &feature, &detached] {
            let by_git = crate::git::git_dirs_by_git(wt).await.expect("git");
            let by_files = dirs(wt).expect("read");
            let real = |p: &Path| std::fs::canonicalize(p).expect("canonical");
            assert_eq!(
                (real(&by_files.0), real(&by_files.1)),
                (real(&by_git.0), real(&by_git.1)),
                "{}",
                wt.display()
            );
        }
        assert_eq!(read(&top), Some(Head::Branch("main".into())));
        assert_eq!(read(&feature), Some(Head::Branch("feature".into())));
        let id = git(&detached, &["rev-parse", "HEAD"]);
        assert_eq!(read(&detached), Some(Head::Detached(id)));

        for branch in ["main", "feature", "run", "none"] {
            let mut by_git = checked_out_in_by_git(&top, branch).await.expect("git");
            let mut by_files = users_of(&top, branch).expect("read");
            by_git.sort();
            by_files.sort();
            assert_eq!(by_files, by_git, "{branch}");
        }
        // A linked worktree is not a main one: git is asked.
        assert_eq!(users_of(&feature, "feature"), None);
        // A HEAD this does not read (another ref namespace) leaves it to git.
        std::fs::write(top.join(".git/HEAD"), "ref: refs/remotes/origin/main\n").expect("write");
        assert_eq!(read(&top), None);
        assert_eq!(users_of(&top, "main"), None);
    }

    #[test]
    fn only_plain_heads_are_read() {
        let id = "0123456789abcdef0123456789abcdef01234567";
        assert_eq!(parse(&format!("{id}\n")), Some(Head::Detached(id.into())));
        assert_eq!(
            parse("ref: refs/heads/a/b\n"),
            Some(Head::Branch("a/b".into()))
        );
        assert_eq!(parse("ref: refs/heads/.invalid\n"), None);
        assert_eq!(parse("ref: refs/tags/v1\n"), None);
        assert_eq!(parse("0123\n"), None);
        assert_eq!(parse(""), None);
    }
}
