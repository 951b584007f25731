//! `orchestrate tail <task> [-f] [--raw]`: what a task's worker is doing, rendered for people
//! from its session's stream (claude's stream-json or codex's `--json`): what it says, each
//! tool call with a one-line summary of its input, results shortened, and how it ended with
//! its usage; `-f` follows it live; `--raw` prints the stream's lines as they are.

use std::time::Duration;

use clap::Args;
use serde_json::Value;

use super::Target;
use crate::client::Client;
use crate::error::ClientError;

#[derive(Debug, Args)]
pub struct TailArgs {
    /// The task (its id, from `orchestrate status`)
    task: String,
    /// Keep printing as the worker goes on, until its session ends
    #[arg(short = 'f', long)]
    follow: bool,
    /// The stream's lines as they are (JSON), not rendered
    #[arg(long)]
    raw: bool,
    #[command(flatten)]
    target: Target,
}

/// How often a followed session is read again.
const POLL: Duration = Duration::from_millis(300);

pub async fn run(client: &Client, a: TailArgs) -> Result<(), ClientError> {
    let run = client.run(&a.target.resolve()?).await?;
    show(client, &run.id, &a.task, a.raw, a.follow).await
}

/// Prints what task `task` of run `run`'s worker has said so far, rendered (or `raw`), and with
/// `follow` everything it says after, until its session ends. `watch` shows a task's tail
/// with it too.
pub async fn show(
    client: &Client,
    run: &str,
    task: &str,
    raw: bool,
    follow: bool,
) -> Result<(), ClientError> {
    let mut offset = 0;
    let mut said_session = None;
    loop {
        let out = client.task_output(run, task, offset).await?;
        if out.session.is_none() {
            crate::outln!("Task {task} has not had a worker yet.");
            return Ok(());
        }
        if said_session != out.session {
            if said_session.is_some() {
                offset = 0;
            }
            if !raw {
                let s = out.session.as_deref().unwrap_or("");
                crate::outln!("── task {task} · session {s} ({}) ──", out.agent);
            }
            said_session = out.session.clone();
        }
        for line in &out.lines {
            if raw {
                crate::outln!("{line}");
            } else if let Some(text) = render(line) {
                crate::outln!("{text}");
            }
        }
        let moved = out.offset != offset;
        offset = out.offset;
        if moved {
            continue;
        }
        if !follow || !out.live {
            return Ok(());
        }
        tokio::time::sleep(POLL).await;
    }
}

/// One stream line for people, or `None` for what says nothing to them.
pub fn render(line: &str) -> Option<String> {
    let v: Value = serde_json::from_str(line).ok()?;
    if let Some(note) = v["orchestrator"].as_str() {
        return Some(format!("… {note}"));
    }
    match v["type"].as_str()? {
        "system" if v["subtype"] == "init" => Some(format!(
            "started{}",
            v["model"]
                .as_str()
                .map(|m| format!(" on {m}"))
                .unwrap_or_default()
        )),
        "assistant" => assistant(&v["message"]["content"]),
        "user" => tool_results(&v["message"]["content"]),
        "result" => Some(result(&v)),
        "rate_limit_event" => {
            let i = &v["rate_limit_info"];
            Some(format!(
                "usage: {} {}{}",
                i["rateLimitType"].as_str().unwrap_or("window"),
                i["status"].as_str().unwrap_or("?"),
                i["utilization"]
                    .as_f64()
                    .map(|u| format!(" at {:.0}%", u * 100.0))
                    .unwrap_or_default()
            ))
        }
        t if t.starts_with("thread.")
            || t.starts_with("turn.")
            || t.starts_with("item.")
            || t == "error" =>
        {
            codex(&v)
        }
        _ => None,
    }
}

fn short(s: &str, n: usize) -> String {
    let line = s.trim().lines().next().unwrap_or("").trim();
    if line.chars().count() > n {
        line.chars().take(n - 1).collect::<String>() + "…"
    } else {
        line.to_owned()
    }
}

/// A tool input's one-line summary: its command, file, path, pattern or URL.
fn summary(input: &Value) -> String {
    [
        "command",
        "file_path",
        "path",
        "pattern",
        "url",
        "query",
        "note",
        "summary",
    ]
    .iter()
    .find_map(|k| input[*k].as_str())
    .map(|s| format!(" {}", short(s, 100)))
    .unwrap_or_default()
}

