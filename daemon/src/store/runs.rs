//! The `runs` and `projects` tables.

use crate::ids::RunId;
use orchestrator_proto::{Phase, RunOptions, RunStatus};
use rusqlite::{Connection, OptionalExtension, Row, params};
use time::OffsetDateTime;

use super::time_text::{format, parse, parse_opt};
use super::word::{conversion, enum_from_text, enum_text};
use super::{Cached, StoreError};

/// A run as stored. Converted to `proto::Run` at the API edge.
#[derive(Debug, Clone, PartialEq)]
pub struct RunRow {
    pub id: crate::ids::RunId,
    /// Canonical path of the project's work tree.
    pub project: String,
    pub feature: String,
    pub branch: String,
    pub base_commit: String,
    pub status: RunStatus,
    pub phase: Phase,
    pub cycle: u32,
    pub options: RunOptions,
    pub context_file: Option<String>,
    /// The context file's content as read at submit.
    pub context: Option<String>,
    pub status_reason: Option<String>,
    pub created_at: OffsetDateTime,
    pub updated_at: OffsetDateTime,
    pub finished_at: Option<OffsetDateTime>,
    /// Counted from the tasks and sessions tables when the row is read.
    pub progress: orchestrator_proto::Progress,
    /// Why a paused run waits on something other than the user: `usage` or `budget`.
    pub hold_kind: Option<orchestrator_proto::HoldKind>,
    /// When a usage hold ends (the window's reset plus a margin).
    pub hold_until: Option<OffsetDateTime>,
    /// Why the code was not reviewed though reviews were wanted (a completed run).
    pub unreviewed: Option<String>,
}

/// What `insert` needs; the rest starts at its initial value.
#[derive(Debug, Clone)]
pub struct NewRun {
    pub id: RunId,
    pub project: String,
    pub feature: String,
    pub branch: String,
    pub base_commit: String,
    pub options: RunOptions,
    pub context_file: Option<String>,
    pub context: Option<String>,
    pub at: OffsetDateTime,
}

/// A run's row without the figures counted from its tasks and sessions, which [`COLUMNS`]
/// adds and [`BARE`] gives as zeros.
macro_rules! own_columns {
    () => {
        "r.id, p.path, r.feature, r.branch, r.base_commit, r.status, r.phase, r.cycle, \
         r.options, r.context_file, r.context, r.status_reason, r.created_at, r.updated_at, \
         r.finished_at, "
    };
}

/// [`own_columns`] with zeros for the progress: what a board call needs, read on every call.
const BARE: &str = concat!(
    own_columns!(),
    "0, 0, 0, 0, 0, 0.0, 0, 0, r.hold_kind, r.hold_until, '[]', 0.0, r.unreviewed, '[]'"
);

const COLUMNS: &str = concat!(
    own_columns!(),
    "(SELECT count(*) FROM tasks t WHERE t.run_id = r.id), \
     (SELECT count(*) FROM tasks t WHERE t.run_id = r.id AND t.status = 'merged'), \
     (SELECT count(*) FROM tasks t WHERE t.run_id = r.id AND t.status = 'in_progress'), \
     (SELECT count(*) FROM tasks t WHERE t.run_id = r.id AND t.status = 'failed'), \
     (SELECT count(*) FROM sessions s WHERE s.run_id = r.id), \
     (SELECT coalesce(sum(s.cost_usd), 0.0) FROM sessions s WHERE s.run_id = r.id), \
     (SELECT coalesce(sum(s.input_tokens), 0) FROM sessions s WHERE s.run_id = r.id), \
     (SELECT coalesce(sum(s.output_tokens), 0) FROM sessions s WHERE s.run_id = r.id), \
     r.hold_kind, r.hold_until, \
     (SELECT json_group_array(json_object('cycle', c, 'cost_usd', cost, 'sessions', n)) FROM \
        (SELECT coalesce(s.cycle, 0) AS c, sum(coalesce(s.cost_usd, 0.0)) AS cost, count(*) AS n \
         FROM sessions s WHERE s.run_id = r.id GROUP BY 1 ORDER BY 1)), \
     (SELECT coalesce(sum(s.cost_usd), 0.0) FROM sessions s JOIN runs r2 ON r2.id = s.run_id \
        WHERE r2.project_id = r.project_id), \
     r.unreviewed, \
     (SELECT json_group_array(json_object('model', m, 'cost_usd', cost, 'input_tokens', i, \
          'output_tokens', o, 'sessions', n)) FROM \
        (SELECT s.model AS m, sum(coalesce(s.cost_usd, 0.0)) AS cost, \
           sum(coalesce(s.input_tokens, 0)) AS i, sum(coalesce(s.output_tokens, 0)) AS o, \
           count(*) AS n \
         FROM sessions s WHERE s.run_id = r.id GROUP BY 1 ORDER BY 2 DESC, 1))"
);

