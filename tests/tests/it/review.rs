//! Codex reviews in whole runs, with the fast tier's fake codex (`src/bin/fake_codex.rs`):
//! plan review rounds and revisions, code review cycles, the findings ledger, escalations,
//! failed and hung reviews, and runs without Codex.

use std::path::{Path, PathBuf};

use orchestrator_tests::{Sandbox, bins::bins};
use serde_json::{Value, json};

use crate::execution::{task, wait_final};

fn plan(summary: &str, tasks: Vec<Value>) -> Value {
    json!({"summary": summary, "tasks": tasks})
}

/// Starts a run whose planner sessions submit `plans` in turn and whose fake codex follows
/// the two scripts; returns the plans file (the planner's prompts are kept beside it).
fn start(
    sb: &Sandbox,
    repo: &Path,
    plans: Vec<Value>,
    codex_plan: &str,
    codex_code: &str,
    args: &[&str],
) -> PathBuf {
    let file = sb.root().join("plans.json");
    std::fs::write(&file, Value::Array(plans).to_string()).expect("write plans");
    let script = format!("plan:{}", file.display());
    let codex = bins().fake_codex.display().to_string();
    let mut argv = vec!["start", "Store things"];
    argv.extend_from_slice(args);
    sb.orchestrate_env(
        repo,
        &argv,
        &[
            ("CLAUDE_FAKE_SCRIPT", &script),
            ("ORCHESTRATOR_CODEX_BIN", &codex),
            ("CODEX_FAKE_PLAN", codex_plan),
            ("CODEX_FAKE_CODE", codex_code),
        ],
    )
    .ok();
    file
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .expect("json")
}

fn reviews_dir(repo: &Path) -> PathBuf {
    repo.join(".orchestrator/codex-reviews")
}

