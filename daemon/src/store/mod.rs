//! SQLite, the daemon's source of truth. One connection, owned by one OS thread ("db"), fed
//! closures over a channel: no runtime worker ever blocks on SQLite, writes are serialised for
//! free, and a multi-statement transaction never leaves its thread.
//!
//! Migrations are the numbered `migrations/*.sql` files, embedded in the binary and applied in
//! order at open; `PRAGMA user_version` records how far a database has come.

pub mod board;
pub mod cost;
pub mod durable;
pub mod escalations;
pub mod events;
mod group;
mod reader;
pub mod reviews;
pub mod runs;
pub mod sessions;
pub mod settings;
pub mod spans;
pub mod time_text;
pub mod ui;
mod word;

pub use escalations::{EscalationRow, NewEscalation};
pub use events::{EventRow, NewEvent};
pub use runs::{NewRun, RunRow};

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};

/// The embedded migrations, in order. Index + 1 is the schema version each one produces.
const MIGRATIONS: &[&str] = &[
    include_str!("migrations/0001_init.sql"),
    include_str!("migrations/0002_board.sql"),
    include_str!("migrations/0003_planned_and_env.sql"),
    include_str!("migrations/0004_session_usage.sql"),
    include_str!("migrations/0005_reviews.sql"),
    include_str!("migrations/0006_usage_hold.sql"),
    include_str!("migrations/0007_session_cycle.sql"),
    include_str!("migrations/0008_supervision.sql"),
    include_str!("migrations/0009_dispatched_task.sql"),
    include_str!("migrations/0010_verify.sql"),
    include_str!("migrations/0011_unreviewed.sql"),
    include_str!("migrations/0012_models.sql"),
    include_str!("migrations/0013_agents.sql"),
    include_str!("migrations/0014_escalations_closed.sql"),
    include_str!("migrations/0015_ui_sessions.sql"),
    include_str!("migrations/0016_board_indexes.sql"),
];

/// `execute` and `query_row` through the connection's prepared-statement cache: the board's
/// statements run on every tool call, and parsing them each time showed in profiles.
pub trait Cached {
    fn exec<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize>;
    fn row<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>;
}

