//! Why a step of engine work could not be taken. Each becomes the sentence a run's log, a
//! task's failure or an escalation shows, naming the cause; none of them is a task's fault
//! (those are outcomes, not errors).

use std::path::PathBuf;

use crate::agents::AgentError;
use crate::engine::port::PortError;
use crate::git::GitError;
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot read the run's state: {0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Agent(#[from] AgentError),
    #[error(transparent)]
    Git(#[from] GitError),
    #[error("cannot create the worktree for task {task}: {source}")]
    Worktree {
        task: crate::ids::TaskId,
        #[source]
        source: GitError,
    },
    #[error("cannot open a session{}: {source}", .task.as_deref().map(|t| format!(" for task {t}")).unwrap_or_default())]
    Session {
        task: Option<crate::ids::TaskId>,
        #[source]
        source: PortError,
    },
    #[error("cannot find the run's branch: {0}")]
    Branch(#[source] GitError),
    #[error("cannot diff the branch: {0}")]
    Diff(#[source] GitError),
    #[error("there is no plan to review")]
    NoPlan,
    /// An agent's program could not be started.
    #[error("cannot run {}: {source}", .bin.display())]
    Spawn {
        bin: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A Codex review session that ended without a verdict, and why.
    #[error(transparent)]
    Review(#[from] ReviewError),
}

/// Why one Codex review attempt gave no verdict (it is retried, then the review fails).
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    #[error("no verdict within {secs} s, so it was stopped{}", .last_error.as_deref().map(|e| format!(" (its last error: {e})")).unwrap_or_default())]
    TimedOut {
        secs: u64,
        last_error: Option<String>,
    },
    #[error("codex failed: {error} (exit {}); see {}", .exit.map_or("none".into(), |c| c.to_string()), .dir.display())]
    Failed {
        error: String,
        exit: Option<i32>,
        dir: PathBuf,
    },
    #[error("codex exited ({}) without a verdict; see {}", .exit.map_or("killed".into(), |c| format!("code {c}")), .stderr.display())]
    Silent { exit: Option<i32>, stderr: PathBuf },
    #[error("{reason}; see {}", .dir.display())]
    Unreadable { reason: String, dir: PathBuf },
}

impl EngineError {
    /// A worker's session for `task` could not be opened.
    pub fn session(task: &crate::ids::TaskId) -> impl FnOnce(PortError) -> Self + '_ {
        move |source| EngineError::Session {
            task: Some(task.clone()),
            source,
        }
    }
}
