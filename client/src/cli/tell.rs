//! `orchestrate tell <task|all> "<message>"`: tells a task's worker (or every worker)
//! something while it works. The message reaches it through `read_messages`, and the next
//! reply of any tool it calls says a message is waiting, so it reads it.

use clap::Args;

use super::{Format, Target};
use crate::client::Client;
use crate::error::ClientError;

#[derive(Debug, Args)]
pub struct TellArgs {
    /// The task (its id, from `orchestrate status`), or `all` for every worker
    to: String,
    /// What the worker should know ("-": read it from stdin)
    message: String,
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    format: Format,
}

pub async fn run(client: &Client, a: TellArgs) -> Result<(), ClientError> {
    let text = if a.message == "-" {
        std::io::read_to_string(std::io::stdin())?
    } else {
        a.message.clone()
    };
    let run = client.run(&a.target.resolve()?).await?;
    let tell = orchestrator_proto::Tell {
        to: a.to.clone(),
        text,
    };
    let told = client.tell(&run.id, &tell).await?;
    if a.format.json {
        return crate::output::json(&told);
    }
    let who = if a.to == "all" {
        "every worker".to_owned()
    } else {
        format!("task {}", a.to)
    };
    match told.running.as_slice() {
        [] => crate::outln!(
            "Told {who} (message {}); no worker of it is running now, so the next one reads it.",
            told.message_id
        ),
        running => crate::outln!(
            "Told {who} (message {}); {} will see it at {} next tool call.",
            told.message_id,
            running.join(", "),
            if running.len() == 1 { "its" } else { "their" }
        ),
    }
    Ok(())
}
