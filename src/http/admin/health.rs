//! The aliveness test and the health checks, as RabbitMQ 3.10 answers them: 200
//! `{"status":"ok", ...}` or 503 `{"status":"failed","reason":..., ...}` with the same
//! extra fields (alarms, missing port or protocol, expiring certificates).
//!
//! `/api/aliveness-test/{vhost}` declares the queue "aliveness-test" there, puts a
//! message in it and takes it out again, through the vhost's own declare and the
//! queue's own publish. 3.10.8 has no `is-in-service` check (404, as the reference).
//! The certificate file is read on a blocking thread, never on a runtime worker.

use super::super::auth::Caller;
use super::super::error::{ApiError, ApiResult};
use super::super::Api;
use crate::broker::message::Message;
use crate::broker::vhost::QueueDeclare;
use crate::tls::validity;
use amq_protocol::types::FieldTable;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};
use std::time::{SystemTime, UNIX_EPOCH};

/// The queue the aliveness test uses (RabbitMQ's name).
const ALIVENESS_QUEUE: &str = "aliveness-test";

pub(super) fn routes() -> Router<Api> {
    Router::new()
        .route("/api/aliveness-test/{vhost}", get(aliveness))
        .route("/api/health/checks/alarms", get(alarms))
        .route("/api/health/checks/local-alarms", get(local_alarms))
        .route("/api/health/checks/virtual-hosts", get(virtual_hosts))
        .route(
            "/api/health/checks/port-listener/{port}",
            get(port_listener),
        )
        .route(
            "/api/health/checks/protocol-listener/{protocol}",
            get(protocol_listener),
        )
        .route(
            "/api/health/checks/certificate-expiration/{within}/{unit}",
            get(certificate_expiration),
        )
        .route(
            "/api/health/checks/node-is-quorum-critical",
            get(single_node),
        )
        .route(
            "/api/health/checks/node-is-mirror-sync-critical",
            get(single_node),
        )
}

fn ok(extra: Value) -> Response {
    let mut body = json!({"status": "ok"});
    if let (Some(b), Value::Object(extra)) = (body.as_object_mut(), extra) {
        b.extend(extra);
    }
    Json(body).into_response()
}

