//! One agent session as a process: spawn it with stdout and stderr going to files under
//! `.orchestrator/sessions/<session>/`, follow the stdout file as it grows (so a restarted
//! daemon could pick it up where it left off), and stop the whole process group on cancel or
//! when our MCP server failed to connect (the session would have no tools).

use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncSeekExt};
use tokio_util::sync::CancellationToken;

use crate::agents::SERVER_NAME;
use crate::agents::stream::{Outcome, StreamEvent, parse_line};

/// How often the stdout file is checked for new lines while the process runs.
const FOLLOW: Duration = Duration::from_millis(50);

/// How a session ended.
#[derive(Debug, Default)]
pub struct Ended {
    /// The `result` line, if the session wrote one.
    pub outcome: Option<Outcome>,
    /// Our MCP server was reported failed in `system/init`; the session was stopped.
    pub mcp_failed: bool,
    /// Stopped because the run was paused, cancelled or the daemon stopped.
    pub cancelled: bool,
    /// Stopped because it ran past its wall-clock limit.
    pub timed_out: bool,
    pub exit_code: Option<i32>,
    /// Claude's own session id (for `--resume`).
    pub agent_session: Option<String>,
    pub tool_calls: u64,
}

/// The files of one session.
pub fn files(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join("stdout.jsonl"), dir.join("stderr.log"))
}

/// A stopped session gets this long after SIGTERM before its group gets SIGKILL.
const GRACE: Duration = Duration::from_secs(5);

/// Runs `cmd` to the end (or until `cancel`, or past `limit`), following its stdout file;
/// what the stream says of the account's usage goes to `usage` as it arrives.
pub async fn run(
    mut cmd: tokio::process::Command,
    dir: &Path,
    cancel: &CancellationToken,
    limit: Option<Duration>,
    usage: Option<&crate::usage::Usage>,
) -> std::io::Result<Ended> {
    tokio::fs::create_dir_all(dir).await?;
    let (out_path, err_path) = files(dir);
    let out = std::fs::File::create(&out_path)?;
    let err = std::fs::File::create(&err_path)?;
    cmd.stdout(out).stderr(err);
    let mut child = cmd.spawn()?;
    let pgid = child.id().map(|p| nix::unistd::Pid::from_raw(p as i32));
    // If this task is dropped (the daemon stops), the session's process group goes with it.
    let mut guard = GroupGuard(pgid);
    let mut reader = tokio::io::BufReader::new(tokio::fs::File::open(&out_path).await?);
    let mut ended = Ended::default();
    let mut line = String::new();
    let mut tick = tokio::time::interval(FOLLOW);
    let stop = |sig| {
        if let Some(p) = pgid {
            let _ = nix::sys::signal::killpg(p, sig);
        }
    };
    let far = Duration::from_secs(100 * 365 * 24 * 3600);
    let deadline = tokio::time::sleep(limit.unwrap_or(far));
    tokio::pin!(deadline);
    // Armed once SIGTERM was sent: SIGKILL follows after the grace period.
    let kill = tokio::time::sleep(far);
    tokio::pin!(kill);
    let (mut stopping, mut signalled) = (false, false);
    loop {
        tokio::select! {
            status = child.wait() => {
                guard.0 = None;
                ended.exit_code = status?.code();
                drain(&mut reader, &mut line, &mut ended, usage).await?;
                return Ok(ended);
            }
            _ = cancel.cancelled(), if !ended.cancelled => {
                ended.cancelled = true;
            }
            _ = &mut deadline, if !ended.timed_out => {
                ended.timed_out = true;
            }
            _ = &mut kill, if stopping => {
                stop(nix::sys::signal::Signal::SIGKILL);
                stopping = false;
            }
            _ = tick.tick() => {
                drain(&mut reader, &mut line, &mut ended, usage).await?;
            }
        }
        if !signalled && (ended.cancelled || ended.timed_out || ended.mcp_failed) {
            stop(nix::sys::signal::Signal::SIGTERM);
            signalled = true;
            stopping = true;
            kill.as_mut().reset(tokio::time::Instant::now() + GRACE);
        }
    }
}

/// Stops a session's process group when dropped before the process ended.
struct GroupGuard(Option<nix::unistd::Pid>);

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if let Some(p) = self.0 {
            let _ = nix::sys::signal::killpg(p, nix::sys::signal::Signal::SIGTERM);
        }
    }
}

/// Reads every complete line written so far.
async fn drain(
    reader: &mut tokio::io::BufReader<tokio::fs::File>,
    line: &mut String,
    ended: &mut Ended,
    usage: Option<&crate::usage::Usage>,
) -> std::io::Result<()> {
    loop {
        let n = reader.read_line(line).await?;
        if n == 0 {
            return Ok(());
        }
        if !line.ends_with('\n') {
            // A partial line: rewind and wait for the rest.
            reader.seek(std::io::SeekFrom::Current(-(n as i64))).await?;
            line.clear();
            return Ok(());
        }
        match parse_line(line) {
            Some(StreamEvent::Init {
                session_id, mcp, ..
            }) => {
                ended.agent_session = Some(session_id);
                ended.mcp_failed = mcp
                    .iter()
                    .any(|(name, status)| name == SERVER_NAME && status != "connected");
            }
            Some(StreamEvent::ToolUse { .. }) => ended.tool_calls += 1,
            Some(StreamEvent::RateLimit {
                status,
                kind,
                resets_at,
                utilization,
            }) => {
                if let Some(u) = usage {
                    u.rate_limit_event(&status, kind.as_deref(), resets_at, utilization);
                }
            }
            Some(StreamEvent::Result(o)) => {
                if o.is_usage_limit()
                    && let Some(u) = usage
                {
                    u.limit_hit(None);
                }
                ended.outcome = Some(o);
            }
            _ => {}
        }
        line.clear();
    }
}
