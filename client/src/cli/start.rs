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
    /// Pause when a 7-day window reaches this fraction (0-1]; default: --usage-threshold. A
    /// window of one model family (7-day Opus) pauses only runs whose workers run it
    #[arg(long, value_name = "FRACTION")]
    weekly_threshold: Option<f64>,
    /// This run's weight when runs share the account's usage window (1-100): concurrent runs
    /// get the window in proportion
    #[arg(long, default_value_t = defaults::PRIORITY, value_parser = clap::value_parser!(u32).range(1..=defaults::MAX_PRIORITY as i64))]
    priority: u32,
    /// Skip the Codex plan and code reviews
    #[arg(long)]
    skip_codex: bool,
    /// When the run completes, push its branch and open a pull request (with gh)
    #[arg(long)]
    pr: bool,
    /// With --pr: open it as a draft
    #[arg(long, requires = "pr")]
    draft: bool,
    /// After a usage pause, wait for `orchestrate resume` instead of resuming at the reset
    #[arg(long)]
    no_auto_resume: bool,
    /// Pause and ask you once the run's sessions have cost this much (US dollars)
    #[arg(long, value_name = "USD")]
    max_budget_usd: Option<f64>,
    /// Generate the plan only; do not execute it
    #[arg(long)]
    dry_run: bool,
    /// Pre-gathered context file (requirements, Q&A); `-` reads it from stdin
    #[arg(long, value_name = "PATH")]
    context_file: Option<PathBuf>,
    /// Verbose logging in the run's log
    #[arg(long, short = 'v')]
    verbose: bool,
    /// Shell command that must pass on every merged result before the branch advances
    /// (e.g. "cargo test"); a failure sends the task back with the output. Without it (and
    /// without --no-gate) the project's previous run's gate is used
    #[arg(long, value_name = "CMD", conflicts_with = "no_gate")]
    gate: Option<String>,
    /// No gate, even if the project's previous run had one
    #[arg(long)]
    no_gate: bool,
    /// How long the gate may run on one merge before it is stopped and counts as failed
    /// (e.g. 90s, 30m, 2h; default: the previous run's, else 30m)
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    gate_timeout: Option<std::time::Duration>,
    /// Shell command run in every new worktree before anything uses it, e.g. "npm ci" or
    /// "python3 -m venv .venv && .venv/bin/pip install -e ." (ignored files such as
    /// node_modules/ are not in a fresh worktree). Default: the previous run's, else the
    /// daemon's [worktrees] setup
    #[arg(long, value_name = "CMD", conflicts_with = "no_setup")]
    setup: Option<String>,
    /// No setup, even if the project's previous run or the daemon's config has one
    #[arg(long)]
    no_setup: bool,
    /// Also give the sessions, setups, gates and checks this variable of your shell (repeat
    /// for more; PATH, HOME, toolchain homes, ANTHROPIC_*, OPENAI_*, CODEX_* … always go)
    #[arg(long = "env", value_name = "NAME")]
    env_names: Vec<String>,
    /// How long the setup may run in one worktree (default 30m)
    #[arg(long, value_name = "DURATION", default_value = "30m", value_parser = humantime::parse_duration)]
    setup_timeout: std::time::Duration,
    #[command(flatten)]
    models: super::models::ModelArgs,
    /// Stay and print the run's log as it happens
    #[arg(long, short = 'f')]
    follow: bool,
    #[command(flatten)]
    format: Format,
}

pub async fn run(client: &Client, a: StartArgs) -> Result<(), ClientError> {
    check_numbers(&a)?;
    let req = request(&a)?;
    let run = client.submit(&req).await?;
    let dirty = uncommitted(std::path::Path::new(&run.project));
    if a.format.json {
        output::json(&run)?;
        if let Some(n) = dirty {
            eprintln!("{}", uncommitted_note(n, &run.base_commit));
        }
    } else {
        if let Some(n) = dirty {
            crate::outln!("{}", uncommitted_note(n, &run.base_commit));
        }
        started(&run, a.verbose);
    }
    if a.follow {
        let end = super::ended::follow(client, &run.id, None, output::event_line).await?;
        return super::ended::report(client, &end, false).await;
    }
    Ok(())
}

