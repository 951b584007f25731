//! A second connection, read-only, on its own thread (`db-read`): reads that need no place in
//! the writer's order — a worker's brief, the board — answer from the last committed state
//! while the writer commits (WAL lets one writer and readers run at once).
//!
//! **Invariant:** the connection can write nothing (`SQLITE_OPEN_READ_ONLY`), and it is closed
//! before the writer checkpoints and closes, so a clean stop still leaves no WAL behind.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use tokio::sync::{mpsc, oneshot};

use super::StoreError;
use super::group::{self, Job};

/// What the read thread is sent.
pub(super) enum ReadMsg {
    Job(Job),
    Close(oneshot::Sender<()>),
}

/// Opens the read connection to `path` (already migrated) and starts its thread.
pub(super) fn start(path: &Path) -> Result<mpsc::Sender<ReadMsg>, StoreError> {
    let mut conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(|source| StoreError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    conn.set_prepared_statement_cache_capacity(256);
    conn.busy_timeout(Duration::from_secs(5))?;
    super::stable_plans(&conn)?;
    let (tx, mut rx) = mpsc::channel::<ReadMsg>(1024);
    std::thread::Builder::new()
        .name("db-read".into())
        .spawn(move || {
            while let Some(msg) = rx.blocking_recv() {
                match msg {
                    ReadMsg::Job(job) => {
                        if let Some(answer) = group::run_alone(&mut conn, job) {
                            answer(true);
                        }
                    }
                    ReadMsg::Close(reply) => {
                        rx.close();
                        drop(conn);
                        let _ = reply.send(());
                        return;
                    }
                }
            }
        })
        .map_err(StoreError::Thread)?;
    Ok(tx)
}
