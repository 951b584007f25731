//! Figure 1: MCP tool calls per second and latency through the real endpoint, each level next
//! to its anchor (the no-op rmcp floor, driven the same way right after it). A level's load
//! lasts about a second on two shared cores, so the full bench runs each level [`ROUNDS`]
//! times, each round in a fresh sandbox, and reports the median round; the exactly-once and
//! zero-error checks hold for every round.

use std::time::Duration;

use orchestrator_tests::Sandbox;

use crate::Row;
use crate::common::{Load, cpu_seconds, done_tasks, not_done, pct, run_with_board, work, worker};

/// Rounds per level in the full bench (one in `--quick`).
const ROUNDS: usize = 3;

/// One round of one level.
struct Round {
    calls: f64,
    floor: f64,
    p50: f64,
    p99: f64,
    steady_p99: f64,
    /// The sessions' first calls, which open their connections all at once.
    first_p99: f64,
    /// The no-op floor's p99 over all its calls, driven the same way, and over its sessions'
    /// first calls.
    floor_p99: f64,
    floor_first_p99: f64,
    /// The daemon's CPU time per call (user + system): steadier than a rate on shared cores.
    cpu_us: f64,
    /// The no-op server's CPU time per call, the same way.
    floor_cpu_us: f64,
    errors: u64,
    exact: bool,
}

pub fn mcp(quick: bool) -> Vec<Row> {
    let levels: Vec<usize> = match std::env::var("ORCHESTRATOR_BENCH_SESSIONS") {
        // One level alone, e.g. to profile it: ORCHESTRATOR_BENCH_SESSIONS=64.
        Ok(v) => v.split(',').filter_map(|n| n.trim().parse().ok()).collect(),
        Err(_) if quick => vec![1, 8, 64],
        Err(_) => vec![1, 8, 64, 256],
    };
    // Tasks per session; more for a longer load to profile (ORCHESTRATOR_BENCH_TASKS=60).
    let per_session = match std::env::var("ORCHESTRATOR_BENCH_TASKS").map(|v| v.parse()) {
        Ok(Ok(t)) => t,
        _ if quick => 3,
        _ => 12,
    };
    let rounds = if quick { 1 } else { ROUNDS };
    // A round of the full bench does at least one full board of tasks: at one session, 12
    // tasks took ~40 ms, less than the clock ticks `/proc` counts CPU time in.
    let least = if quick { 16 } else { 200 };
    let mut rows = Vec::new();
    for n in levels {
        let all: Vec<Round> = (0..rounds).map(|_| round(n, per_session, least)).collect();
        rows.extend(level_rows(n, &all));
    }
    rows
}

