//! Where following a run stops — it needs a human (escalated, or paused with nothing to resume
//! it by itself), its dry run is planned, or it ended — and what the user sees then: the
//! question waiting for them, and the exit code that says which (`error::exit`).
//! `start --follow`, `log -f`, `watch` and `wait` all end here.

use orchestrator_proto::{Event, EventKind, HoldKind, Run, RunStatus};

use crate::client::{Client, RunRef};
use crate::error::ClientError;
use crate::output;

/// Whether following `run` stops now.
pub fn stops(run: &Run) -> bool {
    match run.status {
        RunStatus::Queued | RunStatus::Running => false,
        // A usage hold that resumes by itself is not the user's to act on.
        RunStatus::Paused => {
            !(run.options.auto_resume
                && run.hold.as_ref().is_some_and(|h| h.kind == HoldKind::Usage))
        }
        _ => true,
    }
}

/// Whether an event may be the one after which following stops (the run changed status to
/// one that can stop it); the run itself decides ([`stops`]).
fn may_stop(e: &Event) -> bool {
    e.kind == EventKind::StatusChanged
        && e.data["to"]
            .as_str()
            .and_then(|s| s.parse::<RunStatus>().ok())
            .is_some_and(|s| !matches!(s, RunStatus::Queued | RunStatus::Running))
}

/// Follows the run's log, each event to `each`, until following stops; returns the run then.
/// A run already escalated stops it at once; one already paused is followed until something
/// happens to it (the events replayed from before never stop it).
pub async fn follow(
    client: &Client,
    id: &str,
    tail: Option<u32>,
    mut each: impl FnMut(&Event),
) -> Result<Run, ClientError> {
    let run = client.run(&RunRef::Id(id.to_owned())).await?;
    if stops(&run) && run.status != RunStatus::Paused {
        // Nothing more will happen without the user: the tail, and where it stands.
        let q = orchestrator_proto::ReadEvents {
            after: None,
            tail,
            follow: false,
        };
        client.events(id, &q).await?.iter().for_each(&mut each);
        return Ok(run);
    }
    // What happened before following began never stops it (a run paused already is followed
    // until something happens to it).
    let newest = {
        let q = orchestrator_proto::ReadEvents {
            after: None,
            tail: Some(1),
            follow: false,
        };
        client.events(id, &q).await?.last().map_or(0, |e| e.seq)
    };
    let (mut after, mut tail) = (None, tail);
    loop {
        let mut last = after;
        client
            .follow(id, after, tail, |e| {
                last = Some(e.seq);
                each(&e);
                Ok(e.seq <= newest || !may_stop(&e))
            })
            .await?;
        let run = client.run(&RunRef::Id(id.to_owned())).await?;
        if stops(&run) && last.is_some_and(|l| l > newest) {
            return Ok(run);
        }
        if !run.status.is_active() {
            return Ok(run);
        }
        // Paused until a reset, resumed meanwhile, or the stream broke: follow on.
        (after, tail) = (last, None);
    }
}

/// What the user sees when following stops, and how the command ends: success for a
/// completed run or a planned dry run, else `ClientError::Ended` with the run's status.
pub async fn report(client: &Client, run: &Run, json: bool) -> Result<(), ClientError> {
    let waiting = if run.status == RunStatus::Escalated {
        let list = orchestrator_proto::ListEscalations {
            project: Some(run.project.clone()),
            history: false,
        };
        let mut all = client.escalations(&list).await?;
        all.retain(|e| e.run_id == run.id);
        all
    } else {
        Vec::new()
    };
    if json {
        output::json(&serde_json::json!({"run": run, "escalations": waiting}))?;
    } else {
        crate::outln!(
            "Run {} is {}{}",
            run.id,
            run.status,
            run.status_reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        );
        for e in &waiting {
            crate::outln!();
            output::escalation(e);
        }
    }
    match run.status {
        RunStatus::Completed | RunStatus::Planned => Ok(()),
        s => Err(ClientError::Ended(s)),
    }
}
