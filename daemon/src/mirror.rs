//! The readable mirror of a run in `<project>/.orchestrator/`.
//!
//! **Invariant:** SQLite is the truth; these files are only ever rewritten from it, never read
//! back. Every write is atomic (temp file in the same directory, then rename), so a reader sees
//! the old file or the new one, never half of one. A deleted `.orchestrator/` is recreated on
//! the next write.

use std::path::{Path, PathBuf};

use crate::store::{EscalationRow, EventRow, RunRow, time_text};

/// The mirror's folder name inside the project.
pub const DIR: &str = ".orchestrator";
/// The line added to `.git/info/exclude`.
pub const EXCLUDE_PATTERN: &str = "/.orchestrator/";
/// Folders later phases fill; created up front so the layout is discoverable.
const SUBDIRS: [&str; 5] = ["tasks", "sessions", "messages", "codex-reviews", "logs"];

/// Writes `bytes` to `path` atomically.
pub async fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let path = path.to_path_buf();
    let bytes = bytes.to_vec();
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let dir = path.parent().unwrap_or(Path::new("."));
        // Plain 0644 files, like anything else the user keeps in the project.
        let mut tmp = tempfile::Builder::new()
            .prefix(".tmp-")
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))
            .tempfile_in(dir)?;
        // No fsync: the mirror is derived, and SQLite (which does sync) can always rebuild it.
        tmp.write_all(&bytes)?;
        tmp.persist(&path).map_err(|e| e.error)?;
        Ok(())
    })
    .await
    .map_err(std::io::Error::other)?
}

/// One project's mirror.
#[derive(Debug, Clone)]
pub struct Mirror {
    root: PathBuf,
}

