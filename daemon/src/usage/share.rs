//! Fair share of the account's 5-hour window across the runs that use it at once: each active
//! run gets the part of the window up to its threshold in proportion to its `--priority`. A run
//! that has spent its part while another has not starts no new task (it waits for the reset,
//! or for the other runs to be done), so a long run cannot take the whole window from a short
//! one started beside it. Alone, a run has the whole window.
//!
//! The window's size in dollars is the forecast's ([`super::forecast::capacity`]); without it
//! (no utilization reported yet, nothing spent) nobody is held.

use time::OffsetDateTime;

use super::{Account, forecast};
use crate::store::{Db, StoreError};

/// One active run's claim on the window.
#[derive(Debug, Clone, PartialEq)]
pub struct Claim {
    pub run: String,
    pub project: String,
    pub priority: u32,
    /// What its sessions spent since the window began.
    pub spent: f64,
    /// `--usage-threshold`.
    pub threshold: f64,
}

/// The active runs' claims on the 5-hour window and its size in dollars, if known.
#[derive(Debug, Clone, Default)]
pub struct Shares {
    pub claims: Vec<Claim>,
    pub capacity: Option<f64>,
}

impl Shares {
    /// Reads every active run's priority and spend since the 5-hour window began.
    pub async fn read(db: &Db, account: &Account) -> Result<Self, StoreError> {
        let now = OffsetDateTime::now_utc();
        let Some(w) = account.window("five_hour") else {
            return Ok(Self::default());
        };
        let Some(start) = w
            .resets_at
            .and_then(|r| forecast::window_start("five_hour", r))
        else {
            return Ok(Self::default());
        };
        let (claims, spent) = db
            .call(move |c| {
                Ok((
                    crate::store::cost::window_claims(c, start)?,
                    crate::store::cost::spent_since(c, start)?,
                ))
            })
            .await?;
        Ok(Shares {
            claims,
            capacity: forecast::capacity(&w, spent, now),
        })
    }

    /// `run`'s fraction of the window (1.0 alone).
    pub fn share(&self, run: &str) -> f64 {
        let total: u32 = self.claims.iter().map(|c| c.priority).sum();
        match self.claims.iter().find(|c| c.run == run) {
            Some(c) if total > 0 => f64::from(c.priority) / f64::from(total),
            _ => 1.0,
        }
    }

    /// The dollars of the window `run` may spend: its share of the window up to its threshold.
    pub fn allowance(&self, run: &str) -> Option<f64> {
        let c = self.claims.iter().find(|c| c.run == run)?;
        Some(self.share(run) * c.threshold * self.capacity?)
    }

    /// Why `run` starts no new task now, if it has spent its share while another run has not.
    pub fn over(&self, run: &str) -> Option<String> {
        let me = self.claims.iter().find(|c| c.run == run)?;
        let mine = self.allowance(run)?;
        let others_left = self
            .claims
            .iter()
            .filter(|c| c.run != run)
            .any(|c| self.allowance(&c.run).is_some_and(|a| c.spent < a));
        (me.spent >= mine && others_left).then(|| {
            format!(
                "the run has spent {} of the 5-hour window, its {:.0}% share (priority {} of {} \
                 active runs) — the rest is left to the others",
                orchestrator_proto::words::usd(me.spent),
                self.share(run) * 100.0,
                me.priority,
                self.claims.len()
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claim(run: &str, priority: u32, spent: f64) -> Claim {
        Claim {
            run: run.into(),
            project: format!("/p/{run}"),
            priority,
            spent,
            threshold: 0.8,
        }
    }

    #[test]
    fn runs_get_the_window_in_proportion_to_their_priority() {
        let s = Shares {
            claims: vec![claim("a", 3, 3.5), claim("b", 1, 0.2)],
            capacity: Some(5.0),
        };
        assert!((s.share("a") - 0.75).abs() < 1e-9);
        assert!(
            (s.allowance("a").expect("a") - 3.0).abs() < 1e-9,
            "0.75 × 0.8 × $5"
        );
        let why = s.over("a").expect("a spent its share while b has room");
        assert!(
            why.contains("75% share (priority 3 of 2 active runs)"),
            "{why}"
        );
        assert_eq!(s.over("b"), None);
        let alone = Shares {
            claims: vec![claim("a", 1, 4.9)],
            capacity: Some(5.0),
        };
        assert_eq!(alone.over("a"), None, "alone, the whole window");
        let unknown = Shares {
            capacity: None,
            ..s.clone()
        };
        assert_eq!(unknown.over("a"), None, "no size, no share");
        let both_spent = Shares {
            claims: vec![claim("a", 1, 2.5), claim("b", 1, 2.5)],
            capacity: Some(5.0),
        };
        assert_eq!(
            both_spent.over("a"),
            None,
            "nobody left to give the room to"
        );
    }
}
