//! Living on the user's machine: the slash command's `setup`, the service files and
//! `daemon install|uninstall` in a sealed HOME (with a recording stand-in for `systemctl`).

use std::os::unix::fs::PermissionsExt;

use orchestrator_tests::Sandbox;

#[test]
fn setup_installs_the_slash_command_idempotently_and_uninstalls_it() {
    let sb = Sandbox::new();
    let target = sb.home().join(".claude/commands/orchestrate.md");
    let out = sb.orchestrate(&["setup"]).ok();
    assert!(out.stdout.contains("Installed"), "{out}");
    let text = std::fs::read_to_string(&target).expect("installed");
    assert!(
        text.contains("orchestrate start") && text.contains("$ARGUMENTS"),
        "{text}"
    );
    let again = sb.orchestrate(&["setup"]).ok();
    assert!(again.stdout.contains("up to date"), "{again}");
    sb.orchestrate(&["setup", "--uninstall"]).ok();
    assert!(!target.exists());

    // CLAUDE_CONFIG_DIR wins over ~/.claude.
    let custom = sb.root().join("claude-config");
    let mut c = sb.command(&orchestrator_tests::bins::bins().orchestrate);
    let out = c
        .arg("setup")
        .env("CLAUDE_CONFIG_DIR", &custom)
        .output()
        .expect("run");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(custom.join("commands/orchestrate.md").is_file());
}

/// `orchestrate args` with `path` as its PATH (a stand-in `systemctl` first); what it printed.
fn with_path(sb: &Sandbox, path: &str, args: &[&str]) -> String {
    let out = sb
        .command(&orchestrator_tests::bins::bins().orchestrate)
        .args(args)
        .env("PATH", path)
        .output()
        .expect("run");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{args:?}: {text}");
    text
}