/// The review folders, in order.
fn review_names(repo: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(reviews_dir(repo))
        .expect("codex-reviews")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn log(sb: &Sandbox, repo: &Path) -> String {
    sb.orchestrate_in(repo, &["log", "-n", "1000"]).ok().stdout
}

#[test]
fn plan_concerns_are_revised_by_the_planner_then_the_code_is_approved() {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    let plans = start(
        &sb,
        &repo,
        vec![
            plan("v1", vec![task("store", &[], &["src/store.rs"])]),
            plan(
                "v2: storage split",
                vec![
                    task("schema", &[], &["src/schema.rs"]),
                    task("store", &["schema"], &["src/store.rs"]),
                ],
            ),
        ],
        "concern,approve",
        "approve",
        &[],
    );
    let run = wait_final(&sb, &repo);
    let log = log(&sb, &repo);
    assert_eq!(run["status"], "completed", "{run}\n{log}");
    assert_eq!(
        run["progress"]["tasks"], 2,
        "v1's task made way for v2's: {run}"
    );
    assert_eq!(run["progress"]["merged"], 2, "{run}");
    assert_eq!(
        run["progress"]["sessions"], 7,
        "two planners, three reviews, two workers: {run}"
    );
    assert!(
        run["status_reason"]
            .as_str()
            .unwrap_or("")
            .contains("Codex approved the code"),
        "{run}"
    );
    assert_eq!(
        review_names(&repo),
        ["001-plan-c1", "002-plan-c1", "003-code-c1"]
    );
    let first = read_json(&reviews_dir(&repo).join("001-plan-c1/verdict.json"));
    assert_eq!(first["findings"][0]["id"], "P1", "{first}");
    assert_eq!(first["findings"][0]["blocking"], true, "{first}");
    for kept in ["prompt.md", "schema.json", "attempt-1/stdout.jsonl"] {
        assert!(
            reviews_dir(&repo).join("001-plan-c1").join(kept).exists(),
            "{kept}"
        );
    }
    let ledger = read_json(&reviews_dir(&repo).join("ledger-plan.json"));
    assert_eq!(ledger["findings"][0]["status"], "resolved", "{ledger}");
    let revision =
        std::fs::read_to_string(format!("{}.prompt-1", plans.display())).expect("prompt");
    assert!(
        revision.contains("Split the storage task") && revision.contains("plan v1"),
        "the planner is told the concerns: {revision}"
    );
    assert!(repo.join(".orchestrator/plan-v2.md").exists());
    assert!(log.contains("revises plan v1"), "{log}");
    assert!(
        !repo.join(".orchestrator/tasks/schema.json").exists()
            || read_json(&repo.join(".orchestrator/tasks/schema.json"))["status"] == "merged"
    );
}

#[test]
fn blocking_findings_start_a_second_cycle_which_fixes_them() {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    let plans = start(
        &sb,
        &repo,
        vec![
            plan("v1", vec![task("a", &[], &["src/a.rs"])]),
            plan("fixes", vec![task("fix1", &[], &["src/a_errors.rs"])]),
        ],
        "approve",
        "finding,minor",
        &["--max-cycles", "3"],
    );
    let run = wait_final(&sb, &repo);
    let log = log(&sb, &repo);
    assert_eq!(run["status"], "completed", "{run}\n{log}");
    assert_eq!(run["cycle"], 2, "{run}");
    assert_eq!(
        (
            run["progress"]["tasks"].as_u64(),
            run["progress"]["merged"].as_u64()
        ),
        (Some(2), Some(2)),
        "{run}"
    );
    let reason = run["status_reason"].as_str().unwrap_or("");
    assert!(
        reason.contains("Codex approved the code") && reason.contains("F2"),
        "the nit is named: {reason}"
    );
    // The cost ledger: by cycle, by task, and for the project.
    let cycles: Vec<u64> = run["progress"]["cycles"]
        .as_array()
        .expect("cycles")
        .iter()
        .filter_map(|c| c["cycle"].as_u64())
        .collect();
    assert_eq!(cycles, [1, 2], "{run}");
    let fix: Value = read_json(&repo.join(".orchestrator/tasks/fix1.json"));
    let api = sb.get(&format!(
        "/v1/runs/{}/tasks",
        run["id"].as_str().expect("id")
    ));
    assert_eq!(
        fix["cost_usd"],
        0.002,
        "one worker session: {fix}\n{}",
        String::from_utf8_lossy(&api.body)
    );
    assert_eq!(
        run["progress"]["project_cost_usd"], run["progress"]["cost_usd"],
        "one run in this project: {run}"
    );
    let human = sb.orchestrate_in(&repo, &["status"]).ok().stdout;
    assert!(
        human.contains("cost       cycle 1 $") && human.contains("· cycle 2 $"),
        "{human}"
    );
    assert_eq!(
        review_names(&repo),
        ["001-plan-c1", "002-code-c1", "003-code-c2"]
    );
    let brief = std::fs::read_to_string(format!("{}.prompt-1", plans.display())).expect("prompt");
    assert!(
        brief.contains("Cycle 2")
            && brief.contains("F1 [P1] Missing error handling")
            && brief.contains("taken (a)"),
        "the follow-up planner gets the findings: {brief}"
    );
    let branch = run["branch"].as_str().expect("branch");
    let files = sb.git(&repo, &["ls-tree", "-r", "--name-only", branch]);
    assert!(files.contains("src/a_errors.rs"), "{files}");
    let ledger = read_json(&reviews_dir(&repo).join("ledger-code.json"));
    assert_eq!(
        ledger["findings"],
        json!([
            {"id": "F1", "priority": "P1", "blocking": true, "title": "Missing error handling",
             "body": "Missing error handling: fix it.", "location": "src/a.rs:1", "raised": 1,
             "status": "resolved"},
            {"id": "F2", "priority": "P3", "blocking": false, "title": "Naming nit",
             "body": "Naming nit: fix it.", "location": null, "raised": 1, "status": "open"}
        ])
    );
    // The same ledger and reviews through the API (the dashboard's cycles), and every session
    // as a span of time (its timeline).
    let id = run["id"].as_str().expect("id");
    let api = sb.get(&format!("/v1/runs/{id}/reviews")).json();
    let reviews: Vec<(String, u64, String)> = api["reviews"]
        .as_array()
        .expect("reviews")
        .iter()
        .map(|r| {
            (
                r["kind"].as_str().unwrap_or("").to_owned(),
                r["cycle"].as_u64().unwrap_or(0),
                r["outcome"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    assert_eq!(
        reviews,
        [
            ("plan".into(), 1, "approved".into()),
            ("code".into(), 1, "changes".into()),
            ("code".into(), 2, "approved".into())
        ],
        "{api}"
    );
    let findings: Vec<(&str, &str, bool)> = api["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .map(|f| {
            (
                f["id"].as_str().unwrap_or(""),
                f["status"].as_str().unwrap_or(""),
                f["blocking"] == true,
            )
        })
        .collect();
    assert_eq!(
        findings,
        [("F1", "resolved", true), ("F2", "open", false)],
        "{api}"
    );
    let spans = sb.get(&format!("/v1/runs/{id}/sessions")).json();
    let spans = spans["sessions"].as_array().expect("sessions");
    let workers: Vec<&str> = spans
        .iter()
        .filter(|s| s["role"] == "worker")
        .filter_map(|s| s["task"].as_str())
        .collect();
    assert_eq!(workers, ["a", "fix1"], "{spans:?}");
    assert!(
        spans
            .iter()
            .all(|s| s["ended_at"].is_string() && s.get("token").is_none()),
        "{spans:?}"
    );
}

#[test]
fn a_finding_raised_after_two_fix_cycles_escalates_with_the_evidence() {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    start(
        &sb,
        &repo,
        vec![
            plan("v1", vec![task("a", &[], &["src/a.rs"])]),
            plan("fix", vec![task("fix1", &[], &["src/fix1.rs"])]),
            plan("fix again", vec![task("fix2", &[], &["src/fix2.rs"])]),
        ],
        "approve",
        "finding",
        &["--max-cycles", "5"],
    );
    let run = wait_final(&sb, &repo);
    let log = log(&sb, &repo);
    assert_eq!(run["status"], "escalated", "{run}\n{log}");
    assert_eq!(run["cycle"], 3, "{run}");
    let esc = sb.orchestrate(&["escalations", "--json"]).ok().json();
    let e = &esc["escalations"][0];
    assert_eq!(e["kind"], "review_not_converging", "{esc}");
    let evidence = e["context"].as_str().unwrap_or("");
    assert!(
        evidence.contains("F1") && evidence.contains("raised by 3 reviews despite 2 fix cycles"),
        "{evidence}"
    );
    let file = read_json(&repo.join(".orchestrator/escalation.json"));
    assert_eq!(
        file["escalations"][0]["kind"], "review_not_converging",
        "{file}"
    );
    let ledger = read_json(&reviews_dir(&repo).join("ledger-code.json"));
    assert_eq!(ledger["findings"][0]["raised"], 3, "{ledger}");
    assert!(sb.agent_processes().is_empty(), "nothing left running");
}

#[test]
fn max_cycles_escalates_and_the_answer_runs_one_more_cycle_to_completion() {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    let plans = start(
        &sb,
        &repo,
        vec![
            plan("v1", vec![task("a", &[], &["src/a.rs"])]),
            plan("fix", vec![task("fix1", &[], &["src/fix1.rs"])]),
            plan("bound it", vec![task("fix2", &[], &["src/fix2.rs"])]),
        ],
        "approve",
        "finding,other,approve",
        &["--max-cycles", "2"],
    );
    let run = wait_final(&sb, &repo);
    assert_eq!(run["status"], "escalated", "{run}\n{}", log(&sb, &repo));
    let esc = sb.orchestrate(&["escalations", "--json"]).ok().json();
    assert_eq!(esc["escalations"][0]["kind"], "max_cycles", "{esc}");
    assert!(
        esc["escalations"][0]["question"]
            .as_str()
            .unwrap_or("")
            .contains("F2"),
        "{esc}"
    );

    // By the run's id, from anywhere.
    let id = run["id"].as_str().expect("id");
    let out = sb
        .orchestrate(&["answer", id, "Bound the input to 1 MiB"])
        .ok();
    assert!(out.stdout.contains("Answered escalation #1"), "{out}");
    let again = sb.orchestrate(&["answer", id, "twice"]).fails_with(2);
    assert!(
        again
            .stderr
            .contains(&format!("no escalation is waiting in run {id}")),
        "{again}"
    );
    let run = wait_final(&sb, &repo);
    assert_eq!(run["status"], "completed", "{run}\n{}", log(&sb, &repo));
    assert_eq!(run["cycle"], 3, "{run}");
    let brief = std::fs::read_to_string(format!("{}.prompt-2", plans.display())).expect("prompt");
    assert!(
        brief.contains("F2 [P0] Unbounded input") && brief.contains("Bound the input to 1 MiB"),
        "the third cycle's planner gets the finding and the guidance: {brief}"
    );
    let context =
        std::fs::read_to_string(repo.join(".orchestrator/context.md")).expect("context.md");
    assert!(context.contains("Bound the input to 1 MiB"), "{context}");
}

#[test]
fn hung_and_malformed_reviews_are_retried_once_then_recorded_not_fatal() {
    let sb = Sandbox::new();
    std::fs::write(sb.config_file(), "[codex]\ntimeout_secs = 1\n").expect("config");
    let repo = sb.repo("app");
    start(
        &sb,
        &repo,
        vec![plan("v1", vec![task("a", &[], &["src/a.rs"])])],
        "hang",
        "malformed,approve",
        &[],
    );
    let run = wait_final(&sb, &repo);
    let log = log(&sb, &repo);
    assert_eq!(run["status"], "completed", "{run}\n{log}");
    assert!(
        log.contains("Codex plan review failed after 2 attempts")
            && log.contains("no verdict within 1 s"),
        "{log}"
    );
    assert!(
        log.contains("Codex code review attempt 1 of 2 failed")
            && log.contains("not a verdict of the requested schema"),
        "{log}"
    );
    assert!(
        run["status_reason"]
            .as_str()
            .unwrap_or("")
            .contains("Codex approved the code"),
        "{run}"
    );
    assert!(sb.agent_processes().is_empty(), "the hung codex is gone");
}

#[test]
fn without_codex_the_reviews_are_skipped_and_the_run_says_why() {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    start(
        &sb,
        &repo,
        vec![plan("v1", vec![task("a", &[], &["src/a.rs"])])],
        "concern",
        "finding",
        &["--skip-codex"],
    );
    let run = wait_final(&sb, &repo);
    let log = log(&sb, &repo);
    assert_eq!(run["status"], "completed", "{run}\n{log}");
    assert!(
        log.contains("Codex plan review skipped (--skip-codex)")
            && log.contains("Codex code review skipped (--skip-codex)"),
        "{log}"
    );
    assert!(!reviews_dir(&repo).join("001-plan-c1").exists());

    // Not installed: a fresh daemon, and the sandbox's PATH has no codex.
    drop(sb);
    let sb = Sandbox::new();
    let other = sb.repo("other");
    let file = sb.root().join("one.json");
    std::fs::write(
        &file,
        plan("v1", vec![task("a", &[], &["src/a.rs"])]).to_string(),
    )
    .expect("write");
    sb.orchestrate_env(
        &other,
        &["start", "Store things"],
        &[("CLAUDE_FAKE_SCRIPT", &format!("plan:{}", file.display()))],
    )
    .ok();
    let run = wait_final(&sb, &other);
    let log = sb
        .orchestrate_in(&other, &["log", "-n", "1000"])
        .ok()
        .stdout;
    assert_eq!(run["status"], "completed", "{run}\n{log}");
    assert!(
        log.contains("Codex plan review skipped: codex is not on your PATH")
            && log.contains("--skip-codex"),
        "{log}"
    );
}
