//! The merge queue: one completed task at a time is merged into the run's branch in the
//! daemon's detached integration worktree, the gate runs on the result (after the integration
//! worktree's setup), and only then does the branch move, with a compare-and-swap `update-ref`
//! — never while the branch is checked out in a worktree the daemon does not own. A red gate or
//! a conflict sends the task back; a gate that cannot run blocks the run without spending an
//! attempt.

#[allow(clippy::wildcard_imports)]
use super::*;
use orchestrator_proto::EventKind;

/// Where the integration worktree's preparation is remembered: `<setup command>\n<commit>`,
/// the commit on the last line (older daemons wrote the command alone).
async fn setup_marker(ctx: &Ctx) -> Option<std::path::PathBuf> {
    let dir = git::git_dir(&ctx.integration).await.ok()?;
    Some(dir.join("orchestrator-setup"))
}

/// The setup command and commit the integration worktree was last prepared with.
async fn prepared_with(marker: &std::path::Path) -> Option<(String, Option<String>)> {
    let text = tokio::fs::read_to_string(marker).await.ok()?;
    Some(match text.rsplit_once('\n') {
        Some((command, commit)) => (command.to_owned(), Some(commit.trim().to_owned())),
        None => (text, None),
    })
}

/// Prepares the integration worktree (where the gate runs) once per setup command: the
/// `.worktreeinclude` files and `--setup`, remembered in its git dir so a resumed run does not
/// install again ([`still_prepared`] prepares it again when a merge changes what it installs
/// from). `false` when stopped, or when it failed [`SETUP_FAILURES`] times (the run is then
/// blocked).
pub(super) async fn integration_ready(ctx: &Ctx) -> bool {
    let marker = setup_marker(ctx).await;
    let want = ctx.run.options.setup.clone().unwrap_or_default();
    if let Some(m) = &marker
        && prepared_with(m)
            .await
            .is_some_and(|(command, _)| command == want)
    {
        return true;
    }
    for n in 1..=SETUP_FAILURES {
        match crate::engine::prepare::prepare(&ctx.prep, &ctx.integration, "integration").await {
            Prepared::Ready(done) => {
                for d in done {
                    let text = format!("Integration worktree: {d}");
                    note(&ctx.handle, Level::Info, EventKind::WorktreePrepared, text).await;
                }
                if let Some(m) = &marker {
                    let at = git::head_id(&ctx.integration).await;
                    let text = format!("{want}\n{}", at.unwrap_or_default());
                    let _ = tokio::fs::write(m, text).await;
                }
                return true;
            }
            Prepared::Stopped => return false,
            Prepared::Failed(fail) => {
                let text = format!("Integration worktree (where the gate runs): {fail}");
                note(&ctx.handle, Level::Warn, EventKind::SetupFailed, text).await;
                if n == SETUP_FAILURES {
                    ctx.block(format!(
                        "{fail}\n\nThe integration worktree, where the gate runs, could not be \
                         set up ({n} times in a row): fix the command or what it needs, then \
                         `orchestrate resume` (or `resume --setup \"…\"` to change it)"
                    ));
                }
            }
        }
    }
    false
}

/// After task `t`'s merge (the integration worktree was at `pre`), before its gate: when what
/// was merged since the worktree was prepared changes a manifest, a lockfile or the setup's
/// own script (`prepare::outdated_by`), it is prepared again, so the gate sees the
/// dependencies the merged code declares. `false` as [`integration_ready`].
async fn still_prepared(ctx: &Ctx, t: &TaskRow, pre: &str) -> bool {
    let Some(marker) = setup_marker(ctx).await else {
        return true;
    };
    let since = match prepared_with(&marker).await {
        Some((_, Some(at))) if !at.is_empty() => at,
        _ => pre.to_owned(),
    };
    let changed = git::changed_files(&ctx.integration, &since, "HEAD")
        .await
        .unwrap_or_default();
    let setup = ctx.run.options.setup.as_deref();
    let outdated = match setup {
        Some(_) => crate::engine::prepare::outdated_by(&changed, setup),
        // Nothing installed: only what `.worktreeinclude` copies can be out of date.
        None => changed.iter().find(|p| *p == ".worktreeinclude"),
    };
    let Some(file) = outdated else {
        return true;
    };
    let text = format!(
        "Integration worktree: {file} changed (task {}'s merge), so it is prepared again \
         before the gate",
        t.id
    );
    note(&ctx.handle, Level::Info, EventKind::WorktreePrepared, text).await;
    let _ = tokio::fs::remove_file(&marker).await;
    integration_ready(ctx).await
}

