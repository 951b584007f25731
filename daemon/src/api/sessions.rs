//! `POST /v1/runs/{id}/sessions` (open an agent session, get its MCP token) and
//! `DELETE /v1/runs/{id}/sessions/{session}` (end it, revoking the token).

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use orchestrator_proto::session::defaults;
use orchestrator_proto::{OpenSession, SessionEnded, SessionGrant};

use super::extract::Json;
use super::{ApiError, AppState};
use crate::runs::{Command, RunError};

pub async fn open(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Json(req): Json<OpenSession>,
) -> Result<(StatusCode, axum::Json<SessionGrant>), ApiError> {
    let ttl = req.ttl_secs.unwrap_or(defaults::TTL_SECS);
    if ttl > defaults::MAX_TTL_SECS {
        return Err(
            RunError::invalid(format!("ttl_secs {ttl} is over the maximum"))
                .hint(format!("use at most {} (7 days)", defaults::MAX_TTL_SECS))
                .into(),
        );
    }
    let role = req.role;
    let grant = s
        .runs
        .command(&id, |reply| Command::OpenSession {
            role,
            task: req.task.map(crate::ids::TaskId::from),
            ttl: Duration::from_secs(ttl),
            reply,
        })
        .await?;
    Ok((
        StatusCode::CREATED,
        axum::Json(SessionGrant {
            session: grant.session.into(),
            run_id: id,
            role: req.role,
            token: grant.token,
            mcp_url: s.info.mcp_url.clone(),
            expires_at: grant.expires_at,
        }),
    ))
}

pub async fn end(
    State(s): State<AppState>,
    Path((id, session)): Path<(String, String)>,
) -> Result<axum::Json<SessionEnded>, ApiError> {
    let sid = session.clone();
    let ended = s
        .runs
        .command(&id, |reply| Command::EndSession {
            session: sid.into(),
            usage: None,
            reply,
        })
        .await?;
    Ok(axum::Json(SessionEnded { session, ended }))
}

/// `GET /v1/sessions/stray`: agent processes of sessions that are over but still run.
pub async fn stray(
    axum::extract::State(s): axum::extract::State<super::AppState>,
) -> Result<axum::Json<orchestrator_proto::session::StrayList>, super::ApiError> {
    Ok(axum::Json(orchestrator_proto::session::StrayList {
        sessions: s.runs.stray_sessions().await?,
    }))
}
