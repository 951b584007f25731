//! The run's decisions between phases, made by its actor: after a plan (review it, or go), after
//! a plan review (revise, or go with the concerns recorded), after execution (review the code,
//! or finish), after a code review (finish, another cycle, or a human).
//!
//! **Invariant:** a review's row, its ledger changes and its event are one transaction; the
//! phase change that follows is another, so a daemon stopped in between re-runs the review
//! (reviews are read-only) rather than acting twice on one.

use orchestrator_proto::{Level, Phase, RunStatus};

use super::RunActor;
use super::behind::Job;
use crate::engine::review::ledger::{self, Next, Round};
use crate::engine::review::{Reviewed, verdict::Verdict};
use crate::runs::error::RunError;
use crate::store::reviews::{self, FindingRow, NewReview, ReviewKind, ReviewOutcome};
use crate::store::{NewEvent, events, runs as run_rows, time_text};
use orchestrator_proto::EventKind;

/// The log's sentence for a review's verdict on `what` ("plan v2", "cycle 1's code").
fn verdict_message(what: &str, round: &Round, summary: &str) -> String {
    let blocking = round.blocking();
    if blocking.is_empty() {
        format!(
            "Codex approved {what}{}: {}",
            if round.raised.is_empty() {
                String::new()
            } else {
                format!(" with non-blocking findings {}", ids(round.raised_rows()))
            },
            summary.lines().next().unwrap_or("")
        )
    } else {
        format!(
            "Codex asks for changes to {what}: {}",
            blocking
                .iter()
                .map(|f| format!("{} [{}] {}", f.id, f.priority, f.title))
                .collect::<Vec<_>>()
                .join("; ")
        )
    }
}

fn warn(kind: orchestrator_proto::EventKind, message: String) -> NewEvent {
    NewEvent {
        level: Level::Warn,
        ..NewEvent::info(kind, message)
    }
}

