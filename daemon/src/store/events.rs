//! The append-only `events` table: a run's log. `seq` counts from 1 without gaps per run.

use crate::ids::RunId;
use orchestrator_proto::{EventKind, Level};
use rusqlite::{Connection, Row, params};
use time::OffsetDateTime;

use super::time_text::{format, parse};
use super::word::{enum_from_text, enum_text};
use super::{Cached, StoreError};

#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    pub run_id: crate::ids::RunId,
    pub seq: u64,
    pub at: OffsetDateTime,
    pub level: Level,
    pub kind: EventKind,
    pub message: String,
    pub data: serde_json::Value,
}

/// An event before it has a place in the log.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub level: Level,
    pub kind: EventKind,
    pub message: String,
    pub data: serde_json::Value,
}

impl NewEvent {
    pub fn info(kind: EventKind, message: impl Into<String>) -> Self {
        Self {
            level: Level::Info,
            kind,
            message: message.into(),
            data: serde_json::Value::Null,
        }
    }

    pub fn with_data(mut self, data: serde_json::Value) -> Self {
        self.data = data;
        self
    }
}

fn level_text(l: Level) -> &'static str {
    match l {
        Level::Debug => "debug",
        Level::Info => "info",
        Level::Warn => "warn",
        Level::Error => "error",
    }
}

fn level_from(s: &str) -> Level {
    match s {
        "debug" => Level::Debug,
        "warn" => Level::Warn,
        "error" => Level::Error,
        _ => Level::Info,
    }
}

fn from_row(r: &Row<'_>) -> rusqlite::Result<EventRow> {
    let data: Option<String> = r.get(6)?;
    Ok(EventRow {
        run_id: r.get(0)?,
        seq: r.get(1)?,
        at: parse(&r.get::<_, String>(2)?)?,
        level: level_from(&r.get::<_, String>(3)?),
        kind: enum_from_text(4, r.get(4)?)?,
        message: r.get(5)?,
        data: data
            .and_then(|d| serde_json::from_str(&d).ok())
            .unwrap_or(serde_json::Value::Null),
    })
}

/// Appends to the run's log; call inside the transaction that made the change it records.
/// The longest message a log line carries; longer ones (a worker's 20 KB note, a huge
/// feature text) are cut with "…", and the full text stays where it came from.
pub const MAX_MESSAGE: usize = 4096;

/// `s` cut to at most `max` bytes on a character boundary, with "…" when cut.
pub fn bounded(s: String, max: usize) -> String {
    if s.len() <= max {
        return s;
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

pub fn append(
    conn: &Connection,
    run_id: &RunId,
    at: OffsetDateTime,
    mut event: NewEvent,
) -> Result<EventRow, StoreError> {
    event.message = bounded(event.message, MAX_MESSAGE);
    let seq: u64 = conn.row(
        "SELECT coalesce(max(seq), 0) + 1 FROM events WHERE run_id = ?1",
        [run_id],
        |r| r.get(0),
    )?;
    let data = (!event.data.is_null()).then(|| event.data.to_string());
    conn.exec(
        "INSERT INTO events (run_id, seq, at, level, kind, message, data) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
        params![
            run_id,
            seq,
            format(at),
            level_text(event.level),
            enum_text(event.kind),
            event.message,
            data
        ],
    )?;
    Ok(EventRow {
        run_id: run_id.to_owned(),
        seq,
        at,
        level: event.level,
        kind: event.kind,
        message: event.message,
        data: event.data,
    })
}

/// Events with `seq > after`, oldest first; with `tail`, only the last `tail` of those.
pub fn read(
    conn: &Connection,
    run_id: &RunId,
    after: u64,
    tail: Option<u32>,
) -> Result<Vec<EventRow>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT * FROM (SELECT run_id, seq, at, level, kind, message, data FROM events \
         WHERE run_id = ?1 AND seq > ?2 ORDER BY seq DESC LIMIT ?3) ORDER BY seq",
    )?;
    let limit = tail.map_or(-1, i64::from);
    let rows = stmt.query_map(params![run_id, after, limit], from_row)?;
    Ok(rows.collect::<rusqlite::Result<_>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::runs::{insert, new_run};
    use crate::store::{open_temp, time_text::now};

    #[tokio::test]
    async fn events_are_numbered_tailed_and_never_rewritten() {
        let (_d, db) = open_temp();
        db.call(|c| {
            insert(c, &new_run("r1", "/p"))?;
            for i in 0..5 {
                let e = append(
                    c,
                    &"r1".into(),
                    now(),
                    NewEvent::info(EventKind::TaskProgress, format!("m{i}")),
                )?;
                assert_eq!(e.seq, i + 1);
            }
            let tail: Vec<_> = read(c, &"r1".into(), 0, Some(2))?
                .into_iter()
                .map(|e| e.seq)
                .collect();
            assert_eq!(tail, [4, 5]);
            let after: Vec<_> = read(c, &"r1".into(), 3, None)?
                .into_iter()
                .map(|e| e.seq)
                .collect();
            assert_eq!(after, [4, 5]);
            assert!(c.execute("UPDATE events SET message = 'x'", []).is_err());
            Ok(())
        })
        .await
        .expect("db");
    }

    #[test]
    fn long_messages_are_cut_on_a_character_boundary() {
        assert_eq!(bounded("short".into(), 10), "short");
        let cut = bounded("é".repeat(3000), MAX_MESSAGE);
        assert!(
            cut.len() <= MAX_MESSAGE && cut.ends_with('…'),
            "{}",
            cut.len()
        );
        assert!(cut.trim_end_matches('…').chars().all(|c| c == 'é'));
    }
}
