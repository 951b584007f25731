//! A minimal MCP client for tests: JSON-RPC over HTTP POSTs to the daemon's `/mcp`, written on
//! `std` so tests control every header (tokens, Host, Origin). The daemon serves MCP
//! statelessly with JSON replies, so one POST is one complete call.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::{Value, json};

use crate::http::{Response, parse};

/// Where the endpoint is and which token to present.
#[derive(Debug, Clone)]
pub struct Mcp {
    /// `host:port`
    pub addr: String,
    pub token: Option<String>,
}

impl Mcp {
    /// From an `http://127.0.0.1:PORT/mcp` URL.
    pub fn new(url: &str, token: Option<&str>) -> Self {
        let addr = url
            .strip_prefix("http://")
            .and_then(|r| r.strip_suffix("/mcp"))
            .unwrap_or_else(|| panic!("unexpected MCP url {url}"))
            .to_owned();
        Self {
            addr,
            token: token.map(str::to_owned),
        }
    }

    /// POSTs a JSON-RPC message with extra headers; returns the raw response.
    pub fn post(&self, body: &Value, extra: &[(&str, &str)]) -> Response {
        self.try_post(body, extra)
            .unwrap_or_else(|e| panic!("POST to the MCP endpoint {}: {e}", self.addr))
    }

    /// [`Mcp::post`], with transport failures (the daemon is down) as errors.
    pub fn try_post(&self, body: &Value, extra: &[(&str, &str)]) -> std::io::Result<Response> {
        let body = body.to_string();
        let mut s = TcpStream::connect(&self.addr)?;
        s.set_read_timeout(Some(Duration::from_secs(60)))?;
        let mut head = format!(
            "POST /mcp HTTP/1.1\r\nConnection: close\r\nContent-Type: application/json\r\n\
             Accept: application/json, text/event-stream\r\nContent-Length: {}\r\n",
            body.len()
        );
        if !extra.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
            head.push_str(&format!("Host: {}\r\n", self.addr));
        }
        if let Some(t) = &self.token {
            head.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        for (k, v) in extra {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes())?;
        s.write_all(body.as_bytes())?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw)?;
        parse(&raw)
    }

    /// `tools/call`; returns the `result` object (panics on a transport or JSON-RPC error).
    pub fn call(&self, tool: &str, args: Value) -> Value {
        let r = self.post(
            &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                    "params": {"name": tool, "arguments": args}}),
            &[],
        );
        assert_eq!(r.status, 200, "{tool}: {}", r.text());
        let v = r.json();
        v.get("result")
            .cloned()
            .unwrap_or_else(|| panic!("{tool}: no result in {v}"))
    }

    /// A call expected to succeed: its `structuredContent`.
    pub fn ok(&self, tool: &str, args: Value) -> Value {
        let r = self.call(tool, args);
        assert_ne!(r["isError"], true, "{tool} was refused: {r}");
        r["structuredContent"].clone()
    }

    /// A call expected to be refused: the refusal text shown to the model.
    pub fn refused(&self, tool: &str, args: Value) -> String {
        let r = self.call(tool, args);
        assert_eq!(r["isError"], true, "{tool} should be refused: {r}");
        r["content"][0]["text"].as_str().unwrap_or("").to_owned()
    }

    /// `tools/list`: the tool names.
    pub fn tool_names(&self) -> Vec<String> {
        let r = self.post(
            &json!({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}),
            &[],
        );
        assert_eq!(r.status, 200, "{}", r.text());
        r.json()["result"]["tools"]
            .as_array()
            .expect("tools")
            .iter()
            .filter_map(|t| t["name"].as_str().map(str::to_owned))
            .collect()
    }
}
