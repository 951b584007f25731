//! `orchestrate clean`: what finished runs (completed, failed, cancelled) left behind —
//! worktrees under `<data_dir>/worktrees/<run>/`, task branches `<branch>--<task>.<n>` and
//! backup refs `refs/orchestrator/<run>/…` — removed only where nothing would be lost.
//!
//! **Invariant:** a worktree with uncommitted changes, or whose commits are not all on the
//! run's branch, or that git cannot read as a worktree of the project (any doubt), is kept; so
//! is a task branch or a backup ref with commits the run's branch lacks. The run's branch itself (the result) is never touched. Everything kept is reported
//! with the reason.

use std::path::{Path, PathBuf};

use orchestrator_proto::RunStatus;
use orchestrator_proto::clean::{CleanItem, CleanReport, LeftoverKind};

use crate::git;
use crate::store::RunRow;

/// How to clean.
#[derive(Debug, Clone, Copy, Default)]
pub struct How {
    /// Report only.
    pub dry_run: bool,
    /// Remove worktrees and task branches with work in them too (one run, `--force`): their
    /// commits are backed up first, uncommitted changes are lost and said so.
    pub force: bool,
}

/// Cleans the finished runs among `runs`.
pub async fn clean(data_dir: &Path, runs: &[RunRow], how: How) -> CleanReport {
    let dry_run = how.dry_run;
    let mut report = CleanReport {
        dry_run,
        ..Default::default()
    };
    for run in runs.iter().filter(|r| {
        matches!(
            r.status,
            RunStatus::Completed | RunStatus::Failed | RunStatus::Cancelled
        )
    }) {
        report.runs += 1;
        Cleaner {
            run,
            project: Path::new(&run.project),
            dry_run,
            force: how.force,
            report: &mut report,
        }
        .clean(&crate::layout::run_worktrees(data_dir, &run.id))
        .await;
    }
    report
}

struct Cleaner<'a> {
    run: &'a RunRow,
    project: &'a Path,
    dry_run: bool,
    force: bool,
    report: &'a mut CleanReport,
}

