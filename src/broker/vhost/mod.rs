//! A virtual host: its topology (exchanges, queues, bindings) and the operations that
//! change it, with RabbitMQ's checks and reply texts.
//!
//! Called by channels. The topology sits behind one std `RwLock`: publishing routes under
//! the read lock, declares and deletes take the write lock; neither is held across an
//! `.await` nor while waiting on a queue for long (queue locks are taken inside it only
//! for short reads and for marking a queue deleted). A change to durable topology is
//! numbered under the write lock and written by the definitions writer thread, never
//! here (see `TopologyWrite`).

use super::arguments::{
    assert_args_equivalent, validate_queue_args, validate_queue_type, DeclaredFlags,
    COMPARED_QUEUE_ARGS,
};
use super::deadletter::{self, DeadLetter, DeadLetterTarget};
use super::events::{self, Events};
use super::exchange::{Destination, Exchange, ExchangeKind};
use super::memory::Memory;
use super::persist::{Persistence, QueueStore};
use super::policy::{Applied, Policies};
use super::queue::Queue;
use super::stream_queue::StreamQueue;
use crate::codec::ShortStr;
use crate::error::Exception;
use crate::hash::NameMap;
use amq_protocol::types::{AMQPValue, FieldTable};
use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock, RwLockReadGuard, RwLockWriteGuard};
use tokio::sync::mpsc;

