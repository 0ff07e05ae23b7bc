//! Connections, channels and consumers: `/api/connections` (list, get, DELETE with
//! `X-Reason`), their channels, per vhost and per user, `/api/channels` and
//! `/api/consumers`, as RabbitMQ 3.10's management API serves them.
//!
//! Reads the statistics registry (`Broker::stats`): lists of `Arc`s taken under a short
//! lock, JSON built after it is released. Visibility as RabbitMQ decides it:
//! monitoring and administrator users see everything, other management users their
//! own connections and channels, and consumers in the vhosts they may enter. A DELETE
//! sends the connection's `CloseSignal` (320 CONNECTION_FORCED); the connection task
//! closes itself, nothing here touches a socket.

use super::auth::Caller;
use super::error::{ApiError, ApiResult};
use super::list::ListQuery;
use super::objects::visible_vhost;
use super::{views, Api};
use crate::error::{Exception, ReplyCode};
use crate::stats::registry::ConnStats;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::Value;
use std::sync::Arc;

pub fn routes() -> Router<Api> {
    Router::new()
        .route("/api/connections", get(list_connections))
        .route(
            "/api/connections/{name}",
            get(get_connection).delete(delete_connection),
        )
        .route("/api/connections/{name}/channels", get(connection_channels))
        .route(
            "/api/connections/username/{user}",
            get(user_connections).delete(delete_user_connections),
        )
        .route("/api/vhosts/{vhost}/connections", get(vhost_connections))
        .route("/api/channels", get(list_channels))
        .route("/api/channels/{name}", get(get_channel))
        .route("/api/vhosts/{vhost}/channels", get(vhost_channels))
        .route("/api/consumers", get(list_consumers))
        .route("/api/consumers/{vhost}", get(vhost_consumers))
}

/// RabbitMQ's refusal of an object that is someone else's.
fn not_yours() -> ApiError {
    ApiError::not_authorised("User not authorised to access object")
}

/// Whether `caller` sees connection `c` (and its channels) in lists.
pub(crate) fn sees(caller: &Caller, c: &ConnStats) -> bool {
    caller.is_monitoring() || c.info.user == caller.name
}

/// The connection called `name`, if the caller may see it: 404 or 401 otherwise.
fn find(api: &Api, caller: &Caller, name: &str) -> ApiResult<Arc<ConnStats>> {
    let c = api
        .broker
        .stats
        .connection(name)
        .ok_or_else(ApiError::not_found)?;
    if !sees(caller, &c) {
        return Err(not_yours());
    }
    Ok(c)
}

fn connections_json(api: &Api, caller: &Caller, keep: impl Fn(&ConnStats) -> bool) -> Vec<Value> {
    let stats = &api.broker.stats;
    stats
        .connections()
        .iter()
        .filter(|c| sees(caller, c) && keep(c))
        .map(|c| views::connection(stats, &api.node.name, c))
        .collect()
}

fn channels_json(api: &Api, caller: &Caller, keep: impl Fn(&ConnStats) -> bool) -> Vec<Value> {
    let stats = &api.broker.stats;
    let mut out = Vec::new();
    for c in stats
        .connections()
        .iter()
        .filter(|c| sees(caller, c) && keep(c))
    {
        for ch in c.channels() {
            out.push(views::channel(stats, &api.node.name, c, &ch));
        }
    }
    out
}

async fn list_connections(
    caller: Caller,
    State(api): State<Api>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    Ok(Json(q.respond(connections_json(&api, &caller, |_| true))?))
}

async fn vhost_connections(
    caller: Caller,
    State(api): State<Api>,
    Path(vhost): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    visible_vhost(&api, &caller, &vhost)?;
    Ok(Json(q.respond(connections_json(&api, &caller, |c| {
        c.info.vhost == vhost
    }))?))
}

async fn get_connection(
    caller: Caller,
    State(api): State<Api>,
    Path(name): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let c = find(&api, &caller, &name)?;
    let v = views::connection(&api.broker.stats, &api.node.name, &c);
    Ok(Json(q.cut_one(v)))
}

/// The `X-Reason` header's text, or RabbitMQ's default; bytes that are not UTF-8 are
/// replaced (the exception keeps at most 255 bytes of the whole reply text).
fn reason(headers: &HeaderMap) -> String {
    headers
        .get("x-reason")
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_else(|| "Closed via management plugin".to_owned())
}

fn close(c: &ConnStats, headers: &HeaderMap) {
    c.close
        .close(Exception::new(ReplyCode::ConnectionForced, reason(headers)));
}

