//! `orchestrate usage`: the Claude account's windows as the daemon knows them (5-hour, 7-day
//! and the 7-day window of each model family the account reports)
//! — utilization, reset times, where each figure came from and how old it is — and the usage
//! poller's state (which token source, last success or error, next poll); and whether Codex's
//! account hit its limit.

use clap::Args;
use orchestrator_proto::usage::{UsageReport, UsageWindow};

use super::Format;
use crate::client::Client;
use crate::error::ClientError;
use crate::output::{ago, clock};

#[derive(Debug, Args)]
pub struct UsageArgs {
    #[command(flatten)]
    format: Format,
}

fn window(name: &str, w: Option<&UsageWindow>) {
    match w {
        None => {
            crate::outln!(
                "  {name:<10} unknown (no worker has reported it and no poll has answered)"
            )
        }
        Some(w) => {
            let resets = w
                .resets_at
                .map(|r| format!(" · resets {}", clock(r)))
                .unwrap_or_default();
            crate::outln!(
                "  {name:<10} {:.0}%{resets} · from the {}, {}",
                w.utilization_percent,
                w.source,
                ago(w.observed_at)
            );
        }
    }
}

pub async fn run(client: &Client, a: UsageArgs) -> Result<(), ClientError> {
    let r: UsageReport = client.usage().await?;
    if a.format.json {
        return crate::output::json(&r);
    }
    crate::outln!("Claude account usage");
    window("5-hour", r.five_hour.as_ref());
    window("7-day", r.seven_day.as_ref());
    for (kind, w) in &r.others {
        window(&orchestrator_proto::usage::window_name(kind), Some(w));
    }
    if let Some(l) = &r.limit_hit {
        crate::outln!(
            "  limit hit  {}{} — Claude work waits for the reset (runs with --on-limit codex go on as Codex workers)",
            l.kind,
            l.until
                .map(|u| format!(" until {}", clock(u)))
                .unwrap_or_default()
        );
    }
    let p = &r.poller;
    match &p.token_source {
        Some(src) => crate::outln!("  polling    with the token from {src}"),
        None => crate::outln!(
            "  polling    off: no subscription token (CLAUDE_CODE_OAUTH_TOKEN, ~/.claude/.credentials.json, \
             macOS Keychain); limits are learnt from the workers' own streams"
        ),
    }
    if let Some(t) = p.last_ok {
        crate::outln!("  last poll  {} ({})", clock(t), ago(t));
    }
    if let Some(e) = &p.last_error {
        crate::outln!("  problem    {e}");
    }
    if let (Some(t), Some(_)) = (p.next_at, &p.token_source) {
        crate::outln!("  next poll  {}", clock(t));
    }
    if !r.runs.is_empty() {
        crate::outln!("Runs sharing the 5-hour window");
        for s in &r.runs {
            let allowance = s
                .allowance_usd
                .map(|a| format!(" of {}", orchestrator_proto::words::usd(a)))
                .unwrap_or_default();
            crate::outln!(
                "  {}  priority {} · {:.0}% share · spent {}{allowance} · {}",
                s.run,
                s.priority,
                s.share_percent,
                orchestrator_proto::words::usd(s.spent_usd),
                s.project
            );
        }
    }
    if let Some(l) = &r.codex_limit_hit {
        crate::outln!(
            "Codex account\n  limit hit  Codex work waits{}",
            l.until
                .map(|u| format!(" until {} (then Codex is tried again)", clock(u)))
                .unwrap_or_default()
        );
    }
    Ok(())
}
