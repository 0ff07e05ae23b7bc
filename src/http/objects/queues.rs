//! `/api/queues...`: list, get, declare (PUT), delete (if-empty, if-unused), purge
//! (DELETE contents), a queue's bindings, and the mirroring actions.
//!
//! Called by the router. Changes go through the vhost's functions after the caller's
//! permission checks (configure to declare or delete, read to purge). The figures
//! come from `Queue::figures`, read one queue at a time after the topology snapshot.

use super::{
    acting_vhost, arguments, check_name, flag, listed_vhosts, object_body, permit_change,
    permit_named_exchange, query_flag, refused, segments, visible_vhost, API_CONNECTION,
};
use crate::access::permissions::{Permission, Resource};
use crate::broker::arguments::QueueType;
use crate::broker::queue::{Queue, QueueFigures};
use crate::broker::vhost::QueueDeclare;
use crate::channel::authorize::exchange_argument;
use crate::http::auth::Caller;
use crate::http::error::{ApiError, ApiResult};
use crate::http::list::{ListQuery, Row};
use crate::http::Api;
use crate::store::fieldvalue::{json_to_table, table_to_json};
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use std::collections::HashMap;
use std::sync::Arc;

pub(super) fn routes() -> Router<Api> {
    Router::new()
        .route("/api/queues", get(list_all))
        .route("/api/queues/{vhost}", get(list_vhost))
        .route(
            "/api/queues/{vhost}/{name}",
            get(get_one).put(declare).delete(delete_queue),
        )
        .route("/api/queues/{vhost}/{name}/bindings", get(bindings))
        .route("/api/queues/{vhost}/{name}/contents", delete(purge))
        .route("/api/queues/{vhost}/{name}/actions", post(actions))
}

