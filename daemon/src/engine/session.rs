//! One agent session as a process: spawn it with stdout and stderr going to files under
//! `.orchestrator/sessions/<session>/`, follow the stdout file as it grows, and stop the whole
//! process group on cancel, when our MCP server failed to connect (the session would have no
//! tools), or when a watchdog fires (no `system/init` in time, no sign of life, past the
//! wall-clock limit).
//!
//! Sessions do not depend on the daemon: their output goes to files, they lead their own
//! process group, and when the daemon stops (`detach`) they are left running. The follower
//! records the process (pid and start time) and how far it parsed the output, so a restarted
//! daemon re-attaches ([`reattach`]) and reads on from there, or, if the process is gone,
//! finishes the session from what its output says ([`finalize`]).

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tokio::io::AsyncSeekExt;
use tokio_util::sync::CancellationToken;

use super::process::Identity;
use super::watch::{Activity, Limits};
use crate::agents::SERVER_NAME;
use crate::agents::stream::{Outcome, StreamEvent, parse_line};

/// How often the stdout file is checked for new lines while the process runs.
const FOLLOW: Duration = Duration::from_millis(50);

/// How often the parse position is written to the database while lines arrive.
const RECORD_EVERY: Duration = Duration::from_secs(1);

/// A stopped session gets this long after SIGTERM before its group gets SIGKILL.
pub const GRACE: Duration = Duration::from_secs(5);

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
    /// A watchdog stopped it; why, for the task's next attempt and the log.
    pub watchdog: Option<String>,
    /// The daemon is stopping and left the session running (a restarted daemon re-attaches).
    pub detached: bool,
    pub exit_code: Option<i32>,
    /// Claude's own session id (for `--resume`).
    pub agent_session: Option<String>,
    pub tool_calls: u64,
}

impl Ended {
    /// Why a session that did not do its job ended, in one sentence for the log and the next
    /// attempt: `who` names it ("the session", "the planner session"), `instead` what it
    /// should have done ("calling complete_task").
    pub fn why(&self, who: &str, instead: &str) -> String {
        if self.mcp_failed {
            return format!(
                "{who} could not reach the orchestrator's MCP server, so it had no tools"
            );
        }
        if let Some(w) = &self.watchdog {
            return w.clone();
        }
        match &self.outcome {
            Some(o) if o.is_error => {
                format!("{who} failed: {}", o.text.as_deref().unwrap_or(&o.subtype))
            }
            Some(_) => format!("{who} ended without {instead}"),
            None => format!(
                "{who} exited (code {}) without a result",
                self.exit_code.map_or("none".into(), |c| c.to_string())
            ),
        }
    }
}

/// The files of one session.
pub fn files(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join("stdout.jsonl"), dir.join("stderr.log"))
}

/// What to watch a session for, and where to record it.
pub struct Watch<'a> {
    /// Stop the session (pause, cancel, a review's end).
    pub cancel: &'a CancellationToken,
    /// The daemon is stopping: leave the session running. `None`: stop it with the daemon.
    pub detach: Option<&'a CancellationToken>,
    pub limits: Limits,
    /// The account's usage, fed from the stream as lines arrive.
    pub usage: Option<&'a crate::usage::Usage>,
    /// Record the process and the parse position in the session's row.
    pub record: Option<Record>,
}

/// The session's row, and its MCP calls (a sign of life as good as output).
#[derive(Clone)]
pub struct Record {
    pub db: crate::store::Db,
    pub session: String,
    /// Where a worker works (the executor's JSON), recorded with the process.
    pub place: Option<crate::store::sessions::WorkerPlace>,
    pub activity: Activity,
}

