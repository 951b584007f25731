//! `states!`: a closed set of states that crosses the wire as words (`"task_merged"`,
//! `"worktree"`). One list gives the enum, its serde words, `as_str`, `Display`, `FromStr` and
//! `ALL`, so the daemon, the database, the mirror and the CLI read the same word, and a test
//! can check every variant.

/// Defines `pub enum $name { $variant, … }` whose words are the given literals. Exported so
/// the daemon's store-only states (`word_enum!`) are made the same way.
#[macro_export]
macro_rules! states {
    ($(#[$m:meta])* pub enum $name:ident { $($(#[$vm:meta])* $variant:ident = $word:literal),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, $crate::__private::serde::Serialize, $crate::__private::serde::Deserialize)]
        pub enum $name {
            $($(#[$vm])* #[serde(rename = $word)] $variant),+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The word on the wire, in the database and in messages.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $word),+
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                // `pad`, so `{:<12}` lines up a table.
                f.pad(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::ALL
                    .iter()
                    .copied()
                    .find(|v| v.as_str() == s)
                    .ok_or_else(|| format!("no {} {s:?}", stringify!($name)))
            }
        }
    };
}

/// Serde, `Display` and parsing agree for every variant of each enum given.
#[cfg(test)]
pub(crate) fn check_words<T>(all: &[T])
where
    T: serde::Serialize + std::fmt::Display + std::str::FromStr + PartialEq + std::fmt::Debug,
{
    for v in all {
        let json = serde_json::to_value(v).expect("serialises");
        assert_eq!(json, serde_json::Value::String(v.to_string()));
        assert_eq!(v.to_string().parse::<T>().ok().as_ref(), Some(v));
    }
}
