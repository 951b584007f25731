//! The web dashboard: its security rules over plain HTTP, then whole scenarios in headless
//! Chromium — a run followed live from its page and its escalation answered there, and the
//! timings of a 200-task plan and of 64 live workers.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;

use orchestrator_tests::http::{Response, parse};
use orchestrator_tests::{Sandbox, wait};
use serde_json::{Value, json};

use crate::browser::Browser;
use crate::execution::{task, write_plan};

/// One request to the daemon's loopback port; `Host` is the port's unless given.
fn send(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> Response {
    let mut s = TcpStream::connect(addr).expect("connect");
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        head.push_str(&format!("Host: {addr}\r\n"));
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).expect("write");
    s.write_all(body.as_bytes()).expect("write");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).expect("read");
    parse(&raw).expect("a response")
}

/// `orchestrate ui --print-url [--run id]`, and the `host:port` it names.
fn login_url(sb: &Sandbox, run: Option<&str>) -> (String, String) {
    let mut args = vec!["ui", "--print-url"];
    if let Some(r) = run {
        args.extend(["--run", r]);
    }
    let url = sb.orchestrate(&args).ok().stdout.trim().to_owned();
    let addr = url
        .strip_prefix("http://")
        .and_then(|r| r.split('/').next())
        .unwrap_or_else(|| panic!("not a login URL: {url}"))
        .to_owned();
    (url, addr)
}

/// The path and query of a URL on the daemon's port.
fn path_of(url: &str) -> &str {
    let rest = url.strip_prefix("http://").expect("http URL");
    &rest[rest.find('/').expect("a path")..]
}

