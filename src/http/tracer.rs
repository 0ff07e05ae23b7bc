//! The message tracer over HTTP (warren's own; RabbitMQ has no such endpoint, and its
//! rabbitmq_tracing plugin's `/api/traces` is left alone): `POST /api/tracer/{vhost}`
//! starts a trace on an exchange or a queue, `GET /api/tracer` lists the traces the
//! caller may see, `GET /api/tracer/{vhost}/{id}?since=SEQ` reads one with the events
//! after `since`, `DELETE /api/tracer/{vhost}/{id}` stops and forgets it.
//!
//! Called by the router. The traces live in each vhost's `Tracing`
//! (`broker::tracer`); this module checks bodies, bounds and access, and builds JSON
//! from what a trace copied, after its lock was released. It never holds a broker lock
//! across an `.await`.

use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::objects::properties;
use super::objects::{acting_vhost, object_body, permit_change, refused, segments, visible_vhost};
use super::Api;
use crate::access::permissions::{Permission, Resource};
use crate::broker::message::Message;
use crate::broker::tracer::{
    Bounds, Event, Kind, Snapshot, Target, Trace, MAX_MESSAGES, MAX_PAYLOAD_BYTES, MAX_SECONDS,
    MAX_TRACES,
};
use crate::broker::vhost::{canonical_exchange, server_generated_name, VHost};
use crate::error::Exception;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::Mutex;

/// Events one read returns at most; a reader asks again with `since` (`"more": true`).
pub const MAX_EVENTS_PER_READ: usize = 1000;
/// Payload bytes one read returns at most (at least one event is always returned).
pub const MAX_PAYLOAD_PER_READ: usize = 4 * 1024 * 1024;

/// Starts are counted and made one at a time, so two at once cannot pass the limit.
static STARTING: Mutex<()> = Mutex::new(());

pub fn routes() -> Router<Api> {
    Router::new()
        .route("/api/tracer", get(list))
        .route("/api/tracer/{vhost}", post(start))
        .route("/api/tracer/{vhost}/{id}", get(read).delete(delete))
}

/// An optional whole-number field within `min..=max`, `default` when absent.
fn bounded(
    body: &Map<String, Value>,
    key: &str,
    default: u64,
    min: u64,
    max: u64,
) -> ApiResult<u64> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(v) => v
            .as_u64()
            .filter(|n| (min..=max).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(format!("{key} must be an integer from {min} to {max}"))
            }),
    }
}

/// The exchange or queue the body names (exactly one of them, a string).
fn named_target(body: &Map<String, Value>) -> ApiResult<(Resource, String)> {
    let field = |key: &str| match body.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ApiError::bad_request(format!("{key} must be a string"))),
    };
    match (field("exchange")?, field("queue")?) {
        (Some(x), None) => Ok((Resource::Exchange, x)),
        (None, Some(q)) => Ok((Resource::Queue, q)),
        _ => Err(ApiError::bad_request(
            "give exactly one of \"exchange\" or \"queue\"",
        )),
    }
}

/// Every trace in the broker, after sweeping out expired ones.
fn trace_count(api: &Api) -> usize {
    api.broker
        .list_vhosts()
        .iter()
        .filter_map(|v| api.broker.vhost(&v.name))
        .map(|v| v.tracing.sweep().len())
        .sum()
}

async fn start(
    State(api): State<Api>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let vhost = segments(path)?;
    let v = acting_vhost(&api, &caller, &vhost)?;
    let body = object_body(body)?;
    let (resource, name) = named_target(&body)?;
    let bounds = Bounds {
        max_messages: bounded(&body, "max_messages", 100, 1, MAX_MESSAGES as u64)? as usize,
        payload_bytes: bounded(&body, "payload_bytes", 256, 0, MAX_PAYLOAD_BYTES as u64)? as usize,
        seconds: bounded(&body, "seconds", 600, 1, MAX_SECONDS)?,
    };
    // Watching messages is reading them: as a queue bound to the exchange would, or as
    // basic.get from the queue.
    permit_change(&api, &caller, &vhost, resource, &name, Permission::Read)?;
    let target = match resource {
        Resource::Exchange => {
            let name = canonical_exchange(&name);
            if !name.is_empty() && v.exchange_kind(name).is_none() {
                return Err(refused(Exception::not_found(format!(
                    "no exchange '{name}' in vhost '{vhost}'"
                ))));
            }
            Target::Exchange(name.to_owned())
        }
        _ => {
            let q = v.queue_any(&name).ok_or_else(|| {
                refused(Exception::not_found(format!(
                    "no queue '{name}' in vhost '{vhost}'"
                )))
            })?;
            Target::Queue { name, id: q.id }
        }
    };
    let trace = {
        let _one_at_a_time = STARTING.lock().unwrap_or_else(|e| e.into_inner());
        if trace_count(&api) >= MAX_TRACES {
            return Err(ApiError::bad_request(format!(
                "too many traces: a broker keeps at most {MAX_TRACES}; delete one first"
            )));
        }
        let id = server_generated_name("trace-");
        v.tracing.start(id, &vhost, target, bounds)
    };
    let snapshot = trace.read(u64::MAX, api.broker.clock.now_ms(), &mut |_| {});
    let body = trace_json(&trace, &snapshot);
    Ok((StatusCode::CREATED, Json(Value::Object(body))).into_response())
}

