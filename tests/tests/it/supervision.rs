//! Supervision with the fast tier's fake claude: the watchdogs (stall, start-up, wall clock)
//! stop a worker and retry its task, then escalate with why; a worker outlives a daemon
//! stop and is re-attached by the next daemon; `status` shows each worker's last activity.

use orchestrator_tests::{Sandbox, wait};
use serde_json::json;

use crate::execution::wait_final;

fn one_task_plan(sb: &Sandbox, description: &str) -> String {
    let path = sb.root().join("plan.json");
    let plan = json!({"summary": "One", "tasks": [{"id": "a", "title": "Build a",
        "description": description, "acceptance_criteria": ["a exists"], "files": ["a.txt"]}]});
    std::fs::write(&path, plan.to_string()).expect("plan");
    format!("plan:{}", path.display())
}

/// Runs one task whose worker behaves as `worker` under `[supervision] config`; returns the
/// escalation's question once the run gave up.
fn watchdog_escalates(config: &str, worker: &str) -> (Sandbox, String) {
    let sb = Sandbox::new();
    std::fs::write(sb.config_file(), format!("[supervision]\n{config}")).expect("config");
    let repo = sb.repo("app");
    let plan = one_task_plan(&sb, "Write a.txt");
    sb.orchestrate_env(
        &repo,
        &["start", "Watched"],
        &[
            ("CLAUDE_FAKE_SCRIPT", &plan),
            ("CLAUDE_FAKE_WORKER", worker),
        ],
    )
    .ok();
    let run = wait_final(&sb, &repo);
    assert_eq!(run["status"], "escalated", "{run}");
    let status = sb.orchestrate_in(&repo, &["status"]).ok().stdout;
    assert!(
        status.contains("a failed after attempt 3") && status.contains("retried: "),
        "status says why the task was retried:\n{status}"
    );
    let esc = sb.orchestrate(&["escalations", "--json"]).ok().json();
    let question = esc["escalations"][0]["question"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    wait::until("the stopped workers to be gone", wait::DEADLINE, || {
        sb.agent_processes().is_empty().then_some(())
    });
    (sb, question)
}

#[test]
fn a_stalled_worker_is_stopped_and_retried_then_the_run_escalates_with_why() {
    let (_sb, why) = watchdog_escalates("stall_secs = 1\nstartup_secs = 0\n", "hang");
    assert!(
        why.contains("stalled") && why.contains("stall_secs"),
        "{why}"
    );
}

#[test]
fn a_worker_that_never_starts_is_stopped_by_the_startup_watchdog() {
    let (_sb, why) = watchdog_escalates("startup_secs = 1\nstall_secs = 0\n", "silent");
    assert!(why.contains("system/init"), "{why}");
}

#[test]
fn a_worker_past_its_wall_clock_limit_is_stopped() {
    let (_sb, why) = watchdog_escalates("task_timeout_secs = 1\nstall_secs = 0\n", "hang");
    assert!(why.contains("wall-clock"), "{why}");
}

#[test]
fn a_worker_outlives_a_daemon_stop_and_the_next_daemon_re_attaches_it() {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    let plan = one_task_plan(&sb, "Write a.txt slowly. sleep_ms=2500");
    sb.orchestrate_env(
        &repo,
        &["start", "Across a restart"],
        &[("CLAUDE_FAKE_SCRIPT", &plan), ("CLAUDE_FAKE_PATIENT", "1")],
    )
    .ok();
    let worker = wait::until("the worker to run", wait::DEADLINE, || {
        let tasks = sb.orchestrate_in(&repo, &["status", "--json"]).ok().json();
        (tasks["progress"]["in_progress"] == 1).then_some(())?;
        // The worker itself, not a git command the daemon runs beside it.
        sb.agent_processes().into_iter().find(|pid| {
            std::fs::read_link(format!("/proc/{pid}/exe"))
                .is_ok_and(|e| e.to_string_lossy().contains("fake-claude"))
        })
    });
    let status = sb.orchestrate_in(&repo, &["status"]).ok().stdout;
    assert!(
        status.contains("workers   a attempt 1 · session s-") && status.contains("last activity"),
        "{status}"
    );
    // A graceful stop (an upgrade, `systemctl restart`): the worker keeps working.
    sb.orchestrate(&["daemon", "stop"]).ok();
    wait::until("the daemon to stop", wait::DEADLINE, || {
        sb.daemon_processes().is_empty().then_some(())
    });
    assert!(
        sb.agent_processes().contains(&worker),
        "the worker survived the daemon"
    );
    let run = wait_final(&sb, &repo);
    assert_eq!(run["status"], "completed", "{run}");
    assert_eq!(run["progress"]["sessions"], 2, "no second worker: {run}");
    let log = sb.orchestrate_in(&repo, &["log", "-n", "200"]).ok().stdout;
    assert!(log.contains("re-attached to its worker session"), "{log}");
    assert!(log.contains("Task a merged"), "{log}");
}

#[test]
fn clean_removes_what_is_merged_and_keeps_unmerged_or_dirty_work_with_why() {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    let path = sb.root().join("plan.json");
    let plan = json!({"summary": "Two", "tasks": [
        crate::execution::task("a", &[], &["a.txt"]),
        crate::execution::task("b", &[], &["b.txt"])]});
    std::fs::write(&path, plan.to_string()).expect("plan");
    // Both also write shared.txt: the second merge conflicts and its branch is kept.
    let run = sb
        .orchestrate_env(
            &repo,
            &["start", "Tidy", "--concurrency", "2", "--json"],
            &[
                ("CLAUDE_FAKE_SCRIPT", &format!("plan:{}", path.display())),
                ("CLAUDE_FAKE_WORKER", "work-shared"),
            ],
        )
        .ok()
        .json();
    let id = run["id"].as_str().expect("id").to_owned();
    let run = wait_final(&sb, &repo);
    assert_eq!(run["status"], "completed", "{run}");
    let branch = run["branch"].as_str().expect("branch").to_owned();
    let conflicted = sb
        .git(&repo, &["branch", "--format=%(refname:short)"])
        .lines()
        .find(|b| b.starts_with(&format!("{branch}--")))
        .expect("the conflicting attempt's branch is kept")
        .to_owned();
    // A worktree with uncommitted work and one with nothing unmerged, as a crash could leave.
    let dir = sb.data_dir().join("worktrees").join(&id);
    let (dirty, spare) = (dir.join("dirty"), dir.join("spare"));
    for w in [&dirty, &spare] {
        sb.git(
            &repo,
            &[
                "worktree",
                "add",
                "--detach",
                &w.display().to_string(),
                &branch,
            ],
        );
    }
    std::fs::write(dirty.join("notes.txt"), "unsaved").expect("dirty");

    let dry = sb
        .orchestrate(&["clean", "--dry-run", "--json"])
        .ok()
        .json();
    assert_eq!(dry["runs"], 1);
    let names = |list: &serde_json::Value| -> Vec<String> {
        list.as_array()
            .expect("items")
            .iter()
            .map(|i| {
                format!(
                    "{} {}",
                    i["kind"].as_str().unwrap_or(""),
                    i["reason"].as_str().unwrap_or("")
                )
            })
            .collect()
    };
    assert!(spare.exists(), "a dry run removes nothing");
    let human = sb
        .orchestrate(&["clean", "--project", &repo.display().to_string()])
        .ok()
        .stdout;
    assert!(
        human.starts_with("Removed 1 worktree, 0 branches and 2 backup refs"),
        "{human}"
    );
    assert!(
        human.contains("dirty: it has uncommitted changes"),
        "{human}"
    );
    assert!(
        human.contains(&format!("(branch {conflicted})")),
        "the conflicting attempt's worktree is kept: {human}"
    );
    assert!(
        human.contains(&format!(
            "branch {conflicted}: 1 commit not merged into {branch}"
        )),
        "{human}"
    );
    assert!(!spare.exists() && dirty.join("notes.txt").exists());
    assert!(
        sb.git(&repo, &["branch", "--format=%(refname:short)"])
            .contains(&conflicted),
        "unmerged work stays"
    );
    assert_eq!(
        sb.git(&repo, &["for-each-ref", "refs/orchestrator/"]),
        "",
        "the merged tasks' backups are gone once their commits are on the branch"
    );
    assert_eq!(names(&dry["kept"]).len(), 3, "{dry}");
    // Nothing left to remove: a second clean says so and keeps the same.
    let again = sb.orchestrate(&["clean", "--json"]).ok().json();
    assert_eq!(again["removed"], json!([]), "{again}");
    assert_eq!(names(&again["kept"]), names(&dry["kept"]));

    // The project re-cloned at the same path: git cannot read the kept worktrees any more,
    // and that doubt keeps them (with their uncommitted output) instead of deleting them.
    let old = sb.root().join("app.before");
    std::fs::rename(&repo, &old).expect("move the project away");
    let cloned = std::process::Command::new("git")
        .args(["clone", "-q"])
        .arg(&old)
        .arg(&repo)
        .status()
        .expect("git clone");
    assert!(cloned.success());
    let after = sb.orchestrate(&["clean", "--json"]).ok().json();
    assert_eq!(
        after["removed"],
        json!([]),
        "nothing removed on doubt: {after}"
    );
    let kept = names(&after["kept"]);
    assert!(
        kept.iter()
            .filter(
                |k| k.contains("git cannot read it as a worktree of the project")
                    && k.contains("rm -rf")
            )
            .count()
            == 2,
        "{kept:?}"
    );
    assert_eq!(
        std::fs::read_to_string(dirty.join("notes.txt")).expect("kept"),
        "unsaved"
    );
}

/// Whether `pid` runs (a zombie waiting to be reaped does not).
fn running(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit_once(") ")
            .is_some_and(|(_, rest)| !rest.starts_with('Z'))
    })
}

/// A worker that leaves a process of its own running (a server it started, a git command cut
/// short with it) does not outlive its session: what is left of its process group is stopped
/// before anything reads its worktree.
#[test]
fn what_a_worker_leaves_running_ends_with_its_session() {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    let plan = one_task_plan(&sb, "Write a.txt");
    let ledger = sb.root().join("ledger.txt");
    sb.orchestrate_env(
        &repo,
        &["start", "Lingering"],
        &[
            ("CLAUDE_FAKE_SCRIPT", &plan),
            ("CLAUDE_FAKE_WORKER", "lingers"),
            ("CLAUDE_FAKE_LEDGER", ledger.to_str().expect("path")),
        ],
    )
    .ok();
    let run = wait_final(&sb, &repo);
    assert_eq!(run["status"], "completed", "{run}");
    let said = std::fs::read_to_string(&ledger).expect("the ledger");
    let pid: u32 = said
        .lines()
        .find_map(|l| l.strip_prefix("lingering ")?.parse().ok())
        .expect("the lingering process's pid");
    assert!(
        !running(pid),
        "the worker's sleep {pid} outlived its session, which ended before its task merged"
    );
}
