//! `orchestrate escalations`: questions runs are waiting on, across all projects.

use clap::Args;
use orchestrator_proto::ListEscalations;

use super::{Format, absolute};
use crate::client::Client;
use crate::error::ClientError;
use crate::output;

#[derive(Debug, Args)]
pub struct EscalationsArgs {
    /// Only this project's
    #[arg(long, short = 'p', value_name = "DIR")]
    project: Option<std::path::PathBuf>,
    /// Include answered escalations
    #[arg(long)]
    all: bool,
    #[command(flatten)]
    format: Format,
}

pub async fn run(client: &Client, a: EscalationsArgs) -> Result<(), ClientError> {
    let q = ListEscalations {
        project: a.project.as_deref().map(absolute).transpose()?,
        all: a.all,
    };
    let list = client.escalations(&q).await?;
    if a.format.json {
        return output::json(&orchestrator_proto::EscalationList { escalations: list });
    }
    if list.is_empty() {
        crate::outln!("No escalations are waiting for you.");
    }
    for (i, e) in list.iter().enumerate() {
        if i > 0 {
            crate::outln!();
        }
        output::escalation(e);
    }
    Ok(())
}
