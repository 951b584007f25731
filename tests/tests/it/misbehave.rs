//! The misbehaving-model suite: runs of a 10-task DAG at concurrency 4 whose workers, chosen by
//! a seed, do what real models do wrong (`orchestrator_tests::misbehave::Conduct`: claim more
//! work, complete twice, reset their branch, commit elsewhere, write into the user's checkout,
//! print huge lines, die mid-commit, …), while the daemon is `kill -9`ed at random moments.
//! Checked by the test for every run: it completes; every task is merged exactly once with its
//! own content; every commit a worker made is on a branch or under `refs/orchestrator/`; the
//! user's checkout and a directory outside the project are byte-identical; no process is left.
//! A table of seeds and outcomes is printed.
//!
//! `ORCH_MISBEHAVE_RUNS` (default 12) runs with seeds from `ORCH_MISBEHAVE_SEED` on; the full
//! suite is `ORCH_MISBEHAVE_RUNS=50 cargo test -p orchestrator-tests --test it -- misbehave
//! --nocapture`.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use orchestrator_tests::misbehave::Conduct;
use orchestrator_tests::repo::snapshot;
use orchestrator_tests::rng::Rng;
use orchestrator_tests::{Sandbox, http, wait};
use serde_json::{Value, json};

const TASKS: usize = 10;

