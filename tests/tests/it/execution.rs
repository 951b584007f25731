//! Whole runs with the fast tier's fake claude: plan, parallel workers in worktrees, the merge
//! queue, retries and conflicts, dry-run then resume.

use std::path::Path;

use orchestrator_tests::{Sandbox, wait};
use serde_json::{Value, json};

pub(crate) fn task(id: &str, deps: &[&str], files: &[&str]) -> Value {
    json!({"id": id, "title": format!("Build {id}"), "description": format!("Write {files:?}"),
           "acceptance_criteria": [format!("{id} exists")], "depends_on": deps, "files": files})
}

pub(crate) fn write_plan(sb: &Sandbox, tasks: Vec<Value>) -> String {
    let path = sb.root().join("plan.json");
    std::fs::write(
        &path,
        json!({"summary": "The plan", "tasks": tasks}).to_string(),
    )
    .expect("write");
    format!("plan:{}", path.display())
}

fn dag() -> Vec<Value> {
    vec![
        task("a", &[], &["src/a.rs"]),
        task("b", &["a"], &["src/b.rs"]),
        task("c", &["a"], &["src/c.rs"]),
        task("d", &["b", "c"], &["src/d.rs"]),
        task("e", &[], &["docs/e.md"]),
        task("f", &[], &["docs/f.md"]),
    ]
}

pub(crate) fn wait_final(sb: &Sandbox, repo: &Path) -> Value {
    wait::until(
        "the run to finish",
        std::time::Duration::from_secs(120),
        || {
            let s = sb.orchestrate_in(repo, &["status", "--json"]).ok().json();
            let st = s["status"].as_str().unwrap_or("");
            matches!(st, "completed" | "failed" | "planned" | "escalated").then_some(s)
        },
    )
}

/// Task ids in the order their merges landed on `branch`.
fn merge_order(sb: &Sandbox, repo: &Path, branch: &str) -> Vec<String> {
    let log = sb.git(
        repo,
        &["log", "--merges", "--reverse", "--format=%s", branch],
    );
    log.lines()
        .filter_map(|l| l.strip_prefix("Merge task "))
        .map(|l| l.split(':').next().unwrap_or("").to_owned())
        .collect()
}

/// A `post-checkout` hook in `repo` that runs `body` for the worktrees of branches matching
/// `branch` (a shell pattern), as the daemon's `git worktree add` checks them out.
fn post_checkout_hook(repo: &Path, branch: &str, body: &str) {
    let hook = repo.join(".git/hooks/post-checkout");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\ncase \"$(git rev-parse --abbrev-ref HEAD)\" in {branch}) {body};; esac\n"
        ),
    )
    .expect("hook");
    std::fs::set_permissions(&hook, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
}

/// The run's log once it says `needle`.
fn log_saying(sb: &Sandbox, repo: &Path, what: &str, needle: &str) -> String {
    wait::until(what, wait::DEADLINE, || {
        let log = sb.orchestrate_in(repo, &["log", "-n", "500"]).ok().stdout;
        log.contains(needle).then_some(log)
    })
}

