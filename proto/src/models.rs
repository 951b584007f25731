//! Which model and effort each role's sessions run with. The run's [`Models`] come from
//! `start` (or the project's previous run, or the daemon's `[models]`), and the planner may
//! give a task its own model (one the run allows) and effort.

use serde::{Deserialize, Serialize};

crate::states! {
    /// How hard claude thinks (`--effort`, sent as `output_config.effort`).
    #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
    pub enum Effort {
        Low = "low",
        Medium = "medium",
        High = "high",
        Xhigh = "xhigh",
        Max = "max",
    }
}

crate::states! {
    /// What a run does when a model family's 7-day window reaches its threshold.
    #[derive(Default)]
    pub enum OnLimit {
        /// Wait for the reset (the run pauses).
        #[default]
        Pause = "pause",
        /// Start the tasks not yet started on the next cheaper model the run allows (Opus →
        /// Sonnet → Haiku) whose window has room; back on the planned model after the reset.
        Downgrade = "downgrade",
        /// Start the tasks not yet started as Codex workers while Claude's window is at its
        /// threshold or spent; back on Claude after the reset.
        Codex = "codex",
    }
}

crate::states! {
    /// The CLI a worker session runs.
    #[derive(Default)]
    #[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
    pub enum Agent {
        /// Claude Code (`claude -p`).
        #[default]
        Claude = "claude",
        /// OpenAI Codex (`codex exec`).
        Codex = "codex",
    }
}

/// The model families from the strongest to the cheapest, as model names contain them.
pub const FAMILIES: [&str; 3] = ["opus", "sonnet", "haiku"];

/// The family of a model name (`claude-opus-5-5` and `opus` are `opus`), if it names one.
pub fn family(model: &str) -> Option<&'static str> {
    let m = model.to_ascii_lowercase();
    FAMILIES.into_iter().find(|f| m.contains(f))
}

/// The run's models. `None` leaves claude's own default (it depends on the account).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Models {
    /// The planner's model (`--planner-model`, or `--model`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub planner: Option<String>,
    /// The workers' model unless the plan gives a task another (`--worker-model`, `--model`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub worker: Option<String>,
    /// Every session's effort unless the plan gives a task another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effort: Option<Effort>,
    /// `--fallback-model`, passed through: claude switches to it when the model is
    /// unavailable (never on a usage limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback: Option<String>,
    /// More models the planner may give a task (`--allow-model`), besides the two above.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed: Vec<String>,
    /// `--on-limit`: what a model family's 7-day window at its threshold does to the run.
    #[serde(default, skip_serializing_if = "is_pause")]
    pub on_limit: OnLimit,
    /// `--worker-agent`: the CLI workers run unless the plan gives a task another.
    #[serde(default, skip_serializing_if = "is_claude")]
    pub worker_agent: Agent,
}

fn is_pause(o: &OnLimit) -> bool {
    *o == OnLimit::Pause
}

fn is_claude(a: &Agent) -> bool {
    *a == Agent::Claude
}

impl Models {
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }

    /// The models a plan may give a task: the workers', the planner's and the allowed ones.
    pub fn choices(&self) -> Vec<&str> {
        let mut all: Vec<&str> = Vec::new();
        for m in self
            .worker
            .iter()
            .chain(self.planner.iter())
            .chain(self.allowed.iter())
        {
            if !all.contains(&m.as_str()) {
                all.push(m);
            }
        }
        all
    }

    /// Whether the plan may give a task to Codex: the run uses Codex workers already
    /// (`--worker-agent codex`) or may route to them (`--on-limit codex`).
    pub fn codex_allowed(&self) -> bool {
        self.worker_agent == Agent::Codex || self.on_limit == OnLimit::Codex
    }

    /// The first model that is not a name claude takes (one word of at most 100 characters),
    /// with the `start` flag and the `[models]` key that give it.
    pub fn not_a_name(&self) -> Option<(&'static str, &'static str, &str)> {
        let named = [
            ("--planner-model", "planner", &self.planner),
            ("--worker-model", "worker", &self.worker),
            ("--fallback-model", "fallback", &self.fallback),
        ];
        let all = named
            .into_iter()
            .filter_map(|(flag, key, v)| Some((flag, key, v.as_deref()?)))
            .chain(
                self.allowed
                    .iter()
                    .map(|v| ("--allow-model", "allowed", v.as_str())),
            );
        let bad = |v: &str| {
            v.is_empty() || v.len() > 100 || v.chars().any(|c| c.is_whitespace() || c.is_control())
        };
        all.into_iter().find(|(_, _, v)| bad(v))
    }

    /// One line for people: "planner opus · workers sonnet · effort high".
    pub fn summary(&self) -> Option<String> {
        let mut parts = Vec::new();
        if let Some(p) = &self.planner {
            parts.push(format!("planner {p}"));
        }
        if let Some(w) = &self.worker {
            parts.push(format!("workers {w}"));
        }
        if let Some(e) = self.effort {
            parts.push(format!("effort {e}"));
        }
        if let Some(f) = &self.fallback {
            parts.push(format!("fallback {f}"));
        }
        if !self.allowed.is_empty() {
            parts.push(format!("also allowed {}", self.allowed.join(", ")));
        }
        if self.worker_agent != Agent::Claude {
            parts.push(format!("{} workers", self.worker_agent));
        }
        if self.on_limit != OnLimit::Pause {
            parts.push(format!("on limit {}", self.on_limit));
        }
        (!parts.is_empty()).then(|| parts.join(" · "))
    }
}

#[cfg(test)]
mod tests {
    use super::{Effort, Models};

    #[test]
    fn choices_are_the_run_s_models_once_each_and_words_agree() {
        crate::states::check_words(Effort::ALL);
        crate::states::check_words(super::Agent::ALL);
        crate::states::check_words(super::OnLimit::ALL);
        let m = Models {
            planner: Some("opus".into()),
            worker: Some("sonnet".into()),
            allowed: vec!["haiku".into(), "opus".into()],
            ..Models::default()
        };
        assert_eq!(m.choices(), ["sonnet", "opus", "haiku"]);
        assert_eq!(
            m.summary().as_deref(),
            Some("planner opus · workers sonnet · also allowed haiku, opus")
        );
        assert!(Models::default().summary().is_none());
        assert_eq!(m.not_a_name(), None);
        let bad = Models {
            allowed: vec!["so net".into()],
            ..m
        };
        assert_eq!(
            bad.not_a_name(),
            Some(("--allow-model", "allowed", "so net"))
        );
    }
}
