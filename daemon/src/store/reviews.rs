//! The `reviews` and `findings` tables: what each Codex review concluded, and the ledger of
//! findings under stable ids across rounds (what makes reviews converge instead of looping).

use rusqlite::{Connection, OptionalExtension, Row, params};
use time::OffsetDateTime;

use super::StoreError;
use super::time_text::{format, parse};

/// Plan review or code review.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReviewKind {
    Plan,
    Code,
}

impl ReviewKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Plan => "plan",
            Self::Code => "code",
        }
    }

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
    pub kind: String,
    pub cycle: u32,
    pub plan_version: Option<u32>,
    /// `approved`, `changes` or `failed`.
    pub outcome: String,
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
pub fn list(c: &Connection, run: &str) -> Result<Vec<ReviewRow>, StoreError> {
    let mut stmt = c.prepare_cached(&format!("{REVIEW} WHERE run_id = ?1 ORDER BY id"))?;
    let rows = stmt.query_map([run], review)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

/// The newest review of a kind.
pub fn latest(
    c: &Connection,
    run: &str,
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
    pub outcome: &'static str,
    pub summary: String,
    pub dir: String,
}

pub fn insert(
    c: &Connection,
    run: &str,
    new: &NewReview,
    at: OffsetDateTime,
) -> Result<u64, StoreError> {
    c.execute(
        "INSERT INTO reviews (run_id, kind, cycle, plan_version, outcome, summary, dir, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            run,
            new.kind.as_str(),
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
    c.execute("UPDATE reviews SET outcome = 'changes' WHERE id = ?1", [id])?;
    Ok(())
}

/// One entry of the findings ledger.
#[derive(Debug, Clone, PartialEq)]
pub struct FindingRow {
    pub id: String,
    pub kind: String,
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

/// Whether a finding still stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FindingStatus {
    /// Raised by the last review of its kind (or never dropped since).
    Open,
    /// The last review of its kind did not raise it again.
    Resolved,
}

impl FindingStatus {
    /// The name in the database, the mirror's ledger and prompts.
    pub fn as_str(self) -> &'static str {
        match self {
            FindingStatus::Open => "open",
            FindingStatus::Resolved => "resolved",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [FindingStatus::Open, FindingStatus::Resolved]
            .into_iter()
            .find(|f| f.as_str() == s)
    }
}

impl std::fmt::Display for FindingStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
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
        status: {
            let s: String = r.get(9)?;
            FindingStatus::parse(&s).ok_or_else(|| {
                rusqlite::Error::FromSqlConversionFailure(
                    9,
                    rusqlite::types::Type::Text,
                    format!("no finding status {s:?}").into(),
                )
            })?
        },
    })
}

/// The ledger of one kind, in id order (P1, P2, …, P10).
pub fn findings(
    c: &Connection,
    run: &str,
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
pub fn upsert_findings(c: &Connection, run: &str, rows: &[FindingRow]) -> Result<(), StoreError> {
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
