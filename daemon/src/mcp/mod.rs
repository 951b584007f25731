//! The workers' MCP endpoint: rmcp's Streamable HTTP server at `/mcp` on 127.0.0.1, stateless
//! (every request stands alone, so daemon restarts and idle gaps cost a worker nothing), with
//! JSON replies, rmcp's Host allowlist, Origin validation, a body limit, and — in [`router`] —
//! the bearer-token layer.
//!
//! **Boundary:** [`service`] is the bare MCP service with no authentication. Only [`router`]
//! is served by the daemon; `service` exists so a test harness can mount it for the conformance
//! suite (which cannot send headers). There is no switch that serves it unauthenticated.
//!
//! **Invariant:** the port is stable — configured, else the one recorded in SQLite, else any;
//! when the wanted port is taken another is used and recorded, so live workers keep their URL
//! across restarts whenever possible.

pub mod auth;
pub mod lean;
pub mod serve;
pub mod token;
pub mod tokens;
pub mod tools;

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;

use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::runs::Runs;
use crate::store::{Db, StoreError};
pub use tools::OrchestratorMcp;

/// Largest MCP request body: a 200-task plan with long descriptions fits.
pub const BODY_LIMIT: usize = 4 * 1024 * 1024;
const PORT_KEY: &str = "mcp_port";

/// The MCP service alone — no authentication. See the module's boundary note.
pub fn service(
    runs: Runs,
    cancel: CancellationToken,
) -> StreamableHttpService<OrchestratorMcp, NeverSessionManager> {
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(None)
        // Browsers send Origin; only pages served from this machine's loopback may call us.
        .with_allowed_origins(["http://localhost:*", "http://127.0.0.1:*", "http://[::1]:*"])
        .enforce_origin_validation()
        .with_max_request_body_bytes(BODY_LIMIT)
        .with_cancellation_token(cancel);
    StreamableHttpService::new(
        move || Ok(OrchestratorMcp::new(runs.clone())),
        Arc::new(NeverSessionManager::default()),
        config,
    )
}

/// `/mcp` behind the bearer-token layer: what the daemon serves.
pub fn router(runs: Runs, cancel: CancellationToken) -> axum::Router {
    axum::Router::new()
        .nest_service("/mcp", service(runs.clone(), cancel))
        .layer(axum::middleware::from_fn_with_state(runs, auth::bearer))
}

/// Binds 127.0.0.1 on the wanted port (configured, else recorded), falling back to any free
/// port when it is taken, and records the port in use.
pub async fn bind(
    db: &Db,
    configured: Option<u16>,
) -> Result<(TcpListener, SocketAddr), BindError> {
    let recorded = db
        .call(|c| crate::store::settings::setting(c, PORT_KEY))
        .await?
        .and_then(|v| v.parse::<u16>().ok());
    let wanted = configured.or(recorded).unwrap_or(0);
    let listener = match TcpListener::bind((Ipv4Addr::LOCALHOST, wanted)).await {
        Ok(l) => l,
        Err(e) if wanted != 0 && e.kind() == std::io::ErrorKind::AddrInUse => {
            tracing::warn!(
                port = wanted,
                "the MCP port is taken; using another (running workers keep the old URL and will fail)"
            );
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
                .await
                .map_err(BindError::Io)?
        }
        Err(e) => return Err(BindError::Io(e)),
    };
    let addr = listener.local_addr().map_err(BindError::Io)?;
    if Some(addr.port()) != recorded {
        let port = addr.port().to_string();
        db.call(move |c| crate::store::settings::set_setting(c, PORT_KEY, &port))
            .await?;
    }
    Ok((listener, addr))
}

#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("cannot listen for MCP on 127.0.0.1: {0}")]
    Io(#[source] std::io::Error),
    #[error(transparent)]
    Store(#[from] StoreError),
}
