//! [`Sandbox`]: one test's sealed world. Its commands get a cleared environment with only
//! `PATH` and the sandbox's own HOME, `XDG_RUNTIME_DIR`, data dir and config path, so the
//! socket and the database are the sandbox's alone. Dropping it kills every daemon that
//! served its socket.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Output, Stdio};

use crate::bins::bins;
use crate::{http, repo, wait};

pub struct Sandbox {
    dir: tempfile::TempDir,
}

/// A finished command.
#[derive(Debug)]
pub struct Out {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    what: String,
}

impl Out {
    fn new(what: String, o: Output) -> Self {
        Self {
            status: o.status,
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
            what,
        }
    }

    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Asserts exit 0 and returns self.
    pub fn ok(self) -> Self {
        assert!(self.status.success(), "{} failed: {self}", self.what);
        self
    }

    /// Asserts the exit code and returns self.
    pub fn fails_with(self, code: i32) -> Self {
        assert_eq!(self.code(), Some(code), "{} exit code: {self}", self.what);
        self
    }

    /// Stdout as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("{} printed no JSON ({e}): {self}", self.what))
    }
}

impl std::fmt::Display for Out {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}\n--- stdout\n{}--- stderr\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

impl Sandbox {
    pub fn new() -> Self {
        // Short paths: a Unix socket path must fit in about 100 bytes.
        let dir = tempfile::Builder::new()
            .prefix("orch-")
            .tempdir_in("/tmp")
            .expect("create the sandbox dir");
        let sb = Self { dir };
        for d in [sb.home(), sb.data_dir()] {
            std::fs::create_dir_all(d).expect("create sandbox dirs");
        }
        std::fs::create_dir(sb.runtime_dir()).expect("create the runtime dir");
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(sb.runtime_dir(), std::fs::Permissions::from_mode(0o700))
            .expect("chmod the runtime dir");
        sb
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }
    pub fn home(&self) -> PathBuf {
        self.root().join("home")
    }
    pub fn runtime_dir(&self) -> PathBuf {
        self.root().join("run")
    }
    pub fn data_dir(&self) -> PathBuf {
        self.root().join("data")
    }
    /// Everything the daemons of this sandbox logged (their daily files and their stderr),
    /// oldest file first.
    pub fn daemon_log(&self) -> String {
        let dir = self.data_dir().join(orchestrator_proto::locate::LOG_DIR);
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default();
        files.sort();
        files
            .iter()
            .map(|f| std::fs::read_to_string(f).unwrap_or_default())
            .collect()
    }
    pub fn config_file(&self) -> PathBuf {
        self.root().join("config.toml")
    }
    /// Where both binaries put the socket by default in this sandbox.
    pub fn socket(&self) -> PathBuf {
        self.runtime_dir().join("orchestrator/orchestratord.sock")
    }

    /// A git repository with one commit, at `<sandbox>/<name>`.
    pub fn repo(&self, name: &str) -> PathBuf {
        repo::init(&self.root().join(name), &self.home())
    }

    /// `git args` in `dir`, under this sandbox's HOME.
    pub fn git(&self, dir: &Path, args: &[&str]) -> String {
        repo::git(dir, &self.home(), args)
    }

    /// A command for `program` in the sealed environment, run from the sandbox root.
    pub fn command(&self, program: &Path) -> Command {
        let mut c = Command::new(program);
        c.env_clear()
            .env("PATH", path_without_codex())
            .env("HOME", self.home())
            .env("XDG_RUNTIME_DIR", self.runtime_dir())
            .env("ORCHESTRATOR_DATA_DIR", self.data_dir())
            .env("ORCHESTRATOR_CONFIG", self.config_file())
            .env("GIT_CONFIG_NOSYSTEM", "1")
            // A suite or bench killed mid-run leaves no daemon behind.
            .env("ORCHESTRATOR_EXIT_WITH", std::process::id().to_string())
            // Runs use the fast tier's fake claude; by default it idles until stopped.
            .env("ORCHESTRATOR_CLAUDE_BIN", &bins().fake_claude)
            .env("CLAUDE_FAKE_SCRIPT", "hang")
            // Reviews are opted into with ORCHESTRATOR_CODEX_BIN=fake-codex; its counters live here.
            .env("CODEX_FAKE_STATE", self.root())
            .current_dir(self.root())
            .stdin(Stdio::null());
        c
    }

