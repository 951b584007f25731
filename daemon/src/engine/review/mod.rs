//! Codex reviews: the plan before execution, the branch's diff after each cycle. One review is
//! a `codex exec` session in a throwaway detached worktree (read-only sandbox), its verdict
//! forced into [`verdict::SCHEMA`]. Everything is kept under
//! `.orchestrator/codex-reviews/<NNN>-<kind>-c<cycle>/`: `prompt.md`, `schema.json`, each
//! attempt's raw events and stderr, Codex's last message, and `verdict.json`.
//!
//! A review has a wall-clock limit (Codex retries forever when its provider is unreachable);
//! one that fails is tried once more, then reported failed — never fatal to the run. What a
//! verdict means for the run (the ledger, another cycle, an escalation) is the actor's call.

pub mod ledger;
pub mod prompt;
pub mod verdict;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use orchestrator_proto::Level;
use tokio_util::sync::CancellationToken;

use super::{EngineConfig, note, session};
use crate::agents::codex::{Codex, Events, ReviewSpec, read_events};
use crate::agents::{AgentKind, locate};
use crate::board::Role;
use crate::engine::error::{EngineError, ReviewError};
use crate::engine::port::{Ask, Port};
use crate::store::reviews::{self, ReviewKind};
use crate::store::{Db, RunRow, board};
use orchestrator_proto::EventKind;

/// Attempts at one review before it is recorded as failed.
pub const ATTEMPTS: u32 = 2;

/// How a review ended, for the actor.
#[derive(Debug)]
pub enum Reviewed {
    /// Codex answered with a verdict.
    Verdict {
        kind: ReviewKind,
        plan_version: Option<u32>,
        verdict: verdict::Verdict,
        dir: PathBuf,
    },
    /// No usable verdict after [`ATTEMPTS`]: the reason.
    Failed {
        kind: ReviewKind,
        plan_version: Option<u32>,
        reason: String,
        dir: PathBuf,
    },
    /// Codex is not installed (or misconfigured): the reason, naming the fix.
    Unavailable { kind: ReviewKind, reason: String },
    /// Paused, cancelled or shutting down.
    Stopped,
}

/// What is reviewed, read from the database and git.
struct Subject {
    prompt: String,
    /// The commit the review's worktree checks out.
    commit: String,
    plan_version: Option<u32>,
}

async fn subject(db: &Db, run: &RunRow, kind: ReviewKind) -> Result<Subject, EngineError> {
    let project = Path::new(&run.project);
    let (id, cycle) = (run.id.clone(), run.cycle);
    let (plan, tasks, ledger) = db
        .call(move |c| {
            Ok((
                board::latest_plan(c, &id)?,
                board::tasks(c, &id)?
                    .into_iter()
                    .filter(|t| t.cycle == cycle)
                    .collect::<Vec<_>>(),
                reviews::findings(c, &id, kind)?,
            ))
        })
        .await?;
    match kind {
        ReviewKind::Plan => {
            let (version, summary) = plan.ok_or(EngineError::NoPlan)?;
            Ok(Subject {
                prompt: prompt::plan_review(run, &summary, &tasks, &ledger),
                commit: run.base_commit.clone(),
                plan_version: Some(version),
            })
        }
        ReviewKind::Code => {
            let tip = crate::git::ref_id(project, &format!("refs/heads/{}", run.branch))
                .await
                .map_err(EngineError::Branch)?;
            let (stat, diff) = crate::git::diff(project, &run.base_commit, &tip)
                .await
                .map_err(EngineError::Diff)?;
            Ok(Subject {
                prompt: prompt::code_review(run, &tip, &stat, &diff, &ledger),
                commit: tip,
                plan_version: None,
            })
        }
    }
}