/// One queue as the API shows it in lists. The one place a queue's JSON is built:
/// statistics (`message_stats`, `*_details` rates, unacknowledged counts) and
/// policies (`policy`, `operator_policy`, `effective_policy_definition`) are set here.
pub fn queue_json(api: &Api, q: &Queue, f: &QueueFigures) -> Map<String, Value> {
    let kind = match QueueType::of(&q.arguments) {
        QueueType::Classic => "classic",
        QueueType::Quorum => "quorum",
        QueueType::Stream => "stream",
    };
    let consumers = f.consumers.len();
    let exclusive_tag = f
        .consumers
        .iter()
        .find(|c| c.exclusive)
        .map(|c| c.tag.clone());
    let rate = || json!({"rate": 0.0});
    let mut m = Map::new();
    let mut put = |k: &str, v: Value| {
        m.insert(k.to_owned(), v);
    };
    put("name", json!(q.name.as_str()));
    put("vhost", json!(q.vhost));
    put("durable", json!(q.durable));
    put("auto_delete", json!(q.auto_delete));
    put("exclusive", json!(q.exclusive_owner.is_some()));
    // A cluster node's own bookkeeping (where a classic queue lives) is not an argument
    // a client gave: the API shows it as the queue's node.
    let mut arguments = table_to_json(&q.arguments);
    if let Some(a) = arguments.as_object_mut() {
        a.remove(crate::broker::replica::HOME_ARG);
    }
    put("arguments", arguments);
    put("type", json!(kind));
    put("state", json!("running"));
    put("node", json!(api.node.name));
    let (messages, bytes) = (
        f.messages_ready + f.messages_unacked,
        f.bytes_ready + f.bytes_unacked,
    );
    put("messages", json!(messages));
    put("messages_details", rate());
    put("messages_ready", json!(f.messages_ready));
    put("messages_ready_details", rate());
    put("messages_unacknowledged", json!(f.messages_unacked));
    put("messages_unacknowledged_details", rate());
    // As RabbitMQ's classic queues: in RAM is what is not on disk (unacked messages
    // always are), paged out is what is on disk and not in the message store.
    let ready_ram = f.messages_ready.saturating_sub(f.messages_paged);
    let bytes_ram = f.bytes_ready.saturating_sub(f.bytes_paged) + f.bytes_unacked;
    put("messages_ram", json!(ready_ram + f.messages_unacked));
    put("messages_ready_ram", json!(ready_ram));
    put("messages_unacknowledged_ram", json!(f.messages_unacked));
    put("messages_persistent", json!(f.messages_persistent));
    put("messages_paged_out", json!(f.messages_paged_out));
    put("message_bytes", json!(bytes));
    put("message_bytes_ready", json!(f.bytes_ready));
    put("message_bytes_unacknowledged", json!(f.bytes_unacked));
    put("message_bytes_ram", json!(bytes_ram));
    put("message_bytes_persistent", json!(f.bytes_persistent));
    put("message_bytes_paged_out", json!(f.bytes_paged_out));
    put("consumers", json!(consumers));
    let utilisation = if consumers > 0 { json!(1.0) } else { json!(0) };
    put("consumer_capacity", utilisation.clone());
    put("consumer_utilisation", utilisation);
    put("memory", json!(0));
    if consumers == 0 {
        put(
            "idle_since",
            json!(crate::http::views::iso8601(f.last_used_ms)),
        );
    }
    put("exclusive_consumer_tag", json!(exclusive_tag));
    put("single_active_consumer_tag", json!(f.single_active_tag));
    put("head_message_timestamp", Value::Null);
    put("recoverable_slaves", Value::Null);
    if let Some(stream) = &q.stream {
        // RabbitMQ's stream fields on one node: the members, those online, and how many
        // readers (consumers) each member serves.
        let node = api.node.name.clone();
        put("members", json!([node]));
        put("online", json!([node]));
        put("readers", json!({ node: stream.readers() }));
    }
    if let Some(r) = q.replica() {
        // A quorum queue on a cluster node: where it is led, its members and those
        // this node is linked to, as RabbitMQ's quorum queues show them.
        let (leader, members, online) = r.placement();
        if !r.serves() {
            // This node's copy passes deliveries on; the log holds the messages.
            let held = r.held(q);
            m.insert("messages".into(), json!(held));
            m.insert("messages_ready".into(), json!(held));
        }
        if let Some(leader) = &leader {
            m.insert("node".into(), json!(leader));
        }
        m.insert("leader".into(), json!(leader));
        m.insert("members".into(), json!(members));
        m.insert("online".into(), json!(online));
    }
    q.applied_policy().queue_fields(&mut m);
    crate::stats::json::fill_queue(&api.broker.stats, q, &mut m);
    m
}

/// The single GET's extras: each consumer, the exclusive owner's connection (RabbitMQ's
/// `owner_pid_details`, which the UI links to), and the (empty) per-publisher figures.
fn connection_details(api: &Api, q: &Queue, f: &QueueFigures, m: &mut Map<String, Value>) {
    let connections: HashMap<u64, _> = api
        .broker
        .stats
        .connections()
        .into_iter()
        .map(|c| (c.id, c))
        .collect();
    if let Some(owner) = q.exclusive_owner.and_then(|id| connections.get(&id)) {
        m.insert(
            "owner_pid_details".into(),
            json!({
                "name": owner.info.name,
                "peer_host": owner.info.peer.ip().to_string(),
                "peer_port": owner.info.peer.port(),
            }),
        );
    }
    let list: Vec<Value> = f
        .consumers
        .iter()
        .map(|c| {
            json!({
                "consumer_tag": c.tag,
                "exclusive": c.exclusive,
                "ack_required": c.ack_required,
                "prefetch_count": c.prefetch,
                "active": f.single_active_tag.as_ref().is_none_or(|t| *t == c.tag),
                "activity_status": "up",
                "arguments": if c.priority != 0 { json!({"x-priority": c.priority}) } else { json!({}) },
                "channel_details": match connections.get(&c.connection) {
                    Some(conn) => json!({
                        "connection_name": conn.info.name,
                        "name": format!("{} ({})", conn.info.name, c.channel),
                        "node": api.node.name,
                        "number": c.channel,
                        "peer_host": conn.info.peer.ip().to_string(),
                        "peer_port": conn.info.peer.port(),
                        "user": conn.info.user,
                    }),
                    None => json!({"number": c.channel}),
                },
                "queue": {"name": q.name.as_str(), "vhost": q.vhost},
            })
        })
        .collect();
    m.insert("consumer_details".into(), Value::Array(list));
}

