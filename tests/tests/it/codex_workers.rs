//! The real `codex` binary (0.169.0) as the workers of whole runs, offline: the suite's fake
//! Responses API plays the model, calling our MCP tools (`get_task`, `complete_task`) through
//! the `mcp__orch` namespace codex offers them in, and codex's own shell tool to write and
//! commit files. Planning is the fast tier's fake claude.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use orchestrator_tests::fake_openai::{
    FakeOpenAi, Turn, call_outputs, exec_command, mcp_call, message, user_texts,
};
use orchestrator_tests::{Sandbox, deps, wait};
use serde_json::{Value, json};

use crate::execution::{task, wait_final};

/// The task a worker's conversation is about ("# Your task: <id> — …" in its prompt).
fn task_of(req: &Value) -> String {
    let text = user_texts(req);
    text.split("# Your task: ")
        .nth(1)
        .and_then(|rest| rest.split(" — ").next())
        .unwrap_or("unknown")
        .to_owned()
}

/// A Codex worker that does its task: reads it, writes `<task>.txt` and commits it with the
/// shell, completes it, and says so. Reviews (a JSON schema asked for) approve.
pub(crate) fn worker_turn(req: &Value) -> Turn {
    if req["text"]["format"]["type"] == "json_schema" {
        let v = json!({"verdict": "approve", "summary": "Fine.", "findings": []});
        return Turn::Items(vec![message(&v.to_string())]);
    }
    let id = task_of(req);
    Turn::Items(vec![match call_outputs(req).len() {
        0 => mcp_call("c1", "get_task", json!({})),
        1 => exec_command(
            "c2",
            &format!(
                "printf '%s\\n' {id} > {id}.txt && git add -A && git commit -qm 'Add {id}' \
                 && git log --oneline -1"
            ),
        ),
        2 => mcp_call(
            "c3",
            "complete_task",
            json!({"summary": format!("wrote {id}.txt")}),
        ),
        _ => message(&format!("Task {id} is done.")),
    }])
}

fn codex_env<'a>(home: &'a str, codex: &'a str, plan: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("CLAUDE_FAKE_SCRIPT", plan),
        ("ORCHESTRATOR_CODEX_BIN", codex),
        ("CODEX_HOME", home),
        ("OPENAI_API_KEY", "dummy"),
    ]
}

fn plan_file(sb: &Sandbox, tasks: Vec<Value>) -> String {
    let path = sb.root().join("plan.json");
    std::fs::write(
        &path,
        json!({"summary": "Plan", "tasks": tasks}).to_string(),
    )
    .expect("write the plan");
    format!("plan:{}", path.display())
}

