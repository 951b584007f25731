//! `POST /v1/runs`: validate everything first, then create the branch, the row and the mirror.
//!
//! **Invariant:** a rejected submit creates nothing — no branch, no row, no files. Every
//! rejection names the fix.

use std::path::{Path, PathBuf};

use orchestrator_proto::{RunOptions, SubmitRun, defaults};

use super::error::{RejectKind, RunError};
use super::slug::slugify;
use crate::git;
use crate::store::{Db, NewRun, runs as run_rows, time_text};

/// A submit that passed validation: everything needed to create the run.
#[derive(Debug)]
pub struct Validated {
    pub project: PathBuf,
    pub feature: String,
    pub options: RunOptions,
    pub base_commit: String,
    pub context_file: Option<String>,
    pub context: Option<String>,
    /// The client's environment for the run's sessions (filtered again here).
    pub env: orchestrator_proto::SessionEnv,
    /// What to take from the project's previous run ([`remembered`]).
    pub inherit: orchestrator_proto::Inherit,
}

pub fn check_options(o: &RunOptions) -> Result<(), RunError> {
    check_models(&o.models)?;
    if o.setup.as_deref().is_some_and(|g| g.trim().is_empty()) {
        return Err(RunError::invalid("--setup is empty").hint(
            "give the command that prepares a worktree, e.g. --setup \"npm ci\", or leave the option out",
        ));
    }
    if !(1..=defaults::MAX_GATE_TIMEOUT_SECS).contains(&o.setup_timeout_secs) {
        return Err(RunError::invalid(format!(
            "--setup-timeout {}s is out of range",
            o.setup_timeout_secs
        ))
        .hint("give how long the setup may run in one worktree, from 1s to 24h (default 30m)"));
    }
    if o.gate.as_deref().is_some_and(|g| g.trim().is_empty()) {
        return Err(RunError::invalid("--gate is empty").hint(
            "give the command that must pass, e.g. --gate \"cargo test\", or leave the option out",
        ));
    }
    if !(1..=defaults::MAX_GATE_TIMEOUT_SECS).contains(&o.gate_timeout_secs) {
        return Err(RunError::invalid(format!(
            "--gate-timeout {}s is out of range",
            o.gate_timeout_secs
        ))
        .hint("give how long the gate may run on one merge, from 1s to 24h (default 30m)"));
    }
    if !(1..=defaults::MAX_CONCURRENCY).contains(&o.concurrency) {
        return Err(
            RunError::invalid(format!("--concurrency {} is out of range", o.concurrency)).hint(
                format!(
                    "use a number of parallel workers from 1 to {} (default {})",
                    defaults::MAX_CONCURRENCY,
                    defaults::CONCURRENCY
                ),
            ),
        );
    }
    if o.max_cycles < 1 {
        return Err(RunError::invalid("--max-cycles 0 allows no cycle at all")
            .hint(format!("use 1 or more (default {})", defaults::MAX_CYCLES)));
    }
    if let Some(b) = o.max_budget_usd
        && !(b.is_finite() && b > 0.0)
    {
        return Err(
            RunError::invalid(format!("--max-budget-usd {b} is not a positive amount"))
                .hint("give the most the run may spend in US dollars, e.g. --max-budget-usd 20"),
        );
    }
    if !(o.usage_threshold > 0.0 && o.usage_threshold <= 1.0) {
        return Err(RunError::invalid(format!(
            "--usage-threshold {} is out of range",
            o.usage_threshold
        ))
        .hint(format!(
            "give a fraction of the 5-hour window greater than 0 and at most 1, e.g. {}",
            defaults::USAGE_THRESHOLD
        )));
    }
    if !(1..=defaults::MAX_PRIORITY).contains(&o.priority) {
        return Err(
            RunError::invalid(format!("--priority {} is out of range", o.priority)).hint(format!(
                "give a weight from 1 to {} (runs sharing the window get it in proportion)",
                defaults::MAX_PRIORITY
            )),
        );
    }
    if let Some(w) = o.weekly_threshold
        && !(w > 0.0 && w <= 1.0)
    {
        return Err(
            RunError::invalid(format!("--weekly-threshold {w} is out of range")).hint(
                "give a fraction of the 7-day windows greater than 0 and at most 1, e.g. 0.95",
            ),
        );
    }
    Ok(())
}

