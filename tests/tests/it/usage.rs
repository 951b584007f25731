//! The usage governor with the fast tier: workers whose streams report the account's window
//! (`rate_limit_event`s and usage-limit results from the fake claude), a scripted fake usage
//! endpoint with 429s, pauses until the reset and resumes by themselves, `claude --resume` in
//! the same worktree, the budget, and the token never leaking.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use orchestrator_tests::fake_model::{Answer, Request, listen};
use orchestrator_tests::{Sandbox, wait};
use serde_json::{Value, json};

use crate::execution::{task, wait_final};

/// A config that resumes right at the reset and gives workers `grace` seconds.
fn config(sb: &Sandbox, extra: &str) {
    std::fs::write(
        sb.config_file(),
        format!("[usage]\nreset_margin_secs = 0\ngrace_secs = 30\n{extra}"),
    )
    .expect("config");
}

fn plan_file(sb: &Sandbox, tasks: Vec<Value>) -> String {
    let file = sb.root().join("plan.json");
    std::fs::write(&file, json!({"summary": "s", "tasks": tasks}).to_string()).expect("plan");
    format!("plan:{}", file.display())
}

fn status(sb: &Sandbox, repo: &Path) -> Value {
    sb.orchestrate_in(repo, &["status", "--json"]).ok().json()
}

fn wait_status(sb: &Sandbox, repo: &Path, want: &str) -> Value {
    wait::until(&format!("the run to be {want}"), wait::DEADLINE, || {
        let s = status(sb, repo);
        (s["status"] == want).then_some(s)
    })
}

fn log(sb: &Sandbox, repo: &Path) -> String {
    sb.orchestrate_in(repo, &["log", "-n", "1000"]).ok().stdout
}

#[test]
fn crossing_the_threshold_lets_running_work_finish_then_pauses_until_the_reset() {
    let sb = Sandbox::new();
    config(&sb, "");
    let repo = sb.repo("app");
    let plan = plan_file(
        &sb,
        vec![task("a", &[], &["a.txt"]), task("b", &["a"], &["b.txt"])],
    );
    let once = sb.root().join("warned").display().to_string();
    sb.orchestrate_env(
        &repo,
        &["start", "Two steps", "--skip-codex"],
        &[
            ("CLAUDE_FAKE_SCRIPT", &plan),
            ("CLAUDE_FAKE_WORKER", "warn"),
            ("CLAUDE_FAKE_ONCE", &once),
            ("CLAUDE_FAKE_RESET_SECS", "3"),
        ],
    )
    .ok();
    let paused = wait_status(&sb, &repo, "paused");
    let reason = paused["status_reason"].as_str().unwrap_or("");
    assert!(
        reason.contains("5-hour window is at 90%") && reason.contains("resumes by itself"),
        "{paused}"
    );
    assert_eq!(paused["hold"]["kind"], "usage", "{paused}");
    assert!(paused["hold"]["until"].is_string(), "{paused}");
    let human = sb.orchestrate_in(&repo, &["status"]).ok().stdout;
    assert!(human.contains("waiting    usage hold until"), "{human}");

    let run = wait_final(&sb, &repo);
    let log = log(&sb, &repo);
    assert_eq!(run["status"], "completed", "{run}\n{log}");
    assert!(run.get("hold").is_none(), "the hold is cleared: {run}");
    // a finished within the grace period; b waited for the reset.
    let merged_a = log.find("Task a merged").expect("a merged");
    let resumed = log
        .find("the usage window has reset: resuming by itself")
        .expect("resumed by itself");
    let dispatched_b = log.find("Task b dispatched").expect("b dispatched");
    assert!(merged_a < resumed && resumed < dispatched_b, "{log}");
}

