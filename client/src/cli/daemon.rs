//! `orchestrate daemon status|start|stop|restart|install|uninstall`. Once the service is
//! installed, start/stop/restart go through systemd or launchd (so the service manager's view
//! stays true); otherwise they act on the daemon directly. Workers outlive a stop or restart
//! and the next daemon re-attaches them.

use std::path::Path;
use std::time::{Duration, Instant};

use clap::{Args, Subcommand};

use super::Format;
use crate::client::Client;
use crate::error::ClientError;
use crate::output;
use orchestrator_proto::words::count;

#[derive(Debug, Args)]
pub struct DaemonArgs {
    #[command(subcommand)]
    command: DaemonCmd,
}

#[derive(Debug, Subcommand)]
enum DaemonCmd {
    /// Is the daemon running? Which version, where?
    Status(Format),
    /// Start the daemon (through systemd/launchd once installed)
    Start,
    /// Stop the daemon; runs are kept and running workers keep working (re-attached on start)
    Stop,
    /// Restart the daemon, e.g. after an upgrade; running workers are re-attached
    Restart,
    /// Run the daemon as a user service (systemd on Linux, launchd on macOS)
    Install,
    /// Remove the user service (orchestrate then starts the daemon on demand again)
    Uninstall,
}

/// Exit code of `daemon status` when no daemon answers (the LSB "program is not running").
pub const NOT_RUNNING: i32 = 3;

/// How long `daemon stop` waits for the socket to go away.
const STOP_DEADLINE: Duration = Duration::from_secs(10);

pub async fn run(a: &DaemonArgs, socket: &Path) -> Result<(), ClientError> {
    let client = Client::new(socket)?;
    match &a.command {
        DaemonCmd::Status(format) => status(&client, socket, format.json).await,
        DaemonCmd::Install => {
            // A daemon started on demand holds the socket: stop it so the service can take over.
            if client.health().await.is_ok() {
                let _ = client.shutdown().await;
                wait_gone(&client, socket).await?;
            }
            let data_dir = orchestrator_proto::locate::data_dir(None)
                .map_err(|e| ClientError::Autostart(e.to_string()))?;
            super::service::install(&data_dir)
        }
        DaemonCmd::Uninstall => super::service::uninstall(),
        DaemonCmd::Start => {
            let h = start(&client, socket).await?;
            crate::outln!(
                "orchestratord {} is running (pid {}); {}.",
                h.daemon_version,
                h.pid,
                count(h.active_runs, "active run")
            );
            Ok(())
        }
        DaemonCmd::Stop => {
            if stop(&client, socket).await? {
                crate::outln!(
                    "orchestratord stopped; running workers keep working until it starts again."
                );
            } else {
                crate::outln!("orchestratord is not running.");
            }
            Ok(())
        }
        DaemonCmd::Restart => restart(&client, socket).await,
    }
}

/// `daemon status`: what answers on the socket, or exit 3 when nothing does.
async fn status(client: &Client, socket: &Path, json: bool) -> Result<(), ClientError> {
    match client.health().await {
        Ok(h) if json => output::json(&h),
        Ok(h) => {
            print_health(&h);
            Ok(())
        }
        Err(ClientError::Unreachable { .. }) => {
            if json {
                output::json(&serde_json::json!({ "running": false, "socket": socket }))?;
            } else {
                crate::outln!(
                    "orchestratord is not running (nothing answers on {}).",
                    socket.display()
                );
                crate::outln!("  Any orchestrate command starts it.");
            }
            // Like `systemctl status`: 3 means "not running", so scripts can tell.
            std::process::exit(NOT_RUNNING);
        }
        Err(e) => Err(e),
    }
}

