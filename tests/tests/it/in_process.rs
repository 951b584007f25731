//! The faster tier: `orchestratord::run` in this process on a temp socket, for what is easier
//! to see from inside — racing requests, shutdown and restart of the same database.

use std::path::Path;

use orchestrator_tests::{http, repo};
use orchestratord::Config;
use tokio::sync::oneshot;

/// A daemon served from a runtime in this process; `stop` shuts it down and waits.
struct InProcess {
    runtime: tokio::runtime::Runtime,
    stop: Option<oneshot::Sender<()>>,
    done: Option<tokio::task::JoinHandle<Result<(), orchestratord::DaemonError>>>,
}

impl InProcess {
    fn start(socket: &Path, data_dir: &Path) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let config = Config {
            socket: socket.to_path_buf(),
            data_dir: data_dir.to_path_buf(),
            log: "info".into(),
            mcp_port: None,
            permissions: Default::default(),
            claude_bin: None,
            codex_bin: None,
            notifications: false,
            webhooks: Vec::new(),
            codex: Default::default(),
            usage: Default::default(),
            supervision: Default::default(),
            worktrees: Default::default(),
            models: Default::default(),
            log_dir: None,
        };
        let (tx, rx) = oneshot::channel::<()>();
        let done = {
            let _guard = runtime.enter();
            let listener = tokio::net::UnixListener::bind(socket).expect("bind");
            runtime.spawn(orchestratord::run(config, listener, async {
                let _ = rx.await;
            }))
        };
        Self {
            runtime,
            stop: Some(tx),
            done: Some(done),
        }
    }

    fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(done) = self.done.take() {
            self.runtime
                .block_on(done)
                .expect("join")
                .expect("run returns Ok after shutdown");
        }
    }
}

/// The environment a client would send: the fast tier's claude.
fn fake_env() -> serde_json::Value {
    serde_json::json!({
        "ORCHESTRATOR_CLAUDE_BIN": orchestrator_tests::bins::bins().fake_claude,
        // Planners idle; stopping the daemon stops them.
        "CLAUDE_FAKE_SCRIPT": "hang",
    })
}

#[test]
fn racing_submits_on_one_project_create_exactly_one_run_and_branch() {
    let tmp = tempfile::Builder::new()
        .prefix("orch-")
        .tempdir_in("/tmp")
        .expect("tmp");
    let home = tmp.path().join("home");
    std::fs::create_dir(&home).expect("mkdir");
    let project = repo::init(&tmp.path().join("app"), &home);
    let socket = tmp.path().join("d.sock");
    let daemon = InProcess::start(&socket, &tmp.path().join("data"));

    let body =
        serde_json::json!({ "project": project, "feature": "Same feature", "env": fake_env() })
            .to_string();
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                s.spawn(|| {
                    http::post_json(&socket, "/v1/runs", body.as_bytes())
                        .expect("submit")
                        .status
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("thread"))
            .collect()
    });
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 409).count(),
        7,
        "{statuses:?}"
    );
    // for-each-ref, not `branch --list`: that reads the worktrees the planner may be adding.
    let branches = repo::git(
        &project,
        &home,
        &[
            "for-each-ref",
            "--format=%(refname)",
            "refs/heads/orchestrate/",
        ],
    );
    assert_eq!(branches.lines().count(), 1, "{branches}");
    daemon.stop();
}

#[test]
fn a_stopped_daemon_restarted_on_the_same_data_restores_the_run() {
    let tmp = tempfile::Builder::new()
        .prefix("orch-")
        .tempdir_in("/tmp")
        .expect("tmp");
    let home = tmp.path().join("home");
    std::fs::create_dir(&home).expect("mkdir");
    let project = repo::init(&tmp.path().join("app"), &home);
    let socket = tmp.path().join("d.sock");
    let data = tmp.path().join("data");

    let daemon = InProcess::start(&socket, &data);
    let body = serde_json::json!({ "project": project, "feature": "Keep me", "env": fake_env() })
        .to_string();
    let created = http::post_json(&socket, "/v1/runs", body.as_bytes()).expect("submit");
    assert_eq!(created.status, 201, "{}", created.text());
    let id = created.json()["id"].as_str().expect("id").to_owned();
    let paused = http::post_json(&socket, &format!("/v1/runs/{id}/pause"), b"{}").expect("pause");
    assert_eq!(paused.status, 200, "{}", paused.text());
    daemon.stop();
    std::fs::remove_file(&socket).expect("the in-process listener leaves its socket file");

    let daemon = InProcess::start(&socket, &data);
    let run = http::get(&socket, &format!("/v1/runs/{id}")).expect("get");
    assert_eq!(run.status, 200);
    assert_eq!(run.json()["status"], "paused");
    let health = http::get(&socket, "/v1/health").expect("health").json();
    assert_eq!(health["active_runs"], 1);
    let events = http::get(&socket, &format!("/v1/runs/{id}/events"))
        .expect("events")
        .json();
    let kinds: Vec<&str> = events["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["kind"].as_str())
        .collect();
    assert!(kinds.contains(&"run_restored"), "{kinds:?}");
    daemon.stop();
}
