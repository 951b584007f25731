//! Task changes the engine reports to the actor (merged, back to the board, failed,
//! interrupted), each with its event in one transaction, then published and mirrored.

#[allow(clippy::wildcard_imports)]
use super::*;
use crate::ids::{RunId, TaskId};

impl RunActor {
    pub(super) async fn task_update(
        &mut self,
        task: TaskId,
        status: TaskStatus,
        failure: Option<String>,
        event: NewEvent,
    ) -> Result<(), RunError> {
        self.change_task(task, event, move |tx, run, task, at| {
            crate::store::board::set_task_status(tx, run, task, status, failure.as_deref(), at)
        })
        .await
    }

    pub(super) async fn task_interrupted(
        &mut self,
        task: TaskId,
        resume: Option<crate::store::sessions::WorkerPlace>,
        event: NewEvent,
    ) -> Result<(), RunError> {
        self.change_task(task, event, move |tx, run, task, at| {
            crate::store::board::interrupt_task(tx, run, task, resume.as_ref(), at).map(drop)
        })
        .await
    }

    /// One engine change to a task: the change and its event in one transaction, then the
    /// event broadcast and the task's mirror file rewritten.
    pub(super) async fn change_task(
        &mut self,
        task: TaskId,
        event: NewEvent,
        change: impl FnOnce(
            &rusqlite::Connection,
            &RunId,
            &TaskId,
            time::OffsetDateTime,
        ) -> Result<(), crate::store::StoreError>
        + Send
        + 'static,
    ) -> Result<(), RunError> {
        let (run, at) = (self.run.id.clone(), time_text::now());
        let (row, e) = self
            .db
            .call(move |c| {
                let tx = c.savepoint()?;
                change(&tx, &run, &task, at)?;
                let e = events::append(&tx, &run, at, event)?;
                let row = crate::store::board::task(&tx, &run, &task)?;
                tx.commit()?;
                Ok((row, e))
            })
            .await?;
        self.published(vec![e]).await;
        if let Some(t) = row {
            self.behind.send(Job::Task(crate::wire::task(&t)));
        }
        Ok(())
    }
}
