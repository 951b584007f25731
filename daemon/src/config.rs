//! The daemon's configuration, resolved once in `main` and passed in explicitly:
//! embedded defaults → config file → `ORCHESTRATOR_*` environment → flags.
//!
//! A config file that does not parse, or has unknown keys, stops the daemon with its path;
//! it never falls back to defaults silently.

use std::path::{Path, PathBuf};

use serde::Deserialize;

/// The commented reference config, printed by `orchestratord --print-config`.
pub const REFERENCE: &str = include_str!("../config.reference.toml");

/// The daemon's log filter unless configured: its own events, without the MCP library's
/// three lines for every request (`rmcp=info` brings them back).
pub const DEFAULT_LOG: &str = "info,rmcp=warn";

/// Everything the daemon needs to know to start.
#[derive(Debug, Clone)]
pub struct Config {
    /// The Unix socket of the JSON API.
    pub socket: PathBuf,
    /// Holds `orchestrator.db` (the source of truth) and the daemon's lock file.
    pub data_dir: PathBuf,
    /// `tracing` filter for the daemon's stderr, e.g. `info` or `orchestratord=debug`.
    pub log: String,
    /// The MCP endpoint's loopback port; `None` reuses the recorded one (or picks one).
    pub mcp_port: Option<u16>,
    /// How agent sessions get permission to use tools.
    pub permissions: crate::agents::claude::Permissions,
    /// Agent binaries named in the config file (the environment overrides them).
    pub claude_bin: Option<PathBuf>,
    pub codex_bin: Option<PathBuf>,
    /// Desktop notifications on escalation, pause, completion and failure.
    pub notifications: bool,
    /// And these webhooks.
    pub webhooks: Vec<crate::notify::webhook::Webhook>,
    /// How Codex reviews run.
    pub codex: CodexSettings,
    /// The usage governor.
    pub usage: UsageSettings,
    /// Watchdogs over running sessions.
    pub supervision: crate::engine::watch::Limits,
    /// `[worktrees]`: how new worktrees are prepared.
    pub worktrees: WorktreesSection,
    /// `[models]`: the models and effort of a project's first run when `start` gives none.
    pub models: orchestrator_proto::Models,
    /// Where the log goes when not to stderr (`--log-dir`): a file a day, a week kept.
    pub log_dir: Option<PathBuf>,
}

/// `[usage]`: the usage endpoint poller and the pause policy.
#[derive(Debug, Clone, PartialEq)]
pub struct UsageSettings {
    pub poller: crate::usage::poller::PollerConfig,
    /// How long running workers may finish after the threshold is crossed before they are
    /// interrupted (a hit limit interrupts them at once).
    pub grace: std::time::Duration,
    /// Work resumes this long after a window's reset.
    pub margin: time::Duration,
}

impl Default for UsageSettings {
    fn default() -> Self {
        Self {
            poller: Default::default(),
            grace: std::time::Duration::from_secs(300),
            margin: crate::usage::RESET_MARGIN,
        }
    }
}

/// `[codex]`: how reviews and Codex workers run.
#[derive(Debug, Clone, PartialEq)]
pub struct CodexSettings {
    /// `-m`, if set; otherwise Codex's own default.
    pub model: Option<String>,
    /// `-m` of Codex workers (a task's own model wins); else `model` above.
    pub worker_model: Option<String>,
    /// Extra `-c key=value` overrides passed to every review.
    pub overrides: Vec<String>,
    /// Plan review rounds (review, revise, review again…) before the run proceeds.
    pub plan_review_rounds: u32,
    /// Wall-clock limit of one review session.
    pub timeout: std::time::Duration,
}

impl Default for CodexSettings {
    fn default() -> Self {
        Self {
            model: None,
            worker_model: None,
            overrides: Vec::new(),
            plan_review_rounds: 2,
            timeout: std::time::Duration::from_secs(20 * 60),
        }
    }
}

/// The config file's shape. Every key is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    #[serde(default)]
    pub daemon: DaemonSection,
    #[serde(default)]
    pub mcp: McpSection,
    #[serde(default)]
    pub agents: AgentsSection,
    #[serde(default)]
    pub notifications: NotificationsSection,
    #[serde(default)]
    pub codex: CodexSection,
    #[serde(default)]
    pub usage: UsageSection,
    #[serde(default)]
    pub supervision: SupervisionSection,
    #[serde(default)]
    pub worktrees: WorktreesSection,
    #[serde(default)]
    pub models: orchestrator_proto::Models,
}

