//! Keeping the database from vanishing: a private data dir and 0600 files, an integrity check
//! at start, a refusal to start empty where the data dir shows runs existed, rolling online
//! backups (SQLite's backup API), a checkpointed close on every clean stop, and the restore
//! that `orchestratord --restore <file>` performs.
//!
//! **Invariants:** after a clean stop the main database file holds everything (the WAL is
//! checkpointed and removed); the daemon never starts on a database that fails `quick_check`,
//! nor on an empty one where backups or run worktrees show it held runs — it says what it
//! found and how to restore; a backup is a complete database, written to a temp name and
//! renamed, so a crash mid-backup never leaves a half file under a backup's name.

use std::path::{Path, PathBuf};

use rusqlite::Connection;

use super::StoreError;

/// Backups kept in `<data_dir>/backups/` (the oldest go first).
pub const BACKUPS_KEPT: usize = 6;

/// Where the backups of the database at `db` go.
pub fn backups_dir(db: &Path) -> PathBuf {
    db.with_file_name("backups")
}

/// The data dir is private (it holds the forwarded environment, API keys included): created
/// 0700, an existing one tightened to 0700, refused with the fix when that is not possible.
pub fn private_dir(dir: &Path) -> Result<(), StoreError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let err = |source| StoreError::Dir {
        path: dir.to_path_buf(),
        source,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(err)?;
    let meta = std::fs::metadata(dir).map_err(err)?;
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(|e| {
            StoreError::Private {
                path: dir.to_path_buf(),
                mode,
                source: e,
            }
        })?;
        tracing::warn!(dir = %dir.display(), was = format!("{mode:o}"), "tightened the data dir to 0700");
    }
    Ok(())
}

/// Makes `path` (created if missing) readable by its owner only; SQLite gives the WAL and
/// shared-memory files the database file's mode.
pub fn private_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
}

/// `PRAGMA quick_check`, and the refusal to start empty where runs existed.
pub fn check(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let mut stmt = conn.prepare("PRAGMA quick_check")?;
    let problems: Vec<String> = stmt
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<Result<_, _>>()?;
    if problems != ["ok"] {
        return Err(StoreError::Corrupt {
            path: path.to_path_buf(),
            detail: problems.into_iter().take(3).collect::<Vec<_>>().join("; "),
            fix: restore_hint(path),
        });
    }
    Ok(())
}

/// After migrating: a database without runs where the data dir shows it had some.
pub fn check_not_emptied(conn: &Connection, path: &Path) -> Result<(), StoreError> {
    let runs: i64 = conn.query_row("SELECT count(*) FROM runs", [], |r| r.get(0))?;
    if runs > 0 {
        return Ok(());
    }
    let mut evidence = Vec::new();
    if let Some(newest) = newest_backup(path) {
        evidence.push(format!("the backup {} exists", newest.display()));
    }
    let worktrees = path.with_file_name("worktrees");
    let held = std::fs::read_dir(&worktrees)
        .map(|d| {
            d.flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with("r-"))
                .count()
        })
        .unwrap_or(0);
    if held > 0 {
        evidence.push(format!(
            "{} holds the worktrees of {}",
            worktrees.display(),
            orchestrator_proto::words::count(held as u64, "run")
        ));
    }
    if evidence.is_empty() {
        return Ok(());
    }
    Err(StoreError::Emptied {
        path: path.to_path_buf(),
        evidence: evidence.join(" and "),
        fix: restore_hint(path),
    })
}

/// How to get a sound database back, for the errors that refuse one.
pub fn restore_hint(path: &Path) -> String {
    match newest_backup(path) {
        Some(b) => format!(
            "restore the newest backup with `orchestratord --restore {}` (all backups: `ls {}`)",
            b.display(),
            backups_dir(path).display()
        ),
        None => format!(
            "there is no backup in {}; move {} (and its -wal file) away to start with no runs",
            backups_dir(path).display(),
            path.display()
        ),
    }
}

/// The backups of the database at `db`, oldest first (their names sort by time).
pub fn backups(db: &Path) -> Vec<PathBuf> {
    let mut all: Vec<PathBuf> = std::fs::read_dir(backups_dir(db))
        .map(|d| {
            d.flatten()
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("orchestrator-") && n.ends_with(".db"))
                })
                .collect()
        })
        .unwrap_or_default();
    all.sort();
    all
}

