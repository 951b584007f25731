//! Claude Code's `--output-format stream-json`, read leniently: one JSON object per line;
//! unknown types, unknown fields and non-JSON lines are ignored, so a newer claude that adds
//! events never breaks a run.
//!
//! **Rule:** a session succeeded only if a `result` line says `is_error: false`; the exit status
//! alone is not enough (API errors end in `subtype: "success"` with `is_error: true`, exit 1).

use serde_json::Value;

/// What the daemon needs from one stream-json line.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamEvent {
    /// `system/init`: the session id, each MCP server's status, the tools loaded.
    Init {
        session_id: String,
        /// The model it runs (an alias resolved: `opus` reads as `claude-opus-5-5`).
        model: Option<String>,
        /// Each MCP server by name, and whether claude connected to it.
        mcp: Vec<(String, bool)>,
        tools: Vec<String>,
    },
    /// The model called a tool; `what` is a one-line summary of its input (the command, the
    /// file), when there is one.
    ToolUse { name: String, what: Option<String> },
    /// `rate_limit_event` (subscription sessions only).
    RateLimit {
        /// `status: "rejected"`: the account is over its limit (else `allowed`, or
        /// `allowed_warning` with a utilization).
        rejected: bool,
        kind: Option<String>,
        resets_at: Option<i64>,
        utilization: Option<f64>,
    },
    /// The final `result` line.
    Result(Outcome),
    /// What the model said (Codex's `agent_message`; its last one is the session's answer).
    Message(String),
    /// A warning or error the CLI printed without ending the session (Codex's `error`).
    Warning(String),
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Outcome {
    pub is_error: bool,
    pub subtype: String,
    pub text: Option<String>,
    pub cost_usd: f64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub num_turns: u64,
    pub api_error: Option<String>,
    pub api_error_status: Option<u64>,
}

/// Why a session that ended with `is_error` failed, as far as the daemon acts on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The account's usage window is exhausted: pause until it resets.
    UsageLimit,
    /// Claude Code cannot authenticate (a bad key, an expired or revoked login): no retry
    /// helps until a human fixes it.
    Auth,
    /// The model API was unavailable (5xx, 529 overloaded, a connection error, a timeout): a
    /// later try will likely work.
    Transient,
    /// Anything else (a bad request, a refusal, max turns…).
    Other,
}

impl Outcome {
    /// How this outcome failed, if it did.
    pub fn failure(&self) -> Option<Failure> {
        if !self.is_error {
            return None;
        }
        if self.is_usage_limit() {
            return Some(Failure::UsageLimit);
        }
        let text = self.text.as_deref().unwrap_or("").to_lowercase();
        let api = self.api_error.as_deref().unwrap_or("");
        match self.api_error_status {
            Some(401 | 403) => return Some(Failure::Auth),
            Some(408 | 409 | 429 | 500..=599) => return Some(Failure::Transient),
            Some(_) => return Some(Failure::Other),
            None => {}
        }
        if api == "authentication_failed"
            || text.contains("invalid api key")
            || text.contains("oauth token has expired")
            || text.contains("/login")
        {
            Some(Failure::Auth)
        } else if text.starts_with("api error: 5")
            || text.contains("overloaded")
            || text.contains("connection error")
            || text.contains("request timed out")
        {
            Some(Failure::Transient)
        } else {
            Some(Failure::Other)
        }
    }

    /// A usage-limit stop (the 5-hour window), by the reference doc's recipe.
    pub fn is_usage_limit(&self) -> bool {
        self.is_error
            && (self.api_error.as_deref() == Some("usage_limit_reached")
                || (self.api_error_status == Some(429)
                    && self.text.as_deref().is_some_and(|t| {
                        let t = t.to_lowercase();
                        (t.contains("hit your") && t.contains("limit"))
                            || t.contains("usage limit reached")
                    })))
    }
}

