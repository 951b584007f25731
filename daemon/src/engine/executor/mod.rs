//! Executing the plan: worker sessions in their own worktrees, and the daemon's merge queue.
//!
//! Every ready task (pending, all dependencies merged) is dispatched, up to `--concurrency`,
//! longest remaining critical path first, never two at once whose declared files overlap. Each
//! worker runs in a worktree under `<data_dir>/worktrees/<run>/` on its own branch
//! `orchestrate/<slug>--<task>.<attempt>` from the current tip of `orchestrate/<slug>` (git
//! cannot hold `orchestrate/<slug>/<task>` next to `orchestrate/<slug>`). When its session
//! ends, its slot is free; off the dispatch path (`finishing.rs`) a completed task is verified
//! (leftovers committed, new commits or an explanation) and merged, one at a time, into
//! `orchestrate/<slug>` in the daemon's integration worktree. A
//! conflict or a session that ends without completing puts the task back, up to
//! [`TASK_ATTEMPTS`]; then execution ends `Failed` with the reason and the run asks a human.
//!
//! **Invariant:** a worktree is removed only once its branch is merged (or had nothing to
//! merge); one with unmerged commits or uncommitted changes is kept and named in the log.
//!
//! Interruptions are not attempts: a worker stopped by a pause (the user's or the usage
//! governor's) or by the account's usage limit goes back to pending with where it left off
//! (its Claude session, worktree and branch), and its next dispatch continues that session with
//! `claude --resume` (or `codex exec resume`) in the same worktree. `drain` stops new dispatches but lets running
//! workers finish (the usage governor's grace period).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use orchestrator_proto::{Level, TaskStatus};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::{EngineConfig, note, salvage, session};
use crate::agents::claude::ClaudeCode;
use crate::agents::stream::Failure;
use crate::agents::{AgentKind, SessionSpec};
use crate::board::Role;
use crate::engine::port::{Ask, Port};
use crate::engine::prepare::{Prep, Prepared};
use crate::git::{self, Merge};
use crate::ids::{RunId, SessionId, TaskId};
use crate::store::board::{self as rows, TaskRow};
use crate::store::{Db, NewEvent, RunRow};

mod dispatch;
mod finish;
mod finishing;
mod merge;
mod recover;
mod route;
mod schedule;
mod spare;
mod starts;

pub use spare::{FIRST_SPARES, Spares};

pub use dispatch::SETUP_FAILURES;
use dispatch::*;
use finish::*;
use merge::*;
use recover::*;
use schedule::Schedule;

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
    task: TaskId,
    /// The agent's own session id (claude's `--session-id`, Codex's thread; empty while
    /// unknown).
    session_uuid: String,
    /// The CLI that ran it.
    agent: orchestrator_proto::Agent,
    branch: String,
    base: String,
    worktree: PathBuf,
    session: SessionId,
    ended: std::io::Result<session::Ended>,
    /// How preparing its new worktree went (`None`: a resumed worktree, prepared before).
    prepared: Option<Prepared>,
    /// Why git would not create its new worktree: the worker never ran ([`dispatch::unborn`]).
    unborn: Option<String>,
}

