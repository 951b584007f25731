//! `orchestrate doctor [--json]`: what a run needs, checked from the user's side — the agent
//! CLIs and their versions, git, the daemon and its socket, the MCP endpoint, which Claude
//! credentials would be used (never the secret itself), and leftovers of finished runs. Exit
//! status 1 when anything fails.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use clap::Args;
use orchestrator_proto::doctor::{Check, CheckStatus, DoctorReport};

use super::Format;
use crate::client::Client;
use crate::error::ClientError;

/// The versions the test suite drives for real.
const TESTED_CLAUDE: &str = "2.1.330";
const TESTED_CODEX: &str = "0.169.0";

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Also explain what a worktree of this project will and will not have (ignored files,
    /// the setup in force)
    #[arg(long, short = 'p', value_name = "DIR")]
    project: Option<PathBuf>,
    #[command(flatten)]
    format: Format,
}

fn check(name: &str, status: CheckStatus, detail: impl Into<String>, hint: Option<&str>) -> Check {
    Check {
        name: name.into(),
        status,
        detail: detail.into(),
        hint: hint.map(str::to_owned),
    }
}

fn find(program: &str, var: &str) -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(var).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(p));
    }
    std::env::var_os("PATH").and_then(|path| orchestrator_proto::locate::on_path(&path, program))
}

/// `<bin> --version`, first line, with a deadline.
fn version(bin: &Path) -> Result<String, String> {
    let mut child = Command::new(bin)
        .arg("--version")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(_status) = child.try_wait().map_err(|e| e.to_string())? {
            let out = child.wait_with_output().map_err(|e| e.to_string())?;
            return Ok(String::from_utf8_lossy(&out.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_owned());
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            return Err("`--version` did not answer within 15 s".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn agent(name: &str, program: &str, var: &str, tested: &str, required: bool, hint: &str) -> Check {
    let Some(bin) = find(program, var) else {
        let status = if required {
            CheckStatus::Fail
        } else {
            CheckStatus::Warn
        };
        return check(
            name,
            status,
            format!("{program} is not on PATH and {var} is not set"),
            Some(hint),
        );
    };
    match version(&bin) {
        Ok(v) if v.contains(tested) => check(
            name,
            CheckStatus::Ok,
            format!("{v} ({})", bin.display()),
            None,
        ),
        Ok(v) => check(
            name,
            CheckStatus::Warn,
            format!("{v} ({}); the tested version is {tested}", bin.display()),
            Some("it will probably work; if sessions misbehave, try the tested version"),
        ),
        Err(e) => check(
            name,
            CheckStatus::Fail,
            format!("{} does not run: {e}", bin.display()),
            Some(hint),
        ),
    }
}

fn credentials() -> Check {
    let name = "claude credentials";
    if std::env::var_os("CLAUDE_CODE_OAUTH_TOKEN").is_some_and(|v| !v.is_empty()) {
        return check(
            name,
            CheckStatus::Ok,
            "CLAUDE_CODE_OAUTH_TOKEN (subscription) from the environment",
            None,
        );
    }
    let dir = std::env::var_os("CLAUDE_CONFIG_DIR")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".claude")));
    if let Some(file) = dir.map(|d| d.join(".credentials.json"))
        && file.is_file()
    {
        return check(
            name,
            CheckStatus::Ok,
            format!("subscription login in {}", file.display()),
            None,
        );
    }
    if cfg!(target_os = "macos") {
        return check(
            name,
            CheckStatus::Ok,
            "the macOS Keychain (\"Claude Code-credentials\"), if you logged in with `claude`",
            None,
        );
    }
    if std::env::var_os("ANTHROPIC_API_KEY").is_some_and(|v| !v.is_empty()) {
        return check(
            name,
            CheckStatus::Warn,
            "ANTHROPIC_API_KEY (API billing): the 5-hour subscription window does not apply",
            None,
        );
    }
    check(
        name,
        CheckStatus::Fail,
        "no Claude login found (no CLAUDE_CODE_OAUTH_TOKEN, no .credentials.json, no ANTHROPIC_API_KEY)",
        Some("run `claude` once and log in"),
    )
}

fn mode(p: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p)
        .ok()
        .map(|m| m.permissions().mode() & 0o777)
}

