//! `GET /v1/escalations` and `POST /v1/escalations/{id}/answer`.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use orchestrator_proto::{
    AnswerEscalation, ErrorCode, Escalation, EscalationList, ListEscalations,
};

use super::extract::{Json, Query};
use super::{ApiError, AppState};
use crate::wire;

pub async fn list(
    State(s): State<AppState>,
    Query(q): Query<ListEscalations>,
) -> Result<axum::Json<EscalationList>, ApiError> {
    let rows = s.runs.escalations(q.project, q.history).await?;
    Ok(axum::Json(EscalationList {
        escalations: rows.iter().map(wire::escalation).collect(),
    }))
}

pub async fn answer(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Json(req): Json<AnswerEscalation>,
) -> Result<axum::Json<Escalation>, ApiError> {
    let id: u64 = id.parse().map_err(|_| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            ErrorCode::NotFound,
            format!("no escalation {id}"),
        )
        .with_hint("escalation ids are numbers; `orchestrate escalations` lists them")
    })?;
    let row = s.runs.answer(id, req.answer, req.change).await?;
    Ok(axum::Json(wire::escalation(&row)))
}
