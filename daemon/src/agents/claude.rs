//! Claude Code sessions: the command line the reference doc verified for headless workers.
//!
//! `claude -p --output-format stream-json --verbose --mcp-config <json>
//! --strict-mcp-config --session-id <uuid>` plus the permission mode, with the MCP server
//! marked `alwaysLoad` (so its tools are offered directly, not behind ToolSearch) and its
//! `Authorization` header taken from `${ORCHESTRATOR_MCP_TOKEN}` in the child's environment.
//! The prompt reaches claude on stdin, from a 0600 file (`session::run`).

use std::path::PathBuf;
use std::process::Stdio;

use serde::Deserialize;

use super::{SERVER_NAME, SessionSpec, TOKEN_VAR};

/// How sessions get permission to use tools. Neither ever stops on a prompt.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Permissions {
    /// `--permission-mode dontAsk` with an allow-list: our MCP tools plus reading, editing and
    /// running commands in the worktree; anything else is denied, never prompted.
    #[default]
    Allowlist,
    /// `--dangerously-skip-permissions` (with `IS_SANDBOX=1` when the daemon runs as root, which
    /// claude otherwise refuses). For disposable machines.
    Bypass,
}

/// Tools allowed under [`Permissions::Allowlist`].
pub const ALLOWED_TOOLS: &str =
    "mcp__orch,Read,Write,Edit,MultiEdit,Glob,Grep,LS,Bash,TodoWrite,NotebookEdit";

#[derive(Debug, Clone)]
pub struct ClaudeCode {
    pub bin: PathBuf,
    pub permissions: Permissions,
}

impl super::Agent for ClaudeCode {
    fn kind(&self) -> super::AgentKind {
        super::AgentKind::Claude
    }

    fn command(&self, spec: &SessionSpec) -> tokio::process::Command {
        ClaudeCode::command(self, spec)
    }
}

impl ClaudeCode {
    /// The `--mcp-config` JSON: our endpoint, the token by reference.
    pub fn mcp_config(mcp_url: &str) -> String {
        serde_json::json!({"mcpServers": {SERVER_NAME: {
            "type": "http",
            "url": mcp_url,
            "headers": {"Authorization": format!("Bearer ${{{TOKEN_VAR}}}")},
            "alwaysLoad": true,
        }}})
        .to_string()
    }

    /// The command for one session; the caller sets stdout/stderr and spawns it.
    pub fn command(&self, spec: &SessionSpec) -> tokio::process::Command {
        let mut c = crate::confine::command(spec.confine.as_ref(), &self.bin);
        // The prompt goes on stdin (the caller gives it; see `session::run`), never in argv.
        c.arg("-p")
            .args(["--output-format", "stream-json", "--verbose"])
            .arg("--mcp-config")
            .arg(Self::mcp_config(&spec.mcp_url))
            .arg("--strict-mcp-config")
            .arg(if spec.resume {
                "--resume"
            } else {
                "--session-id"
            })
            .arg(&spec.session_uuid);
        match self.permissions {
            Permissions::Allowlist => {
                c.args([
                    "--permission-mode",
                    "dontAsk",
                    "--allowedTools",
                    ALLOWED_TOOLS,
                ]);
            }
            Permissions::Bypass => {
                c.arg("--dangerously-skip-permissions");
            }
        }
        crate::agents::run_env(&mut c, &spec.env);
        if self.permissions == Permissions::Bypass && nix::unistd::geteuid().is_root() {
            c.env("IS_SANDBOX", "1");
        }
        if spec.env.get("MCP_TOOL_TIMEOUT").is_none() {
            // complete_task waits for the task's verify commands, up to the longest gate
            // timeout each: claude must not give up on the call first.
            c.env(
                "MCP_TOOL_TIMEOUT",
                (orchestrator_proto::defaults::MAX_GATE_TIMEOUT_SECS * 1000).to_string(),
            );
        }
        models(&mut c, spec);
        if spec.env.get("CLAUDE_CODE_MAX_RETRIES").is_none() {
            // Fail fast on API errors: the daemon retries sessions itself.
            c.env("CLAUDE_CODE_MAX_RETRIES", "2");
        }
        c.env("DISABLE_AUTOUPDATER", "1")
            .env(TOKEN_VAR, &spec.token)
            .current_dir(&spec.cwd)
            .stdin(Stdio::null())
            .process_group(0)
            .kill_on_drop(false);
        c
    }
}

