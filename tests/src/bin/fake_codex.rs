//! `fake-codex`: a stand-in for `codex exec` in the fast test tier. It checks the flags the
//! daemon must pass (`--json`, `--output-schema` with a JSON file, `-o`, a read-only sandbox,
//! the prompt on stdin), prints codex's `--json` events and writes its last message to `-o`.
//! What it answers is scripted per review kind by `CODEX_FAKE_PLAN` and `CODEX_FAKE_CODE`:
//! comma-separated steps, one per review of that kind (the last repeats), counted in
//! `$CODEX_FAKE_STATE/<kind>.count`:
//!
//! - `approve` — no findings.
//! - `concern` — a blocking (P1) concern ("Split the storage task").
//! - `finding` — a blocking (P1) finding ("Missing error handling", src/a.rs); raised again it
//!   names its ledger id in `ref` when the prompt lists it.
//! - `other` — a different blocking finding ("Unbounded input").
//! - `minor` — approve with a P3 nit.
//! - `malformed` — a last message that is not JSON.
//! - `fail` — codex's provider error events, exit 1.
//! - `hang` — wait until killed.

use std::io::{Read, Write};

use serde_json::{Value, json};

fn say(v: Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}

fn arg_after(args: &[String], flag: &str) -> Option<String> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1).cloned())
}

fn step(kind: &str) -> String {
    let var = if kind == "plan" {
        "CODEX_FAKE_PLAN"
    } else {
        "CODEX_FAKE_CODE"
    };
    let script = std::env::var(var).unwrap_or_else(|_| "approve".into());
    let steps: Vec<&str> = script.split(',').map(str::trim).collect();
    let n = match std::env::var("CODEX_FAKE_STATE") {
        Ok(dir) => {
            let path = std::path::Path::new(&dir).join(format!("{kind}.count"));
            let n: usize = std::fs::read_to_string(&path)
                .ok()
                .and_then(|s| s.trim().parse().ok())
                .unwrap_or(0);
            std::fs::write(&path, (n + 1).to_string()).expect("write the fake's state");
            n
        }
        Err(_) => 0,
    };
    steps[n.min(steps.len() - 1)].to_owned()
}

fn finding(reference: Option<&str>, p: &str, title: &str, file: Option<&str>) -> Value {
    json!({"ref": reference, "priority": p, "title": title,
           "body": format!("{title}: fix it."), "file": file, "line": file.map(|_| 1)})
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--version") {
        println!("codex-cli 0.169.0 [fake]");
        return;
    }
    assert_eq!(args.first().map(String::as_str), Some("exec"), "{args:?}");
    assert!(args.iter().any(|a| a == "--json"), "--json in {args:?}");
    assert_eq!(
        arg_after(&args, "--sandbox").as_deref(),
        Some("read-only"),
        "{args:?}"
    );
    let schema = arg_after(&args, "--output-schema").expect("--output-schema");
    let _: Value = serde_json::from_str(&std::fs::read_to_string(&schema).expect("schema file"))
        .expect("the schema is JSON");
    let out = arg_after(&args, "-o").expect("-o");
    assert_eq!(args.last().map(String::as_str), Some("-"), "{args:?}");
    let mut prompt = String::new();
    std::io::stdin()
        .read_to_string(&mut prompt)
        .expect("read the prompt from stdin");
    let kind = if prompt.starts_with("You are reviewing the plan") {
        "plan"
    } else {
        assert!(
            prompt.starts_with("You are reviewing the changes"),
            "unknown prompt: {prompt}"
        );
        "code"
    };
    say(json!({"type": "thread.started", "thread_id": "th_fake"}));
    say(json!({"type": "turn.started"}));
    let step = step(kind);
    let known = |id: &'static str| prompt.contains(&format!("\n- {id} [")).then_some(id);
    let verdict = match step.as_str() {
        "approve" => json!({"verdict": "approve", "summary": "Looks right.", "findings": []}),
        "minor" => json!({"verdict": "approve", "summary": "Fine.",
                          "findings": [finding(None, "P3", "Naming nit", None)]}),
        "concern" => json!({"verdict": "revise", "summary": "One task is too big.",
                            "findings": [finding(known("P1"), "P1", "Split the storage task", None)]}),
        "finding" => json!({"verdict": "revise", "summary": "Errors are ignored.",
                            "findings": [finding(known("F1"), "P1", "Missing error handling", Some("src/a.rs"))]}),
        "other" => json!({"verdict": "revise", "summary": "Input is unbounded.",
                          "findings": [finding(None, "P0", "Unbounded input", Some("src/b.rs"))]}),
        "malformed" => {
            std::fs::write(&out, "I think it is fine.").expect("write -o");
            say(
                json!({"type": "item.completed", "item": {"id": "i0", "type": "agent_message", "text": "I think it is fine."}}),
            );
            say(
                json!({"type": "turn.completed", "usage": {"input_tokens": 50, "output_tokens": 5}}),
            );
            return;
        }
        "fail" => {
            say(json!({"type": "error", "message": "unexpected status 500"}));
            say(
                json!({"type": "turn.failed", "error": {"message": "exceeded retry limit, last status: 500"}}),
            );
            std::process::exit(1);
        }
        "hang" => orchestrator_tests::hang::hang(),
        other => panic!("unknown step {other}"),
    };
    let text = verdict.to_string();
    say(
        json!({"type": "item.completed", "item": {"id": "i0", "type": "agent_message", "text": text}}),
    );
    std::fs::write(&out, &text).expect("write -o");
    say(json!({"type": "turn.completed", "usage": {"input_tokens": 1200, "output_tokens": 80}}));
}
