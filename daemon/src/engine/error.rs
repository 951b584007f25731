//! Why a step of engine work could not be taken. Each becomes the sentence a run's log, a
//! task's failure or an escalation shows, naming the cause; none of them is a task's fault
//! (those are outcomes, not errors).

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
        task: String,
        #[source]
        source: GitError,
    },
    #[error("cannot open a session{}: {source}", .task.as_deref().map(|t| format!(" for task {t}")).unwrap_or_default())]
    Session {
        task: Option<String>,
        #[source]
        source: PortError,
    },
}

impl EngineError {
    /// A worker's session for `task` could not be opened.
    pub fn session(task: &str) -> impl FnOnce(PortError) -> Self + '_ {
        move |source| EngineError::Session {
            task: Some(task.to_owned()),
            source,
        }
    }
}
