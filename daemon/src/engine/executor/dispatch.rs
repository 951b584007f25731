//! Starting a worker: its worktree and task branch from the run branch's tip (or the place an
//! interrupted worker left, to continue its session), its session and token, its
//! prompt (the task, its checks, the gate), and the future that prepares the worktree
//! (`.worktreeinclude`, `--setup`) and runs the session. A worker whose worktree could not be
//! prepared never ran: it goes back unspent ([`unprepared`]).

#[allow(clippy::wildcard_imports)]
use super::*;
use crate::engine::error::EngineError;
use orchestrator_proto::Agent;
use orchestrator_proto::EventKind;

pub(super) fn worker_prompt(
    run: &RunRow,
    t: &TaskRow,
    branch: &str,
    worktree: &std::path::Path,
) -> String {
    let mut p = format!(
        "You are a worker in an automated team implementing a feature.\n\n\
         # Feature\n\n{}\n\n# Your task: {} — {}\n\n{}\n\nAcceptance criteria:\n{}\n\n\
         # How to work\n\n\
         You are in your own git worktree, {}, on branch `{branch}`. Call `get_task` on the `orch` MCP \
         server first for the full brief, including what the tasks you depend on produced. Do the \
         work here, then commit it with git (`git add -A && git commit -m \"...\"`). Call \
         `report_progress` now and then, and `read_messages` between steps. When the acceptance \
         criteria hold, call `complete_task` with what you changed and how you verified it (if no \
         change was needed, say why). If you cannot do it, call `fail_task` with the reason. Then \
         stop.\n",
        run.feature.trim(),
        t.id,
        t.title,
        t.description.trim(),
        t.acceptance
            .iter()
            .map(|a| format!("- {a}"))
            .collect::<Vec<_>>()
            .join("\n"),
        worktree.display(),
    );
    if let Some(setup) = &run.options.setup {
        p.push_str(&format!(
            "\nYour worktree was prepared with `{setup}` (the run's setup), so its dependencies are installed.\n"
        ));
    }
    if !t.verify.is_empty() || run.options.gate.is_some() {
        p.push_str("\n# How your work is checked\n\n");
        if !t.verify.is_empty() {
            let list: Vec<String> = t.verify.iter().map(|c| format!("- `{c}`")).collect();
            p.push_str(&format!(
                "When you call `complete_task`, the orchestrator runs these in your worktree and refuses the completion while one fails; run them yourself first:\n{}\n",
                list.join("\n")
            ));
        }
        if let Some(gate) = &run.options.gate {
            p.push_str(&format!(
                "After you complete, the daemon merges your branch and runs the gate `{gate}` on the result; if it fails, the task comes back with its output. Run it in your worktree before you call `complete_task`.\n"
            ));
        }
    }
    if let Some(f) = &t.failure {
        p.push_str(&format!(
            "\n# The previous attempt did not land\n\n{f}\n\nStart from the current code and make sure this is solved.\n"
        ));
    }
    p
}

pub(super) async fn dispatch(
    ctx: &Ctx,
    t: &TaskRow,
    cancel: &CancellationToken,
) -> Result<impl std::future::Future<Output = Finished> + Send + 'static, EngineError> {
    let attempt = t.attempts + 1;
    let starting = ctx.spares.starts().begin();
    if let Some(r) = t.resume.clone()
        && r.worktree.exists()
    {
        return launch(ctx, t, cancel, attempt, r, true, starting).await;
    }
    // The branch's tip, not the integration worktree's HEAD: a merge under way there (its
    // gate still running) is not the run's until the branch moves. Read with the task's
    // branches of earlier attempts, in one git command.
    let tip = format!("refs/heads/{}", ctx.run.branch);
    let earlier = format!("refs/heads/{}--{}.*", ctx.run.branch, t.id);
    let refs: HashMap<String, String> = git::refs_matching(&ctx.project, &[&tip, &earlier])
        .await?
        .into_iter()
        .collect();
    let base = match refs.get(&tip) {
        Some(c) => c.clone(),
        // Gone: git says why.
        None => git::rev_parse(&ctx.project, &tip).await?,
    };
    // Kept branches of earlier attempts (unmerged work is never thrown away) take their names.
    let mut n = attempt;
    let (branch, worktree) = loop {
        let branch = format!("{}--{}.{n}", ctx.run.branch, t.id);
        let worktree = crate::layout::task_worktree(&ctx.cfg.data_dir, &ctx.run.id, &t.id, n);
        if !worktree.exists() && !refs.contains_key(&format!("refs/heads/{branch}")) {
            break (branch, worktree);
        }
        n += 1;
    };
    // Created by the worker's own future (`Work::run`), off the scheduling loop: a checkout
    // of a large tree takes seconds, and the next dispatch need not wait for it.
    let place = Resume {
        session: String::new(),
        worktree,
        branch,
        base,
        agent: orchestrator_proto::Agent::Claude,
    };
    launch(ctx, t, cancel, attempt, place, false, starting).await
}

