//! What runs cost and will cost: the cost ledger (`GET /v1/runs/{id}/cost`, `orchestrate
//! cost`) — a run's sessions by model, for each of its tasks and cycles, for the run, and for
//! its project (all the project's runs) — the run's own spend by model and by cycle, and its
//! [`Forecast`] to go.

use serde::{Deserialize, Serialize};

crate::states! {
    /// What a ledger row sums over.
    pub enum CostScope {
        /// One task's worker sessions (`key`: the task id).
        Task = "task",
        /// One cycle's sessions (`key`: the cycle number; 0 before the first cycle).
        Cycle = "cycle",
        /// The whole run.
        Run = "run",
        /// Every run of the run's project.
        Project = "project",
    }
}

/// One model's spend within one scope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CostRow {
    pub scope: CostScope,
    /// The task id or the cycle number; absent for the run and the project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The model the sessions ran (absent: they never said, e.g. never started).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    pub sessions: u32,
    pub cost_usd: f64,
    pub input_tokens: u64,
    pub output_tokens: u64,
}

/// A run's ledger: rows by scope (run, project, cycles, tasks), then by cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CostLedger {
    pub run: String,
    pub project: String,
    pub rows: Vec<CostRow>,
}

/// What one model's sessions of a run cost.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelCost {
    pub model: Option<String>,
    pub cost_usd: f64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub sessions: u32,
}

/// One cycle's spend.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CycleCost {
    pub cycle: u32,
    pub cost_usd: f64,
    pub sessions: u32,
}

/// A run's estimate to go.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Forecast {
    /// Tasks not merged yet.
    pub tasks: u32,
    pub cost_usd: f64,
    /// The project's past tasks the estimate comes from.
    pub basis: u32,
    /// The share of each usage window that would take, where the window's size is known.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub windows: Vec<WindowShare>,
}

/// What share of one usage window an estimate takes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WindowShare {
    /// `five_hour`, `seven_day`, `seven_day_opus`, …
    pub kind: String,
    pub share_percent: f64,
    /// The window's utilization now.
    pub now_percent: f64,
}

#[cfg(test)]
mod tests {
    #[test]
    fn scope_words_agree() {
        crate::states::check_words(super::CostScope::ALL);
    }
}
