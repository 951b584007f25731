//! Whether commits hold work nothing reaches: a finished worker's salvage asks it of every
//! commit its session's reflogs name, and keeps under `refs/orchestrator/` what is unreachable.
//! The whole question (every branch, tag, remote and backup ref) costs more as a project's
//! runs add backup refs, so the usual answer — the task's branch reaches them all — is asked
//! of that branch first.

use std::path::Path;

use super::GitError;
use super::runner::git;

/// Whether `commit` holds work no branch, tag, remote or `refs/orchestrator/` ref reaches.
pub async fn unreachable(top: &Path, commit: &str) -> Result<bool, GitError> {
    any_unreachable(top, &[commit], &[]).await
}

/// Whether any of `commits` holds work no branch, tag, remote or `refs/orchestrator/` ref
/// reaches (one command for all; [`unreachable`] tells which). A broken ref (one naming a
/// missing object, or garbage) is passed over: without `--ignore-missing` one such ref
/// anywhere makes git refuse the whole question, and a caller would keep nothing.
///
/// `near` names refs that usually reach them all (a task's branch): asked of those alone
/// first, git walks from one tip instead of every ref — whose number grows with each run the
/// project had (a run keeps a backup ref per task) — and only commits beyond them ask the
/// whole question.
pub async fn any_unreachable(
    top: &Path,
    commits: &[&str],
    near: &[&str],
) -> Result<bool, GitError> {
    fn beyond<'a>(commits: &[&'a str], not: &[&'a str]) -> Vec<&'a str> {
        let mut args = vec!["rev-list", "-n1", "--ignore-missing"];
        args.extend_from_slice(commits);
        args.push("--not");
        args.extend_from_slice(not);
        args
    }
    if !near.is_empty()
        && git(top, &beyond(commits, near))
            .await
            .is_ok_and(|o| o.is_empty())
    {
        return Ok(false);
    }
    let everything = [
        "--branches",
        "--tags",
        "--remotes",
        "--glob=refs/orchestrator/*",
    ];
    Ok(!git(top, &beyond(commits, &everything)).await?.is_empty())
}

#[cfg(test)]
mod tests {
    use crate::testing::git;

    /// `main` with two commits, `side` one more; a commit no ref reaches (made on a detached
    /// `HEAD`, then left).
    #[tokio::test]
    async fn reachability_is_asked_of_the_near_refs_first_and_of_every_ref_otherwise() {
        let dir = tempfile::tempdir().expect("tempdir");
        let top = dir.path();
        git(top, &["init", "-q", "-b", "main"]);
        git(top, &["commit", "-q", "--allow-empty", "-m", "a"]);
        let a = git(top, &["rev-parse", "HEAD"]);
        git(top, &["commit", "-q", "--allow-empty", "-m", "b"]);
        let b = git(top, &["rev-parse", "HEAD"]);
        git(top, &["checkout", "-q", "-b", "side"]);
        git(top, &["commit", "-q", "--allow-empty", "-m", "c"]);
        let c = git(top, &["rev-parse", "HEAD"]);
        git(top, &["checkout", "-q", "--detach"]);
        git(top, &["commit", "-q", "--allow-empty", "-m", "lost"]);
        let lost = git(top, &["rev-parse", "HEAD"]);
        git(top, &["checkout", "-q", "main"]);
        let any = async |commits: &[&str], near: &[&str]| {
            super::any_unreachable(top, commits, near)
                .await
                .expect("git")
        };
        assert!(!any(&[&a, &b], &["refs/heads/main"]).await, "near reaches");
        assert!(
            !any(&[&a, &c], &["refs/heads/main"]).await,
            "another branch reaches"
        );
        assert!(
            any(&[&a, &lost], &["refs/heads/main"]).await,
            "nothing reaches"
        );
        assert!(
            !any(&[&c], &["refs/heads/none"]).await,
            "a missing near ref"
        );
        assert!(any(&[&lost], &[]).await);
        git(
            top,
            &["update-ref", "refs/orchestrator/r1/kept/t.1-1", &lost],
        );
        assert!(!super::unreachable(top, &lost).await.expect("git"), "kept");
    }
}
