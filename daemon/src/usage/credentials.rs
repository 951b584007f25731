//! Finding the Claude subscription's OAuth token, for the usage endpoint: the environment
//! (`CLAUDE_CODE_OAUTH_TOKEN`), then Claude Code's credentials file
//! (`$CLAUDE_CONFIG_DIR/.credentials.json`, else `~/.claude/.credentials.json`, honouring
//! `expiresAt`), then on macOS the Keychain item `Claude Code-credentials`. Where no source has
//! one (API-key users, headless Linux without a login) there is no polling.
//!
//! **Invariant:** the token lives only in a [`Token`], whose `Debug` and `Display` never show
//! it; errors name the source, never the secret.

use std::path::PathBuf;

use time::OffsetDateTime;

/// An OAuth access token. Shown as `Token(…)`.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

impl Token {
    /// For the `Authorization` header only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token(…)")
    }
}

/// A token and where it was found.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    pub token: Token,
    /// `environment (CLAUDE_CODE_OAUTH_TOKEN)`, a file path, or `macOS Keychain`.
    pub source: String,
}

/// Why a source had no usable token (a missing file is not a problem, just no token).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CredentialsError {
    #[error("the token in {path} expired at {at}; run `claude` once so it refreshes its login")]
    Expired { path: String, at: String },
    #[error("{path} is not Claude Code's credentials file ({why}); log in again with `claude`")]
    Malformed { path: String, why: String },
}

/// Looks the token up; `lookup` reads an environment variable (the daemon's, or a run's).
pub fn find(
    lookup: &dyn Fn(&str) -> Option<String>,
    now: OffsetDateTime,
) -> Result<Option<Found>, CredentialsError> {
    if let Some(t) = lookup("CLAUDE_CODE_OAUTH_TOKEN").filter(|t| !t.trim().is_empty()) {
        return Ok(Some(Found {
            token: Token(t.trim().to_owned()),
            source: "environment (CLAUDE_CODE_OAUTH_TOKEN)".into(),
        }));
    }
    if let Some(path) = credentials_file(lookup)
        && let Ok(text) = std::fs::read_to_string(&path)
    {
        return parse(&text, &path.display().to_string(), now).map(Some);
    }
    Ok(keychain(lookup, now))
}

fn credentials_file(lookup: &dyn Fn(&str) -> Option<String>) -> Option<PathBuf> {
    if let Some(dir) = lookup("CLAUDE_CONFIG_DIR").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join(".credentials.json"));
    }
    lookup("HOME")
        .filter(|h| !h.is_empty())
        .map(|h| PathBuf::from(h).join(".claude/.credentials.json"))
}

/// Parses Claude Code's credentials JSON (the file's, or the Keychain item's).
pub fn parse(text: &str, path: &str, now: OffsetDateTime) -> Result<Found, CredentialsError> {
    let malformed = |why: &str| CredentialsError::Malformed {
        path: path.to_owned(),
        why: why.to_owned(),
    };
    let v: serde_json::Value = serde_json::from_str(text).map_err(|_| malformed("not JSON"))?;
    let o = &v["claudeAiOauth"];
    let token = o["accessToken"]
        .as_str()
        .filter(|t| !t.is_empty())
        .ok_or_else(|| malformed("no claudeAiOauth.accessToken"))?;
    if let Some(ms) = o["expiresAt"].as_i64() {
        let at = OffsetDateTime::from_unix_timestamp(ms / 1000)
            .map_err(|_| malformed("expiresAt is not a time"))?;
        if at <= now {
            return Err(CredentialsError::Expired {
                path: path.to_owned(),
                at: crate::store::time_text::format(at),
            });
        }
    }
    Ok(Found {
        token: Token(token.to_owned()),
        source: path.to_owned(),
    })
}

#[cfg(target_os = "macos")]
fn keychain(lookup: &dyn Fn(&str) -> Option<String>, now: OffsetDateTime) -> Option<Found> {
    let user = lookup("USER").unwrap_or_else(|| "claude-code-user".into());
    let entry = keyring::Entry::new("Claude Code-credentials", &user).ok()?;
    let text = entry.get_password().ok()?;
    parse(&text, "macOS Keychain (Claude Code-credentials)", now).ok()
}

#[cfg(not(target_os = "macos"))]
fn keychain(_lookup: &dyn Fn(&str) -> Option<String>, _now: OffsetDateTime) -> Option<Found> {
    // Claude Code keeps its Linux credentials in the file; there is no secret store to ask.
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: Vec<(&'static str, String)>) -> impl Fn(&str) -> Option<String> {
        move |k| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())
    }

    #[test]
    fn the_environment_wins_then_the_file_with_its_expiry() {
        let dir = tempfile::tempdir().expect("tmp");
        let home = dir.path().display().to_string();
        std::fs::create_dir_all(dir.path().join(".claude")).expect("mkdir");
        let file = dir.path().join(".claude/.credentials.json");
        let now = OffsetDateTime::now_utc();
        let later = (now.unix_timestamp() + 3600) * 1000;
        std::fs::write(
            &file,
            format!(
                r#"{{"claudeAiOauth":{{"accessToken":"sk-ant-oat01-file","expiresAt":{later}}}}}"#
            ),
        )
        .expect("write");

        let both = env(vec![
            ("CLAUDE_CODE_OAUTH_TOKEN", "sk-ant-oat01-env".into()),
            ("HOME", home.clone()),
        ]);
        let f = find(&both, now).expect("ok").expect("found");
        assert_eq!(f.token.expose(), "sk-ant-oat01-env");
        assert!(f.source.contains("CLAUDE_CODE_OAUTH_TOKEN"));
        assert!(!format!("{f:?}").contains("sk-ant"), "{f:?}");

        let file_only = env(vec![("HOME", home.clone())]);
        let f = find(&file_only, now).expect("ok").expect("found");
        assert_eq!(f.token.expose(), "sk-ant-oat01-file");

        let earlier = (now.unix_timestamp() - 60) * 1000;
        std::fs::write(
            &file,
            format!(
                r#"{{"claudeAiOauth":{{"accessToken":"sk-ant-oat01-old","expiresAt":{earlier}}}}}"#
            ),
        )
        .expect("write");
        let e = find(&file_only, now).expect_err("expired");
        assert!(matches!(e, CredentialsError::Expired { .. }));
        assert!(!e.to_string().contains("sk-ant"), "{e}");

        std::fs::write(&file, "{not json").expect("write");
        assert!(matches!(
            find(&file_only, now),
            Err(CredentialsError::Malformed { .. })
        ));
        std::fs::write(&file, r#"{"mcpOAuth":{}}"#).expect("write");
        assert!(matches!(
            find(&file_only, now),
            Err(CredentialsError::Malformed { .. })
        ));

        std::fs::remove_file(&file).expect("rm");
        assert_eq!(
            find(&file_only, now),
            Ok(None),
            "missing: no token, no error"
        );
        let config_dir = env(vec![
            ("HOME", home),
            (
                "CLAUDE_CONFIG_DIR",
                dir.path().join("cfg").display().to_string(),
            ),
        ]);
        assert_eq!(find(&config_dir, now), Ok(None));
    }
}
