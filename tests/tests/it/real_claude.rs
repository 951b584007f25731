//! The real `claude` binary (2.1.330) against the real daemon, offline: a scripted fake model
//! API stands in for Anthropic's, and claude reaches our MCP endpoint with a session token
//! from its environment, exactly as a worker will.

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::Arc;

use orchestrator_tests::fake_model::{self, FakeModel, Reply};
use orchestrator_tests::{Sandbox, deps, wait};
use serde_json::{Value, json};

pub(crate) use orchestrator_tests::fake_model::OFFLINE;

/// The environment `orchestrate start` forwards so the daemon's sessions run that claude
/// offline against `fake_url`.
pub(crate) fn daemon_env<'a>(claude: &'a str, fake_url: &'a str) -> Vec<(&'a str, &'a str)> {
    let mut env = vec![
        ("ORCHESTRATOR_CLAUDE_BIN", claude),
        ("ANTHROPIC_BASE_URL", fake_url),
    ];
    env.extend(OFFLINE);
    env
}

#[test]
fn claude_connects_sees_our_tools_directly_and_its_call_reaches_the_daemon() {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    // --dry-run: once planned the run executes nothing itself, so no worker of its own can
    // take the task before the claude under test claims it.
    let run = sb.planned_one_task(&repo, "Feature");
    let grant = sb.open_session(&run, json!({"role": "worker"}));

    // The model claims a task, then reports what the tool returned.
    let fake = FakeModel::start(Arc::new(|req: &Value| {
        match fake_model::last_tool_result(req) {
            Some(result) => Reply::Text(format!("Claimed. The board said: {result}")),
            None => Reply::ToolUse {
                name: "mcp__orch__claim_task".into(),
                input: json!({}),
            },
        }
    }));
    let mcp_config = json!({"mcpServers": {"orch": {
        "type": "http",
        "url": grant["mcp_url"],
        "headers": {"Authorization": "Bearer ${ORCH_TOKEN}"},
        "alwaysLoad": true
    }}});
    let mut child = Command::new(deps::claude())
        .args(["-p", "Claim a task from the board."])
        .args(["--output-format", "stream-json", "--verbose"])
        .arg("--mcp-config")
        .arg(mcp_config.to_string())
        .args(["--strict-mcp-config", "--dangerously-skip-permissions"])
        .args(["--model", "claude-fake-1"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", sb.home())
        .envs(OFFLINE.iter().copied())
        .env("ANTHROPIC_BASE_URL", &fake.url)
        .env("IS_SANDBOX", "1")
        .env("DISABLE_AUTOUPDATER", "1")
        .env("ORCH_TOKEN", grant["token"].as_str().expect("token"))
        .current_dir(&repo)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run claude");
    let status = wait::until(
        "claude to finish",
        std::time::Duration::from_secs(120),
        || child.try_wait().expect("wait"),
    );
    let mut stdout = String::new();
    let mut stderr = String::new();
    child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut stdout)
        .expect("read");
    child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr)
        .expect("read");
    let lines: Vec<Value> = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    let dump = || format!("exit {status}\n--- stdout\n{stdout}\n--- stderr\n{stderr}");

    // system/init: our server connected, our tools loaded by name.
    let init = lines
        .iter()
        .find(|l| l["type"] == "system" && l["subtype"] == "init")
        .unwrap_or_else(|| panic!("no init line\n{}", dump()));
    let orch = init["mcp_servers"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == "orch"))
        .unwrap_or_else(|| panic!("no orch server in init\n{}", dump()));
    assert_eq!(orch["status"], "connected", "{}", dump());
    assert!(
        init["tools"]
            .as_array()
            .is_some_and(|t| t.iter().any(|t| t == "mcp__orch__claim_task")),
        "{}",
        dump()
    );

    // The model was offered our tools directly (no ToolSearch deferral) and got our instructions.
    let first = fake
        .requests()
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no model request\n{}", dump()));
    let offered = fake_model::tool_names(&first);
    for tool in ["mcp__orch__claim_task", "mcp__orch__complete_task"] {
        assert!(
            offered.iter().any(|t| t == tool),
            "{tool} offered directly: {offered:?}"
        );
    }
    assert!(
        !offered.iter().any(|t| t == "mcp__orch__submit_plan"),
        "a worker is not offered the planner's tool: {offered:?}"
    );
    // Our instructions reach the model: the worker's part only.
    let sent = first.to_string();
    assert!(
        sent.contains("orchestratord coordinates the sessions building one feature")
            && sent.contains("Worker: get_task")
            && !sent.contains("submit_plan once"),
        "a worker's instructions reach the model, without the planner's"
    );

    // The call reached the daemon and its structured result reached the model.
    let result = lines
        .iter()
        .find(|l| l["type"] == "result")
        .unwrap_or_else(|| panic!("no result\n{}", dump()));
    assert_eq!(result["is_error"], false, "{}", dump());
    assert!(
        result["result"]
            .as_str()
            .unwrap_or("")
            .contains("\"claimed\":true"),
        "{}",
        dump()
    );
    assert!(status.success(), "{}", dump());
    let board = sb.session(&run, "worker").ok("list_tasks", json!({}));
    assert_eq!(board["tasks"][0]["status"], "in_progress", "{board}");
    assert_eq!(board["tasks"][0]["assignee"], grant["session"]);
}