fn from_row(r: &Row<'_>) -> rusqlite::Result<RunRow> {
    let options: String = r.get(8)?;
    Ok(RunRow {
        id: r.get(0)?,
        project: r.get(1)?,
        feature: r.get(2)?,
        branch: r.get(3)?,
        base_commit: r.get(4)?,
        status: enum_from_text(5, r.get(5)?)?,
        phase: enum_from_text(6, r.get(6)?)?,
        cycle: r.get(7)?,
        options: serde_json::from_str(&options).map_err(|e| conversion(8, e))?,
        context_file: r.get(9)?,
        context: r.get(10)?,
        status_reason: r.get(11)?,
        created_at: parse(&r.get::<_, String>(12)?)?,
        updated_at: parse(&r.get::<_, String>(13)?)?,
        finished_at: parse_opt(r.get(14)?)?,
        progress: orchestrator_proto::Progress {
            tasks: r.get(15)?,
            merged: r.get(16)?,
            in_progress: r.get(17)?,
            failed: r.get(18)?,
            sessions: r.get(19)?,
            cost_usd: r.get(20)?,
            input_tokens: r.get(21)?,
            output_tokens: r.get(22)?,
            cycles: serde_json::from_str(&r.get::<_, String>(25)?)
                .map_err(|e| conversion(25, e))?,
            project_cost_usd: r.get(26)?,
            models: serde_json::from_str(&r.get::<_, String>(28)?)
                .map_err(|e| conversion(28, e))?,
        },
        hold_kind: r
            .get::<_, Option<String>>(23)?
            .map(|s| enum_from_text(23, s))
            .transpose()?,
        hold_until: parse_opt(r.get(24)?)?,
        unreviewed: r.get(27)?,
    })
}

fn project_id(conn: &Connection, path: &str, at: OffsetDateTime) -> rusqlite::Result<i64> {
    conn.exec(
        "INSERT INTO projects (path, created_at) VALUES (?1, ?2) ON CONFLICT(path) DO NOTHING",
        params![path, format(at)],
    )?;
    conn.row("SELECT id FROM projects WHERE path = ?1", [path], |r| {
        r.get(0)
    })
}

pub fn insert(conn: &Connection, new: &NewRun) -> Result<RunRow, StoreError> {
    let project = project_id(conn, &new.project, new.at)?;
    let options = serde_json::to_string(&new.options).map_err(|e| conversion(8, e))?;
    conn.exec(
        "INSERT INTO runs (id, project_id, feature, branch, base_commit, status, phase, cycle, \
         options, context_file, context, created_at, updated_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 0, ?8, ?9, ?10, ?11, ?11)",
        params![
            new.id,
            project,
            new.feature,
            new.branch,
            new.base_commit,
            enum_text(RunStatus::Queued),
            enum_text(Phase::Pending),
            options,
            new.context_file,
            new.context,
            format(new.at),
        ],
    )?;
    get(conn, &new.id)?.ok_or(StoreError::Sqlite(rusqlite::Error::QueryReturnedNoRows))
}

pub fn get(conn: &Connection, id: &RunId) -> Result<Option<RunRow>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM runs r JOIN projects p ON p.id = r.project_id WHERE r.id = ?1"
    );
    Ok(conn.row(&sql, [id], from_row).optional()?)
}