async fn list(State(api): State<Api>, caller: Caller) -> ApiResult<Json<Value>> {
    let now = api.broker.clock.now_ms();
    let mut all = Vec::new();
    for info in caller.seen_vhosts(&api) {
        let Some(v) = api.broker.vhost(&info.name) else {
            continue;
        };
        for t in v.tracing.sweep() {
            check_target(&v, &t);
            let snapshot = t.read(u64::MAX, now, &mut |_| {});
            all.push(Value::Object(trace_json(&t, &snapshot)));
        }
    }
    Ok(Json(Value::Array(all)))
}

/// Ends a trace whose exchange or queue was deleted (by any path: a delete, an
/// auto-delete, an exclusive owner closing): a queue of the same name declared since
/// is another queue.
fn check_target(v: &VHost, t: &Trace) {
    let alive = match &t.target {
        Target::Exchange(name) => name.is_empty() || v.exchange_kind(name).is_some(),
        Target::Queue { name, id } => v.queue_any(name).is_some_and(|q| q.id == *id),
    };
    v.tracing.check_target(t, alive);
}

async fn read(
    State(api): State<Api>,
    caller: Caller,
    path: Result<Path<(String, String)>, PathRejection>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Json<Value>> {
    let (vhost, id) = segments(path)?;
    let v = visible_vhost(&api, &caller, &vhost)?;
    let since = match query.get("since") {
        None => 0,
        Some(s) => s
            .parse::<u64>()
            .map_err(|_| ApiError::bad_request("since must be a non-negative integer"))?,
    };
    let trace = v.tracing.get(&id).ok_or_else(ApiError::not_found)?;
    check_target(&v, &trace);
    let mut events = Vec::new();
    let (mut bytes, mut more) = (0, false);
    let snapshot = trace.read(since, api.broker.clock.now_ms(), &mut |e| {
        let full = events.len() >= MAX_EVENTS_PER_READ
            || (!events.is_empty() && bytes + e.payload.len() > MAX_PAYLOAD_PER_READ);
        if more || full {
            more = true;
            return;
        }
        bytes += e.payload.len();
        events.push(event_json(e));
    });
    let mut body = trace_json(&trace, &snapshot);
    body.insert("more".into(), json!(more));
    body.insert("events".into(), Value::Array(events));
    Ok(Json(Value::Object(body)))
}

async fn delete(
    State(api): State<Api>,
    caller: Caller,
    path: Result<Path<(String, String)>, PathRejection>,
) -> ApiResult<Response> {
    let (vhost, id) = segments(path)?;
    let v = acting_vhost(&api, &caller, &vhost)?;
    if !v.tracing.delete(&id) {
        return Err(ApiError::not_found());
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// A trace without its events.
fn trace_json(t: &Trace, s: &Snapshot) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("id".into(), json!(t.id));
    m.insert("vhost".into(), json!(t.vhost));
    match &t.target {
        Target::Exchange(name) => m.insert("exchange".into(), json!(name)),
        Target::Queue { name, .. } => m.insert("queue".into(), json!(name)),
    };
    m.insert("active".into(), json!(s.stopped.is_none()));
    m.insert(
        "stop_reason".into(),
        s.stopped.map_or(Value::Null, |why| json!(why.as_str())),
    );
    m.insert("captured".into(), json!(s.captured));
    m.insert("max_messages".into(), json!(t.bounds.max_messages));
    m.insert("payload_bytes".into(), json!(t.bounds.payload_bytes));
    m.insert("seconds".into(), json!(t.bounds.seconds));
    m.insert("started".into(), json!(t.started));
    m.insert("expires_in".into(), json!(s.expires_in));
    m
}

/// One captured message, its properties and payload as `get` shows them.
fn event_json(e: &Event) -> Value {
    let properties = match &e.properties {
        Some(raw) => Message::new("", "", raw, &[])
            .decode_properties()
            .map_or_else(|| json!({}), |p| properties::decode(&p)),
        None => json!({}),
    };
    let (payload, encoding) = preview(&e.payload);
    let (event, consumer_tag, redelivered) = match &e.kind {
        Kind::Publish => ("publish", None, None),
        Kind::Deliver {
            consumer_tag,
            redelivered,
        } => ("deliver", consumer_tag.as_deref(), Some(*redelivered)),
    };
    let mut m = json!({
        "seq": e.seq,
        "event": event,
        "timestamp": e.timestamp,
        "exchange": e.exchange,
        "routing_key": e.routing_key,
        "properties": properties,
        "properties_truncated": e.properties.is_none(),
        "payload": payload,
        "payload_bytes": e.payload_bytes,
        "payload_encoding": encoding,
        "payload_truncated": e.payload.len() < e.payload_bytes,
        "routed_to": e.routed_to,
        "routed_count": e.routed_count,
        "unroutable": event == "publish" && e.routed_count == 0,
        "origin": e.origin,
        "connection": e.connection,
        "channel": e.channel,
    });
    if event == "deliver" {
        m["consumer_tag"] = json!(consumer_tag);
        m["redelivered"] = json!(redelivered);
    }
    m
}

/// A payload preview as text when it is UTF-8 (a character the cut split in two is
/// left out), base64 otherwise.
fn preview(bytes: &[u8]) -> (String, &'static str) {
    let text = match std::str::from_utf8(bytes) {
        Ok(t) => Some(t),
        // Only the end is incomplete: the cut fell inside a character.
        Err(e) if e.error_len().is_none() => std::str::from_utf8(&bytes[..e.valid_up_to()]).ok(),
        Err(_) => None,
    };
    match text {
        Some(t) => (t.to_owned(), "string"),
        None => (
            base64::engine::general_purpose::STANDARD.encode(bytes),
            "base64",
        ),
    }
}
