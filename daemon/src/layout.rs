//! Where a run's worktrees live under the data dir, computed in one place:
//! `<data_dir>/worktrees/<run>/` holds the run's integration worktree (`integration`), each
//! worker's (`<task>.<n>`), each planner's (`planner-c<cycle>-<attempt>`) and each review's
//! (`review-<nnn>`). Outside the user's work tree, so nothing a run creates shows in their
//! `git status`.

use std::path::{Path, PathBuf};

/// The folder of all of a run's worktrees.
pub fn run_worktrees(data_dir: &Path, run: &str) -> PathBuf {
    data_dir.join("worktrees").join(run)
}

/// The detached worktree where a run's merges and gates happen; it lives as long as the run.
pub fn integration(data_dir: &Path, run: &str) -> PathBuf {
    run_worktrees(data_dir, run).join("integration")
}

/// Task `task`'s worktree for its `n`th branch.
pub fn task_worktree(data_dir: &Path, run: &str, task: &str, n: u32) -> PathBuf {
    run_worktrees(data_dir, run).join(format!("{task}.{n}"))
}

/// A planner's throwaway worktree.
pub fn planner_worktree(data_dir: &Path, run: &str, cycle: u32, attempt: u32) -> PathBuf {
    run_worktrees(data_dir, run).join(planner_name(cycle, attempt))
}

/// A planner's worktree's name (also its setup log's).
pub fn planner_name(cycle: u32, attempt: u32) -> String {
    format!("planner-c{cycle}-{attempt}")
}

/// The `n`th review's throwaway worktree.
pub fn review_worktree(data_dir: &Path, run: &str, n: u32) -> PathBuf {
    run_worktrees(data_dir, run).join(format!("review-{n:03}"))
}
