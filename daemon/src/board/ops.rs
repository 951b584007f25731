//! One function per board operation, each inside the transaction `super::apply` opened for
//! it: the checks that refuse (worded for the model), the rows it changes, the events that
//! record it and the reply. A refusal returns before anything is written.

#[allow(clippy::wildcard_imports)]
use super::*;
use orchestrator_proto::{EscalationKind, EventKind};

pub(super) fn my_task(a: &mut Apply<'_>) -> Result<Reply, BoardError> {
    let id = a.need_task()?;
    let task =
        rows::task(a.tx, &a.run.id, &id)?.ok_or_else(|| refused("your task no longer exists"))?;
    let mut deps = Vec::new();
    for d in &task.depends_on {
        if let Some(t) = rows::task(a.tx, &a.run.id, d)? {
            deps.push(reply::Dependency {
                id: t.id.into(),
                title: t.title,
                status: t.status,
                result: t.result,
            });
        }
    }
    let plan = rows::latest_plan(a.tx, &a.run.id)?.map(|(_, s)| s);
    Ok(Reply::MyTask(Box::new(reply::MyTask {
        feature: a.run.feature.clone(),
        branch: a.run.branch.clone(),
        plan_summary: plan,
        checks: reply::Checks {
            verify: task.verify.clone(),
            verify_runs: "when you call complete_task, in your worktree; a failure refuses the \
                          completion with the output",
            gate: a.run.options.gate.clone(),
            gate_runs: "on the merged result of your branch, in the integration worktree; a red \
                        gate sends the task back with its output",
            setup: a.run.options.setup.clone(),
        },
        task: crate::wire::task(&task),
        dependencies: deps,
    })))
}

pub(super) fn claim(a: &mut Apply<'_>) -> Result<Reply, BoardError> {
    if let Some(own) = &a.session.dispatched {
        return Err(refused(format!(
            "you were started for task {own} and work on it alone; do not claim other \
                 tasks (the orchestrator gives each task its own session). Finish {own} with \
                 complete_task or fail_task, then stop"
        )));
    }
    if let Some(id) = &a.session.task_id
        && rows::task_status(a.tx, &a.run.id, id)? == Some(TaskStatus::InProgress)
    {
        return Err(refused(format!(
            "you already hold task {id}; complete_task or fail_task it before claiming another"
        )));
    }
    match rows::claim_next(a.tx, &a.run.id, &a.caller.session, a.at)? {
        Some(id) => {
            sessions::set_session_task(a.tx, &a.caller.session, Some(&id))?;
            let task = rows::task(a.tx, &a.run.id, &id)?.ok_or_else(|| refused("task vanished"))?;
            a.event(
                NewEvent::info(
                    EventKind::TaskClaimed,
                    format!("Task {id} claimed by session {}", a.caller.session),
                )
                .with_data(json!({"task": id, "session": a.caller.session})),
            )?;
            let claimed = reply::Claim {
                claimed: true,
                task: Some(crate::wire::task(&task)),
                next: Some("call get_task for the full brief and the results of its dependencies"),
                pending: None,
                in_progress: None,
                done: None,
                reason: None,
            };
            a.out.tasks.push(task);
            Ok(Reply::Claim(Box::new(claimed)))
        }
        None => {
            let all = rows::status_counts(a.tx, &a.run.id)?;
            let count = |s: TaskStatus| all.get(&s).copied().unwrap_or(0);
            let pending = count(TaskStatus::Pending);
            Ok(Reply::Claim(Box::new(reply::Claim {
                claimed: false,
                task: None,
                next: None,
                pending: Some(pending),
                in_progress: Some(count(TaskStatus::InProgress)),
                done: Some(count(TaskStatus::Done)),
                reason: Some(if pending > 0 {
                    "every pending task waits on dependencies not merged yet; check again later"
                } else {
                    "no task is left to claim"
                }),
            })))
        }
    }
}

