//! The run registry: submits new runs, restores active ones at start, and routes commands to
//! each run's actor.
//!
//! **Invariant:** one entry per active run, holding only its actor's handle; the run's state
//! lives in the actor (and SQLite), never in a second map here.

mod actor;
pub mod clean;
pub mod error;
pub mod key;
mod output;
pub mod pr;
pub mod slug;
pub mod submit;

use crate::ids::RunId;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use orchestrator_proto::{RunStatus, SubmitRun};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use actor::{Command, RunHandle, SessionGrant};
pub use error::{RejectKind, RunError};
pub use key::project_key;

use crate::git;
use crate::mirror::{self, Mirror};
use crate::store::{Db, EscalationRow, EventRow, NewEvent, RunRow, escalations, events, runs};
use actor::RunActor;
use orchestrator_proto::EventKind;

#[derive(Clone)]
pub struct Runs {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    /// Fixed facts the run engine needs (MCP URL, where worktrees go, permissions).
    engine: Arc<crate::engine::EngineConfig>,
    /// Live actors by run id. A std mutex: it is never held across an `.await`.
    handles: Mutex<HashMap<RunId, RunHandle>>,
    /// Serialises submits so two racing `start`s cannot both pass the one-active-run check.
    submit_lock: tokio::sync::Mutex<()>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
}