struct Ctx {
    handle: Port,
    db: Db,
    cfg: Arc<EngineConfig>,
    run: RunRow,
    project: PathBuf,
    integration: PathBuf,
    claude: ClaudeCode,
    /// Codex as a worker (`None`: not installed; a task for it says why when it starts).
    codex: Option<crate::agents::codex::worker::CodexWorker>,
    env: orchestrator_proto::SessionEnv,
    /// The run's pause/cancel token (the gate stops with it).
    cancel: CancellationToken,
    /// How new worktrees are prepared (`.worktreeinclude`, `--setup`).
    prep: Prep,
    /// Set when the run cannot go on for a reason of the environment, not of any task (a
    /// setup failing twice in a row, a gate that cannot run): nothing more is dispatched or
    /// merged, and once the running workers end the run stops for a human with this.
    blocked: std::sync::Mutex<Option<String>>,
    /// The forecast as of the last dispatch pass (`None`: no window to size, or no history).
    outlook: std::sync::Mutex<Option<Arc<crate::usage::outlook::Outlook>>>,
    /// The active runs' shares of the window as of the last dispatch pass.
    shares: std::sync::Mutex<Option<Arc<crate::usage::share::Shares>>>,
    /// Merged tasks' worktrees and branches, removed after their merge (`merge::tidy`).
    landed: std::sync::Mutex<Vec<merge::Landed>>,
    /// The integration worktree, one user at a time: a merge with its gate, tidying (which
    /// deletes branches from it), its removal. Fair, so merges land in the order they queued.
    integration_lock: tokio::sync::Mutex<()>,
    /// Worktrees made ahead of need, for workers starting afresh, and the workers whose
    /// worktrees are being made (`spares.starts()`: spares and tidying wait for them).
    spares: Arc<spare::Spares>,
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
    task: &TaskId,
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
    busy: &mut HashMap<TaskId, Vec<String>>,
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
            _ if f.unborn.is_some() => unborn(ctx, &f).await,
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
async fn put_back(ctx: &Ctx, task: &TaskId, resume: Option<Resume>, event: NewEvent) {
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

/// The run's tasks as last committed, from the read connection: a change the loop waits for
/// (a worker's completion, a merge's update) was committed before it was told, so the loop
/// need not queue behind the board's writes to see it.
async fn tasks(db: &Db, run: &RunId) -> Vec<TaskRow> {
    let id = run.to_owned();
    db.read(move |c| rows::tasks(c, &id))
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

/// Codex as the run's worker CLI: `bin`, the config's model and overrides, and the project's
/// git directory (its common one, wherever `.git` points), which worktree commits write.
async fn codex_worker(
    cfg: &EngineConfig,
    bin: PathBuf,
    project: &std::path::Path,
) -> crate::agents::codex::worker::CodexWorker {
    crate::agents::codex::worker::CodexWorker {
        bin,
        model: cfg.codex.worker_model.clone().or(cfg.codex.model.clone()),
        overrides: cfg.codex.overrides.clone(),
        permissions: cfg.permissions,
        git_dir: git::common_dir(project).await.ok(),
    }
}

impl Finished {
    /// Where its worker left off, to continue it: the agent's session id as recorded, or as
    /// its output said when the recording came too late.
    fn place(&self) -> Resume {
        let said = self
            .ended
            .as_ref()
            .ok()
            .and_then(|e| e.agent_session.clone());
        let session = match (self.session_uuid.is_empty(), said) {
            (true, Some(s)) => s,
            _ => self.session_uuid.clone(),
        };
        Resume {
            session,
            worktree: self.worktree.clone(),
            branch: self.branch.clone(),
            base: self.base.clone(),
            agent: self.agent,
        }
    }
}

/// How the run's actor steers an execution.
pub struct Steer {
    /// Stops it (its workers detach and keep running).
    pub cancel: CancellationToken,
    /// Stops new dispatches, letting running workers finish (the usage grace period).
    pub drain: CancellationToken,
    /// The user resumed over a usage hold at this time.
    pub forced_at: Option<time::OffsetDateTime>,
    /// Worktrees made while the plan was made, for the first workers.
    pub spares: Option<Arc<Spares>>,
}

/// Executes the run's plan to the end; never changes the run's status itself.
pub async fn execute(
    handle: Port,
    db: Db,
    cfg: Arc<EngineConfig>,
    run: RunRow,
    steer: Steer,
) -> Executed {
    let (agent, env) = match super::claude_for(&db, &cfg, &run.id).await {
        Ok(x) => x,
        Err(reason) => return Executed::Failed(reason.to_string()),
    };
    let project = PathBuf::from(&run.project);
    let integration = crate::layout::integration(&cfg.data_dir, &run.id);
    if let Err(e) = integration_ready(&project, &integration, &run.branch).await {
        return Executed::Failed(format!(
            "cannot create the integration worktree for {}: {e}",
            run.branch
        ));
    }
    let prep = Prep::for_run(&cfg, &run, &env, &steer.cancel);
    let codex = match crate::agents::locate(AgentKind::Codex, &env, cfg.codex_bin.as_deref()) {
        Ok(bin) => Some(codex_worker(&cfg, bin, &project).await),
        Err(_) => None,
    };
    let ctx = Ctx {
        spares: steer
            .spares
            .unwrap_or_else(|| Spares::for_run(&cfg.data_dir, &run)),
        claude: agent,
        codex,
        handle,
        db,
        cfg,
        project,
        integration,
        env,
        run,
        cancel: steer.cancel.clone(),
        prep,
        blocked: std::sync::Mutex::new(None),
        outlook: std::sync::Mutex::new(None),
        shares: std::sync::Mutex::new(None),
        landed: std::sync::Mutex::new(Vec::new()),
        integration_lock: tokio::sync::Mutex::new(()),
    };
    let mut running: JoinSet<Finished> = JoinSet::new();
    let mut busy: HashMap<TaskId, Vec<String>> = HashMap::new();
    // What a previous daemon (or a pause) left: live workers re-attached, the rest finished.
    let adopted = reconcile(&ctx, &steer.cancel, &mut running, &mut busy).await;
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
    // `--verbose`: every git command of the loop (worktrees, merges) in the log, timed.
    let told = (ctx.run.options.verbose)
        .then(|| crate::engine::tool_sink(&ctx.handle, "The executor".into()));
    let ctx = Arc::new(ctx);
    let schedule = Schedule {
        finishing: finishing::Finishing::new(Arc::clone(&ctx), told.clone()),
        ctx,
        cancel: steer.cancel,
        drain: steer.drain,
        stopping,
        forced_at: steer.forced_at,
        running,
        busy,
        waits: HashMap::new(),
        setup_streak: 0,
    };
    match told {
        Some(sink) => git::told(sink, schedule.run()).await,
        None => schedule.run().await,
    }
}

/// The integration worktree, detached at the branch tip: the branch itself only moves once a
/// merge passed the gate. One a crash left unusable (a git command cut short) is made again:
/// it holds no work.
async fn integration_ready(
    project: &std::path::Path,
    integration: &std::path::Path,
    branch: &str,
) -> Result<(), String> {
    let mut ready = Err(None);
    if integration.exists() {
        ready = git::reset_hard(integration, branch).await.map_err(Some);
        if ready.is_err() {
            let _ = git::worktree_remove(project, integration, true).await;
            let _ = git::worktree_prune(project).await;
        }
    }
    if ready.is_err() && !integration.exists() {
        ready = git::worktree_add_detached(project, integration, branch)
            .await
            .map_err(Some);
    }
    ready.map_err(|e| e.map_or_else(|| "it is in the way".to_owned(), |e| e.to_string()))
}

/// Back on the board while attempts remain; failed (and escalated by the run) after that.
fn retry_or_fail(attempts: u32) -> (TaskStatus, Level) {
    if attempts >= TASK_ATTEMPTS {
        (TaskStatus::Failed, Level::Error)
    } else {
        (TaskStatus::Pending, Level::Warn)
    }
}