#[test]
fn the_real_codex_builds_a_whole_run_as_its_workers() {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    let fake = FakeOpenAi::agent(Arc::new(worker_turn));
    let home = sb.root().join("codex-home");
    fake.codex_home(&home);
    let plan = plan_file(
        &sb,
        vec![
            task("lib", &[], &["lib.txt"]),
            task("cli", &["lib"], &["cli.txt"]),
            task("docs", &[], &["docs.txt"]),
        ],
    );
    let codex = deps::codex();
    let (home_s, codex_s) = (home.display().to_string(), codex.display().to_string());
    sb.orchestrate_env(
        &repo,
        &[
            "start",
            "Add a greeting",
            "--worker-agent",
            "codex",
            "--concurrency",
            "2",
        ],
        &codex_env(&home_s, &codex_s, &plan),
    )
    .ok();
    let run = wait_final(&sb, &repo);
    let log = sb.orchestrate_in(&repo, &["log", "-n", "500"]).ok().stdout;
    assert_eq!(run["status"], "completed", "{run}\n{log}");
    assert_eq!(run["progress"]["merged"], 3, "{run}");
    let branch = run["branch"].as_str().expect("branch");
    for id in ["lib", "cli", "docs"] {
        let text = sb.git(&repo, &["show", &format!("{branch}:{id}.txt")]);
        assert_eq!(text.trim(), id, "{id}.txt merged as the worker wrote it");
    }
    assert!(
        log.contains("as a Codex worker"),
        "the log says which CLI works: {log}"
    );
    // Each worker's tool calls reached the fake as codex's (namespaced MCP, shell).
    let requests = fake.requests();
    let tools: Vec<String> = requests
        .iter()
        .flat_map(|r| r["tools"].as_array().cloned().unwrap_or_default())
        .filter_map(|t| t["name"].as_str().map(str::to_owned))
        .collect();
    assert!(tools.iter().any(|t| t == "mcp__orch"), "{tools:?}");
    // Every worker's last turn came after get_task, its commit and complete_task answered.
    let finished = requests
        .iter()
        .filter(|r| call_outputs(r).len() == 3)
        .count();
    assert_eq!(finished, 3, "one final turn per worker");
    // Each task's Codex session is in the ledger, with the tokens codex reported.
    let ledger = sb.orchestrate_in(&repo, &["cost", "--json"]).ok().json();
    for id in ["lib", "cli", "docs"] {
        let row = ledger["rows"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|r| r["scope"] == "task" && r["key"] == id)
            .unwrap_or_else(|| panic!("task {id} in the ledger: {ledger}"));
        assert_eq!(row["model"], "codex", "{row}");
        assert!(row["input_tokens"].as_u64().unwrap_or(0) > 0, "{row}");
    }
}

/// A Codex worker stopped by a pause mid-task continues its own thread on resume (`codex exec
/// resume`): the resumed conversation carries what it did before.
#[test]
fn an_interrupted_codex_worker_resumes_its_thread() {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    let stalled = Arc::new(AtomicBool::new(false));
    let once = stalled.clone();
    let fake = FakeOpenAi::agent(Arc::new(move |req: &Value| {
        let first_time = call_outputs(req).len() == 1 && !once.swap(true, Ordering::SeqCst);
        if first_time {
            return Turn::Stall;
        }
        worker_turn(req)
    }));
    let home = sb.root().join("codex-home");
    fake.codex_home(&home);
    let plan = plan_file(&sb, vec![task("only", &[], &["only.txt"])]);
    let codex = deps::codex();
    let (home_s, codex_s) = (home.display().to_string(), codex.display().to_string());
    let env = codex_env(&home_s, &codex_s, &plan);
    sb.orchestrate_env(
        &repo,
        &[
            "start",
            "One part",
            "--worker-agent",
            "codex",
            "--skip-codex",
        ],
        &env,
    )
    .ok();
    wait::until("the worker to stall after get_task", wait::DEADLINE, || {
        stalled.load(Ordering::SeqCst).then_some(())
    });
    sb.orchestrate_in(&repo, &["pause"]).ok();
    let paused = wait::polled(wait::DEADLINE, || {
        let s = sb.orchestrate_in(&repo, &["status", "--json"]).ok().json();
        (s["status"] == "paused" && s["progress"]["in_progress"] == 0).then_some(())
    });
    if paused.is_none() {
        let s = sb.orchestrate_in(&repo, &["status", "--json"]).ok().stdout;
        let log = sb.orchestrate_in(&repo, &["log", "-n", "200"]).ok().stdout;
        panic!("the run did not pause: {s}\n{log}");
    }
    sb.orchestrate_env(&repo, &["resume"], &env).ok();
    let run = wait_final(&sb, &repo);
    let log = sb.orchestrate_in(&repo, &["log", "-n", "200"]).ok().stdout;
    assert_eq!(run["status"], "completed", "{run}\n{log}");
    let thread = log
        .split("codex exec resume ")
        .nth(1)
        .and_then(|rest| rest.split([',', ')', ' ']).next())
        .unwrap_or_else(|| panic!("the log names the thread it resumes: {log}"));
    assert!(!thread.is_empty(), "{log}");
    let requests = fake.requests();
    let resumed = requests
        .iter()
        .find(|r| user_texts(r).contains("You were interrupted"))
        .unwrap_or_else(|| panic!("a resumed turn: {log}"));
    assert!(
        !call_outputs(resumed).is_empty() && user_texts(resumed).contains("# Your task: only"),
        "the resumed thread carries the first turn's brief and get_task: {resumed}"
    );
    let branch = run["branch"].as_str().expect("branch");
    let text = sb.git(&repo, &["show", &format!("{branch}:only.txt")]);
    assert_eq!(text.trim(), "only");
}

