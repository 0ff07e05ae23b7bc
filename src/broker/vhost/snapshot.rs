//! Read-only copies of a vhost's topology for the management API: its exchanges, its
//! queues (as `Arc`s) and its bindings, taken under the topology read lock and returned
//! owned, so the caller builds JSON, sorts and pages without any broker lock.
//!
//! Called by `http::objects`. Never changes the topology and never touches a queue's
//! lock while the topology lock is held (a queue's own figures are read afterwards,
//! from the `Arc`, by `Queue::snapshot`).

use super::VHost;
use crate::broker::exchange::{Destination, Exchange, ExchangeKind};
use crate::broker::queue::Queue;
use amq_protocol::types::FieldTable;
use std::sync::Arc;

/// One exchange as declared.
#[derive(Clone, Debug)]
pub struct ExchangeInfo {
    pub name: String,
    pub kind: ExchangeKind,
    pub durable: bool,
    pub auto_delete: bool,
    pub internal: bool,
    pub arguments: FieldTable,
    /// The policy applied to it, if any.
    pub policy: Option<String>,
    /// Messages it holds (delayed exchanges only).
    pub messages_delayed: Option<u64>,
}

/// One binding, named as RabbitMQ lists it.
#[derive(Clone, Debug)]
pub struct BindingInfo {
    pub source: String,
    pub destination: String,
    /// The destination is a queue (else an exchange).
    pub to_queue: bool,
    pub routing_key: String,
    pub arguments: FieldTable,
}

impl ExchangeInfo {
    fn of(x: &Exchange) -> ExchangeInfo {
        ExchangeInfo {
            name: x.name.clone(),
            kind: x.kind,
            durable: x.durable,
            auto_delete: x.auto_delete,
            internal: x.internal,
            arguments: x.arguments.clone(),
            policy: x.policy.clone(),
            messages_delayed: None,
        }
    }
}

impl VHost {
    fn info_of(&self, topo: &super::Topology, x: &Exchange) -> ExchangeInfo {
        ExchangeInfo {
            messages_delayed: self.held_count(topo, &x.name),
            ..ExchangeInfo::of(x)
        }
    }

    /// Every exchange, by name.
    pub fn exchange_infos(&self) -> Vec<ExchangeInfo> {
        let topo = self.read();
        let mut out: Vec<ExchangeInfo> = topo
            .exchanges
            .values()
            .map(|x| self.info_of(&topo, x))
            .collect();
        drop(topo);
        out.sort_unstable_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// One exchange, if it exists (`amq.default` is the default exchange).
    pub fn exchange_info(&self, name: &str) -> Option<ExchangeInfo> {
        let topo = self.read();
        let x = topo.exchanges.get(super::canonical_exchange(name))?;
        Some(self.info_of(&topo, x))
    }

    /// Every queue (reply-to queues are not listed), by name.
    pub fn queue_list(&self) -> Vec<Arc<Queue>> {
        let mut out: Vec<Arc<Queue>> = self.read().queues.values().cloned().collect();
        out.sort_unstable_by(|a, b| a.name.as_str().cmp(b.name.as_str()));
        out
    }

    /// How many exchanges the vhost has (object_totals).
    pub fn exchange_count(&self) -> usize {
        self.read().exchanges.len()
    }

    /// One queue by name, whoever owns it (the API sees exclusive queues too).
    pub fn queue_any(&self, name: &str) -> Option<Arc<Queue>> {
        self.read().queues.get(name).cloned()
    }

    /// Every binding, RabbitMQ's order: the default exchange's implicit binding of each
    /// queue first, then by source, destination, key.
    pub fn binding_infos(&self) -> Vec<BindingInfo> {
        let topo = self.read();
        let mut out: Vec<BindingInfo> = Vec::new();
        let mut names: Vec<&str> = topo.queues.keys().map(String::as_str).collect();
        names.sort_unstable();
        for q in names {
            out.push(BindingInfo {
                source: String::new(),
                destination: q.to_owned(),
                to_queue: true,
                routing_key: q.to_owned(),
                arguments: FieldTable::default(),
            });
        }
        let mut explicit = Vec::new();
        for x in topo.exchanges.values() {
            for b in x.bindings() {
                let (destination, to_queue) = match &b.destination {
                    Destination::Queue(q) => (q.name.to_string(), true),
                    Destination::Exchange(e) => (e.to_string(), false),
                };
                explicit.push(BindingInfo {
                    source: x.name.clone(),
                    destination,
                    to_queue,
                    routing_key: b.routing_key.clone(),
                    arguments: b.arguments.clone(),
                });
            }
        }
        drop(topo);
        explicit.sort_by(|a, b| {
            (&a.source, !a.to_queue, &a.destination, &a.routing_key).cmp(&(
                &b.source,
                !b.to_queue,
                &b.destination,
                &b.routing_key,
            ))
        });
        out.extend(explicit);
        out
    }
}
