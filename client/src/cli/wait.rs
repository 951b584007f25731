//! `orchestrate wait`: blocks until the project's run needs a human (escalated, or paused with
//! nothing to resume it by itself) or ends (`--until finished`: only its end), prints where it
//! stands and the question waiting, and exits with the code that says which — the slash
//! command's monitoring loop.

use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use orchestrator_proto::RunStatus;

use super::{Format, Target};
use crate::client::Client;
use crate::error::ClientError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Until {
    /// The run needs a human or ends.
    Escalated,
    /// The run ends (completed, failed, cancelled) or its dry run is planned.
    Finished,
}

#[derive(Debug, Args)]
pub struct WaitArgs {
    #[command(flatten)]
    target: Target,
    /// What to wait for
    #[arg(long, value_enum, default_value_t = Until::Escalated)]
    until: Until,
    /// Give up after this long (e.g. 30s, 10m) with exit code 14, the run still going
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    timeout: Option<Duration>,
    #[command(flatten)]
    format: Format,
}

/// How often the run is looked at.
const POLL: Duration = Duration::from_millis(250);

pub async fn run(client: &Client, a: WaitArgs) -> Result<(), ClientError> {
    let target = a.target.resolve()?;
    let deadline = a.timeout.map(|t| Instant::now() + t);
    loop {
        let run = match client.run(&target).await {
            Ok(r) => r,
            // The daemon restarted: start it again and wait on.
            Err(ClientError::Unreachable { .. }) => {
                crate::autostart::connect(client.socket()).await?;
                continue;
            }
            Err(e) => return Err(e),
        };
        let done = match a.until {
            Until::Escalated => super::ended::stops(&run),
            Until::Finished => !run.status.is_active() || run.status == RunStatus::Planned,
        };
        if done {
            return super::ended::report(client, &run, a.format.json).await;
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            if a.format.json {
                crate::output::json(&serde_json::json!({"run": run, "escalations": []}))?;
            } else {
                crate::outln!("Run {} is still {} ({})", run.id, run.status, run.phase);
            }
            return Err(ClientError::StillRunning(run.status));
        }
        tokio::time::sleep(POLL).await;
    }
}
