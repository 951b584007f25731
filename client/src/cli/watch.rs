//! `orchestrate watch`: a live view of a run — status, progress and cost, the account's usage
//! windows, every task with its worker's last activity and last progress note, and the latest
//! events — redrawn in place until the run needs you or ends (the exit code says which:
//! `error::exit`) or Ctrl-C. On a terminal each task has a key that opens its worker's live
//! output (as `orchestrate tail -f` shows it; any key returns), and `q` quits. Without a
//! terminal it prints a frame only when something changed.

use std::io::IsTerminal;
use std::time::Duration;

use clap::Args;
use orchestrator_proto::usage::UsageReport;
use orchestrator_proto::{Event, ReadEvents, Run, Task, TaskStatus};

use super::Target;
use super::keys::{self, Keys};
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

/// The task table; with `keyed`, each row starts with the key that opens its tail.
fn table(tasks: &[Task], keyed: bool) -> String {
    let mut f = String::new();
    let key = |k: Option<char>| match (keyed, k) {
        (false, _) => String::new(),
        (true, k) => format!("{:<4}", k.map(String::from).unwrap_or_default()),
    };
    f.push_str(&format!(
        "\n{}{:<16} {:<12} {:>3}  {:<15} {}\n",
        if keyed { "KEY " } else { "" },
        "TASK",
        "STATUS",
        "TRY",
        "ACTIVE",
        "LATEST"
    ));
    for (i, t) in tasks.iter().enumerate() {
        f.push_str(&format!(
            "{}{:<16} {:<12} {:>3}  {:<15} {}\n",
            key(keys::task_key(i)),
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
    f
}

/// One frame; with `keyed`, each task's row starts with the key that opens its tail.
fn frame(
    r: &Run,
    tasks: &[Task],
    events: &[Event],
    usage: Option<&UsageReport>,
    keyed: bool,
) -> String {
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
        f.push_str(&table(tasks, keyed));
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
    if keyed && !tasks.is_empty() {
        f.push_str("\npress a task's key for its worker's live output · q quits\n");
    }
    f
}

/// One frame of the run, fetched now, with the run and its tasks (in the table's order).
async fn draw(
    client: &Client,
    id: &str,
    keyed: bool,
) -> Result<(Run, Vec<Task>, String), ClientError> {
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
    let f = frame(&r, &tasks, &events, usage.as_ref(), keyed);
    Ok((r, tasks, f))
}

/// What the user asked for in a task's tail.
enum Back {
    /// Any key: back to the run.
    ToRun,
    /// Ctrl-C: stop watching.
    Quit,
}

/// Task `task`'s worker, live, until a key is pressed.
async fn tail(client: &Client, id: &str, task: &str, keys: &mut Keys) -> Result<Back, ClientError> {
    crate::out!("\x1b[H\x1b[2J── task {task}, live · any key returns to the run ──\n");
    tokio::select! {
        shown = super::tail::show(client, id, task, false, true) => {
            shown?;
            crate::outln!("── its session ended · any key returns to the run ──");
            tokio::select! {
                _ = keys.next() => {}
                _ = tokio::signal::ctrl_c() => return Ok(Back::Quit),
            }
        }
        _ = keys.next() => {}
        _ = tokio::signal::ctrl_c() => return Ok(Back::Quit),
    }
    keys.drain();
    Ok(Back::ToRun)
}

/// The next key, or never when there are no keys.
async fn key(keys: &mut Option<Keys>) -> Option<u8> {
    match keys {
        Some(k) => k.next().await,
        None => std::future::pending().await,
    }
}

pub async fn run(client: &Client, a: WatchArgs) -> Result<(), ClientError> {
    let id = client.run(&a.target.resolve()?).await?.id;
    let tty = std::io::stdout().is_terminal();
    let interval = Duration::from_secs_f64(a.interval.clamp(0.1, 60.0));
    let mut keys = if tty { Keys::open() } else { None };
    let mut last = String::new();
    loop {
        let (r, tasks, f) = match draw(client, &id, keys.is_some()).await {
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
            k = key(&mut keys) => match k {
                Some(b'q' | b'Q') => return Ok(()),
                Some(k) => {
                    let picked = keys::row_of(k).and_then(|row| tasks.get(row));
                    if let (Some(t), Some(ks)) = (picked, keys.as_mut()) {
                        if let Back::Quit = tail(client, &id, &t.id, ks).await? {
                            crate::outln!();
                            return Ok(());
                        }
                        // Draw the run again at once, over the tail.
                        last.clear();
                    }
                }
                // Stdin closed: no more keys, the view goes on.
                None => keys = None,
            },
        }
    }
}
