//! `POST /v1/clean`: removes what finished runs left, where nothing would be lost.

use axum::extract::State;
use orchestrator_proto::clean::{CleanReport, CleanRequest};

use super::extract::Json;
use super::{ApiError, AppState};

pub async fn clean(
    State(s): State<AppState>,
    Json(req): Json<CleanRequest>,
) -> Result<axum::Json<CleanReport>, ApiError> {
    Ok(axum::Json(s.runs.clean(req).await?))
}
