//! The `orchestrate` client as a library: [`Client`] speaks the daemon's `/v1` API over its
//! Unix socket, [`autostart::connect`] starts the daemon when nobody answers, and [`cli`]
//! holds one module per subcommand of the binary.

pub mod autostart;
pub mod cli;
pub mod client;
pub mod error;
pub mod forward;
pub mod output;
pub mod stdout;

pub use client::{Client, RunRef};
pub use error::ClientError;
