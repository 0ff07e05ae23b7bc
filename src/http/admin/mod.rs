//! The management API's administration endpoints, as RabbitMQ 3.10 serves them: vhosts,
//! users, permissions and topic permissions, vhost and user limits, definitions export
//! and import, the aliveness test and health checks, and runtime parameters
//! (`/api/parameters`, `/api/global-parameters`, `/api/cluster-name`, `/api/auth`,
//! `/api/extensions`), and warren's own clock (`/api/warren/clock`).
//!
//! `routes()` is merged by `http::router`; each group is a submodule. Handlers call the
//! broker's in-process API (`Broker::add_vhost`, `Users::put`, `Broker::set_permissions`,
//! ...) with the same checks rabbitmqctl gets, and answer with RabbitMQ's status codes,
//! JSON and texts. The helpers here are the body checks those endpoints share. Nothing
//! here holds a broker lock across an `.await`.

mod clock;
pub(crate) mod definitions;
mod health;
mod limits;
mod parameters;
mod permissions;
mod users;
mod vhosts;

use super::error::ApiError;
use super::object_body;
use super::Api;
use axum::http::StatusCode;
use axum::Router;
use serde_json::{Map, Value};

/// Every administration endpoint.
pub fn routes() -> Router<Api> {
    Router::new()
        .merge(vhosts::routes())
        .merge(users::routes())
        .merge(permissions::routes())
        .merge(limits::routes())
        .merge(definitions::routes())
        .merge(health::routes())
        .merge(parameters::routes())
        .merge(clock::routes())
}

/// A PUT's answer: 201 for a new object, 204 for one that was replaced.
fn put_status(created: bool) -> StatusCode {
    if created {
        StatusCode::CREATED
    } else {
        StatusCode::NO_CONTENT
    }
}

/// RabbitMQ's 400 for keys a body must have: "[{key_missing,write},{key_missing,read}]".
fn require_keys(body: &Map<String, Value>, keys: &[&str]) -> Result<(), ApiError> {
    let missing: Vec<String> = keys
        .iter()
        .filter(|k| !body.contains_key(**k))
        .map(|k| format!("{{key_missing,{k}}}"))
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!("[{}]", missing.join(","))))
    }
}

/// A string field of a body, or a 400 naming it.
fn text_field<'a>(body: &'a Map<String, Value>, key: &str) -> Result<&'a str, ApiError> {
    match body.get(key) {
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(ApiError::bad_request(format!(
            "{key} must be a string, actually was {other}"
        ))),
        None => Err(ApiError::bad_request(format!("[{{key_missing,{key}}}]"))),
    }
}

/// Tags as RabbitMQ's API takes them: a comma-separated string ("a,b") or a list.
fn tags_field(value: Option<&Value>) -> Result<Vec<String>, ApiError> {
    let split = |s: &str| -> Vec<String> {
        s.split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned)
            .collect()
    };
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(s)) => Ok(split(s)),
        Some(Value::Array(items)) => items
            .iter()
            .map(|t| match t {
                Value::String(s) => Ok(s.trim().to_owned()),
                other => Err(ApiError::bad_request(format!(
                    "tags must be strings, actually was {other}"
                ))),
            })
            .filter(|t| !matches!(t, Ok(s) if s.is_empty()))
            .collect(),
        Some(other) => Err(ApiError::bad_request(format!(
            "tags must be a string or a list, actually was {other}"
        ))),
    }
}
