//! `fake-claude`: a stand-in for the `claude` CLI in the fast test tier. It accepts the flags
//! the daemon passes, expands `${VAR}` in `--mcp-config` headers from its environment like
//! claude does, talks to the daemon's MCP endpoint over real HTTP, and prints stream-json
//! (`system/init`, `assistant` tool uses, `result`). What it does is scripted by
//! `CLAUDE_FAKE_SCRIPT`:
//!
//! - `plan:<file>` — submit the plan in `<file>` (JSON), then finish. A JSON array holds one
//!   plan per planner session (revisions, follow-up cycles; the last repeats); each session's
//!   prompt is kept in `<file>.prompt-<n>`.
//! - `invalid-then-plan:<file>` — submit an invalid plan first, then the one in `<file>`.
//! - `two-plans:<file>` — submit a draft plan (tasks `draft` and `api`), then the one in
//!   `<file>`, as a model that changes its mind does.
//! - `exit` — finish successfully without calling any tool.
//! - `crash` — exit 3 without a result line.
//! - `hang` (default) — wait until killed.
//!
//! Worker sessions (prompts that do not start with "You are the planner") follow
//! `CLAUDE_FAKE_WORKER` instead (default `work`); a task whose description says `sleep_ms=<n>`
//! takes that long (the benchmark's simulated work):
//!
//! - `work` — `get_task`, write each of the task's files, commit, `complete_task`.
//! - `work-uncommitted` — the same but leave the changes uncommitted (the daemon commits them).
//! - `work-shared` — also write `shared.txt` (undeclared), so parallel tasks conflict.
//! - `flaky` — exit without completing on the task's first attempt, work on later ones.
//! - `hang` — wait until killed (after `system/init`).
//! - `silent` — wait until killed without writing anything, not even `system/init`.
//! - `mcp-failed` — report the orchestrator's MCP server as failed in `system/init`, then
//!   wait (claude carries on without the tools; the daemon must stop it). With
//!   `CLAUDE_FAKE_ONCE`, only the first worker does; later ones work.
//! - `limit` — hit the account's usage limit: write `partial-<task>.txt` (uncommitted), print
//!   a `rate_limit_event` `rejected` resetting in `CLAUDE_FAKE_RESET_SECS` (default 2) and a
//!   usage-limit `result`, exit 1. Continued with `--resume`, it checks the partial file is
//!   still there (the same worktree) and works.
//! - `misbehave` — act as `orchestrator_tests::misbehave::Conduct::of(CLAUDE_FAKE_SEED, task,
//!   attempt)` says (claims more work, completes twice, resets its branch, writes into the
//!   user's checkout, …), appending what it did and every commit it made to
//!   `CLAUDE_FAKE_LEDGER`.
//! - `code` — copy `$CLAUDE_FAKE_CODE/<task>/` (real code and tests) into the worktree,
//!   commit, complete. With `$CLAUDE_FAKE_CODE/<task>.broken/`, the first attempt copies that
//!   first and completes; when the completion is refused (a verify command failed), it copies
//!   the good version and completes again in the same session. The refusal text is kept in
//!   `$CLAUDE_FAKE_CODE/<task>.refused`.
//! - `listen` — report progress until a reply says a message waits, read it into
//!   `told-<task>.txt`, then work as `work` does.
//! - `lingers` — start `sleep 3600` in its process group (its pid appended to
//!   `CLAUDE_FAKE_LEDGER` as `lingering <pid>`), then work and exit, leaving it running.
//! - `warn` — print a `rate_limit_event` `allowed_warning` at `CLAUDE_FAKE_UTILIZATION`
//!   (default 0.9) resetting in `CLAUDE_FAKE_RESET_SECS`, then work. With `CLAUDE_FAKE_ONCE`
//!   set to a path, only the first session warns (it creates the file).
//!
//! With `CLAUDE_FAKE_PATIENT` set, MCP calls made while the daemon is down are retried (for a
//! minute) instead of failing, as a worker would across a daemon restart.

use std::io::Write;

use orchestrator_tests::mcp::Mcp;
use serde_json::{Value, json};

