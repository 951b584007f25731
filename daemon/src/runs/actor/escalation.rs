//! Escalations: asking a human (the question and its context as an escalation row, the
//! escalated status, `.orchestrator/escalation.json` in the mirror), and the answer — a message to the asker,
//! commands changed for the rest of the run (`--gate`, `--setup`), and the run going on once no
//! blocking question is left.

#[allow(clippy::wildcard_imports)]
use super::*;
use orchestrator_proto::EventKind;

impl RunActor {
    /// Stops the run for a human: records a blocking escalation, winds down running sessions,
    /// and writes `.orchestrator/escalation.json`. `answer` or `resume` continues the run.
    pub(super) async fn escalate(
        &mut self,
        kind: orchestrator_proto::EscalationKind,
        task: Option<crate::ids::TaskId>,
        question: String,
        evidence: String,
    ) -> Result<(), RunError> {
        self.stop_work();
        let at = time_text::now();
        let new = crate::store::NewEscalation {
            run_id: self.run.id.clone(),
            task_id: task,
            kind,
            question: question.clone(),
            context: Some(evidence),
            blocking: true,
            at,
        };
        let esc = self
            .db
            .call(move |c| {
                let esc = escalations::insert(c, &new)?;
                // The run asks again: what it asked before is no longer waiting.
                let why = format!("superseded by escalation {}", esc.id);
                escalations::close_live(c, &new.run_id, &why, Some(esc.id), at)?;
                Ok(esc)
            })
            .await?;
        // The file first: whoever sees the run escalated finds it.
        self.write_escalation_file().await;
        self.set_status(
            RunStatus::Escalated,
            format!("waiting for you: escalation {} — answer with `orchestrate answer {} \"<guidance>\"`", esc.id, esc.id),
        )
        .await?;
        Ok(())
    }

    /// Closes the run's live escalations without an answer (`why`: the run was cancelled,
    /// resumed, ended) and removes `.orchestrator/escalation.json`.
    pub(super) async fn close_escalations(&self, why: String) {
        let (id, at) = (self.run.id.clone(), time_text::now());
        if let Err(e) = self
            .db
            .call(move |c| escalations::close_live(c, &id, &why, None, at))
            .await
        {
            tracing::warn!(run = %self.run.id, cause = %e, "cannot close the run's escalations");
        }
        self.write_escalation_file().await;
    }

    /// `.orchestrator/escalation.json`: the pending blocking escalations, or no file.
    pub(super) async fn write_escalation_file(&self) {
        let (id, project) = (self.run.id.clone(), self.run.project.clone());
        let pending = self
            .db
            .call(move |c| {
                Ok(escalations::list(c, Some(&project), false)?
                    .into_iter()
                    .filter(|e| e.run_id == id && e.blocking)
                    .collect::<Vec<_>>())
            })
            .await
            .unwrap_or_default();
        let path = self.mirror.root().join("escalation.json");
        if pending.is_empty() {
            let _ = tokio::fs::remove_file(&path).await;
            return;
        }
        let body = serde_json::json!({
            "run_id": self.run.id,
            "feature": self.run.feature,
            "escalations": pending.iter().map(crate::wire::escalation).collect::<Vec<_>>(),
            "options": ["orchestrate answer <id> \"<guidance>\" (the run resumes with it)",
                        "orchestrate resume (continue without an answer)",
                        "orchestrate cancel"],
        });
        let mut bytes = serde_json::to_vec_pretty(&body).unwrap_or_default();
        bytes.push(b'\n');
        if let Err(e) = crate::mirror::write_atomic(&path, &bytes).await {
            tracing::warn!(run = %self.run.id, cause = %e, "cannot write escalation.json");
        }
    }

    /// Continues an escalated run: every unmerged task gets a fresh set of attempts, and the
    /// engine picks up where the run stopped (planning or executing).
    pub(super) async fn continue_after_escalation(
        &mut self,
        reason: String,
    ) -> Result<(), RunError> {
        let id = self.run.id.clone();
        let at = time_text::now();
        self.db
            .call(move |c| crate::store::board::fresh_attempts(c, &id, at))
            .await?;
        let phase = match self.run.phase {
            Phase::Executing => Phase::Executing,
            // Escalated after a code review: the guidance goes into another cycle.
            Phase::CodeReview => {
                self.run.cycle += 1;
                Phase::Planning
            }
            _ => Phase::Planning,
        };
        self.set_state(RunStatus::Queued, phase, reason).await?;
        self.write_escalation_file().await;
        self.advance().await;
        Ok(())
    }

    /// Keeps `options` (already checked) as the run's from now on, and says what changed.
    pub(super) async fn change_options(
        &mut self,
        options: orchestrator_proto::RunOptions,
        change: &orchestrator_proto::OptionsChange,
    ) -> Result<(), RunError> {
        if change.is_none() {
            return Ok(());
        }
        let (id, o) = (self.run.id.clone(), options.clone());
        self.db
            .call(move |c| run_rows::set_options(c, &id, &o))
            .await?;
        let said =
            |c: &Option<String>| c.as_deref().map_or("none".to_owned(), |c| format!("`{c}`"));
        let mut parts = Vec::new();
        if change.gate.is_some() {
            parts.push(format!("gate {}", said(&options.gate)));
        }
        if change.setup.is_some() {
            parts.push(format!("setup {}", said(&options.setup)));
        }
        if change.gate_timeout_secs.is_some() {
            parts.push(format!("gate timeout {}s", options.gate_timeout_secs));
        }
        self.run.options = options;
        self.record(NewEvent::info(
            EventKind::OptionsChanged,
            format!("From now on: {}", parts.join(", ")),
        ))
        .await?;
        Ok(())
    }

