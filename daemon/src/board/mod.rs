//! The workers' board: what planner and worker sessions may read and change, and the rules.
//!
//! [`apply`] runs one [`Op`] for one [`Caller`] inside one SQLite transaction on the database
//! thread, appending the events that record it in the same transaction. The run's actor calls
//! it, then publishes the events and rewrites the affected mirror files.
//!
//! **Invariants:** a task is held by at most one session and only its holder can report on,
//! complete or fail it (conditional UPDATEs, not read-then-write); a finished task cannot be
//! finished again; a caller only ever reaches rows of its own run.

pub mod plan;

use orchestrator_proto::TaskStatus;
use std::collections::HashSet;

use rusqlite::Connection;
use serde_json::{Value, json};

use crate::store::board::{self as rows, MessageRow, NewTask, TaskRow};
use crate::store::{NewEscalation, NewEvent, RunRow, StoreError, escalations, events, time_text};
pub use plan::PlanInput;

/// What a session is allowed to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Planner,
    Worker,
    Reviewer,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Planner => "planner",
            Self::Worker => "worker",
            Self::Reviewer => "reviewer",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "planner" => Some(Self::Planner),
            "worker" => Some(Self::Worker),
            "reviewer" => Some(Self::Reviewer),
            _ => None,
        }
    }
}

/// Who is calling, as established by the bearer token of this very request.
#[derive(Debug, Clone, PartialEq)]
pub struct Caller {
    pub session: String,
    pub run: String,
    pub role: Role,
    /// The task the engine started this session for: it holds that task and no other, and is
    /// not shown `claim_task`.
    pub dispatched: Option<String>,
}

/// Where a message goes.
#[derive(Debug, Clone, PartialEq)]
pub enum To {
    All,
    Orchestrator,
    Task(String),
}

/// One board operation.
#[derive(Debug, Clone)]
pub enum Op {
    MyTask,
    Claim,
    Progress {
        note: String,
    },
    Complete {
        summary: String,
    },
    Fail {
        reason: String,
        retryable: bool,
    },
    Board,
    Send {
        to: To,
        body: String,
    },
    ReadMessages,
    Escalate {
        question: String,
        context: Option<String>,
        blocking: bool,
    },
    SubmitPlan(PlanInput),
}

impl Op {
    fn allowed(&self, role: Role) -> bool {
        match self {
            Op::SubmitPlan(_) => role == Role::Planner,
            Op::MyTask
            | Op::Claim
            | Op::Progress { .. }
            | Op::Complete { .. }
            | Op::Fail { .. } => role == Role::Worker,
            Op::Board | Op::Send { .. } | Op::ReadMessages | Op::Escalate { .. } => true,
        }
    }
}

