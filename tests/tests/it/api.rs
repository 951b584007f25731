//! Bad requests straight at the socket: each gets a typed `{code, message}` error with a 4xx
//! status, and the daemon stays healthy.

use orchestrator_tests::{Sandbox, http};

fn started() -> Sandbox {
    let sb = Sandbox::new();
    sb.orchestrate(&["list"]).ok();
    sb
}

fn assert_error(r: &http::Response, status: u16, code: &str) {
    assert_eq!(r.status, status, "{}", r.text());
    let body = r.json();
    assert_eq!(body["code"], code, "{body}");
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

#[test]
fn bad_requests_get_typed_errors_and_the_daemon_stays_healthy() {
    let sb = started();
    let sock = sb.socket();
    let pid = sb.daemon_pid();

    let r = http::post_json(&sock, "/v1/runs", b"{\"project\": ").expect("send");
    assert_error(&r, 400, "invalid_request");

    let r = http::post_json(
        &sock,
        "/v1/runs",
        br#"{"project":"/tmp","feature":"x","colour":"blue"}"#,
    )
    .expect("send");
    assert_error(&r, 400, "invalid_request");
    assert!(
        r.json()["message"]
            .as_str()
            .unwrap_or("")
            .contains("colour")
    );

    // Declared too large: refused from the header, before any of the body is read.
    let r = http::declared_only(&sock, "POST", "/v1/runs", 2 * 1024 * 1024).expect("send");
    assert_error(&r, 413, "payload_too_large");
    // Sent without a length (chunked) and too large: refused once the limit is crossed.
    let r = http::chunked(&sock, "/v1/runs", &vec![b' '; 2 * 1024 * 1024]).expect("send");
    assert_error(&r, 413, "payload_too_large");

    let r = http::request(&sock, "POST", "/v1/runs", Some("text/plain"), b"{}").expect("send");
    assert_error(&r, 415, "unsupported_media_type");

    let r = http::get(&sock, "/v1/nope").expect("send");
    assert_error(&r, 404, "not_found");
    let r = http::get(&sock, "/health").expect("send");
    assert_error(&r, 404, "not_found");

    let r = http::request(&sock, "DELETE", "/v1/runs", None, b"").expect("send");
    assert_error(&r, 405, "method_not_allowed");

    let r = http::get(&sock, "/v1/runs?status=exploded").expect("send");
    assert_error(&r, 400, "invalid_request");

    let r = http::get(&sock, "/v1/runs/r-doesnotexist").expect("send");
    assert_error(&r, 404, "not_found");

    let r =
        http::post_json(&sock, "/v1/escalations/99/answer", br#"{"answer":"yes"}"#).expect("send");
    assert_error(&r, 404, "not_found");

    // Not even a request line: the daemon drops the connection and keeps serving.
    {
        use std::io::Write;
        let mut s = std::os::unix::net::UnixStream::connect(&sock).expect("connect");
        let _ = s.write_all(b"\x00\x01garbage\r\n\r\n");
    }

    assert_eq!(sb.daemon_pid(), pid, "same daemon, still healthy");
    assert_eq!(sb.get("/v1/runs").status, 200);
}
