//! Agents never write the user's checkout. Every Claude Code session (planner and worker)
//! starts in its own mount namespace in which the project's working tree is a read-only bind
//! of itself and only its git directory (`<project>/.git`, which worktree commits need) stays
//! writable. Everything else — the session's worktree, the data dir, `$HOME`, `/tmp` — is as
//! it was, so builds, caches and the agent's own state work unchanged; a worker that `cd`s
//! into the user's checkout and writes there gets "Read-only file system". (Codex reviews
//! run in codex's own read-only sandbox and write their verdict under `.orchestrator/`, so
//! they are left out.) This guards against a model's mistakes, not an adversary running as
//! root, who could remount.
//!
//! The session starts as the daemon's own binary ([`TRAMPOLINE`]): still single-threaded, it
//! enters the namespace ([`enter`]) and then execs the agent in its place (same pid, same
//! environment and descriptors). As root the namespace is a plain mount namespace; otherwise
//! an unprivileged user namespace mapping the user to themself. Where the system refuses
//! either, sessions run unconfined: [`probe`] finds out once at start, the daemon logs why and
//! its health reports it.
//!
//! **Invariant:** a confined session, and every process it starts, cannot create, change or
//! delete a file of the project's working tree; files it already had open (the daemon's
//! output files under `.orchestrator/`) stay writable, as the daemon opened them.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use nix::mount::MsFlags;

/// The daemon's hidden first argument that makes it confine itself and exec the rest.
pub const TRAMPOLINE: &str = "__confined-exec";

/// Names the descriptor on which the trampoline waits for the daemon's word before it execs
/// the agent (`engine::session::gate`).
pub const GATE_VAR: &str = "ORCHESTRATOR_GATE_FD";

/// The daemon's binary, once `orchestratord` said it serves as the trampoline.
static TRAMPOLINE_EXE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();

/// The binary agents start through: the daemon's own (the running one on Linux, even if an
/// upgrade replaced its file).
fn trampoline_exe() -> &'static Path {
    TRAMPOLINE_EXE
        .get()
        .map_or(Path::new("/proc/self/exe"), PathBuf::as_path)
}

/// Called by `orchestratord` at start: agents start through this very binary, which waits
/// for the daemon's word before it execs them (`engine::session::gate`).
pub fn serve_as_trampoline() {
    // The running binary even if an upgrade replaces the file, where the system can say so.
    let exe = if cfg!(target_os = "linux") {
        Ok(PathBuf::from("/proc/self/exe"))
    } else {
        std::env::current_exe()
    };
    if let Ok(exe) = exe {
        let _ = TRAMPOLINE_EXE.set(exe);
    }
}

/// The command that runs an agent `program`: confined when `confine` says how, and in the
/// daemon always through the trampoline (so it waits for the daemon's word before it
/// starts). A library caller that is not the daemon (a test driving one agent) runs the
/// program itself.
pub fn command(confine: Option<&Confinement>, program: &Path) -> tokio::process::Command {
    match (confine, TRAMPOLINE_EXE.get()) {
        (Some(c), _) => c.command(program),
        (None, Some(_)) => {
            let mut c = tokio::process::Command::new(trampoline_exe());
            c.arg(TRAMPOLINE).args(["-", "-", "-", "--"]).arg(program);
            c
        }
        (None, None) => tokio::process::Command::new(program),
    }
}

/// What one session's confinement is: the tree to make read-only, its writable git dir, and
/// the directory to work in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Confinement {
    project: PathBuf,
    git: Option<PathBuf>,
    cwd: PathBuf,
}

impl Confinement {
    /// The confinement for a session working in `cwd` of `project`; `None` when it cannot
    /// apply: the project holds the session's `home` or the data dir (a dotfiles repository
    /// checked out as `$HOME`), or its path cannot be read.
    pub fn new(project: &Path, cwd: &Path, home: Option<&Path>, data: &Path) -> Option<Self> {
        let project = std::fs::canonicalize(project).ok()?;
        let holds = |p: &Path| std::fs::canonicalize(p).is_ok_and(|p| p.starts_with(&project));
        if project == Path::new("/") || home.is_some_and(holds) || holds(data) {
            return None;
        }
        let git = project.join(".git");
        let git = std::fs::symlink_metadata(&git)
            .is_ok_and(|m| m.is_dir())
            .then_some(git);
        Some(Self {
            project,
            git,
            cwd: cwd.to_owned(),
        })
    }

    /// The command that runs `program` confined: the daemon's own binary first.
    pub fn command(&self, program: &Path) -> tokio::process::Command {
        let mut c = tokio::process::Command::new(trampoline_exe());
        c.arg(TRAMPOLINE)
            .arg(&self.project)
            .arg(self.git.as_deref().unwrap_or(Path::new("-")))
            .arg(&self.cwd)
            .arg("--")
            .arg(program);
        c
    }