/// JSON has no NaN or infinity: the numbers are caught here rather than sent as `null`.
fn check_numbers(a: &StartArgs) -> Result<(), ClientError> {
    if !a.usage_threshold.is_finite() {
        return Err(ClientError::usage(
            format!("--usage-threshold {} is not a number", a.usage_threshold),
            format!(
                "use a fraction above 0 and at most 1 (default {})",
                defaults::USAGE_THRESHOLD
            ),
        ));
    }
    if let Some(w) = a.weekly_threshold
        && !w.is_finite()
    {
        return Err(ClientError::usage(
            format!("--weekly-threshold {w} is not a number"),
            "use a fraction above 0 and at most 1, e.g. 0.95",
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
    Ok(())
}

/// The run to submit, from the arguments.
fn request(a: &StartArgs) -> Result<SubmitRun, ClientError> {
    // `-`: the context comes on stdin, so no file is left in the checkout.
    let (context_file, context) = match a.context_file.as_deref() {
        Some(p) if p == std::path::Path::new("-") => {
            (None, Some(std::io::read_to_string(std::io::stdin())?))
        }
        other => (other.map(absolute).transpose()?, None),
    };
    let forward = crate::forward::names(&a.env_names);
    let req = SubmitRun {
        project: absolute(&a.project)?,
        feature: a.feature.clone(),
        options: RunOptions {
            concurrency: a.concurrency,
            max_cycles: a.max_cycles,
            usage_threshold: a.usage_threshold,
            weekly_threshold: a.weekly_threshold,
            skip_codex: a.skip_codex,
            dry_run: a.dry_run,
            verbose: a.verbose,
            gate: a.gate.clone(),
            gate_timeout_secs: a
                .gate_timeout
                .map_or(defaults::GATE_TIMEOUT_SECS, |d| d.as_secs()),
            setup: a.setup.clone(),
            setup_timeout_secs: a.setup_timeout.as_secs(),
            auto_resume: !a.no_auto_resume,
            max_budget_usd: a.max_budget_usd,
            models: a.models.models().unwrap_or_default(),
            priority: a.priority,
            pr: a.pr.then(|| orchestrator_proto::pr::OpenPr {
                draft: a.draft,
                ..Default::default()
            }),
        },
        context_file,
        context,
        env: orchestrator_proto::SessionEnv::capture_with(&forward),
        inherit: orchestrator_proto::Inherit {
            setup: a.setup.is_none() && !a.no_setup,
            gate: a.gate.is_none() && !a.no_gate,
            gate_timeout: a.gate_timeout.is_none(),
            models: a.models.models().is_none(),
        },
        forward,
    };
    Ok(req)
}

/// What `start` says of a run it started.
fn started(run: &orchestrator_proto::Run, verbose: bool) {
    crate::outln!(
        "Started run {} on branch {}, from {}.",
        run.id,
        run.branch,
        &run.base_commit[..run.base_commit.len().min(12)]
    );
    if let Some(setup) = &run.options.setup {
        crate::outln!("  setup:   {setup}");
    }
    if let Some(gate) = &run.options.gate {
        crate::outln!(
            "  gate:    {gate} (stopped after {})",
            humantime::format_duration(std::time::Duration::from_secs(
                run.options.gate_timeout_secs
            ))
        );
    }
    if let Some(m) = run.options.models.summary() {
        crate::outln!("  models:  {m}");
    }
    if verbose {
        output::run_summary(run);
    }
    crate::outln!("  status:  orchestrate status --project {}", run.project);
    crate::outln!("  log:     orchestrate log -f --project {}", run.project);
    crate::outln!("  state:   {}/.orchestrator/", run.project);
}

/// How many tracked files have uncommitted changes in the user's checkout, if any.
fn uncommitted(project: &std::path::Path) -> Option<usize> {
    let out = std::process::Command::new("git")
        .args(["status", "--porcelain", "--untracked-files=no"])
        .current_dir(project)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    let n = String::from_utf8_lossy(&out.stdout).lines().count();
    (out.status.success() && n > 0).then_some(n)
}

fn uncommitted_note(n: usize, base: &str) -> String {
    format!(
        "note: {n} file(s) in your checkout have uncommitted changes; the run starts from the \
         commit {} and does not include them (commit them and start again if it should)",
        &base[..base.len().min(12)]
    )
}
