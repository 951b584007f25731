//! The scheduling loop: read the board, finish what needs finishing, dispatch what is ready,
//! wait for a worker to end (or a retry to come due, or a pause, or a daemon stop), and deal
//! with the worker that ended. One [`Schedule`] per execution owns every piece of loop state;
//! what it knows of a task beyond the board (retries and their waits) is one [`Waits`] slot
//! per task id, not parallel maps.
//!
//! **Invariants:** never more than `--concurrency` workers, never two at once whose declared
//! files overlap; no new worker while the run drains, is paused, has a failed task, or the
//! account is over its usage threshold; a task out of attempts ends execution only once every
//! other worker has ended and been merged.

use std::collections::{HashMap, HashSet};

use futures_util::future::join_all;
use orchestrator_proto::{EventKind, Level, TaskStatus};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::*;

/// What the loop remembers of one task between its workers.
#[derive(Debug, Default)]
pub(super) struct Waits {
    /// Sessions that failed because the model API was unavailable (not attempts).
    transient: u32,
    /// Times its worker could not be started (a worktree git refused).
    undispatched: u32,
    /// Not dispatched again before this.
    not_before: Option<Instant>,
    /// Its model family's 7-day window holds it until then (said once in the log).
    held_until: Option<Option<time::OffsetDateTime>>,
}

/// The loop's state for one execution of a run.
pub(super) struct Schedule {
    pub(super) ctx: std::sync::Arc<Ctx>,
    /// The run's pause/cancel token.
    pub(super) cancel: CancellationToken,
    /// Stops new dispatches, lets running workers finish (the usage governor's grace).
    pub(super) drain: CancellationToken,
    /// The daemon stops: workers are left running for the next daemon.
    pub(super) stopping: CancellationToken,
    /// The user resumed before the usage window reset: figures before this are overridden.
    pub(super) forced_at: Option<time::OffsetDateTime>,
    pub(super) running: JoinSet<Finished>,
    /// Running workers' tasks with their declared files.
    pub(super) busy: HashMap<TaskId, Vec<String>>,
    /// Workers whose sessions ended, being finished (merged) off the dispatch path.
    pub(super) finishing: super::finishing::Finishing,
    pub(super) waits: HashMap<TaskId, Waits>,
    /// Setups that failed since the last one that passed.
    pub(super) setup_streak: u32,
}

/// What reading the board decided.
enum Board {
    /// Something changed on it (an orphan finished): read it again.
    Again,
    /// Execution is over.
    Over(Executed),
    /// Wait for a worker or a retry; `held` says no new worker may start.
    Wait { held: bool },
}

impl Schedule {
    /// Runs to the end of the plan, a stop, or a failure.
    pub(super) async fn run(mut self) -> Executed {
        let done = self.run_loop().await;
        // A stopping daemon leaves its spares to the next one (removed when it starts).
        if !self.stopping.is_cancelled() {
            self.ctx.spares.close().await;
        }
        self.finishing.settle().await;
        merge::tidy(&self.ctx).await;
        done
    }

    async fn run_loop(&mut self) -> Executed {
        loop {
            if let Some(why) = self.ctx.blocked() {
                let (ctx, cancel) = (&self.ctx, &self.cancel);
                if let Some(done) =
                    wind_down(ctx, cancel, &mut self.running, &mut self.busy, why).await
                {
                    return done;
                }
                continue;
            }
            let held = match self.board().await {
                Board::Again => continue,
                Board::Over(done) => return done,
                Board::Wait { held } => held,
            };
            // After the dispatch: the workers a merge made ready take the worktree lock first.
            self.finishing.tidy();
            // After dispatching: a task that could not start just now waits its turn too.
            let wake = self.waits.values().filter_map(|w| w.not_before).min();
            let idle = self.running.is_empty() && self.finishing.is_empty();
            if idle && held {
                return Executed::Stopped;
            }
            if idle && wake.is_none() {
                return Executed::Failed(
                    "no task can start: every pending task waits on one that is not merged".into(),
                );
            }
            let ended = tokio::select! {
                _ = self.cancel.cancelled() => {
                    // Sessions see the same token and stop their process groups; their tasks
                    // continue where they stopped when the run resumes.
                    while let Some(done) = self.running.join_next().await {
                        if let Ok(f) = done {
                            interrupted(&self.ctx, f, "the run was paused", RESUMES).await;
                        }
                    }
                    return Executed::Stopped;
                }
                _ = self.stopping.cancelled() => {
                    // The daemon stops: sessions are left running (they detach at once) and
                    // the next daemon re-attaches them; nothing about them is recorded here.
                    while self.running.join_next().await.is_some() {}
                    return Executed::Stopped;
                }
                _ = tokio::time::sleep_until(wake.unwrap_or_else(Instant::now)), if wake.is_some() => continue,
                // A merge landed (its dependents may be ready) or a task went back.
                () = self.finishing.next(), if !self.finishing.is_empty() => continue,
                d = self.running.join_next(), if !self.running.is_empty() => d,
            };
            let Some(Ok(f)) = ended else { continue };
            if let Some(done) = self.ended(f).await {
                return done;
            }
        }
    }