#[test]
fn the_daemon_runs_the_real_claude_as_planner_and_the_plan_lands() {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    let plan = json!({"summary": "Greeting in two steps", "tasks": [
        {"id": "lib", "title": "Add greet()", "description": "Create src/greet.rs with greet()",
         "acceptance_criteria": ["greet() returns hello"], "files": ["src/greet.rs"]},
        {"id": "cli", "title": "Call greet()", "description": "Print greet() from main",
         "acceptance_criteria": ["running prints hello"], "depends_on": ["lib"], "files": ["src/main.rs"]}
    ]});
    let fake = FakeModel::start(Arc::new(
        move |req: &Value| match fake_model::last_tool_result(req) {
            Some(r) => Reply::Text(format!("Plan submitted: {r}")),
            None => Reply::ToolUse {
                name: "mcp__orch__submit_plan".into(),
                input: plan.clone(),
            },
        },
    ));
    let claude = deps::claude();
    let claude = claude.to_str().expect("utf-8 path");
    sb.orchestrate_env(
        &repo,
        &["start", "Add a greeting", "--dry-run"],
        &daemon_env(claude, &fake.url),
    )
    .ok();
    let run = wait::until(
        "the run to be planned",
        std::time::Duration::from_secs(120),
        || {
            let s = sb.orchestrate_in(&repo, &["status", "--json"]).ok().json();
            (s["status"] != "running" && s["status"] != "queued").then_some(s)
        },
    );
    let log = sb.orchestrate_in(&repo, &["log", "-n", "50"]).ok().stdout;
    assert_eq!(run["status"], "planned", "{run}\n{log}");
    let md = std::fs::read_to_string(repo.join(".orchestrator/plan-v1.md")).expect("plan-v1.md");
    assert!(md.contains("## cli — Call greet()"), "{md}");
    // The real claude ran with our flags: the permission mode, our tools offered directly.
    let first = fake.requests().into_iter().next().expect("a model request");
    assert!(
        fake_model::tool_names(&first)
            .iter()
            .any(|t| t == "mcp__orch__submit_plan")
    );
    assert!(
        first.to_string().contains("Add a greeting"),
        "the prompt carries the feature"
    );
}

/// The planner's turn: submit the plan, then stop.
pub(crate) fn planner_reply(plan: &Value, steps: usize) -> Reply {
    if steps == 0 {
        Reply::ToolUse {
            name: "mcp__orch__submit_plan".into(),
            input: plan.clone(),
        }
    } else {
        Reply::Text("Plan submitted.".into())
    }
}

