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
    let run = sb.start_run(&repo, "Dashboard");
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
    // a runs long enough to be seen running, also on a loaded machine where the browser
    // took 3 s to show the page; c's merge fails the gate until the answer changes it.
    let mut a = task("a", &[], &["a.txt"]);
    a["description"] = json!("Build a. sleep_ms=6000");
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
    // The critical path is a chain of two: a and one of b, c.
    assert_eq!(
        page.eval(
            "[document.querySelectorAll('svg.dag .node.critical').length, \
              document.querySelectorAll('svg.dag .edge.critical').length, \
              document.querySelector('[data-task=a]').classList.contains('critical')]"
        ),
        json!([2, 1, true])
    );
    page.eval(
        "window.__loaded = performance.timeOrigin; window.__seen = []; \
         (() => { const n = document.querySelector('[data-task=a]'); \
           window.__seen.push(n.dataset.status); \
           new MutationObserver(() => { window.__seen.push(n.dataset.status); \
             window.__at = Date.now(); }) \
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
    // A task's click shows its brief, attempts and model (and follows its worker).
    page.click("[data-task=b]");
    page.wait(
        "task b's details",
        "document.querySelector('#detail [data-task=b]')?.textContent.includes('Write [\"b.txt\"]')",
    );
    // How long after the merge was committed the page showed it.
    let lag = page.eval(&format!(
        "fetch('/ui/api/runs/{run}/events').then((r) => r.json()).then((l) => \
           window.__at - Date.parse(l.events.find((e) => e.kind === 'task_merged').at))"
    ));
    println!("dashboard: task a's merge reached the open page {lag} ms after it was committed");
    page.screenshot(&screenshots().join("run.png"));

    // c's merge fails the gate until the run escalates; the answer goes from the page.
    page.wait(
        "the escalation on the page",
        "!document.getElementById('escalation').hidden && document.getElementById('send-answer')",
    );
    assert_eq!(
        page.eval("/\\b(null|undefined|NaN)\\b/.test(document.body.innerText)"),
        Value::Bool(false),
        "{}",
        page.eval("document.body.innerText")
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
    // The status filter narrows the list to the runs in that status.
    page.eval(
        "(() => { const s = document.querySelector('[data-filter=status]'); \
           s.value = 'completed'; s.dispatchEvent(new Event('change')); })()",
    );
    page.wait(
        "the filtered list",
        &format!(
            "document.querySelector('[data-filter=status]').value === 'completed' \
             && document.querySelector('[data-run=\"{run}\"]') \
             && [...document.querySelectorAll('.card h2')].some((h) => h.textContent === 'Runs (1)')"
        ),
    );
}

/// A plan of `n` tasks, each depending on up to three earlier ones (seeded, so every run draws
/// the same graph).
fn wide_plan(n: usize, seed: u64) -> Vec<Value> {
    let mut rng = orchestrator_tests::rng::Rng::new(seed);
    (0..n)
        .map(|i| {
            let deps: Vec<String> = (0..rng.below(4))
                .filter(|_| i > 0)
                .map(|_| format!("t{}", rng.below(i as u64)))
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect();
            let deps: Vec<&str> = deps.iter().map(String::as_str).collect();
            task(&format!("t{i}"), &deps, &[&format!("f{i}.txt")])
        })
        .collect()
}

/// When the page first showed the whole run, in ms after navigation started.
fn ready_ms(page: &crate::browser::Page<'_>) -> f64 {
    page.wait(
        "the page to be ready",
        "performance.getEntriesByName('orchestrator:ready')[0]?.startTime",
    )
    .as_f64()
    .expect("a time")
}

/// The longest gap between animation frames over `ms`: how long the page could not answer.
fn longest_frame_gap(page: &crate::browser::Page<'_>, ms: u32) -> f64 {
    page.eval(&format!(
        "new Promise((done) => {{ let last = performance.now(), worst = 0; \
           const end = last + {ms}; \
           const tick = (t) => {{ worst = Math.max(worst, t - last); last = t; \
             if (t < end) requestAnimationFrame(tick); else done(worst); }}; \
           requestAnimationFrame(tick); }})"
    ))
    .as_f64()
    .expect("a gap")
}

/// Timings, printed (a benchmark is not a timed test): a 200-task plan's page load, and the
/// page's responsiveness while 64 workers report progress.
#[test]
fn a_200_task_plan_loads_and_64_live_workers_keep_the_page_responsive() {
    let sb = Sandbox::new();
    let big = sb.repo("big");
    let plan = write_plan(&sb, wide_plan(200, 7));
    sb.orchestrate_env(
        &big,
        &["start", "Two hundred tasks", "--dry-run", "--skip-codex"],
        &[("CLAUDE_FAKE_SCRIPT", &plan)],
    )
    .ok();
    wait::until("the 200-task plan", wait::DEADLINE, || {
        let s = sb.orchestrate_in(&big, &["status", "--json"]).ok().json();
        (s["status"] == "planned").then_some(())
    });
    let big_run = run_id(&sb, &big);
    let (url, addr) = login_url(&sb, Some(&big_run));
    let browser = Browser::launch(sb.root());
    let page = browser.open(&url);
    let first = ready_ms(&page);
    page.wait(
        "200 nodes",
        "document.querySelectorAll('svg.dag .node').length === 200",
    );
    let mut loads = vec![first];
    for _ in 0..4 {
        page.goto(&format!("http://{addr}/ui/runs/{big_run}"));
        loads.push(ready_ms(&page));
    }
    loads.sort_by(f64::total_cmp);

    let live = sb.repo("live");
    let tasks: Vec<Value> = (0..64)
        .map(|i| task(&format!("w{i}"), &[], &[&format!("w{i}.txt")]))
        .collect();
    let plan = write_plan(&sb, tasks);
    sb.orchestrate_env(
        &live,
        &[
            "start",
            "Sixty-four workers",
            "--skip-codex",
            "--concurrency",
            "64",
        ],
        &[
            ("CLAUDE_FAKE_SCRIPT", &plan),
            ("CLAUDE_FAKE_WORKER", "listen"),
        ],
    )
    .ok();
    wait::until("64 workers", wait::DEADLINE, || {
        let s = sb.orchestrate_in(&live, &["status", "--json"]).ok().json();
        (s["progress"]["in_progress"] == 64).then_some(())
    });
    page.goto(&format!("http://{addr}/ui/runs/{}", run_id(&sb, &live)));
    let live_ready = ready_ms(&page);
    page.wait(
        "64 running nodes",
        "document.querySelectorAll('svg.dag .node.st-in_progress').length === 64",
    );
    let gap = longest_frame_gap(&page, 3000);
    let events = sb
        .orchestrate_in(&live, &["log", "-n", "100000"])
        .ok()
        .stdout
        .lines()
        .count();
    println!(
        "dashboard: 200-task run page ready in {:.0} ms (median of {}, first {:.0} ms); \
         64 live workers: ready in {live_ready:.0} ms, longest frame gap over 3 s {gap:.0} ms \
         ({events} events in the run's log)",
        loads[loads.len() / 2],
        loads.len(),
        first
    );
    sb.orchestrate_in(&live, &["cancel"]).ok();
}

/// A daemon restart under an open page: the page says it is reconnecting, reconnects by
/// itself with the same session, and shows what changed meanwhile — without a reload.
#[test]
fn an_open_page_reconnects_after_a_daemon_restart_and_catches_up() {
    let sb = Sandbox::new();
    let repo = crate::lifecycle::one_running_task(&sb, "Reconnect", "hang");
    let run = run_id(&sb, &repo);
    let (url, _) = login_url(&sb, Some(&run));
    let browser = Browser::launch(sb.root());
    let page = browser.open(&url);
    page.wait(
        "the live connection",
        "document.getElementById('conn').dataset.state === 'live'",
    );
    page.eval("window.__loaded = performance.timeOrigin");
    sb.orchestrate(&["daemon", "stop"]).ok();
    page.wait(
        "the page to notice",
        "document.getElementById('conn').dataset.state === 'down'",
    );
    sb.orchestrate_in(&repo, &["pause"]).ok();
    page.wait(
        "the pause, caught up",
        "document.getElementById('conn').dataset.state === 'live' \
         && document.querySelector('.head .pill')?.textContent === 'paused'",
    );
    assert_eq!(
        page.eval("window.__loaded === performance.timeOrigin"),
        Value::Bool(true),
        "the page was never reloaded"
    );
    sb.orchestrate_in(&repo, &["cancel"]).ok();
}