impl Cached for Connection {
    fn exec<P: rusqlite::Params>(&self, sql: &str, params: P) -> rusqlite::Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    fn row<T, P, F>(&self, sql: &str, params: P, f: F) -> rusqlite::Result<T>
    where
        P: rusqlite::Params,
        F: FnOnce(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
    {
        self.prepare_cached(sql)?.query_row(params, f)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the database {path}: {source}")]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "the database {path} has schema version {found}, newer than the {known} this orchestratord \
         knows; install the newer orchestratord, or point ORCHESTRATOR_DATA_DIR elsewhere"
    )]
    TooNew {
        path: PathBuf,
        found: i64,
        known: usize,
    },
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("the database thread has stopped")]
    Closed,
    #[error("a database job failed unexpectedly (the daemon's log has the panic); try again")]
    Failed,
    #[error("the database {path} is damaged ({detail}); orchestratord will not start on it: {fix}")]
    Corrupt {
        path: PathBuf,
        detail: String,
        fix: String,
    },
    #[error(
        "the database {path} holds no runs, but {evidence}: its data (an -wal file?) is missing; \
         orchestratord will not start on it: {fix}"
    )]
    Emptied {
        path: PathBuf,
        evidence: String,
        fix: String,
    },
    #[error(
        "the data directory {path} is readable by others (mode {mode:o}) and cannot be made \
         private: {source}; run `chmod 700 {path}` as its owner"
    )]
    Private {
        path: PathBuf,
        mode: u32,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot create {path}: {source}")]
    Dir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the database thread: {0}")]
    Thread(#[source] std::io::Error),
    #[error("the database could not commit this change (the daemon's log says why); try again")]
    Uncommitted,
}

use group::Job;

/// What the database thread is sent.
enum Msg {
    Job(Job),
    /// Back up the database if it changed since the last backup; replies with the file.
    Backup(oneshot::Sender<Result<Option<PathBuf>, StoreError>>),
    /// Checkpoint and close the connection; the thread ends.
    Close(oneshot::Sender<Result<(), StoreError>>),
}

/// A cheap, cloneable handle to the database thread.
#[derive(Clone)]
pub struct Db {
    jobs: mpsc::Sender<Msg>,
    /// The read-only connection's thread (`reader`).
    reads: mpsc::Sender<reader::ReadMsg>,
}

impl Db {
    /// Opens (creating it and its private directory if needed), checks and migrates the
    /// database, then starts its thread. Blocks: call it off the runtime's workers.
    pub fn open(path: &Path) -> Result<Db, StoreError> {
        if let Some(dir) = path.parent() {
            durable::private_dir(dir)?;
        }
        durable::private_file(path).map_err(|source| StoreError::Dir {
            path: path.to_path_buf(),
            source,
        })?;
        let open_err = |source| StoreError::Open {
            path: path.to_path_buf(),
            source,
        };
        let mut conn = Connection::open(path).map_err(open_err)?;
        configure(&conn).map_err(|e| match e {
            rusqlite::Error::SqliteFailure(f, _)
                if matches!(
                    f.code,
                    rusqlite::ErrorCode::NotADatabase | rusqlite::ErrorCode::DatabaseCorrupt
                ) =>
            {
                StoreError::Corrupt {
                    path: path.to_path_buf(),
                    detail: e.to_string(),
                    fix: durable::restore_hint(path),
                }
            }
            e => open_err(e),
        })?;
        durable::check(&conn, path)?;
        migrate(&mut conn, path)?;
        durable::check_not_emptied(&conn, path)?;
        let reads = reader::start(path)?;
        let (jobs, rx) = mpsc::channel::<Msg>(1024);
        let db_path = path.to_path_buf();
        std::thread::Builder::new()
            .name("db".into())
            .spawn(move || serve_writes(conn, rx, &db_path))
            .map_err(StoreError::Thread)?;
        Ok(Db { jobs, reads })
    }

    /// Runs `f` on the read-only connection: the last committed state, without waiting for
    /// the writer. Only for reads whose answer needs no place in the writer's order.
    pub async fn read<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<R, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.reads
            .send(reader::ReadMsg::Job(group::job(f, tx)))
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Failed)?
    }

    /// Runs `f` on the database thread and returns its result once it is committed (it may
    /// share a transaction with the jobs queued with it: see `group`). `f` makes its own
    /// transaction with `savepoint()`, never `transaction()`, which cannot nest.
    pub async fn call<R, F>(&self, f: F) -> Result<R, StoreError>
    where
        R: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<R, StoreError> + Send + 'static,
    {
        let (tx, rx) = oneshot::channel();
        self.jobs
            .send(Msg::Job(group::job(f, tx)))
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Failed)?
    }

    /// An online backup into `<data_dir>/backups/`, unless nothing changed since the last one.
    pub async fn backup(&self) -> Result<Option<PathBuf>, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.jobs
            .send(Msg::Backup(tx))
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Failed)?
    }

    /// Backs up (if anything changed), checkpoints and closes the database: after it, the
    /// main file holds everything and later calls fail with [`StoreError::Closed`].
    pub async fn close(&self) -> Result<(), StoreError> {
        if let Err(e) = self.backup().await {
            tracing::warn!(cause = %e, "cannot back up the database on the way out");
        }
        // The reader first: the WAL goes away only with the last connection.
        let (tx, rx) = oneshot::channel();
        if self.reads.send(reader::ReadMsg::Close(tx)).await.is_ok() {
            let _ = rx.await;
        }
        let (tx, rx) = oneshot::channel();
        self.jobs
            .send(Msg::Close(tx))
            .await
            .map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }
}