/// A worker's turn, from the conversation so far: write `file` in its worktree with claude's
/// Write tool, commit with Bash, complete over MCP, stop.
pub(crate) fn worker_reply(text: &str, steps: usize, file: &str, body: &str) -> Reply {
    let worktree = text
        .split("You are in your own git worktree, ")
        .nth(1)
        .and_then(|r| r.split(", on branch").next())
        .unwrap_or("/nonexistent")
        .to_owned();
    match steps {
        0 => Reply::ToolUse {
            name: "Write".into(),
            input: json!({"file_path": format!("{worktree}/{file}"), "content": body}),
        },
        1 => Reply::ToolUse {
            name: "Bash".into(),
            input: json!({"command": format!("cd {worktree} && git add -A && git -c user.name=W -c user.email=w@example.invalid commit -q -m 'Add {file}'"),
                          "description": "commit"}),
        },
        2 => Reply::ToolUse {
            name: "mcp__orch__complete_task".into(),
            input: json!({"summary": format!("wrote {file}, committed")}),
        },
        _ => Reply::Text("Done.".into()),
    }
}

/// Tool results so far in the conversation.
pub(crate) fn steps(req: &Value) -> usize {
    req["messages"]
        .as_array()
        .map(|m| {
            m.iter()
                .filter_map(|m| m["content"].as_array())
                .flatten()
                .filter(|b| b["type"] == "tool_result")
                .count()
        })
        .unwrap_or(0)
}

/// The fake model of a two-task greeting run: it plays the planner (submit `plan`) and each
/// worker (write its file with claude's own Write tool, commit with Bash, complete over MCP),
/// from the request alone. Task `lib` writes greet.txt, any other main.txt.
pub(crate) fn greeting_model(plan: Value) -> FakeModel {
    FakeModel::start(Arc::new(move |req: &Value| {
        let text = req.to_string();
        let n = steps(req);
        if text.contains("You are the planner") {
            return planner_reply(&plan, n);
        }
        let (file, body) = if text.contains("Your task: lib") {
            ("greet.txt", "hello\n")
        } else {
            ("main.txt", "uses greet\n")
        };
        worker_reply(&text, n, file, body)
    }))
}

#[test]
fn a_whole_run_with_the_real_claude_plans_builds_merges_and_completes() {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    let plan = json!({"summary": "Greeting in two steps", "tasks": [
        {"id": "lib", "title": "Write greet.txt", "description": "Create greet.txt saying hello",
         "acceptance_criteria": ["greet.txt says hello"], "files": ["greet.txt"]},
        {"id": "cli", "title": "Write main.txt", "description": "Create main.txt that uses greet",
         "acceptance_criteria": ["main.txt mentions greet"], "depends_on": ["lib"], "files": ["main.txt"]}
    ]});
    let fake = greeting_model(plan);
    let claude = deps::claude();
    let claude = claude.to_str().expect("utf-8 path");
    sb.orchestrate_env(
        &repo,
        &["start", "Add a greeting", "--concurrency", "2"],
        &daemon_env(claude, &fake.url),
    )
    .ok();
    let run = crate::real_failures::wait_final(&sb, &repo);
    let log = sb.orchestrate_in(&repo, &["log", "-n", "200"]).ok().stdout;
    assert_eq!(run["status"], "completed", "{run}\n{log}");
    let branch = run["branch"].as_str().expect("branch");
    assert_eq!(
        sb.git(&repo, &["show", &format!("{branch}:greet.txt")]),
        "hello"
    );
    assert_eq!(
        sb.git(&repo, &["show", &format!("{branch}:main.txt")]),
        "uses greet"
    );
    let status = sb.orchestrate_in(&repo, &["status"]).ok().stdout;
    println!("{status}\n{log}");
}

