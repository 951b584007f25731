//! Runs, their events and escalations as they appear on the wire.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// Defaults of the original tool, shared by the CLI and the daemon so that a bare
/// `POST /v1/runs` behaves exactly like `orchestrate start`.
pub mod defaults {
    pub const CONCURRENCY: u32 = 2;
    pub const MAX_CYCLES: u32 = 5;
    pub const USAGE_THRESHOLD: f64 = 0.80;
    /// `--concurrency` accepts 1..=MAX_CONCURRENCY.
    pub const MAX_CONCURRENCY: u32 = 64;
    /// How long a `--gate` may run on one merge before it is stopped (30 minutes).
    pub const GATE_TIMEOUT_SECS: u64 = 30 * 60;
    /// The longest `--gate-timeout` (a day).
    pub const MAX_GATE_TIMEOUT_SECS: u64 = 24 * 3600;
    /// How long a `--setup` may run in one worktree before it is stopped (30 minutes).
    pub const SETUP_TIMEOUT_SECS: u64 = 30 * 60;
    /// `--priority`: every run weighs the same unless told otherwise.
    pub const PRIORITY: u32 = 1;
    /// The largest `--priority`.
    pub const MAX_PRIORITY: u32 = 100;
}

/// Where a run stands. `queued`, `running`, `paused` and `escalated` are *active*: a project has
/// at most one active run. The other three are final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// Accepted and waiting for the run engine to pick it up.
    Queued,
    /// Being planned, executed or reviewed (see [`Phase`]).
    Running,
    /// Stopped on purpose (by the user, or by the usage governor) and resumable.
    Paused,
    /// Waiting for a human to answer an escalation.
    Escalated,
    /// Planned with `--dry-run`; `orchestrate resume` executes the plan.
    Planned,
    Completed,
    Failed,
    Cancelled,
}

impl RunStatus {
    pub const ALL: [RunStatus; 8] = [
        Self::Queued,
        Self::Running,
        Self::Paused,
        Self::Escalated,
        Self::Planned,
        Self::Completed,
        Self::Failed,
        Self::Cancelled,
    ];

    pub fn is_active(self) -> bool {
        matches!(
            self,
            Self::Queued | Self::Running | Self::Paused | Self::Escalated | Self::Planned
        )
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Paused => "paused",
            Self::Escalated => "escalated",
            Self::Planned => "planned",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for RunStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Self::ALL.iter().map(|s| s.as_str()).collect();
                format!("unknown status `{s}`; expected one of {}", names.join(", "))
            })
    }
}

/// The step of the plan → review → execute → review loop a run is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Not started: nothing has been planned yet.
    Pending,
    Planning,
    PlanReview,
    Executing,
    CodeReview,
    Done,
    /// A phase this client does not know (sent by a newer daemon).
    #[serde(other)]
    Unknown,
}

impl Phase {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Planning => "planning",
            Self::PlanReview => "plan_review",
            Self::Executing => "executing",
            Self::CodeReview => "code_review",
            Self::Done => "done",
            Self::Unknown => "unknown",
        }
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The knobs of a run, with the original tool's defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunOptions {
    /// Parallel worker sessions, 1..=64.
    #[serde(default = "default_concurrency")]
    pub concurrency: u32,
    /// Plan → execute → review cycles before escalating, ≥ 1.
    #[serde(default = "default_max_cycles")]
    pub max_cycles: u32,
    /// Pause when the 5-hour window's utilization reaches this fraction, in (0, 1].
    #[serde(default = "default_usage_threshold")]
    pub usage_threshold: f64,
    /// Pause when a 7-day window reaches this fraction (`None`: `usage_threshold`); a window
    /// of one model family (`seven_day_opus`) pauses only runs whose workers run that family.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weekly_threshold: Option<f64>,
    /// Skip the Codex plan and code reviews.
    #[serde(default)]
    pub skip_codex: bool,
    /// Plan only; do not execute.
    #[serde(default)]
    pub dry_run: bool,
    /// Log verbosely to the run's log.
    #[serde(default)]
    pub verbose: bool,
    /// A shell command run on each merged result before the branch advances; red sends the
    /// task back with the command's output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<String>,
    /// Seconds the gate may run on one merge; then its process group is stopped and the
    /// merge counts as red.
    #[serde(default = "default_gate_timeout")]
    pub gate_timeout_secs: u64,
    /// A shell command run, with the run's environment, in every worktree the daemon creates
    /// before anything uses it (each worker's, the planner's, the integration worktree before
    /// its first gate), e.g. `npm ci`; a failure is the environment's, never the worker's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setup: Option<String>,
    /// Seconds the setup may run in one worktree.
    #[serde(default = "default_setup_timeout")]
    pub setup_timeout_secs: u64,
    /// Resume by itself when the usage window resets (off: wait for `orchestrate resume`).
    #[serde(default = "default_true")]
    pub auto_resume: bool,
    /// Pause and escalate once the run's sessions have cost this much (USD).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_budget_usd: Option<f64>,
    /// Which model and effort the planner and the workers run with.
    #[serde(default, skip_serializing_if = "crate::Models::is_default")]
    pub models: crate::Models,
    /// Its weight when runs share the account's window (`--priority`, 1-100): concurrent runs
    /// get the window in proportion.
    #[serde(
        default = "default_priority",
        skip_serializing_if = "is_default_priority"
    )]
    pub priority: u32,
    /// `start --pr`: open a pull request when the run completes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pr: Option<crate::pr::OpenPr>,
}

