//! The Claude account's usage windows, for the whole daemon: the window belongs to the account,
//! and one daemon serves all of a user's projects. Two kinds of signal update it — every
//! worker's stream (`rate_limit_event`, usage-limit results) at once, and the usage endpoint,
//! polled rarely by one poller ([`poller`]) — and every run's actor watches it and decides
//! with [`hold`] whether its run must pause and until when.
//!
//! **Invariant:** figures are kept with their source and time; a window whose reset time has
//! passed counts as empty, so stale figures never keep a run paused after the reset.

mod agents;
pub mod credentials;
pub mod forecast;
pub mod outlook;
pub mod poller;
pub mod share;

pub use agents::{Route, codex_hold, hold, route};

use std::collections::BTreeMap;
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
    /// Every window the account reported, by its name: `five_hour`, `seven_day` and the
    /// weekly ones of one model family (`seven_day_opus`, `seven_day_sonnet`, …).
    pub windows: BTreeMap<String, Window>,
    /// A limit was hit: no work until then (`None` inside: the time is unknown).
    pub rejected: Option<Rejection>,
    /// Codex's account hit its limit (a Codex worker said so): no Codex worker until then.
    pub codex: Option<Rejection>,
    /// The endpoint poller's last outcome, for `orchestrate usage`.
    pub poll: PollState,
}

impl Account {
    pub fn window(&self, kind: &str) -> Option<Window> {
        self.windows.get(kind).copied()
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    /// Which limit (`five_hour`, `seven_day`, `seven_day_opus`, …).
    pub kind: String,
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

/// What a run holds for: its thresholds, and the model its workers run (a weekly window of
/// one model family holds only a run whose workers run that family — unless the run may
/// downgrade to a cheaper allowed model whose window has room).
#[derive(Debug, Clone, PartialEq)]
pub struct Policy<'a> {
    /// `--usage-threshold`, for the 5-hour window.
    pub threshold: f64,
    /// `--weekly-threshold` (else the threshold above), for every 7-day window.
    pub weekly: f64,
    /// The workers' model (`None`: claude's default, whose family is not known here).
    pub model: Option<&'a str>,
    /// `--on-limit downgrade`: the models the run may move a task to.
    pub downgrade: Option<Vec<&'a str>>,
    /// The CLI its workers run (a Claude window does not hold a run of Codex workers).
    pub workers: orchestrator_proto::Agent,
    /// `--on-limit codex`: tasks go to Codex while Claude's window is spent.
    pub codex_route: bool,
}

impl Policy<'_> {
    /// A run's policy from its options.
    pub fn of(o: &orchestrator_proto::RunOptions) -> Policy<'_> {
        let m = &o.models;
        Policy {
            threshold: o.usage_threshold,
            weekly: o.weekly_threshold.unwrap_or(o.usage_threshold),
            model: m.worker.as_deref(),
            downgrade: (m.on_limit == orchestrator_proto::OnLimit::Downgrade).then(|| m.choices()),
            workers: m.worker_agent,
            codex_route: m.on_limit == orchestrator_proto::OnLimit::Codex,
        }
    }

    /// The threshold that applies to window `kind` for this run, if any does.
    pub fn threshold_for(&self, kind: &str) -> Option<f64> {
        if kind == "five_hour" {
            return Some(self.threshold);
        }
        let rest = kind.strip_prefix("seven_day")?;
        match family(kind) {
            // A family's window holds only the runs whose workers run it.
            Some(f) => (self.model.and_then(orchestrator_proto::models::family) == Some(f))
                .then_some(self.weekly),
            None if rest.is_empty() || rest.starts_with('_') => Some(self.weekly),
            None => None,
        }
    }
}

/// Where a task planned on `model` runs instead, and why, when the run may downgrade and that
/// model family's 7-day window is at the weekly threshold: the strongest cheaper model the run
/// allows whose own window has room. `None`: it runs as planned.
pub fn downgrade(
    account: &Account,
    policy: &Policy<'_>,
    model: &str,
    now: OffsetDateTime,
) -> Option<(String, String)> {
    use orchestrator_proto::models::{FAMILIES, family as family_of};
    let choices = policy.downgrade.as_ref()?;
    let from = family_of(model)?;
    let over = |f: &str| {
        account
            .window(&format!("seven_day_{f}"))
            .is_some_and(|w| w.current(now) >= policy.weekly)
    };
    if !over(from) {
        return None;
    }
    let rank = |f: &str| FAMILIES.iter().position(|x| *x == f);
    let to = choices
        .iter()
        .filter_map(|c| Some((*c, family_of(c)?)))
        .filter(|(_, f)| rank(f) > rank(from) && !over(f))
        .min_by_key(|(_, f)| rank(f))?;
    let w = account.window(&format!("seven_day_{from}"))?;
    let why = format!(
        "the {} window is at {:.0}% (weekly threshold {:.0}%)",
        human(&format!("seven_day_{from}")),
        w.current(now) * 100.0,
        policy.weekly * 100.0
    );
    Some((to.0.to_owned(), why))
}

/// Work resumes this long after a window's reset, by default.
pub const RESET_MARGIN: time::Duration = time::Duration::seconds(60);

/// A window's name as the account gives it, if it is a plain one (else `usage`).
fn kind_name(kind: &str) -> String {
    let plain = !kind.is_empty()
        && kind.len() <= 40
        && kind
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if plain { kind } else { "usage" }.to_owned()
}

/// The model family of a weekly window of one family (`seven_day_opus` → `opus`).
fn family(kind: &str) -> Option<&'static str> {
    let f = kind.strip_prefix("seven_day_")?;
    ["opus", "sonnet", "haiku"].into_iter().find(|m| *m == f)
}