/// A `systemctl` that records its arguments and succeeds.
fn fake_systemctl(sb: &Sandbox) -> (std::path::PathBuf, std::path::PathBuf) {
    let bin = sb.root().join("fakebin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    let log = sb.root().join("systemctl.log");
    let script = bin.join("systemctl");
    std::fs::write(
        &script,
        format!("#!/bin/sh\necho \"$@\" >> {}\n", log.display()),
    )
    .expect("write");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    (bin, log)
}

#[cfg(target_os = "linux")]
#[test]
fn daemon_install_writes_a_verified_unit_enables_it_and_uninstall_removes_it() {
    let sb = Sandbox::new();
    let (fakebin, log) = fake_systemctl(&sb);
    let path = format!(
        "{}:{}",
        fakebin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run = |args: &[&str]| with_path(&sb, &path, args);
    sb.orchestrate(&["list"]).ok(); // a daemon started on demand is running
    let said = run(&["daemon", "install"]);
    let unit = sb.home().join(".config/systemd/user/orchestratord.service");
    assert!(said.contains(&unit.display().to_string()), "{said}");
    let text = std::fs::read_to_string(&unit).expect("unit written");
    let daemon =
        std::fs::canonicalize(&orchestrator_tests::bins::bins().orchestratord).expect("path");
    assert!(
        text.contains(&format!("ExecStart={}", daemon.display())),
        "{text}"
    );
    assert!(
        text.contains("KillMode=process") && text.contains("Restart=on-failure"),
        "{text}"
    );
    let calls = std::fs::read_to_string(&log).expect("systemctl called");
    assert!(
        calls.contains("--user daemon-reload")
            && calls.contains("--user enable --now orchestratord.service"),
        "{calls}"
    );
    assert!(
        sb.health().is_none(),
        "the on-demand daemon made way for the service"
    );

    // The written unit passes systemd's own check.
    let verify = std::process::Command::new("systemd-analyze")
        .args(["verify"])
        .arg(&unit)
        .output()
        .expect("systemd-analyze is installed (.ci/test checks for it)");
    assert!(
        verify.status.success(),
        "{}",
        String::from_utf8_lossy(&verify.stderr)
    );

    // Idempotent, then gone.
    assert!(run(&["daemon", "install"]).contains("up to date"));
    run(&["daemon", "uninstall"]);
    assert!(!unit.exists());
    let calls = std::fs::read_to_string(&log).expect("log");
    assert!(
        calls.contains("--user disable --now orchestratord.service"),
        "{calls}"
    );
}

#[test]
fn the_launchd_agent_is_a_valid_property_list() {
    let template = include_str!("../../../launchd/dev.orchestrator.orchestratord.plist");
    let rendered = template
        .replace("@ORCHESTRATORD@", "/usr/local/bin/orchestratord")
        .replace("@LOGDIR@", "/tmp/logs")
        .replace("@LOG@", "/tmp/o.log");
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("agent.plist");
    std::fs::write(&file, rendered).expect("write");
    let out = std::process::Command::new("python3")
        .args(["-c", "import plistlib,sys,json; d=plistlib.load(open(sys.argv[1],'rb')); print(json.dumps(d))"])
        .arg(&file)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let parsed: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(parsed["Label"], "dev.orchestrator.orchestratord");
    assert_eq!(
        parsed["ProgramArguments"][0],
        "/usr/local/bin/orchestratord"
    );
    assert_eq!(parsed["ProgramArguments"][1], "--log-dir");
    assert_eq!(parsed["ProgramArguments"][2], "/tmp/logs");
    assert_eq!(parsed["KeepAlive"]["SuccessfulExit"], false);
    assert_eq!(parsed["StandardErrorPath"], "/tmp/o.log");
}

#[test]
fn doctor_reports_what_runs_need_and_fails_when_claude_is_missing() {
    let sb = Sandbox::new();
    sb.orchestrate(&["list"]).ok(); // a daemon is running
    let out = sb
        .command(&orchestrator_tests::bins::bins().orchestrate)
        .args(["doctor", "--json"])
        .env("ANTHROPIC_API_KEY", "sk-test-not-shown")
        .output()
        .expect("run doctor");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(!stdout.contains("sk-test-not-shown"), "never the secret");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    let status = |name: &str| {
        report["checks"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["name"] == name))
            .map(|c| c["status"].as_str().unwrap_or("").to_owned())
            .unwrap_or_else(|| panic!("no {name} check: {report}"))
    };
    assert_eq!(
        status("claude"),
        "ok",
        "the fake reports the tested version: {report}"
    );
    assert_eq!(status("daemon"), "ok");
    assert_eq!(status("socket"), "ok");
    assert_eq!(status("mcp endpoint"), "ok");
    assert_eq!(
        status("sessions"),
        "ok",
        "no stray agent processes: {report}"
    );
    assert_eq!(
        status("claude credentials"),
        "warn",
        "API key billing: {report}"
    );

    let missing = sb
        .command(&orchestrator_tests::bins::bins().orchestrate)
        .arg("doctor")
        .env("ORCHESTRATOR_CLAUDE_BIN", sb.root().join("nope"))
        .env("PATH", "/usr/bin:/bin")
        .output()
        .expect("run doctor");
    assert_eq!(missing.status.code(), Some(1));
    let text = String::from_utf8_lossy(&missing.stdout);
    assert!(text.contains("FAIL  claude"), "{text}");
}

#[test]
fn completions_and_the_man_page_come_from_the_cli_definition() {
    let sb = Sandbox::new();
    let bash = sb.orchestrate(&["completions", "bash"]).ok().stdout;
    for word in [
        "orchestrate",
        "start",
        "escalations",
        "--concurrency",
        "--gate",
    ] {
        assert!(bash.contains(word), "bash completion knows {word}");
    }
    assert!(
        sb.orchestrate(&["completions", "zsh"])
            .ok()
            .stdout
            .contains("#compdef orchestrate")
    );
    let man = sb.orchestrate(&["man"]).ok().stdout;
    assert!(
        man.starts_with(".ie") || man.contains(".TH orchestrate"),
        "{}",
        &man[..man.len().min(200)]
    );
    assert!(man.contains("start"), "subcommands are listed");
    // One page per subcommand, each with its own options.
    let pages = sb.root().join("man");
    let dir = pages.display().to_string();
    sb.orchestrate(&["man", "--dir", &dir]).ok();
    let start = std::fs::read_to_string(pages.join("orchestrate-start.1")).expect("start's page");
    assert!(start.contains("setup"), "{start}");
    assert!(pages.join("orchestrate-daemon-install.1").is_file());
    assert!(sb.health().is_none(), "none of these start the daemon");
}

/// `orchestrate … | head` ends quietly when head has read enough: status 141 (the shell's
/// for SIGPIPE), nothing on stderr, and `watch` stops instead of redrawing into the void.
#[test]
fn a_closed_stdout_ends_a_command_quietly_with_141() {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    sb.start_run(&repo, "Something to watch");
    for args in [
        &["man"][..],
        &["completions", "bash"],
        &["list"],
        &["status"],
        &["log"],
        &["watch", "--interval", "0.1"],
        &["daemon", "status"],
    ] {
        // A pipe whose reading end is closed before the command starts: its first write fails.
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        let out = sb
            .command(&orchestrator_tests::bins::bins().orchestrate)
            .args(args)
            .current_dir(&repo)
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .output()
            .expect("run orchestrate");
        assert_eq!(
            out.status.code(),
            Some(141),
            "orchestrate {args:?}: {out:?}"
        );
        assert!(out.stderr.is_empty(), "orchestrate {args:?}: {out:?}");
    }
}

#[test]
fn desktop_notifications_tell_the_user_when_a_run_completes() {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    let bin = sb.root().join("notifybin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    let log = sb.root().join("notify.log");
    let script = bin.join("notify-send");
    std::fs::write(
        &script,
        format!("#!/bin/sh\necho \"$@\" >> {}\n", log.display()),
    )
    .expect("write");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let plan = sb.root().join("plan.json");
    std::fs::write(
        &plan,
        r#"{"summary":"s","tasks":[{"id":"a","title":"A","description":"D","acceptance_criteria":["ok"],"files":["a.txt"]}]}"#,
    )
    .expect("plan");
    let script_env = format!("plan:{}", plan.display());
    // The daemon starts here, with the notifier on its PATH.
    sb.orchestrate_env(
        &repo,
        &["start", "Notify me"],
        &[("PATH", &path), ("CLAUDE_FAKE_SCRIPT", &script_env)],
    )
    .ok();
    orchestrator_tests::wait::until(
        "the notification",
        orchestrator_tests::wait::DEADLINE,
        || {
            std::fs::read_to_string(&log)
                .ok()
                .filter(|l| l.contains("is complete"))
        },
    );
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(text.contains("Notify me"), "{text}");
}

#[test]
fn daemon_start_stop_restart_act_on_the_daemon_and_keep_its_runs() {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    let run = sb.start_run(&repo, "Kept across restarts");
    let first = sb.daemon_pid();
    let said = sb.orchestrate(&["daemon", "restart"]).ok().stdout;
    let second = sb.daemon_pid();
    assert_ne!(first, second, "a new daemon");
    assert!(
        said.contains(&format!("restarted (pid {first} → pid {second})")),
        "{said}"
    );
    let status = sb.orchestrate_in(&repo, &["status", "--json"]).ok().json();
    assert_eq!(status["id"], run.as_str());
    assert!(
        sb.orchestrate(&["daemon", "stop"])
            .ok()
            .stdout
            .contains("stopped")
    );
    sb.orchestrate(&["daemon", "status"]).fails_with(3);
    assert!(
        sb.orchestrate(&["daemon", "stop"])
            .ok()
            .stdout
            .contains("not running")
    );
    let said = sb.orchestrate(&["daemon", "start"]).ok().stdout;
    assert!(said.contains("; 1 active run"), "{said}");
}

#[cfg(target_os = "linux")]
#[test]
fn once_installed_start_stop_restart_go_through_systemctl() {
    let sb = Sandbox::new();
    let bin = sb.root().join("fakebin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    let log = sb.root().join("systemctl.log");
    let pidfile = sb.root().join("service.pid");
    // A stand-in for systemd: records the call and really starts or stops the daemon.
    let script = bin.join("systemctl");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$@\" >> {log}\ncase \"$2\" in\n\
             start) setsid {daemon} </dev/null >/dev/null 2>&1 & echo $! > {pid} ;;\n\
             stop) kill -TERM \"$(cat {pid})\" ;;\n\
             restart) kill -TERM \"$(cat {pid})\"; while kill -0 \"$(cat {pid})\" 2>/dev/null; do :; done\n\
             setsid {daemon} </dev/null >/dev/null 2>&1 & echo $! > {pid} ;;\nesac\n",
            log = log.display(),
            daemon = orchestrator_tests::bins::bins().orchestratord.display(),
            pid = pidfile.display()
        ),
    )
    .expect("write");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run = |args: &[&str]| with_path(&sb, &path, args);
    run(&["daemon", "install"]);
    run(&["daemon", "start"]);
    let first = sb.daemon_pid();
    let said = run(&["daemon", "restart"]);
    let second = sb.daemon_pid();
    assert_ne!(first, second, "{said}");
    run(&["daemon", "stop"]);
    assert!(sb.health().is_none());
    let calls = std::fs::read_to_string(&log).expect("systemctl called");
    for call in [
        "--user start orchestratord.service",
        "--user restart orchestratord.service",
        "--user stop orchestratord.service",
    ] {
        assert!(calls.contains(call), "{call}: {calls}");
    }
    run(&["daemon", "uninstall"]);
}

/// `[[notifications.webhook]]`: an escalation and a completion reach a loopback receiver in
/// each format (generic JSON, ntfy, Slack-compatible); a hook that fails once is retried; the
/// URL's secret never reaches the daemon's log.
#[test]
fn webhooks_carry_escalations_and_completions_in_each_format() {
    use std::sync::{Arc, Mutex};

    use std::time::Duration;

    use orchestrator_tests::fake_http::{Answer, Request, listen};
    let sb = Sandbox::new();
    let seen: Arc<Mutex<Vec<Request>>> = Arc::default();
    let failed_once = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (log, once) = (seen.clone(), failed_once.clone());
    let url = listen(Arc::new(move |r: &Request| {
        if r.path.ends_with("/flaky-s3cr3t")
            && !once.swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            return Answer {
                status: 500,
                ..Answer::ok("text/plain", "down".into())
            };
        }
        log.lock().expect("log").push(r.clone());
        Answer::ok("text/plain", "ok".into())
    }));
    std::fs::write(
        sb.config_file(),
        format!(
            "[notifications]\nenabled = false\n\
             [[notifications.webhook]]\nurl = \"{url}/json\"\n\
             [[notifications.webhook]]\nurl = \"{url}/ntfy\"\nformat = \"ntfy\"\n\
             [[notifications.webhook]]\nurl = \"{url}/flaky-s3cr3t\"\nformat = \"slack\"\n"
        ),
    )
    .expect("config");
    let repo = sb.repo("app");
    let plan = sb.root().join("plan.json");
    std::fs::write(
        &plan,
        r#"{"summary":"s","tasks":[{"id":"a","title":"A","description":"D","acceptance_criteria":["ok"],"files":["a.txt"]}]}"#,
    )
    .expect("plan");
    let script = format!("plan:{}", plan.display());
    sb.orchestrate_env(
        &repo,
        &[
            "start",
            "Tell me anywhere",
            "--skip-codex",
            "--gate",
            "exit 1",
        ],
        &[("CLAUDE_FAKE_SCRIPT", &script)],
    )
    .ok();
    let got = |path: &str, event: &str| -> Option<Request> {
        seen.lock()
            .expect("log")
            .iter()
            .find(|r| {
                r.path.ends_with(path)
                    && (String::from_utf8_lossy(&r.body).contains(event)
                        || r.header("title").is_some_and(|t| t.contains(event)))
            })
            .cloned()
    };
    let json =
        orchestrator_tests::wait::until("the escalation's JSON", Duration::from_secs(60), || {
            got("/json", "escalated")
        });
    let body: serde_json::Value = serde_json::from_slice(&json.body).expect("JSON");
    assert_eq!(body["event"], "escalated", "{body}");
    assert!(
        body["feature"] == "Tell me anywhere" && body["run"].as_str().is_some(),
        "{body}"
    );
    let ntfy = orchestrator_tests::wait::until("ntfy", Duration::from_secs(10), || {
        got("/ntfy", "needs you")
    });
    assert_eq!(ntfy.header("priority"), Some("high"));
    assert!(String::from_utf8_lossy(&ntfy.body).starts_with("Tell me anywhere — "));
    let slack =
        orchestrator_tests::wait::until("the retried Slack hook", Duration::from_secs(10), || {
            got("/flaky-s3cr3t", "needs you")
        });
    let text: serde_json::Value = serde_json::from_slice(&slack.body).expect("JSON");
    assert!(
        text["text"]
            .as_str()
            .is_some_and(|t| t.starts_with("*orchestrator: run needs you*")),
        "{text}"
    );
    assert!(
        failed_once.load(std::sync::atomic::Ordering::SeqCst),
        "the first try failed"
    );
    let daemon_log = sb.daemon_log();
    assert!(
        daemon_log.contains("a webhook refused a notification"),
        "the failed try is logged: {daemon_log}"
    );
    assert!(
        !daemon_log.contains("s3cr3t"),
        "the URL leaked: {daemon_log}"
    );
    sb.orchestrate_in(&repo, &["cancel"]).ok();
}
