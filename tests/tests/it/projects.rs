//! Whole runs on projects that look like real ones (`orchestrator_tests::fixtures`): a Node
//! package installed by `npm ci` from a vendored tarball, a Python package in a venv its setup
//! creates, a Rust crate built offline. Workers (fake-claude's `code` mode) write real code and
//! tests; one of each project's workers first writes a wrong version, whose completion the
//! daemon refuses because the task's `verify` command fails, and fixes it in the same session.
//! Each run must: prepare every worktree (`.worktreeinclude` files, `--setup`) before use, run
//! every task's checks in its worktree and pass them, run the gate after the integration
//! worktree's setup, land the feature on the branch and leave the user's checkout untouched.
//! A second run with a broken `--setup` stops for a human with the setup's output. The commands
//! are the README's recipes.

use std::time::Duration;

use orchestrator_tests::fixtures::{self, Fixture};
use orchestrator_tests::repo::snapshot;
use orchestrator_tests::{Sandbox, wait};
use serde_json::Value;

fn status(sb: &Sandbox, fx: &Fixture) -> Value {
    sb.orchestrate_in(&fx.repo, &["status", "--json"])
        .ok()
        .json()
}

fn events(sb: &Sandbox, run: &str) -> Vec<Value> {
    let r = sb.get(&format!("/v1/runs/{run}/events"));
    let v: Value = serde_json::from_slice(&r.body).expect("events");
    v["events"].as_array().cloned().unwrap_or_default()
}

/// `start` with the fixture's setup and gate, and `--env` for its offline settings.
fn fixture_start<'a>(fx: &'a Fixture, feature: &'a str) -> Vec<&'a str> {
    let mut start = vec![
        "start",
        feature,
        "--concurrency",
        "2",
        "--setup",
        &fx.setup,
        "--gate",
        &fx.gate,
    ];
    for (k, _) in &fx.offline {
        start.extend(["--env", k.as_str()]);
    }
    start
}