#[test]
fn a_hit_limit_interrupts_the_worker_and_it_continues_with_resume_in_its_worktree() {
    let sb = Sandbox::new();
    config(&sb, "");
    let repo = sb.repo("app");
    let plan = plan_file(
        &sb,
        vec![task("a", &[], &["a.txt"]), task("b", &["a"], &["b.txt"])],
    );
    sb.orchestrate_env(
        &repo,
        &["start", "Two steps", "--skip-codex"],
        &[
            ("CLAUDE_FAKE_SCRIPT", &plan),
            ("CLAUDE_FAKE_WORKER", "limit"),
            ("CLAUDE_FAKE_RESET_SECS", "2"),
        ],
    )
    .ok();
    let run = wait_final(&sb, &repo);
    let log = log(&sb, &repo);
    assert_eq!(run["status"], "completed", "{run}\n{log}");
    // Each task: one session that hit the limit, one that continued it after the reset; no
    // worker is started while the account is over its limit.
    assert_eq!(run["progress"]["sessions"], 5, "{run}\n{log}");
    assert!(
        log.contains("Task a interrupted (the account hit its usage limit)")
            && log.contains("usage: the account hit its 5-hour limit")
            && log.contains("Task a continues in session")
            && log.contains("claude --resume"),
        "{log}"
    );
    let branch = run["branch"].as_str().expect("branch");
    let files = sb.git(&repo, &["ls-tree", "-r", "--name-only", branch]);
    assert!(
        files.contains("partial-a.txt"),
        "the interrupted work was kept and finished in the same worktree: {files}"
    );
    let t: Value = serde_json::from_str(
        &std::fs::read_to_string(repo.join(".orchestrator/tasks/a.json")).expect("task"),
    )
    .expect("json");
    assert_eq!(t["attempts"], 1, "an interruption is not an attempt: {t}");
}

#[test]
fn without_auto_resume_the_run_waits_for_the_user_who_can_force_it() {
    let sb = Sandbox::new();
    config(&sb, "");
    let repo = sb.repo("app");
    let plan = plan_file(&sb, vec![task("a", &[], &["a.txt"])]);
    sb.orchestrate_env(
        &repo,
        &["start", "One step", "--skip-codex", "--no-auto-resume"],
        &[
            ("CLAUDE_FAKE_SCRIPT", &plan),
            ("CLAUDE_FAKE_WORKER", "limit"),
            ("CLAUDE_FAKE_RESET_SECS", "1"),
        ],
    )
    .ok();
    let paused = wait_status(&sb, &repo, "paused");
    assert!(
        paused["status_reason"]
            .as_str()
            .unwrap_or("")
            .contains("auto-resume is off"),
        "{paused}"
    );
    // Well past the reset, it still waits.
    let until = paused["hold"]["until"].as_str().expect("until").to_owned();
    let until = time::OffsetDateTime::parse(&until, &time::format_description::well_known::Rfc3339)
        .expect("time");
    wait::until("the reset to pass", wait::DEADLINE, || {
        (time::OffsetDateTime::now_utc() > until + time::Duration::seconds(3)).then_some(())
    });
    assert_eq!(status(&sb, &repo)["status"], "paused");
    sb.orchestrate_in(&repo, &["resume"]).ok();
    let run = wait_final(&sb, &repo);
    assert_eq!(run["status"], "completed", "{run}\n{}", log(&sb, &repo));
}

/// A fake usage endpoint: 429 first, then 95% until `reset`, then 5%; every request kept.
struct FakeUsage {
    url: String,
    requests: Arc<Mutex<Vec<Request>>>,
}

fn fake_usage(reset: time::OffsetDateTime) -> FakeUsage {
    let requests: Arc<Mutex<Vec<Request>>> = Arc::new(Mutex::new(Vec::new()));
    let log = requests.clone();
    let url = listen(Arc::new(move |r: &Request| {
        let n = {
            let mut l = log.lock().expect("lock");
            l.push(r.clone());
            l.len()
        };
        if n == 1 {
            return Answer {
                status: 429,
                ..Answer::ok(
                    "application/json",
                    r#"{"error":{"type":"rate_limit_error"}}"#.into(),
                )
            };
        }
        let fmt = &time::format_description::well_known::Rfc3339;
        let five = if time::OffsetDateTime::now_utc() < reset {
            json!({"utilization": 95.0, "resets_at": reset.format(fmt).expect("fmt")})
        } else {
            json!({"utilization": 5.0, "resets_at": null})
        };
        let body = json!({"five_hour": five,
                          "seven_day": {"utilization": 40.0, "resets_at": "2030-01-01T00:00:00+00:00"},
                          "seven_day_opus": null, "extra_usage": {"is_enabled": false}});
        Answer::ok("application/json", body.to_string())
    }));
    FakeUsage { url, requests }
}

const SECRET: &str = "sk-ant-oat01-never-shown-0123456789";

