//! `orchestrate daemon install|uninstall`: runs orchestratord as a service of the user's
//! session — a systemd user unit on Linux, a launchd agent on macOS — from the templates in
//! `systemd/` and `launchd/`, with the real binary path filled in. Idempotent; says exactly
//! what it did, and what to do where the service manager is missing. Once installed,
//! `daemon start|stop|restart` go through the service manager ([`control`]).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::ClientError;

pub const UNIT: &str = include_str!("../../../systemd/orchestratord.service");
pub const PLIST: &str = include_str!("../../../launchd/dev.orchestrator.orchestratord.plist");
const UNIT_NAME: &str = "orchestratord.service";
const LABEL: &str = "dev.orchestrator.orchestratord";

fn home() -> Result<PathBuf, ClientError> {
    orchestrator_proto::locate::home_dir()
        .ok_or_else(|| ClientError::usage("HOME is not set", "run it from your login session"))
}

/// Where the service file goes on this platform.
pub fn service_file() -> Result<PathBuf, ClientError> {
    if cfg!(target_os = "macos") {
        return Ok(home()?
            .join("Library/LaunchAgents")
            .join(format!("{LABEL}.plist")));
    }
    let config = orchestrator_proto::locate::user_config_dir()
        .ok_or_else(|| ClientError::usage("HOME is not set", "run it from your login session"))?;
    Ok(config.join("systemd/user").join(UNIT_NAME))
}

/// The service file's content for `daemon` (and, for launchd, its log directory; systemd's
/// journal keeps the log of the unit).
pub fn render(daemon: &Path, log_dir: &Path) -> String {
    if cfg!(target_os = "macos") {
        render_plist(PLIST, daemon, log_dir)
    } else {
        render_unit(UNIT, daemon)
    }
}

