//! Orchestration overhead of a whole run, with the fast tier's fake claude (release build).
//!
//! `cargo bench -p orchestrator-tests --bench run` runs a 12-task chain (each task depends on
//! the previous one, so each becomes ready exactly when its predecessor merges) and then 40
//! independent tasks at concurrency 8. From the run's event log (millisecond timestamps) and
//! /proc it reports: dispatch latency (dependency merged → next worker spawned), merge latency
//! (worker session ended → merged), time inside the agent, and the daemon's CPU time.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use orchestrator_tests::{Sandbox, wait};
use serde_json::{Value, json};

fn cpu_seconds(pid: i32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

fn at(e: &Value) -> f64 {
    let s = e["at"].as_str().unwrap_or("");
    let t = time_ms(s);
    t as f64
}

fn time_ms(s: &str) -> i64 {
    // 2026-11-25T21:18:20.123Z → ms since midnight (runs stay within a day here).
    let t = s
        .split('T')
        .nth(1)
        .unwrap_or("0:0:0Z")
        .trim_end_matches('Z');
    let mut p = t.split(':');
    let h: i64 = p.next().and_then(|v| v.parse().ok()).unwrap_or(0);
    let m: i64 = p.next().and_then(|v| v.parse().ok()).unwrap_or(0);
    let sec: f64 = p.next().and_then(|v| v.parse().ok()).unwrap_or(0.0);
    (h * 3600 + m * 60) * 1000 + (sec * 1000.0).round() as i64
}

fn stats(name: &str, mut v: Vec<f64>) {
    if v.is_empty() {
        return;
    }
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let p = |q: f64| v[((v.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "  {name:<28} n={:<3} p50 {:>7.1} ms  p90 {:>7.1} ms  max {:>7.1} ms",
        v.len(),
        p(0.5),
        p(0.9),
        v[v.len() - 1]
    );
}

fn run(sb: &Sandbox, repo: &Path, name: &str, tasks: Vec<Value>, concurrency: &str) {
    let plan = sb.root().join(format!("{name}.json"));
    std::fs::write(&plan, json!({"summary": name, "tasks": tasks}).to_string()).expect("plan");
    let script = format!("plan:{}", plan.display());
    sb.orchestrate(&["list"]).ok();
    let pid = sb.daemon_pid();
    let cpu0 = cpu_seconds(pid);
    let t0 = Instant::now();
    sb.orchestrate_env(
        repo,
        &["start", name, "--concurrency", concurrency],
        &[("CLAUDE_FAKE_SCRIPT", &script)],
    )
    .ok();
    let run = wait::until("the run", Duration::from_secs(600), || {
        let s = sb.orchestrate_in(repo, &["status", "--json"]).ok().json();
        matches!(s["status"].as_str(), Some("completed" | "failed")).then_some(s)
    });
    let wall = t0.elapsed();
    let cpu = cpu_seconds(pid) - cpu0;
    assert_eq!(run["status"], "completed", "{run}");
    let events = sb
        .orchestrate_in(repo, &["log", "-n", "100000", "--json"])
        .ok()
        .json();
    let events = events["events"].as_array().cloned().unwrap_or_default();
    let (mut dispatched, mut ended, mut merged) = (HashMap::new(), HashMap::new(), HashMap::new());
    let mut session_task = HashMap::new();
    for e in &events {
        let m = e["message"].as_str().unwrap_or("");
        let w: Vec<&str> = m.split_whitespace().collect();
        match e["kind"].as_str().unwrap_or("") {
            "task_dispatched" => {
                dispatched.insert(w[1].to_owned(), at(e));
                session_task.insert(w[5].to_owned(), w[1].to_owned());
            }
            "session_ended" => {
                if let Some(t) = session_task.get(w[1]) {
                    ended.insert(t.clone(), at(e));
                }
            }
            "task_merged" => {
                merged.insert(w[1].to_owned(), at(e));
            }
            _ => {}
        }
    }
    let n = tasks_len(&run);
    println!(
        "{name}: {n} tasks, concurrency {concurrency}: wall {:.2} s, daemon CPU {:.3} s ({:.1} ms per task)",
        wall.as_secs_f64(),
        cpu,
        cpu * 1000.0 / n as f64
    );
    let mut inside = Vec::new();
    let mut merge_lat = Vec::new();
    for (t, d) in &dispatched {
        if let (Some(e), Some(m)) = (ended.get(t), merged.get(t)) {
            inside.push(e - d);
            merge_lat.push(m - e);
        }
    }
    if name == "chain" {
        let mut lat = Vec::new();
        for i in 1..n {
            if let (Some(prev), Some(d)) = (
                merged.get(&format!("t{}", i - 1)),
                dispatched.get(&format!("t{i}")),
            ) {
                lat.push(d - prev);
            }
        }
        stats("dispatch (dep merged→spawn)", lat);
    }
    stats("merge (session end→merged)", merge_lat);
    stats("inside the agent session", inside);
}

fn tasks_len(run: &Value) -> usize {
    run["progress"]["tasks"].as_u64().unwrap_or(0) as usize
}

fn main() {
    let sb = Sandbox::new();
    let repo = sb.repo("chain");
    let chain: Vec<Value> = (0..12)
        .map(|i| {
            let deps: Vec<String> = if i == 0 { vec![] } else { vec![format!("t{}", i - 1)] };
            json!({"id": format!("t{i}"), "title": "T", "description": "D", "acceptance_criteria": ["ok"],
                   "depends_on": deps, "files": [format!("f{i}.txt")]})
        })
        .collect();
    run(&sb, &repo, "chain", chain, "1");
    let repo = sb.repo("wide");
    let wide: Vec<Value> = (0..40)
        .map(|i| json!({"id": format!("w{i}"), "title": "W", "description": "D", "acceptance_criteria": ["ok"],
                        "files": [format!("w{i}.txt")]}))
        .collect();
    run(&sb, &repo, "wide", wide, "8");
}
