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

use super::prepare::{Prep, Prepared};
use super::{EngineConfig, note, salvage, session};
use crate::agents::SessionSpec;
use crate::agents::claude::ClaudeCode;
use crate::agents::stream::Failure;
use crate::board::Role;
use crate::git::{self, Merge};
use crate::runs::{Command, RunHandle};
use crate::store::board::{self as rows, TaskRow};
use crate::store::{Db, NewEvent, RunRow};

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
    handle: RunHandle,
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
    kind: &'static str,
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
        .ask(|reply| Command::TaskUpdate {
            task: t,
            status,
            failure,
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

fn worker_prompt(run: &RunRow, t: &TaskRow, branch: &str, worktree: &std::path::Path) -> String {
    let mut p = format!(
        "You are a worker in an automated team implementing a feature.\n\n\
         # Feature\n\n{}\n\n# Your task: {} — {}\n\n{}\n\nAcceptance criteria:\n{}\n\n\
         # How to work\n\n\
         You are in your own git worktree, {}, on branch `{branch}`. Call `get_task` on the `orch` MCP \
         server first for the full brief, including what the tasks you depend on produced. Do the \
         work here, then commit it with git (`git add -A && git commit -m \"...\"`). Call \
         `report_progress` now and then, and `read_messages` between steps. When the acceptance \
         criteria hold, call `complete_task` with what you changed and how you verified it (if no \
         change was needed, say why). If you cannot do it, call `fail_task` with the reason. Then \
         stop.\n",
        run.feature.trim(),
        t.id,
        t.title,
        t.description.trim(),
        t.acceptance
            .iter()
            .map(|a| format!("- {a}"))
            .collect::<Vec<_>>()
            .join("\n"),
        worktree.display(),
    );
    if let Some(setup) = &run.options.setup {
        p.push_str(&format!(
            "\nYour worktree was prepared with `{setup}` (the run's setup), so its dependencies are installed.\n"
        ));
    }
    if !t.verify.is_empty() || run.options.gate.is_some() {
        p.push_str("\n# How your work is checked\n\n");
        if !t.verify.is_empty() {
            let list: Vec<String> = t.verify.iter().map(|c| format!("- `{c}`")).collect();
            p.push_str(&format!(
                "When you call `complete_task`, the orchestrator runs these in your worktree and refuses the completion while one fails; run them yourself first:\n{}\n",
                list.join("\n")
            ));
        }
        if let Some(gate) = &run.options.gate {
            p.push_str(&format!(
                "After you complete, the daemon merges your branch and runs the gate `{gate}` on the result; if it fails, the task comes back with its output. Run it in your worktree before you call `complete_task`.\n"
            ));
        }
    }
    if let Some(f) = &t.failure {
        p.push_str(&format!(
            "\n# The previous attempt did not land\n\n{f}\n\nStart from the current code and make sure this is solved.\n"
        ));
    }
    p
}

/// Executes the run's plan to the end; never changes the run's status itself.
pub async fn execute(
    handle: RunHandle,
    db: Db,
    cfg: Arc<EngineConfig>,
    run: RunRow,
    cancel: CancellationToken,
    drain: CancellationToken,
    forced_at: Option<time::OffsetDateTime>,
) -> Executed {
    let (agent, env) = match super::claude_for(&db, &cfg, &run.id).await {
        Ok(x) => x,
        Err(reason) => return Executed::Failed(reason),
    };
    let project = PathBuf::from(&run.project);
    let integration = cfg
        .data_dir
        .join("worktrees")
        .join(&run.id)
        .join("integration");
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
            // The environment, not a task: let the running workers end, then ask a human.
            if running.is_empty() {
                return Executed::Failed(why);
            }
            if let Some(Ok(f)) = running.join_next().await {
                busy.remove(&f.task);
                match f.prepared {
                    Some(Prepared::Failed(_) | Prepared::Stopped) => {
                        unprepared(&ctx, f, "the run stopped for a human").await;
                    }
                    _ => finish(&ctx, f).await,
                }
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
                "all {} tasks merged into {}",
                all.len(),
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
                            Some(reason.clone()),
                            Level::Error,
                            "dispatch_failed",
                            format!("Task {} cannot start: {reason}", t.id),
                        )
                        .await;
                    } else {
                        let wait = std::time::Duration::from_secs(1u64 << (*n - 1));
                        not_before.insert(t.id.clone(), tokio::time::Instant::now() + wait);
                        note(
                            &ctx.handle,
                            Level::Warn,
                            "dispatch_retry",
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

async fn dispatch(
    ctx: &Ctx,
    t: &TaskRow,
    cancel: &CancellationToken,
) -> Result<impl std::future::Future<Output = Finished> + Send + 'static, String> {
    let attempt = t.attempts + 1;
    if let Some(r) = t
        .resume
        .as_deref()
        .and_then(|r| serde_json::from_str::<Resume>(r).ok())
        && r.worktree.exists()
    {
        return launch(ctx, t, cancel, attempt, r, true).await;
    }
    let base = git::rev_parse(&ctx.integration, "HEAD")
        .await
        .map_err(|e| e.to_string())?;
    // Kept branches of earlier attempts (unmerged work is never thrown away) take their names.
    let mut n = attempt;
    let (branch, worktree) = loop {
        let branch = format!("{}--{}.{n}", ctx.run.branch, t.id);
        let worktree = ctx
            .cfg
            .data_dir
            .join("worktrees")
            .join(&ctx.run.id)
            .join(format!("{}.{n}", t.id));
        if !worktree.exists()
            && !git::branch_exists(&ctx.project, &branch)
                .await
                .unwrap_or(true)
        {
            break (branch, worktree);
        }
        n += 1;
    };
    git::worktree_add_new_branch(&ctx.project, &worktree, &branch, &base)
        .await
        .map_err(|e| format!("cannot create the worktree for task {}: {e}", t.id))?;
    let place = Resume {
        session: uuid::Uuid::new_v4().to_string(),
        worktree,
        branch,
        base,
    };
    launch(ctx, t, cancel, attempt, place, false).await
}

/// Where a worker works (or left off): its Claude session, worktree, branch and base commit.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct Resume {
    session: String,
    worktree: PathBuf,
    branch: String,
    base: String,
}

/// Opens the worker's session and returns the future that runs it; `resume` continues the
/// Claude session `place.session` instead of starting it.
async fn launch(
    ctx: &Ctx,
    t: &TaskRow,
    cancel: &CancellationToken,
    attempt: u32,
    place: Resume,
    resume: bool,
) -> Result<impl std::future::Future<Output = Finished> + Send + 'static, String> {
    let Resume {
        session: session_uuid,
        worktree,
        branch,
        base,
    } = place;
    let task = t.id.clone();
    let grant = ctx
        .handle
        .ask(|reply| Command::OpenSession {
            role: Role::Worker,
            task: Some(task),
            ttl: std::time::Duration::from_secs(orchestrator_proto::session::defaults::TTL_SECS),
            reply,
        })
        .await
        .map_err(|e| format!("cannot open a session for task {}: {e}", t.id))?;
    let known = Resume {
        session: session_uuid.clone(),
        worktree: worktree.clone(),
        branch: branch.clone(),
        base: base.clone(),
    };
    if let Ok(place) = serde_json::to_string(&known) {
        let s = grant.session.clone();
        let _ = ctx
            .db
            .call(move |c| crate::store::live::set_place(c, &s, &place))
            .await;
    }
    note(
        &ctx.handle,
        Level::Info,
        "task_dispatched",
        if resume {
            format!(
                "Task {} continues in session {} (claude --resume {session_uuid}, attempt {attempt} of {TASK_ATTEMPTS}) in {}",
                t.id,
                grant.session,
                worktree.display()
            )
        } else {
            format!(
                "Task {} dispatched to session {} (attempt {attempt} of {TASK_ATTEMPTS}) on {branch}",
                t.id, grant.session
            )
        },
    )
    .await;
    let prompt = if resume {
        format!(
            "You were interrupted (the run was paused). Continue your task {} where you left off, \
             in the same worktree; call `get_task` on the `orch` MCP server if you need the brief \
             again, and finish with `complete_task` (or `fail_task`) as before.\n",
            t.id
        )
    } else {
        worker_prompt(&ctx.run, t, &branch, &worktree)
    };
    let spec = SessionSpec {
        prompt: prompt + &super::planner::guidance(&ctx.db, &ctx.run).await,
        cwd: worktree.clone(),
        mcp_url: ctx.cfg.mcp_url.clone(),
        token: grant.token.clone(),
        session_uuid: session_uuid.clone(),
        resume,
        env: ctx.env.clone(),
        confine: ctx.cfg.confinement(&ctx.project, &worktree, &ctx.env),
    };
    let cmd = ctx.agent.command(&spec);
    let prompt = spec.prompt;
    let dir = session_dir(ctx, &grant.session);
    let cancel = cancel.clone();
    let task = t.id.clone();
    let cfg = ctx.cfg.clone();
    let place = Resume {
        session: session_uuid.clone(),
        worktree: worktree.clone(),
        branch: branch.clone(),
        base: base.clone(),
    };
    let record = cfg.record(
        &ctx.db,
        &grant.session,
        Some(serde_json::to_string(&place).unwrap_or_default()),
    );
    let (prep, handle, name) = (
        (!resume).then(|| ctx.prep.clone()),
        ctx.handle.clone(),
        format!("{}.{attempt}", t.id),
    );
    Ok(async move {
        let mut prepared = None;
        if let Some(prep) = prep {
            match super::prepare::prepare(&prep, &worktree, &name).await {
                Prepared::Ready(done) => {
                    for d in &done {
                        let text = format!("Task {task}: {d}");
                        note(&handle, Level::Info, "worktree_prepared", text).await;
                    }
                    prepared = Some(Prepared::Ready(done));
                }
                other => {
                    return Finished {
                        task,
                        session_uuid,
                        branch,
                        base,
                        worktree,
                        session: grant.session,
                        ended: Err(std::io::Error::other("its worktree was not prepared")),
                        prepared: Some(other),
                    };
                }
            }
        }
        let ended = session::run(
            cmd,
            &dir,
            Some(&prompt),
            worker_watch(&cfg, &cancel, record),
        )
        .await;
        Finished {
            task,
            session_uuid,
            branch,
            base,
            worktree,
            session: grant.session,
            ended,
            prepared,
        }
    })
}

/// Prepares the integration worktree (where the gate runs) once per setup command: the
/// `.worktreeinclude` files and `--setup`, remembered in its git dir so a resumed run does not
/// install again. `false` when stopped, or when it failed [`SETUP_FAILURES`] times (the run is
/// then blocked).
async fn integration_ready(ctx: &Ctx) -> bool {
    let marker = git::git_dir(&ctx.integration)
        .await
        .ok()
        .map(|d| d.join("orchestrator-setup"));
    let want = ctx.run.options.setup.clone().unwrap_or_default();
    if let Some(m) = &marker
        && tokio::fs::read_to_string(m).await.ok().as_deref() == Some(want.as_str())
    {
        return true;
    }
    for n in 1..=SETUP_FAILURES {
        match super::prepare::prepare(&ctx.prep, &ctx.integration, "integration").await {
            Prepared::Ready(done) => {
                for d in done {
                    let text = format!("Integration worktree: {d}");
                    note(&ctx.handle, Level::Info, "worktree_prepared", text).await;
                }
                if let Some(m) = &marker {
                    let _ = tokio::fs::write(m, &want).await;
                }
                return true;
            }
            Prepared::Stopped => return false,
            Prepared::Failed(fail) => {
                let text = format!("Integration worktree (where the gate runs): {fail}");
                note(&ctx.handle, Level::Warn, "setup_failed", text).await;
                if n == SETUP_FAILURES {
                    ctx.block(format!(
                        "{fail}\n\nThe integration worktree, where the gate runs, could not be \
                         set up ({n} times in a row): fix the command or what it needs, then \
                         `orchestrate resume` (or `resume --setup \"…\"` to change it)"
                    ));
                }
            }
        }
    }
    false
}

/// Setups failing in a row before the run stops for a human.
pub const SETUP_FAILURES: u32 = 2;

/// A worker whose worktree could not be prepared never ran: its session ends, the worktree
/// and branch (which hold nothing) go, and the task goes back without spending an attempt.
async fn unprepared(ctx: &Ctx, f: Finished, then: &str) {
    super::end(&ctx.handle, &f.session, None).await;
    let _ = git::worktree_remove(&ctx.project, &f.worktree, true).await;
    let _ = git::delete_branch_at(&ctx.project, &f.branch, &f.base).await;
    let (kind, why) = match &f.prepared {
        Some(Prepared::Failed(fail)) => ("setup_failed", fail.to_string()),
        _ => (
            "task_interrupted",
            "the run stopped while its setup ran".to_owned(),
        ),
    };
    let event = NewEvent {
        level: if kind == "setup_failed" {
            Level::Warn
        } else {
            Level::Info
        },
        ..NewEvent::info(
            kind,
            format!(
                "Task {} was not started, not counted as an attempt ({then}): {why}",
                f.task
            ),
        )
    }
    .with_data(serde_json::json!({ "task": f.task, "session": f.session }));
    let task = f.task.clone();
    let _ = ctx
        .handle
        .ask(|reply| Command::TaskInterrupted {
            task,
            resume: None,
            event,
            reply,
        })
        .await;
}

/// How a worker session is watched: stopped on `cancel` and by the watchdogs, left running
/// when the daemon stops, feeding the account's usage, recorded in its row.
fn worker_watch<'a>(
    cfg: &'a EngineConfig,
    cancel: &'a CancellationToken,
    record: session::Record,
) -> session::Watch<'a> {
    session::Watch {
        cancel,
        detach: Some(&cfg.stopping),
        limits: cfg.limits,
        usage: Some(&cfg.usage),
        record: Some(record),
    }
}

