//! A project's [`forecast`](super::forecast) put together: its history of task costs, and the
//! size in dollars of each window the account reported (from what the daemon's sessions spent
//! since it began). Built from the database when a run's status is asked for, and by the
//! scheduler before it starts tasks.

use orchestrator_proto::{Forecast, WindowShare};
use time::OffsetDateTime;

use super::forecast::{self, Estimate, History};
use super::{Account, Policy, Window};
use crate::store::{Db, StoreError};

/// One window whose size is known.
#[derive(Debug, Clone)]
pub struct Sized {
    pub kind: String,
    pub window: Window,
    /// Dollars for the whole window.
    pub capacity: f64,
}

/// What the forecast knows for one project now.
#[derive(Debug, Clone, Default)]
pub struct Outlook {
    pub history: History,
    pub windows: Vec<Sized>,
}

impl Outlook {
    /// Reads `project`'s history and sizes the account's windows.
    pub async fn read(db: &Db, project: &str, account: &Account) -> Result<Self, StoreError> {
        let now = OffsetDateTime::now_utc();
        let starts: Vec<(String, Window, OffsetDateTime)> = account
            .windows
            .iter()
            .filter_map(|(k, w)| {
                let start = forecast::window_start(k, w.resets_at?)?;
                (w.current(now) > 0.0).then(|| (k.clone(), *w, start))
            })
            .collect();
        let project = project.to_owned();
        let (tasks, spent) = db
            .call(move |c| {
                let tasks = crate::store::cost::task_history(c, &project)?;
                let spent = starts
                    .into_iter()
                    .map(|(k, w, start)| Ok((k, w, crate::store::cost::spent_since(c, start)?)))
                    .collect::<Result<Vec<_>, StoreError>>()?;
                Ok((tasks, spent))
            })
            .await?;
        let windows = spent
            .into_iter()
            .filter_map(|(kind, window, spent)| {
                let capacity = forecast::capacity(&window, spent, now)?;
                Some(Sized {
                    kind,
                    window,
                    capacity,
                })
            })
            .collect();
        Ok(Outlook {
            history: History::new(tasks),
            windows,
        })
    }

    /// The first window that applies to a run with `policy` in which a task of `usd` does not
    /// fit before the limit: the window, the task's share of it and what is left.
    pub fn no_room(&self, policy: &Policy<'_>, usd: f64) -> Option<(&Sized, f64, f64)> {
        let now = OffsetDateTime::now_utc();
        self.windows
            .iter()
            .filter(|s| policy.threshold_for(&s.kind).is_some())
            .find(|s| !forecast::fits(&s.window, s.capacity, usd, now))
            .map(|s| {
                let share = forecast::share(usd, s.capacity);
                (s, share, (1.0 - s.window.current(now)).max(0.0))
            })
    }

    /// The estimate for the tasks still to do, planned on `models` (each task's model, or
    /// `None` for the run's default); `None` without history.
    pub fn to_go(&self, models: &[Option<&str>]) -> Option<Forecast> {
        if self.history.tasks() == 0 || models.is_empty() {
            return None;
        }
        let estimates: Vec<Estimate> = models
            .iter()
            .filter_map(|m| self.history.estimate(*m))
            .collect();
        let usd: f64 = estimates.iter().map(|e| e.usd).sum();
        let now = OffsetDateTime::now_utc();
        Some(Forecast {
            tasks: models.len() as u32,
            cost_usd: usd,
            basis: self.history.tasks() as u32,
            windows: self
                .windows
                .iter()
                .map(|s| WindowShare {
                    kind: s.kind.clone(),
                    share_percent: (forecast::share(usd, s.capacity) * 1000.0).round() / 10.0,
                    now_percent: (s.window.current(now) * 1000.0).round() / 10.0,
                })
                .collect(),
        })
    }
}
