//! The planning phase with the fast tier's fake claude: a planner session in its own worktree
//! submits the plan over MCP; retries; failures; dry-run; pause stops the planner.

use std::path::Path;

use orchestrator_tests::{Sandbox, wait};
use serde_json::{Value, json};

fn plan_file(sb: &Sandbox) -> String {
    let plan = json!({"summary": "Two steps", "tasks": [
        {"id": "api", "title": "Add the API", "description": "Write src/api.rs",
         "acceptance_criteria": ["GET /x works"], "files": ["src/api.rs"]},
        {"id": "ui", "title": "Add the UI", "description": "Write src/ui.rs",
         "acceptance_criteria": ["the button shows"], "depends_on": ["api"], "files": ["src/ui.rs"]}
    ]});
    let path = sb.root().join("plan.json");
    std::fs::write(&path, plan.to_string()).expect("write plan");
    path.display().to_string()
}

fn wait_status(sb: &Sandbox, repo: &Path, want: &str) -> Value {
    wait::until(&format!("the run to be {want}"), wait::DEADLINE, || {
        let s = sb.orchestrate_in(repo, &["status", "--json"]).ok().json();
        (s["status"] == want).then_some(s)
    })
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

#[test]
fn a_dry_run_plans_in_a_throwaway_worktree_and_stops_planned() {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    let script = format!("plan:{}", plan_file(&sb));
    let before = sb.git(&repo, &["status", "--porcelain"]);
    sb.orchestrate_env(
        &repo,
        &["start", "Widget", "--dry-run"],
        &[("CLAUDE_FAKE_SCRIPT", &script)],
    )
    .ok();
    let run = wait_status(&sb, &repo, "planned");
    assert!(
        run["status_reason"]
            .as_str()
            .unwrap_or("")
            .contains("plan-v1.md"),
        "{run}"
    );

    let m = repo.join(".orchestrator");
    let plan = read(&m.join("plan-v1.md"));
    assert!(
        plan.contains("## api — Add the API") && plan.contains("Depends on: api"),
        "{plan}"
    );
    let ui: Value = serde_json::from_str(&read(&m.join("tasks/ui.json"))).expect("ui.json");
    assert_eq!(ui["depends_on"], json!(["api"]));
    // The planner's output was kept, and its worktree is gone again.
    let sessions: Vec<_> = std::fs::read_dir(m.join("sessions"))
        .expect("sessions")
        .flatten()
        .collect();
    assert_eq!(sessions.len(), 1);
    let stdout = read(&sessions[0].path().join("stdout.jsonl"));
    assert!(
        stdout.contains("\"subtype\":\"init\"") && stdout.contains("\"type\":\"result\""),
        "{stdout}"
    );
    assert_eq!(
        sb.git(&repo, &["worktree", "list"]).lines().count(),
        1,
        "only the user's checkout"
    );
    assert_eq!(
        sb.git(&repo, &["status", "--porcelain"]),
        before,
        "checkout untouched"
    );
    assert_eq!(sb.git(&repo, &["symbolic-ref", "HEAD"]), "refs/heads/main");
    let log = sb.orchestrate_in(&repo, &["log"]).ok().stdout;
    for needle in [
        "Planner session",
        "attempt 1 of 3",
        "Plan v1 submitted with 2 tasks",
        "planned",
    ] {
        assert!(log.contains(needle), "log mentions {needle:?}:\n{log}");
    }
    assert!(sb.agent_processes().is_empty(), "the planner exited");
}

#[test]
fn a_refused_plan_is_fixed_by_the_planner_in_the_same_session() {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    let script = format!("invalid-then-plan:{}", plan_file(&sb));
    sb.orchestrate_env(
        &repo,
        &["start", "Widget", "--dry-run"],
        &[("CLAUDE_FAKE_SCRIPT", &script)],
    )
    .ok();
    wait_status(&sb, &repo, "planned");
    let log = sb.orchestrate_in(&repo, &["log"]).ok().stdout;
    assert!(
        log.contains("attempt 1 of 3") && !log.contains("attempt 2 of 3"),
        "{log}"
    );
}

#[test]
fn a_planner_that_never_plans_is_retried_then_the_run_escalates_with_the_reason() {
    for (script, reason) in [
        ("exit", "ended without submitting a valid plan"),
        ("crash", "exited (code 3) without a result"),
    ] {
        let sb = Sandbox::new();
        let repo = sb.repo("app");
        sb.orchestrate_env(
            &repo,
            &["start", "Widget"],
            &[("CLAUDE_FAKE_SCRIPT", script)],
        )
        .ok();
        let run = wait_status(&sb, &repo, "escalated");
        assert!(
            run["status_reason"]
                .as_str()
                .unwrap_or("")
                .contains("orchestrate answer"),
            "{run}"
        );
        let esc = sb.orchestrate(&["escalations", "--json"]).ok().json();
        let why = esc["escalations"][0]["question"].as_str().unwrap_or("");
        assert!(
            why.contains("no plan after 3 planner sessions") && why.contains(reason),
            "{script}: {why}"
        );
        let log = sb.orchestrate_in(&repo, &["log"]).ok().stdout;
        assert!(log.contains("attempt 3 of 3"), "{log}");
        assert_eq!(sb.git(&repo, &["worktree", "list"]).lines().count(), 1);
    }
}

#[test]
fn pausing_stops_the_planner_and_resuming_plans_again() {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    sb.orchestrate_in(&repo, &["start", "Widget"]).ok(); // the fake idles
    wait::until("the planner to start", wait::DEADLINE, || {
        (!sb.agent_processes().is_empty()).then_some(())
    });
    sb.orchestrate_in(&repo, &["pause"]).ok();
    wait::until("the planner to be stopped", wait::DEADLINE, || {
        sb.agent_processes().is_empty().then_some(())
    });
    let log = wait::until("the session to end", wait::DEADLINE, || {
        let log = sb.orchestrate_in(&repo, &["log"]).ok().stdout;
        log.contains("token is revoked").then_some(log)
    });
    assert!(log.contains("paused by the user"), "{log}");
    sb.orchestrate_in(&repo, &["resume"]).ok();
    wait::until("a new planner", wait::DEADLINE, || {
        (!sb.agent_processes().is_empty()).then_some(())
    });
    sb.orchestrate_in(&repo, &["cancel"]).ok();
    wait::until("the planner to be stopped", wait::DEADLINE, || {
        sb.agent_processes().is_empty().then_some(())
    });
}

#[test]
fn start_refuses_when_claude_cannot_be_found() {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    let out = sb
        .orchestrate_env(
            &repo,
            &["start", "Widget"],
            &[("ORCHESTRATOR_CLAUDE_BIN", "/nonexistent/claude")],
        )
        .fails_with(2);
    assert!(
        out.stderr.contains("ORCHESTRATOR_CLAUDE_BIN")
            && out.stderr.contains("/nonexistent/claude"),
        "{out}"
    );
    let list = sb.orchestrate(&["list", "--json"]).ok().json();
    assert_eq!(list["runs"], json!([]), "nothing created");
}