    /// Reads the board: orphans finished, the run's end recognised, ready tasks dispatched.
    async fn board(&mut self) -> Board {
        let now = Instant::now();
        for w in self.waits.values_mut() {
            w.not_before = w.not_before.filter(|at| *at > now);
        }
        let all = tasks(&self.ctx.db, &self.ctx.run.id).await;
        // Completed by a worker nobody follows (one a crash left without a recorded process
        // finished after the restart): merged from where it worked.
        let stopped = self.cancel.is_cancelled() || self.stopping.is_cancelled();
        let orphans: Vec<&TaskRow> = all
            .iter()
            .filter(|t| !stopped && t.status == TaskStatus::Done && !self.busy.contains_key(&t.id))
            .filter(|t| !self.finishing.holds(&t.id))
            .collect();
        if !orphans.is_empty() {
            for t in orphans {
                finish_orphan(&self.ctx, t).await;
            }
            return Board::Again;
        }
        // A task out of attempts ends execution (the run asks a human), but only once the
        // other workers have finished and their work is merged: one task's failure never
        // stops another's worker.
        let failed = all.iter().find(|t| t.status == TaskStatus::Failed);
        if let Some(t) = failed
            && self.running.is_empty()
            && self.finishing.is_empty()
        {
            return Board::Over(Executed::Failed(format!(
                "task {} failed: {}",
                t.id,
                t.failure.as_deref().unwrap_or("no reason given")
            )));
        }
        if !all.is_empty()
            && all.iter().all(|t| t.status == TaskStatus::Merged)
            && self.finishing.is_empty()
        {
            return Board::Over(self.completed(all.len()).await);
        }
        // No new worker while the account is over its limit (the actor pauses the run).
        let held = self.drain.is_cancelled()
            || stopped
            || failed.is_some()
            || crate::usage::hold_since(
                &self.ctx.cfg.usage.snapshot(),
                &crate::usage::Policy::of(&self.ctx.run.options),
                self.ctx.cfg.usage_margin,
                self.forced_at,
            )
            .is_some();
        if !held {
            self.dispatch_ready(&all).await;
        }
        // A spare worktree is kept while a task waits to start on a new one.
        let waiting = all.iter().any(|t| {
            t.status == TaskStatus::Pending && t.resume.is_none() && !self.busy.contains_key(&t.id)
        });
        self.ctx.spares.want(waiting && !held);
        Board::Wait { held }
    }

    /// Every task merged: the integration worktree is clean and goes, and the run's worktree
    /// folder with it once nothing else is in it.
    async fn completed(&self, tasks: usize) -> Executed {
        let ctx = &self.ctx;
        // Merged tasks' leftovers first, then the integration worktree (no merge holds it:
        // every finish is done); no spare is wanted any more.
        ctx.spares.close().await;
        merge::tidy(ctx).await;
        let held = ctx.integration_lock.lock().await;
        let _ = git::worktree_remove(&ctx.project, &ctx.integration, false).await;
        drop(held);
        repair_worktrees(ctx).await;
        if let Some(dir) = ctx.integration.parent() {
            let _ = tokio::fs::remove_dir(dir).await;
        }
        Executed::Completed(format!(
            "all {} merged into {}",
            orchestrator_proto::words::count(tasks as u64, "task"),
            ctx.run.branch
        ))
    }

