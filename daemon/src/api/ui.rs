//! `POST /v1/ui/login`: a one-time login URL for the dashboard (`orchestrate ui`). Only the
//! user reaches the socket, so only the user can have one.

use axum::extract::State;
use orchestrator_proto::ui::{UiLogin, UiLoginUrl};

use super::extract::OptionalJson;
use super::{ApiError, AppState};

pub async fn login(
    State(s): State<AppState>,
    OptionalJson(req): OptionalJson<UiLogin>,
) -> Result<axum::Json<UiLoginUrl>, ApiError> {
    let next = match req.run {
        Some(id) => format!("/ui/runs/{}", s.runs.get(&id).await?.id),
        None => "/ui/".to_owned(),
    };
    let token = s.ui.mint(next);
    let base = s.info.mcp_url.trim_end_matches("/mcp");
    Ok(axum::Json(UiLoginUrl {
        url: format!("{base}/ui/login?t={token}"),
        expires_in_secs: crate::ui::auth::LOGIN_TTL.as_secs(),
    }))
}
