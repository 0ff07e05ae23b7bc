//! Exchanges: their declared properties, their bindings, and routing.
//!
//! Owned by the vhost's topology (behind its RwLock); routing runs under the read lock
//! and only appends `Arc<Queue>`s to the caller's buffer, so the lock is released before
//! any queue is touched. Each kind keeps a routing index shaped for it: a hash map by key
//! (direct), a list (fanout), a trie (topic), parsed argument matchers (headers). The
//! binding list keeps identity (queue, key, arguments) for idempotent bind and unbind.
//! The plugin kinds (consistent hash, random, recent history) each live in their own file
//! and cost nothing unless such an exchange is declared.

pub mod consistent_hash;
pub mod delay;
mod erlang_hash;
pub mod headers;
pub mod random;
pub mod recent;
pub mod sender;
pub mod topic;
pub mod unknown_type;

use super::memory::Memory;
use super::message::Message;
use super::queue::Queue;
use super::records::{self, RecordCharge};
use crate::error::Exception;
use crate::hash::NameMap;
use amq_protocol::types::{AMQPValue, FieldTable};
use consistent_hash::HashRing;
use headers::HeadersBinding;
use recent::RecentHistory;
use std::sync::Arc;
use topic::TopicTable;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExchangeKind {
    Direct,
    Fanout,
    Topic,
    Headers,
    /// `x-consistent-hash`, `x-random`, `x-recent-history`: RabbitMQ's plugin kinds.
    ConsistentHash,
    Random,
    RecentHistory,
    /// `x-delayed-message`: routes as its `x-delayed-type` after each message's
    /// `x-delay` (see `broker::delayed`).
    Delayed,
}

impl ExchangeKind {
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "direct" => Some(ExchangeKind::Direct),
            "fanout" => Some(ExchangeKind::Fanout),
            "topic" => Some(ExchangeKind::Topic),
            "headers" => Some(ExchangeKind::Headers),
            "x-consistent-hash" => Some(ExchangeKind::ConsistentHash),
            "x-random" => Some(ExchangeKind::Random),
            "x-recent-history" => Some(ExchangeKind::RecentHistory),
            delay::TYPE_NAME => Some(ExchangeKind::Delayed),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ExchangeKind::Direct => "direct",
            ExchangeKind::Fanout => "fanout",
            ExchangeKind::Topic => "topic",
            ExchangeKind::Headers => "headers",
            ExchangeKind::ConsistentHash => "x-consistent-hash",
            ExchangeKind::Random => "x-random",
            ExchangeKind::RecentHistory => "x-recent-history",
            ExchangeKind::Delayed => delay::TYPE_NAME,
        }
    }

    /// Checks a new exchange's arguments as the kind's plugin does (the built-in kinds
    /// take any).
    pub fn validate(self, arguments: &FieldTable) -> Result<(), Exception> {
        match self {
            ExchangeKind::ConsistentHash => consistent_hash::validate(arguments),
            ExchangeKind::RecentHistory => recent::validate(arguments),
            ExchangeKind::Delayed => delay::check_type(arguments),
            _ => Ok(()),
        }
    }
}

/// Where a binding leads: a queue, or another exchange (exchange-to-exchange binding).
#[derive(Clone, Debug)]
pub enum Destination {
    Queue(Arc<Queue>),
    Exchange(Arc<str>),
}

impl PartialEq for Destination {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Destination::Queue(a), Destination::Queue(b)) => a.id == b.id,
            (Destination::Exchange(a), Destination::Exchange(b)) => a == b,
            _ => false,
        }
    }
}

#[derive(Debug)]
pub struct Binding {
    pub destination: Destination,
    pub routing_key: String,
    pub arguments: FieldTable,
}

#[derive(Debug)]
enum Routes {
    Direct(NameMap<Vec<Destination>>),
    Fanout(Vec<Destination>),
    Topic(TopicTable<Destination>),
    Headers(Vec<(HeadersBinding, Destination)>),
    ConsistentHash(HashRing),
    Random(Vec<Destination>),
    RecentHistory(Vec<Destination>, RecentHistory),
}

#[derive(Debug)]
pub struct Exchange {
    pub name: String,
    pub kind: ExchangeKind,
    pub durable: bool,
    pub auto_delete: bool,
    pub internal: bool,
    pub arguments: FieldTable,
    /// The `alternate-exchange` argument: where messages this exchange cannot route go.
    pub alternate: Option<Arc<str>>,
    /// The policy applied to it, if any (its alternate exchange may come from it).
    pub policy: Option<String>,
    bindings: Vec<Binding>,
    routes: Routes,
    /// The exchange and its bindings in the memory accounting (none until `charged`).
    charge: Option<RecordCharge>,
    /// What the bindings take, for `charge`.
    binding_bytes: u64,
}

