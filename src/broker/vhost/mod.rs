//! A virtual host: its topology (exchanges, queues, bindings) and the operations that
//! change it, with RabbitMQ's checks and reply texts.
//!
//! Called by channels. The topology sits behind one std `RwLock`: publishing routes under
//! the read lock, declares and deletes take the write lock; neither is held across an
//! `.await` nor while waiting on a queue for long (queue locks are taken inside it only
//! for short reads and for marking a queue deleted). A change to durable topology is
//! numbered under the write lock and written by the definitions writer thread, never
//! here (see `TopologyWrite`).
//!
//! This file holds the vhost's record, its construction and the topology guards; the
//! operations sit beside it by object: `exchanges`, `queues`, `bindings`, `routing`,
//! `policies`, `durable` (the definitions file), `dead_letters` (re-routing), `delayed`,
//! `connections`, `limits`, `teardown`.

use super::arguments::QueueType;
use super::deadletter::DeadLetter;
use super::events::{self, Events};
pub(crate) use super::exchange::canonical_exchange;
use super::exchange::{Exchange, ExchangeKind};
use super::memory::Memory;
use super::persist::Persistence;
use super::policy::Policies;
use super::queue::Queue;
use crate::error::Exception;
use crate::hash::NameMap;
use amq_protocol::types::FieldTable;
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use tokio::sync::mpsc;

mod bindings;
mod connections;
mod dead_letters;
mod delayed;
mod durable;
mod exchanges;
mod limits;
mod meta;
mod notify;
mod policies;
mod queues;
mod replay;
mod routing;
use routing::Routing;
mod snapshot;
mod teardown;

pub use connections::{CloseListener, CloseSignal, ConnectionSlot};
pub use limits::VhostLimits;
pub use meta::VhostMetadata;
pub use snapshot::{BindingInfo, ExchangeInfo};

/// The pseudo-queue clients consume from for direct reply-to.
pub const REPLY_TO: &str = "amq.rabbitmq.reply-to";
/// Prefix of the per-channel reply addresses that publishers' reply_to is rewritten to.
pub const REPLY_PREFIX: &str = "amq.rabbitmq.reply-to.";

/// The exchanges every vhost starts with, as RabbitMQ predeclares them.
const PREDECLARED: [(&str, ExchangeKind); 7] = [
    ("", ExchangeKind::Direct),
    ("amq.direct", ExchangeKind::Direct),
    ("amq.fanout", ExchangeKind::Fanout),
    ("amq.topic", ExchangeKind::Topic),
    ("amq.headers", ExchangeKind::Headers),
    ("amq.match", ExchangeKind::Headers),
    ("amq.rabbitmq.trace", ExchangeKind::Topic),
];

#[derive(Debug)]
pub struct VHost {
    pub name: String,
    topology: RwLock<Topology>,
    /// Direct reply-to: one hidden queue per replying channel, by its reply address.
    /// Never held together with the topology lock.
    replies: Mutex<HashMap<String, Arc<Queue>>>,
    /// Where durable topology and persistent messages go (none: in memory only).
    persist: Option<Arc<Persistence>>,
    memory: Arc<Memory>,
    /// Dead letters from this vhost's queues, to the task that republishes them.
    dead_letters: crate::broker::deadletter::DeadLetterSink,
    dead_letter_rx: Mutex<Option<mpsc::UnboundedReceiver<DeadLetter>>>,
    /// Messages this vhost's queues dead-lettered so far (queues gone included).
    dead_lettered: Arc<std::sync::atomic::AtomicU64>,
    /// max-connections and max-queues.
    limits: limits::Limits,
    /// The connections open now, each with its close signal.
    connections: connections::Connections,
    /// Description, tags, default queue type.
    metadata: Mutex<VhostMetadata>,
    /// Policies and operator policies (see `policies` for the lock order).
    policies: RwLock<Arc<Policies>>,
    /// The broker's statistics (queue churn), set once by the broker that made it.
    stats: std::sync::OnceLock<Arc<crate::stats::Stats>>,
    /// The broker's clock (its queues read it for TTL and x-expires).
    pub clock: crate::clock::Clock,
    /// Message traces on this vhost's exchanges and queues (see `tracer`).
    pub tracing: crate::broker::tracer::Tracing,
    /// The event exchange's publisher, set once with `--event-exchange` (see `events`).
    events: std::sync::OnceLock<Arc<Events>>,
    /// Where delayed exchanges hold their messages (set once by the broker).
    delayed: std::sync::OnceLock<delayed::DelayedHandle>,
    /// On a cluster node: the Raft log its quorum queues go through (set once by the
    /// broker, before any queue is declared).
    replica: std::sync::OnceLock<Arc<dyn crate::broker::replica::Replica>>,
}

