//! The daemon's ids as types: a [`RunId`], a [`TaskId`] and a [`SessionId`] are all strings on
//! the wire and in SQLite, but never one another here. A store function that takes a run and
//! a task cannot be handed them the wrong way round, and a row reads each id as its type.
//!
//! Each reads as a `&str` (`Deref`, `Borrow<str>` for map lookups, `Display`) so messages and
//! paths use it as they used the string; it is made from a `String` only where one arrives
//! from outside (the API's path, a plan, a model's tool call) or is minted.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;

use rusqlite::types::{FromSql, FromSqlResult, ToSql, ToSqlOutput, ValueRef};

macro_rules! id {
    ($(#[$m:meta])* $name:ident) => {
        $(#[$m])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
        pub struct $name(String);

        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl Deref for $name {
            type Target = str;

            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        /// As its string (`"t1"`), so `{:?}` quotes an id in a message as it quoted the string.
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.pad(&self.0)
            }
        }

        impl From<String> for $name {
            fn from(s: String) -> Self {
                Self(s)
            }
        }

        impl From<&str> for $name {
            fn from(s: &str) -> Self {
                Self(s.to_owned())
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                String::deserialize(d).map(Self)
            }
        }

        impl ToSql for $name {
            fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
                Ok(ToSqlOutput::from(self.0.as_str()))
            }
        }

        impl FromSql for $name {
            fn column_result(v: ValueRef<'_>) -> FromSqlResult<Self> {
                v.as_str().map(|s| Self(s.to_owned()))
            }
        }
    };
}

id! {
    /// A run (`r-…`).
    RunId
}

id! {
    /// A task of a run's plan, as the planner named it (unique within its run).
    TaskId
}

id! {
    /// An agent session (`s-…`), whose bearer token names it.
    SessionId
}

impl SessionId {
    /// A new session's id (`s-` and 12 hex digits of a random UUID).
    pub fn mint() -> Self {
        Self(format!(
            "s-{}",
            &uuid::Uuid::new_v4().simple().to_string()[..12]
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::{RunId, TaskId};

    #[test]
    fn an_id_reads_writes_and_prints_as_its_string() {
        let c = rusqlite::Connection::open_in_memory().expect("db");
        let run = RunId::from("r-1");
        let (text, back): (String, RunId) = c
            .query_row("SELECT ?1, ?1", [&run], |r| Ok((r.get(0)?, r.get(1)?)))
            .expect("select");
        assert_eq!((text.as_str(), &back), ("r-1", &run));
        assert_eq!(format!("{:<5}|", TaskId::from("t1")), "t1   |");
        assert_eq!(
            format!("{:?}", TaskId::from("t1")),
            "\"t1\"",
            "quoted as a string"
        );
        assert_eq!(
            serde_json::json!({ "run": run }),
            serde_json::json!({ "run": "r-1" })
        );
        let mut by_task = std::collections::HashMap::new();
        by_task.insert(TaskId::from("t1"), 1);
        assert_eq!(by_task.get("t1"), Some(&1), "looked up by &str");
    }
}
