//! The run's agent sessions as its actor sees them: board operations from their MCP calls
//! (applied in one transaction by `crate::board`), opening a session (its token, shown once)
//! and ending one (token revoked, cost and tokens recorded).

#[allow(clippy::wildcard_imports)]
use super::*;
use crate::ids::{SessionId, TaskId};
use orchestrator_proto::EventKind;

impl RunActor {
    /// Board calls from MCP sessions: `first` and the grouping calls queued right behind it
    /// (up to [`GROUP_MAX`]) share one transaction and one commit; each caller is answered,
    /// in arrival order, once that commit is done. A command of another kind met in the queue
    /// is held for the next turn.
    pub(super) async fn board_group(&mut self, first: BoardCall) {
        let mut group = vec![first];
        while group[0].1.groups() && group.len() < GROUP_MAX {
            match self.commands.try_recv() {
                Ok(Command::Board { caller, op, reply }) if op.groups() => {
                    group.push((caller, op, reply));
                }
                Ok(other) => {
                    self.held = Some(other);
                    break;
                }
                Err(_) => break,
            }
        }
        let (ops, replies): (Vec<_>, Vec<_>) =
            group.into_iter().map(|(c, o, r)| ((c, o), r)).unzip();
        let run = self.run.clone();
        match self.db.call(move |c| board::apply_all(c, &run, ops)).await {
            Ok(all) => {
                for (applied, reply) in all.into_iter().zip(replies) {
                    let answered = match applied {
                        Ok(a) => Ok(Ok(self.answered(a).await)),
                        Err(BoardError::Refused(m)) => Ok(Err(m)),
                        Err(BoardError::Store(e)) => Err(e.into()),
                    };
                    let _ = reply.send(answered);
                }
            }
            Err(e) => {
                tracing::error!(run = %self.run.id, cause = %e, "board calls failed");
                let mut first = Some(e);
                for reply in replies {
                    let e = first
                        .take()
                        .unwrap_or(crate::store::StoreError::Uncommitted);
                    let _ = reply.send(Err(e.into()));
                }
            }
        }
    }

    /// What the actor does with a committed board call: publish its events, stop the run's
    /// work for a blocking escalation, queue its mirror writes.
    async fn answered(&mut self, a: board::Applied) -> board::Answered {
        let (reply, unread, a) = (a.reply, a.unread, a.changes);
        // Not `published`: a board call does not look for a deleted mirror (a `stat` per
        // call); the actor's periodic check rebuilds it whole.
        self.announce(&a.events);
        self.behind.send(Job::Log(a.events));
        if let Some(esc) = a.blocking_escalation {
            // A worker cannot go on without a human: the run waits for the answer.
            self.stop_work();
            self.write_escalation_file().await;
            if let Err(e) = self
                .set_status(
                    RunStatus::Escalated,
                    format!("waiting for you: escalation {esc} — answer with `orchestrate answer {esc} \"<guidance>\"`"),
                )
                .await
            {
                tracing::error!(run = %self.run.id, cause = %e, "cannot escalate");
            }
        }
        // Behind the answer: the caller has its reply once the transaction committed.
        for t in &a.tasks {
            self.behind.send(Job::Task(crate::wire::task(t)));
        }
        let lines: Vec<_> = a.messages.iter().map(board::reply::Message::from).collect();
        if !lines.is_empty() {
            self.behind.send(Job::Messages(lines));
        }
        for t in &a.removed {
            self.behind.send(Job::RemoveTask(t.to_string()));
        }
        if let Some((version, plan)) = &a.plan {
            // Once per plan: written in place, after what is queued.
            self.behind.flush().await;
            if let Err(e) = self.mirror.write_plan(*version, plan).await {
                tracing::warn!(run = %self.run.id, cause = %e, "cannot mirror a plan; SQLite has it");
            }
        }
        board::Answered { reply, unread }
    }

