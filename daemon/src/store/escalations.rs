//! The `escalations` table: questions a run put to a human, and their answers.

use super::word::{enum_from_text, enum_text};
use orchestrator_proto::EscalationKind;
use rusqlite::{Connection, OptionalExtension, Row, params};
use time::OffsetDateTime;

use super::StoreError;
use super::time_text::{format, parse, parse_opt};

#[derive(Debug, Clone, PartialEq)]
pub struct EscalationRow {
    pub id: u64,
    pub run_id: crate::ids::RunId,
    pub project: String,
    pub task_id: Option<crate::ids::TaskId>,
    pub kind: EscalationKind,
    pub question: String,
    pub context: Option<String>,
    pub blocking: bool,
    pub created_at: OffsetDateTime,
    pub answer: Option<String>,
    pub answered_at: Option<OffsetDateTime>,
}

const SELECT: &str = "SELECT e.id, e.run_id, p.path, e.task_id, e.kind, e.question, e.context, \
     e.blocking, e.created_at, e.answer, e.answered_at FROM escalations e \
     JOIN runs r ON r.id = e.run_id JOIN projects p ON p.id = r.project_id";

fn from_row(r: &Row<'_>) -> rusqlite::Result<EscalationRow> {
    Ok(EscalationRow {
        id: r.get(0)?,
        run_id: r.get(1)?,
        project: r.get(2)?,
        task_id: r.get(3)?,
        kind: enum_from_text(4, r.get(4)?)?,
        question: r.get(5)?,
        context: r.get(6)?,
        blocking: r.get(7)?,
        created_at: parse(&r.get::<_, String>(8)?)?,
        answer: r.get(9)?,
        answered_at: parse_opt(r.get(10)?)?,
    })
}

/// Escalations of every project (or one), oldest first; only pending ones unless `all`.
pub fn list(
    conn: &Connection,
    project: Option<&str>,
    all: bool,
) -> Result<Vec<EscalationRow>, StoreError> {
    let sql = format!(
        "{SELECT} WHERE (?1 IS NULL OR p.path = ?1) AND (?2 OR e.answer IS NULL) ORDER BY e.id"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![project, all], from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn get(conn: &Connection, id: u64) -> Result<Option<EscalationRow>, StoreError> {
    let sql = format!("{SELECT} WHERE e.id = ?1");
    Ok(conn.query_row(&sql, [id], from_row).optional()?)
}

/// Records the answer; `false` when it was already answered.
pub fn answer(
    conn: &Connection,
    id: u64,
    answer: &str,
    at: OffsetDateTime,
) -> Result<bool, StoreError> {
    let n = conn.execute(
        "UPDATE escalations SET answer = ?2, answered_at = ?3 WHERE id = ?1 AND answer IS NULL",
        params![id, answer, format(at)],
    )?;
    Ok(n == 1)
}

/// What `insert` needs.
#[derive(Debug, Clone)]
pub struct NewEscalation {
    pub run_id: crate::ids::RunId,
    pub task_id: Option<crate::ids::TaskId>,
    pub kind: EscalationKind,
    pub question: String,
    pub context: Option<String>,
    pub blocking: bool,
    pub at: OffsetDateTime,
}

pub fn insert(conn: &Connection, new: &NewEscalation) -> Result<EscalationRow, StoreError> {
    conn.execute(
        "INSERT INTO escalations (run_id, task_id, kind, question, context, blocking, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            new.run_id,
            new.task_id,
            enum_text(new.kind),
            new.question,
            new.context,
            new.blocking,
            format(new.at)
        ],
    )?;
    get(conn, conn.last_insert_rowid() as u64)?
        .ok_or(StoreError::Sqlite(rusqlite::Error::QueryReturnedNoRows))
}