/// Removes the run's worktrees whose creation a crash cut short (no valid HEAD: they hold
/// nothing) and lets git forget worktrees whose folders are gone. Run when the executor starts
/// and again when the run's tasks are all merged (a git command the previous daemon left
/// running may have still been finishing the first time).
async fn repair_worktrees(ctx: &Ctx) {
    let dir = ctx.cfg.data_dir.join("worktrees").join(&ctx.run.id);
    if let Ok(mut entries) = tokio::fs::read_dir(&dir).await {
        while let Ok(Some(e)) = entries.next_entry().await {
            let path = e.path();
            if path.join(".git").is_file() && matches!(git::head_commit(&path).await, Ok(None)) {
                let _ = git::worktree_remove(&ctx.project, &path, true).await;
                note(
                    &ctx.handle,
                    Level::Warn,
                    "worktree_repaired",
                    format!(
                        "Removed {}: a daemon stopped while creating it (it had no valid HEAD \
                         and held nothing)",
                        path.display()
                    ),
                )
                .await;
            }
        }
    }
    let _ = git::worktree_prune(&ctx.project).await;
}

/// Where a session's stdout and stderr go.
fn session_dir(ctx: &Ctx, session: &str) -> PathBuf {
    crate::mirror::session_dir(&ctx.project, &ctx.cfg.data_dir, &ctx.run.id, session)
}