fn invalid_project(message: String, hint: &str) -> RunError {
    RunError::rejected(RejectKind::InvalidProject, message).hint(hint)
}

/// Resolves a project path to the top level of its work tree.
pub async fn project_root(path: &str) -> Result<PathBuf, RunError> {
    let p = Path::new(path);
    if !p.is_absolute() {
        return Err(
            RunError::invalid(format!("project path `{path}` is not absolute"))
                .hint("send an absolute path (the orchestrate CLI does this for you)"),
        );
    }
    match tokio::fs::metadata(p).await {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(invalid_project(
                format!("project {path} is a file, not a directory"),
                "pass the project's directory with --project",
            ));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(invalid_project(
                format!("project directory {path} does not exist"),
                "check the path given with --project (it defaults to the current directory)",
            ));
        }
        Err(e) => {
            return Err(invalid_project(
                format!("project directory {path} cannot be read: {e}"),
                "check the path given with --project (it defaults to the current directory)",
            ));
        }
    }
    git::toplevel(p).await?.ok_or_else(|| {
        invalid_project(
            format!("{path} is not inside a git work tree"),
            "run `git init` there and make a first commit, or pass another --project",
        )
    })
}

/// The largest `--context-file`: it goes into every planner's and reviewer's prompt.
pub const CONTEXT_MAX: usize = 2 << 20;

/// The mirror goes to `<project>/.orchestrator/`: refused when that is a symlink, not a
/// folder, or tracked by git (a repository that commits it could point the daemon's writes
/// anywhere, and the mirror would rewrite tracked files).
pub async fn check_mirror_place(project: &Path) -> Result<(), RunError> {
    let path = project.join(crate::mirror::DIR);
    match tokio::fs::symlink_metadata(&path).await {
        Ok(m) if m.file_type().is_symlink() => {
            let to = tokio::fs::read_link(&path)
                .await
                .map(|t| format!(" (to {})", t.display()))
                .unwrap_or_default();
            return Err(invalid_project(
                format!(
                    "{} is a symlink{to}; orchestrator keeps each run's mirror there and never \
                     writes through a link",
                    path.display()
                ),
                &format!("remove the link (`rm {}`) and start again", path.display()),
            ));
        }
        Ok(m) if !m.is_dir() => {
            return Err(invalid_project(
                format!("{} is a file, not a folder", path.display()),
                &format!(
                    "move it away (orchestrator keeps each run's mirror in {})",
                    path.display()
                ),
            ));
        }
        _ => {}
    }
    let tracked = git::tracked_under(project, crate::mirror::DIR, 3).await?;
    if !tracked.is_empty() {
        return Err(invalid_project(
            format!(
                "the repository tracks files under {}/ ({}); orchestrator keeps each run's \
                 mirror there",
                crate::mirror::DIR,
                tracked.join(", ")
            ),
            &format!(
                "untrack them with `git rm -r --cached {}` and commit, then start again",
                crate::mirror::DIR
            ),
        ));
    }
    Ok(())
}

/// Checks a submit without changing anything.
pub async fn validate(req: SubmitRun, claude_bin: Option<&Path>) -> Result<Validated, RunError> {
    let feature = req.feature.trim().to_owned();
    if feature.is_empty() {
        return Err(RunError::invalid("the feature description is empty")
            .hint("describe what to build, e.g. orchestrate start \"Add OAuth login\""));
    }
    check_options(&req.options)?;
    let project = project_root(&req.project).await?;
    check_mirror_place(&project).await?;
    let base_commit = git::head_commit(&project).await?.ok_or_else(|| {
        invalid_project(
            format!("the repository at {} has no commits yet", project.display()),
            "make a first commit (git commit --allow-empty -m init) so the run has a base",
        )
    })?;
    let (context_file, context) = read_context(req.context_file, req.context).await?;
    let env = req.env.filtered_with(&req.forward);
    crate::agents::locate(crate::agents::AgentKind::Claude, &env, claude_bin).map_err(|e| {
        RunError::invalid(e.to_string()).hint(
            "orchestrate passes your shell's PATH and ORCHESTRATOR_CLAUDE_BIN to the daemon; run it where `claude --version` works",
        )
    })?;
    Ok(Validated {
        project,
        feature,
        options: req.options,
        base_commit,
        context_file,
        context,
        env,
        inherit: req.inherit,
    })
}

