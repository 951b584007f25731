//! One actor per active run: the only code that changes that run's state.
//!
//! Others hold a [`RunHandle`] and send [`Command`]s over a bounded channel with a oneshot
//! reply. Every change is one SQLite transaction (the row plus the event that records it);
//! only after it commits is the event broadcast and the mirror rewritten.
//!
//! **Invariant:** the actor ends exactly when its run reaches a final status or the daemon
//! shuts down; a restarted daemon spawns a fresh actor from the row.
//!
//! `cycle.rs` holds the decisions between phases: plan review rounds, code review, the next
//! cycle or an escalation; `usage.rs` the usage governor's pauses, resumes and the budget.

mod cycle;
mod usage;

use std::time::Duration;

use orchestrator_proto::{Level, Phase, RunStatus, TaskStatus};
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use super::error::RunError;
use crate::board::{self, BoardError, Caller, Op, Role};
use crate::engine::EngineConfig;
use crate::engine::executor::{self, Executed};
use crate::engine::planner::{self, Planned};
use crate::engine::review::{self, Reviewed};
use crate::mcp::token;
use crate::mirror::Mirror;
use crate::store::reviews::ReviewKind;
use crate::store::{
    Db, EscalationRow, EventRow, NewEvent, RunRow, escalations, events, runs as run_rows, time_text,
};

/// How often the actor checks that the mirror is still there (it is recreated if deleted).
const MIRROR_CHECK: Duration = Duration::from_secs(2);
/// Queue depth of a run's command channel; senders wait when it is full.
const COMMAND_QUEUE: usize = 32;
/// Events kept for slow `log --follow` readers before they fall back to the database.
const EVENT_BUFFER: usize = 256;

type Reply<T> = oneshot::Sender<Result<T, RunError>>;

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
    /// A board operation from an MCP session; the inner `Err` is a refusal for the model.
    Board {
        caller: Caller,
        op: Op,
        reply: Reply<Result<serde_json::Value, String>>,
    },
    /// Registers a new agent session and its token (only the hash is stored).
    OpenSession {
        role: Role,
        task: Option<String>,
        ttl: Duration,
        reply: Reply<SessionGrant>,
    },
    /// Ends a session and revokes its token, recording what it cost when known.
    EndSession {
        session: String,
        usage: Option<(f64, u64, u64)>,
        reply: Reply<bool>,
    },
    /// Records an event that changes no state (engine progress).
    Note { event: NewEvent, reply: Reply<()> },
    /// The planning task finished.
    PlannerDone { outcome: Planned, reply: Reply<()> },
    /// The engine moves a task (merged, back to pending, failed), with the event that says why.
    TaskUpdate {
        task: String,
        status: TaskStatus,
        failure: Option<String>,
        event: NewEvent,
        reply: Reply<()>,
    },
    /// A worker was interrupted: its task goes back to pending, its attempt unspent, with where
    /// it left off (`None`: nothing to continue, it starts afresh).
    TaskInterrupted {
        task: String,
        resume: Option<String>,
        event: NewEvent,
        reply: Reply<()>,
    },
    /// The execution task finished.
    ExecutionDone { outcome: Executed, reply: Reply<()> },
    /// A Codex review finished.
    ReviewDone { outcome: Reviewed, reply: Reply<()> },
}

/// A new session's identity and its bearer token, shown once.
#[derive(Debug, Clone)]
pub struct SessionGrant {
    pub session: String,
    pub token: String,
    pub expires_at: time::OffsetDateTime,
}

/// A cheap handle to a live run actor.
#[derive(Clone)]
pub struct RunHandle {
    commands: mpsc::Sender<Command>,
    events: broadcast::Sender<EventRow>,
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

    /// New events of this run from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<EventRow> {
        self.events.subscribe()
    }
}

