//! What the daemon watches a running session for: the watchdogs' limits (`[supervision]`) and
//! the last MCP call each session made. A session that says nothing on its stream and calls
//! no tool for `stall` is stuck; one that never writes `system/init` within `startup` never
//! got going; `wall` bounds a worker session whatever it does.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The watchdogs' limits; `None` turns one off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    pub stall: Option<Duration>,
    pub startup: Option<Duration>,
    pub wall: Option<Duration>,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            stall: Some(Duration::from_secs(20 * 60)),
            startup: Some(Duration::from_secs(120)),
            wall: Some(Duration::from_secs(4 * 3600)),
        }
    }
}

impl Limits {
    /// No watchdog at all (planners and reviewers have their own bounds).
    pub const NONE: Self = Self {
        stall: None,
        startup: None,
        wall: None,
    };
}

/// When each session last called the MCP endpoint (touched on every authenticated request).
#[derive(Debug, Clone, Default)]
pub struct Activity(Arc<Mutex<HashMap<String, Instant>>>);

impl Activity {
    pub fn touch(&self, session: &str) {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match m.get_mut(session) {
            Some(t) => *t = Instant::now(),
            None => {
                m.insert(session.to_owned(), Instant::now());
            }
        }
    }

    pub fn last(&self, session: &str) -> Option<Instant> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(session)
            .copied()
    }

    /// Forgets an ended session.
    pub fn forget(&self, session: &str) {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(session);
    }
}

/// Which restored runs have not reconciled yet (re-attached or finished what the previous
/// daemon left), and how long the whole reconciliation took, for `/v1/health`; and which have
/// not recorded their restore yet, which the engines restart behind
/// ([`Reconcile::restores_recorded`]): a hundred planners and workers starting at once would
/// hold back every other run's restore.
#[derive(Debug, Clone)]
pub struct Reconcile(Arc<Shared>);

#[derive(Debug)]
struct Shared {
    state: Mutex<ReconcileState>,
    recorded: tokio::sync::Notify,
}

#[derive(Debug)]
struct ReconcileState {
    started: Instant,
    pending: std::collections::HashSet<String>,
    unrecorded: std::collections::HashSet<String>,
    took: Option<Duration>,
}

impl Default for Reconcile {
    fn default() -> Self {
        Self(Arc::new(Shared {
            state: Mutex::new(ReconcileState {
                started: Instant::now(),
                pending: Default::default(),
                unrecorded: Default::default(),
                took: None,
            }),
            recorded: tokio::sync::Notify::new(),
        }))
    }
}

impl Reconcile {
    fn lock(&self) -> std::sync::MutexGuard<'_, ReconcileState> {
        self.0.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The runs restored at start-up, which have to reconcile.
    pub fn expect(&self, runs: impl IntoIterator<Item = crate::ids::RunId>) {
        let mut s = self.lock();
        for run in runs {
            s.pending.insert(String::from(run.clone()));
            s.unrecorded.insert(String::from(run));
        }
        if s.pending.is_empty() {
            s.took = Some(s.started.elapsed());
        }
    }

    /// `run` reconciled (a no-op for runs that were not restored or already are).
    pub fn done(&self, run: &str) {
        self.recorded(run);
        let mut s = self.lock();
        if s.pending.remove(run) && s.pending.is_empty() {
            s.took = Some(s.started.elapsed());
        }
    }

    /// `run`'s actor recorded its restore and rewrote its mirror (or could not).
    pub fn recorded(&self, run: &str) {
        let mut s = self.lock();
        if s.unrecorded.remove(run) && s.unrecorded.is_empty() {
            self.0.recorded.notify_waiters();
        }
    }

    /// Waits until every restored run has recorded its restore, at most `bound` (a run
    /// whose restore is slow holds no other run's engine for longer).
    pub async fn restores_recorded(&self, bound: Duration) {
        let all = async {
            loop {
                // Made before the look, so a notification in between is not missed.
                let notified = self.0.recorded.notified();
                if self.lock().unrecorded.is_empty() {
                    return;
                }
                notified.await;
            }
        };
        let _ = tokio::time::timeout(bound, all).await;
    }

    /// Runs still reconciling, and the time from start-up to fully reconciled once it is.
    pub fn state(&self) -> (usize, Option<Duration>) {
        let s = self.lock();
        (s.pending.len(), s.took)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn activity_is_per_session_and_forgotten() {
        let a = Activity::default();
        assert!(a.last("s-1").is_none());
        a.touch("s-1");
        let first = a.last("s-1").expect("touched");
        a.touch("s-1");
        assert!(a.last("s-1").expect("touched") >= first);
        assert!(a.last("s-2").is_none());
        a.forget("s-1");
        assert!(a.last("s-1").is_none());
    }

    #[test]
    fn reconciliation_ends_when_the_last_restored_run_is_done() {
        let r = Reconcile::default();
        r.expect(["a".into(), "b".into()]);
        assert_eq!(r.state(), (2, None));
        r.done("a");
        r.done("x");
        assert_eq!(r.state().0, 1);
        r.done("b");
        assert!(matches!(r.state(), (0, Some(_))));
        let none = Reconcile::default();
        none.expect([]);
        assert!(matches!(none.state(), (0, Some(_))));
    }

    #[tokio::test]
    async fn engines_wait_for_every_restore_and_no_longer_than_the_bound() {
        let r = Reconcile::default();
        r.expect(["a".into(), "b".into()]);
        let waiting = {
            let r = r.clone();
            tokio::spawn(async move { r.restores_recorded(Duration::from_secs(60)).await })
        };
        r.recorded("a");
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "b has not recorded its restore");
        r.done("b");
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("released once every restore is recorded")
            .expect("join");
        let stuck = Reconcile::default();
        stuck.expect(["c".into()]);
        let t = Instant::now();
        stuck.restores_recorded(Duration::from_millis(20)).await;
        assert!(
            t.elapsed() >= Duration::from_millis(20),
            "bounded, not skipped"
        );
    }
}
