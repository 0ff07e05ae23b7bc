//! The management listener: RabbitMQ's HTTP API (rabbitmq_management 3.10's paths,
//! methods, status codes and JSON shapes) on `--management-port`.
//!
//! It is another client of the broker: handlers call the same functions a channel
//! calls and read snapshots; none holds a broker lock across an `.await`. `auth` says
//! who calls and what their tags allow, `error` is RabbitMQ's error body, `list` the
//! paging, sorting, filtering and columns every list endpoint shares. Each group of
//! endpoints is a module with a `routes()` merged into `router` here.

pub mod admin;
pub mod auth;
pub mod connections;
pub mod diagnostics;
pub mod error;
pub mod finder;
pub mod list;
pub(crate) mod listeners;
pub mod objects;
pub mod overview;
pub mod policies;
pub mod prometheus;
pub mod ranges;
pub mod replicate;
pub mod tracer;
pub mod ui;
pub mod views;

use crate::broker::Broker;
use crate::config::Config;
use auth::Caller;
use axum::body::Bytes;
use axum::routing::get;
use axum::{Json, Router};
use error::{ApiError, ApiResult};
use serde_json::{json, Map, Value};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// What every handler gets: the broker and the facts about this node.
#[derive(Clone, Debug)]
pub struct Api {
    pub broker: Arc<Broker>,
    pub node: Arc<Node>,
}

/// This node as the API describes it.
#[derive(Debug)]
pub struct Node {
    /// RabbitMQ's node name form, `rabbit@<hostname>`, so tools that show or match it
    /// work unchanged.
    pub name: String,
    /// When the broker started (uptime, `/api/nodes`).
    pub started: SystemTime,
    /// Every listener the broker opened, with the port it really got.
    pub listeners: Vec<Listener>,
    /// The settings the broker runs with.
    pub config: Config,
}

/// One listening socket, in `/api/overview`'s `listeners` words.
#[derive(Clone, Debug)]
pub struct Listener {
    /// "amqp", "amqp/ssl", "http" or "http/prometheus".
    pub protocol: &'static str,
    pub ip: IpAddr,
    pub port: u16,
}

impl Node {
    pub fn new(config: Config, listeners: Vec<Listener>) -> Self {
        Node {
            name: config.node_name.clone().unwrap_or_else(crate::node::name),
            started: SystemTime::now(),
            listeners,
            config,
        }
    }

    /// Milliseconds since the broker started.
    pub fn uptime_ms(&self) -> u64 {
        self.started.elapsed().map_or(0, |d| d.as_millis() as u64)
    }
}

/// The largest request body read (RabbitMQ's management.http.max_body_size default): a
/// definitions file or a published message larger than this is refused with RabbitMQ's
/// 400 (see `objects::object_body`).
pub const MAX_BODY: usize = 20_000_000;

/// Every endpoint of the API.
pub fn router(api: Api) -> Router {
    Router::new()
        .route("/api/whoami", get(whoami))
        .merge(admin::routes())
        .merge(policies::routes())
        .merge(objects::routes())
        .merge(connections::routes())
        .merge(overview::routes())
        .merge(finder::routes())
        .merge(diagnostics::routes())
        .merge(tracer::routes())
        .merge(ui::routes())
        .fallback(ui::fallback)
        .layer(axum::middleware::from_fn_with_state(
            api.clone(),
            replicate::write,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .with_state(api)
}

/// `GET /api/whoami`: the caller's name and tags.
async fn whoami(caller: Caller) -> Json<Value> {
    Json(json!({"name": caller.name, "tags": caller.tags}))
}

/// A request body as JSON, or RabbitMQ's 400 for one that is not.
pub fn json_body(body: &Bytes) -> ApiResult<Value> {
    if body.is_empty() {
        return Ok(Value::Object(Default::default()));
    }
    serde_json::from_slice(body).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// A PUT or POST body that must be a JSON object: an empty body is an empty object,
/// anything else (whitespace alone too) RabbitMQ's 400 "not_json".
pub(crate) fn object_body(body: &Bytes) -> ApiResult<Map<String, Value>> {
    if body.is_empty() {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(m)) => Ok(m),
        _ => Err(ApiError::bad_request("not_json")),
    }
}

/// How long a stop waits for HTTP requests in flight.
const DRAIN: Duration = Duration::from_secs(5);

/// Serves `router` on `listener` until `shutdown` turns true, then lets requests in
/// flight finish (bounded).
pub async fn serve(listener: TcpListener, router: Router, mut shutdown: watch::Receiver<bool>) {
    let service = router.into_make_service_with_connect_info::<SocketAddr>();
    let (stopped_tx, stopped_rx) = tokio::sync::oneshot::channel::<()>();
    let server = axum::serve(listener, service).with_graceful_shutdown(async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
        let _ = stopped_tx.send(());
    });
    let server = std::pin::pin!(std::future::IntoFuture::into_future(server));
    tokio::select! {
        result = server => {
            if let Err(e) = result {
                tracing::error!(error = %e, "management listener failed");
            }
        }
        // Once asked to stop, in-flight requests get `DRAIN` to finish.
        _ = async {
            let _ = stopped_rx.await;
            tokio::time::sleep(DRAIN).await;
        } => tracing::warn!("HTTP requests did not finish in time; dropped"),
    }
}
