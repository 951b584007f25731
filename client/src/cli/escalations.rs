//! `orchestrate escalations`: the questions runs are waiting on — this project's when run
//! inside one, else (or with `--all`) every project's. Only live ones (neither answered nor
//! closed) unless `--history`.

use clap::Args;
use orchestrator_proto::ListEscalations;

use super::{Format, absolute};
use crate::client::Client;
use crate::error::ClientError;
use crate::output;

#[derive(Debug, Args)]
pub struct EscalationsArgs {
    /// Only this project's (default: the one the current directory is in)
    #[arg(long, short = 'p', value_name = "DIR", conflicts_with = "all")]
    project: Option<std::path::PathBuf>,
    /// Every project's
    #[arg(long)]
    all: bool,
    /// Include answered and closed escalations
    #[arg(long)]
    history: bool,
    #[command(flatten)]
    format: Format,
}

pub async fn run(client: &Client, a: EscalationsArgs) -> Result<(), ClientError> {
    let project = match (&a.project, a.all) {
        (Some(p), _) => Some(absolute(p)?),
        (None, true) => None,
        (None, false) => current_project()?,
    };
    let q = ListEscalations {
        project: project.clone(),
        history: a.history,
    };
    let list = client.escalations(&q).await?;
    if a.format.json {
        return output::json(&orchestrator_proto::EscalationList { escalations: list });
    }
    if list.is_empty() {
        match &project {
            Some(p) => crate::outln!(
                "No escalations are waiting for you in {p} (`--all` shows every project's)."
            ),
            None => crate::outln!("No escalations are waiting for you."),
        }
    }
    for (i, e) in list.iter().enumerate() {
        if i > 0 {
            crate::outln!();
        }
        output::escalation(e);
    }
    Ok(())
}

/// The project the current directory is in (a git work tree: a `.git` directory with a
/// `HEAD`, or a worktree's `.git` file), if any.
fn current_project() -> Result<Option<String>, ClientError> {
    let cwd = absolute(std::path::Path::new("."))?;
    let is_git = |d: &std::path::Path| {
        let g = d.join(".git");
        g.join("HEAD").is_file()
            || std::fs::read_to_string(&g).is_ok_and(|t| t.starts_with("gitdir:"))
    };
    let inside = std::path::Path::new(&cwd).ancestors().any(is_git);
    Ok(inside.then_some(cwd))
}