#[derive(Debug, Default)]
struct Topology {
    exchanges: NameMap<Exchange>,
    queues: NameMap<Arc<Queue>>,
    /// A durable object or binding changed: the definitions file must be rewritten
    /// (asked for when the write guard drops; see `TopologyWrite`).
    dirty: bool,
    /// The vhost was deleted: nothing may be declared, bound or published any more.
    deleted: bool,
}

/// exchange.declare, as the channel received it.
#[derive(Debug)]
pub struct ExchangeDeclare<'a> {
    pub name: &'a str,
    pub kind: &'a str,
    pub passive: bool,
    pub durable: bool,
    pub auto_delete: bool,
    pub internal: bool,
    pub arguments: &'a FieldTable,
}

/// queue.declare, as the channel received it (an empty name already replaced by the
/// channel's last queue for passive declares).
#[derive(Debug)]
pub struct QueueDeclare<'a> {
    pub name: &'a str,
    pub passive: bool,
    pub durable: bool,
    pub exclusive: bool,
    pub auto_delete: bool,
    pub arguments: &'a FieldTable,
    /// `name` was generated for a declare without one (so its `amq.` prefix is ours).
    pub server_named: bool,
}

/// What queue.declare-ok reports.
#[derive(Debug)]
pub struct Declared {
    pub queue: Arc<Queue>,
    pub message_count: u32,
    pub consumer_count: u32,
}

impl VHost {
    pub fn new(
        name: &str,
        persist: Option<Arc<Persistence>>,
        memory: Arc<Memory>,
        clock: crate::clock::Clock,
    ) -> Self {
        let (dead_letters, dead_letter_rx) = crate::broker::deadletter::channel();
        let mut topology = Topology::default();
        for (ex, kind) in PREDECLARED {
            let internal = ex == "amq.rabbitmq.trace";
            topology.exchanges.insert(
                ex.to_owned(),
                Exchange::new(ex, kind, true, false, internal, FieldTable::default())
                    .charged(&memory),
            );
        }
        VHost {
            name: name.to_owned(),
            topology: RwLock::new(topology),
            replies: Mutex::new(HashMap::new()),
            persist,
            memory,
            dead_letters,
            dead_letter_rx: Mutex::new(Some(dead_letter_rx)),
            dead_lettered: Arc::default(),
            limits: limits::Limits::default(),
            connections: connections::Connections::default(),
            metadata: Mutex::new(VhostMetadata::default()),
            policies: RwLock::new(Arc::default()),
            stats: std::sync::OnceLock::new(),
            tracing: crate::broker::tracer::Tracing::new(clock.clone()),
            clock,
            events: std::sync::OnceLock::new(),
            delayed: std::sync::OnceLock::new(),
            replica: std::sync::OnceLock::new(),
        }
    }

    /// Where this vhost reports its events (with `--event-exchange` only).
    pub fn set_events(&self, events: Arc<Events>) {
        let _ = self.events.set(events);
    }

    /// The event publisher, when the event exchange is on: each hook's one branch.
    pub fn events(&self) -> Option<&Events> {
        self.events.get().map(|e| &**e)
    }

    /// Declares `amq.rabbitmq.event` as the plugin does: a durable internal topic
    /// exchange, kept out of the definitions (it exists while the flag is on).
    pub fn declare_event_exchange(&self) {
        let x = Exchange::new(
            events::EXCHANGE,
            ExchangeKind::Topic,
            true,
            false,
            true,
            FieldTable::default(),
        )
        .charged(&self.memory);
        self.write()
            .exchanges
            .insert(events::EXCHANGE.to_owned(), x);
    }

    /// Where this vhost counts queue churn (the broker's statistics).
    /// Makes this a cluster node's vhost: its quorum queues are replicated.
    pub fn set_replica(&self, replica: Arc<dyn crate::broker::replica::Replica>) {
        let _ = self.replica.set(replica);
    }

    /// Whether this vhost's quorum queues are replicated (a cluster node).
    pub fn replicated(&self) -> bool {
        self.replica.get().is_some()
    }

    /// The cluster this vhost's shared definitions go through (a cluster node).
    pub fn cluster(&self) -> Option<&Arc<dyn crate::broker::replica::Replica>> {
        self.replica.get()
    }

    /// A new or recovered queue joins the cluster's log if it is a quorum queue on a
    /// cluster node (never an exclusive one: those stay with their connection).
    pub(super) fn adopt(&self, queue: &Queue, exclusive: bool) {
        let Some(r) = self.replica.get() else {
            return;
        };
        if exclusive {
            return;
        }
        if QueueType::of(&queue.arguments) == QueueType::Quorum {
            queue.set_replica(r.clone());
        } else if let Some(stub) = self
            .home_elsewhere(&queue.arguments)
            .and_then(|h| r.stub(&h))
        {
            queue.set_replica(stub);
        }
    }

