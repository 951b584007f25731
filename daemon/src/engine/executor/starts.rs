//! Workers being started, so tidying and spare-making give way to them. A repository runs
//! one worktree command at a time (`git::serial`), and removing a merged task's worktree holds
//! that turn for two git processes (`worktree remove` checks the worktree's status first). The
//! merge that makes a task's dependents ready is also what makes its worktree removable, so
//! without an order the removal took the turn first about a third of the time, and the freed
//! slot's next worker waited for it; a spare made beside starting workers did the same. A
//! worker counts as starting from its dispatch until its worktree exists (or could not be
//! made); [`Starts::none`] waits until no worker does.
//!
//! **Invariant:** a start never waits on what waits here (a tidy, a spare waiting its turn:
//! `spare::Spares::take` waits only for a spare git is already making), so none of them can
//! wait on each other.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::sync::Notify;

/// One run's workers whose worktrees are being made.
#[derive(Default)]
pub(super) struct Starts {
    count: AtomicUsize,
    none_left: Notify,
}

/// A worker starting; dropped once its worktree exists or could not be made.
pub(super) struct Starting(Arc<Starts>);

impl Starts {
    /// Counts a worker as starting until the guard is dropped.
    pub(super) fn begin(self: &Arc<Self>) -> Starting {
        self.count.fetch_add(1, Ordering::SeqCst);
        Starting(Arc::clone(self))
    }

    /// Returns once no worker is starting.
    pub(super) async fn none(&self) {
        loop {
            let told = self.none_left.notified();
            tokio::pin!(told);
            told.as_mut().enable();
            if self.count.load(Ordering::SeqCst) == 0 {
                return;
            }
            told.await;
        }
    }
}

impl Drop for Starting {
    fn drop(&mut self) {
        if self.0.count.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.none_left.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn waits_for_the_last_start_only() {
        let starts = Arc::new(Starts::default());
        // Nothing starting: at once.
        tokio::time::timeout(Duration::from_secs(5), starts.none())
            .await
            .expect("no start, no wait");
        let (a, b) = (starts.begin(), starts.begin());
        let waiting = tokio::spawn({
            let s = Arc::clone(&starts);
            async move { s.none().await }
        });
        drop(a);
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished(), "one start is still under way");
        drop(b);
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("told when the last start is done")
            .expect("the waiter");
    }
}
