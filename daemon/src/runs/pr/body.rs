//! A pull request's body, written from the run: the feature, the plan, every task with its
//! checks, the Codex findings (fixed and open), and what it cost.

use orchestrator_proto::TaskCheck;

use crate::store::RunRow;
use crate::store::board::TaskRow;
use crate::store::reviews::{FindingRow, FindingStatus};

/// What the body says.
pub struct Facts {
    pub run: RunRow,
    pub plan: Option<String>,
    pub tasks: Vec<TaskRow>,
    /// The code review's ledger.
    pub findings: Vec<FindingRow>,
}

/// The title: the feature's first line, at most 200 characters.
pub fn title(feature: &str) -> String {
    let line = feature.trim().lines().next().unwrap_or("").trim();
    if line.chars().count() > 200 {
        line.chars().take(199).collect::<String>() + "…"
    } else {
        line.to_owned()
    }
}

/// The body, as Markdown.
pub fn body(f: &Facts) -> String {
    let r = &f.run;
    let mut b = format!("{}\n\n", r.feature.trim());
    b.push_str(&format!(
        "Built by orchestrator (run `{}`, branch `{}`): {} in {}.\n",
        r.id,
        r.branch,
        orchestrator_proto::words::count(f.tasks.len() as u64, "task"),
        orchestrator_proto::words::count(u64::from(r.cycle.max(1)), "cycle"),
    ));
    if let Some(plan) = &f.plan {
        b.push_str(&format!("\n### Plan\n\n{}\n", plan.trim()));
    }
    b.push_str("\n### Tasks\n\n");
    for t in &f.tasks {
        b.push_str(&task_line(t));
    }
    b.push_str(&review(f));
    b.push_str(&cost(r));
    b
}

fn task_line(t: &TaskRow) -> String {
    let done = if t.status == orchestrator_proto::TaskStatus::Merged {
        "x"
    } else {
        " "
    };
    let checks: Vec<TaskCheck> = t
        .checks
        .as_deref()
        .and_then(|c| serde_json::from_str(c).ok())
        .unwrap_or_default();
    let checked: Vec<String> = checks
        .iter()
        .map(|c| format!("{} `{}`", if c.passed { "✓" } else { "✗" }, c.command))
        .collect();
    let checked = if checked.is_empty() {
        String::new()
    } else {
        format!(" — checks: {}", checked.join(", "))
    };
    format!("- [{done}] **{}** {}{checked}\n", t.id, t.title.trim())
}

fn review(f: &Facts) -> String {
    let r = &f.run;
    if r.options.skip_codex {
        return "\n### Codex review\n\nSkipped for this run (`--skip-codex`).\n".into();
    }
    if let Some(why) = &r.unreviewed {
        return format!("\n### Codex review\n\nNot reviewed: {why}\n");
    }
    let line = |x: &FindingRow| {
        let at = x
            .location
            .as_deref()
            .map(|l| format!(" ({l})"))
            .unwrap_or_default();
        format!("- {} [{}] {}{at}\n", x.id, x.priority, x.title.trim())
    };
    let (fixed, open): (Vec<&FindingRow>, Vec<&FindingRow>) = f
        .findings
        .iter()
        .partition(|x| x.status == FindingStatus::Resolved);
    let mut s = String::from("\n### Codex review\n\n");
    if f.findings.is_empty() {
        s.push_str("Approved with no findings.\n");
        return s;
    }
    if !fixed.is_empty() {
        s.push_str("Fixed:\n");
        fixed.iter().for_each(|x| s.push_str(&line(x)));
    }
    if !open.is_empty() {
        s.push_str("Open (non-blocking):\n");
        open.iter().for_each(|x| s.push_str(&line(x)));
    }
    s
}

fn cost(r: &RunRow) -> String {
    let p = &r.progress;
    let by: Vec<String> = p
        .models
        .iter()
        .map(|m| {
            format!(
                "{} {}",
                m.model.as_deref().unwrap_or("unknown"),
                orchestrator_proto::words::usd(m.cost_usd)
            )
        })
        .collect();
    let by = if by.is_empty() {
        String::new()
    } else {
        format!(" ({})", by.join(", "))
    };
    format!(
        "\n### Cost\n\n{}: {} sessions, {} tokens in, {} out{by}.\n",
        orchestrator_proto::words::usd(p.cost_usd),
        p.sessions,
        p.input_tokens,
        p.output_tokens
    )
}