/// What the previous daemon left of this run's workers. A task in progress (or done but not
/// merged) whose worker still runs is re-attached: its output is read on from where parsing
/// stopped. One whose worker is gone is finished from what the worker's output and the board
/// say: merged if it completed, otherwise back to the board (the attempt is spent). Returns
/// the re-attached sessions.
async fn reconcile(
    ctx: &Ctx,
    cancel: &CancellationToken,
    running: &mut JoinSet<Finished>,
    busy: &mut HashMap<String, Vec<String>>,
) -> HashSet<String> {
    let mut adopted = HashSet::new();
    repair_worktrees(ctx).await;
    // A merge the previous daemon left half-done is rolled back (its task is merged again).
    if let (Ok(head), Ok(tip)) = (
        git::rev_parse(&ctx.integration, "HEAD").await,
        git::rev_parse(&ctx.project, &format!("refs/heads/{}", ctx.run.branch)).await,
    ) && head != tip
    {
        let _ = git::reset_hard(&ctx.integration, &tip).await;
        note(
            &ctx.handle,
            Level::Warn,
            "merge_rolled_back",
            format!(
                "A merge the previous daemon had not finished ({}) was rolled back; {} stays at {}",
                &head[..head.len().min(12)],
                ctx.run.branch,
                &tip[..tip.len().min(12)]
            ),
        )
        .await;
    }
    for t in tasks(&ctx.db, &ctx.run.id)
        .await
        .into_iter()
        .filter(|t| t.status == TaskStatus::InProgress || t.status == TaskStatus::Done)
    {
        let (row, place) = last_place(ctx, &t.id).await;
        // A previous daemon's worker, or a completed task this daemon's last executor stopped
        // before merging (it is merged now). This daemon's worker of a task still in progress
        // was stopped with its executor: the task is requeued.
        let row = row.filter(|r| r.started_at < ctx.cfg.started_at || t.status == TaskStatus::Done);
        let (Some(row), Some(place)) = (row, place) else {
            if t.status == TaskStatus::Done {
                redo_unknown(ctx, &t.id).await;
            } else {
                requeue(ctx, &t.id).await;
            }
            continue;
        };
        let dir = session_dir(ctx, &row.id);
        let live = (row.status == "active")
            .then(|| super::reap::live(&row))
            .flatten();
        if let Some(id) = live {
            adopted.insert(row.id.clone());
            busy.insert(t.id.clone(), t.files.clone());
            note(
                &ctx.handle,
                Level::Info,
                "session_reattached",
                format!(
                    "Task {}: re-attached to its worker session {} (pid {}), still running; its \
                     output is read on from byte {}",
                    t.id, row.id, id.pid, row.output_offset
                ),
            )
            .await;
            let elapsed = (time::OffsetDateTime::now_utc() - row.started_at)
                .try_into()
                .unwrap_or_default();
            let (cancel, cfg) = (cancel.clone(), ctx.cfg.clone());
            let record = cfg.record(&ctx.db, &row.id, None);
            let (task, session, offset) = (t.id.clone(), row.id.clone(), row.output_offset);
            running.spawn(async move {
                let watch = worker_watch(&cfg, &cancel, record);
                let ended = session::reattach(id, &dir, offset, elapsed, watch).await;
                Finished {
                    task,
                    session_uuid: place.session,
                    branch: place.branch,
                    base: place.base,
                    worktree: place.worktree,
                    session,
                    ended,
                    prepared: None,
                }
            });
            continue;
        }
        // Gone: everything it wrote tells how it ended (nothing of it was acted on yet).
        let when = if row.started_at < ctx.cfg.started_at {
            "ended while the daemon was down"
        } else {
            "ended before this executor started"
        };
        note(
            &ctx.handle,
            Level::Info,
            "session_gone",
            format!(
                "Task {}: its worker session {} {when}; finishing it from what it left",
                t.id, row.id
            ),
        )
        .await;
        finish_gone(ctx, &t.id, row, place).await;
    }
    adopted
}

