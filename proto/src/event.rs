//! The kinds of a run's events: one closed list, the words on the wire, in the database and
//! in `orchestrate log --json`. A kind the daemon writes and the CLI reads is checked by the
//! compiler, not compared as a string.

crate::states! {
    /// What an event records.
    pub enum EventKind {
        /// Run submitted (started or queued).
        RunSubmitted = "run_submitted",
        /// A run restored by a restarted daemon.
        RunRestored = "run_restored",
        /// The run's status changed.
        StatusChanged = "status_changed",
        /// The run's options changed on resume or answer.
        OptionsChanged = "options_changed",
        /// A planner session started.
        PlannerStarted = "planner_started",
        /// A planner attempt gave no plan; another starts.
        PlannerRetry = "planner_retry",
        /// Planning gave up.
        PlannerFailed = "planner_failed",
        /// A planner session ended.
        PlannerFinished = "planner_finished",
        /// A plan was accepted.
        PlanSubmitted = "plan_submitted",
        /// A planner's later plan replaced its earlier one.
        PlanSuperseded = "plan_superseded",
        /// The plan review's findings stayed open.
        PlanConcernsOpen = "plan_concerns_open",
        /// A Codex review session started.
        ReviewStarted = "review_started",
        /// A Codex review attempt gave no verdict; another starts.
        ReviewRetry = "review_retry",
        /// A Codex review gave no verdict.
        ReviewFailed = "review_failed",
        /// A Codex review gave its verdict.
        ReviewFinished = "review_finished",
        /// A Codex review was not run.
        ReviewSkipped = "review_skipped",
        /// An agent session was opened (its token issued).
        SessionOpened = "session_opened",
        /// An agent session ended.
        SessionEnded = "session_ended",
        /// A session's process was gone when the daemon looked.
        SessionGone = "session_gone",
        /// An expired or abandoned session was ended.
        SessionReaped = "session_reaped",
        /// A restarted daemon re-attached to a running worker.
        SessionReattached = "session_reattached",
        /// A worktree's setup command ran.
        WorktreePrepared = "worktree_prepared",
        /// A damaged worktree was recreated.
        WorktreeRepaired = "worktree_repaired",
        /// A worktree's setup command failed.
        SetupFailed = "setup_failed",
        /// A worker session started for a task.
        TaskDispatched = "task_dispatched",
        /// A task starts on another model than planned (`--on-limit downgrade`).
        ModelSwitched = "model_switched",
        /// A task waits for its model family's usage window while the run goes on.
        TaskHeld = "task_held",
        /// A session claimed a task.
        TaskClaimed = "task_claimed",
        /// A worker reported progress.
        TaskProgress = "task_progress",
        /// A task's verify commands ran on completion.
        TaskChecked = "task_checked",
        /// A worker completed its task.
        TaskCompleted = "task_completed",
        /// A worker gave its task up.
        TaskFailed = "task_failed",
        /// A worker's session ended without completing its task.
        TaskNotCompleted = "task_not_completed",
        /// A worker was stopped (pause, cancel, daemon stop) without spending an attempt.
        TaskInterrupted = "task_interrupted",
        /// A task went back on the board.
        TaskRequeued = "task_requeued",
        /// A task's branch was merged into the run's branch.
        TaskMerged = "task_merged",
        /// Work a worker left in a bad state was recovered.
        WorkerSalvaged = "worker_salvaged",
        /// A worker called a tool (`--verbose` runs only; debug level).
        ToolCalled = "tool_called",
        /// The run's branch was pushed and a pull request opened (or could not be).
        PrOpened = "pr_opened",
        PrFailed = "pr_failed",
        /// Commits were kept under refs/orchestrator.
        BranchKept = "branch_kept",
        /// A worker could not be started; it is tried again.
        DispatchRetry = "dispatch_retry",
        /// A worker could not be started.
        DispatchFailed = "dispatch_failed",
        /// Execution stopped for something only a human can fix.
        ExecutionBlocked = "execution_blocked",
        /// A task's branch conflicted with the run's branch.
        MergeConflict = "merge_conflict",
        /// A merge failed.
        MergeFailed = "merge_failed",
        /// A merge was undone (its gate failed).
        MergeRolledBack = "merge_rolled_back",
        /// Merges wait: the run's branch is checked out elsewhere.
        MergeHeld = "merge_held",
        /// Merges go on again.
        MergeResumed = "merge_resumed",
        /// The gate passed on the merged result.
        GatePassed = "gate_passed",
        /// The gate failed on the merged result.
        GateFailed = "gate_failed",
        /// The gate ran too long and was stopped.
        GateStopped = "gate_stopped",
        /// The gate command cannot run at all.
        GateCannotRun = "gate_cannot_run",
        /// A message was sent on the board.
        MessageSent = "message_sent",
        /// A human was asked a question.
        Escalated = "escalated",
        /// A human answered an escalation.
        EscalationAnswered = "escalation_answered",
        /// The run's budget is spent.
        BudgetExhausted = "budget_exhausted",
        /// A stopping worker's grace period ended.
        GraceOver = "grace_over",
        /// The mirror refused to write through a link.
        MirrorRefused = "mirror_refused",
        /// Written by early versions when a run asked for Codex reviews.
        CodexSkipped = "codex_skipped",
        /// Written by early versions while no engine ran.
        WaitingForEngine = "waiting_for_engine",
    }
}

crate::states! {
    /// Why a run asks a human.
    pub enum EscalationKind {
        /// A worker asked (the `escalate` tool).
        Question = "question",
        /// The last cycle's code review still had blocking findings.
        MaxCycles = "max_cycles",
        /// The same finding came back after it was fixed.
        ReviewNotConverging = "review_not_converging",
        /// The run's budget is spent.
        BudgetExhausted = "budget_exhausted",
        /// Something only a human can fix stopped execution (a gate that cannot run, …).
        ExecutionBlocked = "execution_blocked",
        /// No valid plan came out of planning.
        PlannerFailed = "planner_failed",
        /// A worktree's setup command failed twice in a row.
        SetupFailed = "setup_failed",
    }
}

#[cfg(test)]
mod tests {
    use super::{EscalationKind, EventKind};

    #[test]
    fn serde_display_and_parsing_agree_for_every_kind() {
        assert!(EventKind::ALL.len() > 50);
        crate::states::check_words(EventKind::ALL);
        crate::states::check_words(EscalationKind::ALL);
        crate::states::check_words(crate::SessionRole::ALL);
        crate::states::check_words(crate::clean::LeftoverKind::ALL);
        assert!("task_exploded".parse::<EventKind>().is_err());
    }
}
