//! The database cannot silently vanish: a clean stop checkpoints everything into the main
//! file; a damaged database, or an empty one where the data dir shows runs existed, stops the
//! daemon with the path and the fix; backups are taken and `orchestratord --restore` brings
//! one back; the data dir and the database are private.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use orchestrator_tests::{Sandbox, wait};

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).expect("stat").permissions().mode() & 0o777
}

fn db(sb: &Sandbox) -> PathBuf {
    sb.data_dir().join("orchestrator.db")
}

fn stop(sb: &Sandbox) {
    sb.orchestrate(&["daemon", "stop"]).ok();
    wait::until("the daemon to exit", wait::DEADLINE, || {
        sb.daemon_processes().is_empty().then_some(())
    });
}

/// Runs counted in the main database file alone (a copy without its WAL).
fn runs_in_main_file(sb: &Sandbox) -> i64 {
    let copy = sb.root().join("main-file-only.db");
    std::fs::copy(db(sb), &copy).expect("copy the main file");
    let c = rusqlite::Connection::open(&copy).expect("open the copy");
    c.query_row("SELECT count(*) FROM runs", [], |r| r.get(0))
        .expect("the main file has the runs table")
}

/// `orchestratord` started directly: its exit status and stderr.
fn start_daemon(sb: &Sandbox, extra: &[&str]) -> (Option<i32>, String) {
    let out = sb
        .daemon_command()
        .args(extra)
        .output()
        .expect("run orchestratord");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout),
    )
}

#[test]
fn a_clean_stop_leaves_everything_in_the_main_file_and_a_backup() {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    let run = sb.start_run(&repo, "Add a widget");
    stop(&sb);
    let wal = PathBuf::from(format!("{}-wal", db(&sb).display()));
    assert!(
        std::fs::metadata(&wal).map_or(true, |m| m.len() == 0),
        "the WAL was checkpointed away"
    );
    assert_eq!(runs_in_main_file(&sb), 1, "the run is in the main file");
    let backups: Vec<_> = std::fs::read_dir(sb.data_dir().join("backups"))
        .expect("a backups folder")
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(backups.len(), 1, "{backups:?}");
    assert_eq!(mode(&backups[0]), 0o600);
    // The next daemon has the run.
    let list = sb.orchestrate(&["list", "--json"]).ok().json();
    assert_eq!(list["runs"][0]["id"], run.as_str());
}

#[test]
fn an_emptied_database_is_refused_and_the_backup_restores_it() {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    let run = sb.start_run(&repo, "Add a widget");
    stop(&sb);
    // The state is lost (a deleted WAL before this fix, a stray `rm`): an empty database.
    std::fs::remove_file(db(&sb)).expect("remove the database");
    let (code, err) = start_daemon(&sb, &[]);
    assert_ne!(code, Some(0), "{err}");
    assert!(
        err.contains("holds no runs") && err.contains("orchestratord --restore"),
        "names what it found and the fix: {err}"
    );
    // Through the CLI's autostart the user sees the same.
    let out = sb.orchestrate(&["list"]);
    assert_ne!(out.code(), Some(0), "{out}");
    assert!(out.to_string().contains("holds no runs"), "{out}");

    let backup = std::fs::read_dir(sb.data_dir().join("backups"))
        .expect("backups")
        .flatten()
        .map(|e| e.path())
        .next()
        .expect("one backup");
    let (code, said) = start_daemon(&sb, &["--restore", &backup.display().to_string()]);
    assert_eq!(code, Some(0), "{said}");
    assert!(said.contains("with 1 run from"), "{said}");
    let list = sb.orchestrate(&["list", "--json"]).ok().json();
    assert_eq!(list["runs"][0]["id"], run.as_str(), "restored");
    // With a daemon running, a restore is refused.
    let (code, said) = start_daemon(&sb, &["--restore", &backup.display().to_string()]);
    assert_eq!(code, Some(2), "{said}");
    assert!(said.contains("daemon stop"), "{said}");
}

#[test]
fn a_damaged_database_is_refused_with_the_path_and_the_fix() {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    sb.start_run(&repo, "Add a widget");
    stop(&sb);
    let bytes = std::fs::read(db(&sb)).expect("read");
    // Keep the header, scribble over every page after the first.
    let mut damaged = bytes.clone();
    for b in damaged.iter_mut().skip(4096) {
        *b = 0x5a;
    }
    std::fs::write(db(&sb), &damaged).expect("damage it");
    let (code, err) = start_daemon(&sb, &[]);
    assert_ne!(code, Some(0), "{err}");
    assert!(
        err.contains("is damaged") && err.contains(&db(&sb).display().to_string()),
        "{err}"
    );
    assert!(err.contains("orchestratord --restore"), "{err}");
    std::fs::write(db(&sb), b"not a database at all, just text ....................................................................................").expect("write");
    let (code, err) = start_daemon(&sb, &[]);
    assert_ne!(code, Some(0), "{err}");
    assert!(err.contains("is damaged"), "{err}");
}

#[test]
fn the_data_dir_and_the_database_are_private() {
    let sb = Sandbox::new();
    std::fs::create_dir_all(sb.data_dir()).expect("create");
    std::fs::set_permissions(sb.data_dir(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod 755");
    sb.orchestrate(&["list"]).ok();
    assert_eq!(mode(&sb.data_dir()), 0o700, "tightened");
    assert_eq!(mode(&db(&sb)), 0o600);
    let repo = sb.repo("app");
    sb.start_run(&repo, "Add a widget");
    for f in ["orchestrator.db-wal", "orchestrator.db-shm"] {
        let p = sb.data_dir().join(f);
        if p.exists() {
            assert_eq!(mode(&p), 0o600, "{f}");
        }
    }
    for e in std::fs::read_dir(repo.join(".orchestrator"))
        .expect("mirror")
        .flatten()
    {
        if e.path().is_file() {
            assert_eq!(mode(&e.path()), 0o600, "{}", e.path().display());
        }
    }
}
