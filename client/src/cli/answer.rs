//! `orchestrate answer [<id>] "<guidance>"`: answer an escalation; an escalated run continues
//! with the guidance. The id is an escalation's number or a run's id (its pending escalation);
//! without one, the project's pending escalation is answered.

use clap::Args;
use orchestrator_proto::ListEscalations;

use super::{Format, absolute};
use crate::client::Client;
use crate::error::ClientError;
use crate::output;

#[derive(Debug, Args)]
pub struct AnswerArgs {
    /// `[<id>] "<guidance>"`: the escalation's number (from `orchestrate escalations`) or a
    /// run's id — optional when the project has a single pending escalation — and your answer
    /// (`-` reads it from stdin)
    #[arg(num_args = 1..=2, value_names = ["ID", "GUIDANCE"], required = true)]
    args: Vec<String>,
    /// Project directory, to answer its pending escalation
    #[arg(long, short = 'p', value_name = "DIR", default_value = ".")]
    project: std::path::PathBuf,
    #[command(flatten)]
    change: super::transition::ChangeArgs,
    #[command(flatten)]
    format: Format,
}

pub async fn run(client: &Client, a: AnswerArgs) -> Result<(), ClientError> {
    let (id, run, text) = match a.args.as_slice() {
        [run, text] if run.starts_with("r-") => (None, Some(run.clone()), text.clone()),
        [id, text] => {
            let id = id.parse::<u64>().map_err(|_| {
                ClientError::usage(
                    format!("`{id}` is neither an escalation number nor a run id"),
                    "write `orchestrate answer <id> \"<guidance>\"`; `orchestrate escalations` lists the ids",
                )
            })?;
            (Some(id), None, text.clone())
        }
        [text] => (None, None, text.clone()),
        _ => unreachable!("clap allows one or two values"),
    };
    let text = if text == "-" {
        std::io::read_to_string(std::io::stdin())?
    } else {
        text
    };
    let id = match id {
        Some(id) => id,
        None => {
            let project = absolute(&a.project)?;
            let mut pending = client
                .escalations(&ListEscalations {
                    project: if run.is_some() {
                        None
                    } else {
                        Some(project.clone())
                    },
                    history: false,
                })
                .await?;
            let place = match &run {
                Some(r) => {
                    pending.retain(|e| &e.run_id == r);
                    format!("run {r}")
                }
                None => project.to_string(),
            };
            match pending.as_slice() {
                [one] => one.id,
                [] => {
                    return Err(ClientError::usage(
                        format!("no escalation is waiting in {place}"),
                        "`orchestrate escalations --all` lists the ones waiting in every project",
                    ));
                }
                many => {
                    return Err(ClientError::usage(
                        format!(
                            "{} escalations are waiting in {place}: {}",
                            many.len(),
                            many.iter()
                                .map(|e| format!("#{}", e.id))
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                        "name one: `orchestrate answer <id> \"<guidance>\"`",
                    ));
                }
            }
        }
    };
    let e = client.answer(id, text, a.change.change()).await?;
    if a.format.json {
        output::json(&e)
    } else {
        crate::outln!(
            "Answered escalation #{} of run {}. An escalated run continues with your guidance; `orchestrate status` shows it.",
            e.id,
            e.run_id
        );
        Ok(())
    }
}
