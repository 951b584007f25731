//! Reaching the daemon, starting it when nobody answers.
//!
//! **Invariant:** two clients racing start one daemon: the start is done under an exclusive
//! lock next to the socket, and the lock holder checks again before spawning. The daemon runs
//! detached in its own session, logging to daily files in `<data dir>/logs/` (a week kept), its
//! stderr appended to `logs/orchestratord.stderr`.

use std::fs::{DirBuilder, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use orchestrator_proto::{Health, HealthProbe, PROTOCOL_VERSION, locate};

use crate::client::Client;
use crate::error::ClientError;

/// How long a freshly spawned daemon has to answer `/v1/health`.
const START_DEADLINE: Duration = Duration::from_secs(10);

/// Connects to the daemon, starting it if needed, and checks its protocol version.
pub async fn connect(socket: &Path) -> Result<Client, ClientError> {
    let client = Client::new(socket)?;
    match client.health().await {
        Ok(_) => {}
        Err(ClientError::Unreachable { .. }) => {
            start(&client).await?;
        }
        Err(e) => return Err(e),
    }
    Ok(client)
}

pub fn check_protocol(socket: &Path, h: &HealthProbe) -> Result<(), ClientError> {
    if h.protocol_version == PROTOCOL_VERSION {
        Ok(())
    } else {
        Err(ClientError::ProtocolMismatch {
            socket: socket.to_path_buf(),
            daemon: h.protocol_version,
            daemon_version: h.daemon_version.clone(),
            ours: PROTOCOL_VERSION,
            our_version: env!("CARGO_PKG_VERSION"),
        })
    }
}

async fn start(client: &Client) -> Result<Health, ClientError> {
    let socket = client.socket();
    let dir = socket.parent().unwrap_or(Path::new("/"));
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| ClientError::Autostart(format!("cannot create {}: {e}", dir.display())))?;
    let lock_path = dir.join("orchestratord.start.lock");
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| ClientError::Autostart(format!("cannot open {}: {e}", lock_path.display())))?;
    // Blocks only while another client is starting the daemon (bounded by its deadline).
    lock.lock()
        .map_err(|e| ClientError::Autostart(format!("cannot lock {}: {e}", lock_path.display())))?;
    if let Ok(h) = client.health().await {
        return Ok(h);
    }
    let exe = daemon_binary()?;
    let data_dir = locate::data_dir(None).map_err(|e| ClientError::Autostart(e.to_string()))?;
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&data_dir)
        .map_err(|e| {
            ClientError::Autostart(format!("cannot create {}: {e}", data_dir.display()))
        })?;
    let (log_dir, log_path, log) = stderr_log(&data_dir)?;
    let log_start = log.metadata().map(|m| m.len()).unwrap_or(0);
    let mut cmd = Command::new(&exe);
    cmd.arg("--socket")
        .arg(socket)
        .arg("--data-dir")
        .arg(&data_dir)
        .arg("--log-dir")
        .arg(&log_dir)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log);
    detach(&mut cmd);
    let mut child = cmd
        .spawn()
        .map_err(|e| ClientError::Autostart(format!("cannot run {}: {e}", exe.display())))?;
    let deadline = Instant::now() + START_DEADLINE;
    let mut pause = Duration::from_millis(2);
    loop {
        if let Ok(h) = client.health().await {
            // Reap it later: the daemon outlives us; a zombie is impossible once we exit.
            drop(child);
            return Ok(h);
        }
        if let Ok(Some(status)) = child.try_wait() {
            let tail = log_tail(&log_path, log_start);
            return Err(ClientError::Autostart(format!(
                "{} exited ({status}) before answering:\n{tail}",
                exe.display()
            )));
        }
        if Instant::now() >= deadline {
            return Err(ClientError::Autostart(format!(
                "{} did not answer on {} within {}s; see {}",
                exe.display(),
                socket.display(),
                START_DEADLINE.as_secs(),
                log_path.display()
            )));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}

/// Runs the child in a new session, so that closing the terminal does not kill the daemon,
/// and without the descriptors beyond the standard three that whoever ran `orchestrate`
/// passed on (a terminal's or an editor's pipe): a daemon lives for weeks, and would hold
/// them open all that time.
#[allow(unsafe_code)]
fn detach(cmd: &mut Command) {
    // SAFETY: setsid() and close_range() are plain system calls, async-signal-safe, touching
    // no memory of the parent; close_range only marks descriptors close-on-exec (std's own
    // exec-error pipe is already).
    unsafe {
        cmd.pre_exec(|| {
            #[cfg(target_os = "linux")]
            libc::syscall(
                libc::SYS_close_range,
                3u32,
                u32::MAX,
                libc::CLOSE_RANGE_CLOEXEC,
            );
            nix::unistd::setsid()
                .map(drop)
                .map_err(std::io::Error::from)
        });
    }
}

/// `orchestratord` next to this binary, else on `PATH`.
pub fn daemon_binary() -> Result<PathBuf, ClientError> {
    if let Some(p) = std::env::var_os("ORCHESTRATORD_BIN").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    if let Ok(me) = std::env::current_exe() {
        let beside = me.with_file_name("orchestratord");
        if beside.is_file() {
            return Ok(beside);
        }
    }
    std::env::var_os("PATH")
        .and_then(|path| orchestrator_proto::locate::on_path(&path, "orchestratord"))
        .ok_or_else(|| {
            ClientError::Autostart(
                "orchestratord is neither next to orchestrate nor on PATH; install both \
                 (see the README's first command) or set ORCHESTRATORD_BIN"
                    .into(),
            )
        })
}

/// The daemon logs to daily files in `<data dir>/logs` itself; its stderr (a panic, a failure
/// before its logging is up) goes to a file beside them, started afresh once it passes 1 MiB.
fn stderr_log(data_dir: &Path) -> Result<(PathBuf, PathBuf, std::fs::File), ClientError> {
    let log_dir = data_dir.join(locate::LOG_DIR);
    DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&log_dir)
        .map_err(|e| ClientError::Autostart(format!("cannot create {}: {e}", log_dir.display())))?;
    let log_path = log_dir.join(locate::STDERR_LOG);
    let full = std::fs::metadata(&log_path).is_ok_and(|m| m.len() > 1 << 20);
    let log = OpenOptions::new()
        .create(true)
        .append(!full)
        .write(true)
        .truncate(full)
        .mode(0o600)
        .open(&log_path)
        .map_err(|e| ClientError::Autostart(format!("cannot open {}: {e}", log_path.display())))?;
    Ok((log_dir, log_path, log))
}

fn log_tail(path: &Path, from: u64) -> String {
    let text = std::fs::read(path).unwrap_or_default();
    let start = usize::try_from(from).unwrap_or(0).min(text.len());
    let new = String::from_utf8_lossy(&text[start..]);
    let lines: Vec<&str> = new.lines().collect();
    lines[lines.len().saturating_sub(10)..].join("\n")
}