fn run_to_completion(concurrency: &str) {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    let plan = write_plan(&sb, dag());
    let before = sb.git(&repo, &["status", "--porcelain"]);
    sb.orchestrate_env(
        &repo,
        &["start", "Six parts", "--concurrency", concurrency],
        &[("CLAUDE_FAKE_SCRIPT", &plan)],
    )
    .ok();
    let run = wait_final(&sb, &repo);
    let log = sb.orchestrate_in(&repo, &["log", "-n", "500"]).ok().stdout;
    assert_eq!(run["status"], "completed", "{run}\n{log}");
    let p = &run["progress"];
    assert_eq!(
        (p["tasks"].as_u64(), p["merged"].as_u64()),
        (Some(6), Some(6)),
        "{run}"
    );
    assert_eq!(p["sessions"], 7, "a planner and six workers: {run}");
    assert!(
        p["cost_usd"].as_f64().unwrap_or(0.0) > 0.0
            && p["input_tokens"].as_u64().unwrap_or(0) >= 1900,
        "{run}"
    );
    let human = sb.orchestrate_in(&repo, &["status"]).ok().stdout;
    assert!(human.contains("tasks      6 · 6 merged"), "{human}");
    let branch = run["branch"].as_str().expect("branch");
    let order = merge_order(&sb, &repo, branch);
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        vec!["a", "b", "c", "d", "e", "f"],
        "each task merged exactly once: {order:?}"
    );
    let pos = |t: &str| order.iter().position(|x| x == t).expect("merged");
    assert!(pos("a") < pos("b") && pos("a") < pos("c"), "{order:?}");
    assert!(pos("b") < pos("d") && pos("c") < pos("d"), "{order:?}");
    for f in ["src/a.rs", "src/d.rs", "docs/f.md"] {
        let content = sb.git(&repo, &["show", &format!("{branch}:{f}")]);
        assert!(content.starts_with("written by task"), "{f}: {content}");
    }
    assert_eq!(
        sb.git(&repo, &["status", "--porcelain"]),
        before,
        "checkout untouched"
    );
    assert_eq!(sb.git(&repo, &["symbolic-ref", "HEAD"]), "refs/heads/main");
    assert_eq!(
        sb.git(&repo, &["worktree", "list"]).lines().count(),
        1,
        "every worktree removed after its merge"
    );
    assert!(sb.agent_processes().is_empty());
}

#[test]
fn a_full_run_at_concurrency_1_merges_every_task_in_dag_order() {
    run_to_completion("1");
}

#[test]
fn a_full_run_at_concurrency_2_merges_every_task_in_dag_order() {
    run_to_completion("2");
}

#[test]
fn a_full_run_at_concurrency_8_merges_every_task_in_dag_order() {
    run_to_completion("8");
}

#[test]
fn leftovers_are_committed_and_a_worker_that_quits_is_retried() {
    for (worker, needle) in [
        ("work-uncommitted", "left uncommitted"),
        ("flaky", "not completed (attempt 1 of 3)"),
    ] {
        let sb = Sandbox::new();
        let repo = sb.repo("app");
        let plan = write_plan(
            &sb,
            vec![task("a", &[], &["a.txt"]), task("b", &["a"], &["b.txt"])],
        );
        sb.orchestrate_env(
            &repo,
            &["start", "Two parts"],
            &[
                ("CLAUDE_FAKE_SCRIPT", &plan),
                ("CLAUDE_FAKE_WORKER", worker),
            ],
        )
        .ok();
        let run = wait_final(&sb, &repo);
        let log = sb.orchestrate_in(&repo, &["log", "-n", "500"]).ok().stdout;
        assert_eq!(run["status"], "completed", "{worker}: {run}\n{log}");
        let branch = run["branch"].as_str().expect("branch");
        let all = sb.git(&repo, &["log", "--format=%s", branch]);
        assert!(
            log.contains(needle) || all.contains(needle),
            "{worker}: {needle:?} in\n{log}\n{all}"
        );
        assert_eq!(merge_order(&sb, &repo, branch), vec!["a", "b"]);
    }
}

#[test]
fn a_merge_conflict_sends_the_task_back_to_be_redone_on_the_new_tip() {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    // Independent on paper, but both write shared.txt.
    let plan = write_plan(
        &sb,
        vec![task("x", &[], &["x.txt"]), task("y", &[], &["y.txt"])],
    );
    sb.orchestrate_env(
        &repo,
        &["start", "Clash", "--concurrency", "2"],
        &[
            ("CLAUDE_FAKE_SCRIPT", &plan),
            ("CLAUDE_FAKE_WORKER", "work-shared"),
        ],
    )
    .ok();
    let run = wait_final(&sb, &repo);
    let log = sb.orchestrate_in(&repo, &["log", "-n", "500"]).ok().stdout;
    assert_eq!(run["status"], "completed", "{run}\n{log}");
    assert!(
        log.contains("conflicted") && log.contains("shared.txt"),
        "{log}"
    );
    let branch = run["branch"].as_str().expect("branch");
    let mut order = merge_order(&sb, &repo, branch);
    order.sort();
    assert_eq!(order, vec!["x", "y"]);
}

