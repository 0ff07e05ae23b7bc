//! The vhost's side of the event exchange: what topology changes tell `events`.
//!
//! Called from the vhost's declare, delete, bind and unbind paths, under the topology
//! lock: each call only builds headers and makes a non-blocking send (routing the event
//! happens later in the events task, after this lock was released), so the event order
//! is the order of the changes. With the event exchange off, callers never get here
//! (`VHost::events` is `None`).

use super::{Topology, VHost};
use crate::broker::events::{ChannelRef, Events};
use crate::broker::exchange::{Destination, Exchange};
use crate::broker::queue::Queue;
use amq_protocol::types::FieldTable;

impl VHost {
    /// binding.created or binding.deleted for one binding of `source`.
    pub(super) fn notify_binding(
        &self,
        e: &Events,
        created: bool,
        source: &str,
        dest: &Destination,
        key: &str,
        arguments: &FieldTable,
    ) {
        let destination = match dest {
            Destination::Queue(q) => (q.name.as_str(), true),
            Destination::Exchange(x) => (&**x, false),
        };
        e.binding(created, &self.name, source, destination, key, arguments);
    }

    /// binding.deleted for every binding that leads to `dest` (it is being deleted).
    pub(super) fn notify_unbound(&self, e: &Events, topo: &Topology, dest: &Destination) {
        for x in topo.exchanges.values() {
            for b in x.bindings().iter().filter(|b| &b.destination == dest) {
                self.notify_binding(e, false, &x.name, dest, &b.routing_key, &b.arguments);
            }
        }
    }

    /// exchange.created (`created`) or exchange.deleted for each of this vhost's
    /// exchanges: the vhost was created or is being deleted.
    pub fn notify_exchanges(&self, e: &Events, created: bool) {
        let topo = self.read();
        for x in topo.exchanges.values() {
            if created {
                e.exchange_created(&self.name, x);
            } else {
                e.exchange_deleted(&self.name, &x.name);
            }
        }
    }

    /// The queue goes: consumer.deleted for each of its consumers, queue.deleted, and
    /// binding.deleted for each binding to it (RabbitMQ's order). `internal`: the broker
    /// deletes it by itself.
    pub(super) fn notify_queue_deleted(
        &self,
        e: &Events,
        topo: &Topology,
        queue: &std::sync::Arc<Queue>,
        internal: bool,
    ) {
        for (connection, number, tag) in queue.consumer_refs() {
            let at = ChannelRef { connection, number };
            e.consumer_deleted(&self.name, &queue.name, at, &tag, true);
        }
        e.queue_deleted(&self.name, &queue.name, internal);
        self.notify_unbound(e, topo, &Destination::Queue(queue.clone()));
    }

    /// An auto-delete exchange lost its last binding: it goes (exchange.deleted).
    pub(super) fn remove_emptied(&self, topo: &mut Topology, name: &str) {
        if let Some(x) = topo.exchanges.remove(name) {
            if let Some(e) = self.events() {
                e.exchange_deleted(&self.name, &x.name);
            }
        }
    }

    /// exchange.deleted and binding.deleted for its bindings, both ways.
    pub(super) fn notify_exchange_deleted(&self, e: &Events, topo: &Topology, x: &Exchange) {
        let me = Destination::Exchange(std::sync::Arc::from(x.name.as_str()));
        self.notify_unbound(e, topo, &me);
        e.exchange_deleted(&self.name, &x.name);
        for b in x.bindings() {
            let key = &b.routing_key;
            self.notify_binding(e, false, &x.name, &b.destination, key, &b.arguments);
        }
    }
}