pub async fn run(a: DoctorArgs, socket: &Path) -> Result<(), ClientError> {
    let mut checks = vec![
        agent(
            "claude",
            "claude",
            "ORCHESTRATOR_CLAUDE_BIN",
            TESTED_CLAUDE,
            true,
            "install Claude Code (npm install -g @anthropic-ai/claude-code) or set ORCHESTRATOR_CLAUDE_BIN",
        ),
        agent(
            "codex",
            "codex",
            "ORCHESTRATOR_CODEX_BIN",
            TESTED_CODEX,
            false,
            "install Codex (npm install -g @openai/codex) for reviews, or start runs with --skip-codex",
        ),
        credentials(),
    ];
    checks.extend(super::doctor_project::codex_key());
    checks.push(match version(Path::new("git")) {
        Ok(v) => check("git", CheckStatus::Ok, v, None),
        Err(e) => check(
            "git",
            CheckStatus::Fail,
            format!("git does not run: {e}"),
            Some("install git"),
        ),
    });
    let client = Client::new(socket)?;
    match client.health().await {
        Ok(h) => checks.extend(daemon_checks(&client, &h, socket).await),
        Err(ClientError::Unreachable { .. }) => checks.push(check(
            "daemon",
            CheckStatus::Ok,
            format!(
                "not running (nothing answers on {}); any command starts it",
                socket.display()
            ),
            None,
        )),
        Err(e) => checks.push(check(
            "daemon",
            CheckStatus::Fail,
            e.to_string(),
            e.hint().as_deref(),
        )),
    }
    if let Some(dir) = &a.project {
        checks.extend(super::doctor_project::checks(&client, dir).await);
    }
    let failed = checks.iter().any(|c| c.status == CheckStatus::Fail);
    let report = DoctorReport { checks };
    if a.format.json {
        crate::output::json(&report)?;
    } else {
        print(&report);
    }
    if failed {
        std::process::exit(1);
    }
    Ok(())
}

/// The checks that need the running daemon: it, its MCP endpoint and socket, stray sessions and
/// leftovers of finished runs.
async fn daemon_checks(
    client: &Client,
    h: &orchestrator_proto::Health,
    socket: &Path,
) -> Vec<Check> {
    let mut out = Vec::new();
    out.push(check(
        "daemon",
        CheckStatus::Ok,
        format!(
            "orchestratord {} (protocol {}), pid {}, {}",
            h.daemon_version,
            h.protocol_version,
            h.pid,
            orchestrator_proto::words::count(h.active_runs, "active run")
        ),
        None,
    ));
    out.push(check(
        "mcp endpoint",
        CheckStatus::Ok,
        h.mcp_url.clone(),
        None,
    ));
    let dir_ok = socket.parent().and_then(mode) == Some(0o700);
    let sock_ok = mode(socket) == Some(0o600);
    out.push(if dir_ok && sock_ok {
        check(
            "socket",
            CheckStatus::Ok,
            format!("{} (0600, in a 0700 folder)", socket.display()),
            None,
        )
    } else {
        check(
            "socket",
            CheckStatus::Fail,
            format!("{} is readable by others", socket.display()),
            Some(
                "restart the daemon (`orchestrate daemon stop`); it recreates the socket privately",
            ),
        )
    });
    let stray = client.stray_sessions().await.unwrap_or_default();
    out.push(if stray.is_empty() {
        check("sessions", CheckStatus::Ok, "no stray agent processes", None)
    } else {
        let list: Vec<String> = stray
            .iter()
            .map(|s| format!("{} ({} of {}, pid {})", s.session, s.role, s.run_id, s.pid))
            .collect();
        check(
            "sessions",
            CheckStatus::Warn,
            format!("agent processes still running for sessions that are over: {}", list.join(", ")),
            Some("the daemon stops them when it starts; `orchestrate daemon restart`, or `kill` the pids"),
        )
    });
    out.push(leftovers(client, h).await);

    out
}

fn print(report: &DoctorReport) {
    for c in &report.checks {
        let mark = match c.status {
            CheckStatus::Ok => "ok  ",
            CheckStatus::Warn => "warn",
            CheckStatus::Fail => "FAIL",
        };
        crate::outln!("{mark}  {:<20} {}", c.name, c.detail);
        if let Some(h) = &c.hint {
            crate::outln!("      {:<20} hint: {h}", "");
        }
    }
}

/// Worktrees of runs that are over (an empty folder is nothing left behind).
async fn leftovers(client: &Client, h: &orchestrator_proto::Health) -> Check {
    // Worktrees of runs that are over are leftovers.
    let runs = client.list(&Default::default()).await.unwrap_or_default();
    let finished: Vec<&str> = runs
        .iter()
        .filter(|r| !r.status.is_active())
        .map(|r| r.id.as_str())
        .collect();
    let dir = PathBuf::from(&h.data_dir).join("worktrees");
    let stale: Vec<String> = std::fs::read_dir(&dir)
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    // An empty folder is nothing left behind.
    let stale: Vec<String> = stale
        .into_iter()
        .filter(|r| finished.contains(&r.as_str()))
        .filter(|r| std::fs::read_dir(dir.join(r)).is_ok_and(|mut d| d.next().is_some()))
        .collect();
    if stale.is_empty() {
        check(
            "worktrees",
            CheckStatus::Ok,
            "no leftovers of finished runs",
            None,
        )
    } else {
        check(
            "worktrees",
            CheckStatus::Warn,
            format!(
                "finished runs left worktrees in {}: {}",
                dir.display(),
                stale.join(", ")
            ),
            Some(
                "`orchestrate clean --dry-run` shows what they hold; `orchestrate clean` removes what is merged and keeps the rest",
            ),
        )
    }
}
