//! `orchestrate start "<feature>"`: submit a run.

use std::path::PathBuf;

use clap::Args;
use orchestrator_proto::{RunOptions, SubmitRun, defaults};

use super::{Format, absolute};
use crate::client::Client;
use crate::error::ClientError;
use crate::output;

#[derive(Debug, Args)]
pub struct StartArgs {
    /// What to build, in your words
    feature: String,
    /// Project directory (any directory inside its git work tree)
    #[arg(long, short = 'p', value_name = "DIR", default_value = ".")]
    project: PathBuf,
    /// Number of parallel worker sessions (1-64)
    #[arg(long, default_value_t = defaults::CONCURRENCY)]
    concurrency: u32,
    /// Max plan-execute-review cycles before escalating
    #[arg(long, default_value_t = defaults::MAX_CYCLES)]
    max_cycles: u32,
    /// Pause when the 5-hour usage window reaches this fraction (0-1]
    #[arg(long, default_value_t = defaults::USAGE_THRESHOLD)]
    usage_threshold: f64,
    /// Skip the Codex plan and code reviews
    #[arg(long)]
    skip_codex: bool,
    /// After a usage pause, wait for `orchestrate resume` instead of resuming at the reset
    #[arg(long)]
    no_auto_resume: bool,
    /// Pause and ask you once the run's sessions have cost this much (US dollars)
    #[arg(long, value_name = "USD")]
    max_budget_usd: Option<f64>,
    /// Generate the plan only; do not execute it
    #[arg(long)]
    dry_run: bool,
    /// Pre-gathered context file (requirements, Q&A)
    #[arg(long, value_name = "PATH")]
    context_file: Option<PathBuf>,
    /// Verbose logging in the run's log
    #[arg(long, short = 'v')]
    verbose: bool,
    /// Shell command that must pass on every merged result before the branch advances
    /// (e.g. "cargo test"); a failure sends the task back with the output
    #[arg(long, value_name = "CMD")]
    gate: Option<String>,
    /// How long the gate may run on one merge before it is stopped and counts as failed
    /// (e.g. 90s, 30m, 2h)
    #[arg(long, value_name = "DURATION", default_value = "30m", value_parser = humantime::parse_duration)]
    gate_timeout: std::time::Duration,
    /// Stay and print the run's log as it happens
    #[arg(long, short = 'f')]
    follow: bool,
    #[command(flatten)]
    format: Format,
}

pub async fn run(client: &Client, a: StartArgs) -> Result<(), ClientError> {
    if !a.usage_threshold.is_finite() {
        // JSON has no NaN or infinity; catch it here rather than send `null`.
        return Err(ClientError::usage(
            format!("--usage-threshold {} is not a number", a.usage_threshold),
            format!(
                "use a fraction above 0 and at most 1 (default {})",
                defaults::USAGE_THRESHOLD
            ),
        ));
    }
    if let Some(b) = a.max_budget_usd
        && !b.is_finite()
    {
        return Err(ClientError::usage(
            format!("--max-budget-usd {b} is not a number"),
            "give the most the run may spend in US dollars, e.g. --max-budget-usd 20",
        ));
    }
    let context_file = a.context_file.as_deref().map(absolute).transpose()?;
    let req = SubmitRun {
        project: absolute(&a.project)?,
        feature: a.feature,
        options: RunOptions {
            concurrency: a.concurrency,
            max_cycles: a.max_cycles,
            usage_threshold: a.usage_threshold,
            skip_codex: a.skip_codex,
            dry_run: a.dry_run,
            verbose: a.verbose,
            gate: a.gate,
            gate_timeout_secs: a.gate_timeout.as_secs(),
            auto_resume: !a.no_auto_resume,
            max_budget_usd: a.max_budget_usd,
        },
        context_file,
        env: orchestrator_proto::SessionEnv::capture(),
    };
    let run = client.submit(&req).await?;
    if a.format.json {
        output::json(&run)?;
    } else {
        println!("Started run {} on branch {}.", run.id, run.branch);
        if a.verbose {
            output::run_summary(&run);
        }
        println!("  status:  orchestrate status --project {}", run.project);
        println!("  log:     orchestrate log -f --project {}", run.project);
        println!("  state:   {}/.orchestrator/", run.project);
    }
    if a.follow {
        client
            .follow(&run.id, None, |e| {
                output::event_line(&e);
                Ok(())
            })
            .await?;
    }
    Ok(())
}
