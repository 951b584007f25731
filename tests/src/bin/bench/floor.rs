//! Figure 1's anchor: the same client, at the same concurrency, against an rmcp server with
//! one no-op tool (`orchestrator-noop-mcp`) — what the MCP transport alone costs on this
//! machine, so the daemon's figure reads as a ratio to it.

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::Duration;

use orchestrator_tests::bins::bins;

use crate::common::{Load, Worker, call, cpu_seconds, drive_all};

/// `n` sessions making `calls` no-op tool calls in all (split evenly), as fast as they can;
/// also returns the server's CPU seconds over the load.
pub fn drive(n: usize, calls: usize) -> (Load, Duration, f64) {
    let mut server = Command::new(&bins().noop_mcp)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start orchestrator-noop-mcp");
    let mut url = String::new();
    std::io::BufReader::new(server.stdout.take().expect("stdout"))
        .read_line(&mut url)
        .expect("read the no-op server's URL");
    let w = Worker {
        url: url.trim().to_owned(),
        token: "none".to_owned(),
    };
    let each = calls.div_ceil(n);
    let sessions = (0..n)
        .map(|_| {
            let w = w.clone();
            async move {
                let http = reqwest::Client::new();
                let mut load = Load::default();
                for id in 0..each {
                    let args = serde_json::json!({});
                    call(&http, &w, id as u64, "noop", args, &mut load).await;
                }
                load
            }
        })
        .collect();
    let pid = i32::try_from(server.id()).unwrap_or(0);
    let cpu = cpu_seconds(pid);
    let (load, wall) = drive_all(sessions);
    let cpu = cpu_seconds(pid) - cpu;
    drop(server.stdin.take());
    let _ = server.wait();
    (load, wall, cpu)
}