/// How often a held merge queue looks again whether the run's branch is free.
pub(super) const HELD_POLL: std::time::Duration = std::time::Duration::from_secs(1);

/// Waits until the run's branch is checked out in no worktree but the daemon's own
/// integration worktree: the daemon never moves a branch under a user's checkout (that would
/// leave the checkout's index and files out of step with its branch). Says once why merges
/// wait and once that they go on. `false` when the run was stopped meanwhile.
pub(super) async fn branch_free(ctx: &Ctx) -> bool {
    let mine = tokio::fs::canonicalize(&ctx.integration)
        .await
        .unwrap_or_else(|_| ctx.integration.clone());
    let mut held = false;
    loop {
        let mut users = Vec::new();
        for p in git::checked_out_in(&ctx.project, &ctx.run.branch)
            .await
            .unwrap_or_default()
        {
            let p = tokio::fs::canonicalize(&p).await.unwrap_or(p);
            if p != mine {
                users.push(p);
            }
        }
        let Some(at) = users.first() else {
            if held {
                note(
                    &ctx.handle,
                    Level::Info,
                    EventKind::MergeResumed,
                    format!("{} is free again; merges go on", ctx.run.branch),
                )
                .await;
            }
            return true;
        };
        if !held {
            held = true;
            note(
                &ctx.handle,
                Level::Warn,
                EventKind::MergeHeld,
                format!(
                    "{branch} is checked out in {at}; the daemon never moves a branch under a \
                     checkout, so merges wait: switch away from {branch} there (git switch -) to \
                     let the run go on",
                    branch = ctx.run.branch,
                    at = at.display()
                ),
            )
            .await;
        }
        tokio::select! {
            () = ctx.cancel.cancelled() => return false,
            () = tokio::time::sleep(HELD_POLL) => {}
        }
    }
}

/// What a completed task's branch adds: commits beyond its base, and beyond the run's branch.
pub(super) struct Counts {
    ahead: Result<u64, git::GitError>,
    merged_already: Result<u64, git::GitError>,
}

impl Counts {
    /// The branch holds no commit beyond its base.
    pub(super) fn none_ahead(&self) -> bool {
        self.ahead.as_ref().is_ok_and(|n| *n == 0)
    }
}

/// Counts a completed task's branch once `salvage` made it hold the worker's result: on the
/// branch, not in the worktree, as the branch is what gets merged; whether the run's branch
/// holds it already is asked at the same time.
pub(super) async fn count(ctx: &Ctx, f: &Finished) -> Counts {
    let (ahead, merged_already) = tokio::join!(
        git::commits_ahead(&ctx.project, &f.base, &f.branch),
        git::commits_ahead(&ctx.project, &ctx.run.branch, &f.branch)
    );
    Counts {
        ahead,
        merged_already,
    }
}

