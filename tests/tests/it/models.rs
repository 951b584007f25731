//! Models and effort per role and per task: `start`'s flags reach the real claude's requests
//! (the fake model API sees each session's `model` and `output_config.effort`), the planner's
//! per-task choice is limited to what the run allows, a project's next run keeps them, and
//! the run's spend is summed per model.

use orchestrator_tests::{Sandbox, deps};
use serde_json::{Value, json};

use crate::real_claude::{daemon_env, greeting_model};

/// Which (model, effort) the fake API saw for requests whose text contains `marker`.
fn seen(requests: &[Value], marker: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = requests
        .iter()
        .filter(|r| r.to_string().contains(marker))
        .map(|r| {
            (
                r["model"].as_str().unwrap_or("").to_owned(),
                r["output_config"]["effort"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned(),
            )
        })
        .collect();
    out.dedup();
    out
}

#[test]
fn each_role_and_task_runs_its_own_model_and_effort_with_the_real_claude() {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    let plan = json!({"summary": "Greeting in two steps", "tasks": [
        {"id": "lib", "title": "Write greet.txt", "description": "Create greet.txt saying hello",
         "acceptance_criteria": ["greet.txt says hello"], "files": ["greet.txt"],
         "model": "claude-fake-special", "effort": "low"},
        {"id": "cli", "title": "Write main.txt", "description": "Create main.txt that uses greet",
         "acceptance_criteria": ["main.txt mentions greet"], "depends_on": ["lib"], "files": ["main.txt"]}
    ]});
    let fake = greeting_model(plan);
    let claude = deps::claude();
    let claude = claude.to_str().expect("utf-8 path");
    let mut env = daemon_env(claude, &fake.url);
    // A forwarded effort would beat --effort in claude; the run's choice must win.
    env.push(("CLAUDE_CODE_EFFORT_LEVEL", "max"));
    let started = sb
        .orchestrate_env(
            &repo,
            &[
                "start",
                "Add a greeting",
                "--planner-model",
                "claude-fake-planner",
                "--worker-model",
                "claude-fake-worker",
                "--effort",
                "high",
                "--allow-model",
                "claude-fake-special",
            ],
            &env,
        )
        .ok()
        .stdout;
    assert!(
        started.contains("models:  planner claude-fake-planner · workers claude-fake-worker · effort high · also allowed claude-fake-special"),
        "{started}"
    );
    let run = crate::real_failures::wait_final(&sb, &repo);
    let log = sb.orchestrate_in(&repo, &["log", "-n", "200"]).ok().stdout;
    assert_eq!(run["status"], "completed", "{run}\n{log}");
    let requests = fake.requests();
    let pair = |m: &str, e: &str| vec![(m.to_owned(), e.to_owned())];
    assert_eq!(
        seen(&requests, "You are the planner"),
        pair("claude-fake-planner", "high")
    );
    assert_eq!(
        seen(&requests, "Your task: lib"),
        pair("claude-fake-special", "low"),
        "the plan's model and effort for lib"
    );
    assert_eq!(
        seen(&requests, "Your task: cli"),
        pair("claude-fake-worker", "high"),
        "the run's worker model for cli"
    );
    // The planner was told what it may choose.
    assert!(
        requests.iter().any(|r| r
            .to_string()
            .contains("one of: claude-fake-worker, claude-fake-planner, claude-fake-special")),
        "the planner's prompt lists the allowed models"
    );
    // Spend per model, from each session's init line.
    let by_model: Vec<&str> = run["progress"]["models"]
        .as_array()
        .expect("models")
        .iter()
        .filter_map(|m| m["model"].as_str())
        .collect();
    for m in [
        "claude-fake-planner",
        "claude-fake-special",
        "claude-fake-worker",
    ] {
        assert!(by_model.contains(&m), "{m} in {by_model:?}");
    }
    let tasks = sb.orchestrate_in(&repo, &["status", "--json"]).ok().json();
    let mirrored: Value = serde_json::from_str(
        &std::fs::read_to_string(repo.join(".orchestrator/tasks/lib.json")).expect("lib.json"),
    )
    .expect("json");
    assert_eq!(mirrored["model"], "claude-fake-special", "{tasks}");
    assert_eq!(mirrored["effort"], "low");
    let status = sb.orchestrate_in(&repo, &["status"]).ok().stdout;
    assert!(status.contains("  by model   "), "{status}");
    ledger_sums_by_model(&sb, &repo, &run);
}

/// `orchestrate cost`: each task's spend is its own model's; the run's rows sum to the run's
/// cost, and the project's (one run) to the same.
fn ledger_sums_by_model(sb: &Sandbox, repo: &std::path::Path, run: &Value) {
    let ledger = sb.orchestrate_in(repo, &["cost", "--json"]).ok().json();
    let rows = ledger["rows"].as_array().expect("rows").clone();
    let of = |scope: &str, key: Option<&str>| -> Vec<(String, f64)> {
        rows.iter()
            .filter(|r| r["scope"] == scope && r["key"].as_str() == key)
            .map(|r| {
                let m = r["model"].as_str().unwrap_or("unknown").to_owned();
                (m, r["cost_usd"].as_f64().unwrap_or(-1.0))
            })
            .collect()
    };
    let lib = of("task", Some("lib"));
    assert_eq!(lib.len(), 1, "{ledger}");
    assert!(
        lib[0].0 == "claude-fake-special" && lib[0].1 > 0.0,
        "{ledger}"
    );
    assert_eq!(
        of("task", Some("cli"))[0].0,
        "claude-fake-worker",
        "{ledger}"
    );
    let total = |v: Vec<(String, f64)>| v.iter().map(|(_, c)| c).sum::<f64>();
    let run_cost = run["progress"]["cost_usd"].as_f64().expect("cost");
    assert!(
        (total(of("run", None)) - run_cost).abs() < 1e-9,
        "{ledger}\n{run}"
    );
    assert!(
        (total(of("project", None)) - run_cost).abs() < 1e-9,
        "{ledger}"
    );
    assert_eq!(of("run", None).len(), 3, "three models: {ledger}");
    let text = sb.orchestrate_in(repo, &["cost"]).ok().stdout;
    assert!(
        text.contains("task lib")
            && text.contains("claude-fake-special")
            && text.contains("project"),
        "{text}"
    );
}

/// A plan naming a model the run does not allow is refused with the allowed ones; a run
/// started without model flags takes the previous run's; a bad effort is refused by start.
#[test]
fn a_plan_may_only_choose_allowed_models_and_a_project_keeps_its_models() {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    let run = sb
        .orchestrate_in(
            &repo,
            &["start", "One", "--dry-run", "--model", "sonnet", "--json"],
        )
        .ok()
        .json();
    let id = run["id"].as_str().expect("id").to_owned();
    assert_eq!(run["options"]["models"]["planner"], "sonnet", "{run}");
    assert_eq!(run["options"]["models"]["worker"], "sonnet", "{run}");
    let planner = sb.session(&id, "planner");
    let task = |model: &str| {
        json!({"summary": "One", "tasks": [{"id": "a", "title": "A", "description": "Do a",
               "acceptance_criteria": ["a"], "model": model}]})
    };
    let refused = planner.refused("submit_plan", task("opus"));
    assert!(
        refused.contains("model \"opus\" is not one this run allows (sonnet)"),
        "{refused}"
    );
    planner.ok("submit_plan", task("sonnet"));
    sb.orchestrate_in(&repo, &["cancel"]).ok();
    let next = sb
        .orchestrate_in(&repo, &["start", "Two", "--dry-run", "--json"])
        .ok()
        .json();
    assert_eq!(
        next["options"]["models"]["worker"], "sonnet",
        "kept: {next}"
    );
    sb.orchestrate_in(&repo, &["cancel"]).ok();
    let bad = sb
        .orchestrate_in(&repo, &["start", "Three", "--effort", "huge"])
        .fails_with(2)
        .stderr;
    assert!(bad.contains("low, medium, high, xhigh, max"), "{bad}");
}