/// [`get`] without the progress (zeros): none of the counts over its tasks and sessions.
pub fn get_bare(conn: &Connection, id: &RunId) -> Result<Option<RunRow>, StoreError> {
    let sql =
        format!("SELECT {BARE} FROM runs r JOIN projects p ON p.id = r.project_id WHERE r.id = ?1");
    Ok(conn.row(&sql, [id], from_row).optional()?)
}

/// Runs, newest first, optionally of one project and/or with one status.
pub fn list(
    conn: &Connection,
    project: Option<&str>,
    status: Option<RunStatus>,
) -> Result<Vec<RunRow>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM runs r JOIN projects p ON p.id = r.project_id \
         WHERE (?1 IS NULL OR p.path = ?1) AND (?2 IS NULL OR r.status = ?2) \
         ORDER BY r.created_at DESC, r.id DESC"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![project, status.map(enum_text)], from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Every run that is not finished, oldest first: what the daemon restores at start.
pub fn active(conn: &Connection) -> Result<Vec<RunRow>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM runs r JOIN projects p ON p.id = r.project_id \
         WHERE r.status IN ('queued','running','paused','escalated') ORDER BY r.created_at"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map([], from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The project's active run, else its most recent one.
pub fn current(conn: &Connection, project: &str) -> Result<Option<RunRow>, StoreError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM runs r JOIN projects p ON p.id = r.project_id WHERE p.path = ?1 \
         ORDER BY r.status IN ('queued','running','paused','escalated') DESC, r.created_at DESC, r.id DESC \
         LIMIT 1"
    );
    Ok(conn.row(&sql, [project], from_row).optional()?)
}

/// What a run's sessions cost so far (USD) and how many budget escalations were answered
/// (each answer grants the budget once more).
pub fn budget_spent(conn: &Connection, run: &RunId) -> Result<(f64, u32), StoreError> {
    let spent = conn.row(
        "SELECT coalesce(sum(cost_usd), 0.0) FROM sessions WHERE run_id = ?1",
        [run],
        |r| r.get(0),
    )?;
    let granted = conn.row(
        "SELECT count(*) FROM escalations WHERE run_id = ?1 \
         AND kind = 'budget_exhausted' AND answer IS NOT NULL",
        [run],
        |r| r.get(0),
    )?;
    Ok((spent, granted))
}

/// Records why a run's code was not reviewed (`None`: it was).
pub fn set_unreviewed(conn: &Connection, id: &RunId, why: Option<&str>) -> Result<(), StoreError> {
    conn.exec(
        "UPDATE runs SET unreviewed = ?2 WHERE id = ?1",
        params![id, why],
    )?;
    Ok(())
}

/// Replaces a run's options (`resume`/`answer` changed its commands).
pub fn set_options(conn: &Connection, id: &RunId, options: &RunOptions) -> Result<(), StoreError> {
    let text = serde_json::to_string(options).map_err(|e| conversion(8, e))?;
    conn.exec(
        "UPDATE runs SET options = ?2 WHERE id = ?1",
        params![id, text],
    )?;
    Ok(())
}

/// Writes the mutable part of a run back.
pub fn update(conn: &Connection, run: &RunRow) -> Result<(), StoreError> {
    let n = conn.exec(
        "UPDATE runs SET status = ?2, phase = ?3, cycle = ?4, status_reason = ?5, updated_at = ?6, \
         finished_at = ?7, hold_kind = ?8, hold_until = ?9 WHERE id = ?1",
        params![
            run.id,
            enum_text(run.status),
            enum_text(run.phase),
            run.cycle,
            run.status_reason,
            format(run.updated_at),
            run.finished_at.map(format),
            run.hold_kind.map(enum_text),
            run.hold_until.map(format),
        ],
    )?;
    if n == 1 {
        Ok(())
    } else {
        Err(StoreError::Sqlite(rusqlite::Error::QueryReturnedNoRows))
    }
}

/// Whether a branch name is already used by a run of this project.
pub fn branch_taken(conn: &Connection, project: &str, branch: &str) -> Result<bool, StoreError> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM runs r JOIN projects p ON p.id = r.project_id \
             WHERE p.path = ?1 AND r.branch = ?2",
            params![project, branch],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