/// DELETE is the owner's or an administrator's (monitoring users may only look).
fn may_close(caller: &Caller, c: &ConnStats) -> bool {
    caller.is_administrator() || c.info.user == caller.name
}

async fn delete_connection(
    caller: Caller,
    State(api): State<Api>,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    let c = find(&api, &caller, &name)?;
    if !may_close(&caller, &c) {
        return Err(not_yours());
    }
    close(&c, &headers);
    Ok(StatusCode::NO_CONTENT)
}

async fn connection_channels(
    caller: Caller,
    State(api): State<Api>,
    Path(name): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let c = find(&api, &caller, &name)?;
    let stats = &api.broker.stats;
    let items = c
        .channels()
        .iter()
        .map(|ch| views::channel(stats, &api.node.name, &c, ch))
        .collect();
    Ok(Json(q.respond(items)?))
}

/// GET: monitoring users, or the user themselves.
fn check_user_access(caller: &Caller, user: &str, closing: bool) -> ApiResult<()> {
    let allowed = match closing {
        true => caller.is_administrator(),
        false => caller.is_monitoring(),
    };
    if allowed || caller.name == user {
        Ok(())
    } else {
        Err(not_yours())
    }
}

async fn user_connections(
    caller: Caller,
    State(api): State<Api>,
    Path(user): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    check_user_access(&caller, &user, false)?;
    let stats = &api.broker.stats;
    let items = stats
        .connections()
        .iter()
        .filter(|c| c.info.user == user)
        .map(|c| views::connection(stats, &api.node.name, c))
        .collect();
    Ok(Json(q.respond(items)?))
}

async fn delete_user_connections(
    caller: Caller,
    State(api): State<Api>,
    Path(user): Path<String>,
    headers: HeaderMap,
) -> ApiResult<StatusCode> {
    check_user_access(&caller, &user, true)?;
    for c in api.broker.stats.connections() {
        if c.info.user == user {
            close(&c, &headers);
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn list_channels(
    caller: Caller,
    State(api): State<Api>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    Ok(Json(q.respond(channels_json(&api, &caller, |_| true))?))
}

async fn vhost_channels(
    caller: Caller,
    State(api): State<Api>,
    Path(vhost): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    visible_vhost(&api, &caller, &vhost)?;
    Ok(Json(q.respond(channels_json(&api, &caller, |c| {
        c.info.vhost == vhost
    }))?))
}

async fn get_channel(
    caller: Caller,
    State(api): State<Api>,
    Path(name): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    let stats = &api.broker.stats;
    for c in stats.connections() {
        if let Some(ch) = c.channels().into_iter().find(|ch| ch.name == name) {
            if !sees(&caller, &c) {
                return Err(not_yours());
            }
            let mut v = views::channel(stats, &api.node.name, &c, &ch);
            // The single channel also lists its consumers, as RabbitMQ's does; the
            // per-queue and per-exchange lists are empty in basic statistics mode.
            let consumers: Vec<Value> = ch
                .consumers()
                .iter()
                .map(|consumer| views::consumer(&api.node.name, &c, &ch, consumer))
                .collect();
            if let Value::Object(m) = &mut v {
                m.insert("consumer_details".into(), Value::Array(consumers));
                m.insert("deliveries".into(), Value::Array(Vec::new()));
                m.insert("publishes".into(), Value::Array(Vec::new()));
            }
            return Ok(Json(q.cut_one(v)));
        }
    }
    Err(ApiError::not_found())
}

fn consumers_json(api: &Api, caller: &Caller, vhost: Option<&str>) -> Vec<Value> {
    let mut out = Vec::new();
    for c in api.broker.stats.connections() {
        let v = c.info.vhost.as_str();
        if vhost.is_some_and(|want| want != v) || !caller.sees_vhost(api, v) {
            continue;
        }
        for ch in c.channels() {
            for consumer in ch.consumers() {
                out.push(views::consumer(&api.node.name, &c, &ch, &consumer));
            }
        }
    }
    out
}

async fn list_consumers(
    caller: Caller,
    State(api): State<Api>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    Ok(Json(q.respond(consumers_json(&api, &caller, None))?))
}

async fn vhost_consumers(
    caller: Caller,
    State(api): State<Api>,
    Path(vhost): Path<String>,
    Query(q): Query<ListQuery>,
) -> ApiResult<Json<Value>> {
    visible_vhost(&api, &caller, &vhost)?;
    Ok(Json(q.respond(consumers_json(
        &api,
        &caller,
        Some(&vhost),
    ))?))
}
