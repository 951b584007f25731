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

/// `resume` (and `answer`): the run's commands to change for the rest of the run.
#[derive(Debug, Args)]
pub struct ChangeArgs {
    /// From now on, this gate on every merged result
    #[arg(long, value_name = "CMD", conflicts_with = "no_gate")]
    gate: Option<String>,
    /// From now on, no gate
    #[arg(long)]
    no_gate: bool,
    /// From now on, this setup in every new worktree (the integration worktree is set up again)
    #[arg(long, value_name = "CMD", conflicts_with = "no_setup")]
    setup: Option<String>,
    /// From now on, no setup
    #[arg(long)]
    no_setup: bool,
    /// From now on, this long for the gate on one merge (e.g. 90s, 30m)
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    gate_timeout: Option<std::time::Duration>,
    /// Also give the sessions this variable of your shell (repeat for more)
    #[arg(long = "env", value_name = "NAME")]
    pub env_names: Vec<String>,
}

impl ChangeArgs {
    pub fn change(&self) -> orchestrator_proto::OptionsChange {
        let command = |set: &Option<String>, off: bool| {
            if off {
                Some(String::new())
            } else {
                set.clone()
            }
        };
        orchestrator_proto::OptionsChange {
            gate: command(&self.gate, self.no_gate),
            setup: command(&self.setup, self.no_setup),
            gate_timeout_secs: self.gate_timeout.map(|d| d.as_secs()),
        }
    }
}

/// `orchestrate resume`.
#[derive(Debug, Args)]
pub struct ResumeArgs {
    #[command(flatten)]
    t: TransitionArgs,
    #[command(flatten)]
    change: ChangeArgs,
}

pub async fn resume(client: &Client, a: ResumeArgs) -> Result<(), ClientError> {
    let change = a.change.change();
    let names = a.change.env_names.clone();
    finish(client, a.t, "resume", "Resumed", change, names).await
}

/// Applies `verb` (`pause`, `resume`, `cancel`) and reports it as `done` ("Paused", …).
pub async fn run(
    client: &Client,
    a: TransitionArgs,
    verb: &str,
    done: &str,
) -> Result<(), ClientError> {
    finish(client, a, verb, done, Default::default(), Vec::new()).await
}

async fn finish(
    client: &Client,
    a: TransitionArgs,
    verb: &str,
    done: &str,
    change: orchestrator_proto::OptionsChange,
    names: Vec<String>,
) -> Result<(), ClientError> {
    let run = transition(client, &a.target, verb, a.reason, change, names).await?;
    if a.format.json {
        return output::json(&run);
    }
    crate::outln!("{done} run {} ({}).", run.id, run.status);
    if a.verbose {
        output::run_summary(&run);
    }
    Ok(())
}
