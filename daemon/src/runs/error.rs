//! What can go wrong with a run request: the user's mistakes (each with the fix) and faults.

use crate::git::GitError;
use crate::store::StoreError;

/// Kinds of user error; the API maps each to an HTTP status and a `proto::ErrorCode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RejectKind {
    InvalidArgument,
    InvalidProject,
    NotFound,
    Conflict,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The request cannot be honoured as given; nothing was changed.
    #[error("{message}")]
    Rejected {
        kind: RejectKind,
        message: String,
        hint: Option<String>,
    },
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot write {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the daemon is shutting down; run the command again in a moment")]
    ShuttingDown,
}

impl RunError {
    pub fn rejected(kind: RejectKind, message: impl Into<String>) -> Self {
        Self::Rejected {
            kind,
            message: message.into(),
            hint: None,
        }
    }

    /// Adds the fix to a rejection (other errors are returned unchanged).
    pub fn hint(mut self, text: impl Into<String>) -> Self {
        if let Self::Rejected { hint, .. } = &mut self {
            *hint = Some(text.into());
        }
        self
    }

    /// The fix this error suggests, if any.
    pub fn hint_text(&self) -> Option<&str> {
        match self {
            Self::Rejected { hint, .. } => hint.as_deref(),
            _ => None,
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::rejected(RejectKind::InvalidArgument, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::rejected(RejectKind::Conflict, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::rejected(RejectKind::NotFound, message)
    }
}