    /// Starts workers for ready tasks (pending, dependencies merged, not waiting out a retry),
    /// longest critical path first, up to the concurrency, skipping any whose files overlap a
    /// running worker's.
    async fn dispatch_ready(&mut self, all: &[TaskRow]) {
        let merged: HashSet<&str> = all
            .iter()
            .filter(|t| t.status == TaskStatus::Merged)
            .map(|t| t.id.as_str())
            .collect();
        let cp = critical_path(all);
        let waiting = |id: &str| self.waits.get(id).is_some_and(|w| w.not_before.is_some());
        let mut ready: Vec<&TaskRow> = all
            .iter()
            .filter(|t| t.status == TaskStatus::Pending && !self.busy.contains_key(&t.id))
            .filter(|t| !self.finishing.holds(&t.id))
            .filter(|t| !waiting(&t.id))
            .filter(|t| t.depends_on.iter().all(|d| merged.contains(d.as_str())))
            .collect();
        ready.sort_by_key(|t| std::cmp::Reverse(cp.get(t.id.as_str()).copied().unwrap_or(0)));
        let account = self.ctx.cfg.usage.snapshot();
        super::route::refresh_outlook(&self.ctx, &account).await;
        let mut chosen = Vec::new();
        for t in ready {
            if self.busy.len() >= self.ctx.run.options.concurrency as usize {
                break;
            }
            if self.busy.values().flatten().any(|f| t.files.contains(f))
                || self.finishing.overlaps(&t.files)
            {
                continue;
            }
            if self.held_by_its_model(t, &account).await {
                continue;
            }
            self.busy.insert(t.id.clone(), t.files.clone());
            chosen.push(t);
        }
        // Started side by side: each waits on git and the run's actor, not on the one before
        // (a run's first workers, or the tasks a merge made ready, start together).
        let (ctx, cancel) = (&self.ctx, &self.cancel);
        let started = join_all(chosen.iter().map(|t| dispatch(ctx, t, cancel))).await;
        for (t, started) in chosen.into_iter().zip(started) {
            match started {
                Ok(fut) => {
                    self.running.spawn(fut);
                }
                Err(reason) => {
                    self.busy.remove(&t.id);
                    self.undispatched(&t.id, reason.to_string()).await;
                }
            }
        }
    }

    /// Whether the task waits for its model family's 7-day window, or for its agent's
    /// account (a task the plan gave another model or CLI than the workers'; the workers'
    /// own hold the whole run). It is not dispatched before the window's reset (or ten
    /// minutes, when that is unknown).
    async fn held_by_its_model(&mut self, t: &TaskRow, account: &crate::usage::Account) -> bool {
        // The user resumed over a hold: figures not newer than that are not acted on.
        if self
            .forced_at
            .is_some_and(|f| crate::usage::newest(account).is_none_or(|n| n <= f))
        {
            return false;
        }
        let now = time::OffsetDateTime::now_utc();
        let policy = crate::usage::Policy::of(&self.ctx.run.options);
        let margin = self.ctx.cfg.usage_margin;
        let agent = (t.resume.as_ref().map(|p| p.agent))
            .or(t.agent)
            .unwrap_or(policy.workers);
        let by_agent = match crate::usage::route(account, &policy, agent, now, margin) {
            crate::usage::Route::Wait(h) => Some((agent_name(agent), h)),
            _ => None,
        };
        let by_model = t.model.as_deref().and_then(|model| {
            let h = crate::usage::task_hold(account, &policy, model, now, margin)?;
            Some((model, h))
        });
        let by_forecast = (agent == orchestrator_proto::Agent::Claude)
            .then(|| {
                let model = t.model.as_deref().or(policy.model);
                let (reason, until) = super::route::no_room(&self.ctx, model)?;
                let hold = crate::usage::Hold {
                    reason,
                    until: until.map(|u| u + margin),
                    rejected: false,
                };
                (!super::route::codex_has_room(&self.ctx)).then_some(("room in the window", hold))
            })
            .flatten();
        let by_share = (agent == orchestrator_proto::Agent::Claude)
            .then(|| super::route::over_share(&self.ctx))
            .flatten()
            .filter(|_| !super::route::codex_has_room(&self.ctx))
            .map(|reason| {
                let hold = crate::usage::Hold {
                    reason,
                    until: None,
                    rejected: false,
                };
                ("the other runs' share", hold)
            });
        let Some((model, h)) = by_agent.or(by_model).or(by_forecast).or(by_share) else {
            return false;
        };
        let w = self.waits.entry(t.id.clone()).or_default();
        let wait = h
            .until
            .map(|u| (u - now).try_into().unwrap_or_default())
            .unwrap_or(std::time::Duration::from_secs(600));
        w.not_before = Some(Instant::now() + wait);
        if w.held_until != Some(h.until) {
            w.held_until = Some(h.until);
            let until = h
                .until
                .map(|u| format!(" until {}", crate::store::time_text::format(u)))
                .unwrap_or_default();
            let message = format!(
                "Task {} waits for {model}{until}: {}; the rest of the run goes on",
                t.id, h.reason
            );
            note(&self.ctx.handle, Level::Info, EventKind::TaskHeld, message).await;
        }
        true
    }
}

/// An agent's name in a sentence.
fn agent_name(a: orchestrator_proto::Agent) -> &'static str {
    match a {
        orchestrator_proto::Agent::Claude => "Claude",
        orchestrator_proto::Agent::Codex => "Codex",
    }
}

