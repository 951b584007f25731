//! The Claude account's usage windows, for the whole daemon: the window belongs to the account,
//! and one daemon serves all of a user's projects. Two kinds of signal update it — every
//! worker's stream (`rate_limit_event`, usage-limit results) at once, and the usage endpoint,
//! polled rarely by one poller ([`poller`]) — and every run's actor watches it and decides
//! with [`hold`] whether its run must pause and until when.
//!
//! **Invariant:** figures are kept with their source and time; a window whose reset time has
//! passed counts as empty, so stale figures never keep a run paused after the reset.

pub mod credentials;
pub mod poller;

use std::sync::Arc;

use time::OffsetDateTime;
use tokio::sync::watch;

/// Where a figure came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A worker's `rate_limit_event` or usage-limit result.
    Stream,
    /// The usage endpoint.
    Endpoint,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stream => "worker stream",
            Self::Endpoint => "usage endpoint",
        }
    }
}

/// One window's last known utilization.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    /// 0.0–1.0.
    pub utilization: f64,
    pub resets_at: Option<OffsetDateTime>,
    pub source: Source,
    pub observed_at: OffsetDateTime,
}

impl Window {
    /// The utilization now: 0 once the window has reset.
    pub fn current(&self, now: OffsetDateTime) -> f64 {
        match self.resets_at {
            Some(r) if r <= now => 0.0,
            _ => self.utilization,
        }
    }
}

/// What the daemon knows of the account.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Account {
    pub five_hour: Option<Window>,
    pub seven_day: Option<Window>,
    /// A limit was hit: no work until then (`None` inside: the time is unknown).
    pub rejected: Option<Rejection>,
    /// The endpoint poller's last outcome, for `orchestrate usage`.
    pub poll: PollState,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rejection {
    /// Which limit (`five_hour`, `seven_day`, …).
    pub kind: &'static str,
    pub until: Option<OffsetDateTime>,
    pub observed_at: OffsetDateTime,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct PollState {
    /// Which token source the poller uses; `None`: no token (API-key users), no polling.
    pub token_source: Option<String>,
    pub last_ok: Option<OffsetDateTime>,
    pub last_error: Option<String>,
    pub next_at: Option<OffsetDateTime>,
}

/// Why a run must not work now, and until when.
#[derive(Debug, Clone, PartialEq)]
pub struct Hold {
    pub reason: String,
    /// When work may resume (the reset plus a margin); `None`: unknown, check again later.
    pub until: Option<OffsetDateTime>,
    /// A limit was actually hit: interrupt at once rather than letting workers finish.
    pub rejected: bool,
}

/// Work resumes this long after a window's reset, by default.
pub const RESET_MARGIN: time::Duration = time::Duration::seconds(60);

fn kind_name(kind: &str) -> &'static str {
    match kind {
        "five_hour" => "five_hour",
        "seven_day" => "seven_day",
        "seven_day_opus" => "seven_day_opus",
        "seven_day_sonnet" => "seven_day_sonnet",
        "overage" => "overage",
        _ => "usage",
    }
}

fn human(kind: &str) -> &'static str {
    match kind {
        "five_hour" => "5-hour",
        "seven_day" | "seven_day_opus" | "seven_day_sonnet" => "7-day",
        _ => "usage",
    }
}

/// Whether a run with `threshold` (0–1] must hold now; work resumes `margin` after a reset.
pub fn hold(
    account: &Account,
    threshold: f64,
    now: OffsetDateTime,
    margin: time::Duration,
) -> Option<Hold> {
    if let Some(r) = account.rejected
        && r.until.is_none_or(|u| u > now)
    {
        return Some(Hold {
            reason: format!("the account hit its {} limit", human(r.kind)),
            until: r.until.map(|u| u + margin),
            rejected: true,
        });
    }
    let w = account.five_hour?;
    let u = w.current(now);
    if u >= threshold {
        return Some(Hold {
            reason: format!(
                "the 5-hour window is at {:.0}% (threshold {:.0}%, from the {})",
                u * 100.0,
                threshold * 100.0,
                w.source.as_str()
            ),
            until: w.resets_at.map(|r| r + margin),
            rejected: false,
        });
    }
    None
}

/// The newest observation the account state is based on.
pub fn newest(a: &Account) -> Option<OffsetDateTime> {
    [
        a.five_hour.map(|w| w.observed_at),
        a.rejected.map(|r| r.observed_at),
    ]
    .into_iter()
    .flatten()
    .max()
}

/// [`hold`], except that figures not newer than `forced_at` (when the user resumed over a
/// hold) are not acted on.
pub fn hold_since(
    account: &Account,
    threshold: f64,
    margin: time::Duration,
    forced_at: Option<OffsetDateTime>,
) -> Option<Hold> {
    let h = hold(account, threshold, OffsetDateTime::now_utc(), margin)?;
    if let Some(f) = forced_at
        && newest(account).is_none_or(|n| n <= f)
    {
        return None;
    }
    Some(h)
}

/// The account state, shared by the poller, every session and every run.
#[derive(Clone)]
pub struct Usage {
    tx: Arc<watch::Sender<Account>>,
}

impl std::fmt::Debug for Usage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Usage").field(&*self.tx.borrow()).finish()
    }
}