pub(super) fn progress(a: &mut Apply<'_>, note: String) -> Result<Reply, BoardError> {
    let id = a.need_task()?;
    bounded("note", &note, BODY_MAX)?;
    if !rows::set_progress(a.tx, &a.run.id, &id, &a.caller.session, &note, a.at)? {
        return Err(refused(format!(
            "task {id} is not in progress under your session"
        )));
    }
    sessions::heartbeat(a.tx, &a.caller.session, a.at)?;
    a.event(
        NewEvent {
            level: orchestrator_proto::Level::Debug,
            ..NewEvent::info(
                EventKind::TaskProgress,
                format!("Task {id}: {}", first_line(&note)),
            )
        }
        .with_data(json!({"task": id})),
    )?;
    a.out.tasks.extend(rows::task(a.tx, &a.run.id, &id)?);
    Ok(Reply::Progress(reply::Progress {
        recorded: true,
        task: id.into(),
    }))
}

pub(super) fn complete(a: &mut Apply<'_>, summary: String) -> Result<Reply, BoardError> {
    let id = a.need_task()?;
    bounded("summary", &summary, BODY_MAX)?;
    if !rows::finish_task(
        a.tx,
        &a.run.id,
        &id,
        &a.caller.session,
        rows::Finish {
            status: TaskStatus::Done,
            result: Some(&summary),
            failure: None,
        },
        a.at,
    )? {
        // Nothing changed: the status is what it was.
        let status =
            rows::task_status(a.tx, &a.run.id, &id)?.map_or("gone".to_owned(), |s| s.to_string());
        return Err(refused(format!(
            "task {id} is {status}, not in progress under your session; it cannot be completed again"
        )));
    }
    sessions::set_session_task(a.tx, &a.caller.session, None)?;
    a.event(
        NewEvent::info(
            EventKind::TaskCompleted,
            format!("Task {id} completed: {}", first_line(&summary)),
        )
        .with_data(json!({"task": id, "session": a.caller.session})),
    )?;
    let next = if a.session.dispatched.is_some() {
        "your task is complete: stop now and end your session. The orchestrator merges \
             your work and starts a new session for every other task; do not claim or start one"
    } else {
        "call claim_task for more work, or stop if none is left"
    };
    a.out.tasks.extend(rows::task(a.tx, &a.run.id, &id)?);
    Ok(Reply::Complete(reply::Complete {
        completed: true,
        task: id.into(),
        next,
    }))
}

