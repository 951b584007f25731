//! A run's sessions as spans of time — who ran, on what task, with which model, from when to
//! when, at what cost — for the dashboard's timeline.

use rusqlite::Connection;
use time::OffsetDateTime;

use super::StoreError;
use super::time_text::{parse, parse_opt};
use crate::ids::RunId;
use orchestrator_proto::SessionRole;

#[derive(Debug, Clone)]
pub struct SpanRow {
    pub session: String,
    pub role: SessionRole,
    pub task: Option<String>,
    pub agent: String,
    pub model: Option<String>,
    pub cycle: Option<u32>,
    pub cost_usd: f64,
    pub started_at: OffsetDateTime,
    pub ended_at: Option<OffsetDateTime>,
}

/// Every session of the run, oldest first.
pub fn of_run(c: &Connection, run: &RunId) -> Result<Vec<SpanRow>, StoreError> {
    let mut st = c.prepare_cached(
        "SELECT id, role, coalesce(worked_task, dispatched_task, task_id), agent, model, cycle, \
           coalesce(cost_usd, 0), started_at, ended_at \
         FROM sessions WHERE run_id = ?1 ORDER BY started_at, rowid",
    )?;
    let rows = st.query_map([run], |r| {
        Ok(SpanRow {
            session: r.get(0)?,
            role: super::word::enum_from_text(1, r.get(1)?)?,
            task: r.get(2)?,
            agent: r.get(3)?,
            model: r.get(4)?,
            cycle: r.get(5)?,
            cost_usd: r.get(6)?,
            started_at: parse(&r.get::<_, String>(7)?)?,
            ended_at: parse_opt(r.get(8)?)?,
        })
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}
