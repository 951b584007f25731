//! `orchestrate answer <id> "<text>"`: answer an escalation.

use clap::Args;

use super::Format;
use crate::client::Client;
use crate::error::ClientError;
use crate::output;

#[derive(Debug, Args)]
pub struct AnswerArgs {
    /// The escalation's number (from `orchestrate escalations`)
    id: u64,
    /// Your answer or guidance; `-` reads it from standard input
    answer: String,
    #[command(flatten)]
    format: Format,
}

pub async fn run(client: &Client, a: AnswerArgs) -> Result<(), ClientError> {
    let text = if a.answer == "-" {
        std::io::read_to_string(std::io::stdin())?
    } else {
        a.answer
    };
    let e = client.answer(a.id, text).await?;
    if a.format.json {
        output::json(&e)
    } else {
        println!("Answered escalation #{} of run {}.", e.id, e.run_id);
        Ok(())
    }
}
