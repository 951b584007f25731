//! The `sessions` table, one [`SessionRow`] a session: who it is (run, role, the task it
//! holds, the one it was started for), its token and expiry, what it cost, and the session as
//! a process — pid, start time and group, where its worker works, how far its output was
//! parsed and when it last showed a sign of life. The session follower writes the process
//! columns directly (bookkeeping, not run state: no event, no mirror), and a restarted daemon
//! reads them to re-attach to live sessions or finish dead ones.

use std::path::PathBuf;

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use rusqlite::{Connection, OptionalExtension, Row, params};
use time::OffsetDateTime;

use orchestrator_proto::SessionRole;

use crate::ids::{RunId, SessionId, TaskId};

use super::time_text::{format, parse, parse_opt};
use super::word::{enum_from_text, enum_text};
use super::{Cached, StoreError};

/// Where a worker works, or left off: its Claude session (for `--resume`), its worktree, its
/// task branch and the commit that branch started from. Stored as JSON in `sessions.place`
/// and `tasks.resume`; a value that does not read as one is an error, never dropped.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct WorkerPlace {
    /// The agent's own session id to continue: claude's `--session-id` (minted before it
    /// starts), Codex's thread id (known once its stream says it; empty before).
    pub session: String,
    pub worktree: PathBuf,
    pub branch: String,
    pub base: String,
    /// The CLI that works there (a session is continued by the CLI that started it).
    #[serde(default)]
    pub agent: orchestrator_proto::Agent,
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

/// One row of the `sessions` table.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRow {
    pub id: SessionId,
    pub run_id: RunId,
    pub role: SessionRole,
    /// The task it holds now.
    pub task_id: Option<TaskId>,
    /// The task it worked on last (kept once it let the task go).
    pub worked_task: Option<TaskId>,
    /// The task the engine started this session for; such a session may hold no other.
    pub dispatched: Option<TaskId>,
    /// Not ended yet (`status = 'active'`): its token works until it expires.
    pub active: bool,
    pub expires_at: Option<OffsetDateTime>,
    pub pid: Option<i32>,
    pub pid_start_time: Option<i64>,
    pub output_offset: u64,
    /// Where its worker works (workers only).
    pub place: Option<WorkerPlace>,
    pub started_at: OffsetDateTime,
    pub last_activity_at: Option<OffsetDateTime>,
}

const SESSION: &str = "SELECT id, run_id, role, task_id, worked_task, dispatched_task, status, \
     expires_at, pid, pid_start_time, output_offset, place, started_at, last_activity_at \
     FROM sessions";

fn session_from(r: &Row<'_>) -> rusqlite::Result<SessionRow> {
    Ok(SessionRow {
        id: r.get(0)?,
        run_id: r.get(1)?,
        role: enum_from_text(2, r.get(2)?)?,
        task_id: r.get(3)?,
        worked_task: r.get(4)?,
        dispatched: r.get(5)?,
        active: r.get::<_, String>(6)? == ACTIVE,
        expires_at: parse_opt(r.get(7)?)?,
        pid: r.get(8)?,
        pid_start_time: r.get(9)?,
        output_offset: r.get::<_, i64>(10)?.max(0) as u64,
        place: r.get(11)?,
        started_at: parse(&r.get::<_, String>(12)?)?,
        last_activity_at: parse_opt(r.get(13)?)?,
    })
}

/// A session's status until the daemon ends it (the other is `ended`).
pub const ACTIVE: &str = "active";

pub struct NewSession<'a> {
    pub id: &'a SessionId,
    pub run_id: &'a RunId,
    pub role: SessionRole,
    pub task_id: Option<&'a TaskId>,
    pub agent: &'a str,
    pub token_hash: &'a [u8],
    pub expires_at: OffsetDateTime,
    pub at: OffsetDateTime,
}

pub fn insert_session(c: &Connection, s: &NewSession<'_>) -> Result<(), StoreError> {
    c.exec(
        "INSERT INTO sessions (id, run_id, role, task_id, agent, token_hash, status, expires_at, \
           started_at, cycle, worked_task, dispatched_task) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, 'active', ?7, ?8, (SELECT cycle FROM runs WHERE id = ?2), ?4, ?4)",
        params![s.id, s.run_id, enum_text(s.role), s.task_id, s.agent, s.token_hash, format(s.expires_at), format(s.at)],
    )?;
    Ok(())
}

