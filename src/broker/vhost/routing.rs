//! Routing: where a message published to an exchange goes. Under the topology read lock
//! it walks the exchange, its exchange-to-exchange bindings and alternate exchanges (each
//! once), with the routing key and any CC/BCC keys, and appends the target queues to the
//! caller's buffer; a delayed exchange on the way holds the message instead. The lock is
//! released before any queue is touched. Called by publishing channels, the management
//! API's publish, the event exchange, recent-history replays and the delayed scheduler;
//! it must never take a queue lock or do I/O.

use super::delayed::Held;
use super::{Topology, VHost, REPLY_PREFIX};
use crate::broker::exchange::{sender, Destination, Exchange};
use crate::broker::message::Message;
use crate::broker::queue::Queue;
use crate::error::Exception;
use std::sync::Arc;

impl VHost {
    /// Routes a message published to `exchange`; `out` gets each target queue once. The
    /// extra keys of its CC and BCC headers, if it has any, route it too. What delayed
    /// exchanges on the way took is held by them and reported.
    pub fn route(
        &self,
        exchange: &str,
        msg: &Message,
        out: &mut Vec<Arc<Queue>>,
    ) -> Result<Held, Exception> {
        let extra = sender::routes(msg.properties());
        self.route_as(exchange, msg, &extra, out, Routing::Publish)
    }

    /// Routes a message with its routing key and the `extra` keys (CC and BCC, which the
    /// publishing channel read already), as one routing: `out` gets each queue once.
    pub fn route_keys(
        &self,
        exchange: &str,
        msg: &Message,
        extra: &[String],
        out: &mut Vec<Arc<Queue>>,
    ) -> Result<Held, Exception> {
        self.route_as(exchange, msg, extra, out, Routing::Publish)
    }

    /// Routes an event the broker publishes to its internal event exchange.
    pub fn route_event(
        &self,
        exchange: &str,
        msg: &Message,
        out: &mut Vec<Arc<Queue>>,
    ) -> Result<(), Exception> {
        self.route_as(exchange, msg, &[], out, Routing::Event)
            .map(|_| ())
    }

    /// Where a message published to `exchange` would go, changing nothing (a
    /// recent-history exchange keeps nothing of it, a delayed exchange holds nothing).
    pub fn probe_route(
        &self,
        exchange: &str,
        msg: &Message,
        out: &mut Vec<Arc<Queue>>,
    ) -> Result<(), Exception> {
        self.route_as(exchange, msg, &[], out, Routing::Probe)
            .map(|_| ())
    }

    pub(super) fn route_as(
        &self,
        exchange: &str,
        msg: &Message,
        extra: &[String],
        out: &mut Vec<Arc<Queue>>,
        how: Routing,
    ) -> Result<Held, Exception> {
        let topo = self.read();
        self.check_alive(&topo)?;
        if exchange.is_empty() {
            let reply = named_queue(&topo, msg.routing_key(), out);
            if extra.is_empty() {
                // The common case, kept as short as it was before CC and BCC.
                drop(topo);
                if let Some(key) = reply {
                    let live = self.replies.lock().unwrap_or_else(|e| e.into_inner());
                    out.extend(live.get(key).cloned());
                }
                return Ok(Held::default());
            }
            // Empty (no allocation) unless CC or BCC name direct reply-to queues.
            let mut replies: Vec<&str> = Vec::new();
            for key in extra {
                replies.extend(named_queue(&topo, key, out));
            }
            drop(topo);
            if reply.is_some() || !replies.is_empty() {
                let live = self.replies.lock().unwrap_or_else(|e| e.into_inner());
                let keys = reply.into_iter().chain(replies);
                out.extend(keys.filter_map(|key| live.get(key).cloned()));
            }
            if out.len() > 1 {
                out.sort_unstable_by_key(|q| q.id);
                out.dedup_by_key(|q| q.id);
            }
            return Ok(Held::default());
        }
        let x = topo
            .exchanges
            .get(exchange)
            .ok_or_else(|| self.no_exchange(exchange))?;
        // The broker itself may route into an internal exchange: a replay of kept
        // messages, an event into amq.rabbitmq.event.
        if x.internal && !matches!(how, Routing::Replay | Routing::Event) {
            return Err(Exception::access_refused(format!(
                "cannot publish to internal {}",
                self.describe_exchange(exchange)
            )));
        }
        let mut held = Held::default();
        self.route_from(&topo, (exchange, x), (msg, extra), out, how, &mut held);
        drop(topo);
        if out.len() > 1 {
            out.sort_unstable_by_key(|q| q.id);
            out.dedup_by_key(|q| q.id);
        }
        Ok(held)
    }

    /// Routing from exchange `x` (named `exchange`) on, under the topology read lock.
    pub(super) fn route_from<'t>(
        &self,
        topo: &'t Topology,
        (exchange, x): (&str, &'t Exchange),
        (msg, extra): (&Message, &[String]),
        out: &mut Vec<Arc<Queue>>,
        how: Routing,
        held: &mut Held,
    ) {
        // Exchange-to-exchange bindings and alternate exchanges: visit each exchange once
        // (bindings may form cycles). Both vectors stay empty, unallocated, without them.
        let mut pending: Vec<Arc<str>> = Vec::new();
        let mut visited: Vec<Arc<str>> = Vec::new();
        let mut current = x;
        loop {
            let mut routed = false;
            let delay = self
                .delay_at(current, msg)
                .filter(|_| how != Routing::Probe);
            if let Some(delay) = delay {
                self.hold(current, msg, delay, held);
                routed = true;
            } else {
                let mut reached = |d: &Destination| {
                    routed = true;
                    match d {
                        Destination::Queue(q) => out.push(q.clone()),
                        Destination::Exchange(name) => pending.push(name.clone()),
                    }
                };
                current.route(msg, how != Routing::Probe, &mut reached);
                for key in extra {
                    current.route_key(key, &mut reached);
                }
            }
            if !routed {
                if let Some(ae) = &current.alternate {
                    pending.push(ae.clone());
                }
            }
            let next = loop {
                let Some(name) = pending.pop() else {
                    break None;
                };
                if name.as_ref() == exchange || visited.contains(&name) {
                    continue;
                }
                visited.push(name.clone());
                if let Some(x) = topo.exchanges.get(name.as_ref()) {
                    break Some(x);
                }
            };
            match next {
                Some(x) => current = x,
                None => break,
            }
        }
    }
}

/// The default exchange's routing for one key: the queue of that name, pushed to `out`;
/// a direct reply-to name is handed back, to look up after the topology lock is released.
#[inline(always)]
fn named_queue<'k>(topo: &Topology, key: &'k str, out: &mut Vec<Arc<Queue>>) -> Option<&'k str> {
    if let Some(q) = topo.queues.get(key) {
        out.push(q.clone());
        None
    } else {
        key.starts_with(REPLY_PREFIX).then_some(key)
    }
}

/// Why a message is routed: a publish, a probe that must change nothing, a
/// recent-history exchange's replay into a new binding (which may lead through an
/// internal exchange, as RabbitMQ's replay does), or an event the broker publishes into
/// its internal event exchange.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum Routing {
    Publish,
    Probe,
    Replay,
    Event,
}
