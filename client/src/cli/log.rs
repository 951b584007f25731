//! `orchestrate log [-n N] [-f]`: the run's event log.

use clap::Args;
use orchestrator_proto::ReadEvents;

use super::{Format, Target};
use crate::client::Client;
use crate::error::ClientError;
use crate::output;

#[derive(Debug, Args)]
pub struct LogArgs {
    #[command(flatten)]
    target: Target,
    /// Number of lines to show
    #[arg(short = 'n', long, default_value_t = 100)]
    lines: u32,
    /// Keep printing new lines until the run needs you or ends (the exit code says which)
    #[arg(short = 'f', long)]
    follow: bool,
    /// With --json: one JSON event a line
    #[command(flatten)]
    format: Format,
}

pub async fn run(client: &Client, a: LogArgs) -> Result<(), ClientError> {
    let run = client.run(&a.target.resolve()?).await?;
    if a.follow {
        let json = a.format.json;
        let end = super::ended::follow(client, &run.id, Some(a.lines), |e| {
            if json {
                crate::outln!("{}", serde_json::to_string(e).unwrap_or_default());
            } else {
                output::event_line(e);
            }
        })
        .await?;
        return super::ended::report(client, &end, json).await;
    }
    let q = ReadEvents {
        after: None,
        tail: Some(a.lines),
        follow: false,
    };
    let events = client.events(&run.id, &q).await?;
    if a.format.json {
        return output::json(&orchestrator_proto::EventList { events });
    }
    for e in &events {
        output::event_line(e);
    }
    Ok(())
}
