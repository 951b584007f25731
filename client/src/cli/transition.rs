//! `orchestrate pause|resume|cancel`: move a run; one shape for all three.

use clap::Args;

use super::{Format, Target, transition};
use crate::client::Client;
use crate::error::ClientError;
use crate::output;

#[derive(Debug, Args)]
pub struct TransitionArgs {
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

/// Applies `verb` (`pause`, `resume`, `cancel`) and reports it as `done` ("Paused", …).
pub async fn run(
    client: &Client,
    a: TransitionArgs,
    verb: &str,
    done: &str,
) -> Result<(), ClientError> {
    let run = transition(client, &a.target, verb, a.reason).await?;
    if a.format.json {
        return output::json(&run);
    }
    println!("{done} run {} ({}).", run.id, run.status);
    if a.verbose {
        output::run_summary(&run);
    }
    Ok(())
}
