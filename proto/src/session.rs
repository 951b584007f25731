//! Agent sessions: opening one gives a bearer token for the MCP endpoint, bound to one run and
//! one role (and optionally one task). The run engine opens them for the sessions it spawns;
//! the API exposes the same call so a human can attach a session by hand.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

crate::states! {
    /// What a session may do on the board.
    pub enum SessionRole {
        Planner = "planner",
        Worker = "worker",
        Reviewer = "reviewer",
    }
}

/// `POST /v1/runs/{id}/sessions`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenSession {
    pub role: SessionRole,
    /// Give the session this task up front (workers may also claim one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// Token lifetime in seconds (default 12 hours, at most 7 days).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttl_secs: Option<u64>,
}

/// The answer to [`OpenSession`]. The token is shown this once; only its hash is stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionGrant {
    pub session: String,
    pub run_id: String,
    pub role: SessionRole,
    pub token: String,
    pub mcp_url: String,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// `DELETE /v1/runs/{id}/sessions/{session}`: the session ended and its token is revoked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionEnded {
    pub session: String,
    /// False when it had already ended.
    pub ended: bool,
}

pub mod defaults {
    pub const TTL_SECS: u64 = 12 * 3600;
    pub const MAX_TTL_SECS: u64 = 7 * 24 * 3600;
}

/// `GET /v1/sessions/stray`: agent processes still running for sessions that are over (ended,
/// or of a finished run). The daemon stops such leftovers itself; `doctor` lists any it finds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StraySession {
    pub run_id: String,
    pub session: String,
    pub role: SessionRole,
    pub pid: i32,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StrayList {
    pub sessions: Vec<StraySession>,
}

/// Query of `GET /v1/runs/{id}/tasks/{task}/output`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadOutput {
    /// Bytes of the session's output already read (the previous answer's `offset`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<u64>,
}

/// A task's newest worker session's output (`orchestrate tail`): complete lines of its stream
/// (claude's stream-json or codex's `--json`) from `after` on, at most 1 MiB a time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskOutput {
    /// The session, if a worker ever started on the task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    pub agent: crate::Agent,
    /// Where the next read starts.
    pub offset: u64,
    pub lines: Vec<String>,
    /// The session is still running (more may come).
    pub live: bool,
}

/// `POST /v1/runs/{id}/tasks/{task}/attach` (`orchestrate attach`): a paused run's interrupted
/// Claude worker handed to a person — where it works, the Claude session to resume, and a
/// worker session (token) of its own for the task's MCP tools.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attached {
    pub session: String,
    pub token: String,
    pub mcp_url: String,
    pub worktree: String,
    pub branch: String,
    /// The Claude session the worker had (`claude --resume`).
    pub claude_session: String,
}

/// `POST /v1/runs/{id}/tasks/{task}/detach`: the person is done; the task continues headless
/// from where they left it (unless they completed it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Detach {
    pub session: String,
}

/// What detaching left.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Detached {
    /// The task's status now (`pending`: it continues headless; `done`: completed there).
    pub status: crate::TaskStatus,
}

/// One agent session of a run, as the dashboard's timeline draws it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionSpan {
    pub session: String,
    pub role: SessionRole,
    /// The task it worked on (workers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task: Option<String>,
    /// The CLI that ran it (`claude`, `codex`).
    pub agent: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cycle: Option<u32>,
    pub cost_usd: f64,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// Still running while `None`.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    pub ended_at: Option<OffsetDateTime>,
}

/// `GET /v1/runs/{id}/sessions`: every session of the run, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SessionList {
    pub sessions: Vec<SessionSpan>,
}
