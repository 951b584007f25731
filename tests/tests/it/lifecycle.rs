//! Transitions a user drives: pause, resume, cancel, starting fresh, and reading the log.

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use std::time::Duration;

use orchestrator_tests::{Sandbox, wait};

/// How many spare worktrees the repository at `repo` has; `None` while git cannot list them
/// (it fails on a worktree the daemon is adding at that moment: "failed to read
/// .git/worktrees/spare-3/commondir").
fn spares(sb: &Sandbox, repo: &std::path::Path) -> Option<usize> {
    let home = sb.home();
    let list = orchestrator_tests::repo::try_git(repo, &home, &["worktree", "list", "--porcelain"]);
    let list = list.ok()?;
    Some(
        list.lines()
            .filter(|l| l.starts_with("worktree ") && l.contains("/spare-"))
            .count(),
    )
}

/// Waits until the repository at `repo` has `n` spare worktrees.
fn spares_become(sb: &Sandbox, repo: &std::path::Path, n: usize, when: &str) {
    wait::until(when, Duration::from_secs(20), || {
        (spares(sb, repo) == Some(n)).then_some(())
    });
}

#[test]
fn pause_resume_cancel_move_the_run_and_refuse_what_does_not_apply() {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    sb.orchestrate_in(&repo, &["start", "Feature", "--concurrency", "2"])
        .ok();
    let status = |sb: &Sandbox| sb.orchestrate_in(&repo, &["status", "--json"]).ok().json();
    // While the planner works, a spare worktree for each of the first two workers.
    spares_become(&sb, &repo, 2, "two spares made while planning");

    let out = sb.orchestrate_in(&repo, &["resume"]).fails_with(2);
    assert!(out.stderr.contains("not paused"), "{out}");

    sb.orchestrate_in(&repo, &["pause"]).ok();
    assert_eq!(status(&sb)["status"], "paused");
    spares_become(&sb, &repo, 0, "no spare left by a paused run");
    let state = std::fs::read_to_string(repo.join(".orchestrator/state.json")).expect("state");
    assert!(state.contains("\"paused\""), "the mirror follows: {state}");
    let out = sb.orchestrate_in(&repo, &["pause"]).fails_with(2);
    assert!(out.stderr.contains("already paused"), "{out}");

    sb.orchestrate_in(&repo, &["resume"]).ok();
    let resumed = status(&sb);
    assert_eq!(resumed["status"], "running", "planning again: {resumed}");
    assert_eq!(resumed["phase"], "planning");

    spares_become(&sb, &repo, 2, "spares made again by the resumed planning");
    let run = sb.orchestrate_in(&repo, &["cancel", "--json"]).ok().json();
    assert_eq!(run["status"], "cancelled");
    spares_become(&sb, &repo, 0, "no spare left by a cancelled run");
    assert!(run["finished_at"].is_string(), "{run}");
    let out = sb.orchestrate_in(&repo, &["pause"]).fails_with(2);
    assert!(out.stderr.contains("cancelled"), "{out}");

    // The branch is kept; the log says so.
    sb.git(&repo, &["rev-parse", "--verify", "orchestrate/feature"]);
    let log = sb.orchestrate_in(&repo, &["log"]).ok();
    for needle in [
        "submitted",
        "paused",
        "resumed",
        "cancelled",
        "git branch -D",
    ] {
        assert!(log.stdout.contains(needle), "log mentions {needle}: {log}");
    }
}

#[test]
fn cancel_then_start_begins_fresh() {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    let first = sb
        .orchestrate_in(&repo, &["start", "Feature", "--json"])
        .ok()
        .json();
    sb.orchestrate_in(&repo, &["cancel"]).ok();
    let second = sb
        .orchestrate_in(&repo, &["start", "Feature", "--json"])
        .ok()
        .json();
    assert_ne!(first["id"], second["id"]);
    assert_eq!(
        second["branch"], "orchestrate/feature-2",
        "the old branch is not reused"
    );
    let state = std::fs::read_to_string(repo.join(".orchestrator/state.json")).expect("state");
    assert!(
        state.contains(second["id"].as_str().expect("id")),
        "{state}"
    );
    let current = sb.orchestrate_in(&repo, &["status", "--json"]).ok().json();
    assert_eq!(current["id"], second["id"]);
    // Both runs stay listed; the old one by id.
    let old = sb
        .orchestrate(&[
            "status",
            "--json",
            "--run",
            first["id"].as_str().expect("id"),
        ])
        .ok()
        .json();
    assert_eq!(old["status"], "cancelled");
    let list = sb.orchestrate(&["list", "--json"]).ok().json();
    assert_eq!(list["runs"].as_array().map(Vec::len), Some(2));
}

