//! The board tables: plans, tasks with dependencies, and messages. Plain SQL, one function
//! per statement; the rules of who may do what live in `crate::board`. Sessions are in
//! `sessions`, daemon settings in `settings`.

use orchestrator_proto::TaskStatus;

use crate::ids::{RunId, SessionId, TaskId};
use rusqlite::{Connection, OptionalExtension, Row, params};
use time::OffsetDateTime;

use super::time_text::{format, parse, parse_opt};
use super::{Cached, StoreError};

#[derive(Debug, Clone, PartialEq)]
pub struct TaskRow {
    pub id: TaskId,
    pub cycle: u32,
    pub title: String,
    pub description: String,
    pub acceptance: Vec<String>,
    pub files: Vec<String>,
    pub depends_on: Vec<TaskId>,
    pub status: TaskStatus,
    pub assignee: Option<SessionId>,
    pub attempts: u32,
    pub result: Option<String>,
    pub progress: Option<String>,
    pub failure: Option<String>,
    pub updated_at: OffsetDateTime,
    /// Where an interrupted worker left off (JSON, the executor's), to continue it.
    pub resume: Option<super::sessions::WorkerPlace>,
    /// What its sessions cost so far.
    pub cost_usd: f64,
    /// When its current worker last showed a sign of life.
    pub last_activity_at: Option<OffsetDateTime>,
    /// Shell commands that prove it (from the plan), run when its worker completes.
    pub verify: Vec<String>,
    /// The last run of `verify` (JSON, `engine::verify::Check`s), if any.
    pub checks: Option<String>,
    /// The model and effort the plan gave it (`None`: the run's).
    pub model: Option<String>,
    pub effort: Option<orchestrator_proto::Effort>,
    /// The CLI the plan gave it (`None`: the run's workers').
    pub agent: Option<orchestrator_proto::Agent>,
}

const TASK: &str = "SELECT t.id, t.cycle, t.title, t.description, t.acceptance, t.files, \
     t.status, t.assignee, t.attempts, t.result, t.progress, t.failure, t.updated_at, \
     (SELECT json_group_array(d.depends_on) FROM task_deps d WHERE d.run_id = t.run_id AND d.task_id = t.id), \
     t.resume, \
     (SELECT coalesce(sum(s.cost_usd), 0.0) FROM sessions s WHERE s.run_id = t.run_id AND s.worked_task = t.id), \
     (SELECT coalesce(s.last_activity_at, s.started_at) FROM sessions s WHERE s.id = t.assignee AND t.status = 'in_progress'), \
     t.verify, t.checks, t.model, t.effort, t.agent \
     FROM tasks t";

