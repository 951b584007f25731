//! The official MCP conformance suite (`@modelcontextprotocol/conformance`, run on Node 22)
//! against the daemon's MCP service. The runner cannot send headers, so the test mounts
//! `orchestratord::mcp::service` — the very service the daemon serves — without the token
//! layer, in this process. Scenarios that need the suite's own fixture tools, resources or
//! prompts are listed, each with its reason, in `tests/conformance-baseline.yml`; the runner
//! fails if any other scenario fails, or if a listed one starts passing.

use std::process::Command;

use orchestrator_tests::deps;

#[test]
fn the_mcp_service_passes_the_conformance_suite() {
    let tmp = tempfile::Builder::new()
        .prefix("orch-")
        .tempdir_in("/tmp")
        .expect("tmp");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let cancel = tokio_util::sync::CancellationToken::new();
    let addr = runtime.block_on(async {
        let db = orchestratord::store::Db::open(&tmp.path().join("orchestrator.db")).expect("db");
        let engine = std::sync::Arc::new(orchestratord::engine::EngineConfig {
            mcp_url: "http://127.0.0.1:9/mcp".into(),
            data_dir: tmp.path().to_path_buf(),
            permissions: Default::default(),
            claude_bin: None,
            notifications: false,
            webhooks: Vec::new(),
            codex_bin: None,
            codex: Default::default(),
            usage: Default::default(),
            usage_grace: std::time::Duration::from_secs(300),
            usage_margin: orchestratord::usage::RESET_MARGIN,
            limits: Default::default(),
            activity: Default::default(),
            tokens: Default::default(),
            stopping: cancel.child_token(),
            reconcile: Default::default(),
            confined: false,
            default_setup: None,
            default_models: Default::default(),
            feed: Default::default(),
            started_at: time::OffsetDateTime::now_utc(),
        });
        let runs = orchestratord::runs::Runs::new(db, cancel.child_token(), engine);
        let app = axum::Router::new().nest_service(
            "/mcp",
            orchestratord::mcp::service(runs, cancel.child_token()),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        addr
    });
    let baseline = concat!(env!("CARGO_MANIFEST_DIR"), "/conformance-baseline.yml");
    let out = Command::new(deps::node22())
        .arg(deps::conformance())
        .args(["server", "--url", &format!("http://{addr}/mcp")])
        .args(["--expected-failures", baseline])
        .arg("-o")
        .arg(
            std::env::var_os("CONFORMANCE_OUT")
                .map(std::path::PathBuf::from)
                .unwrap_or_else(|| tmp.path().join("results")),
        )
        .output()
        .expect("run the conformance suite");
    let report = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    cancel.cancel();
    assert!(out.status.success(), "conformance suite failed:\n{report}");
    for scenario in [
        "server-initialize",
        "ping",
        "tools-list",
        "dns-rebinding-protection",
    ] {
        assert!(report.contains(scenario), "{scenario} ran:\n{report}");
    }
}