/// Runs one review of `kind` for the run as it is now.
pub async fn review(
    handle: Port,
    db: Db,
    cfg: Arc<EngineConfig>,
    run: RunRow,
    kind: ReviewKind,
    cancel: CancellationToken,
) -> Reviewed {
    let (env, codex) = match tools(&db, &cfg, &run.id).await {
        Ok(t) => t,
        Err(reason) => return Reviewed::Unavailable { kind, reason },
    };
    let subject = match subject(&db, &run, kind).await {
        Ok(s) => s,
        Err(e) => {
            return Reviewed::Failed {
                kind,
                plan_version: None,
                reason: e.to_string(),
                dir: PathBuf::new(),
            };
        }
    };
    let project = PathBuf::from(&run.project);
    let id = run.id.clone();
    let n = db
        .call(move |c| Ok(reviews::list(c, &id)?.len()))
        .await
        .unwrap_or(0)
        + 1;
    let dir = project
        .join(crate::mirror::DIR)
        .join("codex-reviews")
        .join(format!("{n:03}-{}-c{}", kind.as_str(), run.cycle));
    let failed = |reason: String, dir: &Path| Reviewed::Failed {
        kind,
        plan_version: subject.plan_version,
        reason,
        dir: dir.to_path_buf(),
    };
    if let Err(e) = write_inputs(&dir, &subject.prompt).await {
        return failed(format!("cannot write {}: {e}", dir.display()), &dir);
    }
    let worktree = crate::layout::review_worktree(&cfg.data_dir, &run.id, n as u32);
    if let Err(e) = crate::git::throwaway_worktree(&project, &worktree, &subject.commit).await {
        return failed(format!("cannot create the review's worktree: {e}"), &dir);
    }
    let attempt = Attempt {
        handle: &handle,
        db: &db,
        codex: &codex,
        cfg: &cfg,
        env: &env,
        dir: &dir,
        worktree: &worktree,
        kind,
        cancel: &cancel,
    };
    let outcome = attempt.up_to(ATTEMPTS).await;
    let _ = crate::git::worktree_remove(&project, &worktree, true).await;
    match outcome {
        Ok(Some(verdict)) => Reviewed::Verdict {
            kind,
            plan_version: subject.plan_version,
            verdict,
            dir,
        },
        Ok(None) => Reviewed::Stopped,
        Err(last) => failed(last, &dir),
    }
}

/// The run's environment and the codex to review with, or why there is none.
async fn tools(
    db: &Db,
    cfg: &EngineConfig,
    run: &crate::ids::RunId,
) -> Result<(orchestrator_proto::SessionEnv, Codex), String> {
    let env = super::run_env(db, run).await.map_err(|e| e.to_string())?;
    let bin =
        locate(AgentKind::Codex, &env, cfg.codex_bin.as_deref()).map_err(|e| e.to_string())?;
    let codex = Codex {
        bin,
        model: cfg.codex.model.clone(),
        overrides: cfg.codex.overrides.clone(),
    };
    Ok((env, codex))
}

/// At most `max` bytes of a file, as text (`None` when it cannot be read).
async fn read_bounded(path: &Path, max: u64) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let f = tokio::fs::File::open(path).await.ok()?;
    let mut buf = Vec::new();
    f.take(max).read_to_end(&mut buf).await.ok()?;
    Some(String::from_utf8_lossy(&buf).into_owned())
}

async fn write_inputs(dir: &Path, prompt: &str) -> std::io::Result<()> {
    crate::mirror::write_atomic(&dir.join("prompt.md"), prompt.as_bytes()).await?;
    crate::mirror::write_atomic(&dir.join("schema.json"), verdict::SCHEMA.as_bytes()).await
}

/// What every attempt of one review shares.
struct Attempt<'a> {
    handle: &'a Port,
    db: &'a Db,
    codex: &'a Codex,
    cfg: &'a EngineConfig,
    env: &'a orchestrator_proto::SessionEnv,
    dir: &'a Path,
    worktree: &'a Path,
    kind: ReviewKind,
    cancel: &'a CancellationToken,
}