    /// The trampoline's arguments: the confinement (`None` for `- - -`) and the command.
    fn from_args(args: &[OsString]) -> Option<(Option<Self>, &[OsString])> {
        let [project, git, cwd, dashes, rest @ ..] = args else {
            return None;
        };
        if project == "-" {
            return (dashes == "--" && !rest.is_empty()).then_some((None, rest));
        }
        (dashes == "--" && !rest.is_empty()).then(|| {
            let c = Self {
                project: project.into(),
                git: (git != "-").then(|| git.into()),
                cwd: cwd.into(),
            };
            (Some(c), rest)
        })
    }
}

/// `orchestratord __confined-exec <project|-> <git|-> <cwd|-> -- <program> <args…>`: waits
/// for the daemon's word when [`GATE_VAR`] names a descriptor (and exits 125 without running
/// anything if the daemon went away first), enters the confinement (none for `- - -`), closes
/// every descriptor but the standard three and execs the program. Where confinement fails it
/// says why on stderr and runs the program anyway unless `ORCHESTRATOR_CONFINE_STRICT` is set
/// (the probe); returns only when the exec fails.
pub fn trampoline(args: &[OsString]) -> std::process::ExitCode {
    use std::os::unix::process::CommandExt;
    let Some((c, rest)) = Confinement::from_args(args) else {
        eprintln!("orchestratord {TRAMPOLINE}: <project|-> <git|-> <cwd|-> -- <program> [args…]");
        return std::process::ExitCode::from(2);
    };
    if !gate_opened() {
        eprintln!(
            "orchestratord: not started: the daemon did not record this session (it stopped, \
             or its database refused the write); the next daemon runs the task again"
        );
        return std::process::ExitCode::from(125);
    }
    if let Some(c) = &c
        && let Err(e) = enter(c)
    {
        eprintln!(
            "orchestratord: this session can write the user's checkout {}: {e}",
            c.project.display()
        );
        if std::env::var_os("ORCHESTRATOR_CONFINE_STRICT").is_some() {
            return std::process::ExitCode::from(125);
        }
    }
    close_inherited();
    let e = std::process::Command::new(&rest[0])
        .args(&rest[1..])
        .env_remove(GATE_VAR)
        .exec();
    eprintln!(
        "orchestratord: cannot run {}: {e}",
        rest[0].to_string_lossy()
    );
    std::process::ExitCode::from(127)
}

/// Closes every descriptor but stdin, stdout and stderr: an agent gets nothing else of the
/// daemon's (another session's gate) or of whoever started the daemon (a terminal's or an
/// editor's descriptors `orchestrate` passed on).
fn close_inherited() {
    let open: Vec<std::os::fd::RawFd> = std::fs::read_dir("/dev/fd")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .collect()
        })
        .unwrap_or_default();
    // The listing's own descriptor is among them, closed already: closing it fails harmlessly.
    for fd in open.into_iter().filter(|fd| *fd > 2) {
        let _ = nix::unistd::close(fd);
    }
}

/// Waits for the daemon's word on the descriptor [`GATE_VAR`] names (`true` at once without
/// one): `false` when the daemon went away before it recorded this process, so a session the
/// daemon does not know of never starts.
fn gate_opened() -> bool {
    let Some(fd) = std::env::var(GATE_VAR)
        .ok()
        .and_then(|v| v.parse::<std::os::fd::RawFd>().ok())
    else {
        return true;
    };
    // Read through a path of its own; the descriptor goes with the rest before the exec.
    let mut word = [0u8; 1];
    let read = std::fs::File::open(format!("/dev/fd/{fd}"))
        .and_then(|mut f| std::io::Read::read(&mut f, &mut word));
    matches!(read, Ok(1))
}