#[test]
fn a_dry_run_plan_is_executed_by_resume() {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    let plan = write_plan(&sb, vec![task("only", &[], &["only.txt"])]);
    sb.orchestrate_env(
        &repo,
        &["start", "One part", "--dry-run"],
        &[("CLAUDE_FAKE_SCRIPT", &plan)],
    )
    .ok();
    assert_eq!(wait_final(&sb, &repo)["status"], "planned");
    sb.orchestrate_env(&repo, &["resume"], &[("CLAUDE_FAKE_WORKER", "work")])
        .ok();
    let run = wait_final(&sb, &repo);
    assert_eq!(run["status"], "completed", "{run}");
    let status = sb.orchestrate_in(&repo, &["status"]).ok().stdout;
    assert!(status.contains("completed"), "{status}");
}

/// A gate that runs long (a real test suite) holds only the merge queue: the slot its worker
/// freed is filled at once, and dependents wait for the merge alone.
#[test]
fn a_long_gate_holds_the_merge_queue_not_the_next_worker() {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    let plan = write_plan(
        &sb,
        vec![
            task("a", &[], &["a.txt"]),
            task("b", &[], &["b.txt"]),
            task("c", &[], &["c.txt"]),
            task("d", &["a", "b", "c"], &["d.txt"]),
        ],
    );
    let (started, release) = (sb.root().join("gate-started"), sb.root().join("release"));
    // The first gate holds until the test releases it; later ones pass at once.
    let gate = format!(
        "touch {s}; while [ ! -f {r} ]; do sleep 0.05; done",
        s = started.display(),
        r = release.display()
    );
    sb.orchestrate_env(
        &repo,
        &["start", "Slow gate", "--gate", &gate, "--concurrency", "2"],
        &[("CLAUDE_FAKE_SCRIPT", &plan)],
    )
    .ok();
    wait::until("the first gate to run", wait::DEADLINE, || {
        started.exists().then_some(())
    });
    // While that gate runs, the third task gets the freed slot; the dependent waits.
    let log = log_saying(
        &sb,
        &repo,
        "a worker started during the gate",
        "Task c dispatched",
    );
    assert!(!release.exists());
    assert!(!log.contains("Task d dispatched"), "{log}");
    assert!(!log.contains("merged into"), "nothing merged yet: {log}");
    std::fs::write(&release, "").expect("release the gate");
    let run = wait_final(&sb, &repo);
    let log = sb.orchestrate_in(&repo, &["log", "-n", "500"]).ok().stdout;
    assert_eq!(run["status"], "completed", "{run}\n{log}");
    let order = merge_order(&sb, &repo, run["branch"].as_str().expect("branch"));
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(sorted, ["a", "b", "c", "d"], "each merged once: {order:?}");
    assert_eq!(order.last().map(String::as_str), Some("d"), "{order:?}");
    assert_eq!(
        sb.git(&repo, &["worktree", "list"]).lines().count(),
        1,
        "every worktree removed after its merge"
    );
}

