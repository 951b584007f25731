//! Rewriting a task file without a new inode per write. A task's file is rewritten on its
//! claim, its progress notes and its completion; through a fresh temp file and a rename, each
//! rewrite creates an inode and frees another, and renaming over an existing file makes ext4
//! write the new blocks out at once (`auto_da_alloc`) — on a busy board most of the mirror's
//! cost. Here each task file has a swap file of its own in `.orchestrator/.swap/tasks/`: the
//! new bytes go into the swap, which is then exchanged with the task file in one step
//! (`renameat2(RENAME_EXCHANGE)`), so a reader sees the old file or the new one, never half
//! of one, and the next write reuses the old file's inode.
//!
//! **Invariants:** a swap is written only when it is a regular file with a single link,
//! opened without following a link (`O_NOFOLLOW`; `O_NONBLOCK`, so a FIFO in its place cannot
//! hold the writer), and it is written or cut only after that check (overwritten from its start,
//! then cut to the new length: never truncated to nothing first); anything else in its place is
//! removed and a new swap created (`O_EXCL`). A link at the task file's place is exchanged
//! away into `.swap/` (never written through) and removed there on the next write. Where the
//! exchange is not available (not Linux with glibc, a file system without it) or the task
//! file does not exist yet, the swap is renamed over it instead. The swaps are derived like
//! the rest of the mirror (each holds its task's previous state): deleting `.swap/` loses
//! nothing.

use std::fs::{File, OpenOptions};
use std::io::{ErrorKind, Write};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::Path;

use nix::fcntl::OFlag;

/// The folder of the swaps, inside `.orchestrator/`.
pub const DIR: &str = ".swap";

/// Writes `bytes` to `path` through `swap` (both folders already checked by `safe_dir`).
pub fn write(path: &Path, swap: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let (mut f, was) = open(swap)?;
    f.write_all(bytes)?;
    // Cut what is left of a longer previous state. Never to zero first: ext4 writes out at
    // close a file truncated to nothing and written again (`auto_da_alloc`), the cost this
    // file exists to avoid.
    if was > bytes.len() as u64 {
        f.set_len(bytes.len() as u64)?;
    }
    drop(f);
    if exchange(swap, path)? == Swapped::Renamed {
        // The file's first write (its plan's submission): its next swap is made now, so that
        // the board calls that follow make none.
        let _ = create(swap);
    }
    Ok(())
}

/// What became of the swap.
#[derive(Debug, PartialEq, Eq)]
enum Swapped {
    /// It traded places with the file, which is the next swap.
    Exchanged,
    /// It was renamed over the file (or into its place): there is no swap now.
    Renamed,
}

