//! Client errors, sorted into the user's to fix and the daemon's, which decides the exit code.

use std::path::PathBuf;

use orchestrator_proto::ErrorBody;

/// Exit codes: distinct for user errors and for daemon/internal failures.
pub mod exit {
    /// Bad input or a request the current state does not allow; one line and a hint.
    pub const USER: u8 = 2;
    /// The daemon could not be reached or started, or failed inside.
    pub const DAEMON: u8 = 1;
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The daemon answered with an error body.
    #[error("{0}")]
    Api(ErrorBody),
    /// Bad input caught before asking the daemon.
    #[error("{message}")]
    Usage {
        message: String,
        hint: Option<String>,
    },
    #[error("cannot reach orchestratord on {socket}: {source}")]
    Unreachable {
        socket: PathBuf,
        #[source]
        source: reqwest::Error,
    },
    #[error(
        "orchestratord on {socket} speaks protocol {daemon} (version {daemon_version}), \
         but this orchestrate speaks protocol {ours} (version {our_version})"
    )]
    ProtocolMismatch {
        socket: PathBuf,
        daemon: u32,
        daemon_version: String,
        ours: u32,
        our_version: &'static str,
    },
    #[error("cannot start orchestratord: {0}")]
    Autostart(String),
    #[error("unexpected answer from orchestratord: {0}")]
    Decode(String),
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

impl ClientError {
    pub fn usage(message: impl Into<String>, hint: impl Into<String>) -> Self {
        Self::Usage {
            message: message.into(),
            hint: Some(hint.into()),
        }
    }

    /// Whether the user can fix it by changing the command.
    pub fn is_user_error(&self) -> bool {
        match self {
            Self::Api(body) => body.code.is_user_error(),
            Self::Usage { .. } => true,
            _ => false,
        }
    }

    /// The fix, when there is one to suggest.
    pub fn hint(&self) -> Option<String> {
        match self {
            Self::Api(body) => body.hint.clone(),
            Self::Usage { hint, .. } => hint.clone(),
            Self::Unreachable { .. } => Some(
                "check `orchestrate daemon status`; the daemon's logs are in logs/ in its data directory".into(),
            ),
            Self::ProtocolMismatch { .. } => Some(
                "restart the daemon so it matches this client: `orchestrate daemon stop`, then run your command again (it starts the new daemon)".into(),
            ),
            Self::Autostart(_) => Some(
                "start it by hand with `orchestratord` to see why, or check logs/ in the data directory".into(),
            ),
            _ => None,
        }
    }

    pub fn exit_code(&self) -> u8 {
        if self.is_user_error() {
            exit::USER
        } else {
            exit::DAEMON
        }
    }
}
