//! One actor per active run: the only code that changes that run's state.
//!
//! Others hold a [`RunHandle`] and send [`Command`]s over a bounded channel with a oneshot
//! reply. Every change is one SQLite transaction (the row plus the event that records it);
//! only after it commits is the event broadcast and the mirror rewritten.
//!
//! **Invariant:** the actor ends exactly when its run reaches a final status or the daemon
//! shuts down; a restarted daemon spawns a fresh actor from the row.
//!
//! This file holds the actor's loop, its commands and its engine work (starting and stopping
//! planning, execution and reviews). The rest, by concern: `verbs.rs` (pause, resume, cancel),
//! `cycle.rs` (the decisions between phases: plan review rounds, code review, the next cycle or
//! an escalation), `escalation.rs` (asking a human and the answer), `sessions.rs` (board
//! operations, opening and ending sessions), `tasks.rs` (the engine's task reports),
//! `publish.rs` (status changes, events, notifications, the mirror) and `usage.rs` (the usage
//! governor's pauses and resumes, and the budget).

mod attach;
mod behind;
mod command;
use behind::Job;
mod cycle;
mod escalation;
mod publish;
mod sessions;
mod spares;
mod tasks;
mod usage;
mod verbs;

use std::time::Duration;

use orchestrator_proto::{Level, Phase, RunStatus, TaskStatus};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::error::RunError;
use crate::board::{self, BoardError, Caller, Op, Role};
use crate::engine::EngineConfig;
use crate::engine::executor::{self, Executed};
use crate::engine::planner::{self, Planned};
use crate::engine::port::{Ask, Outcome, Port, PortError};
use crate::engine::review;
use crate::mcp::token;
use crate::mirror::Mirror;
use crate::store::reviews::ReviewKind;
use crate::store::{
    Db, EscalationRow, EventRow, NewEvent, RunRow, escalations, events, runs as run_rows, time_text,
};
use orchestrator_proto::{EscalationKind, EventKind};

/// How often the actor checks that the mirror is still there (it is recreated if deleted).
const MIRROR_CHECK: Duration = Duration::from_secs(2);
/// Queue depth of a run's command channel; senders wait when it is full.
const COMMAND_QUEUE: usize = 32;

/// How long a restored run's engine waits for the other runs' restores at most.
const RESTORE_BOUND: Duration = Duration::from_secs(2);
/// Events kept for slow `log --follow` readers before they fall back to the database.
const EVENT_BUFFER: usize = 256;

/// The most board calls that share one commit.
const GROUP_MAX: usize = 64;

/// A board call waiting in the actor's queue: who, what, and where the answer goes.
type BoardCall = (Caller, Op, command::Reply<Result<board::Answered, String>>);

pub use crate::engine::port::SessionGrant;
pub use command::{Command, RunHandle};