/// A task in progress whose session nobody can follow (a previous daemon died before it
/// recorded the worker's process, or this daemon's executor stopped it): back on the board
/// afresh, its attempt unspent — losing the worker was not the task's fault. The previous
/// daemon's session is ended so its token stops working.
async fn requeue(ctx: &Ctx, task: &str) {
    let key = (ctx.run.id.clone(), task.to_owned());
    let since = ctx.cfg.started_at;
    let stale = ctx
        .db
        .call(move |c| {
            Ok(crate::store::live::open(c, &key.0)?
                .into_iter()
                .filter(|s| s.task.as_deref() == Some(key.1.as_str()) && s.started_at < since)
                .map(|s| s.id)
                .collect::<Vec<_>>())
        })
        .await
        .unwrap_or_default();
    for s in stale {
        super::end_session(&ctx.handle, &s, None).await;
    }
    let event = NewEvent::info(
        "task_requeued",
        format!("Task {task} requeued: its session is gone (not counted as an attempt)"),
    )
    .with_data(serde_json::json!({ "task": task }));
    let task = task.to_owned();
    let _ = ctx
        .handle
        .ask(|reply| Command::TaskInterrupted {
            task,
            resume: None,
            event,
            reply,
        })
        .await;
}

/// The task's newest worker session and where it worked, as far as they were recorded.
async fn last_place(
    ctx: &Ctx,
    task: &str,
) -> (Option<crate::store::live::LiveRow>, Option<Resume>) {
    let key = (ctx.run.id.clone(), task.to_owned());
    let row = ctx
        .db
        .call(move |c| crate::store::live::last_worker(c, &key.0, &key.1))
        .await
        .ok()
        .flatten();
    let place = row
        .as_ref()
        .and_then(|r| r.place.as_deref())
        .and_then(|p| serde_json::from_str::<Resume>(p).ok());
    (row, place)
}

