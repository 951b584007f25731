//! `POST /v1/clean`: removing what finished runs left — worktrees, task branches and backup
//! refs — only where nothing would be lost, and saying what was kept and why.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CleanRequest {
    /// Only this project's runs (any path inside its work tree); `None`: every project.
    #[serde(default)]
    pub project: Option<String>,
    /// Report what would be removed, remove nothing.
    #[serde(default)]
    pub dry_run: bool,
    /// Only this run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run: Option<String>,
    /// With `run`: remove its worktrees and task branches even with work in them — their
    /// commits kept under `refs/orchestrator/<run>/forced/`, uncommitted changes lost (the
    /// report says which).
    #[serde(default)]
    pub force: bool,
}

crate::states! {
    /// What a finished run left.
    pub enum LeftoverKind {
        Worktree = "worktree",
        Branch = "branch",
        /// A backup ref under `refs/orchestrator/`.
        Backup = "backup",
    }
}

/// One thing a finished run left.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CleanItem {
    pub run_id: String,
    pub kind: LeftoverKind,
    /// The worktree's path, the branch's or the ref's name.
    pub name: String,
    /// Why it was kept (or, for removed items, why that was safe).
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CleanReport {
    pub dry_run: bool,
    /// The finished runs looked at.
    pub runs: u32,
    pub removed: Vec<CleanItem>,
    pub kept: Vec<CleanItem>,
}
