//! `/v1/runs…`: submit, list, look up, read events (optionally following them), and the
//! pause/resume/cancel transitions.

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use orchestrator_proto::{
    CurrentRun, EventList, ListRuns, ReadEvents, Run, RunList, SubmitRun, Transition,
};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use super::extract::{Json, OptionalJson, Query};
use super::{ApiError, AppState};
use crate::runs::{Command, Runs};
use crate::store::EventRow;
use crate::wire;

pub async fn submit(
    State(s): State<AppState>,
    Json(req): Json<SubmitRun>,
) -> Result<(StatusCode, axum::Json<Run>), ApiError> {
    let row = s.runs.submit(req).await?;
    Ok((StatusCode::CREATED, axum::Json(wire::run(&row))))
}

pub async fn list(
    State(s): State<AppState>,
    Query(q): Query<ListRuns>,
) -> Result<axum::Json<RunList>, ApiError> {
    let rows = s.runs.list(q.project, q.status).await?;
    Ok(axum::Json(RunList {
        runs: rows.iter().map(wire::run).collect(),
    }))
}

pub async fn current(
    State(s): State<AppState>,
    Query(q): Query<CurrentRun>,
) -> Result<axum::Json<Run>, ApiError> {
    let row = s.runs.current(&q.project).await?;
    Ok(axum::Json(with_forecast(&s, &row).await))
}

/// The run with its estimate to go, when it has tasks left and the project has history.
async fn with_forecast(s: &AppState, row: &crate::store::RunRow) -> Run {
    let mut run = wire::run(row);
    if !row.status.is_active() || row.progress.merged >= row.progress.tasks {
        return run;
    }
    let id = row.id.clone();
    let Ok(tasks) = s
        .runs
        .db()
        .call(move |c| crate::store::board::tasks(c, &id))
        .await
    else {
        return run;
    };
    let models = &row.options.models;
    let left: Vec<Option<&str>> = tasks
        .iter()
        .filter(|t| t.status != orchestrator_proto::TaskStatus::Merged)
        .map(|t| match t.agent.unwrap_or(models.worker_agent) {
            orchestrator_proto::Agent::Codex => Some(t.model.as_deref().unwrap_or("codex")),
            orchestrator_proto::Agent::Claude => t.model.as_deref().or(models.worker.as_deref()),
        })
        .collect();
    let outlook =
        crate::usage::outlook::Outlook::read(s.runs.db(), &row.project, &s.usage.snapshot()).await;
    run.forecast = outlook.ok().and_then(|o| o.to_go(&left));
    run
}

pub async fn get(
    State(s): State<AppState>,
    Path(id): Path<String>,
) -> Result<axum::Json<Run>, ApiError> {
    let row = s.runs.get(&id).await?;
    Ok(axum::Json(with_forecast(&s, &row).await))
}

pub async fn pause(
    State(s): State<AppState>,
    Path(id): Path<String>,
    OptionalJson(t): OptionalJson<Transition>,
) -> Result<axum::Json<Run>, ApiError> {
    let row = s
        .runs
        .command(&id, |reply| Command::Pause {
            reason: t.reason,
            reply,
        })
        .await?;
    Ok(axum::Json(wire::run(&row)))
}

pub async fn resume(
    State(s): State<AppState>,
    Path(id): Path<String>,
    OptionalJson(t): OptionalJson<Transition>,
) -> Result<axum::Json<Run>, ApiError> {
    let env = (!t.env.is_empty()).then(|| t.env.filtered_with(&t.forward));
    let row = s
        .runs
        .command(&id, |reply| Command::Resume {
            reason: t.reason,
            env,
            change: t.change,
            reply,
        })
        .await?;
    Ok(axum::Json(wire::run(&row)))
}

pub async fn cancel(
    State(s): State<AppState>,
    Path(id): Path<String>,
    OptionalJson(t): OptionalJson<Transition>,
) -> Result<axum::Json<Run>, ApiError> {
    let row = s
        .runs
        .command(&id, |reply| Command::Cancel {
            reason: t.reason,
            reply,
        })
        .await?;
    Ok(axum::Json(wire::run(&row)))
}

/// The run's events as JSON, or with `follow=true` as NDJSON that stays open until the run
/// finishes, the daemon stops or the client hangs up.
pub async fn events(
    State(s): State<AppState>,
    Path(id): Path<crate::ids::RunId>,
    Query(q): Query<ReadEvents>,
) -> Result<Response, ApiError> {
    s.runs.get(&id).await?;
    let after = q.after.unwrap_or(0);
    if !q.follow {
        let rows = s.runs.events(&id, after, q.tail).await?;
        return Ok(axum::Json(EventList {
            events: rows.iter().map(wire::event).collect(),
        })
        .into_response());
    }
    // Subscribe before reading history so nothing falls between the two.
    let live = s.runs.subscribe(&id);
    let history = s.runs.events(&id, after, q.tail).await?;
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(64);
    tokio::spawn(follow(s.runs.clone(), id, after, history, live, tx));
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(ReceiverStream::new(rx)),
    )
        .into_response())
}

type Lines = mpsc::Sender<Result<Bytes, Infallible>>;

