//! The integration suite: one test binary, real binaries, one sandbox per test.
//!
//! - `daemon`: autostart, health, curl, socket permissions, single instance, signals.
//! - `api`: typed errors for bad requests; the daemon survives them.
//! - `start`: submitting runs, validation, the branch, the mirror.
//! - `lifecycle`: pause, resume, cancel, starting fresh, the log.
//! - `recovery`: kill -9 and a deleted mirror.

mod api;
mod daemon;
mod lifecycle;
mod recovery;
mod start;
