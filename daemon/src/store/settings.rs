//! The `settings` table: the daemon's own key-value settings (a project's remembered setup
//! and gate, …).

use rusqlite::{Connection, OptionalExtension, params};

use super::{Cached, StoreError};

pub fn setting(c: &Connection, key: &str) -> Result<Option<String>, StoreError> {
    Ok(
        c.row("SELECT value FROM settings WHERE key = ?1", [key], |r| {
            r.get(0)
        })
        .optional()?,
    )
}

pub fn set_setting(c: &Connection, key: &str, value: &str) -> Result<(), StoreError> {
    c.exec(
        "INSERT INTO settings (key, value) VALUES (?1, ?2) \
         ON CONFLICT (key) DO UPDATE SET value = excluded.value",
        params![key, value],
    )?;
    Ok(())
}
