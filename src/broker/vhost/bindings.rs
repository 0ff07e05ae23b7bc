//! queue.bind, queue.unbind, exchange.bind and exchange.unbind on a vhost's topology,
//! and the removal of every binding to a destination that goes.
//!
//! Called by channels and the management API through `VHost`, under the topology write
//! lock; auto-delete exchanges left without bindings go with the change.

use super::{Topology, VHost};
use crate::broker::exchange::Destination;
use crate::error::Exception;
use amq_protocol::types::FieldTable;
use std::sync::Arc;

impl VHost {
    pub fn bind_queue(
        &self,
        queue: &str,
        exchange: &str,
        key: &str,
        arguments: &FieldTable,
        connection: u64,
    ) -> Result<(), Exception> {
        if exchange.is_empty() {
            return Err(Self::default_exchange_refused());
        }
        let mut topo = self.write();
        self.check_alive(&topo)?;
        // With both missing, RabbitMQ names the exchange.
        if !topo.exchanges.contains_key(exchange) {
            return Err(self.no_exchange(exchange));
        }
        let q = topo
            .queues
            .get(queue)
            .cloned()
            .ok_or_else(|| self.no_queue(queue))?;
        let x = topo
            .exchanges
            .get_mut(exchange)
            .ok_or_else(|| self.no_exchange(exchange))?;
        q.check_exclusive(connection)?;
        let durable = x.durable && q.persisted();
        let dest = Destination::Queue(q);
        let added = x.bind(&dest, key, arguments)?;
        let history = x.recent_history().filter(|_| added);
        topo.dirty |= durable;
        if let Some(e) = self.events().filter(|_| added) {
            self.notify_binding(e, true, exchange, &dest, key, arguments);
        }
        drop(topo);
        if let Some(messages) = history {
            self.replay(&dest, messages);
        }
        Ok(())
    }

    /// exchange.bind: messages routed by `source` with this key also go through `destination`.
    pub fn bind_exchange(
        &self,
        destination: &str,
        source: &str,
        key: &str,
        arguments: &FieldTable,
    ) -> Result<(), Exception> {
        if destination.is_empty() || source.is_empty() {
            return Err(Self::default_exchange_refused());
        }
        let mut topo = self.write();
        self.check_alive(&topo)?;
        if !topo.exchanges.contains_key(destination) {
            return Err(self.no_exchange(destination));
        }
        let x = topo
            .exchanges
            .get_mut(source)
            .ok_or_else(|| self.no_exchange(source))?;
        let durable = x.durable;
        let dest = Destination::Exchange(Arc::from(destination));
        let added = x.bind(&dest, key, arguments)?;
        let history = x.recent_history().filter(|_| added);
        topo.dirty |= durable;
        if let Some(e) = self.events().filter(|_| added) {
            self.notify_binding(e, true, source, &dest, key, arguments);
        }
        drop(topo);
        if let Some(messages) = history {
            self.replay(&dest, messages);
        }
        Ok(())
    }

    pub fn unbind_exchange(
        &self,
        destination: &str,
        source: &str,
        key: &str,
        arguments: &FieldTable,
    ) -> Result<(), Exception> {
        if destination.is_empty() || source.is_empty() {
            return Err(Self::default_exchange_refused());
        }
        let mut topo = self.write();
        let Some(x) = topo.exchanges.get_mut(source) else {
            return Ok(());
        };
        let dest = Destination::Exchange(Arc::from(destination));
        let removed = x.unbind(&dest, key, arguments);
        let (durable, emptied) = (x.durable, x.auto_delete && !x.has_bindings());
        if let Some(e) = self.events().filter(|_| removed) {
            self.notify_binding(e, false, source, &dest, key, arguments);
        }
        if emptied {
            self.remove_emptied(&mut topo, source);
        }
        topo.dirty |= removed && durable;
        Ok(())
    }

    pub fn unbind_queue(
        &self,
        queue: &str,
        exchange: &str,
        key: &str,
        arguments: &FieldTable,
    ) -> Result<(), Exception> {
        if exchange.is_empty() {
            return Err(Self::default_exchange_refused());
        }
        // RabbitMQ answers unbind-ok when the queue, the exchange or the binding is
        // missing, and does not check exclusivity here (so no connection is needed).
        let mut topo = self.write();
        let Some(q) = topo.queues.get(queue).cloned() else {
            return Ok(());
        };
        let Some(x) = topo.exchanges.get_mut(exchange) else {
            return Ok(());
        };
        let durable = x.durable && q.persisted();
        let dest = Destination::Queue(q);
        let removed = x.unbind(&dest, key, arguments);
        let emptied = x.auto_delete && !x.has_bindings();
        if let Some(e) = self.events().filter(|_| removed) {
            self.notify_binding(e, false, exchange, &dest, key, arguments);
        }
        if emptied {
            self.remove_emptied(&mut topo, exchange);
        }
        topo.dirty |= removed && durable;
        Ok(())
    }
}

/// Removes every binding to `dest`, and the auto-delete exchanges this leaves unbound.
pub(super) fn remove_destination_locked(topo: &mut Topology, dest: &Destination) {
    let mut emptied = Vec::new();
    for x in topo.exchanges.values_mut() {
        if x.remove_destination(dest) > 0 && x.auto_delete && !x.has_bindings() {
            emptied.push(x.name.clone());
        }
    }
    for name in emptied {
        if let Some(x) = topo.exchanges.remove(&name) {
            topo.dirty |= x.durable;
        }
        remove_destination_locked(topo, &Destination::Exchange(Arc::from(name.as_str())));
    }
}
