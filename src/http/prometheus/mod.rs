//! Prometheus metrics on their own listener (`--prometheus-port`, RabbitMQ's 15692),
//! with rabbitmq_prometheus 3.10's metric names, kinds and labels, so dashboards built
//! for RabbitMQ (the published RabbitMQ-Overview one) read warren unchanged.
//!
//! `/metrics` sums every object's metrics into one sample per family, as RabbitMQ does
//! by default; `/metrics/per-object` gives a sample per queue, channel and connection.
//! No login, as RabbitMQ's endpoint. A scrape reads snapshots and counters; it never
//! holds a broker lock while formatting. `node` writes the process and node families;
//! `objects` the queue, channel, connection and global ones.

mod node;
mod objects;
pub mod text;

use super::Api;
use axum::extract::State;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use text::Exposition;

/// The content type rabbitmq_prometheus answers with.
const CONTENT: &str = "text/plain; version=0.0.4";

/// The metrics listener's routes.
pub fn router(api: Api) -> Router {
    Router::new()
        .route("/metrics", get(aggregated))
        .route("/metrics/per-object", get(per_object))
        .fallback(|| async { axum::http::StatusCode::NOT_FOUND })
        .with_state(api)
}

async fn aggregated(State(api): State<Api>) -> impl IntoResponse {
    ([(CONTENT_TYPE, CONTENT)], scrape(&api, false))
}

async fn per_object(State(api): State<Api>) -> impl IntoResponse {
    ([(CONTENT_TYPE, CONTENT)], scrape(&api, true))
}

/// One scrape: every family, aggregated or per object.
pub fn scrape(api: &Api, per_object: bool) -> String {
    let mut out = Exposition::default();
    node::write(api, &mut out);
    objects::write(api, per_object, &mut out);
    out.finish()
}
