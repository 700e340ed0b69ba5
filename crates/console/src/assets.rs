//! The console's static files, compiled into the binary.
//!
//! `htmx-2.0.11.min.js` is htmx 2.0.11, copied unchanged from the npm package `htmx.org@2.0.11`
//! (`dist/htmx.min.js`, Zero-Clause BSD licence in `static/htmx.LICENSE`). The version is in
//! its file name, so it is served as immutable; to upgrade, copy the new file under its new
//! name and change [`HTMX_URL`]. The stylesheet and the small script are the console's own;
//! their URLs carry a hash of their content, so they can be cached for long too.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

pub const HTMX_URL: &str = "/console/static/htmx-2.0.11.min.js";
const HTMX: &str = include_str!("../static/htmx-2.0.11.min.js");
const CSS: &str = include_str!("../static/console.css");
const JS: &str = include_str!("../static/console.js");

fn versioned(path: &str, body: &str, cell: &'static OnceLock<String>) -> String {
    cell.get_or_init(|| {
        let digest = Sha256::digest(body.as_bytes());
        format!("{path}?v={}", &hex::encode(digest)[..12])
    })
    .clone()
}

pub fn css_url() -> String {
    static URL: OnceLock<String> = OnceLock::new();
    versioned("/console/static/console.css", CSS, &URL)
}

pub fn js_url() -> String {
    static URL: OnceLock<String> = OnceLock::new();
    versioned("/console/static/console.js", JS, &URL)
}

pub async fn serve(Path(file): Path<String>) -> Response {
    let (body, kind) = match file.as_str() {
        "htmx-2.0.11.min.js" => (HTMX, "text/javascript; charset=utf-8"),
        "console.js" => (JS, "text/javascript; charset=utf-8"),
        "console.css" => (CSS, "text/css; charset=utf-8"),
        _ => return (StatusCode::NOT_FOUND, "No such file.").into_response(),
    };
    (
        [
            (header::CONTENT_TYPE, kind),
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        body,
    )
        .into_response()
}