impl Cleaner<'_> {
    fn item(&self, kind: LeftoverKind, name: String, reason: String) -> CleanItem {
        CleanItem {
            run_id: self.run.id.to_string(),
            kind,
            name,
            reason,
        }
    }

    fn keep(&mut self, kind: LeftoverKind, name: String, reason: String) {
        let i = self.item(kind, name, reason);
        self.report.kept.push(i);
    }

    fn removed(&mut self, kind: LeftoverKind, name: String, reason: &str) {
        let i = self.item(kind, name, reason.to_owned());
        self.report.removed.push(i);
    }

    /// Commits `rev` has that the run's branch lacks; `None` if that cannot be told.
    async fn unmerged(&self, dir: &Path, rev: &str) -> Option<u64> {
        git::commits_ahead(dir, &format!("refs/heads/{}", self.run.branch), rev)
            .await
            .ok()
    }

    async fn clean(&mut self, worktrees: &Path) {
        if !self.project.is_dir() {
            self.keep(
                LeftoverKind::Worktree,
                worktrees.display().to_string(),
                format!("the project {} is gone", self.project.display()),
            );
            return;
        }
        let project_git = git::common_dir(self.project).await;
        for dir in subdirs(worktrees).await {
            self.worktree(&dir, &project_git).await;
        }
        if !self.dry_run {
            let _ = git::worktree_prune(self.project).await;
            // Gone once empty (a kept worktree keeps it).
            let _ = tokio::fs::remove_dir(worktrees).await;
        }
        let prefix = format!("refs/heads/{}--", self.run.branch);
        for (branch, _) in git::refs(self.project, &prefix).await.unwrap_or_default() {
            self.branch(branch.trim_start_matches("refs/heads/")).await;
        }
        let backups = git::backups(self.project, &format!("{}/", self.run.id))
            .await
            .unwrap_or_default();
        for (name, commit) in backups {
            self.backup(&name, &commit).await;
        }
    }

    /// `project_git`: the project's common git directory, which a worktree of it shares.
    async fn worktree(&mut self, dir: &Path, project_git: &Result<PathBuf, git::GitError>) {
        let name = dir.display().to_string();
        if is_empty(dir).await {
            if !self.dry_run {
                let _ = tokio::fs::remove_dir(dir).await;
            }
            self.removed(LeftoverKind::Worktree, name, "an empty leftover directory");
            return;
        }
        let forced = match self.why_keep(dir, project_git).await {
            None => None,
            Some(Keep::Work(why)) if self.force => Some(self.save_work(dir, why).await),
            Some(Keep::Work(why) | Keep::Doubt(why)) => {
                self.keep(LeftoverKind::Worktree, name, why);
                return;
            }
        };
        if !self.dry_run
            && let Err(e) = git::worktree_remove(self.project, dir, forced.is_some()).await
        {
            let why = format!("git refused to remove it: {e}");
            self.keep(LeftoverKind::Worktree, name, why);
            return;
        }
        let reason = forced.unwrap_or_else(|| "clean and merged".into());
        self.removed(LeftoverKind::Worktree, name, &reason);
    }

    /// Before a forced removal: the worktree's commits kept under
    /// `refs/orchestrator/<run>/forced/<name>`; says what is kept and what is lost.
    async fn save_work(&self, dir: &Path, why: String) -> String {
        let leaf = dir.file_name().map(|n| n.to_string_lossy().into_owned());
        let name = format!("{}/forced/{}", self.run.id, leaf.unwrap_or_default());
        let mut said = format!("forced ({why})");
        if self.unmerged(dir, "HEAD").await.is_some_and(|n| n > 0)
            && let Ok(tip) = git::rev_parse(dir, "HEAD").await
        {
            if !self.dry_run && git::backup(self.project, &name, &tip).await.is_err() {
                return format!("{said}; its commits could not be backed up");
            }
            said.push_str(&format!(
                "; its commits are kept as refs/orchestrator/{name}"
            ));
        }
        let dirty = git::porcelain(dir)
            .await
            .map(|p| p.lines().count())
            .unwrap_or(0);
        if dirty > 0 {
            said.push_str(&format!(
                "; {} of uncommitted changes {} lost",
                orchestrator_proto::words::count(dirty as u64, "file"),
                if self.dry_run { "would be" } else { "are" }
            ));
        }
        said
    }

    /// Why a worktree must stay (`None`: it is the project's, clean and merged).
    async fn why_keep(
        &self,
        dir: &Path,
        project_git: &Result<PathBuf, git::GitError>,
    ) -> Option<Keep> {
        // Any doubt keeps it, even forced: a worktree git cannot read, or one of another
        // repository (the project re-cloned at the same path), may hold the only copy of a
        // worker's output.
        let doubt = |why: String| {
            Some(Keep::Doubt(format!(
                "{why}; it may hold a worker's uncommitted output, so it is kept — look at it, \
                 then remove it yourself (rm -rf {})",
                dir.display()
            )))
        };
        match (git::common_dir(dir).await, project_git) {
            (Ok(mine), Ok(project)) if &mine == project => {}
            (Ok(mine), Ok(_)) => {
                return doubt(format!(
                    "it belongs to the repository at {}, not to the project's",
                    mine.display()
                ));
            }
            (Err(e), _) => {
                return doubt(format!(
                    "git cannot read it as a worktree of the project ({e})"
                ));
            }
            (_, Err(e)) => return doubt(format!("git cannot read the project ({e})")),
        }
        match git::porcelain(dir).await {
            Ok(p) if !p.is_empty() => return Some(Keep::Work("it has uncommitted changes".into())),
            Ok(_) => {}
            Err(e) => {
                return doubt(format!(
                    "git cannot tell whether it has uncommitted changes ({e})"
                ));
            }
        }
        match self.unmerged(dir, "HEAD").await {
            Some(0) => None,
            Some(n) => {
                let branch = git::current_branch(dir).await.ok().flatten();
                let on = branch.map(|b| format!(" (branch {b})")).unwrap_or_default();
                Some(Keep::Work(format!(
                    "{} not merged into {}{on}",
                    orchestrator_proto::words::count(n, "commit"),
                    self.run.branch
                )))
            }
            None => doubt(format!("cannot compare it with {}", self.run.branch)),
        }
    }

    async fn branch(&mut self, branch: &str) {
        match self
            .unmerged(self.project, &format!("refs/heads/{branch}"))
            .await
        {
            Some(0) => {}
            Some(n) if self.force => return self.force_branch(branch, n).await,
            Some(n) => {
                self.keep(
                    LeftoverKind::Branch,
                    branch.to_owned(),
                    format!(
                        "{} not merged into {}",
                        orchestrator_proto::words::count(n, "commit"),
                        self.run.branch
                    ),
                );
                return;
            }
            None => {
                self.keep(
                    LeftoverKind::Branch,
                    branch.to_owned(),
                    format!("cannot compare it with {}", self.run.branch),
                );
                return;
            }
        }
        if !self.dry_run
            && let Err(e) = git::delete_merged_branch(self.project, branch).await
        {
            self.keep(
                LeftoverKind::Branch,
                branch.to_owned(),
                format!("not deleted: {e}"),
            );
            return;
        }
        self.removed(LeftoverKind::Branch, branch.to_owned(), "merged");
    }

    /// A task branch with `n` unmerged commits, removed anyway (`--force`): its tip is kept
    /// under `refs/orchestrator/<run>/forced/<branch>` first.
    async fn force_branch(&mut self, branch: &str, n: u64) {
        let name = format!("{}/forced/{branch}", self.run.id);
        let commits = orchestrator_proto::words::count(n, "commit");
        let tip = git::ref_id(self.project, &format!("refs/heads/{branch}")).await;
        let done = match (&tip, self.dry_run) {
            (Err(e), _) => Err(format!("cannot read it: {e}")),
            (Ok(_), true) => Ok(()),
            (Ok(tip), false) => match git::backup(self.project, &name, tip).await {
                Err(e) => Err(format!("its commits could not be backed up: {e}")),
                Ok(()) => git::delete_branch_at(self.project, branch, tip)
                    .await
                    .map_err(|e| format!("not deleted: {e}")),
            },
        };
        match done {
            Ok(()) => self.removed(
                LeftoverKind::Branch,
                branch.to_owned(),
                &format!("forced ({commits} not merged, kept as refs/orchestrator/{name})"),
            ),
            Err(why) => self.keep(LeftoverKind::Branch, branch.to_owned(), why),
        }
    }

    async fn backup(&mut self, name: &str, commit: &str) {
        match self.unmerged(self.project, commit).await {
            Some(0) => {}
            Some(n) => {
                self.keep(
                    LeftoverKind::Backup,
                    name.to_owned(),
                    format!("it holds {n} commit(s) not on {}", self.run.branch),
                );
                return;
            }
            None => {
                self.keep(
                    LeftoverKind::Backup,
                    name.to_owned(),
                    format!("cannot compare it with {}", self.run.branch),
                );
                return;
            }
        }
        if !self.dry_run
            && let Err(e) = git::delete_ref(self.project, name, commit).await
        {
            self.keep(
                LeftoverKind::Backup,
                name.to_owned(),
                format!("not deleted: {e}"),
            );
            return;
        }
        self.removed(
            LeftoverKind::Backup,
            name.to_owned(),
            "its commits are on the run's branch",
        );
    }
}

/// Why a worktree stays: work in it (which `--force` removes, its commits kept), or doubt about
/// what it is (which nothing removes).
enum Keep {
    Work(String),
    Doubt(String),
}

async fn is_empty(dir: &Path) -> bool {
    match tokio::fs::read_dir(dir).await {
        Ok(mut rd) => matches!(rd.next_entry().await, Ok(None)),
        Err(_) => false,
    }
}

async fn subdirs(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(mut rd) = tokio::fs::read_dir(dir).await else {
        return out;
    };
    while let Ok(Some(e)) = rd.next_entry().await {
        if e.file_type().await.is_ok_and(|t| t.is_dir()) {
            out.push(e.path());
        }
    }
    out.sort();
    out
}
