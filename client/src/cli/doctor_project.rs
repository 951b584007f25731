//! `orchestrate doctor --project DIR`: what a worktree of this project will and will not have.
//! A fresh worktree holds only what git tracks; this names the ignored files that matter —
//! configuration (`.env*`, `*.local*`) and install folders (`node_modules/`, `.venv/`) — and
//! says, for each, whether `.worktreeinclude` copies it, the setup in force creates it, or
//! nothing does (with the fix). Also the Codex provider's key, without which reviews fail.

use std::path::Path;
use std::process::Command;

use orchestrator_proto::doctor::{Check, CheckStatus};

use crate::client::{Client, RunRef};

fn check(
    name: &str,
    status: CheckStatus,
    detail: impl Into<String>,
    hint: Option<String>,
) -> Check {
    Check {
        name: name.into(),
        status,
        detail: detail.into(),
        hint,
    }
}

fn git_lines(dir: &Path, args: &[&str]) -> Option<Vec<String>> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .output()
        .ok()?;
    out.status.success().then(|| {
        String::from_utf8_lossy(&out.stdout)
            .split(['\0', '\n'])
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    })
}

/// Folders a package manager installs, and the setup that would create them.
fn install_folder(name: &str, top: &Path) -> Option<&'static str> {
    let has = |f: &str| top.join(f).exists();
    match name.trim_end_matches('/') {
        "node_modules" if has("pnpm-lock.yaml") => Some("pnpm install --frozen-lockfile"),
        "node_modules" if has("yarn.lock") => Some("yarn install --frozen-lockfile"),
        "node_modules" if has("package-lock.json") => Some("npm ci"),
        "node_modules" => Some("npm install"),
        ".venv" | "venv" if has("uv.lock") => Some("uv sync"),
        ".venv" | "venv" if has("poetry.lock") => Some("poetry install"),
        ".venv" | "venv" if has("requirements.txt") => {
            Some("python3 -m venv .venv && .venv/bin/pip install -r requirements.txt")
        }
        ".venv" | "venv" => Some("python3 -m venv .venv && .venv/bin/pip install -e ."),
        "vendor/bundle" => Some("bundle install"),
        _ => None,
    }
}

fn is_config(name: &str) -> bool {
    let base = name
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or(name);
    base.starts_with(".env") || base.contains(".local") || base == ".npmrc"
}

/// The checks for the project around `dir`.
pub async fn checks(client: &Client, dir: &Path) -> Vec<Check> {
    let mut out = Vec::new();
    let Some(top) = git_lines(dir, &["rev-parse", "--show-toplevel"])
        .and_then(|l| l.into_iter().next())
        .map(std::path::PathBuf::from)
    else {
        out.push(check(
            "project",
            CheckStatus::Fail,
            format!("{} is not inside a git work tree", dir.display()),
            Some("run it in the project, or pass --project <dir>".into()),
        ));
        return out;
    };
    out.push(check(
        "project",
        CheckStatus::Ok,
        top.display().to_string(),
        None,
    ));
    let asked = client
        .run(&RunRef::Project(top.display().to_string()))
        .await;
    let down = matches!(asked, Err(crate::error::ClientError::Unreachable { .. }));
    let last = asked.ok();
    let setup = last.as_ref().and_then(|r| r.options.setup.clone());
    out.push(setup_check(setup.as_deref(), down));
    if let Some(g) = last.as_ref().and_then(|r| r.options.gate.clone()) {
        out.push(check(
            "gate",
            CheckStatus::Ok,
            format!("`{g}` on every merge (from the project's last run)"),
            None,
        ));
    }
    out.extend(ignored_checks(&top, setup.as_deref()));
    out
}

/// The project's ignored files that a new worktree lacks: install folders (a setup creates
/// them, or a warning names one) and configuration (.worktreeinclude copies it, or a warning).
fn ignored_checks(top: &Path, setup: Option<&str>) -> Vec<Check> {
    let mut out = Vec::new();
    let ignored = git_lines(
        top,
        &[
            "ls-files",
            "-z",
            "--others",
            "--ignored",
            "--exclude-standard",
            "--directory",
        ],
    )
    .unwrap_or_default();
    let include = top.join(".worktreeinclude");
    let copied: Vec<String> = if include.is_file() {
        let from = format!("--exclude-from={}", include.display());
        git_lines(top, &["ls-files", "-z", "--others", "--ignored", &from]).unwrap_or_default()
    } else {
        Vec::new()
    };
    for entry in &ignored {
        let name = entry.trim_end_matches('/');
        if let Some(suggested) = install_folder(name, top) {
            out.push(match setup {
                Some(s) => check(
                    name,
                    CheckStatus::Ok,
                    format!("ignored; the setup `{s}` is to create it in each worktree"),
                    None,
                ),
                None => check(
                    name,
                    CheckStatus::Warn,
                    "ignored, so a worktree has none: workers and the gate cannot run the code",
                    Some(format!("orchestrate start … --setup \"{suggested}\"")),
                ),
            });
        } else if is_config(name) {
            let listed = copied
                .iter()
                .any(|c| c == name || c.starts_with(entry.as_str()));
            out.push(if listed {
                check(
                    name,
                    CheckStatus::Ok,
                    "ignored; .worktreeinclude copies it into each worktree",
                    None,
                )
            } else {
                check(
                    name,
                    CheckStatus::Warn,
                    "ignored, so a worktree has none",
                    Some(format!(
                        "if the code or its tests read it, add `{name}` to {}",
                        include.display()
                    )),
                )
            });
        }
    }
    out
}

/// Whether Codex reviews would find their provider's key.
pub fn codex_key() -> Option<Check> {
    let p = crate::forward::codex_provider()?;
    let key = p.env_key?;
    let set = std::env::var_os(&key).is_some_and(|v| !v.is_empty());
    Some(if set {
        check(
            "codex provider",
            CheckStatus::Ok,
            format!("{} ({} is set and goes to the reviews)", p.name, key),
            None,
        )
    } else {
        check(
            "codex provider",
            CheckStatus::Warn,
            format!(
                "{} (in {}) reads its key from {key}, which is not set here: reviews would fail",
                p.name,
                p.config.display()
            ),
            Some(format!(
                "export {key}=… in the shell that runs `orchestrate start`"
            )),
        )
    })
}

/// The setup in force for the project's next run, as far as doctor can tell.
fn setup_check(setup: Option<&str>, down: bool) -> Check {
    match setup {
        Some(s) => check(
            "setup",
            CheckStatus::Ok,
            format!("`{s}` runs in every new worktree (from the project's last run)"),
            None,
        ),
        // Doctor never starts the daemon, so it cannot know the project's last run.
        None if down => check(
            "setup",
            CheckStatus::Ok,
            "not known: the daemon is not running (it remembers the project's last setup)",
            Some("run `orchestrate status` first, then doctor again".into()),
        ),
        None => check(
            "setup",
            CheckStatus::Ok,
            "none in force (the next start takes [worktrees] setup, or --setup)",
            None,
        ),
    }
}
