//! A task's `verify` commands — checks the planner wrote for its acceptance criteria — run by
//! the daemon in the worker's worktree when the worker calls `complete_task`, before the
//! completion is accepted. A failing check refuses the call with the command and the end of
//! its output, so the same session fixes it while it still has its context; after
//! [`REFUSALS`] refused completions the task goes back to the board with the output.
//!
//! Each command is a bounded child (`crate::child`) with the run's environment, the gate's
//! timeout, its output in `.orchestrator/verify/<task>.<attempt>.<n>.log`, confined like the
//! agents (`crate::confine`: it cannot write the user's checkout). While one runs, the worker's
//! session counts as active (its stall watchdog does not fire on a long test suite).

use orchestrator_proto::TaskStatus;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use crate::board::Caller;
use crate::store::Db;

/// Refused completions before the task goes back to the board.
pub const REFUSALS: u32 = 3;

/// How long the worker's session is shown active while a check runs.
const HEARTBEAT: std::time::Duration = std::time::Duration::from_secs(15);

/// One verify command's run, as the task's record keeps it.
pub type Check = orchestrator_proto::TaskCheck;

/// What `complete_task` does after the checks.
#[derive(Debug)]
pub enum Verdict {
    /// No checks apply (none given, or not a dispatched worker's task): complete as usual.
    Nothing,
    Passed(Vec<Check>),
    /// Refused; the text is for the model.
    Refused(String),
    /// Refused [`REFUSALS`] times: the task goes back with this reason.
    GaveUp(String),
}

/// Refused completions per session.
#[derive(Debug, Clone, Default)]
pub struct Refusals(Arc<Mutex<HashMap<String, u32>>>);

impl Refusals {
    fn count(&self, session: &str) -> u32 {
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = m.entry(session.to_owned()).or_insert(0);
        *n += 1;
        *n
    }
}

/// Runs the checks of `caller`'s task, if it has any.
pub async fn verify(
    db: &Db,
    cfg: &super::EngineConfig,
    caller: &Caller,
    refusals: &Refusals,
) -> Verdict {
    let Some(task) = caller.dispatched.clone() else {
        return Verdict::Nothing;
    };
    let (run_id, session) = (caller.run.clone(), caller.session.clone());
    let found = db
        .read(move |c| {
            let t = crate::store::board::task(c, &run_id, &task)?;
            let run = crate::store::runs::get(c, &run_id)?;
            let env = crate::store::runs::env(c, &run_id)?;
            let place = crate::store::sessions::place(c, &session)?;
            Ok((t, run, env, place))
        })
        .await;
    let Ok((Some(t), Some(run), env, Some(place))) = found else {
        return Verdict::Nothing;
    };
    let worktree = Some(place.worktree);
    let Some(worktree) = worktree.filter(|w| w.is_dir()) else {
        return Verdict::Nothing;
    };
    if t.verify.is_empty()
        || t.status != TaskStatus::InProgress
        || t.assignee.as_deref() != Some(caller.session.as_str())
    {
        return Verdict::Nothing; // the board answers as usual
    }
    let project = PathBuf::from(&run.project);
    let timeout = std::time::Duration::from_secs(run.options.gate_timeout_secs);
    let mut checks = Vec::new();
    let mut failed = None;
    for (n, command) in t.verify.iter().enumerate() {
        let name = format!("{}.{}.{}.log", t.id, t.attempts, n + 1);
        let log = crate::mirror::command_log(&project, &cfg.data_dir, &run.id, "verify", &name);
        let one = One {
            cfg,
            project: &project,
            worktree: &worktree,
            env: &env,
            timeout,
            session: &caller.session,
        };
        let (check, tail) = one.run(command, log).await;
        let passed = check.passed;
        let how = check.how.clone();
        checks.push(check);
        if !passed {
            failed = Some((command.clone(), how, tail));
            break;
        }
    }
    let text = serde_json::to_string(&checks).unwrap_or_default();
    let (run_id, task) = (caller.run.clone(), t.id.clone());
    let _ = db
        .call(move |c| crate::store::board::set_checks(c, &run_id, &task, &text))
        .await;
    let Some((command, how, tail)) = failed else {
        return Verdict::Passed(checks);
    };
    let n = refusals.count(&caller.session);
    let tail = tail.trim();
    if n >= REFUSALS {
        return Verdict::GaveUp(format!(
            "its check `{command}` still failed ({how}) after {n} completions were refused:\n{tail}"
        ));
    }
    Verdict::Refused(format!(
        "complete_task refused: the task's check `{command}` failed ({how}). Fix the cause in \
         your worktree, run it yourself, then call complete_task again ({} more refusal(s) and \
         the task goes back to the board). The end of its output:\n{tail}",
        REFUSALS - n
    ))
}

/// Where and how one check runs.
struct One<'a> {
    cfg: &'a super::EngineConfig,
    project: &'a std::path::Path,
    worktree: &'a std::path::Path,
    env: &'a orchestrator_proto::SessionEnv,
    timeout: std::time::Duration,
    /// The worker's session, shown active while the check runs.
    session: &'a str,
}

impl One<'_> {
    /// Runs `command` in the worktree, confined and bounded, its output into `log`; the
    /// check and the end of its output.
    async fn run(&self, command: &str, log: PathBuf) -> (Check, String) {
        let mut c = match self.cfg.confinement(self.project, self.worktree, self.env) {
            Some(k) => k.command(std::path::Path::new("/bin/sh")),
            None => tokio::process::Command::new("sh"),
        };
        c.arg("-c")
            .arg(command)
            .current_dir(self.worktree)
            .env_clear();
        for (k, v) in &self.env.0 {
            c.env(k, v);
        }
        let started = std::time::Instant::now();
        let never = tokio_util::sync::CancellationToken::new();
        let ran = crate::child::run(c, &log, self.timeout, &never, &self.cfg.stopping);
        tokio::pin!(ran);
        let mut beat = tokio::time::interval(HEARTBEAT);
        let ran = loop {
            tokio::select! {
                r = &mut ran => break r,
                _ = beat.tick() => self.cfg.activity.touch(self.session),
            }
        };
        let (passed, how, tail) = match ran {
            Ok(r) => {
                let how = match r.exit {
                    crate::child::Exit::Exited(Some(c)) => format!("exit {c}"),
                    crate::child::Exit::Exited(None) => "killed by a signal".into(),
                    crate::child::Exit::TimedOut(d) => format!(
                        "it ran for more than {}s and was stopped (the run's --gate-timeout)",
                        d.as_secs()
                    ),
                    crate::child::Exit::Stopped => "stopped: the daemon is stopping".into(),
                };
                (r.success(), how, r.tail)
            }
            Err(e) => (false, format!("cannot run it: {e}"), String::new()),
        };
        let check = Check {
            command: command.to_owned(),
            passed,
            how,
            secs: started.elapsed().as_secs_f64(),
            log: log.display().to_string(),
        };
        (check, tail)
    }
}
