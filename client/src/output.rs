//! Human output: tables, durations, the run summary. `--json` output bypasses all of this and
//! prints the `proto` types as they are.

use orchestrator_proto::{Escalation, Event, HoldKind, Run, TaskStatus};
use serde::Serialize;
use time::OffsetDateTime;

pub fn json(v: &impl Serialize) -> Result<(), crate::ClientError> {
    let text =
        serde_json::to_string_pretty(v).map_err(|e| crate::ClientError::Decode(e.to_string()))?;
    crate::outln!("{text}");
    Ok(())
}

/// "3m ago", "2h ago", "5d ago".
pub fn ago(t: OffsetDateTime) -> String {
    let secs = (OffsetDateTime::now_utc() - t).whole_seconds().max(0);
    match secs {
        0..60 => format!("{secs}s ago"),
        60..3600 => format!("{}m ago", secs / 60),
        3600..86400 => format!("{}h ago", secs / 3600),
        _ => format!("{}d ago", secs / 86400),
    }
}

/// "in 3m", "in 2h 5m".
pub fn until(t: OffsetDateTime) -> String {
    let secs = (t - OffsetDateTime::now_utc()).whole_seconds().max(0);
    match secs {
        0..60 => format!("in {secs}s"),
        60..3600 => format!("in {}m", secs / 60),
        _ => format!("in {}h {}m", secs / 3600, secs % 3600 / 60),
    }
}

/// The user's time zone offset, read once while the process is single-threaded (the time
/// crate refuses to read it later, for soundness); UTC when it cannot be read.
static LOCAL: std::sync::OnceLock<time::UtcOffset> = std::sync::OnceLock::new();

/// Reads the local offset; call first thing in `main`.
pub fn read_local_offset() {
    let _ = LOCAL.set(time::UtcOffset::current_local_offset().unwrap_or(time::UtcOffset::UTC));
}

/// A time for people, in their zone ("2026-12-03 08:04:40 +01:00", or "… UTC"); `--json`
/// keeps UTC.
pub fn clock(t: OffsetDateTime) -> String {
    let fmt = time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second]");
    let offset = LOCAL.get().copied().unwrap_or(time::UtcOffset::UTC);
    let zone = if offset.is_utc() {
        "UTC".to_owned()
    } else {
        let (h, m, _) = offset.as_hms();
        format!(
            "{}{:02}:{:02}",
            if offset.is_negative() { '-' } else { '+' },
            h.abs(),
            m.abs()
        )
    };
    format!(
        "{} {zone}",
        t.to_offset(offset).format(&fmt).unwrap_or_default()
    )
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(12)]
}

fn on_off(b: bool) -> &'static str {
    if b { "on" } else { "off" }
}

pub fn run_summary(r: &Run) {
    let unreviewed = if r.unreviewed.is_some() {
        ", not reviewed"
    } else {
        ""
    };
    crate::outln!("Run {}  {}{unreviewed} ({})", r.id, r.status, r.phase);
    crate::outln!("  feature    {}", r.feature);
    crate::outln!("  project    {}", r.project);
    crate::outln!("  branch     {} (from {})", r.branch, short(&r.base_commit));
    crate::outln!("  cycle      {} of {}", r.cycle, r.options.max_cycles);
    crate::outln!(
        "  options    concurrency {} · usage threshold {}% · codex reviews {} · dry run {}",
        r.options.concurrency,
        (r.options.usage_threshold * 100.0).round(),
        on_off(!r.options.skip_codex),
        on_off(r.options.dry_run)
    );
    if let Some(m) = r.options.models.summary() {
        crate::outln!("  models     {m}");
    }
    if let Some(f) = &r.context_file {
        crate::outln!("  context    {f}");
    }
    run_commands(r);
    run_progress(r);
    forecast(r);
    if let Some(reason) = &r.status_reason {
        crate::outln!("  why        {reason}");
    }
    if let Some(why) = &r.unreviewed {
        crate::outln!("  review     not reviewed: {why}");
    }
    run_hold(r);
    crate::outln!(
        "  created    {} ({})",
        clock(r.created_at),
        ago(r.created_at)
    );
    crate::outln!(
        "  updated    {} ({})",
        clock(r.updated_at),
        ago(r.updated_at)
    );
    if let Some(t) = r.finished_at {
        crate::outln!("  finished   {} ({})", clock(t), ago(t));
    }
}

