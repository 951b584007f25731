//! What a worker left behind, made safe before anything is merged, retried or removed. Models
//! commit on another branch, detach `HEAD` to look at the base, `git reset --hard`, or die in
//! the middle of a commit; none of that may lose work or merge the wrong thing.
//!
//! The rule: **a completed task's result is its worktree as the worker left it** — `HEAD`, with
//! anything uncommitted committed on top — and the task's branch is moved there. The one
//! exception is a `HEAD` that only went back to an ancestor of the branch (the worker checked
//! out the base to compare): then the branch, which holds more, is the result. Whatever else
//! the session's reflogs show it committed is kept under
//! `refs/orchestrator/<run>/kept/<task>.<attempt>-<n>`, completed or not.
//!
//! **Invariants:** after [`salvage`], no stale `index.lock` of the dead session blocks its
//! worktree; every commit the worker made is on the task's branch or under
//! `refs/orchestrator/` (as far as git's reflogs, on by default, recorded it); and the worktree's
//! `HEAD` is on the task's branch whenever the branch was moved to it.

use std::path::{Path, PathBuf};

use crate::git;

/// The most reflog entries looked at per ref (a session makes a handful).
const REFLOG_MAX: usize = 200;

/// One finished worker session's place.
pub struct Place<'a> {
    pub project: &'a Path,
    pub run: &'a str,
    pub task: &'a str,
    pub attempt: u32,
    pub worktree: &'a Path,
    pub branch: &'a str,
}

/// What [`salvage`] did.
#[derive(Debug, Default)]
pub struct Salvaged {
    /// Sentences for the run's log, each about something the worker did not leave as asked.
    pub notes: Vec<String>,
    /// The refs that now keep commits the worker moved away from.
    pub kept: Vec<String>,
}

/// Makes the session's worktree and commits safe; `completed`: the worker completed its task,
/// so its worktree's state becomes the branch's.
pub async fn salvage(p: &Place<'_>, completed: bool) -> Salvaged {
    let taken = take(p, completed).await;
    keep(p, taken).await
}

/// What [`take`] leaves for [`keep`].
pub struct Taken {
    out: Salvaged,
    /// `None` when the worktree is gone.
    left: Option<Left>,
}

/// A worktree [`take`] looked at.
struct Left {
    /// Its own and the common git directory, when they could be named.
    dirs: Option<(PathBuf, PathBuf)>,
    /// The branch's tip before the salvage.
    before: Option<String>,
    /// Its `HEAD` once taken.
    head: Option<String>,
}

/// [`salvage`]'s first half: stale locks cleared and, for a completed task, the worktree made
/// the branch's. Once it returns the task's branch holds its result, so a caller may read the
/// branch while [`keep`] looks for the commits the worker moved away from.
pub async fn take(p: &Place<'_>, completed: bool) -> Taken {
    let mut out = Salvaged::default();
    if !p.worktree.exists() {
        if completed {
            out.notes.push(format!(
                "its worktree {} is gone; its branch {} as it stands is its result",
                p.worktree.display(),
                p.branch
            ));
        }
        return Taken { out, left: None };
    }
    // Independent reads run side by side: this is on the way to every merge.
    let branch = format!("refs/heads/{}", p.branch);
    let (dirs, before) = tokio::join!(
        clear_stale_locks(p, &mut out),
        git::ref_id(p.project, &branch)
    );
    let before = before.ok();
    let head = if completed {
        take_the_worktree(p, before.as_deref(), &mut out).await
    } else {
        git::rev_parse(p.worktree, "HEAD").await.ok()
    };
    Taken {
        out,
        left: Some(Left { dirs, before, head }),
    }
}

/// [`salvage`]'s second half: every commit the session's reflogs name that nothing reaches
/// is kept under `refs/orchestrator/`.
pub async fn keep(p: &Place<'_>, taken: Taken) -> Salvaged {
    let Taken { mut out, left } = taken;
    if let Some(Left { dirs, before, head }) = left {
        keep_moved_away(p, dirs, before.as_deref(), head, &mut out).await;
    }
    out
}

/// A session killed inside `git commit` leaves `index.lock` (and maybe its branch's ref lock);
/// nobody else works in this worktree, so they are stale once the session is over. Returns
/// the worktree's own git directory and the common one, when git named them.
async fn clear_stale_locks(p: &Place<'_>, out: &mut Salvaged) -> Option<(PathBuf, PathBuf)> {
    let mut locks: Vec<PathBuf> = Vec::new();
    let dirs = git::git_dirs(p.worktree).await.ok();
    let common = match &dirs {
        Some((own, common)) => {
            locks.push(own.join("index.lock"));
            locks.push(own.join("HEAD.lock"));
            Ok(common.clone())
        }
        None => git::common_dir(p.project).await,
    };
    if let Ok(common) = common {
        locks.push(common.join(format!("refs/heads/{}.lock", p.branch)));
    }
    for lock in locks {
        if tokio::fs::symlink_metadata(&lock).await.is_ok()
            && tokio::fs::remove_file(&lock).await.is_ok()
        {
            out.notes.push(format!(
                "its worker stopped in the middle of a git command; the stale {} was removed",
                lock.display()
            ));
        }
    }
    dirs
}