#[test]
fn log_tails_and_follow_streams_until_the_run_ends() {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    sb.orchestrate_in(&repo, &["start", "Feature"]).ok();
    sb.orchestrate_in(&repo, &["pause"]).ok();
    let all = sb.orchestrate_in(&repo, &["log", "--json"]).ok().json();
    let n = all["events"].as_array().map(Vec::len).unwrap_or(0);
    assert!(n >= 3, "{all}");
    let tail = sb.orchestrate_in(&repo, &["log", "-n", "1"]).ok();
    assert_eq!(tail.stdout.lines().count(), 1, "{tail}");
    let last3 = sb.orchestrate_in(&repo, &["log", "-n", "3"]).ok();
    assert!(last3.stdout.contains("paused"), "{last3}");

    let mut follow = sb
        .command(&orchestrator_tests::bins::bins().orchestrate)
        .args(["log", "-f", "-n", "1", "--json"])
        .current_dir(&repo)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn log -f");
    let mut lines = BufReader::new(follow.stdout.take().expect("stdout")).lines();
    let first: serde_json::Value =
        serde_json::from_str(&lines.next().expect("a line").expect("read")).expect("JSON");
    assert!(first["seq"].as_u64().is_some(), "one event a line: {first}");
    sb.orchestrate_in(&repo, &["resume"]).ok();
    // Events stream in as they happen (the stopped planner's may come first).
    let resumed = lines
        .by_ref()
        .map(|l| l.expect("read"))
        .find(|l| l.contains("resumed by the user"));
    assert!(resumed.is_some(), "the resume arrives while following");
    sb.orchestrate_in(&repo, &["cancel"]).ok();
    let rest: Vec<String> = lines.map(|l| l.expect("read")).collect();
    assert!(rest.iter().any(|l| l.contains("cancelled")), "{rest:?}");
    let status = follow.wait().expect("wait");
    assert_eq!(
        status.code(),
        Some(13),
        "log -f ends with the run, cancelled: 13"
    );
}

/// `orchestrate wait` blocks until the run needs a human or ends; its exit code says which
/// (10 escalated, 11 paused, 13 cancelled, 14 still running at the timeout), and what it
/// prints says where the run stands.
#[test]
fn wait_returns_when_the_run_needs_you_with_a_code_for_each_state() {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    // The planner never answers: the run stays running until the user acts.
    sb.orchestrate_env(
        &repo,
        &["start", "Think", "--skip-codex"],
        &[("CLAUDE_FAKE_SCRIPT", "hang")],
    )
    .ok();
    let out = sb
        .orchestrate_in(&repo, &["wait", "--timeout", "300ms"])
        .fails_with(14);
    assert!(out.stdout.contains("is still running"), "{out}");
    sb.orchestrate_in(&repo, &["pause"]).ok();
    let out = sb.orchestrate_in(&repo, &["wait"]).fails_with(11);
    assert!(
        out.stdout.contains("is paused: paused by the user"),
        "{out}"
    );
    let json = sb
        .orchestrate_in(&repo, &["wait", "--json"])
        .fails_with(11)
        .json();
    assert_eq!(json["run"]["status"], "paused", "{json}");
    sb.orchestrate_in(&repo, &["cancel"]).ok();
    let out = sb
        .orchestrate_in(&repo, &["wait", "--until", "finished"])
        .fails_with(13);
    assert!(
        out.stderr.is_empty(),
        "the state is said on stdout only: {out}"
    );
}

