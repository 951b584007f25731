//! The cost ledger: the sessions table summed by model for each task, each cycle, the run
//! and its project, in one statement.

use orchestrator_proto::cost::{CostRow, CostScope};
use rusqlite::{Connection, params};

use super::word::enum_from_text;
use super::{Cached, StoreError};
use crate::ids::RunId;

const LEDGER: &str = "\
    WITH spent AS (SELECT s.*, coalesce(s.cost_usd, 0.0) AS usd, \
                          coalesce(s.input_tokens, 0) AS tin, coalesce(s.output_tokens, 0) AS tout \
                   FROM sessions s) \
    SELECT 'run', NULL, model, count(*), sum(usd), sum(tin), sum(tout), 0 \
      FROM spent WHERE run_id = ?1 GROUP BY model \
    UNION ALL \
    SELECT 'project', NULL, model, count(*), sum(usd), sum(tin), sum(tout), 1 \
      FROM spent WHERE run_id IN (SELECT id FROM runs WHERE project_id = \
                                  (SELECT project_id FROM runs WHERE id = ?1)) \
      GROUP BY model \
    UNION ALL \
    SELECT 'cycle', CAST(coalesce(cycle, 0) AS TEXT), model, count(*), sum(usd), sum(tin), \
           sum(tout), 2 \
      FROM spent WHERE run_id = ?1 GROUP BY coalesce(cycle, 0), model \
    UNION ALL \
    SELECT 'task', worked_task, model, count(*), sum(usd), sum(tin), sum(tout), 3 \
      FROM spent WHERE run_id = ?1 AND worked_task IS NOT NULL GROUP BY worked_task, model \
    ORDER BY 8, 2, 5 DESC, 3";

/// The run's ledger rows: the run, the project, each cycle, each task; by model within each,
/// the costliest first.
pub fn ledger(c: &Connection, run: &RunId) -> Result<Vec<CostRow>, StoreError> {
    let mut stmt = c.prepare_cached(LEDGER)?;
    let rows = stmt.query_map(params![run], |r| {
        Ok(CostRow {
            scope: enum_from_text::<CostScope>(0, r.get(0)?)?,
            key: r.get(1)?,
            model: r.get(2)?,
            sessions: r.get(3)?,
            cost_usd: r.get(4)?,
            input_tokens: r.get(5)?,
            output_tokens: r.get(6)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The cost of every task of `project`'s runs that was completed (done — its merge may still
/// be under way — or merged), with the model its worker sessions ran: the history forecasts
/// are made from.
pub fn task_history(
    c: &Connection,
    project: &str,
) -> Result<Vec<(Option<String>, f64)>, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT max(s.model), sum(coalesce(s.cost_usd, 0.0)) FROM sessions s \
         JOIN tasks t ON t.run_id = s.run_id AND t.id = s.worked_task \
         JOIN runs r ON r.id = s.run_id JOIN projects p ON p.id = r.project_id \
         WHERE p.path = ?1 AND t.status IN ('done', 'merged') AND s.role = 'worker' \
         GROUP BY s.run_id, s.worked_task",
    )?;
    let rows = stmt.query_map(params![project], |r| Ok((r.get(0)?, r.get(1)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// What every session of every run spent since `since` (the start of a usage window).
pub fn spent_since(c: &Connection, since: time::OffsetDateTime) -> Result<f64, StoreError> {
    Ok(c.row(
        "SELECT coalesce(sum(cost_usd), 0.0) FROM sessions \
         WHERE julianday(started_at) >= julianday(?1)",
        params![super::time_text::format(since)],
        |r| r.get(0),
    )?)
}

/// Every active run (queued or running) with its priority, threshold and what its sessions
/// spent since `since`: the claims on the account's window.
pub fn window_claims(
    c: &Connection,
    since: time::OffsetDateTime,
) -> Result<Vec<crate::usage::share::Claim>, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT r.id, p.path, coalesce(json_extract(r.options, '$.priority'), 1), \
           coalesce(json_extract(r.options, '$.usage_threshold'), 0.8), \
           (SELECT coalesce(sum(s.cost_usd), 0.0) FROM sessions s \
            WHERE s.run_id = r.id AND julianday(s.started_at) >= julianday(?1)) \
         FROM runs r JOIN projects p ON p.id = r.project_id \
         WHERE r.status IN ('queued', 'running') ORDER BY r.created_at",
    )?;
    let rows = stmt.query_map(params![super::time_text::format(since)], |r| {
        Ok(crate::usage::share::Claim {
            run: r.get(0)?,
            project: r.get(1)?,
            priority: r.get(2)?,
            threshold: r.get(3)?,
            spent: r.get(4)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
