//! `orchestrate status`: the project's current run.

use clap::Args;

use super::{Format, Target};
use crate::client::Client;
use crate::error::ClientError;
use crate::output;

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    format: Format,
}

pub async fn run(client: &Client, a: StatusArgs) -> Result<(), ClientError> {
    let run = client.run(&a.target.resolve()?).await?;
    if a.format.json {
        output::json(&run)
    } else {
        output::run_summary(&run);
        if run.progress.tasks > 0 {
            // Workers, retried tasks, and every task's checks.
            output::task_lines(&client.tasks(&run.id).await?);
        }
        Ok(())
    }
}
