//! The mirror written behind the answer path. A board call is answered once its transaction
//! commits; its mirror writes (the task's file, the log line, the message) go to this run's
//! writer task, which gathers what is queued within [`GATHER`] and writes it together, in one
//! trip off the runtime: the last state of each task file only, one append for the log, one
//! for the messages.
//!
//! **Invariants:** jobs are written in the order they were queued (one writer per run);
//! [`Behind::flush`] returns once everything queued before it is on disk, so the actor's own
//! whole-file rewrites (`state.json`, the log rebuilt from SQLite) never interleave with queued
//! appends; the actor flushes before it stops. SQLite stays the truth: a daemon killed with
//! writes queued rewrites the task files at restore (`RunActor::run`), and a link in the
//! mirror's way is said once in the run's log, as for the actor's own writes: the writer
//! keeps the first refusal for the actor, which says it after its next flush or check.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

use crate::board::reply::Message;
use crate::mirror::Mirror;
use crate::store::EventRow;

/// A write for the mirror.
pub(super) enum Job {
    Log(Vec<EventRow>),
    Task(orchestrator_proto::Task),
    /// Like `Task`, but only when the file says something else (a restore's check).
    TaskIfChanged(orchestrator_proto::Task),
    RemoveTask(String),
    /// Removes the task files of tasks not in the set (an earlier run's), before the batch's
    /// writes; a task written in the same batch is kept.
    Prune(HashSet<String>),
    Messages(Vec<Message>),
    Flush(oneshot::Sender<()>),
}

/// The actor's end of its run's mirror writer.
pub(super) struct Behind {
    jobs: mpsc::UnboundedSender<Job>,
    /// The first refusal the writer met, not said yet.
    refusal: Arc<Mutex<Option<String>>>,
}

impl Behind {
    /// Starts the writer of `mirror`.
    pub fn start(mirror: Mirror, run: String) -> Self {
        let (jobs, rx) = mpsc::unbounded_channel();
        let refusal = Arc::default();
        tokio::spawn(write(mirror, run, rx, Arc::clone(&refusal)));
        Self { jobs, refusal }
    }

    /// Why the mirror first refused a write, once.
    pub fn take_refusal(&self) -> Option<String> {
        self.refusal.lock().ok()?.take()
    }

    pub fn send(&self, job: Job) {
        let _ = self.jobs.send(job);
    }

    /// Waits until everything queued so far is written.
    pub async fn flush(&self) {
        let (tx, rx) = oneshot::channel();
        if self.jobs.send(Job::Flush(tx)).is_ok() {
            let _ = rx.await;
        }
    }
}

/// How long the writer gathers what follows a first write before writing it all: a burst
/// of board calls (a claim, its progress, its completion) rewrites each task file once, and
/// the mirror is at most this far behind SQLite. A flush is written at once.
const GATHER: Duration = Duration::from_millis(50);

async fn write(
    mirror: Mirror,
    run: String,
    mut rx: mpsc::UnboundedReceiver<Job>,
    refusal: Arc<Mutex<Option<String>>>,
) {
    let report = |r: std::io::Result<()>| {
        let Err(e) = r else { return };
        tracing::warn!(run = %run, cause = %e, "cannot write the mirror; SQLite has the change");
        if mirror.first_refusal(&e)
            && let Ok(mut slot) = refusal.lock()
        {
            *slot = Some(e.to_string());
        }
    };
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        gather(&mut rx, &mut batch).await;
        let (writes, flushed) = coalesce(batch);
        let m = mirror.clone();
        // One trip off the runtime for the whole batch.
        let results = tokio::task::spawn_blocking(move || writes.apply(&m))
            .await
            .unwrap_or_else(|e| vec![Err(std::io::Error::other(e))]);
        results.into_iter().for_each(report);
        for f in flushed {
            let _ = f.send(());
        }
    }
}

fn is_flush(j: &Job) -> bool {
    matches!(j, Job::Flush(_))
}

