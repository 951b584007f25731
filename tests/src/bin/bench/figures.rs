//! The six figures. Each builds its own sandbox (a fresh daemon), measures, and returns rows.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use orchestrator_tests::{Sandbox, http, wait};
use serde_json::{Value, json};

use crate::Row;
use crate::common::{
    Load, cpu_seconds, done_tasks, memory_mb, not_done, pct, run_with_board, work, worker,
};

/// Runs every worker's realistic loop to the end, concurrently.
fn drive(workers: Vec<crate::common::Worker>) -> (Load, Duration) {
    crate::common::drive_all(workers.into_iter().map(work).collect())
}

/// 1. MCP tool calls per second and latency through the real endpoint.
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
    let mut rows = Vec::new();
    for n in levels {
        let sb = Sandbox::new();
        let total = (n * per_session).max(16);
        let boards = total.div_ceil(200);
        let per_board = total.div_ceil(boards);
        let runs: Vec<String> = (0..boards)
            .map(|i| run_with_board(&sb, &format!("p{i}"), per_board))
            .collect();
        let workers = (0..n).map(|i| worker(&sb, &runs[i % runs.len()])).collect();
        eprintln!(
            "bench: mcp {n} sessions: load on daemon {}",
            sb.daemon_pid()
        );
        let (mut load, wall) = drive(workers);
        load.latencies.sort();
        let done: usize = runs.iter().map(|r| done_tasks(&sb, r)).sum();
        let exact = load.completed as usize == boards * per_board && done == boards * per_board;
        if !exact {
            eprintln!(
                "bench: mcp {n} sessions: {} completions answered, {done} tasks done, {} \
                 expected, {} errors",
                load.completed,
                boards * per_board,
                load.errors
            );
            for r in &runs {
                eprintln!("bench:   run {r}: {}", not_done(&sb, r));
            }
        }
        let label = format!("{n} sessions");
        let calls = load.latencies.len() as f64 / wall.as_secs_f64();
        let at64 = n == 64;
        rows.push(
            Row::new("mcp", format!("{label}: tool calls/s"), calls, "1/s")
                .goal_if(at64, "≥ 5000/s at 64 sessions"),
        );
        // The anchor: as many no-op calls through the same rmcp transport, same concurrency.
        let (floor, floor_wall) = crate::floor::drive(n, load.latencies.len());
        let floor_calls = floor.latencies.len() as f64 / floor_wall.as_secs_f64();
        rows.push(Row::new(
            "mcp",
            format!("{label}: no-op rmcp floor calls/s"),
            floor_calls,
            "1/s",
        ));
        rows.push(
            Row::new(
                "mcp",
                format!("{label}: ratio to the floor"),
                calls / floor_calls,
                "×",
            )
            .goal_if(at64, "≥ 0.6× at 64 sessions"),
        );
        if floor.errors > 0 {
            eprintln!(
                "bench: mcp floor {label}: {} errors: {:?}",
                floor.errors, floor.first_error
            );
        }
        rows.push(Row::new(
            "mcp",
            format!("{label}: p50 latency"),
            pct(&load.latencies, 0.50),
            "ms",
        ));
        rows.push(
            Row::new(
                "mcp",
                format!("{label}: p99 latency"),
                pct(&load.latencies, 0.99),
                "ms",
            )
            .goal_if(at64, "≤ 20 ms at 64 sessions"),
        );
        load.steady.sort();
        rows.push(
            Row::new(
                "mcp",
                format!("{label}: steady-state p99 (first calls aside)"),
                pct(&load.steady, 0.99),
                "ms",
            )
            .goal_if(at64, "≤ 20 ms at 64 sessions"),
        );
        rows.push(Row::new("mcp", format!("{label}: errors"), load.errors as f64, "").goal("0"));
        rows.push(
            Row::new(
                "mcp",
                format!("{label}: each task completed exactly once"),
                if exact { 1.0 } else { 0.0 },
                "bool",
            )
            .goal("1"),
        );
        if let Some(e) = load.first_error {
            eprintln!("bench: mcp {label}: first error: {e}");
        }
    }
    rows
}

