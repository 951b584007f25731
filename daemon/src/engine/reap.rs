//! Sessions nobody will follow: those a previous daemon spawned that are not re-attached
//! (a planner or a reviewer, whose work is simply done again; a worker whose task moved on).
//! Their process groups are stopped (SIGTERM, then SIGKILL after the grace period) and their
//! sessions ended, so their tokens stop working and no stray process is left.

use std::collections::HashSet;

use nix::sys::signal::Signal;
use orchestrator_proto::Level;

use super::process::Identity;
use super::session::GRACE;
use crate::engine::port::Port;
use crate::store::Db;
use crate::store::sessions::{self, SessionRow};
use orchestrator_proto::EventKind;

/// The live process of a session row, if it still runs.
pub fn live(row: &SessionRow) -> Option<Identity> {
    let id = Identity {
        pid: row.pid?,
        start: row.pid_start_time?,
    };
    id.alive().then_some(id)
}

/// Stops a process group: SIGTERM now, SIGKILL after the grace period if it is still there.
pub fn stop(id: Identity) {
    id.signal_group(Signal::SIGTERM);
    tokio::spawn(async move {
        tokio::time::sleep(GRACE).await;
        id.signal_group(Signal::SIGKILL);
    });
}

/// Ends every open session of the run that a previous daemon opened (before `since`), except
/// `keep`, stopping those still running. Sessions of this daemon belong to someone who ends
/// them.
pub async fn reap(
    handle: &Port,
    db: &Db,
    run: &crate::ids::RunId,
    since: time::OffsetDateTime,
    keep: &HashSet<crate::ids::SessionId>,
) {
    let id = run.clone();
    let rows = match db.call(move |c| sessions::open(c, &id)).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!(run = %run, cause = %e, "cannot list the run's open sessions");
            return;
        }
    };
    for row in rows
        .into_iter()
        // Only sessions the daemon spawned (a recorded process): one opened over the API is
        // somebody else's, and its token keeps working across restarts until it expires.
        .filter(|r| r.pid.is_some() && r.started_at < since && !keep.contains(&r.id))
    {
        if let Some(p) = live(&row) {
            stop(p);
            super::note(
                handle,
                Level::Warn,
                EventKind::SessionReaped,
                format!(
                    "Session {} ({}, pid {}) was left running by the previous daemon and nothing \
                     will follow it any more; it was stopped",
                    row.id, row.role, p.pid
                ),
            )
            .await;
        }
        super::end_session(handle, &row.id, None).await;
    }
}
