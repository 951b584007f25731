//! The readable mirror of a run in `<project>/.orchestrator/`.
//!
//! **Invariant:** SQLite is the truth; these files are only ever rewritten from it, never read
//! back. Every write is atomic (temp file in the same directory, then rename; a task file
//! through its swap file, exchanged with it: [`swap`]), so a reader sees the old file or the new
//! one, never half of one. A deleted `.orchestrator/` is recreated on the next write.
//!
//! **Invariant:** nothing is ever written through a symlink. Every folder from
//! `.orchestrator` down is checked with `symlink_metadata` (and created, never followed)
//! before a file is written in it ([`safe_dir`]); appends open with `O_NOFOLLOW`; atomic
//! writes create a fresh temp file and rename it, which replaces a link rather than follow it.
//! A project whose `.orchestrator` is tracked by git or is a symlink is refused at `start`; a
//! symlink that appears during a run makes the mirror write fail (logged), never the run.

mod swap;

use std::path::{Path, PathBuf};

use crate::store::{EscalationRow, EventRow, RunRow, time_text};

/// The mirror's folder name inside the project.
pub const DIR: &str = ".orchestrator";
/// The line added to `.git/info/exclude`.
pub const EXCLUDE_PATTERN: &str = "/.orchestrator/";
/// Folders later phases fill; created up front so the layout is discoverable.
const SUBDIRS: [&str; 6] = [
    "tasks",
    "sessions",
    "messages",
    "codex-reviews",
    "logs",
    "gates",
];

/// Creates `dir` and checks it is safe to write in: from the last `.orchestrator` component
/// of the path down, every component must be a real directory (missing ones are created),
/// never a symlink. A path without an `.orchestrator` component is simply created.
pub fn safe_dir(dir: &Path) -> std::io::Result<()> {
    let parts: Vec<_> = dir.components().collect();
    let Some(at) = parts.iter().rposition(|c| c.as_os_str() == DIR) else {
        return std::fs::create_dir_all(dir);
    };
    let mut path: PathBuf = parts[..at].iter().collect();
    for c in &parts[at..] {
        path.push(c);
        match std::fs::symlink_metadata(&path) {
            Ok(m) if m.file_type().is_symlink() => return Err(unsafe_path(&path, "is a symlink")),
            Ok(m) if !m.is_dir() => return Err(unsafe_path(&path, "is not a directory")),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                match std::fs::create_dir(&path) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                        // Raced with another writer: check what is there now.
                        let m = std::fs::symlink_metadata(&path)?;
                        if m.file_type().is_symlink() {
                            return Err(unsafe_path(&path, "is a symlink"));
                        }
                        if !m.is_dir() {
                            return Err(unsafe_path(&path, "is not a directory"));
                        }
                    }
                    Err(e) => return Err(e),
                }
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Whether `dir` exists and is safe to write in ([`safe_dir`]), without creating it.
fn exists_safely(dir: &Path) -> bool {
    std::fs::symlink_metadata(dir).is_ok() && safe_dir(dir).is_ok()
}

/// The mirror refusing to write through a link (the error inside the `io::Error`).
#[derive(Debug, thiserror::Error)]
#[error(
    "{path} {what}; the mirror never writes through links (remove it to let the mirror write \
     there again)"
)]
pub struct Refused {
    path: String,
    what: &'static str,
}

fn unsafe_path(path: &Path, what: &'static str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::PermissionDenied,
        Refused {
            path: path.display().to_string(),
            what,
        },
    )
}

/// Where a session's stdout and stderr go: `.orchestrator/sessions/<session>/` in the
/// project, or, when a link there makes the mirror refuse, `<data_dir>/sessions/<run>/<session>/`
/// (a session never fails because of the mirror). A session that already has files keeps
/// its place, so a restarted daemon reads on where the session writes.
pub fn session_dir(project: &Path, data_dir: &Path, run: &str, session: &str) -> PathBuf {
    let primary = project.join(DIR).join("sessions").join(session);
    let fallback = data_dir.join("sessions").join(run).join(session);
    let has_output = |d: &Path| std::fs::symlink_metadata(d.join("stdout.jsonl")).is_ok();
    if has_output(&primary) {
        primary
    } else if has_output(&fallback) || safe_dir(&primary).is_err() {
        fallback
    } else {
        primary
    }
}

