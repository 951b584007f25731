//! `orchestrate resume`: resume a paused run.

use clap::Args;

use super::{Format, Target, transition};
use crate::client::Client;
use crate::error::ClientError;
use crate::output;

#[derive(Debug, Args)]
pub struct ResumeArgs {
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

pub async fn run(client: &Client, a: ResumeArgs) -> Result<(), ClientError> {
    let run = transition(client, &a.target, "resume", a.reason).await?;
    if a.format.json {
        return output::json(&run);
    }
    println!("Resumed run {} ({}).", run.id, run.status);
    if a.verbose {
        output::run_summary(&run);
    }
    Ok(())
}