pub struct RunActor {
    run: RunRow,
    db: Db,
    mirror: Mirror,
    /// The mirror's writes behind the answer path.
    behind: behind::Behind,
    commands: mpsc::Receiver<Command>,
    /// A command taken from the queue while grouping board calls, handled next.
    held: Option<Command>,
    events: broadcast::Sender<EventRow>,
    shutdown: CancellationToken,
    engine: std::sync::Arc<EngineConfig>,
    /// The engine work's way to this actor, and this actor's end of it.
    port: Port,
    asks: mpsc::Receiver<Ask>,
    /// The engine work under way (planning, execution or a review), awaited for its outcome.
    work: Option<tokio::task::JoinHandle<Outcome>>,
    /// Cancels the running engine task (planning), if any.
    working: Option<CancellationToken>,
    /// Stops the executor's new dispatches (the usage grace period), if it is running.
    drain: Option<CancellationToken>,
    /// When running workers get interrupted during a usage pause.
    grace_until: Option<time::OffsetDateTime>,
    /// The user resumed over a usage hold at this time: older figures are not acted on.
    forced_at: Option<time::OffsetDateTime>,
    /// Why the last Codex review of this actor did not give a verdict, for *completed, not
    /// reviewed*.
    review_gap: Option<String>,
    /// Worktrees made while the plan is made and reviewed, for the execution's first workers.
    spares: Option<std::sync::Arc<executor::Spares>>,
    /// The handle's flag: set once the run's final status is committed.
    ended: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl RunActor {
    pub fn new(
        run: RunRow,
        db: Db,
        shutdown: CancellationToken,
        engine: std::sync::Arc<EngineConfig>,
    ) -> (Self, RunHandle) {
        let (ctx, crx) = mpsc::channel(COMMAND_QUEUE);
        let (etx, _) = broadcast::channel(EVENT_BUFFER);
        let mirror = Mirror::new(std::path::Path::new(&run.project));
        let (port, asks) = Port::new(COMMAND_QUEUE);
        let behind = behind::Behind::start(mirror.clone(), run.id.to_string());
        let ended = std::sync::Arc::default();
        let handle = RunHandle {
            commands: ctx,
            events: etx.clone(),
            ended: std::sync::Arc::clone(&ended),
        };
        let actor = Self {
            run,
            db,
            mirror,
            behind,
            commands: crx,
            held: None,
            events: etx,
            shutdown,
            engine,
            port,
            asks,
            work: None,
            working: None,
            drain: None,
            grace_until: None,
            forced_at: None,
            review_gap: None,
            spares: None,
            ended,
        };
        (actor, handle)
    }

    /// Runs until the run is final or the daemon shuts down. `restored` is true when the
    /// daemon restarted under a run that was already active.
    pub async fn run(mut self, restored: bool) {
        if restored {
            let note = NewEvent::info(
                EventKind::RunRestored,
                format!(
                    "Daemon restarted; run restored as {} ({})",
                    self.run.status, self.run.phase
                ),
            );
            if let Err(e) = self.record(note).await {
                tracing::error!(run = %self.run.id, cause = %e, "cannot record the restore");
            }
            self.rewrite_mirror(true).await;
            self.rewrite_task_files().await;
            // Engines (planners, re-attached workers) restart behind every run's restore.
            self.engine.reconcile.recorded(&self.run.id);
            self.engine.reconcile.restores_recorded(RESTORE_BOUND).await;
        } else {
            // A new run: the task files an earlier run of the project left go.
            self.behind.send(behind::Job::Prune(Default::default()));
        }
        let mut account = self.engine.usage.subscribe();
        self.advance().await;
        if self.working.is_none() {
            // Nothing to re-attach while the run waits (its workers were interrupted).
            self.engine.reconcile.done(&self.run.id);
        }
        let mut mirror_check = tokio::time::interval(MIRROR_CHECK);
        mirror_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        mirror_check.reset();
        while self.run.status.is_active() {
            if let Some(cmd) = self.held.take() {
                self.handle(cmd).await;
                continue;
            }
            tokio::select! {
                _ = self.shutdown.cancelled() => break,
                cmd = self.commands.recv() => match cmd {
                    Some(cmd) => self.handle(cmd).await,
                    None => break,
                },
                Some(ask) = self.asks.recv() => self.answer_engine(ask).await,
                done = wait(&mut self.work) => {
                    self.work = None;
                    match done {
                        Ok(outcome) => self.work_done(outcome).await,
                        Err(e) => {
                            // A panic in engine work: nothing more runs until the user acts.
                            tracing::error!(run = %self.run.id, cause = %e, "engine work failed");
                            self.work_ended().await;
                        }
                    }
                    if self.working.is_none() {
                        // The run waits (escalated, paused, stopped): no execution follows.
                        self.close_spares();
                    }
                }
                changed = account.changed() => {
                    if changed.is_ok() {
                        let a = account.borrow_and_update().clone();
                        self.check_usage(&a).await;
                    }
                }
                _ = mirror_check.tick() => {
                    if !self.mirror.root().join("state.json").exists() {
                        self.rewrite_mirror(true).await;
                    }
                    if let Some(why) = self.behind.take_refusal() {
                        self.say_refused(why).await;
                    }
                    let a = account.borrow().clone();
                    self.check_timers(&a).await;
                }
            }
        }
        self.close_spares();
        // Nothing queued for the mirror is left behind by a clean stop.
        self.behind.flush().await;
        tracing::debug!(run = %self.run.id, status = %self.run.status, "run actor stopped");
    }

    async fn handle(&mut self, cmd: Command) {
        match cmd {
            Command::Pause { reason, reply } => {
                let _ = reply.send(self.pause(reason).await);
            }
            Command::Resume {
                reason,
                env,
                change,
                reply,
            } => {
                let _ = reply.send(self.resume(reason, env, change).await);
            }
            Command::Cancel { reason, reply } => {
                let _ = reply.send(self.cancel(reason).await);
            }
            Command::Answer {
                escalation,
                answer,
                change,
                reply,
            } => {
                let _ = reply.send(self.answer(escalation, answer, change).await);
            }
            Command::Board { caller, op, reply } => {
                self.board_group((caller, op, reply)).await;
            }
            Command::Tell { tell, reply } => {
                let _ = reply.send(self.tell(tell).await);
            }
            Command::Attach { task, reply } => {
                let _ = reply.send(self.attach(task).await);
            }
            Command::Detach {
                task,
                session,
                reply,
            } => {
                let _ = reply.send(self.detach(task, session).await);
            }
            Command::OpenSession {
                role,
                task,
                ttl,
                reply,
            } => {
                let _ = reply.send(self.open_session(role, task, ttl).await);
            }
            Command::EndSession {
                session,
                usage,
                reply,
            } => {
                let _ = reply.send(self.end_session_and_check_budget(session, usage).await);
            }
            Command::Note { event, reply } => {
                let _ = reply.send(self.record(event).await);
            }
        }
    }

    /// Answers what its engine work asks (`crate::engine::port`).
    async fn answer_engine(&mut self, ask: Ask) {
        fn port<T>(r: Result<T, RunError>) -> Result<T, PortError> {
            r.map_err(|e| match e {
                RunError::ShuttingDown => PortError::Gone,
                e => PortError::Refused(e.to_string()),
            })
        }
        match ask {
            Ask::OpenSession {
                role,
                task,
                ttl,
                reply,
            } => {
                let _ = reply.send(port(self.open_session(role, task, ttl).await));
            }
            Ask::EndSession {
                session,
                usage,
                reply,
            } => {
                let ended = self.end_session_and_check_budget(session, usage).await;
                let _ = reply.send(port(ended));
            }
            Ask::Note { event, reply } => {
                let started = event.kind == EventKind::PlannerStarted;
                let _ = reply.send(port(self.record(event).await));
                if started {
                    // Its worktree is made: the spares do not hold its start up.
                    self.prepare_spares();
                }
            }
            Ask::TaskUpdate {
                task,
                status,
                failure,
                event,
                reply,
            } => {
                let _ = reply.send(port(self.task_update(task, status, failure, event).await));
            }
            Ask::TaskInterrupted {
                task,
                resume,
                event,
                reply,
            } => {
                let _ = reply.send(port(self.task_interrupted(task, resume, event).await));
            }
        }
    }

    /// Acts on how its engine work ended.
    async fn work_done(&mut self, outcome: Outcome) {
        let acted = match outcome {
            Outcome::Planned(o) => self.planner_done(o).await,
            Outcome::Executed(o) => self.execution_done(o).await,
            Outcome::Reviewed(o) => self.review_done(o).await,
        };
        if let Err(e) = acted {
            tracing::error!(run = %self.run.id, cause = %e, "cannot act on the engine's outcome");
        }
    }

    /// Starts the work the run's state calls for, in the phase it is in (a queued run that
    /// never started plans). Nothing happens when work is already under way or the run waits.
    async fn advance(&mut self) {
        if self.working.is_some()
            || !matches!(self.run.status, RunStatus::Queued | RunStatus::Running)
        {
            return;
        }
        // A run started (or resumed) while the account is over the threshold waits.
        let account = self.engine.usage.snapshot();
        if let Some(h) = self.usage_hold(&account) {
            if let Err(e) = self.hold_for_usage(h).await {
                tracing::error!(run = %self.run.id, cause = %e, "cannot pause for usage");
            }
            return;
        }
        match self.run.phase {
            Phase::Executing => self.start_execution().await,
            Phase::PlanReview => {
                self.start_work(Phase::PlanReview, "Codex reviews the plan")
                    .await
            }
            Phase::CodeReview => {
                self.start_work(Phase::CodeReview, "Codex reviews the code")
                    .await
            }
            _ => {
                if self.run.cycle == 0 {
                    self.run.cycle = 1;
                }
                self.start_work(Phase::Planning, "planning").await
            }
        }
    }

    async fn start_execution(&mut self) {
        self.start_work(Phase::Executing, "executing the plan")
            .await;
    }

    /// Moves the run to `phase` and starts the engine task for it (planner or executor), which
    /// reports back through this actor's handle.
    async fn start_work(&mut self, phase: Phase, reason: &str) {
        if let Err(e) = self
            .set_state(RunStatus::Running, phase, reason.into())
            .await
        {
            tracing::error!(run = %self.run.id, cause = %e, "cannot start {reason}");
            return;
        }
        // Workers outlive the daemon (they detach when it stops and are re-attached); planners
        // and reviewers stop with it and are simply run again.
        let cancel = if phase == Phase::Executing {
            CancellationToken::new()
        } else {
            self.shutdown.child_token()
        };
        self.working = Some(cancel.clone());
        let drain = CancellationToken::new();
        self.drain = Some(drain.clone());
        let forced = self.forced_at;
        let spares = self.spares_for(phase);
        let (me, db, cfg, run) = (
            self.port.clone(),
            self.db.clone(),
            self.engine.clone(),
            self.run.clone(),
        );
        if self.work.is_some() {
            tracing::error!(run = %self.run.id, "engine work started while other work runs");
        }
        self.work = Some(tokio::spawn(async move {
            if phase != Phase::Executing {
                // Planners and reviewers a previous daemon left running are stopped: this
                // work starts afresh (the executor re-attaches its workers instead).
                crate::engine::reap::reap(&me, &db, &run.id, cfg.started_at, &Default::default())
                    .await;
                cfg.reconcile.done(&run.id);
            }
            match phase {
                Phase::Executing => {
                    let (latch, id) = (cfg.reconcile.clone(), run.id.clone());
                    let steer = executor::Steer {
                        cancel,
                        drain,
                        forced_at: forced,
                        spares,
                    };
                    let outcome = executor::execute(me, db, cfg, run, steer).await;
                    // Also when it stopped before reconciling (no claude, no worktree).
                    latch.done(&id);
                    Outcome::Executed(outcome)
                }
                Phase::PlanReview | Phase::CodeReview => {
                    let kind = if phase == Phase::PlanReview {
                        ReviewKind::Plan
                    } else {
                        ReviewKind::Code
                    };
                    Outcome::Reviewed(review::review(me, db, cfg, run, kind, cancel).await)
                }
                _ => Outcome::Planned(planner::plan(me, db, cfg, run, cancel).await),
            }
        }));
    }

    async fn execution_done(&mut self, outcome: Executed) -> Result<(), RunError> {
        if !self.work_ended().await {
            return Ok(());
        }
        match outcome {
            Executed::Completed(summary) => self.after_execution(summary).await,
            Executed::Failed(reason) => {
                self.escalate(
                    EscalationKind::ExecutionBlocked,
                    None,
                    question("The run cannot go on", &reason, "What should change?"),
                    reason,
                )
                .await
            }
            Executed::Stopped => {
                // The executor stopped dispatching because the account is over its limit
                // (before this actor heard of it): pause the same way.
                let account = self.engine.usage.snapshot();
                if let Some(h) = self.usage_hold(&account) {
                    return self.hold_for_usage(h).await;
                }
                Ok(())
            }
        }
    }

    /// Stops engine work in progress (pause, cancel, escalation). The work stays recorded until
    /// it reports back (`work_ended`), so no second engine task for this run starts while the
    /// first winds down (a merge finishing, sessions stopping); a run resumed meanwhile starts
    /// again from `work_ended`.
    fn stop_work(&mut self) {
        if let Some(w) = &self.working {
            w.cancel();
        }
        self.drain = None;
    }

    /// Engine work ended; `true` when the outcome is to be acted on (the run is still
    /// running). A run queued meanwhile (resumed while its work wound down) starts again.
    async fn work_ended(&mut self) -> bool {
        self.working = None;
        self.drain = None;
        match self.run.status {
            RunStatus::Running => true,
            RunStatus::Queued => {
                self.advance().await;
                false
            }
            _ => false,
        }
    }

    async fn planner_done(&mut self, outcome: Planned) -> Result<(), RunError> {
        if !self.work_ended().await {
            return Ok(()); // paused or cancelled meanwhile
        }
        match outcome {
            Planned::Plan(version) => self.after_plan(version).await,
            Planned::Failed(reason) => {
                self.escalate(
                    EscalationKind::PlannerFailed,
                    None,
                    question(
                        "The planner could not produce a valid plan",
                        &reason,
                        "How should it proceed?",
                    ),
                    reason,
                )
                .await
            }
            Planned::Blocked(reason) => {
                self.escalate(
                    EscalationKind::SetupFailed,
                    None,
                    question("The run cannot go on", &reason, "What should change?"),
                    reason,
                )
                .await
            }
            Planned::Stopped => Ok(()),
        }
    }
}

fn reason_text(run: &RunRow) -> String {
    run.status_reason.clone().unwrap_or_default()
}

/// The engine work's outcome, or never when there is none.
async fn wait(
    work: &mut Option<tokio::task::JoinHandle<Outcome>>,
) -> Result<Outcome, tokio::task::JoinError> {
    match work {
        Some(h) => h.await,
        None => std::future::pending().await,
    }
}

/// An escalation's question: `what: reason. ask`, or, when the reason runs over several lines
/// (a gate's output), the reason whole on its own lines and the question after it.
fn question(what: &str, reason: &str, ask: &str) -> String {
    let reason = reason.trim_end();
    if reason.contains('\n') {
        format!("{what}: {reason}\n\n{ask}")
    } else {
        format!("{what}: {reason}. {ask}")
    }
}