    /// `orchestrate args` from the sandbox root.
    pub fn orchestrate(&self, args: &[&str]) -> Out {
        self.orchestrate_in(self.root(), args)
    }

    /// `orchestrate args` from `dir`.
    pub fn orchestrate_in(&self, dir: &Path, args: &[&str]) -> Out {
        self.orchestrate_env(dir, args, &[])
    }

    /// `orchestrate args` from `dir` with extra environment (e.g. `CLAUDE_FAKE_SCRIPT`).
    pub fn orchestrate_env(&self, dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Out {
        let mut c = self.command(&bins().orchestrate);
        c.args(args).current_dir(dir);
        for (k, v) in env {
            c.env(k, v);
        }
        let out = c.output().expect("run orchestrate");
        Out::new(format!("orchestrate {}", args.join(" ")), out)
    }

    /// Pids of agent processes (a fake or real claude or codex, and what they started)
    /// working in this sandbox: every live process but daemons whose working directory is in
    /// it.
    pub fn agent_processes(&self) -> Vec<i32> {
        let root = self.root().to_path_buf();
        let me = i32::try_from(std::process::id()).unwrap_or(i32::MAX);
        let daemons = self.daemon_processes();
        proc_pids()
            .into_iter()
            .filter(|pid| *pid != me && !daemons.contains(pid))
            .filter(|pid| {
                let exe = std::fs::read_link(format!("/proc/{pid}/exe")).unwrap_or_default();
                let cwd = std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap_or_default();
                cwd.starts_with(&root)
                    && exe.file_name().is_some_and(|n| n != "orchestratord")
                    && !is_zombie(*pid)
            })
            .collect()
    }

    /// `orchestratord` as a direct child (not autostarted), for lifecycle tests.
    /// `--data-dir` is passed explicitly so [`Sandbox::daemon_processes`] can find it.
    pub fn daemon_command(&self) -> Command {
        let mut c = self.command(&bins().orchestratord);
        c.arg("--data-dir").arg(self.data_dir());
        c
    }

    /// The running daemon's `/v1/health`, if one answers.
    pub fn health(&self) -> Option<serde_json::Value> {
        let r = http::get(&self.socket(), "/v1/health").ok()?;
        (r.status == 200).then(|| r.json())
    }

    /// Waits until a daemon answers and returns its pid.
    pub fn daemon_pid(&self) -> i32 {
        wait::until("the daemon to answer", wait::DEADLINE, || {
            self.health()
                .and_then(|h| h["pid"].as_i64())
                .and_then(|p| i32::try_from(p).ok())
        })
    }

    /// `orchestrate start --dry-run` in `repo`; returns the run id. Its planner idles until a
    /// plan is submitted (through an API session), and once planned the run executes nothing
    /// by itself, so the test's own sessions are the only ones on its board.
    pub fn start_run(&self, repo: &Path, feature: &str) -> String {
        let out = self
            .orchestrate_in(repo, &["start", feature, "--dry-run", "--json"])
            .ok();
        out.json()["id"].as_str().expect("run id").to_owned()
    }

    /// [`Sandbox::start_run`] with a planner session's plan of one task, `a`, submitted.
    pub fn planned_one_task(&self, repo: &Path, feature: &str) -> String {
        let run = self.start_run(repo, feature);
        self.session(&run, "planner").ok(
            "submit_plan",
            serde_json::json!({"summary": "One step", "tasks": [{"id": "a", "title": "Build a",
                   "description": "Do a", "acceptance_criteria": ["a works"]}]}),
        );
        run
    }

    /// Opens an agent session on `run` over the API; returns the grant (token, mcp_url, …).
    pub fn open_session(&self, run: &str, body: serde_json::Value) -> serde_json::Value {
        let r = http::post_json(
            &self.socket(),
            &format!("/v1/runs/{run}/sessions"),
            body.to_string().as_bytes(),
        )
        .expect("open a session");
        assert_eq!(r.status, 201, "open session: {}", r.text());
        r.json()
    }

    /// An MCP client for a new session of `role` on `run`.
    pub fn session(&self, run: &str, role: &str) -> crate::mcp::Mcp {
        let g = self.open_session(run, serde_json::json!({ "role": role }));
        crate::mcp::Mcp::new(
            g["mcp_url"].as_str().expect("url"),
            Some(g["token"].as_str().expect("token")),
        )
    }

    /// The socket's URL path, for `curl --unix-socket`.
    pub fn get(&self, path: &str) -> http::Response {
        http::get(&self.socket(), path).expect("GET from the daemon")
    }

    /// Pids of every `orchestratord` process serving this sandbox (from /proc).
    pub fn daemon_processes(&self) -> Vec<i32> {
        let needle = self.data_dir().display().to_string();
        let mut pids = Vec::new();
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return pids;
        };
        for e in entries.flatten() {
            let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
                continue;
            };
            let Ok(cmdline) = std::fs::read(e.path().join("cmdline")) else {
                continue;
            };
            let args: Vec<String> = cmdline
                .split(|b| *b == 0)
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            let is_daemon = args.first().is_some_and(|a| a.ends_with("/orchestratord"));
            // `--data-dir` when started by a test, ORCHESTRATOR_DATA_DIR when autostarted.
            let env = format!("ORCHESTRATOR_DATA_DIR={needle}");
            let ours = args.iter().any(|a| a == &needle)
                || std::fs::read(e.path().join("environ"))
                    .is_ok_and(|environ| environ.split(|b| *b == 0).any(|v| v == env.as_bytes()));
            let zombie = std::fs::read_to_string(e.path().join("stat"))
                .map(|s| s.contains(") Z "))
                .unwrap_or(true);
            if is_daemon && ours && !zombie {
                pids.push(pid);
            }
        }
        pids
    }
}

