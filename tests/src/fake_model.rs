//! A scripted fake of the Anthropic Messages API on loopback, so the real `claude` binary runs
//! whole sessions offline. `ANTHROPIC_BASE_URL=<url>` points claude at it.
//!
//! Each `POST /v1/messages` is answered by the [`Script`] from the request alone (stateless,
//! so claude's retries and fallbacks get consistent answers), streamed as SSE when the request
//! asks for `stream`, else as one JSON message. Every request is kept for assertions.

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

pub use crate::fake_http::{Answer, Handler, Request, listen};

/// What the real claude needs to run offline against a fake model API (plus its URL in
/// `ANTHROPIC_BASE_URL`).
pub const OFFLINE: [(&str, &str); 4] = [
    ("ANTHROPIC_API_KEY", "dummy"),
    ("CLAUDE_CODE_MAX_RETRIES", "0"),
    ("DISABLE_TELEMETRY", "1"),
    ("CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC", "1"),
];

/// What the fake model says next.
#[derive(Debug, Clone)]
pub enum Reply {
    /// Call a tool with these arguments.
    ToolUse { name: String, input: Value },
    /// Say this and end the turn.
    Text(String),
    /// Answer with this HTTP error status, body and headers instead (e.g. a 429 with the
    /// `anthropic-ratelimit-unified-*` headers of a hit usage limit).
    Error {
        status: u16,
        headers: Vec<(String, String)>,
        message: String,
    },
    /// A normal reply with extra response headers (e.g. a usage warning).
    WithHeaders(Box<Reply>, Vec<(String, String)>),
    /// Accept the request and never answer (a stalled stream), until the client hangs up.
    Stall,
}

/// Decides the reply to a request (the whole Messages API request body).
pub type Script = Arc<dyn Fn(&Value) -> Reply + Send + Sync>;

/// A running fake; it stops with the test process.
pub struct FakeModel {
    pub url: String,
    requests: Arc<Mutex<Vec<Value>>>,
}

impl FakeModel {
    pub fn start(script: Script) -> Self {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = requests.clone();
        let url = listen(Arc::new(move |r: &Request| messages(r, &script, &log)));
        Self { url, requests }
    }

    /// Every Messages API request received so far.
    pub fn requests(&self) -> Vec<Value> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }
}

/// The text of the last `tool_result` block in the request's last user message, if any.
pub fn last_tool_result(req: &Value) -> Option<String> {
    let last = req["messages"].as_array()?.last()?;
    let blocks = last["content"].as_array()?;
    let result = blocks.iter().rev().find(|b| b["type"] == "tool_result")?;
    Some(match &result["content"] {
        Value::String(s) => s.clone(),
        Value::Array(parts) => parts
            .iter()
            .filter_map(|p| p["text"].as_str())
            .collect::<Vec<_>>()
            .join(""),
        other => other.to_string(),
    })
}

/// Names of the tools offered to the model in this request.
pub fn tool_names(req: &Value) -> Vec<String> {
    req["tools"]
        .as_array()
        .map(|t| {
            t.iter()
                .filter_map(|t| t["name"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}

fn messages(r: &Request, script: &Script, log: &Mutex<Vec<Value>>) -> Answer {
    if r.method != "POST" || !r.path.starts_with("/v1/messages") || r.path.contains("count_tokens")
    {
        // HEAD /api/hello and anything else: a plain, empty success.
        return Answer::ok("application/json", "{}".into());
    }
    let req: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    let mut reply = script(&req);
    let stream = req["stream"] == true;
    let model = req["model"].as_str().unwrap_or("claude-fake").to_owned();
    if let Ok(mut l) = log.lock() {
        l.push(req);
    }
    let mut headers = Vec::new();
    if let Reply::WithHeaders(inner, h) = reply {
        headers = h;
        reply = *inner;
    }
    if let Reply::Stall = reply {
        return Answer {
            stall: true,
            ..Answer::ok("text/event-stream", String::new())
        };
    }
    if let Reply::Error {
        status,
        headers,
        message,
    } = reply
    {
        let kind = match status {
            429 => "rate_limit_error",
            401 => "authentication_error",
            403 => "permission_error",
            529 => "overloaded_error",
            _ => "api_error",
        };
        return Answer {
            stall: false,
            status,
            headers,
            content_type: "application/json",
            body: json!({"type": "error", "error": {"type": kind, "message": message}}).to_string(),
        };
    }
    let mut a = if stream {
        Answer::ok("text/event-stream", sse(&reply, &model))
    } else {
        Answer::ok("application/json", message(&reply, &model).to_string())
    };
    a.headers = headers;
    a
}

fn usage() -> Value {
    json!({"input_tokens": 10, "output_tokens": 5, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0})
}

fn block(reply: &Reply) -> (Value, &'static str) {
    match reply {
        Reply::ToolUse { name, input } => (
            json!({"type": "tool_use", "id": format!("toolu_{}", uuid_like()), "name": name, "input": input}),
            "tool_use",
        ),
        Reply::Text(t) => (json!({"type": "text", "text": t}), "end_turn"),
        Reply::Error { .. } | Reply::WithHeaders(..) | Reply::Stall => {
            unreachable!("answered before a message is built")
        }
    }
}

fn message(reply: &Reply, model: &str) -> Value {
    let (content, stop) = block(reply);
    json!({"id": format!("msg_{}", uuid_like()), "type": "message", "role": "assistant", "model": model,
           "content": [content], "stop_reason": stop, "stop_sequence": null, "usage": usage()})
}

fn sse(reply: &Reply, model: &str) -> String {
    let (content, stop) = block(reply);
    let mut events = vec![json!({"type": "message_start", "message": {
        "id": format!("msg_{}", uuid_like()), "type": "message", "role": "assistant", "model": model,
        "content": [], "stop_reason": null, "stop_sequence": null, "usage": usage()}})];
    match reply {
        Reply::ToolUse { input, .. } => {
            let mut start = content.clone();
            start["input"] = json!({});
            events.push(json!({"type": "content_block_start", "index": 0, "content_block": start}));
            events.push(json!({"type": "content_block_delta", "index": 0,
                "delta": {"type": "input_json_delta", "partial_json": input.to_string()}}));
        }
        Reply::Text(t) => {
            events.push(json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}));
            events.push(json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": t}}));
        }
        Reply::Error { .. } | Reply::WithHeaders(..) | Reply::Stall => {
            unreachable!("answered before a stream is built")
        }
    }
    events.push(json!({"type": "content_block_stop", "index": 0}));
    events.push(
        json!({"type": "message_delta", "delta": {"stop_reason": stop, "stop_sequence": null},
                       "usage": {"output_tokens": 5}}),
    );
    events.push(json!({"type": "message_stop"}));
    events
        .iter()
        .map(|e| format!("event: {}\ndata: {e}\n\n", e["type"].as_str().unwrap_or("")))
        .collect()
}

fn uuid_like() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(1);
    format!(
        "{:016x}",
        N.fetch_add(1, Ordering::Relaxed) ^ u64::from(std::process::id()) << 32
    )
}
