//! `orchestrate pr [--draft] [--base B]`: pushes a completed run's branch to the project's
//! remote (never forced) and opens its pull request with `gh`; without `gh`, prints the compare
//! URL and the body to open it by hand.

use clap::Args;

use super::{Format, Target};
use crate::client::Client;
use crate::error::ClientError;

#[derive(Debug, Args)]
pub struct PrArgs {
    /// Open it as a draft
    #[arg(long)]
    draft: bool,
    /// The branch to merge into (default: the remote's default branch)
    #[arg(long, value_name = "BRANCH")]
    base: Option<String>,
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    format: Format,
}

pub async fn run(client: &Client, a: PrArgs) -> Result<(), ClientError> {
    let run = client.run(&a.target.resolve()?).await?;
    // Pushed with this shell's environment (its PATH, credentials helpers, agent) now.
    let forward = crate::forward::names(&[]);
    let req = orchestrator_proto::pr::OpenPr {
        draft: a.draft,
        base: a.base.clone(),
        env: orchestrator_proto::SessionEnv::capture_with(&forward),
    };
    let r = client.pr(&run.id, &req).await?;
    if a.format.json {
        return crate::output::json(&r);
    }
    crate::outln!("Pushed {} to {} (base {}).", r.branch, r.remote, r.base);
    match (&r.url, &r.note) {
        (Some(url), _) => crate::outln!("Pull request: {url}"),
        (None, note) => {
            if let Some(n) = note {
                crate::outln!("{n}");
            }
            if let Some(c) = &r.compare_url {
                crate::outln!("Open it at: {c}");
            }
            crate::outln!("\n{}", r.body.trim_end());
        }
    }
    Ok(())
}
