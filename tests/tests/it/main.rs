//! The integration suite: one test binary, real binaries, one sandbox per test.
//!
//! - `daemon`: autostart, health, curl, socket permissions, single instance, signals.
//! - `api`: typed errors for bad requests; the daemon survives them.
//! - `bounded`: a gate printing without end: memory, disk, timeout, cancel.
//! - `fuzz`: seeded bad input on the socket API and the MCP endpoint changes nothing.
//! - `hostile`: repositories that commit `.orchestrator` as a link or track files in it.
//! - `start`: submitting runs, validation, the branch, the mirror.
//! - `lifecycle`: pause, resume, cancel, starting fresh, the log.
//! - `recovery`: kill -9 and a deleted mirror.
//! - `durability`: a clean stop leaves no WAL, corrupt or emptied databases are refused,
//!   backups and `--restore`, a private data dir.
//! - `chaos`: kill -9 of the daemon and its workers at random moments under several runs.
//! - `supervision`: watchdogs, a worker re-attached across a daemon stop, last activity.
//! - `execution`: whole runs with the fake claude: workers, merge queue, retries, conflicts.
//! - `planning`: the planner phase with the fake claude: plan, retries, dry-run, pause.
//! - `review`: Codex reviews with the fake codex: revisions, cycles, the ledger, escalations.
//! - `forecast`: estimates from a project's history; a task that would not fit waits or goes
//!   to Codex.
//! - `pr`: `start --pr` and `orchestrate pr` against a bare remote and a recording `gh`.
//! - `usage`: the usage governor: pauses, resumes at the reset, `--resume`, the poller, budget.
//! - `mcp`: the workers' MCP endpoint: board rules, plans, auth, racing sessions.
//! - `real_claude`: the real `claude` CLI, offline against a fake model API, uses our MCP tools.
//! - `real_codex`: the real `codex` CLI reviews a whole run, offline against a fake Responses API.
//! - `codex_workers`: the real `codex` CLI as the workers of whole runs, resumed after a pause.
//! - `real_failures`: the real `claude` on 500, 529, 401, a stalled stream and our MCP down.
//! - `conformance`: the official MCP conformance suite against our MCP service.
//! - `slash_command`: the real `claude` runs `/orchestrate` through an escalation to the branch.
//! - `services`: the slash command setup, the systemd unit and launchd agent.
//! - `in_process`: `orchestratord::run` in this process, for races and restarts.
//! - `snapshots`: what the CLI prints, pinned with insta.
//! - `misbehave`: workers that misbehave as real models do, with kill -9, every invariant kept.
//! - `models`: models and effort per role and per task, with the real `claude`.
//! - `projects`: Node, Python and Rust fixture projects: setup, checks, the gate.
//! - `ui`: the web dashboard: its security rules, and whole scenarios in headless Chromium
//!   (`browser` drives it).
//! - `watch`: `watch` on a pseudo-terminal: a task's key opens its live output.
//! - `source`: the source tree's rooms stay small; no state compared as a string.

mod api;
mod bounded;
mod browser;
mod chaos;
mod codex_workers;
mod conformance;
mod daemon;
mod durability;
mod execution;
mod forecast;
mod fuzz;
mod hostile;
mod in_process;
mod lifecycle;
mod mcp;
mod misbehave;
mod models;
mod planning;
mod pr;
mod projects;
mod real_claude;
mod real_codex;
mod real_failures;
mod recovery;
mod review;
mod services;
mod slash_command;
mod snapshots;
mod source;
mod start;
mod supervision;
mod ui;
mod usage;
mod watch;