/// A refused `resume` (the run is not paused) changes nothing: it used to replace the run's
/// session environment first, so the next worker got the other shell's API key.
#[test]
fn a_refused_resume_leaves_the_sessions_environment_alone() {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    sb.orchestrate_env(
        &repo,
        &["start", "Add a widget"],
        &[("ANTHROPIC_API_KEY", "key-of-the-first-shell")],
    )
    .ok();
    let env = || -> String {
        let c = rusqlite::Connection::open_with_flags(
            sb.data_dir().join("orchestrator.db"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .expect("open the database");
        c.query_row("SELECT env FROM run_env", [], |r| r.get(0))
            .expect("the run's environment")
    };
    assert!(env().contains("key-of-the-first-shell"));
    let out = sb
        .orchestrate_env(
            &repo,
            &["resume"],
            &[("ANTHROPIC_API_KEY", "key-of-another-shell")],
        )
        .fails_with(2);
    assert!(out.to_string().contains("not paused"), "{out}");
    let now = env();
    assert!(
        now.contains("key-of-the-first-shell") && !now.contains("another"),
        "unchanged: {now}"
    );
    // An accepted resume does take the new shell's environment.
    sb.orchestrate_in(&repo, &["pause"]).ok();
    sb.orchestrate_env(
        &repo,
        &["resume"],
        &[("ANTHROPIC_API_KEY", "key-of-another-shell")],
    )
    .ok();
    assert!(env().contains("key-of-another-shell"));
}

/// `clean --run <id> --force`: a cancelled run's worktree with a worker's commit and an
/// uncommitted file goes, after `--dry-run` said what would be lost; the commit stays under
/// `refs/orchestrator/<run>/forced/`. Without `--force` it is kept; `--force` alone and an
/// active run are refused.
#[test]
fn clean_force_removes_a_cancelled_run_s_work_keeping_its_commits() {
    let sb = Sandbox::new();
    let repo = one_running_task(&sb, "Half done", "hang");
    let run = sb.orchestrate_in(&repo, &["status", "--json"]).ok().json();
    let id = run["id"].as_str().expect("id").to_owned();
    let refused = sb
        .orchestrate_in(&repo, &["clean", "--run", &id])
        .fails_with(2)
        .stderr;
    assert!(
        refused.contains("only a finished run is cleaned"),
        "{refused}"
    );
    sb.orchestrate_in(&repo, &["cancel"]).ok();
    // What the worker had done: one commit, one file not committed.
    let wt = sb.data_dir().join("worktrees").join(&id).join("a.1");
    std::fs::write(wt.join("a.txt"), "a\n").expect("write");
    sb.git(&wt, &["add", "a.txt"]);
    sb.git(&wt, &["commit", "-qm", "Half of a"]);
    std::fs::write(wt.join("notes.txt"), "draft\n").expect("write");

    let kept = sb
        .orchestrate_in(&repo, &["clean", "--run", &id])
        .ok()
        .stdout;
    assert!(kept.contains("it has uncommitted changes"), "{kept}");
    assert!(wt.exists());
    let said = sb
        .orchestrate_in(&repo, &["clean", "--run", &id, "--force", "--dry-run"])
        .ok()
        .stdout;
    assert!(
        said.contains("Would remove 1 worktree, 1 branch")
            && said.contains(&format!(
                "its commits are kept as refs/orchestrator/{id}/forced/a.1"
            ))
            && said.contains("1 file of uncommitted changes would be lost"),
        "{said}"
    );
    assert!(wt.exists(), "a dry run removes nothing");
    let done = sb
        .orchestrate_in(&repo, &["clean", "--run", &id, "--force"])
        .ok()
        .stdout;
    assert!(done.contains("Removed 1 worktree, 1 branch"), "{done}");
    assert!(!wt.exists(), "{done}");
    let kept_as = sb.git(
        &repo,
        &[
            "log",
            "--format=%s",
            "-1",
            &format!("refs/orchestrator/{id}/forced/a.1"),
        ],
    );
    assert_eq!(kept_as.trim(), "Half of a", "{done}");
    let alone = sb
        .orchestrate_in(&repo, &["clean", "--force"])
        .fails_with(2)
        .stderr;
    assert!(alone.contains("--run"), "{alone}");
}

/// `pause --all` stops every run of every project at once and `resume --all` brings them back;
/// `cancel --all` is refused (one run at a time).
#[test]
fn pause_all_and_resume_all_move_every_run() {
    let sb = Sandbox::new();
    let repos = [sb.repo("one"), sb.repo("two")];
    for r in &repos {
        sb.orchestrate_env(
            r,
            &["start", "Think", "--skip-codex"],
            &[("CLAUDE_FAKE_SCRIPT", "hang")],
        )
        .ok();
    }
    let statuses = || -> Vec<String> {
        repos
            .iter()
            .map(|r| {
                let s = sb.orchestrate_in(r, &["status", "--json"]).ok().json();
                s["status"].as_str().unwrap_or("").to_owned()
            })
            .collect()
    };
    let out = sb.orchestrate(&["pause", "--all"]).ok().stdout;
    assert_eq!(out.matches("Paused run").count(), 2, "{out}");
    assert_eq!(statuses(), ["paused", "paused"]);
    let out = sb.orchestrate(&["resume", "--all"]).ok().stdout;
    assert_eq!(out.matches("Resumed run").count(), 2, "{out}");
    assert!(
        statuses().iter().all(|s| s == "queued" || s == "running"),
        "{:?}",
        statuses()
    );
    let refused = sb.orchestrate(&["cancel", "--all"]).fails_with(2).stderr;
    assert!(
        refused.contains("cancel takes one run at a time"),
        "{refused}"
    );
    for r in &repos {
        sb.orchestrate_in(r, &["cancel"]).ok();
    }
}

/// `orchestrate tell`: the user's message reaches a running worker — its next tool reply says
/// a message waits, `read_messages` gives it — and the log says it was sent; an unknown task
/// is refused.
#[test]
fn tell_reaches_a_running_worker_at_its_next_tool_call() {
    let sb = Sandbox::new();
    let repo = one_running_task(&sb, "Listen", "listen");
    // `tail -f` follows the worker live until its session ends.
    let tail = sb
        .command(&orchestrator_tests::bins::bins().orchestrate)
        .args(["tail", "a", "-f"])
        .current_dir(&repo)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tail -f");
    let refused = sb
        .orchestrate_in(&repo, &["tell", "zz", "hello"])
        .fails_with(2)
        .stderr;
    assert!(refused.contains("has no task \"zz\""), "{refused}");
    let long = "x".repeat(30_000);
    let refused = sb
        .orchestrate_in(&repo, &["tell", "a", &long])
        .fails_with(2)
        .stderr;
    assert!(
        refused.contains("a message holds at most 20000"),
        "{refused}"
    );
    let told = sb
        .orchestrate_in(&repo, &["tell", "a", "Use tabs, not spaces"])
        .ok()
        .stdout;
    assert!(
        told.contains("Told task a (message") && told.contains("a will see it"),
        "{told}"
    );
    let run = crate::execution::wait_final(&sb, &repo);
    assert_eq!(run["status"], "completed", "{run}");
    let branch = run["branch"].as_str().expect("branch");
    let read = sb.git(&repo, &["show", &format!("{branch}:told-a.txt")]);
    assert_eq!(read.trim(), "From the user: Use tabs, not spaces");
    let log = sb.orchestrate_in(&repo, &["log", "-n", "200"]).ok().stdout;
    assert!(
        log.contains("You told task a: Use tabs, not spaces"),
        "{log}"
    );
    let followed = tail.wait_with_output().expect("tail -f");
    let seen = String::from_utf8_lossy(&followed.stdout);
    assert!(followed.status.success(), "{seen}");
    assert!(
        seen.contains("── task a · session s-")
            && seen.contains("→ mcp__orch__report_progress listening")
            && seen.contains("→ mcp__orch__read_messages")
            && seen.contains("■ done"),
        "{seen}"
    );
    let raw = sb
        .orchestrate_in(&repo, &["tail", "a", "--raw"])
        .ok()
        .stdout;
    assert!(raw.lines().all(|l| l.starts_with('{')), "{raw}");
    let none = sb
        .orchestrate_in(&repo, &["tail", "zz"])
        .fails_with(2)
        .stderr;
    assert!(none.contains("has no task \"zz\""), "{none}");
}

/// `orchestrate attach`: the run pauses, the task's worker session opens "interactively" (the
/// fake claude, resumed in the task's worktree with the run's MCP server, completes it), and
/// when it quits the task is handed back done; the run resumes and merges it.
#[test]
fn attach_takes_over_a_worker_and_hands_the_task_back() {
    let sb = Sandbox::new();
    let repo = one_running_task(&sb, "Take over", "hang");
    let out = sb
        .orchestrate_env(&repo, &["attach", "a"], &[("CLAUDE_FAKE_WORKER", "work")])
        .ok()
        .stdout;
    assert!(
        out.contains("Task a is yours in ")
            && out.contains("You completed task a; the run verifies and merges it.")
            && out.contains("The run goes on."),
        "{out}"
    );
    let run = crate::execution::wait_final(&sb, &repo);
    let log = sb.orchestrate_in(&repo, &["log", "-n", "300"]).ok().stdout;
    assert_eq!(run["status"], "completed", "{run}\n{log}");
    assert!(
        log.contains("You took over task a") && log.contains("You left task a: you completed it"),
        "{log}"
    );
    let branch = run["branch"].as_str().expect("branch");
    sb.git(&repo, &["show", &format!("{branch}:a.txt")]);
}

/// A run of one task `a` whose worker behaves as `worker`, started in a new repository of the
/// sandbox, once that worker is running; returns the repository.
pub(crate) fn one_running_task(sb: &Sandbox, feature: &str, worker: &str) -> std::path::PathBuf {
    let repo = sb.repo("app");
    let plan = sb.root().join("plan.json");
    std::fs::write(
        &plan,
        serde_json::json!({"summary": "s", "tasks": [crate::execution::task("a", &[], &["a.txt"])]})
            .to_string(),
    )
    .expect("plan");
    let script = format!("plan:{}", plan.display());
    sb.orchestrate_env(
        &repo,
        &["start", feature, "--skip-codex"],
        &[
            ("CLAUDE_FAKE_SCRIPT", &script),
            ("CLAUDE_FAKE_WORKER", worker),
        ],
    )
    .ok();
    orchestrator_tests::wait::until(
        "the worker to run",
        orchestrator_tests::wait::DEADLINE,
        || {
            let s = sb.orchestrate_in(&repo, &["status", "--json"]).ok().json();
            (s["progress"]["in_progress"] == 1).then_some(())
        },
    );
    repo
}
