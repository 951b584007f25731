//! The `orchestratord` binary: resolve the configuration, claim the data directory and the
//! socket, serve until SIGTERM/SIGINT or `orchestrate daemon stop`, remove the socket, exit 0.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use orchestratord::{Config, config, socket};
use tracing_subscriber::EnvFilter;

/// See `orchestratord::alloc`.
#[global_allocator]
static ALLOCATOR: orchestratord::alloc::Allocator = orchestratord::alloc::ALLOCATOR;

/// The per-user orchestrator daemon. Normally started by `orchestrate` on demand, or by the
/// systemd user unit / launchd agent.
#[derive(Debug, Parser)]
#[command(name = "orchestratord", version)]
struct Args {
    /// Unix socket of the JSON API [env: ORCHESTRATOR_SOCKET]
    #[arg(long, value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Directory of the SQLite database [env: ORCHESTRATOR_DATA_DIR]
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Print the commented reference config file and exit
    #[arg(long)]
    print_config: bool,
    /// Replace the database with a backup (from `<data dir>/backups/`) and exit; the daemon
    /// must not be running. The database it replaces is moved aside, not deleted.
    #[arg(long, value_name = "FILE")]
    restore: Option<PathBuf>,
    /// Log to files in DIR instead of stderr: `orchestratord.<date>.log`, a new one each day,
    /// the last 7 kept (`orchestrate` passes `<data dir>/logs` when it starts the daemon)
    /// [env: ORCHESTRATOR_LOG_DIR]
    #[arg(long, value_name = "DIR")]
    log_dir: Option<PathBuf>,
}

fn main() -> ExitCode {
    // An agent session starting confined (`confine`): before anything else, single-threaded.
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if argv
        .get(1)
        .is_some_and(|a| a == orchestratord::confine::TRAMPOLINE)
    {
        return orchestratord::confine::trampoline(&argv[2..]);
    }
    orchestratord::alloc::tune();
    let args = Args::parse();
    if args.print_config {
        print!("{}", config::REFERENCE);
        return ExitCode::SUCCESS;
    }
    let mut config = match Config::resolve(args.socket.as_deref(), args.data_dir.as_deref()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("orchestratord: {e}");
            return ExitCode::from(2);
        }
    };
    // Every file the daemon creates is its owner's alone (the database holds API keys).
    nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o077));
    if let Some(from) = &args.restore {
        return restore(&config, from);
    }
    let log_dir = args
        .log_dir
        .or_else(|| std::env::var_os("ORCHESTRATOR_LOG_DIR").map(PathBuf::from));
    config.log_dir = logging(&config.log, log_dir);
    raise_descriptor_limit();
    match serve(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            eprintln!("orchestratord: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Sets up tracing with `filter`: to daily-rotated files in `dir` (the directory is returned),
/// else to stderr, in colour only for a person at a terminal (never into journald).
fn logging(filter: &str, dir: Option<PathBuf>) -> Option<PathBuf> {
    use std::io::IsTerminal;
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|e| {
        eprintln!("orchestratord: ignoring the log filter {filter:?}: {e}");
        EnvFilter::new(orchestratord::config::DEFAULT_LOG)
    });
    let files = dir.and_then(|dir| {
        tracing_appender::rolling::Builder::new()
            .rotation(tracing_appender::rolling::Rotation::DAILY)
            .filename_prefix("orchestratord")
            .filename_suffix("log")
            .max_log_files(7)
            .build(&dir)
            .map(|appender| (dir.clone(), appender))
            .map_err(|e| {
                eprintln!(
                    "orchestratord: cannot log to {}: {e}; logging to stderr",
                    dir.display()
                )
            })
            .ok()
    });
    let fmt = tracing_subscriber::fmt().with_env_filter(filter);
    match files {
        Some((dir, appender)) => {
            fmt.with_writer(appender).with_ansi(false).init();
            Some(dir)
        }
        None => {
            fmt.with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal())
                .init();
            None
        }
    }
}

fn serve(config: Config) -> anyhow::Result<()> {
    let _lock = socket::lock_data_dir(&config.data_dir)?;
    orchestratord::confine::serve_as_trampoline();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let (listener, _bound) = socket::bind(&config.socket)?;
        orchestratord::run(config, listener, signalled()).await?;
        tracing::info!("orchestratord stopped");
        anyhow::Ok(())
        // `_bound` drops here and removes the socket, if it is still ours.
    })
}

/// `--restore FILE`: with the data dir locked (no daemon running), the backup replaces the
/// database.
fn restore(config: &Config, from: &std::path::Path) -> ExitCode {
    let _lock = match socket::lock_data_dir(&config.data_dir) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("orchestratord: {e}");
            eprintln!("hint: stop the daemon first (`orchestrate daemon stop`), then restore");
            return ExitCode::from(2);
        }
    };
    let db = config.data_dir.join("orchestrator.db");
    match orchestratord::store::durable::restore(from, &db) {
        Ok(r) => {
            println!(
                "Restored {} with {} from {}.",
                db.display(),
                orchestrator_proto::words::count(r.runs as u64, "run"),
                from.display()
            );
            if let Some(p) = r.previous {
                println!("The database it replaced is kept as {}.", p.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("orchestratord: cannot restore from {}: {e}", from.display());
            ExitCode::from(2)
        }
    }
}

/// Resolves on the first SIGTERM or SIGINT.
async fn signalled() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!(
            "cannot install signal handlers; stop the daemon with `orchestrate daemon stop`"
        );
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
        pid = outlived() => tracing::info!(pid, "the process this daemon serves is gone: shutting down"),
    }
}

/// With `ORCHESTRATOR_EXIT_WITH=<pid>` (a test suite or a benchmark starting throwaway
/// daemons), returns once that process is gone, so a harness killed mid-run leaves no daemon
/// behind; without it, never.
async fn outlived() -> i32 {
    let pid = std::env::var("ORCHESTRATOR_EXIT_WITH")
        .ok()
        .and_then(|p| p.trim().parse::<i32>().ok())
        .filter(|p| *p > 1);
    let Some(pid) = pid else {
        return std::future::pending().await;
    };
    let target = nix::unistd::Pid::from_raw(pid);
    loop {
        if nix::sys::signal::kill(target, None) == Err(nix::errno::Errno::ESRCH) {
            return pid;
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// Raises the soft limit on open descriptors to the hard one (capped at 1 Mi): the daemon holds
/// a run's sessions, logs, pipes and connections at once, and the common soft limit of 1024 is
/// the first thing a burst of connections would exhaust.
fn raise_descriptor_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) else {
        return;
    };
    let want = hard.min(1 << 20);
    if want > soft {
        // macOS refuses more than OPEN_MAX (10240) whatever the hard limit says.
        let set = setrlimit(Resource::RLIMIT_NOFILE, want, hard)
            .map(|()| want)
            .or_else(|_| {
                let open_max = want.min(10_240);
                setrlimit(Resource::RLIMIT_NOFILE, open_max, hard).map(|()| open_max)
            });
        match set {
            Ok(to) => tracing::debug!(from = soft, to, "raised the open-file limit"),
            Err(e) => tracing::warn!(soft, hard, cause = %e, "cannot raise the open-file limit"),
        }
    }
}
