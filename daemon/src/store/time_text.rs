//! Timestamps are stored as RFC 3339 text in UTC: readable in `sqlite3`, sortable as text.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub fn now() -> OffsetDateTime {
    let t = OffsetDateTime::now_utc();
    // Millisecond precision keeps the text short and round-trips exactly.
    t.replace_nanosecond(t.nanosecond() / 1_000_000 * 1_000_000)
        .unwrap_or(t)
}

pub fn format(t: OffsetDateTime) -> String {
    t.format(&Rfc3339)
        .unwrap_or_else(|_| t.unix_timestamp().to_string())
}

pub fn parse(s: &str) -> rusqlite::Result<OffsetDateTime> {
    OffsetDateTime::parse(s, &Rfc3339).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

pub fn parse_opt(s: Option<String>) -> rusqlite::Result<Option<OffsetDateTime>> {
    s.as_deref().map(parse).transpose()
}
