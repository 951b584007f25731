//! `orchestrate pause`: pause a run.

use clap::Args;

use super::{Format, Target, transition};
use crate::client::Client;
use crate::error::ClientError;
use crate::output;

#[derive(Debug, Args)]
pub struct PauseArgs {
    #[command(flatten)]
    target: Target,
    /// Why (shown in the run's log and status)
    #[arg(long)]
    reason: Option<String>,
    /// Verbose output
    #[arg(long, short = 'v')]
    verbose: bool,
    #[command(flatten)]
    format: Format,
}

pub async fn run(client: &Client, a: PauseArgs) -> Result<(), ClientError> {
    let run = transition(client, &a.target, "pause", a.reason).await?;
    if a.format.json {
        return output::json(&run);
    }
    println!("Paused run {} ({}).", run.id, run.status);
    if a.verbose {
        output::run_summary(&run);
    }
    Ok(())
}
