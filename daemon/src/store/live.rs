//! Sessions as processes: the pid, start time and group of each session, where its worker
//! works, how far its output was parsed and when it last showed a sign of life. The session
//! follower writes these directly (they are bookkeeping, not run state: no event, no mirror),
//! and a restarted daemon reads them to re-attach to live sessions or finish dead ones.

use std::path::PathBuf;

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use rusqlite::{Connection, OptionalExtension, Row, params};
use time::OffsetDateTime;

use super::time_text::{format, parse, parse_opt};
use super::{Cached, StoreError};

/// Where a worker works, or left off: its Claude session (for `--resume`), its worktree, its
/// task branch and the commit that branch started from. Stored as JSON in `sessions.place`
/// and `tasks.resume`; a value that does not read as one is an error, never dropped.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WorkerPlace {
    pub session: String,
    pub worktree: PathBuf,
    pub branch: String,
    pub base: String,
}

impl ToSql for WorkerPlace {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        let text = serde_json::to_string(self)
            .map_err(|e| rusqlite::Error::ToSqlConversionFailure(e.into()))?;
        Ok(ToSqlOutput::from(text))
    }
}

impl FromSql for WorkerPlace {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        serde_json::from_str(value.as_str()?).map_err(|e| FromSqlError::Other(e.into()))
    }
}

/// An open session as the supervisor sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct LiveRow {
    pub id: String,
    pub role: String,
    /// The task it worked on (`worked_task`).
    pub task: Option<String>,
    /// Not ended by the daemon yet.
    pub active: bool,
    pub pid: Option<i32>,
    pub pid_start_time: Option<i64>,
    pub output_offset: u64,
    /// Where its worker works (workers only).
    pub place: Option<WorkerPlace>,
    pub started_at: OffsetDateTime,
    pub last_activity_at: Option<OffsetDateTime>,
}

const LIVE: &str = "SELECT id, role, worked_task, status, pid, pid_start_time, output_offset, \
     place, started_at, last_activity_at FROM sessions";

fn live_from(r: &Row<'_>) -> rusqlite::Result<LiveRow> {
    Ok(LiveRow {
        id: r.get(0)?,
        role: r.get(1)?,
        task: r.get(2)?,
        active: r.get::<_, String>(3)? == super::board::ACTIVE,
        pid: r.get(4)?,
        pid_start_time: r.get(5)?,
        output_offset: r.get::<_, i64>(6)?.max(0) as u64,
        place: r.get(7)?,
        started_at: parse(&r.get::<_, String>(8)?)?,
        last_activity_at: parse_opt(r.get(9)?)?,
    })
}

/// Records the process a session runs as, and where its worker works.
pub fn set_process(
    c: &Connection,
    session: &str,
    pid: i32,
    start: i64,
    place: Option<&WorkerPlace>,
) -> Result<(), StoreError> {
    c.exec(
        "UPDATE sessions SET pid = ?2, pid_start_time = ?3, pgid = ?2, \
           place = coalesce(?4, place) WHERE id = ?1",
        params![session, pid, start, place],
    )?;
    Ok(())
}

/// Where a worker session works, if recorded.
pub fn place(c: &Connection, session: &str) -> Result<Option<WorkerPlace>, StoreError> {
    Ok(
        c.prepare_cached("SELECT place FROM sessions WHERE id = ?1")?
            .query_row([session], |r| r.get::<_, Option<WorkerPlace>>(0))
            .optional()?
            .flatten(),
    )
}

/// Records where a worker works, before its process starts (so a daemon that dies in between
/// still knows where the work is).
pub fn set_place(c: &Connection, session: &str, place: &WorkerPlace) -> Result<(), StoreError> {
    c.exec(
        "UPDATE sessions SET place = ?2 WHERE id = ?1",
        params![session, place],
    )?;
    Ok(())
}

