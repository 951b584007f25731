//! What others may ask of a run ([`Command`]) and the cheap handle they ask through
//! ([`RunHandle`]): a bounded command channel with a oneshot reply, and the run's event
//! broadcast.

#[allow(clippy::wildcard_imports)]
use super::*;

pub type Reply<T> = oneshot::Sender<Result<T, RunError>>;

/// What others may ask of a run.
pub enum Command {
    Pause {
        reason: Option<String>,
        reply: Reply<RunRow>,
    },
    Resume {
        reason: Option<String>,
        /// The resuming shell's environment for later sessions; stored only if it resumes.
        env: Option<orchestrator_proto::SessionEnv>,
        /// Commands to change for the rest of the run; applied only if it resumes.
        change: orchestrator_proto::OptionsChange,
        reply: Reply<RunRow>,
    },
    Cancel {
        reason: Option<String>,
        reply: Reply<RunRow>,
    },
    Answer {
        escalation: u64,
        answer: String,
        change: orchestrator_proto::OptionsChange,
        reply: Reply<EscalationRow>,
    },
    /// A person takes over a task's interrupted worker (`orchestrate attach`).
    Attach {
        task: crate::ids::TaskId,
        reply: Reply<(SessionGrant, crate::store::sessions::WorkerPlace)>,
    },
    /// The person is done with it.
    Detach {
        task: crate::ids::TaskId,
        session: crate::ids::SessionId,
        reply: Reply<orchestrator_proto::TaskStatus>,
    },
    /// A message from the user to a task's worker or to every worker (`orchestrate tell`).
    Tell {
        tell: orchestrator_proto::Tell,
        reply: Reply<orchestrator_proto::Told>,
    },
    /// A board operation from an MCP session; the inner `Err` is a refusal for the model.
    Board {
        caller: Caller,
        op: Op,
        reply: Reply<Result<board::Answered, String>>,
    },
    /// Registers a new agent session and its token (only the hash is stored).
    OpenSession {
        role: Role,
        task: Option<crate::ids::TaskId>,
        ttl: Duration,
        reply: Reply<SessionGrant>,
    },
    /// Ends a session and revokes its token, recording what it cost when known.
    EndSession {
        session: crate::ids::SessionId,
        usage: Option<crate::store::sessions::Spent>,
        reply: Reply<bool>,
    },
    /// Records an event that changes no state.
    Note { event: NewEvent, reply: Reply<()> },
}

/// A cheap handle to a live run actor.
#[derive(Clone)]
pub struct RunHandle {
    pub(super) commands: mpsc::Sender<Command>,
    pub(super) events: broadcast::Sender<EventRow>,
    /// Set by the actor once the run's final status is committed, before it answers: the
    /// handle leaves the registry only after the actor's last writes, later.
    pub(super) ended: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl RunHandle {
    /// Sends a command built around a fresh reply channel and waits for the answer.
    pub async fn ask<T>(&self, make: impl FnOnce(Reply<T>) -> Command) -> Result<T, RunError> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .send(make(tx))
            .await
            .map_err(|_| RunError::ShuttingDown)?;
        rx.await.map_err(|_| RunError::ShuttingDown)?
    }

    /// The run reached a final status (its actor is finishing).
    pub fn ended(&self) -> bool {
        self.ended.load(std::sync::atomic::Ordering::Acquire)
    }

    /// New events of this run from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<EventRow> {
        self.events.subscribe()
    }
}
