//! Fuzz-style bad input, seeded (`ORCH_FUZZ_SEED` repeats a run): mutated and malformed
//! requests on the socket API and the MCP endpoint — broken JSON, wrong types, unknown fields
//! and tools, huge strings, no token, a wrong token, another run's token. Every answer is a
//! typed error (never a 5xx, never a dropped daemon), and the target run's state — its row,
//! its log, its tasks — is exactly what it was.

use orchestrator_tests::mcp::Mcp;
use orchestrator_tests::rng::Rng;
use orchestrator_tests::{Sandbox, http};
use serde_json::{Value, json};

const ROUNDS: usize = 150;

/// Breaks a valid body: truncates it, flips a byte, swaps a value's type, adds a field, or
/// blows a string up.
fn mutate(rng: &mut Rng, valid: &Value) -> Vec<u8> {
    let text = valid.to_string();
    match rng.below(6) {
        0 => text.as_bytes()[..rng.below(text.len() as u64) as usize].to_vec(),
        1 => {
            let mut b = text.into_bytes();
            let i = rng.below(b.len() as u64) as usize;
            b[i] = rng.below(256) as u8;
            b
        }
        2 => {
            let mut v = valid.clone();
            if let Some(o) = v.as_object_mut()
                && let Some(k) = o.keys().next().cloned()
            {
                let wrong = [json!(42), json!([1, 2]), json!({"x": null}), json!(true)];
                o.insert(k, rng.pick(&wrong).clone());
            }
            v.to_string().into_bytes()
        }
        3 => {
            let mut v = valid.clone();
            if let Some(o) = v.as_object_mut() {
                o.insert(format!("unknown_{}", rng.below(1000)), json!("x"));
            }
            v.to_string().into_bytes()
        }
        4 => {
            let mut v = valid.clone();
            if let Some(o) = v.as_object_mut()
                && let Some(k) = o.keys().next().cloned()
            {
                o.insert(
                    k,
                    json!("y".repeat(300_000 + rng.below(1_000_000) as usize)),
                );
            }
            v.to_string().into_bytes()
        }
        _ => (0..rng.below(200)).map(|_| rng.below(256) as u8).collect(),
    }
}

/// Waits for the run's planner (the fake, which idles) to have started: then nothing moves.
fn settled(sb: &Sandbox, run: &str) {
    orchestrator_tests::wait::until(
        "the planner to start",
        orchestrator_tests::wait::DEADLINE,
        || {
            let e = sb.get(&format!("/v1/runs/{run}/events")).json();
            e["events"]
                .as_array()?
                .iter()
                .any(|e| e["kind"] == "planner_started")
                .then_some(())
        },
    );
}

/// What must not change: the run (minus its "updated" clock), its log and its tasks.
fn snapshot(sb: &Sandbox, run: &str) -> Value {
    let mut r = sb.get(&format!("/v1/runs/{run}")).json();
    r.as_object_mut().map(|o| o.remove("updated_at"));
    json!({
        "run": r,
        "events": sb.get(&format!("/v1/runs/{run}/events")).json(),
        "tasks": sb.get(&format!("/v1/runs/{run}/tasks")).json(),
    })
}

fn typed_error(r: &http::Response, what: &str) {
    assert!(
        (400..500).contains(&r.status),
        "{what}: HTTP {} {}",
        r.status,
        r.text()
    );
    let body = r.json();
    assert!(
        body["code"].is_string() && body["message"].is_string(),
        "{what}: {body}"
    );
}

#[test]
fn bad_input_on_the_socket_api_gets_typed_errors_and_changes_nothing() {
    let (mut rng, seed) = Rng::seeded("ORCH_FUZZ_SEED", 0xF022);
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    let run = sb.start_run(&repo, "Feature");
    settled(&sb, &run);
    let pid = sb.daemon_pid();
    let before = snapshot(&sb, &run);
    let project = repo.display().to_string();
    let bodies = [
        (
            "/v1/runs",
            json!({"project": project, "feature": "Another"}),
        ),
        ("/v1/escalations/1/answer", json!({"answer": "yes"})),
        ("/v1/clean", json!({"project": project, "dry_run": true})),
    ];
    for i in 0..ROUNDS {
        if rng.below(3) == 0 {
            let n = rng.next_u64();
            let paths = [
                format!("/v1/runs?status={n}"),
                format!("/v1/runs/{n}"),
                format!("/v1/runs/{run}/events?after=x{n}&tail=-1"),
                format!("/v1/runs/../../etc/passwd{n}"),
                "/v1/escalations?all=maybe".to_owned(),
            ];
            let path = rng.pick(&paths).clone();
            let r = http::get(&sb.socket(), &path).expect("GET");
            typed_error(&r, &format!("seed {seed} round {i}: GET {path}"));
            continue;
        }
        let (path, valid) = rng.pick(&bodies);
        let body = mutate(&mut rng, valid);
        let r = http::post_json(&sb.socket(), path, &body).expect("POST");
        if r.status == 200 && *path == "/v1/clean" {
            continue; // a mutation that is still a valid clean: it removes nothing here
        }
        typed_error(&r, &format!("seed {seed} round {i}: POST {path}"));
    }
    assert_eq!(sb.daemon_pid(), pid, "the same daemon, still up");
    assert_eq!(snapshot(&sb, &run), before, "seed {seed}: the run changed");
}

