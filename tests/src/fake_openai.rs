//! A scripted fake of the OpenAI Responses API on loopback, so the real `codex` binary runs
//! reviews offline. Codex reaches it through a custom provider in `$CODEX_HOME/config.toml`
//! ([`FakeOpenAi::codex_home`]: `wire_api = "responses"`, no retries).
//!
//! Each `POST /v1/responses` is answered with the text the [`Script`] returns for the request,
//! streamed as SSE (`response.created`, one assistant message, `response.completed` with usage).
//! Every request is kept for assertions.

use std::path::Path;
use std::sync::{Arc, Mutex};

use serde_json::{Value, json};

use crate::fake_model::{Answer, Request, listen};

/// Decides the assistant's text for a request (the whole Responses API request body).
pub type Script = Arc<dyn Fn(&Value) -> String + Send + Sync>;

/// A running fake; it stops with the test process.
pub struct FakeOpenAi {
    pub url: String,
    requests: Arc<Mutex<Vec<Value>>>,
}

impl FakeOpenAi {
    pub fn start(script: Script) -> Self {
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = requests.clone();
        let url = listen(Arc::new(move |r: &Request| {
            if r.method != "POST" || !r.path.ends_with("/responses") {
                return Answer::ok("application/json", "{}".into());
            }
            let req: Value = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
            let text = script(&req);
            if let Ok(mut l) = log.lock() {
                l.push(req);
            }
            Answer::ok("text/event-stream", sse(&text))
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

fn sse(text: &str) -> String {
    let events = [
        json!({"type": "response.created", "response": {"id": "resp_fake"}}),
        json!({"type": "response.output_item.done", "item": {"type": "message", "role": "assistant",
               "id": "msg_fake", "content": [{"type": "output_text", "text": text}]}}),
        json!({"type": "response.completed", "response": {"id": "resp_fake", "usage": {
               "input_tokens": 900, "input_tokens_details": null, "output_tokens": 60,
               "output_tokens_details": null, "total_tokens": 960}}}),
    ];
    events
        .iter()
        .map(|e| format!("event: {}\ndata: {e}\n\n", e["type"].as_str().unwrap_or("")))
        .collect()
}
