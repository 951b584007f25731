//! The real `codex` binary (0.169.0) reviewing inside a whole run, offline: a scripted fake
//! OpenAI Responses API stands in for OpenAI's, reached through a custom provider in
//! `$CODEX_HOME/config.toml`. Claude's side is the fast tier's fake, so this tier tests what
//! the daemon asks of codex and what it makes of codex's real output.

use std::sync::Arc;

use orchestrator_tests::fake_openai::{FakeOpenAi, last_user_text};
use orchestrator_tests::{Sandbox, deps};
use serde_json::{Value, json};

use crate::execution::{task, wait_final};

#[test]
fn the_real_codex_reviews_the_plan_and_the_code_of_a_whole_run() {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    let fake = FakeOpenAi::start(Arc::new(|req: &Value| {
        let prompt = last_user_text(req);
        let verdict = if prompt.starts_with("You are reviewing the plan") {
            if prompt.contains("\n- P1 [P1]") {
                json!({"verdict": "approve", "summary": "The split settles it.", "findings": []})
            } else {
                json!({"verdict": "revise", "summary": "Too coarse.", "findings": [
                    {"ref": null, "priority": "P1", "title": "Split the greeting task",
                     "body": "Separate the library from the CLI.", "file": null, "line": null}]})
            }
        } else {
            json!({"verdict": "approve", "summary": "Clean.", "findings": [
                {"ref": null, "priority": "P3", "title": "Trailing newline",
                 "body": "Consider one.", "file": "cli.txt", "line": 1}]})
        };
        verdict.to_string()
    }));
    let home = sb.root().join("codex-home");
    fake.codex_home(&home);
    let plans = sb.root().join("plans.json");
    std::fs::write(
        &plans,
        json!([
            {"summary": "One step", "tasks": [task("all", &[], &["all.txt"])]},
            {"summary": "Two steps", "tasks": [task("lib", &[], &["lib.txt"]),
                                               task("cli", &["lib"], &["cli.txt"])]}
        ])
        .to_string(),
    )
    .expect("write plans");
    let codex = deps::codex();
    sb.orchestrate_env(
        &repo,
        &["start", "Add a greeting"],
        &[
            ("CLAUDE_FAKE_SCRIPT", &format!("plan:{}", plans.display())),
            (
                "ORCHESTRATOR_CODEX_BIN",
                codex.to_str().expect("utf-8 path"),
            ),
            ("CODEX_HOME", home.to_str().expect("utf-8 path")),
            ("OPENAI_API_KEY", "dummy"),
        ],
    )
    .ok();
    let run = wait_final(&sb, &repo);
    let log = sb.orchestrate_in(&repo, &["log", "-n", "500"]).ok().stdout;
    assert_eq!(run["status"], "completed", "{run}\n{log}");
    assert_eq!(run["progress"]["merged"], 2, "the revised plan ran: {run}");
    assert!(
        log.contains("Codex asks for changes to plan v1: P1 [P1] Split the greeting task")
            && log.contains("Codex approved plan v2")
            && log.contains("Codex approved cycle 1's code with non-blocking findings F1"),
        "{log}"
    );

    let requests = fake.requests();
    assert_eq!(requests.len(), 3, "two plan reviews and one code review");
    for r in &requests {
        let format = &r["text"]["format"];
        assert_eq!(
            (format["type"].as_str(), format["strict"].as_bool()),
            (Some("json_schema"), Some(true)),
            "codex forwards our output schema: {format}"
        );
        assert!(
            format["schema"]["properties"]["findings"].is_object(),
            "{format}"
        );
    }
    let code_prompt = last_user_text(&requests[2]);
    assert!(
        code_prompt.contains("+++ b/cli.txt") && code_prompt.contains("lib.txt"),
        "the code review sees the branch's diff: {code_prompt}"
    );
    let dir = repo.join(".orchestrator/codex-reviews/003-code-c1");
    let verdict: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join("verdict.json")).expect("verdict.json"),
    )
    .expect("json");
    assert_eq!(verdict["findings"][0]["location"], "cli.txt:1", "{verdict}");
    let events = std::fs::read_to_string(dir.join("attempt-1/stdout.jsonl")).expect("events");
    assert!(events.contains("\"turn.completed\""), "{events}");
    assert_eq!(
        run["progress"]["sessions"], 7,
        "two planners, three codex reviews, two workers: {run}"
    );
}

/// A one-task run reviewed by the real codex through a provider whose key is read from
/// `FAKE_OPENAI_KEY`; `key` is that variable's value in the shell that starts the run.
fn run_with_a_keyed_provider(key: Option<&str>) -> (Sandbox, std::path::PathBuf, FakeOpenAi) {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    let fake = FakeOpenAi::start(Arc::new(|_req: &Value| {
        json!({"verdict": "approve", "summary": "Fine.", "findings": []}).to_string()
    }));
    let home = sb.root().join("codex-home");
    fake.codex_home_keyed(&home, "FAKE_OPENAI_KEY");
    let plan = sb.root().join("plan.json");
    std::fs::write(
        &plan,
        json!({"summary": "One step", "tasks": [task("all", &[], &["all.txt"])]}).to_string(),
    )
    .expect("write the plan");
    let codex = deps::codex();
    let script = format!("plan:{}", plan.display());
    let mut env = vec![
        ("CLAUDE_FAKE_SCRIPT", script.as_str()),
        (
            "ORCHESTRATOR_CODEX_BIN",
            codex.to_str().expect("utf-8 path"),
        ),
        ("CODEX_HOME", home.to_str().expect("utf-8 path")),
    ];
    env.extend(key.map(|k| ("FAKE_OPENAI_KEY", k)));
    sb.orchestrate_env(&repo, &["start", "Add a greeting"], &env)
        .ok();
    (sb, repo, fake)
}

/// A Codex provider whose key lives in a variable of any name reviews: the CLI reads the
/// provider `$CODEX_HOME/config.toml` selects and forwards its `env_key`.
#[test]
fn the_real_codex_on_a_provider_with_its_own_key_variable_reviews() {
    let (sb, repo, fake) = run_with_a_keyed_provider(Some("dummy"));
    let run = wait_final(&sb, &repo);
    let log = sb.orchestrate_in(&repo, &["log", "-n", "200"]).ok().stdout;
    assert_eq!(run["status"], "completed", "{run}\n{log}");
    assert!(!log.contains("Missing environment variable"), "{log}");
    assert_eq!(fake.requests().len(), 2, "a plan and a code review:\n{log}");
}

/// When every review fails (here: the provider's key is not set anywhere), the run still
/// completes, but never as a clean success: `status`, `list` and `--json` say *completed, not
/// reviewed* with codex's reason.
#[test]
fn a_run_whose_reviews_all_failed_says_completed_not_reviewed() {
    let (sb, repo, _fake) = run_with_a_keyed_provider(None);
    let run = wait_final(&sb, &repo);
    let log = sb.orchestrate_in(&repo, &["log", "-n", "200"]).ok().stdout;
    assert_eq!(run["status"], "completed", "{run}\n{log}");
    let why = run["unreviewed"]
        .as_str()
        .unwrap_or_else(|| panic!("{run}"));
    assert!(why.contains("FAKE_OPENAI_KEY"), "{why}");
    let list = sb.orchestrate_in(&repo, &["list"]).ok().stdout;
    assert!(list.contains("completed, not reviewed"), "{list}");
    let status = sb.orchestrate_in(&repo, &["status"]).ok().stdout;
    assert!(status.contains("not reviewed: "), "{status}");
}
