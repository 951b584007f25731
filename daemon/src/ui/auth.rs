//! Who may use the dashboard. `orchestrate ui` asks the daemon (over the Unix socket, which
//! only the user reaches) for a one-time login URL; opening it sets an `HttpOnly`,
//! `SameSite=Strict` session cookie and forgets the login token. Every `/ui/api` request needs
//! that cookie, and every change (any method but GET) also the session's CSRF token in
//! `X-CSRF-Token`, which a page reads from `/ui/api/session`.
//!
//! **Invariants:** no token is stored in the clear — login tokens and cookies are kept as
//! SHA-256 hashes; a login token works once, within [`LOGIN_TTL`]; sessions live in SQLite, so
//! an open page survives a daemon restart.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;

use super::UiState;
use crate::mcp::token;

/// How long a login URL works.
pub const LOGIN_TTL: Duration = Duration::from_secs(120);
/// How long a browser session lasts.
const SESSION_TTL: time::Duration = time::Duration::days(30);
/// The session cookie's name.
pub const COOKIE: &str = "orch_ui";

/// Login tokens handed out and not used yet: hash → (expiry, the page to open).
#[derive(Default)]
pub struct Logins(Mutex<HashMap<Vec<u8>, (Instant, String)>>);

impl Logins {
    /// A fresh login token that opens `next` (a `/ui/…` path).
    pub fn mint(&self, next: String) -> String {
        let (token, hash) = token::mint();
        let now = Instant::now();
        if let Ok(mut m) = self.0.lock() {
            m.retain(|_, (until, _)| *until > now);
            m.insert(hash, (now + LOGIN_TTL, next));
        }
        token
    }

    /// The page a login token opens, once: the token is gone afterwards.
    fn take(&self, token: &str) -> Option<String> {
        let (until, next) = self.0.lock().ok()?.remove(&token::hash(token))?;
        (until > Instant::now()).then_some(next)
    }
}

#[derive(Deserialize)]
pub struct LoginQuery {
    t: String,
}

/// A page for a refused visitor: what happened and the command that fixes it.
pub fn refused(status: StatusCode, why: &str) -> Response {
    let body = format!(
        "<!doctype html><meta charset=utf-8><title>orchestrator</title>\
         <body style=\"font:16px system-ui;margin:3em\"><h1>orchestrator</h1><p>{why}</p>\
         <p>Run <code>orchestrate ui</code> for a new login link.</p>"
    );
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

/// `GET /ui/login?t=…`: trades a login token for a session cookie, then opens the page.
pub async fn login(State(s): State<UiState>, Query(q): Query<LoginQuery>) -> Response {
    let Some(next) = s.logins.take(&q.t) else {
        return refused(
            StatusCode::UNAUTHORIZED,
            "This login link was used already or has expired.",
        );
    };
    let (cookie, hash) = token::mint();
    let (csrf, _) = token::mint();
    let now = crate::store::time_text::now();
    let stored = s
        .app
        .runs
        .db()
        .call(move |c| crate::store::ui::insert(c, &hash, &csrf, now, now + SESSION_TTL))
        .await;
    if let Err(e) = stored {
        tracing::error!(cause = %e, "cannot record a dashboard session");
        return refused(
            StatusCode::SERVICE_UNAVAILABLE,
            "The daemon cannot record the session.",
        );
    }
    let set = format!(
        "{COOKIE}={cookie}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={}",
        SESSION_TTL.whole_seconds()
    );
    let mut r = Redirect::to(&next).into_response();
    if let Ok(v) = set.parse() {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

/// The session's CSRF token, put in the request's extensions by [`session`].
#[derive(Clone)]
pub struct Csrf(pub String);

fn cookie(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_owned())
}

/// Whether the request carries a live session's cookie.
pub async fn signed_in(s: &UiState, headers: &HeaderMap) -> bool {
    matches!(csrf_of(s, headers).await, Ok(Some(_)))
}

/// The CSRF token of the live session whose cookie `headers` carry (`None`: no such session).
/// From the read connection: a page's requests never queue behind the runs' writes.
async fn csrf_of(
    s: &UiState,
    headers: &HeaderMap,
) -> Result<Option<String>, crate::store::StoreError> {
    let Some(cookie) = cookie(headers) else {
        return Ok(None);
    };
    let hash = token::hash(&cookie);
    let now = crate::store::time_text::now();
    s.app
        .runs
        .db()
        .read(move |c| crate::store::ui::csrf(c, &hash, now))
        .await
}

fn deny(status: StatusCode, message: &str) -> Response {
    let code = if status == StatusCode::FORBIDDEN {
        "forbidden"
    } else {
        "unauthorized"
    };
    let body = serde_json::json!({"code": code, "message": message,
        "hint": "open the dashboard with `orchestrate ui`"});
    (status, axum::Json(body)).into_response()
}

/// The layer in front of `/ui/api`: a live session cookie, and for a change its CSRF token.
pub async fn session(State(s): State<UiState>, mut req: Request, next: Next) -> Response {
    let csrf = match csrf_of(&s, req.headers()).await {
        Ok(Some(csrf)) => csrf,
        Ok(None) if cookie(req.headers()).is_none() => {
            return deny(StatusCode::UNAUTHORIZED, "no dashboard session");
        }
        Ok(None) => {
            return deny(
                StatusCode::UNAUTHORIZED,
                "unknown or expired dashboard session",
            );
        }
        Err(e) => {
            tracing::error!(cause = %e, "cannot check a dashboard session");
            return deny(
                StatusCode::SERVICE_UNAVAILABLE,
                "cannot check the session now",
            );
        }
    };
    if !matches!(*req.method(), Method::GET | Method::HEAD) {
        let sent = req
            .headers()
            .get("x-csrf-token")
            .and_then(|v| v.to_str().ok());
        if sent != Some(csrf.as_str()) {
            return deny(
                StatusCode::FORBIDDEN,
                "missing or wrong CSRF token (reload the page)",
            );
        }
    }
    req.extensions_mut().insert(Csrf(csrf));
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::Logins;

    #[test]
    fn a_login_token_works_once() {
        let l = Logins::default();
        let t = l.mint("/ui/".into());
        assert_eq!(l.take("orch_nope"), None);
        assert_eq!(l.take(&t).as_deref(), Some("/ui/"));
        assert_eq!(l.take(&t), None);
    }
}