/// Starts a run of Claude workers (the fast tier's fake) that may route to the real Codex:
/// the fake claude's workers behave as `worker` says.
fn routed_run(sb: &Sandbox, worker: &str, tasks: Vec<Value>) -> (std::path::PathBuf, FakeOpenAi) {
    let repo = sb.repo("app");
    let fake = FakeOpenAi::agent(Arc::new(worker_turn));
    let home = sb.root().join("codex-home");
    fake.codex_home(&home);
    let plan = plan_file(sb, tasks);
    let codex = deps::codex();
    let (home_s, codex_s) = (home.display().to_string(), codex.display().to_string());
    let once = sb.root().join("warned-once");
    let mut env = codex_env(&home_s, &codex_s, &plan);
    let once_s = once.display().to_string();
    env.extend([
        ("CLAUDE_FAKE_WORKER", worker),
        ("CLAUDE_FAKE_RESET_SECS", "3600"),
        ("CLAUDE_FAKE_ONCE", once_s.as_str()),
    ]);
    sb.orchestrate_env(
        &repo,
        &[
            "start",
            "Parts",
            "--on-limit",
            "codex",
            "--skip-codex",
            "--concurrency",
            "1",
        ],
        &env,
    )
    .ok();
    (repo, fake)
}

/// Which CLI each task's merged worker ran, from the log's dispatch lines.
fn ran_as(log: &str, id: &str) -> &'static str {
    let line = log
        .lines()
        .rev()
        .find(|l| {
            l.contains(&format!("Task {id} dispatched"))
                || l.contains(&format!("Task {id} continues"))
        })
        .unwrap_or_else(|| panic!("task {id} was started: {log}"));
    if line.contains("Codex") || line.contains("codex") {
        "codex"
    } else {
        "claude"
    }
}

/// `--on-limit codex`: once Claude's 5-hour window crosses its threshold mid-run, the tasks
/// not started yet start as Codex workers, and the run never pauses.
#[test]
fn past_claude_s_threshold_tasks_start_as_codex_workers_without_a_pause() {
    let sb = Sandbox::new();
    let tasks = vec![
        task("a", &[], &["a.txt"]),
        task("b", &["a"], &["b.txt"]),
        task("c", &["b"], &["c.txt"]),
    ];
    let (repo, fake) = routed_run(&sb, "warn", tasks);
    let run = wait_final(&sb, &repo);
    let log = sb.orchestrate_in(&repo, &["log", "-n", "500"]).ok().stdout;
    assert_eq!(run["status"], "completed", "{run}\n{log}");
    assert_eq!(run["progress"]["merged"], 3, "{run}");
    assert_eq!(ran_as(&log, "a"), "claude", "{log}");
    assert_eq!(
        (ran_as(&log, "b"), ran_as(&log, "c")),
        ("codex", "codex"),
        "{log}"
    );
    assert!(
        log.contains(
            "Task b starts as a Codex worker instead of Claude: the 5-hour window is at 90%"
        ),
        "the switch is said with its reason: {log}"
    );
    assert!(!log.contains("paused"), "no pause: {log}");
    assert!(fake.requests().len() >= 8, "two Codex workers ran");
}

