//! The one usage-endpoint poller of the daemon: `GET <base>/api/oauth/usage` with the
//! subscription's OAuth token, rarely (default every 10 minutes, with jitter — public reports
//! say 30-second polling gets an account throttled for hours), backing off exponentially on
//! 429 and 5xx and honouring `Retry-After`. Its answer updates [`Usage`](super::Usage); its
//! state (token source, last success, last error, next poll) is kept there for
//! `orchestrate usage`. Without a token it does not poll: limits are then learnt from the
//! workers' own streams.

use std::time::Duration;

use time::OffsetDateTime;
use tokio_util::sync::CancellationToken;

use super::credentials::{self, Found};
use super::{Source, Usage, Window};

/// `[usage]` settings.
#[derive(Debug, Clone, PartialEq)]
pub struct PollerConfig {
    /// Scheme and host, e.g. `https://api.anthropic.com`.
    pub base_url: String,
    pub interval: Duration,
    pub user_agent: String,
}

impl Default for PollerConfig {
    fn default() -> Self {
        Self {
            base_url: "https://api.anthropic.com".into(),
            interval: Duration::from_secs(600),
            user_agent: "claude-code/2.1.330".into(),
        }
    }
}

/// The token from the daemon's environment, else from the newest active run's (forwarded
/// from the user's shell); or why the source that has one cannot be used.
async fn token(db: &crate::store::Db) -> (Option<Found>, Option<String>) {
    let now = OffsetDateTime::now_utc();
    let daemon = |k: &str| std::env::var(k).ok();
    match credentials::find(&daemon, now) {
        Ok(Some(f)) => return (Some(f), None),
        Ok(None) => {}
        Err(e) => return (None, Some(e.to_string())),
    }
    let Ok(Some(env)) = db.call(|c| crate::store::runs::newest_active_env(c)).await else {
        return (None, None);
    };
    let from_run = |k: &str| env.get(k).map(str::to_owned);
    match credentials::find(&from_run, now) {
        Ok(f) => (f, None),
        Err(e) => (None, Some(e.to_string())),
    }
}

/// What one poll learnt.
enum Polled {
    /// Every window the endpoint gave, by its name.
    Ok(std::collections::BTreeMap<String, Window>),
    /// Back off; at least this long when the server said so.
    Busy(String, Option<Duration>),
    Failed(String),
}

fn window(v: &serde_json::Value, now: OffsetDateTime) -> Option<Window> {
    let u = v["utilization"].as_f64()?;
    let resets_at = v["resets_at"].as_str().and_then(|s| {
        OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).ok()
    });
    Some(Window {
        // The endpoint speaks percent (0–100); streams speak fractions.
        utilization: (u / 100.0).clamp(0.0, 1.0),
        resets_at,
        source: Source::Endpoint,
        observed_at: now,
    })
}

/// One poll.
async fn poll(http: &reqwest::Client, cfg: &PollerConfig, token: &Found) -> Polled {
    let url = format!("{}/api/oauth/usage", cfg.base_url.trim_end_matches('/'));
    let sent = http
        .get(&url)
        .bearer_auth(token.token.expose())
        .header("anthropic-beta", "oauth-2025-04-20")
        .header(reqwest::header::ACCEPT, "application/json")
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .send()
        .await;
    let resp = match sent {
        Ok(r) => r,
        // The whole chain: reqwest's own text is only "error sending request".
        Err(e) => return Polled::Busy(format!("cannot reach {url}: {}", chain(&e)), None),
    };
    let status = resp.status();
    if status.as_u16() == 429 || status.is_server_error() {
        let after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        return Polled::Busy(format!("{url} answered {status}"), after);
    }
    if status.as_u16() == 401 || status.as_u16() == 403 {
        return Polled::Failed(format!(
            "{url} refused the token from {} ({status}); it needs the user:profile scope — a \
             `claude setup-token` token has only user:inference, so log in with `claude` instead",
            token.source
        ));
    }
    if !status.is_success() {
        return Polled::Failed(format!("{url} answered {status}"));
    }
    match resp.json::<serde_json::Value>().await {
        Ok(v) => {
            let now = OffsetDateTime::now_utc();
            // Every object with a utilization is a window: five_hour, seven_day and the
            // weekly ones of a model family (seven_day_opus, …), whatever the account has.
            let windows = v
                .as_object()
                .into_iter()
                .flatten()
                .filter_map(|(k, w)| Some((k.clone(), window(w, now)?)))
                .collect();
            Polled::Ok(windows)
        }
        Err(e) => Polled::Failed(format!(
            "{url} answered something that is not usage JSON: {}",
            chain(&e)
        )),
    }
}

/// An error with its sources, `a: b: c`.
fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut next = e.source();
    while let Some(s) = next {
        out.push_str(": ");
        out.push_str(&s.to_string());
        next = s.source();
    }
    out
}

/// The poller's HTTP client: rustls with the system's trust store (so `SSL_CERT_FILE` and a
/// proxy's CA work), the proxy from `HTTPS_PROXY`, and a fresh connection per poll (polls are
/// minutes apart: never a stale pooled one).
fn client(cfg: &PollerConfig) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .connect_timeout(Duration::from_secs(10))
        .pool_max_idle_per_host(0)
        .user_agent(&cfg.user_agent)
        .build()
}

fn jitter(d: Duration) -> Duration {
    let r = getrandom::u64().unwrap_or(0) % 1000;
    d + d.mul_f64(r as f64 / 10_000.0)
}

/// Polls until `stop`.
pub async fn run(usage: Usage, cfg: PollerConfig, db: crate::store::Db, stop: CancellationToken) {
    let http = match client(&cfg) {
        Ok(c) => c,
        Err(e) => {
            let why = format!("cannot set up HTTPS for the usage endpoint: {}", chain(&e));
            tracing::error!(cause = %why, "usage poller not started");
            usage.poll_state(|p| p.last_error = Some(why));
            return;
        }
    };
    let mut failures: u32 = 0;
    loop {
        let (found, problem) = token(&db).await;
        let delay = match found {
            None => {
                usage.poll_state(|p| {
                    p.token_source = None;
                    p.last_error = problem.clone();
                });
                cfg.interval
            }
            Some(found) => {
                let source = found.source.clone();
                usage.poll_state(|p| p.token_source = Some(source));
                let polled = tokio::select! {
                    _ = stop.cancelled() => return,
                    p = poll(&http, &cfg, &found) => p,
                };
                match polled {
                    Polled::Ok(windows) => {
                        failures = 0;
                        usage.polled(windows);
                        jitter(cfg.interval)
                    }
                    Polled::Busy(why, after) => {
                        failures = failures.saturating_add(1);
                        let backoff = cfg
                            .interval
                            .saturating_mul(1 << failures.min(6))
                            .min(cfg.interval.max(Duration::from_secs(3600)));
                        let d = after.map_or(backoff, |a| a.max(backoff));
                        tracing::warn!(cause = %why, retry_in = ?d, "usage endpoint busy; backing off");
                        usage.poll_state(|p| p.last_error = Some(why));
                        d
                    }
                    Polled::Failed(why) => {
                        tracing::warn!(cause = %why, "usage poll failed");
                        usage.poll_state(|p| p.last_error = Some(why));
                        cfg.interval
                    }
                }
            }
        };
        let next = OffsetDateTime::now_utc() + delay;
        usage.poll_state(|p| p.next_at = Some(next));
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(delay) => {}
        }
    }
}
