//! Executing the plan: worker sessions in their own worktrees, and the daemon's merge queue.
//!
//! Every ready task (pending, all dependencies merged) is dispatched, up to `--concurrency`,
//! longest remaining critical path first, never two at once whose declared files overlap. Each
//! worker runs in a worktree under `<data_dir>/worktrees/<run>/` on its own branch
//! `orchestrate/<slug>--<task>.<attempt>` from the current tip of `orchestrate/<slug>` (git
//! cannot hold `orchestrate/<slug>/<task>` next to `orchestrate/<slug>`). When its session
//! ends, a completed task is verified (leftovers committed, new commits or an explanation) and
//! merged, one at a time, into `orchestrate/<slug>` in the daemon's integration worktree. A
//! conflict or a session that ends without completing puts the task back, up to
//! [`TASK_ATTEMPTS`]; then the run fails with the reason.
//!
//! **Invariant:** a worktree is removed only once its branch is merged (or had nothing to
//! merge); one with unmerged commits or uncommitted changes is kept and named in the log.
//!
//! Interruptions are not attempts: a worker stopped by a pause (the user's or the usage
//! governor's) or by the account's usage limit goes back to pending with where it left off
//! (its Claude session, worktree and branch), and its next dispatch continues that session with
//! `claude --resume` in the same worktree. `drain` stops new dispatches but lets running
//! workers finish (the usage governor's grace period).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use orchestrator_proto::{Level, TaskStatus};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{EngineConfig, note, salvage, session};
use crate::agents::SessionSpec;
use crate::agents::claude::ClaudeCode;
use crate::agents::stream::Failure;
use crate::board::Role;
use crate::engine::port::{Ask, Port};
use crate::engine::prepare::{Prep, Prepared};
use crate::git::{self, Merge};
use crate::store::board::{self as rows, TaskRow};
use crate::store::{Db, NewEvent, RunRow};
use orchestrator_proto::EventKind;

mod dispatch;
mod finish;
mod merge;
mod recover;

pub use dispatch::SETUP_FAILURES;
use dispatch::*;
use finish::*;
use merge::*;
use recover::*;

/// Attempts per task (sessions that end without completing, merge conflicts).
pub const TASK_ATTEMPTS: u32 = 3;

/// Retries of a task whose session failed because the model API was unavailable (5xx, 529),
/// which do not spend attempts; the waits double from 2 s up to a minute.
pub const TRANSIENT_RETRIES: u32 = 5;

/// Retries of a task whose worker could not be started (its worktree or session), after 1,
/// 2 and 4 s; then the task fails.
pub const DISPATCH_RETRIES: u32 = 3;

const RESUMES: &str = "when the run resumes";

/// How execution ended, for the actor.
#[derive(Debug)]
pub enum Executed {
    Completed(String),
    Failed(String),
    Stopped,
}

/// A worker session that ended.
struct Finished {
    task: String,
    /// The Claude session id (`--session-id` / `--resume`).
    session_uuid: String,
    branch: String,
    base: String,
    worktree: PathBuf,
    session: String,
    ended: std::io::Result<session::Ended>,
    /// How preparing its new worktree went (`None`: a resumed worktree, prepared before).
    prepared: Option<Prepared>,
}

struct Ctx {
    handle: Port,
    db: Db,
    cfg: Arc<EngineConfig>,
    run: RunRow,
    project: PathBuf,
    integration: PathBuf,
    agent: ClaudeCode,
    env: orchestrator_proto::SessionEnv,
    /// The run's pause/cancel token (the gate stops with it).
    cancel: CancellationToken,
    /// How new worktrees are prepared (`.worktreeinclude`, `--setup`).
    prep: Prep,
    /// Set when the run cannot go on for a reason of the environment, not of any task (a
    /// setup failing twice in a row, a gate that cannot run): nothing more is dispatched or
    /// merged, and once the running workers end the run stops for a human with this.
    blocked: std::sync::Mutex<Option<String>>,
}

