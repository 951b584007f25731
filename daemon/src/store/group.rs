//! Group commit on the database thread: the jobs waiting in its queue when it takes one run
//! in one transaction, and every caller is answered once that transaction has committed. A
//! burst of writes from many runs' actors (and the token checks between them) costs one
//! commit — one pass of WAL frames for the pages they share — instead of one each.
//!
//! **Invariants:** no caller hears a result before the transaction holding its writes has
//! committed; a job's own transaction is a savepoint (`Connection::savepoint`), so a job that
//! fails rolls back alone and the others stand; a job that panics rolls back the whole group,
//! and its companions are told their change was not committed (they try again). A job alone
//! runs exactly as it would without grouping (its savepoint is its transaction).

use rusqlite::Connection;

use super::StoreError;

/// Answers a job's caller; told whether the group it ran in committed.
pub(super) type Answer = Box<dyn FnOnce(bool) + Send>;

/// Work for a database thread; returns how to answer its caller.
pub(super) type Job = Box<dyn FnOnce(&mut Connection) -> Answer + Send>;

/// The most jobs run under one commit.
pub(super) const GROUP_MAX: usize = 256;

/// A job for `f`, whose result goes to `reply` once committed.
pub(super) fn job<R, F>(f: F, reply: tokio::sync::oneshot::Sender<Result<R, StoreError>>) -> Job
where
    R: Send + 'static,
    F: FnOnce(&mut Connection) -> Result<R, StoreError> + Send + 'static,
{
    Box::new(move |conn| {
        let r = f(conn);
        Box::new(move |committed| {
            let _ = reply.send(match r {
                Ok(_) if !committed => Err(StoreError::Uncommitted),
                r => r,
            });
        })
    })
}

/// Runs `jobs` in one transaction (a single job in its own), then answers them all.
pub(super) fn run(conn: &mut Connection, jobs: Vec<Job>) {
    if jobs.len() == 1 || !conn.is_autocommit() {
        return each_alone(conn, jobs);
    }
    if let Err(e) = conn.execute_batch("BEGIN") {
        tracing::error!(cause = %e, "cannot begin a group transaction; running its jobs alone");
        return each_alone(conn, jobs);
    }
    let mut answers = Vec::with_capacity(jobs.len());
    let mut panicked = false;
    for job in jobs {
        match catch(conn, job) {
            Some(a) => answers.push(a),
            None => panicked = true,
        }
    }
    let committed = !panicked
        && conn
            .execute_batch("COMMIT")
            .inspect_err(|e| tracing::error!(cause = %e, "a group transaction did not commit"))
            .is_ok();
    if !committed && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    for answer in answers {
        answer(committed);
    }
}

/// Runs each job in its own transaction, answering it at once.
fn each_alone(conn: &mut Connection, jobs: Vec<Job>) {
    for job in jobs {
        if let Some(answer) = run_alone(conn, job) {
            answer(true);
        }
    }
}

/// Runs one job; one that panics is logged and its open transaction rolled back, and the
/// thread goes on serving the others (its caller gets [`StoreError::Failed`]).
pub(super) fn run_alone(conn: &mut Connection, job: Job) -> Option<Answer> {
    let answer = catch(conn, job);
    if answer.is_none() && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    answer
}

fn catch(conn: &mut Connection, job: Job) -> Option<Answer> {
    match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(conn))) {
        Ok(answer) => Some(answer),
        Err(p) => {
            let what = p
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(panic = %what, "a database job panicked; the database thread goes on");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::oneshot;

    fn scratch() -> Connection {
        let c = Connection::open_in_memory().expect("open");
        c.execute_batch("CREATE TABLE t (x INTEGER)")
            .expect("table");
        c
    }

    fn insert(x: i64, fail: bool) -> impl FnOnce(&mut Connection) -> Result<i64, StoreError> {
        move |c| {
            let sp = c.savepoint()?;
            sp.execute("INSERT INTO t VALUES (?1)", [x])?;
            if fail {
                return Err(StoreError::Closed);
            }
            sp.commit()?;
            Ok(x)
        }
    }

    fn count(c: &Connection) -> i64 {
        c.query_row("SELECT count(*) FROM t", [], |r| r.get(0))
            .expect("count")
    }

    /// Jobs queued together share one transaction; the one that fails rolls back alone, and
    /// each later job sees the earlier ones' writes.
    #[test]
    fn a_group_commits_once_and_a_failed_job_rolls_back_alone() {
        let mut c = scratch();
        let (a, b, n) = (oneshot::channel(), oneshot::channel(), oneshot::channel());
        run(
            &mut c,
            vec![
                job(insert(1, false), a.0),
                job(insert(2, true), b.0),
                job(|c| Ok(count(c)), n.0),
            ],
        );
        assert!(c.is_autocommit(), "the group's transaction is closed");
        assert_eq!(a.1.blocking_recv().expect("answered").expect("ok"), 1);
        assert!(matches!(b.1.blocking_recv(), Ok(Err(StoreError::Closed))));
        assert_eq!(n.1.blocking_recv().expect("answered").expect("ok"), 1);
        assert_eq!(count(&c), 1);
    }

    /// A job that panics rolls back its whole group; its companions hear that nothing was
    /// committed, and the connection serves the next group.
    #[test]
    fn a_panic_rolls_back_the_group_and_says_so() {
        let mut c = scratch();
        let (a, p) = (
            oneshot::channel(),
            oneshot::channel::<Result<(), StoreError>>(),
        );
        run(
            &mut c,
            vec![
                job(insert(1, false), a.0),
                job(|_| panic!("a bug in a job"), p.0),
            ],
        );
        assert!(matches!(
            a.1.blocking_recv(),
            Ok(Err(StoreError::Uncommitted))
        ));
        assert!(
            p.1.blocking_recv().is_err(),
            "the panicking job's caller is dropped"
        );
        assert_eq!(count(&c), 0);
        let again = oneshot::channel();
        run(&mut c, vec![job(insert(3, false), again.0)]);
        assert_eq!(again.1.blocking_recv().expect("answered").expect("ok"), 3);
        assert_eq!(count(&c), 1);
    }
}
