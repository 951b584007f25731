//! `GET /v1/health` and `POST /v1/daemon/shutdown`.

use axum::extract::State;
use axum::http::StatusCode;
use orchestrator_proto::{Health, PROTOCOL_VERSION};

use super::{ApiError, AppState};

pub async fn health(State(s): State<AppState>) -> Result<axum::Json<Health>, ApiError> {
    let (reconciling, took) = s.reconcile.state();
    Ok(axum::Json(Health {
        daemon_version: env!("CARGO_PKG_VERSION").to_owned(),
        protocol_version: PROTOCOL_VERSION,
        pid: std::process::id(),
        started_at: s.info.started_at,
        socket: s.info.socket.clone(),
        data_dir: s.info.data_dir.clone(),
        active_runs: s.runs.count_active().await?,
        mcp_url: s.info.mcp_url.clone(),
        reconciling: reconciling as u32,
        reconciled_in_ms: took.map(|d| d.as_millis() as u64),
        agents_confined: s.info.agents_confined,
        log_dir: s.info.log_dir.clone(),
    }))
}

/// Asks the daemon to stop: it stops accepting, persists, removes its socket and exits 0.
pub async fn shutdown(State(s): State<AppState>) -> StatusCode {
    tracing::info!("shutdown requested over the API");
    s.shutdown.cancel();
    StatusCode::ACCEPTED
}
