//! What Codex and the planner are told around a review: the review prompts (the plan, or the
//! branch's diff, plus the ledger so Codex names a recurring finding by its id), and the
//! planner's brief for a plan revision or a follow-up cycle.

use crate::store::RunRow;
use crate::store::board::TaskRow;
use crate::store::reviews::FindingRow;

/// The part of a diff put into the prompt; Codex can read the rest with git.
pub const DIFF_BUDGET: usize = 120 * 1024;

fn header(run: &RunRow) -> String {
    let mut p = format!("# Feature\n\n{}\n", run.feature.trim());
    if let Some(ctx) = &run.context {
        p.push_str(&format!("\n# Context from the user\n\n{}\n", ctx.trim()));
    }
    p
}

fn ledger_text(ledger: &[FindingRow]) -> String {
    if ledger.is_empty() {
        return String::new();
    }
    let mut s = String::from(
        "\n# Findings raised by earlier reviews\n\nIf you raise the same problem again, set its \
         `ref` to the id below; otherwise `ref` is null.\n\n",
    );
    for f in ledger {
        s.push_str(&format!(
            "- {} [{}] ({}) {}{}\n",
            f.id,
            f.priority,
            f.status,
            f.title,
            f.location
                .as_deref()
                .map(|l| format!(" — {l}"))
                .unwrap_or_default()
        ));
    }
    s
}

const ANSWER: &str = "\n# How to answer\n\n\
    Answer only with the JSON object the output schema describes: `verdict` (approve or revise), \
    a short `summary`, and `findings`, each with a `priority` — P0: it will not work or loses \
    data; P1: must be fixed before this ships; P2: should be fixed; P3: a nit — a one-line \
    `title`, a `body` that says what is wrong and what to do, and the `file`/`line` it is about \
    (null when it is not about one place). Only P0 and P1 block. Do not edit any file.\n";

pub fn plan_review(
    run: &RunRow,
    summary: &str,
    tasks: &[TaskRow],
    ledger: &[FindingRow],
) -> String {
    let mut p = String::from(
        "You are reviewing the plan an automated team will follow to implement a feature in this \
         repository. Parallel workers will each take one task in its own git worktree; tasks \
         run when their dependencies are merged. Read the code as you need to, then judge \
         whether the plan will deliver the feature: missing work, wrong decomposition, tasks \
         that will conflict (overlapping files without a dependency), wrong dependencies, vague \
         acceptance criteria.\n\n",
    );
    p.push_str(&header(run));
    p.push_str(&format!("\n# The plan\n\n{}\n", summary.trim()));
    for t in tasks {
        p.push_str(&format!(
            "\n## {} — {}\n\n{}\n\nDepends on: {}\nFiles: {}\nAcceptance criteria:\n",
            t.id,
            t.title.trim(),
            t.description.trim(),
            if t.depends_on.is_empty() {
                "nothing".into()
            } else {
                t.depends_on.join(", ")
            },
            if t.files.is_empty() {
                "not declared".into()
            } else {
                t.files.join(", ")
            },
        ));
        for a in &t.acceptance {
            p.push_str(&format!("- {}\n", a.trim()));
        }
    }
    p.push_str(&ledger_text(ledger));
    p.push_str(ANSWER);
    p
}

pub fn code_review(
    run: &RunRow,
    tip: &str,
    stat: &str,
    diff: &str,
    ledger: &[FindingRow],
) -> String {
    let mut p = format!(
        "You are reviewing the changes an automated team made to implement a feature. This \
         directory is the branch {} at {tip}; the work is everything since the base commit \
         {} (`git diff {}..HEAD`). Review it as a demanding senior engineer: correctness, \
         missing parts of the feature, tests, security, and whether it fits the codebase.\n\n",
        run.branch, run.base_commit, run.base_commit
    );
    p.push_str(&header(run));
    p.push_str(&format!("\n# Changed files\n\n```\n{}\n```\n", stat.trim()));
    if diff.len() > DIFF_BUDGET {
        let mut cut = DIFF_BUDGET;
        while !diff.is_char_boundary(cut) {
            cut -= 1;
        }
        p.push_str(&format!(
            "\n# The diff (first {} KiB of {} KiB; run `git diff {}..HEAD` for the rest)\n\n```diff\n{}\n```\n",
            DIFF_BUDGET / 1024,
            diff.len() / 1024,
            run.base_commit,
            &diff[..cut]
        ));
    } else {
        p.push_str(&format!(
            "\n# The diff\n\n```diff\n{}\n```\n",
            diff.trim_end()
        ));
    }
    p.push_str(&ledger_text(ledger));
    p.push_str(ANSWER);
    p
}

fn findings_list(findings: &[FindingRow]) -> String {
    findings
        .iter()
        .map(|f| {
            format!(
                "- {} [{}] {}{}{}\n  {}\n",
                f.id,
                f.priority,
                f.title,
                f.location
                    .as_deref()
                    .map(|l| format!(" — {l}"))
                    .unwrap_or_default(),
                if f.raised > 1 {
                    format!(
                        " (raised {} times: the earlier fix did not settle it)",
                        f.raised
                    )
                } else {
                    String::new()
                },
                f.body.trim().replace('\n', "\n  ")
            )
        })
        .collect()
}

/// The planner's brief when Codex asked for changes to plan v`version`.
pub fn revision(version: u32, concerns: &[FindingRow]) -> String {
    format!(
        "\n# Review of your plan\n\nYou already submitted plan v{version}; Codex reviewed it and \
         raised these concerns:\n\n{}\nSubmit a complete revised plan with `submit_plan` that \
         addresses them (it replaces plan v{version}; you may reuse task ids). Where you disagree \
         with a concern, keep your approach and say why in the plan summary.\n",
        findings_list(concerns)
    )
}

/// The planner's brief for cycle `cycle`: fix what the code review found.
pub fn follow_up(cycle: u32, findings: &[FindingRow], done: &[TaskRow]) -> String {
    let ids: Vec<&str> = done.iter().map(|t| t.id.as_str()).collect();
    format!(
        "\n# Cycle {cycle}: fix what the code review found\n\nThe feature was implemented by \
         earlier cycles; this worktree holds the branch as it is now. Codex's code review \
         raised these blocking findings:\n\n{}\nSubmit, with `submit_plan`, a plan of follow-up \
         tasks that fix them — only what is needed, each task naming the finding ids it fixes \
         in its description. Use new task ids: these are taken ({}). Earlier tasks are merged, \
         so do not list them as dependencies.\n",
        findings_list(findings),
        ids.join(", ")
    )
}
