//! Worktrees made ahead of need. Checking out a fresh worktree is the slow part of starting a
//! worker (seconds in a large tree), so while tasks wait for a slot the run keeps [`KEEP`]
//! spares (one for a run of one worker at a time, which never starts two at once): worktrees
//! detached at the run branch's tip, under `<run>/spare-<n>`. A worker starting afresh takes
//! one: `git worktree move` to its own path, then `git checkout -b <its branch> <base>`, which
//! writes only the files the branch gained since the spare was made.
//! Two, because a merge often readies two or three tasks at once: with one, the others each
//! made their own worktree, one after the other (a repository runs one worktree command at a
//! time). Measured on eight runs of a 30-task DAG at concurrency 4, the third of three tasks
//! a merge readied started a median 49 ms after it with one spare, 36 with two.
//!
//! A spare is made only once no worker is starting ([`super::starts`]): made beside them, its
//! `git worktree add` took the repository's turn from under the workers it was meant for
//! (measured: a second spare made that way slowed dispatch on two cores). A worker that comes
//! while a spare is being made by git waits for it (its own `git worktree add` would queue
//! behind it); one that comes while a spare waits its turn makes its own; one that cannot be
//! taken is removed, none more is taken or made, and workers' worktrees are made as before
//! (`git worktree add`). The exception is the first batch: while the planner works (minutes
//! of a remote model's time, the machine idle), the run makes a spare for each of its first
//! workers ([`Spares::prepare`]) and hands them to the execution; in a large tree its first
//! workers then start without a checkout each.
//!
//! Spares are named `spare-<n>` with `n` unique in the daemon, so one being removed by a
//! closed set never shares a name with one a newer set made. Before its first spare, a set
//! sweeps away the spares a daemon that stopped left (once: [`Spares::sweep`]).
//!
//! **Invariant:** a spare holds nothing of anyone's (no agent or setup has run in it), so it
//! is removed whenever it is not used: when execution ends, when the run waits or ends
//! instead of executing (the run's actor closes the set it made), and, left by a daemon that
//! stopped, by the next set's sweep (the next planning or execution of the run).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::starts::Starts;

use crate::git::{self, GitError};

/// Spares kept ready at once.
const KEEP: usize = 2;

/// The most spares made for a first batch: a larger one starts its other workers as before.
pub const FIRST_SPARES: usize = 8;

/// A spare's folder name starts so; no task, planner or review worktree's does.
const PREFIX: &str = "spare-";

/// Whether `path` is a spare's folder (made, being made, or left by a stopped daemon): the
/// spares' own sweep removes such folders, nothing else looks at them.
pub(super) fn is_spare(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with(PREFIX))
}

/// Numbers spares across every set of the daemon.
static NUMBER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// One run's spare worktrees.
pub struct Spares {
    project: PathBuf,
    /// The run's worktree folder.
    dir: PathBuf,
    /// The run branch, whose tip a spare starts at.
    branch: String,
    /// Spares kept ready: [`KEEP`], or fewer for a run with fewer workers at a time.
    keep: usize,
    state: Mutex<State>,
    /// Told whenever a spare is made or could not be.
    made: tokio::sync::Notify,
    /// Set once the spares a stopped daemon left are gone.
    swept: tokio::sync::OnceCell<()>,
    /// Workers taking worktrees now: a spare is made after them.
    starts: Arc<Starts>,
    /// Cancelled when the set closes (spares waiting their turn are not made).
    closing: CancellationToken,
}

#[derive(Default)]
struct State {
    ready: Vec<PathBuf>,
    /// Spares being made (their tasks, awaited when closing).
    making: Vec<JoinHandle<()>>,
    /// How many of them wait for the workers starting now.
    queued: usize,
    /// How many of them git is making (and have not said how it went).
    unmade: usize,
    /// Tasks wait that will want a worktree.
    wanted: bool,
    /// A spare could not be made or taken: none more in this execution.
    broken: bool,
    closed: bool,
    /// Spares wanted beyond those kept for the first batch, one fewer with each taken.
    extra: usize,
}

