//! Everything the CLI prints on stdout goes through [`outln!`](crate::outln) and
//! [`out!`](crate::out): a closed stdout (`orchestrate log | head`) ends the process quietly
//! with the shell's status for SIGPIPE, 141, as other CLIs do, and any other failure to write
//! is said on stderr (exit 1) instead of being lost. `std`'s `println!` would panic instead:
//! SIGPIPE is ignored here so that a daemon hanging up the socket is an error, not death.

use std::io::{self, Write};

/// The exit status of a command whose reader went away (128 + SIGPIPE).
pub const CLOSED: i32 = 141;

/// Writes `args` to stdout and flushes it; a failure ends the process (see the module).
pub fn write(args: std::fmt::Arguments<'_>) {
    let mut out = io::stdout().lock();
    if let Err(e) = out.write_fmt(args).and_then(|()| out.flush()) {
        failed(&e)
    }
}

/// Writes bytes (a man page, a completion script) to stdout, as [`write`] does.
pub fn write_bytes(bytes: &[u8]) {
    let mut out = io::stdout().lock();
    if let Err(e) = out.write_all(bytes).and_then(|()| out.flush()) {
        failed(&e)
    }
}

fn failed(e: &io::Error) -> ! {
    if e.kind() == io::ErrorKind::BrokenPipe {
        std::process::exit(CLOSED);
    }
    eprintln!("orchestrate: cannot write to stdout: {e}");
    std::process::exit(1)
}

/// `println!` for the CLI's stdout: see [`crate::stdout`].
#[macro_export]
macro_rules! outln {
    () => {
        $crate::stdout::write(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::stdout::write(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` for the CLI's stdout: see [`crate::stdout`].
#[macro_export]
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::stdout::write(format_args!($($arg)*))
    };
}
