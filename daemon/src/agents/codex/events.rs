//! A Codex worker's `codex exec --json` stream, read as the same [`StreamEvent`]s as Claude's:
//! `thread.started` is its init (the thread id is the session to resume), each tool call it
//! starts (our MCP tools, shell commands, patches) a sign of work, `turn.completed` its
//! successful result with the tokens, `turn.failed` its failed one. Read leniently: unknown
//! types and fields are ignored.
//!
//! Codex reports a usage limit only as text (`You've hit your usage limit… try again at …`),
//! so that text is what marks an outcome as one ([`USAGE_LIMIT`]); a failed request says its
//! HTTP status as `last status: 429`, which becomes the outcome's status.

use serde_json::Value;

use crate::agents::stream::{Outcome, StreamEvent};

/// The `api_error` a Codex usage-limit outcome gets (Claude's word for it).
pub const USAGE_LIMIT: &str = "usage_limit_reached";

/// Parses one line of a Codex worker's stream; `None` for anything the daemon does not use.
pub fn parse_line(line: &str) -> Option<StreamEvent> {
    let v: Value = serde_json::from_str(line.trim()).ok()?;
    match v["type"].as_str()? {
        "thread.started" => Some(StreamEvent::Init {
            session_id: v["thread_id"].as_str()?.to_owned(),
            model: None,
            mcp: Vec::new(),
            tools: Vec::new(),
        }),
        "item.started" => tool_name(&v["item"]).map(|name| StreamEvent::ToolUse {
            name,
            what: crate::agents::stream::summary(&v["item"]),
        }),
        "item.completed" if v["item"]["type"] == "agent_message" => {
            Some(StreamEvent::Message(v["item"]["text"].as_str()?.to_owned()))
        }
        "item.completed" if v["item"]["type"] == "error" => Some(StreamEvent::Warning(
            v["item"]["message"].as_str()?.to_owned(),
        )),
        "turn.completed" => {
            let u = &v["usage"];
            let n = |k: &str| u[k].as_u64().unwrap_or(0);
            Some(StreamEvent::Result(Outcome {
                is_error: false,
                subtype: "success".into(),
                input_tokens: n("input_tokens"),
                output_tokens: n("output_tokens") + n("reasoning_output_tokens"),
                num_turns: 1,
                ..Outcome::default()
            }))
        }
        "turn.failed" => Some(StreamEvent::Result(failed(
            v["error"]["message"].as_str().unwrap_or("the turn failed"),
        ))),
        "error" => Some(StreamEvent::Warning(v["message"].as_str()?.to_owned())),
        _ => None,
    }
}

/// The tool an `item.started` item calls, named as Claude would name it.
fn tool_name(item: &Value) -> Option<String> {
    Some(match item["type"].as_str()? {
        "mcp_tool_call" => format!(
            "mcp__{}__{}",
            item["server"].as_str().unwrap_or("?"),
            item["tool"].as_str().unwrap_or("?")
        ),
        "command_execution" => "Bash".into(),
        "file_change" => "Edit".into(),
        "web_search" => "WebSearch".into(),
        _ => return None,
    })
}

/// A failed turn as an outcome: a usage limit, or an HTTP status when codex names one.
pub fn failed(message: &str) -> Outcome {
    let lower = message.to_lowercase();
    // "You've hit your usage limit…", "Quota exceeded…", "…upgrade to Plus" (a plan
    // without Codex): all of them the account's limit, not a fault of the task.
    let limit = lower.contains("usage limit")
        || lower.contains("quota exceeded")
        || lower.contains("upgrade to plus");
    let status = lower
        .split("last status: ")
        .nth(1)
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse::<u64>().ok());
    Outcome {
        is_error: true,
        subtype: "error".into(),
        text: Some(message.to_owned()),
        api_error: limit.then(|| USAGE_LIMIT.to_owned()),
        api_error_status: if limit { Some(429) } else { status },
        ..Outcome::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_stream_reads_as_init_tools_messages_and_a_result() {
        let lines = [
            r#"{"type":"thread.started","thread_id":"019a-th"}"#,
            r#"{"type":"turn.started"}"#,
            r#"{"type":"item.started","item":{"id":"i1","type":"mcp_tool_call","server":"orch","tool":"get_task","arguments":{},"status":"in_progress"}}"#,
            r#"{"type":"item.started","item":{"id":"i2","type":"command_execution","command":"git commit","status":"in_progress"}}"#,
            r#"{"type":"item.completed","item":{"id":"i3","type":"agent_message","text":"Done."}}"#,
            r#"{"type":"turn.completed","usage":{"input_tokens":900,"cached_input_tokens":100,"output_tokens":60,"reasoning_output_tokens":5}}"#,
        ];
        let ev: Vec<_> = lines.iter().filter_map(|l| parse_line(l)).collect();
        assert!(matches!(&ev[0], StreamEvent::Init { session_id, .. } if session_id == "019a-th"));
        assert_eq!(
            ev[1],
            StreamEvent::ToolUse {
                name: "mcp__orch__get_task".into(),
                what: None,
            }
        );
        assert_eq!(
            ev[2],
            StreamEvent::ToolUse {
                name: "Bash".into(),
                what: Some("git commit".into()),
            }
        );
        assert_eq!(ev[3], StreamEvent::Message("Done.".into()));
        let StreamEvent::Result(o) = &ev[4] else {
            panic!("{:?}", ev[4]);
        };
        assert!(!o.is_error);
        assert_eq!((o.input_tokens, o.output_tokens), (900, 65));
        assert_eq!(parse_line(r#"{"type":"turn.started"}"#), None);
        assert_eq!(parse_line("not json"), None);
    }

    #[test]
    fn a_usage_limit_and_an_http_status_are_recognised() {
        let limit = failed("You’ve hit your usage limit. Upgrade to Pro or try again at 3:05 PM.");
        assert!(limit.is_usage_limit(), "{limit:?}");
        assert_eq!(
            limit.failure(),
            Some(crate::agents::stream::Failure::UsageLimit)
        );
        let busy = failed("exceeded retry limit, last status: 503 Service Unavailable");
        assert_eq!(busy.api_error_status, Some(503));
        assert_eq!(
            busy.failure(),
            Some(crate::agents::stream::Failure::Transient)
        );
        let other = failed("something else");
        assert_eq!(other.failure(), Some(crate::agents::stream::Failure::Other));
    }
}
