//! A durable queue's handle on the message store: the store, the queue's key in it, and
//! the definitions writer whose file must hold the queue before a confirm goes out.
//!
//! Built by the vhost (through `Persistence::queue_store`) for a durable queue when the
//! broker has a data directory, and held by the `Queue`, which records in it what happens
//! to its persistent messages. Sends only: the store does its disk work on its own
//! threads.

use crate::store::defwriter::DefinitionsHandle;
use crate::store::StoreHandle;
use std::sync::Arc;

/// A durable queue's handle on the message store.
#[derive(Clone)]
pub struct QueueStore {
    pub store: StoreHandle,
    /// The store's key for this queue (vhost and name).
    pub key: Arc<str>,
    /// Confirms of its messages also wait for the definitions that hold it.
    pub definitions: DefinitionsHandle,
}

impl std::fmt::Debug for QueueStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueStore")
            .field("key", &self.key)
            .finish()
    }
}
