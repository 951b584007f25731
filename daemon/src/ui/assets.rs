//! The dashboard's files, built into the binary from `daemon/web/`: plain ES modules, one
//! stylesheet, no build step, nothing fetched from elsewhere.

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

/// Each file: its name under `/ui/assets/`, its type, its text.
const FILES: &[(&str, &str, &str)] = &[
    ("app.js", JS, include_str!("../../web/app.js")),
    ("api.js", JS, include_str!("../../web/api.js")),
    ("runs.js", JS, include_str!("../../web/runs.js")),
    ("run.js", JS, include_str!("../../web/run.js")),
    ("dag.js", JS, include_str!("../../web/dag.js")),
    ("timeline.js", JS, include_str!("../../web/timeline.js")),
    ("render.js", JS, include_str!("../../web/render.js")),
    ("panels.js", JS, include_str!("../../web/panels.js")),
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../../web/style.css"),
    ),
];

const JS: &str = "text/javascript; charset=utf-8";

/// The one HTML page; the modules draw what the path asks for.
pub const INDEX: &str = include_str!("../../web/index.html");

/// `GET /ui/assets/{file}`.
pub async fn file(Path(name): Path<String>) -> Response {
    match FILES.iter().find(|(n, _, _)| *n == name) {
        Some((_, kind, text)) => (
            [
                (header::CONTENT_TYPE, *kind),
                (header::CACHE_CONTROL, "no-cache"),
            ],
            *text,
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "no such file").into_response(),
    }
}
