//! `/api/exchanges...`: list, get, declare (PUT), delete, and an exchange's bindings by
//! source and destination.
//!
//! Called by the router. Declares and deletes go through `VHost::declare_exchange` and
//! `delete_exchange`, after the caller's configure check (and, for an alternate
//! exchange, the same extra checks a channel makes).

use super::{
    acting_vhost, arguments, check_name, flag, list_in_vhosts, object_body, permit_change,
    permit_named_exchange, query_flag, refused, segments, visible_vhost,
};
use crate::access::permissions::{Permission, Resource};
use crate::broker::vhost::{canonical_exchange, ExchangeDeclare, ExchangeInfo};
use crate::channel::authorize::exchange_argument;
use crate::http::auth::Caller;
use crate::http::error::{ApiError, ApiResult};
use crate::http::list::ListQuery;
use crate::http::Api;
use crate::store::fieldvalue::{json_to_table, table_to_json};
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use std::collections::HashMap;

pub(super) fn routes() -> Router<Api> {
    Router::new()
        .route("/api/exchanges", get(list_all))
        .route("/api/exchanges/{vhost}", get(list_vhost))
        .route(
            "/api/exchanges/{vhost}/{name}",
            get(get_one).put(declare).delete(delete),
        )
        .route(
            "/api/exchanges/{vhost}/{name}/bindings/source",
            get(bindings_source),
        )
        .route(
            "/api/exchanges/{vhost}/{name}/bindings/destination",
            get(bindings_destination),
        )
}

/// The exchanges RabbitMQ creates itself, which it lists as declared by "rmq-internal".
const PREDECLARED: [&str; 7] = [
    "",
    "amq.direct",
    "amq.fanout",
    "amq.topic",
    "amq.headers",
    "amq.match",
    "amq.rabbitmq.trace",
];

/// One exchange as the API shows it in lists. The one place an exchange's JSON is
/// built: statistics (`message_stats`) and policies (`policy`) are added here.
pub fn exchange_json(api: &Api, vhost: &str, x: &ExchangeInfo) -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("name".into(), json!(x.name));
    m.insert("vhost".into(), json!(vhost));
    m.insert("type".into(), json!(x.kind.name()));
    m.insert("durable".into(), json!(x.durable));
    m.insert("auto_delete".into(), json!(x.auto_delete));
    m.insert("internal".into(), json!(x.internal));
    m.insert("arguments".into(), table_to_json(&x.arguments));
    // RabbitMQ shows `policy` only when one applies.
    if let Some(policy) = &x.policy {
        m.insert("policy".into(), json!(policy));
    }
    if PREDECLARED.contains(&x.name.as_str()) {
        m.insert("user_who_performed_action".into(), json!("rmq-internal"));
    }
    crate::stats::json::fill_exchange(&api.broker.stats, vhost, &x.name, &mut m);
    m
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
    list_in_vhosts(api, caller, vhost, q, |v| {
        v.exchange_infos()
            .iter()
            .map(|x| Value::Object(exchange_json(api, &v.name, x)))
            .collect()
    })
}

async fn get_one(
    State(api): State<Api>,
    caller: Caller,
    path: Result<Path<(String, String)>, PathRejection>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let (vhost, name) = segments(path)?;
    let v = visible_vhost(&api, &caller, &vhost)?;
    let x = v.exchange_info(&name).ok_or_else(ApiError::not_found)?;
    let mut m = exchange_json(&api, &v.name, &x);
    m.insert("incoming".into(), json!([]));
    m.insert("outgoing".into(), json!([]));
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
    check_name("exchange", &name)?;
    let body = object_body(body)?;
    let kind = match body.get("type") {
        None | Some(Value::Null) => "direct".to_owned(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => return Err(ApiError::bad_request_term("not_string", other.clone())),
    };
    let durable = flag(&body, "durable", false)?;
    let auto_delete = flag(&body, "auto_delete", false)?;
    let internal = flag(&body, "internal", false)?;
    let args = json_to_table(&arguments(&body)?);
    let canonical = canonical_exchange(&name);
    if canonical.is_empty() || canonical.starts_with("amq.") {
        return Err(ApiError::not_authorised("Access refused."));
    }
    if crate::broker::exchange::ExchangeKind::parse(&kind).is_none() {
        return Err(ApiError::bad_request(format!(
            "unknown exchange type '{kind}'"
        )));
    }
    permit_change(
        &api,
        &caller,
        &vhost,
        Resource::Exchange,
        canonical,
        Permission::Configure,
    )?;
    let existed = v.exchange_info(canonical).is_some();
    if let (false, Some(ae)) = (existed, exchange_argument(&args, "alternate-exchange")) {
        permit_named_exchange(&api, &caller, &vhost, Resource::Exchange, canonical, ae)?;
    }
    let _acting = caller.acting(&api.broker);
    v.declare_exchange(&ExchangeDeclare {
        name: canonical,
        kind: &kind,
        passive: false,
        durable,
        auto_delete,
        internal,
        arguments: &args,
    })
    .map_err(refused)?;
    Ok(created(existed))
}

/// 201 for a new object, 204 for one that already existed (RabbitMQ's answers to PUT).
pub(crate) fn created(existed: bool) -> Response {
    if existed {
        StatusCode::NO_CONTENT.into_response()
    } else {
        StatusCode::CREATED.into_response()
    }
}

async fn delete(
    State(api): State<Api>,
    caller: Caller,
    path: Result<Path<(String, String)>, PathRejection>,
    Query(query): Query<HashMap<String, String>>,
) -> ApiResult<Response> {
    let (vhost, name) = segments(path)?;
    let v = acting_vhost(&api, &caller, &vhost)?;
    let canonical = canonical_exchange(&name);
    if canonical.is_empty() || canonical.starts_with("amq.") {
        return Err(ApiError::not_authorised("Access refused."));
    }
    v.exchange_info(canonical).ok_or_else(ApiError::not_found)?;
    permit_change(
        &api,
        &caller,
        &vhost,
        Resource::Exchange,
        canonical,
        Permission::Configure,
    )?;
    let _acting = caller.acting(&api.broker);
    v.delete_exchange(canonical, query_flag(&query, "if-unused"))
        .map_err(refused)?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn bindings_source(
    State(api): State<Api>,
    caller: Caller,
    path: Result<Path<(String, String)>, PathRejection>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    by_end(&api, &caller, path, &q, true)
}

async fn bindings_destination(
    State(api): State<Api>,
    caller: Caller,
    path: Result<Path<(String, String)>, PathRejection>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    by_end(&api, &caller, path, &q, false)
}

/// The bindings with this exchange as their source, or as their destination.
fn by_end(
    api: &Api,
    caller: &Caller,
    path: Result<Path<(String, String)>, PathRejection>,
    q: &ListQuery,
    source: bool,
) -> ApiResult<Json<Value>> {
    let (vhost, name) = segments(path)?;
    let v = visible_vhost(api, caller, &vhost)?;
    let name = canonical_exchange(&name);
    v.exchange_info(name).ok_or_else(ApiError::not_found)?;
    let items = v
        .binding_infos()
        .into_iter()
        .filter(|b| match source {
            true => b.source == name,
            false => !b.to_queue && b.destination == name,
        })
        .map(|b| Value::Object(super::binding_json(&v.name, &b)))
        .collect();
    Ok(Json(q.respond(items)?))
}