/// The systemd unit with `daemon` in `ExecStart`, quoted and escaped as systemd reads it
/// (spaces, quotes, backslashes, `%` specifiers and `$` variables); comment lines are kept
/// as written.
fn render_unit(template: &str, daemon: &Path) -> String {
    let path = daemon.display().to_string();
    let escaped = path
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('%', "%%")
        .replace('$', "$$");
    // Quoted only where it has to be, so a plain path reads as itself.
    let value = if path.contains(|c: char| c.is_whitespace() || matches!(c, '"' | '\\' | '\'')) {
        format!("\"{escaped}\"")
    } else {
        escaped
    };
    template
        .lines()
        .map(|l| {
            if l.trim_start().starts_with('#') {
                l.to_owned()
            } else {
                l.replace("@ORCHESTRATORD@", &value)
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

/// The launchd plist with the paths XML-escaped, in its `<string>` values only (the comment
/// naming the placeholders is kept).
fn render_plist(template: &str, daemon: &Path, log_dir: &Path) -> String {
    let xml = |p: &Path| {
        p.display()
            .to_string()
            .replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
            .replace('"', "&quot;")
            .replace('\'', "&apos;")
    };
    template
        .replace(
            "<string>@ORCHESTRATORD@</string>",
            &format!("<string>{}</string>", xml(daemon)),
        )
        .replace(
            "<string>@LOGDIR@</string>",
            &format!("<string>{}</string>", xml(log_dir)),
        )
        .replace(
            "<string>@LOG@</string>",
            &format!(
                "<string>{}</string>",
                xml(&log_dir.join(orchestrator_proto::locate::STDERR_LOG))
            ),
        )
}

/// Runs a service-manager command; `Ok(false)` when the program is not installed.
fn manage(program: &str, args: &[&str]) -> Result<bool, ClientError> {
    match Command::new(program).args(args).output() {
        Ok(out) if out.status.success() => {
            crate::outln!("  ran: {program} {}", args.join(" "));
            Ok(true)
        }
        Ok(out) => Err(ClientError::Autostart(format!(
            "`{program} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(ClientError::Autostart(format!("cannot run {program}: {e}"))),
    }
}

pub fn install(data_dir: &Path) -> Result<(), ClientError> {
    let daemon = crate::autostart::daemon_binary()?;
    let daemon = std::fs::canonicalize(&daemon).unwrap_or(daemon);
    let path = service_file()?;
    let log_dir = data_dir.join(orchestrator_proto::locate::LOG_DIR);
    let content = render(&daemon, &log_dir);
    let write_err = |e: std::io::Error| {
        ClientError::usage(
            format!("cannot write {}: {e}", path.display()),
            "check the folder's permissions",
        )
    };
    if std::fs::read_to_string(&path).is_ok_and(|t| t == content) {
        crate::outln!("The service file is up to date: {}", path.display());
    } else {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(write_err)?;
        }
        std::fs::write(&path, &content).map_err(write_err)?;
        crate::outln!("Wrote {}", path.display());
    }
    let managed = if cfg!(target_os = "macos") {
        // launchd opens the stderr file there before the daemon can make the directory.
        std::fs::create_dir_all(&log_dir).map_err(|e| {
            ClientError::usage(
                format!("cannot create {}: {e}", log_dir.display()),
                "check the data directory's permissions",
            )
        })?;
        let uid = nix::unistd::getuid();
        let domain = format!("gui/{uid}");
        // bootout first so a changed plist is reloaded; it fails harmlessly when not loaded.
        let _ = Command::new("launchctl")
            .args(["bootout", &format!("{domain}/{LABEL}")])
            .output();
        manage(
            "launchctl",
            &["bootstrap", &domain, &path.display().to_string()],
        )?
    } else {
        manage("systemctl", &["--user", "daemon-reload"])?
            && manage("systemctl", &["--user", "enable", "--now", UNIT_NAME])?
    };
    if managed {
        crate::outln!("orchestratord now runs as a service and restarts on failure.");
    } else {
        let manager = if cfg!(target_os = "macos") {
            "launchctl"
        } else {
            "systemctl"
        };
        crate::outln!(
            "{manager} is not available here, so the service was not enabled; orchestrate keeps starting the daemon on demand."
        );
    }
    Ok(())
}

pub fn uninstall() -> Result<(), ClientError> {
    let path = service_file()?;
    if cfg!(target_os = "macos") {
        let uid = nix::unistd::getuid();
        let _ = manage("launchctl", &["bootout", &format!("gui/{uid}/{LABEL}")]);
    } else if path.exists() {
        let _ = manage("systemctl", &["--user", "disable", "--now", UNIT_NAME]);
    }
    match std::fs::remove_file(&path) {
        Ok(()) => crate::outln!("Removed {}", path.display()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            crate::outln!("No service file to remove ({}).", path.display());
        }
        Err(e) => {
            return Err(ClientError::usage(
                format!("cannot remove {}: {e}", path.display()),
                "check the folder's permissions",
            ));
        }
    }
    if !cfg!(target_os = "macos") {
        let _ = manage("systemctl", &["--user", "daemon-reload"]);
    }
    Ok(())
}

/// What `daemon start|stop|restart` asks of the service manager.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Start,
    Stop,
    Restart,
}

/// Whether the service file is installed.
pub fn installed() -> bool {
    service_file().is_ok_and(|p| p.exists())
}

/// Starts, stops or restarts the installed service; `Ok(false)` when the service manager is not
/// available (the caller then acts on the daemon directly).
pub fn control(action: Action) -> Result<bool, ClientError> {
    if cfg!(target_os = "macos") {
        let uid = nix::unistd::getuid();
        let target = format!("gui/{uid}/{LABEL}");
        let plist = service_file()?.display().to_string();
        return match action {
            // Loaded agents start with kickstart; bootstrap first in case it was booted out.
            Action::Start => {
                let _ = Command::new("launchctl")
                    .args(["bootstrap", &format!("gui/{uid}"), &plist])
                    .output();
                manage("launchctl", &["kickstart", &target])
            }
            Action::Restart => manage("launchctl", &["kickstart", "-k", &target]),
            // A clean exit is not restarted (KeepAlive: SuccessfulExit false).
            Action::Stop => manage("launchctl", &["kill", "SIGTERM", &target]),
        };
    }
    let verb = match action {
        Action::Start => "start",
        Action::Stop => "stop",
        Action::Restart => "restart",
    };
    manage("systemctl", &["--user", verb, UNIT_NAME])
}

#[cfg(test)]
mod render_tests {
    use super::*;

    #[test]
    fn odd_paths_are_escaped_for_systemd_and_for_xml_and_comments_stay() {
        let odd = Path::new("/home/a b/100%/$HOME/\"q\"/orchestratord");
        let unit = render_unit(UNIT, odd);
        let exec = unit
            .lines()
            .find(|l| l.starts_with("ExecStart="))
            .expect("ExecStart");
        assert_eq!(
            exec,
            "ExecStart=\"/home/a b/100%%/$$HOME/\\\"q\\\"/orchestratord\""
        );
        assert!(
            unit.contains("in place of @ORCHESTRATORD@"),
            "the comment is kept"
        );
        let plain = render_unit(UNIT, Path::new("/usr/bin/orchestratord"));
        assert!(
            plain.contains("\nExecStart=/usr/bin/orchestratord\n"),
            "{plain}"
        );
        let plist = render_plist(PLIST, Path::new("/Users/a&b/<o>"), Path::new("/l'og"));
        assert!(
            plist.contains("<string>/Users/a&amp;b/&lt;o&gt;</string>"),
            "{plist}"
        );
        assert!(plist.contains("<string>/l&apos;og</string>"), "{plist}");
        assert!(
            plist.contains("<string>/l&apos;og/orchestratord.stderr</string>"),
            "{plist}"
        );
        assert!(
            plist.contains("in place of @ORCHESTRATORD@, @LOGDIR@"),
            "the comment is kept"
        );
    }
}