/// The run's setup and gate commands with their limits.
fn run_commands(r: &Run) {
    if let Some(s) = &r.options.setup {
        crate::outln!(
            "  setup      {s} (in every new worktree, {} at most)",
            humantime::format_duration(std::time::Duration::from_secs(
                r.options.setup_timeout_secs
            ))
        );
    }
    if let Some(g) = &r.options.gate {
        crate::outln!(
            "  gate       {g} (on every merge, {} at most)",
            humantime::format_duration(std::time::Duration::from_secs(r.options.gate_timeout_secs))
        );
    }
}

/// Tasks, sessions and cost so far.
fn run_progress(r: &Run) {
    let p = &r.progress;
    if p.tasks > 0 {
        crate::outln!(
            "  tasks      {} · {} merged · {} in progress · {} failed",
            p.tasks,
            p.merged,
            p.in_progress,
            p.failed
        );
    }
    if p.sessions > 0 {
        crate::outln!(
            "  sessions   {} · ${:.4} · {} tokens in, {} out",
            p.sessions,
            p.cost_usd,
            p.input_tokens,
            p.output_tokens
        );
    }
    if p.models.iter().any(|m| m.model.is_some()) {
        let by_model: Vec<String> = p
            .models
            .iter()
            .map(|m| {
                format!(
                    "{} ${:.4} ({})",
                    m.model.as_deref().unwrap_or("unknown"),
                    m.cost_usd,
                    orchestrator_proto::words::count(m.sessions, "session")
                )
            })
            .collect();
        crate::outln!("  by model   {}", by_model.join(" · "));
    }
    if p.project_cost_usd > 0.0 {
        let by_cycle: Vec<String> = p
            .cycles
            .iter()
            .filter(|c| c.cycle > 0)
            .map(|c| format!("cycle {} ${:.4}", c.cycle, c.cost_usd))
            .collect();
        crate::outln!(
            "  cost       {}{}project ${:.4} (all its runs)",
            by_cycle.join(" · "),
            if by_cycle.is_empty() { "" } else { " · " },
            p.project_cost_usd
        );
    }
}

/// What the rest of the run will likely cost, and what share of each usage window.
fn forecast(r: &Run) {
    let Some(f) = &r.forecast else { return };
    let windows: String = f
        .windows
        .iter()
        .map(|w| {
            format!(
                " · ≈ {:.0}% of the {} window (at {:.0}% now)",
                w.share_percent,
                orchestrator_proto::usage::window_name(&w.kind),
                w.now_percent
            )
        })
        .collect();
    crate::outln!(
        "  estimate   {} to go ≈ {} (the median cost of this project's {}){windows}",
        orchestrator_proto::words::count(f.tasks, "task"),
        orchestrator_proto::words::usd(f.cost_usd),
        orchestrator_proto::words::count(f.basis, "past task"),
    );
}

/// What the run waits for (a usage or budget hold) and what it has spent of its budget.
fn run_hold(r: &Run) {
    if let Some(h) = &r.hold {
        let when = h
            .until
            .map(|u| format!(" until {} ({})", clock(u), until(u)))
            .unwrap_or_default();
        let how = if h.kind == HoldKind::Usage && r.options.auto_resume {
            "resumes by itself"
        } else {
            "`orchestrate resume` continues it"
        };
        crate::outln!("  waiting    {} hold{when}; {how}", h.kind);
    }
    if let Some(b) = r.options.max_budget_usd {
        crate::outln!("  budget     ${:.2} of ${b:.2} spent", r.progress.cost_usd);
    }
}

