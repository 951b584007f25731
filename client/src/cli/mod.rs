//! The `orchestrate` command line: one module per subcommand, dispatched from [`run`].

mod answer;
mod attach;
mod clean;
mod cost;
mod daemon;
mod doctor;
mod doctor_project;
mod ended;
mod escalations;
mod keys;
mod list;
mod log;
mod models;
mod pr;
mod service;
mod setup;
mod start;
mod status;
mod tail;
mod tell;
mod transition;
mod ui;
mod usage;
mod wait;
mod watch;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use orchestrator_proto::locate;

use crate::autostart;
use crate::client::{Client, RunRef};
use crate::error::ClientError;

/// Plan, build and review large features with parallel Claude Code workers.
///
/// `orchestrate` talks to orchestratord, the per-user daemon, and starts it when needed.
#[derive(Debug, Parser)]
#[command(name = "orchestrate", version, propagate_version = true)]
pub struct Cli {
    /// The daemon's socket [env: ORCHESTRATOR_SOCKET; default: $XDG_RUNTIME_DIR/orchestrator/orchestratord.sock]
    #[arg(long, global = true, value_name = "PATH")]
    socket: Option<PathBuf>,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Start a new run: plan, build and review a feature
    Start(start::StartArgs),
    /// Show a project's current run
    Status(status::StatusArgs),
    /// Show a run's log
    Log(log::LogArgs),
    /// Live view of a run: tasks, workers, merges, cost (until it needs you or ends, or Ctrl-C)
    Watch(watch::WatchArgs),
    /// Resume a paused, planned (--dry-run) or escalated run
    Resume(transition::ResumeArgs),
    /// Pause a run (its sessions stop; resume picks up where it left off)
    Pause(transition::TransitionArgs),
    /// Cancel a run (its branch and work are kept)
    Cancel(transition::TransitionArgs),
    /// List every run of every project
    List(list::ListArgs),
    /// List escalations waiting for a human
    Escalations(escalations::EscalationsArgs),
    /// Answer an escalation
    Answer(answer::AnswerArgs),
    /// Remove finished runs' worktrees, task branches and backups where nothing would be lost
    Clean(clean::CleanArgs),
    /// The Claude account's usage windows: utilization, resets, where the figures come from
    Usage(usage::UsageArgs),
    /// What a run cost, by model: the run, its project, each cycle and each task
    Cost(cost::CostArgs),
    /// Open the web dashboard (every run, the task graph, live output, answers)
    Ui(ui::UiArgs),
    /// Take over a task's Claude worker interactively (the run pauses; quit to hand it back)
    Attach(attach::AttachArgs),
    /// Push a completed run's branch and open its pull request (with gh)
    Pr(pr::PrArgs),
    /// What a task's worker is doing: its session rendered for people (-f: live; --raw: JSON)
    Tail(tail::TailArgs),
    /// Tell a task's worker (or all) something while it works; it reads it at its next tool call
    Tell(tell::TellArgs),
    /// Wait until the run needs you or ends; the exit code says which (0 completed, 10
    /// escalated, 11 paused, 12 failed, 13 cancelled, 14 still running at --timeout)
    Wait(wait::WaitArgs),
    /// Manage the daemon
    Daemon(daemon::DaemonArgs),
    /// Install the /orchestrate slash command for Claude Code
    Setup(setup::SetupArgs),
    /// Check what runs need: claude, codex, credentials, git, the daemon and its socket
    Doctor(doctor::DoctorArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell)
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), e.g. `orchestrate man > orchestrate.1`; with `--dir`,
    /// write one page per subcommand there (orchestrate.1, orchestrate-start.1, …)
    Man {
        #[arg(long, value_name = "DIR")]
        dir: Option<std::path::PathBuf>,
    },
}

/// Which run a command is about: `--run <id>`, else the project's current run.
#[derive(Debug, Args)]
pub struct Target {
    /// Project directory (any directory inside its git work tree)
    #[arg(long, short = 'p', value_name = "DIR", default_value = ".")]
    project: PathBuf,
    /// A run id (from `orchestrate list`), instead of the project's current run
    #[arg(long, value_name = "ID")]
    run: Option<String>,
}