async fn list_all(
    State(api): State<Api>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    list(&api, &caller, None, &q)
}

async fn list_vhost(
    State(api): State<Api>,
    caller: Caller,
    path: Result<Path<String>, PathRejection>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let vhost = segments(path)?;
    list(&api, &caller, Some(&vhost), &q)
}

fn list(api: &Api, caller: &Caller, vhost: Option<&str>, q: &ListQuery) -> ApiResult<Json<Value>> {
    let mut rows = Vec::new();
    for v in listed_vhosts(api, caller, vhost)? {
        rows.extend(
            v.queue_list()
                .into_iter()
                .map(|queue| QueueRow { api, queue }),
        );
    }
    Ok(Json(q.respond_rows(rows)?))
}

/// A queue in a list: its JSON is built only if its page is shown.
struct QueueRow<'a> {
    api: &'a Api,
    queue: Arc<Queue>,
}

impl Row for QueueRow<'_> {
    fn name(&self) -> &str {
        self.queue.name.as_str()
    }

    /// The keys a list is usually sorted by, read without building the JSON (the
    /// message counts take the queue's lock once each).
    fn sort_key(&self, path: &[&str]) -> Option<Value> {
        let q = &self.queue;
        let figures = || q.figures();
        Some(match path {
            ["name"] => json!(q.name.as_str()),
            ["vhost"] => json!(q.vhost),
            ["durable"] => json!(q.durable),
            ["auto_delete"] => json!(q.auto_delete),
            ["exclusive"] => json!(q.exclusive_owner.is_some()),
            ["messages"] => {
                let f = figures();
                json!(f.messages_ready + f.messages_unacked)
            }
            ["messages_ready"] => json!(figures().messages_ready),
            ["messages_unacknowledged"] => json!(figures().messages_unacked),
            ["consumers"] => json!(figures().consumers.len()),
            ["message_stats", rest @ ..] => {
                crate::stats::json::queue_stat(&self.api.broker.stats, q, rest)
            }
            _ => return None,
        })
    }

    fn json(&self) -> Value {
        Value::Object(queue_json(self.api, &self.queue, &self.queue.figures()))
    }
}

/// The queue a path names, for a caller who may see its vhost.
fn find(api: &Api, caller: &Caller, vhost: &str, name: &str) -> ApiResult<Arc<Queue>> {
    let v = visible_vhost(api, caller, vhost)?;
    v.queue_any(name).ok_or_else(ApiError::not_found)
}

async fn get_one(
    State(api): State<Api>,
    caller: Caller,
    path: Result<Path<(String, String)>, PathRejection>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let (vhost, name) = segments(path)?;
    let queue = find(&api, &caller, &vhost, &name)?;
    let f = queue.figures();
    let mut m = queue_json(&api, &queue, &f);
    connection_details(&api, &queue, &f, &mut m);
    m.insert("deliveries".into(), json!([]));
    m.insert("incoming".into(), json!([]));
    Ok(Json(q.cut_one(Value::Object(m))))
}