impl Exchange {
    pub fn new(
        name: &str,
        kind: ExchangeKind,
        durable: bool,
        auto_delete: bool,
        internal: bool,
        arguments: FieldTable,
    ) -> Self {
        // A delayed exchange routes as its x-delayed-type (checked at declare).
        let routing = match kind {
            ExchangeKind::Delayed => delay::routing_kind(&arguments).unwrap_or(kind),
            _ => kind,
        };
        let routes = match routing {
            ExchangeKind::Direct | ExchangeKind::Delayed => Routes::Direct(NameMap::default()),
            ExchangeKind::Fanout => Routes::Fanout(Vec::new()),
            ExchangeKind::Topic => Routes::Topic(TopicTable::new()),
            ExchangeKind::Headers => Routes::Headers(Vec::new()),
            ExchangeKind::ConsistentHash => Routes::ConsistentHash(HashRing::new(&arguments)),
            ExchangeKind::Random => Routes::Random(Vec::new()),
            ExchangeKind::RecentHistory => {
                Routes::RecentHistory(Vec::new(), RecentHistory::new(&arguments))
            }
        };
        let alternate = match arguments.inner().get("alternate-exchange") {
            Some(AMQPValue::LongString(s)) => {
                Some(Arc::from(String::from_utf8_lossy(s.as_bytes()).as_ref()))
            }
            Some(AMQPValue::ShortString(s)) => Some(Arc::from(s.as_str())),
            _ => None,
        };
        Exchange {
            name: name.to_owned(),
            kind,
            durable,
            auto_delete,
            internal,
            arguments,
            alternate,
            policy: None,
            bindings: Vec::new(),
            routes,
            charge: None,
            binding_bytes: 0,
        }
    }

    /// Counts this exchange and, from now on, its bindings in `memory`.
    pub fn charged(mut self, memory: &Arc<Memory>) -> Self {
        let bytes = records::EXCHANGE_BYTES + records::named(&self.name, &self.arguments);
        self.charge = Some(RecordCharge::new(memory.clone(), bytes));
        if let Routes::RecentHistory(_, history) = &self.routes {
            history.charge_to(memory);
        }
        self
    }

    fn bindings_changed(&mut self, change: i64) {
        self.binding_bytes = self.binding_bytes.saturating_add_signed(change);
        if let Some(c) = &mut self.charge {
            let base = records::EXCHANGE_BYTES + records::named(&self.name, &self.arguments);
            c.set(base + self.binding_bytes, change > 0);
        }
    }

    fn binding_bytes(b: &Binding) -> i64 {
        (records::BINDING_BYTES + records::named(&b.routing_key, &b.arguments)) as i64
    }

    pub fn has_bindings(&self) -> bool {
        !self.bindings.is_empty()
    }

    pub fn bindings(&self) -> &[Binding] {
        &self.bindings
    }

    /// Adds a binding; binding the same (destination, key, arguments) again changes
    /// nothing. Returns whether the binding is new.
    pub fn bind(
        &mut self,
        dest: &Destination,
        key: &str,
        arguments: &FieldTable,
    ) -> Result<bool, Exception> {
        if self.find(dest, key, arguments).is_some() {
            return Ok(false);
        }
        match &mut self.routes {
            Routes::Direct(map) => map.entry(key.to_owned()).or_default().push(dest.clone()),
            Routes::Fanout(list) | Routes::Random(list) | Routes::RecentHistory(list, _) => {
                list.push(dest.clone())
            }
            // Laid out again below, once the binding is in the list.
            Routes::ConsistentHash(_) => {
                consistent_hash::weight(key)?;
            }
            Routes::Topic(trie) => trie.bind(key, dest.clone()),
            Routes::Headers(list) => {
                let matcher = HeadersBinding::parse(arguments).map_err(|text| {
                    let detail = text.strip_prefix("PRECONDITION_FAILED - ").unwrap_or(&text);
                    Exception::precondition_failed(detail)
                })?;
                list.push((matcher, dest.clone()));
            }
        }
        let binding = Binding {
            destination: dest.clone(),
            routing_key: key.to_owned(),
            arguments: arguments.clone(),
        };
        self.bindings_changed(Self::binding_bytes(&binding));
        self.bindings.push(binding);
        if let Routes::ConsistentHash(ring) = &mut self.routes {
            ring.rebuild(&self.bindings);
        }
        Ok(true)
    }

    /// What a recent-history exchange delivers to a new binding: its kept messages,
    /// oldest first (`None` for the other kinds).
    pub fn recent_history(&self) -> Option<Vec<Message>> {
        match &self.routes {
            Routes::RecentHistory(_, history) => Some(history.kept()),
            _ => None,
        }
    }

    fn find(&self, dest: &Destination, key: &str, arguments: &FieldTable) -> Option<usize> {
        self.bindings.iter().position(|b| {
            &b.destination == dest && b.routing_key == key && &b.arguments == arguments
        })
    }

