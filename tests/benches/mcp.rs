//! Tool-call throughput and latency of the real daemon's MCP endpoint (release build).
//!
//! `cargo bench -p orchestrator-tests --bench mcp` starts orchestratord in a sandbox, submits a
//! plan, and runs closed-loop sessions (each its own keep-alive HTTP connection and bearer
//! token, each holding one task) for a fixed time, at 1 and at 64 concurrent sessions, for a
//! read tool (`read_messages`) and a write tool (`report_progress`: SQLite transaction, event,
//! mirror file). Prints calls/s, p50 and p99. Client and daemon share this machine's cores.

use std::time::{Duration, Instant};

use orchestrator_tests::Sandbox;
use serde_json::{Value, json};

const WARMUP: Duration = Duration::from_millis(500);
const MEASURE: Duration = Duration::from_secs(3);

struct Session {
    url: String,
    token: String,
}

async fn closed_loop(
    s: Session,
    tool: &'static str,
    args: Value,
    until: Instant,
    start: Instant,
) -> Vec<Duration> {
    let client = reqwest::Client::new();
    let mut lat = Vec::new();
    let mut id = 0u64;
    while Instant::now() < until {
        id += 1;
        let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                          "params": {"name": tool, "arguments": args}});
        let t = Instant::now();
        let r = client
            .post(&s.url)
            .bearer_auth(&s.token)
            .header("accept", "application/json, text/event-stream")
            .json(&body)
            .send()
            .await
            .expect("send");
        let v: Value = r.json().await.expect("json");
        assert!(v["result"]["isError"] != true, "{tool}: {v}");
        if t >= start {
            lat.push(t.elapsed());
        }
    }
    lat
}

fn pct(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn main() {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    let run = sb.start_run(&repo, "Benchmark");
    let tasks: Vec<Value> = (0..64)
        .map(|i| json!({"id": format!("t{i}"), "title": "T", "description": "D", "acceptance_criteria": ["ok"]}))
        .collect();
    let planner = sb.session(&run, "planner");
    planner.ok("submit_plan", json!({"summary": "bench", "tasks": tasks}));
    let sessions: Vec<Session> = (0..64)
        .map(|_| {
            let g = sb.open_session(&run, json!({"role": "worker"}));
            let s = Session {
                url: g["mcp_url"].as_str().expect("url").to_owned(),
                token: g["token"].as_str().expect("token").to_owned(),
            };
            orchestrator_tests::mcp::Mcp::new(&s.url, Some(&s.token)).ok("claim_task", json!({}));
            s
        })
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    println!(
        "{:<16} {:>8} {:>10} {:>10} {:>10}",
        "tool", "sessions", "calls/s", "p50", "p99"
    );
    for (tool, args) in [
        ("read_messages", json!({})),
        ("report_progress", json!({"note": "still going"})),
    ] {
        for n in [1usize, 64] {
            let start = Instant::now() + WARMUP;
            let until = start + MEASURE;
            let mut all: Vec<Duration> = runtime.block_on(async {
                let handles: Vec<_> = sessions[..n]
                    .iter()
                    .map(|s| {
                        let s = Session {
                            url: s.url.clone(),
                            token: s.token.clone(),
                        };
                        tokio::spawn(closed_loop(s, tool, args.clone(), until, start))
                    })
                    .collect();
                let mut all = Vec::new();
                for h in handles {
                    all.extend(h.await.expect("session task"));
                }
                all
            });
            all.sort();
            println!(
                "{:<16} {:>8} {:>10.0} {:>8.2}ms {:>8.2}ms",
                tool,
                n,
                all.len() as f64 / MEASURE.as_secs_f64(),
                pct(&all, 0.50).as_secs_f64() * 1e3,
                pct(&all, 0.99).as_secs_f64() * 1e3
            );
        }
    }
}
