//! The user's verbs on a run — pause, resume, cancel — each validated before it changes
//! anything (a refused resume keeps the run's environment and commands as they were).

#[allow(clippy::wildcard_imports)]
use super::*;
use orchestrator_proto::EventKind;
use orchestrator_proto::HoldKind;

impl RunActor {
    pub(super) async fn pause(&mut self, reason: Option<String>) -> Result<RunRow, RunError> {
        match self.run.status {
            RunStatus::Queued | RunStatus::Running => {}
            RunStatus::Paused => {
                return Err(
                    RunError::conflict(format!("run {} is already paused", self.run.id))
                        .hint("resume it with `orchestrate resume`"),
                );
            }
            other => {
                return Err(RunError::conflict(format!(
                    "run {} is {other}; only a queued or running run can be paused",
                    self.run.id
                ))
                .hint("see `orchestrate escalations` for what it waits for"));
            }
        }
        let reason = reason.unwrap_or_else(|| "paused by the user".into());
        self.stop_work();
        self.set_status(RunStatus::Paused, reason).await
    }

    pub(super) async fn resume(
        &mut self,
        reason: Option<String>,
        env: Option<orchestrator_proto::SessionEnv>,
        change: orchestrator_proto::OptionsChange,
    ) -> Result<RunRow, RunError> {
        // Validate first: a refused resume changes nothing (not even the sessions' environment).
        if !matches!(
            self.run.status,
            RunStatus::Escalated | RunStatus::Planned | RunStatus::Paused
        ) {
            return Err(RunError::conflict(format!(
                "run {} is {}, not paused; nothing to resume",
                self.run.id, self.run.status
            ))
            .hint("`orchestrate status` shows what it is doing"));
        }
        let options = change.applied(&self.run.options);
        crate::runs::submit::check_options(&options)?;
        self.change_options(options, &change).await?;
        if let Some(env) = env {
            let id = self.run.id.clone();
            self.db
                .call(move |c| run_rows::set_env(c, &id, &env))
                .await?;
        }
        if self.run.status == RunStatus::Escalated {
            let reason = reason.unwrap_or_else(|| "resumed by the user without an answer".into());
            self.close_escalations("the run was resumed without an answer".into())
                .await;
            self.continue_after_escalation(reason).await?;
            return Ok(self.run.clone());
        }
        if self.run.status == RunStatus::Planned {
            let reason = reason.unwrap_or_else(|| "resumed by the user: executing the plan".into());
            self.set_state(RunStatus::Queued, Phase::Executing, reason)
                .await?;
            self.advance().await;
            return Ok(self.run.clone());
        }
        let reason = match self.run.hold_kind {
            Some(HoldKind::Usage) => {
                // The user overrides the current figures; newer ones are acted on again.
                self.forced_at = Some(time::OffsetDateTime::now_utc());
                reason.unwrap_or_else(|| "resumed by the user before the usage window reset".into())
            }
            _ => reason.unwrap_or_else(|| "resumed by the user".into()),
        };
        self.clear_hold();
        self.set_status(RunStatus::Queued, reason).await?;
        self.advance().await;
        Ok(self.run.clone())
    }

    pub(super) async fn cancel(&mut self, reason: Option<String>) -> Result<RunRow, RunError> {
        let reason = reason.unwrap_or_else(|| "cancelled by the user".into());
        let branch = self.run.branch.clone();
        self.stop_work();
        self.clear_hold();
        let row = self.set_status(RunStatus::Cancelled, reason).await?;
        self.close_escalations("the run was cancelled".into()).await;
        self.record(NewEvent::info(
            EventKind::BranchKept,
            format!("Branch {branch} is kept with whatever work it holds; delete it with `git branch -D {branch}` if unwanted"),
        ))
        .await?;
        Ok(row)
    }
}
