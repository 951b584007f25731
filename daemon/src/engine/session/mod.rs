//! One agent session as a process: spawn it with stdout and stderr going to files under
//! `.orchestrator/sessions/<session>/`, follow the stdout file as it grows, and stop the whole
//! process group on cancel, when our MCP server failed to connect (the session would have no
//! tools), or when a watchdog fires (no `system/init` in time, no sign of life, past the
//! wall-clock limit). When the leader exits, whatever of its group is left is ended
//! (`process::end_group`): a session's leftovers never act on its worktree after it is over.
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
use crate::agents::stream::Outcome;

mod gate;
mod reading;
pub use reading::MAX_LINE;
use reading::*;

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
    /// The model it ran, as its init line said.
    pub model: Option<String>,
    pub tool_calls: u64,
    /// Which CLI wrote the output (how its lines read).
    pub agent: crate::agents::AgentKind,
    /// What the model said last (Codex's answer, which its result line does not carry).
    pub said: Option<String>,
    /// The last warning or error the CLI printed without ending (Codex's `error` lines).
    pub warning: Option<String>,
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
                "{who} exited (code {}) without a result{}",
                self.exit_code.map_or("none".into(), |c| c.to_string()),
                self.warning
                    .as_deref()
                    .map(|w| format!(": {w}"))
                    .unwrap_or_default()
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
    /// Which CLI the session runs (how its output reads).
    pub agent: crate::agents::AgentKind,
    /// Told each tool call ("Bash npm test") as it is read (`--verbose` runs).
    pub tools: Option<ToolSink>,
}

/// Receives a one-line summary of each tool call a session makes.
pub type ToolSink = std::sync::Arc<dyn Fn(&str) + Send + Sync>;

/// The session's row, and its MCP calls (a sign of life as good as output).
#[derive(Clone)]
pub struct Record {
    pub db: crate::store::Db,
    pub session: crate::ids::SessionId,
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
    let mut gate = gate::Gate::arm(&mut cmd)?;
    let child = cmd.spawn()?;
    let pid = child.id().map(|p| p as i32);
    let identity = pid.and_then(Identity::of);
    // The agent waits at the gate until its process is recorded: a daemon killed before
    // that leaves nothing running that a restart would not know of.
    let recorded = match (&watch.record, identity) {
        (Some(r), Some(id)) => {
            let (s, place) = (r.session.clone(), r.place.clone());
            let set = r.db.call(move |c| {
                crate::store::sessions::set_process(c, &s, id.pid, id.start, place.as_ref())
            });
            set.await
                .inspect_err(|e| {
                    tracing::warn!(session = %r.session, cause = %e,
                        "cannot record the session's process; it is not started")
                })
                .is_ok()
        }
        (Some(_), None) => false,
        (None, _) => true,
    };
    if let Some(mut g) = gate.take() {
        g.spawned();
        if recorded {
            g.open();
        }
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

/// What the output of a session of `agent` whose process is gone says, from `offset` on.
pub async fn finalize(
    dir: &Path,
    offset: u64,
    agent: crate::agents::AgentKind,
) -> std::io::Result<Ended> {
    let (out_path, _) = files(dir);
    let mut ended = Ended {
        agent,
        ..Ended::default()
    };
    let mut file = match tokio::fs::File::open(&out_path).await {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(ended),
        Err(e) => return Err(e),
    };
    file.seek(std::io::SeekFrom::Start(offset)).await?;
    let mut reader = tokio::io::BufReader::new(file);
    let mut line = Line::default();
    drain(&mut reader, &mut line, &mut ended, &Sinks::default()).await?;
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
    reader: tokio::io::BufReader<tokio::fs::File>,
    offset: u64,
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
    let look = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(look);
    let stop = |sig| pgid.map(|p| nix::sys::signal::killpg(p, sig));
    let began = Instant::now()
        .checked_sub(elapsed)
        .unwrap_or_else(Instant::now);
    let far = Duration::from_secs(100 * 365 * 24 * 3600);
    let deadline = tokio::time::sleep(watch.limits.wall.map_or(far, |w| w.saturating_sub(elapsed)));
    tokio::pin!(deadline);
    // Armed once SIGTERM was sent: SIGKILL follows after the grace period.
    let kill = tokio::time::sleep(far);
    tokio::pin!(kill);
    let never = CancellationToken::new();
    let (cancel, detach) = (watch.cancel, watch.detach.unwrap_or(&never));
    let (mut stopping, mut signalled) = (false, false);
    let mut r = Reading::new(reader, offset, started, watch);
    loop {
        tokio::select! {
            status = async {
                match &mut proc {
                    Proc::Child(c) => c.wait().await.map(|s| s.code()),
                    Proc::Adopted(_) => std::future::pending().await,
                }
            } => {
                end_leftovers(pgid).await;
                guard.pgid = None;
                r.ended.exit_code = status?;
                return r.last(Instant::now()).await;
            }
            _ = cancel.cancelled(), if !r.ended.cancelled => {
                r.ended.cancelled = true;
            }
            _ = detach.cancelled(), if !signalled => {
                guard.pgid = None;
                r.ended.detached = true;
                let at = r.last_sign;
                return r.last(at).await;
            }
            _ = &mut deadline, if !r.ended.timed_out => r.past_wall(),
            _ = &mut kill, if stopping => {
                stop(nix::sys::signal::Signal::SIGKILL);
                stopping = false;
            }
            () = &mut look => {
                r.look().await?;
                look.as_mut().reset(tokio::time::Instant::now() + r.every);
                if let Proc::Adopted(id) = &proc
                    && !id.alive()
                {
                    end_leftovers(pgid).await;
                    guard.pgid = None;
                    return r.last(Instant::now()).await;
                }
                r.keep(began).await;
            }
        }
        let e = &r.ended;
        if !signalled && (e.cancelled || e.timed_out || e.mcp_failed || e.watchdog.is_some()) {
            stop(nix::sys::signal::Signal::SIGTERM);
            signalled = true;
            stopping = true;
            kill.as_mut().reset(tokio::time::Instant::now() + GRACE);
        }
    }
}

/// A session is over with its leader: what it left running (a git command finishing, a
/// server it started) ends before anything reads its worktree.
async fn end_leftovers(pgid: Option<nix::unistd::Pid>) {
    if let Some(p) = pgid {
        super::process::end_group(p.as_raw()).await;
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
        let all = finalize(dir.path(), 0, Default::default())
            .await
            .expect("finalize");
        assert_eq!(all.agent_session.as_deref(), Some("abc"));
        assert_eq!(all.outcome.as_ref().map(|o| o.cost_usd), Some(0.5));
        let rest = finalize(dir.path(), init.len() as u64, Default::default())
            .await
            .expect("finalize");
        assert!(
            rest.agent_session.is_none(),
            "the init line was before the offset"
        );
        assert!(rest.outcome.is_some());
        let none = finalize(&dir.path().join("missing"), 0, Default::default())
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
            drain(&mut reader, &mut line, &mut ended, &Sinks::default())
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
        let n = drain(&mut reader, &mut line, &mut ended, &Sinks::default())
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
