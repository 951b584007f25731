//! Agent backends: the CLIs the daemon runs as sessions. Claude Code plans and builds (each
//! session a [`SessionSpec`] turned into a ready-to-spawn command); Codex reviews
//! ([`codex::ReviewSpec`]). The run engine owns spawning, following the output files, and the
//! session's lifecycle.
//!
//! **Invariants:** the bearer token reaches the child only through its environment (never
//! argv, which `ps` shows); the child gets the run's forwarded environment (the user's, as
//! captured by the client), not the daemon's; stdin is `/dev/null`, so nothing ever waits on a
//! prompt; each session runs in its own process group so the whole tree can be stopped.

pub mod claude;
pub mod codex;
pub mod stream;

use std::path::{Path, PathBuf};

use orchestrator_proto::SessionEnv;

/// The agents the daemon knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AgentKind {
    #[default]
    Claude,
    Codex,
}

impl From<orchestrator_proto::Agent> for AgentKind {
    fn from(a: orchestrator_proto::Agent) -> Self {
        match a {
            orchestrator_proto::Agent::Claude => Self::Claude,
            orchestrator_proto::Agent::Codex => Self::Codex,
        }
    }
}

impl AgentKind {
    pub fn program(self) -> &'static str {
        match self {
            Self::Claude => "claude",
            Self::Codex => "codex",
        }
    }

    /// The variable that names the binary explicitly.
    pub fn override_var(self) -> &'static str {
        match self {
            Self::Claude => "ORCHESTRATOR_CLAUDE_BIN",
            Self::Codex => "ORCHESTRATOR_CODEX_BIN",
        }
    }

    fn install_hint(self) -> &'static str {
        match self {
            Self::Claude => {
                "install Claude Code (npm install -g @anthropic-ai/claude-code) and log in with `claude`"
            }
            Self::Codex => {
                "install Codex (npm install -g @openai/codex), or start the run with --skip-codex"
            }
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("{program} is not on your PATH ({path}); {hint}, or set {var} to its path")]
    NotFound {
        program: &'static str,
        path: String,
        hint: &'static str,
        var: &'static str,
    },
    #[error(
        "{var} (or [agents] in the config file) names {path}, which is not an executable file; fix or unset it"
    )]
    BadOverride { var: &'static str, path: PathBuf },
}

fn executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Finds the agent's binary: the override variable (the run's environment first, then the
/// daemon's), else the config file's path, else the run's `PATH`, else the daemon's.
pub fn locate(
    kind: AgentKind,
    env: &SessionEnv,
    configured: Option<&Path>,
) -> Result<PathBuf, AgentError> {
    let var = kind.override_var();
    let chosen = env
        .get(var)
        .map(str::to_owned)
        .or_else(|| std::env::var(var).ok())
        .filter(|v| !v.is_empty())
        .or_else(|| configured.map(|p| p.display().to_string()));
    if let Some(p) = chosen {
        let p = PathBuf::from(p);
        return if executable(&p) {
            Ok(p)
        } else {
            Err(AgentError::BadOverride { var, path: p })
        };
    }
    let path = env
        .get("PATH")
        .map(str::to_owned)
        .or_else(|| std::env::var("PATH").ok())
        .unwrap_or_default();
    orchestrator_proto::locate::on_path(path.as_ref(), kind.program()).ok_or(AgentError::NotFound {
        program: kind.program(),
        path,
        hint: kind.install_hint(),
        var,
    })
}

/// Everything needed to start one session.
#[derive(Debug, Clone)]
pub struct SessionSpec {
    pub prompt: String,
    /// The session's worktree.
    pub cwd: PathBuf,
    pub mcp_url: String,
    /// The session's bearer token; goes into the child's environment only.
    pub token: String,
    /// `--session-id`, recorded for `--resume`.
    pub session_uuid: String,
    /// Continue the conversation `session_uuid` (`--resume`) instead of starting it.
    pub resume: bool,
    /// The run's forwarded environment.
    pub env: SessionEnv,
    /// Kept out of the user's checkout (`crate::confine`), where the system allows it.
    pub confine: Option<crate::confine::Confinement>,
    /// `--model`, `--effort` and `--fallback-model` (`None`: claude's own choice).
    pub model: Option<String>,
    pub effort: Option<orchestrator_proto::Effort>,
    pub fallback: Option<String>,
}

/// A backend: turns a session into the command that runs it. The engine spawns and follows
/// the command the same way whichever agent it is.
pub trait Agent: Send + Sync {
    fn kind(&self) -> AgentKind;
    fn command(&self, spec: &SessionSpec) -> tokio::process::Command;
}

/// Gives `c` the run's forwarded environment and nothing of the daemon's.
pub fn run_env(c: &mut tokio::process::Command, env: &SessionEnv) {
    c.env_clear();
    for (k, v) in &env.0 {
        c.env(k, v);
    }
}

/// The name of the variable that carries the token into the child.
pub const TOKEN_VAR: &str = "ORCHESTRATOR_MCP_TOKEN";
/// The MCP server's name as the agent sees it (tools are `mcp__orch__<tool>`).
pub const SERVER_NAME: &str = "orch";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_binary_names_the_fix_and_an_override_wins() {
        let empty = tempfile::tempdir().expect("tmp");
        let env = SessionEnv([("PATH".to_owned(), empty.path().display().to_string())].into());
        let err = locate(AgentKind::Codex, &env, None).expect_err("not found");
        let text = err.to_string();
        assert!(
            text.contains("ORCHESTRATOR_CODEX_BIN") && text.contains("--skip-codex"),
            "{text}"
        );

        let bin = empty.path().join("my-claude");
        std::fs::write(&bin, "#!/bin/sh\n").expect("write");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let mut env = env;
        env.0
            .insert("ORCHESTRATOR_CLAUDE_BIN".into(), bin.display().to_string());
        assert_eq!(locate(AgentKind::Claude, &env, None).expect("found"), bin);
        env.0.remove("ORCHESTRATOR_CLAUDE_BIN");
        assert_eq!(
            locate(AgentKind::Claude, &env, Some(&bin)).expect("configured"),
            bin
        );
    }
}
