//! `orchestrate start`: what a run creates (branch, mirror, exclude line) and what a refused
//! start leaves behind (nothing).

use std::path::Path;

use orchestrator_tests::Sandbox;

/// Everything git and the filesystem say about a project, to compare before and after.
#[derive(Debug, PartialEq)]
struct Snapshot {
    head: String,
    head_ref: String,
    branches: String,
    porcelain: String,
    has_mirror: bool,
}

fn snapshot(sb: &Sandbox, repo: &Path) -> Snapshot {
    Snapshot {
        head: sb.git(repo, &["rev-parse", "HEAD"]),
        head_ref: sb.git(repo, &["symbolic-ref", "HEAD"]),
        branches: sb.git(repo, &["branch", "--format=%(refname)"]),
        // Without --ignored: the mirror must not show up as untracked.
        porcelain: sb.git(repo, &["status", "--porcelain"]),
        has_mirror: repo.join(".orchestrator").exists(),
    }
}

fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_else(|e| panic!("read {}: {e}", p.display()))
}

#[test]
fn start_creates_branch_mirror_and_exclude_without_touching_the_checkout() {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    // An uncommitted edit the user is in the middle of must survive untouched.
    std::fs::write(repo.join("README.md"), "# demo\nwork in progress\n").expect("edit");
    let before = snapshot(&sb, &repo);

    let out = sb
        .orchestrate_in(
            &repo,
            &[
                "start",
                "Add a Dark-Mode toggle!",
                "--concurrency",
                "3",
                "--json",
            ],
        )
        .ok();
    let run = out.json();
    let branch = "orchestrate/add-a-dark-mode-toggle";
    assert_eq!(run["branch"], branch);
    assert_eq!(
        run["status"], "queued",
        "as submitted; planning starts right after"
    );
    assert_eq!(run["phase"], "pending");
    assert_eq!(run["cycle"], 0);
    assert_eq!(run["options"]["concurrency"], 3);
    assert_eq!(run["options"]["max_cycles"], 5);
    assert_eq!(run["options"]["usage_threshold"], 0.8);
    assert_eq!(run["project"], repo.display().to_string());
    assert_eq!(run["base_commit"], before.head);

    // The branch points at the user's HEAD; the user's checkout is exactly as it was.
    assert_eq!(sb.git(&repo, &["rev-parse", branch]), before.head);
    let after = snapshot(&sb, &repo);
    assert_eq!(after.head, before.head);
    assert_eq!(after.head_ref, "refs/heads/main");
    assert_eq!(after.porcelain, " M README.md", "only the user's own edit");
    assert_eq!(read(&repo.join("README.md")), "# demo\nwork in progress\n");

    // The mirror.
    let mirror = repo.join(".orchestrator");
    let state: serde_json::Value =
        serde_json::from_str(&read(&mirror.join("state.json"))).expect("state.json is JSON");
    assert_eq!(state["id"], run["id"]);
    assert!(
        state["status"] == "queued" || state["status"] == "running",
        "active: {state}"
    );
    assert!(read(&mirror.join("context.md")).contains("Add a Dark-Mode toggle!"));
    for sub in ["tasks", "sessions", "messages", "codex-reviews", "logs"] {
        assert!(mirror.join(sub).is_dir(), "{sub}/ exists");
    }
    assert!(read(&mirror.join("logs/orchestrator.log")).contains("submitted"));
    let exclude = read(&repo.join(".git/info/exclude"));
    assert_eq!(
        exclude
            .lines()
            .filter(|l| l.trim() == "/.orchestrator/")
            .count(),
        1
    );

    // list and status agree.
    let list = sb.orchestrate(&["list", "--json"]).ok().json();
    assert_eq!(list["runs"].as_array().map(Vec::len), Some(1));
    assert_eq!(list["runs"][0]["id"], run["id"]);
    let status = sb
        .orchestrate(&[
            "status",
            "--json",
            "--project",
            repo.to_str().expect("utf-8"),
        ])
        .ok()
        .json();
    assert_eq!(status["id"], run["id"]);
    // From a subdirectory, --project defaults to the current directory's work tree.
    std::fs::create_dir(repo.join("src")).expect("mkdir");
    let from_sub = sb
        .orchestrate_in(&repo.join("src"), &["status", "--json"])
        .ok()
        .json();
    assert_eq!(from_sub["id"], run["id"]);
    // Human output names the run and its branch.
    let human = sb.orchestrate_in(&repo, &["status"]).ok();
    assert!(human.stdout.contains(branch), "{human}");
}