#[test]
fn a_red_gate_keeps_the_branch_back_and_the_task_is_redone_with_the_output() {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    let plan = write_plan(&sb, vec![task("a", &[], &["a.txt"])]);
    let marker = sb.root().join("gate-ran");
    // Red the first time (with a message the worker must see), green afterwards.
    let gate = format!(
        "if [ -f {m} ]; then exit 0; else touch {m}; echo 'widget test failed: expected 2 got 3'; exit 1; fi",
        m = marker.display()
    );
    sb.orchestrate_env(
        &repo,
        &["start", "Gated", "--gate", &gate],
        &[("CLAUDE_FAKE_SCRIPT", &plan)],
    )
    .ok();
    let run = wait_final(&sb, &repo);
    let log = sb.orchestrate_in(&repo, &["log", "-n", "500"]).ok().stdout;
    assert_eq!(run["status"], "completed", "{run}\n{log}");
    assert!(
        log.contains("the gate") && log.contains("did not advance"),
        "{log}"
    );
    assert!(log.contains("Gate") && log.contains("passed"), "{log}");
    assert!(
        log.contains("expected 2 got 3"),
        "the output is in the log: {log}"
    );
    let mirrored: Value = serde_json::from_str(
        &std::fs::read_to_string(repo.join(".orchestrator/tasks/a.json")).expect("a.json"),
    )
    .expect("json");
    assert_eq!(mirrored["attempts"], 2, "{mirrored}");
    assert_eq!(
        merge_order(&sb, &repo, run["branch"].as_str().expect("branch")),
        vec!["a"],
        "merged once"
    );

    // A gate that never passes fails the run, and the branch never advanced.
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    let plan = write_plan(&sb, vec![task("a", &[], &["a.txt"])]);
    sb.orchestrate_env(
        &repo,
        &["start", "Gated", "--gate", "echo nope; exit 3"],
        &[("CLAUDE_FAKE_SCRIPT", &plan)],
    )
    .ok();
    let run = wait_final(&sb, &repo);
    assert_eq!(run["status"], "escalated", "{run}");
    let esc = sb.orchestrate(&["escalations", "--json"]).ok().json();
    assert!(
        esc["escalations"][0]["question"]
            .as_str()
            .unwrap_or("")
            .contains("exit 3"),
        "{esc}"
    );
    let branch = run["branch"].as_str().expect("branch");
    assert_eq!(
        sb.git(&repo, &["rev-parse", branch]),
        sb.git(&repo, &["rev-parse", "main"]),
        "the branch never advanced"
    );
}

#[test]
fn a_worker_without_the_mcp_tools_is_stopped_and_the_run_fails_with_why() {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    let plan = write_plan(&sb, vec![task("a", &[], &["a.txt"])]);
    sb.orchestrate_env(
        &repo,
        &["start", "No tools"],
        &[
            ("CLAUDE_FAKE_SCRIPT", &plan),
            ("CLAUDE_FAKE_WORKER", "mcp-failed"),
        ],
    )
    .ok();
    let run = wait_final(&sb, &repo);
    assert_eq!(run["status"], "escalated", "{run}");
    let esc = sb.orchestrate(&["escalations", "--json"]).ok().json();
    let why = esc["escalations"][0]["question"].as_str().unwrap_or("");
    assert!(why.contains("MCP server"), "{why}");
    assert!(
        sb.agent_processes().is_empty(),
        "every stopped worker is gone"
    );
}

#[test]
fn a_worker_whose_mcp_server_was_down_at_start_is_retried_and_the_run_completes() {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    let plan = write_plan(&sb, vec![task("a", &[], &["a.txt"])]);
    let once = sb.root().join("mcp-down-once");
    sb.orchestrate_env(
        &repo,
        &["start", "Tools come back"],
        &[
            ("CLAUDE_FAKE_SCRIPT", &plan),
            ("CLAUDE_FAKE_WORKER", "mcp-failed"),
            ("CLAUDE_FAKE_ONCE", &once.display().to_string()),
        ],
    )
    .ok();
    let run = wait_final(&sb, &repo);
    let log = sb.orchestrate_in(&repo, &["log"]).ok().stdout;
    assert_eq!(run["status"], "completed", "{run}\n{log}");
    assert!(
        log.contains("could not reach the orchestrator's MCP server"),
        "{log}"
    );
}

