//! Chaos: several runs at once while the daemon is killed with SIGKILL at random moments (and
//! restarted by the next CLI command), and random workers are SIGKILLed. Afterwards every run
//! completed, every task is merged exactly once, no worker commit became unreachable, no agent
//! process is left and every run's log is whole. Seeded (`ORCH_CHAOS_SEED` repeats a run);
//! the moments are "after the next k events", so it never sleeps and it stops by itself; runs
//! that finish before the last kill are followed by a new round of runs.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use orchestrator_tests::rng::Rng;
use orchestrator_tests::{Sandbox, http, wait};
use serde_json::{Value, json};

const RUNS: usize = 3;
const TASKS: usize = 12;
const DAEMON_KILLS: usize = 20;
const WORKER_KILLS: usize = 5;

/// A random DAG: each task may depend on an earlier one; every task writes its own file and
/// works a random while.
fn plan(rng: &mut Rng) -> Value {
    let tasks: Vec<Value> = (0..TASKS)
        .map(|i| {
            let deps: Vec<String> = if i > 0 && rng.below(2) == 0 {
                vec![format!("t{}", rng.below(i as u64))]
            } else {
                vec![]
            };
            let ms = 250 + rng.below(750);
            json!({"id": format!("t{i}"), "title": format!("Part {i}"),
                   "description": format!("Write part {i}. sleep_ms={ms}"),
                   "acceptance_criteria": ["written"], "depends_on": deps,
                   "files": [format!("parts/t{i}.txt")]})
        })
        .collect();
    json!({"summary": "parts", "tasks": tasks})
}

fn get(sb: &Sandbox, path: &str) -> Option<Value> {
    let r = http::get(&sb.socket(), path).ok()?;
    (r.status == 200).then(|| r.json())
}

/// Events so far over all runs (the last seq of each), if the daemon answers.
fn events(sb: &Sandbox, ids: &[String]) -> Option<u64> {
    ids.iter()
        .map(|id| {
            get(sb, &format!("/v1/runs/{id}/events?tail=1"))
                .map(|v| v["events"][0]["seq"].as_u64().unwrap_or(0))
        })
        .sum()
}

fn all_final(sb: &Sandbox, ids: &[String]) -> Option<bool> {
    ids.iter()
        .map(|id| {
            get(sb, &format!("/v1/runs/{id}")).map(|r| {
                matches!(
                    r["status"].as_str(),
                    Some("completed" | "failed" | "cancelled" | "escalated")
                )
            })
        })
        .try_fold(true, |all, f| f.map(|f| all && f))
}

/// Live worker processes (their prompt says so), not planners, with the worktree they work in
/// (`…/worktrees/<run>/<task>.<attempt>`).
fn workers(sb: &Sandbox) -> Vec<(i32, PathBuf)> {
    sb.agent_processes()
        .into_iter()
        // The fake claude (its prompt comes on stdin, so only where it runs tells a worker
        // from a planner), never a git command the daemon runs beside it.
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/exe"))
                .is_ok_and(|e| e.to_string_lossy().contains("fake-claude"))
        })
        .filter_map(|pid| Some((pid, std::fs::read_link(format!("/proc/{pid}/cwd")).ok()?)))
        .filter(|(_, cwd)| {
            cwd.file_name()
                .is_some_and(|n| !n.to_string_lossy().starts_with("planner"))
        })
        .collect()
}

/// The run and task a worker's worktree belongs to.
fn task_of(worktree: &Path) -> Option<(String, String)> {
    let task = worktree
        .file_name()?
        .to_str()?
        .split('.')
        .next()?
        .to_owned();
    let run = worktree.parent()?.file_name()?.to_str()?.to_owned();
    Some((run, task))
}