/// The database thread: takes each job with everything queued behind it as one group
/// (`group`), backs up and closes when asked.
fn serve_writes(mut conn: Connection, mut rx: mpsc::Receiver<Msg>, db_path: &Path) {
    let (mut backed_up, mut next) = (None, None);
    loop {
        let Some(msg) = next.take().or_else(|| rx.blocking_recv()) else {
            break;
        };
        match msg {
            Msg::Job(job) => {
                // Everything already queued joins it under one commit.
                let mut jobs = vec![job];
                while jobs.len() < group::GROUP_MAX {
                    match rx.try_recv() {
                        Ok(Msg::Job(j)) => jobs.push(j),
                        Ok(other) => {
                            next = Some(other);
                            break;
                        }
                        Err(_) => break,
                    }
                }
                group::run(&mut conn, jobs);
            }
            Msg::Backup(reply) => {
                let changes = conn.total_changes();
                let r = if backed_up == Some(changes) {
                    Ok(None)
                } else {
                    durable::backup(&conn, db_path)
                };
                if r.is_ok() {
                    backed_up = Some(changes);
                }
                let _ = reply.send(r);
            }
            Msg::Close(reply) => {
                rx.close();
                let _ = reply.send(durable::close(conn, db_path));
                return;
            }
        }
    }
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    // Every hot statement stays prepared (rusqlite's default cache holds 16).
    conn.set_prepared_statement_cache_capacity(256);
    conn.busy_timeout(Duration::from_secs(5))?;
    stable_plans(conn)?;
    conn.pragma_update(None, "journal_mode", "WAL")?;
    // Safe with WAL: no corruption; at worst the last commits roll back on power loss.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // A group commit runs each job in a savepoint, whose journal of the pages it changes
    // spilled to a temporary file past 64 KiB: profiled, a write call per page. The
    // database is small; its temporary pages stay in memory.
    conn.pragma_update(None, "temp_store", "MEMORY")?;
    Ok(())
}

/// Plans that do not depend on bound values. Without this, the bundled SQLite (built with
/// STAT4) marks nearly every statement with a parameter for re-preparing whenever it is
/// bound again, so the statement cache saved nothing: profiled under load, re-parsing was a
/// tenth of the daemon's CPU. The daemon never runs `ANALYZE`, so no plan was better for it.
pub(crate) fn stable_plans(conn: &Connection) -> rusqlite::Result<()> {
    conn.set_db_config(
        rusqlite::config::DbConfig::SQLITE_DBCONFIG_ENABLE_QPSG,
        true,
    )?;
    Ok(())
}

fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
    if version > MIGRATIONS.len() as i64 {
        return Err(StoreError::TooNew {
            path: path.to_path_buf(),
            found: version,
            known: MIGRATIONS.len(),
        });
    }
    // Table rebuilds need foreign keys off (it is a no-op inside a transaction); they are
    // checked once all migrations are in, and turned back on.
    conn.pragma_update(None, "foreign_keys", "OFF")?;
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        let broken: i64 =
            tx.query_row("SELECT count(*) FROM pragma_foreign_key_check", [], |r| {
                r.get(0)
            })?;
        if broken > 0 {
            return Err(StoreError::Sqlite(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY),
                Some(format!(
                    "migration {} leaves {broken} broken foreign keys",
                    i + 1
                )),
            )));
        }
        tx.pragma_update(None, "user_version", (i + 1) as i64)?;
        tx.commit()?;
        tracing::info!(version = i + 1, "database migrated");
    }
    conn.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