/// The first line of `s`, at most `n` characters (with "…" when cut).
/// The tasks worth a line in `status`: those with a worker now (its last sign of life) and
/// those that were retried (why the last attempt did not land).
pub fn task_lines(tasks: &[orchestrator_proto::Task]) {
    let mut first = true;
    let mut label = || {
        if std::mem::take(&mut first) {
            "  workers   "
        } else {
            "            "
        }
    };
    for t in tasks {
        let retried = t.attempts > 1 || (t.status == TaskStatus::Pending && t.failure.is_some());
        if t.status == TaskStatus::InProgress {
            let seen = t
                .last_activity_at
                .map(|a| format!(" · last activity {}", ago(a)))
                .unwrap_or_default();
            let on = t
                .model
                .as_deref()
                .map(|m| format!(" · {m}"))
                .unwrap_or_default();
            crate::outln!(
                "{}{} attempt {} · session {}{on}{seen}",
                label(),
                t.id,
                t.attempts,
                t.assignee.as_deref().unwrap_or("-")
            );
        } else if retried && matches!(t.status, TaskStatus::Pending | TaskStatus::Failed) {
            crate::outln!(
                "{}{} {} after attempt {}",
                label(),
                t.id,
                t.status,
                t.attempts
            );
        } else {
            continue;
        }
        if retried && let Some(f) = &t.failure {
            // Whole: the reason is often on the lines after the first (a gate's output).
            crate::outln!("{}", indented("              retried: ", f));
        }
    }
    let checked: Vec<String> = tasks
        .iter()
        .filter_map(|t| {
            let c = t.checks.as_ref()?;
            let passed = c.iter().filter(|c| c.passed).count();
            let mark = if passed == t.verify.len() {
                "✓"
            } else {
                "✗"
            };
            Some(format!("{} {mark} {passed}/{}", t.id, t.verify.len()))
        })
        .collect();
    if !checked.is_empty() {
        crate::outln!("  checks     {}", checked.join(" · "));
    }
}

/// `text` whole after `lead`, its later lines indented to line up under the first.
pub fn indented(lead: &str, text: &str) -> String {
    let pad = " ".repeat(lead.chars().count());
    let mut lines = text.trim_end().lines();
    let mut out = format!("{lead}{}", lines.next().unwrap_or(""));
    for l in lines {
        out.push('\n');
        out.push_str(&pad);
        out.push_str(l);
    }
    out
}

pub fn cut(s: &str, n: usize) -> String {
    let line = s.lines().next().unwrap_or("");
    if line.chars().count() > n {
        line.chars().take(n.saturating_sub(1)).collect::<String>() + "…"
    } else {
        line.to_owned()
    }
}

pub fn run_table(runs: &[Run]) {
    if runs.is_empty() {
        crate::outln!("No runs. Start one with: orchestrate start \"<feature>\" --project <dir>");
        return;
    }
    let status = |r: &Run| match &r.unreviewed {
        Some(_) => format!("{}, not reviewed", r.status.as_str()),
        None => r.status.as_str().to_owned(),
    };
    let w = runs
        .iter()
        .map(|r| status(r).len())
        .max()
        .unwrap_or(0)
        .max(10);
    crate::outln!(
        "{:<15} {:<w$} {:<12} {:<9} {:<40} FEATURE",
        "ID",
        "STATUS",
        "PHASE",
        "CREATED",
        "PROJECT"
    );
    for r in runs {
        crate::outln!(
            "{:<15} {:<w$} {:<12} {:<9} {:<40} {}",
            r.id,
            status(r),
            r.phase.as_str(),
            ago(r.created_at),
            cut(&r.project, 40),
            cut(&r.feature, 50)
        );
    }
}

pub fn event_line(e: &Event) {
    let lead = format!("{} {:<5} ", clock(e.at), e.level.as_str());
    crate::outln!("{}", indented(&lead, &e.message));
}

pub fn escalation(e: &Escalation) {
    let blocking = if e.blocking {
        "blocking"
    } else {
        "non-blocking"
    };
    crate::outln!(
        "#{} [{}] {} · run {} · {}",
        e.id,
        e.kind,
        blocking,
        e.run_id,
        ago(e.created_at)
    );
    crate::outln!("  project   {}", e.project);
    if let Some(t) = &e.task_id {
        crate::outln!("  task      {t}");
    }
    let mut question = e.question.trim().lines();
    crate::outln!("  question  {}", question.next().unwrap_or(""));
    for line in question {
        crate::outln!("            {line}");
    }
    // The evidence, unless the question already says it all (no text twice).
    if let Some(c) = e
        .context
        .as_deref()
        .filter(|c| !e.question.contains(c.trim()))
    {
        for line in c.trim().lines() {
            crate::outln!("            {line}");
        }
    }
    match (&e.answer, &e.closed) {
        (Some(a), _) => crate::outln!("  answer    {}", a.trim()),
        (None, Some(why)) => crate::outln!("  closed    {why}, unanswered"),
        (None, None) => crate::outln!(
            "  answer it: orchestrate answer {} \"<your guidance>\"",
            e.id
        ),
    }
}
