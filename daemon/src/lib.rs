//! `orchestratord`, the per-user daemon, as a library: [`run`] serves the JSON API on a
//! listener the caller bound, until `shutdown` resolves. The binary (`main.rs`) only resolves
//! the configuration, claims the socket and wires signals; tests call [`run`] directly.

pub mod agents;
pub mod alloc;
pub mod api;
pub mod board;
pub mod child;
pub mod config;
pub mod confine;
pub mod engine;
pub mod git;
pub mod ids;
pub mod layout;
pub mod mcp;
pub mod mirror;
pub mod notify;
pub mod runs;
pub mod socket;
pub mod store;
#[cfg(test)]
mod testing;
pub mod ui;
pub mod usage;
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
    #[error(transparent)]
    Mcp(#[from] mcp::BindError),
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
    let (mcp_listener, mcp_addr) = mcp::bind(&db, config.mcp_port).await?;
    let mcp_url = format!("http://{mcp_addr}/mcp");
    let usage = usage::Usage::new();
    let engine = Arc::new(engine_config(&config, &mcp_url, &usage, &stop).await);
    let runs = runs::Runs::new(db.clone(), stop.child_token(), engine.clone());
    tokio::spawn(usage::poller::run(
        usage.clone(),
        config.usage.poller.clone(),
        db.clone(),
        stop.child_token(),
    ));
    tokio::spawn(backups(db.clone(), stop.child_token()));
    let restored = runs.restore().await.map_err(DaemonError::Restore)?;
    if restored > 0 {
        tracing::info!(runs = restored, "restored active runs");
    }
    let state = api::AppState {
        reconcile: engine.reconcile.clone(),
        runs: runs.clone(),
        info: Arc::new(api::DaemonInfo {
            started_at: store::time_text::now(),
            socket: config.socket.display().to_string(),
            data_dir: config.data_dir.display().to_string(),
            mcp_url: mcp_url.clone(),
            agents_confined: engine.confined,
            log_dir: config.log_dir.as_ref().map(|d| d.display().to_string()),
        }),
        shutdown: stop.clone(),
        usage: usage.clone(),
        ui: Arc::default(),
    };
    // The loopback port serves the workers' MCP endpoint and the dashboard.
    let mcp_app = mcp::router(runs.clone(), stop.child_token())
        .merge(ui::router(state.clone(), mcp_addr.port()));
    let mcp_stop = stop.clone();
    let mcp_served =
        tokio::spawn(async move { mcp::serve::serve(mcp_listener, mcp_app, mcp_stop).await });
    let external = stop.clone();
    tokio::spawn(async move {
        shutdown.await;
        external.cancel();
    });
    tracing::info!(socket = %config.socket.display(), data = %config.data_dir.display(),
        mcp = %mcp_url, version = env!("CARGO_PKG_VERSION"), "orchestratord ready");
    let graceful = stop.clone();
    let served = axum::serve(listener, api::router(state))
        .with_graceful_shutdown(async move { graceful.cancelled().await })
        .await;
    // Follow streams end when their actors stop, which lets in-flight responses finish.
    runs.shutdown().await;
    let mcp_result = mcp_served.await.map_err(DaemonError::Panicked)?;
    // Everything into the main file: a clean stop never leaves the state only in the WAL.
    if let Err(e) = db.close().await {
        tracing::error!(cause = %e, "cannot close the database cleanly");
    }
    served.map_err(DaemonError::Serve)?;
    mcp_result.map_err(DaemonError::Serve)
}

/// What every run's engine works with, from the daemon's config.
async fn engine_config(
    config: &Config,
    mcp_url: &str,
    usage: &usage::Usage,
    stop: &CancellationToken,
) -> engine::EngineConfig {
    engine::EngineConfig {
        mcp_url: mcp_url.to_owned(),
        data_dir: config.data_dir.clone(),
        permissions: config.permissions,
        claude_bin: config.claude_bin.clone(),
        notifications: config.notifications,
        webhooks: config.webhooks.clone(),
        codex_bin: config.codex_bin.clone(),
        codex: config.codex.clone(),
        usage: usage.clone(),
        usage_grace: config.usage.grace,
        usage_margin: config.usage.margin,
        limits: config.supervision,
        activity: engine::watch::Activity::default(),
        tokens: mcp::tokens::Tokens::default(),
        stopping: stop.clone(),
        reconcile: engine::watch::Reconcile::default(),
        started_at: store::time_text::now(),
        confined: confined(&config.data_dir).await,
        default_setup: config.worktrees.setup.clone(),
        default_models: config.models.clone(),
        feed: engine::feed::Feed::default(),
    }
}

/// Whether agent sessions can be confined (`confine::probe`); says once why not.
async fn confined(data_dir: &std::path::Path) -> bool {
    let dir = data_dir.to_owned();
    let probed = tokio::task::spawn_blocking(move || confine::probe(&dir))
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
    match probed {
        Ok(()) => true,
        Err(why) => {
            tracing::warn!(
                cause = %why,
                "agents cannot be kept out of the user's checkout on this system (it allows no \
                 mount namespace to the daemon's user); they run unconfined. To confine them, \
                 allow unprivileged user namespaces (sysctl kernel.unprivileged_userns_clone=1, \
                 or kernel.apparmor_restrict_unprivileged_userns=0 on Ubuntu) and restart the \
                 daemon"
            );
            false
        }
    }
}

/// How often the database is backed up (when it changed) while the daemon runs; it is also
/// backed up on every clean stop.
pub const BACKUP_EVERY: std::time::Duration = std::time::Duration::from_secs(600);

/// Rolling online backups into `<data_dir>/backups/` (see `store::durable`).
async fn backups(db: store::Db, stop: CancellationToken) {
    let mut tick = tokio::time::interval(BACKUP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tick.tick() => match db.backup().await {
                Ok(Some(path)) => tracing::debug!(backup = %path.display(), "database backed up"),
                Ok(None) => {}
                Err(e) => tracing::warn!(cause = %e, "cannot back up the database"),
            },
        }
    }
}