/// The session's model, effort and fallback: as arguments, and over what the forwarded
/// environment says (call after the environment is set).
fn models(c: &mut tokio::process::Command, spec: &SessionSpec) {
    if let Some(m) = &spec.model {
        c.args(["--model", m]);
        // --model beats ANTHROPIC_MODEL already; this keeps the two from disagreeing in
        // anything claude spawns itself.
        c.env_remove("ANTHROPIC_MODEL");
    }
    if let Some(e) = spec.effort {
        c.args(["--effort", e.as_str()]);
        // The environment beats --effort in claude: a forwarded CLAUDE_CODE_EFFORT_LEVEL must
        // not override the effort the run chose.
        c.env("CLAUDE_CODE_EFFORT_LEVEL", e.as_str());
    }
    // claude refuses a fallback that is its main model; it would change nothing anyway.
    if let Some(f) = spec
        .fallback
        .as_ref()
        .filter(|f| spec.model.as_ref() != Some(*f))
    {
        c.args(["--fallback-model", f]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> SessionSpec {
        SessionSpec {
            prompt: "Plan it".into(),
            cwd: "/tmp".into(),
            mcp_url: "http://127.0.0.1:7777/mcp".into(),
            token: "orch_secret".into(),
            session_uuid: "00000000-0000-4000-8000-000000000000".into(),
            resume: false,
            env: orchestrator_proto::SessionEnv(
                [("ANTHROPIC_API_KEY".to_owned(), "k".to_owned())].into(),
            ),
            confine: None,
            model: None,
            effort: None,
            fallback: None,
        }
    }

    #[test]
    fn model_effort_and_fallback_are_passed_and_the_effort_beats_the_environment() {
        let mut s = spec();
        s.env
            .0
            .insert("CLAUDE_CODE_EFFORT_LEVEL".into(), "max".into());
        s.env.0.insert("ANTHROPIC_MODEL".into(), "haiku".into());
        let c = ClaudeCode {
            bin: "claude".into(),
            permissions: Permissions::Allowlist,
        };
        let args_env = |s: &SessionSpec| {
            let cmd = c.command(s);
            let std = cmd.as_std();
            let args: Vec<String> = std
                .get_args()
                .map(|a| a.to_string_lossy().into_owned())
                .collect();
            let env: Vec<(String, Option<String>)> = std
                .get_envs()
                .map(|(k, v)| {
                    let v = v.map(|v| v.to_string_lossy().into_owned());
                    (k.to_string_lossy().into_owned(), v)
                })
                .collect();
            (args.join(" "), env)
        };
        let (plain, _) = args_env(&s);
        assert!(
            !plain.contains("--model") && !plain.contains("--effort"),
            "{plain}"
        );
        s.model = Some("opus".into());
        s.effort = Some(orchestrator_proto::Effort::High);
        s.fallback = Some("sonnet".into());
        let (args, env) = args_env(&s);
        assert!(
            args.contains("--model opus --effort high --fallback-model sonnet"),
            "{args}"
        );
        let var = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        assert_eq!(var("CLAUDE_CODE_EFFORT_LEVEL"), Some(Some("high".into())));
        assert_eq!(var("ANTHROPIC_MODEL").flatten(), None, "not passed on");
        s.fallback = Some("opus".into());
        let (args, _) = args_env(&s);
        assert!(
            !args.contains("--fallback-model"),
            "not the main model: {args}"
        );
    }

    #[test]
    fn the_token_is_in_the_environment_not_the_arguments() {
        let c = ClaudeCode {
            bin: "claude".into(),
            permissions: Permissions::Allowlist,
        }
        .command(&spec());
        let std = c.as_std();
        let args: Vec<String> = std
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert!(!args.iter().any(|a| a.contains("orch_secret")), "{args:?}");
        assert!(
            !args.iter().any(|a| a.contains("Plan it")),
            "the prompt goes on stdin, not in argv: {args:?}"
        );
        assert!(
            args.iter().any(|a| a.contains("${ORCHESTRATOR_MCP_TOKEN}")),
            "{args:?}"
        );
        assert!(
            args.iter().any(|a| a.contains("\"alwaysLoad\":true")),
            "{args:?}"
        );
        for flag in [
            "--strict-mcp-config",
            "--verbose",
            "stream-json",
            "dontAsk",
            "--session-id",
        ] {
            assert!(args.iter().any(|a| a == flag), "{flag} in {args:?}");
        }
        let envs: Vec<(String, String)> = std
            .get_envs()
            .filter_map(|(k, v)| {
                Some((
                    k.to_string_lossy().into_owned(),
                    v?.to_string_lossy().into_owned(),
                ))
            })
            .collect();
        assert!(envs.contains(&("ORCHESTRATOR_MCP_TOKEN".into(), "orch_secret".into())));
        assert!(envs.contains(&("ANTHROPIC_API_KEY".into(), "k".into())));
    }
}
