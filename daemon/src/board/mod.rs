//! The workers' board: what planner and worker sessions may read and change, and the rules.
//!
//! [`apply`] runs one [`Op`] for one [`Caller`] inside one SQLite transaction on the database
//! thread, appending the events that record it in the same transaction; [`apply_all`] runs the
//! calls that arrived together, each in its own savepoint, under one commit. The run's actor
//! calls it, then publishes the events and queues the affected mirror files.
//!
//! **Invariants:** a task is held by at most one session and only its holder can report on,
//! complete or fail it (conditional UPDATEs, not read-then-write); a finished task cannot be
//! finished again; a caller only ever reaches rows of its own run.

mod ops;
pub mod plan;
pub mod reply;

use std::collections::HashSet;

use orchestrator_proto::TaskStatus;
use rusqlite::Connection;
use serde_json::json;

use crate::ids::{RunId, SessionId, TaskId};
use crate::store::board::{self as rows, MessageRow, NewTask, TaskRow};
use crate::store::sessions;
use crate::store::{NewEscalation, NewEvent, RunRow, StoreError, escalations, events, time_text};
pub use plan::PlanInput;
pub use reply::Reply;

use ops::*;

/// What a session is allowed to be: the wire's role, one word everywhere.
pub use orchestrator_proto::SessionRole as Role;

/// Who is calling, as established by the bearer token of this very request.
#[derive(Debug, Clone, PartialEq)]
pub struct Caller {
    pub session: SessionId,
    pub run: RunId,
    pub role: Role,
    /// The task the engine started this session for: it holds that task and no other, and is
    /// not shown `claim_task`.
    pub dispatched: Option<TaskId>,
}

/// Where a message goes.
#[derive(Debug, Clone, PartialEq)]
pub enum To {
    All,
    Orchestrator,
    Task(TaskId),
}

/// One board operation.
#[derive(Debug, Clone)]
pub enum Op {
    MyTask,
    Claim,
    Progress {
        note: String,
    },
    Complete {
        summary: String,
    },
    Fail {
        reason: String,
        retryable: bool,
    },
    Board,
    Send {
        to: To,
        body: String,
    },
    ReadMessages,
    Escalate {
        question: String,
        context: Option<String>,
        blocking: bool,
    },
    SubmitPlan(PlanInput),
}

impl Op {
    fn allowed(&self, role: Role) -> bool {
        match self {
            Op::SubmitPlan(_) => role == Role::Planner,
            Op::MyTask
            | Op::Claim
            | Op::Progress { .. }
            | Op::Complete { .. }
            | Op::Fail { .. } => role == Role::Worker,
            Op::Board | Op::Send { .. } | Op::ReadMessages | Op::Escalate { .. } => true,
        }
    }
}