#[test]
fn the_dashboard_refuses_strangers_foreign_pages_replayed_logins_and_changes_without_csrf() {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    let run = sb
        .orchestrate_in(&repo, &["start", "Dashboard", "--dry-run", "--json"])
        .ok()
        .json()["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let (url, addr) = login_url(&sb, Some(&run));
    let runs = "/ui/api/runs";

    // No cookie: 401, for the API and the page alike.
    assert_eq!(send(&addr, "GET", runs, &[], "").status, 401);
    let page = send(&addr, "GET", "/ui/", &[], "");
    assert_eq!(page.status, 401);
    assert!(page.text().contains("orchestrate ui"), "{}", page.text());

    // The login link sets an HttpOnly, SameSite=Strict cookie and opens the run's page, once.
    let login = send(&addr, "GET", path_of(&url), &[], "");
    assert_eq!(login.status, 303, "{}", login.text());
    assert_eq!(
        login.header("location"),
        Some(format!("/ui/runs/{run}").as_str())
    );
    let set = login.header("set-cookie").expect("a cookie").to_owned();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let cookie = set.split(';').next().expect("cookie").to_owned();
    let replay = send(&addr, "GET", path_of(&url), &[], "");
    assert_eq!(replay.status, 401, "a login link works once");
    assert!(replay.header("set-cookie").is_none());

    let with = [("Cookie", cookie.as_str())];
    let ok = send(&addr, "GET", runs, &with, "");
    assert_eq!(ok.status, 200, "{}", ok.text());
    assert_eq!(ok.json()["runs"][0]["id"], run.as_str());
    let csp = ok
        .header("content-security-policy")
        .expect("a CSP")
        .to_owned();
    assert!(
        csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );

    // Another site's page, or another name for this host: 403.
    let foreign = [
        ("Cookie", cookie.as_str()),
        ("Origin", "http://evil.example"),
    ];
    assert_eq!(send(&addr, "GET", runs, &foreign, "").status, 403);
    let rebound = [("Cookie", cookie.as_str()), ("Host", "evil.example")];
    assert_eq!(send(&addr, "GET", runs, &rebound, "").status, 403);

    // A change without the session's CSRF token, or with another, is refused and does nothing.
    let cancel = format!("/ui/api/runs/{run}/cancel");
    let json = ("Content-Type", "application/json");
    let refused = send(&addr, "POST", &cancel, &[with[0], json], "{}");
    assert_eq!(refused.status, 403, "{}", refused.text());
    let wrong = [with[0], json, ("X-CSRF-Token", "orch_guess")];
    assert_eq!(send(&addr, "POST", &cancel, &wrong, "{}").status, 403);
    let status = sb.orchestrate_in(&repo, &["status", "--json"]).ok().json();
    assert_eq!(status["status"], "running", "{status}");

    // With it, the change is made — exactly as the CLI's.
    let csrf = send(&addr, "GET", "/ui/api/session", &with, "").json()["csrf"]
        .as_str()
        .expect("csrf")
        .to_owned();
    let right = [with[0], json, ("X-CSRF-Token", csrf.as_str())];
    let done = send(&addr, "POST", &cancel, &right, "{}");
    assert_eq!(done.status, 200, "{}", done.text());
    assert_eq!(done.json()["status"], "cancelled");

    // Nothing under /ui reaches a session's token or the daemon's own controls.
    for path in [
        format!("/ui/api/runs/{run}/sessions"),
        "/ui/api/daemon/shutdown".into(),
        "/ui/api/clean".into(),
    ] {
        let r = send(&addr, "POST", &path, &right, "{\"role\":\"worker\"}");
        assert!(
            matches!(r.status, 404 | 405),
            "{path}: {} {}",
            r.status,
            r.text()
        );
    }
}

/// Where the screenshots go: `target/ui-screenshots/`.
fn screenshots() -> PathBuf {
    let bin = &orchestrator_tests::bins::bins().orchestrate;
    bin.parent()
        .and_then(|d| d.parent())
        .expect("target dir")
        .join("ui-screenshots")
}

fn run_id(sb: &Sandbox, repo: &std::path::Path) -> String {
    sb.orchestrate_in(repo, &["status", "--json"]).ok().json()["id"]
        .as_str()
        .expect("id")
        .to_owned()
}

#[test]
fn a_run_is_followed_live_and_its_escalation_answered_from_the_page() {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    // a runs long enough to be seen running; c's merge fails the gate until the answer
    // changes it.
    let mut a = task("a", &[], &["a.txt"]);
    a["description"] = json!("Build a. sleep_ms=3000");
    let plan = write_plan(
        &sb,
        vec![
            a,
            task("b", &["a"], &["b.txt"]),
            task("c", &["a"], &["c.txt"]),
        ],
    );
    sb.orchestrate_env(
        &repo,
        &[
            "start",
            "Greeting",
            "--skip-codex",
            "--gate",
            "test ! -f c.txt",
        ],
        &[("CLAUDE_FAKE_SCRIPT", &plan)],
    )
    .ok();
    wait::until("the plan", wait::DEADLINE, || {
        let s = sb.orchestrate_in(&repo, &["status", "--json"]).ok().json();
        (s["progress"]["tasks"] == 3).then_some(())
    });
    let run = run_id(&sb, &repo);
    let (url, _) = login_url(&sb, Some(&run));
    let browser = Browser::launch(sb.root());
    let page = browser.open(&url);

    // The graph: three nodes, two edges; every status change of task a is recorded from now.
    page.wait(
        "the graph",
        "document.querySelectorAll('svg.dag .node').length === 3 \
         && document.querySelectorAll('svg.dag .edge').length === 2",
    );
    page.eval(
        "window.__loaded = performance.timeOrigin; window.__seen = []; \
         (() => { const n = document.querySelector('[data-task=a]'); \
           window.__seen.push(n.dataset.status); \
           new MutationObserver(() => window.__seen.push(n.dataset.status)) \
             .observe(n, { attributes: true, attributeFilter: ['data-status'] }); })()",
    );
    // Its worker's output, live, as `orchestrate tail` renders it.
    page.wait(
        "task a's live output",
        "document.getElementById('output').textContent.includes('── task a · session s-')",
    );
    page.wait(
        "task a to turn merged without a reload",
        "window.__seen.includes('in_progress') && window.__seen.at(-1) === 'merged'",
    );
    page.screenshot(&screenshots().join("run.png"));

    // c's merge fails the gate until the run escalates; the answer goes from the page.
    page.wait(
        "the escalation on the page",
        "!document.getElementById('escalation').hidden && document.getElementById('send-answer')",
    );
    let question = page.eval("document.querySelector('#escalation .question').textContent");
    assert!(
        question
            .as_str()
            .is_some_and(|q| q.contains("test ! -f c.txt")),
        "{question}"
    );
    page.type_into("#answer", "c.txt is wanted; gate on true");
    page.type_into("#answer-gate", "true");
    page.click("#send-answer");
    page.wait(
        "the run to complete on the page",
        "document.querySelector('.head .pill')?.textContent === 'completed'",
    );
    assert_eq!(
        page.eval("window.__loaded === performance.timeOrigin"),
        Value::Bool(true),
        "the page was never reloaded"
    );
    let status = sb.orchestrate_in(&repo, &["status", "--json"]).ok().json();
    assert_eq!(status["status"], "completed", "{status}");
    assert_eq!(status["options"]["gate"], "true", "{status}");
    let context =
        std::fs::read_to_string(repo.join(".orchestrator/context.md")).expect("context.md");
    assert!(
        context.contains("c.txt is wanted; gate on true"),
        "{context}"
    );

    page.goto(&url.replace(path_of(&url), "/ui/"));
    page.wait(
        "the runs page",
        &format!("document.querySelector('[data-run=\"{run}\"]')"),
    );
    page.screenshot(&screenshots().join("runs.png"));
}
