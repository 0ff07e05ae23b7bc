//! `/api/permissions` and `/api/topic-permissions`, whole and per vhost and user (GET,
//! PUT, DELETE), as RabbitMQ 3.10: administrators only; a PUT names a user and a vhost
//! that exist (400 "vhost_or_user_not_found" otherwise) and patterns that compile.
//!
//! Changes go through `Broker::set_permissions` and friends, the same checks and
//! definitions writes as rabbitmqctl's commands. The JSON of one entry is built here
//! for every endpoint that lists them (users' and vhosts' lists too).

use super::super::auth::Caller;
use super::super::error::{ApiError, ApiResult};
use super::super::list::ListQuery;
use super::super::Api;
use super::{object_body, put_status, require_keys, text_field};
use crate::access::permissions::{PermissionEntry, TopicPermissionEntry};
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};

pub(super) fn routes() -> Router<Api> {
    Router::new()
        .route("/api/permissions", get(list))
        .route(
            "/api/permissions/{vhost}/{user}",
            get(one).put(put).delete(delete),
        )
        .route("/api/topic-permissions", get(list_topic))
        .route(
            "/api/topic-permissions/{vhost}/{user}",
            get(one_topic).put(put_topic).delete(delete_topic),
        )
}

pub(super) fn permission_json(p: &PermissionEntry) -> Value {
    json!({"user": p.user, "vhost": p.vhost, "configure": p.configure,
           "write": p.write, "read": p.read})
}

pub(super) fn topic_permission_json(p: &TopicPermissionEntry) -> Value {
    json!({"user": p.user, "vhost": p.vhost, "exchange": p.exchange,
           "write": p.write, "read": p.read})
}

/// A user's or a vhost's permission list through `q`: 404 when `list` failed (the
/// user or vhost is unknown), as RabbitMQ's `/api/users/{user}/permissions` and
/// `/api/vhosts/{vhost}/permissions` (and their topic-permission twins) answer.
pub(super) fn owned_list<T, E>(
    list: Result<Vec<T>, E>,
    to_json: fn(&T) -> Value,
    q: &ListQuery,
) -> ApiResult<Json<Value>> {
    each(&list.map_err(|_| ApiError::not_found())?, to_json, q)
}

/// Entries as a list endpoint answers them: each one's JSON, through `q`.
fn each<T>(list: &[T], to_json: fn(&T) -> Value, q: &ListQuery) -> ApiResult<Json<Value>> {
    Ok(Json(q.respond(list.iter().map(to_json).collect())?))
}

/// The three strings a permission PUT must carry: RabbitMQ's 400 naming every missing
/// key first, then the first that is not a string.
fn patterns<'a>(body: &'a Map<String, Value>, keys: [&str; 3]) -> ApiResult<[&'a str; 3]> {
    require_keys(body, &keys)?;
    Ok([
        text_field(body, keys[0])?,
        text_field(body, keys[1])?,
        text_field(body, keys[2])?,
    ])
}

/// RabbitMQ's 400 for a PUT naming a user or a vhost that does not exist.
fn check_user_and_vhost(api: &Api, user: &str, vhost: &str) -> Result<(), ApiError> {
    if api.broker.user_exists(user) && api.broker.vhost(vhost).is_some() {
        Ok(())
    } else {
        Err(ApiError::bad_request("vhost_or_user_not_found"))
    }
}

async fn list(
    State(api): State<Api>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    caller.require_administrator()?;
    each(&api.broker.list_permissions(), permission_json, &q)
}

fn entry(api: &Api, vhost: &str, user: &str) -> Option<PermissionEntry> {
    api.broker
        .list_permissions()
        .into_iter()
        .find(|p| p.vhost == vhost && p.user == user)
}

async fn one(
    State(api): State<Api>,
    caller: Caller,
    Path((vhost, user)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    caller.require_administrator()?;
    let p = entry(&api, &vhost, &user).ok_or_else(ApiError::not_found)?;
    Ok(Json(permission_json(&p)))
}

async fn put(
    State(api): State<Api>,
    caller: Caller,
    Path((vhost, user)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    caller.require_administrator()?;
    let body = object_body(&body)?;
    let [configure, write, read] = patterns(&body, ["configure", "write", "read"])?;
    check_user_and_vhost(&api, &user, &vhost)?;
    let created = entry(&api, &vhost, &user).is_none();
    api.broker
        .set_permissions(&user, &vhost, configure, write, read)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    caller.notify(&api.broker, |e| {
        e.permission_created(&user, &vhost, ("configure", configure), (write, read));
    });
    Ok(put_status(created))
}

async fn delete(
    State(api): State<Api>,
    caller: Caller,
    Path((vhost, user)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    caller.require_administrator()?;
    entry(&api, &vhost, &user).ok_or_else(ApiError::not_found)?;
    api.broker
        .clear_permissions(&user, &vhost)
        .map_err(|_| ApiError::not_found())?;
    caller.notify(&api.broker, |e| e.permission_deleted(false, &user, &vhost));
    Ok(StatusCode::NO_CONTENT)
}

async fn list_topic(
    State(api): State<Api>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    caller.require_administrator()?;
    each(
        &api.broker.list_topic_permissions(),
        topic_permission_json,
        &q,
    )
}

/// The user's topic permissions in the vhost (none: the user or vhost is unknown, or
/// nothing is set).
fn topic_entries(api: &Api, vhost: &str, user: &str) -> Vec<TopicPermissionEntry> {
    api.broker
        .list_user_topic_permissions(user, Some(vhost))
        .unwrap_or_default()
}

async fn one_topic(
    State(api): State<Api>,
    caller: Caller,
    Path((vhost, user)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    caller.require_administrator()?;
    let entries = topic_entries(&api, &vhost, &user);
    if entries.is_empty() {
        return Err(ApiError::not_found());
    }
    Ok(Json(Value::Array(
        entries.iter().map(topic_permission_json).collect(),
    )))
}

async fn put_topic(
    State(api): State<Api>,
    caller: Caller,
    Path((vhost, user)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    caller.require_administrator()?;
    let body = object_body(&body)?;
    let [exchange, write, read] = patterns(&body, ["exchange", "write", "read"])?;
    check_user_and_vhost(&api, &user, &vhost)?;
    let created = !topic_entries(&api, &vhost, &user)
        .iter()
        .any(|e| e.exchange == exchange);
    api.broker
        .set_topic_permissions(&user, &vhost, exchange, write, read)
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    caller.notify(&api.broker, |e| {
        e.permission_created(&user, &vhost, ("exchange", exchange), (write, read));
    });
    Ok(put_status(created))
}

async fn delete_topic(
    State(api): State<Api>,
    caller: Caller,
    Path((vhost, user)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    caller.require_administrator()?;
    if topic_entries(&api, &vhost, &user).is_empty() {
        return Err(ApiError::not_found());
    }
    api.broker
        .clear_topic_permissions(&user, &vhost, None)
        .map_err(|_| ApiError::not_found())?;
    caller.notify(&api.broker, |e| e.permission_deleted(true, &user, &vhost));
    Ok(StatusCode::NO_CONTENT)
}
