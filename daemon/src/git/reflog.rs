//! A ref's reflog read from its file instead of by `git reflog`: salvage reads two on the way
//! to every merge (the worker's worktree's `HEAD`, its task branch). The files backend keeps
//! each ref's reflog as `logs/<ref>` in the git directory, one line per update: `<old id>
//! <new id> <who> <when>\t<message>`. A repository that keeps its refs in a reftable (a
//! `reftable/` folder in its common directory) has no such files: it is left to git.
//!
//! **Invariant:** the ids read are those `git reflog show --format=%H` prints, newest first
//! (the test compares both on a real repository).

use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::head::is_id;
use super::runner::git;

/// The most of a reflog's end read: far more than the entries salvage looks at.
const TAIL_MAX: u64 = 256 << 10;

/// The last [`TAIL_MAX`] bytes of `log`, whole lines only; empty when there is no reflog.
fn tail(log: &Path) -> std::io::Result<String> {
    let mut f = match std::fs::File::open(log) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(String::new()),
        Err(e) => return Err(e),
    };
    let len = f.metadata()?.len();
    let from = len.saturating_sub(TAIL_MAX);
    f.seek(SeekFrom::Start(from))?;
    let mut bytes = Vec::new();
    f.take(TAIL_MAX).read_to_end(&mut bytes)?;
    let mut text = String::from_utf8_lossy(&bytes).into_owned();
    if from > 0 {
        // Cut into a line: that line is not whole.
        let first = text.find('\n').map_or(text.len(), |i| i + 1);
        text.drain(..first);
    }
    Ok(text)
}

/// The commits a ref pointed at, newest first, from its reflog (`HEAD` in a worktree is that
/// worktree's own); at most `max`, none when the reflog is empty or off. With `dirs` (the git
/// directory holding the reflog and the common one), read from its file where it can be.
pub async fn reflog(
    dirs: Option<(PathBuf, PathBuf)>,
    dir: &Path,
    name: &str,
    max: usize,
) -> Vec<String> {
    if let Some((git_dir, common)) = dirs {
        let n = name.to_owned();
        let read = tokio::task::spawn_blocking(move || read(&git_dir, &common, &n, max)).await;
        if let Ok(Some(ids)) = read {
            return ids;
        }
    }
    by_git(dir, name, max).await
}

/// [`reflog`], asking git.
pub(super) async fn by_git(dir: &Path, name: &str, max: usize) -> Vec<String> {
    let n = format!("-n{max}");
    git(dir, &["reflog", "show", "--format=%H", &n, name, "--"])
        .await
        .map(|out| out.lines().map(str::to_owned).collect())
        .unwrap_or_default()
}

/// The commits the reflog of `name` (`HEAD`, `refs/heads/<branch>`) in `git_dir` names, newest
/// first, at most `max`. `None` when `common` (the repository's common git directory) keeps its
/// refs in a reftable, or the file cannot be read: ask git.
pub fn read(git_dir: &Path, common: &Path, name: &str, max: usize) -> Option<Vec<String>> {
    if common.join("reftable").exists() {
        return None;
    }
    let text = tail(&git_dir.join("logs").join(name)).ok()?;
    let ids = text.lines().rev().filter_map(|line| {
        let new = line.split(' ').nth(1)?;
        (is_id(new) && new.bytes().any(|c| c != b'0')).then(|| new.to_owned())
    });
    Some(ids.take(max).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::git;

    /// A worktree whose worker committed, reset, detached and switched branches: its `HEAD`'s
    /// reflog and its branch's, read from the files, are git's.
    #[tokio::test]
    async fn reflogs_read_from_files_are_gits() {
        let dir = tempfile::tempdir().expect("tempdir");
        let top = dir.path().join("repo");
        std::fs::create_dir(&top).expect("mkdir");
        git(&top, &["init", "-q", "-b", "main"]);
        git(&top, &["commit", "-q", "--allow-empty", "-m", "base"]);
        let wt = dir.path().join("wt");
        let path = wt.display().to_string();
        git(&top, &["worktree", "add", "-q", "-b", "task", &path]);
        for m in ["one", "two", "three"] {
            git(&wt, &["commit", "-q", "--allow-empty", "-m", m]);
        }
        git(&wt, &["reset", "-q", "--hard", "HEAD~2"]);
        git(&wt, &["checkout", "-q", "--detach"]);
        git(&wt, &["commit", "-q", "--allow-empty", "-m", "detached"]);
        git(&wt, &["checkout", "-q", "-b", "elsewhere"]);
        git(&wt, &["checkout", "-q", "task"]);

        let (own, common) = crate::git::git_dirs(&wt).await.expect("dirs");
        for (dir, gd, name) in [
            (&wt, &own, "HEAD"),
            (&top, &common, "refs/heads/task"),
            (&top, &common, "refs/heads/main"),
        ] {
            let by_git = by_git(dir, name, 200).await;
            assert!(!by_git.is_empty(), "{name}");
            assert_eq!(read(gd, &common, name, 200), Some(by_git.clone()), "{name}");
            assert_eq!(
                read(gd, &common, name, 2),
                Some(by_git[..by_git.len().min(2)].to_vec()),
                "{name}"
            );
        }
        assert_eq!(read(&common, &common, "refs/heads/none", 200), Some(vec![]));
        std::fs::create_dir(common.join("reftable")).expect("mkdir");
        assert_eq!(
            read(&own, &common, "HEAD", 200),
            None,
            "a reftable is git's"
        );
    }

    /// Only the end of a long reflog is read, from a line's start.
    #[test]
    fn a_long_reflog_is_read_from_its_end() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("logs")).expect("mkdir");
        let id = |n: usize| format!("{n:040x}");
        let mut text = String::new();
        for n in 1..=5000 {
            text.push_str(&format!(
                "{} {} t <t> 0 +0000\tcommit: {}\n",
                id(n - 1),
                id(n),
                "x".repeat(60)
            ));
        }
        std::fs::write(dir.path().join("logs/HEAD"), text).expect("write");
        let ids = read(dir.path(), dir.path(), "HEAD", 200).expect("read");
        assert_eq!(ids.len(), 200);
        assert_eq!(ids[0], id(5000));
        assert_eq!(ids[199], id(4801));
    }
}