pub struct RunActor {
    run: RunRow,
    db: Db,
    mirror: Mirror,
    commands: mpsc::Receiver<Command>,
    events: broadcast::Sender<EventRow>,
    shutdown: CancellationToken,
    engine: std::sync::Arc<EngineConfig>,
    /// A handle to this actor, for the engine tasks it starts.
    me: RunHandle,
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
        let handle = RunHandle {
            commands: ctx,
            events: etx.clone(),
        };
        let actor = Self {
            run,
            db,
            mirror,
            commands: crx,
            events: etx,
            shutdown,
            engine,
            me: handle.clone(),
            working: None,
            drain: None,
            grace_until: None,
            forced_at: None,
            review_gap: None,
        };
        (actor, handle)
    }

    /// Runs until the run is final or the daemon shuts down. `restored` is true when the
    /// daemon restarted under a run that was already active.
    pub async fn run(mut self, restored: bool) {
        if restored {
            let note = NewEvent::info(
                "run_restored",
                format!(
                    "Daemon restarted; run restored as {} ({})",
                    self.run.status, self.run.phase
                ),
            );
            if let Err(e) = self.record(note).await {
                tracing::error!(run = %self.run.id, cause = %e, "cannot record the restore");
            }
            self.rewrite_mirror(true).await;
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
            tokio::select! {
                _ = self.shutdown.cancelled() => break,
                cmd = self.commands.recv() => match cmd {
                    Some(cmd) => self.handle(cmd).await,
                    None => break,
                },
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
                    let a = account.borrow().clone();
                    self.check_timers(&a).await;
                }
            }
        }
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
                let _ = reply.send(self.board(caller, op).await);
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
                let ended = self.end_session(session, usage).await;
                if ended.is_ok()
                    && let Err(e) = self.check_budget().await
                {
                    tracing::error!(run = %self.run.id, cause = %e, "cannot check the budget");
                }
                let _ = reply.send(ended);
            }
            Command::Note { event, reply } => {
                let _ = reply.send(self.record(event).await);
            }
            Command::PlannerDone { outcome, reply } => {
                let _ = reply.send(self.planner_done(outcome).await);
            }
            Command::TaskUpdate {
                task,
                status,
                failure,
                event,
                reply,
            } => {
                let _ = reply.send(self.task_update(task, status, failure, event).await);
            }
            Command::TaskInterrupted {
                task,
                resume,
                event,
                reply,
            } => {
                let _ = reply.send(self.task_interrupted(task, resume, event).await);
            }
            Command::ExecutionDone { outcome, reply } => {
                let _ = reply.send(self.execution_done(outcome).await);
            }
            Command::ReviewDone { outcome, reply } => {
                let _ = reply.send(self.review_done(outcome).await);
            }
        }
    }

    async fn pause(&mut self, reason: Option<String>) -> Result<RunRow, RunError> {
        match self.run.status {
            RunStatus::Queued | RunStatus::Running => {}
            RunStatus::Paused => {
                return Err(
                    RunError::conflict(format!("run {} is already paused", self.run.id))
                        .hint("resume it with `orchestrate resume`"),
                );
            }
            other => {
                return Err(RunError::conflict(format!(
                    "run {} is {other}; only a queued or running run can be paused",
                    self.run.id
                ))
                .hint("see `orchestrate escalations` for what it waits for"));
            }
        }
        let reason = reason.unwrap_or_else(|| "paused by the user".into());
        self.stop_work();
        self.set_status(RunStatus::Paused, reason).await
    }

    async fn resume(
        &mut self,
        reason: Option<String>,
        env: Option<orchestrator_proto::SessionEnv>,
        change: orchestrator_proto::OptionsChange,
    ) -> Result<RunRow, RunError> {
        // Validate first: a refused resume changes nothing (not even the sessions' environment).
        if !matches!(
            self.run.status,
            RunStatus::Escalated | RunStatus::Planned | RunStatus::Paused
        ) {
            return Err(RunError::conflict(format!(
                "run {} is {}, not paused; nothing to resume",
                self.run.id, self.run.status
            ))
            .hint("`orchestrate status` shows what it is doing"));
        }
        let options = change.applied(&self.run.options);
        crate::runs::submit::check_options(&options)?;
        self.change_options(options, &change).await?;
        if let Some(env) = env {
            let id = self.run.id.clone();
            self.db
                .call(move |c| run_rows::set_env(c, &id, &env))
                .await?;
        }
        if self.run.status == RunStatus::Escalated {
            let reason = reason.unwrap_or_else(|| "resumed by the user without an answer".into());
            self.continue_after_escalation(reason).await?;
            return Ok(self.run.clone());
        }
        if self.run.status == RunStatus::Planned {
            let reason = reason.unwrap_or_else(|| "resumed by the user: executing the plan".into());
            self.set_state(RunStatus::Queued, Phase::Executing, reason)
                .await?;
            self.advance().await;
            return Ok(self.run.clone());
        }
        let reason = match self.run.hold_kind.as_deref() {
            Some("usage") => {
                // The user overrides the current figures; newer ones are acted on again.
                self.forced_at = Some(time::OffsetDateTime::now_utc());
                reason.unwrap_or_else(|| "resumed by the user before the usage window reset".into())
            }
            _ => reason.unwrap_or_else(|| "resumed by the user".into()),
        };
        self.clear_hold();
        self.set_status(RunStatus::Queued, reason).await?;
        self.advance().await;
        Ok(self.run.clone())
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
        let (me, db, cfg, run) = (
            self.me.clone(),
            self.db.clone(),
            self.engine.clone(),
            self.run.clone(),
        );
        tokio::spawn(async move {
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
                    let outcome =
                        executor::execute(me.clone(), db, cfg, run, cancel, drain, forced).await;
                    // Also when it stopped before reconciling (no claude, no worktree).
                    latch.done(&id);
                    let _ = me
                        .ask(|reply| Command::ExecutionDone { outcome, reply })
                        .await;
                }
                Phase::PlanReview | Phase::CodeReview => {
                    let kind = if phase == Phase::PlanReview {
                        ReviewKind::Plan
                    } else {
                        ReviewKind::Code
                    };
                    let outcome = review::review(me.clone(), db, cfg, run, kind, cancel).await;
                    let _ = me.ask(|reply| Command::ReviewDone { outcome, reply }).await;
                }
                _ => {
                    let outcome = planner::plan(me.clone(), db, cfg, run, cancel).await;
                    let _ = me
                        .ask(|reply| Command::PlannerDone { outcome, reply })
                        .await;
                }
            }
        });
    }

    async fn execution_done(&mut self, outcome: Executed) -> Result<(), RunError> {
        if !self.work_ended().await {
            return Ok(());
        }
        match outcome {
            Executed::Completed(summary) => self.after_execution(summary).await,
            Executed::Failed(reason) => {
                self.escalate(
                    "execution_blocked",
                    None,
                    format!("The run cannot go on: {reason}. What should change?"),
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

    async fn task_update(
        &mut self,
        task: String,
        status: TaskStatus,
        failure: Option<String>,
        event: NewEvent,
    ) -> Result<(), RunError> {
        self.change_task(task, event, move |tx, run, task, at| {
            crate::store::board::set_task_status(tx, run, task, status, failure.as_deref(), at)
        })
        .await
    }

    async fn task_interrupted(
        &mut self,
        task: String,
        resume: Option<String>,
        event: NewEvent,
    ) -> Result<(), RunError> {
        self.change_task(task, event, move |tx, run, task, at| {
            crate::store::board::interrupt_task(tx, run, task, resume.as_deref(), at).map(drop)
        })
        .await
    }

    /// One engine change to a task: the change and its event in one transaction, then the
    /// event broadcast and the task's mirror file rewritten.
    async fn change_task(
        &mut self,
        task: String,
        event: NewEvent,
        change: impl FnOnce(
            &rusqlite::Transaction<'_>,
            &str,
            &str,
            time::OffsetDateTime,
        ) -> Result<(), crate::store::StoreError>
        + Send
        + 'static,
    ) -> Result<(), RunError> {
        let (run, at) = (self.run.id.clone(), time_text::now());
        let (row, e) = self
            .db
            .call(move |c| {
                let tx = c.transaction()?;
                change(&tx, &run, &task, at)?;
                let e = events::append(&tx, &run, at, event)?;
                let row = crate::store::board::task(&tx, &run, &task)?;
                tx.commit()?;
                Ok((row, e))
            })
            .await?;
        self.published(vec![e]).await;
        if let Some(t) = row
            && let Err(e) = self.mirror.write_task(&t.id, &board::task_json(&t)).await
        {
            tracing::warn!(run = %self.run.id, cause = %e, "cannot mirror a task");
        }
        Ok(())
    }

    /// Stops the run for a human: records a blocking escalation, winds down running sessions,
    /// and writes `.orchestrator/escalation.json`. `answer` or `resume` continues the run.
    async fn escalate(
        &mut self,
        kind: &'static str,
        task: Option<String>,
        question: String,
        evidence: String,
    ) -> Result<(), RunError> {
        self.stop_work();
        let at = time_text::now();
        let new = crate::store::NewEscalation {
            run_id: self.run.id.clone(),
            task_id: task,
            kind: kind.into(),
            question: question.clone(),
            context: Some(evidence),
            blocking: true,
            at,
        };
        let esc = self.db.call(move |c| escalations::insert(c, &new)).await?;
        // The file first: whoever sees the run escalated finds it.
        self.write_escalation_file().await;
        self.set_status(
            RunStatus::Escalated,
            format!("waiting for you: escalation {} — answer with `orchestrate answer {} \"<guidance>\"`", esc.id, esc.id),
        )
        .await?;
        Ok(())
    }

    /// `.orchestrator/escalation.json`: the pending blocking escalations, or no file.
    async fn write_escalation_file(&self) {
        let (id, project) = (self.run.id.clone(), self.run.project.clone());
        let pending = self
            .db
            .call(move |c| {
                Ok(escalations::list(c, Some(&project), false)?
                    .into_iter()
                    .filter(|e| e.run_id == id && e.blocking)
                    .collect::<Vec<_>>())
            })
            .await
            .unwrap_or_default();
        let path = self.mirror.root().join("escalation.json");
        if pending.is_empty() {
            let _ = tokio::fs::remove_file(&path).await;
            return;
        }
        let body = serde_json::json!({
            "run_id": self.run.id,
            "feature": self.run.feature,
            "escalations": pending.iter().map(crate::wire::escalation).collect::<Vec<_>>(),
            "options": ["orchestrate answer <id> \"<guidance>\" (the run resumes with it)",
                        "orchestrate resume (continue without an answer)",
                        "orchestrate cancel"],
        });
        let mut bytes = serde_json::to_vec_pretty(&body).unwrap_or_default();
        bytes.push(b'\n');
        if let Err(e) = crate::mirror::write_atomic(&path, &bytes).await {
            tracing::warn!(run = %self.run.id, cause = %e, "cannot write escalation.json");
        }
    }

    /// Continues an escalated run: every unmerged task gets a fresh set of attempts, and the
    /// engine picks up where the run stopped (planning or executing).
    async fn continue_after_escalation(&mut self, reason: String) -> Result<(), RunError> {
        let id = self.run.id.clone();
        let at = time_text::now();
        self.db
            .call(move |c| crate::store::board::fresh_attempts(c, &id, at))
            .await?;
        let phase = match self.run.phase {
            Phase::Executing => Phase::Executing,
            // Escalated after a code review: the guidance goes into another cycle.
            Phase::CodeReview => {
                self.run.cycle += 1;
                Phase::Planning
            }
            _ => Phase::Planning,
        };
        self.set_state(RunStatus::Queued, phase, reason).await?;
        self.write_escalation_file().await;
        self.advance().await;
        Ok(())
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
                    "planner_failed",
                    None,
                    format!("The planner could not produce a valid plan: {reason}. How should it proceed?"),
                    reason,
                )
                .await
            }
            Planned::Blocked(reason) => {
                self.escalate(
                    "setup_failed",
                    None,
                    format!("The run cannot go on: {reason}. What should change?"),
                    reason,
                )
                .await
            }
            Planned::Stopped => Ok(()),
        }
    }

    async fn cancel(&mut self, reason: Option<String>) -> Result<RunRow, RunError> {
        let reason = reason.unwrap_or_else(|| "cancelled by the user".into());
        let branch = self.run.branch.clone();
        self.stop_work();
        self.clear_hold();
        let row = self.set_status(RunStatus::Cancelled, reason).await?;
        self.record(NewEvent::info(
            "branch_kept",
            format!("Branch {branch} is kept with whatever work it holds; delete it with `git branch -D {branch}` if unwanted"),
        ))
        .await?;
        Ok(row)
    }

    /// Keeps `options` (already checked) as the run's from now on, and says what changed.
    async fn change_options(
        &mut self,
        options: orchestrator_proto::RunOptions,
        change: &orchestrator_proto::OptionsChange,
    ) -> Result<(), RunError> {
        if change.is_none() {
            return Ok(());
        }
        let (id, o) = (self.run.id.clone(), options.clone());
        self.db
            .call(move |c| run_rows::set_options(c, &id, &o))
            .await?;
        let said =
            |c: &Option<String>| c.as_deref().map_or("none".to_owned(), |c| format!("`{c}`"));
        let mut parts = Vec::new();
        if change.gate.is_some() {
            parts.push(format!("gate {}", said(&options.gate)));
        }
        if change.setup.is_some() {
            parts.push(format!("setup {}", said(&options.setup)));
        }
        if change.gate_timeout_secs.is_some() {
            parts.push(format!("gate timeout {}s", options.gate_timeout_secs));
        }
        self.run.options = options;
        self.record(NewEvent::info(
            "options_changed",
            format!("From now on: {}", parts.join(", ")),
        ))
        .await?;
        Ok(())
    }

    async fn answer(
        &mut self,
        id: u64,
        answer: String,
        change: orchestrator_proto::OptionsChange,
    ) -> Result<EscalationRow, RunError> {
        let options = change.applied(&self.run.options);
        crate::runs::submit::check_options(&options)?;
        let run_id = self.run.id.clone();
        let at = time_text::now();
        let (row, event, message) = self
            .db
            .call(move |c| {
                let tx = c.transaction()?;
                let Some(existing) = escalations::get(&tx, id)? else {
                    return Ok(Err(RunError::not_found(format!("no escalation {id}"))));
                };
                if existing.answer.is_some() {
                    return Ok(Err(RunError::conflict(format!(
                        "escalation {id} was already answered"
                    ))
                    .hint("`orchestrate escalations --all` shows the answer")));
                }
                escalations::answer(&tx, id, &answer, at)?;
                // The asker learns the answer from its messages.
                let (to_kind, to) = match &existing.task_id {
                    Some(t) => ("task", Some(t.as_str())),
                    None => ("all", None),
                };
                let message = crate::store::board::insert_message(
                    &tx,
                    &run_id,
                    None,
                    to_kind,
                    to,
                    &format!(
                        "Answer to escalation {id} (\"{}\"): {answer}",
                        existing.question.lines().next().unwrap_or("").trim()
                    ),
                    at,
                )?;
                let event = events::append(
                    &tx,
                    &run_id,
                    at,
                    NewEvent::info("escalation_answered", format!("Escalation {id} answered"))
                        .with_data(serde_json::json!({ "escalation": id })),
                )?;
                let row = escalations::get(&tx, id)?;
                tx.commit()?;
                Ok(Ok((row, event, message)))
            })
            .await??;
        self.published(vec![event]).await;
        self.change_options(options, &change).await?;
        self.rewrite_mirror(false).await;
        if let Err(e) = self
            .mirror
            .append_messages(&[board::message_json(&message)])
            .await
        {
            tracing::warn!(run = %self.run.id, cause = %e, "cannot mirror the answer's message");
        }
        if self.run.status == RunStatus::Escalated {
            let (rid, project) = (self.run.id.clone(), self.run.project.clone());
            let still = self
                .db
                .call(move |c| {
                    Ok(escalations::list(c, Some(&project), false)?
                        .into_iter()
                        .any(|e| e.run_id == rid && e.blocking))
                })
                .await?;
            if !still {
                self.continue_after_escalation(format!(
                    "escalation {id} answered; continuing with the guidance"
                ))
                .await?;
            }
        } else {
            self.write_escalation_file().await;
        }
        row.ok_or_else(|| RunError::not_found(format!("no escalation {id}")))
    }

    async fn board(
        &mut self,
        caller: Caller,
        op: Op,
    ) -> Result<Result<serde_json::Value, String>, RunError> {
        let run = self.run.clone();
        let applied = self
            .db
            .call(move |c| Ok(board::apply(c, &run, &caller, op)))
            .await?;
        let a = match applied {
            Ok(a) => a,
            Err(BoardError::Refused(m)) => return Ok(Err(m)),
            Err(BoardError::Store(e)) => return Err(e.into()),
        };
        self.published(a.events).await;
        if let Some(esc) = a.blocking_escalation {
            // A worker cannot go on without a human: the run waits for the answer.
            self.stop_work();
            self.write_escalation_file().await;
            if let Err(e) = self
                .set_status(
                    RunStatus::Escalated,
                    format!("waiting for you: escalation {esc} — answer with `orchestrate answer {esc} \"<guidance>\"`"),
                )
                .await
            {
                tracing::error!(run = %self.run.id, cause = %e, "cannot escalate");
            }
        }
        let mirrored = async {
            for t in &a.tasks {
                self.mirror.write_task(&t.id, &board::task_json(t)).await?;
            }
            let lines: Vec<_> = a.messages.iter().map(board::message_json).collect();
            self.mirror.append_messages(&lines).await?;
            if let Some((version, plan)) = &a.plan {
                self.mirror.write_plan(*version, plan).await?;
            }
            for t in &a.removed {
                self.mirror.remove_task(t).await?;
            }
            std::io::Result::Ok(())
        };
        if let Err(e) = mirrored.await {
            tracing::warn!(run = %self.run.id, cause = %e, "cannot mirror a board change; SQLite has it");
        }
        Ok(Ok(a.reply))
    }

    async fn open_session(
        &mut self,
        role: Role,
        task: Option<String>,
        ttl: Duration,
    ) -> Result<SessionGrant, RunError> {
        let (token, hash) = token::mint();
        let session = format!("s-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let at = time_text::now();
        let expires_at = at + ttl;
        let (run, s, t) = (self.run.id.clone(), session.clone(), task.clone());
        let event = self
            .db
            .call(move |c| {
                let tx = c.transaction()?;
                if let Some(t) = &t
                    && !crate::store::board::task_exists(&tx, &run, t)?
                {
                    return Ok(Err(RunError::not_found(format!(
                        "run {run} has no task {t}"
                    ))));
                }
                let assigned = match &t {
                    Some(t) if role == Role::Worker => {
                        crate::store::board::assign_task(&tx, &run, t, &s, at)?
                    }
                    _ => false,
                };
                crate::store::board::insert_session(
                    &tx,
                    &crate::store::board::NewSession {
                        id: &s,
                        run_id: &run,
                        role: role.as_str(),
                        task_id: t.as_deref(),
                        agent: if role == Role::Reviewer {
                            "codex"
                        } else {
                            "claude"
                        },
                        token_hash: &hash,
                        expires_at,
                        at,
                    },
                )?;
                let e = events::append(
                    &tx,
                    &run,
                    at,
                    NewEvent::info(
                        "session_opened",
                        format!("Session {s} opened ({})", role.as_str()),
                    )
                    .with_data(
                        serde_json::json!({ "session": s, "role": role.as_str(), "task": t }),
                    ),
                )?;
                let task_row = match (&t, assigned) {
                    (Some(t), true) => crate::store::board::task(&tx, &run, t)?,
                    _ => None,
                };
                tx.commit()?;
                Ok(Ok((e, task_row)))
            })
            .await??;
        let (event, task_row) = event;
        self.published(vec![event]).await;
        if let Some(t) = task_row
            && let Err(e) = self.mirror.write_task(&t.id, &board::task_json(&t)).await
        {
            tracing::warn!(run = %self.run.id, cause = %e, "cannot mirror a task");
        }
        Ok(SessionGrant {
            session,
            token,
            expires_at,
        })
    }

    async fn end_session(
        &mut self,
        session: String,
        usage: Option<(f64, u64, u64)>,
    ) -> Result<bool, RunError> {
        let (run, s) = (self.run.id.clone(), session.clone());
        let at = time_text::now();
        let ended = self
            .db
            .call(move |c| {
                let tx = c.transaction()?;
                let Some(row) = crate::store::board::session(&tx, &s)?.filter(|r| r.run_id == run)
                else {
                    return Ok(Err(RunError::not_found(format!(
                        "run {run} has no session {s}"
                    ))));
                };
                let ended = crate::store::board::end_session(&tx, &row.id, at)?;
                if let Some((cost, input, output)) = usage {
                    crate::store::board::set_session_usage(&tx, &row.id, cost, input, output)?;
                }
                let e = if ended {
                    Some(events::append(
                        &tx,
                        &run,
                        at,
                        NewEvent::info(
                            "session_ended",
                            format!("Session {s} ended; its token is revoked"),
                        ),
                    )?)
                } else {
                    None
                };
                tx.commit()?;
                Ok(Ok((ended, e)))
            })
            .await??;
        self.published(ended.1.into_iter().collect()).await;
        self.engine.activity.forget(&session);
        Ok(ended.0)
    }

    /// Moves the run to `status`, recording why, in one transaction.
    async fn set_status(&mut self, status: RunStatus, reason: String) -> Result<RunRow, RunError> {
        let phase = self.run.phase;
        self.set_state(status, phase, reason).await
    }

    /// Moves the run to `status` and `phase`, recording why, in one transaction.
    async fn set_state(
        &mut self,
        status: RunStatus,
        phase: Phase,
        reason: String,
    ) -> Result<RunRow, RunError> {
        let mut next = self.run.clone();
        next.phase = phase;
        let at = time_text::now();
        let from = next.status;
        next.status = status;
        next.status_reason = Some(reason.clone());
        next.updated_at = at;
        if !status.is_active() {
            next.finished_at = Some(at);
        }
        let row = next.clone();
        let event = NewEvent {
            level: Level::Info,
            kind: "status_changed",
            message: if from == status {
                format!("Run {}: {} ({reason})", next.id, next.phase)
            } else {
                format!("Run {}: {from} → {status} ({reason})", next.id)
            },
            data: serde_json::json!({ "from": from, "to": status, "reason": reason }),
        };
        let event = self
            .db
            .call(move |c| {
                let tx = c.transaction()?;
                run_rows::update(&tx, &row)?;
                let e = events::append(&tx, &row.id, at, event)?;
                tx.commit()?;
                Ok(e)
            })
            .await?;
        self.run = next;
        self.published(vec![event]).await;
        if self.engine.notifications && status != from {
            let what = match status {
                RunStatus::Escalated => Some("needs you"),
                RunStatus::Paused => Some("is paused"),
                RunStatus::Completed if self.run.unreviewed.is_some() => {
                    Some("is complete, not reviewed")
                }
                RunStatus::Completed => Some("is complete"),
                RunStatus::Failed => Some("failed"),
                _ => None,
            };
            if let Some(what) = what {
                crate::notify::send(
                    &format!("orchestrator: run {what}"),
                    &format!(
                        "{} — {}",
                        self.run.feature.lines().next().unwrap_or(""),
                        reason_text(&self.run)
                    ),
                );
            }
        }
        self.rewrite_mirror(false).await;
        Ok(self.run.clone())
    }

    /// Appends an event that changes no state.
    async fn record(&mut self, event: NewEvent) -> Result<(), RunError> {
        let id = self.run.id.clone();
        let at = time_text::now();
        let e = self
            .db
            .call(move |c| events::append(c, &id, at, event))
            .await?;
        self.published(vec![e]).await;
        Ok(())
    }

    /// Broadcasts committed events and appends them to the mirror's log.
    async fn published(&self, events: Vec<EventRow>) {
        for e in &events {
            tracing::info!(run = %self.run.id, kind = %e.kind, "{}", e.message);
            let _ = self.events.send(e.clone());
        }
        if !self.mirror.root().join("state.json").exists() {
            // The mirror was deleted: rebuild all of it, whole log included, from SQLite.
            self.rewrite_mirror(true).await;
            return;
        }
        if let Err(e) = self.mirror.append_log(&events).await {
            tracing::warn!(run = %self.run.id, cause = %e, "cannot append to the mirror's log");
            self.mirror_refused(&e).await;
        }
    }

    /// A link in the mirror's way: said once in the run's log (the run goes on; SQLite holds
    /// everything, and the mirror is written again once the link is gone).
    async fn mirror_refused(&self, e: &std::io::Error) {
        if !self.mirror.first_refusal(e) {
            return;
        }
        let (id, at) = (self.run.id.clone(), time_text::now());
        let event = NewEvent {
            level: orchestrator_proto::Level::Warn,
            ..NewEvent::info(
                "mirror_refused",
                format!("The mirror stopped writing into the project: {e}; the run goes on"),
            )
        };
        if let Ok(row) = self
            .db
            .call(move |c| events::append(c, &id, at, event))
            .await
        {
            let _ = self.events.send(row);
        }
    }

    /// Rewrites `state.json` and `context.md`; with `log`, also the whole log from SQLite.
    async fn rewrite_mirror(&self, log: bool) {
        let id = self.run.id.clone();
        let project = self.run.project.clone();
        let loaded = self
            .db
            .call(move |c| {
                let answered: Vec<_> = escalations::list(c, Some(&project), true)?
                    .into_iter()
                    .filter(|e| e.run_id == id && e.answer.is_some())
                    .collect();
                let all = if log {
                    events::read(c, &id, 0, None)?
                } else {
                    Vec::new()
                };
                // Fresh, so state.json carries the current task and cost counts.
                let row = run_rows::get(c, &id)?;
                Ok((answered, all, row))
            })
            .await;
        let result = match loaded {
            Ok((answered, all, row)) => {
                let row = row.unwrap_or_else(|| self.run.clone());
                let mut r = self.mirror.write_run(&row, &answered).await;
                if r.is_ok() && log {
                    r = self.mirror.rewrite_log(&all).await;
                }
                r
            }
            Err(e) => Err(std::io::Error::other(e)),
        };
        if let Err(e) = result {
            tracing::warn!(run = %self.run.id, dir = %self.mirror.root().display(), cause = %e,
                "cannot write the mirror; SQLite still holds the run");
            self.mirror_refused(&e).await;
        }
    }
}

fn reason_text(run: &RunRow) -> String {
    run.status_reason.clone().unwrap_or_default()
}
