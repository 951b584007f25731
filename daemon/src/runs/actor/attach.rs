//! `orchestrate attach`: a person takes over a task's interrupted Claude worker. The run is
//! paused first (its workers interrupted, each keeping its session, worktree and branch, no
//! attempt spent); `attach` gives the person a worker session of the task (its MCP token) and
//! the Claude session to resume in the worktree; `detach` puts the task back where they left it
//! — attempt refunded, to be continued headless with `claude --resume` of the same
//! conversation — unless they completed it there, in which case it is verified and merged
//! when the run resumes.

#[allow(clippy::wildcard_imports)]
use super::*;
use crate::ids::{SessionId, TaskId};
use orchestrator_proto::{EventKind, TaskStatus};

impl RunActor {
    /// Hands the task's interrupted worker to a person.
    pub(super) async fn attach(
        &mut self,
        task: TaskId,
    ) -> Result<(SessionGrant, crate::store::sessions::WorkerPlace), RunError> {
        if self.run.status != RunStatus::Paused || self.working.is_some() {
            return Err(RunError::conflict(format!(
                "run {} is {}; a worker is taken over in a paused run whose workers have stopped",
                self.run.id, self.run.status
            ))
            .hint("orchestrate attach pauses it for you; try again in a moment"));
        }
        let (id, t) = (self.run.id.clone(), task.clone());
        let row = self
            .db
            .call(move |c| crate::store::board::task(c, &id, &t))
            .await?
            .ok_or_else(|| {
                RunError::not_found(format!("run {} has no task {task:?}", self.run.id))
            })?;
        let place = match (row.status, row.resume) {
            (TaskStatus::Pending, Some(p))
                if p.agent == orchestrator_proto::Agent::Claude && !p.session.is_empty() =>
            {
                p
            }
            (TaskStatus::Pending, Some(p)) => {
                return Err(RunError::conflict(format!(
                    "task {task}'s worker is Codex, which attach does not take over"
                ))
                .hint(format!(
                    "continue it yourself: cd {} && codex resume {}",
                    p.worktree.display(),
                    p.session
                )));
            }
            (status, _) => {
                return Err(RunError::conflict(format!(
                    "task {task} is {status} with no interrupted worker to take over"
                ))
                .hint("attach takes over a task whose worker was running when the run paused"));
            }
        };
        let ttl =
            std::time::Duration::from_secs(orchestrator_proto::session::defaults::MAX_TTL_SECS);
        let grant = self
            .open_session(board::Role::Worker, Some(task.clone()), ttl)
            .await?;
        let (s, p) = (grant.session.clone(), place.clone());
        self.db
            .call(move |c| crate::store::sessions::set_place(c, &s, &p))
            .await?;
        self.record(NewEvent::info(
            EventKind::SessionOpened,
            format!(
                "You took over task {task} (session {}) in {}: claude --resume {}",
                grant.session,
                place.worktree.display(),
                place.session
            ),
        ))
        .await?;
        Ok((grant, place))
    }

    /// The person is done: the task goes back where they left it, unless they completed it.
    pub(super) async fn detach(
        &mut self,
        task: TaskId,
        session: SessionId,
    ) -> Result<TaskStatus, RunError> {
        let (id, t, s, at) = (
            self.run.id.clone(),
            task.clone(),
            session.clone(),
            time_text::now(),
        );
        let status = self
            .db
            .call(move |c| {
                let tx = c.savepoint()?;
                let place = crate::store::sessions::place(&tx, &s)?;
                let row = crate::store::board::task(&tx, &id, &t)?;
                if let Some(r) = &row
                    && r.status == TaskStatus::InProgress
                    && r.assignee.as_ref() == Some(&s)
                {
                    crate::store::board::interrupt_task(&tx, &id, &t, place.as_ref(), at)?;
                }
                let now = crate::store::board::task(&tx, &id, &t)?.map(|r| r.status);
                tx.commit()?;
                Ok(now)
            })
            .await?
            .ok_or_else(|| {
                RunError::not_found(format!("run {} has no task {task:?}", self.run.id))
            })?;
        self.end_session_and_check_budget(session, None).await?;
        let then = match status {
            TaskStatus::Pending => "it continues headless from there when the run resumes",
            TaskStatus::Done => "you completed it; it is verified and merged when the run resumes",
            _ => "as it is",
        };
        self.record(NewEvent::info(
            EventKind::SessionEnded,
            format!("You left task {task}: {then}"),
        ))
        .await?;
        self.rewrite_mirror(false).await;
        Ok(status)
    }
}
