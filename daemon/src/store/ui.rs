//! The `ui_sessions` table: the dashboard's browser sessions, by the SHA-256 of their cookie,
//! each with its CSRF token and when it expires.

use rusqlite::{Connection, OptionalExtension, params};
use time::OffsetDateTime;

use super::{Cached, StoreError, time_text};

/// Records a session; expired ones go at the same time.
pub fn insert(
    c: &Connection,
    hash: &[u8],
    csrf: &str,
    now: OffsetDateTime,
    expires_at: OffsetDateTime,
) -> Result<(), StoreError> {
    c.exec(
        "DELETE FROM ui_sessions WHERE expires_at <= ?1",
        [time_text::format(now)],
    )?;
    c.exec(
        "INSERT INTO ui_sessions (hash, csrf, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
        params![
            hash,
            csrf,
            time_text::format(now),
            time_text::format(expires_at)
        ],
    )?;
    Ok(())
}

/// The CSRF token of the live session with this cookie hash, if there is one.
pub fn csrf(
    c: &Connection,
    hash: &[u8],
    now: OffsetDateTime,
) -> Result<Option<String>, StoreError> {
    Ok(c.row(
        "SELECT csrf FROM ui_sessions WHERE hash = ?1 AND expires_at > ?2",
        params![hash, time_text::format(now)],
        |r| r.get(0),
    )
    .optional()?)
}