#[test]
fn an_escalated_run_is_answered_from_the_cli_and_completes() {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    let plan = write_plan(&sb, vec![task("a", &[], &["a.txt"])]);
    // Red until a human fixes the environment (creates the marker).
    let marker = sb.root().join("fixed");
    let gate = format!(
        "test -f {} || {{ echo 'database not reachable'; exit 1; }}",
        marker.display()
    );
    sb.orchestrate_env(
        &repo,
        &["start", "Needs a human", "--gate", &gate],
        &[("CLAUDE_FAKE_SCRIPT", &plan)],
    )
    .ok();
    let run = wait_final(&sb, &repo);
    assert_eq!(run["status"], "escalated", "{run}");
    let esc_file = repo.join(".orchestrator/escalation.json");
    let esc: Value =
        serde_json::from_str(&std::fs::read_to_string(&esc_file).expect("escalation.json"))
            .expect("json");
    assert!(
        esc["escalations"][0]["question"]
            .as_str()
            .unwrap_or("")
            .contains("database not reachable"),
        "{esc}"
    );
    let listed = sb.orchestrate(&["escalations"]).ok().stdout;
    assert!(listed.contains("database not reachable"), "{listed}");

    std::fs::write(&marker, "").expect("the human fixes it");
    let out = sb
        .orchestrate_in(&repo, &["answer", "I started the database; try again"])
        .ok();
    assert!(out.stdout.contains("Answered escalation"), "{out}");
    let run = wait_final(&sb, &repo);
    let all = sb
        .orchestrate(&["escalations", "--all", "--json"])
        .ok()
        .stdout;
    assert_eq!(run["status"], "completed", "{run}\n{all}");
    assert!(!esc_file.exists(), "escalation.json is gone once answered");
    let context =
        std::fs::read_to_string(repo.join(".orchestrator/context.md")).expect("context.md");
    assert!(
        context.contains("I started the database; try again"),
        "the Q&A is kept: {context}"
    );
    assert_eq!(
        sb.orchestrate(&["escalations", "--json"]).ok().json()["escalations"],
        json!([])
    );
}

#[test]
fn watch_shows_the_tasks_and_exits_when_the_run_ends() {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    let plan = write_plan(
        &sb,
        vec![
            task("api", &[], &["api.txt"]),
            task("ui", &["api"], &["ui.txt"]),
        ],
    );
    sb.orchestrate_env(
        &repo,
        &["start", "Watched"],
        &[("CLAUDE_FAKE_SCRIPT", &plan)],
    )
    .ok();
    // Follows the live run (no terminal: one frame per change) and returns when it completes.
    let out = sb
        .orchestrate_in(&repo, &["watch", "--interval", "0.1"])
        .ok();
    let last = out.stdout.rsplit("\n\n\n").next().unwrap_or(&out.stdout);
    assert!(out.stdout.contains("completed"), "{out}");
    for needle in [
        "TASK",
        "api",
        "ui",
        "merged",
        "recent",
        "tasks 2 · merged 2",
    ] {
        assert!(out.stdout.contains(needle), "{needle:?} in\n{last}");
    }
    let status = sb.orchestrate_in(&repo, &["status", "--json"]).ok().json();
    assert_eq!(status["status"], "completed");
}

#[test]
fn merged_task_branches_are_cleaned_up_and_unmerged_ones_kept() {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    let plan = write_plan(
        &sb,
        vec![task("a", &[], &["a.txt"]), task("b", &["a"], &["b.txt"])],
    );
    sb.orchestrate_env(&repo, &["start", "Tidy"], &[("CLAUDE_FAKE_SCRIPT", &plan)])
        .ok();
    let run = wait_final(&sb, &repo);
    assert_eq!(run["status"], "completed", "{run}");
    let branches = sb.git(&repo, &["branch", "--format=%(refname:short)"]);
    assert_eq!(
        branches.lines().collect::<Vec<_>>(),
        vec!["main", "orchestrate/tidy"],
        "only the user's branch and the result remain"
    );
}

