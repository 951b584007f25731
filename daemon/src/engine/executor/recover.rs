//! What a previous daemon (or a pause) left, made whole when the executor starts: live workers
//! re-attached, gone ones finished from everything they wrote, completed tasks nobody follows
//! merged from their recorded place (or done again when it is unknown), and worktrees a crash
//! left half-created removed.

#[allow(clippy::wildcard_imports)]
use super::*;
use orchestrator_proto::EventKind;

/// Removes the run's worktrees whose creation a crash cut short (no valid HEAD: they hold
/// nothing; the integration worktree, made ready when the executor started, is not looked
/// at, nor are spares, which may be being made right now and are the spares' own sweep's)
/// and lets git forget worktrees whose folders are gone. Run when the executor starts
/// and again when the run's tasks are all merged (a git command the previous daemon left
/// running may have still been finishing the first time).
pub(super) async fn repair_worktrees(ctx: &Ctx) {
    let dir = crate::layout::run_worktrees(&ctx.cfg.data_dir, &ctx.run.id);
    if let Ok(mut entries) = tokio::fs::read_dir(&dir).await {
        while let Ok(Some(e)) = entries.next_entry().await {
            let path = e.path();
            if path != ctx.integration
                && !spare::is_spare(&path)
                && path.join(".git").is_file()
                && matches!(git::head_commit(&path).await, Ok(None))
            {
                let _ = git::worktree_remove(&ctx.project, &path, true).await;
                note(
                    &ctx.handle,
                    Level::Warn,
                    EventKind::WorktreeRepaired,
                    format!(
                        "Removed {}: a daemon stopped while creating it (it had no valid HEAD \
                         and held nothing)",
                        path.display()
                    ),
                )
                .await;
            }
        }
    }
    ctx.spares.sweep().await;
    let _ = git::worktree_prune(&ctx.project).await;
}

/// What the previous daemon left of this run's workers. A task in progress (or done but not
/// merged) whose worker still runs is re-attached: its output is read on from where parsing
/// stopped. One whose worker is gone is finished from what the worker's output and the board
/// say: merged if it completed, otherwise back to the board (the attempt is spent). Returns
/// the re-attached sessions.
pub(super) async fn reconcile(
    ctx: &Ctx,
    cancel: &CancellationToken,
    running: &mut JoinSet<Finished>,
    busy: &mut HashMap<TaskId, Vec<String>>,
) -> HashSet<SessionId> {
    let mut adopted = HashSet::new();
    // Apart: one removes broken worktrees, the other resets the integration worktree.
    tokio::join!(repair_worktrees(ctx), roll_back_half_merge(ctx));
    for t in tasks(&ctx.db, &ctx.run.id)
        .await
        .into_iter()
        .filter(|t| t.status == TaskStatus::InProgress || t.status == TaskStatus::Done)
    {
        let (row, place) = last_place(ctx, &t.id).await;
        // A previous daemon's worker, or a completed task this daemon's last executor stopped
        // before merging (it is merged now). This daemon's worker of a task still in progress
        // was stopped with its executor: the task is requeued.
        let row = row.filter(|r| r.started_at < ctx.cfg.started_at || t.status == TaskStatus::Done);
        let (Some(row), Some(place)) = (row, place) else {
            if t.status == TaskStatus::Done {
                redo_unknown(ctx, &t.id).await;
            } else {
                requeue(ctx, &t.id).await;
            }
            continue;
        };
        if t.status == TaskStatus::InProgress && row.pid.is_none() {
            // Its worker never started: the daemon stopped between opening its session and
            // spawning it (while its worktree was created or prepared). Not the task's fault;
            // the worktree goes unless something is in it (a non-forced remove refuses), and
            // its branch only while it is still at its base.
            requeue(ctx, &t.id).await;
            if git::worktree_remove(&ctx.project, &place.worktree, false)
                .await
                .is_ok()
                || !place.worktree.exists()
            {
                let _ = git::delete_branch_at(&ctx.project, &place.branch, &place.base).await;
            }
            continue;
        }
        let live = row
            .active
            .then(|| crate::engine::reap::live(&row))
            .flatten();
        if let Some(id) = live {
            adopted.insert(row.id.clone());
            busy.insert(t.id.clone(), t.files.clone());
            reattach(ctx, cancel, running, &t.id, row, place, id).await;
            continue;
        }
        // Gone: everything it wrote tells how it ended (nothing of it was acted on yet).
        let when = if row.started_at < ctx.cfg.started_at {
            "ended while the daemon was down"
        } else {
            "ended before this executor started"
        };
        note(
            &ctx.handle,
            Level::Info,
            EventKind::SessionGone,
            format!(
                "Task {}: its worker session {} {when}; finishing it from what it left",
                t.id, row.id
            ),
        )
        .await;
        finish_gone(ctx, &t.id, row, place).await;
    }
    adopted
}

