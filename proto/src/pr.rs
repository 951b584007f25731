//! Pull requests: `orchestrate pr` (`POST /v1/runs/{id}/pr`) on a completed run, and `start
//! --pr` to open one when the run completes — the run's branch pushed to the project's remote
//! (never forced) and a pull request opened with `gh`, its body written from the run.

use serde::{Deserialize, Serialize};

/// What pull request to open.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenPr {
    /// Open it as a draft.
    #[serde(default)]
    pub draft: bool,
    /// The branch to merge into (default: the remote's default branch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base: Option<String>,
    /// The environment to push and run `gh` with (`orchestrate pr`: the shell's now; empty:
    /// the run's, as `start` captured it).
    #[serde(default, skip_serializing_if = "crate::SessionEnv::is_empty")]
    pub env: crate::SessionEnv,
}

/// What `pr` did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrReport {
    /// The run's branch, pushed.
    pub branch: String,
    pub remote: String,
    pub base: String,
    /// The pull request `gh` opened.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Without `gh` (or when it failed): where to open it by hand, when the remote is on a
    /// known host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compare_url: Option<String>,
    /// Why no pull request was opened (no `gh`, or what `gh` said).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The pull request's body (Markdown).
    pub body: String,
}
