//! The source tree keeps rooms a newcomer can hold in their head: no non-test file of the
//! daemon, the CLI or the protocol over [`FILE_MAX`] lines, no function over [`FN_MAX`], no
//! state compared as a string (`status == "…"`) and no SQL outside the store; the CLI prints
//! only through its `outln!`/`out!`.

use std::path::{Path, PathBuf};

const FILE_MAX: usize = 600;
const FN_MAX: usize = 80;

fn sources() -> Vec<(String, Vec<String>)> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .canonicalize()
        .expect("the workspace root");
    let mut out = Vec::new();
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<String>)>) {
        for e in std::fs::read_dir(dir)
            .expect("read the source tree")
            .flatten()
        {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let rel = p.strip_prefix(root).expect("under the root");
                let text = std::fs::read_to_string(&p).expect("read a source file");
                // The code, not its unit tests.
                let code = text
                    .lines()
                    .take_while(|l| *l != "#[cfg(test)]")
                    .map(str::to_owned)
                    .collect();
                out.push((rel.display().to_string(), code));
            }
        }
    }
    for dir in ["daemon/src", "client/src", "proto/src"] {
        walk(&root, &root.join(dir), &mut out);
    }
    out.sort();
    out
}

/// Every function with a body: (name, lines from `fn` to its closing brace).
fn functions(code: &[String]) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    for (i, line) in code.iter().enumerate() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        let Some(at) = trimmed.find("fn ") else {
            continue;
        };
        let before = &trimmed[..at];
        let keywords = before
            .split_whitespace()
            .all(|w| matches!(w, "pub" | "async" | "const" | "unsafe") || w.starts_with("pub("));
        if !keywords || line.trim_end().ends_with(';') {
            continue;
        }
        let name: String = trimmed[at + 3..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        if name.is_empty() || line.trim_end().ends_with('}') {
            continue;
        }
        let close = format!("{indent}}}");
        if let Some(end) = code[i..].iter().position(|l| *l == close) {
            out.push((name, end + 1));
        }
    }
    out
}

#[test]
fn no_file_over_600_lines_no_function_over_80_and_no_state_compared_as_a_string() {
    let mut problems = Vec::new();
    let files = sources();
    assert!(files.len() > 50, "the source tree was not found");
    for (path, code) in &files {
        if code.len() > FILE_MAX {
            problems.push(format!(
                "{path} has {} lines of code (at most {FILE_MAX}): split it by concern",
                code.len()
            ));
        }
        for (name, n) in functions(code) {
            if n > FN_MAX {
                problems.push(format!(
                    "{path}: fn {name} is {n} lines (at most {FN_MAX}): split it into steps"
                ));
            }
        }
        if path.starts_with("client/src/") && !path.ends_with("/main.rs") {
            for (i, l) in code.iter().enumerate() {
                let bare = |m: &str| {
                    l.match_indices(m).any(|(at, _)| {
                        !l[..at].ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == ':')
                    })
                };
                if bare("println!(") || bare("print!(") {
                    problems.push(format!(
                        "{path}:{}: print through crate::outln!/out! (a closed stdout ends quietly)",
                        i + 1
                    ));
                }
            }
        }
        if !path.contains("/store/") {
            for (i, l) in code.iter().enumerate() {
                let compact: String = l.split_whitespace().collect();
                let states = ["status", "outcome", "role", "hold_kind"];
                if states.iter().any(|w| {
                    compact.contains(&format!("{w}==\"")) || compact.contains(&format!("{w}!=\""))
                }) {
                    problems.push(format!(
                        "{path}:{}: a state compared as a string; use its enum",
                        i + 1
                    ));
                }
                let sql = ["\"SELECT ", "\"UPDATE ", "\"INSERT ", "\"DELETE "];
                if path.starts_with("daemon/") && sql.iter().any(|s| l.contains(s)) {
                    problems.push(format!(
                        "{path}:{}: SQL outside store/; give the query a function there",
                        i + 1
                    ));
                }
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