impl Default for Usage {
    fn default() -> Self {
        Self::new()
    }
}

impl Usage {
    pub fn new() -> Self {
        Self {
            tx: Arc::new(watch::Sender::new(Account::default())),
        }
    }

    pub fn subscribe(&self) -> watch::Receiver<Account> {
        self.tx.subscribe()
    }

    pub fn snapshot(&self) -> Account {
        self.tx.borrow().clone()
    }

    /// A worker's `rate_limit_event`.
    pub fn rate_limit_event(
        &self,
        rejected: bool,
        kind: Option<&str>,
        resets_at: Option<i64>,
        utilization: Option<f64>,
    ) {
        let now = OffsetDateTime::now_utc();
        let resets = resets_at.and_then(|s| OffsetDateTime::from_unix_timestamp(s).ok());
        let kind = kind_name(kind.unwrap_or("five_hour"));
        self.tx.send_modify(|a| {
            if rejected {
                a.rejected = Some(Rejection {
                    kind,
                    until: resets,
                    observed_at: now,
                });
                if kind == "five_hour" {
                    a.five_hour = Some(Window {
                        utilization: 1.0,
                        resets_at: resets,
                        source: Source::Stream,
                        observed_at: now,
                    });
                }
                return;
            }
            let Some(u) = utilization else { return };
            let w = Window {
                utilization: u.clamp(0.0, 1.0),
                resets_at: resets,
                source: Source::Stream,
                observed_at: now,
            };
            match kind {
                "five_hour" => a.five_hour = Some(w),
                "seven_day" => a.seven_day = Some(w),
                _ => {}
            }
        });
    }

    /// A session ended on a usage-limit result (the reset time, when the stream gave one).
    pub fn limit_hit(&self, resets_at: Option<OffsetDateTime>) {
        let now = OffsetDateTime::now_utc();
        self.tx.send_modify(|a| {
            let known = a.rejected.filter(|r| r.until.is_some_and(|u| u > now));
            if known.is_none() {
                a.rejected = Some(Rejection {
                    kind: "five_hour",
                    until: resets_at.or_else(|| a.five_hour.and_then(|w| w.resets_at)),
                    observed_at: now,
                });
            }
        });
    }

    /// The usage endpoint's answer.
    pub fn polled(&self, five_hour: Option<Window>, seven_day: Option<Window>) {
        let now = OffsetDateTime::now_utc();
        self.tx.send_modify(|a| {
            // The newer figure wins: a worker's stream may be fresher than the poll.
            if five_hour.is_some_and(|p| a.five_hour.is_none_or(|s| s.observed_at <= p.observed_at))
            {
                a.five_hour = five_hour;
            }
            if seven_day.is_some_and(|p| a.seven_day.is_none_or(|s| s.observed_at <= p.observed_at))
            {
                a.seven_day = seven_day;
            }
            // A poll that shows room again clears a rejection whose time is unknown.
            if let Some(r) = a.rejected
                && r.until.is_none()
                && five_hour.is_some_and(|w| w.current(now) < 1.0)
                && r.observed_at < now
            {
                a.rejected = None;
            }
            a.poll.last_ok = Some(now);
            a.poll.last_error = None;
        });
    }

    pub fn poll_state(&self, f: impl FnOnce(&mut PollState)) {
        self.tx.send_modify(|a| f(&mut a.poll));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_rejections_and_resets() {
        let usage = Usage::new();
        let now = OffsetDateTime::now_utc();
        let reset = now + time::Duration::hours(2);
        usage.rate_limit_event(
            false,
            Some("five_hour"),
            Some(reset.unix_timestamp()),
            Some(0.82),
        );
        let h = hold(&usage.snapshot(), 0.8, now, RESET_MARGIN).expect("over the threshold");
        assert!(!h.rejected && h.reason.contains("82%"), "{h:?}");
        assert_eq!(
            h.until.map(|u| u.unix_timestamp()),
            Some((reset + RESET_MARGIN).unix_timestamp())
        );
        assert_eq!(hold(&usage.snapshot(), 0.9, now, RESET_MARGIN), None);
        // After the reset the old figure no longer holds anyone.
        assert_eq!(
            hold(
                &usage.snapshot(),
                0.8,
                reset + time::Duration::seconds(1),
                RESET_MARGIN
            ),
            None
        );
        usage.rate_limit_event(true, Some("seven_day"), Some(reset.unix_timestamp()), None);
        let h = hold(&usage.snapshot(), 0.99, now, RESET_MARGIN).expect("rejected");
        assert!(h.rejected && h.reason.contains("7-day"), "{h:?}");
    }

    #[test]
    fn a_limit_without_a_time_holds_until_a_poll_shows_room() {
        let usage = Usage::new();
        usage.limit_hit(None);
        let now = OffsetDateTime::now_utc();
        assert!(hold(&usage.snapshot(), 0.8, now, RESET_MARGIN).is_some_and(|h| h.until.is_none()));
        let later = now + time::Duration::seconds(1);
        usage.polled(
            Some(Window {
                utilization: 0.1,
                resets_at: None,
                source: Source::Endpoint,
                observed_at: later,
            }),
            None,
        );
        assert_eq!(hold(&usage.snapshot(), 0.8, later, RESET_MARGIN), None);
    }
}
