//! A run's tasks as they appear on the wire: where each stands, and how its checks went.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

crate::states! {
    /// Where a task stands on its run's board.
    #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
    pub enum TaskStatus {
        /// Waiting for its dependencies or a worker.
        Pending = "pending",
        /// A worker holds it.
        InProgress = "in_progress",
        /// Completed by its worker, not merged yet.
        Done = "done",
        /// On the run's branch.
        Merged = "merged",
        /// Out of attempts, or given up for good.
        Failed = "failed",
    }
}

/// One task of a run's plan, as the board holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(deny_unknown_fields)]
pub struct Task {
    pub id: String,
    pub title: String,
    /// What to do, as the plan says it.
    #[serde(default)]
    pub description: String,
    #[serde(default)]
    pub acceptance_criteria: Vec<String>,
    /// Files or areas it touches.
    #[serde(default)]
    pub files: Vec<String>,
    pub status: TaskStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee: Option<String>,
    pub attempts: u32,
    pub depends_on: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<String>,
    /// Its worker's summary, once completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    #[cfg_attr(feature = "schema", schemars(with = "String"))]
    pub updated_at: OffsetDateTime,
    /// What its sessions cost so far (USD).
    pub cost_usd: f64,
    /// Why its last attempt did not land (what the next worker is told), if it was retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// When its worker last showed a sign of life (stream output or an MCP call).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "time::serde::rfc3339::option"
    )]
    #[cfg_attr(feature = "schema", schemars(with = "Option<String>"))]
    pub last_activity_at: Option<OffsetDateTime>,
    /// The plan's checks for it, run by the daemon when its worker completes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub verify: Vec<String>,
    /// How they went the last time they ran.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checks: Option<Vec<TaskCheck>>,
    /// The model the plan gave it (else the run's worker model).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The effort the plan gave it (else the run's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effort: Option<crate::Effort>,
    /// The CLI the plan gave it (else the run's workers').
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent: Option<crate::Agent>,
}

/// One run of one of a task's `verify` commands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct TaskCheck {
    pub command: String,
    pub passed: bool,
    /// "exit 0", "exit 1", "it ran for more than 30m and was stopped", …
    pub how: String,
    pub secs: f64,
    /// The file holding its whole output.
    pub log: String,
}

/// `GET /v1/runs/{id}/tasks`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaskList {
    pub tasks: Vec<Task>,
}

#[cfg(test)]
mod tests {
    use super::TaskStatus;

    #[test]
    fn serde_display_and_parsing_agree() {
        crate::states::check_words(TaskStatus::ALL);
        crate::states::check_words(crate::HoldKind::ALL);
        assert!("waiting".parse::<TaskStatus>().is_err());
    }
}
