//! `ApiError`: the one place errors become HTTP statuses and `proto::ErrorBody`s.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use orchestrator_proto::{ErrorBody, ErrorCode};

use crate::runs::{RejectKind, RunError};

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub body: ErrorBody,
}

impl ApiError {
    pub fn new(status: StatusCode, code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            status,
            body: ErrorBody {
                code,
                message: message.into(),
                hint: None,
            },
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.body.hint = Some(hint.into());
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(self.body)).into_response()
    }
}

impl From<RunError> for ApiError {
    fn from(e: RunError) -> Self {
        match e {
            RunError::Rejected {
                kind,
                message,
                hint,
            } => {
                let (status, code) = match kind {
                    RejectKind::InvalidArgument => {
                        (StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::InvalidArgument)
                    }
                    RejectKind::InvalidProject => {
                        (StatusCode::UNPROCESSABLE_ENTITY, ErrorCode::InvalidProject)
                    }
                    RejectKind::NotFound => (StatusCode::NOT_FOUND, ErrorCode::NotFound),
                    RejectKind::Conflict => (StatusCode::CONFLICT, ErrorCode::Conflict),
                };
                Self {
                    status,
                    body: ErrorBody {
                        code,
                        message,
                        hint,
                    },
                }
            }
            RunError::ShuttingDown => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ErrorCode::Unavailable,
                e.to_string(),
            ),
            other => {
                tracing::error!(cause = %other, "request failed inside the daemon");
                Self::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    ErrorCode::Internal,
                    other.to_string(),
                )
                .with_hint("see the daemon's log (orchestrate daemon status shows where)")
            }
        }
    }
}