impl Mirror {
    pub fn new(project: &Path) -> Self {
        Self {
            root: project.join(DIR),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Creates `.orchestrator/` and its folders if any is missing.
    pub async fn ensure_layout(&self) -> std::io::Result<()> {
        for sub in SUBDIRS {
            tokio::fs::create_dir_all(self.root.join(sub)).await?;
        }
        Ok(())
    }

    /// Rewrites everything derived from the run: `state.json` and `context.md`.
    pub async fn write_run(&self, run: &RunRow, answered: &[EscalationRow]) -> std::io::Result<()> {
        self.ensure_layout().await?;
        let mut state =
            serde_json::to_vec_pretty(&crate::wire::run(run)).map_err(std::io::Error::other)?;
        state.push(b'\n');
        write_atomic(&self.root.join("state.json"), &state).await?;
        write_atomic(
            &self.root.join("context.md"),
            context_markdown(run, answered).as_bytes(),
        )
        .await
    }

    /// Appends one line per event to `logs/orchestrator.log`.
    pub async fn append_log(&self, events: &[EventRow]) -> std::io::Result<()> {
        use tokio::io::AsyncWriteExt;
        if events.is_empty() {
            return Ok(());
        }
        let logs = self.root.join("logs");
        tokio::fs::create_dir_all(&logs).await?;
        let mut text = String::new();
        for e in events {
            text.push_str(&log_line(e));
            text.push('\n');
        }
        let mut f = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(logs.join("orchestrator.log"))
            .await?;
        f.write_all(text.as_bytes()).await?;
        f.flush().await
    }
}

/// `2026-11-24T22:10:03.120Z INFO  run_submitted  Run r-… submitted …`
pub fn log_line(e: &EventRow) -> String {
    format!(
        "{} {:<5} {}",
        time_text::format(e.at),
        e.level.as_str(),
        e.message
    )
}

fn context_markdown(run: &RunRow, answered: &[EscalationRow]) -> String {
    let mut md = format!(
        "# Feature\n\n{}\n\n_Run {} on branch `{}`, from commit {}._\n",
        run.feature.trim(),
        run.id,
        run.branch,
        run.base_commit
    );
    if let Some(ctx) = &run.context {
        let from = run.context_file.as_deref().unwrap_or("the context file");
        md.push_str(&format!(
            "\n# Context\n\n_From {from}._\n\n{}\n",
            ctx.trim_end()
        ));
    }
    if !answered.is_empty() {
        md.push_str("\n# Questions and answers\n");
        for e in answered {
            md.push_str(&format!(
                "\n**Q{} ({}):** {}\n\n**A:** {}\n",
                e.id,
                e.kind,
                e.question.trim(),
                e.answer.as_deref().unwrap_or("").trim()
            ));
        }
    }
    md
}

impl Mirror {
    /// Replaces `logs/orchestrator.log` with the whole event log (after the mirror was deleted).
    pub async fn rewrite_log(&self, events: &[EventRow]) -> std::io::Result<()> {
        let logs = self.root.join("logs");
        tokio::fs::create_dir_all(&logs).await?;
        let mut text = String::new();
        for e in events {
            text.push_str(&log_line(e));
            text.push('\n');
        }
        write_atomic(&logs.join("orchestrator.log"), text.as_bytes()).await
    }
}

impl Mirror {
    /// Rewrites `tasks/<id>.json`.
    pub async fn write_task(&self, id: &str, task: &serde_json::Value) -> std::io::Result<()> {
        let mut bytes = serde_json::to_vec_pretty(task).map_err(std::io::Error::other)?;
        bytes.push(b'\n');
        let dir = self.root.join("tasks");
        tokio::fs::create_dir_all(&dir).await?;
        write_atomic(&dir.join(format!("{id}.json")), &bytes).await
    }

    /// Removes `tasks/<id>.json` (a task of a superseded plan).
    pub async fn remove_task(&self, id: &str) -> std::io::Result<()> {
        match tokio::fs::remove_file(self.root.join("tasks").join(format!("{id}.json"))).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Writes a JSON file under `codex-reviews/` (a verdict, the ledger).
    pub async fn write_review_file(
        &self,
        name: &Path,
        body: &serde_json::Value,
    ) -> std::io::Result<()> {
        let mut bytes = serde_json::to_vec_pretty(body).map_err(std::io::Error::other)?;
        bytes.push(b'\n');
        let path = self.root.join("codex-reviews").join(name);
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await?;
        }
        write_atomic(&path, &bytes).await
    }

    /// Appends one JSON line per message to `messages/messages.jsonl`.
    pub async fn append_messages(&self, lines: &[serde_json::Value]) -> std::io::Result<()> {
        use tokio::io::AsyncWriteExt;
        if lines.is_empty() {
            return Ok(());
        }
        let dir = self.root.join("messages");
        tokio::fs::create_dir_all(&dir).await?;
        let mut text = String::new();
        for l in lines {
            text.push_str(&l.to_string());
            text.push('\n');
        }
        let mut f = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("messages.jsonl"))
            .await?;
        f.write_all(text.as_bytes()).await?;
        f.flush().await
    }

    /// Writes `plan-v<N>.md`, the plan as the planner submitted it.
    pub async fn write_plan(
        &self,
        version: u32,
        plan: &crate::board::PlanInput,
    ) -> std::io::Result<()> {
        let mut md = format!("# Plan v{version}\n\n{}\n", plan.summary.trim());
        for t in &plan.tasks {
            md.push_str(&format!(
                "\n## {} — {}\n\n{}\n",
                t.id,
                t.title.trim(),
                t.description.trim()
            ));
            if !t.depends_on.is_empty() {
                md.push_str(&format!("\nDepends on: {}\n", t.depends_on.join(", ")));
            }
            if !t.files.is_empty() {
                md.push_str(&format!("\nFiles: {}\n", t.files.join(", ")));
            }
            md.push_str("\nAcceptance criteria:\n");
            for a in &t.acceptance_criteria {
                md.push_str(&format!("- {}\n", a.trim()));
            }
        }
        self.ensure_layout().await?;
        write_atomic(
            &self.root.join(format!("plan-v{version}.md")),
            md.as_bytes(),
        )
        .await
    }
}
