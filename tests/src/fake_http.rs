//! The HTTP server under the suite's fake model APIs (Anthropic's Messages API, OpenAI's
//! Responses API, the usage endpoint): axum on a loopback port of its own, so the real
//! `claude` and `codex` meet a real HTTP/1.1 server — keep-alive, chunked request bodies,
//! whatever framing their clients choose — while each fake stays a plain function from a
//! [`Request`] to an [`Answer`].

use std::sync::Arc;

use axum::body::Body;
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};

/// One HTTP request to a fake API.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// The path with its query.
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

/// Serves `handler` on a fresh loopback port for the rest of the test process (a thread with
/// its own runtime, so any test, async or not, can start one); returns the base URL.
pub fn listen(handler: Handler) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind a fake API");
    listener
        .set_nonblocking(true)
        .expect("a non-blocking listener");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    std::thread::Builder::new()
        .name("fake-api".into())
        .spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime for a fake API");
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("listener");
                let app = axum::Router::new()
                    .fallback(move |req: axum::extract::Request| answer(handler.clone(), req));
                let _ = axum::serve(listener, app).await;
            });
        })
        .expect("spawn a fake API");
    url
}

async fn answer(handler: Handler, req: axum::extract::Request) -> axum::response::Response {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX)
        .await
        .unwrap_or_default();
    let request = Request {
        method: parts.method.to_string(),
        path: parts
            .uri
            .path_and_query()
            .map(ToString::to_string)
            .unwrap_or_default(),
        headers: parts
            .headers
            .iter()
            .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
            .collect(),
        body: body.to_vec(),
        at: std::time::Instant::now(),
    };
    // A script may take its time (or lock): off the runtime, so other requests go on.
    let a = match tokio::task::spawn_blocking(move || handler(&request)).await {
        Ok(a) => a,
        Err(e) => return text_response(500, &format!("the fake API's script panicked: {e}")),
    };
    if a.stall {
        // Dropped when the client hangs up.
        std::future::pending::<()>().await;
    }
    let mut response = axum::response::Response::builder()
        .status(a.status)
        .header(CONTENT_TYPE, a.content_type)
        .header(CACHE_CONTROL, "no-cache");
    for (k, v) in &a.headers {
        response = response.header(k.as_str(), v.as_str());
    }
    response
        .body(Body::from(a.body))
        .unwrap_or_else(|e| text_response(500, &format!("a fake answer is not HTTP: {e}")))
}

fn text_response(status: u16, text: &str) -> axum::response::Response {
    let mut r = axum::response::Response::new(Body::from(text.to_owned()));
    *r.status_mut() = axum::http::StatusCode::from_u16(status)
        .unwrap_or(axum::http::StatusCode::INTERNAL_SERVER_ERROR);
    r
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::sync::Arc;

    use super::{Answer, Request, listen};

    /// A chunked request body reaches the script whole, and a second request on the same
    /// connection is answered too (the hand-written server this replaced read only
    /// Content-Length bodies).
    #[test]
    fn chunked_bodies_and_keep_alive_reach_the_script() {
        let url = listen(Arc::new(|r: &Request| {
            Answer::ok(
                "text/plain",
                format!("{} {} {}", r.method, r.path, r.body.len()),
            )
        }));
        let addr = url.trim_start_matches("http://");
        let mut s = std::net::TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(std::time::Duration::from_secs(10)))
            .expect("timeout");
        let first = "POST /v1/messages?beta=true HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n\
                     5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
        let second = "GET /again HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
        s.write_all(first.as_bytes()).expect("first");
        s.write_all(second.as_bytes()).expect("second");
        let mut raw = String::new();
        s.read_to_string(&mut raw).expect("both answers");
        assert!(raw.contains("POST /v1/messages?beta=true 11"), "{raw}");
        assert!(raw.contains("GET /again 0"), "{raw}");
        assert_eq!(raw.matches("HTTP/1.1 200").count(), 2, "{raw}");
    }
}
