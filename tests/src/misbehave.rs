//! The ways a scripted worker misbehaves (`CLAUDE_FAKE_WORKER=misbehave`), the way real models
//! do, chosen from a seed for each task and attempt. `fake-claude` acts them out; the
//! misbehaviour suite computes the same choices to know what it asked for.

/// One worker session's conduct.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Conduct {
    /// Does its task and stops.
    Obedient,
    /// Completes, then asks for another task (`claim_task`) and completes again.
    ClaimsNext,
    /// Calls `complete_task` twice.
    CompletesTwice,
    /// Gives the task back (`fail_task`, retryable), then completes it anyway.
    FailsThenCompletes,
    /// Commits its work and ends without `complete_task`.
    NeverCompletes,
    /// Completes naming another task's id.
    CompletesAnother,
    /// Works on a branch of its own (`git checkout -b`).
    OtherBranch,
    /// Commits, then checks out the base (detached) before completing.
    ChecksOutBase,
    /// Commits, then `git reset --hard` to the base, then completes.
    ResetsHard,
    /// Leaves its changes uncommitted.
    LeavesDirty,
    /// Tries to write into the user's checkout, then works.
    WritesUserCheckout,
    /// Prints a multi-megabyte line and a multibyte character split across writes.
    HugeOutput,
    /// Stages its work, takes git's index lock as a commit does, completes and dies.
    DiesMidCommit,
}

impl Conduct {
    pub const ALL: [Conduct; 13] = [
        Conduct::Obedient,
        Conduct::ClaimsNext,
        Conduct::CompletesTwice,
        Conduct::FailsThenCompletes,
        Conduct::NeverCompletes,
        Conduct::CompletesAnother,
        Conduct::OtherBranch,
        Conduct::ChecksOutBase,
        Conduct::ResetsHard,
        Conduct::LeavesDirty,
        Conduct::WritesUserCheckout,
        Conduct::HugeOutput,
        Conduct::DiesMidCommit,
    ];

    /// Conduct that leaves the task unfinished, costing it an attempt.
    pub fn costs_an_attempt(self) -> bool {
        matches!(
            self,
            Conduct::FailsThenCompletes | Conduct::NeverCompletes | Conduct::ResetsHard
        )
    }

    pub fn name(self) -> &'static str {
        match self {
            Conduct::Obedient => "obedient",
            Conduct::ClaimsNext => "claims-next",
            Conduct::CompletesTwice => "completes-twice",
            Conduct::FailsThenCompletes => "fails-then-completes",
            Conduct::NeverCompletes => "never-completes",
            Conduct::CompletesAnother => "completes-another",
            Conduct::OtherBranch => "other-branch",
            Conduct::ChecksOutBase => "checks-out-base",
            Conduct::ResetsHard => "resets-hard",
            Conduct::LeavesDirty => "leaves-dirty",
            Conduct::WritesUserCheckout => "writes-user-checkout",
            Conduct::HugeOutput => "huge-output",
            Conduct::DiesMidCommit => "dies-mid-commit",
        }
    }

    /// The conduct of the worker of `task` on `attempt` (1-based) under `seed`: anything on a
    /// first attempt, nothing that costs an attempt on the second, obedient from the third —
    /// so every task can finish within its three attempts.
    pub fn of(seed: u64, task: &str, attempt: u64) -> Conduct {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
        for b in task.bytes().chain(attempt.to_le_bytes()) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
        h ^= h >> 29;
        let pick = |from: &[Conduct]| from[(h % from.len() as u64) as usize];
        match attempt {
            1 => pick(&Conduct::ALL),
            2 => {
                let cheap: Vec<Conduct> = Conduct::ALL
                    .into_iter()
                    .filter(|c| !c.costs_an_attempt())
                    .collect();
                pick(&cheap)
            }
            _ => Conduct::Obedient,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_conduct_is_chosen_and_later_attempts_finish() {
        let mut seen = std::collections::HashSet::new();
        for seed in 0..50 {
            for t in 0..10 {
                let task = format!("t{t}");
                seen.insert(Conduct::of(seed, &task, 1));
                assert!(!Conduct::of(seed, &task, 2).costs_an_attempt());
                assert_eq!(Conduct::of(seed, &task, 3), Conduct::Obedient);
            }
        }
        assert_eq!(seen.len(), Conduct::ALL.len(), "{seen:?}");
        assert_eq!(Conduct::of(7, "t1", 1), Conduct::of(7, "t1", 1));
    }
}
