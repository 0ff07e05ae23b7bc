//! Management API writes on a cluster node: proposed to the cluster's log and replayed
//! by every node's own API when the log applies them, so users, vhosts, permissions,
//! policies, parameters, objects and imports are the same on every node (doc 3.6).
//!
//! `write` is a layer in front of every route: a write to a shared resource is
//! authenticated here, proposed with the caller's name, and answered with what this
//! node's replay answered once it applied it. A replayed request (`Replayed`) passes
//! through to its handler, which sees the proposing node's caller (`auth::Caller`).
//! Reads, publishes, gets, connection closes, the tracer and the clock stay node-local.

use super::auth::Caller;
use super::{Api, MAX_BODY};
use crate::broker::replica::{HttpAnswer, HttpCall, HOME_ARG};
use axum::body::Body;
use axum::extract::{FromRequestParts, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

/// Marks a request the cluster's log replays: its handler runs for `user`.
#[derive(Clone, Debug)]
pub struct Replayed {
    pub user: String,
}

/// The paths whose writes every node shares.
const SHARED: [&str; 15] = [
    "/api/users",
    "/api/vhosts",
    "/api/permissions",
    "/api/topic-permissions",
    "/api/policies",
    "/api/operator-policies",
    "/api/parameters",
    "/api/global-parameters",
    "/api/vhost-limits",
    "/api/user-limits",
    "/api/definitions",
    "/api/exchanges",
    "/api/queues",
    "/api/bindings",
    "/api/cluster-name",
];

/// Node-local actions under those paths: publishing, getting, queue actions.
const LOCAL_SUFFIXES: [&str; 3] = ["/publish", "/get", "/actions"];

fn shared_write(method: &Method, path: &str) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
        && SHARED
            .iter()
            .any(|p| path == *p || path.starts_with(&format!("{p}/")))
        && !LOCAL_SUFFIXES.iter().any(|s| path.ends_with(s))
}

/// The layer: shared writes go through the cluster's log.
pub async fn write(State(api): State<Api>, req: Request, next: Next) -> Response {
    let Some(cluster) = api.broker.cluster() else {
        return next.run(req).await;
    };
    if req.extensions().get::<Replayed>().is_some() || !shared_write(req.method(), req.uri().path())
    {
        return next.run(req).await;
    }
    let (mut parts, body) = req.into_parts();
    let caller = match Caller::from_request_parts(&mut parts, &api).await {
        Ok(caller) => caller,
        Err(e) => return e.into_response(),
    };
    let body = match axum::body::to_bytes(body, MAX_BODY).await {
        Ok(body) => body,
        Err(_) => return StatusCode::PAYLOAD_TOO_LARGE.into_response(),
    };
    let body = home_of_new_queue(&parts.method, parts.uri.path(), body, &cluster.node_name());
    let call = HttpCall {
        method: parts.method.to_string(),
        uri: parts.uri.to_string(),
        user: caller.name,
        content_type: parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        body,
    };
    let (tx, rx) = tokio::sync::oneshot::channel();
    cluster.propose_http(
        call,
        Box::new(move |answer| {
            let _ = tx.send(answer);
        }),
    );
    match rx.await {
        Ok(Some(answer)) => respond(answer),
        _ => (
            StatusCode::SERVICE_UNAVAILABLE,
            axum::Json(serde_json::json!({
                "error": "timeout",
                "reason": "timed out waiting for a majority of the cluster",
            })),
        )
            .into_response(),
    }
}

/// A classic queue declared through the API lives on the node that was asked: its
/// arguments say so (`HOME_ARG`), as a channel's declare does, so every other node keeps a
/// stub of it. Any other body is passed on as it came.
fn home_of_new_queue(method: &Method, path: &str, body: bytes::Bytes, node: &str) -> bytes::Bytes {
    let segments = path.trim_start_matches("/api/queues/").split('/').count();
    if *method != Method::PUT || !path.starts_with("/api/queues/") || segments != 2 {
        return body;
    }
    let Ok(serde_json::Value::Object(mut m)) = serde_json::from_slice(&body) else {
        return body;
    };
    let args = m
        .entry("arguments")
        .or_insert_with(|| serde_json::Value::Object(Default::default()));
    let Some(args) = args.as_object_mut() else {
        return body;
    };
    let kind = args
        .get("x-queue-type")
        .and_then(|t| t.as_str())
        .unwrap_or("classic");
    if kind != "classic" {
        return body;
    }
    args.insert(HOME_ARG.into(), serde_json::Value::String(node.to_owned()));
    serde_json::to_vec(&m)
        .map(bytes::Bytes::from)
        .unwrap_or(body)
}

fn respond(answer: HttpAnswer) -> Response {
    let status = StatusCode::from_u16(answer.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut response = Response::builder().status(status);
    if let Some(ct) = answer.content_type {
        response = response.header(header::CONTENT_TYPE, ct);
    }
    response
        .body(Body::from(answer.body))
        .unwrap_or_else(|_| StatusCode::INTERNAL_SERVER_ERROR.into_response())
}

#[cfg(feature = "cluster")]
/// How the cluster's log replays a write on this node: through the API's own router,
/// built for each write (the replayer lives in the broker: it must not hold it).
pub fn replayer(
    broker: std::sync::Weak<crate::broker::Broker>,
    node: std::sync::Arc<super::Node>,
) -> crate::broker::replica::HttpReplayer {
    std::sync::Arc::new(move |call: HttpCall| {
        let (broker, node) = (broker.upgrade(), node.clone());
        Box::pin(async move {
            let Some(broker) = broker else {
                return answer(StatusCode::SERVICE_UNAVAILABLE, bytes::Bytes::new(), None);
            };
            let router = super::router(Api { broker, node });
            let mut builder = Request::builder()
                .method(call.method.as_str())
                .uri(call.uri.as_str())
                .extension(Replayed { user: call.user });
            if let Some(ct) = &call.content_type {
                builder = builder.header(header::CONTENT_TYPE, ct);
            }
            let Ok(req) = builder.body(Body::from(call.body)) else {
                return answer(StatusCode::BAD_REQUEST, bytes::Bytes::new(), None);
            };
            let response = match tower_service::Service::call(&mut router.into_service(), req).await
            {
                Ok(r) => r,
                Err(never) => match never {},
            };
            let status = response.status();
            let content_type = response
                .headers()
                .get(header::CONTENT_TYPE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let body = axum::body::to_bytes(response.into_body(), MAX_BODY)
                .await
                .unwrap_or_default();
            answer(status, body, content_type)
        })
    })
}

#[cfg(feature = "cluster")]
fn answer(status: StatusCode, body: bytes::Bytes, content_type: Option<String>) -> HttpAnswer {
    HttpAnswer {
        status: status.as_u16(),
        content_type,
        body,
    }
}
