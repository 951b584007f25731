//! Refs read from git's files instead of by `git for-each-ref` or `git rev-parse`: a worker's
//! start reads the run branch's tip and the task's earlier branches, a finished worker's
//! salvage its branch's tip and the commits kept for it before. The files backend keeps a ref
//! either loose (`<common>/refs/heads/…`, a file holding its commit id) or in `packed-refs`
//! (`<id> <name>` lines; a loose file wins over a packed line). Loose files are read first,
//! `packed-refs` after, as git does: `git pack-refs` (also run by a background `git gc
//! --auto`) writes `packed-refs` before it deletes the loose files, so a ref it moves is found
//! in one or the other, never in neither. Only full names and names ending in `*` (no `/`
//! matched) are read this way; a reftable repository, a symbolic ref, any other pattern or a
//! file that cannot be read is left to git.
//!
//! **Invariant:** an answer is `git for-each-ref`'s for the same patterns, in its order (the
//! tests compare both with loose, packed and repacked refs).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::GitError;
use super::head::is_id;

/// What a pattern asks for.
enum Want<'a> {
    Exact(&'a str),
    /// Names starting so, with no `/` after.
    Prefix(&'a str),
}

impl Want<'_> {
    fn of(pattern: &str) -> Option<Want<'_>> {
        let glob = |s: &str| s.contains(['*', '?', '[', '\\']);
        match pattern.strip_suffix('*') {
            Some(p) if !glob(p) => Some(Want::Prefix(p)),
            None if !glob(pattern) && pattern.starts_with("refs/") => Some(Want::Exact(pattern)),
            _ => None,
        }
    }

    fn matches(&self, name: &str) -> bool {
        match self {
            Want::Exact(n) => name == *n,
            Want::Prefix(p) => name.strip_prefix(p).is_some_and(|rest| !rest.contains('/')),
        }
    }
}

/// A loose ref's id; `Ok(None)` when there is no such file, `Err` when it is not plain.
fn loose(common: &Path, name: &str) -> Result<Option<String>, ()> {
    match std::fs::read_to_string(common.join(name)) {
        Ok(text) if is_id(text.trim_end()) => Ok(Some(text.trim_end().to_owned())),
        Ok(_) => Err(()), // a symbolic ref, or something else
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(_) => Err(()),
    }
}

/// The loose refs `want` names: the file itself, or the files of its folder starting so.
fn loose_refs(common: &Path, want: &Want<'_>, into: &mut BTreeMap<String, String>) -> Option<()> {
    let names = match want {
        Want::Exact(n) => vec![(*n).to_owned()],
        Want::Prefix(p) => {
            let (dir, _) = p.rsplit_once('/')?;
            let entries = match std::fs::read_dir(common.join(dir)) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Some(()),
                Err(_) => return None,
            };
            let mut names = Vec::new();
            for entry in entries {
                let entry = entry.ok()?;
                let name = format!("{dir}/{}", entry.file_name().to_str()?);
                if want.matches(&name)
                    && !name.ends_with(".lock")
                    && entry.file_type().ok()?.is_file()
                {
                    names.push(name);
                }
            }
            names
        }
    };
    for name in names {
        if let Some(id) = loose(common, &name).ok()? {
            into.insert(name, id);
        }
    }
    Some(())
}