impl Schedule {
    /// A worker that could not start: this task alone waits and tries again (a git lock held
    /// elsewhere passes); after [`DISPATCH_RETRIES`] it fails. Other workers are never touched.
    async fn undispatched(&mut self, task: &TaskId, reason: String) {
        let w = self.waits.entry(task.clone()).or_default();
        w.undispatched += 1;
        let n = w.undispatched;
        if n > DISPATCH_RETRIES {
            let message = format!("Task {task} cannot start: {reason}");
            let (status, kind) = (TaskStatus::Failed, EventKind::DispatchFailed);
            update(
                &self.ctx,
                task,
                status,
                Some(reason),
                Level::Error,
                kind,
                message,
            )
            .await;
            return;
        }
        let wait = std::time::Duration::from_secs(1u64 << (n - 1));
        w.not_before = Some(Instant::now() + wait);
        note(
            &self.ctx.handle,
            Level::Warn,
            EventKind::DispatchRetry,
            format!(
                "Task {task} cannot start ({reason}); trying again in {}s ({n} of {DISPATCH_RETRIES})",
                wait.as_secs()
            ),
        )
        .await;
    }

    /// A worker's session ended: its setup's outcome, a limit, a pause, an API failure, or
    /// `finish` (verify and merge). `Some` ends execution.
    async fn ended(&mut self, f: Finished) -> Option<Executed> {
        let ctx = &self.ctx;
        if f.ended.as_ref().is_ok_and(|e| e.detached) {
            self.running.shutdown().await;
            return Some(Executed::Stopped);
        }
        let files = self.busy.remove(&f.task).unwrap_or_default();
        if let Some(why) = f.unborn.clone() {
            unborn(ctx, &f).await;
            self.undispatched(&f.task, why).await;
            return None;
        }
        match &f.prepared {
            Some(Prepared::Ready(_)) => self.setup_streak = 0,
            Some(Prepared::Failed(fail)) => {
                self.setup_streak += 1;
                let streak = self.setup_streak;
                let again = if streak >= SETUP_FAILURES {
                    ctx.block(format!(
                        "{fail}\n\nIt failed {streak} times in a row, so it is the \
                         environment, not the task: fix the command or what it needs, then \
                         `orchestrate resume` (or `resume --setup \"…\"` to change it)"
                    ));
                    "the run stops for a human"
                } else {
                    "it is tried again"
                };
                unprepared(ctx, f, again).await;
                return None;
            }
            Some(Prepared::Stopped) => {
                unprepared(ctx, f, RESUMES).await;
                return None;
            }
            None => {}
        }
        if limited(&f) {
            // With --on-limit codex a Claude task goes on at once, on Codex.
            let routed =
                f.agent == orchestrator_proto::Agent::Claude && super::route::codex_has_room(ctx);
            let then = if routed {
                "now, as a Codex worker"
            } else {
                RESUMES
            };
            interrupted(ctx, f, "the account hit its usage limit", then).await;
            return None;
        }
        if self.cancel.is_cancelled() {
            interrupted(ctx, f, "the run was paused", RESUMES).await;
            return Some(Executed::Stopped);
        }
        self.failed_session(f, files).await
    }

    /// A session the model API failed: no retry helps a failed login (the task waits,
    /// unspent, and the run asks for a human); an unavailable API is retried with growing
    /// waits, unspent, up to [`TRANSIENT_RETRIES`]. Anything else is finished as usual.
    async fn failed_session(&mut self, f: Finished, files: Vec<String>) -> Option<Executed> {
        let ctx = &self.ctx;
        let failed = f
            .ended
            .as_ref()
            .ok()
            .and_then(|e| e.outcome.as_ref())
            .and_then(|o| Some((o.failure()?, o.text.clone().unwrap_or_default())));
        let w = self.waits.entry(f.task.clone()).or_default();
        match failed {
            Some((Failure::Auth, text)) => {
                interrupted(ctx, f, "Claude Code could not authenticate", RESUMES).await;
                self.running.shutdown().await;
                Some(Executed::Failed(format!(
                    "Claude Code could not authenticate ({}). Log in again with `claude /login`, \
                     or fix ANTHROPIC_API_KEY / CLAUDE_CODE_OAUTH_TOKEN, then run `orchestrate \
                     resume` from a shell that has the working credentials",
                    text.trim()
                )))
            }
            Some((Failure::Transient, text)) if w.transient < TRANSIENT_RETRIES => {
                w.transient += 1;
                let n = w.transient;
                let wait = std::time::Duration::from_secs((1u64 << n).min(60));
                w.not_before = Some(Instant::now() + wait);
                let why = format!(
                    "the model API was unavailable: {}; retry {n} of {TRANSIENT_RETRIES}, not \
                     counted as an attempt",
                    text.trim()
                );
                interrupted(ctx, f, &why, &format!("in {}s", wait.as_secs())).await;
                None
            }
            _ => {
                // The session is over (its token revoked) before the slot is filled again;
                // the merge follows off the dispatch path.
                crate::engine::end(&ctx.handle, &f.session, f.ended.as_ref().ok()).await;
                self.finishing.start(f, files);
                None
            }
        }
    }
}
