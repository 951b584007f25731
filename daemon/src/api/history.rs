//! `/v1/runs/{id}/sessions` and `/v1/runs/{id}/reviews`: a run's sessions as spans of time
//! and its Codex reviews with the findings ledger — what the dashboard draws as the timeline
//! and the cycles.

use axum::extract::{Path, State};
use orchestrator_proto::review::{Finding, Review, ReviewList};
use orchestrator_proto::session::{SessionList, SessionSpan};

use super::{ApiError, AppState};
use crate::ids::RunId;
use crate::runs::RunError;
use crate::store::reviews::{self, ReviewKind};

pub async fn sessions(
    State(s): State<AppState>,
    Path(id): Path<RunId>,
) -> Result<axum::Json<SessionList>, ApiError> {
    s.runs.get(&id).await?;
    let rows = s
        .runs
        .db()
        .call(move |c| crate::store::spans::of_run(c, &id))
        .await
        .map_err(RunError::from)?;
    Ok(axum::Json(SessionList {
        sessions: rows
            .into_iter()
            .map(|r| SessionSpan {
                session: r.session,
                role: r.role,
                task: r.task,
                agent: r.agent,
                model: r.model,
                cycle: r.cycle,
                cost_usd: r.cost_usd,
                started_at: r.started_at,
                ended_at: r.ended_at,
            })
            .collect(),
    }))
}

pub async fn reviews(
    State(s): State<AppState>,
    Path(id): Path<RunId>,
) -> Result<axum::Json<ReviewList>, ApiError> {
    s.runs.get(&id).await?;
    let (list, findings) = s
        .runs
        .db()
        .call(move |c| {
            let list = reviews::list(c, &id)?;
            let mut f = reviews::findings(c, &id, ReviewKind::Plan)?;
            f.extend(reviews::findings(c, &id, ReviewKind::Code)?);
            Ok((list, f))
        })
        .await
        .map_err(RunError::from)?;
    Ok(axum::Json(ReviewList {
        reviews: list
            .into_iter()
            .map(|r| Review {
                id: r.id,
                kind: r.kind.as_str().to_owned(),
                cycle: r.cycle,
                outcome: r.outcome.as_str().to_owned(),
                summary: r.summary,
                at: r.created_at,
            })
            .collect(),
        findings: findings
            .into_iter()
            .map(|f| Finding {
                blocking: f.blocking(),
                id: f.id,
                priority: f.priority,
                title: f.title,
                body: f.body,
                location: f.location,
                first_review: f.first_review,
                last_review: f.last_review,
                raised: f.raised,
                status: f.status.as_str().to_owned(),
            })
            .collect(),
    }))
}