impl Runs {
    pub fn new(
        db: Db,
        shutdown: CancellationToken,
        engine: Arc<crate::engine::EngineConfig>,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                engine,
                db,
                handles: Mutex::new(HashMap::new()),
                submit_lock: tokio::sync::Mutex::new(()),
                shutdown,
                tracker: TaskTracker::new(),
            }),
        }
    }

    pub fn db(&self) -> &Db {
        &self.inner.db
    }

    /// What the run engine knows (worktrees, confinement, activity).
    pub fn engine(&self) -> &Arc<crate::engine::EngineConfig> {
        &self.inner.engine
    }

    /// Spawns actors for every active run in the database (after a restart).
    pub async fn restore(&self) -> Result<usize, RunError> {
        // Sessions of finished runs nobody ended (the daemon died first) are ended; any agent
        // process of a session that is over and still runs is stopped.
        let at = crate::store::time_text::now();
        let left = self
            .inner
            .db
            .call(move |c| {
                for r in crate::store::sessions::open_of_inactive(c)? {
                    crate::store::sessions::end_session(c, &r.id, at)?;
                }
                crate::store::sessions::finished_with_process(c)
            })
            .await?;
        self.inner.engine.tokens.revoked();
        for (run, p) in left
            .iter()
            .filter_map(|r| Some((&r.run_id, crate::engine::reap::live(r)?)))
        {
            tracing::warn!(
                run = %run,
                pid = p.pid,
                "stopping the agent process of a session that is over"
            );
            crate::engine::reap::stop(p);
        }
        let active = self.inner.db.call(|c| runs::active(c)).await?;
        self.inner
            .engine
            .reconcile
            .expect(active.iter().map(|r| r.id.clone()));
        let n = active.len();
        for run in active {
            self.spawn(run, true);
        }
        Ok(n)
    }

    fn spawn(&self, run: RunRow, restored: bool) {
        let id = run.id.clone();
        let (actor, handle) = RunActor::new(
            run,
            self.inner.db.clone(),
            self.inner.shutdown.clone(),
            self.inner.engine.clone(),
        );
        self.lock_handles().insert(id.clone(), handle);
        let this = self.clone();
        self.inner.tracker.spawn(async move {
            actor.run(restored).await;
            this.lock_handles().remove(&id);
        });
    }

    fn lock_handles(&self) -> std::sync::MutexGuard<'_, HashMap<RunId, RunHandle>> {
        // A panic while holding this lock leaves the map itself consistent.
        self.inner
            .handles
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn handle(&self, id: &str) -> Option<RunHandle> {
        self.lock_handles().get(id).cloned()
    }

    /// Whether the run has a live actor (it is active and takes commands).
    pub fn is_live(&self, id: &str) -> bool {
        self.lock_handles().contains_key(id)
    }

    /// Validates and creates a run: branch, row, mirror, actor. Nothing is created on rejection.
    pub async fn submit(&self, req: SubmitRun) -> Result<RunRow, RunError> {
        if self.inner.shutdown.is_cancelled() {
            return Err(RunError::ShuttingDown);
        }
        let mut v = submit::validate(req, self.inner.engine.claude_bin.as_deref()).await?;
        let _one_at_a_time = self.inner.submit_lock.lock().await;
        let project_key = v.project.display().to_string();
        submit::check_no_active_run(&self.inner.db, &project_key).await?;
        let models_given = !v.inherit.models;
        let taken = submit::remembered(
            &self.inner.db,
            &mut v,
            self.inner.engine.default_setup.as_deref(),
            &self.inner.engine.default_models,
        )
        .await?;
        submit::check_codex(&v, self.inner.engine.codex_bin.as_deref(), models_given)?;
        let branch = submit::choose_branch(&self.inner.db, &v.project, &v.feature).await?;
        let new = submit::new_run(&v, branch);
        git::create_branch(&v.project, &new.branch, &new.base_commit).await?;
        let first_event = NewEvent::info(
            EventKind::RunSubmitted,
            format!(
                "Run {} submitted: \"{}\" on branch {} from {} (concurrency {}, max cycles {}, usage threshold {})",
                new.id,
                new.feature,
                new.branch,
                &new.base_commit[..new.base_commit.len().min(12)],
                new.options.concurrency,
                new.options.max_cycles,
                new.options.usage_threshold
            ) + &if taken.is_empty() {
                String::new()
            } else {
                format!("; {}", taken.join(", "))
            },
        );

        let insert = new.clone();
        let env = v.env.clone();
        let created = self
            .inner
            .db
            .call(move |c| {
                let tx = c.savepoint()?;
                let row = runs::insert(&tx, &insert)?;
                runs::set_env(&tx, &row.id, &env)?;
                let a = events::append(&tx, &row.id, insert.at, first_event)?;
                tx.commit()?;
                Ok((row, vec![a]))
            })
            .await;
        let (row, first_events) = match created {
            Ok(ok) => ok,
            Err(e) => {
                if let Err(undo) =
                    git::delete_branch_at(&v.project, &new.branch, &new.base_commit).await
                {
                    tracing::error!(cause = %undo, branch = %new.branch, "cannot remove the branch of a failed submit");
                }
                return Err(e.into());
            }
        };
        // The run exists from here on; the mirror is derived and repaired by the actor.
        if let Err(e) = git::ensure_excluded(&v.project, mirror::EXCLUDE_PATTERN).await {
            tracing::warn!(run = %row.id, cause = %e, "cannot add .orchestrator/ to .git/info/exclude");
        }
        let m = Mirror::new(&v.project);
        let written = match m.write_run(&row, &[]).await {
            Ok(()) => m.rewrite_log(&first_events).await,
            Err(e) => Err(e),
        };
        if let Err(e) = written {
            tracing::warn!(run = %row.id, cause = %e, "cannot write the mirror; it is retried");
        }
        self.spawn(row.clone(), false);
        Ok(row)
    }

    pub async fn get(&self, id: &str) -> Result<RunRow, RunError> {
        let key = RunId::from(id);
        self.inner
            .db
            .call(move |c| runs::get(c, &key))
            .await?
            .ok_or_else(|| no_run(id))
    }

    /// The project's active run, else its latest.
    pub async fn current(&self, project: &str) -> Result<RunRow, RunError> {
        let key = project_key(project).await;
        let k = key.clone();
        self.inner
            .db
            .call(move |c| runs::current(c, &k))
            .await?
            .ok_or_else(|| {
                RunError::not_found(format!("no run in project {key}")).hint(format!(
                    "start one with `orchestrate start \"<feature>\" --project {key}`, or see every run with `orchestrate list`"
                ))
            })
    }

    pub async fn list(
        &self,
        project: Option<String>,
        status: Option<RunStatus>,
    ) -> Result<Vec<RunRow>, RunError> {
        let key = match project {
            Some(p) => Some(project_key(&p).await),
            None => None,
        };
        Ok(self
            .inner
            .db
            .call(move |c| runs::list(c, key.as_deref(), status))
            .await?)
    }

    /// Removes what the project's (or every project's) finished runs left, where that is safe.
    pub async fn clean(
        &self,
        req: orchestrator_proto::clean::CleanRequest,
    ) -> Result<orchestrator_proto::clean::CleanReport, RunError> {
        if req.force && req.run.is_none() {
            return Err(RunError::invalid("--force cleans one run at a time").hint(
                "name it: orchestrate clean --run <id> --force (orchestrate list shows ids)",
            ));
        }
        let runs = match &req.run {
            Some(id) => {
                let run = self.get(id).await?;
                if run.status.is_active() {
                    return Err(RunError::conflict(format!(
                        "run {id} is {}; only a finished run is cleaned",
                        run.status
                    ))
                    .hint("cancel it first: orchestrate cancel --run <id>"));
                }
                vec![run]
            }
            None => self.list(req.project, None).await?,
        };
        let how = clean::How {
            dry_run: req.dry_run,
            force: req.force,
        };
        Ok(clean::clean(&self.inner.engine.data_dir, &runs, how).await)
    }

    /// Agent processes still running for sessions that are over.
    pub async fn stray_sessions(
        &self,
    ) -> Result<Vec<orchestrator_proto::session::StraySession>, RunError> {
        let rows = self
            .inner
            .db
            .call(|c| crate::store::sessions::finished_with_process(c))
            .await?;
        Ok(rows
            .into_iter()
            .filter_map(|r| {
                let p = crate::engine::reap::live(&r)?;
                Some(orchestrator_proto::session::StraySession {
                    run_id: r.run_id.into(),
                    session: r.id.into(),
                    role: r.role,
                    pid: p.pid,
                })
            })
            .collect())
    }

    pub async fn count_active(&self) -> Result<u32, RunError> {
        Ok(self.inner.db.call(|c| runs::count_active(c)).await?)
    }

    /// Sends a command to the run's actor, or explains why the run takes no commands.
    pub async fn command<T>(
        &self,
        id: &str,
        make: impl FnOnce(tokio::sync::oneshot::Sender<Result<T, RunError>>) -> Command,
    ) -> Result<T, RunError> {
        match self.handle(id) {
            Some(h) => h.ask(make).await,
            None => {
                let run = self.get(id).await?;
                Err(RunError::conflict(format!(
                    "run {} is {}; a finished run takes no commands",
                    run.id, run.status
                ))
                .hint(format!(
                    "start a new run with `orchestrate start \"<feature>\" --project {}`",
                    run.project
                )))
            }
        }
    }

    /// Live events of an active run; `None` when the run is finished (or unknown).
    pub fn subscribe(&self, id: &str) -> Option<broadcast::Receiver<EventRow>> {
        self.handle(id).map(|h| h.subscribe())
    }

    pub async fn events(
        &self,
        id: &RunId,
        after: u64,
        tail: Option<u32>,
    ) -> Result<Vec<EventRow>, RunError> {
        let key = id.clone();
        Ok(self
            .inner
            .db
            .call(move |c| events::read(c, &key, after, tail))
            .await?)
    }

    pub async fn escalations(
        &self,
        project: Option<String>,
        history: bool,
    ) -> Result<Vec<EscalationRow>, RunError> {
        let key = match project {
            Some(p) => Some(project_key(&p).await),
            None => None,
        };
        Ok(self
            .inner
            .db
            .call(move |c| escalations::list(c, key.as_deref(), history))
            .await?)
    }

    /// Answers an escalation through its run's actor.
    pub async fn answer(
        &self,
        id: u64,
        answer: String,
        change: orchestrator_proto::OptionsChange,
    ) -> Result<EscalationRow, RunError> {
        if answer.trim().is_empty() {
            return Err(RunError::invalid("the answer is empty")
                .hint("write the guidance for the run, e.g. orchestrate answer 3 \"use JWT\""));
        }
        let esc = self
            .inner
            .db
            .call(move |c| escalations::get(c, id))
            .await?
            .ok_or_else(|| {
                RunError::not_found(format!("no escalation {id}"))
                    .hint("`orchestrate escalations` lists the pending ones")
            })?;
        // Refused here too: a closed escalation's run may be gone (cancelled).
        if let Some(refused) = not_live(&esc) {
            return Err(refused);
        }
        self.command(&esc.run_id, |reply| Command::Answer {
            escalation: id,
            answer,
            change,
            reply,
        })
        .await
    }

    /// The environment the run's sessions inherit.
    pub async fn env(&self, id: &RunId) -> Result<orchestrator_proto::SessionEnv, RunError> {
        let id = id.clone();
        Ok(self.inner.db.call(move |c| runs::env(c, &id)).await?)
    }

    /// The session a bearer token belongs to, if the token is known, unexpired and its run
    /// active. Reads SQLite directly: authentication never queues behind a run's actor.
    pub async fn authenticate(
        &self,
        token: &str,
    ) -> Result<Option<crate::board::Caller>, RunError> {
        let hash = crate::mcp::token::hash(token);
        let now = crate::store::time_text::now();
        let tokens = &self.inner.engine.tokens;
        let caller = match tokens.get(&hash, now) {
            Some(c) => Some(c),
            None => {
                let since = tokens.generation();
                let h = hash.clone();
                let row = self
                    .inner
                    .db
                    .read(move |c| crate::store::sessions::session_by_token(c, &h))
                    .await?;
                row.filter(|s| s.active && s.expires_at.is_none_or(|t| now < t))
                    .map(|s| {
                        let c = crate::board::Caller {
                            role: s.role,
                            session: s.id,
                            run: s.run_id,
                            dispatched: s.dispatched,
                        };
                        tokens.remember(hash, c.clone(), s.expires_at, since);
                        c
                    })
            }
        };
        Ok(caller
            .filter(|c| self.handle(&c.run).is_some_and(|h| !h.ended()))
            .inspect(|c| self.inner.engine.activity.touch(&c.session)))
    }

    /// Stops every actor and waits for them (they persist as they go, so nothing is lost).
    pub async fn shutdown(&self) {
        self.inner.shutdown.cancel();
        self.inner.tracker.close();
        self.inner.tracker.wait().await;
    }
}

fn no_run(id: &str) -> RunError {
    RunError::not_found(format!("no run {id}"))
        .hint("`orchestrate list` shows every run with its id")
}

/// Why an escalation takes no answer: it was answered already, or closed (its run cancelled,
/// resumed or ended, or it was superseded by a newer one, which the hint names).
pub(crate) fn not_live(e: &EscalationRow) -> Option<RunError> {
    let id = e.id;
    if e.answer.is_some() {
        return Some(
            RunError::conflict(format!("escalation {id} was already answered"))
                .hint("`orchestrate escalations --history` shows the answer"),
        );
    }
    let why = e.closed_why.as_deref()?;
    let hint = match e.superseded_by {
        Some(n) => format!("answer escalation {n} instead: orchestrate answer {n} \"<guidance>\""),
        None => "`orchestrate escalations` lists the ones still waiting".to_owned(),
    };
    Some(
        RunError::conflict(format!(
            "escalation {id} is closed ({why}); nothing waits for its answer"
        ))
        .hint(hint),
    )
}