pub fn session_by_token(c: &Connection, hash: &[u8]) -> Result<Option<SessionRow>, StoreError> {
    let sql = format!("{SESSION} WHERE token_hash = ?1");
    Ok(c.prepare_cached(&sql)?
        .query_row([hash], session_from)
        .optional()?)
}

/// What a board call needs of its caller's session: the task it holds and the one it was
/// started for.
#[derive(Debug, Clone, PartialEq)]
pub struct Holding {
    pub task_id: Option<TaskId>,
    pub dispatched: Option<TaskId>,
}

/// What session `id` of run `run` holds, while it is active: two columns of one row, read on
/// every board call (the whole row parses three timestamps).
pub fn active_holding(
    c: &Connection,
    run: &RunId,
    id: &SessionId,
) -> Result<Option<Holding>, StoreError> {
    let sql = "SELECT task_id, dispatched_task FROM sessions \
               WHERE id = ?1 AND run_id = ?2 AND status = 'active'";
    Ok(c.prepare_cached(sql)?
        .query_row(params![id, run], |r| {
            Ok(Holding {
                task_id: r.get(0)?,
                dispatched: r.get(1)?,
            })
        })
        .optional()?)
}

pub fn session(c: &Connection, id: &SessionId) -> Result<Option<SessionRow>, StoreError> {
    let sql = format!("{SESSION} WHERE id = ?1");
    Ok(c.prepare_cached(&sql)?
        .query_row([id], session_from)
        .optional()?)
}

/// Ends a session and revokes its token. Returns whether it was still active.
pub fn end_session(c: &Connection, id: &SessionId, at: OffsetDateTime) -> Result<bool, StoreError> {
    let n = c.exec(
        "UPDATE sessions SET status = 'ended', ended_at = ?2, token_hash = NULL \
         WHERE id = ?1 AND status = 'active'",
        params![id, format(at)],
    )?;
    Ok(n == 1)
}

/// What a session cost and which model it ran (from its init and `result` lines).
#[derive(Debug, Clone, PartialEq)]
pub struct Spent {
    pub cost_usd: f64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub model: Option<String>,
}

