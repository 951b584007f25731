//! Forecasts from the project's own history, with the fast tier: a first run leaves the cost
//! of its tasks; in the next, a worker reports the 5-hour window at 90%. The window's size is
//! then what the daemon spent since it began over 90%, and a task whose estimate does not fit
//! in the 10% left waits for the reset instead of being cut off by the limit (or, with
//! `--on-limit codex`, starts as a Codex worker). `status` shows the estimate to go.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use orchestrator_tests::fake_openai::FakeOpenAi;
use orchestrator_tests::{Sandbox, deps, wait};
use serde_json::{Value, json};

use crate::execution::{task, wait_final};

fn plan_file(sb: &Sandbox, name: &str, tasks: Vec<Value>) -> String {
    let file = sb.root().join(name);
    std::fs::write(&file, json!({"summary": "s", "tasks": tasks}).to_string()).expect("plan");
    format!("plan:{}", file.display())
}

/// A project with one finished run of two tasks behind it (their cost is the history).
fn project_with_history(sb: &Sandbox) -> PathBuf {
    let repo = sb.repo("app");
    let plan = plan_file(
        sb,
        "first.json",
        vec![
            task("one", &[], &["one.txt"]),
            task("two", &[], &["two.txt"]),
        ],
    );
    sb.orchestrate_env(
        &repo,
        &["start", "First", "--skip-codex"],
        &[("CLAUDE_FAKE_SCRIPT", &plan)],
    )
    .ok();
    assert_eq!(wait_final(sb, &repo)["status"], "completed");
    repo
}

/// The second run: `a`'s worker reports the 5-hour window at 90% (resetting in an hour), and
/// the run's threshold is 100%, so nothing but the forecast keeps `b` from starting.
fn second_run(sb: &Sandbox, repo: &Path, extra: &[&str], env: &[(&str, &str)]) {
    let plan = plan_file(
        sb,
        "second.json",
        vec![task("a", &[], &["a.txt"]), task("b", &[], &["b.txt"])],
    );
    let once = sb.root().join("warned").display().to_string();
    let mut args = vec!["start", "Second", "--skip-codex", "--concurrency", "1"];
    args.extend(["--usage-threshold", "1"]);
    args.extend(extra);
    let mut all = vec![
        ("CLAUDE_FAKE_SCRIPT", plan.as_str()),
        ("CLAUDE_FAKE_WORKER", "warn"),
        ("CLAUDE_FAKE_ONCE", once.as_str()),
        ("CLAUDE_FAKE_UTILIZATION", "0.9"),
        ("CLAUDE_FAKE_RESET_SECS", "3600"),
    ];
    all.extend_from_slice(env);
    sb.orchestrate_env(repo, &args, &all).ok();
}

#[test]
fn a_task_that_would_not_fit_before_the_limit_waits_for_the_reset() {
    let sb = Sandbox::new();
    let repo = project_with_history(&sb);
    second_run(&sb, &repo, &[], &[]);
    // b is weighed when a's session ends, before a's merge lands; the estimate below counts
    // the tasks not merged yet.
    let log = wait::until("b to wait for the forecast", wait::DEADLINE, || {
        let log = sb.orchestrate_in(&repo, &["log", "-n", "500"]).ok().stdout;
        (log.contains("Task b waits") && log.contains("Task a merged")).then_some(log)
    });
    assert!(
        log.contains("its estimated $0.0020 (≈ 22% of the 5-hour window, the median of 3 past tasks) does not fit in the 10% left before the limit"),
        "{log}"
    );
    assert!(
        !log.contains("Task b dispatched"),
        "b was not started: {log}"
    );
    let status = sb.orchestrate_in(&repo, &["status"]).ok().stdout;
    assert!(
        status.contains("estimate   1 task to go ≈ $0.0020 (the median cost of this project's 3 past tasks) · ≈ 22% of the 5-hour window (at 90% now)"),
        "{status}"
    );
    let json = sb.orchestrate_in(&repo, &["status", "--json"]).ok().json();
    assert_eq!(json["forecast"]["tasks"], 1, "{json}");
    assert_eq!(json["status"], "running", "{json}");
    sb.orchestrate_in(&repo, &["cancel"]).ok();
}