impl Ctx {
    fn blocked(&self) -> Option<String> {
        self.blocked.lock().map(|b| b.clone()).unwrap_or(None)
    }

    fn block(&self, why: String) {
        if let Ok(mut b) = self.blocked.lock()
            && b.is_none()
        {
            *b = Some(why);
        }
    }
}

async fn update(
    ctx: &Ctx,
    task: &str,
    status: TaskStatus,
    failure: Option<String>,
    level: Level,
    kind: orchestrator_proto::EventKind,
    message: String,
) {
    let event = NewEvent {
        level,
        ..NewEvent::info(kind, message)
    }
    .with_data(serde_json::json!({ "task": task, "status": status }));
    let t = task.to_owned();
    let _ = ctx
        .handle
        .ask(|reply| Ask::TaskUpdate {
            task: t,
            status,
            failure,
            event,
            reply,
        })
        .await;
}

/// A blocked run (the environment, not a task): lets the running workers end one at a time,
/// then asks for a human (`Some`). The sessions watch the run's and the daemon's tokens
/// themselves, so the wait ends on a pause or a daemon stop too, handled as the loop does.
async fn wind_down(
    ctx: &Ctx,
    cancel: &CancellationToken,
    running: &mut JoinSet<Finished>,
    busy: &mut HashMap<String, Vec<String>>,
    why: String,
) -> Option<Executed> {
    if running.is_empty() {
        return Some(Executed::Failed(why));
    }
    if let Some(Ok(f)) = running.join_next().await {
        busy.remove(&f.task);
        if f.ended.as_ref().is_ok_and(|e| e.detached) {
            running.shutdown().await;
            return Some(Executed::Stopped);
        }
        match f.prepared {
            Some(Prepared::Failed(_) | Prepared::Stopped) => {
                unprepared(ctx, f, "the run stopped for a human").await;
            }
            _ if cancel.is_cancelled() => {
                interrupted(ctx, f, "the run was paused", RESUMES).await;
            }
            _ => finish(ctx, f).await,
        }
    }
    None
}

/// Puts a task back on the board without spending its attempt, with where to continue it
/// (`None`: it starts afresh) and the event that says why.
async fn put_back(ctx: &Ctx, task: &str, resume: Option<Resume>, event: NewEvent) {
    let task = task.to_owned();
    let _ = ctx
        .handle
        .ask(|reply| Ask::TaskInterrupted {
            task,
            resume,
            event,
            reply,
        })
        .await;
}

async fn tasks(db: &Db, run: &str) -> Vec<TaskRow> {
    let id = run.to_owned();
    db.call(move |c| rows::tasks(c, &id))
        .await
        .unwrap_or_default()
}

/// Longest chain of dependents below each task (itself included).
fn critical_path(all: &[TaskRow]) -> HashMap<String, usize> {
    let mut dependents: HashMap<&str, Vec<&str>> = HashMap::new();
    for t in all {
        for d in &t.depends_on {
            dependents
                .entry(d.as_str())
                .or_default()
                .push(t.id.as_str());
        }
    }
    fn depth<'a>(
        id: &'a str,
        deps: &HashMap<&'a str, Vec<&'a str>>,
        memo: &mut HashMap<String, usize>,
    ) -> usize {
        if let Some(d) = memo.get(id) {
            return *d;
        }
        let d = 1 + deps.get(id).map_or(0, |c| {
            c.iter().map(|k| depth(k, deps, memo)).max().unwrap_or(0)
        });
        memo.insert(id.to_owned(), d);
        d
    }
    let mut memo = HashMap::new();
    for t in all {
        depth(&t.id, &dependents, &mut memo);
    }
    memo
}