/// Enters a new mount namespace (and user namespace, when not root) in which `c.project` is
/// read-only but its git directory is not. Must run single-threaded.
fn enter(c: &Confinement) -> Result<(), String> {
    use nix::sched::{CloneFlags, unshare};
    let euid = nix::unistd::geteuid();
    let egid = nix::unistd::getegid();
    // Before the namespace: the flags a remount must keep (an unprivileged namespace may not
    // clear `nosuid`, `nodev`, … on a mount it inherited).
    let locked = nix::sys::statvfs::statvfs(&c.project)
        .map(|s| locked_flags(s.flags()))
        .map_err(|e| format!("cannot read {}: {e}", c.project.display()))?;
    let flags = if euid.is_root() {
        CloneFlags::CLONE_NEWNS
    } else {
        CloneFlags::CLONE_NEWUSER | CloneFlags::CLONE_NEWNS
    };
    unshare(flags).map_err(|e| format!("the system allows no new mount namespace ({e})"))?;
    if !euid.is_root() {
        let map = |file: &str, text: String| {
            std::fs::write(file, text).map_err(|e| format!("cannot write {file}: {e}"))
        };
        map("/proc/self/setgroups", "deny".into())?;
        map("/proc/self/uid_map", format!("{euid} {euid} 1"))?;
        map("/proc/self/gid_map", format!("{egid} {egid} 1"))?;
    }
    let mount = |src: Option<&Path>, target: &Path, flags: MsFlags| {
        nix::mount::mount(src, target, None::<&str>, flags, None::<&str>)
            .map_err(|e| format!("cannot mount {}: {e}", target.display()))
    };
    // Nothing done here reaches the rest of the system; mounts made outside still arrive.
    mount(None, Path::new("/"), MsFlags::MS_REC | MsFlags::MS_SLAVE)?;
    if let Some(git) = &c.git {
        mount(Some(git), git, MsFlags::MS_BIND | MsFlags::MS_REC)?;
    }
    mount(
        Some(&c.project),
        &c.project,
        MsFlags::MS_BIND | MsFlags::MS_REC,
    )?;
    // Only the top mount: the git directory's bind under it stays writable.
    mount(
        None,
        &c.project,
        MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY | locked,
    )?;
    // The working directory was entered before the mounts: enter it again, or a relative
    // path would still reach the writable tree underneath.
    std::env::set_current_dir(&c.cwd).map_err(|e| format!("cannot enter {}: {e}", c.cwd.display()))
}

/// Whether sessions can be confined here: a confined shell tries to write into `dir` (which
/// must not hold `$HOME`). `Err` says why not, for the log.
pub fn probe(dir: &Path) -> Result<(), String> {
    let target = dir.join("confinement-probe");
    let _ = std::fs::remove_file(&target);
    let c = Confinement::new(dir, dir, None, Path::new("/nonexistent"))
        .ok_or_else(|| format!("{} cannot be read", dir.display()))?;
    let mut cmd = c.command(Path::new("/bin/sh"));
    cmd.args(["-c", "echo x > confinement-probe"])
        .current_dir(dir)
        .env("ORCHESTRATOR_CONFINE_STRICT", "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    let out = cmd
        .as_std_mut()
        .output()
        .map_err(|e| format!("cannot run the probe: {e}"))?;
    let wrote = target.exists();
    let _ = std::fs::remove_file(&target);
    let said = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    match (out.status.code(), wrote) {
        (Some(c), false) if c != 0 && c != 125 && c != 127 => Ok(()),
        _ if !said.is_empty() => Err(said),
        _ => Err("a write into the read-only tree went through".into()),
    }
}

fn locked_flags(f: nix::sys::statvfs::FsFlags) -> MsFlags {
    use nix::sys::statvfs::FsFlags as F;
    [
        (F::ST_NOSUID, MsFlags::MS_NOSUID),
        (F::ST_NODEV, MsFlags::MS_NODEV),
        (F::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (F::ST_NOATIME, MsFlags::MS_NOATIME),
        (F::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (F::ST_RELATIME, MsFlags::MS_RELATIME),
    ]
    .into_iter()
    .filter(|(s, _)| f.contains(*s))
    .fold(MsFlags::empty(), |acc, (_, m)| acc | m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_trampoline_arguments_round_trip() {
        let c = Confinement {
            project: "/p".into(),
            git: Some("/p/.git".into()),
            cwd: "/w".into(),
        };
        let cmd = c.command(Path::new("claude"));
        let args: Vec<OsString> = cmd.as_std().get_args().map(Into::into).collect();
        assert_eq!(args[0], TRAMPOLINE);
        let (back, rest) = Confinement::from_args(&args[1..]).expect("parses");
        assert_eq!(back.as_ref(), Some(&c));
        assert_eq!(rest, [OsString::from("claude")]);
        let bare = Confinement { git: None, ..c };
        let args: Vec<OsString> = bare
            .command(Path::new("x"))
            .as_std()
            .get_args()
            .map(Into::into)
            .collect();
        assert_eq!(
            Confinement::from_args(&args[1..]).expect("parses").0,
            Some(bare)
        );
        assert!(Confinement::from_args(&args[1..4]).is_none(), "no program");
    }

    #[test]
    fn a_project_holding_home_or_the_data_dir_is_not_confined() {
        let dir = tempfile::tempdir().expect("tempdir");
        let home = dir.path().join("home");
        std::fs::create_dir_all(home.join(".local/share/o")).expect("mkdir");
        let data = home.join(".local/share/o");
        assert!(Confinement::new(&home, &home, Some(&home), &data).is_none());
        assert!(Confinement::new(dir.path(), dir.path(), None, &data).is_none());
        assert!(Confinement::new(&data, &data, None, Path::new("/x")).is_some());
    }
}