/// The run's context: a file the client named (read here), or the text it sent (`--context-file
/// -`), never both; at most `CONTEXT_MAX`.
async fn read_context(
    file: Option<String>,
    text: Option<String>,
) -> Result<(Option<String>, Option<String>), RunError> {
    let too_big = |what: &str, len: usize| {
        RunError::invalid(format!(
            "{what} is {} KiB; the most a run takes is {} KiB",
            len / 1024,
            CONTEXT_MAX / 1024
        ))
        .hint("give the parts that matter for this feature (claude refuses prompts of about 3 MB)")
    };
    let path = match (file, text) {
        (Some(_), Some(_)) => {
            return Err(RunError::invalid(
                "both a context file and context text were sent; send one",
            )
            .hint("give --context-file a path, or - to read it from stdin"));
        }
        (None, Some(text)) if text.len() > CONTEXT_MAX => {
            return Err(too_big("the context on stdin", text.len()));
        }
        (None, Some(text)) => return Ok((None, Some(text))),
        (None, None) => return Ok((None, None)),
        (Some(path), None) => path,
    };
    if !Path::new(&path).is_absolute() {
        return Err(
            RunError::invalid(format!("context file path `{path}` is not absolute"))
                .hint("send an absolute path (the orchestrate CLI does this for you)"),
        );
    }
    let bytes = tokio::fs::read(&path).await.map_err(|e| {
        RunError::invalid(format!("cannot read the context file {path}: {e}"))
            .hint("check the path given with --context-file")
    })?;
    if bytes.len() > CONTEXT_MAX {
        return Err(too_big(&format!("the context file {path}"), bytes.len()));
    }
    let text = String::from_utf8(bytes).map_err(|_| {
        RunError::invalid(format!("the context file {path} is not UTF-8 text"))
            .hint("give a Markdown or plain-text file")
    })?;
    Ok((Some(path), Some(text)))
}

/// A run that uses Codex workers needs codex: refused at start, not at its first task.
/// `given`: the models came from `start`'s flags (else from the project's previous run or the
/// config, which the message says).
pub fn check_codex(v: &Validated, codex_bin: Option<&Path>, given: bool) -> Result<(), RunError> {
    let m = &v.options.models;
    let flag = if m.worker_agent == orchestrator_proto::Agent::Codex {
        "--worker-agent codex"
    } else if m.on_limit == orchestrator_proto::OnLimit::Codex {
        "--on-limit codex"
    } else {
        return Ok(());
    };
    match crate::agents::locate(crate::agents::AgentKind::Codex, &v.env, codex_bin) {
        Ok(_) => Ok(()),
        Err(crate::agents::AgentError::NotFound { path, .. }) => {
            let (from, instead) = if given {
                ("", format!("start without {flag}"))
            } else {
                (
                    ", kept from the project's previous run or [models]",
                    "give start the model flags you want (e.g. --on-limit pause --worker-agent \
                     claude)"
                        .to_owned(),
                )
            };
            Err(RunError::invalid(format!(
                "this run uses Codex workers ({flag}{from}), but codex is not on your PATH ({path})"
            ))
            .hint(format!(
                "install Codex (npm install -g @openai/codex) or set ORCHESTRATOR_CODEX_BIN, or \
                 {instead}"
            )))
        }
        Err(e) => Err(RunError::invalid(e.to_string())),
    }
}

/// A model is a name claude takes (`opus`, `claude-sonnet-5-5`): one word of at most 100
/// characters.
fn check_models(m: &orchestrator_proto::Models) -> Result<(), RunError> {
    match m.not_a_name() {
        None => Ok(()),
        Some((flag, _, v)) => Err(RunError::invalid(format!("{flag} {v:?} is not a model name"))
            .hint("give a model alias or id as claude takes it, e.g. opus, sonnet or claude-sonnet-5-5")),
    }
}

