//! OpenAI Codex: the reviewer here, the worker in [`worker`] (its stream read by [`events`]).
//!
//! As the reviewer: `codex exec` in a read-only sandbox, the prompt on stdin from
//! a file, the verdict forced into a JSON Schema (`--output-schema`) and written to a file
//! (`-o`), and `--json` events to the session's stdout file. Codex never gets an MCP token: it
//! only reads the worktree and answers.
//!
//! Its `--json` stream is read leniently like Claude's: unknown types and non-JSON lines are
//! ignored.

pub mod events;
pub mod worker;

use std::path::{Path, PathBuf};
use std::process::Stdio;

use orchestrator_proto::SessionEnv;
use serde_json::Value;

/// The Codex CLI.
#[derive(Debug, Clone)]
pub struct Codex {
    pub bin: PathBuf,
    /// `-m`, if configured.
    pub model: Option<String>,
    /// Extra `-c key=value` overrides from the config file.
    pub overrides: Vec<String>,
}

/// One review session's files and place.
#[derive(Debug, Clone)]
pub struct ReviewSpec {
    /// The worktree reviewed (read-only).
    pub cwd: PathBuf,
    /// Fed to stdin.
    pub prompt_file: PathBuf,
    pub schema_file: PathBuf,
    /// Where codex writes its last message (the verdict).
    pub verdict_file: PathBuf,
    pub env: SessionEnv,
}

impl Codex {
    /// The command for one review; the caller sets stdout/stderr and spawns it.
    pub fn command(&self, spec: &ReviewSpec) -> std::io::Result<tokio::process::Command> {
        let stdin = std::fs::File::open(&spec.prompt_file)?;
        let mut c = tokio::process::Command::new(&self.bin);
        c.arg("exec")
            .arg("--json")
            .arg("--output-schema")
            .arg(&spec.schema_file)
            .arg("-o")
            .arg(&spec.verdict_file)
            .arg("-C")
            .arg(&spec.cwd)
            .args(["--sandbox", "read-only", "--skip-git-repo-check"]);
        if let Some(m) = &self.model {
            c.arg("-m").arg(m);
        }
        for o in &self.overrides {
            c.arg("-c").arg(o);
        }
        c.arg("-");
        crate::agents::run_env(&mut c, &spec.env);
        c.current_dir(&spec.cwd)
            .stdin(Stdio::from(stdin))
            .process_group(0)
            .kill_on_drop(false);
        Ok(c)
    }
}

/// What the daemon keeps from a codex `--json` stream.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Events {
    pub thread: Option<String>,
    /// The last `agent_message` (the verdict, if `-o` was not written).
    pub last_message: Option<String>,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// `turn.failed`'s message, or the last top-level `error`.
    pub error: Option<String>,
    pub completed: bool,
}

/// Reads a whole `--json` stream, a line at a time (a codex printing without end costs the
/// daemon one line, and lines over `MAX_LINE` are skipped).
pub fn read_events(path: &Path) -> Events {
    use std::io::BufRead;
    let mut ev = Events::default();
    let Ok(file) = std::fs::File::open(path) else {
        return ev;
    };
    let mut reader = std::io::BufReader::new(file);
    let mut line = Vec::new();
    loop {
        line.clear();
        let limit = crate::engine::session::MAX_LINE as u64 + 1;
        match std::io::Read::take(&mut reader, limit).read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(n) if n as u64 == limit && line.last() != Some(&b'\n') => {
                // Too long to be an event we use: skip to the end of the line.
                let mut rest = Vec::new();
                loop {
                    rest.clear();
                    match std::io::Read::take(&mut reader, 1 << 20).read_until(b'\n', &mut rest) {
                        Ok(0) | Err(_) => break,
                        Ok(_) if rest.last() == Some(&b'\n') => break,
                        Ok(_) => {}
                    }
                }
                continue;
            }
            Ok(_) => {}
        }
        let Ok(v) = serde_json::from_slice::<Value>(&line) else {
            continue;
        };
        match v["type"].as_str().unwrap_or("") {
            "thread.started" => ev.thread = v["thread_id"].as_str().map(str::to_owned),
            "item.completed" if v["item"]["type"] == "agent_message" => {
                ev.last_message = v["item"]["text"].as_str().map(str::to_owned);
            }
            "turn.completed" => {
                ev.completed = true;
                let u = &v["usage"];
                ev.input_tokens += u["input_tokens"].as_u64().unwrap_or(0);
                ev.output_tokens += u["output_tokens"].as_u64().unwrap_or(0)
                    + u["reasoning_output_tokens"].as_u64().unwrap_or(0);
            }
            "turn.failed" => {
                ev.error = v["error"]["message"].as_str().map(str::to_owned);
            }
            "error" => ev.error = v["message"].as_str().map(str::to_owned),
            _ => {}
        }
    }
    ev
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_stream_gives_the_message_usage_and_errors() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("out.jsonl");
        std::fs::write(
            &p,
            "{\"type\":\"thread.started\",\"thread_id\":\"th_1\"}\nnot json\n\
             {\"type\":\"item.completed\",\"item\":{\"id\":\"i\",\"type\":\"agent_message\",\"text\":\"{}\"}}\n\
             {\"type\":\"turn.completed\",\"usage\":{\"input_tokens\":10,\"output_tokens\":4,\"reasoning_output_tokens\":1}}\n",
        )
        .expect("write");
        let ev = read_events(&p);
        assert_eq!(ev.thread.as_deref(), Some("th_1"));
        assert_eq!(ev.last_message.as_deref(), Some("{}"));
        assert_eq!(
            (ev.input_tokens, ev.output_tokens, ev.completed),
            (10, 5, true)
        );
        std::fs::write(
            &p,
            "{\"type\":\"error\",\"message\":\"Reconnecting...\"}\n\
             {\"type\":\"turn.failed\",\"error\":{\"message\":\"exceeded retry limit\"}}\n",
        )
        .expect("write");
        let ev = read_events(&p);
        assert_eq!(ev.error.as_deref(), Some("exceeded retry limit"));
        assert!(!ev.completed);
    }

    #[test]
    fn the_command_is_read_only_with_the_schema_and_no_secrets_in_argv() {
        let dir = tempfile::tempdir().expect("tmp");
        let prompt = dir.path().join("prompt.md");
        std::fs::write(&prompt, "review").expect("write");
        let spec = ReviewSpec {
            cwd: dir.path().into(),
            prompt_file: prompt,
            schema_file: dir.path().join("schema.json"),
            verdict_file: dir.path().join("verdict.json"),
            env: SessionEnv([("OPENAI_API_KEY".to_owned(), "sk-secret".to_owned())].into()),
        };
        let c = Codex {
            bin: "codex".into(),
            model: Some("gpt-x".into()),
            overrides: vec!["model_reasoning_effort=\"high\"".into()],
        }
        .command(&spec)
        .expect("command");
        let args: Vec<String> = c
            .as_std()
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(args[0], "exec");
        for flag in ["--json", "--output-schema", "-o", "read-only", "-m", "-c"] {
            assert!(args.iter().any(|a| a == flag), "{flag} in {args:?}");
        }
        assert_eq!(args.last().map(String::as_str), Some("-"));
        assert!(!args.iter().any(|a| a.contains("sk-secret")));
    }
}
