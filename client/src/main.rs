//! The `orchestrate` binary: parse, run one command against the daemon, map errors to exit
//! codes (2: the user's to fix, 1: the daemon's) with a hint naming the fix.

use std::process::ExitCode;

use clap::Parser;
use orchestrate::cli::{self, Cli};

fn main() -> ExitCode {
    // Before any thread starts: the time zone for the times people read.
    orchestrate::output::read_local_offset();
    let args = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("orchestrate: cannot start: {e}");
            return ExitCode::from(orchestrate::error::exit::DAEMON);
        }
    };
    match runtime.block_on(cli::run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        // The run's state was printed already; the code says it.
        Err(e @ orchestrate::error::ClientError::Ended(_)) => ExitCode::from(e.exit_code()),
        Err(e) => {
            eprintln!("error: {e}");
            let mut source = std::error::Error::source(&e);
            while let Some(cause) = source {
                eprintln!("  caused by: {cause}");
                source = cause.source();
            }
            if let Some(hint) = e.hint() {
                eprintln!("  hint: {hint}");
            }
            ExitCode::from(e.exit_code())
        }
    }
}