impl Spares {
    /// The spares of run `run` on `branch`, whose workers run `concurrency` at a time.
    fn new(
        project: &Path,
        data_dir: &Path,
        run: &str,
        branch: &str,
        concurrency: u32,
    ) -> Arc<Spares> {
        Arc::new(Spares {
            project: project.to_path_buf(),
            dir: crate::layout::run_worktrees(data_dir, run),
            branch: branch.to_owned(),
            keep: KEEP.min(concurrency.max(1) as usize),
            state: Mutex::new(State::default()),
            made: tokio::sync::Notify::new(),
            swept: tokio::sync::OnceCell::new(),
            starts: Arc::default(),
            closing: CancellationToken::new(),
        })
    }

    /// The spares of `run`, for its project, branch and concurrency.
    pub fn for_run(data_dir: &Path, run: &crate::store::RunRow) -> Arc<Spares> {
        let project = Path::new(&run.project);
        Spares::new(
            project,
            data_dir,
            &run.id,
            &run.branch,
            run.options.concurrency,
        )
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Makes `n` spares, one after the other, for the first `n` workers of the next execution
    /// (called while the planner works).
    pub fn prepare(self: &Arc<Self>, n: usize) {
        {
            let mut s = self.state();
            s.wanted = true;
            s.extra = n.saturating_sub(self.keep);
        }
        self.refill();
    }

    /// Whether tasks still wait to start; while they do, a spare is kept ready.
    pub(super) fn want(self: &Arc<Self>, wanted: bool) {
        self.state().wanted = wanted;
        self.refill();
    }

    /// The run's workers taking worktrees: they count as starting until theirs exists.
    pub(super) fn starts(&self) -> &Arc<Starts> {
        &self.starts
    }

    /// A ready spare, taken (the caller starts the next once it has made it its own); while
    /// git is making one, it is waited for (a `git worktree add` of its own would queue
    /// behind it anyway), but not one waiting its turn (it waits for the caller).
    async fn take(self: &Arc<Self>) -> Option<PathBuf> {
        loop {
            let made = self.made.notified();
            tokio::pin!(made);
            made.as_mut().enable();
            {
                let mut s = self.state();
                if s.broken {
                    return None;
                }
                if let Some(spare) = s.ready.pop() {
                    s.extra = s.extra.saturating_sub(1);
                    return Some(spare);
                }
                if s.unmade == 0 {
                    return None;
                }
            }
            made.await;
        }
    }

    fn refill(self: &Arc<Self>) {
        let mut s = self.state();
        s.making.retain(|m| !m.is_finished());
        while s.wanted
            && !s.broken
            && !s.closed
            && s.ready.len() + s.unmade + s.queued < self.keep + s.extra
        {
            s.queued += 1;
            let n = NUMBER.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
            let path = self.dir.join(format!("{PREFIX}{n}"));
            let me = Arc::clone(self);
            s.making
                .push(tokio::spawn(async move { me.make(path).await }));
        }
    }

    async fn make(&self, path: PathBuf) {
        // After the workers taking worktrees now: this spare is for a later one, and its
        // `git worktree add` would hold the repository's turn from under them. A worker
        // coming meanwhile makes its own worktree rather than wait.
        tokio::select! {
            () = self.starts.none() => {}
            () = self.closing.cancelled() => {}
        }
        {
            let mut s = self.state();
            s.queued -= 1;
            s.unmade += 1;
        }
        // However this ends (a panic, the runtime stopping), no worker waits for it after.
        let _said = Said(self);
        if self.closing.is_cancelled() {
            return;
        }
        self.sweep().await;
        let tip = format!("refs/heads/{}", self.branch);
        let made = git::worktree_add_detached(&self.project, &path, &tip).await;
        if let Err(e) = &made {
            tracing::debug!(spare = %path.display(), error = %e, "no spare worktree");
            remove(&self.project, &path).await;
        }
        let mut s = self.state();
        match made {
            Ok(()) => s.ready.push(path),
            Err(_) => s.broken = true,
        }
    }

    /// No more spares: the ones being made are waited for, and every one removed.
    pub async fn close(&self) {
        let making = {
            let mut s = self.state();
            s.closed = true;
            std::mem::take(&mut s.making)
        };
        self.closing.cancel();
        for m in making {
            let _ = m.await;
        }
        let ready = std::mem::take(&mut self.state().ready);
        for spare in ready {
            remove(&self.project, &spare).await;
        }
    }

    /// Removes the spares a daemon that stopped (or a closed set) left in the run's worktree
    /// folder, once per set and before its first spare: never one of its own.
    pub(super) async fn sweep(&self) {
        self.swept
            .get_or_init(|| async {
                let Ok(mut entries) = tokio::fs::read_dir(&self.dir).await else {
                    return;
                };
                while let Ok(Some(e)) = entries.next_entry().await {
                    if is_spare(&e.path()) {
                        remove(&self.project, &e.path()).await;
                    }
                }
            })
            .await;
    }

    /// Makes `wt` the worktree of a new branch `branch` at `base`: a spare moved there and
    /// switched to it, or, with none ready (or one git would not take), `git worktree add`.
    pub(super) async fn worktree(
        self: &Arc<Self>,
        wt: &Path,
        branch: &str,
        base: &str,
    ) -> Result<(), GitError> {
        if let Some(spare) = self.take().await {
            match self.adopt(&spare, wt, branch, base).await {
                Ok(()) => {
                    // The next spare after this one's checkout, not beside it: on two cores
                    // the two side by side made the worker's start wait for both.
                    self.refill();
                    return Ok(());
                }
                Err(e) => {
                    tracing::debug!(spare = %spare.display(), error = %e, "spare not taken");
                    self.state().broken = true;
                    remove(&self.project, &spare).await;
                    remove(&self.project, wt).await;
                    let _ = git::delete_branch_at(&self.project, branch, base).await;
                }
            }
        }
        git::worktree_add_new_branch(&self.project, wt, branch, base).await
    }

    async fn adopt(
        &self,
        spare: &Path,
        wt: &Path,
        branch: &str,
        base: &str,
    ) -> Result<(), GitError> {
        git::worktree_move(&self.project, spare, wt).await?;
        git::checkout_new_branch(wt, branch, base).await
    }
}

/// A spare's making is over: those waiting for it look again.
struct Said<'a>(&'a Spares);

