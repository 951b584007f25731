//! `start`'s model flags: which model and effort the planner and the workers run with. Given
//! none, the run takes the project's previous run's (or the daemon's `[models]`); given any,
//! the run has exactly those.

use clap::Args;
use orchestrator_proto::{Agent, Effort, Models, OnLimit};

#[derive(Debug, Args)]
pub struct ModelArgs {
    /// The model of the planner and the workers (e.g. opus, sonnet, or a full model id)
    #[arg(long, value_name = "MODEL")]
    model: Option<String>,
    /// The planner's model (instead of --model)
    #[arg(long, value_name = "MODEL")]
    planner_model: Option<String>,
    /// The workers' model (instead of --model); the plan may give a task another allowed one
    #[arg(long, value_name = "MODEL")]
    worker_model: Option<String>,
    /// How hard the sessions think: low, medium, high, xhigh or max; the plan may give a task
    /// another
    #[arg(long, value_name = "LEVEL", value_parser = effort)]
    effort: Option<Effort>,
    /// The model claude switches to when the model is unavailable (never on a usage limit)
    #[arg(long, value_name = "MODEL")]
    fallback_model: Option<String>,
    /// Another model the planner may give a task (repeat for more); the planner's and the
    /// workers' models are always allowed
    #[arg(long = "allow-model", value_name = "MODEL")]
    allow: Vec<String>,
    /// When a usage window reaches its threshold: pause (wait for the reset), downgrade
    /// (start tasks on the next cheaper allowed model with room), or codex (start them as
    /// Codex workers while Claude's window is spent)
    #[arg(long, value_name = "POLICY", value_parser = on_limit)]
    on_limit: Option<OnLimit>,
    /// The CLI the workers run: claude (Claude Code) or codex (OpenAI Codex); the plan may
    /// give a task the other when the run uses Codex
    #[arg(long, value_name = "AGENT", value_parser = agent)]
    worker_agent: Option<Agent>,
}

fn on_limit(s: &str) -> Result<OnLimit, String> {
    s.parse::<OnLimit>()
        .map_err(|_| "pause, downgrade or codex".to_owned())
}

fn agent(s: &str) -> Result<Agent, String> {
    s.parse::<Agent>().map_err(|_| "claude or codex".to_owned())
}

fn effort(s: &str) -> Result<Effort, String> {
    s.parse::<Effort>().map_err(|_| {
        let all: Vec<&str> = Effort::ALL.iter().map(|e| e.as_str()).collect();
        format!("one of {}", all.join(", "))
    })
}

impl ModelArgs {
    /// The run's models, or `None` when no flag was given (the run inherits them). A flag
    /// given with its default value counts (`--on-limit pause` undoes an inherited `codex`).
    pub fn models(&self) -> Option<Models> {
        let given = self.model.is_some()
            || self.planner_model.is_some()
            || self.worker_model.is_some()
            || self.effort.is_some()
            || self.fallback_model.is_some()
            || !self.allow.is_empty()
            || self.on_limit.is_some()
            || self.worker_agent.is_some();
        let m = Models {
            planner: self.planner_model.clone().or_else(|| self.model.clone()),
            worker: self.worker_model.clone().or_else(|| self.model.clone()),
            effort: self.effort,
            fallback: self.fallback_model.clone(),
            allowed: self.allow.clone(),
            on_limit: self.on_limit.unwrap_or_default(),
            worker_agent: self.worker_agent.unwrap_or_default(),
        };
        given.then_some(m)
    }
}
