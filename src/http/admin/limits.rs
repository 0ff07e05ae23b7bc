//! `/api/vhost-limits` and `/api/user-limits`: list (all, one vhost or user), PUT one
//! limit (`{"value": n}`) and DELETE one, as RabbitMQ 3.10. Vhost limits show each
//! caller the vhosts they may see; user limits are shown to every management user (as
//! RabbitMQ shows them); changes are for administrators.
//!
//! A PUT sets one limit and keeps the others: the vhost's limits are merged here and
//! checked whole by `VhostLimits::parse` (RabbitMQ's "Validation failed" texts); user
//! limits go through `Users::set_limits`.

use super::super::auth::Caller;
use super::super::error::{ApiError, ApiResult};
use super::super::list::ListQuery;
use super::super::Api;
use super::{object_body, require_keys};
use crate::access::limits::{MAX_CHANNELS, MAX_CONNECTIONS};
use crate::broker::vhost::VhostLimits;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use serde_json::{json, Map, Value};

pub(super) fn routes() -> Router<Api> {
    Router::new()
        .route("/api/vhost-limits", get(vhost_list))
        .route("/api/vhost-limits/{vhost}", get(vhost_one))
        .route(
            "/api/vhost-limits/{vhost}/{name}",
            put(vhost_put).delete(vhost_delete),
        )
        .route("/api/user-limits", get(user_list))
        .route("/api/user-limits/{user}", get(user_one))
        .route(
            "/api/user-limits/{user}/{name}",
            put(user_put).delete(user_delete),
        )
}

fn vhost_item(vhost: &str, limits: VhostLimits) -> Value {
    json!({"vhost": vhost, "value": limits.to_json()})
}

async fn vhost_list(
    State(api): State<Api>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let items = caller
        .seen_vhosts(&api)
        .into_iter()
        .filter_map(|v| Some(vhost_item(&v.name, v.limits?)))
        .collect();
    Ok(Json(q.respond(items)?))
}

async fn vhost_one(
    State(api): State<Api>,
    caller: Caller,
    Path(vhost): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    caller.require_vhost(&api, &vhost)?;
    let limits = api
        .broker
        .vhost_limits(&vhost)
        .map_err(|_| ApiError::not_found())?;
    let items = limits.map(|l| vhost_item(&vhost, l)).into_iter().collect();
    Ok(Json(q.respond(items)?))
}

/// The `value` of a limit PUT's body.
fn limit_value(body: &Bytes) -> Result<Value, ApiError> {
    let body = object_body(body)?;
    require_keys(&body, &["value"])?;
    Ok(body.get("value").cloned().unwrap_or(Value::Null))
}

async fn vhost_put(
    State(api): State<Api>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    caller.require_administrator()?;
    let value = limit_value(&body)?;
    let current = api
        .broker
        .vhost_limits(&vhost)
        .map_err(|_| ApiError::vhost_not_found())?;
    let mut merged = match current.unwrap_or_default().to_json() {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    merged.insert(name, value);
    let merged = Value::Object(merged);
    api.broker
        .set_vhost_limits(&vhost, &merged)
        .map_err(|e| ApiError::bad_request(format!("{e}\n")))?;
    caller.notify(&api.broker, |e| e.vhost_limits(&vhost, Some(&merged)));
    Ok(StatusCode::NO_CONTENT)
}

/// Removes one limit; removing one that is not set is not an error (as RabbitMQ). The
/// vhost has no limits once none is left.
async fn vhost_delete(
    State(api): State<Api>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    caller.require_administrator()?;
    let current = api
        .broker
        .vhost_limits(&vhost)
        .map_err(|_| ApiError::not_found())?;
    let Some(current) = current else {
        return Ok(StatusCode::NO_CONTENT);
    };
    let Value::Object(mut left) = current.to_json() else {
        return Ok(StatusCode::NO_CONTENT);
    };
    left.remove(&name);
    let left = Value::Object(left);
    let result = if left.as_object().is_some_and(Map::is_empty) {
        api.broker.clear_vhost_limits(&vhost)
    } else {
        api.broker.set_vhost_limits(&vhost, &left)
    };
    result.map_err(|_| ApiError::not_found())?;
    // RabbitMQ keeps the emptied parameter: parameter.set, with what is left.
    caller.notify(&api.broker, |e| e.vhost_limits(&vhost, Some(&left)));
    Ok(StatusCode::NO_CONTENT)
}

async fn user_list(
    State(api): State<Api>,
    _caller: Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let items = api
        .broker
        .users()
        .all_limits()
        .into_iter()
        .map(|(user, value)| json!({"user": user, "value": value}))
        .collect();
    Ok(Json(q.respond(items)?))
}

async fn user_one(
    State(api): State<Api>,
    _caller: Caller,
    Path(user): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let limits = api
        .broker
        .users()
        .limits(&user)
        .map_err(|_| ApiError::not_found())?;
    let items = if limits.is_empty() {
        Vec::new()
    } else {
        vec![json!({"user": user, "value": limits})]
    };
    Ok(Json(q.respond(items)?))
}

async fn user_put(
    State(api): State<Api>,
    caller: Caller,
    Path((user, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult<Response> {
    caller.require_administrator()?;
    let value = limit_value(&body)?;
    if !api.broker.user_exists(&user) {
        return Err(ApiError::bad_request_term("no_such_user", json!(user)));
    }
    if name != MAX_CONNECTIONS && name != MAX_CHANNELS {
        return Err(ApiError::bad_request(format!(
            "Unrecognised terms [{{<<\"{name}\">>,{value}}}] in user-limits"
        )));
    }
    api.broker
        .users()
        .set_limits(&user, &json!({ name: value }))
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn user_delete(
    State(api): State<Api>,
    caller: Caller,
    Path((user, name)): Path<(String, String)>,
) -> ApiResult<StatusCode> {
    caller.require_administrator()?;
    api.broker
        .users()
        .clear_limits(&user, &name)
        .map_err(|_| ApiError::not_found())?;
    Ok(StatusCode::NO_CONTENT)
}
