//! What every figure needs: simulated MCP workers over real HTTP, percentiles, /proc readings
//! of the daemon, and sandboxed projects with a submitted plan.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use orchestrator_tests::Sandbox;
use serde_json::{Value, json};

/// A worker session's endpoint and token.
#[derive(Clone)]
pub struct Worker {
    pub url: String,
    pub token: String,
}

/// What a batch of simulated workers did.
#[derive(Default)]
pub struct Load {
    pub latencies: Vec<Duration>,
    /// The calls after each session's first (which also opens its connection, all sessions
    /// at once): the steady state.
    pub steady: Vec<Duration>,
    /// Each session's first call alone (its connection opened with all the others').
    pub first: Vec<Duration>,
    /// This session made its first call.
    warm: bool,
    pub errors: u64,
    pub completed: u64,
    pub first_error: Option<String>,
}

impl Load {
    pub fn merge(&mut self, o: Load) {
        self.latencies.extend(o.latencies);
        self.steady.extend(o.steady);
        self.first.extend(o.first);
        self.errors += o.errors;
        self.completed += o.completed;
        if self.first_error.is_none() {
            self.first_error = o.first_error;
        }
    }
}

pub async fn call(
    http: &reqwest::Client,
    w: &Worker,
    id: u64,
    tool: &str,
    args: Value,
    load: &mut Load,
) -> Option<Value> {
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                      "params": {"name": tool, "arguments": args}});
    let t = Instant::now();
    let sent = http
        .post(&w.url)
        .bearer_auth(&w.token)
        .header("accept", "application/json, text/event-stream")
        .json(&body)
        .send()
        .await;
    let v = match sent {
        Ok(r) => r.json::<Value>().await.ok(),
        Err(_) => None,
    };
    load.latencies.push(t.elapsed());
    if load.warm {
        load.steady.push(t.elapsed());
    } else {
        load.first.push(t.elapsed());
    }
    load.warm = true;
    match v {
        Some(v) if v["result"].is_object() => Some(v["result"].clone()),
        other => {
            load.errors += 1;
            if load.first_error.is_none() {
                load.first_error = Some(format!("{tool}: {other:?}"));
            }
            None
        }
    }
}

/// A worker's realistic loop until the board has nothing left for it: claim a task, read its
/// brief, report progress, read messages, complete it.
pub async fn work(w: Worker) -> Load {
    let http = reqwest::Client::new();
    let mut load = Load::default();
    let mut id = 0u64;
    loop {
        id += 1;
        let Some(claimed) = call(&http, &w, id, "claim_task", json!({}), &mut load).await else {
            break;
        };
        if claimed["isError"] == true || claimed["structuredContent"]["task"].is_null() {
            break; // nothing left
        }
        for (tool, args) in [
            ("get_task", json!({})),
            ("report_progress", json!({"note": "halfway"})),
            ("read_messages", json!({})),
        ] {
            id += 1;
            call(&http, &w, id, tool, args, &mut load).await;
        }
        id += 1;
        if let Some(r) = call(
            &http,
            &w,
            id,
            "complete_task",
            json!({"summary": "done by the benchmark"}),
            &mut load,
        )
        .await
        {
            if r["isError"] == true {
                load.errors += 1;
            } else {
                load.completed += 1;
            }
        }
    }
    load
}

pub fn pct(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1e3
}

/// `VmRSS` and `VmHWM` of a process, in MB.
pub fn memory_mb(pid: i32) -> (f64, f64) {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kb = |key: &str| {
        s.lines()
            .find(|l| l.starts_with(key))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    (kb("VmRSS:") / 1024.0, kb("VmHWM:") / 1024.0)
}

/// User + system CPU seconds of a process.
pub fn cpu_seconds(pid: i32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

/// `n` independent tasks for the board.
pub fn tasks(prefix: &str, n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| {
            json!({"id": format!("{prefix}{i}"), "title": "Bench", "description": "Simulated",
                   "acceptance_criteria": ["ok"], "files": [format!("{prefix}{i}.txt")]})
        })
        .collect()
}

/// A run in its own project whose plan (submitted over MCP) holds `n` tasks. It is started
/// with `--dry-run`, so once planned its engine dispatches no worker of its own and merges
/// nothing: only the simulated workers touch the board, and a task they complete stays done.
/// Returns the run id.
pub fn run_with_board(sb: &Sandbox, name: &str, n: usize) -> String {
    let repo: PathBuf = sb.repo(name);
    let run = sb
        .orchestrate_in(&repo, &["start", name, "--dry-run", "--json"])
        .ok()
        .json()["id"]
        .as_str()
        .expect("run id")
        .to_owned();
    let planner = sb.session(&run, "planner");
    planner.ok(
        "submit_plan",
        json!({"summary": name, "tasks": tasks("t", n)}),
    );
    run
}

/// Opens a worker session on `run`.
pub fn worker(sb: &Sandbox, run: &str) -> Worker {
    let g = sb.open_session(run, json!({"role": "worker"}));
    Worker {
        url: g["mcp_url"].as_str().expect("url").to_owned(),
        token: g["token"].as_str().expect("token").to_owned(),
    }
}

/// Tasks of a run that are `done`, from the API.
pub fn done_tasks(sb: &Sandbox, run: &str) -> usize {
    let r = sb.get(&format!("/v1/runs/{run}/tasks"));
    let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    v["tasks"]
        .as_array()
        .map_or(0, |t| t.iter().filter(|t| t["status"] == "done").count())
}

/// The tasks of a run that are not `done`, with status, assignee and attempts (a diagnosis).
pub fn not_done(sb: &Sandbox, run: &str) -> String {
    let r = sb.get(&format!("/v1/runs/{run}/tasks"));
    let v: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    let status = sb.get(&format!("/v1/runs/{run}")).json();
    let left: Vec<String> = v["tasks"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| t["status"] != "done")
        .map(|t| {
            format!(
                "{} {} {} #{}",
                t["id"], t["status"], t["assignee"], t["attempts"]
            )
        })
        .collect();
    format!(
        "run {} ({}); {} not done: {}",
        status["status"],
        status["status_reason"],
        left.len(),
        left.iter().take(12).cloned().collect::<Vec<_>>().join(", ")
    )
}

/// Runs every session to its end, concurrently, on a fresh two-worker runtime; returns the
/// merged load and the wall time.
pub fn drive_all<F>(sessions: Vec<F>) -> (Load, Duration)
where
    F: std::future::Future<Output = Load> + Send + 'static,
{
    let rt = runtime();
    let t0 = Instant::now();
    let load = rt.block_on(async {
        let handles: Vec<_> = sessions.into_iter().map(tokio::spawn).collect();
        let mut all = Load::default();
        for h in handles {
            if let Ok(l) = h.await {
                all.merge(l);
            }
        }
        all
    });
    (load, t0.elapsed())
}

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}