/// Merges a completed task whose worker nobody followed, from its last worker's place.
async fn finish_orphan(ctx: &Ctx, t: &TaskRow) {
    match last_place(ctx, &t.id).await {
        (Some(row), Some(place)) => finish_gone(ctx, &t.id, row, place).await,
        _ => redo_unknown(ctx, &t.id).await,
    }
}

/// Finishes a task whose worker is gone from what it left: its whole output, then the usual
/// verify-and-merge (or back to the board).
async fn finish_gone(ctx: &Ctx, task: &str, row: crate::store::live::LiveRow, place: Resume) {
    let dir = session_dir(ctx, &row.id);
    let f = Finished {
        task: task.to_owned(),
        session_uuid: place.session,
        branch: place.branch,
        base: place.base,
        worktree: place.worktree,
        ended: session::finalize(&dir, 0).await,
        session: row.id,
        prepared: None,
    };
    finish(ctx, f).await;
}

/// A completed task whose work cannot be found (no recorded place): done again.
async fn redo_unknown(ctx: &Ctx, task: &str) {
    update(
        ctx,
        task,
        TaskStatus::Pending,
        None,
        Level::Warn,
        "task_requeued",
        format!(
            "Task {task} requeued: it was completed by a session whose worktree the daemon does \
             not know (one it did not start), so there is nothing to merge; it is done again"
        ),
    )
    .await;
}

/// Whether the worker's session ended on the account's usage limit.
fn limited(f: &Finished) -> bool {
    f.ended
        .as_ref()
        .is_ok_and(|e| e.outcome.as_ref().is_some_and(|o| o.is_usage_limit()))
}

/// A worker stopped from outside (a pause, the usage limit, the model API down): unless it
/// finished its task anyway, the task goes back to pending, without spending the attempt, with
/// where it left off; `then` says when it continues.
async fn interrupted(ctx: &Ctx, f: Finished, why: &str, then: &str) {
    let why = if limited(&f) {
        "the account hit its usage limit"
    } else {
        why
    };
    let id = (ctx.run.id.clone(), f.task.clone());
    let status = ctx
        .db
        .call(move |c| rows::task(c, &id.0, &id.1))
        .await
        .ok()
        .flatten()
        .map(|t| t.status);
    if f.ended.is_err() || status != Some(TaskStatus::InProgress) {
        // It completed or failed on its own just before: handle it as usual.
        finish(ctx, f).await;
        return;
    }
    super::end(&ctx.handle, &f.session, f.ended.as_ref().ok()).await;
    let resume = Resume {
        session: f.session_uuid.clone(),
        worktree: f.worktree.clone(),
        branch: f.branch.clone(),
        base: f.base.clone(),
    };
    let event = NewEvent::info(
        "task_interrupted",
        format!(
            "Task {} interrupted ({why}); it continues with claude --resume {} in {} {then}",
            f.task,
            f.session_uuid,
            f.worktree.display()
        ),
    )
    .with_data(serde_json::json!({ "task": f.task, "session": f.session }));
    let (task, resume) = (f.task.clone(), serde_json::to_string(&resume).ok());
    let _ = ctx
        .handle
        .ask(|reply| Command::TaskInterrupted {
            task,
            resume,
            event,
            reply,
        })
        .await;
}