impl Default for Sandbox {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        use nix::sys::signal::{Signal, kill};
        use nix::unistd::Pid;
        let me = i32::try_from(std::process::id()).unwrap_or(i32::MAX);
        let kill_all = |pids: Vec<i32>| {
            for pid in pids.into_iter().filter(|p| *p > 1 && *p != me) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
        };
        // Daemons first (so none can start another agent), then their agents.
        let mut daemons = self.daemon_processes();
        if let Some(pid) = self.health().and_then(|h| h["pid"].as_i64()) {
            daemons.extend(i32::try_from(pid).ok());
        }
        kill_all(daemons);
        let _ = std::panic::catch_unwind(|| {
            crate::wait::until("the daemons to die", crate::wait::DEADLINE, || {
                self.daemon_processes().is_empty().then_some(())
            })
        });
        kill_all(self.agent_processes());
    }
}

fn proc_pids() -> Vec<i32> {
    std::fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse().ok()))
                .collect()
        })
        .unwrap_or_default()
}

fn is_zombie(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| s.contains(") Z "))
        .unwrap_or(true)
}

/// The test process's `PATH` without directories that hold a `codex`: a run only gets Codex
/// reviews when a test opts in, whatever is installed on the machine.
/// The test process's PATH without any directory that holds a `codex` (so runs find none unless
/// a test gives one).
pub fn path_without_codex() -> std::ffi::OsString {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = std::env::split_paths(&path)
        .filter(|d| !d.join("codex").exists())
        .collect();
    std::env::join_paths(dirs).unwrap_or(path)
}