/// A refusal the calling model can act on; shown to it as a tool error.
#[derive(Debug, thiserror::Error)]
pub enum BoardError {
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn refused(msg: impl Into<String>) -> BoardError {
    BoardError::Refused(msg.into())
}

/// What changed, for the actor to publish and mirror.
#[derive(Debug, Default)]
pub struct Applied {
    pub reply: Value,
    pub events: Vec<crate::store::EventRow>,
    pub tasks: Vec<TaskRow>,
    pub messages: Vec<MessageRow>,
    pub plan: Option<(u32, PlanInput)>,
    /// Tasks that no longer exist (an earlier plan superseded): their mirror files go.
    pub removed: Vec<String>,
    /// A blocking escalation was raised: the run must wait for a human.
    pub blocking_escalation: Option<u64>,
}

pub const BODY_MAX: usize = 20_000;

/// Runs `op` for `caller` in one transaction.
pub fn apply(
    c: &mut Connection,
    run: &RunRow,
    caller: &Caller,
    op: Op,
) -> Result<Applied, BoardError> {
    if !op.allowed(caller.role) {
        return Err(refused(format!(
            "this tool is not for a {} session; the server instructions list the tools for your role",
            caller.role.as_str()
        )));
    }
    let tx = c.transaction().map_err(StoreError::from)?;
    let session = rows::session(&tx, &caller.session)?
        .filter(|s| s.run_id == run.id && s.status == "active")
        .ok_or_else(|| refused("your session has ended; stop working"))?;
    let held = session.task_id.clone();
    let at = time_text::now();
    let mut out = Applied::default();
    let event = |out: &mut Applied, e: NewEvent| -> Result<(), BoardError> {
        out.events.push(events::append(&tx, &run.id, at, e)?);
        Ok(())
    };
    let dispatched = session.dispatched.clone();
    let need_task = || {
        held.clone().ok_or_else(|| match &dispatched {
            Some(own) => refused(format!(
                "your task {own} is finished; there is nothing more for this session: stop now"
            )),
            None => refused("you hold no task; call claim_task to get one"),
        })
    };
    match op {
        Op::MyTask => {
            let id = need_task()?;
            let task = rows::task(&tx, &run.id, &id)?
                .ok_or_else(|| refused("your task no longer exists"))?;
            let mut deps = Vec::new();
            for d in &task.depends_on {
                if let Some(t) = rows::task(&tx, &run.id, d)? {
                    deps.push(json!({"id": t.id, "title": t.title, "status": t.status, "result": t.result}));
                }
            }
            let plan = rows::latest_plan(&tx, &run.id)?.map(|(_, s)| s);
            out.reply = json!({
                "feature": run.feature,
                "branch": run.branch,
                "plan_summary": plan,
                "task": task_json(&task),
                "dependencies": deps,
                "checks": {
                    "verify": task.verify,
                    "verify_runs": "when you call complete_task, in your worktree; a failure refuses the completion with the output",
                    "gate": run.options.gate,
                    "gate_runs": "on the merged result of your branch, in the integration worktree; a red gate sends the task back with its output",
                    "setup": run.options.setup,
                },
            });
        }
        Op::Claim => {
            if let Some(own) = &session.dispatched {
                return Err(refused(format!(
                    "you were started for task {own} and work on it alone; do not claim other \
                     tasks (the orchestrator gives each task its own session). Finish {own} with \
                     complete_task or fail_task, then stop"
                )));
            }
            if let Some(id) = &held
                && rows::task(&tx, &run.id, id)?.is_some_and(|t| t.status == TaskStatus::InProgress)
            {
                return Err(refused(format!(
                    "you already hold task {id}; complete_task or fail_task it before claiming another"
                )));
            }
            match rows::claim_next(&tx, &run.id, &caller.session, at)? {
                Some(id) => {
                    rows::set_session_task(&tx, &caller.session, Some(&id))?;
                    let task =
                        rows::task(&tx, &run.id, &id)?.ok_or_else(|| refused("task vanished"))?;
                    event(
                        &mut out,
                        NewEvent::info(
                            "task_claimed",
                            format!("Task {id} claimed by session {}", caller.session),
                        )
                        .with_data(json!({"task": id, "session": caller.session})),
                    )?;
                    out.reply = json!({"claimed": true, "task": task_json(&task),
                        "next": "call get_task for the full brief and the results of its dependencies"});
                    out.tasks.push(task);
                }
                None => {
                    let all = rows::tasks(&tx, &run.id)?;
                    let count = |s: TaskStatus| all.iter().filter(|t| t.status == s).count();
                    out.reply = json!({"claimed": false,
                        "pending": count(TaskStatus::Pending), "in_progress": count(TaskStatus::InProgress), "done": count(TaskStatus::Done),
                        "reason": if count(TaskStatus::Pending) > 0 { "every pending task waits on dependencies not merged yet; check again later" }
                                  else { "no task is left to claim" }});
                }
            }
        }
        Op::Progress { note } => {
            let id = need_task()?;
            bounded("note", &note, BODY_MAX)?;
            if !rows::set_progress(&tx, &run.id, &id, &caller.session, &note, at)? {
                return Err(refused(format!(
                    "task {id} is not in progress under your session"
                )));
            }
            rows::heartbeat(&tx, &caller.session, at)?;
            event(
                &mut out,
                NewEvent {
                    level: orchestrator_proto::Level::Debug,
                    ..NewEvent::info("task_progress", format!("Task {id}: {}", first_line(&note)))
                }
                .with_data(json!({"task": id})),
            )?;
            out.reply = json!({"recorded": true, "task": id});
            out.tasks.extend(rows::task(&tx, &run.id, &id)?);
        }
        Op::Complete { summary } => {
            let id = need_task()?;
            bounded("summary", &summary, BODY_MAX)?;
            let already = rows::task(&tx, &run.id, &id)?;
            if !rows::finish_task(
                &tx,
                &run.id,
                &id,
                &caller.session,
                rows::Finish {
                    status: TaskStatus::Done,
                    result: Some(&summary),
                    failure: None,
                },
                at,
            )? {
                let status = already.map_or("gone".to_owned(), |t| t.status.to_string());
                return Err(refused(format!(
                    "task {id} is {status}, not in progress under your session; it cannot be completed again"
                )));
            }
            rows::set_session_task(&tx, &caller.session, None)?;
            event(
                &mut out,
                NewEvent::info(
                    "task_completed",
                    format!("Task {id} completed: {}", first_line(&summary)),
                )
                .with_data(json!({"task": id, "session": caller.session})),
            )?;
            let next = if session.dispatched.is_some() {
                "your task is complete: stop now and end your session. The orchestrator merges \
                 your work and starts a new session for every other task; do not claim or start one"
            } else {
                "call claim_task for more work, or stop if none is left"
            };
            out.reply = json!({"completed": true, "task": id, "next": next});
            out.tasks.extend(rows::task(&tx, &run.id, &id)?);
        }
        Op::Fail { reason, retryable } => {
            let id = need_task()?;
            bounded("reason", &reason, BODY_MAX)?;
            let status = if retryable {
                TaskStatus::Pending
            } else {
                TaskStatus::Failed
            };
            if !rows::finish_task(
                &tx,
                &run.id,
                &id,
                &caller.session,
                rows::Finish {
                    status,
                    result: None,
                    failure: Some(&reason),
                },
                at,
            )? {
                return Err(refused(format!(
                    "task {id} is not in progress under your session"
                )));
            }
            rows::set_session_task(&tx, &caller.session, None)?;
            event(
                &mut out,
                NewEvent {
                    level: orchestrator_proto::Level::Warn,
                    ..NewEvent::info(
                        "task_failed",
                        format!(
                            "Task {id} failed ({}): {}",
                            if retryable {
                                "will be retried"
                            } else {
                                "final"
                            },
                            first_line(&reason)
                        ),
                    )
                }
                .with_data(json!({"task": id, "retryable": retryable})),
            )?;
            out.reply = json!({"recorded": true, "task": id, "status": status});
            out.tasks.extend(rows::task(&tx, &run.id, &id)?);
        }
        Op::Board => {
            let all = rows::tasks(&tx, &run.id)?;
            out.reply = json!({"tasks": all.iter().map(|t| json!({
                "id": t.id, "title": t.title, "status": t.status, "assignee": t.assignee, "depends_on": t.depends_on,
            })).collect::<Vec<_>>()});
        }
        Op::Send { to, body } => {
            bounded("body", &body, BODY_MAX)?;
            let (kind, id) = match &to {
                To::All => ("all", None),
                To::Orchestrator => ("orchestrator", None),
                To::Task(t) => {
                    if !rows::task_exists(&tx, &run.id, t)? {
                        return Err(refused(format!(
                            "there is no task {t:?}; use a task id from list_tasks, \"all\" or \"orchestrator\""
                        )));
                    }
                    ("task", Some(t.as_str()))
                }
            };
            let m = rows::insert_message(&tx, &run.id, Some(&caller.session), kind, id, &body, at)?;
            event(
                &mut out,
                NewEvent::info(
                    "message_sent",
                    format!(
                        "Message {} from session {} to {}",
                        m.id,
                        caller.session,
                        id.unwrap_or(kind)
                    ),
                )
                .with_data(json!({"message": m.id})),
            )?;
            out.reply = json!({"sent": true, "message_id": m.id});
            out.messages.push(m);
        }
        Op::ReadMessages => {
            let unread = rows::take_unread(&tx, &run.id, &caller.session, held.as_deref(), at)?;
            out.reply = json!({"messages": unread.iter().map(message_json).collect::<Vec<_>>()});
        }
        Op::Escalate {
            question,
            context,
            blocking,
        } => {
            bounded("question", &question, BODY_MAX)?;
            if let Some(c) = &context {
                bounded("context", c, BODY_MAX)?;
            }
            let e = escalations::insert(
                &tx,
                &NewEscalation {
                    run_id: run.id.clone(),
                    task_id: held.clone(),
                    kind: "question".into(),
                    question: question.clone(),
                    context,
                    blocking,
                    at,
                },
            )?;
            event(
                &mut out,
                NewEvent {
                    level: orchestrator_proto::Level::Warn,
                    ..NewEvent::info(
                        "escalated",
                        format!(
                            "Escalation {} from session {}: {}",
                            e.id,
                            caller.session,
                            first_line(&question)
                        ),
                    )
                }
                .with_data(json!({"escalation": e.id, "blocking": blocking})),
            )?;
            if blocking {
                out.blocking_escalation = Some(e.id);
            }
            out.reply = json!({"escalation_id": e.id, "blocking": blocking,
                "next": "a human will answer; the answer arrives as a message from the orchestrator (read_messages)"});
        }
        Op::SubmitPlan(plan) => {
            // A second plan from the same planner replaces its first before any of it runs
            // (both would otherwise execute). Undone with the transaction if this one is refused.
            let (superseded, dropped) = rows::supersede_own_plans(&tx, &run.id, &caller.session)?;
            let existing: HashSet<String> = rows::tasks(&tx, &run.id)?
                .into_iter()
                .map(|t| t.id)
                .collect();
            plan::validate(&plan, &existing).map_err(|p| refused(p.to_string()))?;
            let tasks: Vec<NewTask<'_>> = plan
                .tasks
                .iter()
                .map(|t| NewTask {
                    id: &t.id,
                    title: &t.title,
                    description: &t.description,
                    acceptance: &t.acceptance_criteria,
                    files: &t.files,
                    depends_on: &t.depends_on,
                    verify: &t.verify,
                })
                .collect();
            let version = rows::insert_plan(
                &tx,
                &run.id,
                run.cycle,
                &plan.summary,
                &caller.session,
                &tasks,
                at,
            )?;
            event(
                &mut out,
                NewEvent::info(
                    "plan_submitted",
                    format!("Plan v{version} submitted with {} tasks", plan.tasks.len()),
                )
                .with_data(json!({"version": version, "tasks": plan.tasks.len()})),
            )?;
            if !superseded.is_empty() {
                let vs: Vec<String> = superseded.iter().map(|v| format!("v{v}")).collect();
                event(
                    &mut out,
                    NewEvent::info(
                        "plan_superseded",
                        format!(
                            "Plan v{version} supersedes {} from the same planner ({} tasks \
                             dropped before any ran)",
                            vs.join(", "),
                            dropped.len()
                        ),
                    )
                    .with_data(json!({"version": version, "superseded": superseded,
                        "dropped": dropped})),
                )?;
            }
            out.reply = json!({"accepted": true, "version": version, "tasks": plan.tasks.len(),
                "superseded": superseded});
            out.removed = dropped
                .into_iter()
                .filter(|id| !plan.tasks.iter().any(|t| &t.id == id))
                .collect();
            out.tasks = rows::tasks(&tx, &run.id)?
                .into_iter()
                .filter(|t| !existing.contains(&t.id))
                .collect();
            out.plan = Some((version, plan));
        }
    }
    tx.commit().map_err(StoreError::from)?;
    Ok(out)
}

fn bounded(what: &str, v: &str, max: usize) -> Result<(), BoardError> {
    if v.trim().is_empty() {
        return Err(refused(format!("{what} is empty")));
    }
    if v.len() > max {
        return Err(refused(format!(
            "{what} is {} bytes; keep it under {max}",
            v.len()
        )));
    }
    Ok(())
}

fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or("").trim();
    if line.chars().count() > 120 {
        line.chars().take(119).collect::<String>() + "…"
    } else {
        line.to_owned()
    }
}

pub fn task_json(t: &TaskRow) -> Value {
    json!({
        "id": t.id, "title": t.title, "description": t.description,
        "acceptance_criteria": t.acceptance, "depends_on": t.depends_on, "files": t.files,
        "status": t.status, "assignee": t.assignee, "attempts": t.attempts,
        "progress": t.progress, "result": t.result, "failure": t.failure, "cost_usd": t.cost_usd,
        "verify": t.verify,
        "checks": t.checks.as_deref().and_then(|c| serde_json::from_str::<Value>(c).ok()),
        "updated_at": time_text::format(t.updated_at),
    })
}

pub fn message_json(m: &MessageRow) -> Value {
    json!({
        "id": m.id,
        "from": match (&m.from_session, &m.from_task) {
            (None, _) => "orchestrator".to_owned(),
            (Some(_), Some(t)) => format!("task {t}"),
            (Some(s), None) => format!("session {s}"),
        },
        "to": m.to_id.clone().unwrap_or_else(|| m.to_kind.clone()),
        "body": m.body,
        "at": time_text::format(m.created_at),
    })
}
