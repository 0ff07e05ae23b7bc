//! The web UI as the management listener serves it: the page at `/`, every module it
//! imports (followed from index.html through each script's imports, so a page that
//! names a file that is not there fails here), the headers that keep it safe and cheap
//! to reload, and the size budget. What the pages do is tested in a real browser
//! (interop/ui/).

mod common;

use common::TestBroker;
use hyper::{Method, StatusCode};
use std::collections::{BTreeSet, VecDeque};

/// The budget for the whole UI, uncompressed.
const UI_BUDGET: usize = 300 * 1024;

/// Paths a file names: `src="…"`/`href="…"` in HTML, `from '…'` and `import('…')`
/// in scripts, resolved against the file's own folder.
fn references(path: &str, text: &str) -> Vec<String> {
    let dir = match path.rfind('/') {
        Some(i) => &path[..=i],
        None => "/",
    };
    let mut out = Vec::new();
    for marker in ["src=\"", "href=\"", "from '", "import('", "from \""] {
        let quote = marker.chars().last().expect("a quote");
        for (i, _) in text.match_indices(marker) {
            let rest = &text[i + marker.len()..];
            let Some(end) = rest.find(quote) else {
                continue;
            };
            let target = &rest[..end];
            // Links inside the app (#/...), data: URLs and absolute URLs are no files.
            if target.starts_with('#') || target.contains(':') || target.is_empty() {
                continue;
            }
            out.push(resolve(dir, target));
        }
    }
    out
}

fn resolve(dir: &str, target: &str) -> String {
    let mut parts: Vec<&str> = if target.starts_with('/') {
        Vec::new()
    } else {
        dir.split('/').filter(|p| !p.is_empty()).collect()
    };
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            p => parts.push(p),
        }
    }
    format!("/{}", parts.join("/"))
}

#[tokio::test]
async fn every_file_the_ui_loads_is_served_and_the_whole_ui_fits_its_budget() {
    let broker = TestBroker::start_with_management().await;
    let http = broker.http().as_user(None);
    let mut seen = BTreeSet::new();
    let mut todo = VecDeque::from(["/".to_owned()]);
    let mut total = 0;
    while let Some(path) = todo.pop_front() {
        if !seen.insert(path.clone()) {
            continue;
        }
        let reply = http.get(&path).await;
        assert_eq!(
            reply.status,
            StatusCode::OK,
            "{path} is referenced but not served"
        );
        let kind = reply.header("content-type").unwrap_or_default().to_owned();
        let expected = match path.rsplit('.').next() {
            Some("js") => "text/javascript",
            Some("css") => "text/css",
            _ => "text/html",
        };
        assert!(kind.starts_with(expected), "{path}: {kind}");
        assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
        assert!(reply
            .header("content-security-policy")
            .is_some_and(
                |csp| csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'")
            ));
        total += reply.body.len();
        let text = reply.text();
        let base = if path == "/" { "/index.html" } else { &path };
        todo.extend(references(base, &text));
    }
    assert!(
        seen.contains("/js/app.js") && seen.contains("/app.css"),
        "{seen:?}"
    );
    assert!(seen.iter().any(|p| p.starts_with("/js/pages/")), "{seen:?}");
    assert!(
        total < UI_BUDGET,
        "the UI is {total} bytes, over {UI_BUDGET}"
    );
}

#[tokio::test]
async fn an_unchanged_file_is_not_sent_again() {
    let broker = TestBroker::start_with_management().await;
    let http = broker.http().as_user(None);
    let first = http.get("/js/app.js").await;
    let etag = first.header("etag").expect("an ETag").to_owned();
    assert_eq!(first.header("cache-control"), Some("no-cache"));
    let again = http
        .request(Method::GET, "/js/app.js", &[("if-none-match", &etag)], None)
        .await;
    assert_eq!(again.status, StatusCode::NOT_MODIFIED);
    assert!(again.body.is_empty());
    let other = http
        .request(
            Method::GET,
            "/js/app.js",
            &[("if-none-match", "\"0\"")],
            None,
        )
        .await;
    assert_eq!(other.status, StatusCode::OK);
    assert_eq!(other.body, first.body);
}

#[tokio::test]
async fn unknown_paths_are_404_and_the_api_keeps_its_json_404() {
    let broker = TestBroker::start_with_management().await;
    let http = broker.http();
    let page = http.get("/no/such/file.js").await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    for escape in [
        "/../Cargo.toml",
        "/js/../../Cargo.toml",
        "/%2e%2e/Cargo.toml",
    ] {
        assert_eq!(
            http.get(escape).await.status,
            StatusCode::NOT_FOUND,
            "{escape}"
        );
    }
    let api = http.get("/api/no-such-endpoint").await;
    assert_eq!(api.status, StatusCode::NOT_FOUND);
    assert_eq!(api.json()["error"], "Object Not Found");
    // The page itself needs no credentials (its login form asks for them); the API does.
    assert_eq!(
        broker.http().as_user(None).get("/").await.status,
        StatusCode::OK
    );
    assert_eq!(
        broker
            .http()
            .as_user(None)
            .get("/api/overview")
            .await
            .status,
        StatusCode::UNAUTHORIZED
    );
}
