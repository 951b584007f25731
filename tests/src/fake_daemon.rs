//! A stand-in daemon that answers every request with one canned response — for what the real
//! daemon never does, such as speaking another protocol version.

use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::path::Path;

/// Serves `status` + `body` (JSON) on `socket` from a background thread, forever.
/// The listener goes away with the test process.
pub fn serve(socket: &Path, status: u16, body: serde_json::Value) {
    if let Some(dir) = socket.parent() {
        std::fs::create_dir_all(dir).expect("create the socket dir");
    }
    let listener = UnixListener::bind(socket).expect("bind the fake daemon");
    let body = body.to_string();
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { continue };
            let mut buf = [0u8; 8192];
            // Read the request head; a health check has no body.
            let mut seen = Vec::new();
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                match conn.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                }
            }
            let reply = format!(
                "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = conn.write_all(reply.as_bytes());
        }
    });
}
