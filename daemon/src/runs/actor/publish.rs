//! How every change of a run leaves its actor: the status change and its event in one
//! transaction, then the event broadcast to followers, a desktop notification where it matters,
//! and the mirror rewritten (never through a link: a refusal is said once as an event).

#[allow(clippy::wildcard_imports)]
use super::*;
use orchestrator_proto::EventKind;

impl RunActor {
    /// Moves the run to `status`, recording why, in one transaction.
    pub(super) async fn set_status(
        &mut self,
        status: RunStatus,
        reason: String,
    ) -> Result<RunRow, RunError> {
        let phase = self.run.phase;
        self.set_state(status, phase, reason).await
    }

    /// Moves the run to `status` and `phase`, recording why, in one transaction.
    pub(super) async fn set_state(
        &mut self,
        status: RunStatus,
        phase: Phase,
        reason: String,
    ) -> Result<RunRow, RunError> {
        let mut next = self.run.clone();
        next.phase = phase;
        let at = time_text::now();
        let from = next.status;
        next.status = status;
        next.status_reason = Some(reason.clone());
        next.updated_at = at;
        if !status.is_active() {
            next.finished_at = Some(at);
        }
        let row = next.clone();
        let event = NewEvent {
            level: Level::Info,
            kind: EventKind::StatusChanged,
            message: if from == status {
                format!("Run {}: {} ({reason})", next.id, next.phase)
            } else {
                format!("Run {}: {from} → {status} ({reason})", next.id)
            },
            data: serde_json::json!({ "from": from, "to": status, "reason": reason }),
        };
        let event = self
            .db
            .call(move |c| {
                let tx = c.savepoint()?;
                run_rows::update(&tx, &row)?;
                let e = events::append(&tx, &row.id, at, event)?;
                tx.commit()?;
                Ok(e)
            })
            .await?;
        if !status.is_active() {
            // Committed: the run's tokens are refused from now on, not once the actor is gone.
            (self.ended).store(true, std::sync::atomic::Ordering::Release);
        }
        self.run = next;
        self.published(vec![event]).await;
        if status != from {
            self.notify(status);
        }
        self.rewrite_mirror(false).await;
        Ok(self.run.clone())
    }

    /// Tells the user (desktop, webhooks) when the run needs them or is done.
    fn notify(&self, status: RunStatus) {
        {
            let what = match status {
                RunStatus::Escalated => Some("needs you"),
                RunStatus::Paused => Some("is paused"),
                RunStatus::Completed if self.run.unreviewed.is_some() => {
                    Some("is complete, not reviewed")
                }
                RunStatus::Completed => Some("is complete"),
                RunStatus::Failed => Some("failed"),
                _ => None,
            };
            let Some(what) = what else { return };
            let title = format!("orchestrator: run {what}");
            let feature = self.run.feature.lines().next().unwrap_or("").to_owned();
            let message = format!("{feature} — {}", reason_text(&self.run));
            if self.engine.notifications {
                crate::notify::send(&title, &message);
            }
            let notice = crate::notify::webhook::Notice {
                event: status.as_str(),
                title,
                message,
                run: self.run.id.to_string(),
                project: self.run.project.clone(),
                feature,
                reason: reason_text(&self.run),
            };
            crate::notify::webhook::send_all(&self.engine.webhooks, &notice);
        }
    }

    /// Appends an event that changes no state.
    pub(super) async fn record(&mut self, event: NewEvent) -> Result<(), RunError> {
        let id = self.run.id.clone();
        let at = time_text::now();
        let e = self
            .db
            .call(move |c| events::append(c, &id, at, event))
            .await?;
        self.published(vec![e]).await;
        Ok(())
    }

    /// Broadcasts committed events and appends them to the mirror's log.
    pub(super) async fn published(&self, events: Vec<EventRow>) {
        self.announce(&events);
        if !self.mirror.root().join("state.json").exists() {
            // The mirror was deleted: rebuild all of it, whole log included, from SQLite.
            self.rewrite_mirror(true).await;
            return;
        }
        self.behind.send(behind::Job::Log(events));
    }

