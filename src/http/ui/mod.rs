//! The web UI: hand-written HTML, CSS and JavaScript modules under `assets/`, embedded in
//! the binary by build.rs and served here at `/` (index.html) and `/<relative path>`.
//!
//! The UI is a client of the management API and nothing else: every page reads and
//! changes the broker through `/api/...` with the user's credentials, so whatever it
//! shows a script can get too. This module only hands out bytes; it never reads the
//! broker. Unknown paths outside `/api/` get a plain 404.
//!
//! A debug build serves the files from disk instead when `WARREN_UI_DIR` names the
//! assets folder, so the UI can be edited and reloaded without a rebuild.

use super::error::ApiError;
use super::Api;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;

mod embedded {
    include!(concat!(env!("OUT_DIR"), "/ui_assets.rs"));
}

/// The page a browser gets at `/`.
const INDEX: &str = "index.html";

/// Scripts, styles and data only from this origin; no framing (clickjacking). Inline
/// style attributes stay allowed for sizes set from script.
const CSP: &str = "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; \
                   frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// One embedded file: its path under assets/, its bytes, and its content hash (ETag).
type Asset = (&'static str, &'static [u8], u64);

/// The UI's routes: `/` (index.html) and one per embedded file, each holding its file.
pub fn routes() -> Router<Api> {
    let mut router = Router::new();
    for file in embedded::ASSETS {
        let serve = get(move |headers: HeaderMap| async move { asset(file, &headers).await });
        if file.0 == INDEX {
            router = router.route("/", serve.clone());
        }
        router = router.route(&format!("/{}", file.0), serve);
    }
    router
}

/// What the router answers for a path no route has: the API's 404 under `/api/`, and
/// outside it a plain 404 (or, in a debug build with `WARREN_UI_DIR`, a file on disk
/// that is not embedded yet).
pub async fn fallback(uri: Uri) -> Response {
    let path = uri.path();
    if path == "/api" || path.starts_with("/api/") {
        return ApiError::not_found().into_response();
    }
    #[cfg(debug_assertions)]
    if let Some(response) = from_disk(path.trim_start_matches('/')).await {
        return response;
    }
    (StatusCode::NOT_FOUND, "Not Found\n").into_response()
}

/// One embedded file, or 304 when the browser's copy is current.
async fn asset(file: &'static Asset, headers: &HeaderMap) -> Response {
    let (path, bytes, tag) = *file;
    #[cfg(debug_assertions)]
    if let Some(response) = from_disk(path).await {
        return response;
    }
    let etag = format!("\"{tag:x}\"");
    let current = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut response = if current {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (StatusCode::OK, bytes).into_response()
    };
    let h = response.headers_mut();
    // Revalidate every time (the ETag makes that a 304): a new binary's UI is seen at once.
    file_headers(h, path, "no-cache");
    if let Ok(value) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, value);
    }
    response
}

/// The headers of every file served (from disk too, so the dev loop meets the same CSP
/// as the binary's users): its type, how long it may be cached, and those that confine
/// what a page may load and run.
fn file_headers(h: &mut HeaderMap, path: &str, cache: &'static str) {
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(path)),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
}

fn content_type(path: &str) -> &'static str {
    match path.rsplit('.').next() {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("json") => "application/json",
        Some("txt") => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

/// Debug builds only: the file at `path` under `WARREN_UI_DIR`, when that is set.
#[cfg(debug_assertions)]
async fn from_disk(path: &str) -> Option<Response> {
    let dir = std::path::PathBuf::from(std::env::var_os("WARREN_UI_DIR")?);
    let relative = if path.is_empty() { INDEX } else { path };
    if relative
        .split('/')
        .any(|part| part == ".." || part.is_empty())
    {
        return None;
    }
    let file = dir.join(relative);
    let bytes = tokio::task::spawn_blocking(move || std::fs::read(file))
        .await
        .ok()?
        .ok()?;
    let mut response = (StatusCode::OK, bytes).into_response();
    file_headers(response.headers_mut(), relative, "no-store");
    Some(response)
}
