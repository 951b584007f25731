//! The run engine: what moves a run forward. The run's actor starts it, owns its cancel token,
//! and is the only one to change the run's status; engine tasks ask the actor through their
//! `port::Port` (a closed `Ask` enum: opening and ending sessions, notes, task reports) and end
//! with an `Outcome` the actor awaits.
//!
//! A cycle: the planner (a Claude Code session) submits a plan through the MCP endpoint; Codex
//! may review it (`review`) and the planner revise it; workers execute it (`executor`, with the
//! merge queue); Codex reviews the branch, and blocking findings start the next cycle.

pub mod error;
pub mod executor;
pub mod feed;
pub mod include;
pub mod planner;
pub mod port;
pub mod prepare;
pub mod process;
pub mod reap;
pub mod review;
pub mod salvage;
pub mod session;
pub mod verify;
pub mod watch;

use std::path::PathBuf;

use crate::agents::claude::Permissions;

/// What engine tasks need from the daemon, fixed at start-up.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The workers' MCP endpoint.
    pub mcp_url: String,
    /// Worktrees live under `<data_dir>/worktrees/<run>/`, outside the user's work tree.
    pub data_dir: PathBuf,
    pub permissions: Permissions,
    /// `[agents] claude_bin` from the config file, if set.
    pub claude_bin: Option<PathBuf>,
    /// Desktop notifications on.
    pub notifications: bool,
    /// Webhooks told of the same notices.
    pub webhooks: Vec<crate::notify::webhook::Webhook>,
    /// `[agents] codex_bin` from the config file, if set.
    pub codex_bin: Option<PathBuf>,
    /// `[codex]`.
    pub codex: crate::config::CodexSettings,
    /// The account's usage windows, fed by every session's stream.
    pub usage: crate::usage::Usage,
    /// `[usage] grace_secs`.
    pub usage_grace: std::time::Duration,
    /// `[usage] reset_margin_secs`: work resumes this long after a window's reset.
    pub usage_margin: time::Duration,
    /// `[supervision]`: the watchdogs over sessions.
    pub limits: watch::Limits,
    /// Every session's last MCP call.
    pub activity: watch::Activity,
    /// The MCP tokens the database accepted, remembered until a session ends.
    pub tokens: crate::mcp::tokens::Tokens,
    /// Cancelled when the daemon stops: workers are left running, to be re-attached.
    pub stopping: tokio_util::sync::CancellationToken,
    /// Restored runs still reconciling.
    pub reconcile: watch::Reconcile,
    /// When this daemon started: sessions opened before were left by a previous one.
    pub started_at: time::OffsetDateTime,
    /// `[worktrees] setup`: the setup of a project's first run when `start` gives none.
    pub default_setup: Option<String>,
    /// `[models]`: the models of a project's first run when `start` gives none.
    pub default_models: orchestrator_proto::Models,
    /// Agent sessions run with the user's checkout read-only (`crate::confine`): the system
    /// allowed it when the daemon started.
    pub confined: bool,
    /// Every run's events, for the dashboard.
    pub feed: feed::Feed,
}

impl EngineConfig {
    /// How a session working in `cwd` is kept out of `project`'s working tree
    /// (`crate::confine`); `None` where the system or the layout does not allow it.
    pub fn confinement(
        &self,
        project: &std::path::Path,
        cwd: &std::path::Path,
        env: &orchestrator_proto::SessionEnv,
    ) -> Option<crate::confine::Confinement> {
        let home = env.get("HOME").map(std::path::Path::new);
        self.confined
            .then(|| crate::confine::Confinement::new(project, cwd, home, &self.data_dir))
            .flatten()
    }

    /// Records a session's process and parse position in its row, with its MCP calls.
    pub fn record(
        &self,
        db: &crate::store::Db,
        session: &crate::ids::SessionId,
        place: Option<crate::store::sessions::WorkerPlace>,
    ) -> session::Record {
        session::Record {
            db: db.clone(),
            session: session.clone(),
            place,
            activity: self.activity.clone(),
        }
    }
}

/// Planner sessions tried before the run asks a human for want of a plan.
pub const PLANNER_ATTEMPTS: u32 = 3;

/// The run's session environment and its Claude Code backend, or why there is none.
pub async fn claude_for(
    db: &crate::store::Db,
    cfg: &EngineConfig,
    run: &crate::ids::RunId,
) -> Result<
    (
        crate::agents::claude::ClaudeCode,
        orchestrator_proto::SessionEnv,
    ),
    error::EngineError,
> {
    let env = run_env(db, run).await?;
    let bin = crate::agents::locate(
        crate::agents::AgentKind::Claude,
        &env,
        cfg.claude_bin.as_deref(),
    )?;
    Ok((
        crate::agents::claude::ClaudeCode {
            bin,
            permissions: cfg.permissions,
        },
        env,
    ))
}

/// The run's session environment (the user's, as captured by `orchestrate start`).
pub async fn run_env(
    db: &crate::store::Db,
    run: &crate::ids::RunId,
) -> Result<orchestrator_proto::SessionEnv, error::EngineError> {
    let id = run.clone();
    Ok(db.call(move |c| crate::store::runs::env(c, &id)).await?)
}

/// Records an engine step in the run's log (through its actor, like any other change).
pub(crate) async fn note(
    handle: &crate::engine::port::Port,
    level: orchestrator_proto::Level,
    kind: orchestrator_proto::EventKind,
    message: String,
) {
    note_with(handle, level, kind, message, serde_json::Value::Null).await;
}

/// [`note`] with machine-readable `data` for the event.
pub(crate) async fn note_with(
    handle: &crate::engine::port::Port,
    level: orchestrator_proto::Level,
    kind: orchestrator_proto::EventKind,
    message: String,
    data: serde_json::Value,
) {
    let mut event = crate::store::NewEvent {
        level,
        ..crate::store::NewEvent::info(kind, message)
    };
    if !data.is_null() {
        event = event.with_data(data);
    }
    let _ = handle
        .ask(|reply| crate::engine::port::Ask::Note { event, reply })
        .await;
}

/// For `--verbose` runs: each tool call of a session as a debug event, "`who`: Bash npm test".
pub(crate) fn tool_sink(handle: &crate::engine::port::Port, who: String) -> session::ToolSink {
    let handle = handle.clone();
    std::sync::Arc::new(move |call: &str| {
        let (h, message) = (handle.clone(), format!("{who}: {call}"));
        tokio::spawn(async move {
            let kind = orchestrator_proto::EventKind::ToolCalled;
            note(&h, orchestrator_proto::Level::Debug, kind, message).await;
        });
    })
}

/// Ends a session (revoking its token), recording its cost and tokens when known.
pub(crate) async fn end_session(
    handle: &crate::engine::port::Port,
    session: &crate::ids::SessionId,
    usage: Option<crate::store::sessions::Spent>,
) {
    let session = session.clone();
    let _ = handle
        .ask(|reply| crate::engine::port::Ask::EndSession {
            session,
            usage,
            reply,
        })
        .await;
}

/// Ends a Claude session with what its `result` line says it cost.
pub(crate) async fn end(
    handle: &crate::engine::port::Port,
    session: &crate::ids::SessionId,
    ended: Option<&session::Ended>,
) {
    let usage = ended.and_then(|e| {
        let o = e.outcome.as_ref()?;
        Some(crate::store::sessions::Spent {
            cost_usd: o.cost_usd,
            input_tokens: o.input_tokens,
            output_tokens: o.output_tokens,
            model: e.model.clone(),
        })
    });
    end_session(handle, session, usage).await;
}
