//! Figures 2, 3, 5 and 6 (`mcp.rs` is figure 1, `scheduling.rs` figure 4, `tokens.rs` figure
//! 7). Each builds its own sandbox (a fresh daemon), measures, and returns rows.

use std::time::{Duration, Instant};

use orchestrator_tests::{Sandbox, http, wait};
use serde_json::Value;

use crate::Row;
use crate::common::{cpu_seconds, done_tasks, memory_mb, pct, run_with_board, worker};

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
    let ((load, _), peak) = sampling(pid, || crate::mcp::drive(workers));
    let (_, hwm) = memory_mb(pid);
    // 64 live workers on one run, in a daemon of its own.
    let one = Sandbox::new();
    let run = run_with_board(&one, "wide", if quick { 64 } else { 200 });
    let workers = (0..64).map(|_| worker(&one, &run)).collect();
    let one_pid = one.daemon_pid();
    let ((wide, _), wide_peak) = sampling(one_pid, || crate::mcp::drive(workers));
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

/// A random DAG: each task depends on up to 3 earlier ones; durations in ms.
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
    let ((mut load, wall), peak) = sampling(pid, || crate::mcp::drive(workers));
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
    let (t0, t0_wall) = (Instant::now(), time::OffsetDateTime::now_utc());
    let mut child = sb
        .daemon_command()
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start the daemon");
    wait::until("the daemon to answer", wait::DEADLINE, || sb.health());
    let serving = t0.elapsed();
    // When each run's restore was recorded, by the daemon's own clock (the polling here,
    // a hundred requests a round, does not count).
    let mut restored_at: Vec<time::OffsetDateTime> = Vec::new();
    let mut pending: Vec<&String> = ids.iter().collect();
    wait::until("every run restored", Duration::from_secs(120), || {
        pending.retain(|id| {
            let r = sb.get(&format!("/v1/runs/{id}/events"));
            let events: Value = serde_json::from_slice(&r.body).unwrap_or_default();
            let at = events["events"].as_array().and_then(|all| {
                all.iter()
                    .find(|e| e["kind"] == "run_restored")
                    .and_then(|e| e["at"].as_str())
                    .and_then(|at| {
                        time::OffsetDateTime::parse(
                            at,
                            &time::format_description::well_known::Rfc3339,
                        )
                        .ok()
                    })
            });
            restored_at.extend(at);
            at.is_none()
        });
        pending.is_empty().then_some(())
    });
    let last = restored_at.into_iter().max().unwrap_or(t0_wall);
    let all = Duration::try_from(last - t0_wall).unwrap_or_default();
    // The daemon's own figure: every restored run reconciled (leftover agents reaped,
    // workers re-attached), from its start-up.
    let reconciled = wait::until("the daemon reconciled", Duration::from_secs(120), || {
        sb.health()?["reconciled_in_ms"].as_f64()
    });
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
            format!("start → all {n} runs' restores recorded"),
            all.as_secs_f64() * 1e3,
            "ms",
        ),
        Row::new(
            "restart",
            format!("start → all {n} runs reconciled (daemon's health)"),
            reconciled,
            "ms",
        )
        .goal("≤ 1000 ms for 100 runs"),
    ]
}