/// Where a worker works (or left off): its Claude session, worktree, branch and base commit.
pub(super) use crate::store::sessions::WorkerPlace as Resume;

/// Opens the worker's session and returns the future that runs it; `resume` works on in the
/// worktree `place` an interrupted worker left, continuing its session when the same CLI
/// takes it up (`claude --resume`, `codex exec resume`) and afresh there otherwise. The
/// worker counts as `starting` until its worktree exists.
pub(super) async fn launch(
    ctx: &Ctx,
    t: &TaskRow,
    cancel: &CancellationToken,
    attempt: u32,
    mut place: Resume,
    resume: bool,
    starting: super::starts::Starting,
) -> Result<impl std::future::Future<Output = Finished> + Send + 'static, EngineError> {
    let choice = super::route::choose(ctx, t, resume.then_some(&place)).await;
    let continuing = resume && place.agent == choice.agent && !place.session.is_empty();
    if !continuing {
        // Claude's session id is ours to choose; Codex's thread id is known once it starts.
        place.session = match choice.agent {
            Agent::Claude => uuid::Uuid::new_v4().to_string(),
            Agent::Codex => String::new(),
        };
    }
    place.agent = choice.agent;
    // Found before the session opens: a task for a Codex that is not installed says so.
    let codex = match choice.agent {
        Agent::Codex => Some(codex_for(ctx).await?),
        Agent::Claude => None,
    };
    let grant = open_worker(ctx, t, &place).await?;
    let said = dispatched(t, &grant.session, &place, attempt, continuing);
    let prompt = launch_prompt(ctx, t, &place, resume, continuing);
    let models = &ctx.run.options.models;
    let model = choice.model;
    let spec = SessionSpec {
        prompt: prompt + &crate::engine::planner::guidance(&ctx.db, &ctx.run).await,
        cwd: place.worktree.clone(),
        mcp_url: ctx.cfg.mcp_url.clone(),
        token: grant.token.clone(),
        session_uuid: place.session.clone(),
        resume: continuing,
        env: ctx.env.clone(),
        confine: ctx.cfg.confinement(&ctx.project, &place.worktree, &ctx.env),
        model,
        effort: t.effort.or(models.effort),
        fallback: models.fallback.clone(),
    };
    let (cmd, model) = match &codex {
        // Codex's stream does not name its model: the ledger says the one it was given.
        Some(c) => {
            let m = spec.model.clone().or_else(|| c.model.clone());
            (c.command(&spec), Some(m.unwrap_or_else(|| "codex".into())))
        }
        None => (ctx.claude.command(&spec), None),
    };
    let work = Work {
        tools: worker_tools(ctx, &t.id, &grant.session),
        cmd,
        model,
        prompt: spec.prompt,
        dir: session_dir(ctx, &grant.session),
        cancel: cancel.clone(),
        task: t.id.clone(),
        cfg: ctx.cfg.clone(),
        record: ctx.cfg.record(&ctx.db, &grant.session, Some(place.clone())),
        prep: (!resume).then(|| ctx.prep.clone()),
        spares: Arc::clone(&ctx.spares),
        said,
        starting,
        handle: ctx.handle.clone(),
        name: format!("{}.{attempt}", t.id),
        session: grant.session,
        place,
    };
    Ok(work.run())
}

/// Opens the worker's session (its token) and records where it works.
async fn open_worker(
    ctx: &Ctx,
    t: &TaskRow,
    place: &Resume,
) -> Result<crate::engine::port::SessionGrant, EngineError> {
    let task = t.id.clone();
    let grant = ctx
        .handle
        .ask(|reply| Ask::OpenSession {
            role: Role::Worker,
            task: Some(task),
            ttl: std::time::Duration::from_secs(orchestrator_proto::session::defaults::TTL_SECS),
            reply,
        })
        .await
        .map_err(EngineError::session(&t.id))?;
    let (s, place) = (grant.session.clone(), place.clone());
    let _ = ctx
        .db
        .call(move |c| crate::store::sessions::set_place(c, &s, &place))
        .await;
    Ok(grant)
}