/// Merges a completed task's branch (`salvage` made it hold the worker's result; `counts` is
/// what [`count`] read of it since).
pub(super) async fn merge(ctx: &Ctx, f: &Finished, t: &TaskRow, counts: Counts) {
    let _integration = ctx.integration_lock.lock().await;
    if ctx.blocked().is_some() {
        return; // the task stays done and is merged when the run goes on
    }
    let (ahead, pre) = tokio::join!(to_merge(ctx, f, t, counts), git::head_id(&ctx.integration));
    let Some(ahead) = ahead else {
        return;
    };
    let message = format!("Merge task {}: {}", t.id, t.title);
    let pre = match pre {
        Ok(p) => p,
        Err(e) => {
            update(
                ctx,
                &t.id,
                TaskStatus::Failed,
                Some(e.to_string()),
                Level::Error,
                EventKind::MergeFailed,
                format!("Task {} could not be merged: {e}", t.id),
            )
            .await;
            return;
        }
    };
    if ctx.run.options.gate.is_some() && !integration_ready(ctx).await {
        return; // stopped or blocked: the task stays done and is merged when the run goes on
    }
    if !branch_free(ctx).await {
        return; // stopped while held: the task stays done and is merged when the run goes on
    }
    match git::merge(&ctx.integration, &f.branch, &message).await {
        Ok(Merge::Merged) => merged(ctx, f, t, &pre, ahead).await,
        Ok(Merge::Conflict(files)) => {
            let failure = format!(
                "merging it conflicted with work merged meanwhile in: {}; redo the task on the new tip of {}",
                files.join(", "),
                ctx.run.branch
            );
            let (status, level) = retry_or_fail(t.attempts);
            update(
                ctx,
                &t.id,
                status,
                Some(failure.clone()),
                level,
                EventKind::MergeConflict,
                format!("Task {}: {failure}; its branch {} is kept", t.id, f.branch),
            )
            .await;
        }
        Ok(Merge::Refused(said)) => refused(ctx, t, &said).await,
        Err(e) => {
            update(
                ctx,
                &t.id,
                TaskStatus::Failed,
                Some(format!("the merge failed: {e}")),
                Level::Error,
                EventKind::MergeFailed,
                format!("Task {} could not be merged: {e}", t.id),
            )
            .await;
        }
    }
}

/// Git would not begin the merge (the integration worktree holds untracked files the task's
/// branch brings, say): the task fails as a failed merge does, with what git said and, for a
/// run with a `--setup`, the likely cause and its fix.
async fn refused(ctx: &Ctx, t: &TaskRow, said: &str) {
    let fix = if ctx.run.options.setup.is_some() {
        " If these are files your --setup makes (node_modules/, .venv/, target/), the task \
         committed them: add them to the project's .gitignore, commit it and start the run \
         again, or answer telling the workers not to commit them."
    } else {
        ""
    };
    update(
        ctx,
        &t.id,
        TaskStatus::Failed,
        Some(format!("git would not begin the merge: {said}{fix}")),
        Level::Error,
        EventKind::MergeFailed,
        format!(
            "Task {} could not be merged: git would not begin: {said}{fix}",
            t.id
        ),
    )
    .await;
}

/// The commits the task's branch adds to its base, or `None` when there is nothing to merge
/// (it needed no change, a previous daemon merged it already, or its branch cannot be read):
/// each of those is recorded here.
async fn to_merge(ctx: &Ctx, f: &Finished, t: &TaskRow, counts: Counts) -> Option<u64> {
    let Counts {
        ahead,
        merged_already,
    } = counts;
    let ahead = match ahead {
        Ok(n) => n,
        Err(e) => {
            let (status, level) = retry_or_fail(t.attempts);
            update(
                ctx,
                &t.id,
                status,
                Some(format!("its branch {} cannot be read: {e}", f.branch)),
                level,
                EventKind::MergeFailed,
                format!("Task {}: its branch {} cannot be read: {e}", t.id, f.branch),
            )
            .await;
            return None;
        }
    };
    if ahead == 0 {
        let why = format!(
            "Task {} needed no change: {}",
            t.id,
            t.result.as_deref().unwrap_or("no summary")
        );
        landed(ctx, f, t, why).await;
        return None;
    }
    // A previous daemon moved the branch but stopped before recording it: merged already.
    if merged_already.is_ok_and(|n| n == 0) {
        let why = format!(
            "Task {} was already merged into {} ({}); recorded now",
            t.id,
            ctx.run.branch,
            orchestrator_proto::words::count(ahead, "commit")
        );
        landed(ctx, f, t, why).await;
        return None;
    }
    Some(ahead)
}