/// Commits what is uncommitted, then moves the task's branch to the worktree's `HEAD` when
/// the worker left its work elsewhere; returns that `HEAD`.
async fn take_the_worktree(
    p: &Place<'_>,
    before: Option<&str>,
    out: &mut Salvaged,
) -> Option<String> {
    let (status, (mut head, on)) =
        tokio::join!(git::porcelain(p.worktree), head_and_branch(p, before));
    let mut before = before.map(str::to_owned);
    if status.is_ok_and(|s| !s.is_empty()) {
        let message = format!(
            "orchestrator: commit what the worker of task {} left uncommitted",
            p.task
        );
        match git::commit_all(p.worktree, &message).await {
            Ok(()) => {
                head = git::rev_parse(p.worktree, "HEAD").await.ok();
                if on.as_deref() == Some(p.branch) {
                    // The commit moved the branch along with HEAD.
                    before.clone_from(&head);
                }
            }
            Err(e) => out.notes.push(format!(
                "what its worker left uncommitted cannot be committed: {e}"
            )),
        }
    }
    let head = head?;
    let before = before.as_deref();
    if before == Some(head.as_str()) {
        if on.as_deref() != Some(p.branch) {
            let _ = git::attach_head(p.worktree, p.branch).await;
        }
        return Some(head);
    }
    if let Some(tip) = before
        && git::is_ancestor(p.project, &head, tip)
            .await
            .unwrap_or(false)
    {
        // Went back to look (at the base, say): the branch holds the work.
        return Some(head);
    }
    let on = match on {
        Some(b) if b == p.branch => None,
        Some(b) => Some(format!("the branch {b}")),
        None => Some("a detached HEAD".to_owned()),
    };
    match git::set_branch(
        p.project,
        p.branch,
        &head,
        before,
        "orchestrator: take the worktree",
    )
    .await
    {
        Ok(()) => {
            let _ = git::attach_head(p.worktree, p.branch).await;
            if let Some(on) = on {
                out.notes.push(format!(
                    "its worker left its work on {on}, not on {}; {} now holds it",
                    p.branch, p.branch
                ));
            }
        }
        Err(e) => out.notes.push(format!(
            "its worktree's HEAD {} cannot become {}: {e}",
            short(&head),
            p.branch
        )),
    }
    Some(head)
}

/// The worktree's `HEAD` commit and the branch it is on. Read from its files where they are
/// plain: on the task's branch, the commit is the branch's tip read a moment ago (the session
/// is over; nothing moves it meanwhile).
async fn head_and_branch(p: &Place<'_>, before: Option<&str>) -> (Option<String>, Option<String>) {
    match git::head(p.worktree).await {
        Some(git::Head::Detached(id)) => (Some(id), None),
        Some(git::Head::Branch(b)) if b == p.branch && before.is_some() => {
            (before.map(str::to_owned), Some(b))
        }
        Some(git::Head::Branch(b)) => (git::rev_parse(p.worktree, "HEAD").await.ok(), Some(b)),
        None => {
            let (head, on) = tokio::join!(
                git::rev_parse(p.worktree, "HEAD"),
                git::current_branch(p.worktree),
            );
            (head.ok(), on.ok().flatten())
        }
    }
}

