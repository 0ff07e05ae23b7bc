//! Messages over HTTP: `POST /api/exchanges/{vhost}/{name}/publish` and
//! `POST /api/queues/{vhost}/{name}/get`.
//!
//! Called by the router. A publish is checked (write on the exchange, topic write on
//! the key, user_id) and routed exactly as a channel's, through `VHost::route`, the
//! message store and `Queue::publish`; for a persistent message in a durable queue the
//! answer waits for the fsync, as a confirm would. A get takes messages from the queue
//! through `Queue::get`, the way basic.get does, and then settles them or puts them
//! back (redelivered) as the ack mode says; messages taken and not yet settled are held
//! by a guard that puts them back if the request is dropped midway, so none is lost or
//! duplicated.

use super::properties;
use super::{object_body, permit, permit_topic, required, segments};
use crate::access::permissions::{Permission, Resource};
use crate::broker::consumer::ConnectionHandle;
use crate::broker::exchange::sender;
use crate::broker::message::Message;
use crate::broker::persist::store_message;
use crate::broker::queue::{Get, Queue, Queued};
use crate::broker::tracer::{Delivery, Origin};
use crate::broker::vhost::canonical_exchange;
use crate::error::{Exception, ReplyCode};
use crate::http::auth::Caller;
use crate::http::error::{ApiError, ApiResult};
use crate::http::Api;
use crate::store::Done;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use base64::Engine;
use serde_json::{json, Map, Value};
use std::sync::Arc;

pub(super) fn routes() -> Router<Api> {
    Router::new()
        .route("/api/exchanges/{vhost}/{name}/publish", post(publish))
        .route("/api/queues/{vhost}/{name}/get", post(get))
}

/// A publish the broker refused, as the management plugin answers it: 400 with the
/// AMQP code and text (`404 NOT_FOUND - no exchange 'x' in vhost '/'`).
fn publish_refused(e: Exception) -> ApiError {
    ApiError::bad_request(format!("{} {}", e.code as u16, e.text))
}