#[test]
fn the_real_claude_lists_the_installed_slash_command() {
    let sb = Sandbox::new();
    sb.orchestrate(&["setup"]).ok();
    let fake = FakeModel::start(Arc::new(|_: &Value| Reply::Text("Hello.".into())));
    let out = Command::new(deps::claude())
        .args(["-p", "hi", "--output-format", "stream-json", "--verbose"])
        .args(["--model", "claude-fake-1"])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", sb.home())
        .envs(OFFLINE.iter().copied())
        .env("ANTHROPIC_BASE_URL", &fake.url)
        .current_dir(sb.root())
        .stdin(Stdio::null())
        .output()
        .expect("run claude");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let init: Value = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["type"] == "system" && l["subtype"] == "init")
        .unwrap_or_else(|| {
            panic!(
                "no init: {stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    let commands = init["slash_commands"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(commands.iter().any(|c| c == "orchestrate"), "{commands:?}");
}

#[test]
fn the_real_claude_hits_the_usage_limit_and_the_run_resumes_it_after_the_reset() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let sb = Sandbox::new();
    // Resume right at the reset; keep the usage poller off the network.
    std::fs::write(
        sb.config_file(),
        "[usage]\nreset_margin_secs = 0\nbase_url = \"http://127.0.0.1:9\"\n",
    )
    .expect("config");
    let repo = sb.repo("app");
    let plan = json!({"summary": "One step", "tasks": [
        {"id": "greet", "title": "Write greet.txt", "description": "Create greet.txt saying hello",
         "acceptance_criteria": ["greet.txt says hello"], "files": ["greet.txt"]}]});
    let limited = Arc::new(AtomicBool::new(false));
    let hit = limited.clone();
    let fake = FakeModel::start(Arc::new(move |req: &Value| {
        let text = req.to_string();
        let n = steps(req);
        if text.contains("You are the planner") {
            return planner_reply(&plan, n);
        }
        // The worker's first request hits the 5-hour limit, as Anthropic's API says it.
        if !hit.swap(true, Ordering::SeqCst) {
            // Resets 3 s from now, however long the planner took.
            let reset = time::OffsetDateTime::now_utc().unix_timestamp() + 3;
            return Reply::Error {
                status: 429,
                headers: vec![
                    (
                        "anthropic-ratelimit-unified-status".into(),
                        "rejected".into(),
                    ),
                    (
                        "anthropic-ratelimit-unified-reset".into(),
                        reset.to_string(),
                    ),
                    (
                        "anthropic-ratelimit-unified-representative-claim".into(),
                        "five_hour".into(),
                    ),
                ],
                message: "usage limit".into(),
            };
        }
        worker_reply(&text, n, "greet.txt", "hello\n")
    }));
    let claude = deps::claude();
    let claude = claude.to_str().expect("utf-8 path");
    // A subscription login: claude sends the OAuth token and reads the unified limit headers.
    let mut env: Vec<(&str, &str)> = daemon_env(claude, &fake.url)
        .into_iter()
        .filter(|(k, _)| *k != "ANTHROPIC_API_KEY")
        .collect();
    env.push(("CLAUDE_CODE_OAUTH_TOKEN", "sk-ant-oat01-fake-subscription"));
    sb.orchestrate_env(&repo, &["start", "Add a greeting", "--skip-codex"], &env)
        .ok();
    let run = wait::until(
        "the run to finish",
        std::time::Duration::from_secs(300),
        || {
            let s = sb.orchestrate_in(&repo, &["status", "--json"]).ok().json();
            matches!(
                s["status"].as_str(),
                Some("completed" | "failed" | "escalated")
            )
            .then_some(s)
        },
    );
    let mut log = sb.orchestrate_in(&repo, &["log", "-n", "300"]).ok().stdout;
    for f in std::fs::read_dir(repo.join(".orchestrator/sessions"))
        .expect("sessions")
        .flatten()
    {
        let out = std::fs::read_to_string(f.path().join("stdout.jsonl")).unwrap_or_default();
        if out.contains("rate_limit") || out.contains("usage_limit") {
            log.push_str(&format!("\n--- {}:\n{out}", f.path().display()));
        }
    }
    assert_eq!(run["status"], "completed", "{run}\n{log}");
    assert!(limited.load(Ordering::SeqCst), "the limit was served");
    assert!(
        log.contains("usage: the account hit its 5-hour limit")
            && log.contains("Task greet interrupted (the account hit its usage limit)")
            && log.contains("the usage window has reset: resuming by itself")
            && log.contains("Task greet continues in session"),
        "{log}"
    );
    let branch = run["branch"].as_str().expect("branch");
    assert_eq!(
        sb.git(&repo, &["show", &format!("{branch}:greet.txt")]),
        "hello"
    );
    // The resumed session continued the same conversation (its first prompt is in the history).
    let resumed = fake
        .requests()
        .into_iter()
        .filter(|r| r.to_string().contains("You were interrupted"))
        .collect::<Vec<_>>();
    assert!(
        resumed
            .first()
            .is_some_and(|r| r.to_string().contains("You are a worker")),
        "claude --resume carried the conversation over"
    );
}