/// `[worktrees]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorktreesSection {
    /// The `--setup` of a project's first run when `start` gives none.
    pub setup: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupervisionSection {
    pub stall_secs: Option<u64>,
    pub startup_secs: Option<u64>,
    pub task_timeout_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UsageSection {
    pub base_url: Option<String>,
    pub poll_interval_secs: Option<u64>,
    pub user_agent: Option<String>,
    pub grace_secs: Option<u64>,
    pub reset_margin_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodexSection {
    pub model: Option<String>,
    pub worker_model: Option<String>,
    pub config: Option<Vec<String>>,
    pub plan_review_rounds: Option<u32>,
    pub timeout_secs: Option<u64>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NotificationsSection {
    pub enabled: Option<bool>,
    /// `[[notifications.webhook]]`: where else notices go.
    pub webhook: Option<Vec<crate::notify::webhook::Webhook>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentsSection {
    pub permissions: Option<crate::agents::claude::Permissions>,
    pub claude_bin: Option<PathBuf>,
    pub codex_bin: Option<PathBuf>,
    /// The workers' CLI of a project's first run when `start` gives none (`claude`, `codex`).
    pub worker: Option<orchestrator_proto::Agent>,
    /// More variables of the user's shell for the sessions (the CLI reads this key too).
    pub forward_env: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McpSection {
    pub port: Option<u16>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DaemonSection {
    pub log: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the config file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "the config file {path} is invalid: {source}; fix it or move it away (orchestratord --print-config shows every key)"
    )]
    Parse {
        path: PathBuf,
        #[source]
        source: Box<toml::de::Error>,
    },
    #[error(
        "the config file {path} is invalid: [models] {key} = {value:?} is not a model name; give a model alias or id as claude takes it (opus, sonnet, claude-sonnet-5-5)"
    )]
    Model {
        path: PathBuf,
        key: &'static str,
        value: String,
    },
    #[error("{name}={value:?} is not {expected}; fix or unset it")]
    Env {
        name: &'static str,
        value: String,
        expected: &'static str,
    },
    #[error("{0}")]
    Locate(#[from] orchestrator_proto::locate::LocateError),
}

/// Reads the config file if it exists.
pub fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(FileConfig::default()),
        Err(source) => {
            return Err(ConfigError::Read {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    let file: FileConfig = toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        source: Box::new(e),
    })?;
    if let Some((_, key, value)) = file.models.not_a_name() {
        return Err(ConfigError::Model {
            path: path.to_path_buf(),
            key,
            value: value.to_owned(),
        });
    }
    Ok(file)
}

impl Config {
    /// Resolves the configuration from flags, the environment and the config file.
    pub fn resolve(socket: Option<&Path>, data_dir: Option<&Path>) -> Result<Self, ConfigError> {
        use orchestrator_proto::locate;
        let file = match locate::config_file() {
            Some(path) => read_file(&path)?,
            None => FileConfig::default(),
        };
        let env = |name: &str| std::env::var(name).ok().filter(|s| !s.is_empty());
        let log = env("ORCHESTRATOR_LOG")
            .or_else(|| env("RUST_LOG"))
            .or(file.daemon.log)
            .unwrap_or_else(|| DEFAULT_LOG.to_owned());
        let mcp_port = match std::env::var("ORCHESTRATOR_MCP_PORT") {
            Ok(v) if !v.is_empty() => Some(v.parse().map_err(|_| ConfigError::Env {
                name: "ORCHESTRATOR_MCP_PORT",
                value: v.clone(),
                expected: "a port number (1-65535)",
            })?),
            _ => file.mcp.port,
        };
        Ok(Self {
            socket: locate::socket_path(socket)?,
            data_dir: locate::data_dir(data_dir)?,
            log,
            mcp_port,
            permissions: file.agents.permissions.unwrap_or_default(),
            claude_bin: file.agents.claude_bin,
            codex_bin: file.agents.codex_bin,
            notifications: file.notifications.enabled.unwrap_or(true),
            webhooks: file.notifications.webhook.unwrap_or_default(),
            usage: file.usage.into(),
            supervision: file.supervision.into(),
            codex: file.codex.into(),
            worktrees: WorktreesSection {
                setup: file.worktrees.setup.filter(|s| !s.trim().is_empty()),
            },
            models: orchestrator_proto::Models {
                worker_agent: file.agents.worker.unwrap_or(file.models.worker_agent),
                ..file.models
            },
            log_dir: None,
        })
    }
}

impl From<UsageSection> for UsageSettings {
    fn from(f: UsageSection) -> Self {
        let d = UsageSettings::default();
        UsageSettings {
            poller: crate::usage::poller::PollerConfig {
                base_url: f.base_url.unwrap_or(d.poller.base_url),
                interval: f
                    .poll_interval_secs
                    .filter(|s| *s > 0)
                    .map_or(d.poller.interval, std::time::Duration::from_secs),
                user_agent: f.user_agent.unwrap_or(d.poller.user_agent),
            },
            grace: f.grace_secs.map_or(d.grace, std::time::Duration::from_secs),
            margin: f.reset_margin_secs.map_or(d.margin, |s| {
                time::Duration::seconds(i64::try_from(s).unwrap_or(i64::MAX))
            }),
        }
    }
}

impl From<SupervisionSection> for crate::engine::watch::Limits {
    fn from(f: SupervisionSection) -> Self {
        let d = Self::default();
        // 0 turns a watchdog off.
        let secs = |v: Option<u64>, d: Option<std::time::Duration>| match v {
            Some(0) => None,
            Some(s) => Some(std::time::Duration::from_secs(s)),
            None => d,
        };
        Self {
            stall: secs(f.stall_secs, d.stall),
            startup: secs(f.startup_secs, d.startup),
            wall: secs(f.task_timeout_secs, d.wall),
        }
    }
}

impl From<CodexSection> for CodexSettings {
    fn from(f: CodexSection) -> Self {
        let d = CodexSettings::default();
        CodexSettings {
            model: f.model.filter(|m| !m.is_empty()),
            worker_model: f.worker_model.filter(|m| !m.is_empty()),
            overrides: f.config.unwrap_or_default(),
            plan_review_rounds: f.plan_review_rounds.unwrap_or(d.plan_review_rounds),
            timeout: f
                .timeout_secs
                .filter(|s| *s > 0)
                .map_or(d.timeout, std::time::Duration::from_secs),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reference_config_parses() {
        let parsed: FileConfig = toml::from_str(REFERENCE).expect("reference parses");
        assert!(
            parsed.daemon.log.is_none(),
            "reference keys stay commented out"
        );
    }

    /// Every key the reference shows is one the daemon reads, with a value it takes.
    #[test]
    fn every_key_of_the_reference_is_a_real_one() {
        let uncommented: String = REFERENCE
            .lines()
            .map(|l| {
                let key = l.strip_prefix("# ").filter(|rest| {
                    rest.starts_with("[[")
                        || rest.split_once(" = ").is_some_and(|(k, _)| {
                            !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                        })
                });
                key.unwrap_or(l)
            })
            .collect::<Vec<_>>()
            .join("\n");
        let parsed: FileConfig =
            toml::from_str(&uncommented).unwrap_or_else(|e| panic!("{e}\n{uncommented}"));
        assert_eq!(
            parsed.agents.worker,
            Some(orchestrator_proto::Agent::Claude)
        );
        assert_eq!(parsed.codex.worker_model.as_deref(), Some("gpt-5-codex"));
        assert_eq!(parsed.models.on_limit, orchestrator_proto::OnLimit::Pause);
        let hooks = parsed.notifications.webhook.unwrap_or_default();
        assert_eq!(hooks.len(), 1);
        assert_eq!(hooks[0].format, crate::notify::webhook::Format::Ntfy);
    }

    #[test]
    fn unknown_keys_are_refused_with_the_path() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "[daemon]\nlgo = \"debug\"\n").expect("write");
        let err = read_file(&path).expect_err("unknown key");
        let text = err.to_string();
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(text.contains("lgo"), "{text}");
    }

    #[test]
    fn a_models_section_is_read_and_a_bad_model_or_effort_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.toml");
        let write = |t: &str| std::fs::write(&path, t).expect("write");
        write("[models]\nworker = \"sonnet\"\neffort = \"high\"\n");
        let m = read_file(&path).expect("parses").models;
        assert_eq!(m.worker.as_deref(), Some("sonnet"));
        assert_eq!(m.effort, Some(orchestrator_proto::Effort::High));
        write("[models]\nworker = \"so net\"\n");
        let text = read_file(&path).expect_err("not a name").to_string();
        assert!(
            text.contains("[models] worker = \"so net\" is not a model name"),
            "{text}"
        );
        write("[models]\neffort = \"huge\"\n");
        let text = read_file(&path).expect_err("not an effort").to_string();
        assert!(text.contains("expected one of `low`"), "{text}");
    }
}
