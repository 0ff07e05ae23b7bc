//! `/api/policies` and `/api/operator-policies`: list, get, set (PUT) and clear
//! (DELETE) a vhost's policies and operator policies, with RabbitMQ 3.10's refusals;
//! and the hook the queue and exchange endpoints use to show the policies applied.
//!
//! Who may do what, as the reference 3.10.8 answers: any management user lists the
//! policies (and operator policies) of the vhosts they have permissions in; reading,
//! setting or clearing one policy takes the policymaker (or administrator) tag and
//! permissions in its vhost; one operator policy takes the administrator tag. Handlers
//! call the vhost's policy functions, which apply the change at once; nothing here
//! holds a broker lock across an `.await`.

use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::list::ListQuery;
use super::{json_body, Api};
use crate::broker::policy::validate;
use crate::broker::policy::PolicyKind;
use crate::broker::vhost::VHost;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::Value;
use std::sync::Arc;

pub fn routes() -> Router<Api> {
    Router::new()
        .route("/api/policies", get(list_all_policies))
        .route("/api/policies/{vhost}", get(list_vhost_policies))
        .route(
            "/api/policies/{vhost}/{name}",
            get(get_policy).put(put_policy).delete(delete_policy),
        )
        .route("/api/operator-policies", get(list_all_operator))
        .route("/api/operator-policies/{vhost}", get(list_vhost_operator))
        .route(
            "/api/operator-policies/{vhost}/{name}",
            get(get_operator).put(put_operator).delete(delete_operator),
        )
}

/// The policies of `kind` in `vhosts`, as the API lists them.
fn listed(vhosts: impl Iterator<Item = Arc<VHost>>, kind: PolicyKind) -> Vec<Value> {
    vhosts
        .flat_map(|v| {
            v.policies()
                .list(kind)
                .map(|p| p.to_json(&v.name))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Every vhost the caller has permissions in (where RabbitMQ lists their policies).
fn visible_vhosts<'a>(api: &'a Api, caller: &'a Caller) -> impl Iterator<Item = Arc<VHost>> + 'a {
    api.broker
        .list_vhosts()
        .into_iter()
        .filter(|v| caller.may_act_in(api, &v.name))
        .filter_map(|v| api.broker.vhost(&v.name))
}

fn list_all(
    api: &Api,
    caller: &Caller,
    query: &ListQuery,
    kind: PolicyKind,
) -> ApiResult<Json<Value>> {
    Ok(Json(
        query.respond(listed(visible_vhosts(api, caller), kind))?,
    ))
}

fn list_vhost(
    api: &Api,
    caller: &Caller,
    vhost: &str,
    query: &ListQuery,
    kind: PolicyKind,
) -> ApiResult<Json<Value>> {
    let v = api.broker.vhost(vhost).ok_or_else(ApiError::not_found)?;
    caller.require_act_in(api, vhost)?;
    Ok(Json(query.respond(listed(std::iter::once(v), kind))?))
}

async fn list_all_policies(
    State(api): State<Api>,
    caller: Caller,
    Query(query): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    list_all(&api, &caller, &query, PolicyKind::Policy)
}

async fn list_all_operator(
    State(api): State<Api>,
    caller: Caller,
    Query(query): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    list_all(&api, &caller, &query, PolicyKind::Operator)
}

async fn list_vhost_policies(
    State(api): State<Api>,
    caller: Caller,
    Path(vhost): Path<String>,
    Query(query): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    list_vhost(&api, &caller, &vhost, &query, PolicyKind::Policy)
}

async fn list_vhost_operator(
    State(api): State<Api>,
    caller: Caller,
    Path(vhost): Path<String>,
    Query(query): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    list_vhost(&api, &caller, &vhost, &query, PolicyKind::Operator)
}

/// RabbitMQ's refusal for one policy or operator policy.
fn may_manage(api: &Api, caller: &Caller, vhost: &str, kind: PolicyKind) -> Result<(), ApiError> {
    match kind {
        PolicyKind::Operator => caller.require_administrator(),
        PolicyKind::Policy if caller.is_policymaker() && caller.may_act_in(api, vhost) => Ok(()),
        PolicyKind::Policy => Err(ApiError::not_authorised(
            "User not authorised to access object",
        )),
    }
}

fn get_one(api: &Api, caller: &Caller, vhost: &str, name: &str, kind: PolicyKind) -> ApiResult {
    let v = api.broker.vhost(vhost).ok_or_else(ApiError::not_found)?;
    may_manage(api, caller, vhost, kind)?;
    let policy = v.policies().get(kind, name).map(|p| p.to_json(vhost));
    let policy = policy.ok_or_else(ApiError::not_found)?;
    Ok(Json(policy).into_response())
}

fn put_one(
    api: &Api,
    caller: &Caller,
    (vhost, name): (&str, &str),
    body: &Bytes,
    kind: PolicyKind,
) -> ApiResult {
    // A missing vhost is named before the caller's rights, as the reference answers.
    let v = api
        .broker
        .vhost(vhost)
        .ok_or_else(ApiError::vhost_not_found)?;
    may_manage(api, caller, vhost, kind)?;
    let body = json_body(body)?;
    let policy = validate::parse(kind, name, &body)
        .map_err(|e| ApiError::bad_request(e.reason(kind == PolicyKind::Policy)))?;
    caller.notify(&api.broker, |e| e.policy_set(vhost, kind, &policy));
    let existed = v.set_policy(kind, policy);
    Ok(match existed {
        true => StatusCode::NO_CONTENT,
        false => StatusCode::CREATED,
    }
    .into_response())
}

fn delete_one(api: &Api, caller: &Caller, vhost: &str, name: &str, kind: PolicyKind) -> ApiResult {
    let v = api.broker.vhost(vhost).ok_or_else(ApiError::not_found)?;
    may_manage(api, caller, vhost, kind)?;
    match v.clear_policy(kind, name) {
        true => {
            caller.notify(&api.broker, |e| e.policy_cleared(vhost, kind, name));
            Ok(StatusCode::NO_CONTENT.into_response())
        }
        false => Err(ApiError::not_found()),
    }
}

async fn get_policy(
    State(api): State<Api>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult {
    get_one(&api, &caller, &vhost, &name, PolicyKind::Policy)
}

async fn get_operator(
    State(api): State<Api>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult {
    get_one(&api, &caller, &vhost, &name, PolicyKind::Operator)
}

async fn put_policy(
    State(api): State<Api>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    put_one(&api, &caller, (&vhost, &name), &body, PolicyKind::Policy)
}

async fn put_operator(
    State(api): State<Api>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    body: Bytes,
) -> ApiResult {
    put_one(&api, &caller, (&vhost, &name), &body, PolicyKind::Operator)
}

async fn delete_policy(
    State(api): State<Api>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult {
    delete_one(&api, &caller, &vhost, &name, PolicyKind::Policy)
}

async fn delete_operator(
    State(api): State<Api>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
) -> ApiResult {
    delete_one(&api, &caller, &vhost, &name, PolicyKind::Operator)
}