/// The branch is merged in the integration worktree (at `pre` before): the gate runs on the
/// result, and only if it passes does the run's branch advance.
async fn merged(ctx: &Ctx, f: &Finished, t: &TaskRow, pre: &str, ahead: u64) {
    if ctx.run.options.gate.is_some() && !still_prepared(ctx, t, pre).await {
        // Stopped or blocked: the task stays done and is merged when the run goes on.
        let _ = git::reset_hard(&ctx.integration, pre).await;
        return;
    }
    let verdict = match &ctx.run.options.gate {
        Some(gate) => run_gate(ctx, gate, t).await,
        None => Gate::Passed,
    };
    if !gate_passed(ctx, t, pre, verdict).await {
        return;
    }
    // Looked at again after a gate (it may have run for minutes); without one, the look
    // before the merge was a moment ago.
    if ctx.run.options.gate.is_some() && !branch_free(ctx).await {
        let _ = git::reset_hard(&ctx.integration, pre).await;
        return;
    }
    let advanced = match git::head_id(&ctx.integration).await {
        Ok(new) => git::advance_branch(&ctx.project, &ctx.run.branch, &new, pre).await,
        Err(e) => Err(e),
    };
    if let Err(e) = advanced {
        let _ = git::reset_hard(&ctx.integration, pre).await;
        update(
            ctx,
            &t.id,
            TaskStatus::Failed,
            Some(e.to_string()),
            Level::Error,
            EventKind::MergeFailed,
            format!("Task {}: cannot advance {}: {e}", t.id, ctx.run.branch),
        )
        .await;
        return;
    }
    let done = format!(
        "Task {} merged into {} ({})",
        t.id,
        ctx.run.branch,
        orchestrator_proto::words::count(ahead, "commit")
    );
    landed(ctx, f, t, done).await;
}

/// Whether the gate passed; if not, the integration worktree goes back to `pre` and the run
/// is blocked (a gate that cannot run), the task goes back with the output (red), or nothing
/// more happens (stopped: the merge is redone, gate included, when the run goes on).
async fn gate_passed(ctx: &Ctx, t: &TaskRow, pre: &str, verdict: Gate) -> bool {
    let gate = ctx.run.options.gate.as_deref().unwrap_or("");
    match verdict {
        Gate::Passed => return true,
        Gate::CannotRun(why) => {
            let why = format!(
                "the gate `{gate}` cannot run in the integration worktree ({why}); that is \
                 the environment, not the workers' code, so no attempt was spent: give a \
                 --setup that installs what it needs or another --gate, with `orchestrate \
                 resume --setup \"…\"` or `--gate \"…\"`"
            );
            let _ = git::reset_hard(&ctx.integration, pre).await;
            let message = format!("Task {}: {why}", t.id);
            note(&ctx.handle, Level::Error, EventKind::GateCannotRun, message).await;
            ctx.block(why);
        }
        Gate::Stopped => {
            let _ = git::reset_hard(&ctx.integration, pre).await;
            note(
                &ctx.handle,
                Level::Info,
                EventKind::GateStopped,
                format!(
                    "Task {}: the gate was stopped before it finished; {} did not advance, \
                     and the merge is redone when the run goes on",
                    t.id, ctx.run.branch
                ),
            )
            .await;
        }
        Gate::Failed(output) => {
            let _ = git::reset_hard(&ctx.integration, pre).await;
            let first = output
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("")
                .to_owned();
            let failure = format!("the gate `{gate}` failed on the merged result:\n{output}");
            let (status, level) = retry_or_fail(t.attempts);
            let message = format!(
                "Task {}: the gate `{gate}` failed on its merge ({first}); the branch did not \
                 advance and the task goes back with the output",
                t.id
            );
            let kind = EventKind::GateFailed;
            update(ctx, &t.id, status, Some(failure), level, kind, message).await;
        }
    }
    false
}

/// How a gate ended on one merge.
pub(super) enum Gate {
    Passed,
    /// Red (or timed out): the end of its output, for the task's next try.
    Failed(String),
    /// The command itself cannot run there (exit 126 or 127, or no shell): the environment's
    /// fault, never the task's.
    CannotRun(String),
    /// The run was paused or cancelled, or the daemon is stopping: the merge is undone and
    /// redone when the run goes on.
    Stopped,
}