/// Runs `cmd` to the end (or until cancelled, detached or stopped by a watchdog), following
/// its stdout file. A `prompt` is written to `prompt.md` in `dir` (0600) and given to the
/// child as its stdin: never in argv, where `ps` shows it to every local user and the kernel
/// caps one argument at 128 KiB.
pub async fn run(
    mut cmd: tokio::process::Command,
    dir: &Path,
    prompt: Option<&str>,
    watch: Watch<'_>,
) -> std::io::Result<Ended> {
    if let Some(text) = prompt {
        let path = dir.join("prompt.md");
        let text = text.to_owned();
        let stdin = tokio::task::spawn_blocking(move || {
            use std::io::Write;
            crate::mirror::create_file(&path)?.write_all(text.as_bytes())?;
            std::fs::File::open(&path)
        })
        .await
        .map_err(std::io::Error::other)??;
        cmd.stdin(stdin);
    }
    let (out_path, err_path) = files(dir);
    // Never through a symlink a repository may have committed under `.orchestrator/`.
    let (out, err) = {
        let (o, e) = (out_path.clone(), err_path.clone());
        tokio::task::spawn_blocking(move || {
            Ok::<_, std::io::Error>((
                crate::mirror::create_file(&o)?,
                crate::mirror::create_file(&e)?,
            ))
        })
        .await
        .map_err(std::io::Error::other)??
    };
    cmd.stdout(out).stderr(err);
    let child = cmd.spawn()?;
    let pid = child.id().map(|p| p as i32);
    let identity = pid.and_then(Identity::of);
    if let (Some(r), Some(id)) = (&watch.record, identity) {
        let (s, place) = (r.session.clone(), r.place.clone());
        let _ =
            r.db.call(move |c| {
                crate::store::sessions::set_process(c, &s, id.pid, id.start, place.as_ref())
            })
            .await;
    }
    let reader = tokio::io::BufReader::new(tokio::fs::File::open(&out_path).await?);
    follow(
        Proc::Child(child),
        pid,
        reader,
        0,
        Duration::ZERO,
        false,
        watch,
    )
    .await
}

/// Follows a session a previous daemon started, still running as `id`, from `offset` bytes
/// into its stdout; `elapsed` is how long it has been running.
pub async fn reattach(
    id: Identity,
    dir: &Path,
    offset: u64,
    elapsed: Duration,
    watch: Watch<'_>,
) -> std::io::Result<Ended> {
    let (out_path, _) = files(dir);
    let mut file = tokio::fs::File::open(&out_path).await?;
    file.seek(std::io::SeekFrom::Start(offset)).await?;
    let reader = tokio::io::BufReader::new(file);
    // Its `system/init` was probably parsed before: the start-up watchdog is moot.
    follow(
        Proc::Adopted(id),
        Some(id.pid),
        reader,
        offset,
        elapsed,
        true,
        watch,
    )
    .await
}

/// What the output of a session whose process is gone says, from `offset` on.
pub async fn finalize(dir: &Path, offset: u64) -> std::io::Result<Ended> {
    let (out_path, _) = files(dir);
    let mut ended = Ended::default();
    let mut file = match tokio::fs::File::open(&out_path).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ended),
        Err(e) => return Err(e),
    };
    file.seek(std::io::SeekFrom::Start(offset)).await?;
    let mut reader = tokio::io::BufReader::new(file);
    let mut line = Line::default();
    drain(&mut reader, &mut line, &mut ended, None).await?;
    Ok(ended)
}

/// The session's process: our child, or one a previous daemon started.
enum Proc {
    Child(tokio::process::Child),
    Adopted(Identity),
}