impl Attempt<'_> {
    /// Up to `max` attempts: the verdict, `Ok(None)` when stopped, or the last attempt's reason.
    async fn up_to(&self, max: u32) -> Result<Option<verdict::Verdict>, String> {
        let mut last = String::new();
        for attempt in 1..=max {
            if self.cancel.is_cancelled() {
                return Ok(None);
            }
            match self.once(attempt).await {
                Ok(v) => return Ok(v),
                Err(e) => {
                    last = e.to_string();
                    note(
                        self.handle,
                        Level::Warn,
                        EventKind::ReviewRetry,
                        format!(
                            "Codex {} review attempt {attempt} of {max} failed: {last}",
                            self.kind.as_str()
                        ),
                    )
                    .await;
                }
            }
        }
        if self.cancel.is_cancelled() {
            return Ok(None);
        }
        Err(last)
    }

    /// One codex session: `Ok(None)` when stopped, `Err` with the reason it gave no verdict.
    async fn once(&self, attempt: u32) -> Result<Option<verdict::Verdict>, EngineError> {
        let (cfg, handle) = (self.cfg, self.handle);
        let grant = handle
            .ask(|reply| Ask::OpenSession {
                role: Role::Reviewer,
                task: None,
                ttl: cfg.codex.timeout + std::time::Duration::from_secs(60),
                reply,
            })
            .await
            .map_err(|source| EngineError::Session { task: None, source })?;
        let attempt_dir = self.dir.join(format!("attempt-{attempt}"));
        let last_message = attempt_dir.join("last-message.txt");
        let spec = ReviewSpec {
            cwd: self.worktree.to_path_buf(),
            prompt_file: self.dir.join("prompt.md"),
            schema_file: self.dir.join("schema.json"),
            verdict_file: last_message.clone(),
            env: self.env.clone(),
        };
        note(
            handle,
            Level::Info,
            EventKind::ReviewStarted,
            format!(
                "Codex {} review started (session {}, attempt {attempt} of {ATTEMPTS})",
                self.kind.as_str(),
                grant.session
            ),
        )
        .await;
        let ran = match self.codex.command(&spec) {
            Ok(cmd) => {
                let watch = session::Watch {
                    cancel: self.cancel,
                    detach: None,
                    limits: super::watch::Limits {
                        wall: Some(cfg.codex.timeout),
                        ..super::watch::Limits::NONE
                    },
                    usage: None,
                    record: Some(cfg.record(self.db, &grant.session, None)),
                    agent: crate::agents::AgentKind::Codex,
                    tools: None,
                };
                session::run(cmd, &attempt_dir, None, watch).await
            }
            Err(e) => Err(e),
        };
        let events = read_events(&session::files(&attempt_dir).0);
        super::end_session(
            handle,
            &grant.session,
            Some(crate::store::sessions::Spent {
                cost_usd: 0.0,
                input_tokens: events.input_tokens,
                output_tokens: events.output_tokens,
                // Codex's stream does not name its model: the one it was given, or its own.
                model: Some(self.codex.model.clone().unwrap_or_else(|| "codex".into())),
            }),
        )
        .await;
        let ended = ran.map_err(|source| EngineError::Spawn {
            bin: self.codex.bin.clone(),
            source,
        })?;
        if ended.cancelled {
            return Ok(None);
        }
        if ended.timed_out {
            return Err(ReviewError::TimedOut {
                secs: cfg.codex.timeout.as_secs(),
                last_error: events.error,
            }
            .into());
        }
        verdict_of(&attempt_dir, &last_message, events, ended.exit_code)
            .await
            .map(Some)
    }
}

/// The verdict a finished attempt left (in its last-message file or its last event), or why
/// there is none.
async fn verdict_of(
    attempt_dir: &Path,
    last_message: &Path,
    events: Events,
    exit: Option<i32>,
) -> Result<verdict::Verdict, EngineError> {
    let text = match read_bounded(last_message, 4 << 20).await {
        Some(t) if !t.trim().is_empty() => t,
        _ => events.last_message.clone().unwrap_or_default(),
    };
    if text.trim().is_empty() {
        return Err(match events.error {
            Some(error) => ReviewError::Failed {
                error,
                exit,
                dir: attempt_dir.to_path_buf(),
            },
            None => ReviewError::Silent {
                exit,
                stderr: session::files(attempt_dir).1,
            },
        }
        .into());
    }
    verdict::parse(&text).map_err(|reason| {
        ReviewError::Unreadable {
            reason,
            dir: attempt_dir.to_path_buf(),
        }
        .into()
    })
}