/// A window's name for people: "5-hour", "7-day", "7-day Opus".
pub fn human(kind: &str) -> String {
    orchestrator_proto::usage::window_name(kind)
}

/// Whether Claude's account keeps a run with `policy` from working now; work resumes
/// `margin` after a reset. Of the windows over their threshold, the one that resets last
/// says until when. (What holds a run is [`hold`], which weighs Codex in.)
pub fn claude_hold(
    account: &Account,
    policy: &Policy<'_>,
    now: OffsetDateTime,
    margin: time::Duration,
) -> Option<Hold> {
    if let Some(r) = &account.rejected
        && r.until.is_none_or(|u| u > now)
        // A family's limit stops only the runs of that family; any other stops every run.
        && (family(&r.kind).is_none() || policy.threshold_for(&r.kind).is_some())
    {
        return Some(Hold {
            reason: format!("the account hit its {} limit", human(&r.kind)),
            until: r.until.map(|u| u + margin),
            rejected: true,
        });
    }
    let over = account.windows.iter().filter_map(|(kind, w)| {
        let t = policy.threshold_for(kind)?;
        let u = w.current(now);
        // A run that can move its workers to a cheaper model with room does not wait.
        let moved = family(kind).is_some()
            && policy
                .model
                .is_some_and(|m| downgrade(account, policy, m, now).is_some());
        (u >= t && !moved).then_some((kind, w, u, t))
    });
    let (kind, w, u, t) = over.max_by_key(|(_, w, _, _)| w.resets_at)?;
    let weekly = if kind == "five_hour" { "" } else { "weekly " };
    Some(Hold {
        reason: format!(
            "the {} window is at {:.0}% ({weekly}threshold {:.0}%, from the {})",
            human(kind),
            u * 100.0,
            t * 100.0,
            w.source.as_str()
        ),
        until: w.resets_at.map(|r| r + margin),
        rejected: false,
    })
}

/// Whether a task planned on `model` must wait although its run goes on: that model family's
/// 7-day window is at the weekly threshold and the run cannot move the task to a cheaper
/// model with room. Never for the workers' own family: that one holds the whole run
/// ([`hold`]), which is also what a user's resume overrides.
pub fn task_hold(
    account: &Account,
    policy: &Policy<'_>,
    model: &str,
    now: OffsetDateTime,
    margin: time::Duration,
) -> Option<Hold> {
    let from = orchestrator_proto::models::family(model)?;
    if policy.model.and_then(orchestrator_proto::models::family) == Some(from) {
        return None;
    }
    let kind = format!("seven_day_{from}");
    let w = account.window(&kind)?;
    let u = w.current(now);
    if u < policy.weekly || downgrade(account, policy, model, now).is_some() {
        return None;
    }
    Some(Hold {
        reason: format!(
            "the {} window is at {:.0}% (weekly threshold {:.0}%)",
            human(&kind),
            u * 100.0,
            policy.weekly * 100.0
        ),
        until: w.resets_at.map(|r| r + margin),
        rejected: false,
    })
}

/// The newest observation the account state is based on.
pub fn newest(a: &Account) -> Option<OffsetDateTime> {
    a.windows
        .values()
        .map(|w| w.observed_at)
        .chain(a.rejected.as_ref().map(|r| r.observed_at))
        .max()
}

/// [`hold`], except that figures not newer than `forced_at` (when the user resumed over a
/// hold) are not acted on.
pub fn hold_since(
    account: &Account,
    policy: &Policy<'_>,
    margin: time::Duration,
    forced_at: Option<OffsetDateTime>,
) -> Option<Hold> {
    let h = hold(account, policy, OffsetDateTime::now_utc(), margin)?;
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
                    kind: kind.clone(),
                    until: resets,
                    observed_at: now,
                });
                let full = Window {
                    utilization: 1.0,
                    resets_at: resets,
                    source: Source::Stream,
                    observed_at: now,
                };
                a.windows.insert(kind, full);
                return;
            }
            let Some(u) = utilization else { return };
            let w = Window {
                utilization: u.clamp(0.0, 1.0),
                resets_at: resets,
                source: Source::Stream,
                observed_at: now,
            };
            a.windows.insert(kind, w);
        });
    }

    /// A session ended on a usage-limit result (the reset time, when the stream gave one).
    pub fn limit_hit(&self, resets_at: Option<OffsetDateTime>) {
        let now = OffsetDateTime::now_utc();
        self.tx.send_modify(|a| {
            let known = a
                .rejected
                .as_ref()
                .filter(|r| r.until.is_some_and(|u| u > now));
            if known.is_none() {
                let five = a.window("five_hour");
                a.rejected = Some(Rejection {
                    kind: "five_hour".into(),
                    until: resets_at.or_else(|| five.and_then(|w| w.resets_at)),
                    observed_at: now,
                });
            }
        });
    }

    /// The usage endpoint's answer: every window it gave.
    pub fn polled(&self, windows: BTreeMap<String, Window>) {
        let now = OffsetDateTime::now_utc();
        self.tx.send_modify(|a| {
            for (kind, p) in windows {
                // The newer figure wins: a worker's stream may be fresher than the poll.
                if a.window(&kind)
                    .is_none_or(|s| s.observed_at <= p.observed_at)
                {
                    a.windows.insert(kind, p);
                }
            }
            // A poll that shows room again clears a rejection whose time is unknown.
            if let Some(r) = &a.rejected
                && r.until.is_none()
                && a.window(&r.kind).is_some_and(|w| w.current(now) < 1.0)
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
mod tests;
