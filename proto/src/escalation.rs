//! Escalations on the wire: a question a run put to a human (`GET /v1/escalations`), and the
//! answer (`POST /v1/escalations/{id}/answer`).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::OptionsChange;

/// A question a run put to a human. `GET /v1/escalations` lists the pending ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Escalation {
    pub id: u64,
    pub run_id: String,
    pub project: String,
    /// The task that asked, if a worker asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<String>,
    /// Why it was raised.
    pub kind: crate::EscalationKind,
    pub question: String,
    /// Evidence and background for the human.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// Whether the run waits for the answer.
    pub blocking: bool,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub answered_at: Option<OffsetDateTime>,
    /// Closed without an answer (its run was cancelled, resumed or ended, or asked again).
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub closed_at: Option<OffsetDateTime>,
    /// Why it was closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed: Option<String>,
    /// The escalation that replaced it, when its run asked again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub superseded_by: Option<u64>,
}

/// `GET /v1/escalations`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EscalationList {
    pub escalations: Vec<Escalation>,
}

/// Query of `GET /v1/escalations`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListEscalations {
    /// Only this project's (any directory inside its work tree); none: every project's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Include answered and closed ones too.
    #[serde(default)]
    pub history: bool,
}

/// `POST /v1/escalations/{id}/answer`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AnswerEscalation {
    pub answer: String,
    /// Commands to change for the rest of the run, applied before it goes on.
    #[serde(default, skip_serializing_if = "OptionsChange::is_none")]
    pub change: OptionsChange,
}

/// `POST /v1/runs/{id}/messages` (`orchestrate tell`): a message from the user to one task's
/// worker or to every worker, delivered through `read_messages`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tell {
    /// A task id, or `all`.
    pub to: String,
    pub text: String,
}

/// What `tell` did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Told {
    pub message_id: u64,
    /// The tasks whose workers are running now and will be told at their next tool call.
    pub running: Vec<String>,
}