#[allow(clippy::too_many_arguments)]
async fn follow(
    mut proc: Proc,
    pid: Option<i32>,
    mut reader: tokio::io::BufReader<tokio::fs::File>,
    mut offset: u64,
    elapsed: Duration,
    started: bool,
    watch: Watch<'_>,
) -> std::io::Result<Ended> {
    let pgid = pid.map(nix::unistd::Pid::from_raw);
    // If this task is dropped (other than while detaching), the process group goes with it.
    let mut guard = GroupGuard {
        pgid,
        detach: watch.detach.cloned(),
    };
    let mut ended = Ended::default();
    let mut line = Line::default();
    let mut tick = tokio::time::interval(FOLLOW);
    let stop = |sig| {
        if let Some(p) = pgid {
            let _ = nix::sys::signal::killpg(p, sig);
        }
    };
    let began = Instant::now()
        .checked_sub(elapsed)
        .unwrap_or_else(Instant::now);
    let mut last_sign = Instant::now();
    let mut recorded = (offset, Instant::now());
    let far = Duration::from_secs(100 * 365 * 24 * 3600);
    let deadline = tokio::time::sleep(watch.limits.wall.map_or(far, |w| w.saturating_sub(elapsed)));
    tokio::pin!(deadline);
    // Armed once SIGTERM was sent: SIGKILL follows after the grace period.
    let kill = tokio::time::sleep(far);
    tokio::pin!(kill);
    let never = CancellationToken::new();
    let detach = watch.detach.unwrap_or(&never);
    let (mut stopping, mut signalled) = (false, false);
    let mut seen_init = started;
    loop {
        tokio::select! {
            status = async {
                match &mut proc {
                    Proc::Child(c) => c.wait().await.map(|s| s.code()),
                    Proc::Adopted(_) => std::future::pending().await,
                }
            } => {
                guard.pgid = None;
                ended.exit_code = status?;
                offset += drain(&mut reader, &mut line, &mut ended, watch.usage).await?;
                record(&watch, offset, Instant::now()).await;
                return Ok(ended);
            }
            _ = watch.cancel.cancelled(), if !ended.cancelled => {
                ended.cancelled = true;
            }
            _ = detach.cancelled(), if !signalled => {
                guard.pgid = None;
                ended.detached = true;
                offset += drain(&mut reader, &mut line, &mut ended, watch.usage).await?;
                record(&watch, offset, last_sign).await;
                return Ok(ended);
            }
            _ = &mut deadline, if !ended.timed_out => {
                ended.timed_out = true;
                if let Some(w) = watch.limits.wall {
                    ended.watchdog.get_or_insert_with(|| format!(
                        "the session ran past its wall-clock limit of {} (`[supervision] task_timeout_secs`)",
                        human(w)));
                }
            }
            _ = &mut kill, if stopping => {
                stop(nix::sys::signal::Signal::SIGKILL);
                stopping = false;
            }
            _ = tick.tick() => {
                let n = drain(&mut reader, &mut line, &mut ended, watch.usage).await?;
                if n > 0 {
                    offset += n;
                    last_sign = Instant::now();
                }
                seen_init |= ended.agent_session.is_some();
                if let Proc::Adopted(id) = &proc
                    && !id.alive()
                {
                    guard.pgid = None;
                    offset += drain(&mut reader, &mut line, &mut ended, watch.usage).await?;
                    record(&watch, offset, Instant::now()).await;
                    return Ok(ended);
                }
                if let Some(r) = &watch.record
                    && let Some(t) = r.activity.last(&r.session)
                    && t > last_sign
                {
                    last_sign = t;
                }
                if offset != recorded.0 && recorded.1.elapsed() >= RECORD_EVERY {
                    record(&watch, offset, last_sign).await;
                    recorded = (offset, Instant::now());
                }
                if ended.watchdog.is_none() {
                    ended.watchdog = watchdog(&watch.limits, seen_init, began, last_sign);
                }
            }
        }
        if !signalled
            && (ended.cancelled || ended.timed_out || ended.mcp_failed || ended.watchdog.is_some())
        {
            stop(nix::sys::signal::Signal::SIGTERM);
            signalled = true;
            stopping = true;
            kill.as_mut().reset(tokio::time::Instant::now() + GRACE);
        }
    }
}

/// Why a watchdog stops the session now, if one does.
fn watchdog(
    limits: &Limits,
    seen_init: bool,
    began: Instant,
    last_sign: Instant,
) -> Option<String> {
    if !seen_init
        && let Some(s) = limits.startup
        && began.elapsed() > s
    {
        return Some(format!(
            "the session wrote no `system/init` within {} of starting (`[supervision] startup_secs`)",
            human(s)
        ));
    }
    if let Some(s) = limits.stall
        && last_sign.elapsed() > s
    {
        return Some(format!(
            "the session stalled: no output and no MCP call for {} (`[supervision] stall_secs`)",
            human(s)
        ));
    }
    None
}

fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        _ => format!("{}h", s / 3600),
    }
}

/// Writes the parse position and the last sign of life to the session's row.
async fn record(watch: &Watch<'_>, offset: u64, last_sign: Instant) {
    let Some(r) = &watch.record else { return };
    let at = crate::store::time_text::now()
        - time::Duration::try_from(last_sign.elapsed()).unwrap_or(time::Duration::ZERO);
    let s = r.session.clone();
    if let Err(e) =
        r.db.call(move |c| crate::store::sessions::set_followed(c, &s, offset, at))
            .await
    {
        tracing::warn!(session = %r.session, cause = %e, "cannot record a session's progress");
    }
}

/// Stops a session's process group when dropped before the process ended, unless the daemon
/// is detaching from its sessions.
struct GroupGuard {
    pgid: Option<nix::unistd::Pid>,
    detach: Option<CancellationToken>,
}

impl Drop for GroupGuard {
    fn drop(&mut self) {
        if self.detach.as_ref().is_some_and(|d| d.is_cancelled()) {
            return;
        }
        if let Some(p) = self.pgid {
            let _ = nix::sys::signal::killpg(p, nix::sys::signal::Signal::SIGTERM);
        }
    }
}

/// Lines longer than this are skipped, not parsed (a model printing a 50 MB line must not
/// cost the daemon 50 MB per session); none of the events the daemon acts on comes close.
pub const MAX_LINE: usize = 4 << 20;

/// The line being read: bytes up to the next `\n`, kept across reads, so a file that ends
/// inside a line (or inside a multibyte character) is simply read on later.
#[derive(Default)]
pub struct Line {
    buf: Vec<u8>,
    /// Bytes of the current line not kept (it is longer than [`MAX_LINE`]).
    skipped: u64,
}

/// Reads every complete line written so far; returns the bytes consumed (of complete lines:
/// a restart reads on from there).
async fn drain(
    reader: &mut tokio::io::BufReader<tokio::fs::File>,
    line: &mut Line,
    ended: &mut Ended,
    usage: Option<&crate::usage::Usage>,
) -> std::io::Result<u64> {
    use tokio::io::AsyncBufReadExt;
    let mut consumed = 0u64;
    loop {
        let chunk = reader.fill_buf().await?;
        if chunk.is_empty() {
            return Ok(consumed);
        }
        let (part, complete) = match chunk.iter().position(|b| *b == b'\n') {
            Some(i) => (&chunk[..=i], true),
            None => (chunk, false),
        };
        let n = part.len();
        if line.buf.len() + n <= MAX_LINE {
            line.buf.extend_from_slice(part);
        } else {
            line.skipped += (line.buf.len() + n) as u64;
            line.buf.clear();
        }
        reader.consume(n);
        if !complete {
            continue;
        }
        consumed += line.skipped + line.buf.len() as u64;
        if line.skipped > 0 {
            tracing::warn!(
                bytes = line.skipped,
                "skipped a session output line over {MAX_LINE} bytes"
            );
        } else {
            let text = String::from_utf8_lossy(&line.buf);
            handle(&text, ended, usage);
        }
        line.buf.clear();
        line.skipped = 0;
    }
}

