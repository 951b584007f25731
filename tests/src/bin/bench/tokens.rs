//! Figure 7, what coordination costs a session in every request its model gets: the real
//! `claude` connects to a run's MCP endpoint as a worker and as a planner, against the suite's fake
//! model API, and the first request it sends is taken apart — our tools' definitions and our
//! server's instructions, in bytes and in tokens (estimated at four bytes a token).

use std::process::Stdio;
use std::sync::Arc;
use std::time::Duration;

use orchestrator_tests::fake_model::{FakeModel, OFFLINE, Reply};
use orchestrator_tests::{Sandbox, deps, wait};
use serde_json::{Value, json};

use crate::Row;

/// Bytes of our tools' definitions as the model gets them (name, description, input schema).
fn tool_bytes(req: &Value) -> (usize, usize) {
    let ours: Vec<&Value> = req["tools"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|t| {
            t["name"]
                .as_str()
                .is_some_and(|n| n.starts_with("mcp__orch__"))
        })
        .collect();
    if std::env::var_os("BENCH_DUMP_TOOLS").is_some() {
        ours.iter()
            .for_each(|t| eprintln!("{} {t}", t.to_string().len()));
    }
    let bytes = ours.iter().map(|t| t.to_string().len()).sum();
    (ours.len(), bytes)
}

/// Every text of the request: the system prompt's and each message's blocks.
fn blocks(v: &Value) -> Vec<&str> {
    match v {
        Value::String(s) => vec![s.as_str()],
        Value::Array(a) => a.iter().filter_map(|b| b["text"].as_str()).collect(),
        _ => Vec::new(),
    }
}

fn texts(req: &Value) -> Vec<&str> {
    let mut all = blocks(&req["system"]);
    for m in req["messages"].as_array().into_iter().flatten() {
        all.extend(blocks(&m["content"]));
    }
    all
}

/// Bytes of our server's instructions in the request: what the endpoint's `initialize` gives
/// this session, checked to be in what claude sent.
fn instruction_bytes(req: &Value, grant: &Value) -> usize {
    let mcp = orchestrator_tests::mcp::Mcp::new(
        grant["mcp_url"].as_str().expect("url"),
        grant["token"].as_str(),
    );
    let init = mcp
        .post(
            &json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
                "protocolVersion": "2025-06-18", "capabilities": {},
                "clientInfo": {"name": "bench", "version": "0"}}}),
            &[],
        )
        .json();
    let said = init["result"]["instructions"].as_str().unwrap_or("");
    assert!(
        texts(req).iter().any(|t| t.contains(said)),
        "claude did not pass on our instructions: {said}\n---\n{}",
        texts(req)
            .iter()
            .filter_map(|t| t.find("## orch").map(|i| &t[i..(i + 1500).min(t.len())]))
            .collect::<Vec<_>>()
            .join("\n")
    );
    said.len()
}

/// The first request the real claude sends with our server attached for `grant`'s session.
fn first_request(sb: &Sandbox, grant: &Value) -> Value {
    let fake = FakeModel::start(Arc::new(|_: &Value| Reply::Text("Done.".into())));
    let config = json!({"mcpServers": {"orch": {
        "type": "http",
        "url": grant["mcp_url"],
        "headers": {"Authorization": "Bearer ${ORCH_TOKEN}"},
        "alwaysLoad": true
    }}});
    let mut child = sb
        .command(&deps::claude())
        .args(["-p", "Say done."])
        .args(["--output-format", "stream-json", "--verbose"])
        .arg("--mcp-config")
        .arg(config.to_string())
        .args(["--strict-mcp-config", "--model", "claude-fake-1"])
        .args([
            "--permission-mode",
            "dontAsk",
            "--allowedTools",
            "mcp__orch",
        ])
        .envs(OFFLINE)
        .env("ANTHROPIC_BASE_URL", &fake.url)
        .env("DISABLE_AUTOUPDATER", "1")
        .env("ORCH_TOKEN", grant["token"].as_str().unwrap_or(""))
        .current_dir(sb.root())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("run claude");
    wait::until("claude to finish", Duration::from_secs(120), || {
        child.try_wait().expect("wait")
    });
    fake.requests()
        .into_iter()
        .find(|r| tool_bytes(r).0 > 0)
        .unwrap_or_else(|| panic!("claude sent no request with our tools"))
}

pub fn tokens(_quick: bool) -> Vec<Row> {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    let run = sb.planned_one_task(&repo, "Tokens");
    let mut rows = Vec::new();
    for (role, body) in [
        ("worker", json!({"role": "worker", "task": "a"})),
        ("planner", json!({"role": "planner"})),
    ] {
        let grant = sb.open_session(&run, body);
        let req = first_request(&sb, &grant);
        let (n, tools) = tool_bytes(&req);
        let instructions = instruction_bytes(&req, &grant);
        let total = tools + instructions;
        let goal = (role == "worker").then_some("≤ 2,500 B per request");
        let mut row = Row::new(
            "tokens",
            format!("{role}: our tools ({n}) + instructions, per request"),
            total as f64,
            "B",
        );
        if let Some(g) = goal {
            row = row.goal(g);
        }
        rows.push(row);
        rows.push(Row::new(
            "tokens",
            format!("{role}: of which tool definitions"),
            tools as f64,
            "B",
        ));
        rows.push(Row::new(
            "tokens",
            format!("{role}: ≈ tokens per request (bytes / 4)"),
            (total / 4) as f64,
            "tok",
        ));
    }
    rows
}
