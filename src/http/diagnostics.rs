//! Developer diagnostics over HTTP: `GET /api/diagnostics` and
//! `GET /api/diagnostics/{vhost}` (warren's own paths; RabbitMQ has none), the findings
//! of `stats::diagnostics` as a JSON list.
//!
//! Visibility follows the caller's vhost access: monitoring and administrator users see
//! every vhost's findings, other management users those of the vhosts they may enter; a
//! missing vhost is a 404 and one the caller may not see a 401, as other per-vhost lists
//! answer. Builds the list on demand (no lock held across an `.await`).

use super::auth::Caller;
use super::error::ApiResult;
use super::objects::visible_vhost;
use super::Api;
use crate::stats::diagnostics;
use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::Value;

pub fn routes() -> Router<Api> {
    Router::new()
        .route("/api/diagnostics", get(all))
        .route("/api/diagnostics/{vhost}", get(in_vhost))
}

/// Every finding in a vhost the caller sees.
async fn all(State(api): State<Api>, caller: Caller) -> Json<Value> {
    let list = diagnostics::findings(&api.broker)
        .iter()
        .filter(|f| caller.sees_vhost(&api, &f.vhost))
        .map(diagnostics::Finding::to_json)
        .collect();
    Json(Value::Array(list))
}

/// The findings of one vhost.
async fn in_vhost(
    State(api): State<Api>,
    caller: Caller,
    Path(vhost): Path<String>,
) -> ApiResult<Json<Value>> {
    visible_vhost(&api, &caller, &vhost)?;
    let list = diagnostics::findings(&api.broker)
        .iter()
        .filter(|f| f.vhost == vhost)
        .map(diagnostics::Finding::to_json)
        .collect();
    Ok(Json(Value::Array(list)))
}