/// Every file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_under(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn the_usage_endpoint_is_polled_with_backoff_and_a_run_started_over_the_threshold_waits() {
    let sb = Sandbox::new();
    // The binaries are built (or found) first: the scripted reset must not pass while cargo runs.
    sb.orchestrate(&["--version"]).ok();
    let reset = time::OffsetDateTime::now_utc() + time::Duration::seconds(8);
    let api = fake_usage(reset);
    config(
        &sb,
        &format!("base_url = \"{}\"\npoll_interval_secs = 1\n", api.url),
    );
    let repo = sb.repo("app");
    let env = [("CLAUDE_CODE_OAUTH_TOKEN", SECRET)];
    // The daemon starts (with the token in its environment) and polls: 429, then 95%.
    let last = std::cell::RefCell::new(Value::Null);
    let usage = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait::until("the poll to show 95%", wait::DEADLINE, || {
            let u = sb
                .orchestrate_env(&repo, &["usage", "--json"], &env)
                .ok()
                .json();
            *last.borrow_mut() = u.clone();
            (u["five_hour"]["utilization_percent"] == 95.0).then_some(u)
        })
    }))
    .unwrap_or_else(|_| {
        let reqs = api.requests.lock().map(|r| r.len()).unwrap_or(0);
        let daemon_log = sb.daemon_log();
        panic!(
            "no 95% poll; the endpoint saw {reqs} requests; the last report: {}\n{daemon_log}",
            last.borrow()
        )
    });
    assert_eq!(usage["five_hour"]["source"], "usage endpoint", "{usage}");
    assert_eq!(usage["seven_day"]["utilization_percent"], 40.0, "{usage}");
    assert!(
        usage["poller"]["token_source"]
            .as_str()
            .unwrap_or("")
            .contains("CLAUDE_CODE_OAUTH_TOKEN"),
        "{usage}"
    );
    {
        let reqs = api.requests.lock().expect("lock");
        let (first, second) = (&reqs[0], &reqs[1]);
        assert!(
            second.at - first.at >= Duration::from_millis(1900),
            "a 429 backs off (twice the interval): {:?}",
            second.at - first.at
        );
        assert_eq!(second.path, "/api/oauth/usage");
        assert_eq!(
            second.header("authorization"),
            Some(format!("Bearer {SECRET}").as_str())
        );
        assert_eq!(second.header("anthropic-beta"), Some("oauth-2025-04-20"));
        assert!(
            second
                .header("user-agent")
                .is_some_and(|u| u.starts_with("claude-code/")),
            "{:?}",
            second.headers
        );
    }
    let human = sb.orchestrate_env(&repo, &["usage"], &env).ok().stdout;
    assert!(
        human.contains("5-hour     95%") && human.contains("from the usage endpoint"),
        "{human}"
    );

    // Started over the threshold: it waits for the reset, then runs to the end.
    let plan = plan_file(&sb, vec![task("a", &[], &["a.txt"])]);
    let started = Instant::now();
    sb.orchestrate_env(
        &repo,
        &["start", "One step", "--skip-codex"],
        &[("CLAUDE_FAKE_SCRIPT", &plan), env[0]],
    )
    .ok();
    let paused = wait_status(&sb, &repo, "paused");
    assert!(
        paused["status_reason"]
            .as_str()
            .unwrap_or("")
            .contains("the 5-hour window is at 95% (threshold 80%, from the usage endpoint)"),
        "{paused}"
    );
    assert_eq!(paused["progress"]["sessions"], 0, "nothing ran: {paused}");
    let run = wait::until("the run to finish", Duration::from_secs(60), || {
        let s = status(&sb, &repo);
        (s["status"] == "completed").then_some(s)
    });
    assert!(
        time::OffsetDateTime::now_utc() >= reset,
        "not before the reset ({:?} after the start)",
        started.elapsed()
    );

    // The token is nowhere a user or another process can read it.
    let mut leaks = Vec::new();
    let mut places = files_under(&repo.join(".orchestrator"));
    places.extend(
        files_under(&sb.data_dir())
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "log" || e == "jsonl")),
    );
    for p in places {
        if std::fs::read(&p).is_ok_and(|b| String::from_utf8_lossy(&b).contains(SECRET)) {
            leaks.push(p.display().to_string());
        }
    }
    let id = run["id"].as_str().expect("id");
    for args in [
        vec!["status", "--json"],
        vec!["log", "--json", "-n", "1000"],
        vec!["usage", "--json"],
        vec!["list", "--json"],
        vec!["doctor", "--json"],
    ] {
        let out = sb.orchestrate_in(&repo, &args);
        if out.stdout.contains(SECRET) || out.stderr.contains(SECRET) {
            leaks.push(format!("orchestrate {}", args.join(" ")));
        }
    }
    for path in [
        format!("/v1/runs/{id}"),
        format!("/v1/runs/{id}/tasks"),
        "/v1/usage".into(),
    ] {
        if String::from_utf8_lossy(&sb.get(&path).body).contains(SECRET) {
            leaks.push(path);
        }
    }
    assert!(leaks.is_empty(), "the token leaked into {leaks:?}");
}