/// A merge the previous daemon left half-done (the integration worktree ahead of the run's
/// branch) is rolled back; its task is merged again.
async fn roll_back_half_merge(ctx: &Ctx) {
    let branch = format!("refs/heads/{}", ctx.run.branch);
    let (Ok(head), Ok(tip)) = tokio::join!(
        git::head_id(&ctx.integration),
        git::rev_parse(&ctx.project, &branch),
    ) else {
        return;
    };
    if head == tip {
        return;
    }
    let _ = git::reset_hard(&ctx.integration, &tip).await;
    note(
        &ctx.handle,
        Level::Warn,
        EventKind::MergeRolledBack,
        format!(
            "A merge the previous daemon had not finished ({}) was rolled back; {} stays at {}",
            &head[..head.len().min(12)],
            ctx.run.branch,
            &tip[..tip.len().min(12)]
        ),
    )
    .await;
}

/// Follows a previous daemon's worker that still runs, from where its output was read to.
async fn reattach(
    ctx: &Ctx,
    cancel: &CancellationToken,
    running: &mut JoinSet<Finished>,
    task: &TaskId,
    row: crate::store::sessions::SessionRow,
    place: Resume,
    id: crate::engine::process::Identity,
) {
    note(
        &ctx.handle,
        Level::Info,
        EventKind::SessionReattached,
        format!(
            "Task {task}: re-attached to its worker session {} (pid {}), still running; its \
             output is read on from byte {}",
            row.id, id.pid, row.output_offset
        ),
    )
    .await;
    let dir = session_dir(ctx, &row.id);
    let elapsed = (time::OffsetDateTime::now_utc() - row.started_at)
        .try_into()
        .unwrap_or_default();
    let (cancel, cfg) = (cancel.clone(), ctx.cfg.clone());
    let record = cfg.record(&ctx.db, &row.id, None);
    let tools = worker_tools(ctx, task, &row.id);
    let (task, session, offset) = (task.to_owned(), row.id, row.output_offset);
    running.spawn(async move {
        let watch = worker_watch(&cfg, &cancel, record, place.agent.into(), tools);
        let ended = session::reattach(id, &dir, offset, elapsed, watch).await;
        Finished {
            task,
            agent: place.agent,
            session_uuid: place.session,
            branch: place.branch,
            base: place.base,
            worktree: place.worktree,
            session,
            ended,
            prepared: None,
            unborn: None,
        }
    });
}

/// A task in progress whose session nobody can follow (a previous daemon died before it
/// recorded the worker's process, or this daemon's executor stopped it): back on the board
/// afresh, its attempt unspent — losing the worker was not the task's fault. The previous
/// daemon's session is ended so its token stops working.
pub(super) async fn requeue(ctx: &Ctx, task: &TaskId) {
    let key = (ctx.run.id.clone(), task.to_owned());
    let since = ctx.cfg.started_at;
    let stale = ctx
        .db
        .call(move |c| {
            Ok(crate::store::sessions::open(c, &key.0)?
                .into_iter()
                .filter(|s| {
                    s.worked_task.as_deref() == Some(key.1.as_str()) && s.started_at < since
                })
                .map(|s| s.id)
                .collect::<Vec<_>>())
        })
        .await
        .unwrap_or_default();
    for s in stale {
        crate::engine::end_session(&ctx.handle, &s, None).await;
    }
    let event = NewEvent::info(
        EventKind::TaskRequeued,
        format!("Task {task} requeued: its session is gone (not counted as an attempt)"),
    )
    .with_data(serde_json::json!({ "task": task }));
    put_back(ctx, task, None, event).await;
}

/// The task's newest worker session and where it worked, as far as they were recorded.
pub(super) async fn last_place(
    ctx: &Ctx,
    task: &TaskId,
) -> (Option<crate::store::sessions::SessionRow>, Option<Resume>) {
    let key = (ctx.run.id.clone(), task.clone());
    let row = ctx
        .db
        .call(move |c| crate::store::sessions::last_worker(c, &key.0, &key.1))
        .await
        .ok()
        .flatten();
    let place = row.as_ref().and_then(|r| r.place.clone());
    (row, place)
}

/// Merges a completed task whose worker nobody followed, from its last worker's place.
pub(super) async fn finish_orphan(ctx: &Ctx, t: &TaskRow) {
    match last_place(ctx, &t.id).await {
        (Some(row), Some(place)) => finish_gone(ctx, &t.id, row, place).await,
        _ => redo_unknown(ctx, &t.id).await,
    }
}

/// Finishes a task whose worker is gone from what it left: its whole output, then the usual
/// verify-and-merge (or back to the board).
pub(super) async fn finish_gone(
    ctx: &Ctx,
    task: &TaskId,
    row: crate::store::sessions::SessionRow,
    place: Resume,
) {
    let dir = session_dir(ctx, &row.id);
    let f = Finished {
        task: task.to_owned(),
        agent: place.agent,
        ended: session::finalize(&dir, 0, place.agent.into()).await,
        session_uuid: place.session,
        branch: place.branch,
        base: place.base,
        worktree: place.worktree,
        session: row.id,
        prepared: None,
        unborn: None,
    };
    finish(ctx, f).await;
}

/// A completed task whose work cannot be found (no recorded place): done again.
pub(super) async fn redo_unknown(ctx: &Ctx, task: &TaskId) {
    update(
        ctx,
        task,
        TaskStatus::Pending,
        None,
        Level::Warn,
        EventKind::TaskRequeued,
        format!(
            "Task {task} requeued: it was completed by a session whose worktree the daemon does \
             not know (one it did not start), so there is nothing to merge; it is done again"
        ),
    )
    .await;
}
