//! The daemon as a process: autostart, health over the socket (also with curl), permissions,
//! one daemon per socket, stale sockets, protocol mismatches and clean signal shutdown.

use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;

use orchestrator_tests::{Sandbox, fake_daemon, wait};

fn mode(p: &std::path::Path) -> u32 {
    std::fs::metadata(p).expect("stat").permissions().mode() & 0o777
}

#[test]
fn first_command_autostarts_the_daemon_and_health_answers() {
    let sb = Sandbox::new();
    assert!(sb.health().is_none(), "no daemon yet");
    let out = sb.orchestrate(&["list", "--json"]).ok();
    assert_eq!(out.json()["runs"], serde_json::json!([]), "{out}");
    let h = sb.health().expect("the daemon answers after autostart");
    assert_eq!(h["protocol_version"], orchestrator_proto::PROTOCOL_VERSION);
    assert_eq!(h["daemon_version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(h["socket"], sb.socket().display().to_string());
    assert_eq!(sb.daemon_processes().len(), 1);

    let status = sb.orchestrate(&["daemon", "status", "--json"]).ok();
    assert_eq!(status.json()["pid"], h["pid"]);

    // It logs to a file of the day under the data dir, in plain text, and says where.
    let logs = sb.data_dir().join("logs");
    assert_eq!(h["log_dir"], logs.display().to_string());
    let today = time::OffsetDateTime::now_utc().date();
    let file = logs.join(format!(
        "orchestratord.{}-{:02}-{:02}.log",
        today.year(),
        u8::from(today.month()),
        today.day()
    ));
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    assert!(text.contains("orchestratord"), "{text}");
    assert!(
        !text.contains('\u{1b}'),
        "no terminal escapes in a log file: {text:?}"
    );
    assert_eq!(mode(&logs), 0o700);
    assert_eq!(mode(&file), 0o600);
    assert_eq!(mode(&logs.join("orchestratord.stderr")), 0o600);
    let human = sb.orchestrate(&["daemon", "status"]).ok().stdout;
    assert!(
        human.contains(&format!(
            "log          {}/ (orchestratord.<date>.log",
            logs.display()
        )),
        "{human}"
    );
}

#[test]
fn curl_reaches_health_and_runs_over_the_socket() {
    let sb = Sandbox::new();
    sb.orchestrate(&["list"]).ok();
    let curl = |path: &str| {
        let out = std::process::Command::new("curl")
            .args(["--silent", "--show-error", "--fail", "--unix-socket"])
            .arg(sb.socket())
            .arg(format!("http://localhost{path}"))
            .output()
            .expect("curl is installed (the README's prerequisites list it for this test)");
        assert!(
            out.status.success(),
            "curl {path}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("curl got JSON")
    };
    assert_eq!(
        curl("/v1/health")["protocol_version"],
        orchestrator_proto::PROTOCOL_VERSION
    );
    assert_eq!(curl("/v1/runs")["runs"], serde_json::json!([]));
}

#[test]
fn socket_dir_is_private_and_socket_is_owner_only() {
    let sb = Sandbox::new();
    sb.orchestrate(&["list"]).ok();
    let socket = sb.socket();
    assert_eq!(mode(socket.parent().expect("socket dir")), 0o700);
    assert_eq!(mode(&socket), 0o600);
}

#[test]
fn racing_clients_start_exactly_one_daemon() {
    let sb = Sandbox::new();
    let children: Vec<_> = (0..6)
        .map(|_| {
            sb.command(&orchestrator_tests::bins::bins().orchestrate)
                .args(["list", "--json"])
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn orchestrate")
        })
        .collect();
    for c in children {
        let out = c.wait_with_output().expect("wait");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let pid = sb.daemon_pid();
    assert_eq!(sb.daemon_processes(), vec![pid], "exactly one daemon runs");
}

#[test]
fn a_second_daemon_refuses_while_one_answers() {
    let sb = Sandbox::new();
    sb.orchestrate(&["list"]).ok();
    let first = sb.daemon_pid();
    let out = sb.daemon_command().output().expect("run orchestratord");
    assert!(!out.status.success(), "a second daemon must not start");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("orchestrate daemon stop"), "{err}");
    assert_eq!(sb.daemon_pid(), first, "the first daemon is unharmed");
}

#[test]
fn a_second_daemon_on_the_same_socket_leaves_the_first_ones_socket_alone() {
    let sb = Sandbox::new();
    sb.orchestrate(&["list"]).ok();
    let first = sb.daemon_pid();
    let other_data = sb.root().join("other-data");
    let out = sb
        .command(&orchestrator_tests::bins::bins().orchestratord)
        .arg("--data-dir")
        .arg(&other_data)
        .output()
        .expect("run orchestratord");
    assert!(!out.status.success(), "a second daemon must not start");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("already answers"), "{err}");
    assert!(
        sb.socket().exists(),
        "the first daemon's socket is still there"
    );
    assert_eq!(sb.daemon_pid(), first);
}

#[test]
fn a_stale_socket_file_is_replaced() {
    let sb = Sandbox::new();
    let socket = sb.socket();
    std::fs::create_dir_all(socket.parent().expect("dir")).expect("mkdir");
    // Bind and drop: the file stays, nobody listens.
    drop(std::os::unix::net::UnixListener::bind(&socket).expect("bind"));
    assert!(socket.exists());
    sb.orchestrate(&["list"]).ok();
    assert!(sb.health().is_some());
}

#[test]
fn sigterm_stops_the_daemon_cleanly_and_removes_its_socket() {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let sb = Sandbox::new();
    let mut child = sb
        .daemon_command()
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn orchestratord");
    let pid = sb.daemon_pid();
    assert_eq!(u32::try_from(pid).ok(), Some(child.id()));
    kill(Pid::from_raw(pid), Signal::SIGTERM).expect("signal");
    let status = child.wait().expect("wait");
    assert_eq!(status.code(), Some(0), "exit 0 on SIGTERM");
    assert!(!sb.socket().exists(), "the socket is removed");
}

#[test]
fn daemon_stop_stops_it_and_the_next_command_starts_a_new_one() {
    let sb = Sandbox::new();
    sb.orchestrate(&["list"]).ok();
    let first = sb.daemon_pid();
    sb.orchestrate(&["daemon", "stop"]).ok();
    wait::until("the daemon to exit", wait::DEADLINE, || {
        sb.daemon_processes().is_empty().then_some(())
    });
    assert!(sb.health().is_none());
    let status = sb.orchestrate(&["daemon", "status"]).fails_with(3);
    assert!(status.stdout.contains("not running"), "{status}");
    assert!(
        sb.daemon_processes().is_empty(),
        "daemon status does not autostart"
    );
    sb.orchestrate(&["list"]).ok();
    assert_ne!(sb.daemon_pid(), first);
}

#[test]
fn a_daemon_of_another_protocol_gets_a_clear_error_naming_the_restart() {
    let sb = Sandbox::new();
    fake_daemon::serve(
        &sb.socket(),
        200,
        serde_json::json!({
            "daemon_version": "9.0.0",
            "protocol_version": 999,
            "pid": 1,
            "started_at": "2026-01-01T00:00:00Z",
            "socket": sb.socket(),
            "data_dir": sb.data_dir(),
            "active_runs": 0
        }),
    );
    let out = sb.orchestrate(&["list"]).fails_with(1);
    assert!(out.stderr.contains("protocol 999"), "{out}");
    assert!(out.stderr.contains("orchestrate daemon stop"), "{out}");
}

/// With `ORCHESTRATOR_EXIT_WITH=<pid>` (what the suite and the bench give their daemons), the
/// daemon stops once that process is gone: a harness killed mid-run leaves no daemon behind.
#[test]
fn a_daemon_told_whom_it_serves_exits_when_that_process_is_gone() {
    let sb = Sandbox::new();
    let mut parent = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .expect("spawn a stand-in parent");
    let pid = parent.id().to_string();
    sb.orchestrate_env(
        sb.root(),
        &["daemon", "start"],
        &[("ORCHESTRATOR_EXIT_WITH", &pid)],
    )
    .ok();
    sb.orchestrate(&["daemon", "status"]).ok();
    parent.kill().expect("kill");
    parent.wait().expect("reap");
    orchestrator_tests::wait::until(
        "the daemon to stop",
        std::time::Duration::from_secs(20),
        || (sb.orchestrate(&["daemon", "status"]).code() == Some(3)).then_some(()),
    );
    assert!(
        sb.daemon_log()
            .contains("the process this daemon serves is gone"),
        "{}",
        sb.daemon_log()
    );
}

/// A daemon `orchestrate` starts keeps none of the descriptors its caller passed on beyond the
/// standard three (a terminal's or an editor's pipe would stay open for the daemon's life).
#[cfg(target_os = "linux")]
#[test]
fn an_autostarted_daemon_holds_nothing_its_caller_passed_on() {
    use std::os::fd::AsRawFd;
    let sb = Sandbox::new();
    // Not close-on-exec: `orchestrate` gets it, as it would from a careless parent.
    let (stray, _write) = nix::unistd::pipe().expect("pipe");
    let pipe = std::fs::read_link(format!("/proc/self/fd/{}", stray.as_raw_fd())).expect("link");
    sb.orchestrate(&["list", "--json"]).ok();
    let pid = sb.daemon_pid();
    let held: Vec<_> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("the daemon's descriptors")
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .collect();
    assert!(
        !held.contains(&pipe),
        "the daemon holds its caller's {}: {held:?}",
        pipe.display()
    );
}
