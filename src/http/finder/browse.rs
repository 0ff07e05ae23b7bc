//! `GET /api/queues/{vhost}/{name}/browse`: a queue's ready messages, in delivery
//! order, from position `from` (0 is the head), looked at without being taken.
//!
//! Query: `from` (default 0), `count` (default 20, at most `MAX_COUNT`), `truncate`
//! (payload bytes shown, default 50000), `encoding` (`auto` or `base64`, as get), and
//! `search` with `search_limit` (default 1000, at most `MAX_SEARCH_LIMIT`): scan that
//! many messages from `from` and answer the first `count` that match (`matching`).
//! Each message is what RabbitMQ's get answers for it (less `message_count`) plus its
//! `position`; the payloads shown are bounded in all (`MAX_ANSWER_PAYLOAD`). Access as
//! get: the caller acts in the vhost and may read the queue.
//!
//! Called by the router. The queue is copied under its lock (`Queue::browse`), and the
//! messages are read, matched and turned into JSON on a blocking thread.

use super::matching::Needle;
use crate::access::permissions::{Permission, Resource};
use crate::broker::queue::browse::Browse;
use crate::http::auth::Caller;
use crate::http::error::{ApiError, ApiResult};
use crate::http::objects::{
    acting_vhost, get_refused, message_json, permit, segments, API_CONNECTION,
};
use crate::http::Api;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::HashMap;

/// The most messages one answer holds.
pub const MAX_COUNT: u64 = 500;
/// The most messages one search scans.
pub const MAX_SEARCH_LIMIT: u64 = crate::broker::queue::browse::MAX_BROWSE as u64;
/// The most payload bytes one answer shows, all messages together: past it, the
/// message that reaches it is cut there (its `payload_bytes` still tells its size) and
/// no more follow. 500 messages of the default 50,000 bytes fit; 500 of 100 MB do not.
pub const MAX_ANSWER_PAYLOAD: u64 = 64 * 1024 * 1024;
const DEFAULT_COUNT: u64 = 20;
const DEFAULT_TRUNCATE: u64 = 50_000;
const DEFAULT_SEARCH_LIMIT: u64 = 1000;

pub(super) fn routes() -> Router<Api> {
    Router::new().route("/api/queues/{vhost}/{name}/browse", get(browse))
}

/// What the query asks for.
struct Params {
    from: u64,
    count: u64,
    truncate: u64,
    base64_always: bool,
    /// The text searched for and how many messages to scan.
    search: Option<(String, Needle, u64)>,
}

/// A whole number parameter: `default` when absent, a 400 naming it and its bounds
/// when it is not a number in `min..=max`.
fn number(
    q: &HashMap<String, String>,
    key: &str,
    default: u64,
    (min, max): (u64, u64),
) -> ApiResult<u64> {
    let Some(text) = q.get(key) else {
        return Ok(default);
    };
    text.trim()
        .parse::<u64>()
        .ok()
        .filter(|n| (min..=max).contains(n))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "{key} must be a whole number from {min} to {max}, not '{text}'"
            ))
        })
}

impl Params {
    fn parse(q: &HashMap<String, String>) -> ApiResult<Params> {
        let from = number(q, "from", 0, (0, u64::MAX))?;
        let count = number(q, "count", DEFAULT_COUNT, (0, MAX_COUNT))?;
        let truncate = number(q, "truncate", DEFAULT_TRUNCATE, (0, u64::MAX))?;
        let base64_always = match q.get("encoding").map(String::as_str) {
            None | Some("auto") => false,
            Some("base64") => true,
            Some(_) => {
                return Err(ApiError::bad_request(
                    "Unsupported encoding. Please use auto or base64.",
                ))
            }
        };
        let limit = number(
            q,
            "search_limit",
            DEFAULT_SEARCH_LIMIT,
            (1, MAX_SEARCH_LIMIT),
        )?;
        let search = match q.get("search").filter(|s| !s.is_empty()) {
            Some(text) => Some((text.clone(), Needle::new(text)?, limit)),
            None => None,
        };
        Ok(Params {
            from,
            count,
            truncate,
            base64_always,
            search,
        })
    }

    /// How many messages from `from` the browse covers.
    fn span(&self) -> u64 {
        self.search
            .as_ref()
            .map_or(self.count, |(_, _, limit)| *limit)
    }

    /// The messages to answer with, and how many were looked at. Reads page files:
    /// runs on a blocking thread.
    fn collect(&self, seen: &Browse) -> (Vec<Value>, u64) {
        let (mut out, mut scanned) = (Vec::new(), 0);
        let mut budget = MAX_ANSWER_PAYLOAD;
        if self.count == 0 {
            return (out, 0);
        }
        seen.read(&mut |position, item| {
            scanned += 1;
            let wanted = match &self.search {
                Some((_, needle, _)) => needle.matches(&item),
                None => true,
            };
            if wanted {
                let shown = self.truncate.min(budget);
                budget -= shown.min(item.msg.body().len() as u64);
                let mut m = message_json(&item, Some(shown), self.base64_always);
                m.insert("position".into(), json!(position));
                out.push(Value::Object(m));
            }
            (out.len() as u64) < self.count && budget > 0
        });
        (out, scanned)
    }
}

async fn browse(
    State(api): State<Api>,
    caller: Caller,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let (vhost, name) = segments(path)?;
    let v = acting_vhost(&api, &caller, &vhost)?;
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let params = Params::parse(&query)?;
    permit(
        &api,
        &caller,
        &vhost,
        Resource::Queue,
        &name,
        Permission::Read,
    )
    .map_err(get_refused)?;
    let queue = v.queue_any(&name).ok_or_else(ApiError::not_found)?;
    // As a get from the API: another connection's exclusive queue is locked.
    queue.check_exclusive(API_CONNECTION).map_err(get_refused)?;
    let from = usize::try_from(params.from).unwrap_or(usize::MAX);
    let seen = queue.browse(from, params.span() as usize);
    let ready = seen.ready;
    let params = std::sync::Arc::new(params);
    let p = params.clone();
    let (messages, scanned) = tokio::task::spawn_blocking(move || p.collect(&seen))
        .await
        .map_err(|_| ApiError::internal("browse failed"))?;
    let mut answer = json!({
        "vhost": vhost,
        "queue": name,
        "messages_ready": ready,
        "from": params.from,
        "messages": messages,
    });
    if let Some((text, _, _)) = &params.search {
        answer["search"] = json!(text);
        answer["scanned"] = json!(scanned);
    }
    Ok(Json(answer))
}
