//! Figure 4: scheduling efficiency on seeded random DAGs run by the fake claude — the
//! makespan against the lower bound max(critical path, work / concurrency) and against the
//! daemon's own dispatch order without any overhead, dispatch latency, and where a task's
//! overhead goes (starting its worker, finishing and merging it).

use std::collections::HashMap;
use std::time::Duration;

use orchestrator_tests::Sandbox;
use serde_json::{Value, json};

use crate::Row;
use crate::common::pct;

fn dag(seed: u64, n: usize, min_ms: u64, max_ms: u64) -> Vec<(String, Vec<String>, u64)> {
    let mut rng = orchestrator_tests::rng::Rng::new(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    (0..n)
        .map(|i| {
            let mut deps = Vec::new();
            for j in 0..i {
                if deps.len() < 3 && rng.below(100) < 12 {
                    deps.push(format!("t{j}"));
                }
            }
            let d = min_ms + rng.below(max_ms - min_ms + 1);
            (format!("t{i}"), deps, d)
        })
        .collect()
}

/// The makespan of the daemon's dispatch order (most dependent levels first, then plan
/// order) if starting, finishing and merging a task cost nothing: what is left of the gap to
/// the lower bound once overhead is gone is the order's, not the daemon's.
fn ideal(g: &[(String, Vec<String>, u64)], conc: usize) -> u64 {
    let mut depth: HashMap<&str, u64> = HashMap::new();
    for (id, _, _) in g.iter().rev() {
        let below = g
            .iter()
            .filter(|(_, deps, _)| deps.contains(id))
            .map(|(k, _, _)| depth[k.as_str()])
            .max()
            .unwrap_or(0);
        depth.insert(id.as_str(), below + 1);
    }
    let (mut now, mut merged, mut started) = (0, Vec::<&str>::new(), Vec::<&str>::new());
    let mut running: Vec<(u64, &str)> = Vec::new();
    while merged.len() < g.len() {
        let mut ready: Vec<&(String, Vec<String>, u64)> = g
            .iter()
            .filter(|(id, deps, _)| {
                !started.contains(&id.as_str()) && deps.iter().all(|d| merged.contains(&d.as_str()))
            })
            .collect();
        ready.sort_by_key(|(id, _, _)| std::cmp::Reverse(depth[id.as_str()]));
        for (id, _, d) in ready.into_iter().take(conc - running.len()) {
            started.push(id);
            running.push((now + d, id));
        }
        running.sort();
        let (at, id) = running.remove(0);
        now = at;
        merged.push(id);
    }
    now
}

fn event_ms(e: &Value) -> f64 {
    let s = e["at"].as_str().unwrap_or("");
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map(|t| (t.unix_timestamp_nanos() / 1_000_000) as f64)
        .unwrap_or(0.0)
}

/// 4. Scheduling efficiency: makespan against max(critical path, work / concurrency), and
///    dispatch latency (a worker's session end or a merge that freed a slot or readied a
///    task → the next worker spawned). The first batch, which nothing freed, is its own row:
///    the planner's end → the last of its workers spawned.
pub fn scheduling(quick: bool) -> Vec<Row> {
    let (graphs, n, lo, hi, conc) = if quick {
        (1, 12, 100, 400, 3)
    } else {
        (3, 30, 300, 1500, 4)
    };
    let (mut ratios, mut policy) = (Vec::new(), Vec::new());
    let (mut latencies, mut starts, mut merges) = (Vec::new(), Vec::new(), Vec::new());
    // The first batch's dispatches, from the planner's end.
    let mut first = Vec::new();
    for seed in 1..=graphs {
        let g = dag(seed, n, lo, hi);
        let sb = Sandbox::new();
        let repo = sb.repo("sched");
        let tasks: Vec<Value> = g
            .iter()
            .map(|(id, deps, ms)| {
                json!({"id": id, "title": id, "description": format!("Simulated work sleep_ms={ms}"),
                       "acceptance_criteria": ["ok"], "depends_on": deps, "files": [format!("{id}.txt")]})
            })
            .collect();
        let plan = sb.root().join("plan.json");
        std::fs::write(&plan, json!({"summary": "dag", "tasks": tasks}).to_string()).expect("plan");
        let script = format!("plan:{}", plan.display());
        let c = conc.to_string();
        sb.orchestrate_env(
            &repo,
            &["start", "DAG", "--skip-codex", "--concurrency", &c],
            &[("CLAUDE_FAKE_SCRIPT", &script)],
        )
        .ok();
        // One `orchestrate wait` (it asks the daemon four times a second over its socket), not
        // a `status` process every 50 ms: the observer's processes took CPU from the two cores
        // the workers, git and the daemon share, and showed in the latencies measured.
        let out = sb.orchestrate_in(&repo, &["wait", "--until", "finished", "--timeout", "900s"]);
        let run = sb.orchestrate_in(&repo, &["status", "--json"]).ok().json();
        assert_eq!(run["status"], "completed", "{run}\n{out}");
        let events = sb
            .orchestrate_in(&repo, &["log", "-n", "100000", "--json"])
            .ok()
            .json();
        let events = events["events"].as_array().cloned().unwrap_or_default();
        let (mut dispatched, mut merged) = (HashMap::new(), Vec::new());
        // Sessions end (the planner's too); a worker's ending frees a slot.
        let (mut ended, mut workers) = (Vec::new(), std::collections::HashSet::new());
        let mut planned = f64::MAX;
        let (mut merged_at, mut completed_at) = (HashMap::new(), HashMap::new());
        for e in &events {
            let w: Vec<&str> = e["message"]
                .as_str()
                .unwrap_or("")
                .split_whitespace()
                .collect();
            match e["kind"].as_str().unwrap_or("") {
                "task_dispatched" => {
                    dispatched.insert(w[1].to_owned(), event_ms(e));
                    workers.insert(w.get(5).copied().unwrap_or("").to_owned());
                }
                "session_ended" => ended.push((w[1].to_owned(), event_ms(e))),
                "planner_finished" => planned = planned.min(event_ms(e)),
                "task_completed" => {
                    completed_at.insert(w[1].to_owned(), event_ms(e));
                }
                "task_merged" => {
                    merged.push(event_ms(e));
                    merged_at.insert(w[1].to_owned(), event_ms(e));
                }
                _ => {}
            }
        }
        let start = dispatched.values().cloned().fold(f64::MAX, f64::min);
        let end = merged.iter().cloned().fold(0.0, f64::max);
        let makespan = end - start;
        // Lower bound from the scripted durations alone.
        let dur: HashMap<&str, u64> = g.iter().map(|(i, _, d)| (i.as_str(), *d)).collect();
        // Where a task's time beyond its scripted work goes: starting its worker and the
        // worker's calls (dispatched → completed), and finishing it (completed → merged).
        for (id, d) in &dispatched {
            let (Some(c), Some(m)) = (completed_at.get(id), merged_at.get(id)) else {
                continue;
            };
            let work = dur.get(id.as_str()).copied().unwrap_or(0) as f64;
            starts.push(Duration::from_secs_f64((c - d - work).max(0.0) / 1e3));
            merges.push(Duration::from_secs_f64((m - c).max(0.0) / 1e3));
        }
        let mut finish: HashMap<&str, u64> = HashMap::new();
        for (id, deps, d) in &g {
            let ready = deps.iter().map(|x| finish[x.as_str()]).max().unwrap_or(0);
            finish.insert(id.as_str(), ready + d);
        }
        let cp = finish.values().cloned().max().unwrap_or(0) as f64;
        let work: u64 = dur.values().sum();
        let lb = cp.max(work as f64 / conc as f64);
        ratios.push(makespan / lb);
        policy.push(makespan / ideal(&g, conc) as f64);
        // What frees a slot or readies a task: a worker's session ending, a merge landing.
        let mut freed: Vec<f64> = ended
            .iter()
            .filter(|(s, _)| workers.contains(s))
            .map(|(_, at)| *at)
            .chain(merged.iter().copied())
            .collect();
        freed.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
        for d in dispatched.values() {
            match freed.iter().rev().find(|m| **m <= *d + 0.5) {
                Some(m) => latencies.push(Duration::from_secs_f64((d - m).max(0.0) / 1e3)),
                // Before any slot was freed: the first batch, started by the plan.
                None => first.push(Duration::from_secs_f64((d - planned).max(0.0) / 1e3)),
            }
        }
        eprintln!(
            "bench: DAG seed {seed}: {n} tasks, critical path {:.1} s, work {:.1} s, concurrency {conc}: makespan {:.2} s vs bound {:.2} s",
            cp / 1e3,
            work as f64 / 1e3,
            makespan / 1e3,
            lb / 1e3
        );
    }
    latencies.sort();
    first.sort();
    starts.sort();
    merges.sort();
    let mean = ratios.iter().sum::<f64>() / ratios.len().max(1) as f64;
    let mean_policy = policy.iter().sum::<f64>() / policy.len().max(1) as f64;
    let row = |metric: String, value, unit| Row::new("scheduling", metric, value, unit);
    vec![
        row(
            format!("makespan / lower bound (mean of {graphs} DAGs)"),
            mean,
            "×",
        )
        .goal("≤ 1.05"),
        row(
            "makespan / the same order without overhead".into(),
            mean_policy,
            "×",
        ),
        row("dispatch latency p50".into(), pct(&latencies, 0.5), "ms"),
        row("dispatch latency p99".into(), pct(&latencies, 0.99), "ms").goal("≤ 50 ms"),
        row(
            format!("first batch ({conc} workers): plan → last dispatched, worst DAG"),
            pct(&first, 1.0),
            "ms",
        ),
        row(
            "worker start + calls beyond its work p50".into(),
            pct(&starts, 0.5),
            "ms",
        ),
        row("completed → merged p50".into(), pct(&merges, 0.5), "ms"),
    ]
}
