//! Serving the MCP port with bounds, so nothing a local process does to it can starve the
//! daemon of descriptors: at most [`connections_max`] connections are held at once (one more is
//! accepted and closed at once, so the kernel's backlog never fills either), a connection that
//! sends no request headers for [`HEADER_TIMEOUT`] — idle keep-alive included — is closed, and
//! an `accept` that fails for want of descriptors backs off instead of spinning.
//!
//! **Invariant:** the Unix-socket API shares no limit with this port; with the soft
//! `RLIMIT_NOFILE` raised at start (`main.rs`) the MCP port's connections stay far below it.

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// The most MCP connections ever held at once (a run's workers each keep one or two; a
/// hundred runs of ten workers is a thousand).
pub const CONNECTIONS_MAX: usize = 4096;

/// The most MCP connections held at once here: a quarter of the descriptors the daemon may
/// open (the soft `RLIMIT_NOFILE`, raised at start), at most [`CONNECTIONS_MAX`], at least 64.
pub fn connections_max() -> usize {
    let soft = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .map_or(1024, |(soft, _)| soft);
    usize::try_from(soft / 4)
        .unwrap_or(CONNECTIONS_MAX)
        .clamp(64, CONNECTIONS_MAX)
}

/// How long a connection may take to send a request's headers, and may sit idle between
/// requests, before it is closed (workers reconnect by themselves).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// How long open connections get to finish their requests when the daemon stops.
const DRAIN: Duration = Duration::from_secs(5);

/// Serves `app` on `listener` until `stop`, then lets open requests finish (bounded).
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    stop: CancellationToken,
) -> std::io::Result<()> {
    let max = connections_max();
    let permits = Arc::new(Semaphore::new(max));
    let mut refused = 0u64;
    loop {
        let stream = tokio::select! {
            () = stop.cancelled() => break,
            r = listener.accept() => match r {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // EMFILE/ENFILE and the like: the connection waits in the backlog.
                    tracing::warn!(cause = %e, "cannot accept an MCP connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            refused += 1;
            if refused.is_power_of_two() {
                tracing::warn!(
                    open = max,
                    refused,
                    "too many MCP connections; new ones are closed until some end"
                );
            }
            drop(stream);
            continue;
        };
        let (svc, stop) = (TowerToHyperService::new(app.clone()), stop.clone());
        tokio::spawn(async move {
            let _held = permit;
            let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT);
            let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => {}
                () = stop.cancelled() => {
                    conn.as_mut().graceful_shutdown();
                    let _ = tokio::time::timeout(DRAIN, conn).await;
                }
            }
        });
    }
    // Every connection gives its permit back when it ends.
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(DRAIN + Duration::from_secs(1), permits.acquire_many(all)).await;
    Ok(())
}
