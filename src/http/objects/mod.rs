//! Exchanges, queues and bindings over HTTP, as RabbitMQ 3.10's management plugin
//! serves them: list, get, declare, delete, bind, publish, get messages, purge.
//!
//! Called by the axum router (`routes`). The API acts as the calling user: every change
//! is checked against that user's configure/write/read permissions exactly as a
//! channel's would be, then made through the same vhost and queue functions a channel
//! calls. Lists are built from owned snapshots (`VHost::queue_list`, `exchange_infos`,
//! `binding_infos`); no broker lock is held while JSON is built, sorted or paged, nor
//! across an `.await`. This module holds what the groups share: the path, body and
//! field readers, the permission check, and the mapping of an AMQP exception to
//! RabbitMQ's HTTP answer.

mod bindings;
mod exchanges;
mod messages;
pub(crate) mod properties;
mod queues;

// The JSON of each object kind is built in one function, where statistics and
// policies are added: `exchanges::exchange_json`, `queues::queue_json`,
// `bindings::binding_json`.
use bindings::binding_json;
// A browse answers messages and refusals as a get does.
pub(crate) use messages::{get_refused, message_json};

use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::list::ListQuery;
use super::Api;
use crate::access::cache::{AccessCache, Who};
use crate::access::permissions::{Permission, Resource};
use crate::broker::exchange::ExchangeKind;
use crate::broker::vhost::VHost;
use crate::error::{Exception, ReplyCode};
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::Path;
use axum::http::StatusCode;
use axum::{Json, Router};
use serde_json::{Map, Value};
use std::sync::Arc;

/// Every endpoint of this group.
pub fn routes() -> Router<Api> {
    Router::new()
        .merge(exchanges::routes())
        .merge(queues::routes())
        .merge(bindings::routes())
        .merge(messages::routes())
}

/// The connection id the API acts as where a vhost function asks for one: no client
/// connection has it (ids start at 1), so exclusive queues are locked to the API.
pub(crate) const API_CONNECTION: u64 = 0;

/// Path segments, or a 400 for a path axum cannot decode (a percent-encoding that is
/// not UTF-8, ...).
pub(crate) fn segments<T>(path: Result<Path<T>, PathRejection>) -> ApiResult<T> {
    path.map(|Path(t)| t)
        .map_err(|e| ApiError::bad_request(e.body_text()))
}

/// The vhost a caller names in a path, when it exists and the caller may see it.
pub(crate) fn visible_vhost(api: &Api, caller: &Caller, name: &str) -> ApiResult<Arc<VHost>> {
    let vhost = api.broker.vhost(name).ok_or_else(ApiError::not_found)?;
    caller.require_vhost(api, name)?;
    Ok(vhost)
}

/// The vhost a caller changes something in: RabbitMQ's answer for a missing one, and
/// the caller needs permissions there.
pub(crate) fn acting_vhost(api: &Api, caller: &Caller, name: &str) -> ApiResult<Arc<VHost>> {
    let vhost = api
        .broker
        .vhost(name)
        .ok_or_else(ApiError::vhost_not_found)?;
    caller.require_act_in(api, name)?;
    Ok(vhost)
}

/// The vhosts a list shows the caller: the named one, or every one they may see.
pub(crate) fn listed_vhosts(
    api: &Api,
    caller: &Caller,
    name: Option<&str>,
) -> ApiResult<Vec<Arc<VHost>>> {
    match name {
        Some(name) => Ok(vec![visible_vhost(api, caller, name)?]),
        None => Ok(caller
            .seen_vhosts(api)
            .iter()
            .filter_map(|v| api.broker.vhost(&v.name))
            .collect()),
    }
}

/// A list endpoint over vhosts (all the caller sees, or the one named): `items` gives
/// one vhost's objects, and the whole goes through the query's paging and sorting.
pub(crate) fn list_in_vhosts(
    api: &Api,
    caller: &Caller,
    vhost: Option<&str>,
    q: &ListQuery,
    items: impl Fn(&VHost) -> Vec<Value>,
) -> ApiResult<Json<Value>> {
    let mut all = Vec::new();
    for v in listed_vhosts(api, caller, vhost)? {
        all.extend(items(&v));
    }
    Ok(Json(q.respond(all)?))
}

/// A new object whose arguments name an exchange (a queue's dead-letter exchange, an
/// exchange's alternate exchange): as a channel's declare, the caller must read the
/// object and write to that exchange.
pub(crate) fn permit_named_exchange(
    api: &Api,
    caller: &Caller,
    vhost: &str,
    resource: Resource,
    name: &str,
    exchange: &str,
) -> ApiResult<()> {
    permit_change(api, caller, vhost, resource, name, Permission::Read)?;
    let exchange = crate::broker::vhost::canonical_exchange(exchange);
    permit_change(
        api,
        caller,
        vhost,
        Resource::Exchange,
        exchange,
        Permission::Write,
    )
}

