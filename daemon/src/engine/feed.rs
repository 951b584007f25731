//! Every run's events in one daemon-wide stream, for the dashboard's live updates: each actor
//! sends what it publishes (after the event is committed), nothing is buffered for nobody, and
//! a reader too slow for the buffer is told it lagged and reads SQLite instead.

use tokio::sync::broadcast;

use crate::store::EventRow;

/// Events held for a slow reader before it lags.
const BUFFER: usize = 1024;

#[derive(Clone, Debug)]
pub struct Feed(broadcast::Sender<EventRow>);

impl Default for Feed {
    fn default() -> Self {
        Self(broadcast::channel(BUFFER).0)
    }
}

impl Feed {
    /// Hands `e` to every reader (no copy when there is none).
    pub fn send(&self, e: &EventRow) {
        if self.0.receiver_count() > 0 {
            let _ = self.0.send(e.clone());
        }
    }

    /// Every event from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<EventRow> {
        self.0.subscribe()
    }
}
