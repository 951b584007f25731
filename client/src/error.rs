//! Client errors, sorted into the user's to fix and the daemon's, which decides the exit code.

use std::path::PathBuf;

use orchestrator_proto::ErrorBody;

/// Exit codes: distinct for user errors and for daemon/internal failures.
pub mod exit {
    /// Bad input or a request the current state does not allow; one line and a hint.
    pub const USER: u8 = 2;
    /// The daemon could not be reached or started, or failed inside.
    pub const DAEMON: u8 = 1;
    /// `start --follow`, `log -f`, `watch` and `wait` end with the run's state: it waits for
    /// a human (escalated), is paused, failed, or was cancelled (completed is 0).
    pub const ESCALATED: u8 = 10;
    pub const PAUSED: u8 = 11;
    pub const FAILED: u8 = 12;
    pub const CANCELLED: u8 = 13;
    /// `wait --timeout`: the time ran out with the run still going.
    pub const STILL_RUNNING: u8 = 14;
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
    /// A following command ended with the run in a state that is not success; already said
    /// on stdout, so nothing more is printed.
    #[error("the run is {0}")]
    Ended(orchestrator_proto::RunStatus),
    /// `wait --timeout` ran out.
    #[error("the run is still {0} after the timeout")]
    StillRunning(orchestrator_proto::RunStatus),
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
        use orchestrator_proto::RunStatus;
        match self {
            Self::Ended(RunStatus::Escalated) => return exit::ESCALATED,
            Self::Ended(RunStatus::Paused) => return exit::PAUSED,
            Self::Ended(RunStatus::Failed) => return exit::FAILED,
            Self::Ended(RunStatus::Cancelled) => return exit::CANCELLED,
            Self::StillRunning(_) => return exit::STILL_RUNNING,
            _ => {}
        }
        if self.is_user_error() {
            exit::USER
        } else {
            exit::DAEMON
        }
    }
}
