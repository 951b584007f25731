//! The planning phase: a Claude Code session in a throwaway worktree of the base commit reads
//! the codebase and submits the plan through the MCP endpoint (`submit_plan`, which validates
//! it and tells the model what to fix). A session that ends without a valid plan is retried,
//! up to [`PLANNER_ATTEMPTS`](super::PLANNER_ATTEMPTS) in all.

use std::path::Path;
use std::sync::Arc;

use orchestrator_proto::Level;
use tokio_util::sync::CancellationToken;

use super::{EngineConfig, PLANNER_ATTEMPTS, end, note, session};
use crate::agents::SessionSpec;
use crate::board::Role;
use crate::engine::error::EngineError;
use crate::engine::port::{Ask, Port};
use crate::store::{Db, RunRow, board};
use orchestrator_proto::EventKind;

/// How planning ended, for the actor.
#[derive(Debug)]
pub enum Planned {
    /// The plan's version.
    Plan(u32),
    /// No valid plan; the reason for the user.
    Failed(String),
    /// The environment stops planning (the setup failed twice in a row); the reason.
    Blocked(String),
    /// Paused, cancelled or shutting down: nothing to record.
    Stopped,
}

/// The user's answers to this run's escalations, for the next sessions' prompts.
pub async fn guidance(db: &Db, run: &RunRow) -> String {
    let (id, project) = (run.id.clone(), run.project.clone());
    let answered = db
        .call(move |c| {
            Ok(crate::store::escalations::list(c, Some(&project), true)?
                .into_iter()
                .filter(|e| e.run_id == id && e.answer.is_some())
                .collect::<Vec<_>>())
        })
        .await
        .unwrap_or_default();
    if answered.is_empty() {
        return String::new();
    }
    let mut g = String::from("\n# Guidance from the user (answers to earlier questions)\n");
    for e in answered {
        g.push_str(&format!(
            "\nQ: {}\nA: {}\n",
            e.question.trim(),
            e.answer.as_deref().unwrap_or("").trim()
        ));
    }
    g
}

fn prompt(run: &RunRow) -> String {
    let mut p = format!(
        "You are the planner of an automated team implementing a feature in this repository.\n\n\
         # Feature\n\n{}\n",
        run.feature.trim()
    );
    if let Some(ctx) = &run.context {
        p.push_str(&format!("\n# Context from the user\n\n{}\n", ctx.trim()));
    }
    p.push_str(
        "\n# Your job\n\n\
         Study the codebase (read only: do not edit files or commit). Then decompose the feature \
         into tasks that parallel workers can do independently, each in its own git worktree, \
         and call the `submit_plan` tool of the `orch` MCP server exactly once with a summary and \
         the tasks: unique short ids, a one-line title, a description complete enough to work \
         from without asking, acceptance criteria, the ids it depends on, and the files or areas \
         it touches. Prefer tasks that touch disjoint files. Where the project has a way to \
         check (a test runner, a type checker, a build), give each task `verify`: up to five \
         shell commands, run from the repository root, that pass exactly when its acceptance \
         criteria hold and finish in minutes (e.g. `npm test -- auth`, `.venv/bin/python -m \
         pytest tests/test_auth.py -q`, `cargo test --offline auth`); the orchestrator runs them \
         when the worker completes and refuses the completion while one fails. If `submit_plan` \
         refuses the plan, fix every listed problem and submit again. When it is accepted, \
         stop.\n",
    );
    if let Some(setup) = &run.options.setup {
        p.push_str(&format!(
            "\nEvery worktree (yours too) is prepared with `{setup}` before use.\n"
        ));
    }
    if let Some(gate) = &run.options.gate {
        p.push_str(&format!(
            "\nEvery merged task must also pass the gate `{gate}`.\n"
        ));
    }
    p.push_str(&models_note(&run.options.models));
    p.push_str(&agents_note(&run.options.models));
    p
}

