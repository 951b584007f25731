//! The bearer-token layer in front of `/mcp`. Identity comes from the token on every request —
//! never from an MCP session id — and is handed to the tools as a [`Caller`] extension.

use axum::extract::{Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use orchestrator_proto::{ErrorBody, ErrorCode};

use crate::runs::Runs;

fn unauthorized(message: &str) -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(
            header::WWW_AUTHENTICATE,
            "Bearer realm=\"orchestratord\", error=\"invalid_token\"",
        )],
        axum::Json(ErrorBody {
            code: ErrorCode::Unauthorized,
            message: message.to_owned(),
            hint: Some(
                "use the token the daemon gave this session, as `Authorization: Bearer <token>`"
                    .into(),
            ),
        }),
    )
        .into_response()
}

pub async fn bearer(State(runs): State<Runs>, mut req: Request, next: Next) -> Response {
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return unauthorized("no bearer token");
    };
    match runs.authenticate(token).await {
        Ok(Some(caller)) => {
            req.extensions_mut().insert(caller);
            next.run(req).await
        }
        Ok(None) => unauthorized("unknown, revoked or expired token"),
        Err(e) => {
            tracing::error!(cause = %e, "cannot check an MCP token");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "cannot check the token now",
            )
                .into_response()
        }
    }
}
