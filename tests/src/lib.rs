//! The integration suite's toolkit: it builds the real `orchestrate` and `orchestratord`
//! binaries once, and gives every test a [`Sandbox`] — its own temp HOME, runtime dir, socket,
//! data dir and config path — so tests run in parallel without seeing each other or the user's
//! daemon. Nothing here sleeps for a fixed time: waits poll a condition under a deadline.

pub mod bins;
pub mod deps;
pub mod fake_daemon;
pub mod fake_http;
pub mod fake_model;
pub mod fake_openai;
pub mod fixtures;
pub mod hang;
pub mod http;
pub mod mcp;
pub mod misbehave;
pub mod repo;
pub mod rng;
pub mod sandbox;
pub mod wait;

pub use http::Response;
pub use sandbox::{Out, Sandbox};
