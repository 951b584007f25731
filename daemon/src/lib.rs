//! `orchestratord`, the per-user daemon, as a library: [`run`] serves the JSON API on a
//! listener the caller bound, until `shutdown` resolves. The binary (`main.rs`) only resolves
//! the configuration, claims the socket and wires signals; tests call [`run`] directly.

pub mod api;
pub mod config;
pub mod git;
pub mod mirror;
pub mod runs;
pub mod socket;
pub mod store;
pub mod wire;

use std::future::Future;
use std::sync::Arc;

use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;

pub use config::Config;

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Store(#[from] store::StoreError),
    #[error("cannot restore the runs of the previous daemon: {0}")]
    Restore(#[source] runs::RunError),
    #[error("opening the database panicked: {0}")]
    Panicked(#[source] tokio::task::JoinError),
    #[error("the API server failed: {0}")]
    Serve(#[source] std::io::Error),
}

/// Serves until `shutdown` resolves or a client asks over the API; then stops every run actor
/// (state is persisted as it changes, so nothing is lost) and returns.
pub async fn run(
    config: Config,
    listener: UnixListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), DaemonError> {
    let path = config.data_dir.join("orchestrator.db");
    let db = tokio::task::spawn_blocking(move || store::Db::open(&path))
        .await
        .map_err(DaemonError::Panicked)??;
    let stop = CancellationToken::new();
    let runs = runs::Runs::new(db, stop.child_token());
    let restored = runs.restore().await.map_err(DaemonError::Restore)?;
    if restored > 0 {
        tracing::info!(runs = restored, "restored active runs");
    }
    let state = api::AppState {
        runs: runs.clone(),
        info: Arc::new(api::DaemonInfo {
            started_at: store::time_text::now(),
            socket: config.socket.display().to_string(),
            data_dir: config.data_dir.display().to_string(),
        }),
        shutdown: stop.clone(),
    };
    let external = stop.clone();
    tokio::spawn(async move {
        shutdown.await;
        external.cancel();
    });
    tracing::info!(socket = %config.socket.display(), data = %config.data_dir.display(),
        version = env!("CARGO_PKG_VERSION"), "orchestratord ready");
    let graceful = stop.clone();
    let served = axum::serve(listener, api::router(state))
        .with_graceful_shutdown(async move { graceful.cancelled().await })
        .await;
    // Follow streams end when their actors stop, which lets in-flight responses finish.
    runs.shutdown().await;
    served.map_err(DaemonError::Serve)
}
