//! The usage governor's side of a run: pause before the account's limit, let running workers
//! finish within a grace period (or interrupt them at once when a limit was hit), resume by
//! itself after the reset, and stop at the run's budget.
//!
//! **Invariant:** the hold (kind and end time) is part of the run's row, written with the
//! status change, so a restarted daemon resumes the run on time; time is compared by the wall
//! clock on every tick, so a laptop that slept past the reset resumes as soon as it wakes.

use orchestrator_proto::{HoldKind, Level, Phase, RunStatus};
use time::OffsetDateTime;

use super::RunActor;
use crate::runs::error::RunError;
use crate::store::{NewEvent, time_text};
use crate::usage::{self, Account};
use orchestrator_proto::{EscalationKind, EventKind};

/// Without a known reset time, a held run checks again after this long.
const RECHECK: time::Duration = time::Duration::minutes(10);

fn clock(t: OffsetDateTime) -> String {
    let f = time::macros::format_description!("[hour]:[minute] UTC");
    t.format(&f).unwrap_or_else(|_| time_text::format(t))
}

impl RunActor {
    /// Whether the account says this run must not work now (ignoring what the user overrode).
    pub(super) fn usage_hold(&self, account: &Account) -> Option<usage::Hold> {
        usage::hold_since(
            account,
            &usage::Policy::of(&self.run.options),
            self.engine.usage_margin,
            self.forced_at,
        )
    }

    /// The account changed: hold the run if it must.
    pub(super) async fn check_usage(&mut self, account: &Account) {
        if !matches!(self.run.status, RunStatus::Queued | RunStatus::Running) {
            return;
        }
        if let Some(h) = self.usage_hold(account)
            && let Err(e) = self.hold_for_usage(h).await
        {
            tracing::error!(run = %self.run.id, cause = %e, "cannot pause for usage");
        }
    }

    /// Pauses the run until the window resets: running workers get the grace period unless a
    /// limit was actually hit.
    pub(super) async fn hold_for_usage(&mut self, h: usage::Hold) -> Result<(), RunError> {
        let now = OffsetDateTime::now_utc();
        let until = h.until.unwrap_or(now + RECHECK);
        let grace = self.engine.usage_grace;
        let draining = !h.rejected
            && !grace.is_zero()
            && self.run.phase == Phase::Executing
            && self.working.is_some();
        let workers = if draining {
            if let Some(d) = &self.drain {
                d.cancel();
            }
            let end = now + grace;
            self.grace_until = Some(end);
            format!(
                "no new task starts; running workers may finish until {}, then they are interrupted",
                clock(end)
            )
        } else {
            self.stop_work();
            "running workers are interrupted and continue their sessions later".to_owned()
        };
        let next = if self.run.options.auto_resume {
            format!("resumes by itself at {}", clock(until))
        } else {
            format!(
                "the window resets at {}; auto-resume is off, so `orchestrate resume` continues it",
                clock(until)
            )
        };
        self.run.hold_kind = Some(HoldKind::Usage);
        self.run.hold_until = Some(until);
        self.set_status(
            RunStatus::Paused,
            format!("usage: {}; {workers}; {next}", h.reason),
        )
        .await
        .map(drop)
    }

    /// Every tick: the grace period's end, and the hold's end, by the wall clock.
    pub(super) async fn check_timers(&mut self, account: &Account) {
        let now = OffsetDateTime::now_utc();
        if let Some(g) = self.grace_until
            && now >= g
        {
            self.grace_until = None;
            if self.working.is_some() && self.run.status == RunStatus::Paused {
                let _ = self
                    .record(NewEvent {
                        level: Level::Warn,
                        ..NewEvent::info(
                            EventKind::GraceOver,
                            "The grace period is over: interrupting the running workers (they continue their sessions when the run resumes)",
                        )
                    })
                    .await;
                self.stop_work();
            }
        }
        let due = self.run.status == RunStatus::Paused
            && self.run.hold_kind == Some(HoldKind::Usage)
            && self.run.options.auto_resume
            && self.run.hold_until.is_some_and(|u| u <= now);
        if !due {
            return;
        }
        if let Some(h) = self.usage_hold(account) {
            // Still over (a figure newer than the reset): wait for the next one.
            let _ = self.hold_for_usage(h).await;
            return;
        }
        self.clear_hold();
        if let Err(e) = self
            .set_status(
                RunStatus::Queued,
                "the usage window has reset: resuming by itself".into(),
            )
            .await
        {
            tracing::error!(run = %self.run.id, cause = %e, "cannot resume after the reset");
            return;
        }
        self.advance().await;
    }

    pub(super) fn clear_hold(&mut self) {
        self.run.hold_kind = None;
        self.run.hold_until = None;
        self.grace_until = None;
    }

    /// After a session's cost was recorded: escalates when the run reached its budget (each
    /// answered budget escalation grants one more budget's worth).
    pub(super) async fn check_budget(&mut self) -> Result<(), RunError> {
        let Some(budget) = self.run.options.max_budget_usd else {
            return Ok(());
        };
        if !matches!(self.run.status, RunStatus::Queued | RunStatus::Running) {
            return Ok(());
        }
        let id = self.run.id.clone();
        let (spent, granted) = self
            .db
            .call(move |c| crate::store::runs::budget_spent(c, &id))
            .await?;
        let limit = budget * f64::from(granted + 1);
        if spent < limit {
            return Ok(());
        }
        self.escalate(
            EscalationKind::BudgetExhausted,
            None,
            format!(
                "The run has spent ${spent:.2}, reaching its budget of ${limit:.2} (--max-budget-usd {budget}). \
                 Answer to grant another ${budget:.2} and continue, or cancel the run."
            ),
            format!("sessions of this run cost ${spent:.2} so far"),
        )
        .await
    }
}
