//! The workers' MCP endpoint against the real daemon: the board's rules, plan validation,
//! authentication, and many sessions racing for tasks.

use orchestrator_tests::Sandbox;
use orchestrator_tests::mcp::Mcp;
use serde_json::{Value, json};

fn task(id: &str, deps: &[&str]) -> Value {
    json!({"id": id, "title": format!("Build {id}"), "description": format!("Do {id} well"),
           "acceptance_criteria": [format!("{id} works")], "depends_on": deps, "files": [format!("src/{id}.rs")]})
}

fn read(p: &std::path::Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

#[test]
fn planner_and_workers_share_the_board_by_its_rules() {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    let run = sb.start_run(&repo, "Add a widget");
    let planner = sb.session(&run, "planner");
    let w1 = sb.session(&run, "worker");
    let w2 = sb.session(&run, "worker");

    // Roles: a worker cannot plan; a planner cannot claim.
    let plan = json!({"summary": "Widget in three steps",
                      "tasks": [task("a", &[]), task("b", &["a"]), task("c", &[])]});
    assert!(
        w1.refused("submit_plan", plan.clone())
            .contains("not for a worker")
    );
    assert!(
        planner
            .refused("claim_task", json!({}))
            .contains("not for a planner")
    );
    let accepted = planner.ok("submit_plan", plan);
    assert_eq!(accepted["version"], 1);
    assert_eq!(accepted["tasks"], 3);

    // Claims follow dependencies; one task per session at a time.
    assert_eq!(w1.ok("claim_task", json!({}))["task"]["id"], "a");
    assert_eq!(w2.ok("claim_task", json!({}))["task"]["id"], "c");
    assert!(
        w2.refused("claim_task", json!({}))
            .contains("already hold task c")
    );
    let w3 = sb.session(&run, "worker");
    let none = w3.ok("claim_task", json!({}));
    assert_eq!(none["claimed"], false, "b waits for a: {none}");
    assert!(w3.refused("get_task", json!({})).contains("claim_task"));

    w1.ok("report_progress", json!({"note": "scaffolded"}));
    let brief = w1.ok("get_task", json!({}));
    assert_eq!(brief["feature"], "Add a widget");
    assert_eq!(brief["plan_summary"], "Widget in three steps");
    assert_eq!(brief["task"]["acceptance_criteria"], json!(["a works"]));
    assert_eq!(brief["task"]["progress"], "scaffolded");
    w1.ok("complete_task", json!({"summary": "a is built and tested"}));
    assert!(
        w1.refused("complete_task", json!({"summary": "again"}))
            .contains("claim_task")
    );

    // Done is not merged: b still waits (a worker on b would start from a branch without a).
    let none = w3.ok("claim_task", json!({}));
    assert_eq!(none["claimed"], false, "a is done, not merged: {none}");
    assert!(
        none["reason"].as_str().unwrap_or("").contains("not merged"),
        "{none}"
    );
    // A worker given b (as the engine gives it) sees a's result in its brief.
    let g = sb.open_session(&run, json!({"role": "worker", "task": "b"}));
    let wb = Mcp::new(g["mcp_url"].as_str().expect("url"), g["token"].as_str());
    let brief = wb.ok("get_task", json!({}));
    assert_eq!(brief["dependencies"][0]["result"], "a is built and tested");

    // Messages: to a task's worker, to all; each delivered once, never to the sender.
    w3.ok(
        "send_message",
        json!({"to": "c", "body": "I rename Widget::new"}),
    );
    w1.ok("send_message", json!({"to": "all", "body": "a is merged"}));
    assert!(
        w1.refused("send_message", json!({"to": "zz", "body": "?"}))
            .contains("no task \"zz\"")
    );
    let got = w2.ok("read_messages", json!({}));
    let bodies: Vec<&str> = got["messages"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|m| m["body"].as_str())
        .collect();
    assert_eq!(bodies, vec!["I rename Widget::new", "a is merged"]);
    assert_eq!(w2.ok("read_messages", json!({}))["messages"], json!([]));
    assert_eq!(
        w1.ok("read_messages", json!({}))["messages"],
        json!([]),
        "not its own"
    );

    // A failed task goes back to the board when retryable.
    w2.ok(
        "fail_task",
        json!({"reason": "flaky dependency", "retryable": true}),
    );
    let board = w2.ok("list_tasks", json!({}));
    let c = board["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .find(|t| t["id"] == "c")
        .expect("c")
        .clone();
    assert_eq!(c["status"], "pending");
    assert_eq!(c["assignee"], Value::Null);

    // Escalation: a human sees it and answers; the asker gets the answer as a message.
    let esc = w3.ok(
        "escalate",
        json!({"question": "Keep the old API?", "blocking": true}),
    );
    let id = esc["escalation_id"].as_u64().expect("id").to_string();
    let pending = sb.orchestrate(&["escalations", "--json"]).ok().json();
    assert_eq!(pending["escalations"][0]["question"], "Keep the old API?");
    sb.orchestrate(&["answer", &id, "Yes, deprecate it"]).ok();
    let got = w3.ok("read_messages", json!({}));
    let answer = got["messages"]
        .as_array()
        .expect("list")
        .iter()
        .find(|m| m["from"] == "orchestrator")
        .unwrap_or_else(|| panic!("no answer in {got}"))
        .clone();
    assert!(
        answer["body"]
            .as_str()
            .unwrap_or("")
            .contains("Yes, deprecate it"),
        "{answer}"
    );

    // Everything is in the log and the mirror.
    let m = repo.join(".orchestrator");
    let a: Value = serde_json::from_str(&read(&m.join("tasks/a.json"))).expect("a.json");
    assert_eq!(a["status"], "done");
    assert_eq!(a["result"], "a is built and tested");
    assert!(read(&m.join("plan-v1.md")).contains("## b — Build b"));
    assert_eq!(
        read(&m.join("messages/messages.jsonl")).lines().count(),
        3,
        "two sent + the answer"
    );
    let log = sb.orchestrate_in(&repo, &["log", "-n", "100"]).ok().stdout;
    for needle in [
        "Plan v1 submitted",
        "Task a claimed",
        "Task a completed",
        "Task c failed",
        "Escalation",
    ] {
        assert!(log.contains(needle), "log mentions {needle:?}:\n{log}");
    }
}

#[test]
fn each_invalid_plan_gets_its_specific_error() {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    let run = sb.start_run(&repo, "Feature");
    let planner = sb.session(&run, "planner");
    let mut no_criteria = task("a", &[]);
    no_criteria["acceptance_criteria"] = json!([]);
    let cases = vec![
        (json!({"summary": "s", "tasks": []}), "tasks is empty"),
        (
            json!({"summary": "", "tasks": [task("a", &[])]}),
            "summary is empty",
        ),
        (
            json!({"summary": "s", "tasks": [task("a", &[]), task("a", &[])]}),
            "used twice",
        ),
        (
            json!({"summary": "s", "tasks": [task("a", &["nope"])]}),
            "depends on \"nope\"",
        ),
        (
            json!({"summary": "s", "tasks": [task("a", &["b"]), task("b", &["a"])]}),
            "cycle (a -> b -> a)",
        ),
        (
            json!({"summary": "s", "tasks": [no_criteria]}),
            "acceptance_criteria is empty",
        ),
        (
            json!({"summary": "s", "tasks": (0..201).map(|i| task(&format!("t{i}"), &[])).collect::<Vec<_>>()}),
            "201 tasks",
        ),
        (
            json!({"summary": "s", "tasks": [task("has space", &[])]}),
            "id must be",
        ),
    ];
    for (plan, needle) in cases {
        let err = planner.refused("submit_plan", plan);
        assert!(err.contains(needle), "expected {needle:?} in: {err}");
        assert!(err.contains("call submit_plan again"), "{err}");
    }
    // A malformed shape is a protocol-level invalid-params error, not a crash.
    let r = planner.call("submit_plan", json!({"summary": "s"}));
    assert!(r["isError"] == true || r.get("content").is_none(), "{r}");
    // Nothing was stored by the refusals.
    assert_eq!(planner.ok("list_tasks", json!({}))["tasks"], json!([]));
    assert!(
        planner.ok(
            "submit_plan",
            json!({"summary": "ok", "tasks": [task("a", &[])]})
        )["accepted"]
            == true
    );
}

#[test]
fn tokens_are_required_scoped_to_their_run_and_revocable() {
    let sb = Sandbox::new();
    let repo_a = sb.repo("a");
    let repo_b = sb.repo("b");
    let run_a = sb.start_run(&repo_a, "Feature A");
    let run_b = sb.start_run(&repo_b, "Feature B");
    let pa = sb.session(&run_a, "planner");
    let pb = sb.session(&run_b, "planner");
    pa.ok(
        "submit_plan",
        json!({"summary": "A", "tasks": [task("only-a", &[])]}),
    );
    pb.ok(
        "submit_plan",
        json!({"summary": "B", "tasks": [task("only-b", &[])]}),
    );

    let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
    let anonymous = Mcp {
        addr: pa.addr.clone(),
        token: None,
    };
    let r = anonymous.post(&list, &[]);
    assert_eq!(r.status, 401, "{}", r.text());
    assert!(
        r.header("www-authenticate")
            .is_some_and(|v| v.starts_with("Bearer")),
        "{r:?}"
    );
    let wrong = Mcp {
        addr: pa.addr.clone(),
        token: Some("orch_0000".into()),
    };
    assert_eq!(wrong.post(&list, &[]).status, 401);

    // Expired: a token with no lifetime left.
    let g = sb.open_session(&run_a, json!({"role": "worker", "ttl_secs": 0}));
    let expired = Mcp::new(g["mcp_url"].as_str().expect("url"), g["token"].as_str());
    assert_eq!(expired.post(&list, &[]).status, 401);

    // Revoked: an ended session's token stops working at once.
    let g = sb.open_session(&run_a, json!({"role": "worker"}));
    let w = Mcp::new(g["mcp_url"].as_str().expect("url"), g["token"].as_str());
    assert_eq!(w.post(&list, &[]).status, 200);
    let sid = g["session"].as_str().expect("session");
    let r = orchestrator_tests::http::request(
        &sb.socket(),
        "DELETE",
        &format!("/v1/runs/{run_a}/sessions/{sid}"),
        None,
        b"",
    )
    .expect("end");
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["ended"], true);
    assert_eq!(w.post(&list, &[]).status, 401);

    // Scoped: each token sees only its own run's board.
    let ids = |m: &Mcp| -> Vec<String> {
        m.ok("list_tasks", json!({}))["tasks"]
            .as_array()
            .expect("tasks")
            .iter()
            .filter_map(|t| t["id"].as_str().map(str::to_owned))
            .collect()
    };
    assert_eq!(ids(&pa), vec!["only-a"]);
    assert_eq!(ids(&pb), vec!["only-b"]);
    // A worker of run B cannot reach run A's task by sending to it.
    let wb = sb.session(&run_b, "worker");
    assert!(
        wb.refused("send_message", json!({"to": "only-a", "body": "hi"}))
            .contains("no task")
    );

    // A cancelled run's tokens stop working.
    sb.orchestrate_in(&repo_b, &["cancel"]).ok();
    assert_eq!(pb.post(&list, &[]).status, 401);

    // Loopback only: a foreign Host (DNS rebinding) or a browser Origin is refused.
    assert_eq!(pa.post(&list, &[("Host", "evil.example")]).status, 403);
    assert_eq!(
        pa.post(&list, &[("Origin", "https://evil.example")]).status,
        403
    );
    assert_eq!(pa.post(&list, &[]).status, 200);
}

#[test]
fn sixty_four_sessions_racing_for_200_tasks_each_get_distinct_tasks() {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    let run = sb.start_run(&repo, "Big feature");
    let tasks: Vec<Value> = (0..200).map(|i| task(&format!("t{i}"), &[])).collect();
    sb.session(&run, "planner").ok(
        "submit_plan",
        json!({"summary": "Many tasks", "tasks": tasks}),
    );
    let workers: Vec<Mcp> = (0..64).map(|_| sb.session(&run, "worker")).collect();
    let claimed: Vec<Vec<String>> = std::thread::scope(|s| {
        let handles: Vec<_> = workers
            .iter()
            .map(|w| {
                s.spawn(move || {
                    let mut mine = Vec::new();
                    loop {
                        let r = w.ok("claim_task", json!({}));
                        if r["claimed"] != true {
                            return mine;
                        }
                        let id = r["task"]["id"].as_str().expect("id").to_owned();
                        w.ok("complete_task", json!({"summary": format!("did {id}")}));
                        mine.push(id);
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("worker thread"))
            .collect()
    });
    let mut all: Vec<String> = claimed.into_iter().flatten().collect();
    assert_eq!(all.len(), 200, "every task claimed exactly once in total");
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 200, "no task claimed twice");
    let board = workers[0].ok("list_tasks", json!({}));
    assert!(
        board["tasks"]
            .as_array()
            .expect("tasks")
            .iter()
            .all(|t| t["status"] == "done"),
        "{board}"
    );
}

#[test]
fn the_endpoint_keeps_its_port_and_tokens_across_a_daemon_restart() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    let run = sb.start_run(&repo, "Feature");
    let w = sb.session(&run, "worker");
    let url = sb.health().expect("health")["mcp_url"].clone();
    kill(Pid::from_raw(sb.daemon_pid()), Signal::SIGKILL).expect("kill -9");
    orchestrator_tests::wait::until(
        "the daemon to die",
        orchestrator_tests::wait::DEADLINE,
        || sb.daemon_processes().is_empty().then_some(()),
    );
    sb.orchestrate(&["list"]).ok();
    assert_eq!(sb.health().expect("health")["mcp_url"], url, "same URL");
    assert_eq!(
        w.ok("list_tasks", json!({}))["tasks"],
        json!([]),
        "the old token still works"
    );
}

/// Runs the Python SDK's client (tests/py/mcp_client.py) on a session and returns what it saw.
fn python_client(g: &Value, mode: &str) -> Value {
    let out = std::process::Command::new(orchestrator_tests::deps::python())
        .arg(orchestrator_tests::deps::py_script("mcp_client.py"))
        .arg(g["mcp_url"].as_str().expect("url"))
        .arg(g["token"].as_str().expect("token"))
        .arg(mode)
        .output()
        .expect("run the Python client");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{mode}: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.lines().last().unwrap_or("")).expect("JSON")
}

/// The official Python SDK lists and calls our tools, and every reply that is not an error
/// holds to the output schema its tool published (checked by jsonschema, not by us).
#[test]
fn the_official_python_sdk_lists_and_calls_our_tools() {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    let run = sb.start_run(&repo, "Feature");
    let planned = python_client(
        &sb.open_session(&run, json!({"role": "planner"})),
        "planner",
    );
    assert_eq!(planned["checked"], json!(["submit_plan"]), "{planned}");
    assert_eq!(planned["results"]["submit_plan"]["tasks"], 2, "{planned}");
    for mode in ["auto", "legacy"] {
        let g = sb.open_session(&run, json!({"role": "worker"}));
        let seen = python_client(&g, mode);
        let tools = seen["tools"].as_array().expect("tools");
        for tool in ["claim_task", "complete_task", "get_task", "escalate"] {
            assert!(tools.iter().any(|t| t == tool), "{mode}: {seen}");
        }
        assert!(
            !tools.iter().any(|t| t == "submit_plan"),
            "a worker is not shown the planner's tool: {mode}: {seen}"
        );
        assert_eq!(seen["board"]["tasks"][0]["id"], "a", "{mode}: {seen}");
        assert_eq!(seen["claim_is_error"], false, "{mode}: {seen}");
        assert_eq!(seen["without_output_schema"], json!([]), "{mode}: {seen}");
        assert_eq!(seen["invalid"], json!([]), "{mode}: {seen}");
        assert_eq!(seen["errors"], json!({}), "{mode}: {seen}");
        assert_eq!(
            seen["checked"].as_array().map(Vec::len),
            Some(7),
            "every call's reply checked against its schema: {mode}: {seen}"
        );
        assert_eq!(
            seen["results"]["complete_task"]["completed"], true,
            "{mode}: {seen}"
        );
    }
}

/// A worker the engine started for one task holds that task alone: it is not shown
/// `claim_task`, a claim is refused in words the model can act on, and completing its task
/// tells it to stop. Each role is shown only its own tools.
#[test]
fn a_dispatched_worker_holds_its_own_task_alone_and_each_role_sees_its_tools() {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    let run = sb.start_run(&repo, "Add a widget");
    let planner = sb.session(&run, "planner");
    planner.ok(
        "submit_plan",
        json!({"summary": "Three", "tasks": [task("a", &[]), task("b", &[]), task("c", &[])]}),
    );
    let g = sb.open_session(&run, json!({"role": "worker", "task": "a"}));
    let wa = Mcp::new(g["mcp_url"].as_str().expect("url"), g["token"].as_str());

    let mut names = wa.tool_names();
    names.sort();
    assert_eq!(
        names,
        [
            "complete_task",
            "escalate",
            "fail_task",
            "get_task",
            "list_tasks",
            "read_messages",
            "report_progress",
            "send_message"
        ],
        "a dispatched worker's tools"
    );
    let mut names = planner.tool_names();
    names.sort();
    assert_eq!(
        names,
        [
            "escalate",
            "list_tasks",
            "read_messages",
            "send_message",
            "submit_plan"
        ],
        "a planner's tools"
    );
    assert!(
        sb.session(&run, "worker")
            .tool_names()
            .contains(&"claim_task".to_owned())
    );

    // Claiming while holding its task, and after completing it: refused, b and c untouched.
    let why = wa.refused("claim_task", json!({}));
    assert!(
        why.contains("started for task a") && why.contains("do not claim"),
        "{why}"
    );
    let done = wa.ok("complete_task", json!({"summary": "a is built"}));
    assert!(
        done["next"].as_str().unwrap_or("").contains("stop now"),
        "{done}"
    );
    assert!(
        wa.refused("claim_task", json!({}))
            .contains("started for task a")
    );
    assert!(wa.refused("get_task", json!({})).contains("stop now"));
    assert!(
        wa.refused("complete_task", json!({"summary": "again"}))
            .contains("stop now")
    );
    let board = wa.ok("list_tasks", json!({}));
    for t in board["tasks"].as_array().expect("tasks") {
        let want = if t["id"] == "a" { "done" } else { "pending" };
        assert_eq!(t["status"], want, "{board}");
    }
}
