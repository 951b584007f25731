//! `.worktreeinclude` (Claude Code's convention, gitignore syntax, at the project's root):
//! ignored files to copy from the user's checkout into each new worktree — `.env`,
//! `config/local.toml` — which a fresh worktree would otherwise lack. Git does the matching
//! (`git ls-files --others --ignored --exclude-from=.worktreeinclude`), so the patterns mean
//! exactly what they mean in a `.gitignore`.
//!
//! **Invariants:** only files git ignores are copied (a listed file that is tracked or merely
//! untracked is not); nothing is read or written through a symlink (each path component is
//! checked, files opened `O_NOFOLLOW`, existing files in the worktree never overwritten); at
//! most [`FILES_MAX`] files and [`BYTES_MAX`] bytes per worktree, and what was copied or
//! skipped is said in the run's log.

use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};

use crate::git;

/// The file at the project's root that lists what to copy.
pub const FILE: &str = ".worktreeinclude";
/// The most files copied into one worktree.
pub const FILES_MAX: usize = 2000;
/// The most bytes copied into one worktree (installed dependencies belong in `--setup`).
pub const BYTES_MAX: u64 = 256 << 20;

/// The ignored files `.worktreeinclude` lists, relative to the project, or why none.
pub async fn listed(project: &Path) -> Result<Vec<PathBuf>, String> {
    let file = project.join(FILE);
    match tokio::fs::symlink_metadata(&file).await {
        Err(_) => return Ok(Vec::new()),
        Ok(m) if !m.is_file() => return Err(format!("{} is not a regular file", file.display())),
        Ok(_) => {}
    }
    let from = format!("--exclude-from={}", file.display());
    let matching = git::ls_files(project, &["--others", "--ignored", &from])
        .await
        .map_err(|e| e.to_string())?;
    // Untracked files git does not ignore are the user's work in progress, not to copy.
    let not_ignored: HashSet<String> = git::ls_files(project, &["--others", "--exclude-standard"])
        .await
        .map_err(|e| e.to_string())?
        .into_iter()
        .collect();
    Ok(matching
        .into_iter()
        .filter(|f| !not_ignored.contains(f))
        .map(PathBuf::from)
        .filter(|p| p.components().all(|c| matches!(c, Component::Normal(_))))
        .collect())
}

/// Copies what `.worktreeinclude` lists into `worktree`; returns sentences for the log.
pub async fn copy_included(project: &Path, worktree: &Path) -> Vec<String> {
    let files = match listed(project).await {
        Ok(f) if f.is_empty() => return Vec::new(),
        Ok(f) => f,
        Err(e) => return vec![format!("{FILE} was not used: {e}")],
    };
    let (project, worktree) = (project.to_owned(), worktree.to_owned());
    tokio::task::spawn_blocking(move || copy_all(&project, &worktree, &files))
        .await
        .unwrap_or_else(|e| vec![format!("copying what {FILE} lists failed: {e}")])
}

fn copy_all(project: &Path, worktree: &Path, files: &[PathBuf]) -> Vec<String> {
    let (mut copied, mut bytes, mut skipped) = (Vec::new(), 0u64, Vec::new());
    for rel in files {
        if copied.len() >= FILES_MAX {
            skipped.push(format!(
                "{} more (over {FILES_MAX} files)",
                files.len() - copied.len() - skipped.len()
            ));
            break;
        }
        match copy_one(project, worktree, rel, BYTES_MAX - bytes) {
            Ok(n) => {
                bytes += n;
                copied.push(rel.display().to_string());
            }
            Err(why) => skipped.push(format!("{} ({why})", rel.display())),
        }
    }
    let mut out = Vec::new();
    if !copied.is_empty() {
        let shown: Vec<&str> = copied.iter().take(8).map(String::as_str).collect();
        let more = copied.len().saturating_sub(shown.len());
        out.push(format!(
            "copied {} ignored file(s) listed in {FILE} ({} KiB): {}{}",
            copied.len(),
            bytes.div_ceil(1024),
            shown.join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        ));
    }
    if !skipped.is_empty() {
        let shown: Vec<&str> = skipped.iter().take(8).map(String::as_str).collect();
        out.push(format!(
            "did not copy from {FILE}: {}{}",
            shown.join(", "),
            if skipped.len() > shown.len() {
                format!(" and {} more", skipped.len() - shown.len())
            } else {
                String::new()
            }
        ));
    }
    out
}