/// A worktree that takes long to create (a large checkout; here a hook that holds until the
/// test releases it) holds only its own task: the scheduling loop goes on meanwhile, and a
/// worker that ends is merged. (Worktree commands of one repository still run one at a time:
/// git does not guard them against each other.)
#[test]
fn a_slow_checkout_holds_its_own_task_not_the_scheduling_loop() {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    let (held, release) = (sb.root().join("checkout-held"), sb.root().join("release"));
    post_checkout_hook(
        &repo,
        "*--a.*",
        &format!(
            "touch {h}; while [ ! -f {r} ]; do sleep 0.05; done",
            h = held.display(),
            r = release.display()
        ),
    );
    // x is quick and readies a, whose checkout holds; b is still working then, and ends
    // while a's checkout holds.
    let mut b = task("b", &[], &["b.txt"]);
    b["description"] = json!("Write b.txt sleep_ms=1500");
    let plan = write_plan(
        &sb,
        vec![task("x", &[], &["x.txt"]), b, task("a", &["x"], &["a.txt"])],
    );
    sb.orchestrate_env(
        &repo,
        &["start", "Three", "--concurrency", "2"],
        &[("CLAUDE_FAKE_SCRIPT", &plan)],
    )
    .ok();
    wait::until("a's checkout to start", wait::DEADLINE, || {
        held.exists().then_some(())
    });
    let log = log_saying(&sb, &repo, "b merged meanwhile", "Task b merged");
    assert!(!release.exists());
    assert!(
        !log.contains("Task a dispatched"),
        "a's worktree is not there yet: {log}"
    );
    std::fs::write(&release, "").expect("release the checkout");
    let run = wait_final(&sb, &repo);
    let log = sb.orchestrate_in(&repo, &["log", "-n", "500"]).ok().stdout;
    assert_eq!(run["status"], "completed", "{run}\n{log}");
    let order = merge_order(&sb, &repo, run["branch"].as_str().expect("branch"));
    assert_eq!(
        order.last().map(String::as_str),
        Some("a"),
        "{order:?}\n{log}"
    );
}

/// A task whose worktree git refuses (here a hook that fails for its branch) is retried alone
/// and then fails; the other task's worker, busy meanwhile, is never touched: it finishes on
/// its first attempt and its work is merged before the run escalates.
#[test]
fn a_git_failure_of_one_task_never_stops_another_tasks_worker() {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    post_checkout_hook(&repo, "*--b.*", "echo 'hook: no' >&2; exit 1");
    let mut slow = task("a", &[], &["a.txt"]);
    slow["description"] = json!("Write a.txt sleep_ms=4000");
    let plan = write_plan(&sb, vec![slow, task("b", &[], &["b.txt"])]);
    sb.orchestrate_env(
        &repo,
        &["start", "Two", "--concurrency", "2"],
        &[("CLAUDE_FAKE_SCRIPT", &plan)],
    )
    .ok();
    let run = wait_final(&sb, &repo);
    let log = sb.orchestrate_in(&repo, &["log", "-n", "500"]).ok().stdout;
    assert_eq!(run["status"], "escalated", "{run}\n{log}");
    assert_eq!(
        merge_order(&sb, &repo, run["branch"].as_str().expect("branch")),
        vec!["a"],
        "a's worker finished and was merged: {log}"
    );
    assert!(
        log.contains("Task a dispatched") && log.contains("(attempt 1 of 3)"),
        "{log}"
    );
    assert!(
        !log.contains("Task a not completed"),
        "a was never interrupted: {log}"
    );
    assert_eq!(log.matches("Task b cannot start (").count(), 3, "{log}");
    assert!(
        log.contains("Task b cannot start: cannot create the worktree"),
        "{log}"
    );
}