/// The swap, ours to write from its start, and its length: reused when it is a plain file of
/// one link, else replaced by a new one.
fn open(swap: &Path) -> std::io::Result<(File, u64)> {
    let flags = (OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK).bits();
    match OpenOptions::new()
        .write(true)
        .custom_flags(flags)
        .open(swap)
    {
        Ok(f) => {
            let m = f.metadata()?;
            if m.is_file() && m.nlink() == 1 {
                return Ok((f, m.len()));
            }
            drop(f);
            std::fs::remove_file(swap)?;
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {}
        // A link, a FIFO without a reader, …: not ours to write; it goes.
        Err(_) => std::fs::remove_file(swap)?,
    }
    Ok((create(swap)?, 0))
}

/// A new, empty swap; fails when anything is in its place.
fn create(swap: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(OFlag::O_NOFOLLOW.bits())
        .open(swap)
}

/// Puts `swap` in `path`'s place, and what was there in the swap's.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn exchange(swap: &Path, path: &Path) -> std::io::Result<Swapped> {
    use nix::errno::Errno;
    use nix::fcntl::{AT_FDCWD, RenameFlags, renameat2};
    match renameat2(AT_FDCWD, swap, AT_FDCWD, path, RenameFlags::RENAME_EXCHANGE) {
        Ok(()) => Ok(Swapped::Exchanged),
        // The task file's first write, or a file system that cannot exchange.
        Err(Errno::ENOENT | Errno::EINVAL | Errno::ENOSYS | Errno::EOPNOTSUPP) => {
            std::fs::rename(swap, path).map(|()| Swapped::Renamed)
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn exchange(swap: &Path, path: &Path) -> std::io::Result<Swapped> {
    std::fs::rename(swap, path).map(|()| Swapped::Renamed)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::MetadataExt;
    use std::path::{Path, PathBuf};

    use super::write;

    /// A task file's folder and its swaps' folder, under a scratch `.orchestrator/`.
    fn places() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let tasks = dir.path().join("tasks");
        let swaps = dir.path().join(super::DIR).join("tasks");
        std::fs::create_dir_all(&tasks).expect("mkdir");
        std::fs::create_dir_all(&swaps).expect("mkdir");
        (dir, tasks, swaps)
    }

    fn ino(p: &Path) -> u64 {
        std::fs::symlink_metadata(p).expect("stat").ino()
    }

    /// The file holds the latest bytes, the swap the ones before, and after the first write
    /// (which makes the next swap) no new inode is made: the two files trade places.
    #[test]
    fn rewrites_trade_places_with_the_swap_and_make_no_new_inode() {
        let (_d, tasks, swaps) = places();
        let (file, swap) = (tasks.join("a.json"), swaps.join("a.json"));
        write(&file, &swap, b"one").expect("write");
        let (first, second) = (ino(&swap), ino(&file));
        assert_eq!(
            std::fs::read(&swap).expect("read"),
            b"",
            "the next swap is made empty"
        );
        write(&file, &swap, b"two").expect("write");
        assert_eq!(
            (ino(&file), ino(&swap)),
            (first, second),
            "it made no new inode"
        );
        assert_eq!(std::fs::read(&file).expect("read"), b"two");
        assert_eq!(std::fs::read(&swap).expect("read"), b"one");
        write(&file, &swap, b"three, longer").expect("write");
        write(&file, &swap, b"4").expect("write");
        assert_eq!(std::fs::read(&file).expect("read"), b"4");
        assert_eq!(std::fs::read(&swap).expect("read"), b"three, longer");
        assert_eq!((ino(&file), ino(&swap)), (first, second));
        assert_eq!(
            std::fs::metadata(&file).expect("stat").mode() & 0o777,
            0o600
        );
    }

    /// Whatever sits in the swap's place — a hard link to the user's file, a symlink, a FIFO
    /// nobody reads — is never written through and never holds the writer.
    #[test]
    fn what_sits_in_the_swaps_place_is_replaced_never_written_through() {
        let (d, tasks, swaps) = places();
        let theirs = d.path().join("theirs.txt");
        std::fs::write(&theirs, "the user's own\n").expect("write");
        let (file, swap) = (tasks.join("a.json"), swaps.join("a.json"));
        std::fs::hard_link(&theirs, &swap).expect("hard link");
        write(&file, &swap, b"one").expect("write");
        write(&file, &swap, b"two").expect("write");
        std::fs::remove_file(&swap).expect("rm");
        std::os::unix::fs::symlink(&theirs, &swap).expect("symlink");
        write(&file, &swap, b"three").expect("write");
        std::fs::remove_file(&swap).expect("rm");
        nix::unistd::mkfifo(&swap, nix::sys::stat::Mode::S_IRWXU).expect("fifo");
        write(&file, &swap, b"four").expect("write");
        assert_eq!(std::fs::read(&file).expect("read"), b"four");
        assert_eq!(std::fs::read(&theirs).expect("read"), b"the user's own\n");
    }

    /// A link put at the task file's place is exchanged away, not written through, and the
    /// next write removes it from the swaps.
    #[test]
    fn a_link_at_the_files_place_is_swapped_out_not_written_through() {
        let (d, tasks, swaps) = places();
        let theirs = d.path().join("theirs.txt");
        std::fs::write(&theirs, "the user's own\n").expect("write");
        let (file, swap) = (tasks.join("a.json"), swaps.join("a.json"));
        std::os::unix::fs::symlink(&theirs, &file).expect("symlink");
        write(&file, &swap, b"one").expect("write");
        assert!(std::fs::symlink_metadata(&file).expect("stat").is_file());
        write(&file, &swap, b"two").expect("write");
        assert_eq!(std::fs::read(&file).expect("read"), b"two");
        assert!(std::fs::symlink_metadata(&swap).expect("stat").is_file());
        assert_eq!(std::fs::read(&theirs).expect("read"), b"the user's own\n");
    }
}
