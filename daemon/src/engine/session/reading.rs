//! Reading a session's stdout as it grows: complete lines only (a line longer than
//! [`MAX_LINE`] is skipped, never held whole), each parsed as it arrives into what the session
//! [`Ended`] with; how far it was read and when the session last showed a sign of life,
//! recorded now and then; how soon to look again; and the watchdogs that judge it.

use std::time::{Duration, Instant};

use super::*;
use crate::agents::stream::{StreamEvent, parse_line};

/// How often the stdout file is looked at for new lines while the process writes them.
const FOLLOW: Duration = Duration::from_millis(50);

/// The longest wait between looks at a quiet stdout: each look that finds nothing doubles
/// the wait from [`FOLLOW`] up to this; a line brings it back. A session thinking for
/// minutes costs a few looks a second, not twenty (each look is a trip to the blocking
/// pool; profiled, idle planners' looks were a hundredth of a busy daemon's CPU). The end
/// of the process is seen at once whatever the wait (`wait` on the child).
const FOLLOW_IDLE: Duration = Duration::from_millis(400);

/// A session's output as it is followed: how far it was read, what it said so far, and when
/// the session last showed a sign of life.
pub(super) struct Reading<'w> {
    pub(super) reader: tokio::io::BufReader<tokio::fs::File>,
    pub(super) line: Line,
    pub(super) ended: Ended,
    pub(super) offset: u64,
    pub(super) last_sign: Instant,
    /// How long until the next look ([`FOLLOW`] to [`FOLLOW_IDLE`]).
    pub(super) every: Duration,
    /// The offset last written to the database, and when.
    pub(super) recorded: (u64, Instant),
    /// The agent said it started (its init line), so the startup watchdog is over.
    pub(super) seen_init: bool,
    pub(super) watch: Watch<'w>,
}

impl<'w> Reading<'w> {
    pub(super) fn new(
        reader: tokio::io::BufReader<tokio::fs::File>,
        offset: u64,
        started: bool,
        watch: Watch<'w>,
    ) -> Self {
        Reading {
            reader,
            line: Line::default(),
            ended: Ended {
                agent: watch.agent,
                ..Ended::default()
            },
            offset,
            last_sign: Instant::now(),
            every: FOLLOW,
            recorded: (offset, Instant::now()),
            seen_init: started,
            watch,
        }
    }

    /// The session ran past its wall-clock limit: the watchdog says so (it is stopped).
    pub(super) fn past_wall(&mut self) {
        self.ended.timed_out = true;
        if let Some(w) = self.watch.limits.wall {
            self.ended.watchdog.get_or_insert_with(|| {
                format!(
                    "the session ran past its wall-clock limit of {} (`[supervision] \
                     task_timeout_secs`)",
                    human(w)
                )
            });
        }
    }

    /// Reads what the session wrote since the last look; new output is a sign of life.
    pub(super) async fn look(&mut self) -> std::io::Result<()> {
        let sinks = Sinks::of(&self.watch);
        let n = drain(&mut self.reader, &mut self.line, &mut self.ended, &sinks).await?;
        if n > 0 {
            self.offset += n;
            self.last_sign = Instant::now();
            self.every = FOLLOW;
        } else {
            self.every = (self.every * 2).min(FOLLOW_IDLE);
        }
        if !self.seen_init
            && self.ended.agent == crate::agents::AgentKind::Codex
            && let (Some(r), Some(thread)) = (&self.watch.record, &self.ended.agent_session)
        {
            // A Codex thread id is known only now: recorded, so the worker can be continued.
            let (s, thread) = (r.session.clone(), thread.clone());
            let _ =
                r.db.call(move |c| crate::store::sessions::set_agent_session(c, &s, &thread))
                    .await;
        }
        self.seen_init |= self.ended.agent_session.is_some();
        Ok(())
    }