#[test]
fn a_second_start_on_the_same_project_is_refused_naming_the_active_run() {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    let first = sb
        .orchestrate_in(&repo, &["start", "First feature", "--json"])
        .ok()
        .json();
    let before = snapshot(&sb, &repo);
    let out = sb
        .orchestrate_in(&repo, &["start", "Second feature"])
        .fails_with(2);
    let id = first["id"].as_str().expect("id");
    assert!(out.stderr.contains(id), "{out}");
    assert!(out.stderr.contains("orchestrate resume"), "{out}");
    assert!(out.stderr.contains("orchestrate cancel"), "{out}");
    assert_eq!(snapshot(&sb, &repo), before, "nothing created");
    let list = sb.orchestrate(&["list", "--json"]).ok().json();
    assert_eq!(list["runs"].as_array().map(Vec::len), Some(1));
}

#[test]
fn refused_starts_explain_the_fix_and_create_nothing() {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    let plain = sb.root().join("plain");
    std::fs::create_dir(&plain).expect("mkdir");
    let empty = orchestrator_tests::repo::init_empty(&sb.root().join("empty"), &sb.home());
    let missing = sb.root().join("missing");
    let r = repo.to_str().expect("utf-8");
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            vec!["start", "x", "--project", missing.to_str().expect("utf-8")],
            "does not exist",
        ),
        (
            vec!["start", "x", "--project", plain.to_str().expect("utf-8")],
            "git init",
        ),
        (
            vec!["start", "x", "--project", empty.to_str().expect("utf-8")],
            "commit",
        ),
        (vec!["start", "   ", "--project", r], "feature"),
        (
            vec!["start", "x", "--project", r, "--concurrency", "0"],
            "1",
        ),
        (
            vec!["start", "x", "--project", r, "--concurrency", "65"],
            "64",
        ),
        (
            vec!["start", "x", "--project", r, "--max-cycles", "0"],
            "max-cycles",
        ),
        (
            vec!["start", "x", "--project", r, "--usage-threshold", "0"],
            "usage-threshold",
        ),
        (
            vec!["start", "x", "--project", r, "--usage-threshold", "1.5"],
            "usage-threshold",
        ),
        (
            vec!["start", "x", "--project", r, "--usage-threshold", "NaN"],
            "usage-threshold",
        ),
        (
            vec![
                "start",
                "x",
                "--project",
                r,
                "--context-file",
                "/nonexistent/ctx.md",
            ],
            "context",
        ),
    ];
    let before = snapshot(&sb, &repo);
    let empty_before = sb.git(&empty, &["status", "--porcelain", "--ignored"]);
    for (args, needle) in cases {
        let out = sb.orchestrate(&args).fails_with(2);
        let first_line = out.stderr.lines().next().unwrap_or("");
        assert!(first_line.starts_with("error: "), "{args:?}: {out}");
        assert!(
            out.stderr.to_lowercase().contains(&needle.to_lowercase()),
            "{args:?} should mention {needle:?}: {out}"
        );
        assert!(out.stderr.contains("hint: "), "{args:?} names a fix: {out}");
    }
    assert_eq!(snapshot(&sb, &repo), before);
    assert!(!missing.exists());
    assert_eq!(std::fs::read_dir(&plain).expect("ls").count(), 0);
    assert_eq!(
        sb.git(&empty, &["status", "--porcelain", "--ignored"]),
        empty_before
    );
    let list = sb.orchestrate(&["list", "--json"]).ok().json();
    assert_eq!(list["runs"], serde_json::json!([]));
}

