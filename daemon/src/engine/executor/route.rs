//! Which CLI and model a task's worker starts with. As planned — the task's own agent and
//! model, else the run's workers' — unless the account says otherwise: with `--on-limit
//! codex`, a Claude task starts as a Codex worker while Claude's window is at its threshold
//! or spent; with `--on-limit downgrade`, on the strongest cheaper allowed model whose weekly
//! window has room. Every switch is a `model_switched` event with its reason; the next task
//! started after the reset runs as planned again.
//!
//! A worker continued in an interrupted worktree keeps the CLI that started it unless that
//! CLI's account is held and the run may route (then the other takes the worktree over).

#[allow(clippy::wildcard_imports)]
use super::*;
use orchestrator_proto::{Agent, EventKind};

/// What a task's worker runs.
pub(super) struct Choice {
    pub agent: Agent,
    /// `None`: the CLI's default (claude's, or `[codex] worker_model`).
    pub model: Option<String>,
}

/// The CLI and model for `t`'s next worker; `resumed` is where an interrupted one left off.
pub(super) async fn choose(ctx: &Ctx, t: &TaskRow, resumed: Option<&Resume>) -> Choice {
    let models = &ctx.run.options.models;
    let planned = resumed
        .map(|p| p.agent)
        .or(t.agent)
        .unwrap_or(models.worker_agent);
    if planned == Agent::Codex {
        // A Claude model name means nothing to Codex: only a model the plan gave a Codex task.
        let model = (t.agent == Some(Agent::Codex)).then(|| t.model.clone());
        return Choice {
            agent: Agent::Codex,
            model: model.flatten(),
        };
    }
    let planned_model = t.model.as_deref().or(models.worker.as_deref());
    if ctx.codex.is_some()
        && let Some(why) = to_codex(ctx).or_else(|| {
            let why = no_room(ctx, planned_model)
                .map(|(why, _)| why)
                .or_else(|| over_share(ctx))?;
            codex_has_room(ctx).then_some(why)
        })
    {
        let message = format!(
            "Task {} starts as a Codex worker instead of Claude: {why}; tasks go back to Claude \
             once the window has room",
            t.id
        );
        let data = serde_json::json!({"task": t.id, "from": "claude", "to": "codex"});
        crate::engine::note_with(
            &ctx.handle,
            Level::Info,
            EventKind::ModelSwitched,
            message,
            data,
        )
        .await;
        return Choice {
            agent: Agent::Codex,
            model: None,
        };
    }
    Choice {
        agent: Agent::Claude,
        model: task_model(ctx, t).await,
    }
}

/// Why the forecast keeps a Claude task planned on `model` from starting now, if it does: its
/// estimate does not fit in what is left of a window before the limit (and when that window
/// resets).
pub(super) fn no_room(
    ctx: &Ctx,
    model: Option<&str>,
) -> Option<(String, Option<time::OffsetDateTime>)> {
    let outlook = ctx.outlook.lock().ok()?.clone()?;
    let e = outlook.history.estimate(model)?;
    let policy = crate::usage::Policy::of(&ctx.run.options);
    let (w, share, left) = outlook.no_room(&policy, e.usd)?;
    let why = format!(
        "its estimated {} (≈ {:.0}% of the {} window, the median of {}) does not fit in \
         the {:.0}% left before the limit",
        orchestrator_proto::words::usd(e.usd),
        share * 100.0,
        crate::usage::human(&w.kind),
        orchestrator_proto::words::count(e.basis as u64, "past task"),
        left * 100.0
    );
    Some((why, w.window.resets_at))
}

/// Whether a task may go to Codex instead of waiting: the run routes (`--on-limit codex`),
/// Codex is installed and its account has room.
pub(super) fn codex_has_room(ctx: &Ctx) -> bool {
    let now = time::OffsetDateTime::now_utc();
    ctx.run.options.models.on_limit == orchestrator_proto::OnLimit::Codex
        && ctx.codex.is_some()
        && crate::usage::codex_hold(&ctx.cfg.usage.snapshot(), now, ctx.cfg.usage_margin).is_none()
}

/// Reads the forecast for this dispatch pass: only when some window of the account is in use
/// (else no window can be sized and nothing is read).
pub(super) async fn refresh_outlook(ctx: &Ctx, account: &crate::usage::Account) {
    let now = time::OffsetDateTime::now_utc();
    let in_use = account.windows.values().any(|w| w.current(now) > 0.0);
    let (outlook, shares) = if in_use {
        let outlook = crate::usage::outlook::Outlook::read(&ctx.db, &ctx.run.project, account)
            .await
            .ok()
            .filter(|o| o.history.tasks() > 0 && !o.windows.is_empty())
            .map(Arc::new);
        let shares = crate::usage::share::Shares::read(&ctx.db, account)
            .await
            .ok()
            .filter(|s| s.claims.len() > 1 && s.capacity.is_some())
            .map(Arc::new);
        (outlook, shares)
    } else {
        (None, None)
    };
    if let Ok(mut o) = ctx.outlook.lock() {
        *o = outlook;
    }
    if let Ok(mut s) = ctx.shares.lock() {
        *s = shares;
    }
}

/// Why this run starts no new task now, if it has spent its share of the window while
/// another active run has not (`--priority`).
pub(super) fn over_share(ctx: &Ctx) -> Option<String> {
    let shares = ctx.shares.lock().ok()?.clone()?;
    shares.over(&ctx.run.id)
}

/// Why a Claude task goes to Codex now, if it does (`--on-limit codex`).
fn to_codex(ctx: &Ctx) -> Option<String> {
    let policy = crate::usage::Policy::of(&ctx.run.options);
    let account = ctx.cfg.usage.snapshot();
    let now = time::OffsetDateTime::now_utc();
    match crate::usage::route(&account, &policy, Agent::Claude, now, ctx.cfg.usage_margin) {
        crate::usage::Route::ToCodex(why) => Some(why),
        _ => None,
    }
}

/// The model a task's Claude worker runs: the plan's for it, else the run's workers' — or,
/// with `--on-limit downgrade` while that model family's 7-day window is at its threshold,
/// the strongest cheaper allowed model with room (said in the log). Back on the planned model
/// once the window has room again.
async fn task_model(ctx: &Ctx, t: &TaskRow) -> Option<String> {
    let planned = t
        .model
        .clone()
        .or_else(|| ctx.run.options.models.worker.clone())?;
    let policy = crate::usage::Policy::of(&ctx.run.options);
    let account = ctx.cfg.usage.snapshot();
    let now = time::OffsetDateTime::now_utc();
    let Some((to, why)) = crate::usage::downgrade(&account, &policy, &planned, now) else {
        return Some(planned);
    };
    let message = format!(
        "Task {} starts on {to} instead of {planned}: {why}; tasks go back to {planned} once \
         the window has room",
        t.id
    );
    let data = serde_json::json!({"task": t.id, "from": planned, "to": to});
    let kind = EventKind::ModelSwitched;
    crate::engine::note_with(&ctx.handle, Level::Info, kind, message, data).await;
    Some(to)
}
