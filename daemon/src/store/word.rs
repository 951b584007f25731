//! `word_enum!`: a state the store keeps as a word (`'open'`, `'changes'`): one list gives the
//! enum, its name (`as_str`, `Display`), its parser, and its `ToSql`/`FromSql`, so SQL, the
//! mirror and messages read the same word and a bad one in the database is an error, never a
//! silent default.

/// Defines `pub enum $name { $variant, … }` whose words are the given literals: proto's
/// `states!` (words, `Display`, `FromStr`, `ALL`) plus the store's `ToSql`/`FromSql`.
macro_rules! word_enum {
    ($(#[$m:meta])* pub enum $name:ident { $($(#[$vm:meta])* $variant:ident = $word:literal),+ $(,)? }) => {
        orchestrator_proto::states! {
            $(#[$m])*
            pub enum $name {
                $($(#[$vm])* $variant = $word),+
            }
        }

        impl rusqlite::types::ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
                Ok(self.as_str().into())
            }
        }

        impl rusqlite::types::FromSql for $name {
            fn column_result(v: rusqlite::types::ValueRef<'_>) -> rusqlite::types::FromSqlResult<Self> {
                let s = v.as_str()?;
                s.parse::<Self>()
                    .map_err(|e| rusqlite::types::FromSqlError::Other(e.into()))
            }
        }
    };
}

pub(crate) use word_enum;

/// A column that could not be read as its type.
pub(crate) fn conversion<E: std::error::Error + Send + Sync + 'static>(
    col: usize,
    e: E,
) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(col, rusqlite::types::Type::Text, Box::new(e))
}

/// A proto enum (serde's word for each variant) read from a text column.
pub(crate) fn enum_from_text<T: serde::de::DeserializeOwned>(
    col: usize,
    s: String,
) -> rusqlite::Result<T> {
    serde_json::from_value(serde_json::Value::String(s)).map_err(|e| conversion(col, e))
}

/// A proto enum's word, for a text column.
pub(crate) fn enum_text<T: serde::Serialize>(v: T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        other => unreachable!("unit enum serialised as {other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use crate::store::reviews::{FindingStatus, ReviewKind, ReviewOutcome};

    fn round_trip<T>(all: &[T])
    where
        T: rusqlite::types::ToSql + rusqlite::types::FromSql + std::fmt::Display + PartialEq,
        T: std::fmt::Debug + Copy,
    {
        let c = rusqlite::Connection::open_in_memory().expect("db");
        for v in all {
            let (text, back): (String, T) = c
                .query_row("SELECT ?1, ?1", [v], |r| Ok((r.get(0)?, r.get(1)?)))
                .expect("select");
            assert_eq!(text, v.to_string(), "SQL and Display agree");
            assert_eq!(back, *v);
        }
    }

    #[test]
    fn sql_display_and_parsing_agree_and_a_bad_word_is_an_error() {
        round_trip(ReviewKind::ALL);
        round_trip(ReviewOutcome::ALL);
        round_trip(FindingStatus::ALL);
        assert_eq!(
            "changes".parse::<ReviewOutcome>(),
            Ok(ReviewOutcome::Changes)
        );
        let c = rusqlite::Connection::open_in_memory().expect("db");
        let bad = c.query_row("SELECT 'maybe'", [], |r| r.get::<_, ReviewOutcome>(0));
        assert!(
            bad.is_err_and(|e| e.to_string().contains("no ReviewOutcome \"maybe\"")),
            "a word the enum does not know is an error"
        );
    }
}