fn default_priority() -> u32 {
    defaults::PRIORITY
}

fn is_default_priority(p: &u32) -> bool {
    *p == defaults::PRIORITY
}

fn default_true() -> bool {
    true
}

fn default_gate_timeout() -> u64 {
    defaults::GATE_TIMEOUT_SECS
}

fn default_setup_timeout() -> u64 {
    defaults::SETUP_TIMEOUT_SECS
}

fn default_concurrency() -> u32 {
    defaults::CONCURRENCY
}
fn default_max_cycles() -> u32 {
    defaults::MAX_CYCLES
}
fn default_usage_threshold() -> f64 {
    defaults::USAGE_THRESHOLD
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            concurrency: defaults::CONCURRENCY,
            max_cycles: defaults::MAX_CYCLES,
            usage_threshold: defaults::USAGE_THRESHOLD,
            weekly_threshold: None,
            skip_codex: false,
            dry_run: false,
            verbose: false,
            gate: None,
            gate_timeout_secs: defaults::GATE_TIMEOUT_SECS,
            setup: None,
            setup_timeout_secs: defaults::SETUP_TIMEOUT_SECS,
            auto_resume: true,
            max_budget_usd: None,
            models: crate::Models::default(),
            priority: defaults::PRIORITY,
            pr: None,
        }
    }
}

/// `POST /v1/runs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SubmitRun {
    /// Absolute path of the project (any directory inside its git work tree).
    pub project: String,
    /// What to build, in the user's words.
    pub feature: String,
    #[serde(default)]
    pub options: RunOptions,
    /// Absolute path of a pre-gathered context file (requirements, Q&A).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_file: Option<String>,
    /// The context itself, when it came on the client's stdin (`--context-file -`) rather
    /// than from a file; at most one of the two.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// The client's environment for the run's agent sessions (see [`crate::env`]).
    #[serde(default, skip_serializing_if = "crate::SessionEnv::is_empty")]
    pub env: crate::SessionEnv,
    /// The options `start` was not given, to be taken from the project's previous run.
    #[serde(default, skip_serializing_if = "Inherit::is_none")]
    pub inherit: Inherit,
    /// Names of variables in `env` beyond the ones always forwarded (`--env NAME`, `[agents]
    /// forward_env`, the Codex provider's `env_key`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forward: Vec<String>,
}

/// Which of a project's remembered settings a new run takes from its previous run (else
/// `--setup` falls back to the daemon's `[worktrees] setup`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Inherit {
    #[serde(default)]
    pub setup: bool,
    /// The models and effort of the project's previous run (or the daemon's `[models]`).
    #[serde(default)]
    pub models: bool,
    #[serde(default)]
    pub gate: bool,
    #[serde(default)]
    pub gate_timeout: bool,
}

impl Inherit {
    pub fn is_none(&self) -> bool {
        *self == Self::default()
    }
}

/// A run as the API shows it. `GET /v1/runs/{id}`, and the elements of [`RunList`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Run {
    /// Stable id, e.g. `r-3f9c2a7b1d04`.
    pub id: String,
    /// Absolute path of the project's git work tree.
    pub project: String,
    pub feature: String,
    /// The branch the work lands on, `orchestrate/<slug>`.
    pub branch: String,
    /// The commit the branch was created from.
    pub base_commit: String,
    pub status: RunStatus,
    pub phase: Phase,
    /// The current plan → execute → review cycle, 0 before the first.
    pub cycle: u32,
    pub options: RunOptions,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context_file: Option<String>,
    /// Why the run has its status, in a sentence (e.g. "paused by the user").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<String>,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub finished_at: Option<OffsetDateTime>,
    /// Tasks, sessions and spend so far.
    #[serde(default)]
    pub progress: Progress,
    /// What a paused run waits for besides the user: the usage window or its budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold: Option<RunHold>,
    /// A completed run whose code Codex did not review though reviews were wanted: why
    /// (*completed, not reviewed*).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unreviewed: Option<String>,
    /// What the rest of the run will likely cost (a dry run: its whole plan), from the
    /// project's past tasks; only for one run asked for, and only with history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forecast: Option<crate::cost::Forecast>,
}

