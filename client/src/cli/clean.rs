//! `orchestrate clean`: removes the worktrees, task branches and backup refs that finished
//! runs left, only where nothing would be lost, and says what it kept and why. `--run <id>
//! --force` removes one finished run's worktrees and task branches with work in them too, after
//! saying what would be lost (`--dry-run`): their commits stay under `refs/orchestrator/`.

use clap::Args;
use orchestrator_proto::clean::{CleanItem, CleanRequest, LeftoverKind};
use orchestrator_proto::words::count;

use super::{Format, absolute};
use crate::client::Client;
use crate::error::ClientError;
use crate::output;

#[derive(Debug, Args)]
pub struct CleanArgs {
    /// Only this project's runs (default: every project's finished runs)
    #[arg(long, short = 'p', value_name = "DIR", conflicts_with = "run")]
    project: Option<std::path::PathBuf>,
    /// Only this finished run (from `orchestrate list`)
    #[arg(long, value_name = "ID")]
    run: Option<String>,
    /// With --run: remove its worktrees and task branches even with work in them; their
    /// commits are kept under refs/orchestrator/<run>/forced/, uncommitted changes are lost
    /// (see them first with --dry-run)
    #[arg(long, requires = "run")]
    force: bool,
    /// Show what would be removed; remove nothing
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    format: Format,
}

fn counts(items: &[CleanItem]) -> String {
    let n = |k: LeftoverKind| items.iter().filter(|i| i.kind == k).count() as u64;
    format!(
        "{}, {} and {}",
        count(n(LeftoverKind::Worktree), "worktree"),
        match n(LeftoverKind::Branch) {
            1 => "1 branch".to_owned(),
            b => format!("{b} branches"),
        },
        count(n(LeftoverKind::Backup), "backup ref")
    )
}

pub async fn run(client: &Client, a: CleanArgs) -> Result<(), ClientError> {
    let req = CleanRequest {
        project: a.project.as_deref().map(absolute).transpose()?,
        dry_run: a.dry_run,
        run: a.run.clone(),
        force: a.force,
    };
    let r = client.clean(&req).await?;
    if a.format.json {
        return output::json(&r);
    }
    if r.runs == 0 {
        crate::outln!("No finished runs: nothing to clean.");
        return Ok(());
    }
    let verb = if r.dry_run { "Would remove" } else { "Removed" };
    crate::outln!(
        "{verb} {} of {}.",
        counts(&r.removed),
        orchestrator_proto::words::count(r.runs as u64, "finished run")
    );
    for i in &r.removed {
        crate::outln!("  - {} {} ({})", i.kind, i.name, i.reason);
    }
    if !r.kept.is_empty() {
        crate::outln!(
            "Kept {} (nothing is removed that holds work):",
            counts(&r.kept)
        );
        for i in &r.kept {
            crate::outln!("  {} {} {}: {}", i.run_id, i.kind, i.name, i.reason);
        }
    }
    Ok(())
}