/// The median of `f` over the rounds.
fn median(all: &[Round], f: impl Fn(&Round) -> f64) -> f64 {
    let mut v: Vec<f64> = all.iter().map(f).collect();
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn level_rows(n: usize, all: &[Round]) -> Vec<Row> {
    let at64 = n == 64;
    let of = if all.len() > 1 {
        format!(" (median of {})", all.len())
    } else {
        String::new()
    };
    // A row of the median round, its goal stated at 64 sessions only.
    let row = |metric: &str, f: fn(&Round) -> f64, unit: &'static str, goal: &'static str| {
        Row::new(
            "mcp",
            format!("{n} sessions: {metric}{of}"),
            median(all, f),
            unit,
        )
        .goal_if(at64 && !goal.is_empty(), goal)
    };
    vec![
        row(
            "tool calls/s",
            |r| r.calls,
            "1/s",
            "≥ 5000/s at 64 sessions",
        ),
        row("no-op rmcp floor calls/s", |r| r.floor, "1/s", ""),
        row(
            "ratio to the floor",
            |r| r.calls / r.floor,
            "×",
            "≥ 0.6× at 64 sessions",
        ),
        row("p50 latency", |r| r.p50, "ms", ""),
        row("p99 latency", |r| r.p99, "ms", "≤ 20 ms at 64 sessions"),
        row(
            "steady-state p99 (first calls aside)",
            |r| r.steady_p99,
            "ms",
            "≤ 20 ms at 64 sessions",
        ),
        row(
            "first calls p99 (one per session)",
            |r| r.first_p99,
            "ms",
            "",
        ),
        row("no-op floor p99", |r| r.floor_p99, "ms", ""),
        row(
            "no-op floor first calls p99",
            |r| r.floor_first_p99,
            "ms",
            "",
        ),
        row("daemon CPU per call", |r| r.cpu_us, "µs", ""),
        row("no-op server CPU per call", |r| r.floor_cpu_us, "µs", ""),
        Row::new(
            "mcp",
            format!("{n} sessions: errors (all rounds)"),
            all.iter().map(|r| r.errors).sum::<u64>() as f64,
            "",
        )
        .goal("0"),
        Row::new(
            "mcp",
            format!("{n} sessions: each task completed exactly once"),
            if all.iter().all(|r| r.exact) {
                1.0
            } else {
                0.0
            },
            "bool",
        )
        .goal("1"),
    ]
}

/// One level once, in a fresh sandbox: the realistic mix (at least `least` tasks), then the
/// floor.
fn round(n: usize, per_session: usize, least: usize) -> Round {
    let sb = Sandbox::new();
    let total = (n * per_session).max(least);
    let boards = total.div_ceil(200);
    let per_board = total.div_ceil(boards);
    let runs: Vec<String> = (0..boards)
        .map(|i| run_with_board(&sb, &format!("p{i}"), per_board))
        .collect();
    let workers = (0..n).map(|i| worker(&sb, &runs[i % runs.len()])).collect();
    let pid = sb.daemon_pid();
    eprintln!("bench: mcp {n} sessions: load on daemon {pid}");
    let cpu = cpu_seconds(pid);
    let (mut load, wall) = drive(workers);
    let cpu = cpu_seconds(pid) - cpu;
    load.latencies.sort();
    load.steady.sort();
    load.first.sort();
    let done: usize = runs.iter().map(|r| done_tasks(&sb, r)).sum();
    let exact = load.completed as usize == boards * per_board && done == boards * per_board;
    if !exact {
        eprintln!(
            "bench: mcp {n} sessions: {} completions answered, {done} tasks done, {} expected, \
             {} errors",
            load.completed,
            boards * per_board,
            load.errors
        );
        for r in &runs {
            eprintln!("bench:   run {r}: {}", not_done(&sb, r));
        }
    }
    if let Some(e) = &load.first_error {
        eprintln!("bench: mcp {n} sessions: first error: {e}");
        // What the daemon said about it, before the sandbox (and its log) goes.
        let log = sb.daemon_log();
        let said: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
            .collect();
        for l in said.iter().rev().take(20).rev() {
            eprintln!("bench:   daemon: {l}");
        }
    }
    // The anchor: as many no-op calls through the same rmcp transport, same concurrency.
    let (mut floor, floor_wall, floor_cpu) = crate::floor::drive(n, load.latencies.len());
    floor.latencies.sort();
    floor.first.sort();
    if floor.errors > 0 {
        eprintln!(
            "bench: mcp floor {n} sessions: {} errors: {:?}",
            floor.errors, floor.first_error
        );
    }
    Round {
        calls: load.latencies.len() as f64 / wall.as_secs_f64(),
        floor: floor.latencies.len() as f64 / floor_wall.as_secs_f64(),
        p50: pct(&load.latencies, 0.50),
        p99: pct(&load.latencies, 0.99),
        steady_p99: pct(&load.steady, 0.99),
        first_p99: pct(&load.first, 0.99),
        floor_p99: pct(&floor.latencies, 0.99),
        floor_first_p99: pct(&floor.first, 0.99),
        cpu_us: cpu / load.latencies.len().max(1) as f64 * 1e6,
        floor_cpu_us: floor_cpu / floor.latencies.len().max(1) as f64 * 1e6,
        errors: load.errors,
        exact,
    }
}

/// Runs every worker's realistic loop to the end, concurrently.
pub fn drive(workers: Vec<crate::common::Worker>) -> (Load, Duration) {
    crate::common::drive_all(workers.into_iter().map(work).collect())
}