    /// Between looks: an MCP call is a sign of life too, the offset is recorded now and then,
    /// and the watchdogs judge.
    pub(super) async fn keep(&mut self, began: Instant) {
        if let Some(r) = &self.watch.record
            && let Some(t) = r.activity.last(&r.session)
            && t > self.last_sign
        {
            self.last_sign = t;
        }
        if self.offset != self.recorded.0 && self.recorded.1.elapsed() >= RECORD_EVERY {
            record(&self.watch, self.offset, self.last_sign).await;
            self.recorded = (self.offset, Instant::now());
        }
        if self.ended.watchdog.is_none() {
            let limits = &self.watch.limits;
            self.ended.watchdog = watchdog(limits, self.seen_init, began, self.last_sign);
        }
    }

    /// The session is over (or left running): the rest of its output, recorded as of `at`.
    pub(super) async fn last(mut self, at: Instant) -> std::io::Result<Ended> {
        let sinks = Sinks::of(&self.watch);
        self.offset += drain(&mut self.reader, &mut self.line, &mut self.ended, &sinks).await?;
        record(&self.watch, self.offset, at).await;
        Ok(self.ended)
    }
}

/// Why a watchdog stops the session now, if one does.
pub(super) fn watchdog(
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
            "the session wrote no start line (claude's `system/init`, codex's `thread.started`) \
             within {} of starting (`[supervision] startup_secs`)",
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

pub(super) fn human(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=119 => format!("{s}s"),
        120..=7199 => format!("{}m", s / 60),
        _ => format!("{}h", s / 3600),
    }
}

/// Writes the parse position and the last sign of life to the session's row.
pub(super) async fn record(watch: &Watch<'_>, offset: u64, last_sign: Instant) {
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

/// Where what a session's lines say goes besides its [`Ended`]: the account's usage, and
/// (for `--verbose` runs) each tool call.
#[derive(Default)]
pub struct Sinks<'a> {
    pub usage: Option<&'a crate::usage::Usage>,
    pub tools: Option<&'a ToolSink>,
}

impl<'a> Sinks<'a> {
    fn of(w: &'a Watch<'_>) -> Self {
        Sinks {
            usage: w.usage,
            tools: w.tools.as_ref(),
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
    pub(super) buf: Vec<u8>,
    /// Bytes of the current line not kept (it is longer than [`MAX_LINE`]).
    skipped: u64,
}

/// Reads every complete line written so far; returns the bytes consumed (of complete lines:
/// a restart reads on from there).
pub(super) async fn drain(
    reader: &mut tokio::io::BufReader<tokio::fs::File>,
    line: &mut Line,
    ended: &mut Ended,
    sinks: &Sinks<'_>,
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
            handle(&text, ended, sinks);
        }
        line.buf.clear();
        line.skipped = 0;
    }
}

/// Acts on one complete line of the session's output (stream-json, or Codex's `--json`).
pub(super) fn handle(line: &str, ended: &mut Ended, sinks: &Sinks<'_>) {
    let usage = sinks.usage;
    let codex = ended.agent == crate::agents::AgentKind::Codex;
    let event = if codex {
        crate::agents::codex::events::parse_line(line)
    } else {
        parse_line(line)
    };
    match event {
        Some(StreamEvent::Init {
            session_id,
            model,
            mcp,
            ..
        }) => {
            ended.agent_session = Some(session_id);
            ended.model = model;
            ended.mcp_failed = mcp
                .iter()
                .any(|(name, connected)| name == SERVER_NAME && !connected);
        }
        Some(StreamEvent::ToolUse { name, what }) => {
            ended.tool_calls += 1;
            if let Some(t) = sinks.tools {
                t(&match what {
                    Some(w) => format!("{name} {w}"),
                    None => name,
                });
            }
        }
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
        Some(StreamEvent::Result(mut o)) => {
            if o.is_usage_limit()
                && let Some(u) = usage
            {
                if codex {
                    u.codex_limit_hit(o.text.as_deref().unwrap_or(""));
                } else {
                    u.limit_hit(None);
                }
            }
            if o.text.is_none() {
                o.text = ended.said.clone();
            }
            ended.outcome = Some(o);
        }
        Some(StreamEvent::Message(text)) => ended.said = Some(text),
        Some(StreamEvent::Warning(text)) => ended.warning = Some(text),
        None => {}
    }
}