    /// Broadcasts committed events (to the run's followers, the daemon's feed and its log;
    /// a debug event, such as a progress note, at debug level there).
    pub(super) fn announce(&self, events: &[EventRow]) {
        for e in events {
            match e.level {
                orchestrator_proto::Level::Debug => {
                    tracing::debug!(run = %self.run.id, kind = %e.kind, "{}", e.message)
                }
                _ => tracing::info!(run = %self.run.id, kind = %e.kind, "{}", e.message),
            }
            let _ = self.events.send(e.clone());
            self.engine.feed.send(e);
        }
    }

    /// Every task's file checked against SQLite, rewritten where it fell behind (a daemon
    /// stopped with mirror writes queued); files of tasks the run does not have are removed.
    pub(super) async fn rewrite_task_files(&self) {
        let run = self.run.id.clone();
        match self
            .db
            .call(move |c| crate::store::board::tasks(c, &run))
            .await
        {
            Ok(tasks) => {
                let ids = tasks.iter().map(|t| t.id.to_string()).collect();
                self.behind.send(behind::Job::Prune(ids));
                for t in &tasks {
                    self.behind
                        .send(behind::Job::TaskIfChanged(crate::wire::task(t)));
                }
            }
            Err(e) => {
                tracing::warn!(run = %self.run.id, cause = %e, "cannot read the tasks to mirror")
            }
        }
    }

    /// A link in the mirror's way: said once in the run's log (the run goes on; SQLite holds
    /// everything, and the mirror is written again once the link is gone).
    pub(super) async fn mirror_refused(&self, e: &std::io::Error) {
        if self.mirror.first_refusal(e) {
            self.say_refused(e.to_string()).await;
        }
    }

    /// Says in the run's log (not the mirror's: it is refused) why the mirror stopped.
    pub(super) async fn say_refused(&self, why: String) {
        let (id, at) = (self.run.id.clone(), time_text::now());
        let event = NewEvent {
            level: orchestrator_proto::Level::Warn,
            ..NewEvent::info(
                EventKind::MirrorRefused,
                format!("The mirror stopped writing into the project: {why}; the run goes on"),
            )
        };
        if let Ok(row) = self
            .db
            .call(move |c| events::append(c, &id, at, event))
            .await
        {
            self.engine.feed.send(&row);
            let _ = self.events.send(row);
        }
    }

    /// Rewrites `state.json` and `context.md`; with `log`, also the whole log from SQLite.
    pub(super) async fn rewrite_mirror(&self, log: bool) {
        // Whole files after everything queued: a rebuilt log never misses or repeats a line.
        self.behind.flush().await;
        if let Some(why) = self.behind.take_refusal() {
            self.say_refused(why).await;
        }
        let id = self.run.id.clone();
        let project = self.run.project.clone();
        let loaded = self
            .db
            .call(move |c| {
                let answered: Vec<_> = escalations::list(c, Some(&project), true)?
                    .into_iter()
                    .filter(|e| e.run_id == id && e.answer.is_some())
                    .collect();
                let all = if log {
                    events::read(c, &id, 0, None)?
                } else {
                    Vec::new()
                };
                // Fresh, so state.json carries the current task and cost counts.
                let row = run_rows::get(c, &id)?;
                Ok((answered, all, row))
            })
            .await;
        let result = match loaded {
            Ok((answered, all, row)) => {
                let row = row.unwrap_or_else(|| self.run.clone());
                let mut r = self.mirror.write_run(&row, &answered).await;
                if r.is_ok() && log {
                    r = self.mirror.rewrite_log(&all).await;
                }
                r
            }
            Err(e) => Err(std::io::Error::other(e)),
        };
        if let Err(e) = result {
            tracing::warn!(run = %self.run.id, dir = %self.mirror.root().display(), cause = %e,
                "cannot write the mirror; SQLite still holds the run");
            self.mirror_refused(&e).await;
        }
    }
}