/// After a worker session: verify and merge a completed task, or put it back.
async fn finish(ctx: &Ctx, f: Finished) {
    super::end(&ctx.handle, &f.session, f.ended.as_ref().ok()).await;
    let id = (ctx.run.id.clone(), f.task.clone());
    let row = ctx
        .db
        .call(move |c| rows::task(c, &id.0, &id.1))
        .await
        .ok()
        .flatten();
    let Some(t) = row else { return };
    let why = match &f.ended {
        Err(e) => format!("the session could not run: {e}"),
        Ok(e) if e.mcp_failed => "the session could not reach the orchestrator's MCP server".into(),
        Ok(e) if e.watchdog.is_some() => e.watchdog.clone().unwrap_or_default(),
        Ok(e) => match &e.outcome {
            Some(o) if o.is_error => format!(
                "the session failed: {}",
                o.text.as_deref().unwrap_or(&o.subtype)
            ),
            Some(_) => "the session ended without calling complete_task".into(),
            None => format!(
                "the session exited (code {}) without a result",
                e.exit_code.map_or("none".into(), |c| c.to_string())
            ),
        },
    };
    let place = salvage::Place {
        project: &ctx.project,
        run: &ctx.run.id,
        task: &t.id,
        attempt: t.attempts,
        worktree: &f.worktree,
        branch: &f.branch,
    };
    let salvaged = salvage::salvage(&place, t.status == TaskStatus::Done).await;
    for n in &salvaged.notes {
        note(
            &ctx.handle,
            Level::Warn,
            "worker_salvaged",
            format!("Task {}: {n}", t.id),
        )
        .await;
    }
    if t.status == TaskStatus::Done
        && !salvaged.kept.is_empty()
        && git::commits_ahead(&ctx.project, &f.base, &f.branch)
            .await
            .is_ok_and(|n| n == 0)
    {
        // Completed, yet the branch holds none of what it committed: never land that as
        // "needed no change".
        let (status, level) = retry_or_fail(t.attempts);
        let failure = format!(
            "you called complete_task, but your branch holds none of the commits you made (you \
             reset or switched away from them; they are kept at {}): commit your work on your \
             task's branch and leave it there",
            salvaged.kept.join(", ")
        );
        update(ctx, &t.id, status, Some(failure), level, "task_not_completed", format!(
            "Task {} not completed (attempt {} of {TASK_ATTEMPTS}): its worker completed it, but its branch {} holds none of the commits it made (kept at {})",
            t.id, t.attempts, f.branch, salvaged.kept.join(", "))).await;
        return;
    }
    match t.status {
        TaskStatus::Done => merge(ctx, &f, &t).await,
        TaskStatus::Failed => {} // the worker gave up for good; the loop fails the run
        _ => {
            // Ended without completing (or fail_task retryable): back on the board, bounded.
            let keep = keep_worktree(&ctx.project, &f).await;
            let (status, level) = retry_or_fail(t.attempts);
            let failure = if t.status == TaskStatus::Pending {
                t.failure.clone().unwrap_or(why)
            } else {
                why
            };
            update(
                ctx,
                &t.id,
                status,
                Some(failure.clone()),
                level,
                "task_not_completed",
                format!(
                    "Task {} not completed (attempt {} of {TASK_ATTEMPTS}): {failure}{keep}",
                    t.id, t.attempts
                ),
            )
            .await;
        }
    }
}

/// Removes a worktree with nothing unmerged; otherwise keeps it and says where.
async fn keep_worktree(project: &std::path::Path, f: &Finished) -> String {
    let dirty = git::porcelain(&f.worktree)
        .await
        .map(|p| !p.is_empty())
        .unwrap_or(true);
    let ahead = git::commits_ahead(&f.worktree, &f.base, "HEAD")
        .await
        .unwrap_or(1);
    if dirty || ahead > 0 {
        format!(
            "; its work is kept in {} (branch {})",
            f.worktree.display(),
            f.branch
        )
    } else {
        let _ = git::worktree_remove(project, &f.worktree, false).await;
        String::new()
    }
}

/// How often a held merge queue looks again whether the run's branch is free.
const HELD_POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// Waits until the run's branch is checked out in no worktree but the daemon's own
/// integration worktree: the daemon never moves a branch under a user's checkout (that would
/// leave the checkout's index and files out of step with its branch). Says once why merges
/// wait and once that they go on. `false` when the run was stopped meanwhile.
async fn branch_free(ctx: &Ctx) -> bool {
    let mine = tokio::fs::canonicalize(&ctx.integration)
        .await
        .unwrap_or_else(|_| ctx.integration.clone());
    let mut held = false;
    loop {
        let mut users = Vec::new();
        for p in git::checked_out_in(&ctx.project, &ctx.run.branch)
            .await
            .unwrap_or_default()
        {
            let p = tokio::fs::canonicalize(&p).await.unwrap_or(p);
            if p != mine {
                users.push(p);
            }
        }
        let Some(at) = users.first() else {
            if held {
                note(
                    &ctx.handle,
                    Level::Info,
                    "merge_resumed",
                    format!("{} is free again; merges go on", ctx.run.branch),
                )
                .await;
            }
            return true;
        };
        if !held {
            held = true;
            note(
                &ctx.handle,
                Level::Warn,
                "merge_held",
                format!(
                    "{branch} is checked out in {at}; the daemon never moves a branch under a \
                     checkout, so merges wait: switch away from {branch} there (git switch -) to \
                     let the run go on",
                    branch = ctx.run.branch,
                    at = at.display()
                ),
            )
            .await;
        }
        tokio::select! {
            () = ctx.cancel.cancelled() => return false,
            () = tokio::time::sleep(HELD_POLL) => {}
        }
    }
}