#[test]
fn reaching_the_budget_escalates_and_an_answer_grants_another() {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    let plan = plan_file(&sb, vec![task("a", &[], &["a.txt"])]);
    // The planner costs $0.001 and a worker $0.002.
    sb.orchestrate_env(
        &repo,
        &[
            "start",
            "One step",
            "--skip-codex",
            "--max-budget-usd",
            "0.002",
        ],
        &[("CLAUDE_FAKE_SCRIPT", &plan)],
    )
    .ok();
    let run = wait_final(&sb, &repo);
    assert_eq!(run["status"], "escalated", "{run}\n{}", log(&sb, &repo));
    let esc = sb.orchestrate(&["escalations", "--json"]).ok().json();
    assert_eq!(esc["escalations"][0]["kind"], "budget_exhausted", "{esc}");
    let human = sb.orchestrate_in(&repo, &["status"]).ok().stdout;
    assert!(
        human.contains("budget     $0.00 of $0.00 spent") || human.contains("budget"),
        "{human}"
    );
    sb.orchestrate_in(&repo, &["answer", "Fine, go on"]).ok();
    let run = wait_final(&sb, &repo);
    assert_eq!(run["status"], "completed", "{run}\n{}", log(&sb, &repo));
}

/// An HTTPS usage endpoint on loopback whose certificate is signed by a CA of its own (as a
/// TLS-inspecting proxy's is), made with `openssl` and served by Python's `ssl`; killed on drop.
struct TlsUsage {
    url: String,
    ca: PathBuf,
    server: std::process::Child,
}

impl Drop for TlsUsage {
    fn drop(&mut self) {
        self.server.kill().ok();
        self.server.wait().ok();
    }
}

const TLS_SERVER: &str = r#"
import http.server, json, ssl, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"five_hour": {"utilization": 37}, "seven_day": {"utilization": 5}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(sys.argv[1], sys.argv[2])
s.socket = ctx.wrap_socket(s.socket, server_side=True)
print(s.server_port, flush=True)
s.serve_forever()
"#;

fn tls_usage(dir: &Path) -> TlsUsage {
    use std::io::BufRead;
    std::fs::create_dir_all(dir).expect("tls dir");
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("run openssl");
        assert!(out.status.success(), "openssl {args:?}: {out:?}");
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=Test proxy CA",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        "leaf.key",
        "-out",
        "leaf.csr",
        "-subj",
        "/CN=127.0.0.1",
    ]);
    std::fs::write(
        dir.join("leaf.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n",
    )
    .expect("ext");
    openssl(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "leaf.pem",
        "-days",
        "2",
        "-extfile",
        "leaf.ext",
    ]);
    let mut server = std::process::Command::new("python3")
        .args(["-c", TLS_SERVER, "leaf.pem", "leaf.key"])
        .current_dir(dir)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start python3");
    let mut port = String::new();
    std::io::BufReader::new(server.stdout.take().expect("stdout"))
        .read_line(&mut port)
        .expect("the server's port");
    TlsUsage {
        url: format!("https://127.0.0.1:{}", port.trim()),
        ca: dir.join("ca.pem"),
        server,
    }
}

