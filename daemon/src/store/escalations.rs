//! The `escalations` table: questions a run put to a human, and their answers. An escalation
//! is *live* until it is answered or closed: closed when its run is cancelled, resumed without
//! an answer or ends, or when the run asks again (superseded by the newer one).

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
    /// Closed without an answer, and why.
    pub closed_at: Option<OffsetDateTime>,
    pub closed_why: Option<String>,
    /// The escalation that replaced it, when the run asked again.
    pub superseded_by: Option<u64>,
}

const SELECT: &str = "SELECT e.id, e.run_id, p.path, e.task_id, e.kind, e.question, e.context, \
     e.blocking, e.created_at, e.answer, e.answered_at, e.closed_at, e.closed_why, \
     e.superseded_by FROM escalations e \
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
        closed_at: parse_opt(r.get(11)?)?,
        closed_why: r.get(12)?,
        superseded_by: r.get(13)?,
    })
}

/// Escalations of every project (or one), oldest first; only live ones (neither answered nor
/// closed) unless `history`.
pub fn list(
    conn: &Connection,
    project: Option<&str>,
    history: bool,
) -> Result<Vec<EscalationRow>, StoreError> {
    let sql = format!(
        "{SELECT} WHERE (?1 IS NULL OR p.path = ?1) \
         AND (?2 OR (e.answer IS NULL AND e.closed_at IS NULL)) ORDER BY e.id"
    );
    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(params![project, history], from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

pub fn get(conn: &Connection, id: u64) -> Result<Option<EscalationRow>, StoreError> {
    let sql = format!("{SELECT} WHERE e.id = ?1");
    Ok(conn.query_row(&sql, [id], from_row).optional()?)
}

/// Closes the run's live escalations (all but `except`, the one that supersedes them) with
/// `why`; returns how many it closed.
pub fn close_live(
    conn: &Connection,
    run: &crate::ids::RunId,
    why: &str,
    except: Option<u64>,
    at: OffsetDateTime,
) -> Result<usize, StoreError> {
    Ok(conn.execute(
        "UPDATE escalations SET closed_at = ?3, closed_why = ?2, superseded_by = ?4 \
         WHERE run_id = ?1 AND answer IS NULL AND closed_at IS NULL \
           AND (?4 IS NULL OR id != ?4)",
        params![run, why, format(at), except],
    )?)
}

/// Records the answer; `false` when it was already answered.
pub fn answer(
    conn: &Connection,
    id: u64,
    answer: &str,
    at: OffsetDateTime,
) -> Result<bool, StoreError> {
    let n = conn.execute(
        "UPDATE escalations SET answer = ?2, answered_at = ?3 \
         WHERE id = ?1 AND answer IS NULL AND closed_at IS NULL",
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{open_temp, runs, time_text::now};

    fn ask(c: &Connection, question: &str) -> Result<EscalationRow, StoreError> {
        insert(
            c,
            &NewEscalation {
                run_id: "r1".into(),
                task_id: None,
                kind: EscalationKind::Question,
                question: question.into(),
                context: None,
                blocking: false,
                at: now(),
            },
        )
    }

    /// A newer question closes the older live ones as superseded (naming it), a closed one is
    /// no longer listed as live nor answerable, and `history` still shows it.
    #[tokio::test]
    async fn a_newer_question_supersedes_the_live_ones() {
        let (_d, db) = open_temp();
        db.call(|c| {
            runs::insert(c, &runs::new_run("r1", "/p"))?;
            let first = ask(c, "Keep the old API?")?;
            let second = ask(c, "Which database?")?;
            let why = format!("superseded by escalation {}", second.id);
            assert_eq!(
                close_live(c, &"r1".into(), &why, Some(second.id), now())?,
                1
            );
            let live = list(c, None, false)?;
            assert_eq!(live.iter().map(|e| e.id).collect::<Vec<_>>(), [second.id]);
            let old = get(c, first.id)?.expect("kept");
            assert_eq!(old.superseded_by, Some(second.id));
            assert!(
                !answer(c, first.id, "yes", now())?,
                "a closed one takes no answer"
            );
            assert_eq!(list(c, None, true)?.len(), 2, "history keeps it");
            Ok(())
        })
        .await
        .expect("db");
    }
}
