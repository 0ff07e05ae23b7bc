//! The broker's clock over the management API (warren's own, not RabbitMQ's): read it,
//! and move a manual one (`--clock manual`, for tests).
//!
//! - `GET /api/warren/clock`: `{"mode": "manual"|"real", "now": RFC 3339, "now_ms": Unix ms}`
//! - `POST /api/warren/clock/advance` with `{"by": "90m"}` or `{"ms": 5400000}`
//! - `PUT /api/warren/clock` with `{"now": "2027-01-01T00:00:00Z"}` (or Unix ms)
//!
//! A move answers once everything that fell due on the way has fired (the clock's
//! `advance`), with the clock as GET shows it. Administrators only. Refusals: 400 for a
//! body that does not say how far or where (naming the text), 409 for a move the clock
//! cannot make (the real clock; backwards). Called by `warren ctl clock` and tests;
//! holds no lock across the move's awaits (the clock takes none that others wait on).

use super::super::auth::Caller;
use super::super::error::{ApiError, ApiResult};
use super::super::{object_body, Api};
use crate::clock::text::{parse_duration, parse_time, MAX_MOVE};
use crate::clock::{Clock, ClockError};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Map, Value};
use std::time::Duration;

pub(super) fn routes() -> Router<Api> {
    Router::new()
        .route("/api/warren/clock", get(show).put(set))
        .route("/api/warren/clock/advance", post(advance))
}

/// The clock as the endpoints answer it.
fn view(clock: &Clock) -> Json<Value> {
    let ms = clock.unix_ms();
    Json(json!({
        "mode": if clock.is_manual() { "manual" } else { "real" },
        "now": crate::clock::rfc3339(ms),
        "now_ms": ms,
    }))
}

async fn show(State(api): State<Api>, caller: Caller) -> ApiResult<Json<Value>> {
    caller.require_administrator()?;
    Ok(view(&api.broker.clock))
}

async fn advance(State(api): State<Api>, caller: Caller, body: Bytes) -> ApiResult<Json<Value>> {
    caller.require_administrator()?;
    let body = object_body(&body)?;
    let by = how_far(&body)?;
    let clock = &api.broker.clock;
    clock.advance(by).await.map_err(refused)?;
    Ok(view(clock))
}

async fn set(State(api): State<Api>, caller: Caller, body: Bytes) -> ApiResult<Json<Value>> {
    caller.require_administrator()?;
    let body = object_body(&body)?;
    let to = match body.get("now") {
        Some(Value::String(text)) => parse_time(text),
        Some(Value::Number(n)) => match n.as_u64() {
            Some(ms) => parse_time(&ms.to_string()),
            None => Err(format!(
                "{n} is not a date: Unix milliseconds are whole and not negative"
            )),
        },
        Some(other) => Err(format!("'now' must be a string or a number, not {other}")),
        None => Err("say where to set the clock: {\"now\": \"2027-01-01T00:00:00Z\"}".to_owned()),
    }
    .map_err(ApiError::bad_request)?;
    let clock = &api.broker.clock;
    clock.set(to).await.map_err(refused)?;
    Ok(view(clock))
}

/// `by` (a duration text) or `ms` (a whole number), exactly one.
fn how_far(body: &Map<String, Value>) -> Result<Duration, ApiError> {
    let by = match (body.get("by"), body.get("ms")) {
        (Some(Value::String(text)), None) => parse_duration(text),
        (Some(other), None) => Err(format!(
            "'by' must be a string such as \"90m\", not {other}"
        )),
        (None, Some(Value::Number(n))) => match n.as_u64() {
            Some(ms) if Duration::from_millis(ms) <= MAX_MOVE => Ok(Duration::from_millis(ms)),
            Some(_) => Err(format!(
                "{n} ms is too long a move: at most 100 years at once"
            )),
            None => Err(format!(
                "'ms' must be a whole number of milliseconds, not {n}"
            )),
        },
        (None, Some(other)) => Err(format!(
            "'ms' must be a whole number of milliseconds, not {other}"
        )),
        (Some(_), Some(_)) => Err("give 'by' or 'ms', not both".to_owned()),
        (None, None) => {
            Err("say how far to move the clock: {\"by\": \"90m\"} or {\"ms\": 5400000}".to_owned())
        }
    };
    by.map_err(ApiError::bad_request)
}

/// The clock could not make the move: 409, with the clock's reason.
fn refused(e: ClockError) -> ApiError {
    ApiError::new(StatusCode::CONFLICT, "conflict", e.to_string())
}
