//! The spare worktrees a run makes for its next execution's first workers while the plan is
//! made and reviewed (`engine::executor::Spares`): made once the planner has started (its own
//! worktree first), handed to the execution, and removed when no execution follows.

use orchestrator_proto::Phase;

use super::RunActor;
use crate::engine::executor;

impl RunActor {
    /// The spares `phase` hands the execution: while the plan is made (once the planner has
    /// started, `prepare_spares`) or reviewed, a spare worktree is made for each of the first
    /// workers (not for a dry run, which executes nothing); executing takes them.
    pub(super) fn spares_for(&mut self, phase: Phase) -> Option<std::sync::Arc<executor::Spares>> {
        match phase {
            Phase::Planning | Phase::PlanReview if !self.run.options.dry_run => {
                if self.spares.is_none() {
                    let data_dir = &self.engine.data_dir;
                    self.spares = Some(executor::Spares::for_run(data_dir, &self.run));
                }
                if phase == Phase::PlanReview {
                    self.prepare_spares();
                }
                None
            }
            Phase::Executing => self.spares.take(),
            _ => {
                self.close_spares();
                None
            }
        }
    }

    /// Starts making the spares for the first workers, if the run keeps any.
    pub(super) fn prepare_spares(&self) {
        if let Some(spares) = &self.spares {
            let first = (self.run.options.concurrency as usize).min(executor::FIRST_SPARES);
            spares.prepare(first);
        }
    }

    /// Removes the spares made for an execution that does not follow, behind the actor.
    pub(super) fn close_spares(&mut self) {
        if let Some(spares) = self.spares.take() {
            tokio::spawn(async move { spares.close().await });
        }
    }
}
