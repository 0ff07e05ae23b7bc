//! A vhost's entry (metadata, limits) and durable topology, to and from the definitions
//! file.
//!
//! Called by the definitions writer thread through `persist::snapshot` (under the
//! topology read lock: memory work only, the file is written after the lock is released)
//! and by `Broker::open` at start (restore, before any client connects). Only durable
//! exchanges, durable non-exclusive queues and bindings between durable objects are
//! written; argument types JSON would lose are saved beside the arguments.

use super::VhostMetadata;
use super::{VHost, PREDECLARED};
use crate::broker::exchange::{Destination, Exchange, ExchangeKind};
use crate::broker::persist::DurableTopology;
use crate::broker::queue::Queue;
use crate::codec::ShortStr;
use crate::store::definitions::{
    BindingDef, Definitions, DestinationType, ExchangeDef, QueueDef, VhostDef,
};
use crate::store::fieldvalue::{table_to_json, typed_extra, typed_table};
use serde_json::Map;
use std::sync::Arc;

/// The definitions writer asks each vhost for its part through this trait.
impl DurableTopology for VHost {
    /// Appends this vhost, with its metadata and limits, and its durable exchanges,
    /// queues and bindings to `defs` (the definitions file).
    fn durable_definitions(&self, defs: &mut Definitions) {
        self.definitions(defs, false);
    }
}

impl VHost {
    /// The same with transient exchanges and queues too, exclusive queues aside: what
    /// RabbitMQ's `GET /api/definitions` exports.
    pub fn exported_definitions(&self, defs: &mut Definitions) {
        self.definitions(defs, true);
    }

    fn definitions(&self, defs: &mut Definitions, transient: bool) {
        let mut extra = Map::new();
        // As RabbitMQ 3.10.8 exports a vhost: limits as pairs (informational: they are
        // read back from the "vhost-limits" parameter) and metadata.
        let pairs = self.limits().unwrap_or_default().to_pairs();
        extra.insert("limits".into(), pairs);
        extra.insert("metadata".into(), self.metadata().to_json());
        defs.vhosts.push(VhostDef {
            name: self.name.clone(),
            extra,
        });
        let topo = self.read();
        let durable_queue = |q: &Queue| match transient {
            true => q.exclusive_owner.is_none(),
            false => q.persisted(),
        };
        let durable_exchange = |x: &Exchange| x.durable || transient;
        for x in topo.exchanges.values() {
            if durable_exchange(x)
                && !x.name.is_empty()
                && !PREDECLARED.iter().any(|(n, _)| *n == x.name)
                && x.name != crate::broker::events::EXCHANGE
            {
                defs.exchanges.push(ExchangeDef {
                    name: x.name.clone(),
                    vhost: self.name.clone(),
                    kind: x.kind.name().to_owned(),
                    durable: x.durable,
                    auto_delete: x.auto_delete,
                    internal: x.internal,
                    arguments: table_to_json(&x.arguments),
                    extra: typed_extra(&x.arguments),
                });
            }
            if !durable_exchange(x) {
                continue;
            }
            for b in x.bindings() {
                let (destination, destination_type) = match &b.destination {
                    Destination::Queue(q) if durable_queue(q) => {
                        (q.name.to_string(), DestinationType::Queue)
                    }
                    Destination::Exchange(name)
                        if topo
                            .exchanges
                            .get(name.as_ref())
                            .is_some_and(durable_exchange) =>
                    {
                        (name.to_string(), DestinationType::Exchange)
                    }
                    _ => continue,
                };
                defs.bindings.push(BindingDef {
                    source: x.name.clone(),
                    vhost: self.name.clone(),
                    destination,
                    destination_type,
                    routing_key: b.routing_key.clone(),
                    arguments: table_to_json(&b.arguments),
                    extra: typed_extra(&b.arguments),
                });
            }
        }
        if let Some(limits) = self.limits() {
            defs.push_vhost_limits(&self.name, limits.to_json());
        }
        self.export_policies(defs);
        for q in topo.queues.values().filter(|q| durable_queue(q)) {
            let mut def = QueueDef::new(
                &self.name,
                &q.name,
                q.durable,
                q.auto_delete,
                table_to_json(&q.arguments),
            );
            def.extra = typed_extra(&q.arguments);
            defs.queues.push(def);
        }
    }

