//! After a worker session: an interruption (pause, usage limit, model API down) puts the task
//! back unspent with where it left off; otherwise what the worker left is salvaged
//! (`super::super::salvage`) and a completed task goes to the merge queue, an unfinished one back
//! to the board, bounded by [`super::TASK_ATTEMPTS`]. A worktree is removed only when it holds
//! nothing unmerged.

#[allow(clippy::wildcard_imports)]
use super::*;
use orchestrator_proto::EventKind;

/// Whether the worker's session ended on the account's usage limit.
pub(super) fn limited(f: &Finished) -> bool {
    f.ended
        .as_ref()
        .is_ok_and(|e| e.outcome.as_ref().is_some_and(|o| o.is_usage_limit()))
}

/// A worker stopped from outside (a pause, the usage limit, the model API down): unless it
/// finished its task anyway, the task goes back to pending, without spending the attempt, with
/// where it left off; `then` says when it continues.
pub(super) async fn interrupted(ctx: &Ctx, f: Finished, why: &str, then: &str) {
    let why = match (limited(&f), f.agent) {
        (true, orchestrator_proto::Agent::Codex) => "Codex hit its usage limit",
        (true, orchestrator_proto::Agent::Claude) => "the account hit its usage limit",
        (false, _) => why,
    };
    let id = (ctx.run.id.clone(), f.task.clone());
    let status = ctx
        .db
        .call(move |c| rows::task(c, &id.0, &id.1))
        .await
        .ok()
        .flatten()
        .map(|t| t.status);
    if f.ended.is_err() || status != Some(TaskStatus::InProgress) {
        // It completed or failed on its own just before: handle it as usual.
        finish(ctx, f).await;
        return;
    }
    crate::engine::end(&ctx.handle, &f.session, f.ended.as_ref().ok()).await;
    let resume = f.place();
    let event = NewEvent::info(
        EventKind::TaskInterrupted,
        format!(
            "Task {} interrupted ({why}); it continues {} in {} {then}",
            f.task,
            if then.contains("Codex") {
                "afresh".to_owned()
            } else {
                continued_by(&resume)
            },
            f.worktree.display()
        ),
    )
    .with_data(serde_json::json!({ "task": f.task, "session": f.session }));
    put_back(ctx, &f.task, Some(resume), event).await;
}

/// How an interrupted worker continues, for the log: `claude --resume <id>`, `codex exec
/// resume <thread>`, or afresh in its worktree when its Codex thread never started.
pub(super) fn continued_by(place: &Resume) -> String {
    match (place.agent, place.session.as_str()) {
        (orchestrator_proto::Agent::Claude, s) => format!("with claude --resume {s}"),
        (orchestrator_proto::Agent::Codex, "") => "with a new Codex session".to_owned(),
        (orchestrator_proto::Agent::Codex, s) => format!("with codex exec resume {s}"),
    }
}

/// After a worker session: verify and merge a completed task, or put it back.
pub(super) async fn finish(ctx: &Ctx, f: Finished) {
    crate::engine::end(&ctx.handle, &f.session, f.ended.as_ref().ok()).await;
    finish_ended(ctx, f).await;
}

/// [`finish`] for a session already ended (its token revoked, its cost recorded).
pub(super) async fn finish_ended(ctx: &Ctx, f: Finished) {
    let id = (ctx.run.id.clone(), f.task.clone());
    // As last committed: the worker's own calls were, before its session ended.
    let row = ctx
        .db
        .read(move |c| rows::task(c, &id.0, &id.1))
        .await
        .ok()
        .flatten();
    let Some(t) = row else { return };
    let why = match &f.ended {
        Err(e) => format!("the session could not run: {e}"),
        Ok(e) => e.why("the session", "calling complete_task"),
    };
    let place = salvage::Place {
        project: &ctx.project,
        run: &ctx.run.id,
        task: &t.id,
        attempt: t.attempts,
        worktree: &f.worktree,
        branch: &f.branch,
    };
    let done = t.status == TaskStatus::Done;
    let taken = salvage::take(&place, done).await;
    // The branch holds the result now: what the merge counts on it is read while the commits
    // the worker moved away from are looked for (both are on the way to every merge).
    let (salvaged, counts) = tokio::join!(salvage::keep(&place, taken), async {
        if done {
            Some(count(ctx, &f).await)
        } else {
            None
        }
    });
    for n in &salvaged.notes {
        note(
            &ctx.handle,
            Level::Warn,
            EventKind::WorkerSalvaged,
            format!("Task {}: {n}", t.id),
        )
        .await;
    }
    if !salvaged.kept.is_empty() && counts.as_ref().is_some_and(Counts::none_ahead) {
        return nothing_kept_on_the_branch(ctx, &f, &t, &salvaged.kept).await;
    }
    match t.status {
        TaskStatus::Done => {
            if let Some(counts) = counts {
                merge(ctx, &f, &t, counts).await;
            }
        }
        TaskStatus::Failed => {} // the worker gave up for good; the loop ends execution
        _ => {
            // Ended without completing (or fail_task retryable): back on the board, bounded.
            let keep = keep_worktree(&ctx.project, &f).await;
            let (status, level) = retry_or_fail(t.attempts);
            let failure = if t.status == TaskStatus::Pending {
                t.failure.clone().unwrap_or(why)
            } else {
                why
            };
            update(
                ctx,
                &t.id,
                status,
                Some(failure.clone()),
                level,
                EventKind::TaskNotCompleted,
                format!(
                    "Task {} not completed (attempt {} of {TASK_ATTEMPTS}): {failure}{keep}",
                    t.id, t.attempts
                ),
            )
            .await;
        }
    }
}

/// Completed, yet the branch holds none of what its worker committed (it reset or switched
/// away; the commits are `kept`): never landed as "needed no change", the task goes back.
async fn nothing_kept_on_the_branch(ctx: &Ctx, f: &Finished, t: &TaskRow, kept: &[String]) {
    let (status, level) = retry_or_fail(t.attempts);
    let failure = format!(
        "you called complete_task, but your branch holds none of the commits you made (you \
         reset or switched away from them; they are kept at {}): commit your work on your \
         task's branch and leave it there",
        kept.join(", ")
    );
    update(ctx, &t.id, status, Some(failure), level, EventKind::TaskNotCompleted, format!(
        "Task {} not completed (attempt {} of {TASK_ATTEMPTS}): its worker completed it, but its branch {} holds none of the commits it made (kept at {})",
        t.id, t.attempts, f.branch, kept.join(", "))).await;
}

/// Removes a worktree with nothing unmerged; otherwise keeps it and says where.
pub(super) async fn keep_worktree(project: &std::path::Path, f: &Finished) -> String {
    let dirty = git::porcelain(&f.worktree)
        .await
        .map(|p| !p.is_empty())
        .unwrap_or(true);
    let ahead = git::commits_ahead(&f.worktree, &f.base, "HEAD")
        .await
        .unwrap_or(1);
    if dirty || ahead > 0 {
        format!(
            "; its work is kept in {} (branch {})",
            f.worktree.display(),
            f.branch
        )
    } else {
        let _ = git::worktree_remove(project, &f.worktree, false).await;
        String::new()
    }
}