async fn publish(
    State(api): State<Api>,
    caller: Caller,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let (vhost, name) = segments(path)?;
    let v = super::acting_vhost(&api, &caller, &vhost)?;
    let body = object_body(body)?;
    let key = match required(&body, "routing_key")? {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let payload = required(&body, "payload")?;
    let encoding = required(&body, "payload_encoding")?;
    let props = match required(&body, "properties")? {
        Value::Object(m) => m.clone(),
        _ => Map::new(),
    };
    let Value::String(payload) = payload else {
        return Err(ApiError::bad_request("payload_not_string"));
    };
    let payload = match encoding.as_str() {
        Some("string") => payload.as_bytes().to_vec(),
        Some("base64") => base64::engine::general_purpose::STANDARD
            .decode(payload.as_bytes())
            .map_err(|_| ApiError::bad_request_term("not_base64", json!(payload)))?,
        _ => {
            return Err(ApiError::bad_request_term(
                "unsupported_encoding",
                encoding.clone(),
            ))
        }
    };
    if key.len() > 255 {
        return Err(publish_refused(Exception::new(
            ReplyCode::SyntaxError,
            "routing key longer than 255 bytes",
        )));
    }
    if payload.len() as u64 > api.broker.max_message_size {
        return Err(publish_refused(Exception::precondition_failed(format!(
            "message size {} is larger than configured max size {}",
            payload.len(),
            api.broker.max_message_size
        ))));
    }
    let raw = properties::encode(&props)?;
    let exchange = canonical_exchange(&name);
    permit(
        &api,
        &caller,
        &vhost,
        Resource::Exchange,
        exchange,
        Permission::Write,
    )
    .and_then(|()| permit_topic(&api, &caller, &v, exchange, &key, Permission::Write))
    .map_err(publish_refused)?;
    if let Some(user_id) = props.get("user_id").and_then(Value::as_str) {
        if user_id != caller.name {
            return Err(publish_refused(Exception::precondition_failed(format!(
                "user_id property set to '{user_id}' but authenticated user was '{}'",
                caller.name
            ))));
        }
    }
    if let Some(expiration) = props.get("expiration").and_then(Value::as_str) {
        crate::broker::arguments::parse_expiration(expiration).map_err(publish_refused)?;
    }
    // CC and BCC as on a channel: checked, BCC cut out, all of them routing.
    let routes = sender::scan(&raw)
        .map_err(publish_refused)?
        .unwrap_or_default();
    let raw = routes.stripped.map_or(raw, |b| b.to_vec());
    let msg = Message::new(exchange, &key, &raw, &payload);
    let mut targets: Vec<Arc<Queue>> = Vec::new();
    let held = v
        .route_keys(exchange, &msg, &routes.keys, &mut targets)
        .map_err(publish_refused)?;
    v.tracing.published(&msg, &targets, || Origin::Management);
    // A delayed exchange that took it routes it later: routed, as far as the caller knows.
    let routed = !targets.is_empty() || held.count > 0;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let done = Done::new(move |id| {
        let _ = tx.send(id.is_some());
    });
    let store_id = store_message(&msg, &targets, Some(done));
    let sharers = targets.len();
    for queue in targets {
        queue.publish(msg.clone(), store_id, sharers);
    }
    // A persistent message in a durable queue: answer once it is on disk.
    if store_id != 0 && !rx.await.unwrap_or(false) {
        return Err(ApiError::internal(
            "the message store failed to write the message",
        ));
    }
    Ok(Json(json!({"routed": routed})))
}

/// What a get does with the messages it took.
#[derive(Clone, Copy, PartialEq, Eq)]
enum AckMode {
    Requeue,
    Ack,
    Reject,
}

/// Messages taken from a queue and not yet settled or put back: put back
/// (redelivered) if the request ends before it decides.
struct Taken {
    queue: Arc<Queue>,
    items: Vec<Queued>,
}

impl Drop for Taken {
    fn drop(&mut self) {
        if !self.items.is_empty() {
            self.queue.requeue(std::mem::take(&mut self.items));
        }
    }
}

/// A get the broker refused, as the management plugin answers it.
pub(crate) fn get_refused(e: Exception) -> ApiError {
    match e.code {
        ReplyCode::NotFound => ApiError::new(StatusCode::NOT_FOUND, "not_found", e.text),
        ReplyCode::AccessRefused => ApiError::not_authorised(e.text),
        _ => publish_refused(e),
    }
}

/// A count as RabbitMQ reads it: a JSON number, or a string of digits (rabbitmqadmin
/// sends `"count": "1"`).
fn whole_number(v: &Value) -> Option<u64> {
    v.as_u64().or_else(|| v.as_str()?.trim().parse().ok())
}

async fn get(
    State(api): State<Api>,
    caller: Caller,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<Value>> {
    let (vhost, name) = segments(path)?;
    let v = super::acting_vhost(&api, &caller, &vhost)?;
    let body = object_body(body)?;
    let count = whole_number(required(&body, "count")?)
        .ok_or_else(|| ApiError::bad_request_term("not_int", json!("count")))?;
    let mode = match required(&body, "ackmode")?.as_str() {
        Some("ack_requeue_true") | Some("reject_requeue_true") => AckMode::Requeue,
        Some("ack_requeue_false") => AckMode::Ack,
        Some("reject_requeue_false") => AckMode::Reject,
        _ => {
            return Err(ApiError::bad_request_term(
                "unknown_ackmode",
                body["ackmode"].clone(),
            ))
        }
    };
    let base64_always = match required(&body, "encoding")?.as_str() {
        Some("auto") => false,
        Some("base64") => true,
        _ => {
            return Err(ApiError::bad_request(
                "Unsupported encoding. Please use auto or base64.",
            ))
        }
    };
    let truncate = match body.get("truncate") {
        None | Some(Value::Null) => None,
        Some(t) => Some(
            whole_number(t)
                .ok_or_else(|| ApiError::bad_request_term("not_int", json!("truncate")))?,
        ),
    };
    permit(
        &api,
        &caller,
        &vhost,
        Resource::Queue,
        &name,
        Permission::Read,
    )
    .map_err(get_refused)?;
    let queue = v.queue_any(&name).ok_or_else(|| {
        get_refused(Exception::not_found(format!(
            "no queue '{name}' in vhost '{vhost}'"
        )))
    })?;
    // Like basic.get on a connection of the API's own: another connection's exclusive
    // queue is locked.
    let (outbox, mut ready) = tokio::sync::mpsc::unbounded_channel();
    let handle = ConnectionHandle::new(api.broker.next_connection_id(), outbox);
    queue.check_exclusive(handle.id).map_err(get_refused)?;
    let mut taken = Taken {
        queue: queue.clone(),
        items: Vec::new(),
    };
    let mut answer = Vec::new();
    while (answer.len() as u64) < count {
        let (item, remaining) = match queue.get(&handle, 0, true) {
            Get::Message(item, remaining) => (item, remaining),
            Get::Empty => break,
            // The head is on its way back from a page file; the queue says when.
            Get::Wait => {
                if ready.recv().await.is_none() {
                    break;
                }
                continue;
            }
        };
        v.tracing.delivered(&queue, &item.msg, || Delivery {
            consumer_tag: None,
            redelivered: item.redelivered,
            origin: Origin::Management,
        });
        let mut json = message_json(&item, truncate, base64_always);
        json.insert("message_count".into(), json!(remaining));
        answer.push(Value::Object(json));
        if mode == AckMode::Requeue {
            queue.delivered(&item);
        }
        taken.items.push(item);
    }
    let items = std::mem::take(&mut taken.items);
    match mode {
        AckMode::Requeue => queue.requeue(items),
        AckMode::Ack => items.iter().for_each(|item| queue.acked(item)),
        AckMode::Reject => items.into_iter().for_each(|item| queue.rejected(item)),
    }
    Ok(Json(Value::Array(answer)))
}

/// One message as `get` answers it, less `message_count` (a browse shows the same).
pub(crate) fn message_json(
    item: &Queued,
    truncate: Option<u64>,
    base64_always: bool,
) -> Map<String, Value> {
    let body = item.msg.body();
    let shown = match truncate {
        Some(t) if (t as usize) < body.len() => &body[..t as usize],
        _ => body,
    };
    let (payload, encoding) = match std::str::from_utf8(shown) {
        Ok(text) if !base64_always => (text.to_owned(), "string"),
        _ => (
            base64::engine::general_purpose::STANDARD.encode(shown),
            "base64",
        ),
    };
    let props = item
        .msg
        .decode_properties()
        .map_or_else(|| json!({}), |p| properties::decode(&p));
    let mut m = Map::new();
    m.insert("payload_bytes".into(), json!(body.len()));
    m.insert("redelivered".into(), json!(item.redelivered));
    m.insert("exchange".into(), json!(item.msg.exchange()));
    m.insert("routing_key".into(), json!(item.msg.routing_key()));
    m.insert("properties".into(), props);
    m.insert("payload".into(), json!(payload));
    m.insert("payload_encoding".into(), json!(encoding));
    m
}