/// Test-only: an in-memory-equivalent database in a temp dir.
#[cfg(test)]
pub(crate) fn open_temp() -> (tempfile::TempDir, Db) {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Db::open(&dir.path().join("t.db")).expect("open");
    (dir, db)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A job that panics (mid-transaction) fails its caller, its writes are rolled back, and
    /// the database thread goes on serving everyone else.
    #[tokio::test]
    async fn a_panicking_job_does_not_stop_the_database_thread() {
        let (_dir, db) = open_temp();
        let r: Result<(), StoreError> = db
            .call(|c| {
                c.execute_batch("BEGIN; CREATE TABLE scratch (x INTEGER);")?;
                panic!("a bug in a job");
            })
            .await;
        assert!(matches!(r, Err(StoreError::Failed)), "{r:?}");
        let tables: i64 = db
            .call(|c| {
                Ok(c.query_row(
                    "SELECT count(*) FROM sqlite_master WHERE name = 'scratch'",
                    [],
                    |r| r.get(0),
                )?)
            })
            .await
            .expect("the thread still answers");
        assert_eq!(tables, 0, "the panicking job's transaction was rolled back");
        db.close().await.expect("close");
        assert!(matches!(db.call(|_| Ok(())).await, Err(StoreError::Closed)));
    }

    #[tokio::test]
    async fn migrations_apply_once_and_record_the_version() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("o.db");
        for _ in 0..2 {
            let db = Db::open(&path).expect("open");
            let v: i64 = db
                .call(|c| Ok(c.pragma_query_value(None, "user_version", |r| r.get(0))?))
                .await
                .expect("query");
            assert_eq!(v, MIGRATIONS.len() as i64);
        }
    }

    #[test]
    fn rebuilding_runs_keeps_rows_and_foreign_keys() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("o.db");
        {
            // A database as schema 2 left it, with a run and a task of that run.
            let mut c = Connection::open(&path).expect("open");
            for (i, sql) in MIGRATIONS[..2].iter().enumerate() {
                c.execute_batch(sql).expect("old migration");
                c.pragma_update(None, "user_version", (i + 1) as i64)
                    .expect("version");
            }
            let tx = c.transaction().expect("tx");
            tx.execute_batch(
                "INSERT INTO projects (id, path, created_at) VALUES (1, '/p', 't');
                 INSERT INTO runs (id, project_id, feature, branch, base_commit, status, phase,
                   options, created_at, updated_at)
                   VALUES ('r1', 1, 'f', 'b', 'c', 'paused', 'pending', '{}', 't', 't');
                 INSERT INTO tasks (run_id, id, cycle, title, description, status, created_at, updated_at)
                   VALUES ('r1', 't1', 0, 'T', 'D', 'pending', 't', 't');",
            )
            .expect("rows");
            tx.commit().expect("commit");
        }
        drop(Db::open(&path).expect("migrate to the latest"));
        let c = Connection::open(&path).expect("reopen");
        c.pragma_update(None, "foreign_keys", "ON").expect("fk");
        let status: String = c
            .query_row("SELECT status FROM runs WHERE id = 'r1'", [], |r| r.get(0))
            .expect("the run survived");
        assert_eq!(status, "paused");
        let tasks: i64 = c
            .query_row("SELECT count(*) FROM tasks WHERE run_id = 'r1'", [], |r| {
                r.get(0)
            })
            .expect("count");
        assert_eq!(tasks, 1, "its task survived");
        c.execute("UPDATE runs SET status = 'planned' WHERE id = 'r1'", [])
            .expect("planned is a valid status now");
        let orphan = c.execute(
            "INSERT INTO tasks (run_id, id, cycle, title, description, status, created_at, updated_at)
             VALUES ('nope', 't2', 0, 'T', 'D', 'pending', 't', 't')",
            [],
        );
        assert!(orphan.is_err(), "foreign keys still point at runs");
    }

    #[tokio::test]
    async fn a_newer_schema_is_refused_with_a_fix() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("o.db");
        Connection::open(&path)
            .and_then(|c| c.pragma_update(None, "user_version", 99))
            .expect("prepare");
        let err = Db::open(&path).err().expect("must refuse");
        assert!(matches!(err, StoreError::TooNew { found: 99, .. }));
        assert!(err.to_string().contains("ORCHESTRATOR_DATA_DIR"));
    }

    /// A cached statement is prepared once, not again on every use (see [`stable_plans`]).
    #[tokio::test]
    async fn cached_statements_are_not_prepared_again() {
        let (_dir, db) = open_temp();
        let reprepared = db
            .call(|c| {
                runs::insert(c, &runs::new_run("r1", "/p"))?;
                for _ in 0..3 {
                    events::append(
                        c,
                        &"r1".into(),
                        time_text::now(),
                        NewEvent::info(orchestrator_proto::EventKind::RunSubmitted, "x"),
                    )?;
                }
                let st = c.prepare_cached(
                    "SELECT coalesce(max(seq), 0) + 1 FROM events WHERE run_id = ?1",
                )?;
                Ok(st.get_status(rusqlite::StatementStatus::RePrepare))
            })
            .await
            .expect("db");
        assert_eq!(reprepared, 0);
    }
}