#[test]
fn the_run_never_moves_its_branch_while_the_user_has_it_checked_out() {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    let plan = write_plan(&sb, vec![task("a", &[], &["src/a.rs"])]);
    let run = sb
        .orchestrate_env(
            &repo,
            &["start", "One part", "--dry-run", "--json"],
            &[("CLAUDE_FAKE_SCRIPT", &plan)],
        )
        .ok()
        .json();
    let branch = run["branch"].as_str().expect("branch").to_owned();
    let planned = wait_final(&sb, &repo);
    assert_eq!(planned["status"], "planned", "{planned}");
    let tip = sb.git(&repo, &["rev-parse", &branch]);
    // The user looks at the run's branch in their own checkout, then lets the plan execute.
    sb.git(&repo, &["switch", "-q", &branch]);
    sb.orchestrate_in(&repo, &["resume"]).ok();
    let held = log_saying(&sb, &repo, "the merge to be held", "merges wait");
    assert!(
        held.contains(&format!("{branch} is checked out in"))
            && held.contains(&format!("switch away from {branch}")),
        "{held}"
    );
    assert_eq!(
        sb.git(&repo, &["rev-parse", &branch]),
        tip,
        "the branch did not move"
    );
    assert_eq!(
        sb.git(&repo, &["status", "--porcelain"]),
        "",
        "the user's checkout is as they left it"
    );
    let s = sb.orchestrate_in(&repo, &["status", "--json"]).ok().json();
    assert_eq!(s["status"], "running", "held, not failed: {s}");
    // Switching away lets the run go on by itself.
    sb.git(&repo, &["switch", "-q", "main"]);
    let done = wait_final(&sb, &repo);
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(merge_order(&sb, &repo, &branch), ["a"]);
    let log = sb.orchestrate_in(&repo, &["log", "-n", "200"]).ok().stdout;
    assert!(log.contains("is free again; merges go on"), "{log}");
}

/// Escalations that behave: cancelling or resuming a run closes its live escalations (and
/// removes `escalation.json`); `escalations` lists only live ones, this project's by default;
/// answering a closed one is refused with why.
#[test]
fn cancelled_and_resumed_runs_close_their_escalations() {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    let elsewhere = sb.repo("other");
    let plan = write_plan(&sb, vec![task("only", &[], &["only.txt"])]);
    let red = "printf 'data%s\\n' 'base not reachable'; exit 1";
    let start = |feature: &str| {
        sb.orchestrate_env(
            &repo,
            &["start", feature, "--gate", red, "--skip-codex"],
            &[("CLAUDE_FAKE_SCRIPT", &plan)],
        )
        .ok();
        assert_eq!(wait_final(&sb, &repo)["status"], "escalated");
    };
    let live = |dir: &Path| -> Vec<Value> {
        let list = sb
            .orchestrate_in(dir, &["escalations", "--json"])
            .ok()
            .json();
        list["escalations"].as_array().cloned().unwrap_or_default()
    };
    start("First");
    let first = live(&repo)[0]["id"].as_u64().expect("an escalation");
    // The failure's reason is shown whole, the gate's output after its first line included.
    let status = sb.orchestrate_in(&repo, &["status"]).ok().stdout;
    assert!(
        status.contains("retried: ") && status.contains("database not reachable"),
        "{status}"
    );
    let watched = sb.orchestrate_in(&repo, &["watch"]).fails_with(10).stdout;
    assert!(
        watched.contains("why tasks came back") && watched.contains("database not reachable"),
        "{watched}"
    );
    // `wait` returns at once with the question and 10.
    let waited = sb.orchestrate_in(&repo, &["wait"]).fails_with(10).stdout;
    assert!(
        waited.contains("is escalated")
            && waited.contains(&format!("#{first} [execution_blocked]")),
        "{waited}"
    );
    assert!(
        live(&elsewhere).is_empty(),
        "another project's are not listed there"
    );
    let mine = sb.orchestrate_in(&elsewhere, &["escalations"]).ok().stdout;
    assert!(mine.contains("(`--all` shows every project's)"), "{mine}");
    let every = sb
        .orchestrate_in(&elsewhere, &["escalations", "--all", "--json"])
        .ok()
        .json();
    assert_eq!(
        every["escalations"].as_array().map(Vec::len),
        Some(1),
        "{every}"
    );

    sb.orchestrate_in(&repo, &["cancel"]).ok();
    assert!(
        live(&repo).is_empty(),
        "a cancelled run's escalation is closed"
    );
    assert!(!repo.join(".orchestrator/escalation.json").exists());
    let refused = sb
        .orchestrate_in(&repo, &["answer", &first.to_string(), "go on"])
        .fails_with(2)
        .stderr;
    assert!(
        refused.contains(&format!(
            "escalation {first} is closed (the run was cancelled)"
        )),
        "{refused}"
    );
    let history = sb
        .orchestrate_in(&repo, &["escalations", "--history"])
        .ok()
        .stdout;
    assert!(
        history.contains("closed    the run was cancelled, unanswered"),
        "{history}"
    );

    start("Second");
    let second = live(&repo)[0]["id"].as_u64().expect("an escalation");
    sb.orchestrate_in(&repo, &["resume"]).ok();
    // The gate is still red: the resumed run asks again, with a new escalation.
    wait::until("the run to ask again", wait::DEADLINE, || {
        let l = live(&repo);
        (l.len() == 1 && l[0]["id"].as_u64() != Some(second)).then_some(())
    });
    let refused = sb
        .orchestrate_in(&repo, &["answer", &second.to_string(), "go on"])
        .fails_with(2)
        .stderr;
    assert!(
        refused.contains("(the run was resumed without an answer)"),
        "{refused}"
    );
    let listed = sb.orchestrate_in(&repo, &["escalations"]).ok().stdout;
    assert_eq!(
        listed.matches("database not reachable").count(),
        1,
        "the question is printed once: {listed}"
    );
}