/// Fills in what `start` was not given from the project's previous run — its `--setup`,
/// `--gate`, `--gate-timeout` and models — and a setup and models from the daemon's
/// `[worktrees] setup` and `[models]` when the project has none yet. Returns what was taken, for the log.
pub async fn remembered(
    db: &Db,
    v: &mut Validated,
    default_setup: Option<&str>,
    default_models: &orchestrator_proto::Models,
) -> Result<Vec<String>, RunError> {
    let key = v.project.display().to_string();
    let previous = db.call(move |c| run_rows::current(c, &key)).await?;
    let last = previous.map(|r| r.options);
    let mut taken = Vec::new();
    let o = &mut v.options;
    if v.inherit.setup {
        match &last {
            Some(l) => {
                o.setup = l.setup.clone();
                o.setup_timeout_secs = l.setup_timeout_secs;
                if let Some(s) = &o.setup {
                    taken.push(format!("setup `{s}` from the previous run"));
                }
            }
            None => {
                o.setup = default_setup.map(str::to_owned);
                if let Some(s) = &o.setup {
                    taken.push(format!("setup `{s}` from [worktrees] setup"));
                }
            }
        }
    }
    if v.inherit.models {
        let (models, from) = match &last {
            Some(l) => (l.models.clone(), "the previous run"),
            None => (default_models.clone(), "[models]"),
        };
        if let Some(m) = models.summary() {
            taken.push(format!("models ({m}) from {from}"));
        }
        o.models = models;
    }
    if let Some(l) = &last {
        if v.inherit.gate {
            o.gate = l.gate.clone();
            if let Some(g) = &o.gate {
                taken.push(format!("gate `{g}` from the previous run"));
            }
        }
        if v.inherit.gate_timeout {
            o.gate_timeout_secs = l.gate_timeout_secs;
        }
    }
    Ok(taken)
}

/// Refuses a second active run in the project, naming the active one and the way out.
pub async fn check_no_active_run(db: &Db, project: &str) -> Result<(), RunError> {
    let key = project.to_owned();
    let current = db.call(move |c| run_rows::current(c, &key)).await?;
    match current {
        Some(run) if run.status.is_active() => Err(RunError::conflict(format!(
            "project {project} already has an active run, {} ({}): \"{}\"",
            run.id, run.status, run.feature
        ))
        .hint(format!(
            "see it with `orchestrate status --project {project}`; continue it with \
             `orchestrate resume --project {project}`, or stop it with \
             `orchestrate cancel --project {project}` before starting another"
        ))),
        _ => Ok(()),
    }
}

/// Picks `orchestrate/<slug>`, or `orchestrate/<slug>-2`, `-3`… when taken in git or by a run.
pub async fn choose_branch(db: &Db, project: &Path, feature: &str) -> Result<String, RunError> {
    let slug = slugify(feature);
    for n in 1u32.. {
        let branch = if n == 1 {
            format!("orchestrate/{slug}")
        } else {
            format!("orchestrate/{slug}-{n}")
        };
        let (key, b) = (project.display().to_string(), branch.clone());
        let used = db
            .call(move |c| run_rows::branch_taken(c, &key, &b))
            .await?;
        if !used
            && !git::branch_exists(project, &branch).await?
            && git::valid_branch_name(project, &branch).await?
        {
            return Ok(branch);
        }
        // A file or ref named `orchestrate` blocks the whole namespace; fail instead of looping.
        if n > 1000 {
            break;
        }
    }
    Err(RunError::conflict(format!(
        "no free branch name under orchestrate/{slug} in {}",
        project.display()
    ))
    .hint("delete old orchestrate/* branches (git branch -D …) and try again"))
}

pub fn new_run_id() -> crate::ids::RunId {
    let hex = uuid::Uuid::new_v4().simple().to_string();
    format!("r-{}", &hex[..12]).into()
}

/// The row to insert for a validated submit on `branch`.
pub fn new_run(v: &Validated, branch: String) -> NewRun {
    NewRun {
        id: new_run_id(),
        project: v.project.display().to_string(),
        feature: v.feature.clone(),
        branch,
        base_commit: v.base_commit.clone(),
        options: v.options.clone(),
        context_file: v.context_file.clone(),
        context: v.context.clone(),
        at: time_text::now(),
    }
}
