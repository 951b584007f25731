//! `orchestrate pr` and `start --pr`: the completed run's branch pushed to the project's
//! remote — never forced — and a pull request opened with `gh pr create`, its body written
//! from the run ([`body`]). Both run with the run's forwarded environment (the user's PATH,
//! HOME and credentials helpers), bounded in time, their output kept under
//! `<data_dir>/pr/`. Without `gh` (or when it fails) the report gives the compare URL and the
//! body to open it by hand. A failing push says git's message and what to do.

pub mod body;

use std::path::Path;
use std::time::Duration;

use orchestrator_proto::SessionEnv;
use orchestrator_proto::pr::{OpenPr, PrReport};
use tokio_util::sync::CancellationToken;

use super::RunError;
use crate::store::{Db, RunRow};

/// The longest a push or `gh` may take.
const TIMEOUT: Duration = Duration::from_secs(5 * 60);

impl super::Runs {
    /// `orchestrate pr`: the completed run's pull request.
    pub async fn pr(&self, id: &str, req: OpenPr) -> Result<PrReport, RunError> {
        let run = self.get(id).await?;
        if run.status != orchestrator_proto::RunStatus::Completed {
            return Err(RunError::conflict(format!(
                "run {id} is {}; a pull request is opened for a completed run",
                run.status
            ))
            .hint("wait for it (orchestrate wait --until finished), or start it with --pr"));
        }
        let env = if req.env.is_empty() {
            self.env(&run.id).await?
        } else {
            req.env.clone()
        };
        let facts = facts(&self.inner.db, run).await?;
        open(&facts, &env, &req, &self.inner.engine.data_dir.join("pr")).await
    }
}

/// Reads what the body says of `run`.
pub async fn facts(db: &Db, run: RunRow) -> Result<body::Facts, RunError> {
    let id = run.id.clone();
    let (plan, tasks, findings) = db
        .call(move |c| {
            Ok((
                crate::store::board::latest_plan(c, &id)?.map(|p| p.1),
                crate::store::board::tasks(c, &id)?,
                crate::store::reviews::findings(c, &id, crate::store::reviews::ReviewKind::Code)?,
            ))
        })
        .await?;
    Ok(body::Facts {
        run,
        plan,
        tasks,
        findings,
    })
}

/// Pushes the run's branch and opens its pull request.
pub async fn open(
    facts: &body::Facts,
    env: &SessionEnv,
    req: &OpenPr,
    logs: &Path,
) -> Result<PrReport, RunError> {
    let run = &facts.run;
    let project = Path::new(&run.project);
    let remote = remote(project).await?;
    let base = match &req.base {
        Some(b) => b.clone(),
        None => default_branch(project, &remote).await,
    };
    tokio::fs::create_dir_all(logs)
        .await
        .map_err(|source| RunError::Io {
            path: logs.display().to_string(),
            source,
        })?;
    push(
        project,
        env,
        &remote,
        &run.branch,
        &logs.join(format!("{}-push.log", run.id)),
    )
    .await?;
    let text = body::body(facts);
    let compare = compare_url(project, &remote, &base, &run.branch).await;
    let mut report = PrReport {
        branch: run.branch.clone(),
        remote,
        base: base.clone(),
        url: None,
        compare_url: compare,
        note: None,
        body: text.clone(),
    };
    let path = env.get("PATH").unwrap_or_default().to_owned();
    let Some(gh) = orchestrator_proto::locate::on_path(path.as_ref(), "gh") else {
        report.note = Some(
            "gh is not installed, so no pull request was opened: open it at the compare URL \
             with the body below (or install gh and run `orchestrate pr` again)"
                .into(),
        );
        return Ok(report);
    };
    let body_file = logs.join(format!("{}-body.md", run.id));
    tokio::fs::write(&body_file, &text)
        .await
        .map_err(|source| RunError::Io {
            path: body_file.display().to_string(),
            source,
        })?;
    let mut cmd = command(&gh, project, env);
    cmd.args(["pr", "create", "--head", &run.branch, "--base", &base])
        .args(["--title", &body::title(&run.feature)])
        .arg("--body-file")
        .arg(&body_file);
    if req.draft {
        cmd.arg("--draft");
    }
    let ran = bounded(cmd, &logs.join(format!("{}-gh.log", run.id))).await?;
    if ran.success() {
        report.url = ran
            .tail
            .lines()
            .rev()
            .find(|l| l.trim().starts_with("http"))
            .map(|l| l.trim().to_owned());
    } else {
        report.note = Some(format!("gh pr create failed: {}", ran.tail.trim()));
    }
    Ok(report)
}

