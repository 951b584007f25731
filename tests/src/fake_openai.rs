//! A scripted fake of the OpenAI Responses API on loopback, so the real `codex` binary runs
//! reviews offline. Codex reaches it through a custom provider in `$CODEX_HOME/config.toml`
//! ([`FakeOpenAi::codex_home`]: `wire_api = "responses"`, no retries).
//!
//! Each `POST /v1/responses` is answered with the text the [`Script`] returns for the request,
//! streamed as SSE (`response.created`, one assistant message, `response.completed` with usage)
//! — or, for a fake that works as an agent ([`FakeOpenAi::agent`]), with the output items its
//! [`Turns`] returns: function calls of codex's shell tool ([`exec_command`]) and of our MCP
//! tools ([`mcp_call`]), messages ([`message`]), an HTTP error, or nothing at all. Every
//! request is kept.

use std::path::Path;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::fake_model::{Answer, Request, listen};

/// Decides the assistant's text for a request (the whole Responses API request body).
pub type Script = Arc<dyn Fn(&Value) -> String + Send + Sync>;

/// Decides a whole turn of an agent: its output items, or an HTTP error.
pub type Turns = Arc<dyn Fn(&Value) -> Turn + Send + Sync>;

/// One answer of a fake agent.
pub enum Turn {
    Items(Vec<Value>),
    Error {
        status: u16,
        body: Value,
    },
    /// Answer nothing and hold the connection until codex gives up or is stopped.
    Stall,
}

/// An assistant message item.
pub fn message(text: &str) -> Value {
    json!({"type": "message", "role": "assistant", "id": "msg_fake",
           "content": [{"type": "output_text", "text": text}]})
}

/// A call of codex's shell tool (run without a login shell, so profiles add no noise).
pub fn exec_command(call_id: &str, cmd: &str) -> Value {
    json!({"type": "function_call", "id": format!("fc_{call_id}"), "call_id": call_id,
           "name": "exec_command",
           "arguments": json!({"cmd": cmd, "login": false}).to_string()})
}

/// A call of one of our MCP tools as codex offers them (the `mcp__orch` namespace).
pub fn mcp_call(call_id: &str, tool: &str, args: Value) -> Value {
    json!({"type": "function_call", "id": format!("fc_{call_id}"), "call_id": call_id,
           "namespace": "mcp__orch", "name": tool, "arguments": args.to_string()})
}

/// The outputs of the calls made so far in the conversation, oldest first.
pub fn call_outputs(req: &Value) -> Vec<String> {
    req["input"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter(|i| i["type"] == "function_call_output")
                .map(|i| match &i["output"] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Every user message's text in the conversation, joined.
pub fn user_texts(req: &Value) -> String {
    req["input"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter(|i| i["role"] == "user")
                .filter_map(|m| m["content"].as_array())
                .flatten()
                .filter_map(|p| p["text"].as_str())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

/// A running fake; it stops with the test process.
pub struct FakeOpenAi {
    pub url: String,
    requests: Arc<Mutex<Vec<Value>>>,
}

impl FakeOpenAi {
    pub fn start(script: Script) -> Self {
        Self::agent(Arc::new(move |req: &Value| {
            Turn::Items(vec![message(&script(req))])
        }))
    }

    /// A fake whose every answer is the turn `turns` returns.
    pub fn agent(turns: Turns) -> Self {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = requests.clone();
        let url = listen(Arc::new(move |r: &Request| {
            if r.method != "POST" || !r.path.ends_with("/responses") {
                return Answer::ok("application/json", "{}".into());
            }
            let req: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
            let turn = turns(&req);
            if let Ok(mut l) = log.lock() {
                l.push(req);
            }
            match turn {
                Turn::Items(items) => Answer::ok("text/event-stream", sse(&items)),
                Turn::Error { status, body } => Answer {
                    status,
                    ..Answer::ok("application/json", body.to_string())
                },
                Turn::Stall => Answer {
                    stall: true,
                    ..Answer::ok("text/event-stream", String::new())
                },
            }
        }));
        Self { url, requests }
    }

    /// Every request received so far.
    pub fn requests(&self) -> Vec<Value> {
        self.requests.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Writes a `CODEX_HOME` whose config sends codex here (key from `OPENAI_API_KEY`).
    pub fn codex_home(&self, dir: &Path) {
        self.codex_home_keyed(dir, "OPENAI_API_KEY");
    }

    /// The same, with the provider's key in the variable `key`.
    pub fn codex_home_keyed(&self, dir: &Path, key: &str) {
        std::fs::create_dir_all(dir).expect("create CODEX_HOME");
        std::fs::write(
            dir.join("config.toml"),
            format!(
                "model = \"fake-model\"\nmodel_provider = \"fake\"\n\n[model_providers.fake]\n\
                 name = \"fake\"\nbase_url = \"{}/v1\"\nwire_api = \"responses\"\n\
                 env_key = \"{key}\"\nrequest_max_retries = 0\nstream_max_retries = 0\n",
                self.url
            ),
        )
        .expect("write codex config");
    }
}

/// The text of the request's last user message.
pub fn last_user_text(req: &Value) -> String {
    req["input"]
        .as_array()
        .and_then(|items| items.iter().rev().find(|i| i["role"] == "user"))
        .and_then(|m| m["content"].as_array())
        .map(|c| {
            c.iter()
                .filter_map(|p| p["text"].as_str())
                .collect::<Vec<_>>()
                .join("\n")
        })
        .unwrap_or_default()
}

fn sse(items: &[Value]) -> String {
    let mut events = vec![json!({"type": "response.created", "response": {"id": "resp_fake"}})];
    for item in items {
        events.push(json!({"type": "response.output_item.done", "item": item}));
    }
    events.push(
        json!({"type": "response.completed", "response": {"id": "resp_fake", "usage": {
               "input_tokens": 900, "input_tokens_details": null, "output_tokens": 60,
               "output_tokens_details": null, "total_tokens": 960}}}),
    );
    events
        .iter()
        .map(|e| format!("event: {}\ndata: {e}\n\n", e["type"].as_str().unwrap_or("")))
        .collect()
}