/// 2. `status`: the socket API round trip and the whole `orchestrate status` process.
pub fn status(quick: bool) -> Vec<Row> {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    sb.start_run(&repo, "Benchmark status");
    let path = format!("/v1/runs/current?project={}", repo.display());
    let mut api = Vec::new();
    for _ in 0..if quick { 100 } else { 1000 } {
        let t = Instant::now();
        let r = http::get(&sb.socket(), &path).expect("GET");
        api.push(t.elapsed());
        assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    }
    api.sort();
    // The CLI as users install it (`cargo install --path client`): built as its own package, so
    // without the TLS the daemon's reqwest brings into a workspace build.
    let alone = cli_alone();
    let mut cli = Vec::new();
    for _ in 0..if quick { 30 } else { 300 } {
        let mut c = sb.command(&alone);
        c.arg("status").current_dir(&repo);
        let t = Instant::now();
        let out = c.output().expect("run orchestrate");
        cli.push(t.elapsed());
        assert!(out.status.success(), "orchestrate status: {out:?}");
    }
    cli.sort();
    vec![
        Row::new("status", "socket API round trip p50", pct(&api, 0.5), "ms"),
        Row::new("status", "socket API round trip p99", pct(&api, 0.99), "ms"),
        Row::new(
            "status",
            "`orchestrate status` process p50",
            pct(&cli, 0.5),
            "ms",
        )
        .goal("≤ 5 ms"),
        Row::new(
            "status",
            "`orchestrate status` process p90",
            pct(&cli, 0.9),
            "ms",
        ),
    ]
}

