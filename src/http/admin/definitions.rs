//! `/api/definitions` and `/api/definitions/{vhost}`: export (GET, also as a download
//! with `?download=NAME`) and import (POST, a JSON body as rabbitmqadmin sends it, or
//! the UI's multipart form with a `file` field and an optional `redirect`), in RabbitMQ
//! 3.10's format. Administrators only.
//!
//! The work is the broker's (`Broker::export_definitions`, `import_definitions`); this
//! module reads the body, scopes a per-vhost file to its vhost, runs the import on a
//! blocking thread and answers 204, 303 (with `redirect`) or RabbitMQ's 400s. Bodies
//! are limited by the router (`http::MAX_BODY`, RabbitMQ's default 20 MiB); deeper
//! nesting than serde_json's limit is a 400 too.

use super::super::auth::Caller;
use super::super::error::{ApiError, ApiResult};
use super::super::Api;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Map, Value};

/// The keys of a per-vhost export, and the only ones a per-vhost import reads.
const VHOST_KEYS: [&str; 5] = ["parameters", "policies", "queues", "exchanges", "bindings"];

pub(super) fn routes() -> Router<Api> {
    Router::new()
        .route("/api/definitions", get(export_all).post(import_all))
        .route(
            "/api/definitions/{vhost}",
            get(export_vhost).post(import_vhost),
        )
}

#[derive(Debug, Default, Deserialize)]
struct Download {
    download: Option<String>,
}

/// The export as JSON, as an attachment named `download` when asked.
fn answer(body: Value, download: Option<String>) -> Response {
    let mut response = Json(body).into_response();
    if let Some(name) = download.filter(|n| !n.is_empty()) {
        let value = format!(
            "attachment; filename={}",
            name.replace(['"', '\r', '\n'], "")
        );
        if let Ok(v) = HeaderValue::from_str(&value) {
            response
                .headers_mut()
                .insert(header::CONTENT_DISPOSITION, v);
        }
    }
    response
}

fn to_value(defs: &crate::store::definitions::Definitions) -> ApiResult<Value> {
    serde_json::to_value(defs).map_err(|e| ApiError::internal(e.to_string()))
}

async fn export_all(
    State(api): State<Api>,
    caller: Caller,
    Query(q): Query<Download>,
) -> ApiResult<Response> {
    caller.require_administrator()?;
    let body = to_value(&api.broker.export_definitions())?;
    Ok(answer(body, q.download))
}

async fn export_vhost(
    State(api): State<Api>,
    caller: Caller,
    Path(vhost): Path<String>,
    Query(q): Query<Download>,
) -> ApiResult<Response> {
    caller.require_administrator()?;
    if api.broker.vhost(&vhost).is_none() {
        return Err(ApiError::not_found());
    }
    let all = to_value(&api.broker.export_definitions())?;
    let mut out = Map::new();
    out.insert("rabbit_version".into(), all["rabbit_version"].clone());
    for key in VHOST_KEYS {
        let items = all[key]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|item| item.get("vhost").and_then(Value::as_str) == Some(vhost.as_str()))
            .map(|item| {
                let mut item = item.clone();
                // Parameters keep their vhost, as RabbitMQ exports them.
                if key != "parameters" {
                    if let Some(o) = item.as_object_mut() {
                        o.remove("vhost");
                    }
                }
                item
            })
            .collect();
        out.insert(key.into(), Value::Array(items));
    }
    Ok(answer(Value::Object(out), q.download))
}

async fn import_all(
    State(api): State<Api>,
    caller: Caller,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    caller.require_administrator()?;
    import(api, &headers, &body, None).await
}