#[test]
fn chaos_kill_9_of_the_daemon_and_its_workers_loses_and_doubles_nothing() {
    let (mut rng, seed) = Rng::seeded("ORCH_CHAOS_SEED", 0x5EED_2026);
    let sb = Sandbox::new();
    let repos: Vec<PathBuf> = (0..RUNS).map(|r| sb.repo(&format!("p{r}"))).collect();
    // (project, run id); a new round of runs starts whenever all are done before the kills.
    let mut runs: Vec<(PathBuf, String)> = Vec::new();
    let start_round = |rng: &mut Rng, runs: &mut Vec<(PathBuf, String)>| {
        let round = runs.len() / RUNS;
        for (r, repo) in repos.iter().enumerate() {
            let file = sb.root().join(format!("plan-{round}-{r}.json"));
            std::fs::write(&file, plan(rng).to_string()).expect("plan");
            let script = format!("plan:{}", file.display());
            let run = sb
                .orchestrate_env(
                    repo,
                    &[
                        "start",
                        &format!("Feature {r} round {round}"),
                        "--concurrency",
                        "3",
                        "--json",
                    ],
                    &[
                        ("CLAUDE_FAKE_SCRIPT", &script),
                        ("CLAUDE_FAKE_PATIENT", "1"),
                    ],
                )
                .ok()
                .json();
            runs.push((repo.clone(), run["id"].as_str().expect("id").to_owned()));
        }
    };
    start_round(&mut rng, &mut runs);
    let (mut kills, mut worker_kills) = (0, 0);
    let mut killed: std::collections::HashSet<(String, String)> = Default::default();
    let mut reconciled_ms: Vec<u64> = Vec::new();
    while kills < DAEMON_KILLS {
        let ids: Vec<String> = runs.iter().map(|r| r.1.clone()).collect();
        let target = events(&sb, &ids).unwrap_or(0) + 1 + rng.below(2);
        let finished = wait::until("the runs to move on", Duration::from_secs(60), || {
            match (events(&sb, &ids), all_final(&sb, &ids)) {
                (_, Some(true)) => Some(true),
                (Some(n), Some(false)) if n >= target => Some(false),
                _ => None,
            }
        });
        if finished {
            for (repo, id) in &runs {
                let r = get(&sb, &format!("/v1/runs/{id}")).expect("the run");
                let log = sb
                    .orchestrate_in(repo, &["log", "--run", id, "-n", "1000"])
                    .ok()
                    .stdout;
                assert_eq!(r["status"], "completed", "seed {seed}: {r}\n{log}");
            }
            start_round(&mut rng, &mut runs);
            continue;
        }
        // A killed worker costs its task an attempt (of 3): each task loses at most one.
        let live: Vec<(i32, (String, String))> = workers(&sb)
            .into_iter()
            .filter_map(|(pid, dir)| Some((pid, task_of(&dir)?)))
            .filter(|(_, t)| !killed.contains(t))
            .collect();
        if worker_kills < WORKER_KILLS && !live.is_empty() && rng.below(4) == 0 {
            let (pid, task) = live[rng.below(live.len() as u64) as usize].clone();
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            killed.insert(task);
            worker_kills += 1;
            continue;
        }
        let pid = sb.daemon_pid();
        kill(Pid::from_raw(pid), Signal::SIGKILL).expect("kill -9 the daemon");
        wait::until("the daemon to die", wait::DEADLINE, || {
            sb.daemon_processes().is_empty().then_some(())
        });
        kills += 1;
        // The next command starts a new daemon, which reconciles every run.
        sb.orchestrate_in(&repos[0], &["status", "--json"]).ok();
        let took = wait::until("the runs to reconcile", Duration::from_secs(30), || {
            let h = sb.health()?;
            (h["reconciling"] == 0).then(|| h["reconciled_in_ms"].as_u64())?
        });
        reconciled_ms.push(took);
    }

    let mut merged = 0;
    let mut duplicates = 0;
    let mut lost = 0;
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut logs: std::collections::BTreeMap<PathBuf, String> = Default::default();
    for (repo, id) in &runs {
        let run = wait::until("the run to finish", Duration::from_secs(180), || {
            let r = get(&sb, &format!("/v1/runs/{id}"))?;
            matches!(
                r["status"].as_str(),
                Some("completed" | "failed" | "cancelled" | "escalated")
            )
            .then_some(r)
        });
        let log = sb.orchestrate_in(repo, &["log", "-n", "1000"]).ok().stdout;
        assert_eq!(run["status"], "completed", "{run}\n{log}");
        let branch = run["branch"].as_str().expect("branch");
        let counts = merges(&sb, repo, branch);
        for t in 0..TASKS {
            let task = format!("t{t}");
            let n = counts.get(&task).copied().unwrap_or(0);
            assert!(n >= 1, "task {task} of {id} never merged:\n{log}");
            merged += 1;
            duplicates += n - 1;
            let content = sb.git(repo, &["show", &format!("{branch}:parts/{task}.txt")]);
            assert_eq!(content, format!("written by task {task}"), "{task}");
        }
        for (kind, n) in check_log(&sb, id, &log) {
            *seen.entry(kind).or_insert(0) += n;
        }
        logs.entry(repo.clone()).or_default().push_str(&log);
    }
    // Once every run of a project is over: git reads a repository that workers still commit
    // to as broken (a ref to an object it listed before it was written).
    for (repo, log) in &logs {
        lost += unreachable_work(&sb, repo, log);
    }
    assert!(
        worker_kills > 0,
        "seed {seed}: no worker was ever found to kill"
    );
    wait::until("no agent process left", wait::DEADLINE, || {
        sb.agent_processes().is_empty().then_some(())
    });
    reconciled_ms.sort_unstable();
    eprintln!(
        "chaos (seed {seed}): {kills} daemon kills survived, {worker_kills} workers killed; \
         {} runs × {TASKS} tasks: {merged} merged, lost {lost}, duplicates {duplicates}; \
         start to fully reconciled: median {} ms, max {} ms; {seen:?}",
        runs.len(),
        reconciled_ms[reconciled_ms.len() / 2],
        reconciled_ms.last().copied().unwrap_or(0)
    );
    assert_eq!((lost, duplicates), (0, 0));
    assert!(
        seen.get("session_reattached").is_some_and(|n| *n > 0),
        "no live worker was ever re-attached: {seen:?}"
    );
}

