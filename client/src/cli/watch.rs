//! `orchestrate watch`: a live view of a run — status, progress and cost, the account's usage
//! windows, every task with its worker's last activity and last progress note, and the latest
//! events — redrawn in place until the run needs you or ends (the exit code says which:
//! `error::exit`) or Ctrl-C. Without a terminal it prints a frame only when something changed.

use std::io::IsTerminal;
use std::time::Duration;

use clap::Args;
use orchestrator_proto::usage::UsageReport;
use orchestrator_proto::{Event, ReadEvents, Run, Task, TaskStatus};

use super::Target;
use crate::client::{Client, RunRef};
use crate::error::ClientError;
use crate::output::{self, cut};

#[derive(Debug, Args)]
pub struct WatchArgs {
    #[command(flatten)]
    target: Target,
    /// Seconds between refreshes
    #[arg(long, default_value_t = 1.0, value_name = "SECONDS")]
    interval: f64,
}

/// "usage 5-hour 42% (resets 17:00) · 7-day 12%", or nothing when no figure is known.
fn usage_line(u: &UsageReport) -> Option<String> {
    let window = |name: &str, w: &Option<orchestrator_proto::usage::UsageWindow>| {
        w.as_ref().map(|w| {
            let resets = w
                .resets_at
                .map(|t| format!(" (resets {})", output::clock(t)))
                .unwrap_or_default();
            format!("{name} {:.0}%{resets}", w.utilization_percent)
        })
    };
    let others = u
        .others
        .iter()
        .filter_map(|(k, w)| window(&orchestrator_proto::usage::window_name(k), &Some(w.clone())));
    let parts: Vec<String> = [
        window("5-hour", &u.five_hour),
        window("7-day", &u.seven_day),
    ]
    .into_iter()
    .flatten()
    .chain(others)
    .chain(u.limit_hit.as_ref().map(|_| "limit hit".to_owned()))
    .collect();
    (!parts.is_empty()).then(|| format!("usage {}\n", parts.join(" · ")))
}

fn frame(r: &Run, tasks: &[Task], events: &[Event], usage: Option<&UsageReport>) -> String {
    let p = &r.progress;
    let mut f = format!(
        "{}  {} ({})  ·  {}\n{}\n",
        r.id,
        r.status,
        r.phase,
        r.branch,
        cut(&r.feature, 100)
    );
    f.push_str(&format!(
        "tasks {} · merged {} · in progress {} · failed {}   sessions {} · ${:.4} · {} in / {} out tokens\n",
        p.tasks, p.merged, p.in_progress, p.failed, p.sessions, p.cost_usd, p.input_tokens, p.output_tokens
    ));
    if let Some(line) = usage.and_then(usage_line) {
        f.push_str(&line);
    }
    if let Some(why) = &r.status_reason {
        f.push_str(&format!("{}\n", output::indented("", why)));
    }
    if !tasks.is_empty() {
        f.push_str(&format!(
            "\n{:<16} {:<12} {:>3}  {:<15} {}\n",
            "TASK", "STATUS", "TRY", "ACTIVE", "LATEST"
        ));
        for t in tasks {
            f.push_str(&format!(
                "{:<16} {:<12} {:>3}  {:<15} {}\n",
                cut(&t.id, 16),
                t.status,
                t.attempts,
                match (t.status, t.last_activity_at) {
                    (TaskStatus::InProgress, Some(a)) => output::ago(a),
                    (TaskStatus::InProgress, None) => "started".into(),
                    _ => "-".into(),
                },
                cut(
                    t.progress
                        .as_deref()
                        .or(t
                            .failure
                            .as_deref()
                            .filter(|_| t.status == TaskStatus::Pending))
                        .unwrap_or(&t.title),
                    60
                )
            ));
        }
    }
    // Why tasks failed or came back, whole (a gate's output is on the lines after the first).
    let failures: Vec<String> = tasks
        .iter()
        .filter(|t| matches!(t.status, TaskStatus::Failed | TaskStatus::Pending))
        .filter_map(|t| {
            Some(output::indented(
                &format!("  {}: ", t.id),
                t.failure.as_deref()?,
            ))
        })
        .collect();
    if !failures.is_empty() {
        f.push_str("\nwhy tasks came back\n");
        for l in failures {
            f.push_str(&l);
            f.push('\n');
        }
    }
    if !events.is_empty() {
        f.push_str("\nrecent\n");
        for e in events {
            f.push_str(&format!(
                "  {}  {}\n",
                output::clock(e.at),
                cut(&e.message, 80)
            ));
        }
    }
    f
}

/// One frame of the run, fetched now.
async fn draw(client: &Client, id: &str) -> Result<(Run, String), ClientError> {
    let r = client.run(&RunRef::Id(id.to_owned())).await?;
    let tasks = client.tasks(id).await?;
    let q = ReadEvents {
        after: None,
        tail: Some(6),
        follow: false,
    };
    let events = client.events(id, &q).await?;
    // The usage figures are the daemon's; a daemon without them still draws the run.
    let usage = client.usage().await.ok();
    let f = frame(&r, &tasks, &events, usage.as_ref());
    Ok((r, f))
}

pub async fn run(client: &Client, a: WatchArgs) -> Result<(), ClientError> {
    let id = client.run(&a.target.resolve()?).await?.id;
    let tty = std::io::stdout().is_terminal();
    let interval = Duration::from_secs_f64(a.interval.clamp(0.1, 60.0));
    let mut last = String::new();
    loop {
        let (r, f) = match draw(client, &id).await {
            Ok(x) => x,
            // The daemon went away (a crash, a restart): start it again, as any command would,
            // and carry on; its workers are re-attached meanwhile.
            Err(ClientError::Unreachable { .. }) => {
                crate::outln!("orchestratord is not answering; starting it again…");
                crate::autostart::connect(client.socket()).await?;
                continue;
            }
            Err(e) => return Err(e),
        };
        if f != last {
            if tty {
                // Home, clear, draw: one redraw in place.
                crate::out!("\x1b[H\x1b[2J{f}");
            } else {
                crate::outln!("{f}");
            }
            last = f;
        }
        if super::ended::stops(&r) {
            return super::ended::report(client, &r, false).await;
        }
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {
                // The user stopped watching; nothing about the run to report.
                crate::outln!();
                return Ok(());
            }
            _ = tokio::time::sleep(interval) => {}
        }
    }
}