#[test]
fn with_on_limit_codex_a_task_that_would_not_fit_starts_as_a_codex_worker() {
    let sb = Sandbox::new();
    let repo = project_with_history(&sb);
    let fake = FakeOpenAi::agent(Arc::new(crate::codex_workers::worker_turn));
    let home = sb.root().join("codex-home");
    fake.codex_home(&home);
    let codex = deps::codex();
    let (home, codex) = (home.display().to_string(), codex.display().to_string());
    second_run(
        &sb,
        &repo,
        &["--on-limit", "codex"],
        &[
            ("ORCHESTRATOR_CODEX_BIN", &codex),
            ("CODEX_HOME", &home),
            ("OPENAI_API_KEY", "dummy"),
        ],
    );
    let run = wait_final(&sb, &repo);
    let log = sb.orchestrate_in(&repo, &["log", "-n", "500"]).ok().stdout;
    assert_eq!(run["status"], "completed", "{run}\n{log}");
    assert!(
        log.contains("Task b starts as a Codex worker instead of Claude: its estimated $0.0020"),
        "{log}"
    );
    assert!(!log.contains("paused"), "{log}");
    // The mirror shows this run's tasks, not the first run's too.
    let mut files: Vec<String> = std::fs::read_dir(repo.join(".orchestrator/tasks"))
        .expect("tasks/")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files, ["a.json", "b.json"]);
}

/// Two runs share the 5-hour window: one whose planner is still thinking (it has spent
/// nothing), one that has spent its half (the window's size is its spend over the 55% a worker
/// reported). The second's next task waits, leaving the rest to the first; `orchestrate
/// usage` shows both runs' shares.
#[test]
fn a_run_that_has_spent_its_share_of_the_window_leaves_the_rest_to_the_other() {
    let sb = Sandbox::new();
    let other = sb.repo("other");
    sb.orchestrate_env(
        &other,
        &["start", "Think long", "--skip-codex"],
        &[("CLAUDE_FAKE_SCRIPT", "hang")],
    )
    .ok();
    let repo = sb.repo("app");
    let plan = plan_file(
        &sb,
        "chain.json",
        vec![task("a", &[], &["a.txt"]), task("b", &["a"], &["b.txt"])],
    );
    let once = sb.root().join("warned").display().to_string();
    sb.orchestrate_env(
        &repo,
        &["start", "Chain", "--skip-codex", "--usage-threshold", "1"],
        &[
            ("CLAUDE_FAKE_SCRIPT", plan.as_str()),
            ("CLAUDE_FAKE_WORKER", "warn"),
            ("CLAUDE_FAKE_ONCE", once.as_str()),
            ("CLAUDE_FAKE_UTILIZATION", "0.55"),
            ("CLAUDE_FAKE_RESET_SECS", "3600"),
        ],
    )
    .ok();
    let log = wait::until("b to wait for its share", wait::DEADLINE, || {
        let log = sb.orchestrate_in(&repo, &["log", "-n", "500"]).ok().stdout;
        log.contains("Task b waits").then_some(log)
    });
    assert!(
        log.contains("Task b waits for the other runs' share: the run has spent $0.0030 of the 5-hour window, its 50% share (priority 1 of 2 active runs)"),
        "{log}"
    );
    let usage = sb.orchestrate_in(&repo, &["usage", "--json"]).ok().json();
    let runs = usage["runs"].as_array().cloned().unwrap_or_default();
    assert_eq!(runs.len(), 2, "{usage}");
    assert!(runs.iter().all(|r| r["share_percent"] == 50.0), "{usage}");
    let text = sb.orchestrate_in(&repo, &["usage"]).ok().stdout;
    assert!(
        text.contains("Runs sharing the 5-hour window")
            && text.contains("priority 1 · 50% share · spent $0.0030 of $0.0027"),
        "{text}"
    );
    sb.orchestrate_in(&repo, &["cancel"]).ok();
    sb.orchestrate_in(&other, &["cancel"]).ok();
}
