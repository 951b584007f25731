//! The web dashboard, served by the daemon beside `/mcp` on its loopback port: one HTML page
//! and its modules (`assets`), the JSON it reads under `/ui/api` (the socket API's reading
//! routes and the user's own changes, `crate::api::ui_routes`), and live events as
//! server-sent events (`stream`).
//!
//! **Invariants (security):** every `/ui` request must name this port on loopback as its
//! `Host` (no DNS rebinding) and, when it has an `Origin`, this origin; `/ui/api` needs a
//! session cookie and a change its CSRF token too (`auth`); every answer carries a
//! Content-Security-Policy that allows only this origin's own scripts, none inline. No route
//! under `/ui` reaches a session's token or the environment kept for a run's agents.

pub mod assets;
pub mod auth;
pub mod stream;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::api::AppState;

#[derive(Clone)]
pub struct UiState {
    pub app: AppState,
    pub logins: Arc<auth::Logins>,
    /// `127.0.0.1:<port>`, `localhost:<port>`, `[::1]:<port>`.
    hosts: Arc<[String; 3]>,
}

/// The policy of every answer: this origin's files only, no inline script or style.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
     connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'";

/// `/ui…` for the daemon's loopback port `port`.
pub fn router(app: AppState, port: u16) -> Router {
    let state = UiState {
        logins: app.ui.clone(),
        hosts: Arc::new([
            format!("127.0.0.1:{port}"),
            format!("localhost:{port}"),
            format!("[::1]:{port}"),
        ]),
        app: app.clone(),
    };
    let api = Router::new()
        .route("/session", get(session))
        .route("/stream", get(stream::events))
        .with_state(state.clone())
        .merge(crate::api::ui_routes().with_state(app))
        .layer(from_fn_with_state(state.clone(), auth::session));
    Router::new()
        .route("/ui", get(page))
        .route("/ui/", get(page))
        .route("/ui/runs/{id}", get(page))
        .route("/ui/login", get(auth::login))
        .route("/ui/assets/{file}", get(assets::file))
        .nest("/ui/api", api)
        .with_state(state.clone())
        .layer(from_fn_with_state(state, guard))
}

/// The page, for a browser with a session; anyone else is told how to get one.
async fn page(State(s): State<UiState>, headers: axum::http::HeaderMap) -> Response {
    if !auth::signed_in(&s, &headers).await {
        return auth::refused(StatusCode::UNAUTHORIZED, "This browser is not signed in.");
    }
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        assets::INDEX,
    )
        .into_response()
}

/// `GET /ui/api/session`: the token a page sends with every change.
async fn session(
    axum::Extension(csrf): axum::Extension<auth::Csrf>,
) -> axum::Json<serde_json::Value> {
    axum::Json(serde_json::json!({ "csrf": csrf.0 }))
}

/// Host and Origin checked, security headers added.
async fn guard(State(s): State<UiState>, req: Request, next: Next) -> Response {
    let host = req
        .headers()
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !s.hosts.iter().any(|h| h == host) {
        return (
            StatusCode::FORBIDDEN,
            "the dashboard answers on loopback only",
        )
            .into_response();
    }
    if let Some(origin) = req.headers().get(header::ORIGIN) {
        let ok = origin
            .to_str()
            .ok()
            .and_then(|o| o.strip_prefix("http://"))
            .is_some_and(|o| s.hosts.iter().any(|h| h == o));
        if !ok {
            return (
                StatusCode::FORBIDDEN,
                "requests from other sites are refused",
            )
                .into_response();
        }
    }
    let api = req.uri().path().starts_with("/ui/api/");
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if api {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    r
}
