//! `GET /v1/usage`: the account's usage windows as the daemon knows them, with where each
//! figure came from and when; the active runs' shares of the 5-hour window; the poller's state.
//! Never the token.

use axum::extract::State;
use orchestrator_proto::usage::{LimitHit, PollerReport, RunShare, UsageReport, UsageWindow};

use super::AppState;
use crate::usage::Window;

fn window(w: &Window, now: time::OffsetDateTime) -> UsageWindow {
    UsageWindow {
        utilization_percent: (w.current(now) * 1000.0).round() / 10.0,
        resets_at: w.resets_at,
        source: w.source.as_str().to_owned(),
        observed_at: w.observed_at,
    }
}

/// The active runs' shares of the 5-hour window.
async fn shares(s: &AppState, a: &crate::usage::Account) -> Vec<RunShare> {
    let Ok(shares) = crate::usage::share::Shares::read(s.runs.db(), a).await else {
        return Vec::new();
    };
    shares
        .claims
        .iter()
        .map(|c| RunShare {
            run: c.run.clone(),
            project: c.project.clone(),
            priority: c.priority,
            share_percent: (shares.share(&c.run) * 1000.0).round() / 10.0,
            spent_usd: c.spent,
            allowance_usd: shares.allowance(&c.run),
        })
        .collect()
}

pub async fn get(State(s): State<AppState>) -> axum::Json<UsageReport> {
    let a = s.usage.snapshot();
    let now = time::OffsetDateTime::now_utc();
    let runs = shares(&s, &a).await;
    axum::Json(UsageReport {
        five_hour: a.window("five_hour").map(|w| window(&w, now)),
        seven_day: a.window("seven_day").map(|w| window(&w, now)),
        others: a
            .windows
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "five_hour" | "seven_day"))
            .map(|(k, w)| (k.clone(), window(w, now)))
            .collect(),
        limit_hit: a
            .rejected
            .as_ref()
            .filter(|r| r.until.is_none_or(|u| u > now))
            .map(|r| LimitHit {
                kind: r.kind.clone(),
                until: r.until,
            }),
        codex_limit_hit: crate::usage::codex_hold(&a, now, time::Duration::ZERO).map(|h| {
            LimitHit {
                kind: "codex".into(),
                until: h.until,
            }
        }),
        runs,
        poller: PollerReport {
            token_source: a.poll.token_source.clone(),
            last_ok: a.poll.last_ok,
            last_error: a.poll.last_error.clone(),
            next_at: a.poll.next_at,
        },
    })
}
