//! Running one git command: the user's own `git`, never inheriting another repository's
//! environment, bounded in time (its process group stopped past [`GIT_TIMEOUT`]) and in output
//! read ([`GIT_OUTPUT_MAX`]); and, for `--verbose` runs, each command told with how long it took.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::Command;

use super::{GIT_OUTPUT_MAX, GIT_TIMEOUT};

tokio::task_local! {
    /// Where the git commands a task runs are told, with how long each took: a `--verbose`
    /// run's executor sets it around its loop ([`told`]).
    static TOLD: crate::engine::session::ToolSink;
}

/// Runs `fut` with every git command it runs (on its own task) told to `sink`.
pub async fn told<F: std::future::Future>(
    sink: crate::engine::session::ToolSink,
    fut: F,
) -> F::Output {
    TOLD.scope(sink, fut).await
}

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error("cannot run git: {0}; install git and make sure it is on the daemon's PATH")]
    Spawn(#[source] std::io::Error),
    #[error(
        "`git {args}` in {dir} ran for more than {secs} s and was stopped; check for a hook \
         waiting on input or a lock held by another git"
    )]
    TimedOut {
        dir: PathBuf,
        args: String,
        secs: u64,
    },
    #[error("`git {args}` in {dir} failed: {stderr}")]
    Failed {
        dir: PathBuf,
        args: String,
        stderr: String,
    },
}

/// Runs git in `dir` and returns its trimmed stdout.
///
/// **Invariant:** a git command is never cut short by the daemon stopping. Its output goes to
/// unlinked temporary files rather than pipes, and it is not killed when its future is
/// dropped, so a daemon that stops or crashes mid-command leaves the command to finish on its
/// own (a pipe would kill it with SIGPIPE and could leave, say, a half-created worktree). Only
/// a command hung past [`GIT_TIMEOUT`] is stopped, with its process group (hooks included);
/// at most [`GIT_OUTPUT_MAX`] of its output and the last 64 KiB of its errors are read.
pub(super) async fn git(dir: &Path, args: &[&str]) -> Result<String, GitError> {
    let began = std::time::Instant::now();
    let result = run_git(dir, args).await;
    let _ = TOLD.try_with(|tell| {
        let how = match &result {
            Ok(_) => "",
            Err(_) => ", did not succeed",
        };
        tell(&format!(
            "git {} ({} ms{how})",
            args.join(" "),
            began.elapsed().as_millis()
        ));
    });
    result
}

async fn run_git(dir: &Path, args: &[&str]) -> Result<String, GitError> {
    let (out, err) = match (tempfile::tempfile(), tempfile::tempfile()) {
        (Ok(o), Ok(e)) => (o, e),
        (Err(e), _) | (_, Err(e)) => return Err(GitError::Spawn(e)),
    };
    let (mut out_r, mut err_r) = match (out.try_clone(), err.try_clone()) {
        (Ok(o), Ok(e)) => (o, e),
        (Err(e), _) | (_, Err(e)) => return Err(GitError::Spawn(e)),
    };
    let mut child = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        // A daemon started from inside a hook or another repo must not inherit that repo, nor
        // write its objects and refs anywhere but the project's own store (a hook's
        // quarantine directory is deleted when its push is refused).
        .env_remove("GIT_DIR")
        .env_remove("GIT_WORK_TREE")
        .env_remove("GIT_INDEX_FILE")
        .env_remove("GIT_COMMON_DIR")
        .env_remove("GIT_OBJECT_DIRECTORY")
        .env_remove("GIT_ALTERNATE_OBJECT_DIRECTORIES")
        .env_remove("GIT_QUARANTINE_PATH")
        .env_remove("GIT_NAMESPACE")
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        // Its own group: a timeout stops its hooks with it; a terminal's ^C does not reach it.
        .process_group(0)
        .kill_on_drop(false)
        .spawn()
        .map_err(GitError::Spawn)?;
    let status = match tokio::time::timeout(GIT_TIMEOUT, child.wait()).await {
        Ok(s) => s.map_err(GitError::Spawn)?,
        Err(_) => {
            // Hung (a hook waiting on input, a lock held elsewhere): stopped with its group.
            if let Some(pid) = child.id() {
                let group = nix::unistd::Pid::from_raw(pid as i32);
                let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGTERM);
                if tokio::time::timeout(crate::child::GRACE, child.wait())
                    .await
                    .is_err()
                {
                    let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
                    let _ = child.wait().await;
                }
            }
            return Err(GitError::TimedOut {
                dir: dir.to_path_buf(),
                args: args.join(" "),
                secs: GIT_TIMEOUT.as_secs(),
            });
        }
    };
    // Bounded reads: what git prints is data (ids, a diff) or an error, never unbounded.
    let read = |f: &mut std::fs::File, max: u64, tail: bool| -> String {
        use std::io::{Read, Seek};
        let len = f.seek(std::io::SeekFrom::End(0)).unwrap_or(0);
        let from = if tail { len.saturating_sub(max) } else { 0 };
        let mut s = Vec::new();
        let _ = f.seek(std::io::SeekFrom::Start(from));
        let _ = f.take(max).read_to_end(&mut s);
        String::from_utf8_lossy(&s).into_owned()
    };
    if status.success() {
        Ok(read(&mut out_r, GIT_OUTPUT_MAX, false)
            .trim_end()
            .to_owned())
    } else {
        Err(GitError::Failed {
            dir: dir.to_path_buf(),
            args: args.join(" "),
            stderr: read(&mut err_r, crate::child::TAIL as u64, true)
                .trim()
                .to_owned(),
        })
    }
}