/// Acts on one complete stream-json line.
fn handle(line: &str, ended: &mut Ended, usage: Option<&crate::usage::Usage>) {
    match parse_line(line) {
        Some(StreamEvent::Init {
            session_id, mcp, ..
        }) => {
            ended.agent_session = Some(session_id);
            ended.mcp_failed = mcp
                .iter()
                .any(|(name, connected)| name == SERVER_NAME && !connected);
        }
        Some(StreamEvent::ToolUse { .. }) => ended.tool_calls += 1,
        Some(StreamEvent::RateLimit {
            rejected,
            kind,
            resets_at,
            utilization,
        }) => {
            if let Some(u) = usage {
                u.rate_limit_event(rejected, kind.as_deref(), resets_at, utilization);
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdogs_fire_on_their_own_conditions() {
        let limits = Limits {
            stall: Some(Duration::from_secs(10)),
            startup: Some(Duration::from_secs(5)),
            wall: None,
        };
        let now = Instant::now();
        let ago = |s| now - Duration::from_secs(s);
        assert_eq!(watchdog(&limits, false, ago(1), ago(1)), None);
        let w = watchdog(&limits, false, ago(6), ago(1)).expect("no init");
        assert!(w.contains("system/init"), "{w}");
        assert_eq!(watchdog(&limits, true, ago(60), ago(9)), None);
        let w = watchdog(&limits, true, ago(60), ago(11)).expect("stalled");
        assert!(w.contains("stalled"), "{w}");
        assert_eq!(
            watchdog(&Limits::NONE, false, ago(99_999), ago(99_999)),
            None
        );
    }

    #[tokio::test]
    async fn finalize_reads_the_result_after_the_offset() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (out, _) = files(dir.path());
        let init = "{\"type\":\"system\",\"subtype\":\"init\",\"session_id\":\"abc\",\"mcp_servers\":[]}\n";
        let result = "{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":false,\"result\":\"ok\",\"total_cost_usd\":0.5}\n";
        std::fs::write(&out, format!("{init}{result}{{\"type\":\"partial")).expect("write");
        let all = finalize(dir.path(), 0).await.expect("finalize");
        assert_eq!(all.agent_session.as_deref(), Some("abc"));
        assert_eq!(all.outcome.as_ref().map(|o| o.cost_usd), Some(0.5));
        let rest = finalize(dir.path(), init.len() as u64)
            .await
            .expect("finalize");
        assert!(
            rest.agent_session.is_none(),
            "the init line was before the offset"
        );
        assert!(rest.outcome.is_some());
        let none = finalize(&dir.path().join("missing"), 0)
            .await
            .expect("no file");
        assert!(none.outcome.is_none());
    }

    /// A line still being written that ends inside a multibyte character is read on once the
    /// rest arrives (it used to fail the follower, which then stopped a healthy worker), and a
    /// line over [`MAX_LINE`] is skipped whole without keeping it in memory.
    #[tokio::test]
    async fn split_characters_and_huge_lines_do_not_stop_the_follower() {
        use std::io::Write;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("out");
        let text = "{\"type\":\"assistant\",\"message\":{\"content\":[{\"type\":\"text\",\"text\":\"héllo ✓\"}]}}\n";
        let cut = text.find('✓').expect("check mark") + 1; // inside its three bytes
        let mut f = std::fs::File::create(&path).expect("create");
        f.write_all(&text.as_bytes()[..cut]).expect("write");
        let mut reader =
            tokio::io::BufReader::new(tokio::fs::File::open(&path).await.expect("open"));
        let (mut line, mut ended) = (Line::default(), Ended::default());
        assert_eq!(
            drain(&mut reader, &mut line, &mut ended, None)
                .await
                .expect("partial"),
            0
        );
        f.write_all(&text.as_bytes()[cut..])
            .expect("write the rest");
        let huge = format!(
            "{{\"type\":\"assistant\",\"x\":\"{}\"}}\n",
            "é".repeat(MAX_LINE)
        );
        f.write_all(huge.as_bytes()).expect("write a huge line");
        let result =
            "{\"type\":\"result\",\"subtype\":\"success\",\"is_error\":false,\"result\":\"ok\"}\n";
        f.write_all(result.as_bytes()).expect("write the result");
        let n = drain(&mut reader, &mut line, &mut ended, None)
            .await
            .expect("the rest");
        assert_eq!(n as usize, text.len() + huge.len() + result.len());
        assert!(
            line.buf.capacity() <= 2 * MAX_LINE,
            "the huge line was not kept"
        );
        assert_eq!(ended.outcome.map(|o| o.text), Some(Some("ok".into())));
    }
}
