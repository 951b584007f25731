//! The error body every non-2xx response carries: a stable machine-readable `code`, a sentence
//! for humans, and optionally a hint naming the fix.

use serde::{Deserialize, Serialize};

/// Stable error codes. Clients branch on these, never on the message text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request body is not valid JSON, has the wrong shape, or has unknown fields.
    InvalidRequest,
    /// The request body exceeds the daemon's limit (1 MiB).
    PayloadTooLarge,
    /// The request's content type is not `application/json`.
    UnsupportedMediaType,
    /// A field's value is out of range or otherwise unusable (names the field and the fix).
    InvalidArgument,
    /// The project path is not a usable git work tree.
    InvalidProject,
    /// No such run, escalation or route.
    NotFound,
    /// The route exists but not for this HTTP method.
    MethodNotAllowed,
    /// The request conflicts with the current state (e.g. a second active run in a project,
    /// resuming a run that is not paused).
    Conflict,
    /// No valid bearer token (MCP endpoint).
    Unauthorized,
    /// The daemon is shutting down.
    Unavailable,
    /// A fault inside the daemon; the message says what failed.
    Internal,
    /// A code this client does not know (sent by a newer daemon).
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// Whether the error is the user's to fix (bad input, wrong state) rather than the daemon's.
    pub fn is_user_error(self) -> bool {
        !matches!(self, Self::Unavailable | Self::Internal | Self::Unknown)
    }
}

/// `{code, message, hint?}`: the body of every error response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
    /// What to do about it, when there is something to do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

impl std::fmt::Display for ErrorBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ErrorBody {}
