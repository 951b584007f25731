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

/// Files whose change leaves a worktree prepared before it out of date: the dependency
/// manifests and lockfiles of the common ecosystems, and `.worktreeinclude`.
const INSTALLS_FROM: &[&str] = &[
    ".worktreeinclude",
    "package.json",
    "package-lock.json",
    "npm-shrinkwrap.json",
    "yarn.lock",
    "pnpm-lock.yaml",
    "pnpm-workspace.yaml",
    "bun.lock",
    "bun.lockb",
    ".nvmrc",
    ".node-version",
    ".tool-versions",
    "pyproject.toml",
    "poetry.lock",
    "uv.lock",
    "Pipfile",
    "Pipfile.lock",
    "setup.py",
    "setup.cfg",
    ".python-version",
    "Cargo.toml",
    "Cargo.lock",
    "rust-toolchain",
    "rust-toolchain.toml",
    "go.mod",
    "go.sum",
    "Gemfile",
    "Gemfile.lock",
    "composer.json",
    "composer.lock",
    "mix.exs",
    "mix.lock",
    "pom.xml",
    "build.gradle",
    "build.gradle.kts",
];

/// The first of `changed` (paths in the repository) that means a worktree prepared before the
/// change must be prepared again: a manifest or lockfile ([`INSTALLS_FROM`], or any
/// `requirements*.txt`), or a file the setup command names (`./scripts/setup.sh`).
pub fn outdated_by<'a>(changed: &'a [String], setup: Option<&str>) -> Option<&'a String> {
    changed.iter().find(|path| {
        let name = path.rsplit('/').next().unwrap_or(path);
        INSTALLS_FROM.contains(&name)
            || (name.starts_with("requirements") && name.ends_with(".txt"))
            || setup.is_some_and(|s| names(s, path))
    })
}

/// Whether the shell command `setup` names `path` as one of its words (`./` or not).
fn names(setup: &str, path: &str) -> bool {
    setup
        .split(|c: char| c.is_whitespace() || ";&|()'\"<>=".contains(c))
        .any(|w| w.trim_start_matches("./") == path)
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

#[cfg(test)]
mod tests {
    use super::outdated_by;

    fn changed(paths: &[&str]) -> Vec<String> {
        paths.iter().map(|p| (*p).to_owned()).collect()
    }

    #[test]
    fn a_changed_manifest_lockfile_or_setup_script_outdates_a_prepared_worktree() {
        let none: Option<&str> = None;
        let first = |paths: &[&str], setup| outdated_by(&changed(paths), setup).cloned();
        assert_eq!(
            first(&["src/a.js", "package.json"], none),
            Some("package.json".into())
        );
        assert_eq!(
            first(&["web/yarn.lock"], none),
            Some("web/yarn.lock".into())
        );
        assert_eq!(
            first(&["requirements-dev.txt"], none),
            Some("requirements-dev.txt".into())
        );
        assert_eq!(first(&["src/a.js", "README.md"], none), None);
        let setup = Some("sh ./scripts/setup.sh && make deps");
        assert_eq!(
            first(&["scripts/setup.sh"], setup),
            Some("scripts/setup.sh".into())
        );
        // Only a whole word of the command: `a` is not named by `make deps`.
        assert_eq!(first(&["a", "deps/x", "scripts/setup"], setup), None);
    }
}
