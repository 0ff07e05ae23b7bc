//! `/api/vhosts` and `/api/vhosts/{vhost}` (list, get, PUT with description, tags,
//! default queue type and tracing; DELETE), and a vhost's permission lists
//! (`/api/vhosts/{vhost}/permissions`, `.../topic-permissions`), as RabbitMQ 3.10.
//!
//! Lists show each caller the vhosts they may see; one vhost, changes and permission
//! lists are for administrators. Deleting a vhost waits (off any lock) until the broker
//! dropped it from disk too. `vhost_json` is the one place a vhost's JSON is built.

use super::super::auth::Caller;
use super::super::error::{ApiError, ApiResult};
use super::super::list::ListQuery;
use super::super::ranges::Ranges;
use super::super::Api;
use super::{object_body, put_status, tags_field};
use crate::broker::vhost::VhostMetadata;
use crate::broker::vhosts::VhostInfo;
use crate::stats::history::VhostCharts;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Map, Value};

pub(super) fn routes() -> Router<Api> {
    Router::new()
        .route("/api/vhosts", get(list))
        .route("/api/vhosts/{vhost}", get(one).put(put).delete(delete))
        .route("/api/vhosts/{vhost}/permissions", get(permissions))
        .route(
            "/api/vhosts/{vhost}/topic-permissions",
            get(topic_permissions),
        )
}

/// A vhost as `/api/vhosts` shows it.
pub(super) fn vhost_json(api: &Api, info: &VhostInfo) -> Value {
    let m = &info.metadata;
    let mut v = Map::new();
    v.insert("name".into(), info.name.as_str().into());
    v.insert("description".into(), m.description.as_str().into());
    v.insert("tags".into(), json!(m.tags));
    v.insert(
        "default_queue_type".into(),
        m.default_queue_type
            .as_deref()
            .unwrap_or("undefined")
            .into(),
    );
    v.insert("metadata".into(), m.to_json());
    // Message tracing (the firehose) is not implemented: always off.
    v.insert("tracing".into(), false.into());
    v.insert(
        "cluster_state".into(),
        json!({ api.node.name.as_str(): "running" }),
    );
    crate::stats::json::fill_vhost(&api.broker.stats, &info.name, &mut v);
    Value::Object(v)
}

async fn list(
    State(api): State<Api>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let items = caller
        .seen_vhosts(&api)
        .iter()
        .map(|v| vhost_json(&api, v))
        .collect();
    Ok(Json(q.respond(items)?))
}

async fn one(
    State(api): State<Api>,
    caller: Caller,
    Path(name): Path<String>,
    Query(q): Query<ListQuery>,
    Query(pairs): Query<Vec<(String, String)>>,
) -> ApiResult<Json<Value>> {
    caller.require_administrator()?;
    let ranges = Ranges::parse(&pairs)?;
    let info = api
        .broker
        .vhost_info(&name)
        .ok_or_else(ApiError::not_found)?;
    let mut v = vhost_json(&api, &info);
    if let Value::Object(m) = &mut v {
        let charts = VhostCharts {
            history: api.broker.stats.history(),
            vhosts: &[info.name.as_str()],
            now_ms: api.broker.stats.now_ms(),
        };
        charts.vhost(m, ranges.msg_rates, ranges.lengths, ranges.data_rates);
    }
    Ok(Json(q.cut_one(v)))
}

/// Creates the vhost (201, its creator given full permissions in it) or replaces its description and tags (204). RabbitMQ 3.10
/// reads the default queue type from `defaultqueuetype`; `default_queue_type` (the
/// later versions' key) is taken too.
async fn put(
    State(api): State<Api>,
    caller: Caller,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<StatusCode> {
    caller.require_administrator()?;
    let body = object_body(&body)?;
    let text = |key: &str| body.get(key).and_then(Value::as_str).map(str::to_owned);
    let metadata = VhostMetadata {
        description: text("description").unwrap_or_default(),
        tags: tags_field(body.get("tags"))?,
        default_queue_type: text("defaultqueuetype").or_else(|| text("default_queue_type")),
    };
    metadata
        .check()
        .map_err(|e| ApiError::bad_request(e.to_owned()))?;
    if name.is_empty() {
        return Err(ApiError::bad_request("vhost name cannot be empty"));
    }
    let created = api
        .broker
        .add_vhost(&name, metadata.clone())
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    if created {
        caller.notify(&api.broker, |e| {
            if let Some(v) = api.broker.vhost(&name) {
                v.notify_exchanges(e, true);
            }
            e.vhost_created(&name, &metadata.description, &metadata.tags);
        });
        // As RabbitMQ's management plugin: whoever creates a vhost may use it at once
        // (full permissions for the creator), so a UI can go on to add a policy in it.
        api.broker
            .set_permissions(&caller.name, &name, ".*", ".*", ".*")
            .map_err(|e| ApiError::bad_request(e.to_string()))?;
        caller.notify(&api.broker, |e| {
            e.permission_created(&caller.name, &name, ("configure", ".*"), (".*", ".*"));
        });
    } else {
        let vhost = api.broker.vhost(&name).ok_or_else(ApiError::not_found)?;
        let old = vhost.metadata();
        vhost.set_metadata(VhostMetadata {
            // An update does not change the default queue type unless it names one.
            default_queue_type: metadata.default_queue_type.or(old.default_queue_type),
            ..metadata
        });
        api.broker.definitions_changed();
    }
    Ok(put_status(created))
}

async fn delete(
    State(api): State<Api>,
    caller: Caller,
    Path(name): Path<String>,
) -> ApiResult<StatusCode> {
    caller.require_administrator()?;
    let had_limits = matches!(api.broker.vhost_limits(&name), Ok(Some(_)));
    // What goes with the vhost, told before it goes (as RabbitMQ orders these events).
    caller.notify(&api.broker, |e| {
        for p in api.broker.list_vhost_permissions(&name).unwrap_or_default() {
            e.permission_deleted(false, &p.user, &name);
        }
        if let Some(v) = api.broker.vhost(&name) {
            v.notify_exchanges(e, false);
        }
    });
    api.broker
        .delete_vhost(&name)
        .await
        .map_err(|_| ApiError::not_found())?;
    caller.notify(&api.broker, |e| e.vhost_deleted(&name, had_limits));
    Ok(StatusCode::NO_CONTENT)
}

async fn permissions(
    State(api): State<Api>,
    caller: Caller,
    Path(name): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    caller.require_administrator()?;
    super::permissions::owned_list(
        api.broker.list_vhost_permissions(&name),
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
        api.broker.list_vhost_topic_permissions(&name),
        super::permissions::topic_permission_json,
        &q,
    )
}
