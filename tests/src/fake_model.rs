//! A scripted fake of the Anthropic Messages API on loopback, so the real `claude` binary runs
//! whole sessions offline. `ANTHROPIC_BASE_URL=<url>` points claude at it.
//!
//! Each `POST /v1/messages` is answered by the [`Script`] from the request alone (stateless,
//! so claude's retries and fallbacks get consistent answers), streamed as SSE when the request
//! asks for `stream`, else as one JSON message. Every request is kept for assertions.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

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

/// One HTTP request to a fake API.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    /// Header names in lower case.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub at: std::time::Instant,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// One HTTP answer of a fake API.
pub struct Answer {
    /// Send nothing at all and hold the connection until the client closes it.
    pub stall: bool,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub content_type: &'static str,
    pub body: String,
}

impl Answer {
    pub fn ok(content_type: &'static str, body: String) -> Self {
        Self {
            stall: false,
            status: 200,
            headers: Vec::new(),
            content_type,
            body,
        }
    }
}

/// What a fake API does with a request.
pub type Handler = Arc<dyn Fn(&Request) -> Answer + Send + Sync>;

/// Serves `handler` on a fresh loopback port (keep-alive connections, one thread each) for the
/// rest of the test process; returns the base URL.
pub fn listen(handler: Handler) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a fake API");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let handler = handler.clone();
            std::thread::spawn(move || {
                let _ = serve(conn, &handler);
            });
        }
    });
    url
}

fn serve(conn: TcpStream, handler: &Handler) -> std::io::Result<()> {
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut conn = conn;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_owned();
        let path = parts.next().unwrap_or("").to_owned();
        let mut len = 0usize;
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            reader.read_line(&mut h)?;
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    len = v.trim().parse().unwrap_or(0);
                }
                headers.push((k.trim().to_ascii_lowercase(), v.trim().to_owned()));
            }
        }
        let mut body = vec![0u8; len];
        reader.read_exact(&mut body)?;
        let a = handler(&Request {
            method,
            path,
            headers,
            body,
            at: std::time::Instant::now(),
        });
        if a.stall {
            let mut sink = [0u8; 1024];
            while reader.read(&mut sink)? > 0 {}
            return Ok(());
        }
        let extra: String = a
            .headers
            .iter()
            .map(|(k, v)| format!("{k}: {v}\r\n"))
            .collect();
        // One write: some clients parse a response head that arrives in pieces badly.
        let response = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nCache-Control: no-cache\r\n{extra}Content-Length: {}\r\n\r\n{}",
            a.status,
            if a.status < 400 { "OK" } else { "Error" },
            a.content_type,
            a.body.len(),
            a.body
        );
        conn.write_all(response.as_bytes())?;
        conn.flush()?;
    }
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
