//! The engine's one way to its run. Engine work (planner, executor, reviews) never touches the
//! run's state: it sends an [`Ask`] through its [`Port`] and the run's actor answers, in order,
//! between the user's commands. The actor owns the port's receiving end and awaits the engine
//! work's `JoinHandle` for its [`Outcome`]; the engine knows nothing of the actor's commands.

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use super::executor::Executed;
use super::planner::Planned;
use super::review::Reviewed;
use crate::board::Role;
use crate::ids::{SessionId, TaskId};
use crate::store::NewEvent;

/// A new session's identity and its bearer token, shown once.
#[derive(Debug, Clone)]
pub struct SessionGrant {
    pub session: SessionId,
    pub token: String,
    pub expires_at: time::OffsetDateTime,
}

/// Why the actor did not do what was asked.
#[derive(Debug, thiserror::Error)]
pub enum PortError {
    /// The run's actor is gone (the run ended or the daemon is stopping).
    #[error("the run is no longer active")]
    Gone,
    #[error("{0}")]
    Refused(String),
}

/// The answer to one [`Ask`].
pub type Reply<T> = oneshot::Sender<Result<T, PortError>>;

/// Everything engine work asks of its run.
pub enum Ask {
    /// A session for an agent the engine is about to start (`task`: the worker's own).
    OpenSession {
        role: Role,
        task: Option<TaskId>,
        ttl: Duration,
        reply: Reply<SessionGrant>,
    },
    /// The session is over: revoke its token, record its cost and tokens.
    EndSession {
        session: SessionId,
        usage: Option<crate::store::sessions::Spent>,
        reply: Reply<bool>,
    },
    /// An event that changes no state (progress, a warning).
    Note { event: NewEvent, reply: Reply<()> },
    /// A task's new status (merged, back to the board, failed) with its event.
    TaskUpdate {
        task: TaskId,
        status: orchestrator_proto::TaskStatus,
        failure: Option<String>,
        event: NewEvent,
        reply: Reply<()>,
    },
    /// A worker was interrupted: its task goes back to pending, its attempt unspent, with
    /// where it left off (`None`: nothing to continue, it starts afresh).
    TaskInterrupted {
        task: TaskId,
        resume: Option<crate::store::sessions::WorkerPlace>,
        event: NewEvent,
        reply: Reply<()>,
    },
}

/// How engine work ended, for the actor to act on.
#[derive(Debug)]
pub enum Outcome {
    Planned(Planned),
    Executed(Executed),
    Reviewed(Reviewed),
}

/// Engine work's handle on its run.
#[derive(Clone)]
pub struct Port {
    tx: mpsc::Sender<Ask>,
}

impl Port {
    /// A port and the receiving end its run's actor answers from.
    pub fn new(capacity: usize) -> (Self, mpsc::Receiver<Ask>) {
        let (tx, rx) = mpsc::channel(capacity);
        (Self { tx }, rx)
    }

    /// Sends an ask built around a fresh reply channel and waits for the answer.
    pub async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Ask) -> Result<T, PortError> {
        let (tx, rx) = oneshot::channel();
        self.tx.send(make(tx)).await.map_err(|_| PortError::Gone)?;
        rx.await.map_err(|_| PortError::Gone)?
    }
}