/// Merges a completed task's branch (`salvage` made it hold the worker's result).
async fn merge(ctx: &Ctx, f: &Finished, t: &TaskRow) {
    if ctx.blocked().is_some() {
        return; // the task stays done and is merged when the run goes on
    }
    // Counted on the branch, not in the worktree: the branch is what gets merged.
    let ahead = match git::commits_ahead(&ctx.project, &f.base, &f.branch).await {
        Ok(n) => n,
        Err(e) => {
            let (status, level) = retry_or_fail(t.attempts);
            update(
                ctx,
                &t.id,
                status,
                Some(format!("its branch {} cannot be read: {e}", f.branch)),
                level,
                "merge_failed",
                format!("Task {}: its branch {} cannot be read: {e}", t.id, f.branch),
            )
            .await;
            return;
        }
    };
    if ahead == 0 {
        let why = format!(
            "Task {} needed no change: {}",
            t.id,
            t.result.as_deref().unwrap_or("no summary")
        );
        landed(ctx, f, t, why).await;
        return;
    }
    // A previous daemon moved the branch but stopped before recording it: merged already.
    if git::commits_ahead(&ctx.project, &ctx.run.branch, &f.branch)
        .await
        .is_ok_and(|n| n == 0)
    {
        let why = format!(
            "Task {} was already merged into {} ({ahead} commits); recorded now",
            t.id, ctx.run.branch
        );
        landed(ctx, f, t, why).await;
        return;
    }
    let message = format!("Merge task {}: {}", t.id, t.title);
    let pre = match git::rev_parse(&ctx.integration, "HEAD").await {
        Ok(p) => p,
        Err(e) => {
            update(
                ctx,
                &t.id,
                TaskStatus::Failed,
                Some(e.to_string()),
                Level::Error,
                "merge_failed",
                format!("Task {} could not be merged: {e}", t.id),
            )
            .await;
            return;
        }
    };
    if ctx.run.options.gate.is_some() && !integration_ready(ctx).await {
        return; // stopped or blocked: the task stays done and is merged when the run goes on
    }
    if !branch_free(ctx).await {
        return; // stopped while held: the task stays done and is merged when the run goes on
    }
    match git::merge(&ctx.integration, &f.branch, &message).await {
        Ok(Merge::Merged) => {
            let verdict = match &ctx.run.options.gate {
                Some(gate) => run_gate(ctx, gate, t).await,
                None => Gate::Passed,
            };
            if let (Some(gate), Gate::CannotRun(why)) = (&ctx.run.options.gate, &verdict) {
                let _ = git::reset_hard(&ctx.integration, &pre).await;
                let why = format!(
                    "the gate `{gate}` cannot run in the integration worktree ({why}); that is \
                     the environment, not the workers' code, so no attempt was spent: give a \
                     --setup that installs what it needs or another --gate, with `orchestrate \
                     resume --setup \"…\"` or `--gate \"…\"`"
                );
                note(
                    &ctx.handle,
                    Level::Error,
                    "gate_cannot_run",
                    format!("Task {}: {why}", t.id),
                )
                .await;
                ctx.block(why);
                return;
            }
            if let Gate::Stopped = verdict {
                // The branch never moves on a gate that did not finish: the task stays done
                // and is merged (gate included) again when the run goes on.
                let _ = git::reset_hard(&ctx.integration, &pre).await;
                note(
                    &ctx.handle,
                    Level::Info,
                    "gate_stopped",
                    format!(
                        "Task {}: the gate was stopped before it finished; {} did not advance, \
                         and the merge is redone when the run goes on",
                        t.id, ctx.run.branch
                    ),
                )
                .await;
                return;
            }
            if let (Some(gate), Gate::Failed(output)) = (&ctx.run.options.gate, verdict) {
                let _ = git::reset_hard(&ctx.integration, &pre).await;
                let first = output
                    .lines()
                    .find(|l| !l.trim().is_empty())
                    .unwrap_or("")
                    .to_owned();
                let failure = format!("the gate `{gate}` failed on the merged result:\n{output}");
                let (status, level) = retry_or_fail(t.attempts);
                update(ctx, &t.id, status, Some(failure), level, "gate_failed", format!(
                    "Task {}: the gate `{gate}` failed on its merge ({first}); the branch did not advance and the task goes back with the output", t.id)).await;
                return;
            }
            if !branch_free(ctx).await {
                let _ = git::reset_hard(&ctx.integration, &pre).await;
                return;
            }
            let advanced = match git::rev_parse(&ctx.integration, "HEAD").await {
                Ok(new) => git::advance_branch(&ctx.project, &ctx.run.branch, &new, &pre).await,
                Err(e) => Err(e),
            };
            if let Err(e) = advanced {
                let _ = git::reset_hard(&ctx.integration, &pre).await;
                update(
                    ctx,
                    &t.id,
                    TaskStatus::Failed,
                    Some(e.to_string()),
                    Level::Error,
                    "merge_failed",
                    format!("Task {}: cannot advance {}: {e}", t.id, ctx.run.branch),
                )
                .await;
                return;
            }
            let done = format!(
                "Task {} merged into {} ({ahead} commits)",
                t.id, ctx.run.branch
            );
            landed(ctx, f, t, done).await;
        }
        Ok(Merge::Conflict(files)) => {
            let failure = format!(
                "merging it conflicted with work merged meanwhile in: {}; redo the task on the new tip of {}",
                files.join(", "),
                ctx.run.branch
            );
            let (status, level) = retry_or_fail(t.attempts);
            update(
                ctx,
                &t.id,
                status,
                Some(failure.clone()),
                level,
                "merge_conflict",
                format!("Task {}: {failure}; its branch {} is kept", t.id, f.branch),
            )
            .await;
        }
        Err(e) => {
            update(
                ctx,
                &t.id,
                TaskStatus::Failed,
                Some(format!("the merge failed: {e}")),
                Level::Error,
                "merge_failed",
                format!("Task {} could not be merged: {e}", t.id),
            )
            .await;
        }
    }
}