/// `--on-limit codex`: a Claude worker that hits the limit mid-task is interrupted, and a
/// Codex worker takes its worktree over, partial work included; the run never pauses.
#[test]
fn a_claude_worker_cut_off_by_the_limit_is_taken_over_by_codex() {
    let sb = Sandbox::new();
    let (repo, _fake) = routed_run(&sb, "limit", vec![task("a", &[], &["a.txt"])]);
    let run = wait_final(&sb, &repo);
    let log = sb.orchestrate_in(&repo, &["log", "-n", "500"]).ok().stdout;
    assert_eq!(run["status"], "completed", "{run}\n{log}");
    assert!(!log.contains("paused"), "no pause: {log}");
    assert!(
        log.contains(
            "Task a starts as a Codex worker instead of Claude: the account hit its 5-hour limit"
        ),
        "{log}"
    );
    assert!(
        log.contains("it continues afresh in ") && log.contains(" now, as a Codex worker"),
        "the interruption says what happens next: {log}"
    );
    let branch = run["branch"].as_str().expect("branch");
    let partial = sb.git(&repo, &["show", &format!("{branch}:partial-a.txt")]);
    assert_eq!(
        partial.trim(),
        "half done",
        "the cut-off worker's work was kept"
    );
    assert_eq!(
        sb.git(&repo, &["show", &format!("{branch}:a.txt")]).trim(),
        "a"
    );
}

/// A run of Codex workers without codex installed is refused at start, saying how to fix it,
/// rather than failing each task at its first dispatch.
#[test]
fn codex_workers_without_codex_are_refused_at_start() {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    for flags in [["--worker-agent", "codex"], ["--on-limit", "codex"]] {
        let mut args = vec!["start", "Parts"];
        args.extend(flags);
        let out = sb
            .orchestrate_env(&repo, &args, &[("PATH", "/usr/bin:/bin")])
            .fails_with(2);
        let flag = flags.join(" ");
        assert!(
            out.stderr.contains(&format!(
                "this run uses Codex workers ({flag}), but codex is not on your PATH"
            )) && out.stderr.contains("npm install -g @openai/codex"),
            "{}",
            out.stderr
        );
    }
    let list = sb.orchestrate_in(&repo, &["list", "--json"]).ok().json();
    assert_eq!(
        list["runs"].as_array().map(Vec::len),
        Some(0),
        "nothing was created: {list}"
    );
}

/// `--on-limit codex` is kept for the project's next run like every model flag; without codex
/// that run is refused naming where it came from, and `--on-limit pause` alone undoes it.
#[test]
fn an_inherited_codex_routing_is_named_when_refused_and_undone_by_a_flag() {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    let plan = plan_file(&sb, vec![task("only", &[], &["only.txt"])]);
    let codex = deps::codex().display().to_string();
    // The daemon starts without codex in its own environment; the first run brings it.
    sb.orchestrate(&["list"]).ok();
    sb.orchestrate_env(
        &repo,
        &["start", "First", "--skip-codex", "--on-limit", "codex"],
        &[
            ("CLAUDE_FAKE_SCRIPT", &plan),
            ("ORCHESTRATOR_CODEX_BIN", &codex),
        ],
    )
    .ok();
    assert_eq!(wait_final(&sb, &repo)["status"], "completed");
    let refused = sb
        .orchestrate_env(
            &repo,
            &["start", "Second", "--skip-codex"],
            &[("CLAUDE_FAKE_SCRIPT", &plan)],
        )
        .fails_with(2)
        .stderr;
    assert!(
        refused.contains("(--on-limit codex, kept from the project's previous run or [models])")
            && refused.contains("--on-limit pause"),
        "{refused}"
    );
    let started = sb
        .orchestrate_env(
            &repo,
            &[
                "start",
                "Second",
                "--skip-codex",
                "--on-limit",
                "pause",
                "--json",
            ],
            &[("CLAUDE_FAKE_SCRIPT", &plan)],
        )
        .ok()
        .json();
    assert!(
        started["options"].get("models").is_none(),
        "back to the defaults: {started}"
    );
}