/// Executes the run's plan to the end; never changes the run's status itself.
pub async fn execute(
    handle: Port,
    db: Db,
    cfg: Arc<EngineConfig>,
    run: RunRow,
    cancel: CancellationToken,
    drain: CancellationToken,
    forced_at: Option<time::OffsetDateTime>,
) -> Executed {
    let (agent, env) = match super::claude_for(&db, &cfg, &run.id).await {
        Ok(x) => x,
        Err(reason) => return Executed::Failed(reason.to_string()),
    };
    let project = PathBuf::from(&run.project);
    let integration = crate::layout::integration(&cfg.data_dir, &run.id);
    // Detached at the branch tip: the branch itself only moves once a merge passed the gate.
    // One a crash left unusable (a git command cut short) is made again: it holds no work.
    let mut ready = Err(None);
    if integration.exists() {
        ready = git::reset_hard(&integration, &run.branch)
            .await
            .map_err(Some);
        if ready.is_err() {
            let _ = git::worktree_remove(&project, &integration, true).await;
            let _ = git::worktree_prune(&project).await;
        }
    }
    if ready.is_err() && !integration.exists() {
        ready = git::worktree_add_detached(&project, &integration, &run.branch)
            .await
            .map_err(Some);
    }
    let ready =
        ready.map_err(|e| e.map_or_else(|| "it is in the way".to_owned(), |e| e.to_string()));
    if let Err(e) = ready {
        return Executed::Failed(format!(
            "cannot create the integration worktree for {}: {e}",
            run.branch
        ));
    }
    let prep = Prep {
        project: project.clone(),
        data_dir: cfg.data_dir.clone(),
        run: run.id.clone(),
        env: env.clone(),
        options: run.options.clone(),
        cancel: cancel.clone(),
        stopping: cfg.stopping.clone(),
    };
    let ctx = Ctx {
        agent,
        handle,
        db,
        cfg,
        project,
        integration,
        env,
        run,
        cancel: cancel.clone(),
        prep,
        blocked: std::sync::Mutex::new(None),
    };
    let mut running: JoinSet<Finished> = JoinSet::new();
    let mut busy: HashMap<String, Vec<String>> = HashMap::new();
    // What a previous daemon (or a pause) left: live workers re-attached, the rest finished.
    let adopted = reconcile(&ctx, &cancel, &mut running, &mut busy).await;
    super::reap::reap(
        &ctx.handle,
        &ctx.db,
        &ctx.run.id,
        ctx.cfg.started_at,
        &adopted,
    )
    .await;
    ctx.cfg.reconcile.done(&ctx.run.id);
    let stopping = ctx.cfg.stopping.clone();
    // Tasks waiting out a transient API failure: how often, and not before when.
    let mut transient: HashMap<String, u32> = HashMap::new();
    let mut not_before: HashMap<String, tokio::time::Instant> = HashMap::new();
    // Tasks whose worker could not be started (a worktree git refused): how often.
    let mut undispatched: HashMap<String, u32> = HashMap::new();
    // Setups that failed since the last one that passed.
    let mut setup_streak = 0u32;
    loop {
        if let Some(why) = ctx.blocked() {
            if let Some(done) = wind_down(&ctx, &cancel, &mut running, &mut busy, why).await {
                return done;
            }
            continue;
        }
        let all = tasks(&ctx.db, &ctx.run.id).await;
        // Completed by a worker nobody follows (one a crash left without a recorded process
        // finished after the restart): merged from where it worked.
        let stopped = cancel.is_cancelled() || stopping.is_cancelled();
        let orphans: Vec<&TaskRow> = all
            .iter()
            .filter(|t| !stopped && t.status == TaskStatus::Done && !busy.contains_key(&t.id))
            .collect();
        if !orphans.is_empty() {
            for t in orphans {
                finish_orphan(&ctx, t).await;
            }
            continue;
        }
        // A task out of attempts fails the run, but only once the other workers have
        // finished and their work is merged: one task's failure never stops another's worker.
        let failed = all.iter().find(|t| t.status == TaskStatus::Failed);
        if let Some(t) = failed
            && running.is_empty()
        {
            return Executed::Failed(format!(
                "task {} failed: {}",
                t.id,
                t.failure.as_deref().unwrap_or("no reason given")
            ));
        }
        if !all.is_empty() && all.iter().all(|t| t.status == TaskStatus::Merged) {
            // The branch holds everything; its integration worktree is clean and can go, and
            // the run's worktree folder with it once nothing else is in it.
            let _ = git::worktree_remove(&ctx.project, &ctx.integration, false).await;
            repair_worktrees(&ctx).await;
            if let Some(dir) = ctx.integration.parent() {
                let _ = tokio::fs::remove_dir(dir).await;
            }
            return Executed::Completed(format!(
                "all {} merged into {}",
                orchestrator_proto::words::count(all.len() as u64, "task"),
                ctx.run.branch
            ));
        }
        let merged: HashSet<&str> = all
            .iter()
            .filter(|t| t.status == TaskStatus::Merged)
            .map(|t| t.id.as_str())
            .collect();
        let cp = critical_path(&all);
        let now = tokio::time::Instant::now();
        not_before.retain(|_, at| *at > now);
        let mut ready: Vec<&TaskRow> = all
            .iter()
            .filter(|t| t.status == TaskStatus::Pending && !busy.contains_key(&t.id))
            .filter(|t| !not_before.contains_key(&t.id))
            .filter(|t| t.depends_on.iter().all(|d| merged.contains(d.as_str())))
            .collect();
        ready.sort_by_key(|t| std::cmp::Reverse(cp.get(&t.id).copied().unwrap_or(0)));
        // No new worker while the account is over its limit (the actor pauses the run).
        let held = drain.is_cancelled()
            || stopped
            || failed.is_some()
            || crate::usage::hold_since(
                &ctx.cfg.usage.snapshot(),
                ctx.run.options.usage_threshold,
                ctx.cfg.usage_margin,
                forced_at,
            )
            .is_some();
        for t in ready {
            if busy.len() >= ctx.run.options.concurrency as usize || held {
                break;
            }
            let overlaps = busy.values().flatten().any(|f| t.files.contains(f));
            if overlaps {
                continue;
            }
            match dispatch(&ctx, t, &cancel).await {
                Ok(fut) => {
                    busy.insert(t.id.clone(), t.files.clone());
                    running.spawn(fut);
                }
                Err(reason) => {
                    // This task alone waits and tries again (a git lock held elsewhere passes);
                    // after DISPATCH_RETRIES it fails. Other workers are never touched.
                    let n = undispatched.entry(t.id.clone()).or_insert(0);
                    *n += 1;
                    if *n > DISPATCH_RETRIES {
                        update(
                            &ctx,
                            &t.id,
                            TaskStatus::Failed,
                            Some(reason.to_string()),
                            Level::Error,
                            EventKind::DispatchFailed,
                            format!("Task {} cannot start: {reason}", t.id),
                        )
                        .await;
                    } else {
                        let wait = std::time::Duration::from_secs(1u64 << (*n - 1));
                        not_before.insert(t.id.clone(), tokio::time::Instant::now() + wait);
                        note(
                            &ctx.handle,
                            Level::Warn,
                            EventKind::DispatchRetry,
                            format!(
                                "Task {} cannot start ({reason}); trying again in {}s ({n} of {DISPATCH_RETRIES})",
                                t.id,
                                wait.as_secs()
                            ),
                        )
                        .await;
                    }
                }
            }
        }
        // After dispatching: a task that could not start just now waits its turn too.
        let wake = not_before.values().min().copied();
        if running.is_empty() && held {
            return Executed::Stopped;
        }
        if running.is_empty() && wake.is_none() {
            return Executed::Failed(
                "no task can start: every pending task waits on one that is not merged".into(),
            );
        }
        let done = tokio::select! {
            _ = cancel.cancelled() => {
                // Sessions see the same token and stop their process groups; their tasks
                // continue where they stopped when the run resumes.
                while let Some(done) = running.join_next().await {
                    if let Ok(f) = done {
                        interrupted(&ctx, f, "the run was paused", RESUMES).await;
                    }
                }
                return Executed::Stopped;
            }
            _ = stopping.cancelled() => {
                // The daemon stops: sessions are left running (they detach at once) and the
                // next daemon re-attaches them; nothing about them is recorded here.
                while running.join_next().await.is_some() {}
                return Executed::Stopped;
            }
            _ = tokio::time::sleep_until(wake.unwrap_or(now)), if wake.is_some() => continue,
            d = running.join_next(), if !running.is_empty() => d,
        };
        let Some(Ok(f)) = done else { continue };
        if f.ended.as_ref().is_ok_and(|e| e.detached) {
            running.shutdown().await;
            return Executed::Stopped;
        }
        busy.remove(&f.task);
        match &f.prepared {
            Some(Prepared::Ready(_)) => setup_streak = 0,
            Some(Prepared::Failed(fail)) => {
                setup_streak += 1;
                let fail = fail.clone();
                let again = if setup_streak >= SETUP_FAILURES {
                    ctx.block(format!(
                        "{fail}\n\nIt failed {setup_streak} times in a row, so it is the \
                         environment, not the task: fix the command or what it needs, then \
                         `orchestrate resume` (or `resume --setup \"…\"` to change it)"
                    ));
                    "the run stops for a human"
                } else {
                    "it is tried again"
                };
                unprepared(&ctx, f, again).await;
                continue;
            }
            Some(Prepared::Stopped) => {
                unprepared(&ctx, f, RESUMES).await;
                continue;
            }
            None => {}
        }
        if limited(&f) {
            interrupted(&ctx, f, "the account hit its usage limit", RESUMES).await;
            continue;
        }
        if cancel.is_cancelled() {
            interrupted(&ctx, f, "the run was paused", RESUMES).await;
            return Executed::Stopped;
        }
        let failed = f
            .ended
            .as_ref()
            .ok()
            .and_then(|e| e.outcome.as_ref())
            .and_then(|o| Some((o.failure()?, o.text.clone().unwrap_or_default())));
        match failed {
            Some((Failure::Auth, text)) => {
                // No retry helps: the task waits, unspent, and the run asks for a human.
                interrupted(&ctx, f, "Claude Code could not authenticate", RESUMES).await;
                running.shutdown().await;
                return Executed::Failed(format!(
                    "Claude Code could not authenticate ({}). Log in again with `claude /login`, \
                     or fix ANTHROPIC_API_KEY / CLAUDE_CODE_OAUTH_TOKEN, then run `orchestrate \
                     resume` from a shell that has the working credentials",
                    text.trim()
                ));
            }
            Some((Failure::Transient, text))
                if *transient.entry(f.task.clone()).or_insert(0) < TRANSIENT_RETRIES =>
            {
                let n = transient.entry(f.task.clone()).or_insert(0);
                *n += 1;
                let wait = std::time::Duration::from_secs((1u64 << *n).min(60));
                not_before.insert(f.task.clone(), tokio::time::Instant::now() + wait);
                let why = format!(
                    "the model API was unavailable: {}; retry {n} of {TRANSIENT_RETRIES}, not counted as an attempt",
                    text.trim()
                );
                let then = format!("in {}s", wait.as_secs());
                interrupted(&ctx, f, &why, &then).await;
                continue;
            }
            _ => {}
        }
        finish(&ctx, f).await;
    }
}

/// Back on the board while attempts remain; failed (and escalated by the run) after that.
fn retry_or_fail(attempts: u32) -> (TaskStatus, Level) {
    if attempts >= TASK_ATTEMPTS {
        (TaskStatus::Failed, Level::Error)
    } else {
        (TaskStatus::Pending, Level::Warn)
    }
}