/// Copies one file, keeping its permission bits; the number of bytes, or why not.
fn copy_one(project: &Path, worktree: &Path, rel: &Path, budget: u64) -> Result<u64, String> {
    use std::io::Read;
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let nofollow = nix::fcntl::OFlag::O_NOFOLLOW.bits();
    // No component of either side may be a link.
    let mut src = project.to_path_buf();
    let parts: Vec<_> = rel.components().collect();
    for (i, c) in parts.iter().enumerate() {
        src.push(c);
        let m = std::fs::symlink_metadata(&src).map_err(|e| e.to_string())?;
        if m.file_type().is_symlink() {
            return Err("a symlink".into());
        }
        if i + 1 < parts.len() && !m.is_dir() {
            return Err("not under a folder".into());
        }
    }
    let meta = std::fs::symlink_metadata(&src).map_err(|e| e.to_string())?;
    if !meta.is_file() {
        return Err("not a regular file".into());
    }
    if meta.len() > budget {
        return Err(format!(
            "{} KiB would pass the {} MiB limit",
            meta.len().div_ceil(1024),
            BYTES_MAX >> 20
        ));
    }
    let mut dst = worktree.to_path_buf();
    for c in &parts[..parts.len() - 1] {
        dst.push(c);
        match std::fs::symlink_metadata(&dst) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => return Err("its folder is not a folder in the worktree".into()),
            Err(_) => std::fs::create_dir(&dst).map_err(|e| e.to_string())?,
        }
    }
    dst.push(parts[parts.len() - 1]);
    let mut from = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(nofollow)
        .open(&src)
        .map_err(|e| e.to_string())?;
    let mut to = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(meta.permissions().mode() & 0o777)
        .custom_flags(nofollow)
        .open(&dst)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::AlreadyExists => "already in the worktree".to_owned(),
            _ => e.to_string(),
        })?;
    std::io::copy(&mut (&mut from).take(budget), &mut to).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::testing::git;

    #[tokio::test]
    async fn only_ignored_listed_files_are_copied_never_through_a_link() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (p, w) = (dir.path().join("p"), dir.path().join("w"));
        std::fs::create_dir_all(p.join("config")).expect("mkdir");
        std::fs::create_dir_all(&w).expect("mkdir");
        git(&p, &["init", "-q"]);
        std::fs::write(
            p.join(".gitignore"),
            ".env\nconfig/local.toml\nsecret-link\nbig/\n",
        )
        .expect("write");
        std::fs::write(
            p.join(FILE),
            ".env\nconfig/*.toml\nnotes.txt\nsecret-link\n",
        )
        .expect("write");
        std::fs::write(p.join(".env"), "KEY=1\n").expect("write");
        std::fs::write(p.join("config/local.toml"), "x = 1\n").expect("write");
        std::fs::write(p.join("notes.txt"), "mine, untracked, not ignored\n").expect("write");
        std::os::unix::fs::symlink("/etc/hostname", p.join("secret-link")).expect("link");
        git(&p, &["add", ".gitignore", FILE]);
        git(&p, &["commit", "-qm", "init"]);
        let notes = copy_included(&p, &w).await;
        assert_eq!(
            std::fs::read_to_string(w.join(".env")).expect(".env"),
            "KEY=1\n"
        );
        assert!(w.join("config/local.toml").exists());
        assert!(!w.join("notes.txt").exists(), "not ignored: not copied");
        assert!(
            std::fs::symlink_metadata(w.join("secret-link")).is_err(),
            "a link is never followed"
        );
        let text = notes.join("\n");
        assert!(text.contains("copied 2 ignored file(s)"), "{text}");
        assert!(text.contains("secret-link (a symlink)"), "{text}");
        // A second copy overwrites nothing and says so.
        let again = copy_included(&p, &w).await.join("\n");
        assert!(again.contains("already in the worktree"), "{again}");
    }

    #[tokio::test]
    async fn no_file_means_nothing_to_do() {
        let dir = tempfile::tempdir().expect("tempdir");
        git(dir.path(), &["init", "-q"]);
        assert!(copy_included(dir.path(), dir.path()).await.is_empty());
    }
}
