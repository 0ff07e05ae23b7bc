//! Runtime parameters and the small node-wide endpoints, as RabbitMQ 3.10:
//! `/api/parameters[/{component}[/{vhost}[/{name}]]]`, `/api/global-parameters[/{name}]`,
//! `/api/cluster-name` (GET, PUT), `/api/auth` and `/api/extensions`.
//!
//! The only vhost-scoped component warren sets here is "vhost-limits" (its one
//! parameter, "limits", is the vhost's limits); operator policies are listed as
//! parameters too, as RabbitMQ lists them (set through /api/operator-policies). Components
//! RabbitMQ has as plugins (shovel, federation-upstream, ...) do not exist here: lists
//! are empty and a PUT is refused, as the reference answers for an unknown component.
//! Parameters are for policymakers (in the vhosts they may enter) and administrators.

use super::super::auth::Caller;
use super::super::error::{ApiError, ApiResult};
use super::super::list::ListQuery;
use super::super::Api;
use super::{object_body, put_status, require_keys};
use crate::broker::globals::CLUSTER_NAME;
use crate::broker::policy::PolicyKind;
use crate::store::definitions::VHOST_LIMITS;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

/// The name of the one "vhost-limits" parameter of a vhost.
const LIMITS: &str = "limits";
/// The component operator policies are listed under.
const OPERATOR_POLICY: &str = "operator_policy";

pub(super) fn routes() -> Router<Api> {
    Router::new()
        .route("/api/auth", get(auth))
        .route("/api/extensions", get(extensions))
        .route("/api/cluster-name", get(cluster_name).put(put_cluster_name))
        .route("/api/global-parameters", get(globals))
        .route(
            "/api/global-parameters/{name}",
            get(global).put(put_global).delete(delete_global),
        )
        .route("/api/parameters", get(all))
        .route("/api/parameters/{component}", get(by_component))
        .route("/api/parameters/{component}/{vhost}", get(by_vhost))
        .route(
            "/api/parameters/{component}/{vhost}/{name}",
            get(one).put(put).delete(delete),
        )
}

/// What the login page asks before anyone logs in: no OAuth 2 (UAA) here.
async fn auth() -> Json<Value> {
    Json(json!({"enable_uaa": false, "uaa_client_id": "", "uaa_location": ""}))
}

/// The management UI's plugin extensions: warren serves no UI, so none.
async fn extensions(_caller: Caller) -> Json<Value> {
    Json(json!([]))
}

/// The cluster's name: the `cluster_name` global parameter, or the node's name.
pub(super) fn current_cluster_name(api: &Api) -> String {
    match api.broker.globals.get(CLUSTER_NAME) {
        Some(Value::String(s)) => s,
        _ => api.node.name.clone(),
    }
}

async fn cluster_name(State(api): State<Api>, _caller: Caller) -> Json<Value> {
    Json(json!({"name": current_cluster_name(&api)}))
}

async fn put_cluster_name(
    State(api): State<Api>,
    caller: Caller,
    body: Bytes,
) -> ApiResult<StatusCode> {
    caller.require_administrator()?;
    let body = object_body(&body)?;
    require_keys(&body, &["name"])?;
    match body.get("name") {
        Some(Value::String(name)) if !name.is_empty() => {
            api.broker.globals.set(CLUSTER_NAME, name.as_str().into());
            api.broker.definitions_changed();
            Ok(StatusCode::NO_CONTENT)
        }
        _ => Err(ApiError::bad_request("name must be a non-empty string")),
    }
}

/// RabbitMQ's refusal of parameters to users who are not policymakers.
fn require_parameters(caller: &Caller) -> Result<(), ApiError> {
    caller
        .is_policymaker()
        .then_some(())
        .ok_or_else(|| ApiError::not_authorised("User not authorised to access object"))
}

/// A policymaker in `vhost`: may enter it (administrators see every vhost).
fn require_parameters_in(caller: &Caller, api: &Api, vhost: &str) -> Result<(), ApiError> {
    require_parameters(caller)?;
    (caller.is_administrator() || caller.may_act_in(api, vhost))
        .then_some(())
        .ok_or_else(|| ApiError::not_authorised("User not authorised to access object"))
}

fn global_json(name: &str, value: &Value) -> Value {
    json!({"name": name, "value": value})
}

async fn globals(
    State(api): State<Api>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    require_parameters(&caller)?;
    let items = api
        .broker
        .globals
        .list()
        .iter()
        .map(|(k, v)| global_json(k, v))
        .collect();
    Ok(Json(q.respond(items)?))
}

async fn global(
    State(api): State<Api>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<Json<Value>> {
    require_parameters(&caller)?;
    let value = api
        .broker
        .globals
        .get(&name)
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(global_json(&name, &value)))
}

async fn put_global(
    State(api): State<Api>,
    caller: Caller,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    require_parameters(&caller)?;
    let body = object_body(&body)?;
    require_keys(&body, &["value"])?;
    let value = body.get("value").cloned().unwrap_or(Value::Null);
    let created = api.broker.globals.set(&name, value.clone());
    api.broker.definitions_changed();
    caller.notify(&api.broker, |e| e.global_parameter(&name, Some(&value)));
    Ok(put_status(created))
}