fn command(program: &Path, project: &Path, env: &SessionEnv) -> tokio::process::Command {
    let mut c = tokio::process::Command::new(program);
    crate::agents::run_env(&mut c, env);
    c.env("GIT_TERMINAL_PROMPT", "0").current_dir(project);
    c
}

async fn bounded(cmd: tokio::process::Command, log: &Path) -> Result<crate::child::Ran, RunError> {
    let never = CancellationToken::new();
    crate::child::run(cmd, log, TIMEOUT, &never, &never)
        .await
        .map_err(|source| RunError::Io {
            path: log.display().to_string(),
            source,
        })
}

/// `git push <remote> <branch>`, never forced.
async fn push(
    project: &Path,
    env: &SessionEnv,
    remote: &str,
    branch: &str,
    log: &Path,
) -> Result<(), RunError> {
    let mut cmd = command(Path::new("git"), project, env);
    let spec = format!("refs/heads/{branch}:refs/heads/{branch}");
    cmd.args(["push", remote, &spec]);
    let ran = bounded(cmd, log).await?;
    if ran.success() {
        return Ok(());
    }
    let said = ran.tail.trim();
    let hint = if said.contains("non-fast-forward") || said.contains("rejected") {
        format!(
            "{remote}'s {branch} has commits this branch lacks; look at them (git fetch {remote}) \
             and decide — nothing is ever force-pushed"
        )
    } else {
        "check that `git push` works from the project in your shell (the remote's URL and your \
         credentials), then run `orchestrate pr` again"
            .to_owned()
    };
    Err(RunError::invalid(format!("git push to {remote} failed: {said}")).hint(hint))
}

/// The remote to push to: `origin`, else the only one.
async fn remote(project: &Path) -> Result<String, RunError> {
    let remotes = crate::git::remotes(project).await?;
    if remotes.iter().any(|r| r == "origin") {
        return Ok("origin".into());
    }
    match remotes.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(RunError::invalid(format!(
            "the project {} has no git remote to push to",
            project.display()
        ))
        .hint("add one (git remote add origin <url>), then run `orchestrate pr` again")),
        many => Err(RunError::invalid(format!(
            "the project has several remotes ({}) and none is origin",
            many.join(", ")
        ))
        .hint("name the one to use origin (git remote rename <name> origin)")),
    }
}

/// The remote's default branch (its `HEAD`), else `main`.
async fn default_branch(project: &Path, remote: &str) -> String {
    crate::git::remote_head(project, remote)
        .await
        .ok()
        .flatten()
        .unwrap_or_else(|| "main".into())
}

/// GitHub's compare page for `base...branch`, when the remote is on GitHub.
async fn compare_url(project: &Path, remote: &str, base: &str, branch: &str) -> Option<String> {
    let url = crate::git::remote_url(project, remote).await.ok()?;
    github_compare(&url, base, branch)
}

/// GitHub's compare page for a remote URL (https, scp-like or ssh), else `None`.
fn github_compare(url: &str, base: &str, branch: &str) -> Option<String> {
    let path = url
        .strip_prefix("https://github.com/")
        .or_else(|| url.strip_prefix("git@github.com:"))
        .or_else(|| url.strip_prefix("ssh://git@github.com/"))?;
    let repo = path.trim_end_matches('/').trim_end_matches(".git");
    Some(format!(
        "https://github.com/{repo}/compare/{base}...{branch}?expand=1"
    ))
}

#[cfg(test)]
mod tests {
    use super::github_compare;

    #[test]
    fn a_github_remote_in_any_form_gives_its_compare_page() {
        let want = Some("https://github.com/acme/app/compare/main...orchestrate/x?expand=1".into());
        for url in [
            "https://github.com/acme/app.git",
            "https://github.com/acme/app",
            "git@github.com:acme/app.git",
            "ssh://git@github.com/acme/app.git",
        ] {
            assert_eq!(github_compare(url, "main", "orchestrate/x"), want, "{url}");
        }
        assert_eq!(github_compare("/srv/git/app.git", "main", "x"), None);
        assert_eq!(
            github_compare("https://gitlab.com/acme/app.git", "main", "x"),
            None
        );
    }
}