/// Runs the fixture's plan to the end with its setup and gate; returns the gate times.
fn whole_run(sb: &Sandbox, fx: &Fixture, broken: &str) -> Vec<f64> {
    let before = snapshot(&fx.repo);
    let plan = sb.root().join(format!(
        "plan-{}.json",
        fx.repo.file_name().expect("a name").to_string_lossy()
    ));
    std::fs::write(&plan, fx.plan.to_string()).expect("plan");
    let script = format!("plan:{}", plan.display());
    let code = fx.code.display().to_string();
    let toolchain = fixtures::toolchain_env();
    let mut env: Vec<(&str, &str)> = vec![
        ("CLAUDE_FAKE_SCRIPT", &script),
        ("CLAUDE_FAKE_WORKER", "code"),
        ("CLAUDE_FAKE_CODE", &code),
    ];
    env.extend(toolchain.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    env.extend(fx.offline.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let mut start = fixture_start(fx, "Add the feature");
    start.push("--json");
    let run = sb.orchestrate_env(&fx.repo, &start, &env).ok().json();
    let id = run["id"].as_str().expect("run id").to_owned();
    let done = stopped(sb, &fx.repo, 300);
    let log = sb
        .orchestrate_in(&fx.repo, &["log", "-n", "300"])
        .ok()
        .stdout;
    assert_eq!(done["status"], "completed", "{done}\n{log}");

    // Every task's checks ran in its worktree and passed; the broken first try was refused.
    let tasks = sb.get(&format!("/v1/runs/{id}/tasks"));
    let tasks: Value = serde_json::from_slice(&tasks.body).expect("tasks");
    for t in tasks["tasks"].as_array().expect("tasks") {
        let checks = t["checks"]
            .as_array()
            .unwrap_or_else(|| panic!("{t}\n{log}"));
        assert_eq!(checks.len(), 1, "{t}");
        assert_eq!(checks[0]["passed"], true, "{t}\n{log}");
        let check_log = checks[0]["log"].as_str().expect("log");
        assert!(check_log.contains("/.orchestrator/verify/"), "{check_log}");
        assert!(std::path::Path::new(check_log).exists(), "{check_log}");
    }
    let refused = std::fs::read_to_string(fx.code.join(format!("{broken}.refused")))
        .unwrap_or_else(|e| panic!("{broken}'s wrong try was not refused ({e}):\n{log}"));
    assert!(refused.contains("complete_task refused"), "{refused}");
    assert!(
        log.contains(&format!("Task {broken}: its completion was refused")),
        "{log}"
    );

    // Each worktree was prepared before use; the gate ran after the integration's setup.
    let ev = events(sb, &id);
    let seq = |pred: &dyn Fn(&Value) -> bool| {
        ev.iter()
            .filter(|e| pred(e))
            .map(|e| e["seq"].as_u64().unwrap_or(0))
            .collect::<Vec<_>>()
    };
    let prepared = |who: &str| {
        let who = who.to_owned();
        seq(&move |e: &Value| {
            e["kind"] == "worktree_prepared"
                && e["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with(&who) && m.contains("` passed in"))
        })
    };
    assert!(!prepared("Planner").is_empty(), "{log}");
    for t in fx.plan["tasks"].as_array().expect("tasks") {
        let who = format!("Task {}", t["id"].as_str().expect("id"));
        assert!(!prepared(&who).is_empty(), "{who} was not set up:\n{log}");
    }
    let integration = prepared("Integration worktree");
    let gates = seq(&|e: &Value| e["kind"] == "gate_passed");
    assert_eq!(gates.len(), 2, "{log}");
    assert!(
        integration.first().is_some_and(|i| *i < gates[0]),
        "the gate ran before the integration worktree's setup:\n{log}"
    );

    // The feature is on the branch; the user's checkout is as it was.
    let branch = done["branch"].as_str().expect("branch");
    for (file, piece) in &fx.expect {
        let body = sb.git(&fx.repo, &["show", &format!("{branch}:{file}")]);
        assert!(body.contains(piece), "{file} on {branch}: {body}");
    }
    assert_eq!(snapshot(&fx.repo), before, "the user's checkout changed");
    ev.iter()
        .filter(|e| e["kind"] == "gate_passed")
        .map(|e| e["data"]["secs"].as_f64().unwrap_or(0.0))
        .collect()
}

/// A second run whose setup fails stops for a human with the command's output, spending no
/// attempt of any task.
fn broken_setup(sb: &Sandbox, fx: &Fixture) {
    let start = [
        "start",
        "Again, with a broken setup",
        "--setup",
        "echo 'cannot find the toolchain' >&2; exit 3",
        "--json",
    ];
    sb.orchestrate_in(&fx.repo, &start).ok();
    let s = stopped(sb, &fx.repo, 120);
    let log = sb
        .orchestrate_in(&fx.repo, &["log", "-n", "100"])
        .ok()
        .stdout;
    assert_eq!(s["status"], "escalated", "{s}\n{log}");
    let why = s["status_reason"].as_str().unwrap_or("").to_owned();
    let esc = sb
        .orchestrate_in(&fx.repo, &["escalations", "--json"])
        .ok()
        .stdout;
    for text in ["exit 3", "cannot find the toolchain", "2 times in a row"] {
        assert!(
            why.contains(text) || esc.contains(text) || log.contains(text),
            "{text:?} is not said:\n{why}\n{esc}\n{log}"
        );
    }
    sb.orchestrate_in(&fx.repo, &["cancel"]).ok();
}

#[test]
fn a_node_project_installs_checks_gates_and_lands() {
    let sb = Sandbox::new();
    let fx = fixtures::node(&sb);
    // Before any run, doctor says what a worktree would lack and how to fix it.
    let repo = fx.repo.display().to_string();
    let doctor = sb.orchestrate(&["doctor", "--project", &repo]).stdout;
    assert!(
        doctor.contains("node_modules") && doctor.contains("--setup \"npm ci\""),
        "{doctor}"
    );
    assert!(doctor.contains(".worktreeinclude copies it"), "{doctor}");
    whole_run(&sb, &fx, "greet");
    let doctor = sb.orchestrate(&["doctor", "--project", &repo]).stdout;
    assert!(doctor.contains("the setup `npm ci"), "{doctor}");
    // `.env` reached the worktrees (greet's test reads it) but never the branch.
    let branch = status(&sb, &fx)["branch"]
        .as_str()
        .expect("branch")
        .to_owned();
    let listed = sb.git(&fx.repo, &["ls-tree", "-r", "--name-only", &branch]);
    assert!(
        !listed
            .lines()
            .any(|l| l == ".env" || l.starts_with("node_modules/")),
        "{listed}"
    );
    broken_setup(&sb, &fx);
}

#[test]
fn a_python_project_in_a_venv_checks_gates_and_lands() {
    let sb = Sandbox::new();
    let fx = fixtures::python(&sb);
    whole_run(&sb, &fx, "add");
    broken_setup(&sb, &fx);
}

#[test]
fn a_rust_project_checks_and_gates_incrementally_and_lands() {
    let sb = Sandbox::new();
    let fx = fixtures::rust(&sb);
    let secs = whole_run(&sb, &fx, "add");
    eprintln!(
        "rust fixture: first gate {:.2}s, second gate {:.2}s",
        secs[0], secs[1]
    );
    // The integration worktree persists: the second gate does not build the dependency again.
    let gates = fx.repo.join(".orchestrator/gates");
    let mut logs: Vec<_> = std::fs::read_dir(&gates)
        .expect("gate logs")
        .flatten()
        .map(|e| e.path())
        .collect();
    logs.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
    let text: Vec<String> = logs
        .iter()
        .map(|p| std::fs::read_to_string(p).unwrap_or_default())
        .collect();
    assert!(text[0].contains("Compiling helper"), "{}", text[0]);
    assert!(!text[1].contains("Compiling helper"), "{}", text[1]);
    broken_setup(&sb, &fx);
}

/// Starts a two-task run on a plain repository with `args`; returns the repo.
fn two_tasks(sb: &Sandbox, args: &[&str]) -> std::path::PathBuf {
    let repo = sb.repo("app");
    let plan = serde_json::json!({"summary": "Two files", "tasks": [
        {"id": "a", "title": "Write a", "description": "Write a.txt", "acceptance_criteria": ["a.txt"], "files": ["a.txt"]},
        {"id": "b", "title": "Write b", "description": "Write b.txt", "acceptance_criteria": ["b.txt"], "files": ["b.txt"]}]});
    let file = sb.root().join("plan.json");
    std::fs::write(&file, plan.to_string()).expect("plan");
    let script = format!("plan:{}", file.display());
    let mut start = vec!["start", "Two files"];
    start.extend_from_slice(args);
    sb.orchestrate_env(&repo, &start, &[("CLAUDE_FAKE_SCRIPT", &script)])
        .ok();
    repo
}

/// The run's status once it stopped (completed, failed or escalated), within `secs`.
fn stopped(sb: &Sandbox, repo: &std::path::Path, secs: u64) -> Value {
    wait::until("the run to stop", Duration::from_secs(secs), || {
        let s = sb.orchestrate_in(repo, &["status", "--json"]).ok().json();
        matches!(
            s["status"].as_str(),
            Some("escalated" | "failed" | "completed")
        )
        .then_some(s)
    })
}

fn attempts(sb: &Sandbox, run: &str) -> Vec<u64> {
    let r = sb.get(&format!("/v1/runs/{run}/tasks"));
    let v: Value = serde_json::from_slice(&r.body).expect("tasks");
    v["tasks"]
        .as_array()
        .expect("tasks")
        .iter()
        .map(|t| t["attempts"].as_u64().unwrap_or(99))
        .collect()
}

#[test]
fn a_setup_failing_in_the_workers_worktrees_stops_the_run_unspent_and_resume_changes_it() {
    let sb = Sandbox::new();
    // Passes where the planner explores, fails in every worker's worktree.
    let setup =
        "case \"$PWD\" in *planner*) ;; *) echo 'npm ERR! missing lockfile' >&2; exit 4;; esac";
    let repo = two_tasks(&sb, &["--setup", setup, "--concurrency", "1"]);
    let s = stopped(&sb, &repo, 120);
    let log = sb.orchestrate_in(&repo, &["log", "-n", "100"]).ok().stdout;
    assert_eq!(s["status"], "escalated", "{s}\n{log}");
    assert!(log.contains("npm ERR! missing lockfile"), "{log}");
    assert!(log.contains("not counted as an attempt"), "{log}");
    let run = s["id"].as_str().expect("id").to_owned();
    assert!(attempts(&sb, &run).iter().all(|a| *a == 0), "{log}");
    // The user fixes it for the rest of the run.
    sb.orchestrate_in(&repo, &["resume", "--setup", "true"])
        .ok();
    let s = stopped(&sb, &repo, 120);
    let log = sb.orchestrate_in(&repo, &["log", "-n", "200"]).ok().stdout;
    assert_eq!(s["status"], "completed", "{s}\n{log}");
    assert!(log.contains("From now on: setup `true`"), "{log}");
    let status = sb.orchestrate_in(&repo, &["status"]).ok().stdout;
    assert!(status.contains("setup      true"), "{status}");
}

#[test]
fn a_task_that_changes_the_dependencies_is_gated_with_them_installed() {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    std::fs::write(repo.join("requirements.txt"), "base\n").expect("write");
    std::fs::write(repo.join(".gitignore"), ".installed\n").expect("write");
    sb.git(&repo, &["add", "-A"]);
    sb.git(&repo, &["commit", "-qm", "dependencies"]);
    // The first task changes what the setup installs from; the second does not.
    let plan = serde_json::json!({"summary": "Deps", "tasks": [
        {"id": "deps", "title": "Add a dependency", "description": "Edit requirements.txt",
         "acceptance_criteria": ["listed"], "files": ["requirements.txt"]},
        {"id": "b", "title": "Write b", "description": "Write b.txt", "acceptance_criteria": ["b.txt"],
         "files": ["b.txt"], "depends_on": ["deps"]}]});
    let file = sb.root().join("plan.json");
    std::fs::write(&file, plan.to_string()).expect("plan");
    let script = format!("plan:{}", file.display());
    let start = [
        "start",
        "Deps",
        "--setup",
        "cp requirements.txt .installed",
        "--gate",
        "cmp requirements.txt .installed",
        "--concurrency",
        "1",
    ];
    sb.orchestrate_env(&repo, &start, &[("CLAUDE_FAKE_SCRIPT", &script)])
        .ok();
    let s = stopped(&sb, &repo, 120);
    let log = sb.orchestrate_in(&repo, &["log", "-n", "200"]).ok().stdout;
    assert_eq!(s["status"], "completed", "{s}\n{log}");
    let again: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("prepared again"))
        .collect();
    assert_eq!(again.len(), 1, "{log}");
    assert!(
        again[0].contains("requirements.txt changed (task deps's merge)"),
        "{log}"
    );
    let run = s["id"].as_str().expect("id").to_owned();
    assert_eq!(attempts(&sb, &run), [1, 1], "{log}");
}

#[test]
fn a_gate_that_cannot_run_stops_the_run_at_once_and_resume_gate_changes_it() {
    let sb = Sandbox::new();
    let repo = two_tasks(
        &sb,
        &[
            "--gate",
            ".venv/bin/python -m pytest -q",
            "--concurrency",
            "1",
        ],
    );
    let s = stopped(&sb, &repo, 120);
    let log = sb.orchestrate_in(&repo, &["log", "-n", "100"]).ok().stdout;
    assert_eq!(s["status"], "escalated", "{s}\n{log}");
    assert!(log.contains("exit 127"), "{log}");
    assert!(log.contains("not the workers' code"), "{log}");
    let run = s["id"].as_str().expect("id").to_owned();
    assert!(
        attempts(&sb, &run).iter().all(|a| *a <= 1),
        "a gate that cannot run spent attempts:\n{log}"
    );
    assert!(
        !log.contains("gate_failed") && !log.contains("goes back with the output"),
        "{log}"
    );
    sb.orchestrate_in(
        &repo,
        &[
            "answer",
            "use a gate that exists",
            "--gate",
            "test -f a.txt",
        ],
    )
    .ok();
    let s = stopped(&sb, &repo, 120);
    let log = sb.orchestrate_in(&repo, &["log", "-n", "200"]).ok().stdout;
    assert_eq!(s["status"], "completed", "{s}\n{log}");
    assert!(log.contains("Gate `test -f a.txt` passed"), "{log}");
}

/// The Node fixture with the real `claude` as planner and workers (its Write and Bash tools,
/// our MCP tools), scripted by the fake model API: `greet`'s worker first writes a wrong
/// version; the daemon refuses its `complete_task` with the failing check's output, which
/// claude hands back to the model, and the same session fixes it.
#[test]
fn the_real_claude_builds_the_node_project_and_fixes_a_refused_completion() {
    use crate::real_claude::{daemon_env, planner_reply, steps};
    use orchestrator_tests::deps;
    use orchestrator_tests::fake_model::{self, FakeModel, Reply};
    let sb = Sandbox::new();
    let fx = fixtures::node(&sb);
    let before = snapshot(&fx.repo);
    let read = |dir: &str| -> Vec<(String, String)> {
        let root = fx.code.join(dir);
        ["src", "test"]
            .iter()
            .flat_map(|sub| {
                std::fs::read_dir(root.join(sub))
                    .into_iter()
                    .flatten()
                    .flatten()
            })
            .map(|e| {
                let rel = e
                    .path()
                    .strip_prefix(&root)
                    .expect("under")
                    .display()
                    .to_string();
                (rel, std::fs::read_to_string(e.path()).expect("read"))
            })
            .collect()
    };
    let (slug, greet, broken) = (read("slug"), read("greet"), read("greet.broken"));
    let plan = fx.plan.clone();
    let fake = FakeModel::start(std::sync::Arc::new(move |req: &Value| {
        let text = req.to_string();
        let n = steps(req);
        if text.contains("You are the planner") {
            return planner_reply(&plan, n);
        }
        let wt = text
            .split("You are in your own git worktree, ")
            .nth(1)
            .and_then(|r| r.split(", on branch").next())
            .unwrap_or("/nonexistent")
            .to_owned();
        let write = |(rel, body): &(String, String)| Reply::ToolUse {
            name: "Write".into(),
            input: serde_json::json!({"file_path": format!("{wt}/{rel}"), "content": body}),
        };
        let commit = Reply::ToolUse {
            name: "Bash".into(),
            input: serde_json::json!({"command": format!(
                "cd {wt} && git add -A && git -c user.name=W -c user.email=w@example.invalid commit -q -m work"),
                "description": "commit"}),
        };
        let complete = Reply::ToolUse {
            name: "mcp__orch__complete_task".into(),
            input: serde_json::json!({"summary": "implemented it with a test"}),
        };
        let mut seq: Vec<Reply> = Vec::new();
        let round = |files: &[(String, String)], seq: &mut Vec<Reply>| {
            seq.extend(files.iter().map(write));
            seq.push(commit.clone());
            seq.push(complete.clone());
        };
        if text.contains("Your task: greet ") {
            round(&broken, &mut seq);
            round(&greet, &mut seq);
        } else {
            round(&slug, &mut seq);
        }
        seq.get(n)
            .cloned()
            .unwrap_or_else(|| Reply::Text("Done.".into()))
    }));
    let claude = deps::claude();
    let claude = claude.to_str().expect("utf-8 path");
    let mut env = daemon_env(claude, &fake.url);
    env.extend(fx.offline.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let start = fixture_start(&fx, "Slugs and greetings");
    sb.orchestrate_env(&fx.repo, &start, &env).ok();
    let done = stopped(&sb, &fx.repo, 300);
    let log = sb
        .orchestrate_in(&fx.repo, &["log", "-n", "300"])
        .ok()
        .stdout;
    assert_eq!(done["status"], "completed", "{done}\n{log}");
    let refusal = fake
        .requests()
        .iter()
        .filter(|r| r.to_string().contains("Your task: greet "))
        .filter_map(fake_model::last_tool_result)
        .find(|t| t.contains("complete_task refused"))
        .unwrap_or_else(|| panic!("claude never saw the refusal:\n{log}"));
    assert!(
        refusal.contains("node --test test/greet.test.js"),
        "{refusal}"
    );
    let branch = done["branch"].as_str().expect("branch");
    for (file, piece) in &fx.expect {
        let body = sb.git(&fx.repo, &["show", &format!("{branch}:{file}")]);
        assert!(body.contains(piece), "{file}: {body}");
    }
    assert_eq!(snapshot(&fx.repo), before, "the user's checkout changed");
}
