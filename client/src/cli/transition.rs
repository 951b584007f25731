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
    /// pause, resume: every run of every project at once (an emergency stop, and back)
    #[arg(long, conflicts_with = "run")]
    all: bool,
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
    if a.all {
        return every(client, a, verb, done, change, names).await;
    }
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

/// `pause --all` / `resume --all`: every run that can take the verb, one after the other;
/// one that refuses does not stop the others (it is said, and the exit code is 2).
async fn every(
    client: &Client,
    a: TransitionArgs,
    verb: &str,
    done: &str,
    change: orchestrator_proto::OptionsChange,
    names: Vec<String>,
) -> Result<(), ClientError> {
    use orchestrator_proto::RunStatus;
    let takes = |s: RunStatus| match verb {
        "pause" => matches!(s, RunStatus::Queued | RunStatus::Running),
        "resume" => s == RunStatus::Paused,
        _ => false,
    };
    if verb == "cancel" {
        return Err(ClientError::usage(
            "cancel takes one run at a time",
            "cancel each with `orchestrate cancel --run <id>` (orchestrate list shows them)",
        ));
    }
    let runs = client
        .list(&orchestrator_proto::ListRuns::default())
        .await?;
    let mut moved = Vec::new();
    let mut refused = 0;
    for r in runs.iter().filter(|r| takes(r.status)) {
        let (reason, names) = (a.reason.clone(), names.clone());
        match client
            .transition(&r.id, verb, reason, change.clone(), names)
            .await
        {
            Ok(run) => {
                if !a.format.json {
                    crate::outln!("{done} run {} ({}) of {}.", run.id, run.status, run.project);
                }
                moved.push(run);
            }
            Err(e) => {
                refused += 1;
                crate::outln!("Run {} of {}: {e}", r.id, r.project);
            }
        }
    }
    if a.format.json {
        output::json(&orchestrator_proto::RunList {
            runs: moved.clone(),
        })?;
    } else if moved.is_empty() && refused == 0 {
        crate::outln!("No run to {verb}.");
    }
    if refused > 0 {
        return Err(ClientError::usage(
            format!("{refused} of the runs did not {verb}"),
            "the lines above say why",
        ));
    }
    Ok(())
}