pub(super) fn fail(
    a: &mut Apply<'_>,
    reason: String,
    retryable: bool,
) -> Result<Reply, BoardError> {
    let id = a.need_task()?;
    bounded("reason", &reason, BODY_MAX)?;
    let status = if retryable {
        TaskStatus::Pending
    } else {
        TaskStatus::Failed
    };
    if !rows::finish_task(
        a.tx,
        &a.run.id,
        &id,
        &a.caller.session,
        rows::Finish {
            status,
            result: None,
            failure: Some(&reason),
        },
        a.at,
    )? {
        return Err(refused(format!(
            "task {id} is not in progress under your session"
        )));
    }
    sessions::set_session_task(a.tx, &a.caller.session, None)?;
    a.event(
        NewEvent {
            level: orchestrator_proto::Level::Warn,
            ..NewEvent::info(
                EventKind::TaskFailed,
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
    a.out.tasks.extend(rows::task(a.tx, &a.run.id, &id)?);
    Ok(Reply::Fail(reply::Fail {
        recorded: true,
        task: id.into(),
        status,
    }))
}

pub(super) fn board(a: &mut Apply<'_>) -> Result<Reply, BoardError> {
    let tasks = rows::tasks(a.tx, &a.run.id)?
        .into_iter()
        .map(|t| reply::BoardTask {
            id: t.id.into(),
            title: t.title,
            status: t.status,
            assignee: t.assignee.map(Into::into),
            depends_on: t.depends_on.into_iter().map(Into::into).collect(),
        })
        .collect();
    Ok(Reply::Board(reply::Board { tasks }))
}

pub(super) fn send(a: &mut Apply<'_>, to: To, body: String) -> Result<Reply, BoardError> {
    bounded("body", &body, BODY_MAX)?;
    let (kind, id) = match &to {
        To::All => ("all", None),
        To::Orchestrator => ("orchestrator", None),
        To::Task(t) => {
            if !rows::task_exists(a.tx, &a.run.id, t)? {
                return Err(refused(format!(
                    "there is no task {t:?}; use a task id from list_tasks, \"all\" or \"orchestrator\""
                )));
            }
            ("task", Some(t.as_str()))
        }
    };
    let m = rows::insert_message(
        a.tx,
        &a.run.id,
        Some(&a.caller.session),
        kind,
        id,
        &body,
        a.at,
    )?;
    a.event(
        NewEvent::info(
            EventKind::MessageSent,
            format!(
                "Message {} from session {} to {}",
                m.id,
                a.caller.session,
                id.unwrap_or(kind)
            ),
        )
        .with_data(json!({"message": m.id})),
    )?;
    let sent = reply::Sent {
        sent: true,
        message_id: m.id,
    };
    a.out.messages.push(m);
    Ok(Reply::Send(sent))
}

pub(super) fn read_messages(a: &mut Apply<'_>) -> Result<Reply, BoardError> {
    let unread = rows::take_unread(
        a.tx,
        &a.run.id,
        &a.caller.session,
        a.session.task_id.as_ref(),
        a.at,
    )?;
    Ok(Reply::Messages(reply::Messages {
        messages: unread.iter().map(reply::Message::from).collect(),
    }))
}

pub(super) fn escalate(
    a: &mut Apply<'_>,
    question: String,
    context: Option<String>,
    blocking: bool,
) -> Result<Reply, BoardError> {
    bounded("question", &question, BODY_MAX)?;
    if let Some(c) = &context {
        bounded("context", c, BODY_MAX)?;
    }
    let e = escalations::insert(
        a.tx,
        &NewEscalation {
            run_id: a.run.id.clone(),
            task_id: a.session.task_id.clone(),
            kind: EscalationKind::Question,
            question: question.clone(),
            context,
            blocking,
            at: a.at,
        },
    )?;
    a.event(
        NewEvent {
            level: orchestrator_proto::Level::Warn,
            ..NewEvent::info(
                EventKind::Escalated,
                format!(
                    "Escalation {} from session {}: {}",
                    e.id,
                    a.caller.session,
                    first_line(&question)
                ),
            )
        }
        .with_data(json!({"escalation": e.id, "blocking": blocking})),
    )?;
    if blocking {
        a.out.blocking_escalation = Some(e.id);
    }
    Ok(Reply::Escalate(reply::Escalated {
        escalation_id: e.id,
        blocking,
        next: "a human will answer; the answer arrives as a message from the orchestrator \
               (read_messages)",
    }))
}

pub(super) fn submit_plan(a: &mut Apply<'_>, plan: PlanInput) -> Result<Reply, BoardError> {
    // A second plan from the same planner replaces its first before any of it runs
    // (both would otherwise execute). Undone with the transaction if this one is refused.
    let (superseded, dropped) = rows::supersede_own_plans(a.tx, &a.run.id, &a.caller.session)?;
    let existing: HashSet<String> = rows::tasks(a.tx, &a.run.id)?
        .into_iter()
        .map(|t| t.id.into())
        .collect();
    let models = a.run.options.models.choices();
    let codex = a.run.options.models.codex_allowed();
    plan::validate(&plan, &existing, &models, codex).map_err(|p| refused(p.to_string()))?;
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
            model: t.model.as_deref(),
            effort: t.effort,
            agent: t.agent,
        })
        .collect();
    let version = rows::insert_plan(
        a.tx,
        &a.run.id,
        a.run.cycle,
        &plan.summary,
        &a.caller.session,
        &tasks,
        a.at,
    )?;
    a.event(
        NewEvent::info(
            EventKind::PlanSubmitted,
            format!(
                "Plan v{version} submitted with {}",
                orchestrator_proto::words::count(plan.tasks.len() as u64, "task")
            ),
        )
        .with_data(json!({"version": version, "tasks": plan.tasks.len()})),
    )?;
    if !superseded.is_empty() {
        let vs: Vec<String> = superseded.iter().map(|v| format!("v{v}")).collect();
        a.event(
            NewEvent::info(
                EventKind::PlanSuperseded,
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
    let accepted = reply::PlanAccepted {
        accepted: true,
        version,
        tasks: plan.tasks.len(),
        superseded,
    };
    a.out.removed = dropped
        .into_iter()
        .filter(|id| !plan.tasks.iter().any(|t| &t.id == id))
        .collect();
    a.out.tasks = rows::tasks(a.tx, &a.run.id)?
        .into_iter()
        .filter(|t| !existing.contains(t.id.as_str()))
        .collect();
    a.out.plan = Some((version, plan));
    Ok(Reply::Plan(accepted))
}