fn newest_backup(db: &Path) -> Option<PathBuf> {
    backups(db).pop()
}

/// An online backup of `conn` into `<data_dir>/backups/orchestrator-<UTC time>.db`, then the
/// oldest beyond [`BACKUPS_KEPT`] removed. Runs on the database thread.
///
/// A database without runs is not backed up (`None`): an empty backup would only hide
/// that runs were lost.
pub fn backup(conn: &Connection, db: &Path) -> Result<Option<PathBuf>, StoreError> {
    let runs: i64 = conn.query_row("SELECT count(*) FROM runs", [], |r| r.get(0))?;
    if runs == 0 {
        return Ok(None);
    }
    let dir = backups_dir(db);
    private_dir(&dir)?;
    let stamp = time::OffsetDateTime::now_utc()
        .format(time::macros::format_description!(
            "[year][month][day]T[hour][minute][second].[subsecond digits:3]Z"
        ))
        .unwrap_or_default();
    let path = dir.join(format!("orchestrator-{stamp}.db"));
    let partial = dir.join(format!(".partial-{stamp}.db"));
    let _ = std::fs::remove_file(&partial);
    private_file(&partial).map_err(|source| StoreError::Dir {
        path: partial.clone(),
        source,
    })?;
    let done = conn
        .backup(
            rusqlite::MAIN_DB,
            &partial,
            None::<fn(rusqlite::backup::Progress)>,
        )
        .map_err(StoreError::from)
        .and_then(|()| {
            std::fs::rename(&partial, &path).map_err(|source| StoreError::Dir {
                path: path.clone(),
                source,
            })
        });
    if let Err(e) = done {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    let all = backups(db);
    for old in all.iter().take(all.len().saturating_sub(BACKUPS_KEPT)) {
        let _ = std::fs::remove_file(old);
    }
    Ok(Some(path))
}

/// A clean close: everything checkpointed into the main file and the WAL removed.
pub fn close(conn: Connection, path: &Path) -> Result<(), StoreError> {
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    conn.close().map_err(|(_, e)| StoreError::from(e))?;
    tracing::debug!(db = %path.display(), "database closed and checkpointed");
    Ok(())
}

/// What a restore did.
#[derive(Debug)]
pub struct Restored {
    pub runs: i64,
    /// Where the database it replaced was moved (`None`: there was none).
    pub previous: Option<PathBuf>,
}

/// Replaces the database at `db` with the backup `from`, after checking that `from` is a
/// sound database of a schema this binary knows. The database it replaces (with its WAL) is
/// moved aside, never deleted. The caller holds the data dir's lock (no daemon runs).
pub fn restore(from: &Path, db: &Path) -> Result<Restored, StoreError> {
    let open_err = |source| StoreError::Open {
        path: from.to_path_buf(),
        source,
    };
    let src = Connection::open_with_flags(from, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(open_err)?;
    check(&src, from)?;
    let version: i64 = src
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(open_err)?;
    if version > super::MIGRATIONS.len() as i64 {
        return Err(StoreError::TooNew {
            path: from.to_path_buf(),
            found: version,
            known: super::MIGRATIONS.len(),
        });
    }
    let runs: i64 = src
        .query_row("SELECT count(*) FROM runs", [], |r| r.get(0))
        .map_err(open_err)?;
    if let Some(dir) = db.parent() {
        private_dir(dir)?;
    }
    let stamp = time::OffsetDateTime::now_utc().unix_timestamp();
    let mut previous = None;
    for suffix in ["", "-wal", "-shm"] {
        let file = PathBuf::from(format!("{}{suffix}", db.display()));
        if file.exists() {
            let aside = PathBuf::from(format!("{}.before-restore-{stamp}{suffix}", db.display()));
            std::fs::rename(&file, &aside).map_err(|source| StoreError::Dir {
                path: file.clone(),
                source,
            })?;
            if suffix.is_empty() {
                previous = Some(aside);
            }
        }
    }
    private_file(db).map_err(|source| StoreError::Dir {
        path: db.to_path_buf(),
        source,
    })?;
    src.backup(
        rusqlite::MAIN_DB,
        db,
        None::<fn(rusqlite::backup::Progress)>,
    )?;
    Ok(Restored { runs, previous })
}
