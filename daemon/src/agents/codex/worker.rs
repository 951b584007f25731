//! OpenAI Codex as a worker: `codex exec --json` in the task's worktree, with the daemon's MCP
//! endpoint configured for this session alone through `-c mcp_servers.orch.*` (its bearer
//! token read by codex from [`TOKEN_VAR`] in its environment, never argv; the server
//! `required`, so codex exits rather than working without our tools; its tools approved,
//! since `codex exec` otherwise refuses every MCP call). An interrupted one continues with
//! `codex exec resume <thread>`, given the same flags again (codex keeps none of them).
//!
//! Like a Claude worker it may run any command in its worktree, network included: with
//! [`Permissions::Bypass`] codex's own sandbox is off; with the default allow-list it writes
//! only its worktree and the git directories its commits need (codex's `workspace-write`
//! keeps every `.git` read-only, the project's and the worktree's own under
//! `.git/worktrees/`, unless each is added). Either way the daemon's confinement keeps the
//! user's checkout read-only.
//!
//! `codex exec resume` takes neither `-C` nor the sandbox flags: they go before `resume`.

use std::path::PathBuf;
use std::process::Stdio;

use orchestrator_proto::Effort;

use crate::agents::claude::Permissions;
use crate::agents::{SERVER_NAME, SessionSpec, TOKEN_VAR};

/// The Codex CLI as a worker.
#[derive(Debug, Clone)]
pub struct CodexWorker {
    pub bin: PathBuf,
    /// `-m` unless the session names a model (`[codex] worker_model`, else `[codex] model`).
    pub model: Option<String>,
    /// Extra `-c key=value` overrides from the config file (`[codex] config`).
    pub overrides: Vec<String>,
    pub permissions: Permissions,
    /// The project's git directory, which worktree commits write (`--add-dir`).
    pub git_dir: Option<PathBuf>,
}

impl super::super::Agent for CodexWorker {
    fn kind(&self) -> super::super::AgentKind {
        super::super::AgentKind::Codex
    }

    fn command(&self, spec: &SessionSpec) -> tokio::process::Command {
        CodexWorker::command(self, spec)
    }
}

/// Codex's `model_reasoning_effort` for an effort (it has no `max`: `xhigh` is its highest).
pub fn reasoning_effort(e: Effort) -> &'static str {
    match e {
        Effort::Low => "low",
        Effort::Medium => "medium",
        Effort::High => "high",
        Effort::Xhigh | Effort::Max => "xhigh",
    }
}

/// A worktree's own git directory (`<project>/.git/worktrees/<name>`), from its `.git` file.
fn worktree_git_dir(worktree: &std::path::Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(worktree.join(".git")).ok()?;
    let dir = PathBuf::from(text.strip_prefix("gitdir:")?.trim());
    Some(if dir.is_absolute() {
        dir
    } else {
        worktree.join(dir)
    })
}

/// A TOML string for a `-c key=value` override.
fn toml_string(s: &str) -> String {
    serde_json::Value::String(s.to_owned()).to_string()
}

impl CodexWorker {
    /// The `-c` overrides that give this session our MCP server and nothing else of ours.
    pub fn mcp_overrides(mcp_url: &str) -> Vec<String> {
        let key = format!("mcp_servers.{SERVER_NAME}");
        vec![
            format!("{key}.url={}", toml_string(mcp_url)),
            format!("{key}.bearer_token_env_var={}", toml_string(TOKEN_VAR)),
            format!("{key}.required=true"),
            format!("{key}.default_tools_approval_mode=\"approve\""),
            // complete_task waits for the task's verify commands.
            format!(
                "{key}.tool_timeout_sec={}",
                orchestrator_proto::defaults::MAX_GATE_TIMEOUT_SECS
            ),
        ]
    }

