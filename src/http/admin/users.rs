//! `/api/users` (list, without-permissions, bulk-delete), `/api/users/{user}` (GET, PUT
//! with a password or a password hash and its algorithm, DELETE) and a user's
//! permission lists, as RabbitMQ 3.10: administrators only.
//!
//! Passwords are hashed here, before the user store's lock is taken (`Users::put`);
//! deleting a user closes their connections (the store does it). Texts of refusals are
//! RabbitMQ's ("tags_not_present", "both_password_and_password_hash_are_provided",
//! `["not_base64", hash]`, `["no_such_user", name]`).

use super::super::auth::Caller;
use super::super::error::{ApiError, ApiResult};
use super::super::list::ListQuery;
use super::super::Api;
use super::{object_body, put_status, tags_field};
use crate::access::password::{self, Algorithm};
use crate::store::definitions::UserDef;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use base64::Engine;
use serde_json::{json, Value};

pub(super) fn routes() -> Router<Api> {
    Router::new()
        .route("/api/users", get(list))
        .route("/api/users/without-permissions", get(without_permissions))
        .route("/api/users/bulk-delete", post(bulk_delete))
        .route("/api/users/{user}", get(one).put(put).delete(delete))
        .route("/api/users/{user}/permissions", get(permissions))
        .route(
            "/api/users/{user}/topic-permissions",
            get(topic_permissions),
        )
}

fn user_json(u: &UserDef) -> Value {
    json!({"name": u.name, "password_hash": u.password_hash,
           "hashing_algorithm": u.hashing_algorithm, "tags": u.tags,
           "limits": crate::access::limits::stored(&u.limits)})
}

async fn list(
    State(api): State<Api>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    caller.require_administrator()?;
    let items = api.broker.users().list().iter().map(user_json).collect();
    Ok(Json(q.respond(items)?))
}

async fn without_permissions(
    State(api): State<Api>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    caller.require_administrator()?;
    let granted: std::collections::HashSet<String> = api
        .broker
        .list_permissions()
        .into_iter()
        .map(|p| p.user)
        .collect();
    let items = api
        .broker
        .users()
        .list()
        .iter()
        .filter(|u| !granted.contains(&u.name))
        .map(user_json)
        .collect();
    Ok(Json(q.respond(items)?))
}

async fn one(
    State(api): State<Api>,
    caller: Caller,
    Path(name): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    caller.require_administrator()?;
    let user = api
        .broker
        .users()
        .get(&name)
        .ok_or_else(ApiError::not_found)?;
    Ok(Json(q.cut_one(user_json(&user))))
}

/// Creates the user (201) or replaces their password and tags (204). Without
/// `password` or `password_hash` the user has no password (as RabbitMQ 3.10).
async fn put(
    State(api): State<Api>,
    caller: Caller,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<Response> {
    caller.require_administrator()?;
    let body = object_body(&body)?;
    if !body.contains_key("tags") {
        return Err(ApiError::bad_request("tags_not_present"));
    }
    let tags = tags_field(body.get("tags"))?;
    let (hash, algorithm) = match (body.get("password"), body.get("password_hash")) {
        (Some(_), Some(_)) => {
            return Err(ApiError::bad_request(
                "both_password_and_password_hash_are_provided",
            ))
        }
        (Some(Value::String(p)), None) if p.is_empty() => (String::new(), password::SHA256),
        (Some(Value::String(p)), None) => {
            let hash = password::hash(p)
                .ok_or_else(|| ApiError::internal("the system's random source failed"))?;
            (hash, password::SHA256)
        }
        (Some(other), None) => {
            return Err(ApiError::bad_request(format!(
                "password must be a string, actually was {other}"
            )))
        }
        (None, Some(hash)) => {
            let algorithm = match body.get("hashing_algorithm") {
                None => password::SHA256,
                Some(Value::String(a)) => known_algorithm(a).ok_or_else(|| {
                    ApiError::bad_request(format!("unknown hashing algorithm {a}"))
                })?,
                Some(other) => {
                    return Err(ApiError::bad_request(format!(
                        "hashing_algorithm must be a string, actually was {other}"
                    )))
                }
            };
            match hash {
                Value::String(h) if base64::engine::general_purpose::STANDARD.decode(h).is_ok() => {
                    (h.clone(), algorithm)
                }
                other => return Err(ApiError::bad_request_term("not_base64", other.clone())),
            }
        }
        (None, None) => (String::new(), password::SHA256),
    };
    let created = api
        .broker
        .users()
        .put(&name, hash, algorithm.to_owned(), tags.clone())
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    // As RabbitMQ: an update by password hash tells nothing.
    let told = if created {
        Some("user.created")
    } else if body.contains_key("password") {
        Some("user.password.changed")
    } else {
        None
    };
    if let Some(key) = told {
        caller.notify(&api.broker, |e| {
            e.user(key, &name);
            e.user_tags_set(&name, &tags);
        });
    }
    Ok(put_status(created).into_response())
}

/// The constant naming `name` among the algorithms RabbitMQ 3.10 ships.
fn known_algorithm(name: &str) -> Option<&'static str> {
    Algorithm::from_name(name)?;
    [password::SHA256, password::SHA512, password::MD5]
        .into_iter()
        .find(|a| *a == name)
}

async fn delete(
    State(api): State<Api>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_administrator()?;
    api.broker
        .users()
        .delete(&name)
        .map_err(|_| ApiError::not_found())?;
    caller.notify(&api.broker, |e| e.user("user.deleted", &name));
    Ok(StatusCode::NO_CONTENT)
}

/// `{"users": [...]}`: deletes each in turn; an unknown name stops there with
/// RabbitMQ's `["no_such_user", name]` (those before it stay deleted, as there).
async fn bulk_delete(State(api): State<Api>, caller: Caller, body: Bytes) -> ApiResult<Response> {
    caller.require_administrator()?;
    let body = object_body(&body)?;
    super::require_keys(&body, &["users"])?;
    let Some(Value::Array(names)) = body.get("users") else {
        return Err(ApiError::bad_request("users must be a list of names"));
    };
    let mut todo = Vec::with_capacity(names.len());
    for n in names {
        match n {
            Value::String(s) => todo.push(s.as_str()),
            other => {
                return Err(ApiError::bad_request(format!(
                    "users must be a list of names, found {other}"
                )))
            }
        }
    }
    for name in todo {
        if api.broker.users().delete(name).is_err() {
            return Err(ApiError::bad_request_term("no_such_user", json!(name)));
        }
        caller.notify(&api.broker, |e| e.user("user.deleted", name));
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn permissions(
    State(api): State<Api>,
    caller: Caller,
    Path(name): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    caller.require_administrator()?;
    super::permissions::owned_list(
        api.broker.list_user_permissions(&name),
        super::permissions::permission_json,
        &q,
    )
}

async fn topic_permissions(
    State(api): State<Api>,
    caller: Caller,
    Path(name): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    caller.require_administrator()?;
    super::permissions::owned_list(
        api.broker.list_user_topic_permissions(&name, None),
        super::permissions::topic_permission_json,
        &q,
    )
}