/// Where a gate's output goes: `.orchestrator/gates/<name>`, or
/// `<data_dir>/gates/<run>/<name>` when a link there makes the mirror refuse.
pub fn gate_log(project: &Path, data_dir: &Path, run: &str, name: &str) -> PathBuf {
    command_log(project, data_dir, run, "gates", name)
}

/// Where a worktree's `--setup` output goes: `.orchestrator/setup/<name>`, or
/// `<data_dir>/setup/<run>/<name>` when a link there makes the mirror refuse.
pub fn setup_log(project: &Path, data_dir: &Path, run: &str, name: &str) -> PathBuf {
    command_log(project, data_dir, run, "setup", name)
}

/// Where the output of a command the daemon runs goes: `.orchestrator/<folder>/<name>`, or
/// `<data_dir>/<folder>/<run>/<name>` when a link there makes the mirror refuse.
pub fn command_log(
    project: &Path,
    data_dir: &Path,
    run: &str,
    folder: &str,
    name: &str,
) -> PathBuf {
    let primary = project.join(DIR).join(folder);
    if safe_dir(&primary).is_ok() {
        primary.join(name)
    } else {
        data_dir.join(folder).join(run).join(name)
    }
}

/// Opens `path` for appending (created if missing), never through a symlink; its folder is
/// checked by [`safe_dir`].
pub fn open_append(path: &Path) -> std::io::Result<std::fs::File> {
    open_nofollow(path, false)
}

/// Creates (or truncates) `path`, never through a symlink; its folder is checked by
/// [`safe_dir`].
pub fn create_file(path: &Path) -> std::io::Result<std::fs::File> {
    open_nofollow(path, true)
}

fn open_nofollow(path: &Path, truncate: bool) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent() {
        safe_dir(dir)?;
    }
    let mut o = std::fs::OpenOptions::new();
    o.create(true)
        .mode(0o600)
        .custom_flags(nix::fcntl::OFlag::O_NOFOLLOW.bits());
    if truncate {
        o.write(true).truncate(true);
    } else {
        o.append(true);
    }
    o.open(path).map_err(|e| {
        if e.raw_os_error() == Some(nix::errno::Errno::ELOOP as i32) {
            unsafe_path(path, "is a symlink")
        } else {
            e
        }
    })
}

/// Appends `text` to `path` (see [`open_append`]); blocking.
fn append_now(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    open_append(path)?.write_all(text.as_bytes())
}

/// Writes `bytes` to `path` atomically, its folder checked by [`safe_dir`].
pub async fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let path = path.to_path_buf();
    let bytes = bytes.to_vec();
    tokio::task::spawn_blocking(move || write_atomic_now(&path, &bytes))
        .await
        .map_err(std::io::Error::other)?
}

/// [`write_atomic`], unless the file already holds `bytes` (a regular file, not a link): a
/// restored run's mirror is mostly current, and reading is cheaper than rewriting.
pub async fn write_if_changed(path: &Path, bytes: Vec<u8>) -> std::io::Result<()> {
    let path = path.to_path_buf();
    tokio::task::spawn_blocking(move || {
        if unchanged(&path, &bytes) {
            return Ok(());
        }
        write_atomic_now(&path, &bytes)
    })
    .await
    .map_err(std::io::Error::other)?
}

/// Whether `path` is a regular file (in a directory the mirror may write) holding `bytes`.
fn unchanged(path: &Path, bytes: &[u8]) -> bool {
    safe_dir(path.parent().unwrap_or(path)).is_ok()
        && std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file())
        && std::fs::read(path).is_ok_and(|old| old == bytes)
}