    /// Recreates this vhost's durable topology from the definitions file (at start, before
    /// any client connects), or adds what an imported file names (the management API's
    /// definitions import: what exists is kept). Entries that no longer make sense are
    /// logged and skipped.
    pub fn restore(&self, defs: &Definitions) {
        let mine = |v: &str| v == self.name;
        if let Some(value) = defs.vhost_limits(&self.name) {
            self.store_limits(super::VhostLimits::from_json(&self.name, value));
        }
        if let Some(metadata) = defs
            .vhosts
            .iter()
            .find(|v| mine(&v.name))
            .and_then(|v| v.extra.get("metadata"))
        {
            self.set_metadata(VhostMetadata::from_json(metadata));
        }
        self.restore_policies(defs);
        let policies = self.policies();
        let mut topo = self.write();
        for x in defs.exchanges.iter().filter(|x| mine(&x.vhost)) {
            let Some(kind) = ExchangeKind::parse(&x.kind) else {
                tracing::warn!(exchange = %x.name, kind = %x.kind, "unknown exchange type in definitions");
                continue;
            };
            topo.exchanges.entry(x.name.clone()).or_insert_with(|| {
                Exchange::new(
                    &x.name,
                    kind,
                    x.durable,
                    x.auto_delete,
                    x.internal,
                    typed_table(&x.arguments, &x.extra),
                )
                .charged(&self.memory)
            });
        }
        // Transient queues and exchanges come from an import only (the definitions file
        // holds durable ones): declared as given, as RabbitMQ imports them.
        for q in defs.queues.iter().filter(|q| mine(&q.vhost)) {
            // A definitions import at runtime keeps a queue that exists, with its
            // messages and arguments, as RabbitMQ's import does.
            if topo.queues.contains_key(&q.name) {
                continue;
            }
            let arguments = typed_table(&q.arguments, &q.extra);
            let settings = self.queue_settings(&policies, &q.name, &arguments);
            let (store, stream) = match self.queue_engine(
                &q.name,
                q.durable,
                false,
                &settings.effective,
            ) {
                Ok(engine) => engine,
                Err(e) => {
                    // The queue is left out rather than served without its log.
                    tracing::error!(queue = %q.name, vhost = %self.name, error = %e.text, "stream queue not recovered");
                    continue;
                }
            };
            let queue = Queue::new(
                ShortStr::from(q.name.as_str()),
                &self.name,
                q.durable,
                None,
                q.auto_delete,
                arguments.clone(),
                store,
                stream,
                self.memory.clone(),
                self.clock.clone(),
                settings.dead_letter,
                (settings.applied, &settings.effective),
            );
            self.adopt(&queue, false);
            topo.queues.insert(q.name.clone(), queue);
        }
        super::policies::apply_to_exchanges(&mut topo, &policies);
        for b in defs.bindings.iter().filter(|b| mine(&b.vhost)) {
            let destination = match b.destination_type {
                DestinationType::Queue => match topo.queues.get(&b.destination) {
                    Some(q) => Destination::Queue(q.clone()),
                    None => continue,
                },
                DestinationType::Exchange => {
                    Destination::Exchange(Arc::from(b.destination.as_str()))
                }
            };
            if let Some(x) = topo.exchanges.get_mut(&b.source) {
                if let Err(e) = x.bind(
                    &destination,
                    &b.routing_key,
                    &typed_table(&b.arguments, &b.extra),
                ) {
                    tracing::warn!(source = %b.source, text = %e.text, "binding in definitions refused");
                }
            }
        }
    }
}