async fn declare(
    State(api): State<Api>,
    caller: Caller,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let (vhost, name) = segments(path)?;
    let v = acting_vhost(&api, &caller, &vhost)?;
    check_name("queue", &name)?;
    let body = object_body(body)?;
    let durable = flag(&body, "durable", false)?;
    let auto_delete = flag(&body, "auto_delete", false)?;
    // Checked, then ignored: RabbitMQ declares it on the API's own short-lived
    // connection, and the queue it leaves is not exclusive.
    flag(&body, "exclusive", false)?;
    let args = json_to_table(&arguments(&body)?);
    if name.starts_with("amq.") || name.is_empty() {
        return Err(ApiError::not_authorised("Access refused."));
    }
    permit_change(
        &api,
        &caller,
        &vhost,
        Resource::Queue,
        &name,
        Permission::Configure,
    )?;
    let existed = v.has_queue(&name);
    if let (false, Some(dlx)) = (existed, exchange_argument(&args, "x-dead-letter-exchange")) {
        permit_named_exchange(&api, &caller, &vhost, Resource::Queue, &name, dlx)?;
    }
    let _acting = caller.acting(&api.broker);
    v.declare_queue(
        &QueueDeclare {
            name: &name,
            passive: false,
            durable,
            exclusive: false,
            auto_delete,
            arguments: &args,
            server_named: false,
        },
        0,
    )
    .map_err(refused)?;
    Ok(super::exchanges::created(existed))
}

async fn delete_queue(
    State(api): State<Api>,
    caller: Caller,
    path: Result<Path<(String, String)>, PathRejection>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let (vhost, name) = segments(path)?;
    let v = acting_vhost(&api, &caller, &vhost)?;
    v.queue_any(&name).ok_or_else(ApiError::not_found)?;
    permit_change(
        &api,
        &caller,
        &vhost,
        Resource::Queue,
        &name,
        Permission::Configure,
    )?;
    // The API is no connection: another connection's exclusive queue is locked to it,
    // as RabbitMQ answers.
    let _acting = caller.acting(&api.broker);
    v.delete_queue(
        &name,
        query_flag(&query, "if-unused"),
        query_flag(&query, "if-empty"),
        API_CONNECTION,
    )
    .map_err(refused)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn purge(
    State(api): State<Api>,
    caller: Caller,
    path: Result<Path<(String, String)>, PathRejection>,
) -> ApiResult<Response> {
    let (vhost, name) = segments(path)?;
    let v = acting_vhost(&api, &caller, &vhost)?;
    let queue = v.queue_any(&name).ok_or_else(ApiError::not_found)?;
    permit_change(
        &api,
        &caller,
        &vhost,
        Resource::Queue,
        &name,
        Permission::Read,
    )?;
    queue.check_exclusive(API_CONNECTION).map_err(refused)?;
    queue.purge();
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn bindings(
    State(api): State<Api>,
    caller: Caller,
    path: Result<Path<(String, String)>, PathRejection>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let (vhost, name) = segments(path)?;
    let v = visible_vhost(&api, &caller, &vhost)?;
    v.queue_any(&name).ok_or_else(ApiError::not_found)?;
    let items = v
        .binding_infos()
        .into_iter()
        .filter(|b| b.to_queue && b.destination == name)
        .map(|b| Value::Object(super::binding_json(&v.name, &b)))
        .collect();
    Ok(Json(q.respond(items)?))
}

/// `sync` and `cancel_sync` are for mirrored queues; for a classic queue RabbitMQ
/// 3.10 answers 204 and does nothing, and so does warren.
async fn actions(
    State(api): State<Api>,
    caller: Caller,
    path: Result<Path<(String, String)>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Response> {
    let (vhost, name) = segments(path)?;
    let v = acting_vhost(&api, &caller, &vhost)?;
    v.queue_any(&name).ok_or_else(ApiError::not_found)?;
    let body = object_body(body)?;
    match body.get("action") {
        Some(Value::String(a)) if a == "sync" || a == "cancel_sync" => {
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        other => Err(ApiError::bad_request_term(
            "unknown",
            other.cloned().unwrap_or(Value::Null),
        )),
    }
}