/// Adds to `batch` what arrives within [`GATHER`], or until a flush is queued.
async fn gather(rx: &mut mpsc::UnboundedReceiver<Job>, batch: &mut Vec<Job>) {
    if !batch.iter().any(is_flush) {
        let deadline = tokio::time::Instant::now() + GATHER;
        loop {
            tokio::select! {
                j = rx.recv() => match j {
                    Some(j) => {
                        let flush = is_flush(&j);
                        batch.push(j);
                        if flush {
                            break;
                        }
                    }
                    None => break,
                },
                () = tokio::time::sleep_until(deadline) => break,
            }
        }
    }
    while let Ok(j) = rx.try_recv() {
        batch.push(j);
    }
}

/// What a batch writes, in order.
#[derive(Default)]
struct Writes {
    prune: Option<HashSet<String>>,
    tasks: Vec<TaskWrite>,
    log: Vec<EventRow>,
    messages: Vec<Message>,
}

enum TaskWrite {
    Write(Box<orchestrator_proto::Task>, bool),
    Remove(String),
}

impl Writes {
    fn apply(self, m: &Mirror) -> Vec<std::io::Result<()>> {
        let mut out = Vec::new();
        if let Some(mut keep) = self.prune {
            keep.extend(self.tasks.iter().filter_map(|t| match t {
                TaskWrite::Write(t, _) => Some(t.id.clone()),
                TaskWrite::Remove(_) => None,
            }));
            out.push(m.prune_tasks_now(&keep));
        }
        let writes = self.tasks.iter().any(|t| matches!(t, TaskWrite::Write(..)));
        // The folders are checked once for the batch's task files.
        let dirs = if writes {
            m.task_dirs_now().map_err(|e| out.push(Err(e))).ok()
        } else {
            None
        };
        for t in &self.tasks {
            match (t, &dirs) {
                (TaskWrite::Write(t, if_changed), Some(d)) => {
                    out.push(m.write_task_now(d, t, *if_changed));
                }
                (TaskWrite::Write(..), None) => {} // its folder refused: said once above
                (TaskWrite::Remove(id), _) => out.push(m.remove_task_now(id)),
            }
        }
        out.push(m.append_log_now(&self.log));
        out.push(m.append_messages_now(&self.messages));
        out
    }
}

/// The last write (or removal) of each task file in the batch is the one that counts; the
/// log lines and messages are appended in order, once each.
fn coalesce(batch: Vec<Job>) -> (Writes, Vec<oneshot::Sender<()>>) {
    let mut last: HashMap<String, usize> = HashMap::new();
    for (i, j) in batch.iter().enumerate() {
        match j {
            Job::Task(t) | Job::TaskIfChanged(t) => last.insert(t.id.clone(), i),
            Job::RemoveTask(id) => last.insert(id.clone(), i),
            _ => None,
        };
    }
    let (mut w, mut flushed) = (Writes::default(), Vec::new());
    for (i, j) in batch.into_iter().enumerate() {
        match j {
            Job::Log(e) => w.log.extend(e),
            Job::Messages(m) => w.messages.extend(m),
            Job::Flush(tx) => flushed.push(tx),
            Job::Prune(keep) => w.prune.get_or_insert_with(HashSet::new).extend(keep),
            Job::Task(t) if last.get(&t.id) == Some(&i) => {
                w.tasks.push(TaskWrite::Write(Box::new(t), false))
            }
            Job::TaskIfChanged(t) if last.get(&t.id) == Some(&i) => {
                w.tasks.push(TaskWrite::Write(Box::new(t), true));
            }
            Job::RemoveTask(id) if last.get(&id) == Some(&i) => {
                w.tasks.push(TaskWrite::Remove(id));
            }
            Job::Task(_) | Job::TaskIfChanged(_) | Job::RemoveTask(_) => {}
        }
    }
    (w, flushed)
}
