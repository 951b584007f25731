//! The `orchestrate` binary: parse, run one command against the daemon, map errors to exit
//! codes (2: the user's to fix, 1: the daemon's) with a hint naming the fix.

use std::process::ExitCode;

use clap::Parser;
use orchestrate::cli::{self, Cli};

/// `orchestrate log | head` ends quietly, as other CLIs do: printing to a closed stdout panics
/// in Rust (SIGPIPE is ignored so that a daemon hanging up the socket is an error, not death),
/// so that one panic exits with the shell's status for SIGPIPE and nothing else is printed.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let text = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied())
            .unwrap_or("");
        if text.starts_with("failed printing to stdout") && text.contains("Broken pipe") {
            std::process::exit(141);
        }
        default(info);
    }));
}

fn main() -> ExitCode {
    // Before any thread starts: the time zone for the times people read.
    orchestrate::output::read_local_offset();
    quiet_on_closed_stdout();
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