/// When the run uses Codex: the planner may give a task to either CLI.
fn agents_note(m: &orchestrator_proto::Models) -> String {
    if !m.codex_allowed() {
        return String::new();
    }
    format!(
        "\n# Agents\n\nWorkers run {} unless a task says otherwise. You may give a task `agent`: \
         \"claude\" (Claude Code) or \"codex\" (OpenAI Codex); spread independent tasks over \
         both to spend both accounts, and keep a task that needs the other's strengths on it. \
         A Codex task's `model`, if any, must be a Codex model the run allows.\n",
        m.worker_agent
    )
}

/// What the planner may choose of a task's model and effort, and how to choose.
fn models_note(m: &orchestrator_proto::Models) -> String {
    let effort = "`effort` (low, medium, high, xhigh or max): higher for hard, cross-cutting or \
                  risky tasks, lower for mechanical ones";
    match m.choices().as_slice() {
        [] => format!(
            "\n# Models\n\nDo not give tasks a `model`: this run gives no choice. You may give \
             a task {effort}; omit it for the run's.\n"
        ),
        choices => format!(
            "\n# Models\n\nWorkers run {} unless a task says otherwise. You may give a task \
             `model`, one of: {}; and {effort}. Spend the strongest model on tasks that are \
             hard, cross-cutting or risky, and the cheapest on mechanical ones (renames, \
             boilerplate, docs); omit both for the run's.\n",
            m.worker.as_deref().unwrap_or("claude's default model"),
            choices.join(", ")
        ),
    }
}

/// What this planning is for, read from the database so a restarted daemon plans the same.
struct Brief {
    /// Added to the prompt: a revision's concerns or a follow-up cycle's findings.
    text: String,
    /// The commit the planner's worktree checks out.
    commit: String,
    /// The newest plan before this planning, which a new submission must supersede.
    before: u32,
    /// This planning's plan is in already (submitted before the daemon restarted).
    submitted: Option<u32>,
}

async fn brief(db: &Db, run: &RunRow) -> Result<Brief, EngineError> {
    use crate::engine::review::prompt;
    use crate::store::reviews::{self, FindingStatus, ReviewKind, ReviewOutcome};
    let (id, cycle) = (run.id.clone(), run.cycle);
    let (latest, latest_cycle, plan_review, plan_ledger, code_ledger, tasks) = db
        .call(move |c| {
            let latest = board::latest_plan(c, &id)?.map(|p| p.0);
            Ok((
                latest,
                match latest {
                    Some(v) => board::plan_cycle(c, &id, v)?,
                    None => None,
                },
                reviews::latest(c, &id, ReviewKind::Plan)?,
                reviews::findings(c, &id, ReviewKind::Plan)?,
                reviews::findings(c, &id, ReviewKind::Code)?,
                board::tasks(c, &id)?,
            ))
        })
        .await?;
    let before = latest.unwrap_or(0);
    let open_blocking = |l: Vec<crate::store::reviews::FindingRow>| -> Vec<_> {
        l.into_iter()
            .filter(|f| f.status == FindingStatus::Open && f.blocking())
            .collect()
    };
    let revising = plan_review
        .as_ref()
        .is_some_and(|r| r.outcome == ReviewOutcome::Changes && r.plan_version == latest);
    // A plan of this cycle that is not under revision is this planning's own.
    let submitted = latest.filter(|_| latest_cycle == Some(cycle) && !revising);
    if cycle > 1 {
        let tip = crate::git::rev_parse(
            Path::new(&run.project),
            &format!("refs/heads/{}", run.branch),
        )
        .await
        .map_err(EngineError::Branch)?;
        return Ok(Brief {
            text: prompt::follow_up(cycle, &open_blocking(code_ledger), &tasks),
            commit: tip,
            before,
            submitted,
        });
    }
    Ok(Brief {
        text: if revising {
            prompt::revision(before, &open_blocking(plan_ledger))
        } else {
            String::new()
        },
        commit: run.base_commit.clone(),
        before,
        submitted,
    })
}

