//! `orchestrate cost`: a run's cost ledger — what its sessions cost and used, by model, for
//! the run, for its project (all the project's runs), for each cycle and for each task.

use clap::Args;
use orchestrator_proto::cost::{CostLedger, CostRow, CostScope};

use super::{Format, Target};
use crate::client::Client;
use crate::error::ClientError;

#[derive(Debug, Args)]
pub struct CostArgs {
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    format: Format,
}

pub async fn run(client: &Client, a: CostArgs) -> Result<(), ClientError> {
    let run = client.run(&a.target.resolve()?).await?;
    let ledger = client.cost(&run.id).await?;
    if a.format.json {
        return crate::output::json(&ledger);
    }
    print(&ledger);
    Ok(())
}

/// The scope's name in the table: "run", "project", "cycle 2", "task api".
fn scope(r: &CostRow) -> String {
    match (r.scope, r.key.as_deref()) {
        (CostScope::Cycle, Some("0")) => "before cycle 1".to_owned(),
        (s @ (CostScope::Cycle | CostScope::Task), Some(k)) => format!("{s} {k}"),
        (s, _) => s.to_string(),
    }
}

fn print(l: &CostLedger) {
    crate::outln!("Cost of run {} by model (project {})", l.run, l.project);
    if l.rows.is_empty() {
        crate::outln!("  nothing spent yet: no session has run");
        return;
    }
    let width = l.rows.iter().map(|r| scope(r).len()).max().unwrap_or(0);
    let model_width = l
        .rows
        .iter()
        .map(|r| r.model.as_deref().unwrap_or("unknown").len())
        .max()
        .unwrap_or(0);
    let mut last = String::new();
    for r in &l.rows {
        let name = scope(r);
        let shown = if name == last { "" } else { name.as_str() };
        let cost = format!("${:.4}", r.cost_usd);
        crate::outln!(
            "  {shown:<width$}  {:<model_width$}  {cost:>10}  {} · {} in, {} out",
            r.model.as_deref().unwrap_or("unknown"),
            orchestrator_proto::words::count(u64::from(r.sessions), "session"),
            r.input_tokens,
            r.output_tokens,
        );
        last = name;
    }
}
