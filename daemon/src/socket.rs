//! Claiming the daemon's place: the data-dir lock and the Unix socket.
//!
//! **Invariant:** one daemon per data directory (an exclusive lock on `orchestratord.lock`,
//! released by the kernel when the process dies, however it dies) and one per socket (a socket
//! somebody answers on is never taken over; one nobody answers on is stale and replaced).

use std::fs::{DirBuilder, File, OpenOptions, Permissions};
use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    #[error("cannot create {path}: {source}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "another orchestratord (pid {pid}) already uses the data directory {dir}; \
         stop it with `orchestrate daemon stop`, or use another ORCHESTRATOR_DATA_DIR"
    )]
    DataDirBusy { dir: PathBuf, pid: String },
    #[error("cannot lock {path}: {source}")]
    Lock {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "a daemon already answers on {0}; stop it with `orchestrate daemon stop`, \
         or choose another socket with --socket or ORCHESTRATOR_SOCKET"
    )]
    SocketInUse(PathBuf),
    #[error("cannot listen on {path}: {source}")]
    Bind {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Holds the data directory for this process; dropping it releases the lock.
#[derive(Debug)]
pub struct InstanceLock {
    _file: File,
}

/// Creates `dir` (and missing parents) with mode 0700.
pub fn private_dir(dir: &Path) -> Result<(), ClaimError> {
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|source| ClaimError::CreateDir {
            path: dir.to_path_buf(),
            source,
        })
}

/// How long a starting daemon waits for a previous one that is exiting to release the lock.
const BUSY_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// Takes the exclusive lock on `<data_dir>/orchestratord.lock` and writes our pid into it.
pub fn lock_data_dir(data_dir: &Path) -> Result<InstanceLock, ClaimError> {
    private_dir(data_dir)?;
    let path = data_dir.join("orchestratord.lock");
    let lock_err = |source| ClaimError::Lock {
        path: path.clone(),
        source,
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(lock_err)?;
    // A daemon that was just asked to stop has closed its socket but may still be exiting
    // (`daemon restart`, `systemctl restart`): give it a moment before calling the dir busy.
    let deadline = std::time::Instant::now() + BUSY_WAIT;
    loop {
        match file.try_lock() {
            Ok(()) => break,
            Err(std::fs::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                let pid = std::fs::read_to_string(&path).unwrap_or_default();
                return Err(ClaimError::DataDirBusy {
                    dir: data_dir.to_path_buf(),
                    pid: pid.trim().to_owned(),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(lock_err(e)),
        }
    }
    file.set_len(0).map_err(lock_err)?;
    writeln!(file, "{}", std::process::id()).map_err(lock_err)?;
    Ok(InstanceLock { _file: file })
}

/// The socket file this process bound. Dropping it removes the file, but only while the path
/// still holds *our* socket (same inode): a daemon that replaced it keeps its own.
#[derive(Debug)]
pub struct BoundSocket {
    path: PathBuf,
    inode: (u64, u64),
}

impl Drop for BoundSocket {
    fn drop(&mut self) {
        if inode(&self.path) == Some(self.inode) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

fn inode(path: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    std::fs::symlink_metadata(path)
        .ok()
        .map(|m| (m.dev(), m.ino()))
}

/// Binds the socket in a 0700 directory with mode 0600, replacing a stale socket file.
/// Must be called inside a tokio runtime.
pub fn bind(path: &Path) -> Result<(tokio::net::UnixListener, BoundSocket), ClaimError> {
    if let Some(dir) = path.parent() {
        let existed = dir.exists();
        private_dir(dir)?;
        if !existed {
            tracing::debug!(dir = %dir.display(), "created the socket directory (0700)");
        }
    }
    if path.exists() {
        match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) => return Err(ClaimError::SocketInUse(path.to_path_buf())),
            Err(_) => {
                tracing::info!(socket = %path.display(), "replacing a stale socket nobody answers on");
                let _ = std::fs::remove_file(path);
            }
        }
    }
    let bind_err = |source| ClaimError::Bind {
        path: path.to_path_buf(),
        source,
    };
    let listener = tokio::net::UnixListener::bind(path).map_err(bind_err)?;
    std::fs::set_permissions(path, Permissions::from_mode(0o600)).map_err(bind_err)?;
    let bound = BoundSocket {
        path: path.to_path_buf(),
        inode: inode(path).ok_or_else(|| bind_err(std::io::Error::other("the socket vanished")))?,
    };
    Ok((listener, bound))
}