/// Plans the run; returns how it ended. Never changes the run's status itself.
pub async fn plan(
    handle: Port,
    db: Db,
    cfg: Arc<EngineConfig>,
    run: RunRow,
    cancel: CancellationToken,
) -> Planned {
    let (agent, env) = match super::claude_for(&db, &cfg, &run.id).await {
        Ok(x) => x,
        Err(reason) => return Planned::Failed(reason.to_string()),
    };
    let brief = match brief(&db, &run).await {
        Ok(b) => b,
        Err(e) => return Planned::Failed(e.to_string()),
    };
    if let Some(version) = brief.submitted {
        note(
            &handle,
            Level::Info,
            EventKind::PlannerFinished,
            format!("Plan v{version} was submitted before the daemon restarted; planning is done"),
        )
        .await;
        return Planned::Plan(version);
    }
    let planning = Planning {
        project: Path::new(&run.project).to_path_buf(),
        prep: super::prepare::Prep::for_run(&cfg, &run, &env, &cancel),
        handle,
        db,
        cfg,
        run,
        cancel,
        agent,
        env,
        brief,
    };
    let mut setup_failures = 0;
    let mut last = String::from("the planner never ran");
    for attempt in 1..=PLANNER_ATTEMPTS {
        if planning.cancel.is_cancelled() {
            return Planned::Stopped;
        }
        match planning.attempt(attempt).await {
            Attempt::Over(planned) => return planned,
            Attempt::SetupFailed(fail) => {
                setup_failures += 1;
                if setup_failures >= super::executor::SETUP_FAILURES {
                    return Planned::Blocked(format!(
                        "{fail}\n\nIt failed {setup_failures} times in a row, so it is the \
                         environment, not the planner: fix the command or what it needs, then \
                         `orchestrate resume` (or `resume --setup \"…\"` to change it)"
                    ));
                }
                last = fail;
            }
            Attempt::NoPlan(why) => {
                note(
                    &planning.handle,
                    Level::Warn,
                    EventKind::PlannerRetry,
                    format!(
                        "Planner attempt {attempt} of {PLANNER_ATTEMPTS} produced no plan: {why}"
                    ),
                )
                .await;
                last = why;
            }
        }
    }
    Planned::Failed(format!(
        "no plan after {PLANNER_ATTEMPTS} planner sessions; last: {last}"
    ))
}

/// What one planning shares across its attempts.
struct Planning {
    handle: Port,
    db: Db,
    cfg: Arc<EngineConfig>,
    run: RunRow,
    cancel: CancellationToken,
    agent: crate::agents::claude::ClaudeCode,
    env: orchestrator_proto::SessionEnv,
    project: std::path::PathBuf,
    prep: super::prepare::Prep,
    brief: Brief,
}

/// How one planner attempt ended.
enum Attempt {
    /// Planning is over: a plan, stopped, or a failure no other attempt can help.
    Over(Planned),
    /// Its worktree's setup failed (the text says how).
    SetupFailed(String),
    /// The session ended without a plan; why.
    NoPlan(String),
}

impl Planning {
    /// One planner session in a fresh worktree, set up like a worker's.
    async fn attempt(&self, attempt: u32) -> Attempt {
        let (handle, cfg, run) = (&self.handle, &self.cfg, &self.run);
        let ttl = std::time::Duration::from_secs(orchestrator_proto::session::defaults::TTL_SECS);
        let grant = match handle
            .ask(|reply| Ask::OpenSession {
                role: Role::Planner,
                task: None,
                ttl,
                reply,
            })
            .await
        {
            Ok(g) => g,
            Err(_) => return Attempt::Over(Planned::Stopped),
        };
        let worktree = crate::layout::planner_worktree(&cfg.data_dir, &run.id, run.cycle, attempt);
        let commit = &self.brief.commit;
        if let Err(e) = crate::git::throwaway_worktree(&self.project, &worktree, commit).await {
            end(handle, &grant.session, None).await;
            let why = format!("cannot create the planner's worktree: {e}");
            return Attempt::Over(Planned::Failed(why));
        }
        if let Some(not_ready) = self.prepare(&worktree, attempt).await {
            end(handle, &grant.session, None).await;
            let _ = crate::git::worktree_remove(&self.project, &worktree, true).await;
            if let Attempt::SetupFailed(fail) = &not_ready {
                let message = format!("Planner: {fail}");
                note(handle, Level::Warn, EventKind::SetupFailed, message).await;
            }
            return not_ready;
        }
        note(
            handle,
            Level::Info,
            EventKind::PlannerStarted,
            format!(
                "Planner session {} started (attempt {attempt} of {PLANNER_ATTEMPTS}) in {}",
                grant.session,
                worktree.display()
            ),
        )
        .await;
        self.session(&grant, &worktree).await
    }

