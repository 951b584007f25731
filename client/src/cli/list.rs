//! `orchestrate list`: every run of every project.

use clap::Args;
use orchestrator_proto::{ListRuns, RunStatus};

use super::{Format, absolute};
use crate::client::Client;
use crate::error::ClientError;
use crate::output;

#[derive(Debug, Args)]
pub struct ListArgs {
    /// Only runs with this status (queued, running, paused, escalated, completed, failed, cancelled)
    #[arg(long)]
    status: Option<RunStatus>,
    /// Only runs of this project
    #[arg(long, short = 'p', value_name = "DIR")]
    project: Option<std::path::PathBuf>,
    #[command(flatten)]
    format: Format,
}

pub async fn run(client: &Client, a: ListArgs) -> Result<(), ClientError> {
    let q = ListRuns {
        project: a.project.as_deref().map(absolute).transpose()?,
        status: a.status,
    };
    let runs = client.list(&q).await?;
    if a.format.json {
        output::json(&orchestrator_proto::RunList { runs })
    } else {
        output::run_table(&runs);
        Ok(())
    }
}