fn json_list<T: serde::de::DeserializeOwned>(s: String) -> rusqlite::Result<Vec<T>> {
    serde_json::from_str(&s).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

fn task_from(r: &Row<'_>) -> rusqlite::Result<TaskRow> {
    Ok(TaskRow {
        id: r.get(0)?,
        cycle: r.get(1)?,
        title: r.get(2)?,
        description: r.get(3)?,
        acceptance: json_list(r.get(4)?)?,
        files: json_list(r.get(5)?)?,
        status: r.get::<_, String>(6)?.parse().map_err(|e: String| {
            rusqlite::Error::FromSqlConversionFailure(6, rusqlite::types::Type::Text, e.into())
        })?,
        assignee: r.get(7)?,
        attempts: r.get(8)?,
        result: r.get(9)?,
        progress: r.get(10)?,
        failure: r.get(11)?,
        updated_at: parse(&r.get::<_, String>(12)?)?,
        depends_on: json_list(r.get(13)?)?,
        resume: r.get(14)?,
        cost_usd: r.get(15)?,
        last_activity_at: parse_opt(r.get(16)?)?,
        verify: json_list(r.get(17)?)?,
        checks: r.get(18)?,
        model: r.get(19)?,
        effort: r
            .get::<_, Option<String>>(20)?
            .map(|e| super::word::enum_from_text(20, e))
            .transpose()?,
        agent: r
            .get::<_, Option<String>>(21)?
            .map(|e| super::word::enum_from_text(21, e))
            .transpose()?,
    })
}

pub fn task(c: &Connection, run: &RunId, id: &TaskId) -> Result<Option<TaskRow>, StoreError> {
    let sql = format!("{TASK} WHERE t.run_id = ?1 AND t.id = ?2");
    Ok(c.prepare_cached(&sql)?
        .query_row(params![run, id], task_from)
        .optional()?)
}

pub fn tasks(c: &Connection, run: &RunId) -> Result<Vec<TaskRow>, StoreError> {
    let sql = format!("{TASK} WHERE t.run_id = ?1 ORDER BY t.rowid");
    let mut stmt = c.prepare_cached(&sql)?;
    let rows = stmt.query_map([run], task_from)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// A task's status alone (a check that needs no more than that: the whole row costs its
/// dependencies', cost's and activity's subqueries).
pub fn task_status(
    c: &Connection,
    run: &RunId,
    id: &TaskId,
) -> Result<Option<TaskStatus>, StoreError> {
    Ok(
        c.prepare_cached("SELECT status FROM tasks WHERE run_id = ?1 AND id = ?2")?
            .query_row(params![run, id], |r| {
                super::word::enum_from_text(0, r.get(0)?)
            })
            .optional()?,
    )
}

pub fn task_exists(c: &Connection, run: &RunId, id: &TaskId) -> Result<bool, StoreError> {
    Ok(
        c.prepare_cached("SELECT 1 FROM tasks WHERE run_id = ?1 AND id = ?2")?
            .exists(params![run, id])?,
    )
}

/// How many of a run's tasks are in each status.
pub fn status_counts(
    c: &Connection,
    run: &RunId,
) -> Result<std::collections::HashMap<TaskStatus, usize>, StoreError> {
    let mut st =
        c.prepare_cached("SELECT status, count(*) FROM tasks WHERE run_id = ?1 GROUP BY 1")?;
    let rows = st.query_map([run], |r| {
        Ok((
            super::word::enum_from_text(0, r.get(0)?)?,
            r.get::<_, i64>(1)?.max(0) as usize,
        ))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// Gives the first ready task (pending, every dependency merged into the run's branch — a
/// dependency that is done but not merged is not on the branch a worker starts from) to `session`.
pub fn claim_next(
    c: &Connection,
    run: &RunId,
    session: &SessionId,
    at: OffsetDateTime,
) -> Result<Option<TaskId>, StoreError> {
    Ok(c.prepare_cached(
        "UPDATE tasks SET status = 'in_progress', assignee = ?2, attempts = attempts + 1, \
           progress = NULL, updated_at = ?3 \
         WHERE run_id = ?1 AND id = ( \
           SELECT t.id FROM tasks t WHERE t.run_id = ?1 AND t.status = 'pending' \
             AND NOT EXISTS (SELECT 1 FROM task_deps d JOIN tasks u \
                   ON u.run_id = d.run_id AND u.id = d.depends_on \
                 WHERE d.run_id = t.run_id AND d.task_id = t.id AND u.status <> 'merged') \
           ORDER BY t.rowid LIMIT 1) \
         RETURNING id",
    )?
    .query_row(params![run, session, format(at)], |r| r.get(0))
    .optional()?)
}

/// How a task leaves `in_progress`.
pub struct Finish<'a> {
    /// `done`, `failed`, or `pending` (back on the board).
    pub status: TaskStatus,
    pub result: Option<&'a str>,
    pub failure: Option<&'a str>,
}

/// Gives `task` (pending) to `session`, as the engine does when it dispatches a worker.
pub fn assign_task(
    c: &Connection,
    run: &RunId,
    task: &TaskId,
    session: &SessionId,
    at: OffsetDateTime,
) -> Result<bool, StoreError> {
    let n = c.exec(
        "UPDATE tasks SET status = 'in_progress', assignee = ?3, attempts = attempts + 1, \
           progress = NULL, resume = NULL, updated_at = ?4 \
         WHERE run_id = ?1 AND id = ?2 AND status = 'pending'",
        params![run, task, session, format(at)],
    )?;
    Ok(n == 1)
}

/// Puts an interrupted task back to pending without spending an attempt, with where its
/// worker left off. Returns whether it was in progress.
pub fn interrupt_task(
    c: &Connection,
    run: &RunId,
    task: &TaskId,
    resume: Option<&super::sessions::WorkerPlace>,
    at: OffsetDateTime,
) -> Result<bool, StoreError> {
    let n = c.exec(
        "UPDATE tasks SET status = 'pending', assignee = NULL, attempts = max(attempts - 1, 0), \
           resume = ?3, updated_at = ?4 \
         WHERE run_id = ?1 AND id = ?2 AND status = 'in_progress'",
        params![run, task, resume, format(at)],
    )?;
    Ok(n == 1)
}

/// Sets a task's status as the engine decides (merged, back to pending, failed).
pub fn set_task_status(
    c: &Connection,
    run: &RunId,
    task: &TaskId,
    status: TaskStatus,
    failure: Option<&str>,
    at: OffsetDateTime,
) -> Result<(), StoreError> {
    c.exec(
        "UPDATE tasks SET status = ?3, failure = coalesce(?4, failure), \
           assignee = CASE WHEN ?3 = 'pending' THEN NULL ELSE assignee END, updated_at = ?5 \
         WHERE run_id = ?1 AND id = ?2",
        params![run, task, status.as_str(), failure, format(at)],
    )?;
    Ok(())
}

/// After a human's answer every unmerged task starts a fresh set of attempts (not only those
/// that failed: one whose last attempt was still running or waiting for its merge when the run
/// escalated would otherwise fail again at once); failed ones go back on the board.
pub fn fresh_attempts(
    c: &Connection,
    run: &RunId,
    at: OffsetDateTime,
) -> Result<usize, StoreError> {
    Ok(c.exec(
        "UPDATE tasks SET attempts = 0, updated_at = ?2, \
           status = CASE WHEN status = 'failed' THEN 'pending' ELSE status END, \
           assignee = CASE WHEN status = 'failed' THEN NULL ELSE assignee END \
         WHERE run_id = ?1 AND status != 'merged' AND (attempts > 0 OR status = 'failed')",
        params![run, format(at)],
    )?)
}

/// Moves a task held by `session` out of `in_progress`. Returns whether it was held.
pub fn finish_task(
    c: &Connection,
    run: &RunId,
    id: &TaskId,
    session: &SessionId,
    f: Finish<'_>,
    at: OffsetDateTime,
) -> Result<bool, StoreError> {
    let Finish {
        status,
        result,
        failure,
    } = f;
    let n = c.exec(
        "UPDATE tasks SET status = ?4, result = coalesce(?5, result), failure = ?6, \
           assignee = CASE WHEN ?4 = 'pending' THEN NULL ELSE assignee END, updated_at = ?7 \
         WHERE run_id = ?1 AND id = ?2 AND assignee = ?3 AND status = 'in_progress'",
        params![
            run,
            id,
            session,
            status.as_str(),
            result,
            failure,
            format(at)
        ],
    )?;
    Ok(n == 1)
}

/// Records the results of a task's verify commands (JSON).
pub fn set_checks(
    c: &Connection,
    run: &RunId,
    id: &TaskId,
    checks: &str,
) -> Result<(), StoreError> {
    c.exec(
        "UPDATE tasks SET checks = ?3 WHERE run_id = ?1 AND id = ?2",
        params![run, id, checks],
    )?;
    Ok(())
}

pub fn set_progress(
    c: &Connection,
    run: &RunId,
    id: &TaskId,
    session: &SessionId,
    note: &str,
    at: OffsetDateTime,
) -> Result<bool, StoreError> {
    let n = c
        .prepare_cached(
            "UPDATE tasks SET progress = ?4, updated_at = ?5 \
             WHERE run_id = ?1 AND id = ?2 AND assignee = ?3 AND status = 'in_progress'",
        )?
        .execute(params![run, id, session, note, format(at)])?;
    Ok(n == 1)
}

/// A validated task of a submitted plan.
pub struct NewTask<'a> {
    pub id: &'a str,
    pub title: &'a str,
    pub description: &'a str,
    pub acceptance: &'a [String],
    pub files: &'a [String],
    pub depends_on: &'a [String],
    pub verify: &'a [String],
    pub model: Option<&'a str>,
    pub effort: Option<orchestrator_proto::Effort>,
    pub agent: Option<orchestrator_proto::Agent>,
}

/// Stores a plan and its tasks; returns the plan's version (1, 2, … per run).
pub fn insert_plan(
    c: &Connection,
    run: &RunId,
    cycle: u32,
    summary: &str,
    session: &SessionId,
    tasks: &[NewTask<'_>],
    at: OffsetDateTime,
) -> Result<u32, StoreError> {
    let version: u32 = c.row(
        "SELECT coalesce(max(version), 0) + 1 FROM plans WHERE run_id = ?1",
        [run],
        |r| r.get(0),
    )?;
    let at = format(at);
    c.exec(
        "INSERT INTO plans (run_id, version, cycle, summary, session_id, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![run, version, cycle, summary, session, at],
    )?;
    let to_json = |v: &[String]| serde_json::to_string(v).unwrap_or_else(|_| "[]".into());
    for t in tasks {
        c.exec(
            "INSERT INTO tasks (run_id, id, cycle, title, description, acceptance, files, status, \
               plan_version, created_at, updated_at, verify, model, effort, agent) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'pending', ?8, ?9, ?9, ?10, ?11, ?12, ?13)",
            params![
                run,
                t.id,
                cycle,
                t.title,
                t.description,
                to_json(t.acceptance),
                to_json(t.files),
                version,
                at,
                to_json(t.verify),
                t.model,
                t.effort.map(super::word::enum_text),
                t.agent.map(super::word::enum_text)
            ],
        )?;
    }
    for t in tasks {
        for d in t.depends_on {
            c.exec(
                "INSERT INTO task_deps (run_id, task_id, depends_on) VALUES (?1, ?2, ?3)",
                params![run, t.id, d],
            )?;
        }
    }
    Ok(version)
}

/// Deletes the still-pending tasks of plan `version` (a plan being revised before any of it
/// ran); returns their ids. Their dependency rows go with them.
pub fn delete_plan_tasks(
    c: &Connection,
    run: &RunId,
    version: u32,
) -> Result<Vec<String>, StoreError> {
    let mut stmt = c.prepare_cached(
        "DELETE FROM tasks WHERE run_id = ?1 AND plan_version = ?2 AND status = 'pending'          RETURNING id",
    )?;
    let ids = stmt.query_map(params![run, version], |r| r.get(0))?;
    Ok(ids.collect::<rusqlite::Result<_>>()?)
}

/// The earlier plans `session` submitted in this run whose tasks none has started: a planner
/// that calls `submit_plan` again replaces its own plan before any of it runs. Deletes their
/// tasks and returns `(versions, task ids)`.
pub fn supersede_own_plans(
    c: &Connection,
    run: &RunId,
    session: &SessionId,
) -> Result<(Vec<u32>, Vec<String>), StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT p.version FROM plans p WHERE p.run_id = ?1 AND p.session_id = ?2 \
           AND NOT EXISTS (SELECT 1 FROM tasks t WHERE t.run_id = p.run_id \
             AND t.plan_version = p.version AND (t.status != 'pending' OR t.attempts > 0)) \
           AND EXISTS (SELECT 1 FROM tasks t WHERE t.run_id = p.run_id \
             AND t.plan_version = p.version) \
         ORDER BY p.version",
    )?;
    let versions: Vec<u32> = stmt
        .query_map(params![run, session], |r| r.get(0))?
        .collect::<rusqlite::Result<_>>()?;
    let mut dropped = Vec::new();
    for v in &versions {
        dropped.extend(delete_plan_tasks(c, run, *v)?);
    }
    Ok((versions, dropped))
}

/// The newest plan's summary, if any.
pub fn latest_plan(c: &Connection, run: &RunId) -> Result<Option<(u32, String)>, StoreError> {
    Ok(c.row(
        "SELECT version, summary FROM plans WHERE run_id = ?1 ORDER BY version DESC LIMIT 1",
        [run],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )
    .optional()?)
}

/// The cycle the plan `version` was submitted in.
pub fn plan_cycle(c: &Connection, run: &RunId, version: u32) -> Result<Option<u32>, StoreError> {
    Ok(c.row(
        "SELECT cycle FROM plans WHERE run_id = ?1 AND version = ?2",
        params![run, version],
        |r| r.get(0),
    )
    .optional()?)
}

#[derive(Debug, Clone, PartialEq)]
pub struct MessageRow {
    pub id: u64,
    pub from_session: Option<String>,
    pub from_task: Option<String>,
    pub to_kind: String,
    pub to_id: Option<String>,
    pub body: String,
    pub created_at: OffsetDateTime,
}

pub fn insert_message(
    c: &Connection,
    run: &RunId,
    from_session: Option<&str>,
    to_kind: &str,
    to_id: Option<&str>,
    body: &str,
    at: OffsetDateTime,
) -> Result<MessageRow, StoreError> {
    c.prepare_cached(
        "INSERT INTO messages (run_id, from_session, to_kind, to_id, body, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
    )?
    .execute(params![run, from_session, to_kind, to_id, body, format(at)])?;
    let id = c.last_insert_rowid() as u64;
    message(c, id)?.ok_or(StoreError::Sqlite(rusqlite::Error::QueryReturnedNoRows))
}

const MESSAGE: &str = "SELECT m.id, m.from_session, s.task_id, m.to_kind, m.to_id, m.body, m.created_at \
     FROM messages m LEFT JOIN sessions s ON s.id = m.from_session";

fn message_from(r: &Row<'_>) -> rusqlite::Result<MessageRow> {
    Ok(MessageRow {
        id: r.get(0)?,
        from_session: r.get(1)?,
        from_task: r.get(2)?,
        to_kind: r.get(3)?,
        to_id: r.get(4)?,
        body: r.get(5)?,
        created_at: parse(&r.get::<_, String>(6)?)?,
    })
}

fn message(c: &Connection, id: u64) -> Result<Option<MessageRow>, StoreError> {
    let sql = format!("{MESSAGE} WHERE m.id = ?1");
    Ok(c.row(&sql, [id], message_from).optional()?)
}

/// How many messages for `session` (to everyone, or to its task) it has not read.
pub fn count_unread(
    c: &Connection,
    run: &RunId,
    session: &SessionId,
    task: Option<&TaskId>,
) -> Result<u32, StoreError> {
    Ok(c.row(
        "SELECT count(*) FROM messages m WHERE m.run_id = ?1 \
           AND (m.from_session IS NULL OR m.from_session <> ?2) \
           AND (m.to_kind = 'all' OR (m.to_kind = 'task' AND m.to_id = ?3)) \
           AND NOT EXISTS (SELECT 1 FROM message_reads r \
                           WHERE r.message_id = m.id AND r.session_id = ?2)",
        params![run, session, task],
        |r| r.get(0),
    )?)
}

/// Messages for `session` (to everyone, or to its task) it has not read and did not send;
/// marks them read.
pub fn take_unread(
    c: &Connection,
    run: &RunId,
    session: &SessionId,
    task: Option<&TaskId>,
    at: OffsetDateTime,
) -> Result<Vec<MessageRow>, StoreError> {
    let sql = format!(
        "{MESSAGE} WHERE m.run_id = ?1 AND (m.from_session IS NULL OR m.from_session <> ?2) \
           AND (m.to_kind = 'all' OR (m.to_kind = 'task' AND m.to_id = ?3)) \
           AND NOT EXISTS (SELECT 1 FROM message_reads r WHERE r.message_id = m.id AND r.session_id = ?2) \
         ORDER BY m.id"
    );
    let rows: Vec<MessageRow> = c
        .prepare_cached(&sql)?
        .query_map(params![run, session, task], message_from)?
        .collect::<rusqlite::Result<_>>()?;
    let mut mark = c.prepare_cached(
        "INSERT OR IGNORE INTO message_reads (message_id, session_id, read_at) VALUES (?1, ?2, ?3)",
    )?;
    let at = format(at);
    for m in &rows {
        mark.execute(params![m.id, session, at])?;
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{open_temp, runs, time_text::now};

    #[tokio::test]
    async fn an_answer_gives_every_unmerged_task_fresh_attempts() {
        let (_d, db) = open_temp();
        db.call(|c| {
            runs::insert(c, &runs::new_run("r1", "/p"))?;
            let none: &[String] = &[];
            let tasks: Vec<NewTask<'_>> = ["failed", "waiting", "running", "merged"]
                .iter()
                .map(|id| NewTask {
                    id,
                    title: "t",
                    description: "d",
                    acceptance: none,
                    files: none,
                    depends_on: none,
                    verify: none,
                    model: None,
                    effort: None,
                    agent: None,
                })
                .collect();
            insert_plan(c, &"r1".into(), 1, "plan", &"s".into(), &tasks, now())?;
            c.exec("UPDATE tasks SET attempts = 3 WHERE run_id = 'r1'", [])?;
            for (id, status) in [
                ("failed", TaskStatus::Failed),
                ("running", TaskStatus::InProgress),
                ("merged", TaskStatus::Merged),
            ] {
                set_task_status(c, &"r1".into(), &id.into(), status, None, now())?;
            }
            assert_eq!(fresh_attempts(c, &"r1".into(), now())?, 3);
            let got: Vec<(String, String, u32)> = tasks_of(c)?;
            assert_eq!(
                got,
                [
                    ("failed".into(), "pending".into(), 0),
                    ("merged".into(), "merged".into(), 3),
                    ("running".into(), "in_progress".into(), 0),
                    ("waiting".into(), "pending".into(), 0),
                ]
            );
            Ok(())
        })
        .await
        .expect("db");
    }

    /// Every task as (id, status, attempts), the status as the database holds it.
    fn tasks_of(c: &Connection) -> Result<Vec<(String, String, u32)>, StoreError> {
        let mut t: Vec<_> = tasks(c, &"r1".into())?
            .into_iter()
            .map(|t| (t.id.into(), t.status.to_string(), t.attempts))
            .collect();
        t.sort();
        Ok(t)
    }
}

#[cfg(test)]
mod status_tests {
    use super::*;
    use crate::store::{open_temp, runs, time_text::now};

    /// What the store writes for each status reads back as it, and is the wire's name.
    #[tokio::test]
    async fn every_task_status_round_trips_through_sql_as_its_wire_name() {
        let (_d, db) = open_temp();
        db.call(|c| {
            runs::insert(c, &runs::new_run("r1", "/p"))?;
            let none: &[String] = &[];
            let t = [NewTask {
                id: "t",
                title: "t",
                description: "d",
                acceptance: none,
                files: none,
                depends_on: none,
                verify: none,
                model: None,
                effort: None,
                agent: None,
            }];
            insert_plan(c, &"r1".into(), 1, "plan", &"s".into(), &t, now())?;
            for &s in TaskStatus::ALL {
                set_task_status(c, &"r1".into(), &"t".into(), s, None, now())?;
                let raw: String =
                    c.row("SELECT status FROM tasks WHERE id = 't'", [], |r| r.get(0))?;
                assert_eq!(
                    raw,
                    serde_json::to_value(s)
                        .expect("json")
                        .as_str()
                        .expect("str")
                );
                assert_eq!(
                    task(c, &"r1".into(), &"t".into())?
                        .expect("the task")
                        .status,
                    s
                );
            }
            Ok(())
        })
        .await
        .expect("db");
    }
}