/// RabbitMQ's 503 for a failed check: status, reason and what the check adds.
fn failed(reason: &str, extra: Value) -> Response {
    let mut body = json!({"status": "failed", "reason": reason});
    if let (Some(b), Value::Object(extra)) = (body.as_object_mut(), extra) {
        b.extend(extra);
    }
    (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response()
}

async fn aliveness(
    State(api): State<Api>,
    caller: Caller,
    Path(vhost): Path<String>,
) -> ApiResult<Response> {
    let v = api.broker.vhost(&vhost).ok_or_else(ApiError::not_found)?;
    caller.require_act_in(&api, &vhost)?;
    let arguments = FieldTable::default();
    let declare = QueueDeclare {
        name: ALIVENESS_QUEUE,
        passive: false,
        durable: false,
        exclusive: false,
        auto_delete: false,
        arguments: &arguments,
        server_named: false,
    };
    let queue = match v.declare_queue(&declare, 0) {
        Ok(d) => d.queue,
        Err(e) => return Ok(failed(&e.text, json!({}))),
    };
    // Empty properties (no flags), as a bare basic.publish sends them.
    let msg = Message::new("", ALIVENESS_QUEUE, &[0, 0], b"test_message");
    queue.publish(msg, 0, 1);
    if queue.purge() == 0 {
        return Ok(failed("aliveness test message was not found", json!({})));
    }
    Ok(ok(json!({})))
}

/// The alarms in effect on this node, as RabbitMQ's `format_as_maps` lists them.
fn alarm_list(api: &Api) -> Vec<Value> {
    let memory = &api.broker.memory;
    if !memory.alarmed() {
        return Vec::new();
    }
    let resources: &[&str] = match memory.alarm_reason() {
        "low on disk & memory" => &["disk", "memory"],
        "low on disk" => &["disk"],
        _ => &["memory"],
    };
    resources
        .iter()
        .map(|r| json!({"node": api.node.name, "resource": r}))
        .collect()
}

async fn alarms(State(api): State<Api>, _caller: Caller) -> Response {
    match alarm_list(&api) {
        a if a.is_empty() => ok(json!({})),
        a => failed(
            "There are alarms in effect in the cluster",
            json!({"alarms": a}),
        ),
    }
}

async fn local_alarms(State(api): State<Api>, _caller: Caller) -> Response {
    match alarm_list(&api) {
        a if a.is_empty() => ok(json!({})),
        a => failed(
            "There are alarms in effect on the node",
            json!({"alarms": a}),
        ),
    }
}

/// Every vhost of a warren node runs while the node runs.
async fn virtual_hosts(_caller: Caller) -> Response {
    ok(json!({}))
}

async fn port_listener(
    State(api): State<Api>,
    _caller: Caller,
    Path(port): Path<String>,
) -> ApiResult<Response> {
    let port: u16 = port
        .trim()
        .parse()
        .map_err(|_| ApiError::bad_request("Invalid port"))?;
    let mut ports: Vec<u16> = api.node.listeners.iter().map(|l| l.port).collect();
    ports.sort_unstable();
    ports.dedup();
    Ok(if ports.contains(&port) {
        ok(json!({"port": port}))
    } else {
        failed(
            "No active listener",
            json!({"missing": port, "ports": ports}),
        )
    })
}

/// RabbitMQ's other names for the protocols warren serves.
fn normalize_protocol(protocol: &str) -> String {
    let p = protocol.to_lowercase();
    match p.as_str() {
        "amqp091" | "amqp0.9.1" | "amqp0-9-1" | "amqp0_9_1" | "amqp10" | "amqp1.0" | "amqp1-0"
        | "amqp1_0" => "amqp".to_owned(),
        "amqps" => "amqp/ssl".to_owned(),
        "http1" | "http1.1" | "http_api" | "management" | "management_ui" | "ui" => {
            "http".to_owned()
        }
        "cli" | "distribution" => "clustering".to_owned(),
        _ => p,
    }
}

async fn protocol_listener(
    State(api): State<Api>,
    _caller: Caller,
    Path(protocol): Path<String>,
) -> Response {
    let protocol = normalize_protocol(&protocol);
    let mut protocols: Vec<&str> = Vec::new();
    for l in &api.node.listeners {
        if !protocols.contains(&l.protocol) {
            protocols.push(l.protocol);
        }
    }
    if protocols.contains(&protocol.as_str()) {
        ok(json!({"protocol": protocol}))
    } else {
        failed(
            "No active listener",
            json!({"missing": protocol, "protocols": protocols}),
        )
    }
}

/// RabbitMQ's units; a month is a twelfth of a year.
fn unit_seconds(unit: &str) -> Option<f64> {
    const DAY: f64 = 86_400.0;
    match unit.to_lowercase().as_str() {
        "days" => Some(DAY),
        "weeks" => Some(DAY * 7.0),
        "months" => Some(DAY * 365.0 / 12.0),
        "years" => Some(DAY * 365.0),
        _ => None,
    }
}

/// Fails when a certificate of the amqps listener (certificate file or CA file) stops
/// being valid within the given time; `ok` without TLS.
async fn certificate_expiration(
    State(api): State<Api>,
    _caller: Caller,
    Path((within, unit)): Path<(String, String)>,
) -> ApiResult<Response> {
    let within: i64 = within
        .parse()
        .map_err(|_| ApiError::bad_request("Invalid expiration value."))?;
    let unit = unit_seconds(&unit).ok_or_else(|| {
        ApiError::bad_request(
            "Time unit not recognised. Supported units: days, weeks, months, years.",
        )
    })?;
    let config = &api.node.config;
    let Some(certfile) = config.tls_cert.clone() else {
        return Ok(ok(json!({})));
    };
    let cacertfile = config.tls_ca.clone();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let deadline = now.saturating_add((within as f64 * unit) as i64);
    let (cert, ca) = {
        let (certfile, cacertfile) = (certfile.clone(), cacertfile.clone());
        tokio::task::spawn_blocking(move || {
            let cert = expiring(&certfile, deadline);
            let ca = cacertfile.map(|p| expiring(&p, deadline));
            (cert, ca)
        })
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?
    };
    let ca = ca.unwrap_or_else(|| json!([]));
    if cert == json!([]) && ca == json!([]) {
        return Ok(ok(json!({})));
    }
    let path = |p: &std::path::Path| p.display().to_string();
    let listeners: Vec<Value> = api
        .node
        .listeners
        .iter()
        .filter(|l| l.protocol == "amqp/ssl")
        .map(|l| {
            json!({"node": api.node.name, "protocol": "amqp/ssl",
                   "interface": l.ip.to_string(), "port": l.port,
                   "certfile": path(&certfile),
                   "cacertfile": cacertfile.as_deref().map(path).unwrap_or_default(),
                   "certfile_expires_on": cert, "cacertfile_expires_on": ca})
        })
        .collect();
    Ok(failed(
        "Certificates expiring",
        json!({"expired": listeners}),
    ))
}

/// The expiry dates before `deadline` of the certificates in `path`, as RabbitMQ
/// prints them, or its error for a file it cannot read.
fn expiring(path: &std::path::Path, deadline: i64) -> Value {
    match validity::expiries(path) {
        Ok(all) if all.is_empty() => {
            json!({"error": "The certificate file provided does not contain any PEM entry."})
        }
        Ok(all) => Value::Array(
            all.into_iter()
                .filter(|at| at.is_none_or(|t| t < deadline))
                .map(|at| match at {
                    Some(t) => validity::format(t).into(),
                    None => json!({"error": "unreadable certificate"}),
                })
                .collect(),
        ),
        Err(e) => json!({"error": e.to_string()}),
    }
}

/// A single node holds no quorum or mirror another node needs.
async fn single_node(_caller: Caller) -> Response {
    ok(json!({"reason": "single node cluster"}))
}