fn assistant(content: &Value) -> Option<String> {
    let parts: Vec<String> = content
        .as_array()?
        .iter()
        .filter_map(|b| match b["type"].as_str()? {
            "text" => Some(b["text"].as_str()?.trim().to_owned()),
            "tool_use" => Some(format!(
                "→ {}{}",
                b["name"].as_str().unwrap_or("?"),
                summary(&b["input"])
            )),
            _ => None,
        })
        .filter(|s| !s.is_empty())
        .collect();
    (!parts.is_empty()).then(|| parts.join("\n"))
}

fn tool_results(content: &Value) -> Option<String> {
    let parts: Vec<String> = content
        .as_array()?
        .iter()
        .filter(|b| b["type"] == "tool_result")
        .map(|b| {
            let text = match &b["content"] {
                Value::String(s) => s.clone(),
                Value::Array(a) => a
                    .iter()
                    .filter_map(|c| c["text"].as_str())
                    .collect::<Vec<_>>()
                    .join(" "),
                _ => String::new(),
            };
            let mark = if b["is_error"] == true { "✗" } else { "←" };
            format!("  {mark} {}", short(&text, 160))
        })
        .collect();
    (!parts.is_empty()).then(|| parts.join("\n"))
}

fn result(v: &Value) -> String {
    let how = if v["is_error"] == true {
        "failed"
    } else {
        "done"
    };
    format!(
        "■ {how}: {} · ${:.4} · {} turns · {} in, {} out",
        short(v["result"].as_str().unwrap_or(""), 160),
        v["total_cost_usd"].as_f64().unwrap_or(0.0),
        v["num_turns"].as_u64().unwrap_or(0),
        v["usage"]["input_tokens"].as_u64().unwrap_or(0),
        v["usage"]["output_tokens"].as_u64().unwrap_or(0)
    )
}

/// Codex's `--json` events.
fn codex(v: &Value) -> Option<String> {
    let item = &v["item"];
    match (v["type"].as_str()?, item["type"].as_str().unwrap_or("")) {
        ("thread.started", _) => Some(format!("started (thread {})", v["thread_id"].as_str()?)),
        ("item.completed", "agent_message") => Some(item["text"].as_str()?.trim().to_owned()),
        ("item.started", "command_execution") => Some(format!("→ Bash{}", summary(item))),
        ("item.started", "mcp_tool_call") => Some(format!(
            "→ mcp__{}__{}",
            item["server"].as_str().unwrap_or("?"),
            item["tool"].as_str().unwrap_or("?")
        )),
        ("item.completed", "command_execution") => Some(format!(
            "  ← exit {}: {}",
            item["exit_code"]
                .as_i64()
                .map_or("?".into(), |c| c.to_string()),
            short(item["aggregated_output"].as_str().unwrap_or(""), 160)
        )),
        ("item.completed", "mcp_tool_call") => {
            Some(format!("  ← {}", item["status"].as_str().unwrap_or("done")))
        }
        ("turn.completed", _) => Some(format!(
            "■ done · {} in, {} out",
            v["usage"]["input_tokens"].as_u64().unwrap_or(0),
            v["usage"]["output_tokens"].as_u64().unwrap_or(0)
        )),
        ("turn.failed", _) => Some(format!(
            "■ failed: {}",
            short(v["error"]["message"].as_str().unwrap_or(""), 200)
        )),
        ("error", _) => Some(format!(
            "! {}",
            short(v["message"].as_str().unwrap_or(""), 200)
        )),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::render;

    #[test]
    fn claude_and_codex_lines_read_as_what_the_worker_did() {
        let tool = r#"{"type":"assistant","message":{"content":[{"type":"text","text":"Running the tests."},{"type":"tool_use","name":"Bash","input":{"command":"npm test -- auth\nmore"}}]}}"#;
        assert_eq!(
            render(tool).as_deref(),
            Some("Running the tests.\n→ Bash npm test -- auth")
        );
        let back = r#"{"type":"user","message":{"content":[{"type":"tool_result","content":"3 passing\n0 failing","is_error":false}]}}"#;
        assert_eq!(render(back).as_deref(), Some("  ← 3 passing"));
        let done = r#"{"type":"result","is_error":false,"result":"Done","total_cost_usd":0.5,"num_turns":4,"usage":{"input_tokens":10,"output_tokens":2}}"#;
        assert_eq!(
            render(done).as_deref(),
            Some("■ done: Done · $0.5000 · 4 turns · 10 in, 2 out")
        );
        let cmd = r#"{"type":"item.started","item":{"type":"command_execution","command":"/bin/bash -c 'cargo test'"}}"#;
        assert_eq!(
            render(cmd).as_deref(),
            Some("→ Bash /bin/bash -c 'cargo test'")
        );
        assert_eq!(render("not json"), None);
        assert_eq!(render(r#"{"type":"stream_event"}"#), None);
    }
}