    /// The command for one session; the caller sets stdout/stderr and the prompt on stdin.
    /// `spec.resume` with a thread id continues that thread.
    pub fn command(&self, spec: &SessionSpec) -> tokio::process::Command {
        let mut c = crate::confine::command(spec.confine.as_ref(), &self.bin);
        c.arg("exec").arg("-C").arg(&spec.cwd);
        match self.permissions {
            Permissions::Bypass => {
                c.arg("--dangerously-bypass-approvals-and-sandbox");
            }
            Permissions::Allowlist => {
                c.args(["--sandbox", "workspace-write"]);
                for g in self
                    .git_dir
                    .iter()
                    .cloned()
                    .chain(worktree_git_dir(&spec.cwd))
                {
                    c.arg("--add-dir").arg(g);
                }
                c.args(["-c", "sandbox_workspace_write.network_access=true"]);
            }
        }
        if spec.resume && !spec.session_uuid.is_empty() {
            c.args(["resume", &spec.session_uuid]);
        }
        c.args(["--json", "--skip-git-repo-check"]);
        for o in Self::mcp_overrides(&spec.mcp_url) {
            c.arg("-c").arg(o);
        }
        if let Some(m) = spec.model.as_ref().or(self.model.as_ref()) {
            c.arg("-m").arg(m);
        }
        if let Some(e) = spec.effort {
            c.arg("-c").arg(format!(
                "model_reasoning_effort=\"{}\"",
                reasoning_effort(e)
            ));
        }
        for o in &self.overrides {
            c.arg("-c").arg(o);
        }
        c.arg("-");
        crate::agents::run_env(&mut c, &spec.env);
        c.env(TOKEN_VAR, &spec.token)
            .current_dir(&spec.cwd)
            .stdin(Stdio::null())
            .process_group(0)
            .kill_on_drop(false);
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use orchestrator_proto::SessionEnv;

    fn spec() -> SessionSpec {
        SessionSpec {
            prompt: "work".into(),
            cwd: "/w/t".into(),
            mcp_url: "http://127.0.0.1:9/mcp".into(),
            token: "tok-secret".into(),
            session_uuid: String::new(),
            resume: false,
            env: SessionEnv([("PATH".to_owned(), "/bin".to_owned())].into()),
            confine: None,
            model: None,
            effort: Some(Effort::Max),
            fallback: None,
        }
    }

    fn args(c: &tokio::process::Command) -> String {
        c.as_std()
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ")
    }

    #[test]
    fn a_worker_gets_our_server_by_flags_and_its_token_only_by_environment() {
        let w = CodexWorker {
            bin: "codex".into(),
            model: Some("gpt-5.2-codex".into()),
            overrides: vec![],
            permissions: Permissions::Allowlist,
            git_dir: Some("/p/.git".into()),
        };
        let c = w.command(&spec());
        let a = args(&c);
        assert!(
            a.starts_with("exec -C /w/t --sandbox workspace-write --add-dir /p/.git -c sandbox_workspace_write.network_access=true --json --skip-git-repo-check"),
            "{a}"
        );
        assert!(
            a.contains("mcp_servers.orch.url=\"http://127.0.0.1:9/mcp\""),
            "{a}"
        );
        assert!(
            a.contains("mcp_servers.orch.bearer_token_env_var=\"ORCHESTRATOR_MCP_TOKEN\""),
            "{a}"
        );
        assert!(a.contains("mcp_servers.orch.required=true"), "{a}");
        assert!(
            a.contains("-m gpt-5.2-codex -c model_reasoning_effort=\"xhigh\""),
            "{a}"
        );
        assert!(a.ends_with(" -"), "{a}");
        assert!(!a.contains("tok-secret"), "{a}");
        let env: Vec<_> = c.as_std().get_envs().collect();
        assert!(
            env.iter().any(
                |(k, v)| *k == "ORCHESTRATOR_MCP_TOKEN" && v.is_some_and(|v| v == "tok-secret")
            )
        );

        let mut s = spec();
        s.resume = true;
        s.session_uuid = "019a-th".into();
        s.model = Some("o4".into());
        let a = args(
            &CodexWorker {
                permissions: Permissions::Bypass,
                ..w
            }
            .command(&s),
        );
        assert!(
            a.starts_with(
                "exec -C /w/t --dangerously-bypass-approvals-and-sandbox resume 019a-th --json"
            ),
            "{a}"
        );
        assert!(a.contains("-m o4"), "{a}");
    }
}