/// Runs the gate in the integration worktree with the run's environment, as a bounded child
/// (`crate::child`): output to `.orchestrator/gates/<task>.<attempt>.log`, the last 64 KiB
/// kept, its process group stopped on timeout, pause, cancel and daemon stop.
pub(super) async fn run_gate(ctx: &Ctx, gate: &str, t: &TaskRow) -> Gate {
    let mut c = tokio::process::Command::new("sh");
    c.arg("-c")
        .arg(gate)
        .current_dir(&ctx.integration)
        .env_clear();
    for (k, v) in &ctx.env.0 {
        c.env(k, v);
    }
    let log = crate::mirror::gate_log(
        &ctx.project,
        &ctx.cfg.data_dir,
        &ctx.run.id,
        &format!("{}.{}.log", t.id, t.attempts),
    );
    let timeout = std::time::Duration::from_secs(ctx.run.options.gate_timeout_secs);
    let started = std::time::Instant::now();
    let ran = match crate::child::run(c, &log, timeout, &ctx.cancel, &ctx.cfg.stopping).await {
        Ok(r) => r,
        Err(e) => return Gate::CannotRun(format!("cannot start sh: {e}")),
    };
    if let crate::child::Exit::Exited(Some(code @ (126 | 127))) = ran.exit {
        let last = ran.tail.trim().lines().last().unwrap_or("").to_owned();
        let what = if code == 127 {
            "not found"
        } else {
            "not executable"
        };
        return Gate::CannotRun(format!("exit {code}, a command {what}: {last}"));
    }
    let code = match ran.exit {
        crate::child::Exit::Exited(Some(0)) => {
            let secs = started.elapsed().as_secs_f64();
            crate::engine::note_with(
                &ctx.handle,
                Level::Info,
                EventKind::GatePassed,
                format!(
                    "Gate `{gate}` passed on task {}'s merge in {secs:.1}s",
                    t.id
                ),
                serde_json::json!({"task": t.id, "secs": secs}),
            )
            .await;
            return Gate::Passed;
        }
        crate::child::Exit::Stopped => return Gate::Stopped,
        crate::child::Exit::TimedOut(d) => format!(
            "it ran for more than {} and was stopped (--gate-timeout)",
            humane(d)
        ),
        crate::child::Exit::Exited(c) => {
            format!("exit {}", c.map_or("by a signal".into(), |c| c.to_string()))
        }
    };
    Gate::Failed(format!(
        "({code}; the whole output is in {})\n{}",
        ran.log.display(),
        ran.tail.trim()
    ))
}

pub(super) fn humane(d: std::time::Duration) -> String {
    match d.as_secs() {
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// The task's work is on the branch (or it needed none): its worktree and task branch have
/// nothing left to keep, and the task is merged. They are removed by [`tidy`], after the
/// merge.
pub(super) async fn landed(ctx: &Ctx, f: &Finished, t: &TaskRow, message: String) {
    // Recorded first: a restart in between finds the task merged, and `clean` the leftovers.
    update(
        ctx,
        &t.id,
        TaskStatus::Merged,
        None,
        Level::Info,
        EventKind::TaskMerged,
        message,
    )
    .await;
    if let Ok(mut l) = ctx.landed.lock() {
        l.push(Landed {
            worktree: f.worktree.clone(),
            branch: f.branch.clone(),
        });
    }
}

/// A merged task's worktree and branch, to remove.
pub(super) struct Landed {
    worktree: std::path::PathBuf,
    branch: String,
}

/// Removes merged tasks' worktrees and branches (the branch's tip kept under the run's
/// backup refs first). A branch whose worktree could not be removed stays with it; a branch
/// that moved since its tip was read stays too (the delete is a compare-and-swap).
pub(super) async fn tidy(ctx: &Ctx) {
    let landed = ctx
        .landed
        .lock()
        .map(|mut l| std::mem::take(&mut *l))
        .unwrap_or_default();
    for l in landed {
        // After any worker being started: its worktree is the one a freed slot waits for.
        ctx.spares.starts().none().await;
        let removed = git::worktree_remove(&ctx.project, &l.worktree, false).await;
        if removed.is_err() && l.worktree.exists() {
            continue;
        }
        if let Ok(tip) = git::ref_id(&ctx.project, &format!("refs/heads/{}", l.branch)).await {
            let name = format!("{}/{}", ctx.run.id, l.branch.replace('/', "_"));
            if git::backup(&ctx.project, &name, &tip).await.is_ok() {
                let _ = git::delete_branch_at(&ctx.project, &l.branch, &tip).await;
            }
        }
    }
}
