//! Preparing a worktree the daemon created, before anything uses it. A fresh worktree holds
//! only what git tracks — no `node_modules/`, no `.venv`, no `.env` — so the ignored files the
//! project lists in `.worktreeinclude` are copied in from the user's checkout (`include`), then
//! the run's `--setup` runs in it as a bounded child (`crate::child`) with the run's
//! environment, its output in `.orchestrator/setup/<name>.log`.
//!
//! A setup that fails is the environment's problem, never the agent's: callers put the task
//! back without spending an attempt, and the same setup failing twice in a row stops the run
//! for a human with the command, its exit and the end of its output.

use std::path::{Path, PathBuf};

use orchestrator_proto::{RunOptions, SessionEnv};
use tokio_util::sync::CancellationToken;

use super::include;

/// Everything preparing needs, owned so a worker's future can carry it.
#[derive(Clone)]
pub struct Prep {
    pub project: PathBuf,
    pub data_dir: PathBuf,
    pub run: crate::ids::RunId,
    pub env: SessionEnv,
    pub options: RunOptions,
    pub cancel: CancellationToken,
    pub stopping: CancellationToken,
}

impl Prep {
    /// How the worktrees of `run` are prepared, with the run's environment and tokens.
    pub fn for_run(
        cfg: &super::EngineConfig,
        run: &crate::store::RunRow,
        env: &SessionEnv,
        cancel: &CancellationToken,
    ) -> Self {
        Prep {
            project: PathBuf::from(&run.project),
            data_dir: cfg.data_dir.clone(),
            run: run.id.clone(),
            env: env.clone(),
            options: run.options.clone(),
            cancel: cancel.clone(),
            stopping: cfg.stopping.clone(),
        }
    }
}

/// How preparing one worktree ended.
#[derive(Debug)]
pub enum Prepared {
    /// Ready; what was done, for the log (empty when there was nothing to do).
    Ready(Vec<String>),
    Failed(SetupFailure),
    /// The run was paused or cancelled, or the daemon is stopping, while the setup ran.
    Stopped,
}

/// A setup that did not succeed.
#[derive(Debug, Clone)]
pub struct SetupFailure {
    pub command: String,
    /// "exit 1", "it ran for more than 30m …", "cannot run it: …".
    pub how: String,
    /// The end of its output.
    pub tail: String,
    pub log: PathBuf,
}

impl std::fmt::Display for SetupFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the setup `{}` failed ({}; the whole output is in {})\n{}",
            self.command,
            self.how,
            self.log.display(),
            self.tail.trim()
        )
    }
}

/// Copies the `.worktreeinclude` files into `worktree`, then runs the setup there; `name`
/// names its log (`<task>.<attempt>`, `integration`, `planner.<n>`).
pub async fn prepare(p: &Prep, worktree: &Path, name: &str) -> Prepared {
    let mut done = include::copy_included(&p.project, worktree).await;
    let Some(command) = p.options.setup.clone() else {
        return Prepared::Ready(done);
    };
    let mut c = tokio::process::Command::new("sh");
    c.arg("-c").arg(&command).current_dir(worktree).env_clear();
    for (k, v) in &p.env.0 {
        c.env(k, v);
    }
    let log = crate::mirror::setup_log(&p.project, &p.data_dir, &p.run, &format!("{name}.log"));
    let timeout = std::time::Duration::from_secs(p.options.setup_timeout_secs);
    let started = std::time::Instant::now();
    let ran = match crate::child::run(c, &log, timeout, &p.cancel, &p.stopping).await {
        Ok(r) => r,
        Err(e) => {
            return Prepared::Failed(SetupFailure {
                command,
                how: format!("cannot run it: {e}"),
                tail: String::new(),
                log,
            });
        }
    };
    let how = match ran.exit {
        crate::child::Exit::Exited(Some(0)) => {
            done.push(format!(
                "setup `{command}` passed in {:.1}s",
                started.elapsed().as_secs_f64()
            ));
            return Prepared::Ready(done);
        }
        crate::child::Exit::Stopped => return Prepared::Stopped,
        crate::child::Exit::TimedOut(d) => format!(
            "it ran for more than {}s and was stopped (--setup-timeout)",
            d.as_secs()
        ),
        crate::child::Exit::Exited(code) => {
            format!(
                "exit {}",
                code.map_or("by a signal".into(), |c| c.to_string())
            )
        }
    };
    Prepared::Failed(SetupFailure {
        command,
        how,
        tail: ran.tail,
        log: ran.log,
    })
}
