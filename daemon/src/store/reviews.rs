//! The `reviews` and `findings` tables: what each Codex review concluded, and the ledger of
//! findings under stable ids across rounds (what makes reviews converge instead of looping).

use crate::ids::RunId;
use rusqlite::{Connection, OptionalExtension, Row, params};
use time::OffsetDateTime;

use super::StoreError;
use super::time_text::{format, parse};

super::word::word_enum! {
    /// Plan review or code review.
    pub enum ReviewKind {
        Plan = "plan",
        Code = "code",
    }
}

super::word::word_enum! {
    /// What a review concluded.
    pub enum ReviewOutcome {
        Approved = "approved",
        /// Its round had blocking findings: another plan revision or cycle.
        Changes = "changes",
        /// Codex gave no verdict.
        Failed = "failed",
    }
}

impl ReviewKind {
    /// The prefix of this kind's finding ids.
    pub fn prefix(self) -> &'static str {
        match self {
            Self::Plan => "P",
            Self::Code => "F",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct ReviewRow {
    pub id: u64,
    pub kind: ReviewKind,
    pub cycle: u32,
    pub plan_version: Option<u32>,
    pub outcome: ReviewOutcome,
    pub summary: String,
    pub dir: String,
    pub created_at: OffsetDateTime,
}

fn review(r: &Row<'_>) -> rusqlite::Result<ReviewRow> {
    Ok(ReviewRow {
        id: r.get(0)?,
        kind: r.get(1)?,
        cycle: r.get(2)?,
        plan_version: r.get(3)?,
        outcome: r.get(4)?,
        summary: r.get(5)?,
        dir: r.get(6)?,
        created_at: parse(&r.get::<_, String>(7)?)?,
    })
}

const REVIEW: &str =
    "SELECT id, kind, cycle, plan_version, outcome, summary, dir, created_at FROM reviews";

/// A run's reviews, oldest first.
pub fn list(c: &Connection, run: &RunId) -> Result<Vec<ReviewRow>, StoreError> {
    let mut stmt = c.prepare_cached(&format!("{REVIEW} WHERE run_id = ?1 ORDER BY id"))?;
    let rows = stmt.query_map([run], review)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The newest review of a kind.
pub fn latest(
    c: &Connection,
    run: &RunId,
    kind: ReviewKind,
) -> Result<Option<ReviewRow>, StoreError> {
    Ok(c.query_row(
        &format!("{REVIEW} WHERE run_id = ?1 AND kind = ?2 ORDER BY id DESC LIMIT 1"),
        params![run, kind.as_str()],
        review,
    )
    .optional()?)
}

/// What `insert` needs.
#[derive(Debug, Clone)]
pub struct NewReview {
    pub kind: ReviewKind,
    pub cycle: u32,
    pub plan_version: Option<u32>,
    pub outcome: ReviewOutcome,
    pub summary: String,
    pub dir: String,
}

pub fn insert(
    c: &Connection,
    run: &RunId,
    new: &NewReview,
    at: OffsetDateTime,
) -> Result<u64, StoreError> {
    c.execute(
        "INSERT INTO reviews (run_id, kind, cycle, plan_version, outcome, summary, dir, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            run,
            new.kind,
            new.cycle,
            new.plan_version,
            new.outcome,
            new.summary,
            new.dir,
            format(at)
        ],
    )?;
    Ok(c.last_insert_rowid() as u64)
}

/// Marks a review as asking for changes (its round had blocking findings).
pub fn mark_changes(c: &Connection, id: u64) -> Result<(), StoreError> {
    c.execute(
        "UPDATE reviews SET outcome = ?2 WHERE id = ?1",
        params![id, ReviewOutcome::Changes],
    )?;
    Ok(())
}

/// One entry of the findings ledger.
#[derive(Debug, Clone, PartialEq)]
pub struct FindingRow {
    pub id: String,
    pub kind: ReviewKind,
    pub priority: String,
    pub title: String,
    pub body: String,
    pub location: Option<String>,
    pub first_review: u64,
    pub last_review: u64,
    /// Reviews that raised it (2: first recurrence, 3: second).
    pub raised: u32,
    pub status: FindingStatus,
}

super::word::word_enum! {
    /// Whether a finding still stands.
    pub enum FindingStatus {
        /// Raised by the last review of its kind (or never dropped since).
        Open = "open",
        /// The last review of its kind did not raise it again.
        Resolved = "resolved",
    }
}

impl FindingRow {
    /// P0 and P1 findings block: they start another cycle (or a plan revision).
    pub fn blocking(&self) -> bool {
        matches!(self.priority.as_str(), "P0" | "P1")
    }
}

fn finding(r: &Row<'_>) -> rusqlite::Result<FindingRow> {
    Ok(FindingRow {
        id: r.get(0)?,
        kind: r.get(1)?,
        priority: r.get(2)?,
        title: r.get(3)?,
        body: r.get(4)?,
        location: r.get(5)?,
        first_review: r.get(6)?,
        last_review: r.get(7)?,
        raised: r.get(8)?,
        status: r.get(9)?,
    })
}

/// The ledger of one kind, in id order (P1, P2, …, P10).
pub fn findings(
    c: &Connection,
    run: &RunId,
    kind: ReviewKind,
) -> Result<Vec<FindingRow>, StoreError> {
    let mut stmt = c.prepare_cached(
        "SELECT id, kind, priority, title, body, location, first_review, last_review, raised, status \
         FROM findings WHERE run_id = ?1 AND kind = ?2 ORDER BY length(id), id",
    )?;
    let rows = stmt.query_map(params![run, kind.as_str()], finding)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// Inserts or replaces ledger entries.
pub fn upsert_findings(c: &Connection, run: &RunId, rows: &[FindingRow]) -> Result<(), StoreError> {
    let mut stmt = c.prepare_cached(
        "INSERT OR REPLACE INTO findings (run_id, id, kind, priority, title, body, location, \
           first_review, last_review, raised, status) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
    )?;
    for f in rows {
        stmt.execute(params![
            run,
            f.id,
            f.kind,
            f.priority,
            f.title,
            f.body,
            f.location,
            f.first_review,
            f.last_review,
            f.raised,
            f.status.as_str()
        ])?;
    }
    Ok(())
}
