//! The mirror written behind the answer path. A board call is answered once its transaction
//! commits; its mirror writes (the task's file, the log line, the message) go to this run's
//! writer task, which takes everything queued at once and writes it together: the last state
//! of each task file only, one append for the log, one for the messages.
//!
//! **Invariants:** jobs are written in the order they were queued (one writer per run);
//! [`Behind::flush`] returns once everything queued before it is on disk, so the actor's own
//! whole-file rewrites (`state.json`, the log rebuilt from SQLite) never interleave with queued
//! appends; the actor flushes before it stops. SQLite stays the truth: a daemon killed with
//! writes queued rewrites the task files at restore (`RunActor::run`), and a link in the
//! mirror's way is said once in the run's log, as for the actor's own writes: the writer
//! keeps the first refusal for the actor, which says it after its next flush or check.

use std::sync::{Arc, Mutex};

use std::collections::HashMap;

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
        while let Ok(j) = rx.try_recv() {
            batch.push(j);
        }
        // The last write (or removal) of each task file in the batch is the one that counts.
        let mut last: HashMap<String, usize> = HashMap::new();
        for (i, j) in batch.iter().enumerate() {
            match j {
                Job::Task(t) | Job::TaskIfChanged(t) => last.insert(t.id.clone(), i),
                Job::RemoveTask(id) => last.insert(id.clone(), i),
                _ => None,
            };
        }
        let (mut log, mut messages, mut flushed) = (Vec::new(), Vec::new(), Vec::new());
        for (i, j) in batch.into_iter().enumerate() {
            match j {
                Job::Log(e) => log.extend(e),
                Job::Messages(m) => messages.extend(m),
                Job::Flush(tx) => flushed.push(tx),
                Job::Task(t) if last.get(&t.id) == Some(&i) => report(mirror.write_task(&t).await),
                Job::TaskIfChanged(t) if last.get(&t.id) == Some(&i) => {
                    report(mirror.write_task_if_changed(&t).await);
                }
                Job::RemoveTask(id) if last.get(&id) == Some(&i) => {
                    report(mirror.remove_task(&id).await);
                }
                Job::Task(_) | Job::TaskIfChanged(_) | Job::RemoveTask(_) => {}
            }
        }
        if !log.is_empty() {
            report(mirror.append_log(&log).await);
        }
        report(mirror.append_messages(&messages).await);
        for f in flushed {
            let _ = f.send(());
        }
    }
}