    /// Removes one binding; returns whether it existed.
    pub fn unbind(&mut self, dest: &Destination, key: &str, arguments: &FieldTable) -> bool {
        let Some(at) = self.find(dest, key, arguments) else {
            return false;
        };
        let gone = self.bindings.remove(at);
        self.bindings_changed(-Self::binding_bytes(&gone));
        match &mut self.routes {
            Routes::Direct(map) => {
                if let Some(list) = map.get_mut(key) {
                    if let Some(i) = list.iter().position(|d| d == dest) {
                        list.swap_remove(i);
                    }
                    if list.is_empty() {
                        map.remove(key);
                    }
                }
            }
            Routes::Fanout(list) | Routes::Random(list) | Routes::RecentHistory(list, _) => {
                if let Some(i) = list.iter().position(|d| d == dest) {
                    list.swap_remove(i);
                }
            }
            Routes::ConsistentHash(ring) => ring.rebuild(&self.bindings),
            Routes::Topic(trie) => {
                trie.unbind(key, dest);
            }
            Routes::Headers(list) => {
                // Bindings and matchers were pushed in the same order.
                let nth = self.bindings[..at]
                    .iter()
                    .filter(|b| &b.destination == dest)
                    .count();
                let found = list
                    .iter()
                    .enumerate()
                    .filter(|(_, (_, d))| d == dest)
                    .nth(nth)
                    .map(|(i, _)| i);
                if let Some(i) = found {
                    list.remove(i);
                }
            }
        }
        true
    }

    /// Removes every binding to a deleted queue or exchange; returns how many there were.
    pub fn remove_destination(&mut self, dest: &Destination) -> usize {
        let before = self.bindings.len();
        let mut freed = 0;
        self.bindings.retain(|b| {
            let keep = &b.destination != dest;
            if !keep {
                freed += Self::binding_bytes(b);
            }
            keep
        });
        self.bindings_changed(-freed);
        match &mut self.routes {
            Routes::Direct(map) => {
                map.retain(|_, list| {
                    list.retain(|d| d != dest);
                    !list.is_empty()
                });
            }
            Routes::Fanout(list) | Routes::Random(list) | Routes::RecentHistory(list, _) => {
                list.retain(|d| d != dest)
            }
            Routes::ConsistentHash(ring) => ring.rebuild(&self.bindings),
            Routes::Topic(trie) => {
                trie.remove_destination(dest);
            }
            Routes::Headers(list) => list.retain(|(_, d)| d != dest),
        }
        before - self.bindings.len()
    }

    /// Reports the destinations an extra routing key (a CC or BCC key) reaches: only the
    /// kinds that route by key look at it; the others routed the message already.
    pub fn route_key(&self, key: &str, out: &mut dyn FnMut(&Destination)) {
        match &self.routes {
            Routes::Direct(map) => {
                for d in map.get(key).into_iter().flatten() {
                    out(d);
                }
            }
            Routes::Topic(trie) => trie.route(key, out),
            _ => {}
        }
    }

    /// The delay a message published to this exchange waits for (delayed exchanges
    /// only: every other kind pays this one comparison).
    pub fn delay(&self, msg: &Message) -> Option<u64> {
        if self.kind != ExchangeKind::Delayed {
            return None;
        }
        delay::delay_of(msg.headers().as_ref())
    }

    /// Reports the destinations this message goes to (possibly with repeats: the caller
    /// de-duplicates). `remember` is false for a probe that only asks where a message
    /// would go: a recent-history exchange then keeps nothing.
    pub fn route(&self, msg: &Message, remember: bool, out: &mut dyn FnMut(&Destination)) {
        match &self.routes {
            Routes::Direct(map) => {
                for d in map.get(msg.routing_key()).into_iter().flatten() {
                    out(d);
                }
            }
            Routes::Fanout(list) => list.iter().for_each(out),
            Routes::Topic(trie) => trie.route(msg.routing_key(), out),
            Routes::Headers(list) => {
                if list.is_empty() {
                    return;
                }
                let headers = msg.headers();
                for (matcher, d) in list {
                    if matcher.matches(headers.as_ref()) {
                        out(d);
                    }
                }
            }
            Routes::ConsistentHash(ring) => ring.route(msg, out),
            Routes::Random(list) => random::route(list, out),
            Routes::RecentHistory(list, history) => {
                if remember {
                    history.remember(msg);
                }
                list.iter().for_each(out);
            }
        }
    }
}

/// The management HTTP API names the default exchange `amq.default` (in paths and
/// bodies); over AMQP 0-9-1 RabbitMQ 3.10 knows no such alias (publishing to
/// `amq.default` is a 404 there), so only the API's lookups go through this.
pub(crate) fn canonical_exchange(name: &str) -> &str {
    if name == "amq.default" {
        ""
    } else {
        name
    }
}
