//! What each board operation answers, as types: the MCP tools return them as
//! `structuredContent` and publish their JSON Schemas as the tools' output schemas, so a client
//! (and the model) knows every field before it calls. One struct per operation; a reply's
//! `next`, where it has one, is also the one-line text a tool result carries.

use orchestrator_proto::{Task, TaskStatus};
use schemars::JsonSchema;
use serde::Serialize;

use crate::store::board::MessageRow;
use crate::store::time_text;

/// The reply of one board operation.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Reply {
    MyTask(Box<MyTask>),
    Claim(Box<Claim>),
    Progress(Progress),
    Complete(Complete),
    Fail(Fail),
    Board(Board),
    Send(Sent),
    Messages(Messages),
    Escalate(Escalated),
    Plan(PlanAccepted),
}

impl Reply {
    /// What the caller should do next, when the reply says.
    pub fn next(&self) -> Option<&'static str> {
        match self {
            Reply::Claim(c) => c.next,
            Reply::Complete(c) => Some(c.next),
            Reply::Escalate(e) => Some(e.next),
            _ => None,
        }
    }
}

/// `get_task`: the caller's task with everything needed to do it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct MyTask {
    /// The feature the run builds.
    pub feature: String,
    /// The run's branch, where every task's work is merged.
    pub branch: String,
    /// The accepted plan's summary.
    pub plan_summary: Option<String>,
    pub task: Task,
    /// The tasks this one depends on, with their workers' summaries.
    pub dependencies: Vec<Dependency>,
    pub checks: Checks,
}

/// A task the caller's task depends on.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Dependency {
    pub id: String,
    pub title: String,
    pub status: TaskStatus,
    /// Its worker's summary, once completed.
    pub result: Option<String>,
}

/// What the daemon checks of the caller's work, and when.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Checks {
    /// The task's own commands.
    pub verify: Vec<String>,
    pub verify_runs: &'static str,
    /// The run's gate command.
    pub gate: Option<String>,
    pub gate_runs: &'static str,
    /// The command that set the caller's worktree up.
    pub setup: Option<String>,
}

/// `claim_task`: the task claimed, or why none was.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Claim {
    pub claimed: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub task: Option<Task>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<&'static str>,
    /// When none was claimed: how many tasks wait, run and are done.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub in_progress: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub done: Option<usize>,
    /// When none was claimed: why.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<&'static str>,
}

/// `report_progress`: recorded.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Progress {
    pub recorded: bool,
    pub task: String,
}

/// `complete_task`: completed, and what to do now.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Complete {
    pub completed: bool,
    pub task: String,
    pub next: &'static str,
}

/// `fail_task`: recorded, and where the task stands now (`pending` when it will be retried).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Fail {
    pub recorded: bool,
    pub task: String,
    pub status: TaskStatus,
}

/// `list_tasks`: the board.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Board {
    pub tasks: Vec<BoardTask>,
}

/// One task as the board lists it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct BoardTask {
    pub id: String,
    pub title: String,
    pub status: TaskStatus,
    /// The session holding it.
    pub assignee: Option<String>,
    pub depends_on: Vec<String>,
}

/// `send_message`: sent.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Sent {
    pub sent: bool,
    pub message_id: u64,
}

/// `read_messages`: what was sent to the caller since it last asked.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Messages {
    pub messages: Vec<Message>,
}

/// One message, as a session and the mirror's `messages.jsonl` read it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Message {
    pub id: u64,
    /// `orchestrator`, `task <id>` or `session <id>`.
    pub from: String,
    /// A task id, `all` or `orchestrator`.
    pub to: String,
    pub body: String,
    /// RFC 3339.
    pub at: String,
}

impl From<&MessageRow> for Message {
    fn from(m: &MessageRow) -> Self {
        Message {
            id: m.id,
            from: match (&m.from_session, &m.from_task) {
                (None, _) => "orchestrator".to_owned(),
                (Some(_), Some(t)) => format!("task {t}"),
                (Some(s), None) => format!("session {s}"),
            },
            to: m.to_id.clone().unwrap_or_else(|| m.to_kind.clone()),
            body: m.body.clone(),
            at: time_text::format(m.created_at),
        }
    }
}

/// `escalate`: raised.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct Escalated {
    pub escalation_id: u64,
    pub blocking: bool,
    pub next: &'static str,
}

/// `submit_plan`: accepted.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct PlanAccepted {
    pub accepted: bool,
    pub version: u32,
    /// How many tasks it holds.
    pub tasks: usize,
    /// Earlier plans of the same planner it replaced.
    pub superseded: Vec<u32>,
}
