//! `orchestrate attach <task>`: take over a task's Claude worker. The run is paused (every
//! worker interrupted, keeping its session, worktree and branch; no attempt spent), then an
//! interactive `claude --resume <its session>` opens in the task's worktree with the run's MCP
//! server (a worker session of the task of its own). When you quit, the task goes back where
//! you left it and the run resumes — the worker continues headless from your conversation — or,
//! if you completed the task there, it is verified and merged.

use std::time::{Duration, Instant};

use clap::Args;
use orchestrator_proto::RunStatus;

use super::Target;
use crate::client::Client;
use crate::error::ClientError;

#[derive(Debug, Args)]
pub struct AttachArgs {
    /// The task (its id, from `orchestrate status`)
    task: String,
    #[command(flatten)]
    target: Target,
}

pub async fn run(client: &Client, a: AttachArgs) -> Result<(), ClientError> {
    let run = client.run(&a.target.resolve()?).await?;
    let paused_here = run.status == RunStatus::Running || run.status == RunStatus::Queued;
    if paused_here {
        let reason = Some(format!("paused while you work on task {}", a.task));
        client
            .transition(&run.id, "pause", reason, Default::default(), Vec::new())
            .await?;
    }
    let attached = attach_when_stopped(client, &run.id, &a.task).await?;
    crate::outln!(
        "Task {} is yours in {} (branch {}). Quit claude to hand it back.",
        a.task,
        attached.worktree,
        attached.branch
    );
    let ran = claude(&attached).await;
    let detached = client.detach(&run.id, &a.task, &attached.session).await?;
    match detached.status {
        orchestrator_proto::TaskStatus::Pending => crate::outln!(
            "Task {} goes back to the run where you left it; its worker continues from there.",
            a.task
        ),
        orchestrator_proto::TaskStatus::Done => crate::outln!(
            "You completed task {}; the run verifies and merges it.",
            a.task
        ),
        s => crate::outln!("Task {} is {s}.", a.task),
    }
    if paused_here {
        client
            .transition(&run.id, "resume", None, Default::default(), Vec::new())
            .await?;
        crate::outln!("The run goes on.");
    } else {
        crate::outln!(
            "The run stays {}: `orchestrate resume` goes on.",
            run.status
        );
    }
    ran
}

/// Attaches once the run's workers have stopped (a pause takes a moment to wind them down).
async fn attach_when_stopped(
    client: &Client,
    run: &str,
    task: &str,
) -> Result<orchestrator_proto::session::Attached, ClientError> {
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        match client.attach(run, task).await {
            Err(ClientError::Api(e))
                if e.message.contains("whose workers have stopped") && Instant::now() < end =>
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => return other,
        }
    }
}

/// `claude --resume <session>` in the worktree, interactive, with the run's MCP server.
async fn claude(a: &orchestrator_proto::session::Attached) -> Result<(), ClientError> {
    let bin = std::env::var_os("ORCHESTRATOR_CLAUDE_BIN").unwrap_or_else(|| "claude".into());
    let config = serde_json::json!({"mcpServers": {"orch": {
        "type": "http",
        "url": a.mcp_url,
        "headers": {"Authorization": "Bearer ${ORCHESTRATOR_MCP_TOKEN}"},
    }}});
    let status = tokio::process::Command::new(&bin)
        .args([
            "--resume",
            &a.claude_session,
            "--strict-mcp-config",
            "--mcp-config",
        ])
        .arg(config.to_string())
        .env("ORCHESTRATOR_MCP_TOKEN", &a.token)
        .current_dir(&a.worktree)
        .status()
        .await
        .map_err(|e| {
            ClientError::usage(
                format!("cannot run {}: {e}", std::path::Path::new(&bin).display()),
                "install Claude Code or set ORCHESTRATOR_CLAUDE_BIN; the task was handed back",
            )
        })?;
    if !status.success() {
        crate::outln!("claude ended with {status}.");
    }
    Ok(())
}
