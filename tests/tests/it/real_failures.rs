//! The real `claude` failing the ways it does in the field, against the fake Messages API:
//! 500 and 529 (transient: retried with `claude --resume`, no attempt spent), a stream that
//! stalls (the stall watchdog stops it; the task is retried), 401 (no retry helps: the run
//! asks for a human and `resume` recovers), and our MCP endpoint down at start (classified
//! from claude's own `system/init`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use orchestrator_tests::fake_model::{FakeModel, Reply};
use orchestrator_tests::{Sandbox, deps, wait};
use serde_json::{Value, json};

use crate::real_claude::{OFFLINE, daemon_env, planner_reply, steps, worker_reply};

fn plan() -> Value {
    json!({"summary": "One step", "tasks": [
        {"id": "greet", "title": "Write greet.txt", "description": "Create greet.txt saying hello",
         "acceptance_criteria": ["greet.txt says hello"], "files": ["greet.txt"]}]})
}

fn error(status: u16, message: &str) -> Reply {
    Reply::Error {
        status,
        headers: Vec::new(),
        message: message.into(),
    }
}

/// The run's status once it is over or needs a human (five minutes at most: the real claude).
pub(crate) fn wait_final(sb: &Sandbox, repo: &std::path::Path) -> Value {
    wait::until("the run to finish", Duration::from_secs(300), || {
        let s = sb.orchestrate_in(repo, &["status", "--json"]).ok().json();
        matches!(
            s["status"].as_str(),
            Some("completed" | "failed" | "escalated")
        )
        .then_some(s)
    })
}

#[test]
fn the_real_claude_recovers_from_500_529_and_a_stalled_stream() {
    let sb = Sandbox::new();
    std::fs::write(sb.config_file(), "[supervision]\nstall_secs = 5\n").expect("config");
    let repo = sb.repo("app");
    let plan = plan();
    let worker_requests = Arc::new(AtomicUsize::new(0));
    let seen = worker_requests.clone();
    let fake = FakeModel::start(Arc::new(move |req: &Value| {
        let text = req.to_string();
        if text.contains("You are the planner") {
            return planner_reply(&plan, steps(req));
        }
        if !text.contains("You are a worker") {
            return Reply::Text("ok".into());
        }
        match seen.fetch_add(1, Ordering::SeqCst) {
            0 => error(500, "fake internal error"),
            1 => error(529, "Overloaded"),
            2 => Reply::Stall,
            _ => worker_reply(&text, steps(req), "greet.txt", "hello\n"),
        }
    }));
    let claude = deps::claude();
    let claude = claude.to_str().expect("utf-8 path");
    sb.orchestrate_env(
        &repo,
        &["start", "Add a greeting", "--skip-codex"],
        &daemon_env(claude, &fake.url),
    )
    .ok();
    let run = wait_final(&sb, &repo);
    let log = sb.orchestrate_in(&repo, &["log", "-n", "300"]).ok().stdout;
    assert_eq!(run["status"], "completed", "{run}\n{log}");
    for expected in [
        "the model API was unavailable: API Error: 500",
        "the model API was unavailable: API Error: 529",
        "not counted as an attempt",
        "the session stalled: no output and no MCP call for 5s",
    ] {
        assert!(log.contains(expected), "{expected}:\n{log}");
    }
    let tasks = sb
        .get(&format!(
            "/v1/runs/{}/tasks",
            run["id"].as_str().expect("id")
        ))
        .json();
    assert_eq!(
        tasks["tasks"][0]["attempts"], 2,
        "only the stall spent an attempt: {tasks}"
    );
    let branch = run["branch"].as_str().expect("branch");
    assert_eq!(
        sb.git(&repo, &["show", &format!("{branch}:greet.txt")]),
        "hello"
    );
}

