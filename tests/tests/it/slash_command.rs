//! The `/orchestrate` slash command, driven by the real `claude` end to end: installed by
//! `orchestrate setup`, expanded by claude with the feature, its `allowed-tools` letting the
//! session run `orchestrate` and `git` without any permission bypass. The fake model plays the
//! session the command asks for: doctor, start with the context on stdin, wait, relay the
//! escalation and answer it with a new gate, wait again, report the branch. The run's own
//! sessions are the fast tier's fake claude.

use std::io::Read;
use std::process::Stdio;
use std::sync::Arc;

use orchestrator_tests::bins::bins;
use orchestrator_tests::fake_model::{self, FakeModel, Reply};
use orchestrator_tests::{Sandbox, deps, wait};
use serde_json::{Value, json};

/// The context the session passes on stdin; the run's `context.md` must hold it.
const CONTEXT: &str = "Greeting context: say hello in src/greet.txt";

/// How many tool results the conversation holds so far: the step the session is at.
fn step(req: &Value) -> usize {
    req["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["content"].as_array())
        .flatten()
        .filter(|b| b["type"] == "tool_result")
        .count()
}

/// The JSON object in a tool result (a command's `--json` output after claude's "Exit code").
fn json_in(text: &str) -> Value {
    let (from, to) = (text.find('{'), text.rfind('}'));
    match (from, to) {
        (Some(a), Some(b)) if a < b => serde_json::from_str(&text[a..=b]).unwrap_or(Value::Null),
        _ => Value::Null,
    }
}

fn bash(command: String) -> Reply {
    Reply::ToolUse {
        name: "Bash".into(),
        input: json!({"command": command, "description": "orchestrate"}),
    }
}

/// The session the command asks for, one step per tool result.
fn session(gate: String) -> fake_model::Script {
    Arc::new(move |req: &Value| {
        let last = fake_model::last_tool_result(req).unwrap_or_default();
        match step(req) {
            0 => bash("orchestrate doctor".into()),
            // Not among the command's allowed tools: refused, since nothing bypasses them.
            1 => bash("touch refused.txt".into()),
            2 => bash(format!(
                "orchestrate start \"Add a greeting\" --project . --context-file - --skip-codex \
                 --gate '{gate}' --json <<'CONTEXT'\n{CONTEXT}\nCONTEXT"
            )),
            3 => bash("orchestrate wait --project . --json --timeout 10m".into()),
            4 => match json_in(&last)["escalations"][0]["id"].as_i64() {
                Some(id) => bash(format!(
                    "orchestrate answer {id} \"The database is not needed; gate on true\" \
                     --gate true"
                )),
                None => Reply::Text(format!("No escalation to relay: {last}")),
            },
            5 => bash("orchestrate wait --project . --json --timeout 10m".into()),
            6 => bash("git log --oneline main..orchestrate/add-a-greeting".into()),
            _ => Reply::Text(format!(
                "The run completed on orchestrate/add-a-greeting: {last}"
            )),
        }
    })
}

#[test]
fn the_real_claude_runs_the_slash_command_through_an_escalation_to_the_branch() {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    sb.orchestrate(&["setup"]).ok();
    let plan =
        crate::execution::write_plan(&sb, vec![crate::execution::task("a", &[], &["a.txt"])]);
    let gate = format!("test -f {}", sb.root().join("never").display());
    let fake = FakeModel::start(session(gate));
    let bin_dir = bins().orchestrate.parent().expect("bin dir").to_owned();
    let path = std::env::join_paths(std::iter::once(bin_dir).chain(std::env::split_paths(
        &orchestrator_tests::sandbox::path_without_codex(),
    )))
    .expect("PATH");
    let mut child = sb
        .command(&deps::claude())
        .args(["-p", "/orchestrate Add a greeting"])
        .args(["--output-format", "stream-json", "--verbose"])
        .args(["--model", "claude-fake-1"])
        .env("PATH", path)
        .envs(crate::real_claude::OFFLINE.iter().copied())
        .env("ANTHROPIC_BASE_URL", &fake.url)
        .env("DISABLE_AUTOUPDATER", "1")
        .env("CLAUDE_FAKE_SCRIPT", &plan)
        .current_dir(&repo)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run claude");
    let status = wait::until(
        "claude to finish the command",
        std::time::Duration::from_secs(180),
        || child.try_wait().expect("wait"),
    );
    let mut stdout = String::new();
    let mut stderr = String::new();
    let _ = child
        .stdout
        .take()
        .expect("stdout")
        .read_to_string(&mut stdout);
    let _ = child
        .stderr
        .take()
        .expect("stderr")
        .read_to_string(&mut stderr);
    let requests = fake.requests();
    let results: Vec<String> = requests
        .iter()
        .filter_map(fake_model::last_tool_result)
        .collect();
    let dump = format!(
        "exit {status}\n--- results\n{}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
        results.join("\n---\n")
    );
    assert!(status.success(), "{dump}");

    // claude expanded the installed command with the feature.
    let first = requests.first().expect("a model request").to_string();
    assert!(
        first.contains("hand a large feature to **orchestrator**")
            && first.contains("The feature: Add a greeting"),
        "{first}"
    );
    // Every `orchestrate` and `git` command ran by the command's own permissions; the one
    // command outside them was refused.
    let result: Value = stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["type"] == "result")
        .unwrap_or_else(|| panic!("no result line\n{dump}"));
    let denied = result["permission_denials"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(denied.len(), 1, "{dump}");
    assert_eq!(
        denied[0]["tool_input"]["command"], "touch refused.txt",
        "{dump}"
    );
    assert!(!repo.join("refused.txt").exists());
    assert!(
        result["result"]
            .as_str()
            .is_some_and(|r| r.contains("The run completed on orchestrate/add-a-greeting")),
        "{dump}"
    );
    // The run escalated (exit 10 with the question), was answered with a new gate, completed.
    assert!(
        results
            .iter()
            .any(|r| r.contains("Exit code 10") && r.contains("\"escalations\"")),
        "{dump}"
    );
    let run = sb.orchestrate_in(&repo, &["status", "--json"]).ok().json();
    assert_eq!(run["status"], "completed", "{run}\n{dump}");
    assert_eq!(run["options"]["gate"], "true", "{run}");
    let context =
        std::fs::read_to_string(repo.join(".orchestrator/context.md")).expect("context.md");
    assert!(
        context.contains(CONTEXT) && context.contains("The database is not needed"),
        "{context}"
    );
    assert_eq!(
        sb.git(&repo, &["show", "orchestrate/add-a-greeting:a.txt"])
            .trim(),
        "written by task a"
    );
}