#[test]
fn bad_input_on_the_mcp_endpoint_gets_typed_errors_and_changes_nothing() {
    let (mut rng, seed) = Rng::seeded("ORCH_FUZZ_SEED", 0xF023);
    let sb = Sandbox::new();
    let (a, b) = (sb.repo("a"), sb.repo("b"));
    let run = sb.start_run(&a, "Feature A");
    let other = sb.start_run(&b, "Feature B");
    settled(&sb, &run);
    let planner = sb.session(&run, "planner");
    planner.ok(
        "submit_plan",
        json!({"summary": "One", "tasks": [{"id": "t1", "title": "T", "description": "D",
               "acceptance_criteria": ["ok"]}]}),
    );
    let worker = sb.session(&run, "worker");
    let stranger = sb.session(&other, "worker");
    let pid = sb.daemon_pid();
    let before = snapshot(&sb, &run);
    let no_token = Mcp {
        token: None,
        ..worker.clone()
    };
    let bad_token = Mcp {
        token: Some("not-a-token".into()),
        ..worker.clone()
    };
    let calls = [
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
               "params": {"name": "report_progress", "arguments": {"note": "n"}}}),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call",
               "params": {"name": "complete_task", "arguments": {"summary": "s"}}}),
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
               "params": {"name": "submit_plan", "arguments": {"summary": "s", "tasks": []}}}),
        json!({"jsonrpc": "2.0", "id": 4, "method": "tools/list"}),
    ];
    let callers = [&worker, &no_token, &bad_token, &stranger];
    for i in 0..ROUNDS {
        let what = format!("seed {seed} round {i}");
        let who = *rng.pick(&callers);
        let body = match rng.below(4) {
            // Not JSON-RPC at all, or not even JSON.
            0 => {
                let c = rng.pick(&calls).clone();
                mutate(&mut rng, &c)
            }
            1 => json!({"jsonrpc": "2.0", "id": 9, "method": format!("tools/{}", rng.next_u64())})
                .to_string()
                .into_bytes(),
            2 => json!({"jsonrpc": "2.0", "id": 9, "method": "tools/call",
                        "params": {"name": format!("no_such_tool_{}", rng.below(9)), "arguments": {}}})
            .to_string()
            .into_bytes(),
            _ => {
                // Valid calls a worker holding no task may not make, with odd arguments.
                let mut c = rng.pick(&calls).clone();
                if rng.below(2) == 0 {
                    c["params"]["arguments"]["note"] = json!("z".repeat(30_000));
                    c["params"]["arguments"]["summary"] = json!(7);
                }
                c.to_string().into_bytes()
            }
        };
        let r = post_raw(who, &body);
        assert!(r.status < 500, "{what}: HTTP {} {}", r.status, r.text());
        if r.status == 200 {
            let v = r.json();
            let refused = v.get("error").is_some()
                || v["result"]["isError"] == true
                || v["result"]["tools"].is_array();
            assert!(refused, "{what}: accepted {v}");
        }
    }
    // Another run's worker sees only its own run.
    assert_eq!(stranger.ok("list_tasks", json!({}))["tasks"], json!([]));
    assert!(stranger.refused("get_task", json!({})).contains("no task"));
    assert_eq!(sb.daemon_pid(), pid, "the same daemon, still up");
    assert_eq!(snapshot(&sb, &run), before, "seed {seed}: the run changed");
}

/// POSTs raw bytes to `/mcp` (the toolkit's client takes JSON values).
fn post_raw(m: &Mcp, body: &[u8]) -> http::Response {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(&m.addr).expect("connect");
    let mut head = format!(
        "POST /mcp HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: application/json\r\n\
         Accept: application/json, text/event-stream\r\nContent-Length: {}\r\n",
        m.addr,
        body.len()
    );
    if let Some(t) = &m.token {
        head.push_str(&format!("Authorization: Bearer {t}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).expect("send");
    let _ = s.write_all(body);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    http::parse(&raw).expect("an HTTP response")
}