impl Target {
    fn resolve(&self) -> Result<RunRef, ClientError> {
        Ok(match &self.run {
            Some(id) => RunRef::Id(id.clone()),
            None => RunRef::Project(absolute(&self.project)?),
        })
    }
}

/// `--json` for every command that prints data.
#[derive(Debug, Args, Clone, Copy)]
pub struct Format {
    /// Print machine-readable JSON (shapes defined by the protocol crate)
    #[arg(long)]
    json: bool,
}

/// An absolute path for the daemon, which has another working directory.
pub fn absolute(p: &std::path::Path) -> Result<String, ClientError> {
    let abs = std::path::absolute(p).map_err(|e| {
        ClientError::usage(
            format!("cannot resolve the path {}: {e}", p.display()),
            "check the path",
        )
    })?;
    Ok(abs.display().to_string())
}

/// Runs the parsed command line.
pub async fn run(cli: Cli) -> Result<(), ClientError> {
    let socket = locate::socket_path(cli.socket.as_deref())
        .map_err(|e| ClientError::usage(e.to_string(), "set ORCHESTRATOR_SOCKET or --socket"))?;
    if let Cmd::Setup(args) = cli.command {
        return setup::run(args);
    }
    match &cli.command {
        Cmd::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(*shell, &mut cmd, "orchestrate", &mut script);
            crate::stdout::write_bytes(&script);
            return Ok(());
        }
        Cmd::Man { dir } => {
            let cmd = <Cli as clap::CommandFactory>::command();
            match dir {
                Some(dir) => {
                    std::fs::create_dir_all(dir)?;
                    clap_mangen::generate_to(cmd, dir)?;
                    crate::outln!("wrote the manual pages to {}", dir.display());
                }
                None => {
                    let mut page = Vec::new();
                    clap_mangen::Man::new(cmd).render(&mut page)?;
                    crate::stdout::write_bytes(&page);
                }
            }
            return Ok(());
        }
        _ => {}
    }
    if let Cmd::Doctor(args) = cli.command {
        // Reports on the daemon without starting it.
        return doctor::run(args, &socket).await;
    }
    if let Cmd::Daemon(args) = &cli.command {
        // Works with a daemon of any version (so a mismatched one can be stopped).
        return daemon::run(args, &socket).await;
    }
    let client = autostart::connect(&socket).await?;
    match cli.command {
        Cmd::Start(a) => start::run(&client, a).await,
        Cmd::Status(a) => status::run(&client, a).await,
        Cmd::Log(a) => log::run(&client, a).await,
        Cmd::Watch(a) => watch::run(&client, a).await,
        Cmd::Resume(a) => transition::resume(&client, a).await,
        Cmd::Pause(a) => transition::run(&client, a, "pause", "Paused").await,
        Cmd::Cancel(a) => transition::run(&client, a, "cancel", "Cancelled").await,
        Cmd::List(a) => list::run(&client, a).await,
        Cmd::Escalations(a) => escalations::run(&client, a).await,
        Cmd::Clean(a) => clean::run(&client, a).await,
        Cmd::Answer(a) => answer::run(&client, a).await,
        Cmd::Usage(a) => usage::run(&client, a).await,
        Cmd::Cost(a) => cost::run(&client, a).await,
        Cmd::Ui(a) => ui::run(&client, a).await,
        Cmd::Wait(a) => wait::run(&client, a).await,
        Cmd::Tell(a) => tell::run(&client, a).await,
        Cmd::Tail(a) => tail::run(&client, a).await,
        Cmd::Pr(a) => pr::run(&client, a).await,
        Cmd::Attach(a) => attach::run(&client, a).await,
        Cmd::Daemon(_)
        | Cmd::Setup(_)
        | Cmd::Doctor(_)
        | Cmd::Completions { .. }
        | Cmd::Man { .. } => {
            unreachable!("handled above")
        }
    }
}

/// Applies a transition (`pause`, `resume`, `cancel`) to the targeted run.
async fn transition(
    client: &Client,
    target: &Target,
    verb: &str,
    reason: Option<String>,
    change: orchestrator_proto::OptionsChange,
    names: Vec<String>,
) -> Result<orchestrator_proto::Run, ClientError> {
    let run = client.run(&target.resolve()?).await?;
    client
        .transition(&run.id, verb, reason, change, names)
        .await
}