/// A tool input in one line for people: its command, file, path, pattern or URL, at most 120
/// characters.
pub fn summary(input: &Value) -> Option<String> {
    let text = ["command", "file_path", "path", "pattern", "url", "query"]
        .iter()
        .find_map(|k| input[*k].as_str())?;
    let line = text.lines().next().unwrap_or("").trim();
    Some(if line.chars().count() > 120 {
        line.chars().take(119).collect::<String>() + "…"
    } else {
        line.to_owned()
    })
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

/// Parses one line; `None` for anything the daemon does not use.
pub fn parse_line(line: &str) -> Option<StreamEvent> {
    let v: Value = serde_json::from_str(line.trim()).ok()?;
    match v["type"].as_str()? {
        "system" if v["subtype"] == "init" => Some(StreamEvent::Init {
            session_id: v["session_id"].as_str().unwrap_or_default().to_owned(),
            model: v["model"].as_str().map(str::to_owned),
            mcp: v["mcp_servers"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .map(|s| {
                            (
                                s["name"].as_str().unwrap_or_default().to_owned(),
                                s["status"].as_str() == Some("connected"),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default(),
            tools: strings(&v["tools"]),
        }),
        "assistant" => v["message"]["content"]
            .as_array()?
            .iter()
            .find(|b| b["type"] == "tool_use")
            .map(|b| StreamEvent::ToolUse {
                name: b["name"].as_str().unwrap_or_default().to_owned(),
                what: summary(&b["input"]),
            }),
        "rate_limit_event" => {
            let i = &v["rate_limit_info"];
            Some(StreamEvent::RateLimit {
                rejected: i["status"].as_str() == Some("rejected"),
                kind: i["rateLimitType"].as_str().map(str::to_owned),
                resets_at: i["resetsAt"].as_i64(),
                utilization: i["utilization"].as_f64(),
            })
        }
        "result" => Some(StreamEvent::Result(Outcome {
            is_error: v["is_error"].as_bool().unwrap_or(true),
            subtype: v["subtype"].as_str().unwrap_or_default().to_owned(),
            text: v["result"].as_str().map(str::to_owned),
            cost_usd: v["total_cost_usd"].as_f64().unwrap_or(0.0),
            input_tokens: v["usage"]["input_tokens"].as_u64().unwrap_or(0),
            output_tokens: v["usage"]["output_tokens"].as_u64().unwrap_or(0),
            num_turns: v["num_turns"].as_u64().unwrap_or(0),
            api_error: v["api_error"].as_str().map(str::to_owned),
            api_error_status: v["api_error_status"].as_u64(),
        })),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn init_lists_mcp_status_and_tools() {
        let line = r#"{"type":"system","subtype":"init","session_id":"abc","tools":["Bash","mcp__orch__claim_task"],"mcp_servers":[{"name":"orch","status":"failed","source":"dynamic"}],"new_field":1}"#;
        assert_eq!(
            parse_line(line),
            Some(StreamEvent::Init {
                session_id: "abc".into(),
                model: None,
                mcp: vec![("orch".into(), false)],
                tools: vec!["Bash".into(), "mcp__orch__claim_task".into()],
            })
        );
    }

    #[test]
    fn api_errors_are_errors_even_with_subtype_success() {
        let line = r#"{"type":"result","subtype":"success","is_error":true,"result":"You've hit your 5-hour limit · resets Jan 1, 2030, 12am (UTC)","api_error_status":429,"api_error":"usage_limit_reached","total_cost_usd":0.5,"usage":{"input_tokens":7,"output_tokens":3},"num_turns":2}"#;
        let Some(StreamEvent::Result(o)) = parse_line(line) else {
            panic!("a result")
        };
        assert!(o.is_error);
        assert!(o.is_usage_limit());
        assert_eq!((o.input_tokens, o.output_tokens, o.num_turns), (7, 3, 2));
        let legacy = r#"{"type":"result","subtype":"success","is_error":true,"result":"Claude AI usage limit reached|1893456000","api_error_status":429}"#;
        let Some(StreamEvent::Result(o)) = parse_line(legacy) else {
            panic!("a result")
        };
        assert!(o.is_usage_limit());
    }

    #[test]
    fn unknown_and_broken_lines_are_ignored() {
        assert_eq!(parse_line("not json"), None);
        assert_eq!(parse_line(r#"{"type":"stream_event","event":{}}"#), None);
        assert_eq!(parse_line(r#"{"no_type":1}"#), None);
        let rl = r#"{"type":"rate_limit_event","rate_limit_info":{"status":"rejected","resetsAt":1893456000,"rateLimitType":"five_hour"}}"#;
        assert!(matches!(
            parse_line(rl),
            Some(StreamEvent::RateLimit {
                resets_at: Some(1893456000),
                ..
            })
        ));
    }

    #[test]
    fn failures_are_classified_by_status_then_by_text() {
        let out = |status: Option<u64>, text: &str| Outcome {
            is_error: true,
            api_error_status: status,
            text: Some(text.into()),
            ..Default::default()
        };
        assert_eq!(out(Some(401), "x").failure(), Some(Failure::Auth));
        assert_eq!(out(Some(529), "x").failure(), Some(Failure::Transient));
        assert_eq!(out(Some(500), "x").failure(), Some(Failure::Transient));
        assert_eq!(out(Some(400), "x").failure(), Some(Failure::Other));
        assert_eq!(
            out(None, "Invalid API key · Fix external API key").failure(),
            Some(Failure::Auth)
        );
        assert_eq!(
            out(None, "API Error: 529 Overloaded. Try again").failure(),
            Some(Failure::Transient)
        );
        assert_eq!(out(None, "something else").failure(), Some(Failure::Other));
        let ok = Outcome::default();
        assert_eq!(ok.failure(), None);
        let limit = out(Some(429), "You've hit your 5-hour limit · resets 5pm");
        assert_eq!(limit.failure(), Some(Failure::UsageLimit));
    }

    proptest::proptest! {
        /// No line claude could print makes the parser panic.
        #[test]
        fn any_line_parses_or_is_skipped(line in "\\PC{0,200}") {
            let _ = parse_line(&line);
        }

        /// Nor does any value under a known type.
        #[test]
        fn any_value_under_a_known_type_is_handled(
            kind in proptest::sample::select(vec!["system", "assistant", "result", "rate_limit_event", "user"]),
            field in "[a-z_]{1,12}",
            value in proptest::prelude::any::<i64>(),
        ) {
            let line = format!("{{\"type\":\"{kind}\",\"subtype\":\"init\",\"{field}\":{value},\"rate_limit_info\":{{\"{field}\":{value}}}}}");
            let _ = parse_line(&line);
        }
    }
}