    /// `orchestrate tell`: the user's message to a task's worker (or every worker), delivered
    /// through `read_messages`; a running worker's next tool reply says it is there.
    pub(super) async fn tell(
        &mut self,
        tell: orchestrator_proto::Tell,
    ) -> Result<orchestrator_proto::Told, RunError> {
        if tell.text.trim().is_empty() {
            return Err(RunError::invalid("the message is empty")
                .hint("orchestrate tell <task|all> \"<what the worker should know>\""));
        }
        // The same bound as a worker's own messages: every tool reply may lead to reading it.
        if tell.text.len() > board::BODY_MAX {
            return Err(RunError::invalid(format!(
                "the message is {} bytes; a message holds at most {}",
                tell.text.len(),
                board::BODY_MAX
            ))
            .hint("say what the worker needs to know, and point to a file for the rest"));
        }
        let (id, at) = (self.run.id.clone(), time_text::now());
        let to = tell.to.clone();
        let (message, event, running) = self
            .db
            .call(move |c| {
                let tx = c.savepoint()?;
                let tasks = crate::store::board::tasks(&tx, &id)?;
                let (kind, target) = match to.as_str() {
                    "all" => ("all", None),
                    t if tasks.iter().any(|x| x.id.as_str() == t) => ("task", Some(t)),
                    t => {
                        return Ok(Err(RunError::not_found(format!(
                            "run {id} has no task {t:?}"
                        ))
                        .hint("give a task id from `orchestrate status` or `all`")));
                    }
                };
                let body = format!("From the user: {}", tell.text.trim());
                let m =
                    crate::store::board::insert_message(&tx, &id, None, kind, target, &body, at)?;
                let event = events::append(
                    &tx,
                    &id,
                    at,
                    NewEvent::info(
                        EventKind::MessageSent,
                        format!(
                            "You told {}: {}",
                            target.map_or("every worker".to_owned(), |t| format!("task {t}")),
                            tell.text.trim()
                        ),
                    )
                    .with_data(serde_json::json!({"message": m.id})),
                )?;
                let running = tasks
                    .iter()
                    .filter(|t| t.status == orchestrator_proto::TaskStatus::InProgress)
                    .filter(|t| target.is_none_or(|x| t.id.as_str() == x))
                    .map(|t| t.id.to_string())
                    .collect::<Vec<_>>();
                tx.commit()?;
                Ok(Ok((m, event, running)))
            })
            .await??;
        self.published(vec![event]).await;
        let line = board::reply::Message::from(&message);
        self.behind.send(Job::Messages(vec![line]));
        Ok(orchestrator_proto::Told {
            message_id: message.id,
            running,
        })
    }

    pub(super) async fn answer(
        &mut self,
        id: u64,
        answer: String,
        change: orchestrator_proto::OptionsChange,
    ) -> Result<EscalationRow, RunError> {
        let options = change.applied(&self.run.options);
        crate::runs::submit::check_options(&options)?;
        let run_id = self.run.id.clone();
        let at = time_text::now();
        let (row, event, message) = self
            .db
            .call(move |c| record_answer(c, &run_id, id, &answer, at))
            .await??;
        self.published(vec![event]).await;
        self.change_options(options, &change).await?;
        self.rewrite_mirror(false).await;
        self.behind
            .send(behind::Job::Messages(vec![board::reply::Message::from(
                &message,
            )]));
        if self.run.status == RunStatus::Escalated {
            let (rid, project) = (self.run.id.clone(), self.run.project.clone());
            let still = self
                .db
                .call(move |c| {
                    Ok(escalations::list(c, Some(&project), false)?
                        .into_iter()
                        .any(|e| e.run_id == rid && e.blocking))
                })
                .await?;
            if !still {
                self.continue_after_escalation(format!(
                    "escalation {id} answered; continuing with the guidance"
                ))
                .await?;
            }
        } else {
            self.write_escalation_file().await;
        }
        row.ok_or_else(|| RunError::not_found(format!("no escalation {id}")))
    }
}

/// What an answer wrote: the escalation as it is now, the event, the asker's message.
type Answered = (
    Option<EscalationRow>,
    crate::store::EventRow,
    crate::store::board::MessageRow,
);

/// An answer in one transaction: the escalation answered, the asker's message, the event.
/// `Err(RunError)` when there is no such escalation or it was answered already.
fn record_answer(
    c: &mut rusqlite::Connection,
    run_id: &crate::ids::RunId,
    id: u64,
    answer: &str,
    at: time::OffsetDateTime,
) -> Result<Result<Answered, RunError>, crate::store::StoreError> {
    let tx = c.savepoint()?;
    let Some(existing) = escalations::get(&tx, id)? else {
        return Ok(Err(RunError::not_found(format!("no escalation {id}"))));
    };
    if let Some(refused) = crate::runs::not_live(&existing) {
        return Ok(Err(refused));
    }
    escalations::answer(&tx, id, answer, at)?;
    // The asker learns the answer from its messages.
    let (to_kind, to) = match &existing.task_id {
        Some(t) => ("task", Some(t.as_str())),
        None => ("all", None),
    };
    let message = crate::store::board::insert_message(
        &tx,
        run_id,
        None,
        to_kind,
        to,
        &format!(
            "Answer to escalation {id} (\"{}\"): {answer}",
            existing.question.lines().next().unwrap_or("").trim()
        ),
        at,
    )?;
    let event = events::append(
        &tx,
        run_id,
        at,
        NewEvent::info(
            EventKind::EscalationAnswered,
            format!("Escalation {id} answered"),
        )
        .with_data(serde_json::json!({ "escalation": id })),
    )?;
    let row = escalations::get(&tx, id)?;
    tx.commit()?;
    Ok(Ok((row, event, message)))
}
