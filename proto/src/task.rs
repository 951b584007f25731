//! A run's tasks as they appear on the wire: where each stands, and how its checks went.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Where a task stands on its run's board.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum TaskStatus {
    /// Waiting for its dependencies or a worker.
    Pending,
    /// A worker holds it.
    InProgress,
    /// Completed by its worker, not merged yet.
    Done,
    /// On the run's branch.
    Merged,
    /// Out of attempts, or given up for good.
    Failed,
}

impl TaskStatus {
    pub const ALL: [TaskStatus; 5] = [
        TaskStatus::Pending,
        TaskStatus::InProgress,
        TaskStatus::Done,
        TaskStatus::Merged,
        TaskStatus::Failed,
    ];

    /// The name on the wire, in the database and in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskStatus::Pending => "pending",
            TaskStatus::InProgress => "in_progress",
            TaskStatus::Done => "done",
            TaskStatus::Merged => "merged",
            TaskStatus::Failed => "failed",
        }
    }
}

impl std::fmt::Display for TaskStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `pad`, so `{:<12}` lines up a table.
        f.pad(self.as_str())
    }
}

impl std::str::FromStr for TaskStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| format!("no task status {s:?}"))
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
        for s in TaskStatus::ALL {
            let json = serde_json::to_value(s).expect("serialises");
            assert_eq!(json, serde_json::Value::String(s.as_str().to_owned()));
            assert_eq!(s.to_string(), s.as_str());
            assert_eq!(s.as_str().parse::<TaskStatus>(), Ok(s));
        }
        assert!("waiting".parse::<TaskStatus>().is_err());
        for h in [crate::HoldKind::Usage, crate::HoldKind::Budget] {
            let json = serde_json::to_value(h).expect("serialises");
            assert_eq!(json, serde_json::Value::String(h.to_string()));
        }
    }
}