/// `orchestrate` built alone (`-p orchestrator-client`, in a target dir of its own so the
/// workspace's build is not undone), with the profile of this bench.
fn cli_alone() -> std::path::PathBuf {
    let target = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/cli-alone");
    escargot::CargoBuild::new()
        .manifest_path(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.toml"))
        .package("orchestrator-client")
        .bin("orchestrate")
        .current_release()
        .target_dir(target)
        .run()
        .unwrap_or_else(|e| panic!("cannot build the CLI alone: {e}"))
        .path()
        .to_path_buf()
}

/// Samples the daemon's RSS every 20 ms while `f` runs; returns f's value and the peak MB.
fn sampling<T>(pid: i32, f: impl FnOnce() -> T) -> (T, f64) {
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s = stop.clone();
    let sampler = std::thread::spawn(move || {
        let mut peak = 0.0f64;
        while !s.load(std::sync::atomic::Ordering::Relaxed) {
            peak = peak.max(memory_mb(pid).0);
            std::thread::sleep(Duration::from_millis(20));
        }
        peak
    });
    let v = f();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    (v, sampler.join().unwrap_or(0.0))
}

/// 3. Daemon memory, idle, with 10 runs × 4 simulated workers, and with 64 on one run.
pub fn memory(quick: bool) -> Vec<Row> {
    let sb = Sandbox::new();
    sb.orchestrate(&["list"]).ok();
    let pid = sb.daemon_pid();
    let idle = memory_mb(pid).0;
    let per_run = if quick { 12 } else { 60 };
    let runs: Vec<String> = (0..10)
        .map(|i| run_with_board(&sb, &format!("m{i}"), per_run))
        .collect();
    let workers = runs
        .iter()
        .flat_map(|r| (0..4).map(|_| worker(&sb, r)).collect::<Vec<_>>())
        .collect();
    let ((load, _), peak) = sampling(pid, || drive(workers));
    let (_, hwm) = memory_mb(pid);
    // 64 live workers on one run, in a daemon of its own.
    let one = Sandbox::new();
    let run = run_with_board(&one, "wide", if quick { 64 } else { 200 });
    let workers = (0..64).map(|_| worker(&one, &run)).collect();
    let one_pid = one.daemon_pid();
    let ((wide, _), wide_peak) = sampling(one_pid, || drive(workers));
    vec![
        Row::new("memory", "daemon RSS, idle", idle, "MB").goal("≤ 20 MB"),
        Row::new("memory", "daemon RSS peak, 10 runs × 4 workers", peak, "MB").goal("≤ 32 MB"),
        Row::new("memory", "daemon VmHWM after the load", hwm, "MB"),
        Row::new(
            "memory",
            "daemon RSS peak, 1 run × 64 workers",
            wide_peak,
            "MB",
        )
        .goal("≤ 32 MB"),
        Row::new(
            "memory",
            "errors under the loads",
            (load.errors + wide.errors) as f64,
            "",
        )
        .goal("0"),
    ]
}

/// A small deterministic generator (xorshift64*), so DAGs are the same for a seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// A random DAG: each task depends on up to 3 earlier ones; durations in ms.
fn dag(seed: u64, n: usize, min_ms: u64, max_ms: u64) -> Vec<(String, Vec<String>, u64)> {
    let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
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
///    dispatch latency (the session end or merge that freed a slot or readied a task → the
///    next worker spawned).
pub fn scheduling(quick: bool) -> Vec<Row> {
    let (graphs, n, lo, hi, conc) = if quick {
        (1, 12, 100, 400, 3)
    } else {
        (3, 30, 300, 1500, 4)
    };
    let (mut ratios, mut policy) = (Vec::new(), Vec::new());
    let (mut latencies, mut starts, mut merges) = (Vec::new(), Vec::new(), Vec::new());
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
        let run = wait::until("the DAG run", Duration::from_secs(900), || {
            let s = sb.orchestrate_in(&repo, &["status", "--json"]).ok().json();
            matches!(
                s["status"].as_str(),
                Some("completed" | "failed" | "escalated")
            )
            .then_some(s)
        });
        assert_eq!(run["status"], "completed", "{run}");
        let events = sb
            .orchestrate_in(&repo, &["log", "-n", "100000", "--json"])
            .ok()
            .json();
        let events = events["events"].as_array().cloned().unwrap_or_default();
        let (mut dispatched, mut merged) = (HashMap::new(), Vec::new());
        let mut freed = Vec::new();
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
                }
                // A worker's session ended: its slot is free.
                "session_ended" => freed.push(event_ms(e)),
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
        // What frees a slot or readies a task: a session ending, a merge landing.
        freed.extend(&merged);
        freed.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
        for d in dispatched.values() {
            if *d <= start + 1.0 {
                continue; // the first batch
            }
            if let Some(m) = freed.iter().rev().find(|m| **m <= *d + 0.5) {
                latencies.push(Duration::from_secs_f64((d - m).max(0.0) / 1e3));
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
    starts.sort();
    merges.sort();
    let mean = ratios.iter().sum::<f64>() / ratios.len().max(1) as f64;
    let mean_policy = policy.iter().sum::<f64>() / policy.len().max(1) as f64;
    vec![
        Row::new(
            "scheduling",
            format!("makespan / lower bound (mean of {graphs} DAGs)"),
            mean,
            "×",
        )
        .goal("≤ 1.05"),
        Row::new(
            "scheduling",
            "makespan / the same order without overhead",
            mean_policy,
            "×",
        ),
        Row::new(
            "scheduling",
            "dispatch latency p50",
            pct(&latencies, 0.5),
            "ms",
        ),
        Row::new(
            "scheduling",
            "dispatch latency p99",
            pct(&latencies, 0.99),
            "ms",
        )
        .goal("≤ 50 ms"),
        Row::new(
            "scheduling",
            "worker start + calls beyond its work p50",
            pct(&starts, 0.5),
            "ms",
        ),
        Row::new(
            "scheduling",
            "completed → merged p50",
            pct(&merges, 0.5),
            "ms",
        ),
    ]
}

/// 5. Scale: many runs × workers × tasks on one daemon.
pub fn scale(quick: bool) -> Vec<Row> {
    let (runs_n, workers_n, tasks_n) = if quick { (10, 4, 20) } else { (100, 10, 100) };
    let sb = Sandbox::new();
    let runs: Vec<String> = (0..runs_n)
        .map(|i| run_with_board(&sb, &format!("s{i}"), tasks_n))
        .collect();
    let workers = runs
        .iter()
        .flat_map(|r| (0..workers_n).map(|_| worker(&sb, r)).collect::<Vec<_>>())
        .collect();
    let pid = sb.daemon_pid();
    let cpu0 = cpu_seconds(pid);
    // The API keeps answering `list` while the workers hammer the MCP endpoint.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (s, socket) = (stop.clone(), sb.socket());
    let api = std::thread::spawn(move || {
        let mut lat = Vec::new();
        let mut errors = 0u64;
        while !s.load(std::sync::atomic::Ordering::Relaxed) {
            let t = Instant::now();
            match http::get(&socket, "/v1/runs") {
                Ok(r) if r.status == 200 => lat.push(t.elapsed()),
                _ => errors += 1,
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        (lat, errors)
    });
    let ((mut load, wall), peak) = sampling(pid, || drive(workers));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut api_lat, api_errors) = api.join().unwrap_or_default();
    api_lat.sort();
    load.latencies.sort();
    let cpu = cpu_seconds(pid) - cpu0;
    let done: usize = runs.iter().map(|r| done_tasks(&sb, r)).sum();
    let label = format!("{runs_n} runs × {workers_n} workers × {tasks_n} tasks");
    if let Some(e) = &load.first_error {
        eprintln!("bench: scale: first error: {e}");
    }
    vec![
        Row::new(
            "scale",
            format!("{label}: errors"),
            (load.errors + api_errors) as f64,
            "",
        )
        .goal("0"),
        Row::new(
            "scale",
            "tasks completed exactly once",
            if done == runs_n * tasks_n && load.completed as usize == done {
                1.0
            } else {
                0.0
            },
            "bool",
        )
        .goal("1"),
        Row::new(
            "scale",
            "MCP tool calls/s",
            load.latencies.len() as f64 / wall.as_secs_f64(),
            "1/s",
        ),
        Row::new("scale", "MCP p99 latency", pct(&load.latencies, 0.99), "ms"),
        Row::new(
            "scale",
            "API (`list`) p99 latency under load",
            pct(&api_lat, 0.99),
            "ms",
        ),
        Row::new("scale", "daemon RSS peak", peak, "MB"),
        Row::new(
            "scale",
            "daemon CPU (share of one core)",
            cpu / wall.as_secs_f64() * 100.0,
            "%",
        ),
        Row::new("scale", "wall time", wall.as_secs_f64(), "s"),
    ]
}

/// 6. Restart: daemon start → every unfinished run reconciled (its actor restored).
pub fn restart(quick: bool) -> Vec<Row> {
    let n = if quick { 10 } else { 100 };
    let sb = Sandbox::new();
    let ids: Vec<String> = (0..n)
        .map(|i| {
            let repo = sb.repo(&format!("r{i}"));
            sb.start_run(&repo, &format!("Unfinished {i}"))
        })
        .collect();
    let old = sb.daemon_pid();
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(old),
        nix::sys::signal::Signal::SIGKILL,
    );
    wait::until("the daemon to die", wait::DEADLINE, || {
        sb.daemon_processes().is_empty().then_some(())
    });
    let t0 = Instant::now();
    let mut child = sb
        .daemon_command()
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start the daemon");
    wait::until("the daemon to answer", wait::DEADLINE, || sb.health());
    let serving = t0.elapsed();
    let mut pending: Vec<&String> = ids.iter().collect();
    wait::until("every run restored", Duration::from_secs(120), || {
        pending.retain(|id| {
            let r = sb.get(&format!("/v1/runs/{id}/events"));
            !String::from_utf8_lossy(&r.body).contains("run_restored")
        });
        pending.is_empty().then_some(())
    });
    let all = t0.elapsed();
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = child.wait();
    vec![
        Row::new(
            "restart",
            format!("start → API answers ({n} unfinished runs)"),
            serving.as_secs_f64() * 1e3,
            "ms",
        ),
        Row::new(
            "restart",
            format!("start → all {n} runs reconciled"),
            all.as_secs_f64() * 1e3,
            "ms",
        )
        .goal("≤ 1000 ms for 100 runs"),
    ]
}