    pub(super) async fn open_session(
        &mut self,
        role: Role,
        task: Option<TaskId>,
        ttl: Duration,
    ) -> Result<SessionGrant, RunError> {
        let (token, hash) = token::mint();
        let session = SessionId::mint();
        let at = time_text::now();
        let expires_at = at + ttl;
        let (run, s, t) = (self.run.id.clone(), session.clone(), task.clone());
        // Read before the commit: a revocation meanwhile keeps the token out of memory.
        let since = self.engine.tokens.generation();
        let h = hash.clone();
        let event = self
            .db
            .call(move |c| {
                let new = crate::store::sessions::NewSession {
                    id: &s,
                    run_id: &run,
                    role,
                    task_id: t.as_ref(),
                    agent: if role == Role::Reviewer {
                        "codex"
                    } else {
                        "claude"
                    },
                    token_hash: &h,
                    expires_at,
                    at,
                };
                record_opened(c, &new)
            })
            .await??;
        let (event, task_row) = event;
        // The session's first call finds its token in memory, not in the database: a run's
        // workers start together and would otherwise all ask at once.
        let caller = crate::board::Caller {
            session: session.clone(),
            run: self.run.id.clone(),
            role,
            dispatched: task,
        };
        (self.engine.tokens).remember(hash, caller, Some(expires_at), since);
        self.published(vec![event]).await;
        if let Some(t) = task_row {
            self.behind.send(Job::Task(crate::wire::task(&t)));
        }
        Ok(SessionGrant {
            session,
            token,
            expires_at,
        })
    }

    /// Ends a session, then checks the run's budget with what it cost.
    pub(super) async fn end_session_and_check_budget(
        &mut self,
        session: SessionId,
        usage: Option<crate::store::sessions::Spent>,
    ) -> Result<bool, RunError> {
        let ended = self.end_session(session, usage).await;
        if ended.is_ok()
            && let Err(e) = self.check_budget().await
        {
            tracing::error!(run = %self.run.id, cause = %e, "cannot check the budget");
        }
        ended
    }

    async fn end_session(
        &mut self,
        session: SessionId,
        usage: Option<crate::store::sessions::Spent>,
    ) -> Result<bool, RunError> {
        let (run, s) = (self.run.id.clone(), session.clone());
        let at = time_text::now();
        let ended = self
            .db
            .call(move |c| {
                let tx = c.savepoint()?;
                let Some(row) =
                    crate::store::sessions::session(&tx, &s)?.filter(|r| r.run_id == run)
                else {
                    return Ok(Err(RunError::not_found(format!(
                        "run {run} has no session {s}"
                    ))));
                };
                let ended = crate::store::sessions::end_session(&tx, &row.id, at)?;
                if let Some(spent) = &usage {
                    crate::store::sessions::set_session_usage(&tx, &row.id, spent)?;
                }
                let e = if ended {
                    Some(events::append(
                        &tx,
                        &run,
                        at,
                        NewEvent::info(
                            EventKind::SessionEnded,
                            format!("Session {s} ended; its token is revoked"),
                        ),
                    )?)
                } else {
                    None
                };
                tx.commit()?;
                Ok(Ok((ended, e)))
            })
            .await??;
        if ended.0 {
            // Committed: from now on the token is refused, from memory too.
            self.engine.tokens.revoked();
        }
        self.published(ended.1.into_iter().collect()).await;
        self.engine.activity.forget(&session);
        Ok(ended.0)
    }
}

/// Records a session opened (and, for a worker, its task assigned) in one transaction; the
/// event and the task's row when assigned. A task the run does not have refuses it.
fn record_opened(
    c: &mut rusqlite::Connection,
    new: &crate::store::sessions::NewSession<'_>,
) -> Result<
    Result<(EventRow, Option<crate::store::board::TaskRow>), RunError>,
    crate::store::StoreError,
> {
    let (run, s, role, at) = (new.run_id, new.id, new.role, new.at);
    let tx = c.savepoint()?;
    if let Some(t) = new.task_id
        && !crate::store::board::task_exists(&tx, run, t)?
    {
        return Ok(Err(RunError::not_found(format!(
            "run {run} has no task {t}"
        ))));
    }
    let assigned = match new.task_id {
        Some(t) if role == Role::Worker => crate::store::board::assign_task(&tx, run, t, s, at)?,
        _ => false,
    };
    crate::store::sessions::insert_session(&tx, new)?;
    let e = events::append(
        &tx,
        run,
        at,
        NewEvent::info(
            EventKind::SessionOpened,
            format!("Session {s} opened ({})", role.as_str()),
        )
        .with_data(serde_json::json!({ "session": s, "role": role.as_str(), "task": new.task_id })),
    )?;
    let task_row = match (new.task_id, assigned) {
        (Some(t), true) => crate::store::board::task(&tx, run, t)?,
        _ => None,
    };
    tx.commit()?;
    Ok(Ok((e, task_row)))
}
