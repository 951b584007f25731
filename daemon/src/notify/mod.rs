//! Desktop notifications when a run needs the user or is done: escalated, paused, completed,
//! failed. `notify-send` on Linux, `osascript` on macOS, when installed; fire-and-forget, so
//! a notification can never fail or slow a run. `[notifications] enabled = false` turns them
//! off. Webhooks ([`webhook`]) carry the same notices anywhere else.

pub mod webhook;

use std::process::Stdio;

/// Shows `body` under `title`, if the platform's notifier is there. Never waits, never fails.
pub fn send(title: &str, body: &str) {
    let (program, args): (&str, Vec<String>) = if cfg!(target_os = "macos") {
        let esc = |s: &str| s.replace('\\', "\\\\").replace('"', "\\\"");
        (
            "osascript",
            vec![
                "-e".into(),
                format!(
                    "display notification \"{}\" with title \"{}\"",
                    esc(body),
                    esc(title)
                ),
            ],
        )
    } else {
        (
            "notify-send",
            vec!["--app-name=orchestrator".into(), title.into(), body.into()],
        )
    };
    let spawned = tokio::process::Command::new(program)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(false)
        .spawn();
    match spawned {
        // Reap it in the background; its outcome does not matter.
        Ok(mut child) => {
            tokio::spawn(async move {
                let _ = child.wait().await;
            });
        }
        Err(e) => tracing::debug!(program, cause = %e, "no desktop notification"),
    }
}