fn say(v: Value) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{v}");
    let _ = out.flush();
}

fn expand(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find("${") {
        out.push_str(&rest[..i]);
        let Some(j) = rest[i..].find('}') else { break };
        let name = &rest[i + 2..i + j];
        out.push_str(&std::env::var(name).unwrap_or_default());
        rest = &rest[i + j + 1..];
    }
    out.push_str(rest);
    out
}

fn arg_after(args: &[String], flag: &str) -> Option<String> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1).cloned())
}

fn call(mcp: &Mcp, tool: &str, args: Value) -> Value {
    say(json!({"type": "assistant", "message": {"content": [
        {"type": "tool_use", "id": "toolu_fake", "name": format!("mcp__orch__{tool}"), "input": args}]}}));
    if !patient() {
        return mcp.call(tool, args);
    }
    // Across a daemon restart: retry while the endpoint is down or answers 5xx.
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                      "params": {"name": tool, "arguments": args}});
    let end = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        match mcp.try_post(&body, &[]) {
            Ok(r) if r.status == 200 => {
                let v = r.json();
                return v.get("result").cloned().unwrap_or(v);
            }
            Ok(r) if r.status < 500 => {
                // Revoked (the daemon let this session go): stop like claude would.
                say(
                    json!({"type": "result", "subtype": "success", "is_error": true,
                           "result": format!("{tool}: HTTP {}", r.status), "session_id": "fake"}),
                );
                std::process::exit(1);
            }
            _ => {}
        }
        assert!(
            std::time::Instant::now() < end,
            "{tool}: the daemon never came back"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

/// The prompt: `-p <text>`, else stdin (read whole, like claude; capped at 10 MiB as it is).
fn prompt(args: &[String]) -> String {
    if let Some(p) = arg_after(args, "-p").filter(|p| !p.starts_with("--")) {
        return p;
    }
    use std::io::Read;
    let mut text = String::new();
    let _ = std::io::stdin().take(10 << 20).read_to_string(&mut text);
    text
}

/// `CLAUDE_FAKE_PATIENT`: MCP calls outlive a daemon restart (the chaos test).
fn patient() -> bool {
    std::env::var_os("CLAUDE_FAKE_PATIENT").is_some()
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--version") {
        println!("2.1.330 (Claude Code) [fake]");
        return;
    }
    let resumed = arg_after(&args, "--resume");
    let session = arg_after(&args, "--session-id")
        .or_else(|| resumed.clone())
        .unwrap_or_else(|| "fake-session".into());
    let config: Value = arg_after(&args, "--mcp-config")
        .and_then(|c| serde_json::from_str(&c).ok())
        .unwrap_or(Value::Null);
    let server = &config["mcpServers"]["orch"];
    let url = server["url"].as_str().unwrap_or("http://127.0.0.1:9/mcp");
    let token = server["headers"]["Authorization"]
        .as_str()
        .map(expand)
        .and_then(|h| h.strip_prefix("Bearer ").map(str::to_owned));
    let mcp = Mcp::new(url, token.as_deref());
    let connect = || {
        let list = json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"});
        mcp.try_post(&list, &[]).is_ok_and(|r| r.status == 200)
    };
    // The prompt arrives on stdin (the daemon never puts it in argv); an argument after -p
    // is taken too, as claude does.
    let prompt = prompt(&args);
    let worker = !prompt.starts_with("You are the planner");
    if worker && std::env::var("CLAUDE_FAKE_WORKER").as_deref() == Ok("silent") {
        // Never gets going: no `system/init` at all.
        orchestrator_tests::hang::hang()
    }
    let mut connected = connect();
    let end = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !connected && patient() && std::time::Instant::now() < end {
        std::thread::sleep(std::time::Duration::from_millis(50));
        connected = connect();
    }
    let mut init = json!({"type": "system", "subtype": "init", "session_id": session,
           "mcp_servers": [{"name": "orch", "status": if connected { "connected" } else { "failed" }}],
           "tools": ["Bash", "Edit", "Read", "mcp__orch__submit_plan"]});
    // Like claude, it names its model (only when given one, so runs without --model say none).
    if let Some(m) = arg_after(&args, "--model") {
        init["model"] = json!(m);
    }
    say(init);
    if worker {
        // With CLAUDE_FAKE_ONCE, only the first worker finds the MCP server down.
        let mcp_down = std::env::var("CLAUDE_FAKE_WORKER").as_deref() == Ok("mcp-failed")
            && std::env::var("CLAUDE_FAKE_ONCE").map_or(true, |p| {
                std::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .open(p)
                    .is_ok()
            });
        if mcp_down {
            say(
                json!({"type": "system", "subtype": "init", "session_id": session,
                       "mcp_servers": [{"name": "orch", "status": "failed"}], "tools": ["Bash"]}),
            );
            orchestrator_tests::hang::hang()
        }
        work(&mcp, &session, resumed.is_some());
        return;
    }
    let script = std::env::var("CLAUDE_FAKE_SCRIPT").unwrap_or_else(|_| "hang".into());
    let (mode, file) = script.split_once(':').unwrap_or((script.as_str(), ""));
    let finish = |text: &str| {
        say(
            json!({"type": "result", "subtype": "success", "is_error": false, "result": text,
                   "session_id": session, "num_turns": 1, "total_cost_usd": 0.001,
                   "usage": {"input_tokens": 100, "output_tokens": 20}}),
        );
    };
    match mode {
        "plan" | "invalid-then-plan" | "two-plans" => {
            if mode == "invalid-then-plan" {
                let r = call(&mcp, "submit_plan", json!({"summary": "", "tasks": []}));
                assert_eq!(r["isError"], true, "the invalid plan must be refused: {r}");
            }
            if mode == "two-plans" {
                let draft = json!({"summary": "A first draft", "tasks": [
                    {"id": "draft", "title": "Draft", "description": "Write draft.txt",
                     "acceptance_criteria": ["draft.txt exists"], "files": ["draft.txt"]},
                    {"id": "api", "title": "Draft API", "description": "Write draft-api.txt",
                     "acceptance_criteria": ["it exists"], "files": ["draft-api.txt"]}]});
                let r = call(&mcp, "submit_plan", draft);
                assert_eq!(r["isError"], false, "the draft is accepted: {r}");
            }
            let plan: Value = serde_json::from_str(
                &std::fs::read_to_string(file).unwrap_or_else(|e| panic!("read {file}: {e}")),
            )
            .expect("plan JSON");
            let plan = match plan {
                // One plan per planner session (revisions, follow-up cycles); the last repeats.
                Value::Array(plans) => {
                    let count = format!("{file}.count");
                    let n: usize = std::fs::read_to_string(&count)
                        .ok()
                        .and_then(|s| s.trim().parse().ok())
                        .unwrap_or(0);
                    std::fs::write(&count, (n + 1).to_string()).expect("write the count");
                    std::fs::write(format!("{file}.prompt-{n}"), &prompt).expect("keep the prompt");
                    plans[n.min(plans.len() - 1)].clone()
                }
                one => one,
            };
            let r = call(&mcp, "submit_plan", plan);
            finish(&format!("submitted: {}", r["structuredContent"]));
        }
        "exit" => finish("nothing to do"),
        "crash" => std::process::exit(3),
        _ => orchestrator_tests::hang::hang(),
    }
}

