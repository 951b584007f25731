//! Claude's account and Codex's, side by side: a run of Claude workers holds for Claude's
//! windows, a run of Codex workers for Codex's limit, and a run that may route to Codex
//! (`--on-limit codex`) does not hold for Claude at all while Codex has room — its tasks
//! start as Codex workers instead ([`route`]) and go back to Claude after the reset.
//!
//! Codex says it hit its limit only as text, without a reset time the daemon can trust, so a
//! Codex limit holds Codex work for [`CODEX_RECHECK`] and is tried again then (a worker that
//! hits it again is interrupted unspent, as any limited worker).

use orchestrator_proto::Agent;
use time::OffsetDateTime;

use super::{Account, Hold, Policy, Rejection, Usage, claude_hold};

/// How long Codex work waits after Codex reported its usage limit.
pub const CODEX_RECHECK: time::Duration = time::Duration::minutes(30);

/// Whether Codex's account keeps Codex workers from starting now.
pub fn codex_hold(account: &Account, now: OffsetDateTime, margin: time::Duration) -> Option<Hold> {
    let r = account.codex.as_ref()?;
    let until = r.until.unwrap_or(r.observed_at + CODEX_RECHECK);
    (until > now).then(|| Hold {
        reason: "Codex hit its usage limit".to_owned(),
        until: Some(until + margin),
        rejected: true,
    })
}

/// Whether a run with `policy` must hold now: its workers' account is over its threshold (or
/// spent), and — for a run that may route to Codex — Codex has no room either.
pub fn hold(
    account: &Account,
    policy: &Policy<'_>,
    now: OffsetDateTime,
    margin: time::Duration,
) -> Option<Hold> {
    let codex = codex_hold(account, now, margin);
    match policy.workers {
        Agent::Codex => codex,
        Agent::Claude => {
            let claude = claude_hold(account, policy, now, margin)?;
            (!policy.codex_route || codex.is_some()).then_some(claude)
        }
    }
}

/// Where a task whose plan says `agent` starts now.
#[derive(Debug, Clone, PartialEq)]
pub enum Route {
    /// As planned.
    Planned,
    /// As a Codex worker instead of a Claude one, for this reason (`--on-limit codex`).
    ToCodex(String),
    /// Not now: its agent's account is held and the run's own workers are not (a task the
    /// plan gave the other agent).
    Wait(Hold),
}

/// Where a task planned for `agent` starts in a run with `policy` that is not held itself.
pub fn route(
    account: &Account,
    policy: &Policy<'_>,
    agent: Agent,
    now: OffsetDateTime,
    margin: time::Duration,
) -> Route {
    let held = match agent {
        Agent::Claude => claude_hold(account, policy, now, margin),
        Agent::Codex => codex_hold(account, now, margin),
    };
    let Some(h) = held else {
        return Route::Planned;
    };
    if agent == Agent::Claude && policy.codex_route && codex_hold(account, now, margin).is_none() {
        return Route::ToCodex(h.reason);
    }
    if agent == policy.workers {
        // The run's own account: the run holds (or the user resumed over it).
        return Route::Planned;
    }
    Route::Wait(h)
}

impl Usage {
    /// A Codex worker ended on its usage limit (`said` is its message).
    pub fn codex_limit_hit(&self, said: &str) {
        let now = OffsetDateTime::now_utc();
        tracing::info!(said, "Codex reported its usage limit");
        self.tx.send_modify(|a| {
            a.codex = Some(Rejection {
                kind: "codex".into(),
                until: None,
                observed_at: now,
            });
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::{RESET_MARGIN, Window};

    fn policy(workers: Agent, codex_route: bool) -> Policy<'static> {
        Policy {
            threshold: 0.8,
            weekly: 0.9,
            model: None,
            downgrade: None,
            workers,
            codex_route,
        }
    }

    fn five_hour_at(u: f64, now: OffsetDateTime) -> Account {
        let mut a = Account::default();
        a.windows.insert(
            "five_hour".into(),
            Window {
                utilization: u,
                resets_at: Some(now + time::Duration::hours(1)),
                source: super::super::Source::Stream,
                observed_at: now,
            },
        );
        a
    }

    #[test]
    fn claude_s_window_routes_to_codex_instead_of_holding_until_codex_is_spent() {
        let now = OffsetDateTime::now_utc();
        let m = RESET_MARGIN;
        let full = five_hour_at(0.95, now);
        let pause = policy(Agent::Claude, false);
        let codex = policy(Agent::Claude, true);
        assert!(hold(&full, &pause, now, m).is_some());
        assert_eq!(hold(&full, &codex, now, m), None, "routing, not pausing");
        assert!(matches!(
            route(&full, &codex, Agent::Claude, now, m),
            Route::ToCodex(why) if why.contains("5-hour")
        ));
        assert_eq!(route(&full, &codex, Agent::Codex, now, m), Route::Planned);

        let usage = Usage::new();
        usage.tx.send_replace(full);
        usage.codex_limit_hit("You've hit your usage limit");
        let both = usage.snapshot();
        assert!(hold(&both, &codex, now, m).is_some(), "nowhere to route");
        let later = now + CODEX_RECHECK + time::Duration::minutes(2);
        assert_eq!(codex_hold(&both, later, m), None, "Codex is tried again");
    }

    #[test]
    fn each_agent_s_account_holds_only_its_own_work() {
        let now = OffsetDateTime::now_utc();
        let m = RESET_MARGIN;
        let full = five_hour_at(0.95, now);
        let codex_run = policy(Agent::Codex, false);
        assert_eq!(hold(&full, &codex_run, now, m), None);
        assert!(matches!(
            route(&full, &codex_run, Agent::Claude, now, m),
            Route::Wait(_)
        ));
        let usage = Usage::new();
        usage.codex_limit_hit("You've hit your usage limit");
        let spent = usage.snapshot();
        assert!(hold(&spent, &codex_run, now, m).is_some_and(|h| h.rejected));
        let claude_run = policy(Agent::Claude, false);
        assert_eq!(hold(&spent, &claude_run, now, m), None);
        assert!(matches!(
            route(&spent, &claude_run, Agent::Codex, now, m),
            Route::Wait(h) if h.reason.contains("Codex")
        ));
    }
}
