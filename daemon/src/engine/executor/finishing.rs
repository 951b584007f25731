//! Finishing workers off the dispatch path: when a worker's session ends, its slot is free at
//! once, and what follows — salvaging its worktree, the merge, the gate (which may run for
//! minutes), tidying — runs on its own task while the loop dispatches the next workers. Merges
//! still land one at a time: `merge` holds the integration worktree's lock
//! (`Ctx::integration_lock`, a fair one), so finishes queue on it in the order the sessions
//! ended. A finish is done — the loop looks at the board again — as soon as its task is
//! merged or back; removing its worktree and branch (`merge::tidy`) follows on its own, started
//! by the loop once it has dispatched what the finish made ready ([`Finishing::tidy`]).
//!
//! **Invariants:** a task being finished is neither an orphan nor ready (the loop asks
//! [`Finishing::holds`]); its declared files stay taken until it is finished, so no worker
//! starts on them from a base without its work; execution never ends with a finish still
//! running ([`Finishing::settle`]).

use std::collections::HashMap;
use std::sync::Arc;

use tokio::task::JoinSet;

use super::{Ctx, Finished, finish_ended, merge};
use crate::engine::session::ToolSink;
use crate::ids::TaskId;

/// The workers whose sessions ended and whose finish is under way.
pub(super) struct Finishing {
    ctx: Arc<Ctx>,
    /// Each task's declared files, held until its finish is done.
    files: HashMap<TaskId, Vec<String>>,
    tasks: JoinSet<()>,
    /// Which task each running finish is for (a tidy is for none).
    ids: HashMap<tokio::task::Id, TaskId>,
    /// `--verbose`: the git commands of a finish are told like the loop's.
    told: Option<ToolSink>,
    /// A finish is done whose leftovers have not been tidied.
    untidy: bool,
}

impl Finishing {
    pub(super) fn new(ctx: Arc<Ctx>, told: Option<ToolSink>) -> Self {
        Self {
            ctx,
            files: HashMap::new(),
            tasks: JoinSet::new(),
            ids: HashMap::new(),
            told,
            untidy: false,
        }
    }

    /// Finishes `f`, whose session the loop has ended, on its own task: salvage, then merge or
    /// back to the board.
    pub(super) fn start(&mut self, f: Finished, files: Vec<String>) {
        let task = f.task.clone();
        let ctx = Arc::clone(&self.ctx);
        let id = self.spawn(async move { finish_ended(&ctx, f).await });
        self.ids.insert(id, task.clone());
        self.files.insert(task, files);
    }

    fn spawn(
        &mut self,
        work: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> tokio::task::Id {
        let handle = match self.told.clone() {
            Some(sink) => self.tasks.spawn(crate::git::told(sink, work)),
            None => self.tasks.spawn(work),
        };
        handle.id()
    }

    /// Whether `task`'s worker ended and its finish is not done.
    pub(super) fn holds(&self, task: &str) -> bool {
        self.files.contains_key(task)
    }

    /// Whether any of `files` is declared by a task being finished.
    pub(super) fn overlaps(&self, files: &[String]) -> bool {
        self.files.values().flatten().any(|f| files.contains(f))
    }

    pub(super) fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// Waits for one finish to be done (forever when nothing runs: guard it with
    /// [`Finishing::is_empty`]); its tidying waits for [`Finishing::tidy`]. Cancel-safe:
    /// nothing is lost when a `select!` drops it.
    pub(super) async fn next(&mut self) {
        loop {
            let id = match self.tasks.join_next_with_id().await {
                Some(Ok((id, ()))) => id,
                Some(Err(e)) => {
                    tracing::error!("a worker's finish ended abnormally: {e}");
                    e.id()
                }
                None => return std::future::pending().await,
            };
            if let Some(task) = self.ids.remove(&id) {
                self.files.remove(&task);
                self.untidy = true;
                return;
            }
            if self.tasks.is_empty() {
                return; // the last tidy
            }
        }
    }

    /// Tidies what the finishes done since the last call left, on its own task: called by
    /// the loop after its dispatch, so the workers the finishes made ready start first (the
    /// tidy waits for their worktrees: [`super::starts`]).
    pub(super) fn tidy(&mut self) {
        if std::mem::take(&mut self.untidy) {
            let ctx = Arc::clone(&self.ctx);
            self.spawn(async move { merge::tidy(&ctx).await });
        }
    }

    /// Waits until every finish under way is done.
    pub(super) async fn settle(&mut self) {
        while !self.is_empty() {
            self.next().await;
        }
    }
}