    /// The node a classic queue declared with these arguments lives on, when it is
    /// another node than this one (a cluster node keeps a stub for it).
    pub(super) fn home_elsewhere(&self, arguments: &FieldTable) -> Option<String> {
        let r = self.replica.get()?;
        let home = crate::broker::arguments::text_arg(arguments, crate::broker::replica::HOME_ARG)?;
        let home = String::from_utf8_lossy(home).into_owned();
        (home != r.node_name()).then_some(home)
    }

    pub fn set_stats(&self, stats: Arc<crate::stats::Stats>) {
        let _ = self.stats.set(stats);
    }

    /// The broker's statistics, once the broker set them.
    pub fn stats(&self) -> Option<&Arc<crate::stats::Stats>> {
        self.stats.get()
    }

    /// One queue declared, created or deleted, for `churn_rates`.
    fn churn(&self, what: crate::stats::Churn) {
        if let Some(s) = self.stats.get() {
            s.churn(what);
        }
    }

    pub fn metadata(&self) -> VhostMetadata {
        self.metadata
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the metadata; the caller asks for the definitions to be written.
    pub fn set_metadata(&self, metadata: VhostMetadata) {
        *self.metadata.lock().unwrap_or_else(|e| e.into_inner()) = metadata;
    }

    /// Starts the task that republishes dead letters (needs a tokio runtime; without one,
    /// as in some unit tests, dead letters are dropped).
    pub fn start_dead_lettering(self: &Arc<Self>) {
        let rx = self
            .dead_letter_rx
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let (Some(rx), Ok(rt)) = (rx, tokio::runtime::Handle::try_current()) {
            let sink = self.dead_letters.clone();
            rt.spawn(dead_letters::run(Arc::downgrade(self), rx, sink));
        }
    }

    /// Messages this vhost's queues dead-lettered so far, deleted queues included.
    pub fn dead_lettered(&self) -> u64 {
        self.dead_lettered
            .load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Dead letters sent and not routed yet (a manual clock waits for none).
    pub fn dead_letters_pending(&self) -> u64 {
        self.dead_letters.pending()
    }

    fn read(&self) -> RwLockReadGuard<'_, Topology> {
        // Poisoning would need a panic inside a short critical section; the topology is
        // still consistent (each change is made whole before the guard drops).
        self.topology.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> TopologyWrite<'_> {
        TopologyWrite {
            topo: self.topology.write().unwrap_or_else(|e| e.into_inner()),
            persist: self.persist.as_deref(),
        }
    }

    pub(crate) fn describe_queue(&self, name: &str) -> String {
        format!("queue '{name}' in vhost '{}'", self.name)
    }

    fn describe_exchange(&self, name: &str) -> String {
        format!("exchange '{name}' in vhost '{}'", self.name)
    }

    fn no_queue(&self, name: &str) -> Exception {
        Exception::not_found(format!("no queue '{name}' in vhost '{}'", self.name))
    }

    fn no_exchange(&self, name: &str) -> Exception {
        Exception::not_found(format!("no exchange '{name}' in vhost '{}'", self.name))
    }

    pub(crate) fn default_exchange_refused() -> Exception {
        Exception::access_refused("operation not permitted on the default exchange")
    }
}

/// The topology write guard. When it drops after a change to durable topology, it asks
/// the definitions writer for a rewrite while the lock is still held: a publish that
/// routes through the change afterwards reads a definitions generation that covers it,
/// so its confirm waits for the file (see `persist::store_message`).
struct TopologyWrite<'a> {
    topo: RwLockWriteGuard<'a, Topology>,
    persist: Option<&'a Persistence>,
}

impl std::ops::Deref for TopologyWrite<'_> {
    type Target = Topology;
    fn deref(&self) -> &Topology {
        &self.topo
    }
}

impl std::ops::DerefMut for TopologyWrite<'_> {
    fn deref_mut(&mut self) -> &mut Topology {
        &mut self.topo
    }
}

impl Drop for TopologyWrite<'_> {
    fn drop(&mut self) {
        if std::mem::take(&mut self.topo.dirty) {
            if let Some(p) = self.persist {
                p.definitions_changed();
            }
        }
    }
}

/// `amq.gen-` or `amq.ctag-` followed by 22 URL-safe base64 characters of randomness.
pub fn server_generated_name(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let state = std::collections::hash_map::RandomState::new();
    let mut name = String::with_capacity(prefix.len() + 22);
    name.push_str(prefix);
    let mut bits = 0u64;
    for i in 0..22 {
        if i % 10 == 0 {
            let mut h = state.build_hasher();
            h.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
            bits = h.finish();
        }
        name.push(ALPHABET[(bits & 63) as usize] as char);
        bits >>= 6;
    }
    name
}