async fn import_vhost(
    State(api): State<Api>,
    caller: Caller,
    Path(vhost): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<Response> {
    caller.require_administrator()?;
    if api.broker.vhost(&vhost).is_none() {
        return Err(ApiError::vhost_not_found());
    }
    import(api, &headers, &body, Some(vhost)).await
}

async fn import(
    api: Api,
    headers: &HeaderMap,
    body: &Bytes,
    vhost: Option<String>,
) -> ApiResult<Response> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let (file, redirect) = match boundary(content_type) {
        Some(boundary) => {
            let parts = form_parts(body, &boundary)
                .ok_or_else(|| ApiError::bad_request("failed_to_parse_json"))?;
            let field = |name: &str| parts.iter().find(|(n, _)| n == name).map(|(_, v)| v);
            let file = field("file")
                .ok_or_else(|| ApiError::bad_request("failed_to_parse_json"))?
                .clone();
            let redirect = field("redirect").map(|r| String::from_utf8_lossy(r).into_owned());
            (Bytes::from(file), redirect)
        }
        None => (body.clone(), None),
    };
    let Ok(Value::Object(mut map)) = serde_json::from_slice::<Value>(&file) else {
        return Err(ApiError::bad_request("failed_to_parse_json"));
    };
    if let Some(vhost) = &vhost {
        scope_to_vhost(&mut map, vhost);
    }
    let defs: crate::store::definitions::Definitions =
        serde_json::from_value(Value::Object(map))
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let broker = api.broker.clone();
    let result = tokio::task::spawn_blocking(move || broker.import_definitions(defs))
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    if let Err(e) = result {
        return Err(ApiError::bad_request_reason(e.0));
    }
    Ok(match redirect.filter(|r| !r.is_empty()) {
        Some(to) => match HeaderValue::from_str(&to) {
            Ok(location) => (StatusCode::SEE_OTHER, [(header::LOCATION, location)]).into_response(),
            Err(_) => StatusCode::NO_CONTENT.into_response(),
        },
        None => StatusCode::NO_CONTENT.into_response(),
    })
}

/// A per-vhost file names no vhost: everything it holds goes to `vhost`, and what a
/// per-vhost import does not read (users, vhosts, permissions, ...) is dropped.
fn scope_to_vhost(map: &mut Map<String, Value>, vhost: &str) {
    map.retain(|k, _| VHOST_KEYS.contains(&k.as_str()) || k.starts_with("rabbit"));
    for key in VHOST_KEYS {
        if let Some(Value::Array(items)) = map.get_mut(key) {
            for item in items {
                if let Some(o) = item.as_object_mut() {
                    o.insert("vhost".into(), vhost.into());
                }
            }
        }
    }
}

/// The boundary of a `multipart/form-data` content type.
pub(crate) fn boundary(content_type: &str) -> Option<String> {
    let mut parts = content_type.split(';');
    if !parts
        .next()?
        .trim()
        .eq_ignore_ascii_case("multipart/form-data")
    {
        return None;
    }
    parts.find_map(|p| {
        let (k, v) = p.trim().split_once('=')?;
        k.trim()
            .eq_ignore_ascii_case("boundary")
            .then(|| v.trim().trim_matches('"').to_owned())
    })
}

/// The fields of a multipart form body, by name; `None` when it is not one.
pub(crate) fn form_parts(body: &[u8], boundary: &str) -> Option<Vec<(String, Vec<u8>)>> {
    let delimiter = format!("--{boundary}");
    let d = delimiter.as_bytes();
    let mut at = find(body, d, 0)? + d.len();
    let mut parts = Vec::new();
    loop {
        if body.get(at..at + 2) == Some(b"--") {
            return Some(parts);
        }
        let start = at + 2; // the CRLF after the delimiter
        let next = find(body, d, start)?;
        let part = body.get(start..next.checked_sub(2)?)?; // minus the CRLF before it
        let head_end = find(part, b"\r\n\r\n", 0)?;
        let head = String::from_utf8_lossy(&part[..head_end]);
        let name = head
            .split(';')
            .find_map(|p| p.trim().strip_prefix("name="))
            .map(|n| {
                n.split("\r\n")
                    .next()
                    .unwrap_or(n)
                    .trim_matches('"')
                    .to_owned()
            })?;
        parts.push((name, part[head_end + 4..].to_vec()));
        at = next + d.len();
    }
}

fn find(haystack: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    haystack
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_upload_is_read_by_field() {
        let body = b"--XyZ\r\nContent-Disposition: form-data; name=\"file\"; filename=\"d.json\"\r\nContent-Type: application/json\r\n\r\n{\"vhosts\":[]}\r\n--XyZ\r\nContent-Disposition: form-data; name=\"redirect\"\r\n\r\n../../\r\n--XyZ--\r\n";
        let b = boundary("multipart/form-data; boundary=XyZ").expect("boundary");
        let parts = form_parts(body, &b).expect("parts");
        assert_eq!(parts[0].0, "file");
        assert_eq!(parts[0].1, b"{\"vhosts\":[]}");
        assert_eq!(parts[1], ("redirect".to_owned(), b"../../".to_vec()));
        assert_eq!(boundary("application/json"), None);
        // Every cut of a form is refused or read, never a panic.
        for n in 0..body.len() {
            let _ = form_parts(&body[..n], &b);
        }
    }
}