/// `--verbose` puts each tool call of each worker and every git command of the executor (with
/// how long it took) in the run's log at debug level; without it there are none.
#[test]
fn verbose_logs_each_tool_call_and_each_git_command() {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    let plan = write_plan(&sb, vec![task("only", &[], &["only.txt"])]);
    let env = [("CLAUDE_FAKE_SCRIPT", plan.as_str())];
    sb.orchestrate_env(&repo, &["start", "Quiet", "--skip-codex"], &env)
        .ok();
    assert_eq!(wait_final(&sb, &repo)["status"], "completed");
    let quiet = sb
        .orchestrate_in(&repo, &["log", "--json", "-n", "1000"])
        .ok()
        .json();
    let called = |log: &Value| -> Vec<String> {
        log["events"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["kind"] == "tool_called")
            .map(|e| {
                assert_eq!(e["level"], "debug", "{e}");
                e["message"].as_str().unwrap_or("").to_owned()
            })
            .collect()
    };
    assert!(called(&quiet).is_empty(), "{quiet}");
    sb.orchestrate_env(&repo, &["start", "Loud", "--skip-codex", "--verbose"], &env)
        .ok();
    assert_eq!(wait_final(&sb, &repo)["status"], "completed");
    let loud = called(
        &sb.orchestrate_in(&repo, &["log", "--json", "-n", "1000"])
            .ok()
            .json(),
    );
    assert!(
        loud.iter()
            .any(|m| m.starts_with("Task only (session s-")
                && m.ends_with(": mcp__orch__complete_task")),
        "{loud:?}"
    );
    assert!(
        loud.iter().any(|m| m.starts_with("The planner (s-")),
        "{loud:?}"
    );
    assert!(
        loud.iter().any(|m| m.starts_with("The executor: git ")
            && m.contains(" merge --no-ff ")
            && m.ends_with(" ms)")),
        "{loud:?}"
    );
}