/// The worker's prompt: the task's, or "continue" for a session continued, or the task's
/// with a word on the worktree another CLI's session left.
fn launch_prompt(ctx: &Ctx, t: &TaskRow, place: &Resume, resume: bool, continuing: bool) -> String {
    if continuing {
        format!(
            "You were interrupted (the run was paused). Continue your task {} where you left off, \
             in the same worktree; call `get_task` on the `orch` MCP server if you need the brief \
             again, and finish with `complete_task` (or `fail_task`) as before.\n",
            t.id
        )
    } else if resume {
        worker_prompt(&ctx.run, t, &place.branch, &place.worktree) + TAKEN_OVER
    } else {
        worker_prompt(&ctx.run, t, &place.branch, &place.worktree)
    }
}

/// Codex as a worker: found when the run's execution began, or now (installed since).
async fn codex_for(ctx: &Ctx) -> Result<crate::agents::codex::worker::CodexWorker, EngineError> {
    if let Some(c) = &ctx.codex {
        return Ok(c.clone());
    }
    let bin = crate::agents::locate(AgentKind::Codex, &ctx.env, ctx.cfg.codex_bin.as_deref())?;
    Ok(codex_worker(&ctx.cfg, bin, &ctx.project).await)
}

/// Added to the prompt of a worker that takes over a worktree another CLI's session left.
const TAKEN_OVER: &str = "\n# Where the previous session stopped\n\nAn earlier session on this \
     task was interrupted in this worktree. What it committed, and any changes it left \
     uncommitted, are here: look at `git log` and `git status` first and carry on from there.\n";

/// The log's sentence for a worker started (or continued) on a task.
fn dispatched(t: &TaskRow, session: &str, place: &Resume, attempt: u32, resume: bool) -> String {
    let codex = if place.agent == Agent::Codex {
        " as a Codex worker"
    } else {
        ""
    };
    if resume {
        format!(
            "Task {} continues in session {session} ({}, attempt {attempt} of {TASK_ATTEMPTS}) \
             in {}",
            t.id,
            continued_by(place).trim_start_matches("with "),
            place.worktree.display()
        )
    } else {
        format!(
            "Task {} dispatched to session {session}{codex} (attempt {attempt} of \
             {TASK_ATTEMPTS}) on {}",
            t.id, place.branch
        )
    }
}

/// A worker's session, ready to run on its own: its worktree created and prepared (a new
/// one), then its agent to its end.
struct Work {
    cmd: tokio::process::Command,
    /// Told each tool call (`--verbose`).
    tools: Option<session::ToolSink>,
    /// The model to record when the session's output does not say it (Codex's).
    model: Option<String>,
    prompt: String,
    dir: PathBuf,
    cancel: CancellationToken,
    task: TaskId,
    cfg: Arc<EngineConfig>,
    record: session::Record,
    /// How to create and prepare its worktree; `None` for a resumed one, there before.
    prep: Option<Prep>,
    /// Where a new worktree may come from ready-made.
    spares: Arc<super::spare::Spares>,
    /// The log's sentence for its start, said once its worktree exists.
    said: String,
    /// Counts it as starting until its worktree exists.
    starting: super::starts::Starting,
    handle: Port,
    /// The worktree's name in setup logs (`<task>.<attempt>`).
    name: String,
    session: SessionId,
    place: Resume,
}

impl Work {
    async fn run(self) -> Finished {
        let Work {
            cmd,
            tools,
            model,
            prompt,
            dir,
            cancel,
            task,
            cfg,
            record,
            prep,
            spares,
            said,
            starting,
            handle,
            name,
            session,
            place,
        } = self;
        let finished = |ended, prepared| Finished {
            task: task.clone(),
            agent: place.agent,
            session_uuid: place.session.clone(),
            branch: place.branch.clone(),
            base: place.base.clone(),
            worktree: place.worktree.clone(),
            session: session.clone(),
            ended,
            prepared,
            unborn: None,
        };
        if prep.is_some() {
            let (wt, branch, base) = (&place.worktree, &place.branch, &place.base);
            if let Err(source) = spares.worktree(wt, branch, base).await {
                let task = task.clone();
                let why = EngineError::Worktree { task, source }.to_string();
                let ended = Err(std::io::Error::other(why.clone()));
                return Finished {
                    unborn: Some(why),
                    ..finished(ended, None)
                };
            }
        }
        drop(starting);
        note(&handle, Level::Info, EventKind::TaskDispatched, said).await;
        let mut prepared = None;
        if let Some(prep) = &prep {
            match crate::engine::prepare::prepare(prep, &place.worktree, &name).await {
                Prepared::Ready(done) => {
                    for d in &done {
                        let text = format!("Task {task}: {d}");
                        note(&handle, Level::Info, EventKind::WorktreePrepared, text).await;
                    }
                    prepared = Some(Prepared::Ready(done));
                }
                other => {
                    let not = Err(std::io::Error::other("its worktree was not prepared"));
                    return finished(not, Some(other));
                }
            }
        }
        let record_db = record.db.clone();
        let watch = worker_watch(&cfg, &cancel, record, place.agent.into(), tools);
        let db = record_db.clone();
        let mut ended = session::run(cmd, &dir, Some(&prompt), watch).await;
        if let Ok(e) = &mut ended {
            e.model = e.model.take().or(model);
            if place.agent == orchestrator_proto::Agent::Codex && !place.session.is_empty() {
                own_tokens(&db, &session, &place.session, e).await;
            }
        }
        finished(ended, prepared)
    }
}

