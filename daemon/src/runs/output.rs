//! A task's worker output for `orchestrate tail`: the newest worker session of the task, its
//! stdout file read from an offset — complete lines only, at most [`CHUNK`] a call, a line
//! longer than [`LINE_MAX`] replaced by a note (a worker printing a 50 MB line costs the reader
//! nothing) — never through a symlink a repository may have committed under `.orchestrator/`.

use std::io::{BufRead, Read, Seek};
use std::path::Path;

use orchestrator_proto::session::TaskOutput;

use super::{RunError, Runs};
use crate::ids::{RunId, TaskId};

/// The most of a session's output one call reads.
const CHUNK: u64 = 1 << 20;
/// Longer lines are not sent, only said.
const LINE_MAX: usize = 64 << 10;

impl Runs {
    /// The task's newest worker session's output lines from byte `after`.
    pub async fn task_output(
        &self,
        run: &RunId,
        task: &TaskId,
        after: u64,
    ) -> Result<TaskOutput, RunError> {
        let row = self.get(run).await?;
        let (r, t) = (run.clone(), task.clone());
        let exists = self
            .inner
            .db
            .call(move |c| crate::store::board::task_exists(c, &r, &t))
            .await?;
        if !exists {
            return Err(
                RunError::not_found(format!("run {run} has no task {task:?}"))
                    .hint("`orchestrate status` lists the run's tasks"),
            );
        }
        let (r, t) = (run.clone(), task.clone());
        let session = self
            .inner
            .db
            .call(move |c| crate::store::sessions::last_worker(c, &r, &t))
            .await?;
        let Some(s) = session else {
            return Ok(TaskOutput {
                session: None,
                agent: row.options.models.worker_agent,
                offset: 0,
                lines: Vec::new(),
                live: false,
            });
        };
        let dir = crate::mirror::session_dir(
            Path::new(&row.project),
            &self.inner.engine.data_dir,
            run,
            &s.id,
        );
        let file = crate::engine::session::files(&dir).0;
        let shown = file.display().to_string();
        let (lines, offset) = tokio::task::spawn_blocking(move || read_lines(&file, after))
            .await
            .map_err(|e| RunError::Io {
                path: shown,
                source: std::io::Error::other(e),
            })?;
        Ok(TaskOutput {
            session: Some(s.id.to_string()),
            agent: s.place.map(|p| p.agent).unwrap_or_default(),
            offset,
            lines,
            live: s.active,
        })
    }
}

/// The output file, never through a symlink.
fn open(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nix::libc::O_NOFOLLOW)
        .open(path)
}

/// Complete lines from `after` (at most [`CHUNK`] bytes' worth), and where the next read
/// starts. A missing file reads as nothing yet.
fn read_lines(path: &Path, after: u64) -> (Vec<String>, u64) {
    let Ok(mut f) = open(path) else {
        return (Vec::new(), after);
    };
    if f.seek(std::io::SeekFrom::Start(after)).is_err() {
        return (Vec::new(), after);
    }
    let mut reader = std::io::BufReader::new(f.take(CHUNK));
    let (mut lines, mut offset, mut buf) = (Vec::new(), after, Vec::new());
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) | Err(_) => break,
            Ok(_) if buf.last() != Some(&b'\n') => break, // still being written
            Ok(n) => {
                offset += n as u64;
                lines.push(if n > LINE_MAX {
                    format!("{{\"orchestrator\":\"a line of {n} bytes, not shown\"}}")
                } else {
                    String::from_utf8_lossy(&buf[..n - 1]).into_owned()
                });
            }
        }
    }
    if lines.is_empty() && offset == after {
        // A single line longer than the chunk: skip it whole.
        return skip_long_line(path, after);
    }
    (lines, offset)
}

/// Past a line longer than [`CHUNK`] that starts at `at`, if it is complete.
fn skip_long_line(path: &Path, at: u64) -> (Vec<String>, u64) {
    let Ok(f) = open(path) else {
        return (Vec::new(), at);
    };
    let mut r = std::io::BufReader::new(f);
    if r.seek(std::io::SeekFrom::Start(at)).is_err() {
        return (Vec::new(), at);
    }
    let mut n = 0u64;
    loop {
        let Ok(chunk) = r.fill_buf() else {
            return (Vec::new(), at);
        };
        if chunk.is_empty() {
            return (Vec::new(), at); // not complete yet
        }
        if let Some(i) = chunk.iter().position(|b| *b == b'\n') {
            n += i as u64 + 1;
            let note = format!("{{\"orchestrator\":\"a line of {n} bytes, not shown\"}}");
            return (vec![note], at + n);
        }
        let len = chunk.len();
        n += len as u64;
        r.consume(len);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_lines_from_an_offset_and_long_lines_said_not_sent() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("stdout.jsonl");
        let long = "x".repeat(LINE_MAX + 10);
        std::fs::write(&p, format!("{{\"a\":1}}\n{long}\n{{\"b\":2}}\n{{\"partial"))
            .expect("write");
        let (lines, offset) = read_lines(&p, 0);
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert_eq!(lines[0], "{\"a\":1}");
        assert!(lines[1].contains("not shown"));
        let (more, again) = read_lines(&p, offset);
        assert!(more.is_empty() && again == offset, "the partial line waits");
        assert_eq!(read_lines(&dir.path().join("missing"), 7), (Vec::new(), 7));
        let link = dir.path().join("link.jsonl");
        std::os::unix::fs::symlink(&p, &link).expect("symlink");
        assert_eq!(
            read_lines(&link, 0),
            (Vec::new(), 0),
            "never through a symlink"
        );
    }
}
