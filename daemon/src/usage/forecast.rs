//! Forecasts from the project's own history: what a task will likely cost (the median of its
//! model's past tasks in this project, else of all its past tasks), and what share of a usage
//! window that is. The window's size in dollars is learnt from the account itself: what this
//! daemon's sessions spent since the window began, over the utilization the account reports
//! (`spent / utilization`). Spend outside the daemon (the user's own claude) makes the window
//! look smaller than it is, so the forecast errs on the side of waiting.
//!
//! Used twice: `status` shows a run's estimate to go (a dry run's whole plan), and dispatch
//! keeps a task from starting when its estimate does not fit in what is left of a window
//! before the limit — it waits for the reset (or goes to Codex) instead of being cut off.

use std::collections::BTreeMap;

use time::OffsetDateTime;

use super::Window;

/// Below this utilization the window's size cannot be told from its spend.
const MEASURABLE: f64 = 0.05;

/// The cost of each past task of a project that landed, by the model its worker ran.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct History {
    by_model: BTreeMap<String, Vec<f64>>,
    all: Vec<f64>,
}

/// One task's likely cost, and how many past tasks say so.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    pub usd: f64,
    pub basis: usize,
}

fn median(v: &[f64]) -> Option<f64> {
    let mut v: Vec<f64> = v.iter().copied().filter(|c| c.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    Some(if v.len() % 2 == 1 {
        v[m]
    } else {
        (v[m - 1] + v[m]) / 2.0
    })
}

impl History {
    /// From `(model, cost)` of each past task.
    pub fn new(tasks: impl IntoIterator<Item = (Option<String>, f64)>) -> Self {
        let mut h = History::default();
        for (model, cost) in tasks {
            h.all.push(cost);
            if let Some(m) = model {
                h.by_model.entry(m).or_default().push(cost);
            }
        }
        h
    }

    pub fn tasks(&self) -> usize {
        self.all.len()
    }

    /// A task on `model` (the model its session reports, or the alias the run gave): its
    /// model's past tasks when there are any (an alias matches the model it resolves to by
    /// its family), else every past task; `None` without history.
    pub fn estimate(&self, model: Option<&str>) -> Option<Estimate> {
        let same = model.and_then(|m| {
            if let Some(v) = self.by_model.get(m) {
                return Some(v.clone());
            }
            let family = orchestrator_proto::models::family(m)?;
            let v: Vec<f64> = self
                .by_model
                .iter()
                .filter(|(k, _)| orchestrator_proto::models::family(k) == Some(family))
                .flat_map(|(_, v)| v.iter().copied())
                .collect();
            (!v.is_empty()).then_some(v)
        });
        let v = same.unwrap_or_else(|| self.all.clone());
        Some(Estimate {
            usd: median(&v)?,
            basis: v.len(),
        })
    }
}

/// When the window `kind` that resets at `resets_at` began (5 hours or 7 days before).
pub fn window_start(kind: &str, resets_at: OffsetDateTime) -> Option<OffsetDateTime> {
    let length = match kind {
        "five_hour" => time::Duration::hours(5),
        k if k.starts_with("seven_day") => time::Duration::days(7),
        _ => return None,
    };
    Some(resets_at - length)
}

/// What the whole window is worth in dollars: `spent` since it began over its utilization.
/// `None` while too little of it is used to tell.
pub fn capacity(w: &Window, spent: f64, now: OffsetDateTime) -> Option<f64> {
    let u = w.current(now);
    (u >= MEASURABLE && spent > 0.0).then(|| spent / u)
}

/// The share of a window of `capacity` dollars that `usd` takes.
pub fn share(usd: f64, capacity: f64) -> f64 {
    if capacity > 0.0 { usd / capacity } else { 0.0 }
}

/// Whether `usd` more fits in the window before its limit (100%).
pub fn fits(w: &Window, capacity: f64, usd: f64, now: OffsetDateTime) -> bool {
    w.current(now) + share(usd, capacity) < 1.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::usage::Source;

    #[test]
    fn an_estimate_is_its_model_s_median_else_every_task_s() {
        let h = History::new([
            (Some("claude-sonnet-5-5".to_owned()), 0.2),
            (Some("claude-sonnet-5-5".to_owned()), 0.4),
            (Some("claude-sonnet-5-5".to_owned()), 9.0),
            (Some("claude-opus-5-5".to_owned()), 2.0),
            (None, 1.0),
        ]);
        let e = h.estimate(Some("claude-sonnet-5-5")).expect("sonnet");
        assert_eq!((e.usd, e.basis), (0.4, 3), "the median, not the mean");
        assert_eq!(
            h.estimate(Some("opus")).map(|e| e.usd),
            Some(2.0),
            "an alias by family"
        );
        let any = h.estimate(Some("gpt-5.2-codex")).expect("all tasks");
        assert_eq!((any.usd, any.basis), (1.0, 5));
        assert_eq!(History::default().estimate(Some("opus")), None);
    }

    #[test]
    fn a_window_s_size_comes_from_its_spend_and_a_task_fits_in_what_is_left() {
        let now = OffsetDateTime::now_utc();
        let w = Window {
            utilization: 0.6,
            resets_at: Some(now + time::Duration::hours(1)),
            source: Source::Stream,
            observed_at: now,
        };
        let cap = capacity(&w, 3.0, now).expect("measurable");
        assert!((cap - 5.0).abs() < 1e-9);
        assert!(fits(&w, cap, 1.5, now), "60% + 30% < 100%");
        assert!(!fits(&w, cap, 2.5, now), "60% + 50% ≥ 100%");
        let fresh = Window {
            utilization: 0.01,
            ..w
        };
        assert_eq!(capacity(&fresh, 3.0, now), None, "too little used to tell");
        let start = window_start("five_hour", now).expect("5-hour");
        assert_eq!(now - start, time::Duration::hours(5));
        assert_eq!(
            window_start("seven_day_opus", now),
            Some(now - time::Duration::days(7))
        );
    }
}