/// A resumed Codex thread reports the tokens of its whole history: the session keeps only its
/// own, less what the thread's earlier sessions recorded.
async fn own_tokens(db: &Db, session: &SessionId, thread: &str, e: &mut session::Ended) {
    let Some(o) = e.outcome.as_mut() else { return };
    let (s, t) = (session.clone(), thread.to_owned());
    if let Ok((input, output)) = db
        .call(move |c| crate::store::sessions::thread_tokens(c, &t, &s))
        .await
    {
        o.input_tokens = o.input_tokens.saturating_sub(input);
        o.output_tokens = o.output_tokens.saturating_sub(output);
    }
}

/// A worker whose worktree git would not create never ran: its session ends, what git may
/// have left (a branch, a directory) goes, and the task goes back without spending an
/// attempt; the caller counts it as a dispatch that failed.
pub(super) async fn unborn(ctx: &Ctx, f: &Finished) {
    never_ran(ctx, f).await;
    let event = NewEvent {
        level: Level::Debug,
        ..NewEvent::info(
            EventKind::TaskInterrupted,
            format!(
                "Task {} goes back to the board: its worktree was not created",
                f.task
            ),
        )
    }
    .with_data(serde_json::json!({ "task": f.task, "session": f.session }));
    put_back(ctx, &f.task, None, event).await;
}

/// What a worker that never ran leaves goes: its session (the token stops working), its
/// worktree (nothing of the agent's is in it) and its branch while still at its base.
async fn never_ran(ctx: &Ctx, f: &Finished) {
    crate::engine::end(&ctx.handle, &f.session, None).await;
    let _ = git::worktree_remove(&ctx.project, &f.worktree, true).await;
    let _ = git::delete_branch_at(&ctx.project, &f.branch, &f.base).await;
}

/// Setups failing in a row before the run stops for a human.
pub const SETUP_FAILURES: u32 = 2;

/// A worker whose worktree could not be prepared never ran: its session ends, the worktree
/// and branch (which hold nothing) go, and the task goes back without spending an attempt.
pub(super) async fn unprepared(ctx: &Ctx, f: Finished, then: &str) {
    never_ran(ctx, &f).await;
    let (kind, level, why) = match &f.prepared {
        Some(Prepared::Failed(fail)) => (EventKind::SetupFailed, Level::Warn, fail.to_string()),
        _ => (
            EventKind::TaskInterrupted,
            Level::Info,
            "the run stopped while its setup ran".to_owned(),
        ),
    };
    let event = NewEvent {
        level,
        ..NewEvent::info(
            kind,
            format!(
                "Task {} was not started, not counted as an attempt ({then}): {why}",
                f.task
            ),
        )
    }
    .with_data(serde_json::json!({ "task": f.task, "session": f.session }));
    put_back(ctx, &f.task, None, event).await;
}

/// How a worker session is watched: stopped on `cancel` and by the watchdogs, left running
/// when the daemon stops, feeding the account's usage, recorded in its row.
pub(super) fn worker_watch<'a>(
    cfg: &'a EngineConfig,
    cancel: &'a CancellationToken,
    record: session::Record,
    agent: AgentKind,
    tools: Option<session::ToolSink>,
) -> session::Watch<'a> {
    session::Watch {
        cancel,
        detach: Some(&cfg.stopping),
        limits: cfg.limits,
        usage: Some(&cfg.usage),
        record: Some(record),
        agent,
        tools,
    }
}

/// Each tool call of task `task`'s worker as a debug event, in `--verbose` runs.
pub(super) fn worker_tools(ctx: &Ctx, task: &TaskId, session: &str) -> Option<session::ToolSink> {
    let who = format!("Task {task} (session {session})");
    ctx.run
        .options
        .verbose
        .then(|| crate::engine::tool_sink(&ctx.handle, who))
}

/// Where a session's stdout and stderr go.
pub(super) fn session_dir(ctx: &Ctx, session: &str) -> PathBuf {
    crate::mirror::session_dir(&ctx.project, &ctx.cfg.data_dir, &ctx.run.id, session)
}