crate::states! {
    /// What a paused run waits for.
    pub enum HoldKind {
        /// The usage window's reset: it resumes by itself at `until` unless auto-resume is off.
        Usage = "usage",
        /// More budget, given by answering the escalation.
        Budget = "budget",
    }
}

/// Why a paused run waits, and until when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunHold {
    pub kind: HoldKind,
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub until: Option<OffsetDateTime>,
}

/// How far a run has come, and what it cost.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Progress {
    pub tasks: u32,
    pub merged: u32,
    pub in_progress: u32,
    pub failed: u32,
    /// Agent sessions started (planner and workers).
    pub sessions: u32,
    pub cost_usd: f64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    /// Spend by cycle (0: sessions before the first cycle).
    #[serde(default)]
    pub cycles: Vec<crate::cost::CycleCost>,
    /// Spend of every run of this project, this one included.
    #[serde(default)]
    pub project_cost_usd: f64,
    /// Spend by model, largest first (`null` model: the session said none, e.g. it never
    /// started).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<crate::cost::ModelCost>,
}

/// `GET /v1/runs`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunList {
    pub runs: Vec<Run>,
}

/// Query of `GET /v1/runs`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListRuns {
    /// Only runs of this project (absolute path inside its work tree).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Only runs with this status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<RunStatus>,
}

/// Query of `GET /v1/runs/current`: the project's active run, else its latest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CurrentRun {
    pub project: String,
}

/// How bad an event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Debug => "DEBUG",
            Self::Info => "INFO",
            Self::Warn => "WARN",
            Self::Error => "ERROR",
        }
    }
}

/// One entry of a run's append-only event log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Event {
    /// Position in the run's log, increasing from 1, without gaps.
    pub seq: u64,
    pub run_id: String,
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    pub level: Level,
    pub kind: crate::EventKind,
    /// The human sentence shown by `orchestrate log`.
    pub message: String,
    /// Kind-specific details.
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub data: serde_json::Value,
}

/// `GET /v1/runs/{id}/events` without `follow`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventList {
    pub events: Vec<Event>,
}

/// Query of `GET /v1/runs/{id}/events`. With `follow=true` the response is NDJSON (one
/// [`Event`] a line) that stays open until the run finishes or the client hangs up.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadEvents {
    /// Only events with `seq` greater than this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<u64>,
    /// Only the last `tail` events (applied after `after`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tail: Option<u32>,
    #[serde(default)]
    pub follow: bool,
}

/// `resume` and `answer`'s `--gate`, `--setup` and `--gate-timeout`: what the run uses from
/// then on. An empty command removes it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OptionsChange {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub setup: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gate_timeout_secs: Option<u64>,
}

impl OptionsChange {
    pub fn is_none(&self) -> bool {
        *self == Self::default()
    }

    /// `options` with this change applied.
    pub fn applied(&self, options: &RunOptions) -> RunOptions {
        let mut o = options.clone();
        let command = |c: &String| (!c.trim().is_empty()).then(|| c.clone());
        if let Some(g) = &self.gate {
            o.gate = command(g);
        }
        if let Some(s) = &self.setup {
            o.setup = command(s);
        }
        if let Some(t) = self.gate_timeout_secs {
            o.gate_timeout_secs = t;
        }
        o
    }
}

/// Body of `POST /v1/runs/{id}/pause|resume|cancel`; optional.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transition {
    /// Shown in the run's log and status, e.g. why it was cancelled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// With `resume`: the client's current environment replaces the one kept with the run.
    #[serde(default, skip_serializing_if = "crate::SessionEnv::is_empty")]
    pub env: crate::SessionEnv,
    /// With `resume`: commands to change for the rest of the run.
    #[serde(default, skip_serializing_if = "OptionsChange::is_none")]
    pub change: OptionsChange,
    /// With `resume`: names of variables in `env` beyond the ones always forwarded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forward: Vec<String>,
}
