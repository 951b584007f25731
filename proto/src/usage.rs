//! `GET /v1/usage`: what the daemon knows of the Claude account's usage windows, where each
//! figure came from and how old it is. The token itself is never part of it.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// A window's name for people: `five_hour` → "5-hour", `seven_day` → "7-day",
/// `seven_day_opus` → "7-day Opus"; any other with its underscores as spaces.
pub fn window_name(kind: &str) -> String {
    match kind {
        "five_hour" => "5-hour".into(),
        "seven_day" => "7-day".into(),
        k => match k.strip_prefix("seven_day_") {
            Some(rest) => {
                let mut c = rest.chars();
                let first = c.next().map(|c| c.to_ascii_uppercase());
                let rest: String = first.into_iter().chain(c).collect();
                format!("7-day {}", rest.replace('_', " "))
            }
            None => k.replace('_', " "),
        },
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageReport {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub five_hour: Option<UsageWindow>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seven_day: Option<UsageWindow>,
    /// Every other window the account reported, by its name (`seven_day_opus`,
    /// `seven_day_sonnet`, …).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub others: std::collections::BTreeMap<String, UsageWindow>,
    /// A limit was hit; work waits for its reset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit_hit: Option<LimitHit>,
    /// Codex's account hit its limit (a Codex worker said so); Codex work waits until then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub codex_limit_hit: Option<LimitHit>,
    /// The active runs' shares of the 5-hour window (`--priority`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub runs: Vec<RunShare>,
    pub poller: PollerReport,
}

/// One active run's share of the 5-hour window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunShare {
    pub run: String,
    pub project: String,
    pub priority: u32,
    pub share_percent: f64,
    /// What its sessions spent since the window began.
    pub spent_usd: f64,
    /// Its share of the window up to its threshold, in dollars, once the window's size is
    /// known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowance_usd: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageWindow {
    /// Percent, 0–100, as of `observed_at` (0 once `resets_at` has passed).
    pub utilization_percent: f64,
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub resets_at: Option<OffsetDateTime>,
    /// `worker stream` or `usage endpoint`.
    pub source: String,
    #[serde(with = "time::serde::rfc3339")]
    pub observed_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitHit {
    /// `five_hour`, `seven_day`, `seven_day_opus`, …
    pub kind: String,
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub until: Option<OffsetDateTime>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PollerReport {
    /// Where the OAuth token comes from; absent: no token, so no polling.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_source: Option<String>,
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub last_ok: Option<OffsetDateTime>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub next_at: Option<OffsetDateTime>,
}

#[cfg(test)]
mod tests {
    #[test]
    fn windows_have_names_for_people() {
        let n = super::window_name;
        assert_eq!(n("five_hour"), "5-hour");
        assert_eq!(n("seven_day"), "7-day");
        assert_eq!(n("seven_day_opus"), "7-day Opus");
        assert_eq!(n("seven_day_oauth_apps"), "7-day Oauth apps");
        assert_eq!(n("overage"), "overage");
    }
}
