//! Surviving the unexpected: a daemon killed with SIGKILL and a deleted `.orchestrator/`.

use orchestrator_tests::{Sandbox, wait};

#[test]
fn after_kill_9_the_next_command_starts_a_daemon_that_still_has_the_run() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    let run = sb
        .orchestrate_in(&repo, &["start", "Feature", "--max-cycles", "7", "--json"])
        .ok()
        .json();
    sb.orchestrate_in(&repo, &["pause"]).ok();
    let first = sb.daemon_pid();
    kill(Pid::from_raw(first), Signal::SIGKILL).expect("kill -9");
    wait::until("the daemon to die", wait::DEADLINE, || {
        sb.daemon_processes().is_empty().then_some(())
    });

    let after = sb.orchestrate_in(&repo, &["status", "--json"]).ok().json();
    assert_ne!(sb.daemon_pid(), first, "a new daemon");
    assert_eq!(after["id"], run["id"]);
    assert_eq!(after["status"], "paused", "its state survived");
    assert_eq!(after["options"]["max_cycles"], 7);
    let log = sb.orchestrate_in(&repo, &["log"]).ok();
    assert!(log.stdout.contains("restored"), "{log}");
    // And it still takes commands.
    sb.orchestrate_in(&repo, &["resume"]).ok();
}

#[test]
fn a_deleted_mirror_is_recreated_whole() {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    // A quiet run (planned, nothing running) so only the daemon's healing writes the mirror.
    let plan = sb.root().join("plan.json");
    std::fs::write(
        &plan,
        r#"{"summary":"s","tasks":[{"id":"a","title":"A","description":"D","acceptance_criteria":["ok"]}]}"#,
    )
    .expect("plan");
    let script = format!("plan:{}", plan.display());
    let run = sb
        .orchestrate_env(
            &repo,
            &["start", "Feature", "--dry-run", "--json"],
            &[("CLAUDE_FAKE_SCRIPT", &script)],
        )
        .ok()
        .json();
    wait::until("the run to be planned", wait::DEADLINE, || {
        let s = sb.orchestrate_in(&repo, &["status", "--json"]).ok().json();
        (s["status"] == "planned").then_some(())
    });
    let mirror = repo.join(".orchestrator");

    // With no change at all, by the run's own periodic check, log included.
    rm_rf(&mirror);
    let state = wait::until("the mirror to come back", wait::DEADLINE, || {
        std::fs::read_to_string(mirror.join("state.json")).ok()
    });
    assert!(state.contains(run["id"].as_str().expect("id")), "{state}");
    // The rewrite writes state.json first; the rest follows in the same pass.
    let log = wait::until("the log to come back", wait::DEADLINE, || {
        std::fs::read_to_string(mirror.join("logs/orchestrator.log")).ok()
    });
    assert!(mirror.join("context.md").is_file() && mirror.join("tasks").is_dir());
    assert!(
        log.contains("submitted") && log.contains("Plan v1"),
        "{log}"
    );

    // On the next change of the run, with the whole log.
    rm_rf(&mirror);
    sb.orchestrate_in(&repo, &["cancel"]).ok();
    let state = std::fs::read_to_string(mirror.join("state.json")).expect("state.json back");
    assert!(state.contains("\"cancelled\""), "{state}");
    let log = std::fs::read_to_string(mirror.join("logs/orchestrator.log")).expect("log back");
    assert!(
        log.contains("submitted") && log.contains("cancelled"),
        "{log}"
    );
}

/// `rm -rf`, retried while the daemon is writing into the directory.
fn rm_rf(dir: &std::path::Path) {
    wait::until(
        "the directory to be removed",
        wait::DEADLINE,
        || match std::fs::remove_dir_all(dir) {
            Ok(()) => Some(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Some(()),
            Err(_) => None,
        },
    );
}

/// An agent starts only on the daemon's word, said once its process is recorded: a daemon
/// killed in between closes the start gate's pipe and the agent never runs, so a restarted
/// daemon may take a session without a recorded process for one that never ran. The agent
/// gets no descriptor but the standard three (not the gate's, not one passed on to the
/// daemon).
#[test]
fn an_agent_the_daemon_did_not_record_never_starts() {
    use std::os::fd::AsRawFd;

    use nix::fcntl::{FcntlArg, FdFlag, fcntl};
    let dir = tempfile::tempdir().expect("tempdir");
    let ran = dir.path().join("ran");
    // A descriptor whoever started the daemon passed on: the agent must not get it.
    let (stray, _stray_write) = nix::unistd::pipe().expect("pipe");
    for (word, runs, code) in [(false, false, 125), (true, true, 0)] {
        let (read, write) = nix::unistd::pipe().expect("pipe");
        // Only the read end is the child's: it sees the end of the pipe when we close ours.
        fcntl(&write, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).expect("close-on-exec");
        let child = std::process::Command::new(&orchestrator_tests::bins::bins().orchestratord)
            .args(["__confined-exec", "-", "-", "-", "--", "/bin/sh", "-c"])
            .arg(format!(
                "for fd in {} {}; do [ -e /dev/fd/$fd ] && exit 9; done; touch '{}'",
                stray.as_raw_fd(),
                read.as_raw_fd(),
                ran.display()
            ))
            .env("ORCHESTRATOR_GATE_FD", read.as_raw_fd().to_string())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn the trampoline");
        drop(read);
        if word {
            nix::unistd::write(&write, b"g").expect("say the word");
        }
        drop(write);
        let out = child.wait_with_output().expect("wait");
        let said = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "word said: {word}: {said}");
        assert_eq!(
            said.contains("did not record this session"),
            !word,
            "it says why it did not start: {said}"
        );
        assert_eq!(ran.exists(), runs, "word said: {word}");
    }
}