/// How a gate ended on one merge.
enum Gate {
    Passed,
    /// Red (or timed out): the end of its output, for the task's next try.
    Failed(String),
    /// The command itself cannot run there (exit 126 or 127, or no shell): the environment's
    /// fault, never the task's.
    CannotRun(String),
    /// The run was paused or cancelled, or the daemon is stopping: the merge is undone and
    /// redone when the run goes on.
    Stopped,
}

/// Runs the gate in the integration worktree with the run's environment, as a bounded child
/// (`crate::child`): output to `.orchestrator/gates/<task>.<attempt>.log`, the last 64 KiB
/// kept, its process group stopped on timeout, pause, cancel and daemon stop.
async fn run_gate(ctx: &Ctx, gate: &str, t: &TaskRow) -> Gate {
    let mut c = tokio::process::Command::new("sh");
    c.arg("-c")
        .arg(gate)
        .current_dir(&ctx.integration)
        .env_clear();
    for (k, v) in &ctx.env.0 {
        c.env(k, v);
    }
    let log = crate::mirror::gate_log(
        &ctx.project,
        &ctx.cfg.data_dir,
        &ctx.run.id,
        &format!("{}.{}.log", t.id, t.attempts),
    );
    let timeout = std::time::Duration::from_secs(ctx.run.options.gate_timeout_secs);
    let started = std::time::Instant::now();
    let ran = match crate::child::run(c, &log, timeout, &ctx.cancel, &ctx.cfg.stopping).await {
        Ok(r) => r,
        Err(e) => return Gate::CannotRun(format!("cannot start sh: {e}")),
    };
    if let crate::child::Exit::Exited(Some(code @ (126 | 127))) = ran.exit {
        let last = ran.tail.trim().lines().last().unwrap_or("").to_owned();
        let what = if code == 127 {
            "not found"
        } else {
            "not executable"
        };
        return Gate::CannotRun(format!("exit {code}, a command {what}: {last}"));
    }
    let code = match ran.exit {
        crate::child::Exit::Exited(Some(0)) => {
            let secs = started.elapsed().as_secs_f64();
            super::note_with(
                &ctx.handle,
                Level::Info,
                "gate_passed",
                format!(
                    "Gate `{gate}` passed on task {}'s merge in {secs:.1}s",
                    t.id
                ),
                serde_json::json!({"task": t.id, "secs": secs}),
            )
            .await;
            return Gate::Passed;
        }
        crate::child::Exit::Stopped => return Gate::Stopped,
        crate::child::Exit::TimedOut(d) => format!(
            "it ran for more than {} and was stopped (--gate-timeout)",
            humane(d)
        ),
        crate::child::Exit::Exited(c) => {
            format!("exit {}", c.map_or("by a signal".into(), |c| c.to_string()))
        }
    };
    Gate::Failed(format!(
        "({code}; the whole output is in {})\n{}",
        ran.log.display(),
        ran.tail.trim()
    ))
}

fn humane(d: std::time::Duration) -> String {
    match d.as_secs() {
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
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

/// The task's work is on the branch (or it needed none): its worktree and task branch have
/// nothing left to keep, and the task is merged.
async fn landed(ctx: &Ctx, f: &Finished, t: &TaskRow, message: String) {
    // Recorded first: a restart in between finds the task merged, and `clean` the leftovers.
    update(
        ctx,
        &t.id,
        TaskStatus::Merged,
        None,
        Level::Info,
        "task_merged",
        message,
    )
    .await;
    let _ = git::worktree_remove(&ctx.project, &f.worktree, false).await;
    if let Ok(tip) = git::rev_parse(&ctx.project, &format!("refs/heads/{}", f.branch)).await {
        let name = format!("{}/{}", ctx.run.id, f.branch.replace('/', "_"));
        if git::backup(&ctx.project, &name, &tip).await.is_ok() {
            // From the integration worktree, whose HEAD contains the branch (`-d` checks that).
            let _ = git::delete_merged_branch(&ctx.integration, &f.branch).await;
        }
    }
}