#[test]
fn the_context_file_lands_in_context_md() {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    let ctx = sb.root().join("requirements.md");
    std::fs::write(
        &ctx,
        "## Requirements\n- Toggle in the header\n- Remember the choice\n",
    )
    .expect("write");
    sb.orchestrate_in(
        &repo,
        &[
            "start",
            "Dark mode",
            "--context-file",
            ctx.to_str().expect("utf-8"),
        ],
    )
    .ok();
    let md = read(&repo.join(".orchestrator/context.md"));
    assert!(md.contains("Dark mode"), "{md}");
    assert!(
        md.contains("- Toggle in the header\n- Remember the choice"),
        "{md}"
    );
    assert!(
        md.contains("requirements.md"),
        "names where it came from: {md}"
    );
}

/// `--context-file -` reads the context from stdin, so the slash command leaves no file in the
/// checkout.
#[test]
fn the_context_can_come_on_stdin() {
    use std::io::Write;
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    let mut child = sb
        .command(&orchestrator_tests::bins::bins().orchestrate)
        .args(["start", "Dark mode", "--context-file", "-"])
        .current_dir(&repo)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn start");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"## Q&A\n- Where? The header.\n")
        .expect("write stdin");
    let out = child.wait_with_output().expect("start");
    assert!(out.status.success(), "{out:?}");
    let md = read(&repo.join(".orchestrator/context.md"));
    assert!(md.contains("- Where? The header."), "{md}");
    let status = sb.orchestrate_in(&repo, &["status", "--json"]).ok().json();
    assert!(
        status.get("context_file").is_none(),
        "no file named: {status}"
    );
}

#[test]
fn slugs_are_bounded_ascii_and_unique() {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    sb.git(&repo, &["branch", "orchestrate/cafe-creme-support"]);
    let long = format!("Café crème support {}", "and more words ".repeat(20));
    let run = sb
        .orchestrate_in(&repo, &["start", "Café Crème support", "--json"])
        .ok()
        .json();
    assert_eq!(run["branch"], "orchestrate/cafe-creme-support-2");
    sb.orchestrate_in(&repo, &["cancel"]).ok();
    let run = sb
        .orchestrate_in(&repo, &["start", &long, "--json"])
        .ok()
        .json();
    let branch = run["branch"].as_str().expect("branch");
    let slug = branch.strip_prefix("orchestrate/").expect("prefix");
    assert!(slug.len() <= 60, "{slug}");
    assert!(
        slug.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'),
        "{slug}"
    );
    assert!(!slug.ends_with('-'), "{slug}");
}

#[test]
fn the_client_environment_is_kept_for_sessions_but_never_shown() {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    let secret = "sk-ant-test-5ecret-value";
    let out = sb
        .command(&orchestrator_tests::bins::bins().orchestrate)
        .args(["start", "Feature", "--json"])
        .current_dir(&repo)
        .env("ANTHROPIC_API_KEY", secret)
        .env("SSH_AUTH_SOCK", "/not/forwarded")
        .output()
        .expect("run orchestrate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains(secret));
    let mut seen = String::new();
    for args in [
        vec!["status", "--json"],
        vec!["list", "--json"],
        vec!["log", "--json"],
    ] {
        seen.push_str(&sb.orchestrate_in(&repo, &args).ok().stdout);
    }
    seen.push_str(&sb.get("/v1/runs").text());
    for entry in walk(&repo.join(".orchestrator")) {
        seen.push_str(&std::fs::read_to_string(entry).unwrap_or_default());
    }
    let log = sb.daemon_log();
    assert!(log.contains("orchestratord"), "the daemon logged: {log}");
    seen.push_str(&log);
    assert!(!seen.contains(secret), "the secret leaked");
    // But the daemon kept it (and only forwarded names) for the run's sessions.
    let db = std::fs::read(sb.data_dir().join("orchestrator.db")).expect("db");
    let wal = std::fs::read(sb.data_dir().join("orchestrator.db-wal")).unwrap_or_default();
    let stored = String::from_utf8_lossy(&db).into_owned() + &String::from_utf8_lossy(&wal);
    assert!(
        stored.contains(secret),
        "kept in the database for the sessions"
    );
    assert!(
        !stored.contains("/not/forwarded"),
        "unrelated variables are not kept"
    );
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}