mod connections;
mod delayed;
mod durable;
mod limits;
mod meta;
mod notify;
mod policies;
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
    dead_letters: deadletter::DeadLetterSink,
    dead_letter_rx: Mutex<Option<mpsc::UnboundedReceiver<DeadLetter>>>,
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
        let (dead_letters, dead_letter_rx) = deadletter::channel();
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
            limits: limits::Limits::default(),
            connections: connections::Connections::default(),
            metadata: Mutex::new(VhostMetadata::default()),
            policies: RwLock::new(Arc::default()),
            stats: std::sync::OnceLock::new(),
            tracing: crate::broker::tracer::Tracing::new(clock.clone()),
            clock,
            events: std::sync::OnceLock::new(),
            delayed: std::sync::OnceLock::new(),
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
            rt.spawn(deadletter::run(Arc::downgrade(self), rx, sink));
        }
    }

    /// Dead letters sent and not routed yet (a manual clock waits for none).
    pub fn dead_letters_pending(&self) -> u64 {
        self.dead_letters.pending()
    }

    /// The dead-letter settings of a new queue, from its arguments.
    fn dead_letter_target(&self, arguments: &FieldTable) -> Option<DeadLetterTarget> {
        let text = |key: &str| match arguments.inner().get(key)? {
            AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
            AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
            _ => None,
        };
        Some(DeadLetterTarget {
            exchange: text("x-dead-letter-exchange")?,
            routing_key: text("x-dead-letter-routing-key"),
            sink: self.dead_letters.clone(),
        })
    }

    /// The store handle for a new queue that is durable and not exclusive.
    fn queue_store(&self, name: &str, durable: bool, exclusive: bool) -> Option<QueueStore> {
        let p = self.persist.as_ref().filter(|_| durable && !exclusive)?;
        Some(QueueStore::new(p, &self.name, name))
    }

    /// A new or recovered queue's storage: a stream's log (and no message store: its
    /// entries live in the log), or the message store for a durable classic or quorum
    /// queue. `arguments`: the effective ones (declared, with the policies' settings).
    fn queue_engine(
        &self,
        name: &str,
        durable: bool,
        exclusive: bool,
        arguments: &FieldTable,
    ) -> Result<(Option<QueueStore>, Option<Arc<StreamQueue>>), Exception> {
        let stream = crate::broker::stream_queue::open_for(
            self.persist.as_deref().map(|p| p.data_dir()),
            self.persist.as_ref().map(|p| p.definitions().clone()),
            &self.name,
            name,
            arguments,
            &self.clock,
        )?;
        match stream {
            Some(s) => Ok((None, Some(s))),
            None => Ok((self.queue_store(name, durable, exclusive), None)),
        }
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

    pub fn declare_exchange(&self, d: &ExchangeDeclare) -> Result<(), Exception> {
        let name = d.name;
        if d.passive {
            if name.is_empty() {
                return Err(Self::default_exchange_refused());
            }
            return if self.read().exchanges.contains_key(name) {
                Ok(())
            } else {
                Err(self.no_exchange(name))
            };
        }
        let kind = ExchangeKind::parse(d.kind)
            .ok_or_else(|| crate::broker::exchange::unknown_type::refusal(d.kind))?;
        if name.is_empty() {
            return Err(Self::default_exchange_refused());
        }
        let mut topo = self.write();
        self.check_alive(&topo)?;
        if let Some(x) = topo.exchanges.get(name) {
            let fail = |field: &str,
                        received: &dyn std::fmt::Display,
                        current: &dyn std::fmt::Display| {
                Exception::precondition_failed(format!(
                    "inequivalent arg '{field}' for {}: received '{received}' but current is '{current}'",
                    self.describe_exchange(name)
                ))
            };
            if x.kind != kind {
                return Err(fail("type", &kind.name(), &x.kind.name()));
            }
            if x.durable != d.durable {
                return Err(fail("durable", &d.durable, &x.durable));
            }
            if x.auto_delete != d.auto_delete {
                return Err(fail("auto_delete", &d.auto_delete, &x.auto_delete));
            }
            if x.internal != d.internal {
                return Err(fail("internal", &d.internal, &x.internal));
            }
            return assert_args_equivalent(
                &x.arguments,
                d.arguments,
                &["alternate-exchange"],
                &self.describe_exchange(name),
            );
        }
        if name.starts_with("amq.") {
            return Err(Exception::access_refused(format!(
                "exchange name '{name}' contains reserved prefix 'amq.*'"
            )));
        }
        // RabbitMQ checks the alternate exchange's type before the exchange type's own
        // argument checks.
        crate::broker::arguments::validate_alternate_exchange(
            d.arguments,
            &self.describe_exchange(name),
        )?;
        kind.validate(d.arguments)?;
        topo.dirty |= d.durable;
        let mut x = Exchange::new(
            name,
            kind,
            d.durable,
            d.auto_delete,
            d.internal,
            d.arguments.clone(),
        )
        .charged(&self.memory);
        policies::apply_to_exchange(&mut x, &self.policies());
        if let Some(e) = self.events() {
            e.exchange_created(&self.name, &x);
        }
        topo.exchanges.insert(name.to_owned(), x);
        Ok(())
    }

    pub fn delete_exchange(&self, name: &str, if_unused: bool) -> Result<(), Exception> {
        if name.is_empty() {
            return Err(Self::default_exchange_refused());
        }
        if name.starts_with("amq.") {
            return Err(Exception::access_refused(format!(
                "deletion of system {} not allowed",
                self.describe_exchange(name)
            )));
        }
        let mut topo = self.write();
        match topo.exchanges.get(name) {
            None => Ok(()),
            Some(x) if if_unused && x.has_bindings() => Err(Exception::precondition_failed(
                format!("{} in use", self.describe_exchange(name)),
            )),
            Some(x) => {
                if let Some(e) = self.events() {
                    self.notify_exchange_deleted(e, &topo, x);
                }
                let delayed = x.kind == ExchangeKind::Delayed;
                topo.dirty |= x.durable;
                if delayed {
                    self.drop_held(name);
                }
                topo.exchanges.remove(name);
                remove_destination_locked(&mut topo, &Destination::Exchange(Arc::from(name)));
                drop(topo);
                self.tracing.exchange_deleted(name);
                Ok(())
            }
        }
    }

    pub fn declare_queue(&self, d: &QueueDeclare, connection: u64) -> Result<Declared, Exception> {
        if d.passive {
            let queue = self.queue(d.name, connection)?;
            queue.touch();
            let (message_count, consumer_count) = queue.counts();
            self.churn(crate::stats::Churn::QueueDeclared);
            return Ok(Declared {
                queue,
                message_count,
                consumer_count,
            });
        }
        let generated;
        let server_named = d.server_named || d.name.is_empty();
        let describe_name = if server_named { "amq.gen-" } else { d.name };
        let describe = self.describe_queue(describe_name);
        validate_queue_args(d.arguments, &describe)?;
        let flags = DeclaredFlags {
            server_named,
            durable: d.durable,
            exclusive: d.exclusive,
            auto_delete: d.auto_delete,
        };
        validate_queue_type(d.arguments, &flags, &describe)?;
        let name = if d.name.is_empty() {
            generated = server_generated_name("amq.gen-");
            generated.as_str()
        } else {
            if !server_named && d.name.starts_with("amq.") {
                return Err(Exception::access_refused(format!(
                    "queue name '{}' contains reserved prefix 'amq.*'",
                    d.name
                )));
            }
            d.name
        };
        let mut topo = self.write();
        self.check_alive(&topo)?;
        if let Some(queue) = topo.queues.get(name) {
            queue.touch();
            let owner = d.exclusive.then_some(connection);
            if queue.exclusive_owner != owner {
                return Err(queue.locked());
            }
            let describe = self.describe_queue(name);
            let fail = |field: &str, received: bool, current: bool| {
                Exception::precondition_failed(format!(
                    "inequivalent arg '{field}' for {describe}: received '{received}' but current is '{current}'"
                ))
            };
            if queue.durable != d.durable {
                return Err(fail("durable", d.durable, queue.durable));
            }
            if queue.auto_delete != d.auto_delete {
                return Err(fail("auto_delete", d.auto_delete, queue.auto_delete));
            }
            assert_args_equivalent(
                &queue.arguments,
                d.arguments,
                &COMPARED_QUEUE_ARGS,
                &describe,
            )?;
            let (message_count, consumer_count) = queue.counts();
            self.churn(crate::stats::Churn::QueueDeclared);
            return Ok(Declared {
                queue: queue.clone(),
                message_count,
                consumer_count,
            });
        }
        self.check_queue_limit(topo.queues.len(), name)?;
        let settings = self.queue_settings(&self.policies(), name, d.arguments);
        let (store, stream) =
            self.queue_engine(name, d.durable, d.exclusive, &settings.effective)?;
        let queue = Queue::new(
            ShortStr::from(name),
            &self.name,
            d.durable,
            d.exclusive.then_some(connection),
            d.auto_delete,
            d.arguments.clone(),
            store,
            stream,
            self.memory.clone(),
            self.clock.clone(),
            settings.dead_letter,
            (settings.applied, &settings.effective),
        );
        topo.dirty |= queue.persisted();
        if let Some(e) = self.events() {
            e.queue_created(&self.name, &queue);
        }
        topo.queues.insert(name.to_owned(), queue.clone());
        self.churn(crate::stats::Churn::QueueDeclared);
        self.churn(crate::stats::Churn::QueueCreated);
        Ok(Declared {
            queue,
            message_count: 0,
            consumer_count: 0,
        })
    }

    /// The kind of exchange `name` and whether it is internal, if it exists.
    pub fn exchange_kind(&self, name: &str) -> Option<(ExchangeKind, bool)> {
        let topo = self.read();
        let x = topo.exchanges.get(canonical_exchange(name))?;
        Some((x.kind, x.internal))
    }

    pub fn has_queue(&self, name: &str) -> bool {
        self.read().queues.contains_key(name)
    }

    /// Looks a queue up for use by `connection` (exclusive queues of others are locked).
    pub fn queue(&self, name: &str, connection: u64) -> Result<Arc<Queue>, Exception> {
        let queue = self
            .read()
            .queues
            .get(name)
            .cloned()
            .ok_or_else(|| self.no_queue(name))?;
        queue.check_exclusive(connection)?;
        Ok(queue)
    }

    pub fn delete_queue(
        &self,
        name: &str,
        if_unused: bool,
        if_empty: bool,
        connection: u64,
    ) -> Result<u32, Exception> {
        let mut topo = self.write();
        let Some(queue) = topo.queues.get(name).cloned() else {
            return Ok(0);
        };
        queue.check_exclusive(connection)?;
        let (messages, consumers) = queue.counts();
        if if_unused && consumers > 0 {
            return Err(Exception::precondition_failed(format!(
                "{} in use",
                self.describe_queue(name)
            )));
        }
        if if_empty && messages > 0 {
            return Err(Exception::precondition_failed(format!(
                "{} not empty",
                self.describe_queue(name)
            )));
        }
        self.churn(crate::stats::Churn::QueueDeleted);
        if let Some(e) = self.events() {
            self.notify_queue_deleted(e, &topo, &queue, false);
        }
        Ok(remove_queue_locked(&mut topo, &queue))
    }

    /// A hidden queue for a channel's direct reply-to consumer: reachable through the
    /// default exchange by its address, never listed, gone with its consumer.
    pub fn create_reply_queue(&self) -> Arc<Queue> {
        let name = server_generated_name(REPLY_PREFIX);
        let queue = Queue::new(
            ShortStr::from(name.as_str()),
            &self.name,
            false,
            None,
            true,
            FieldTable::default(),
            None,
            None,
            self.memory.clone(),
            self.clock.clone(),
            None,
            (Applied::default(), &FieldTable::default()),
        );
        self.replies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name, queue.clone());
        queue
    }

    /// Deletes a queue without conditions (its exclusive owner closed, or the last
    /// consumer of an auto-delete queue went). Returns how many messages it dropped.
    pub fn remove_queue(&self, queue: &Arc<Queue>) -> u32 {
        if queue.name.starts_with(REPLY_PREFIX) {
            self.replies
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(queue.name.as_str());
            return queue.mark_deleted();
        }
        let mut topo = self.write();
        match topo.queues.get(queue.name.as_str()) {
            Some(q) if q.id == queue.id => {
                self.churn(crate::stats::Churn::QueueDeleted);
                if let Some(e) = self.events() {
                    self.notify_queue_deleted(e, &topo, queue, true);
                }
                remove_queue_locked(&mut topo, queue)
            }
            _ => 0,
        }
    }

    pub fn purge_queue(&self, name: &str, connection: u64) -> Result<u32, Exception> {
        let queue = self.queue(name, connection)?;
        if queue.stream.is_some() {
            return Err(Exception::not_implemented(format!(
                "queue.purge not supported by stream queues {}",
                self.describe_queue(name)
            )));
        }
        Ok(queue.purge())
    }

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

    /// When the sweep next has something to do here (`timed`, for a manual clock): the
    /// earliest head-message expiry or x-expires lease of this vhost's queues.
    pub fn next_due(&self) -> Option<u64> {
        let queues: Vec<Arc<Queue>> = self.read().queues.values().cloned().collect();
        queues
            .iter()
            .flat_map(|q| [q.head_due(), q.lease_due()])
            .flatten()
            .min()
    }

    /// The sweep: drops expired messages at the heads of this vhost's queues, and deletes
    /// queues whose x-expires lease ran out.
    pub fn expire_messages(&self) {
        let now = self.clock.now_ms();
        let mut unused = Vec::new();
        for q in self.read().queues.values() {
            q.expire();
            if q.lease_expired(now) {
                unused.push(q.clone());
            }
        }
        for q in unused {
            tracing::debug!(queue = %q.name, "queue expired (x-expires)");
            self.remove_queue(&q);
        }
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

fn remove_queue_locked(topo: &mut Topology, queue: &Arc<Queue>) -> u32 {
    topo.queues.remove(queue.name.as_str());
    topo.dirty |= queue.persisted();
    remove_destination_locked(topo, &Destination::Queue(queue.clone()));
    queue.mark_deleted()
}

/// Removes every binding to `dest`, and the auto-delete exchanges this leaves unbound.
fn remove_destination_locked(topo: &mut Topology, dest: &Destination) {
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