/// Records how far the session's stdout was parsed and when it last showed a sign of life.
pub fn set_followed(
    c: &Connection,
    session: &str,
    offset: u64,
    activity: OffsetDateTime,
) -> Result<(), StoreError> {
    c.exec(
        "UPDATE sessions SET output_offset = ?2, last_activity_at = ?3 WHERE id = ?1",
        params![session, offset as i64, format(activity)],
    )?;
    Ok(())
}

/// The run's sessions the daemon has not ended, oldest first.
pub fn open(c: &Connection, run: &str) -> Result<Vec<LiveRow>, StoreError> {
    let sql = format!("{LIVE} WHERE run_id = ?1 AND status = 'active' ORDER BY started_at, rowid");
    let mut st = c.prepare_cached(&sql)?;
    let rows = st.query_map([run], live_from)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The newest worker session that worked on `task` and knows where it worked.
pub fn last_worker(c: &Connection, run: &str, task: &str) -> Result<Option<LiveRow>, StoreError> {
    let sql = format!(
        "{LIVE} WHERE run_id = ?1 AND worked_task = ?2 AND role = 'worker' AND place IS NOT NULL \
         ORDER BY started_at DESC, rowid DESC LIMIT 1"
    );
    Ok(c.prepare_cached(&sql)?
        .query_row(params![run, task], live_from)
        .optional()?)
}

/// Open sessions of runs that are no longer active (a previous daemon stopped before ending
/// them), with their run ids.
pub fn open_of_inactive(c: &Connection) -> Result<Vec<LiveRow>, StoreError> {
    let sql = format!(
        "{LIVE} WHERE status = 'active' AND run_id IN \
           (SELECT id FROM runs WHERE status NOT IN ('queued', 'running', 'paused', 'escalated'))"
    );
    let mut st = c.prepare_cached(&sql)?;
    let rows = st.query_map([], live_from)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Sessions whose process may outlive their use: ended, or of a run that is over, with a
/// recorded process (whether it still runs is for the caller to check), newest first.
pub fn finished_with_process(c: &Connection) -> Result<Vec<(String, LiveRow)>, StoreError> {
    let sql = "SELECT id, role, worked_task, status, pid, pid_start_time, output_offset, place, \
           started_at, last_activity_at, run_id FROM sessions \
         WHERE pid IS NOT NULL AND (status != 'active' OR run_id IN \
           (SELECT id FROM runs WHERE status NOT IN ('queued', 'running', 'paused', 'escalated'))) \
         ORDER BY started_at DESC LIMIT 10000";
    let mut st = c.prepare(sql)?;
    let rows = st.query_map([], |r| Ok((r.get::<_, String>(10)?, live_from(r)?)))?;
    Ok(rows.collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::board::{NewSession, insert_session};
    use crate::store::{open_temp, runs, time_text::now};

    /// A worker's place reads back as written; a value that is not one is an error, not a
    /// silent "nowhere".
    #[tokio::test]
    async fn a_place_round_trips_and_a_bad_one_is_an_error() {
        let (_d, db) = open_temp();
        db.call(|c| {
            runs::insert(c, &runs::new_run("r1", "/p"))?;
            insert_session(
                c,
                &NewSession {
                    id: "s1",
                    run_id: "r1",
                    role: "worker",
                    task_id: None,
                    agent: "claude",
                    token_hash: b"h",
                    expires_at: now(),
                    at: now(),
                },
            )?;
            let p = WorkerPlace {
                session: "uuid".into(),
                worktree: "/w/t.1".into(),
                branch: "orchestrate/x--t.1".into(),
                base: "abc".into(),
            };
            set_place(c, "s1", &p)?;
            assert_eq!(place(c, "s1")?, Some(p));
            c.exec(
                "UPDATE sessions SET place = '{\"worktree\": 3}' WHERE id = 's1'",
                [],
            )?;
            assert!(place(c, "s1").is_err(), "a bad place must not read as none");
            Ok(())
        })
        .await
        .expect("db");
    }
}
