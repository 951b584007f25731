//! The edge: conversions from the daemon's rows to the `proto` types that cross the socket and
//! land in the mirror. Nothing else in the daemon builds wire types.

use orchestrator_proto as proto;

use crate::store::{EscalationRow, EventRow, RunRow};

pub fn run(r: &RunRow) -> proto::Run {
    proto::Run {
        id: r.id.to_string(),
        project: r.project.clone(),
        feature: r.feature.clone(),
        branch: r.branch.clone(),
        base_commit: r.base_commit.clone(),
        status: r.status,
        phase: r.phase,
        cycle: r.cycle,
        options: r.options.clone(),
        context_file: r.context_file.clone(),
        status_reason: r.status_reason.clone(),
        created_at: r.created_at,
        updated_at: r.updated_at,
        finished_at: r.finished_at,
        progress: r.progress.clone(),
        hold: r.hold_kind.map(|kind| proto::RunHold {
            kind,
            until: r.hold_until,
        }),
        unreviewed: r.unreviewed.clone(),
        forecast: None,
    }
}

pub fn event(e: &EventRow) -> proto::Event {
    proto::Event {
        seq: e.seq,
        run_id: e.run_id.to_string(),
        at: e.at,
        level: e.level,
        kind: e.kind,
        message: e.message.clone(),
        data: e.data.clone(),
    }
}

pub fn escalation(e: &EscalationRow) -> proto::Escalation {
    proto::Escalation {
        id: e.id,
        run_id: e.run_id.to_string(),
        project: e.project.clone(),
        task_id: e.task_id.as_ref().map(ToString::to_string),
        kind: e.kind,
        question: e.question.clone(),
        context: e.context.clone(),
        blocking: e.blocking,
        created_at: e.created_at,
        answer: e.answer.clone(),
        answered_at: e.answered_at,
        closed_at: e.closed_at,
        closed: e.closed_why.clone(),
        superseded_by: e.superseded_by,
    }
}

pub fn task(t: &crate::store::board::TaskRow) -> proto::Task {
    proto::Task {
        id: t.id.to_string(),
        title: t.title.clone(),
        description: t.description.clone(),
        acceptance_criteria: t.acceptance.clone(),
        files: t.files.clone(),
        status: t.status,
        assignee: t.assignee.as_ref().map(ToString::to_string),
        attempts: t.attempts,
        depends_on: t.depends_on.iter().map(ToString::to_string).collect(),
        progress: t.progress.clone(),
        result: t.result.clone(),
        updated_at: t.updated_at,
        cost_usd: t.cost_usd,
        failure: t.failure.clone(),
        last_activity_at: t.last_activity_at,
        verify: t.verify.clone(),
        checks: t
            .checks
            .as_deref()
            .and_then(|c| serde_json::from_str(c).ok()),
        model: t.model.clone(),
        effort: t.effort,
        agent: t.agent,
    }
}