/// The refs matching `patterns` with their commits, sorted by name, read from the files of
/// the common git directory `common` (blocking). `None`: ask git.
pub fn matching(common: &Path, patterns: &[&str]) -> Option<Vec<(String, String)>> {
    if common.join("reftable").exists() {
        return None;
    }
    let wants: Vec<Want<'_>> = patterns
        .iter()
        .map(|p| Want::of(p))
        .collect::<Option<_>>()?;
    let mut found = BTreeMap::new();
    for want in &wants {
        loose_refs(common, want, &mut found)?;
    }
    // After the loose files (see the module's note); a loose one wins.
    match std::fs::read_to_string(common.join("packed-refs")) {
        Ok(text) => {
            for line in text.lines().filter(|l| !l.starts_with(['#', '^'])) {
                let (id, name) = line.split_once(' ')?;
                if wants.iter().any(|w| w.matches(name)) {
                    found
                        .entry(name.to_owned())
                        .or_insert_with(|| id.to_owned());
                }
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(_) => return None,
    }
    Some(found.into_iter().collect())
}

/// The refs matching any of `patterns` (full names, or globs such as `refs/heads/x--t1.*`)
/// with their commits: read from git's files where they are plain ([`matching`]), else
/// in one git command.
pub async fn refs_matching(
    top: &Path,
    patterns: &[&str],
) -> Result<Vec<(String, String)>, GitError> {
    match from_files(top, patterns).await {
        Some(found) => Ok(found),
        None => refs_matching_by_git(top, patterns).await,
    }
}

/// [`matching`] in the main worktree `top`'s git directory, off the runtime's workers.
async fn from_files(top: &Path, patterns: &[&str]) -> Option<Vec<(String, String)>> {
    let (t, p): (PathBuf, Vec<String>) = (top.into(), patterns.iter().map(|&s| s.into()).collect());
    tokio::task::spawn_blocking(move || {
        let p: Vec<&str> = p.iter().map(String::as_str).collect();
        matching(&super::head::main_git_dir(&t)?, &p)
    })
    .await
    .ok()
    .flatten()
}

/// The commit the ref `name` (a full name such as `refs/heads/x`) points at: read from git's
/// files where it is plain, else asked of git (which also words a missing ref's error).
pub async fn ref_id(top: &Path, name: &str) -> Result<String, GitError> {
    match from_files(top, &[name]).await.as_deref() {
        Some([(_, id)]) => Ok(id.clone()),
        _ => super::rev_parse(top, name).await,
    }
}

/// [`refs_matching`], asking git.
pub(crate) async fn refs_matching_by_git(
    top: &Path,
    patterns: &[&str],
) -> Result<Vec<(String, String)>, GitError> {
    let mut args = vec!["for-each-ref", "--format=%(refname) %(objectname)"];
    args.extend_from_slice(patterns);
    let out = super::runner::git(top, &args).await?;
    Ok(out
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(r, c)| (r.to_owned(), c.to_owned()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::git;

    #[tokio::test]
    async fn refs_read_from_files_are_gits() {
        let dir = tempfile::tempdir().expect("tempdir");
        let top = dir.path();
        git(top, &["init", "-q", "-b", "main"]);
        git(top, &["commit", "-q", "--allow-empty", "-m", "a"]);
        let run = "orchestrate/feature";
        for b in [
            run,
            "orchestrate/feature--t1.1",
            "orchestrate/feature--t1.2",
        ] {
            git(top, &["branch", b]);
        }
        let patterns = [
            "refs/heads/orchestrate/feature",
            "refs/heads/orchestrate/feature--t1.*",
        ];
        let common = top.join(".git");
        let compare = async |when: &str| {
            let by_git = refs_matching_by_git(top, &patterns).await.expect("git");
            assert_eq!(matching(&common, &patterns), Some(by_git), "{when}");
        };
        compare("loose").await;
        let tip = git(top, &["rev-parse", run]);
        let full = format!("refs/heads/{run}");
        assert_eq!(ref_id(top, &full).await.expect("read"), tip);
        assert!(ref_id(top, "refs/heads/none").await.is_err(), "git's error");
        git(top, &["pack-refs", "--all"]);
        compare("packed").await;
        git(top, &["commit", "-q", "--allow-empty", "-m", "b"]);
        git(top, &["branch", "-f", "orchestrate/feature--t1.2"]);
        git(top, &["branch", "orchestrate/feature--t1.3"]);
        git(top, &["branch", "orchestrate/feature--t1.3x/deeper"]);
        git(top, &["branch", "-D", "orchestrate/feature--t1.1"]);
        std::fs::write(
            common.join("refs/heads/orchestrate/feature--t1.9.lock"),
            "x",
        )
        .expect("lock");
        compare("packed, some loose over them, one deleted, a lock, a folder").await;
        assert_eq!(matching(&common, &["refs/heads/*/feature"]), None);
        git(
            top,
            &[
                "symbolic-ref",
                "refs/heads/orchestrate/feature--t1.4",
                "refs/heads/main",
            ],
        );
        assert_eq!(
            matching(&common, &patterns),
            None,
            "a symbolic ref is git's"
        );
    }
}
