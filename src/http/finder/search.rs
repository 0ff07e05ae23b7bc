//! `GET /api/search?q=TEXT&limit=10`: queues, exchanges, connections and users whose
//! name holds TEXT (ignoring case), across every vhost the caller sees; each list
//! stops at `limit` (at most `MAX_LIMIT`), in vhost then name order.
//!
//! Called by the router for the web UI's search box. It sees what the list endpoints
//! show the caller: queues and exchanges of the vhosts they may see, their own
//! connections unless monitoring, users only for administrators. Names are matched on
//! owned snapshots (`Arc`s and names, no JSON of everything); only the hits become
//! JSON, and a queue's lock is taken only for a hit's counts.

use crate::broker::vhost::VHost;
use crate::http::auth::Caller;
use crate::http::connections::sees;
use crate::http::error::{ApiError, ApiResult};
use crate::http::Api;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::collections::HashMap;
use std::sync::Arc;

/// The most hits of each kind one answer holds.
pub const MAX_LIMIT: usize = 100;
const DEFAULT_LIMIT: usize = 10;
/// The longest search text taken, in bytes.
const MAX_QUERY: usize = 256;

pub(super) fn routes() -> Router<Api> {
    Router::new().route("/api/search", get(search))
}

/// A name test that ignores case (Unicode lowercase on both sides).
struct Text(String);

impl Text {
    fn finds(&self, name: &str) -> bool {
        if self.0.is_empty() {
            return true;
        }
        if name.is_ascii() && self.0.is_ascii() {
            // The common case, without an allocation per name.
            return name
                .as_bytes()
                .windows(self.0.len())
                .any(|w| w.eq_ignore_ascii_case(self.0.as_bytes()));
        }
        name.to_lowercase().contains(&self.0)
    }
}

async fn search(
    State(api): State<Api>,
    caller: Caller,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
) -> ApiResult<Json<Value>> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let q = query.get("q").map(String::as_str).unwrap_or_default();
    if q.len() > MAX_QUERY {
        return Err(ApiError::bad_request(format!(
            "q must be at most {MAX_QUERY} bytes"
        )));
    }
    let limit = match query.get("limit") {
        None => DEFAULT_LIMIT,
        Some(text) => text
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "limit must be a whole number from 1 to {MAX_LIMIT}, not '{text}'"
                ))
            })?,
    };
    let text = Text(q.to_lowercase());
    Ok(Json(json!({
        "queues": queues(&api, &caller, &text, limit),
        "exchanges": exchanges(&api, &caller, &text, limit),
        "connections": connections(&api, &caller, &text, limit),
        "users": users(&api, &caller, &text, limit),
    })))
}

/// Every object `list` gives of each vhost the caller sees, vhost by vhost, with the
/// vhost's name; lazily, so a search that reached its limit lists no further vhost.
fn in_seen_vhosts<'a, T: 'a>(
    api: &'a Api,
    caller: &Caller,
    list: impl Fn(&VHost) -> Vec<T> + 'a,
) -> impl Iterator<Item = (Arc<str>, T)> + 'a {
    caller
        .seen_vhosts(api)
        .into_iter()
        .filter_map(|vhost| api.broker.vhost(&vhost.name))
        .flat_map(move |v| {
            let name: Arc<str> = Arc::from(v.name.as_str());
            list(&v).into_iter().map(move |item| (name.clone(), item))
        })
}

fn queues(api: &Api, caller: &Caller, text: &Text, limit: usize) -> Vec<Value> {
    in_seen_vhosts(api, caller, VHost::queue_list)
        .filter(|(_, q)| text.finds(q.name.as_str()))
        .take(limit)
        .map(|(vhost, q)| {
            let (messages, consumers) = q.counts();
            json!({
                "vhost": &*vhost,
                "name": q.name.as_str(),
                "messages": messages,
                "consumers": consumers,
            })
        })
        .collect()
}

fn exchanges(api: &Api, caller: &Caller, text: &Text, limit: usize) -> Vec<Value> {
    in_seen_vhosts(api, caller, VHost::exchange_infos)
        // The default exchange has no name to find it by.
        .filter(|(_, x)| !x.name.is_empty() && text.finds(&x.name))
        .take(limit)
        .map(|(vhost, x)| json!({"vhost": &*vhost, "name": x.name, "type": x.kind.name()}))
        .collect()
}

fn connections(api: &Api, caller: &Caller, text: &Text, limit: usize) -> Vec<Value> {
    api.broker
        .stats
        .connections()
        .iter()
        .filter(|c| sees(caller, c) && text.finds(&c.info.name))
        .take(limit)
        .map(|c| {
            let props = &c.info.client_properties;
            let client = [props.get("product"), props.get("version")]
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(" ");
            json!({
                "name": c.info.name,
                "user": c.info.user,
                "vhost": c.info.vhost,
                "client": (!client.is_empty()).then_some(client),
            })
        })
        .collect()
}

fn users(api: &Api, caller: &Caller, text: &Text, limit: usize) -> Vec<Value> {
    if !caller.is_administrator() {
        return Vec::new();
    }
    api.broker
        .users()
        .list()
        .into_iter()
        .filter(|u| text.finds(&u.name))
        .take(limit)
        .map(|u| json!({"name": u.name, "tags": u.tags}))
        .collect()
}