impl Drop for Said<'_> {
    fn drop(&mut self) {
        self.0.state().unmade -= 1;
        self.0.made.notify_waiters();
    }
}

/// Removes a worktree that holds nothing, and its folder if git did not know it (git forgets
/// one whose folder is gone).
async fn remove(project: &Path, dir: &Path) {
    if !dir.exists() {
        let _ = git::worktree_prune(project).await;
        return;
    }
    let _ = git::worktree_remove(project, dir, true).await;
    if dir.exists() {
        let _ = tokio::fs::remove_dir_all(dir).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::git;

    /// A project on `main` with one commit, the run branch `run` at it, and the run's spares.
    fn project(dir: &Path) -> (PathBuf, Arc<Spares>) {
        let p = dir.join("p");
        std::fs::create_dir_all(&p).expect("mkdir");
        git(&p, &["init", "-q", "-b", "main"]);
        std::fs::write(p.join("a.txt"), "a\n").expect("write");
        git(&p, &["add", "a.txt"]);
        git(&p, &["commit", "-qm", "base"]);
        git(&p, &["branch", "run"]);
        let spares = Spares::new(&p, &dir.join("data"), "r1", "run", 4);
        (p, spares)
    }

    /// Task `task`'s worktree on its branch `run--<task>` at `base`; checks it is on it.
    async fn start(spares: &Arc<Spares>, task: &str, base: &str) -> PathBuf {
        let (wt, branch) = (spares.dir.join(task), format!("run--{task}"));
        spares.worktree(&wt, &branch, base).await.expect("worktree");
        assert_eq!(git(&wt, &["rev-parse", "--abbrev-ref", "HEAD"]), branch);
        assert_eq!(git(&wt, &["rev-parse", "HEAD"]), base);
        wt
    }

    /// The spares' folders present now, oldest first.
    fn spare_dirs(spares: &Spares) -> Vec<PathBuf> {
        let mut found: Vec<(u64, PathBuf)> = std::fs::read_dir(&spares.dir)
            .map(|d| d.flatten().collect::<Vec<_>>())
            .unwrap_or_default()
            .into_iter()
            .filter_map(|e| {
                let n = e.file_name().to_str()?.strip_prefix(PREFIX)?.parse().ok()?;
                Some((n, e.path()))
            })
            .collect();
        found.sort();
        found.into_iter().map(|(_, p)| p).collect()
    }

    /// The worktree at `wt` was a spare (git keeps its first name for its admin folder).
    fn from_a_spare(wt: &Path) -> bool {
        let gitdir = std::fs::read_to_string(wt.join(".git")).expect(".git");
        gitdir.contains(&format!("worktrees/{PREFIX}"))
    }

    async fn ready(spares: &Spares) -> usize {
        loop {
            let made = {
                let s = spares.state();
                s.making
                    .iter()
                    .all(JoinHandle::is_finished)
                    .then(|| s.ready.len())
            };
            if let Some(n) = made {
                return n;
            }
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn a_worker_takes_a_spare_at_the_branch_tip_and_the_next_one_is_made() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (p, spares) = project(dir.path());
        spares.want(true);
        assert_eq!(ready(&spares).await, KEEP);
        let made = spare_dirs(&spares);
        // The run branch moves after the spare was made: the worker still starts at its tip.
        std::fs::write(p.join("b.txt"), "b\n").expect("write");
        git(&p, &["checkout", "-q", "run"]);
        git(&p, &["add", "b.txt"]);
        git(&p, &["commit", "-qm", "merged"]);
        let tip = git(&p, &["rev-parse", "run"]);
        let wt = start(&spares, "t1.1", &tip).await;
        assert!(
            wt.join("b.txt").is_file(),
            "the tip's files are checked out"
        );
        assert_eq!(git(&wt, &["status", "--porcelain"]), "");
        assert!(made.iter().any(|m| !m.exists()), "a spare was moved");
        assert_eq!(ready(&spares).await, KEEP, "the next spare is made");
        let next = spare_dirs(&spares);
        assert!(next.len() == KEEP && next != made, "{next:?}");
        spares.close().await;
        assert!(
            next.iter().all(|n| !n.exists()),
            "closing removes the spares"
        );
        let list = git(&p, &["worktree", "list", "--porcelain"]);
        assert!(!list.contains("spare-"), "{list}");
        assert!(wt.is_dir(), "the worker's worktree stays");
    }

    #[tokio::test]
    async fn a_worker_starting_while_the_spare_is_made_waits_for_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (p, spares) = project(dir.path());
        spares.want(true);
        // Once git is making the spares, before they are made.
        while spares.state().queued > 0 {
            tokio::task::yield_now().await;
        }
        let base = git(&p, &["rev-parse", "run"]);
        let wt = start(&spares, "t1.1", &base).await;
        assert!(from_a_spare(&wt));
        spares.close().await;
    }

    #[tokio::test]
    async fn a_spare_that_cannot_be_taken_leaves_the_worker_a_worktree_made_as_before() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (p, spares) = project(dir.path());
        spares.want(true);
        assert_eq!(ready(&spares).await, KEEP);
        // Their folders gone from under git: `worktree move` refuses them.
        for spare in spare_dirs(&spares) {
            std::fs::remove_dir_all(spare).expect("rm");
        }
        let base = git(&p, &["rev-parse", "run"]);
        let wt = start(&spares, "t1.1", &base).await;
        assert!(wt.join("a.txt").is_file() && !from_a_spare(&wt));
        // None is taken or made after it: the next worker's worktree is made as before too.
        ready(&spares).await;
        assert!(
            spare_dirs(&spares).is_empty(),
            "no spare is made once one failed"
        );
        let wt = start(&spares, "t2.1", &base).await;
        assert!(wt.join("a.txt").is_file() && !from_a_spare(&wt));
        ready(&spares).await;
        assert!(spare_dirs(&spares).is_empty());
        spares.close().await;
        let list = git(&p, &["worktree", "list", "--porcelain"]);
        assert!(!list.contains("spare-"), "{list}");
    }

    #[tokio::test]
    async fn spares_a_stopped_daemon_left_are_removed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (p, spares) = project(dir.path());
        spares.want(true);
        assert_eq!(ready(&spares).await, KEEP);
        let left = spare_dirs(&spares).remove(0);
        // The next daemon finds it, and a half-made one git never recorded.
        let stray = spares.dir.join("spare-7");
        std::fs::create_dir_all(stray.join("sub")).expect("mkdir");
        let task = spares.dir.join("t1.1");
        std::fs::create_dir_all(&task).expect("mkdir");
        assert!(is_spare(&stray) && !is_spare(&task));
        let next = Spares::new(&p, &dir.path().join("data"), "r1", "run", 4);
        next.sweep().await;
        assert!(!left.exists());
        assert!(!stray.exists());
        assert!(task.is_dir(), "a task's worktree is not a spare");
        git(&p, &["worktree", "prune"]);
        let list = git(&p, &["worktree", "list", "--porcelain"]);
        assert!(!list.contains("spare-"), "{list}");
    }

    /// A run of one worker at a time never starts two at once: one spare is kept for it.
    #[tokio::test]
    async fn a_run_of_one_worker_keeps_one_spare() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (p, _) = project(dir.path());
        let spares = Spares::new(&p, &dir.path().join("data"), "r1", "run", 1);
        spares.want(true);
        assert_eq!(ready(&spares).await, 1);
        let base = git(&p, &["rev-parse", "run"]);
        assert!(from_a_spare(&start(&spares, "t1.1", &base).await));
        assert_eq!(ready(&spares).await, 1, "the next one, and only one");
        assert_eq!(spare_dirs(&spares).len(), 1);
        spares.close().await;
    }

    /// A spare is made after the workers starting now: one that comes meanwhile makes its own
    /// worktree at once rather than wait for it.
    #[tokio::test]
    async fn spares_wait_for_the_workers_starting_now() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (p, spares) = project(dir.path());
        let starting = spares.starts().begin();
        spares.want(true);
        for _ in 0..50 {
            tokio::task::yield_now().await;
        }
        assert_eq!(spares.state().queued, KEEP, "waiting their turn");
        let base = git(&p, &["rev-parse", "run"]);
        let wt = start(&spares, "t1.1", &base).await;
        assert!(!from_a_spare(&wt), "made its own");
        assert!(spare_dirs(&spares).is_empty(), "none made meanwhile");
        drop(starting);
        assert_eq!(
            ready(&spares).await,
            KEEP,
            "made once no worker is starting"
        );
        spares.close().await;
    }

    /// While the planner works, a spare for each first worker; the first batch takes them all,
    /// and then one is kept ready as before. A set never sweeps its own spares away.
    #[tokio::test]
    async fn the_first_batch_starts_from_spares_made_ahead() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (p, spares) = project(dir.path());
        spares.prepare(3);
        assert_eq!(ready(&spares).await, 3);
        spares.sweep().await;
        assert_eq!(spare_dirs(&spares).len(), 3, "its own spares stay");
        let base = git(&p, &["rev-parse", "run"]);
        for task in ["t1.1", "t2.1", "t3.1"] {
            let wt = start(&spares, task, &base).await;
            assert!(from_a_spare(&wt), "{task}");
        }
        assert_eq!(ready(&spares).await, KEEP, "then KEEP are kept ready");
        assert_eq!(spare_dirs(&spares).len(), KEEP);
        // A closed set's spares are a newer set's leftovers.
        spares.close().await;
        let kept = spares.dir.join(format!("{PREFIX}999999"));
        git(
            &p,
            &[
                "worktree",
                "add",
                "-q",
                "--detach",
                &kept.display().to_string(),
                &base,
            ],
        );
        let next = Spares::new(&p, &dir.path().join("data"), "r1", "run", 4);
        next.prepare(1);
        assert_eq!(ready(&next).await, KEEP);
        assert!(!kept.exists(), "swept before its first spare");
        assert_eq!(spare_dirs(&next).len(), KEEP);
        next.close().await;
        let list = git(&p, &["worktree", "list", "--porcelain"]);
        assert!(!list.contains(PREFIX), "{list}");
    }
}