/// Behind a TLS-inspecting proxy, users point `SSL_CERT_FILE` at its CA: the poller trusts
/// what the system's trust store (so amended) trusts, and without it says why it cannot.
#[test]
fn the_usage_poller_trusts_the_ca_that_ssl_cert_file_names() {
    let keys = Sandbox::new();
    let tls = tls_usage(&keys.root().join("tls"));
    let ca = tls.ca.display().to_string();
    let mut shown = Vec::new();
    for with_ca in [false, true] {
        let sb = Sandbox::new();
        config(
            &sb,
            &format!("base_url = \"{}\"\npoll_interval_secs = 1\n", tls.url),
        );
        let mut env = vec![("CLAUDE_CODE_OAUTH_TOKEN", SECRET)];
        if with_ca {
            env.push(("SSL_CERT_FILE", &ca));
        }
        let usage = wait::until("a poll's outcome", wait::DEADLINE, || {
            let u = sb
                .orchestrate_env(sb.root(), &["usage", "--json"], &env)
                .ok()
                .json();
            (u["five_hour"]["utilization_percent"] == 37.0 || u["poller"]["last_error"].is_string())
                .then_some(u)
        });
        shown.push(usage);
    }
    let (without, with) = (&shown[0], &shown[1]);
    let error = without["poller"]["last_error"].as_str().unwrap_or("");
    assert!(
        error.contains("cannot reach") && error.to_lowercase().contains("certificate"),
        "without the CA the poll fails and says why: {without}"
    );
    assert_eq!(with["five_hour"]["utilization_percent"], 37.0, "{with}");
    assert_eq!(with["five_hour"]["source"], "usage endpoint", "{with}");
}

/// The account as a usage endpoint answers it on every poll — the 5-hour window at 10%, the
/// 7-day one at 50% and the 7-day Opus one at 96%, both resetting in two days — with the
/// daemon polling it every second; returns once `usage` shows the Opus window, with the reset.
fn opus_week_at_96(sb: &Sandbox, repo: &Path) -> time::OffsetDateTime {
    sb.orchestrate(&["--version"]).ok();
    let week = time::OffsetDateTime::now_utc() + time::Duration::days(2);
    let fmt = &time::format_description::well_known::Rfc3339;
    let body = json!({
        "five_hour": {"utilization": 10.0, "resets_at": null},
        "seven_day": {"utilization": 50.0, "resets_at": week.format(fmt).expect("fmt")},
        "seven_day_opus": {"utilization": 96.0, "resets_at": week.format(fmt).expect("fmt")},
        "seven_day_sonnet": null,
    })
    .to_string();
    let url = listen(Arc::new(move |_: &Request| {
        Answer::ok("application/json", body.clone())
    }));
    config(
        sb,
        &format!("base_url = \"{url}\"\npoll_interval_secs = 1\n"),
    );
    let env = [("CLAUDE_CODE_OAUTH_TOKEN", SECRET)];
    wait::until("the poll to show the Opus window", wait::DEADLINE, || {
        let u = sb
            .orchestrate_env(repo, &["usage", "--json"], &env)
            .ok()
            .json();
        (u["others"]["seven_day_opus"]["utilization_percent"] == 96.0).then_some(u)
    });
    week
}

/// The account reports a 7-day window per model family: at 96% on Opus, a run whose workers
/// run Opus waits for that window's reset (and says which window), a Sonnet run goes on, and
/// `orchestrate usage` lists the window.
#[test]
fn a_weekly_window_of_one_model_family_pauses_only_the_runs_of_that_family() {
    let sb = Sandbox::new();
    let (opus, sonnet) = (sb.repo("opus-app"), sb.repo("sonnet-app"));
    let week = opus_week_at_96(&sb, &opus);
    let env = [("CLAUDE_CODE_OAUTH_TOKEN", SECRET)];
    let human = sb.orchestrate_env(&opus, &["usage"], &env).ok().stdout;
    assert!(human.contains("7-day Opus 96%"), "{human}");
    let plan = plan_file(&sb, vec![task("a", &[], &["a.txt"])]);
    let start = |repo: &Path, model: &str| {
        let args = [
            "start",
            "One step",
            "--skip-codex",
            "--worker-model",
            model,
            "--weekly-threshold",
            "0.95",
        ];
        sb.orchestrate_env(repo, &args, &[("CLAUDE_FAKE_SCRIPT", &plan), env[0]])
            .ok();
    };
    start(&opus, "opus");
    start(&sonnet, "sonnet");
    let paused = wait_status(&sb, &opus, "paused");
    let why = paused["status_reason"].as_str().unwrap_or("");
    assert!(
        why.contains(
            "the 7-day Opus window is at 96% (weekly threshold 95%, from the usage endpoint)"
        ),
        "{paused}"
    );
    assert_eq!(paused["hold"]["kind"], "usage", "{paused}");
    let until = paused["hold"]["until"].as_str().unwrap_or("");
    assert!(
        until.starts_with(&week.date().to_string()),
        "until the week's reset: {paused}"
    );
    let done = wait_final(&sb, &sonnet);
    assert_eq!(
        done["status"], "completed",
        "the Sonnet run goes on: {done}"
    );
    assert_eq!(status(&sb, &opus)["status"], "paused");
}

