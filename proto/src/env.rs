//! The client's environment that agent sessions inherit. `orchestrate start` and `resume` send
//! these variables with the request, so a daemon started by systemd or launchd runs `claude`
//! exactly as the user's shell would. The daemon keeps them with the run and never shows them:
//! [`SessionEnv`]'s `Debug` prints names only, and no API response or mirror file carries it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Exact names forwarded.
const NAMES: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "LANG",
    "TZ",
    "TMPDIR",
    "TERM",
    "IS_SANDBOX",
    "NODE_EXTRA_CA_CERTS",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "all_proxy",
    "XDG_CONFIG_HOME",
    "XDG_DATA_HOME",
    "XDG_CACHE_HOME",
    "GIT_AUTHOR_NAME",
    "GIT_AUTHOR_EMAIL",
    "GIT_COMMITTER_NAME",
    "GIT_COMMITTER_EMAIL",
    // Where toolchains live, so setups, gates and checks build as in the user's shell.
    "RUSTUP_HOME",
    "RUSTUP_TOOLCHAIN",
    "CARGO_HOME",
    "GOPATH",
    "GOROOT",
    "GOMODCACHE",
    "GOFLAGS",
    "JAVA_HOME",
    "NVM_DIR",
    "PYENV_ROOT",
    "PNPM_HOME",
    "VOLTA_HOME",
    "BUN_INSTALL",
    "DENO_DIR",
];
/// Prefixes forwarded.
const PREFIXES: &[&str] = &[
    "ANTHROPIC_",
    "CLAUDE_",
    "OPENAI_",
    "CODEX_",
    "LC_",
    "ORCHESTRATOR_",
    "AWS_",
    "GOOGLE_",
    "VERTEX_",
    "DISABLE_",
];

/// Whether a variable of the client's environment goes to the sessions.
pub fn forwarded(name: &str) -> bool {
    NAMES.contains(&name) || PREFIXES.iter().any(|p| name.starts_with(p))
}

/// Variables for agent sessions. Secrets live here (API keys, tokens): never log the values.
#[derive(Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SessionEnv(pub BTreeMap<String, String>);

impl SessionEnv {
    /// The forwarded part of this process's environment.
    pub fn capture() -> Self {
        Self(std::env::vars().filter(|(k, _)| forwarded(k)).collect())
    }

    /// Drops anything not forwardable (the daemon re-applies the filter on receipt).
    pub fn filtered(self) -> Self {
        self.filtered_with(&[])
    }

    /// The forwarded part of this process's environment, plus the variables named in `extra`
    /// (`--env NAME`, `[agents] forward_env`, the Codex provider's key) that are set.
    pub fn capture_with(extra: &[String]) -> Self {
        Self(
            std::env::vars()
                .filter(|(k, _)| forwarded(k) || extra.contains(k))
                .collect(),
        )
    }

    /// [`SessionEnv::filtered`], keeping the variables named in `extra` too.
    pub fn filtered_with(self, extra: &[String]) -> Self {
        Self(
            self.0
                .into_iter()
                .filter(|(k, _)| forwarded(k) || extra.contains(k))
                .collect(),
        )
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }
}

impl std::fmt::Debug for SessionEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_relevant_variables_are_forwarded_and_values_never_debug_printed() {
        assert!(forwarded("ANTHROPIC_API_KEY"));
        assert!(forwarded("CLAUDE_CODE_OAUTH_TOKEN"));
        assert!(forwarded("PATH"));
        assert!(forwarded("https_proxy"));
        assert!(!forwarded("DBUS_SESSION_BUS_ADDRESS"));
        assert!(!forwarded("SSH_AUTH_SOCK"));
        let env = SessionEnv([("ANTHROPIC_API_KEY".to_owned(), "sk-secret".to_owned())].into());
        let shown = format!("{env:?}");
        assert!(shown.contains("ANTHROPIC_API_KEY"));
        assert!(!shown.contains("sk-secret"));
    }
}