async fn delete_global(
    State(api): State<Api>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    require_parameters(&caller)?;
    if api.broker.globals.clear(&name) {
        api.broker.definitions_changed();
        caller.notify(&api.broker, |e| e.global_parameter(&name, None));
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::not_found())
    }
}

fn parameter_json(component: &str, vhost: &str, name: &str, value: Value) -> Value {
    json!({"value": value, "vhost": vhost, "component": component, "name": name})
}

/// Every parameter the caller may see: each vhost's limits, then what the policies
/// slice adds.
fn parameters(api: &Api, caller: &Caller) -> Vec<Value> {
    let mut items: Vec<Value> = api
        .broker
        .list_vhosts()
        .into_iter()
        .filter(|v| caller.is_administrator() || caller.may_act_in(api, &v.name))
        .filter_map(|v| {
            let limits = v.limits?.to_json();
            Some(parameter_json(VHOST_LIMITS, &v.name, LIMITS, limits))
        })
        .collect();
    items.extend(policy_parameters(api, caller));
    items
}

/// Operator policies, which RabbitMQ lists among the parameters (component
/// "operator_policy"), in the vhosts the caller may see.
fn policy_parameters(api: &Api, caller: &Caller) -> Vec<Value> {
    let mut items = Vec::new();
    for info in api.broker.list_vhosts() {
        if !(caller.is_administrator() || caller.may_act_in(api, &info.name)) {
            continue;
        }
        let Some(vhost) = api.broker.vhost(&info.name) else {
            continue;
        };
        for p in vhost.policies().list(PolicyKind::Operator) {
            items.push(parameter_json(
                OPERATOR_POLICY,
                &info.name,
                &p.name,
                p.parameter_value(),
            ));
        }
    }
    items
}

fn field<'a>(item: &'a Value, key: &str) -> &'a str {
    item.get(key).and_then(Value::as_str).unwrap_or("")
}

async fn all(
    State(api): State<Api>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    require_parameters(&caller)?;
    Ok(Json(q.respond(parameters(&api, &caller))?))
}

async fn by_component(
    State(api): State<Api>,
    caller: Caller,
    Path(component): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    require_parameters(&caller)?;
    let items = parameters(&api, &caller)
        .into_iter()
        .filter(|p| field(p, "component") == component)
        .collect();
    Ok(Json(q.respond(items)?))
}

async fn by_vhost(
    State(api): State<Api>,
    caller: Caller,
    Path((component, vhost)): Path<(String, String)>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    require_parameters_in(&caller, &api, &vhost)?;
    if api.broker.vhost(&vhost).is_none() {
        return Err(ApiError::not_found());
    }
    let items = parameters(&api, &caller)
        .into_iter()
        .filter(|p| field(p, "component") == component && field(p, "vhost") == vhost)
        .collect();
    Ok(Json(q.respond(items)?))
}

async fn one(
    State(api): State<Api>,
    caller: Caller,
    Path((component, vhost, name)): Path<(String, String, String)>,
) -> ApiResult<Json<Value>> {
    require_parameters_in(&caller, &api, &vhost)?;
    parameters(&api, &caller)
        .into_iter()
        .find(|p| {
            field(p, "component") == component
                && field(p, "vhost") == vhost
                && field(p, "name") == name
        })
        .map(Json)
        .ok_or_else(ApiError::not_found)
}

/// Only "vhost-limits"/"limits" can be set: the vhost's limits, checked as
/// `set_vhost_limits` checks them.
async fn put(
    State(api): State<Api>,
    caller: Caller,
    Path((component, vhost, name)): Path<(String, String, String)>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    require_parameters_in(&caller, &api, &vhost)?;
    let body = object_body(&body)?;
    require_keys(&body, &["value"])?;
    if api.broker.vhost(&vhost).is_none() {
        return Err(ApiError::not_found());
    }
    if component != VHOST_LIMITS {
        return Err(ApiError::bad_request(format!(
            "Validation failed\n\ncomponent {component} not found\n"
        )));
    }
    if name != LIMITS {
        return Err(ApiError::bad_request(format!(
            "Validation failed\n\nname must be {LIMITS}, actually was {name}\n"
        )));
    }
    let created = matches!(api.broker.vhost_limits(&vhost), Ok(None));
    let value = body.get("value").cloned().unwrap_or(Value::Null);
    api.broker
        .set_vhost_limits(&vhost, &value)
        .map_err(|e| ApiError::bad_request(format!("{e}\n")))?;
    caller.notify(&api.broker, |e| e.vhost_limits(&vhost, Some(&value)));
    Ok(put_status(created))
}

async fn delete(
    State(api): State<Api>,
    caller: Caller,
    Path((component, vhost, name)): Path<(String, String, String)>,
) -> ApiResult<StatusCode> {
    require_parameters_in(&caller, &api, &vhost)?;
    if component != VHOST_LIMITS || name != LIMITS {
        return Err(ApiError::not_found());
    }
    api.broker
        .clear_vhost_limits(&vhost)
        .map_err(|_| ApiError::not_found())?;
    caller.notify(&api.broker, |e| e.vhost_limits(&vhost, None));
    Ok(StatusCode::NO_CONTENT)
}
