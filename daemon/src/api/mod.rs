//! The JSON API on the Unix socket: axum routes under `/v1`, thin adapters over [`Runs`].
//!
//! **Boundary:** handlers speak `proto` types only; rows are converted in `crate::wire`.
//! Every failure is an [`ApiError`] (`{code, message, hint}` with the right status), including
//! unknown routes, wrong methods, bad JSON and oversized bodies.

mod clean;
mod daemon;
pub mod error;
mod escalations;
mod extract;
mod history;
mod runs;
mod sessions;
mod ui;
mod usage;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::StatusCode;
use axum::routing::{get, post};
use orchestrator_proto::ErrorCode;
use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

pub use error::ApiError;

use crate::runs::Runs;

/// Largest request body accepted.
pub const BODY_LIMIT: usize = 1024 * 1024;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub runs: Runs,
    pub info: Arc<DaemonInfo>,
    /// Cancelled by `POST /v1/daemon/shutdown` (and by signals, in the binary).
    pub shutdown: CancellationToken,
    /// The account's usage windows, for `GET /v1/usage`.
    pub usage: crate::usage::Usage,
    /// Restored runs still reconciling, for `/v1/health`.
    pub reconcile: crate::engine::watch::Reconcile,
    /// The dashboard's login tokens not used yet.
    pub ui: Arc<crate::ui::auth::Logins>,
}

/// Facts about this daemon process, for `/v1/health`.
#[derive(Debug)]
pub struct DaemonInfo {
    pub started_at: OffsetDateTime,
    pub socket: String,
    pub data_dir: String,
    /// The workers' MCP endpoint.
    pub mcp_url: String,
    /// Agent sessions cannot write the user's checkout (`crate::confine`).
    pub agents_confined: bool,
    /// The directory of the daemon's log files, when it logs to files.
    pub log_dir: Option<String>,
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/health", get(daemon::health))
        .route("/v1/daemon/shutdown", post(daemon::shutdown))
        .route("/v1/runs", get(runs::list).post(runs::submit))
        .route("/v1/runs/current", get(runs::current))
        .route("/v1/runs/{id}", get(runs::get))
        .route("/v1/runs/{id}/events", get(runs::events))
        .route("/v1/runs/{id}/tasks", get(runs::tasks))
        .route("/v1/runs/{id}/cost", get(runs::cost))
        .route("/v1/runs/{id}/reviews", get(history::reviews))
        .route("/v1/runs/{id}/messages", post(runs::tell))
        .route("/v1/runs/{id}/pr", post(runs::pr))
        .route("/v1/runs/{id}/tasks/{task}/output", get(runs::output))
        .route("/v1/runs/{id}/tasks/{task}/attach", post(runs::attach))
        .route("/v1/runs/{id}/tasks/{task}/detach", post(runs::detach))
        .route("/v1/runs/{id}/pause", post(runs::pause))
        .route("/v1/runs/{id}/resume", post(runs::resume))
        .route("/v1/runs/{id}/cancel", post(runs::cancel))
        .route(
            "/v1/runs/{id}/sessions",
            get(history::sessions).post(sessions::open),
        )
        .route(
            "/v1/runs/{id}/sessions/{session}",
            axum::routing::delete(sessions::end),
        )
        .route("/v1/usage", get(usage::get))
        .route("/v1/clean", post(clean::clean))
        .route("/v1/ui/login", post(ui::login))
        .route("/v1/sessions/stray", get(sessions::stray))
        .route("/v1/escalations", get(escalations::list))
        .route("/v1/escalations/{id}/answer", post(escalations::answer))
        .fallback(unknown_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .with_state(state)
}

/// What the dashboard may call, under `/ui/api` behind its session (`crate::ui`): reading
/// runs and their parts, the account's usage and escalations, and the user's own pause,
/// resume, cancel and answers — never a session's token, `clean`, or the daemon's shutdown.
pub fn ui_routes() -> Router<AppState> {
    Router::new()
        .route("/runs", get(runs::list))
        .route("/runs/{id}", get(runs::get))
        .route("/runs/{id}/events", get(runs::events))
        .route("/runs/{id}/tasks", get(runs::tasks))
        .route("/runs/{id}/cost", get(runs::cost))
        .route("/runs/{id}/sessions", get(history::sessions))
        .route("/runs/{id}/reviews", get(history::reviews))
        .route("/runs/{id}/tasks/{task}/output", get(runs::output))
        .route("/runs/{id}/pause", post(runs::pause))
        .route("/runs/{id}/resume", post(runs::resume))
        .route("/runs/{id}/cancel", post(runs::cancel))
        .route("/usage", get(usage::get))
        .route("/escalations", get(escalations::list))
        .route("/escalations/{id}/answer", post(escalations::answer))
        .fallback(unknown_route)
        .method_not_allowed_fallback(wrong_method)
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
}

async fn unknown_route(uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        ErrorCode::NotFound,
        format!("no route {}", uri.path()),
    )
    .with_hint("routes live under /v1, e.g. GET /v1/health or GET /v1/runs")
}

async fn wrong_method(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        ErrorCode::MethodNotAllowed,
        format!("{} does not accept {method}", uri.path()),
    )
}
