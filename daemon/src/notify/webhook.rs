//! Notifications anywhere: a JSON POST to each `[[notifications.webhook]]` when a run needs
//! the user or is done (escalated, paused, completed, failed), in the shape its service reads —
//! ntfy (the message as the body, its title and priority as headers), a Slack-compatible
//! incoming webhook (`{"text": …}`), or a generic JSON object. Each is sent on a task of its
//! own, retried with backoff, and can never fail or delay a run.
//!
//! **Invariant:** a webhook's URL (which often carries a secret) is never logged: errors are
//! logged without it, and a hook is named by its position in the config.

use std::time::Duration;

use serde::Deserialize;
use serde_json::json;

/// How a hook's service reads a notification.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// `{"event", "run", "project", "feature", "status", "reason", "title", "at"}`.
    #[default]
    Json,
    /// ntfy: the message as the body, `Title`, `Priority` and `Tags` headers.
    Ntfy,
    /// A Slack-compatible incoming webhook: `{"text": …}`.
    Slack,
}

/// One `[[notifications.webhook]]`.
#[derive(Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Webhook {
    pub url: String,
    #[serde(default)]
    pub format: Format,
}

impl std::fmt::Debug for Webhook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the URL: it often carries the secret.
        f.debug_struct("Webhook")
            .field("format", &self.format)
            .finish()
    }
}

/// What happened, for people and for machines.
#[derive(Debug, Clone)]
pub struct Notice {
    /// `escalated`, `paused`, `completed`, `failed`.
    pub event: &'static str,
    pub title: String,
    pub message: String,
    pub run: String,
    pub project: String,
    pub feature: String,
    pub reason: String,
}

/// Attempts per hook, and the wait before the first retry (then ×4).
const ATTEMPTS: u32 = 3;
const FIRST_WAIT: Duration = Duration::from_millis(250);

/// Sends `notice` to every hook, each on its own task; returns at once.
pub fn send_all(hooks: &[Webhook], notice: &Notice) {
    if hooks.is_empty() {
        return;
    }
    let client = match reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(cause = %e, "cannot make an HTTP client for webhooks");
            return;
        }
    };
    for (i, hook) in hooks.iter().enumerate() {
        let (client, hook, notice) = (client.clone(), hook.clone(), notice.clone());
        tokio::spawn(async move { deliver(&client, i + 1, &hook, &notice).await });
    }
}

async fn deliver(client: &reqwest::Client, n: usize, hook: &Webhook, notice: &Notice) {
    let mut wait = FIRST_WAIT;
    for attempt in 1..=ATTEMPTS {
        match request(client, hook, notice).send().await {
            Ok(r) if r.status().is_success() => return,
            Ok(r) => {
                tracing::warn!(hook = n, attempt, status = %r.status(), "a webhook refused a notification")
            }
            Err(e) => {
                tracing::warn!(hook = n, attempt, cause = %e.without_url(), "a webhook could not be reached")
            }
        }
        if attempt < ATTEMPTS {
            tokio::time::sleep(wait).await;
            wait *= 4;
        }
    }
}

fn request(client: &reqwest::Client, hook: &Webhook, n: &Notice) -> reqwest::RequestBuilder {
    let post = client.post(&hook.url);
    match hook.format {
        Format::Json => post.json(&json!({
            "event": n.event,
            "title": n.title,
            "message": n.message,
            "run": n.run,
            "project": n.project,
            "feature": n.feature,
            "reason": n.reason,
            "at": crate::store::time_text::format(crate::store::time_text::now()),
        })),
        Format::Slack => post.json(&json!({"text": format!("*{}*\n{}", n.title, n.message)})),
        Format::Ntfy => post
            .header("Title", ascii(&n.title))
            .header(
                "Priority",
                if n.event == "escalated" {
                    "high"
                } else {
                    "default"
                },
            )
            .header(
                "Tags",
                match n.event {
                    "escalated" => "raising_hand",
                    "paused" => "pause_button",
                    "completed" => "white_check_mark",
                    _ => "x",
                },
            )
            .body(n.message.clone()),
    }
}

/// A header value: what is not printable ASCII becomes `?` (headers carry no UTF-8).
fn ascii(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect()
}