/// How many merge commits each task has on `branch`.
fn merges(sb: &Sandbox, repo: &Path, branch: &str) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for l in sb
        .git(repo, &["log", "--merges", "--format=%s", branch])
        .lines()
    {
        if let Some(rest) = l.strip_prefix("Merge task ") {
            let t = rest.split(':').next().unwrap_or("").to_owned();
            *counts.entry(t).or_insert(0) += 1;
        }
    }
    counts
}

/// Worker commits no ref reaches any more (reflogs aside): work that would be lost to gc.
fn unreachable_work(sb: &Sandbox, repo: &Path, log: &str) -> usize {
    let out = std::process::Command::new("git")
        .args(["fsck", "--unreachable", "--no-reflogs", "--no-progress"])
        .current_dir(repo)
        .env("HOME", sb.home())
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .output()
        .expect("git fsck");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // A worktree whose creation was cut short by a kill and created again since (no commit
    // lost: it never held any) is the one error tolerated here; anything else fails.
    let tolerated = !stderr.trim().is_empty()
        && stderr
            .lines()
            .all(|l| l.ends_with("/HEAD: detached HEAD points at nothing"))
        && !stdout
            .lines()
            .any(|l| l.starts_with("missing") || l.starts_with("broken"));
    if !stderr.trim().is_empty() {
        eprintln!("git fsck in {}: {stderr}", repo.display());
    }
    if !(out.status.success() || tolerated) {
        // Which refs and worktree HEADs name a missing object, to find who wrote them.
        let missing: Vec<&str> = stdout
            .lines()
            .filter_map(|l| l.strip_prefix("missing ")?.split_whitespace().nth(1))
            .collect();
        let refs = sb.git(repo, &["for-each-ref", "--format=%(objectname) %(refname)"]);
        let trees = sb.git(repo, &["worktree", "list", "--porcelain"]);
        let named: Vec<&str> = refs
            .lines()
            .chain(trees.lines())
            .filter(|l| missing.iter().any(|m| l.contains(m)))
            .collect();
        panic!(
            "git fsck in {}: {stderr}\n{stdout}\nnamed by: {named:?}\nworktrees:\n{trees}\n{log}",
            repo.display()
        );
    }
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("unreachable commit "))
        .filter(|sha| {
            let subject = sb.git(repo, &["log", "-1", "--format=%s", sha]);
            // The daemon's own merges that were rolled back are not work.
            !subject.starts_with("Merge task ")
        })
        .inspect(|sha| eprintln!("unreachable work in {}: {sha}", repo.display()))
        .count()
}

/// The run's log: numbered without gaps, each task merged once, nothing after completion.
/// Returns how often the supervisor's kinds of events occur in it.
fn check_log(sb: &Sandbox, id: &str, log: &str) -> Vec<(&'static str, usize)> {
    let all = get(sb, &format!("/v1/runs/{id}/events")).expect("events");
    let events = all["events"].as_array().expect("events");
    for (i, e) in events.iter().enumerate() {
        assert_eq!(e["seq"], i as u64 + 1, "the log of {id} has a gap at {e}");
    }
    let mut merged: HashMap<&str, usize> = HashMap::new();
    for e in events.iter().filter(|e| e["kind"] == "task_merged") {
        *merged
            .entry(e["data"]["task"].as_str().unwrap_or(""))
            .or_insert(0) += 1;
    }
    assert_eq!(merged.len(), TASKS, "{log}");
    assert!(merged.values().all(|n| *n == 1), "{merged:?}\n{log}");
    let done = events
        .iter()
        .position(|e| e["kind"] == "status_changed" && e["data"]["to"] == "completed")
        .unwrap_or_else(|| panic!("no completion in the log of {id}:\n{log}"));
    assert!(
        events[done + 1..]
            .iter()
            .all(|e| !e["kind"].as_str().unwrap_or("").starts_with("task_")),
        "task events after completion:\n{log}"
    );
    [
        "session_reattached",
        "session_gone",
        "session_reaped",
        "merge_rolled_back",
        "task_not_completed",
    ]
    .into_iter()
    .map(|k| (k, events.iter().filter(|e| e["kind"] == k).count()))
    .collect()
}
