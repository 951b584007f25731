//! `GET /ui/api/stream`: every run's events as server-sent events, the moment each is
//! committed. A page that falls behind the buffer gets a `lagged` event and reads what it
//! shows again; the stream ends when the daemon stops, and the browser's `EventSource`
//! reconnects by itself (`retry: 1000`) and the page catches up the same way. Every event has
//! data: a browser drops one without.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;

use super::UiState;
use crate::wire;

pub async fn events(State(s): State<UiState>) -> impl axum::response::IntoResponse {
    let mut live = s.app.runs.engine().feed.subscribe();
    let stop = s.app.shutdown.clone();
    let (tx, rx) = mpsc::channel::<Result<Event, Infallible>>(64);
    tokio::spawn(async move {
        let hello = Event::default()
            .event("hello")
            .retry(Duration::from_secs(1))
            .data("hello");
        if tx.send(Ok(hello)).await.is_err() {
            return;
        }
        loop {
            let next = tokio::select! {
                () = stop.cancelled() => return,
                () = tx.closed() => return,
                r = live.recv() => r,
            };
            let event = match next {
                Ok(e) => Event::default()
                    .event("run")
                    .json_data(wire::event(&e))
                    .unwrap_or_else(|_| Event::default().event("lagged").data("lagged")),
                Err(broadcast::error::RecvError::Lagged(_)) => {
                    Event::default().event("lagged").data("lagged")
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            if tx.send(Ok(event)).await.is_err() {
                return;
            }
        }
    });
    Sse::new(ReceiverStream::new(rx)).keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
}