/// The tokens the other sessions that worked in Codex thread `thread` recorded: a resumed
/// thread reports its whole history's usage, theirs included.
pub fn thread_tokens(
    c: &Connection,
    thread: &str,
    except: &SessionId,
) -> Result<(u64, u64), StoreError> {
    Ok(c.row(
        "SELECT coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0) FROM sessions \
         WHERE agent = 'codex' AND json_extract(place, '$.session') = ?1 AND id != ?2",
        params![thread, except],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?)
}

/// Records what a session cost and the model it ran.
pub fn set_session_usage(c: &Connection, id: &SessionId, s: &Spent) -> Result<(), StoreError> {
    c.exec(
        "UPDATE sessions SET cost_usd = ?2, input_tokens = ?3, output_tokens = ?4, \
           model = coalesce(?5, model) WHERE id = ?1",
        params![
            id,
            s.cost_usd,
            s.input_tokens as i64,
            s.output_tokens as i64,
            s.model
        ],
    )?;
    Ok(())
}

pub fn set_session_task(
    c: &Connection,
    id: &SessionId,
    task: Option<&TaskId>,
) -> Result<(), StoreError> {
    c.exec(
        "UPDATE sessions SET task_id = ?2, worked_task = coalesce(?2, worked_task) WHERE id = ?1",
        params![id, task],
    )?;
    Ok(())
}

pub fn heartbeat(c: &Connection, id: &SessionId, at: OffsetDateTime) -> Result<(), StoreError> {
    c.prepare_cached("UPDATE sessions SET heartbeat_at = ?2 WHERE id = ?1")?
        .execute(params![id, format(at)])?;
    Ok(())
}

/// Records the process a session runs as, and where its worker works.
pub fn set_process(
    c: &Connection,
    session: &SessionId,
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
pub fn place(c: &Connection, session: &SessionId) -> Result<Option<WorkerPlace>, StoreError> {
    Ok(
        c.prepare_cached("SELECT place FROM sessions WHERE id = ?1")?
            .query_row([session], |r| r.get::<_, Option<WorkerPlace>>(0))
            .optional()?
            .flatten(),
    )
}

/// Records where a worker works, before its process starts (so a daemon that dies in between
/// still knows where the work is).
pub fn set_place(
    c: &Connection,
    session: &SessionId,
    place: &WorkerPlace,
) -> Result<(), StoreError> {
    // The place says which CLI works there: the row's agent follows it.
    c.exec(
        "UPDATE sessions SET place = ?2, agent = ?3 WHERE id = ?1",
        params![session, place, enum_text(place.agent)],
    )?;
    Ok(())
}

/// Records the agent's own session id in the session's place once its output says it (a Codex
/// thread id is known only then), so an interrupted worker can be continued.
pub fn set_agent_session(
    c: &Connection,
    session: &SessionId,
    agent_session: &str,
) -> Result<(), StoreError> {
    c.exec(
        "UPDATE sessions SET place = json_set(place, '$.session', ?2) \
         WHERE id = ?1 AND place IS NOT NULL",
        params![session, agent_session],
    )?;
    Ok(())
}

/// Records how far the session's stdout was parsed and when it last showed a sign of life.
pub fn set_followed(
    c: &Connection,
    session: &SessionId,
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
pub fn open(c: &Connection, run: &RunId) -> Result<Vec<SessionRow>, StoreError> {
    let sql =
        format!("{SESSION} WHERE run_id = ?1 AND status = 'active' ORDER BY started_at, rowid");
    let mut st = c.prepare_cached(&sql)?;
    let rows = st.query_map([run], session_from)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The newest worker session that worked on `task` and knows where it worked.
pub fn last_worker(
    c: &Connection,
    run: &RunId,
    task: &TaskId,
) -> Result<Option<SessionRow>, StoreError> {
    let sql = format!(
        "{SESSION} WHERE run_id = ?1 AND worked_task = ?2 AND role = 'worker' AND place IS NOT NULL \
         ORDER BY started_at DESC, rowid DESC LIMIT 1"
    );
    Ok(c.prepare_cached(&sql)?
        .query_row(params![run, task], session_from)
        .optional()?)
}

/// Open sessions of runs that are no longer active (a previous daemon stopped before ending
/// them), with their run ids.
pub fn open_of_inactive(c: &Connection) -> Result<Vec<SessionRow>, StoreError> {
    let sql = format!(
        "{SESSION} WHERE status = 'active' AND run_id IN \
           (SELECT id FROM runs WHERE status NOT IN ('queued', 'running', 'paused', 'escalated'))"
    );
    let mut st = c.prepare_cached(&sql)?;
    let rows = st.query_map([], session_from)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Sessions whose process may outlive their use: ended, or of a run that is over, with a
/// recorded process (whether it still runs is for the caller to check), newest first.
pub fn finished_with_process(c: &Connection) -> Result<Vec<SessionRow>, StoreError> {
    let sql = format!(
        "{SESSION} WHERE pid IS NOT NULL AND (status != 'active' OR run_id IN \
           (SELECT id FROM runs WHERE status NOT IN ('queued', 'running', 'paused', 'escalated'))) \
         ORDER BY started_at DESC LIMIT 10000"
    );
    let mut st = c.prepare(&sql)?;
    let rows = st.query_map([], session_from)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
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
                    id: &"s1".into(),
                    run_id: &"r1".into(),
                    role: SessionRole::Worker,
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
                agent: orchestrator_proto::Agent::Codex,
            };
            set_place(c, &"s1".into(), &p)?;
            assert_eq!(place(c, &"s1".into())?, Some(p.clone()));
            set_agent_session(c, &"s1".into(), "019a-thread")?;
            let recorded = place(c, &"s1".into())?.map(|p| p.session);
            assert_eq!(recorded.as_deref(), Some("019a-thread"));
            c.exec(
                "UPDATE sessions SET place = '{\"worktree\": 3}' WHERE id = 's1'",
                [],
            )?;
            assert!(
                place(c, &"s1".into()).is_err(),
                "a bad place must not read as none"
            );
            Ok(())
        })
        .await
        .expect("db");
    }
}
