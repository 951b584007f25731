//! Where the daemon's socket and data live: the rendezvous both sides of the socket must agree
//! on, so it sits beside the wire types.
//!
//! Order of precedence, highest first: a `--socket`/`--data-dir` flag, the
//! `ORCHESTRATOR_SOCKET`/`ORCHESTRATOR_DATA_DIR` environment variables, the platform default.

use std::path::{Path, PathBuf};

use directories::ProjectDirs;

pub const SOCKET_ENV: &str = "ORCHESTRATOR_SOCKET";
pub const DATA_DIR_ENV: &str = "ORCHESTRATOR_DATA_DIR";
pub const CONFIG_ENV: &str = "ORCHESTRATOR_CONFIG";
pub const SOCKET_FILE: &str = "orchestratord.sock";
/// The daemon's log files, under its data dir, when `orchestrate` or launchd starts it.
pub const LOG_DIR: &str = "logs";
/// Beside the daily logs: what the daemon writes to stderr (a panic, a failure before its
/// logging is up).
pub const STDERR_LOG: &str = "orchestratord.stderr";

/// `sun_path` holds 108 bytes on Linux and 104 on macOS, including the terminating NUL.
#[cfg(target_os = "macos")]
pub const MAX_SOCKET_PATH: usize = 103;
#[cfg(not(target_os = "macos"))]
pub const MAX_SOCKET_PATH: usize = 107;

#[derive(Debug)]
pub enum LocateError {
    /// Neither `$HOME` nor an override: nowhere per-user to put things.
    NoHome(&'static str),
    /// An explicitly given socket path does not fit in `sun_path`.
    SocketPathTooLong(PathBuf),
}

impl std::fmt::Display for LocateError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoHome(what) => write!(
                f,
                "cannot find a per-user directory for the {what}: $HOME is not set; \
                 set HOME, or set {} and {}",
                SOCKET_ENV, DATA_DIR_ENV
            ),
            Self::SocketPathTooLong(p) => write!(
                f,
                "socket path {} is {} bytes, longer than the {MAX_SOCKET_PATH} a Unix socket allows; \
                 choose a shorter {SOCKET_ENV} or --socket",
                p.display(),
                p.as_os_str().len()
            ),
        }
    }
}

impl std::error::Error for LocateError {}

fn project_dirs() -> Option<ProjectDirs> {
    ProjectDirs::from("dev", "orchestrator", "orchestrator")
}

fn non_empty_env(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// The socket path: `flag`, else `$ORCHESTRATOR_SOCKET`, else
/// `$XDG_RUNTIME_DIR/orchestrator/orchestratord.sock`, else a per-user state directory, else
/// (when that path is too long for a socket) `/tmp/orchestratord-<uid>/orchestratord.sock`.
pub fn socket_path(flag: Option<&Path>) -> Result<PathBuf, LocateError> {
    if let Some(p) = flag
        .map(Path::to_path_buf)
        .or_else(|| non_empty_env(SOCKET_ENV))
    {
        return if p.as_os_str().len() > MAX_SOCKET_PATH {
            Err(LocateError::SocketPathTooLong(p))
        } else {
            Ok(p)
        };
    }
    let dirs = project_dirs().ok_or(LocateError::NoHome("socket"))?;
    let dir = dirs
        .runtime_dir()
        .or_else(|| dirs.state_dir())
        .unwrap_or_else(|| dirs.data_local_dir())
        .to_path_buf();
    let path = dir.join(SOCKET_FILE);
    if path.as_os_str().len() <= MAX_SOCKET_PATH {
        Ok(path)
    } else {
        let uid = nix::unistd::getuid();
        Ok(std::env::temp_dir()
            .join(format!("orchestratord-{uid}"))
            .join(SOCKET_FILE))
    }
}

/// The data directory (SQLite database, daemon log): `flag`, else `$ORCHESTRATOR_DATA_DIR`, else
/// the per-user data directory (`~/.local/share/orchestrator` on Linux).
pub fn data_dir(flag: Option<&Path>) -> Result<PathBuf, LocateError> {
    if let Some(p) = flag
        .map(Path::to_path_buf)
        .or_else(|| non_empty_env(DATA_DIR_ENV))
    {
        return Ok(p);
    }
    Ok(project_dirs()
        .ok_or(LocateError::NoHome("data directory"))?
        .data_dir()
        .to_path_buf())
}

/// The user's home directory (`$HOME`, else the system's record of the user).
pub fn home_dir() -> Option<PathBuf> {
    directories::BaseDirs::new().map(|d| d.home_dir().to_path_buf())
}

/// The user's configuration directory (`$XDG_CONFIG_HOME`, else `~/.config`; on macOS
/// `~/Library/Application Support`).
pub fn user_config_dir() -> Option<PathBuf> {
    directories::BaseDirs::new().map(|d| d.config_dir().to_path_buf())
}

/// The first executable file named `program` in the directories of `path` (a `PATH` value).
pub fn on_path(path: &std::ffi::OsStr, program: &str) -> Option<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    std::env::split_paths(path)
        .map(|d| d.join(program))
        .find(|p| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
}

/// The daemon's optional config file: `$ORCHESTRATOR_CONFIG`, else
/// `~/.config/orchestrator/config.toml`.
pub fn config_file() -> Option<PathBuf> {
    non_empty_env(CONFIG_ENV).or_else(|| project_dirs().map(|d| d.config_dir().join("config.toml")))
}