async fn send_all(tx: &Lines, events: &[EventRow], last: &mut u64) -> bool {
    for e in events {
        if e.seq <= *last {
            continue;
        }
        let mut line = serde_json::to_vec(&wire::event(e)).unwrap_or_default();
        line.push(b'\n');
        if tx.send(Ok(Bytes::from(line))).await.is_err() {
            return false;
        }
        *last = e.seq;
    }
    true
}

async fn follow(
    runs: Runs,
    id: crate::ids::RunId,
    after: u64,
    history: Vec<EventRow>,
    live: Option<broadcast::Receiver<EventRow>>,
    tx: Lines,
) {
    let mut last = after;
    if !send_all(&tx, &history, &mut last).await {
        return;
    }
    let Some(mut live) = live else { return };
    loop {
        let batch = tokio::select! {
            _ = tx.closed() => return,
            r = live.recv() => r,
        };
        let (events, done) = match batch {
            Ok(e) => (vec![e], false),
            // Too slow for the broadcast buffer, or the run ended: catch up from SQLite.
            Err(lost) => match runs.events(&id, last, None).await {
                Ok(rows) => (rows, matches!(lost, broadcast::error::RecvError::Closed)),
                Err(_) => return,
            },
        };
        if !send_all(&tx, &events, &mut last).await || done {
            return;
        }
    }
}

/// The run's tasks, in plan order.
pub async fn tasks(
    State(s): State<AppState>,
    Path(id): Path<crate::ids::RunId>,
) -> Result<axum::Json<orchestrator_proto::TaskList>, ApiError> {
    s.runs.get(&id).await?;
    let rows = s
        .runs
        .db()
        .call(move |c| crate::store::board::tasks(c, &id))
        .await
        .map_err(crate::runs::RunError::from)?;
    Ok(axum::Json(orchestrator_proto::TaskList {
        tasks: rows.iter().map(wire::task).collect(),
    }))
}

/// The run's cost ledger: by model, for the run, its project, each cycle and each task.
pub async fn cost(
    State(s): State<AppState>,
    Path(id): Path<crate::ids::RunId>,
) -> Result<axum::Json<orchestrator_proto::cost::CostLedger>, ApiError> {
    let run = s.runs.get(&id).await?;
    let rows = s
        .runs
        .db()
        .call(move |c| crate::store::cost::ledger(c, &id))
        .await
        .map_err(crate::runs::RunError::from)?;
    Ok(axum::Json(orchestrator_proto::cost::CostLedger {
        run: run.id.to_string(),
        project: run.project.clone(),
        rows,
    }))
}

/// `orchestrate tell`: a message from the user to a task's worker or to every worker.
pub async fn tell(
    State(s): State<AppState>,
    Path(id): Path<String>,
    super::extract::Json(tell): super::extract::Json<orchestrator_proto::Tell>,
) -> Result<axum::Json<orchestrator_proto::Told>, ApiError> {
    let told = s
        .runs
        .command(&id, |reply| Command::Tell { tell, reply })
        .await?;
    Ok(axum::Json(told))
}

/// `orchestrate tail`: a task's newest worker session's output lines from an offset.
pub async fn output(
    State(s): State<AppState>,
    Path((id, task)): Path<(crate::ids::RunId, crate::ids::TaskId)>,
    Query(q): Query<orchestrator_proto::session::ReadOutput>,
) -> Result<axum::Json<orchestrator_proto::session::TaskOutput>, ApiError> {
    let out = s.runs.task_output(&id, &task, q.after.unwrap_or(0)).await?;
    Ok(axum::Json(out))
}

/// `orchestrate pr`: the completed run's branch pushed and its pull request opened.
pub async fn pr(
    State(s): State<AppState>,
    Path(id): Path<String>,
    OptionalJson(req): OptionalJson<orchestrator_proto::pr::OpenPr>,
) -> Result<axum::Json<orchestrator_proto::pr::PrReport>, ApiError> {
    Ok(axum::Json(s.runs.pr(&id, req).await?))
}

/// `orchestrate attach`: a paused run's interrupted Claude worker handed to a person.
pub async fn attach(
    State(s): State<AppState>,
    Path((id, task)): Path<(String, crate::ids::TaskId)>,
) -> Result<axum::Json<orchestrator_proto::session::Attached>, ApiError> {
    let (grant, place) = s
        .runs
        .command(&id, |reply| Command::Attach { task, reply })
        .await?;
    Ok(axum::Json(orchestrator_proto::session::Attached {
        session: grant.session.to_string(),
        token: grant.token,
        mcp_url: s.info.mcp_url.clone(),
        worktree: place.worktree.display().to_string(),
        branch: place.branch,
        claude_session: place.session,
    }))
}

/// The person is done with the task they took over.
pub async fn detach(
    State(s): State<AppState>,
    Path((id, task)): Path<(String, crate::ids::TaskId)>,
    Json(req): Json<orchestrator_proto::session::Detach>,
) -> Result<axum::Json<orchestrator_proto::session::Detached>, ApiError> {
    let session = crate::ids::SessionId::from(req.session);
    let status = s
        .runs
        .command(&id, |reply| Command::Detach {
            task,
            session,
            reply,
        })
        .await?;
    Ok(axum::Json(orchestrator_proto::session::Detached { status }))
}