/// With `--on-limit downgrade`, a run whose workers run Opus while the 7-day Opus window is
/// over its threshold does not wait: its tasks start on the cheaper allowed Sonnet, the log
/// says so with the reason, and the spend shows Sonnet.
#[test]
fn on_limit_downgrade_starts_tasks_on_a_cheaper_allowed_model_instead_of_waiting() {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    opus_week_at_96(&sb, &repo);
    let env = [("CLAUDE_CODE_OAUTH_TOKEN", SECRET)];
    let plan = plan_file(
        &sb,
        vec![task("a", &[], &["a.txt"]), task("b", &[], &["b.txt"])],
    );
    let args = [
        "start",
        "Two steps",
        "--skip-codex",
        "--worker-model",
        "claude-opus-5-5",
        "--allow-model",
        "sonnet",
        "--allow-model",
        "haiku",
        "--on-limit",
        "downgrade",
        "--weekly-threshold",
        "0.95",
    ];
    sb.orchestrate_env(&repo, &args, &[("CLAUDE_FAKE_SCRIPT", &plan), env[0]])
        .ok();
    let done = wait_final(&sb, &repo);
    let log = log(&sb, &repo);
    assert_eq!(done["status"], "completed", "{done}\n{log}");
    assert!(
        log.contains("Task a starts on sonnet instead of claude-opus-5-5: the 7-day Opus window is at 96% (weekly threshold 95%)"),
        "{log}"
    );
    let models: Vec<&str> = done["progress"]["models"]
        .as_array()
        .expect("models")
        .iter()
        .filter_map(|m| m["model"].as_str())
        .collect();
    assert_eq!(models, ["sonnet"], "both workers ran sonnet: {done}");
    let bad = sb
        .orchestrate_in(&repo, &["start", "Again", "--on-limit", "route"])
        .fails_with(2)
        .stderr;
    assert!(bad.contains("pause, downgrade or codex"), "{bad}");
}

/// A Sonnet run whose plan gives one task Opus while the 7-day Opus window is over its
/// threshold: the run goes on and its other task lands, the Opus task waits for the window's
/// reset and the log says so once.
#[test]
fn a_task_of_a_held_model_family_waits_while_the_rest_of_its_run_goes_on() {
    let sb = Sandbox::new();
    let repo = sb.repo("app");
    opus_week_at_96(&sb, &repo);
    let env = [("CLAUDE_CODE_OAUTH_TOKEN", SECRET)];
    let mut strong = task("a", &[], &["a.txt"]);
    strong["model"] = json!("opus");
    let plan = plan_file(&sb, vec![strong, task("b", &[], &["b.txt"])]);
    let args = [
        "start",
        "Two steps",
        "--skip-codex",
        "--worker-model",
        "sonnet",
        "--allow-model",
        "opus",
        "--weekly-threshold",
        "0.95",
    ];
    sb.orchestrate_env(&repo, &args, &[("CLAUDE_FAKE_SCRIPT", &plan), env[0]])
        .ok();
    let b_merged = wait::until("task b to land", wait::DEADLINE, || {
        let s = status(&sb, &repo);
        (s["progress"]["merged"] == 1).then_some(s)
    });
    assert_eq!(b_merged["status"], "running", "{b_merged}");
    let log = log(&sb, &repo);
    assert!(log.contains("Task b merged"), "{log}");
    assert!(!log.contains("Task a dispatched"), "{log}");
    assert_eq!(
        log.matches("Task a waits for opus until ").count(),
        1,
        "said once: {log}"
    );
    assert!(
        log.contains(
            "the 7-day Opus window is at 96% (weekly threshold 95%); the rest of the run goes on"
        ),
        "{log}"
    );
    sb.orchestrate_in(&repo, &["cancel"]).ok();
}