/// A random DAG of [`TASKS`] tasks, each writing its own file.
fn plan(rng: &mut Rng) -> Value {
    let tasks: Vec<Value> = (0..TASKS)
        .map(|i| {
            let deps: Vec<String> = if i > 0 && rng.below(3) == 0 {
                vec![format!("t{}", rng.below(i as u64))]
            } else {
                vec![]
            };
            json!({"id": format!("t{i}"), "title": format!("Part {i}"),
                   "description": format!("Write part {i}."),
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

fn last_seq(sb: &Sandbox, run: &str) -> Option<u64> {
    get(sb, &format!("/v1/runs/{run}/events?tail=1"))
        .map(|v| v["events"][0]["seq"].as_u64().unwrap_or(0))
}

fn final_status(sb: &Sandbox, run: &str) -> Option<String> {
    let r = get(sb, &format!("/v1/runs/{run}"))?;
    let s = r["status"].as_str()?.to_owned();
    matches!(
        s.as_str(),
        "completed" | "failed" | "cancelled" | "escalated"
    )
    .then_some(s)
}

/// One run's line in the table.
struct Outcome {
    seed: u64,
    status: String,
    kills: usize,
    conduct: BTreeMap<&'static str, usize>,
    salvaged: usize,
    escapes_refused: usize,
    secs: f64,
}

#[test]
fn misbehaving_workers_and_kill_9_never_break_an_invariant() {
    let runs: u64 = std::env::var("ORCH_MISBEHAVE_RUNS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(12);
    let (_, first) = Rng::seeded("ORCH_MISBEHAVE_SEED", 0xBAD_5EED);
    let sb = Sandbox::new();
    let outside = sb.root().join("outside");
    std::fs::create_dir_all(&outside).expect("mkdir");
    std::fs::write(outside.join("keep.txt"), "not the daemon's\n").expect("write");
    let outside_before = snapshot(&outside);
    let mut table = Vec::new();
    for seed in first..first + runs {
        table.push(one_run(&sb, seed));
        assert_eq!(
            snapshot(&outside),
            outside_before,
            "seed {seed}: outside changed"
        );
    }
    eprintln!("\nmisbehaving workers, {TASKS} tasks at concurrency 4 each:");
    eprintln!(
        "{:>12}  {:<10} {:>5} {:>8} {:>8} {:>6}  conduct seen",
        "seed", "outcome", "kills", "salvaged", "refused", "secs"
    );
    let mut all: BTreeMap<&str, usize> = BTreeMap::new();
    for o in &table {
        let seen: Vec<String> = o.conduct.iter().map(|(k, n)| format!("{k}×{n}")).collect();
        eprintln!(
            "{:>12}  {:<10} {:>5} {:>8} {:>8} {:>6.1}  {}",
            o.seed,
            o.status,
            o.kills,
            o.salvaged,
            o.escapes_refused,
            o.secs,
            seen.join(" ")
        );
        for (k, n) in &o.conduct {
            *all.entry(k).or_default() += n;
        }
    }
    eprintln!("all runs: {all:?}");
}

fn one_run(sb: &Sandbox, seed: u64) -> Outcome {
    let started = Instant::now();
    let mut rng = Rng::new(seed);
    let repo = sb.repo(&format!("m{seed}"));
    let user_before = snapshot(&repo);
    let plan_file = sb.root().join(format!("plan-{seed}.json"));
    std::fs::write(&plan_file, plan(&mut rng).to_string()).expect("plan");
    let ledger = sb.root().join(format!("ledger-{seed}.txt"));
    let script = format!("plan:{}", plan_file.display());
    let (seed_s, ledger_s) = (seed.to_string(), ledger.display().to_string());
    let run = sb
        .orchestrate_env(
            &repo,
            &["start", "Parts", "--concurrency", "4", "--json"],
            &[
                ("CLAUDE_FAKE_SCRIPT", script.as_str()),
                ("CLAUDE_FAKE_WORKER", "misbehave"),
                ("CLAUDE_FAKE_SEED", seed_s.as_str()),
                ("CLAUDE_FAKE_LEDGER", ledger_s.as_str()),
                ("CLAUDE_FAKE_PATIENT", "1"),
            ],
        )
        .ok()
        .json()["id"]
        .as_str()
        .expect("run id")
        .to_owned();
    // Up to three kill -9s of the daemon, each after a random number of further events.
    let planned_kills = rng.below(4) as usize;
    let mut kills = 0;
    let status = loop {
        let target = last_seq(sb, &run).unwrap_or(0) + 1 + rng.below(12);
        let done = wait::until("the run to move on", Duration::from_secs(120), || {
            if let Some(s) = final_status(sb, &run) {
                return Some(Some(s));
            }
            (last_seq(sb, &run)? >= target).then_some(None)
        });
        if let Some(s) = done {
            break s;
        }
        if kills < planned_kills {
            kill(Pid::from_raw(sb.daemon_pid()), Signal::SIGKILL).expect("kill -9 the daemon");
            wait::until("the daemon to die", wait::DEADLINE, || {
                sb.daemon_processes().is_empty().then_some(())
            });
            kills += 1;
            // The next command starts a daemon, which reconciles the run.
            sb.orchestrate_in(&repo, &["status", "--json"]).ok();
        }
    };
    let log = sb
        .orchestrate_in(&repo, &["log", "--run", &run, "-n", "2000"])
        .ok()
        .stdout;
    let lines = std::fs::read_to_string(&ledger).unwrap_or_default();
    // What git holds, for a failure to be read without rerunning it.
    let refs = sb.git(
        &repo,
        &["for-each-ref", "--format=%(objectname:short) %(refname)"],
    );
    let reflog = sb.git(&repo, &["reflog", "show", "--all", "--format=%h %gD %gs"]);
    let log = format!("{log}\nrefs:\n{refs}\nreflogs:\n{reflog}");
    assert_eq!(
        status, "completed",
        "seed {seed}: the run ended {status}:\n{log}\n{lines}"
    );
    let r = get(sb, &format!("/v1/runs/{run}")).expect("the run");
    let branch = r["branch"].as_str().expect("branch").to_owned();

    // Every task merged exactly once, with its own content.
    let events = get(sb, &format!("/v1/runs/{run}/events")).expect("events");
    let events = events["events"].as_array().expect("events").clone();
    let mut merged: HashMap<String, usize> = HashMap::new();
    for e in events.iter().filter(|e| e["kind"] == "task_merged") {
        *merged
            .entry(e["data"]["task"].as_str().unwrap_or("").to_owned())
            .or_default() += 1;
    }
    let merge_commits = sb.git(&repo, &["log", "--merges", "--format=%s", &branch]);
    for t in 0..TASKS {
        let task = format!("t{t}");
        assert_eq!(
            merged.get(&task),
            Some(&1),
            "seed {seed}: {task} merged {merged:?}\n{log}"
        );
        let n = merge_commits
            .lines()
            .filter(|l| l.starts_with(&format!("Merge task {task}:")))
            .count();
        assert_eq!(n, 1, "seed {seed}: {task} has {n} merge commits\n{log}");
        let content = sb.git(&repo, &["show", &format!("{branch}:parts/{task}.txt")]);
        assert_eq!(
            content,
            format!("written by task {task}"),
            "seed {seed}: {task}\n{log}"
        );
    }

    // No commit a worker made is lost: each is on a branch or under refs/orchestrator/.
    let mut conduct: BTreeMap<&'static str, usize> = BTreeMap::new();
    let mut escapes_refused = 0;
    for line in lines.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["commit", sha, task] => {
                let out = sb.git(
                    &repo,
                    &[
                        "rev-list",
                        "-n1",
                        sha,
                        "--not",
                        "--branches",
                        "--glob=refs/orchestrator/*",
                    ],
                );
                assert!(
                    out.is_empty(),
                    "seed {seed}: commit {sha} of {task} is lost\n{log}\n{lines}"
                );
            }
            ["conduct", name, ..] => {
                let c = Conduct::ALL
                    .into_iter()
                    .find(|c| c.name() == *name)
                    .expect("a known conduct");
                *conduct.entry(c.name()).or_default() += 1;
            }
            ["claim", verdict, task] => {
                assert_eq!(
                    *verdict, "refused",
                    "seed {seed}: {task}'s worker got a second task"
                );
            }
            ["escape", verdict, task] => {
                let confined = sb.health().is_some_and(|h| h["agents_confined"] == true);
                if confined {
                    assert_eq!(
                        *verdict, "refused",
                        "seed {seed}: {task} wrote the checkout"
                    );
                    escapes_refused += 1;
                }
            }
            _ => panic!("seed {seed}: a ledger line the suite does not know: {line}"),
        }
    }
    // The user's checkout is byte-identical (where the system lets the daemon confine agents;
    // elsewhere only what no worker was told to touch).
    let confined = sb.health().is_some_and(|h| h["agents_confined"] == true);
    let mut user_after = snapshot(&repo);
    if !confined {
        user_after.retain(|p, _| !p.to_string_lossy().starts_with("escaped-"));
        user_after.insert("README.md".into(), b"# demo\n".to_vec());
    }
    assert_eq!(
        user_after, user_before,
        "seed {seed}: the user's checkout changed\n{log}"
    );
    assert_eq!(
        sb.git(&repo, &["status", "--porcelain"]),
        "",
        "seed {seed}: the user's checkout is not clean"
    );
    if wait::polled(wait::DEADLINE, || {
        sb.agent_processes().is_empty().then_some(())
    })
    .is_none()
    {
        let left: Vec<String> = sb
            .agent_processes()
            .into_iter()
            .map(|pid| {
                let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
                let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap_or_default();
                format!(
                    "{pid} in {}: {}",
                    cwd.display(),
                    String::from_utf8_lossy(&cmd).replace('\0', " ")
                )
            })
            .collect();
        panic!(
            "seed {seed}: agent processes left after the run:\n{}\n{log}\n{lines}",
            left.join("\n")
        );
    }
    let salvaged = events
        .iter()
        .filter(|e| e["kind"] == "worker_salvaged")
        .count();
    Outcome {
        seed,
        status,
        kills,
        conduct,
        salvaged,
        escapes_refused,
        secs: started.elapsed().as_secs_f64(),
    }
}

/// The same misbehaviour through the real `claude` (its Bash, Write and MCP tools), scripted
/// by the fake model API: one worker asks for another task after completing, one works on a
/// branch of its own, one resets its commit away before completing, one tries to write and
/// delete in the user's checkout. The run completes with every task's own content, the reset
/// commit is kept, the second claim never reaches the board and the checkout is untouched.
#[test]
fn the_real_claude_misbehaving_keeps_every_invariant() {
    use crate::real_claude::{daemon_env, planner_reply, steps, worker_reply};
    use orchestrator_tests::deps;
    use orchestrator_tests::fake_model::{self, FakeModel, Reply};
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    let before = snapshot(&repo);
    let ids = ["claims", "side", "reset", "escape"];
    let tasks: Vec<Value> = ids
        .iter()
        .map(|id| {
            json!({"id": id, "title": format!("Write {id}.txt"), "description": format!("Create {id}.txt"),
                   "acceptance_criteria": ["it exists"], "files": [format!("{id}.txt")]})
        })
        .collect();
    let plan = json!({"summary": "Four files", "tasks": tasks});
    let user = repo.display().to_string();
    let fake = FakeModel::start(std::sync::Arc::new(move |req: &Value| {
        let text = req.to_string();
        let n = steps(req);
        if text.contains("You are the planner") {
            return planner_reply(&plan, n);
        }
        let id = ids
            .iter()
            .find(|id| text.contains(&format!("Your task: {id} ")))
            .copied()
            .unwrap_or("unknown");
        let retry = text.contains("The previous attempt did not land");
        let (file, body) = (format!("{id}.txt"), format!("{id}\n"));
        let bash = |command: String| Reply::ToolUse {
            name: "Bash".into(),
            input: json!({"command": command, "description": "git"}),
        };
        let wt = text
            .split("You are in your own git worktree, ")
            .nth(1)
            .and_then(|r| r.split(", on branch").next())
            .unwrap_or("/nonexistent")
            .to_owned();
        match (id, retry, n) {
            ("claims", _, 3) => Reply::ToolUse {
                name: "mcp__orch__claim_task".into(),
                input: json!({}),
            },
            ("claims", _, 4) => Reply::Text("Done.".into()),
            ("side", false, 0) => bash(format!("cd {wt} && git checkout -q -b side-branch")),
            ("side", false, n) => worker_reply(&text, n - 1, &file, &body),
            ("reset", false, 2) => bash(format!("cd {wt} && git reset -q --hard HEAD~1")),
            ("reset", false, n) if n > 2 => worker_reply(&text, n - 1, &file, &body),
            ("escape", false, 0) => bash(format!(
                "echo oops > {user}/escaped.txt; rm -f {user}/README.md; ls {user}"
            )),
            ("escape", false, n) => worker_reply(&text, n - 1, &file, &body),
            _ => worker_reply(&text, n, &file, &body),
        }
    }));
    let claude = deps::claude();
    let claude = claude.to_str().expect("utf-8 path");
    sb.orchestrate_env(
        &repo,
        &["start", "Four files", "--concurrency", "2"],
        &daemon_env(claude, &fake.url),
    )
    .ok();
    let run = wait::until("the run to finish", Duration::from_secs(300), || {
        let s = sb.orchestrate_in(&repo, &["status", "--json"]).ok().json();
        matches!(
            s["status"].as_str(),
            Some("completed" | "failed" | "escalated")
        )
        .then_some(s)
    });
    let log = sb.orchestrate_in(&repo, &["log", "-n", "300"]).ok().stdout;
    assert_eq!(run["status"], "completed", "{run}\n{log}");
    let branch = run["branch"].as_str().expect("branch");
    for id in ids {
        assert_eq!(
            sb.git(&repo, &["show", &format!("{branch}:{id}.txt")]),
            id,
            "{log}"
        );
    }
    assert!(
        log.contains("not on orchestrate/"),
        "the side branch was taken: {log}"
    );
    assert!(log.contains("holds none of the commits it made"), "{log}");
    let kept = sb.git(
        &repo,
        &["for-each-ref", "--format=%(refname)", "refs/orchestrator/"],
    );
    assert!(
        kept.contains("/kept/reset."),
        "the reset commit is kept: {kept}"
    );
    let requests = fake.requests();
    let claim_answer = requests
        .iter()
        .filter(|r| r.to_string().contains("Your task: claims "))
        .find(|r| steps(r) == 4)
        .and_then(fake_model::last_tool_result)
        .expect("claude answered the claim");
    assert!(!claim_answer.contains("\"claimed\":true"), "{claim_answer}");
    if sb.health().is_some_and(|h| h["agents_confined"] == true) {
        let escape = requests
            .iter()
            .filter(|r| r.to_string().contains("Your task: escape "))
            .find(|r| steps(r) == 1)
            .and_then(fake_model::last_tool_result)
            .expect("claude ran the escape");
        assert!(escape.contains("Read-only file system"), "{escape}");
        assert_eq!(snapshot(&repo), before, "the user's checkout changed");
    }
    wait::until("no agent process left", wait::DEADLINE, || {
        sb.agent_processes().is_empty().then_some(())
    });
}
