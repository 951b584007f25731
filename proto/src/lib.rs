//! The wire vocabulary between `orchestratord` and its clients (the `orchestrate` CLI, the
//! `/orchestrate` slash command through the CLI, and anyone with `curl --unix-socket`).
//!
//! Everything that crosses the socket is a type defined here, serialised with serde as JSON.
//! The daemon's domain and database types never cross the socket; they are converted at the
//! API edge. [`locate`] is the other half of the rendezvous: where the socket and the data live.

pub mod clean;
pub mod cost;
pub mod doctor;
pub mod env;
pub mod error;
pub mod escalation;
pub mod event;
pub mod locate;
pub mod models;
pub mod pr;
pub mod review;
pub mod run;
pub mod session;
mod states;

/// What the exported `states!` macro needs from this crate.
#[doc(hidden)]
pub mod __private {
    pub use serde;
}
pub mod task;
pub mod ui;
pub mod usage;
pub mod words;

pub use cost::{CycleCost, Forecast, ModelCost, WindowShare};
pub use env::SessionEnv;
pub use error::{ErrorBody, ErrorCode};
pub use escalation::*;
pub use event::{EscalationKind, EventKind};
pub use models::{Agent, Effort, Models, OnLimit};
pub use run::*;
pub use session::{OpenSession, SessionEnded, SessionGrant, SessionRole};
pub use task::*;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Bumped whenever a request or response shape changes incompatibly. The client refuses to talk
/// to a daemon of another protocol version and says how to restart it. The closed word lists
/// (`EventKind`, `EscalationKind`, `LeftoverKind`, the statuses) are part of it: a new word is
/// a new version, since a client refuses a word it does not know.
pub const PROTOCOL_VERSION: u32 = 9;

/// `GET /v1/health`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Health {
    /// The daemon's crate version, e.g. `0.1.0`.
    pub daemon_version: String,
    /// The daemon's [`PROTOCOL_VERSION`].
    pub protocol_version: u32,
    /// Process id, so `orchestrate daemon status` can say which process answers.
    pub pid: u32,
    #[serde(with = "time::serde::rfc3339")]
    pub started_at: OffsetDateTime,
    /// The socket the daemon listens on.
    pub socket: String,
    /// Where the SQLite database lives.
    pub data_dir: String,
    /// Runs that are not finished (queued, running, paused or escalated).
    pub active_runs: u32,
    /// The workers' MCP endpoint, e.g. `http://127.0.0.1:41234/mcp`.
    pub mcp_url: String,
    /// Runs restored at start-up that have not yet re-attached to (or finished) the sessions
    /// the previous daemon left.
    pub reconciling: u32,
    /// From start-up to every restored run reconciled, once that happened.
    pub reconciled_in_ms: Option<u64>,
    /// Agent sessions run with the user's checkout read-only (the system allows the mount
    /// namespace that takes); `false`: they could write it.
    #[serde(default)]
    pub agents_confined: bool,
    /// The directory of the daemon's log files (`orchestratord.<date>.log`, one a day, a week
    /// kept); `None`: it logs to stderr (a terminal, or journald under systemd).
    #[serde(default)]
    pub log_dir: Option<String>,
}

/// The part of [`Health`] that every protocol version keeps, read before anything else so a
/// client can tell a daemon of another version apart from a broken one. Lenient on purpose.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HealthProbe {
    pub daemon_version: String,
    pub protocol_version: u32,
}
