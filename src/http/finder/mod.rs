//! warren's own endpoints for finding things, which RabbitMQ's API does not have:
//! `GET /api/queues/{vhost}/{name}/browse` (a queue's ready messages looked at without
//! being taken, optionally searched) and `GET /api/search` (queues, exchanges,
//! connections and users by name across every vhost the caller sees).
//!
//! Called by the router; the web UI's queue page and search box use them. Access is
//! decided as for the RabbitMQ endpoints nearest to each (a get for browse, the lists
//! for search). Nothing here changes the broker, and nothing reads a disk on a runtime
//! worker or under a lock.

mod browse;
mod matching;
mod search;

use super::Api;
use axum::Router;

/// Every endpoint of this group.
pub fn routes() -> Router<Api> {
    Router::new()
        .merge(browse::routes())
        .merge(search::routes())
}
