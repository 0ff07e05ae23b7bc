//! Start-up: the held messages the store recovered go back to their delayed exchanges.
//!
//! Called by `Broker::open` for each recovered record, after the topology is restored
//! and before clients come. Records of an exchange that no longer exists (or is no
//! longer a durable delayed exchange) are settled so their segments are reclaimed.
//! Overdue messages are simply held with their past due time: the firing task routes
//! them at once, in due order.

use super::{split_store_key, split_stored_exchange, Target};
use crate::broker::message::Message;
use crate::broker::Broker;
use crate::store::{RecoveredRecord, StoreHandle};
use std::collections::HashMap;
use std::sync::Arc;

pub struct Recovering<'a> {
    broker: &'a Broker,
    store: &'a StoreHandle,
    /// Each store key seen, with where its records go (None: dropped).
    targets: HashMap<String, Option<Arc<Target>>>,
    pub held: usize,
}

impl<'a> Recovering<'a> {
    pub fn new(broker: &'a Broker, store: &'a StoreHandle) -> Self {
        Recovering {
            broker,
            store,
            targets: HashMap::new(),
            held: 0,
        }
    }

    /// Takes `rec` if `key` is a delayed exchange's store key (and says so).
    pub fn take(&mut self, key: &str, rec: &RecoveredRecord<'_>) -> bool {
        let Some((vhost, exchange)) = split_store_key(key) else {
            return false;
        };
        if !self.targets.contains_key(key) {
            let target = self
                .broker
                .vhost(vhost)
                .and_then(|v| v.recovered_target(exchange));
            if target.is_none() {
                tracing::warn!(
                    vhost,
                    exchange,
                    "held messages of a delayed exchange that no longer exists: dropped"
                );
                self.store.drop_queue(&Arc::from(key));
            }
            self.targets.insert(key.to_owned(), target);
        }
        let Some(Some(target)) = self.targets.get(key) else {
            return true;
        };
        let Some((due, published_to)) = split_stored_exchange(rec.exchange) else {
            tracing::warn!(id = rec.id, "held message with a damaged due time: dropped");
            self.store.ack(&Arc::from(key), rec.id);
            return true;
        };
        let msg = Message::new(published_to, rec.routing_key, rec.properties, rec.body);
        self.broker.delayed.hold(target.clone(), msg, due, rec.id);
        self.held += 1;
        true
    }
}