fn print_health(h: &orchestrator_proto::Health) {
    crate::outln!(
        "orchestratord {} is running (pid {}, protocol {}).",
        h.daemon_version,
        h.pid,
        h.protocol_version
    );
    crate::outln!("  socket       {}", h.socket);
    crate::outln!("  data         {}", h.data_dir);
    match &h.log_dir {
        Some(dir) => {
            crate::outln!(
                "  log          {dir}/ (orchestratord.<date>.log, one a day, a week kept)"
            )
        }
        None => crate::outln!("  log          stderr (journald under systemd)"),
    }
    crate::outln!(
        "  started      {} ({})",
        output::clock(h.started_at),
        output::ago(h.started_at)
    );
    crate::outln!("  active runs  {}", h.active_runs);
    match (h.reconciling, h.reconciled_in_ms) {
        (0, Some(ms)) => crate::outln!("  reconciled   every restored run, {ms} ms after start"),
        (0, None) => {}
        (n, _) => crate::outln!(
            "  reconciling  {}: re-attaching to their workers",
            count(n, "restored run")
        ),
    }
    crate::outln!("  mcp          {}", h.mcp_url);
    if h.agents_confined {
        crate::outln!("  agents       confined: your checkout is read-only to them");
    } else {
        crate::outln!(
            "  agents       confined: no (this system allows the daemon no mount namespace; \
             the daemon's log says why)"
        );
    }
}

/// `daemon restart`: through the service manager when it runs the daemon, else stop and start.
async fn restart(client: &Client, socket: &Path) -> Result<(), ClientError> {
    let before = client.health().await.ok().map(|h| h.pid);
    let h = if before.is_some() && managed(super::service::Action::Restart)? {
        // The service manager restarts it: wait for the new process to answer.
        wait_up(client, socket, |h| Some(h.pid) != before).await?
    } else {
        stop(client, socket).await?;
        start(client, socket).await?
    };
    let what = match before {
        Some(p) => format!("restarted (pid {p} → pid {})", h.pid),
        None => format!("was not running; started (pid {})", h.pid),
    };
    let workers = if h.active_runs > 0 {
        ", their running workers re-attached"
    } else {
        ""
    };
    crate::outln!(
        "orchestratord {} {what}; {}{workers}.",
        h.daemon_version,
        count(h.active_runs, "active run")
    );
    Ok(())
}

/// Whether the installed service manager handles `action` (it ran it).
fn managed(action: super::service::Action) -> Result<bool, ClientError> {
    if !super::service::installed() {
        return Ok(false);
    }
    super::service::control(action)
}

/// Starts the daemon (the service, or on demand) and waits until it answers.
async fn start(client: &Client, socket: &Path) -> Result<orchestrator_proto::Health, ClientError> {
    if client.health().await.is_err() && managed(super::service::Action::Start)? {
        wait_up(client, socket, |_| true).await?;
    }
    // A daemon that has just started may still drop a first connection: poll briefly.
    let started = crate::autostart::connect(socket).await?;
    wait_up(&started, socket, |_| true).await
}

/// Waits until a daemon the service manager started answers (and is the one `new` accepts).
async fn wait_up(
    client: &Client,
    socket: &Path,
    new: impl Fn(&orchestrator_proto::Health) -> bool,
) -> Result<orchestrator_proto::Health, ClientError> {
    let deadline = Instant::now() + STOP_DEADLINE;
    let mut pause = Duration::from_millis(2);
    loop {
        if let Ok(h) = client.health().await
            && new(&h)
        {
            return Ok(h);
        }
        if Instant::now() >= deadline {
            return Err(ClientError::Autostart(format!(
                "the service manager started orchestratord, but nothing new answers on {} after {}s; \
                 see `journalctl --user -u orchestratord` (Linux) or its log file (macOS)",
                socket.display(),
                STOP_DEADLINE.as_secs()
            )));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Stops the daemon (the service, or over the API); `false` when it was not running.
async fn stop(client: &Client, socket: &Path) -> Result<bool, ClientError> {
    if client.health().await.is_err() {
        return Ok(false);
    }
    if !managed(super::service::Action::Stop)? {
        match client.shutdown().await {
            Ok(()) => {}
            Err(ClientError::Unreachable { .. }) => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    wait_gone(client, socket).await?;
    Ok(true)
}

/// Waits until nothing answers on the socket any more.
async fn wait_gone(client: &Client, socket: &Path) -> Result<(), ClientError> {
    let deadline = Instant::now() + STOP_DEADLINE;
    let mut pause = Duration::from_millis(2);
    // Any answer at all (even from a daemon of another protocol) means it is still up.
    while !matches!(client.health().await, Err(ClientError::Unreachable { .. })) {
        if Instant::now() >= deadline {
            return Err(ClientError::Autostart(format!(
                "orchestratord on {} accepted the stop but still answers after {}s",
                socket.display(),
                STOP_DEADLINE.as_secs()
            )));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(50));
    }
    Ok(())
}
