//! Git, through the `git` binary: the user's own git, with their config and hooks, and the
//! same behaviour they see in their shell.
//!
//! **Invariant:** nothing here touches the user's checkout: no `checkout`, `switch`, `reset` or
//! index writes in the user's work tree. Branches are created with `git branch <name> <commit>`.

use std::path::{Path, PathBuf};

mod head;
mod identity;
mod reach;
mod reflog;
mod refs;
mod runner;
mod serial;

pub use head::{Head, checked_out_in, head, head_id};
pub use reach::{any_unreachable, unreachable};
pub use reflog::reflog;
pub use refs::{ref_id, refs_matching};
use runner::git;
pub use runner::{GitError, told};

/// How long one git command may run before it is stopped (generous: a large merge or a
/// repository's own hooks can take minutes; a hung one must not hold a run forever).
pub const GIT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(15 * 60);

/// The most of a git command's output the daemon reads (a diff for a review prompt is cut
/// there; ids and lists are far smaller).
pub const GIT_OUTPUT_MAX: u64 = 64 << 20;

/// The top level of the work tree containing `dir`, or `None` when `dir` is not inside one
/// (including bare repositories and `.git` directories).
pub async fn toplevel(dir: &Path) -> Result<Option<PathBuf>, GitError> {
    match git(
        dir,
        &["rev-parse", "--is-inside-work-tree", "--show-toplevel"],
    )
    .await
    {
        Ok(out) => {
            let mut lines = out.lines();
            let inside = lines.next() == Some("true");
            Ok(lines
                .next()
                .filter(|_| inside)
                .map(|top| PathBuf::from(top.to_owned())))
        }
        Err(GitError::Failed { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The commit `HEAD` points to, or `None` in a repository without commits.
pub async fn head_commit(top: &Path) -> Result<Option<String>, GitError> {
    match git(top, &["rev-parse", "--verify", "--quiet", "HEAD^{commit}"]).await {
        Ok(sha) => Ok(Some(sha)),
        Err(GitError::Failed { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether `refs/heads/<branch>` exists.
pub async fn branch_exists(top: &Path, branch: &str) -> Result<bool, GitError> {
    let refname = format!("refs/heads/{branch}");
    match git(top, &["show-ref", "--verify", "--quiet", &refname]).await {
        Ok(_) => Ok(true),
        Err(GitError::Failed { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Whether `branch` is a valid branch name.
pub async fn valid_branch_name(top: &Path, branch: &str) -> Result<bool, GitError> {
    match git(top, &["check-ref-format", "--branch", branch]).await {
        Ok(_) => Ok(true),
        Err(GitError::Failed { .. }) => Ok(false),
        Err(e) => Err(e),
    }
}

/// Creates `branch` at `commit` without touching the work tree or `HEAD`.
pub async fn create_branch(top: &Path, branch: &str, commit: &str) -> Result<(), GitError> {
    git(top, &["branch", "--no-track", branch, commit])
        .await
        .map(drop)
}

/// Deletes `branch` if it still points at `commit` (used to undo a failed submit only).
pub async fn delete_branch_at(top: &Path, branch: &str, commit: &str) -> Result<(), GitError> {
    let refname = format!("refs/heads/{branch}");
    git(top, &["update-ref", "-d", &refname, commit])
        .await
        .map(drop)
}

/// The repository's `info/exclude` file (shared by all linked work trees).
pub async fn exclude_file(top: &Path) -> Result<PathBuf, GitError> {
    let p = PathBuf::from(git(top, &["rev-parse", "--git-path", "info/exclude"]).await?);
    Ok(if p.is_absolute() { p } else { top.join(p) })
}

/// Adds `pattern` to `info/exclude` unless a line already says it.
pub async fn ensure_excluded(top: &Path, pattern: &str) -> Result<(), std::io::Error> {
    let path = exclude_file(top).await.map_err(std::io::Error::other)?;
    let current = match tokio::fs::read_to_string(&path).await {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e),
    };
    if current.lines().any(|l| l.trim() == pattern) {
        return Ok(());
    }
    if let Some(parent) = path.parent() {
        tokio::fs::create_dir_all(parent).await?;
    }
    let mut updated = current;
    if !updated.is_empty() && !updated.ends_with('\n') {
        updated.push('\n');
    }
    updated.push_str("# orchestrator's state mirror (see `orchestrate status`)\n");
    updated.push_str(pattern);
    updated.push('\n');
    crate::mirror::write_atomic(&path, updated.as_bytes()).await
}

/// Adds a worktree at `dir` with `commit` checked out detached (the user's checkout is not
/// involved: worktrees have their own HEAD and index).
pub async fn worktree_add_detached(top: &Path, dir: &Path, commit: &str) -> Result<(), GitError> {
    let d = dir.display().to_string();
    let _one = serial::worktrees(top).await;
    git(top, &["worktree", "add", "--detach", "--quiet", &d, commit]).await?;
    Ok(())
}

/// Removes a worktree the daemon created. `force` discards its changes: only for worktrees
/// whose work is not kept (a planner's).
pub async fn worktree_remove(top: &Path, dir: &Path, force: bool) -> Result<(), GitError> {
    let d = dir.display().to_string();
    let mut args = vec!["worktree", "remove"];
    if force {
        args.push("--force");
    }
    args.push(&d);
    let _one = serial::worktrees(top).await;
    git(top, &args).await?;
    Ok(())
}

/// Adds a worktree at `dir` on a new branch `branch` starting at `start`.
pub async fn worktree_add_new_branch(
    top: &Path,
    dir: &Path,
    branch: &str,
    start: &str,
) -> Result<(), GitError> {
    let d = dir.display().to_string();
    let _one = serial::worktrees(top).await;
    git(
        top,
        &["worktree", "add", "--quiet", "-b", branch, &d, start],
    )
    .await?;
    Ok(())
}

/// Moves the worktree at `from` to `to` (a rename; git's record of it follows).
pub async fn worktree_move(top: &Path, from: &Path, to: &Path) -> Result<(), GitError> {
    let (f, t) = (from.display().to_string(), to.display().to_string());
    let _one = serial::worktrees(top).await;
    git(top, &["worktree", "move", &f, &t]).await?;
    Ok(())
}

/// In the worktree `dir`, a new branch `branch` at `start`, checked out (only the files that
/// differ from what is checked out are written).
pub async fn checkout_new_branch(dir: &Path, branch: &str, start: &str) -> Result<(), GitError> {
    git(dir, &["checkout", "--quiet", "-b", branch, start]).await?;
    Ok(())
}

/// Adds a worktree at `dir` with the existing `branch` checked out.
pub async fn worktree_add_branch(top: &Path, dir: &Path, branch: &str) -> Result<(), GitError> {
    let d = dir.display().to_string();
    let _one = serial::worktrees(top).await;
    git(top, &["worktree", "add", "--quiet", &d, branch]).await?;
    Ok(())
}

/// The commit `rev` names.
pub async fn rev_parse(dir: &Path, rev: &str) -> Result<String, GitError> {
    git(dir, &["rev-parse", "--verify", rev]).await
}

/// The paths that differ between two commits.
pub async fn changed_files(dir: &Path, base: &str, head: &str) -> Result<Vec<String>, GitError> {
    let out = git(
        dir,
        &["diff", "--name-only", "-z", "--no-renames", base, head],
    )
    .await?;
    Ok(out
        .split('\0')
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect())
}

/// `git diff --stat` and the full diff between two commits.
pub async fn diff(dir: &Path, base: &str, head: &str) -> Result<(String, String), GitError> {
    let range = format!("{base}..{head}");
    let stat = git(dir, &["diff", "--stat", "--no-color", &range]).await?;
    let diff = git(dir, &["diff", "--no-color", "--no-ext-diff", &range]).await?;
    Ok((stat, diff))
}

/// Paths under `path` that git tracks: in the index or in `HEAD`'s tree (at most `limit`).
pub async fn tracked_under(top: &Path, path: &str, limit: usize) -> Result<Vec<String>, GitError> {
    let mut all: Vec<String> = git(top, &["ls-files", "-z", "--", path])
        .await?
        .split('\0')
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect();
    if let Ok(tree) = git(
        top,
        &["ls-tree", "-r", "-z", "--name-only", "HEAD", "--", path],
    )
    .await
    {
        all.extend(
            tree.split('\0')
                .filter(|p| !p.is_empty())
                .map(str::to_owned),
        );
    }
    all.sort();
    all.dedup();
    all.truncate(limit);
    Ok(all)
}

/// `git status --porcelain` of a worktree (empty when clean).
pub async fn porcelain(dir: &Path) -> Result<String, GitError> {
    git(dir, &["status", "--porcelain"]).await
}

/// Commits everything in the worktree, with a fallback identity when git has none configured.
pub async fn commit_all(dir: &Path, message: &str) -> Result<(), GitError> {
    git(dir, &["add", "-A"]).await?;
    let mut args = identity::args(dir).await;
    args.extend(["commit", "--quiet", "--no-verify", "-m", message]);
    git(dir, &args).await?;
    Ok(())
}

/// Commits on `branch` that `base` does not have.
pub async fn commits_ahead(dir: &Path, base: &str, branch: &str) -> Result<u64, GitError> {
    let range = format!("{base}..{branch}");
    Ok(git(dir, &["rev-list", "--count", &range])
        .await?
        .parse()
        .unwrap_or(0))
}

/// How a merge went.
#[derive(Debug, PartialEq)]
pub enum Merge {
    Merged,
    /// Aborted (the worktree is clean again); the files in conflict.
    Conflict(Vec<String>),
    /// Refused before it began (no `MERGE_HEAD`; the worktree untouched): what git said, e.g.
    /// untracked files the merge would overwrite.
    Refused(String),
}

/// Merges `branch` into the worktree's current branch with a merge commit; a conflict is
/// aborted, and a merge git would not begin is refused, both leaving the worktree as it was.
pub async fn merge(dir: &Path, branch: &str, message: &str) -> Result<Merge, GitError> {
    let mut args = identity::args(dir).await;
    args.extend([
        "merge",
        "--no-ff",
        "--no-edit",
        "--quiet",
        "-m",
        message,
        branch,
    ]);
    match git(dir, &args).await {
        Ok(_) => Ok(Merge::Merged),
        // Not begun: there is nothing to abort, and what git said is the reason.
        Err(GitError::Failed { stderr, .. })
            if git(dir, &["rev-parse", "-q", "--verify", "MERGE_HEAD"])
                .await
                .is_err() =>
        {
            Ok(Merge::Refused(stderr))
        }
        Err(GitError::Failed { .. }) => {
            let files = git(dir, &["diff", "--name-only", "--diff-filter=U"])
                .await
                .unwrap_or_default();
            git(dir, &["merge", "--abort"]).await?;
            Ok(Merge::Conflict(files.lines().map(str::to_owned).collect()))
        }
        Err(e) => Err(e),
    }
}

/// Resets a daemon-owned worktree to `rev`, discarding anything else in it.
pub async fn reset_hard(dir: &Path, rev: &str) -> Result<(), GitError> {
    git(dir, &["reset", "--quiet", "--hard", rev]).await?;
    Ok(())
}

/// Moves `branch` to `new`, only if it still points at `old` (no lost updates).
pub async fn advance_branch(
    top: &Path,
    branch: &str,
    new: &str,
    old: &str,
) -> Result<(), GitError> {
    let r = format!("refs/heads/{branch}");
    git(
        top,
        &["update-ref", "-m", "orchestrator: merge", &r, new, old],
    )
    .await?;
    Ok(())
}

/// Deletes a branch git knows to be merged (`git branch -d`, never `-D`).
pub async fn delete_merged_branch(top: &Path, branch: &str) -> Result<(), GitError> {
    git(top, &["branch", "--quiet", "-d", branch]).await?;
    Ok(())
}

/// Keeps `commit` reachable under `refs/orchestrator/<name>` before the daemon deletes or moves
/// what pointed at it; `orchestrate clean` removes backups whose commits are on a kept branch.
pub async fn backup(top: &Path, name: &str, commit: &str) -> Result<(), GitError> {
    let r = format!("refs/orchestrator/{name}");
    git(
        top,
        &["update-ref", "-m", "orchestrator: backup", &r, commit],
    )
    .await?;
    Ok(())
}

/// Refs under `refs/orchestrator/<prefix>` with their commits.
pub async fn backups(top: &Path, prefix: &str) -> Result<Vec<(String, String)>, GitError> {
    let pattern = format!("refs/orchestrator/{prefix}");
    let out = git(
        top,
        &[
            "for-each-ref",
            "--format=%(refname) %(objectname)",
            &pattern,
        ],
    )
    .await?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(r, c)| (r.to_owned(), c.to_owned()))
        .collect())
}

/// Deletes a ref (a backup), only if it still points at `commit`.
pub async fn delete_ref(top: &Path, name: &str, commit: &str) -> Result<(), GitError> {
    git(top, &["update-ref", "-d", name, commit]).await?;
    Ok(())
}

/// `git worktree prune`: forgets worktrees whose directories are gone.
pub async fn worktree_prune(top: &Path) -> Result<(), GitError> {
    let _one = serial::worktrees(top).await;
    git(top, &["worktree", "prune"]).await?;
    Ok(())
}

/// Refs under `prefix` (a partial name such as `refs/heads/x--`) with their commits.
pub async fn refs(top: &Path, prefix: &str) -> Result<Vec<(String, String)>, GitError> {
    let out = git(top, &["for-each-ref", "--format=%(refname) %(objectname)"]).await?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(r, _)| r.starts_with(prefix))
        .map(|(r, c)| (r.to_owned(), c.to_owned()))
        .collect())
}

/// The repository's common git directory as `dir` sees it (the same for every worktree of one
/// repository), canonicalised.
pub async fn common_dir(dir: &Path) -> Result<PathBuf, GitError> {
    let out = git(
        dir,
        &["rev-parse", "--path-format=absolute", "--git-common-dir"],
    )
    .await?;
    let p = PathBuf::from(out);
    Ok(tokio::fs::canonicalize(&p).await.unwrap_or(p))
}

/// The branch checked out in `dir`, if any (`None` when detached).
pub async fn current_branch(dir: &Path) -> Result<Option<String>, GitError> {
    match git(dir, &["symbolic-ref", "--quiet", "--short", "HEAD"]).await {
        Ok(b) => Ok(Some(b)),
        Err(GitError::Failed { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Whether `ancestor` is `descendant` or one of its ancestors.
pub async fn is_ancestor(dir: &Path, ancestor: &str, descendant: &str) -> Result<bool, GitError> {
    match git(dir, &["merge-base", "--is-ancestor", ancestor, descendant]).await {
        Ok(_) => Ok(true),
        Err(GitError::Failed { stderr, .. }) if stderr.is_empty() => Ok(false),
        Err(e) => Err(e),
    }
}

/// Points `refs/heads/<branch>` at `new`, only if it still points at `old` (`None`: creates
/// it, only if it does not exist).
pub async fn set_branch(
    top: &Path,
    branch: &str,
    new: &str,
    old: Option<&str>,
    why: &str,
) -> Result<(), GitError> {
    let r = format!("refs/heads/{branch}");
    // An empty old value: the ref must not exist yet.
    let old = old.unwrap_or("");
    git(top, &["update-ref", "-m", why, &r, new, old]).await?;
    Ok(())
}

/// Puts the worktree at `dir` on `branch` without touching its index or files (the branch
/// must point at the commit `HEAD` does).
pub async fn attach_head(dir: &Path, branch: &str) -> Result<(), GitError> {
    let r = format!("refs/heads/{branch}");
    git(dir, &["symbolic-ref", "HEAD", &r]).await?;
    Ok(())
}

/// The worktree's own git directory and the repository's common one: read from its files
/// where they are plain ([`head::dirs`]), else in one git command.
pub async fn git_dirs(dir: &Path) -> Result<(PathBuf, PathBuf), GitError> {
    let d = dir.to_path_buf();
    match tokio::task::spawn_blocking(move || head::dirs(&d)).await {
        Ok(Some(dirs)) => Ok(dirs),
        _ => git_dirs_by_git(dir).await,
    }
}

/// [`git_dirs`], asking git.
pub(crate) async fn git_dirs_by_git(dir: &Path) -> Result<(PathBuf, PathBuf), GitError> {
    let args = [
        "rev-parse",
        "--path-format=absolute",
        "--git-dir",
        "--git-common-dir",
    ];
    let out = git(dir, &args).await?;
    let mut lines = out.lines().map(PathBuf::from);
    match (lines.next(), lines.next()) {
        (Some(own), Some(common)) => Ok((own, common)),
        _ => Err(GitError::Failed {
            dir: dir.to_path_buf(),
            args: args.join(" "),
            stderr: format!("expected two directories, git printed {out:?}"),
        }),
    }
}

/// The worktree's own git directory (`.git/worktrees/<name>` for a linked worktree).
pub async fn git_dir(dir: &Path) -> Result<PathBuf, GitError> {
    let out = git(dir, &["rev-parse", "--path-format=absolute", "--git-dir"]).await?;
    Ok(PathBuf::from(out))
}

/// `git ls-files -z <args>`: the paths it prints, relative to `top`.
pub async fn ls_files(top: &Path, args: &[&str]) -> Result<Vec<String>, GitError> {
    let mut all = vec!["ls-files", "-z"];
    all.extend_from_slice(args);
    let out = git(top, &all).await?;
    Ok(out
        .split('\0')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect())
}

/// A fresh detached worktree of `commit` at `dir` for a session that only reads (a planner, a
/// review): whatever an earlier, interrupted one left there is removed first.
pub async fn throwaway_worktree(top: &Path, dir: &Path, commit: &str) -> Result<(), GitError> {
    if dir.exists() {
        let _ = worktree_remove(top, dir, true).await;
        let _ = tokio::fs::remove_dir_all(dir).await;
    }
    worktree_add_detached(top, dir, commit).await
}

/// The project's remotes.
pub async fn remotes(top: &Path) -> Result<Vec<String>, GitError> {
    Ok(git(top, &["remote"])
        .await?
        .lines()
        .map(str::to_owned)
        .collect())
}

/// `remote`'s URL.
pub async fn remote_url(top: &Path, remote: &str) -> Result<String, GitError> {
    git(top, &["remote", "get-url", remote]).await
}

/// The branch `remote`'s `HEAD` names (its default branch), if known.
pub async fn remote_head(top: &Path, remote: &str) -> Result<Option<String>, GitError> {
    let r = format!("refs/remotes/{remote}/HEAD");
    match git(top, &["symbolic-ref", "--quiet", "--short", &r]).await {
        Ok(s) => Ok(s.strip_prefix(&format!("{remote}/")).map(str::to_owned)),
        Err(GitError::Failed { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod merge_tests {
    use super::*;
    use crate::testing::git;

    /// A conflict is aborted and its files named; a merge git refuses to begin (an untracked
    /// file it would overwrite) says what git said, not that `--abort` found no merge.
    #[tokio::test]
    async fn a_conflict_is_aborted_and_a_refused_merge_says_why() {
        let dir = tempfile::tempdir().expect("tempdir");
        let top = dir.path();
        git(top, &["init", "-q", "-b", "main"]);
        git(top, &["commit", "-q", "--allow-empty", "-m", "base"]);
        for (branch, text) in [("ours", "a"), ("theirs", "b")] {
            git(top, &["checkout", "-q", "-b", branch, "main"]);
            std::fs::write(top.join("f.txt"), text).expect("write");
            git(top, &["add", "f.txt"]);
            git(top, &["commit", "-q", "-m", branch]);
        }
        git(top, &["checkout", "-q", "ours"]);
        let merged = merge(top, "theirs", "m").await.expect("a conflict");
        assert_eq!(merged, Merge::Conflict(vec!["f.txt".into()]));
        assert_eq!(git(top, &["status", "--porcelain"]), "");

        git(top, &["checkout", "-q", "main"]);
        std::fs::write(top.join("f.txt"), "untracked").expect("write");
        let Merge::Refused(said) = merge(top, "theirs", "m").await.expect("refused") else {
            panic!("a merge over an untracked file is refused");
        };
        assert!(
            said.contains("untracked") && said.contains("f.txt"),
            "{said}"
        );
        assert_eq!(
            std::fs::read_to_string(top.join("f.txt")).expect("read"),
            "untracked"
        );
    }
}