/// Keeps every commit the session's reflogs name that nothing reaches any more.
async fn keep_moved_away(
    p: &Place<'_>,
    dirs: Option<(PathBuf, PathBuf)>,
    before: Option<&str>,
    head: Option<String>,
    out: &mut Salvaged,
) {
    // Kept already by an earlier salvage of this session (a daemon that stopped before it
    // acted on them): they still count, and new ones are numbered after them.
    let prefix = format!("{}/kept/{}.{}-", p.run, p.task, p.attempt);
    let branch = format!("refs/heads/{}", p.branch);
    let pattern = format!("refs/orchestrator/{prefix}*");
    let patterns = [pattern.as_str()];
    // Read from the reflogs' files where git named the directories.
    let of_common = dirs.clone().map(|(_, common)| (common.clone(), common));
    let (mut candidates, of_branch, earlier) = tokio::join!(
        git::reflog(dirs, p.worktree, "HEAD", REFLOG_MAX),
        git::reflog(of_common, p.project, &branch, REFLOG_MAX),
        git::refs_matching(p.project, &patterns),
    );
    candidates.extend(of_branch);
    candidates.extend(before.map(str::to_owned));
    // A detached HEAD holds work only as long as the worktree lives.
    candidates.splice(0..0, head);
    let mut seen = std::collections::HashSet::new();
    candidates.retain(|c| seen.insert(c.clone()));
    let earlier: Vec<String> = earlier
        .unwrap_or_default()
        .into_iter()
        .map(|(r, _)| r)
        .collect();
    let mut kept_now = Vec::new();
    // Usually nothing was dropped: one command says so for all of them.
    let all: Vec<&str> = candidates.iter().map(String::as_str).collect();
    if !git::any_unreachable(p.project, &all, &[&branch])
        .await
        .unwrap_or(true)
    {
        candidates.clear();
    }
    for commit in candidates {
        // In doubt, kept: a ref too many costs nothing, a commit dropped is work lost.
        if !git::unreachable(p.project, &commit).await.unwrap_or(true) {
            continue;
        }
        let mut n = earlier.len() + kept_now.len() + 1;
        while earlier.contains(&format!("refs/orchestrator/{prefix}{n}")) {
            n += 1;
        }
        let name = format!("{prefix}{n}");
        if git::backup(p.project, &name, &commit).await.is_ok() {
            kept_now.push(format!("refs/orchestrator/{name}"));
        }
    }
    if !kept_now.is_empty() {
        out.notes.push(format!(
            "its worker moved away from commits that are not on {}; they are kept at {}",
            p.branch,
            kept_now.join(", ")
        ));
    }
    out.kept = earlier.into_iter().chain(kept_now).collect();
}

fn short(commit: &str) -> &str {
    &commit[..commit.len().min(12)]
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testing::git;

    /// A project with one commit and a worktree on `task.1` at it, where a worker wrote
    /// `a.txt` (uncommitted); returns the project, the worktree and the base commit.
    fn worker_left(dir: &Path) -> (PathBuf, PathBuf, String) {
        let (project, wt) = (dir.join("p"), dir.join("wt"));
        std::fs::create_dir_all(&project).expect("mkdir");
        git(&project, &["init", "-q", "-b", "main"]);
        git(&project, &["commit", "-q", "--allow-empty", "-m", "base"]);
        let base = git(&project, &["rev-parse", "HEAD"]);
        let wt_arg = wt.display().to_string();
        git(
            &project,
            &["worktree", "add", "-q", "-b", "task.1", &wt_arg, &base],
        );
        std::fs::write(wt.join("a.txt"), "work\n").expect("write");
        (project, wt, base)
    }

    fn place<'a>(project: &'a Path, wt: &'a Path) -> Place<'a> {
        Place {
            project,
            run: "r1",
            task: "t",
            attempt: 1,
            worktree: wt,
            branch: "task.1",
        }
    }

    /// Work left uncommitted on the task's branch is committed there, and that is all: the
    /// commit moved the branch, so nothing is said about moving it.
    #[tokio::test]
    async fn uncommitted_work_on_the_branch_is_committed_without_complaint() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (project, wt, _) = worker_left(dir.path());
        let place = place(&project, &wt);
        let out = salvage(&place, true).await;
        assert!(out.notes.is_empty() && out.kept.is_empty(), "{out:?}");
        assert_eq!(git(&project, &["show", "task.1:a.txt"]), "work");
        assert_eq!(git(&wt, &["status", "--porcelain"]), "");
    }

    /// A daemon that dies after salvaging and salvages again (the session is finished once
    /// more from what it left) still knows what the worker dropped, and keeps it where it was.
    #[tokio::test]
    async fn salvaging_twice_still_counts_what_the_first_time_kept() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (project, wt, base) = worker_left(dir.path());
        git(&wt, &["add", "-A"]);
        git(&wt, &["commit", "-q", "-m", "work"]);
        let work = git(&wt, &["rev-parse", "HEAD"]);
        git(&wt, &["reset", "-q", "--hard", &base]);
        let place = place(&project, &wt);
        let first = salvage(&place, true).await;
        assert_eq!(first.kept, ["refs/orchestrator/r1/kept/t.1-1"], "{first:?}");
        let again = salvage(&place, true).await;
        assert_eq!(
            again.kept, first.kept,
            "the second salvage forgot: {again:?}"
        );
        assert_eq!(
            git(&project, &["rev-parse", "refs/orchestrator/r1/kept/t.1-1"]),
            work,
            "the kept ref still holds the dropped commit"
        );
    }
}