    /// Sets the planner's worktree up (exploring and running the code needs its dependencies
    /// too); `Some` when it is not ready (stopped, or its setup failed).
    async fn prepare(&self, worktree: &Path, attempt: u32) -> Option<Attempt> {
        use super::prepare::Prepared;
        let name = crate::layout::planner_name(self.run.cycle, attempt);
        match super::prepare::prepare(&self.prep, worktree, &name).await {
            Prepared::Ready(done) => {
                for d in done {
                    let message = format!("Planner: {d}");
                    note(
                        &self.handle,
                        Level::Info,
                        EventKind::WorktreePrepared,
                        message,
                    )
                    .await;
                }
                None
            }
            Prepared::Stopped => Some(Attempt::Over(Planned::Stopped)),
            Prepared::Failed(fail) => Some(Attempt::SetupFailed(fail.to_string())),
        }
    }

    /// Runs the planner's session to its end and looks for the plan it submitted.
    async fn session(&self, grant: &crate::engine::port::SessionGrant, worktree: &Path) -> Attempt {
        let (handle, db, cfg, run) = (&self.handle, &self.db, &self.cfg, &self.run);
        let spec = SessionSpec {
            prompt: prompt(run) + &self.brief.text + &guidance(db, run).await,
            cwd: worktree.to_path_buf(),
            mcp_url: cfg.mcp_url.clone(),
            token: grant.token.clone(),
            session_uuid: uuid::Uuid::new_v4().to_string(),
            resume: false,
            env: self.env.clone(),
            confine: cfg.confinement(&self.project, worktree, &self.env),
            model: run.options.models.planner.clone(),
            effort: run.options.models.effort,
            fallback: run.options.models.fallback.clone(),
        };
        let dir = crate::mirror::session_dir(&self.project, &cfg.data_dir, &run.id, &grant.session);
        let watch = session::Watch {
            cancel: &self.cancel,
            detach: None,
            limits: super::watch::Limits {
                wall: None,
                ..cfg.limits
            },
            usage: Some(&cfg.usage),
            record: Some(cfg.record(db, &grant.session, None)),
            agent: crate::agents::AgentKind::Claude,
            tools: run
                .options
                .verbose
                .then(|| super::tool_sink(handle, format!("The planner ({})", grant.session))),
        };
        let ended = session::run(self.agent.command(&spec), &dir, Some(&spec.prompt), watch).await;
        end(handle, &grant.session, ended.as_ref().ok()).await;
        let _ = crate::git::worktree_remove(&self.project, worktree, true).await;
        let ended = match ended {
            Ok(e) => e,
            Err(e) => {
                let why = format!("cannot run {}: {e}", self.agent.bin.display());
                return Attempt::Over(Planned::Failed(why));
            }
        };
        if ended.cancelled {
            return Attempt::Over(Planned::Stopped);
        }
        let id = run.id.clone();
        if let Ok(Some((version, _))) = db.call(move |c| board::latest_plan(c, &id)).await
            && version > self.brief.before
        {
            let message = format!(
                "Planner session {} submitted plan v{version}",
                grant.session
            );
            note(handle, Level::Info, EventKind::PlannerFinished, message).await;
            return Attempt::Over(Planned::Plan(version));
        }
        Attempt::NoPlan(match ended.outcome {
            None if !ended.mcp_failed && ended.watchdog.is_none() => format!(
                "{}; see {}",
                ended.why("the planner session", "submitting a valid plan"),
                session::files(&dir).1.display()
            ),
            _ => ended.why("the planner session", "submitting a valid plan"),
        })
    }
}