/// Counts active runs (for `/v1/health`).
pub fn count_active(conn: &Connection) -> Result<u32, StoreError> {
    Ok(conn.row(
        "SELECT count(*) FROM runs WHERE status IN ('queued','running','paused','escalated')",
        [],
        |r| r.get(0),
    )?)
}

/// Keeps the environment the run's agent sessions inherit. Never exposed by the API or mirror.
pub fn set_env(
    conn: &Connection,
    run: &RunId,
    env: &orchestrator_proto::SessionEnv,
) -> Result<(), StoreError> {
    let json = serde_json::to_string(env).map_err(|e| conversion(1, e))?;
    conn.exec(
        "INSERT INTO run_env (run_id, env) VALUES (?1, ?2) \
         ON CONFLICT (run_id) DO UPDATE SET env = excluded.env",
        params![run, json],
    )?;
    Ok(())
}

/// The run's session environment (empty when none was sent).
pub fn env(conn: &Connection, run: &RunId) -> Result<orchestrator_proto::SessionEnv, StoreError> {
    let json: Option<String> = conn
        .query_row("SELECT env FROM run_env WHERE run_id = ?1", [run], |r| {
            r.get(0)
        })
        .optional()?;
    match json {
        Some(j) => Ok(serde_json::from_str(&j).map_err(|e| conversion(1, e))?),
        None => Ok(orchestrator_proto::SessionEnv::default()),
    }
}

/// The session environment of the newest active run, if any (the usage poller looks for the
/// user's OAuth token there when the daemon's own environment has none).
pub fn newest_active_env(
    conn: &Connection,
) -> Result<Option<orchestrator_proto::SessionEnv>, StoreError> {
    let id: Option<RunId> = conn
        .query_row(
            "SELECT id FROM runs WHERE status IN ('queued','running','paused','escalated','planned') \
             ORDER BY created_at DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .optional()?;
    id.map(|id| env(conn, &id)).transpose()
}

/// Test-only: a run `id` in `project` with defaults everywhere else.
#[cfg(test)]
pub(crate) fn new_run(id: &str, project: &str) -> NewRun {
    NewRun {
        id: id.into(),
        project: project.into(),
        feature: "f".into(),
        branch: format!("orchestrate/{id}"),
        base_commit: "abc".into(),
        options: RunOptions::default(),
        context_file: None,
        context: None,
        at: crate::store::time_text::now(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::open_temp;

    #[tokio::test]
    async fn the_database_refuses_a_second_active_run_per_project() {
        let (_d, db) = open_temp();
        db.call(|c| {
            let mut first = insert(c, &new_run("r1", "/p"))?;
            assert!(insert(c, &new_run("r2", "/p")).is_err());
            insert(c, &new_run("r3", "/q"))?;
            first.status = RunStatus::Cancelled;
            update(c, &first)?;
            let again = insert(c, &new_run("r2", "/p"))?;
            assert_eq!(current(c, "/p")?.map(|r| r.id), Some(again.id));
            assert_eq!(list(c, Some("/p"), None)?.len(), 2);
            assert_eq!(list(c, None, Some(RunStatus::Queued))?.len(), 2);
            assert_eq!(count_active(c)?, 2);
            assert!(branch_taken(c, "/p", "orchestrate/r1")?);
            assert!(!branch_taken(c, "/q", "orchestrate/r1")?);
            Ok(())
        })
        .await
        .expect("db");
    }

    #[tokio::test]
    async fn a_row_round_trips() {
        let (_d, db) = open_temp();
        let (inserted, read) = db
            .call(|c| {
                let mut n = new_run("r1", "/p");
                n.options.concurrency = 7;
                n.context = Some("ctx".into());
                let a = insert(c, &n)?;
                let b = get(c, &"r1".into())?;
                Ok((a, b))
            })
            .await
            .expect("db");
        assert_eq!(Some(inserted.clone()), read);
        assert_eq!(inserted.options.concurrency, 7);
        assert_eq!(inserted.status, RunStatus::Queued);
    }
}