/// [`write_atomic`], blocking.
fn write_atomic_now(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let dir = path.parent().unwrap_or(Path::new("."));
    safe_dir(dir)?;
    // Owner-only: the mirror holds prompts, the context and answers.
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .tempfile_in(dir)?;
    // No fsync: the mirror is derived, and SQLite (which does sync) can always rebuild it.
    tmp.write_all(bytes)?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

/// Where a batch of task files goes, checked once ([`Mirror::task_dirs_now`]).
pub struct TaskDirs {
    tasks: PathBuf,
    /// `None` when the swaps' folder cannot be used.
    swaps: Option<PathBuf>,
}

/// One project's mirror.
#[derive(Debug, Clone)]
pub struct Mirror {
    root: PathBuf,
    /// A write was refused because of a link in the way (said once per run, not per write).
    refused: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

/// Whether `e` is the mirror refusing to write through a link (see [`safe_dir`]).
pub fn is_refusal(e: &std::io::Error) -> bool {
    e.get_ref().is_some_and(|inner| inner.is::<Refused>())
}

impl Mirror {
    pub fn new(project: &Path) -> Self {
        Self {
            root: project.join(DIR),
            refused: Default::default(),
        }
    }

    /// True the first time it is asked after a refusal `e`: the caller says it once.
    pub fn first_refusal(&self, e: &std::io::Error) -> bool {
        is_refusal(e)
            && !self
                .refused
                .swap(true, std::sync::atomic::Ordering::Relaxed)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Creates `.orchestrator/` and its folders if any is missing.
    pub async fn ensure_layout(&self) -> std::io::Result<()> {
        let root = self.root.clone();
        tokio::task::spawn_blocking(move || {
            for sub in SUBDIRS {
                safe_dir(&root.join(sub))?;
            }
            Ok(())
        })
        .await
        .map_err(std::io::Error::other)?
    }

    /// Rewrites everything derived from the run: `state.json` and `context.md` (each only when
    /// it says something else).
    pub async fn write_run(&self, run: &RunRow, answered: &[EscalationRow]) -> std::io::Result<()> {
        self.ensure_layout().await?;
        let mut state =
            serde_json::to_vec_pretty(&crate::wire::run(run)).map_err(std::io::Error::other)?;
        state.push(b'\n');
        write_if_changed(&self.root.join("state.json"), state).await?;
        let context = context_markdown(run, answered).into_bytes();
        write_if_changed(&self.root.join("context.md"), context).await
    }

    /// Appends one line per event to `logs/orchestrator.log`; blocking (the run's mirror
    /// writer calls it off the runtime).
    pub fn append_log_now(&self, events: &[EventRow]) -> std::io::Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        append_now(&self.log_path(), &log_text(events))
    }

    fn log_path(&self) -> PathBuf {
        self.root.join("logs").join("orchestrator.log")
    }
}

fn log_text(events: &[EventRow]) -> String {
    let mut text = String::new();
    for e in events {
        text.push_str(&log_line(e));
        text.push('\n');
    }
    text
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
    /// Replaces `logs/orchestrator.log` with the whole event log (after the mirror was deleted,
    /// or a restart: only where it differs).
    pub async fn rewrite_log(&self, events: &[EventRow]) -> std::io::Result<()> {
        let logs = self.root.join("logs");
        let mut text = String::new();
        for e in events {
            text.push_str(&log_line(e));
            text.push('\n');
        }
        write_if_changed(&logs.join("orchestrator.log"), text.into_bytes()).await
    }
}

impl Mirror {
    /// The folders task files are written in, checked (and made) once for a batch of
    /// writes: `tasks/`, and `.swap/tasks/` unless a link or a file is in its way (then the
    /// batch writes through temp files).
    pub fn task_dirs_now(&self) -> std::io::Result<TaskDirs> {
        let tasks = self.root.join("tasks");
        safe_dir(&tasks)?;
        let swaps = self.task_swaps();
        let swaps = safe_dir(&swaps).is_ok().then_some(swaps);
        Ok(TaskDirs { tasks, swaps })
    }

    /// Rewrites `tasks/<id>.json` in `dirs` (from [`Mirror::task_dirs_now`]) through its swap
    /// (blocking: the run's mirror writer calls it off the runtime); with `if_changed`, only
    /// when the file says something else (a restore's check of every task: most files are
    /// current, and reading is cheaper than rewriting).
    pub fn write_task_now(
        &self,
        dirs: &TaskDirs,
        task: &orchestrator_proto::Task,
        if_changed: bool,
    ) -> std::io::Result<()> {
        let mut bytes = serde_json::to_vec_pretty(task).map_err(std::io::Error::other)?;
        bytes.push(b'\n');
        let name = format!("{}.json", task.id);
        let path = dirs.tasks.join(&name);
        if if_changed && unchanged(&path, &bytes) {
            return Ok(());
        }
        // A swap that cannot be used costs only a new inode.
        match &dirs.swaps {
            Some(swaps) => swap::write(&path, &swaps.join(&name), &bytes)
                .or_else(|_| write_atomic_now(&path, &bytes)),
            None => write_atomic_now(&path, &bytes),
        }
    }

    /// Removes `tasks/<id>.json` (a task of a superseded plan), blocking.
    pub fn remove_task_now(&self, id: &str) -> std::io::Result<()> {
        let name = format!("{id}.json");
        // Its swap first: a file left there would only be a stale copy.
        let swaps = self.task_swaps();
        if exists_safely(&swaps) {
            let _ = std::fs::remove_file(swaps.join(&name));
        }
        let dir = self.root.join("tasks");
        safe_dir(&dir)?;
        match std::fs::remove_file(dir.join(name)) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }

    /// Removes every task file (and swap) whose task is not in `keep`: a project's mirror
    /// shows its current run, and an earlier run's tasks (`t3.json` of a finished run beside
    /// the new run's) would read as the new run's. Only `<id>.json` plain files or links are
    /// removed (a link is unlinked, never followed); anything else there is left. Blocking.
    pub fn prune_tasks_now(&self, keep: &std::collections::HashSet<String>) -> std::io::Result<()> {
        for dir in [self.root.join("tasks"), self.task_swaps()] {
            if std::fs::symlink_metadata(&dir).is_err() {
                continue; // nothing there: nothing to prune, and nothing to create
            }
            safe_dir(&dir)?;
            for entry in std::fs::read_dir(&dir)? {
                let entry = entry?;
                let name = entry.file_name();
                let Some(id) = name.to_str().and_then(|n| n.strip_suffix(".json")) else {
                    continue;
                };
                let kind = entry.file_type()?;
                if keep.contains(id) || !(kind.is_file() || kind.is_symlink()) {
                    continue;
                }
                match std::fs::remove_file(entry.path()) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// The task files' swaps' folder (`.swap/tasks/`).
    fn task_swaps(&self) -> PathBuf {
        self.root.join(swap::DIR).join("tasks")
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
        write_atomic(&path, &bytes).await
    }

    /// Appends one JSON line per message to `messages/messages.jsonl`, blocking.
    pub fn append_messages_now(
        &self,
        lines: &[crate::board::reply::Message],
    ) -> std::io::Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let mut text = String::new();
        for l in lines {
            text.push_str(&serde_json::to_string(l).map_err(std::io::Error::other)?);
            text.push('\n');
        }
        append_now(&self.root.join("messages").join("messages.jsonl"), &text)
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

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn pruning_removes_other_tasks_files_and_unlinks_links_without_following_them() {
        let project = tempfile::tempdir().expect("tempdir");
        let m = Mirror::new(project.path());
        let outside = project.path().join("outside.json");
        std::fs::write(&outside, "mine").expect("outside");
        let dirs = m.task_dirs_now().expect("dirs");
        for id in ["old", "kept"] {
            std::fs::write(dirs.tasks.join(format!("{id}.json")), "{}").expect("file");
        }
        let swaps = dirs.swaps.clone().expect("swaps");
        std::fs::write(swaps.join("old.json"), "{}").expect("swap");
        std::os::unix::fs::symlink(&outside, dirs.tasks.join("link.json")).expect("link");
        std::fs::create_dir(dirs.tasks.join("dir.json")).expect("dir");
        std::fs::write(dirs.tasks.join("notes.txt"), "user's").expect("notes");

        m.prune_tasks_now(&HashSet::from(["kept".to_string()]))
            .expect("prune");

        let mut left: Vec<_> = std::fs::read_dir(&dirs.tasks)
            .expect("tasks")
            .map(|e| e.expect("entry").file_name().into_string().expect("utf-8"))
            .collect();
        left.sort();
        assert_eq!(left, ["dir.json", "kept.json", "notes.txt"]);
        assert!(!swaps.join("old.json").exists(), "its swap went too");
        assert_eq!(std::fs::read_to_string(&outside).expect("outside"), "mine");
    }

    #[test]
    fn pruning_a_mirror_without_task_files_makes_no_folder() {
        let project = tempfile::tempdir().expect("tempdir");
        let m = Mirror::new(project.path());
        m.prune_tasks_now(&HashSet::new()).expect("prune");
        assert!(!m.root().exists());
    }
}
