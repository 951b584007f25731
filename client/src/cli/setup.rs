//! `orchestrate setup [--uninstall]`: installs the `/orchestrate` slash command for Claude Code
//! into `$CLAUDE_CONFIG_DIR/commands/` (default `~/.claude/commands/`). Idempotent.

use std::path::PathBuf;

use clap::Args;

use crate::error::ClientError;

/// The command's text, from `commands/orchestrate.md`.
pub const COMMAND: &str = include_str!("../../../commands/orchestrate.md");

#[derive(Debug, Args)]
pub struct SetupArgs {
    /// Remove the slash command instead
    #[arg(long)]
    uninstall: bool,
}

fn commands_dir() -> Result<PathBuf, ClientError> {
    if let Some(dir) = std::env::var_os("CLAUDE_CONFIG_DIR").filter(|d| !d.is_empty()) {
        return Ok(PathBuf::from(dir).join("commands"));
    }
    let home = orchestrator_proto::locate::home_dir().ok_or_else(|| {
        ClientError::usage(
            "cannot find Claude Code's config directory: neither CLAUDE_CONFIG_DIR nor HOME is set",
            "set CLAUDE_CONFIG_DIR to Claude Code's config directory (usually ~/.claude)",
        )
    })?;
    Ok(home.join(".claude").join("commands"))
}

pub fn run(a: SetupArgs) -> Result<(), ClientError> {
    let dir = commands_dir()?;
    let path = dir.join("orchestrate.md");
    let io = |what: &str, e: std::io::Error| {
        ClientError::usage(
            format!("cannot {what} {}: {e}", path.display()),
            "check the directory's permissions, or set CLAUDE_CONFIG_DIR",
        )
    };
    if a.uninstall {
        match std::fs::remove_file(&path) {
            Ok(()) => crate::outln!("Removed the /orchestrate command ({}).", path.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                crate::outln!(
                    "The /orchestrate command is not installed ({}).",
                    path.display()
                );
            }
            Err(e) => return Err(io("remove", e)),
        }
        return Ok(());
    }
    if std::fs::read_to_string(&path).is_ok_and(|t| t == COMMAND) {
        crate::outln!(
            "The /orchestrate command is up to date ({}).",
            path.display()
        );
        return Ok(());
    }
    std::fs::create_dir_all(&dir).map_err(|e| io("create the folder of", e))?;
    std::fs::write(&path, COMMAND).map_err(|e| io("write", e))?;
    crate::outln!("Installed the /orchestrate command: {}", path.display());
    crate::outln!("  In Claude Code, in any project: /orchestrate <describe the feature>");
    Ok(())
}