fn git(args: &[&str]) {
    let ok = std::process::Command::new("git")
        .args([
            "-c",
            "user.name=Fake Worker",
            "-c",
            "user.email=fake@example.invalid",
        ])
        .args(args)
        .status()
        .is_ok_and(|s| s.success());
    assert!(ok, "git {args:?} failed");
}

fn reset_in() -> i64 {
    let secs: i64 = std::env::var("CLAUDE_FAKE_RESET_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    now + secs
}

fn work(mcp: &Mcp, session: &str, resumed: bool) {
    let mode = std::env::var("CLAUDE_FAKE_WORKER").unwrap_or_else(|_| "work".into());
    if mode == "hang" {
        orchestrator_tests::hang::hang()
    }
    let brief = call(mcp, "get_task", json!({}));
    let task = brief["structuredContent"]["task"].clone();
    let id = task["id"].as_str().unwrap_or("unknown").to_owned();
    // A scripted duration (the benchmark's simulated work): `sleep_ms=<n>` in the description.
    if let Some(ms) = task["description"]
        .as_str()
        .and_then(|d| d.split("sleep_ms=").nth(1))
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse::<u64>().ok())
    {
        std::thread::sleep(std::time::Duration::from_millis(ms));
    }
    let partial = format!("partial-{id}.txt");
    if mode == "limit" && !resumed {
        std::fs::write(&partial, "half done\n").expect("write the partial file");
        say(
            json!({"type": "rate_limit_event", "rate_limit_info": {"status": "rejected",
                   "resetsAt": reset_in(), "rateLimitType": "five_hour"}, "session_id": session}),
        );
        say(
            json!({"type": "result", "subtype": "success", "is_error": true,
                   "result": "You've hit your 5-hour limit · resets soon", "api_error_status": 429,
                   "api_error": "usage_limit_reached", "session_id": session,
                   "total_cost_usd": 0.001, "usage": {"input_tokens": 50, "output_tokens": 5}}),
        );
        std::process::exit(1);
    }
    if mode == "limit" {
        assert!(
            std::path::Path::new(&partial).exists(),
            "resumed outside the interrupted worktree"
        );
    }
    let first = std::env::var("CLAUDE_FAKE_ONCE")
        .map(|p| {
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(p)
                .is_ok()
        })
        .unwrap_or(true);
    if mode == "warn" && first {
        let u: f64 = std::env::var("CLAUDE_FAKE_UTILIZATION")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0.9);
        say(
            json!({"type": "rate_limit_event", "rate_limit_info": {"status": "allowed_warning",
                   "resetsAt": reset_in(), "rateLimitType": "five_hour", "utilization": u},
                   "session_id": session}),
        );
    }
    if mode == "misbehave" {
        misbehave(mcp, session, &task, &id);
        return;
    }
    if mode == "code" {
        code(mcp, session, &task, &id);
        return;
    }
    if mode == "listen" {
        listen(mcp, &id);
    }
    if mode == "lingers" {
        // A process of its own left running past its end, as an agent's server would be:
        // never waited for, on purpose.
        #[allow(clippy::zombie_processes)]
        let child = std::process::Command::new("sleep")
            .arg("3600")
            .spawn()
            .expect("start sleep");
        ledger(&format!("lingering {}", child.id()));
    }
    if mode == "flaky" && task["attempts"] == 1 {
        say(
            json!({"type": "result", "subtype": "success", "is_error": false,
                   "result": "I stopped early", "session_id": session}),
        );
        return;
    }
    let mut files: Vec<String> = task["files"]
        .as_array()
        .map(|f| {
            f.iter()
                .filter_map(|p| p.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if mode == "work-shared" {
        files.push("shared.txt".into());
    }
    for f in &files {
        if let Some(dir) = std::path::Path::new(f).parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        std::fs::write(f, format!("written by task {id}\n")).expect("write a file");
    }
    call(
        mcp,
        "report_progress",
        json!({"note": format!("wrote {} files", files.len())}),
    );
    if mode != "work-uncommitted" {
        git(&["add", "-A"]);
        git(&["commit", "--quiet", "-m", &format!("Task {id}")]);
    }
    let r = call(
        mcp,
        "complete_task",
        json!({"summary": format!("wrote {}", files.join(", "))}),
    );
    say(
        json!({"type": "result", "subtype": "success", "is_error": false,
               "result": format!("completed: {}", r["structuredContent"]), "session_id": session,
               "num_turns": 3, "total_cost_usd": 0.002, "usage": {"input_tokens": 300, "output_tokens": 60}}),
    );
}

/// Appends one line to `CLAUDE_FAKE_LEDGER` (one write, so concurrent workers never interleave).
fn ledger(line: &str) {
    if let Some(path) = std::env::var_os("CLAUDE_FAKE_LEDGER") {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .expect("open the ledger");
        f.write_all(format!("{line}\n").as_bytes())
            .expect("write the ledger");
    }
}

fn git_out(args: &[&str]) -> String {
    let out = std::process::Command::new("git")
        .args(args)
        .output()
        .expect("run git");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The task's files, each written with the line the suite checks for.
/// `listen`: reports progress until a tool reply says a message waits (a person's `orchestrate
/// tell`), then reads it and keeps what it says in `told-<task>.txt` (committed with the work).
fn listen(mcp: &Mcp, id: &str) {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let r = call(mcp, "report_progress", json!({"note": "listening"}));
        let text = r["content"][0]["text"].as_str().unwrap_or("").to_owned();
        if text.contains("unread: call read_messages") {
            assert_eq!(
                r["structuredContent"]["unread_messages"], 1,
                "the structured reply says it too: {r}"
            );
            break;
        }
        assert!(std::time::Instant::now() < end, "no message came");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let r = call(mcp, "read_messages", json!({}));
    let said: Vec<String> = r["structuredContent"]["messages"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|m| m["body"].as_str().map(str::to_owned))
        .collect();
    std::fs::write(format!("told-{id}.txt"), said.join("\n") + "\n").expect("write what was told");
}

fn write_files(task: &Value, id: &str) {
    for f in task["files"].as_array().into_iter().flatten() {
        let Some(f) = f.as_str() else { continue };
        if let Some(dir) = std::path::Path::new(f).parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        std::fs::write(f, format!("written by task {id}\n")).expect("write a file");
    }
}

/// Commits everything and records the commit in the ledger.
fn commit_work(id: &str) {
    git(&["add", "-A"]);
    git(&["commit", "--quiet", "-m", &format!("Task {id}")]);
    ledger(&format!("commit {} {id}", git_out(&["rev-parse", "HEAD"])));
}

/// A worker that misbehaves as real models do (`orchestrator_tests::misbehave`).
fn misbehave(mcp: &Mcp, session: &str, task: &Value, id: &str) {
    use orchestrator_tests::misbehave::Conduct;
    let seed: u64 = std::env::var("CLAUDE_FAKE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let attempt = task["attempts"].as_u64().unwrap_or(1);
    let conduct = Conduct::of(seed, id, attempt);
    ledger(&format!("conduct {} {id} {attempt}", conduct.name()));
    let summary = json!({"summary": format!("did task {id}")});
    let complete = || call(mcp, "complete_task", summary.clone());
    let refused = |r: &Value| r["isError"] == true || r.get("error").is_some();
    match conduct {
        Conduct::Obedient => {
            write_files(task, id);
            commit_work(id);
            complete();
        }
        Conduct::ClaimsNext => {
            write_files(task, id);
            commit_work(id);
            complete();
            let r = call(mcp, "claim_task", json!({}));
            ledger(&format!(
                "claim {} {id}",
                if refused(&r) { "refused" } else { "granted" }
            ));
            complete();
        }
        Conduct::CompletesTwice => {
            write_files(task, id);
            commit_work(id);
            complete();
            complete();
        }
        Conduct::FailsThenCompletes => {
            write_files(task, id);
            commit_work(id);
            call(
                mcp,
                "fail_task",
                json!({"reason": "I am not sure this is right", "retryable": true}),
            );
            complete();
        }
        Conduct::NeverCompletes => {
            write_files(task, id);
            commit_work(id);
        }
        Conduct::CompletesAnother => {
            write_files(task, id);
            commit_work(id);
            let other = if id == "t0" { "t1" } else { "t0" };
            call(
                mcp,
                "complete_task",
                json!({"task_id": other, "summary": format!("did {other}")}),
            );
        }
        Conduct::OtherBranch => {
            let side = format!("side-{id}.{attempt}-{}", std::process::id());
            git(&["checkout", "--quiet", "-b", &side]);
            write_files(task, id);
            commit_work(id);
            complete();
        }
        Conduct::ChecksOutBase => {
            write_files(task, id);
            commit_work(id);
            git(&["checkout", "--quiet", "--detach", "HEAD~1"]);
            complete();
        }
        Conduct::ResetsHard => {
            write_files(task, id);
            commit_work(id);
            git(&["reset", "--quiet", "--hard", "HEAD~1"]);
            complete();
        }
        Conduct::LeavesDirty => {
            write_files(task, id);
            complete();
        }
        Conduct::WritesUserCheckout => {
            let common = git_out(&["rev-parse", "--path-format=absolute", "--git-common-dir"]);
            let user = std::path::Path::new(&common)
                .parent()
                .expect("the user's checkout")
                .to_owned();
            let wrote = std::fs::write(user.join(format!("escaped-{id}.txt")), "oops\n").is_ok()
                | std::fs::create_dir(user.join(format!("escaped-{id}"))).is_ok()
                | std::fs::remove_file(user.join("README.md")).is_ok();
            ledger(&format!(
                "escape {} {id}",
                if wrote { "wrote" } else { "refused" }
            ));
            write_files(task, id);
            commit_work(id);
            complete();
        }
        Conduct::HugeOutput => {
            let big = "x".repeat(6 << 20);
            say(json!({"type": "assistant", "message": {"content": [
                {"type": "text", "text": big}]}}));
            // A multibyte character cut in two by the pipe: the daemon must wait for the rest.
            let line = json!({"type": "assistant", "message": {"content": [
                {"type": "text", "text": "héllo wörld ✓"}]}})
            .to_string();
            let cut = line.find('é').expect("é") + 1;
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(&line.as_bytes()[..cut]);
            let _ = out.flush();
            std::thread::sleep(std::time::Duration::from_millis(30));
            let _ = out.write_all(&line.as_bytes()[cut..]);
            let _ = out.write_all(b"\n");
            let _ = out.flush();
            drop(out);
            write_files(task, id);
            commit_work(id);
            complete();
        }
        Conduct::DiesMidCommit => {
            write_files(task, id);
            git(&["add", "-A"]);
            let dir = git_out(&["rev-parse", "--path-format=absolute", "--git-dir"]);
            std::fs::write(std::path::Path::new(&dir).join("index.lock"), "")
                .expect("take the index lock");
            complete();
            // Killed in the middle of `git commit`: no result line, the lock left behind.
            std::process::exit(137);
        }
    }
    say(
        json!({"type": "result", "subtype": "success", "is_error": false,
               "result": format!("{}: done", conduct.name()), "session_id": session,
               "num_turns": 3, "total_cost_usd": 0.002, "usage": {"input_tokens": 300, "output_tokens": 60}}),
    );
}

fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    for e in std::fs::read_dir(from)
        .expect("read the code folder")
        .flatten()
    {
        let (src, dst) = (e.path(), to.join(e.file_name()));
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            std::fs::create_dir_all(&dst).expect("mkdir");
            copy_tree(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).expect("copy a file");
        }
    }
}

/// A worker that writes real code (`code` mode).
fn code(mcp: &Mcp, session: &str, task: &Value, id: &str) {
    let dir =
        std::path::PathBuf::from(std::env::var("CLAUDE_FAKE_CODE").expect("CLAUDE_FAKE_CODE"));
    let here = std::path::Path::new(".");
    let broken = dir.join(format!("{id}.broken"));
    let summary = json!({"summary": format!("implemented {id} with tests")});
    if broken.is_dir() && task["attempts"] == 1 {
        copy_tree(&broken, here);
        commit_work(id);
        let r = call(mcp, "complete_task", summary.clone());
        if r["isError"] == true {
            let text = r["content"][0]["text"].as_str().unwrap_or("").to_owned();
            std::fs::write(dir.join(format!("{id}.refused")), text).expect("keep the refusal");
        }
    }
    copy_tree(&dir.join(id), here);
    commit_work(id);
    let r = call(mcp, "complete_task", summary);
    say(
        json!({"type": "result", "subtype": "success", "is_error": false,
               "result": format!("completed: {}", r["structuredContent"]), "session_id": session,
               "num_turns": 3, "total_cost_usd": 0.002, "usage": {"input_tokens": 300, "output_tokens": 60}}),
    );
}
