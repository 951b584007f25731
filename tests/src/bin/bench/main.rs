//! `orchestrator-bench`: measures the real daemon's overhead, throughput, scheduling efficiency
//! and scale in sealed sandboxes, prints a table and writes JSON.
//!
//! `cargo run --release -p orchestrator-tests --bin orchestrator-bench [-- --quick] [--out F]`
//!
//! `--quick` (about a minute, what CI runs as a smoke test — timings are reported, never
//! asserted) shrinks every figure; the full mode produces BENCHMARKS.md's numbers. The figures:
//! MCP tool calls/s and latency at 1–256 sessions; `status` over the socket and as a whole
//! process; daemon memory idle and under 10 runs × 4 workers; scheduling efficiency against
//! the lower bound on seeded random DAGs with the fake claude; scale (many runs × workers ×
//! tasks); the time to reconcile unfinished runs after a restart; and the bytes of our tools
//! and instructions in each request the real claude sends, per role.
//!
//! Rows whose unit is `bool` are invariant checks (each task completed exactly once, …): the
//! bench exits 1 when one of them fails, after printing and writing everything.

mod common;
mod figures;
mod floor;
mod mcp;
mod scheduling;
mod tokens;

use serde_json::{Value, json};

/// One line of the results table.
pub struct Row {
    pub figure: &'static str,
    pub metric: String,
    pub value: f64,
    pub unit: &'static str,
    /// The goal, as the issue states it, for the reader (never asserted).
    pub goal: Option<&'static str>,
}

impl Row {
    pub fn new(
        figure: &'static str,
        metric: impl Into<String>,
        value: f64,
        unit: &'static str,
    ) -> Self {
        Self {
            figure,
            metric: metric.into(),
            value,
            unit,
            goal: None,
        }
    }

    pub fn goal(mut self, g: &'static str) -> Self {
        self.goal = Some(g);
        self
    }

    /// [`Row::goal`] when `applies` (a goal stated for one level of a figure).
    pub fn goal_if(self, applies: bool, g: &'static str) -> Self {
        if applies { self.goal(g) } else { self }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let out = args
        .iter()
        .position(|a| a == "--out")
        .and_then(|i| args.get(i + 1).cloned())
        .unwrap_or_else(|| {
            concat!(env!("CARGO_MANIFEST_DIR"), "/../target/bench/results.json").to_owned()
        });
    let only: Vec<&str> = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .map(|s| s.split(',').collect())
        .unwrap_or_default();
    let want = |f: &str| only.is_empty() || only.contains(&f);
    let started = std::time::Instant::now();
    let mut rows: Vec<Row> = Vec::new();
    type Figure = fn(bool) -> Vec<Row>;
    let all: [(&str, Figure); 7] = [
        ("mcp", mcp::mcp),
        ("status", figures::status),
        ("memory", figures::memory),
        ("scheduling", scheduling::scheduling),
        ("scale", figures::scale),
        ("restart", figures::restart),
        ("tokens", tokens::tokens),
    ];
    for (name, f) in all {
        if want(name) {
            eprintln!("bench: {name}…");
            // A figure that cannot run (a missing dependency, a broken invariant it asserts)
            // is reported as a failed check; the others' rows are kept.
            match std::panic::catch_unwind(|| f(quick)) {
                Ok(r) => rows.extend(r),
                Err(_) => {
                    rows.push(Row::new(name, "the figure ran to the end", 0.0, "bool").goal("1"))
                }
            }
        }
    }
    println!(
        "{:<12} {:<44} {:>12} {:<6} goal",
        "figure", "metric", "value", "unit"
    );
    for r in &rows {
        println!(
            "{:<12} {:<44} {:>12.2} {:<6} {}",
            r.figure,
            r.metric,
            r.value,
            r.unit,
            r.goal.unwrap_or("")
        );
    }
    let json = json!({
        "mode": if quick { "quick" } else { "full" },
        "profile": if cfg!(debug_assertions) { "debug" } else { "release" },
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "seconds": started.elapsed().as_secs_f64(),
        "results": rows.iter().map(|r| json!({
            "figure": r.figure, "metric": r.metric, "value": r.value, "unit": r.unit, "goal": r.goal,
        })).collect::<Vec<Value>>(),
    });
    if let Some(dir) = std::path::Path::new(&out).parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    std::fs::write(
        &out,
        serde_json::to_string_pretty(&json).unwrap_or_default(),
    )
    .unwrap_or_else(|e| panic!("cannot write {out}: {e}"));
    eprintln!(
        "bench: done in {:.0} s; results in {out}",
        started.elapsed().as_secs_f64()
    );
    // Timings are reported, never judged; an invariant check that fails fails the bench.
    let failed: Vec<&Row> = rows
        .iter()
        .filter(|r| r.unit == "bool" && r.value != 1.0)
        .collect();
    for r in &failed {
        eprintln!("bench: invariant failed: {} {}", r.figure, r.metric);
    }
    if !failed.is_empty() {
        std::process::exit(1);
    }
}
