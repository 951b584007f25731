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

/// A 1 MB `--context-file` reaches the planner (it used to fail every planner with `Argument
/// list too long`), and no prompt is ever in an agent's argv, where `ps` shows it to every
/// local user: it goes on stdin, from a file only its owner can read.
#[test]
fn a_one_megabyte_context_reaches_the_planner_on_stdin_never_in_argv() {
    use std::os::unix::fs::PermissionsExt;
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    // A list of plans: the fake planner then keeps each session's prompt beside the file.
    let one: Value = serde_json::from_str(&read(Path::new(&plan_file(&sb)))).expect("plan");
    let plans = sb.root().join("plans.json");
    std::fs::write(&plans, json!([one]).to_string()).expect("write");
    let script = format!("plan:{}", plans.display());
    let context = sb.root().join("context.md");
    let marker = "CONTEXT-MARKER-7f3a";
    let body: String =
        std::iter::repeat_n("requirement: the widget must be blue.\n", 27_000).collect();
    std::fs::write(&context, format!("# Context\n{marker}\n{body}")).expect("write");
    assert!(std::fs::metadata(&context).expect("size").len() > 1_000_000);
    sb.orchestrate_env(
        &repo,
        &[
            "start",
            "Widget",
            "--dry-run",
            "--context-file",
            &context.display().to_string(),
        ],
        &[("CLAUDE_FAKE_SCRIPT", &script)],
    )
    .ok();
    wait_status(&sb, &repo, "planned");
    let seen = read(Path::new(&format!("{}.prompt-0", plans.display())));
    assert!(
        seen.contains(marker) && seen.len() > 1_000_000,
        "the planner got it all"
    );
    let sessions = repo.join(".orchestrator/sessions");
    let prompts: Vec<_> = std::fs::read_dir(&sessions)
        .expect("sessions")
        .flatten()
        .map(|e| e.path().join("prompt.md"))
        .filter(|p| p.exists())
        .collect();
    assert_eq!(prompts.len(), 1, "{prompts:?}");
    let mode = std::fs::metadata(&prompts[0])
        .expect("stat")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    // The daemon's command line for claude carries no prompt (checked on the real process in
    // agents::claude's unit test; here: nothing in this sandbox has the marker in its argv).
    for e in std::fs::read_dir("/proc").expect("proc").flatten() {
        if let Ok(c) = std::fs::read(e.path().join("cmdline")) {
            assert!(
                !String::from_utf8_lossy(&c).contains(marker),
                "a prompt in argv"
            );
        }
    }
}

#[test]
fn a_second_plan_from_the_same_planner_supersedes_the_first_before_any_of_it_runs() {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    let script = format!("two-plans:{}", plan_file(&sb));
    sb.orchestrate_env(
        &repo,
        &["start", "Widget"],
        &[("CLAUDE_FAKE_SCRIPT", &script)],
    )
    .ok();
    let run = wait_status(&sb, &repo, "completed");
    let id = run["id"].as_str().expect("id");
    let tasks = sb.get(&format!("/v1/runs/{id}/tasks")).json();
    let mut ids: Vec<&str> = tasks["tasks"]
        .as_array()
        .unwrap_or_else(|| panic!("tasks: {tasks}"))
        .iter()
        .map(|t| t["id"].as_str().expect("id"))
        .collect();
    ids.sort_unstable();
    assert_eq!(ids, ["api", "ui"], "only the later plan's tasks: {run}");
    let branch = run["branch"].as_str().expect("branch");
    let files = sb.git(&repo, &["ls-tree", "-r", "--name-only", branch]);
    assert!(
        files.contains("src/api.rs") && files.contains("src/ui.rs"),
        "{files}"
    );
    assert!(
        !files.contains("draft"),
        "nothing of the draft ran: {files}"
    );
    let tasks = repo.join(".orchestrator/tasks");
    assert!(
        !tasks.join("draft.json").exists(),
        "the draft's task file is gone"
    );
    let log = sb.orchestrate_in(&repo, &["log"]).ok().stdout;
    assert!(
        log.contains("Plan v2 supersedes v1 from the same planner (2 tasks dropped"),
        "{log}"
    );
}