/// The caller, in the vhost, for the access checks a channel of theirs would make.
fn who<'a>(api: &'a Api, caller: &'a Caller, vhost: &'a str) -> Who<'a> {
    Who {
        permissions: &api.broker.permissions,
        user: &caller.name,
        vhost,
    }
}

/// The caller's permission check, as a channel of theirs would make it.
pub(crate) fn permit(
    api: &Api,
    caller: &Caller,
    vhost: &str,
    resource: Resource,
    name: &str,
    permission: Permission,
) -> Result<(), Exception> {
    AccessCache::default().check(&who(api, caller, vhost), resource, name, permission)
}

/// Topic authorisation of `key` on `exchange` (a topic exchange with a topic
/// permission for the caller), as a channel of theirs would check it.
pub(crate) fn permit_topic(
    api: &Api,
    caller: &Caller,
    v: &VHost,
    exchange: &str,
    key: &str,
    permission: Permission,
) -> Result<(), Exception> {
    AccessCache::default().check_topic(
        &who(api, caller, &v.name),
        exchange,
        key,
        permission,
        || {
            v.exchange_kind(exchange)
                .is_some_and(|(k, internal)| k == ExchangeKind::Topic && !internal)
        },
    )
}

/// The management plugin's own check before a declare, delete, bind or purge: the
/// AMQP refusal becomes its short 401.
pub(crate) fn permit_change(
    api: &Api,
    caller: &Caller,
    vhost: &str,
    resource: Resource,
    name: &str,
    permission: Permission,
) -> ApiResult<()> {
    permit(api, caller, vhost, resource, name, permission)
        .map_err(|_| ApiError::not_authorised("Access refused."))
}

/// The text after RabbitMQ's `NAME - ` prefix.
pub(crate) fn detail(e: &Exception) -> &str {
    e.text.split_once(" - ").map_or(e.text.as_str(), |(_, d)| d)
}

/// A declare, delete or bind the broker refused, as the management plugin answers it:
/// 404 `not_found` for a missing object, 401 for a refusal, otherwise 400 with the
/// reason (`inequivalent arg ...`).
pub(crate) fn refused(e: Exception) -> ApiError {
    match e.code {
        ReplyCode::NotFound => ApiError::new(StatusCode::NOT_FOUND, "not_found", detail(&e)),
        ReplyCode::AccessRefused => ApiError::not_authorised("Access refused."),
        _ => ApiError::bad_request(detail(&e)),
    }
}

/// A body that must be a JSON object (RabbitMQ: `not_json` otherwise); one over
/// `super::MAX_BODY` is RabbitMQ's 400.
pub(crate) fn object_body(body: Result<Bytes, BytesRejection>) -> ApiResult<Map<String, Value>> {
    let body = body.map_err(|e| match e.status() {
        StatusCode::PAYLOAD_TOO_LARGE => {
            ApiError::bad_request("Exceeded HTTP request body size limit")
        }
        _ => ApiError::bad_request(e.body_text()),
    })?;
    super::object_body(&body)
}

/// A boolean field (`default` when absent), or RabbitMQ's `["not_boolean", value]`.
/// The strings "true" and "false" are accepted, as RabbitMQ accepts them.
pub(crate) fn flag(body: &Map<String, Value>, key: &str, default: bool) -> ApiResult<bool> {
    match body.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(Value::String(s)) if s == "true" => Ok(true),
        Some(Value::String(s)) if s == "false" => Ok(false),
        Some(other) => Err(ApiError::bad_request_term("not_boolean", other.clone())),
    }
}

/// A required field, or RabbitMQ's `[{key_missing,name}]`.
pub(crate) fn required<'a>(body: &'a Map<String, Value>, key: &str) -> ApiResult<&'a Value> {
    body.get(key)
        .ok_or_else(|| ApiError::bad_request(format!("[{{key_missing,{key}}}]")))
}

/// The `arguments` field: a JSON object, absent or null (an empty table).
pub(crate) fn arguments(body: &Map<String, Value>) -> ApiResult<Value> {
    match body.get("arguments") {
        None | Some(Value::Null) => Ok(Value::Object(Map::new())),
        Some(v @ Value::Object(_)) => Ok(v.clone()),
        Some(_) => Err(ApiError::bad_request("arguments must be a JSON object")),
    }
}

/// RabbitMQ's refusal of an object name longer than a short string.
pub(crate) fn check_name(kind: &str, name: &str) -> ApiResult<()> {
    if name.len() > 255 {
        return Err(ApiError::bad_request(format!(
            "{kind} should be less than 255 bytes, actually was {}\n",
            name.len()
        )));
    }
    Ok(())
}

/// `?if-unused=true`-style flags of a DELETE.
pub(crate) fn query_flag(query: &std::collections::HashMap<String, String>, key: &str) -> bool {
    query.get(key).is_some_and(|v| v == "true")
}