#[test]
fn the_real_claude_that_cannot_authenticate_stops_the_run_and_resume_recovers() {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    let plan = plan();
    let fixed = Arc::new(AtomicBool::new(false));
    let key_ok = fixed.clone();
    let fake = FakeModel::start(Arc::new(move |req: &Value| {
        let text = req.to_string();
        if text.contains("You are the planner") {
            return planner_reply(&plan, steps(req));
        }
        if !key_ok.load(Ordering::SeqCst) {
            return error(401, "invalid x-api-key");
        }
        worker_reply(&text, steps(req), "greet.txt", "hello\n")
    }));
    let claude = deps::claude();
    let claude = claude.to_str().expect("utf-8 path");
    let env = daemon_env(claude, &fake.url);
    sb.orchestrate_env(&repo, &["start", "Add a greeting", "--skip-codex"], &env)
        .ok();
    let run = wait_final(&sb, &repo);
    let log = sb.orchestrate_in(&repo, &["log", "-n", "300"]).ok().stdout;
    assert_eq!(run["status"], "escalated", "{run}\n{log}");
    let esc = sb.orchestrate(&["escalations", "--json"]).ok().json();
    let question = esc["escalations"][0]["question"].as_str().unwrap_or("");
    assert!(
        question.contains("could not authenticate") && question.contains("claude /login"),
        "{question}"
    );
    // The user fixes the login and resumes: the task was not charged for it.
    fixed.store(true, Ordering::SeqCst);
    sb.orchestrate_env(&repo, &["resume"], &env).ok();
    let run = wait_final(&sb, &repo);
    let log = sb.orchestrate_in(&repo, &["log", "-n", "300"]).ok().stdout;
    assert_eq!(run["status"], "completed", "{run}\n{log}");
    let tasks = sb
        .get(&format!(
            "/v1/runs/{}/tasks",
            run["id"].as_str().expect("id")
        ))
        .json();
    assert_eq!(tasks["tasks"][0]["attempts"], 1, "{tasks}");
}

#[test]
fn the_real_claude_with_our_mcp_endpoint_down_is_classified_as_mcp_failed() {
    use orchestratord::agents::stream::{StreamEvent, parse_line};
    let fake = FakeModel::start(Arc::new(|_: &Value| Reply::Text("Nothing to do.".into())));
    let dir = tempfile::tempdir().expect("tempdir");
    // A port nothing listens on: bound, then closed.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let mut env: Vec<(String, String)> = OFFLINE
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    env.push(("ANTHROPIC_BASE_URL".into(), fake.url.clone()));
    env.push(("HOME".into(), dir.path().display().to_string()));
    env.push(("PATH".into(), std::env::var("PATH").unwrap_or_default()));
    let agent = orchestratord::agents::claude::ClaudeCode {
        bin: deps::claude(),
        permissions: Default::default(),
    };
    let spec = orchestratord::agents::SessionSpec {
        prompt: "Say hello.".into(),
        cwd: dir.path().to_path_buf(),
        mcp_url: format!("http://127.0.0.1:{port}/mcp"),
        token: "t".into(),
        session_uuid: "00000000-0000-4000-8000-000000000001".into(),
        resume: false,
        env: orchestrator_proto::SessionEnv(env.into_iter().collect()),
        confine: None,
        model: None,
        effort: None,
        fallback: None,
    };
    let out = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime")
        .block_on(async {
            // The prompt on stdin, as the daemon gives it (never in argv).
            let prompt = dir.path().join("prompt.md");
            std::fs::write(&prompt, &spec.prompt).expect("write the prompt");
            let mut cmd = agent.command(&spec);
            cmd.stdin(std::fs::File::open(&prompt).expect("open the prompt"));
            cmd.output().await
        })
        .expect("run claude");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let init = stdout
        .lines()
        .find_map(|l| match parse_line(l) {
            Some(StreamEvent::Init { mcp, .. }) => Some(mcp),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no system/init:\n{stdout}"));
    assert!(
        init.iter()
            .any(|(name, connected)| name == orchestratord::agents::SERVER_NAME && !connected),
        "{init:?}"
    );
}
