//! `orchestrator-noop-mcp`: the benchmark's floor for MCP throughput. The same rmcp Streamable
//! HTTP server the daemon serves — stateless, JSON replies, the same origin and body limits,
//! the daemon's own bounded accept loop (`orchestratord::mcp::serve`) on a two-worker runtime,
//! the daemon's allocator (mimalloc) — with one tool, `noop`, that does nothing. What the
//! daemon's figure loses against it is the work of the board itself: authentication, the run's
//! actor, SQLite.
//!
//! Binds 127.0.0.1 on any port, prints `http://127.0.0.1:<port>/mcp` on one line, and serves
//! until stdin closes (the benchmark holds it open).

use std::sync::Arc;

use rmcp::handler::server::router::tool::ToolRouter;
use rmcp::model::CallToolResult;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData as McpError, ServerHandler, tool, tool_handler, tool_router};
use tokio_util::sync::CancellationToken;

/// The daemon's allocator (`orchestratord::alloc`), so the floor is the same process setup
/// less the board's work.
#[global_allocator]
static ALLOCATOR: orchestratord::alloc::Allocator = orchestratord::alloc::ALLOCATOR;

#[derive(Clone)]
struct Noop {
    tool_router: ToolRouter<Self>,
}

#[tool_router]
impl Noop {
    #[tool(description = "Does nothing.")]
    async fn noop(&self) -> Result<CallToolResult, McpError> {
        Ok(CallToolResult::structured(
            serde_json::json!({ "ok": true }),
        ))
    }
}

#[tool_handler(router = self.tool_router)]
impl ServerHandler for Noop {
    fn get_info(&self) -> rmcp::model::ServerConfig {
        rmcp::model::ServerConfig::new(
            rmcp::model::ServerCapabilities::builder()
                .enable_tools()
                .build(),
        )
    }
}

fn main() -> std::io::Result<()> {
    orchestratord::alloc::tune();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let stop = CancellationToken::new();
        let config = StreamableHttpServerConfig::default()
            .with_legacy_session_mode(false)
            .with_json_response(true)
            .with_sse_keep_alive(None)
            .with_allowed_origins(["http://localhost:*", "http://127.0.0.1:*"])
            .enforce_origin_validation()
            .with_max_request_body_bytes(orchestratord::mcp::BODY_LIMIT)
            .with_cancellation_token(stop.child_token());
        let service = StreamableHttpService::new(
            || {
                Ok(Noop {
                    tool_router: Noop::tool_router(),
                })
            },
            Arc::new(NeverSessionManager::default()),
            config,
        );
        let app = axum::Router::new().nest_service("/mcp", service);
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await?;
        println!("http://{}/mcp", listener.local_addr()?);
        let held = stop.clone();
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
            held.cancel();
        });
        orchestratord::mcp::serve::serve(listener, app, stop).await
    })
}