fn ids<'a>(rows: impl IntoIterator<Item = &'a FindingRow>) -> String {
    rows.into_iter()
        .map(|f| f.id.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

impl RunActor {
    fn codex_wanted(&self) -> bool {
        !self.run.options.skip_codex
    }

    async fn reviews_of(&self, kind: ReviewKind) -> Result<usize, RunError> {
        let id = self.run.id.clone();
        Ok(self
            .db
            .call(move |c| {
                Ok(reviews::list(c, &id)?
                    .into_iter()
                    .filter(|r| r.kind == kind)
                    .count())
            })
            .await?)
    }

    /// A plan was submitted: review it (first cycle, rounds left) or go on.
    pub(super) async fn after_plan(&mut self, version: u32) -> Result<(), RunError> {
        let rounds = self.engine.codex.plan_review_rounds as usize;
        if self.run.cycle <= 1 && rounds > 0 {
            if !self.codex_wanted() {
                self.record(NewEvent::info(
                    EventKind::ReviewSkipped,
                    "Codex plan review skipped (--skip-codex)",
                ))
                .await?;
            } else if self.reviews_of(ReviewKind::Plan).await? < rounds {
                self.start_work(Phase::PlanReview, &format!("Codex reviews plan v{version}"))
                    .await;
                return Ok(());
            }
        }
        self.go_with_plan(version).await
    }

    /// Executes the plan, or stops at `planned` for `--dry-run`.
    async fn go_with_plan(&mut self, version: u32) -> Result<(), RunError> {
        if self.run.options.dry_run {
            let reason = format!(
                "planned (--dry-run): read plan-v{version}.md; `orchestrate resume` executes it"
            );
            return self.set_status(RunStatus::Planned, reason).await.map(drop);
        }
        self.start_execution().await;
        Ok(())
    }

    /// Every task is merged: review the code, or finish.
    pub(super) async fn after_execution(&mut self, summary: String) -> Result<(), RunError> {
        if self.codex_wanted() {
            self.start_work(
                Phase::CodeReview,
                &format!("{summary}; Codex reviews the code"),
            )
            .await;
            return Ok(());
        }
        self.record(NewEvent::info(
            EventKind::ReviewSkipped,
            "Codex code review skipped (--skip-codex)",
        ))
        .await?;
        self.complete(summary).await
    }

    async fn complete(&mut self, summary: String) -> Result<(), RunError> {
        // Before the status says completed, so whoever waits for it finds the PR in the log.
        if let Some(req) = self.run.options.pr.clone() {
            self.open_pr(req).await;
        }
        self.set_state(RunStatus::Completed, Phase::Done, summary)
            .await?;
        // A question nobody answered while it ran waits for nothing now.
        self.close_escalations("the run completed".into()).await;
        Ok(())
    }

    /// `start --pr`: the completed run's branch pushed and its pull request opened; what came
    /// of it (the URL, or why not and what to do) is in the log. Never changes the run.
    async fn open_pr(&mut self, req: orchestrator_proto::pr::OpenPr) {
        let id = self.run.id.clone();
        let env = self
            .db
            .call(move |c| crate::store::runs::env(c, &id))
            .await
            .unwrap_or_default();
        let logs = self.engine.data_dir.join("pr");
        let opened = match crate::runs::pr::facts(&self.db, self.run.clone()).await {
            Ok(facts) => crate::runs::pr::open(&facts, &env, &req, &logs).await,
            Err(e) => Err(e),
        };
        let event = match opened {
            Ok(r) => NewEvent::info(
                EventKind::PrOpened,
                match (&r.url, &r.note) {
                    (Some(url), _) => {
                        format!("Pushed {} to {}; pull request: {url}", r.branch, r.remote)
                    }
                    (None, note) => format!(
                        "Pushed {} to {}; no pull request: {}{}",
                        r.branch,
                        r.remote,
                        note.as_deref().unwrap_or("gh opened none"),
                        r.compare_url
                            .as_deref()
                            .map(|c| format!(" — open it at {c}"))
                            .unwrap_or_default()
                    ),
                },
            )
            .with_data(serde_json::json!({"url": r.url, "compare_url": r.compare_url})),
            Err(e) => NewEvent {
                level: orchestrator_proto::Level::Warn,
                ..NewEvent::info(
                    EventKind::PrFailed,
                    format!(
                        "No pull request: {e}{}",
                        e.hint_text().map(|h| format!(" ({h})")).unwrap_or_default()
                    ),
                )
            },
        };
        if let Err(e) = self.record(event).await {
            tracing::warn!(run = %self.run.id, cause = %e, "cannot record the pull request");
        }
    }

    async fn merged_summary(&self) -> Result<String, RunError> {
        let id = self.run.id.clone();
        let n = self
            .db
            .call(move |c| Ok(crate::store::board::tasks(c, &id)?.len()))
            .await?;
        Ok(format!(
            "all {} merged into {}",
            orchestrator_proto::words::count(n as u64, "task"),
            self.run.branch
        ))
    }

    pub(super) async fn review_done(&mut self, outcome: Reviewed) -> Result<(), RunError> {
        if !self.work_ended().await {
            return Ok(()); // paused or cancelled meanwhile
        }
        match outcome {
            Reviewed::Stopped => Ok(()),
            Reviewed::Unavailable { kind, reason } => {
                self.review_gap = Some(reason.clone());
                self.record(warn(
                    EventKind::ReviewSkipped,
                    format!("Codex {} review skipped: {reason}", kind.as_str()),
                ))
                .await?;
                self.after_review(kind, None).await
            }
            Reviewed::Failed {
                kind,
                plan_version,
                reason,
                dir,
            } => {
                self.review_gap = Some(reason.clone());
                let new = NewReview {
                    kind,
                    cycle: self.run.cycle,
                    plan_version,
                    outcome: ReviewOutcome::Failed,
                    summary: reason.clone(),
                    dir: dir.display().to_string(),
                };
                let event = warn(
                    EventKind::ReviewFailed,
                    format!(
                        "Codex {} review failed after {} attempts, so the run goes on without it: {reason}",
                        kind.as_str(),
                        crate::engine::review::ATTEMPTS
                    ),
                );
                self.store_review(new, event).await?;
                self.after_review(kind, None).await
            }
            Reviewed::Verdict {
                kind,
                plan_version,
                verdict,
                dir,
            } => {
                let round = self
                    .record_verdict(kind, plan_version, &verdict, &dir)
                    .await?;
                self.after_review(kind, Some((round, plan_version))).await
            }
        }
    }

    /// Records a verdict: the review row, the ledger and the event, in one transaction; then
    /// `verdict.json` and `ledger.json` in the mirror.
    async fn record_verdict(
        &mut self,
        kind: ReviewKind,
        plan_version: Option<u32>,
        verdict: &Verdict,
        dir: &std::path::Path,
    ) -> Result<Round, RunError> {
        let (run, cycle, at) = (self.run.id.clone(), self.run.cycle, time_text::now());
        let (found, summary) = (verdict.findings.clone(), verdict.summary.clone());
        let dir_text = dir.display().to_string();
        let (round, event) = self
            .db
            .call(move |c| {
                let tx = c.savepoint()?;
                let before = reviews::findings(&tx, &run, kind)?;
                // The row first, for its id; the outcome follows from the ledger.
                let id = reviews::insert(
                    &tx,
                    &run,
                    &NewReview {
                        kind,
                        cycle,
                        plan_version,
                        outcome: ReviewOutcome::Approved,
                        summary: summary.clone(),
                        dir: dir_text,
                    },
                    at,
                )?;
                let round = ledger::apply(kind, &before, &found, id);
                let blocking = round.blocking();
                if !blocking.is_empty() {
                    reviews::mark_changes(&tx, id)?;
                }
                reviews::upsert_findings(&tx, &run, &round.ledger)?;
                let what = if kind == ReviewKind::Plan {
                    format!("plan v{}", plan_version.unwrap_or(0))
                } else {
                    format!("cycle {cycle}'s code")
                };
                let message = verdict_message(&what, &round, &summary);
                let e = events::append(
                    &tx,
                    &run,
                    at,
                    NewEvent::info(EventKind::ReviewFinished, message).with_data(
                        serde_json::json!({
                            "review": id, "kind": kind.as_str(), "raised": round.raised,
                        }),
                    ),
                )?;
                tx.commit()?;
                Ok((round, e))
            })
            .await?;
        self.published(vec![event]).await;
        self.mirror_verdict(kind, plan_version, verdict, dir, &round)
            .await;
        Ok(round)
    }

    /// The review's `verdict.json` and the kind's ledger in `.orchestrator/codex-reviews/`.
    async fn mirror_verdict(
        &self,
        kind: ReviewKind,
        plan_version: Option<u32>,
        verdict: &Verdict,
        dir: &std::path::Path,
        round: &Round,
    ) {
        let rel = dir
            .strip_prefix(self.mirror.root().join("codex-reviews"))
            .unwrap_or(dir)
            .join("verdict.json");
        let raised: Vec<serde_json::Value> = round.raised_rows().map(finding_json).collect();
        let body = serde_json::json!({
            "kind": kind.as_str(), "cycle": self.run.cycle, "plan_version": plan_version,
            "verdict": match verdict.verdict {
                crate::engine::review::verdict::Decision::Approve => "approve",
                crate::engine::review::verdict::Decision::Revise => "revise",
            },
            "summary": verdict.summary, "findings": raised,
        });
        let ledger: Vec<serde_json::Value> = round.ledger.iter().map(finding_json).collect();
        for (name, body) in [
            (rel, body),
            (
                std::path::PathBuf::from(format!("ledger-{}.json", kind.as_str())),
                serde_json::json!({ "findings": ledger }),
            ),
        ] {
            if let Err(e) = self.mirror.write_review_file(&name, &body).await {
                tracing::warn!(run = %self.run.id, cause = %e, "cannot mirror a review");
            }
        }
    }

    async fn store_review(&mut self, new: NewReview, event: NewEvent) -> Result<(), RunError> {
        let (run, at) = (self.run.id.clone(), time_text::now());
        let e = self
            .db
            .call(move |c| {
                let tx = c.savepoint()?;
                reviews::insert(&tx, &run, &new, at)?;
                let e = events::append(&tx, &run, at, event)?;
                tx.commit()?;
                Ok(e)
            })
            .await?;
        self.published(vec![e]).await;
        Ok(())
    }

    /// What the run does after a review (`None`: no verdict).
    async fn after_review(
        &mut self,
        kind: ReviewKind,
        verdict: Option<(Round, Option<u32>)>,
    ) -> Result<(), RunError> {
        match kind {
            ReviewKind::Plan => self.after_plan_review(verdict).await,
            ReviewKind::Code => self.after_code_review(verdict.map(|v| v.0)).await,
        }
    }

    async fn latest_plan(&self) -> Result<u32, RunError> {
        let id = self.run.id.clone();
        Ok(self
            .db
            .call(move |c| crate::store::board::latest_plan(c, &id))
            .await?
            .map_or(0, |p| p.0))
    }

    async fn after_plan_review(
        &mut self,
        verdict: Option<(Round, Option<u32>)>,
    ) -> Result<(), RunError> {
        let version = self.latest_plan().await?;
        let Some((round, reviewed)) = verdict else {
            return self.go_with_plan(version).await;
        };
        let blocking: Vec<FindingRow> = round.blocking().into_iter().cloned().collect();
        if blocking.is_empty() {
            return self.go_with_plan(version).await;
        }
        let rounds = self.engine.codex.plan_review_rounds as usize;
        if self.reviews_of(ReviewKind::Plan).await? >= rounds {
            self.record(warn(
                EventKind::PlanConcernsOpen,
                format!(
                    "Proceeding with plan v{version} after {rounds} review rounds; Codex's concerns \
                     {} stay open (see .orchestrator/codex-reviews/ledger-plan.json)",
                    ids(&blocking)
                ),
            ))
            .await?;
            return self.go_with_plan(version).await;
        }
        // Revise: the reviewed plan's tasks (none has started) make way for the revision.
        let (run, v) = (self.run.id.clone(), reviewed.unwrap_or(version));
        let dropped = self
            .db
            .call(move |c| crate::store::board::delete_plan_tasks(c, &run, v))
            .await?;
        for t in &dropped {
            self.behind.send(Job::RemoveTask(t.to_string()));
        }
        self.start_work(
            Phase::Planning,
            &format!(
                "the planner revises plan v{v} for Codex's concerns {}",
                ids(&blocking)
            ),
        )
        .await;
        Ok(())
    }

    async fn after_code_review(&mut self, round: Option<Round>) -> Result<(), RunError> {
        let merged = self.merged_summary().await?;
        let Some(round) = round else {
            let why = self
                .review_gap
                .take()
                .unwrap_or_else(|| "the Codex code review did not run".into());
            let (id, w) = (self.run.id.clone(), why.clone());
            self.db
                .call(move |c| run_rows::set_unreviewed(c, &id, Some(&w)))
                .await?;
            self.run.unreviewed = Some(why.clone());
            return self
                .complete(format!("{merged}; completed, not reviewed: {why}"))
                .await;
        };
        match ledger::decide(&round, self.run.cycle, self.run.options.max_cycles) {
            Next::Done => {
                let open: Vec<&FindingRow> = round.raised_rows().collect();
                let tail = if open.is_empty() {
                    "Codex approved the code".to_owned()
                } else {
                    format!(
                        "Codex approved the code; non-blocking findings {} are in .orchestrator/codex-reviews/",
                        ids(open)
                    )
                };
                self.complete(format!("{merged}; {tail}")).await
            }
            Next::Cycle(found) => {
                self.run.cycle += 1;
                let cycle = self.run.cycle;
                self.start_work(
                    Phase::Planning,
                    &format!(
                        "cycle {cycle} of {}: the planner plans fixes for {}",
                        self.run.options.max_cycles,
                        found.join(", ")
                    ),
                )
                .await;
                Ok(())
            }
            Next::Escalate {
                kind,
                question,
                evidence,
            } => self.escalate(kind, None, question, evidence).await,
        }
    }
}

fn finding_json(f: &FindingRow) -> serde_json::Value {
    serde_json::json!({
        "id": f.id, "priority": f.priority, "blocking": f.blocking(), "title": f.title,
        "body": f.body, "location": f.location, "raised": f.raised, "status": f.status.as_str(),
    })
}