/// A refusal the calling model can act on; shown to it as a tool error.
#[derive(Debug, thiserror::Error)]
pub enum BoardError {
    #[error("{0}")]
    Refused(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn refused(msg: impl Into<String>) -> BoardError {
    BoardError::Refused(msg.into())
}

/// An operation's reply, and what it changed.
#[derive(Debug)]
pub struct Applied {
    pub reply: Reply,
    pub changes: Changes,
    /// Messages the caller has not read yet (its reply says so, so it reads them).
    pub unread: u32,
}

/// What the caller gets: the reply, and how many messages wait for it.
#[derive(Debug)]
pub struct Answered {
    pub reply: Reply,
    pub unread: u32,
}

/// What an operation changed, for the actor to publish and mirror.
#[derive(Debug, Default)]
pub struct Changes {
    pub events: Vec<crate::store::EventRow>,
    pub tasks: Vec<TaskRow>,
    pub messages: Vec<MessageRow>,
    pub plan: Option<(u32, PlanInput)>,
    /// Tasks that no longer exist (an earlier plan superseded): their mirror files go.
    pub removed: Vec<String>,
    /// A blocking escalation was raised: the run must wait for a human.
    pub blocking_escalation: Option<u64>,
}

pub const BODY_MAX: usize = 20_000;

impl Op {
    /// Changes nothing: answered from the read connection, without the run's actor.
    pub fn reads_only(&self) -> bool {
        matches!(self, Op::MyTask | Op::Board)
    }

    /// May share one commit with the board calls queued with it: it cannot change the run
    /// itself (a blocking escalation stops the run's work; a plan replaces its tasks), so its
    /// outcome does not depend on what the actor does with the calls before it.
    pub fn groups(&self) -> bool {
        !matches!(self, Op::Escalate { .. } | Op::SubmitPlan(_))
    }
}

/// `read_messages` when no message waits for the caller (the common case: a worker checking
/// in): its empty answer, read from the last committed state without a write. `None` when
/// messages wait (taking them marks them read: the run's actor does that) or the caller's
/// session has ended (the actor refuses it, saying so). A message committed after this read
/// is the next call's, as if this call had come a moment earlier.
pub fn nothing_to_read(c: &Connection, caller: &Caller) -> Result<Option<Applied>, StoreError> {
    let run = &caller.run;
    let Some(session) = sessions::active_holding(c, run, &caller.session)? else {
        return Ok(None);
    };
    if rows::count_unread(c, run, &caller.session, session.task_id.as_ref())? > 0 {
        return Ok(None);
    }
    Ok(Some(Applied {
        reply: Reply::Messages(reply::Messages {
            messages: Vec::new(),
        }),
        changes: Changes::default(),
        unread: 0,
    }))
}

/// Runs `op` for `caller` in one transaction.
pub fn apply(
    c: &mut Connection,
    run: &RunRow,
    caller: &Caller,
    op: Op,
) -> Result<Applied, BoardError> {
    let mut all = apply_all(c, run, vec![(caller.clone(), op)])?;
    all.pop().unwrap_or_else(|| Err(StoreError::Failed.into()))
}

/// Runs each of `ops`, in order, in its own savepoint of one transaction: the board calls
/// that arrived together share one commit. A refusal (or a failed statement) rolls back its
/// own operation only; the others' results stand once the commit succeeds, and none does if
/// it fails.
pub fn apply_all(
    c: &mut Connection,
    run: &RunRow,
    ops: Vec<(Caller, Op)>,
) -> Result<Vec<Result<Applied, BoardError>>, StoreError> {
    let mut tx = c.savepoint()?;
    let mut out = Vec::with_capacity(ops.len());
    for (caller, op) in ops {
        out.push(apply_one(&mut tx, run, &caller, op));
    }
    tx.commit()?;
    Ok(out)
}

/// One operation in its own savepoint.
fn apply_one(
    tx: &mut rusqlite::Savepoint<'_>,
    run: &RunRow,
    caller: &Caller,
    op: Op,
) -> Result<Applied, BoardError> {
    if !op.allowed(caller.role) {
        return Err(refused(format!(
            "this tool is not for a {} session; the server instructions list the tools for your role",
            caller.role.as_str()
        )));
    }
    let sp = tx.savepoint().map_err(StoreError::from)?;
    let session = sessions::active_holding(&sp, &run.id, &caller.session)?
        .ok_or_else(|| refused("your session has ended; stop working"))?;
    let mut a = Apply {
        tx: &sp,
        run,
        caller,
        session,
        at: time_text::now(),
        out: Changes::default(),
    };
    let reply = match op {
        Op::MyTask => my_task(&mut a)?,
        Op::Claim => claim(&mut a)?,
        Op::Progress { note } => progress(&mut a, note)?,
        Op::Complete { summary } => complete(&mut a, summary)?,
        Op::Fail { reason, retryable } => fail(&mut a, reason, retryable)?,
        Op::Board => board(&mut a)?,
        Op::Send { to, body } => send(&mut a, to, body)?,
        Op::ReadMessages => read_messages(&mut a)?,
        Op::Escalate {
            question,
            context,
            blocking,
        } => escalate(&mut a, question, context, blocking)?,
        Op::SubmitPlan(plan) => submit_plan(&mut a, plan)?,
    };
    let unread = rows::count_unread(&sp, &run.id, &caller.session, a.session.task_id.as_ref())?;
    let changes = a.out;
    sp.commit().map_err(StoreError::from)?;
    Ok(Applied {
        reply,
        changes,
        unread,
    })
}

/// One operation's transaction, and what it knows of its caller.
struct Apply<'a> {
    tx: &'a Connection,
    run: &'a RunRow,
    caller: &'a Caller,
    /// What the caller's session (active, of this run) holds.
    session: crate::store::sessions::Holding,
    at: time::OffsetDateTime,
    out: Changes,
}

impl Apply<'_> {
    /// Appends an event in the operation's transaction.
    fn event(&mut self, e: NewEvent) -> Result<(), BoardError> {
        self.out
            .events
            .push(events::append(self.tx, &self.run.id, self.at, e)?);
        Ok(())
    }

    /// The task the caller holds, or a refusal that says what to do.
    fn need_task(&self) -> Result<TaskId, BoardError> {
        self.session
            .task_id
            .clone()
            .ok_or_else(|| match &self.session.dispatched {
                Some(own) => refused(format!(
                    "your task {own} is finished; there is nothing more for this session: stop now"
                )),
                None => refused("you hold no task; call claim_task to get one"),
            })
    }
}

fn bounded(what: &str, v: &str, max: usize) -> Result<(), BoardError> {
    if v.trim().is_empty() {
        return Err(refused(format!("{what} is empty")));
    }
    if v.len() > max {
        return Err(refused(format!(
            "{what} is {} bytes; keep it under {max}",
            v.len()
        )));
    }
    Ok(())
}

fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or("").trim();
    if line.chars().count() > 120 {
        line.chars().take(119).collect::<String>() + "…"
    } else {
        line.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::sessions::{NewSession, insert_session};
    use crate::store::{open_temp, runs};

    fn session(c: &Connection, id: &str, role: Role) -> Caller {
        let (sid, run) = (SessionId::from(id), RunId::from("r1"));
        insert_session(
            c,
            &NewSession {
                id: &sid,
                run_id: &run,
                role,
                task_id: None,
                agent: "claude",
                token_hash: id.as_bytes(),
                expires_at: time_text::now() + time::Duration::hours(1),
                at: time_text::now(),
            },
        )
        .expect("session");
        Caller {
            session: sid,
            run,
            role,
            dispatched: None,
        }
    }

    /// Worker sessions `s-w1` and `s-w2` of run `r1`.
    fn two_workers(c: &Connection) -> (Caller, Caller) {
        (
            session(c, "s-w1", Role::Worker),
            session(c, "s-w2", Role::Worker),
        )
    }

    /// The refusal `r` is; panics on anything else.
    fn refusal(r: Result<Applied, BoardError>) -> String {
        match r {
            Err(BoardError::Refused(m)) => m,
            other => panic!("expected a refusal: {:?}", other.map(|a| a.reply)),
        }
    }

    /// Run `r1` with tasks `a` and `b` (no dependencies) submitted by its planner.
    fn planned(c: &mut Connection) -> Result<RunRow, StoreError> {
        runs::insert(c, &runs::new_run("r1", "/p"))?;
        let planner = session(c, "s-plan", Role::Planner);
        let run = runs::get(c, &"r1".into())?.expect("run");
        let task =
            |id| json!({"id": id, "title": "T", "description": "D", "acceptance_criteria": ["ok"]});
        let plan = json!({"summary": "S", "tasks": [task("a"), task("b")]});
        let plan = serde_json::from_value(plan).expect("plan");
        apply(c, &run, &planner, Op::SubmitPlan(plan)).expect("plan accepted");
        Ok(run)
    }

    /// Calls that arrived together share one commit: a refused one rolls back alone, the
    /// others stand, in order (the second claim gets the next task, not the first's).
    #[tokio::test]
    async fn grouped_calls_each_stand_or_fall_alone() {
        let (_dir, db) = open_temp();
        let results = db
            .call(|c| {
                let run = planned(c)?;
                let (w1, w2) = two_workers(c);
                let done = Op::Complete {
                    summary: "done".into(),
                };
                let all = apply_all(
                    c,
                    &run,
                    vec![
                        (w1.clone(), Op::Claim),
                        (w2.clone(), done.clone()),
                        (w2, Op::Claim),
                        (w1, done),
                    ],
                )?;
                let tasks = rows::tasks(c, &"r1".into())?;
                Ok((all, tasks))
            })
            .await
            .expect("db");
        let (all, tasks) = results;
        let said: Vec<String> = all
            .iter()
            .map(|r| match r {
                Ok(a) => serde_json::to_value(&a.reply).expect("json")["task"]["id"]
                    .as_str()
                    .unwrap_or("ok")
                    .to_owned(),
                Err(BoardError::Refused(m)) => format!("refused: {m}"),
                Err(e) => format!("error: {e}"),
            })
            .collect();
        assert_eq!(said[0], "a");
        assert!(said[1].starts_with("refused: you hold no task"), "{said:?}");
        assert_eq!(said[2], "b");
        assert_eq!(said[3], "ok", "{said:?}");
        let status: Vec<(String, String)> = tasks
            .iter()
            .map(|t| (t.id.to_string(), t.status.to_string()))
            .collect();
        assert_eq!(
            status,
            [
                ("a".into(), "done".into()),
                ("b".into(), "in_progress".into())
            ]
        );
    }

    /// A completion of a task taken back meanwhile is refused with the task's status, and a
    /// worker holding a task in progress cannot claim another.
    #[tokio::test]
    async fn a_completion_of_a_task_taken_back_says_where_the_task_is() {
        let (_dir, db) = open_temp();
        let said = db
            .call(|c| {
                let run = planned(c)?;
                let w1 = session(c, "s-w1", Role::Worker);
                apply(c, &run, &w1, Op::Claim).expect("claimed");
                let again = refusal(apply(c, &run, &w1, Op::Claim));
                // The engine takes it back (its worker was stopped, say).
                let back = rows::Finish {
                    status: TaskStatus::Pending,
                    result: None,
                    failure: Some("stopped"),
                };
                rows::finish_task(c, &run.id, &"a".into(), &w1.session, back, time_text::now())?;
                let done = Op::Complete {
                    summary: "done".into(),
                };
                let completed = refusal(apply(c, &run, &w1, done));
                Ok((again, completed))
            })
            .await
            .expect("db");
        assert!(said.0.contains("you already hold task a"), "{}", said.0);
        assert!(
            said.1
                .contains("task a is pending, not in progress under your session"),
            "{}",
            said.1
        );
    }

    /// An ended session's calls are refused, whatever it held; a live one's go on.
    #[tokio::test]
    async fn an_ended_session_is_refused_and_told_to_stop() {
        let (_dir, db) = open_temp();
        let said = db
            .call(|c| {
                let run = planned(c)?;
                let (w1, w2) = two_workers(c);
                apply(c, &run, &w1, Op::Claim).expect("claimed");
                sessions::end_session(c, &w1.session, time_text::now())?;
                let said = [Op::MyTask, Op::Claim, Op::ReadMessages]
                    .map(|op| refusal(apply(c, &run, &w1, op)));
                apply(c, &run, &w2, Op::Claim).expect("a live session claims");
                Ok(said)
            })
            .await
            .expect("db");
        for m in said {
            assert_eq!(m, "your session has ended; stop working");
        }
    }

    /// `read_messages` answers from the read side only when nothing waits and the session
    /// is live; taking waiting messages (which marks them read) is left to the actor.
    #[tokio::test]
    async fn nothing_to_read_answers_only_when_nothing_waits() {
        let (_dir, db) = open_temp();
        let seen = db
            .call(|c| {
                runs::insert(c, &runs::new_run("r1", "/p"))?;
                let (w1, w2) = two_workers(c);
                let run = runs::get(c, &"r1".into())?.expect("run");
                let mut seen = Vec::new();
                let mut look = |c: &Connection, who: &Caller| -> Result<(), StoreError> {
                    seen.push(nothing_to_read(c, who)?.map(|a| {
                        serde_json::to_value(&a.reply).expect("json")["messages"].clone()
                    }));
                    Ok(())
                };
                look(c, &w2)?;
                let body = "the schema changed".to_owned();
                apply(c, &run, &w1, Op::Send { to: To::All, body }).expect("sent");
                look(c, &w2)?;
                look(c, &w1)?; // its own message does not wait for it
                apply(c, &run, &w2, Op::ReadMessages).expect("read");
                look(c, &w2)?;
                sessions::end_session(c, &w1.session, time_text::now())?;
                look(c, &w1)?;
                Ok(seen)
            })
            .await
            .expect("db");
        assert_eq!(
            seen,
            [
                Some(json!([])),
                None,
                Some(json!([])),
                Some(json!([])),
                None
            ]
        );
    }
}
