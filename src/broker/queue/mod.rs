//! A queue: its ready messages in order (`ready`, paged to disk past the memory budget
//! by `paging`), its consumers in a ring, and dispatch.
//!
//! Called by publishing channels (publish), by consuming channels (consume, cancel, get,
//! settle, requeue) and by the vhost (declare, delete, purge). All state sits behind one
//! std `Mutex`, held for a few pushes and pops and never across an `.await`; inside it the
//! only thing done to the outside world is a non-blocking send into a consumer's outbox.
//! Lock order: the vhost topology lock, if held, is taken before this one; never two queue
//! locks at once.
//!
//! This file holds the queue's record, publish, policies, purge and deletion; beside it:
//! `limits` (its effective settings), `expiry` (TTL and x-expires), `dispatch`
//! (consumers and handing out), `settle` (acks, rejects, dead letters, requeues),
//! `store` (its handle on the message store), `ready`/`paging` (the messages), `readback`
//! and `browse` (reading paged tails). It uses nothing above it in the broker's chain
//! (see `broker`): no vhost, exchange or persistence; `tests` builds one on its own.

pub mod browse;
mod dispatch;
mod expiry;
mod figures;
mod limits;
mod outstanding;
pub mod paging;
mod poison;
mod readback;
mod ready;
mod settle;
mod store;
#[cfg(test)]
mod tests;

use super::consumer::{ConnectionHandle, Consumer, Outgoing};
use super::deadletter::{DeadLetterTarget, Reason};
use super::memory::Memory;
use super::message::Message;
use super::policy::Applied;
use super::records;
use super::replica::Replica;
use super::stream_queue::StreamQueue;
use crate::codec::properties as props;
use crate::codec::ShortStr;
use crate::error::Exception;
use amq_protocol::types::{AMQPValue, FieldTable};
pub use figures::QueueFigures;
use limits::Limits;
pub use poison::{Poisoned, POISON_DELIVERIES};
use readback::read_back_waker;
pub use readback::Get;
use ready::Ready;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, Weak};
pub use store::QueueStore;

static NEXT_QUEUE_ID: AtomicU64 = AtomicU64::new(1);

/// A message waiting in (or taken from) a queue. `seq` orders the queue: requeued
/// messages go back to the place their sequence number gives them.
#[derive(Clone, Debug)]
pub struct Queued {
    pub seq: u64,
    pub msg: Message,
    pub redelivered: bool,
    /// The message store's id when this copy is persistent in a durable queue, else 0.
    pub store_id: u64,
    /// When it expires, on the broker clock's `now_ms` (x-message-ttl, expiration), which
    /// starts at 1; 0: never.
    pub expires_at: u64,
    /// Its priority level in a queue with x-max-priority (0 elsewhere).
    pub priority: u8,
    /// What this copy counts in memory accounting (`Message::share_cost`).
    pub cost: u32,
    /// Times it was delivered and returned (quorum queues: x-delivery-count).
    pub deliveries: u16,
}

impl Queued {
    fn cost(&self) -> usize {
        self.cost as usize
    }
}

/// The header a quorum queue puts on every delivery: how often it was returned before.
const DELIVERY_COUNT: &str = "x-delivery-count";

/// A copy's accounted cost, as `Queued::cost` holds it.
fn msg_cost(msg: &Message, sharers: usize) -> u32 {
    u32::try_from(msg.share_cost(sharers)).unwrap_or(u32::MAX)
}

/// A message as a consumer gets it: from a quorum queue, with how often it went before.
fn as_delivered(quorum: bool, mut item: Queued) -> Queued {
    if quorum {
        let count = AMQPValue::LongLongInt(i64::from(item.deliveries));
        item.msg = item.msg.with_header(DELIVERY_COUNT, Some(count));
    }
    item
}

#[derive(Debug)]
pub struct Queue {
    pub id: u64,
    pub name: ShortStr,
    pub vhost: String,
    pub durable: bool,
    /// The connection that declared it exclusive, if it is.
    pub exclusive_owner: Option<u64>,
    pub auto_delete: bool,
    pub arguments: FieldTable,
    /// Durable queues with a data directory record their persistent messages here.
    pub store: Option<QueueStore>,
    /// A stream queue's engine (its log and readers); `None` for every other queue.
    pub stream: Option<Arc<StreamQueue>>,
    /// A quorum queue on a cluster node: its messages go through the Raft log (set once
    /// by the vhost that declared it; see `replica`).
    replica: std::sync::OnceLock<Arc<dyn Replica>>,
    memory: Arc<Memory>,
    /// The broker's clock: message expiry and the x-expires lease.
    clock: crate::clock::Clock,
    /// What the record takes in the memory accounting, given back when it drops.
    record_bytes: u32,
    /// x-dead-letter-exchange: where rejected, expired and dropped messages go. Set
    /// again when a policy changes it; a leaf lock (taken under the queue lock).
    dead_letter: RwLock<Option<DeadLetterTarget>>,
    /// x-queue-type quorum: deliveries carry x-delivery-count (fixed at declaration).
    quorum: bool,
    /// x-max-priority (not a policy key, so fixed at declaration).
    max_priority: Option<u8>,
    /// The effective x-expires in milliseconds, 0 for none: read by the sweep without
    /// the queue lock.
    expires: AtomicU64,
    /// A message with an expiry was published: the sweep looks at this queue.
    may_expire: std::sync::atomic::AtomicBool,
    /// When it was last used (declared, consumed from, read with basic.get), for x-expires.
    last_used: AtomicU64,
    /// publish, deliver, get, ack, redeliver of this queue (the management API's
    /// message_stats), bumped beside the work on the queue.
    pub stats: crate::stats::Counters,
    /// Messages that left for the dead-letter exchange (not a `message_stats` key in
    /// RabbitMQ 3.10: the embedding API's counters read it).
    pub dead_lettered: AtomicU64,
    /// Messages acked or rejected for good by clients, counted without the queue lock
    /// (`outstanding`).
    returned: outstanding::Returned,
    state: Mutex<QueueState>,
}

#[derive(Debug)]
struct QueueState {
    ready: Ready,
    /// basic.gets waiting for a read-back from a page file: (connection, channel).
    /// Boxed: most queues never have one, and a queue record should stay small (8 bytes
    /// instead of a Vec's 24 in each of 100,000 queues).
    #[allow(clippy::box_collection)]
    getters: Option<Box<Vec<(ConnectionHandle, u16)>>>,
    /// Consumers counted in the memory accounting (`consumers_changed`).
    consumers_charged: u32,
    /// Messages handed out for acknowledgement, less those put back (`outstanding`).
    handed: outstanding::Handed,
    next_seq: u64,
    consumers: Vec<Consumer>,
    next_consumer: usize,
    deleted: bool,
    /// The effective settings: arguments, policy and operator policy together.
    limits: Limits,
    /// The policies applied, when any (boxed: most queues have none).
    applied: Option<Box<Applied>>,
    /// Messages sent back over and over (diagnostics; empty in nearly every queue).
    poison: poison::PoisonList,
}

/// What became of a published message in one queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    Yes,
    /// x-overflow reject-publish and the queue is full: the publisher gets a nack.
    Refused,
    /// The queue was deleted meanwhile.
    Gone,
}

/// What removing a consumer left behind.
#[derive(Debug, PartialEq, Eq)]
pub enum ConsumerRemoved {
    NotFound,
    Removed,
    /// The last consumer of an auto-delete queue went: the caller deletes the queue.
    RemovedLastOfAutoDelete,
}

impl Drop for Queue {
    fn drop(&mut self) {
        let st = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        let consumers = u64::from(st.consumers_charged) * records::CONSUMER_BYTES;
        self.memory
            .sub(self.record_bytes as usize + consumers as usize);
    }
}

impl PartialEq for Queue {
    fn eq(&self, other: &Self) -> bool {
        self.id == other.id
    }
}

impl QueueState {
    /// Brings the queue's charge up to date with its consumers (serving a queue is not
    /// creating a record: a consumer that comes to drain is never held back for it).
    fn consumers_changed(&mut self, memory: &Memory) {
        let now = u32::try_from(self.consumers.len()).unwrap_or(u32::MAX);
        let bytes = |n: u32| (u64::from(n) * records::CONSUMER_BYTES) as usize;
        if now > self.consumers_charged {
            memory.add(bytes(now - self.consumers_charged));
        } else {
            memory.sub(bytes(self.consumers_charged - now));
        }
        self.consumers_charged = now;
    }
}

impl Queue {
    // Every argument is a separate fact of the declaration; the vhost is the only caller.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: ShortStr,
        vhost: &str,
        durable: bool,
        exclusive_owner: Option<u64>,
        auto_delete: bool,
        arguments: FieldTable,
        store: Option<QueueStore>,
        stream: Option<Arc<StreamQueue>>,
        memory: Arc<Memory>,
        clock: crate::clock::Clock,
        dead_letter: Option<DeadLetterTarget>,
        policy: (Applied, &FieldTable),
    ) -> Arc<Queue> {
        let (applied, effective) = policy;
        let limits = Limits::from_arguments(effective);
        let lazy = limits.lazy;
        let levels = limits.max_priority.map_or(1, |p| p as usize + 1);
        let record_bytes = records::QUEUE_BYTES + 2 * records::named(name.as_str(), &arguments);
        records::created(&memory, record_bytes);
        let record_bytes = u32::try_from(record_bytes).unwrap_or(u32::MAX);
        Arc::new_cyclic(|me: &Weak<Queue>| Queue {
            id: NEXT_QUEUE_ID.fetch_add(1, Ordering::Relaxed),
            name,
            vhost: vhost.to_owned(),
            durable,
            exclusive_owner,
            auto_delete,
            arguments,
            store,
            stream,
            replica: std::sync::OnceLock::new(),
            memory: memory.clone(),
            last_used: AtomicU64::new(clock.now_ms()),
            clock,
            record_bytes,
            dead_letter: RwLock::new(dead_letter),
            quorum: limits.quorum,
            max_priority: limits.max_priority,
            expires: AtomicU64::new(limits.expires.unwrap_or(0)),
            may_expire: std::sync::atomic::AtomicBool::new(false),
            stats: Default::default(),
            dead_lettered: AtomicU64::new(0),
            returned: Default::default(),
            state: Mutex::new(QueueState {
                ready: Ready::new(levels, memory.clone(), lazy, me.clone()),
                getters: None,
                consumers_charged: 0,
                handed: Default::default(),
                next_seq: 0,
                consumers: Vec::new(),
                next_consumer: 0,
                deleted: false,
                limits,
                applied: (applied != Applied::default()).then(|| Box::new(applied)),
                poison: Default::default(),
            }),
        })
    }

    fn lock(&self) -> MutexGuard<'_, QueueState> {
        // A panic while holding this lock would be a bug; the state itself stays
        // consistent (every mutation is a single push/pop), so keep serving.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the definitions file holds this queue: a durable queue with a data
    /// directory (its messages in the store, or its log for a stream).
    pub fn persisted(&self) -> bool {
        self.store.is_some() || self.stream.is_some()
    }

    /// "queue 'q' in vhost '/'", as RabbitMQ names a queue in its texts.
    pub fn describe(&self) -> String {
        format!("queue '{}' in vhost '{}'", self.name, self.vhost)
    }

    /// RESOURCE_LOCKED unless `connection` may use this queue.
    pub fn check_exclusive(&self, connection: u64) -> Result<(), Exception> {
        match self.exclusive_owner {
            Some(owner) if owner != connection => Err(self.locked()),
            _ => Ok(()),
        }
    }

    /// RabbitMQ's RESOURCE_LOCKED for an exclusive queue used from elsewhere, or declared
    /// again with another exclusive flag.
    pub fn locked(&self) -> Exception {
        Exception::resource_locked(format!(
            "cannot obtain exclusive access to locked queue '{}' in vhost '{}'. It could be \
             originally declared on another connection or the exclusive property value does \
             not match that of the original declaration.",
            self.name, self.vhost
        ))
    }

    /// Enqueues a message and hands it to a consumer if one has credit. `store_id` is the
    /// message store's id when the message is persistent (ignored by transient queues);
    /// `sharers` is how many queues it was routed to (memory accounting counts it once).
    pub fn publish(self: &Arc<Self>, msg: Message, store_id: u64, sharers: usize) -> Enqueued {
        // Transactions, dead letters and the API publish to a stream without a confirm.
        if self.stream_publish(&msg, None) {
            return Enqueued::Yes;
        }
        let store_id = if self.store.is_some() { store_id } else { 0 };
        let mut st = self.lock();
        self.publish_locked(&mut st, msg, store_id, sharers)
    }

    /// Transient messages from one publisher for this queue alone, in order, under one
    /// take of the lock; `each` gets each one's outcome, in order. Each is enqueued
    /// exactly as `publish` would (limits, reject-publish, TTL, dispatch, drop-head).
    pub fn publish_many(
        self: &Arc<Self>,
        msgs: impl Iterator<Item = Message>,
        mut each: impl FnMut(Enqueued),
    ) {
        if self.stream.is_some() {
            // Not batched by channels (a stream answers confirms itself); one at a time.
            for msg in msgs {
                each(self.publish(msg, 0, 1));
            }
            return;
        }
        let mut st = self.lock();
        for msg in msgs {
            each(self.publish_locked(&mut st, msg, 0, 1));
        }
    }

    fn publish_locked(
        self: &Arc<Self>,
        st: &mut QueueState,
        msg: Message,
        store_id: u64,
        sharers: usize,
    ) -> Enqueued {
        if st.deleted {
            // Stored after the deletion settled this queue in the store (the publish
            // routed before it): settle it too, or its segment is never reclaimed.
            if let (Some(s), true) = (&self.store, store_id != 0) {
                s.store.ack(&s.key, store_id);
            }
            return Enqueued::Gone;
        }
        // Beside the queue lock this publish already holds.
        self.stats.add(crate::stats::Key::Publish, 1);
        let mut item = self.new_item(st, msg, store_id, sharers);
        item.expires_at = self.expiry(st.limits.message_ttl, &item.msg);
        if st.limits.reject_publish && st.limits.full_for(&st.ready, item.msg.body().len()) {
            if st.limits.dead_letter_refused {
                self.dead_letter(item, Reason::Maxlen);
            } else {
                self.settled(&item);
            }
            return Enqueued::Refused;
        }
        st.ready.push_back(item);
        self.dispatch_locked(st);
        self.drop_head(st);
        Enqueued::Yes
    }

    /// Appends to this queue's log if it is a stream, or proposes it to the cluster's log
    /// if the queue is replicated (`done`: the publisher's confirm, answered once the
    /// entry is durable, on a majority for a replicated queue); false for other queues.
    pub fn stream_publish(&self, msg: &Message, done: Option<crate::store::Done>) -> bool {
        if let Some(replica) = self.replica() {
            replica.enqueue(self, msg, done);
            return true;
        }
        let Some(stream) = &self.stream else {
            return false;
        };
        self.stats.add(crate::stats::Key::Publish, 1);
        stream.publish(msg, done);
        true
    }

    /// Whether a publish's confirm waits for this queue's own log (a stream, or a
    /// replicated queue).
    pub fn confirms_itself(&self) -> bool {
        self.stream.is_some() || self.replica.get().is_some()
    }

    /// The cluster's handle when this is a replicated (quorum) queue on a cluster node.
    pub fn replica(&self) -> Option<&Arc<dyn Replica>> {
        self.replica.get()
    }

    /// Makes this queue replicated (the vhost, right after declaring it on a cluster node).
    pub fn set_replica(&self, replica: Arc<dyn Replica>) {
        let _ = self.replica.set(replica);
    }

    /// A message the cluster's log committed for this queue, with its id in the log
    /// (`store_id`): enqueued here on the node that serves the queue.
    pub fn apply_enqueue(self: &Arc<Self>, msg: Message, id: u64) -> Enqueued {
        let mut st = self.lock();
        self.publish_locked(&mut st, msg, id, 1)
    }

    /// This node stopped serving a replicated queue: its ready messages are dropped here
    /// without telling the log (they stay in the log for the new leader). Returns how many.
    pub fn drop_replica_copy(&self) -> usize {
        let mut st = self.lock();
        let (items, tails) = st.ready.take_all();
        let n = items.len();
        for item in items {
            self.memory.sub(item.cost());
        }
        drop(tails);
        n
    }

    /// x-overflow drop-head: the oldest ready messages make room.
    fn drop_head(&self, st: &mut QueueState) {
        while st.limits.over(&st.ready) {
            let Some(old) = st.ready.pop_front() else {
                break;
            };
            self.dead_letter(old, Reason::Maxlen);
        }
    }

    /// The policies now applying to this queue: its effective settings become
    /// `effective` (the declared arguments with the policies' settings) and its
    /// dead-letter target `dead_letter`. A lower length limit drops the excess at once
    /// (dead-lettered as maxlen, to the new target) unless the queue was already in
    /// reject-publish mode: RabbitMQ 3.10 applies the new limit before the new overflow
    /// mode, so a policy bringing both drops (checked on the reference), one changing
    /// the limit of a reject-publish queue keeps the excess and refuses new messages.
    /// Messages already queued keep the expiry they were given, as in RabbitMQ. Memory
    /// work only, under the queue lock.
    pub fn apply_policy(
        &self,
        applied: Applied,
        effective: &FieldTable,
        dead_letter: Option<DeadLetterTarget>,
    ) {
        let mut st = self.lock();
        let unchanged = match &st.applied {
            Some(a) => **a == applied,
            None => applied == Applied::default(),
        };
        if unchanged || st.deleted {
            return;
        }
        if let Some(stream) = &self.stream {
            // Retention (max-age, max-length-bytes) follows the policies; memory only.
            stream.reconfigure(effective);
        }
        let limits = Limits::from_arguments(effective);
        let drops = !st.limits.reject_publish;
        if limits.expires != st.limits.expires {
            // A new x-expires counts from now, as RabbitMQ restarts its timer.
            self.touch();
        }
        st.ready.set_lazy(limits.lazy);
        self.expires
            .store(limits.expires.unwrap_or(0), Ordering::Relaxed);
        *self.dead_letter.write().unwrap_or_else(|e| e.into_inner()) = dead_letter;
        st.limits = limits;
        st.applied = (applied != Applied::default()).then(|| Box::new(applied));
        if drops {
            self.drop_head(&mut st);
        }
    }

    /// The policies applied to this queue (none: the default).
    pub fn applied_policy(&self) -> Applied {
        self.lock().applied.as_deref().cloned().unwrap_or_default()
    }

    /// The message's priority level, clamped to x-max-priority (0 without it).
    fn priority(&self, msg: &Message) -> u8 {
        match self.max_priority {
            Some(max) => props::priority(msg.properties()).unwrap_or(0).min(max),
            None => 0,
        }
    }

    /// An entry for `msg` at the back of the queue: the next sequence number, its
    /// priority level and its accounted cost (counted in now).
    fn new_item(&self, st: &mut QueueState, msg: Message, store_id: u64, sharers: usize) -> Queued {
        let seq = st.next_seq;
        st.next_seq += 1;
        let item = Queued {
            seq,
            priority: self.priority(&msg),
            cost: msg_cost(&msg, sharers),
            msg,
            redelivered: false,
            store_id,
            expires_at: 0,
            deliveries: 0,
        };
        self.memory.add(item.cost());
        item
    }

    /// One message read back from the store at start, held by `sharers` queues, handed
    /// out `delivered` times before (each of those deliveries came back, the last by the
    /// restart); call in id order. A quorum queue dead-letters it now if that passes its
    /// x-delivery-limit, as the return at the restart would have.
    pub fn recover_one(&self, msg: Message, store_id: u64, delivered: u16, sharers: usize) {
        self.put_recovered(msg, store_id, delivered, sharers, delivered > 0);
    }

    /// A replicated queue's message as the cluster's log holds it, for the node that now
    /// serves the queue (`recover_one`'s rules; redelivered, as the node that served
    /// before may have delivered it).
    pub fn refill_one(&self, msg: Message, id: u64, delivered: u16) {
        self.put_recovered(msg, id, delivered, 1, true);
    }

    fn put_recovered(
        &self,
        msg: Message,
        store_id: u64,
        delivered: u16,
        sharers: usize,
        redelivered: bool,
    ) {
        let mut st = self.lock();
        let mut item = self.new_item(&mut st, msg, store_id, sharers);
        item.redelivered = redelivered;
        item.deliveries = delivered;
        if st
            .limits
            .delivery_limit
            .is_some_and(|limit| u64::from(delivered) > limit)
        {
            self.dead_letter(item, Reason::DeliveryLimit);
            return;
        }
        st.ready.push_back(item);
    }

    /// Drops every ready message; returns how many there were.
    pub fn purge(&self) -> u32 {
        let mut st = self.lock();
        let n = st.ready.len() as u32;
        let (items, tails) = st.ready.take_all();
        st.poison.clear();
        for item in items {
            self.settled(&item);
        }
        self.settle_paged(tails);
        n
    }

    /// Settles purged messages that were paged out: persistent ones are acked in the
    /// store, which means reading their tails back. That is done on the page I/O thread,
    /// not under the queue lock nor on the caller's runtime worker. Purge-ok can come
    /// before those acks reach the store; acks were never synced before purge-ok anyway
    /// (they ride on the store's next sync), so a crash just after a purge could already
    /// bring purged persistent messages back (at least once); the window is only longer
    /// for paged ones. Transient tails are just dropped: their files are deleted on the
    /// I/O thread, unread.
    fn settle_paged(&self, tails: Vec<paging::Tail>) {
        let Some(s) = &self.store else { return };
        let tails: Vec<paging::Tail> = tails.into_iter().filter(paging::Tail::has_stored).collect();
        let Some(dir) = self.memory.page_dir().filter(|_| !tails.is_empty()) else {
            return;
        };
        let (store, key) = (s.store.clone(), s.key.clone());
        dir.background(move || {
            for item in tails.into_iter().flat_map(paging::Tail::drain) {
                if item.store_id != 0 {
                    store.ack(&key, item.store_id);
                }
            }
        });
    }

    /// Counts for declare-ok: (messages ready, consumers).
    pub fn counts(&self) -> (u32, u32) {
        let st = self.lock();
        (st.ready.len() as u32, st.consumers.len() as u32)
    }

    /// Each consumer's (connection, channel, tag), for the event exchange's
    /// consumer.deleted when the queue goes.
    pub fn consumer_refs(&self) -> Vec<(u64, u16, ShortStr)> {
        let st = self.lock();
        st.consumers
            .iter()
            .map(|c| (c.connection.id, c.info.channel, c.info.tag.clone()))
            .collect()
    }

    /// Marks the queue deleted, drops its messages and tells its consumers (on other
    /// connections too) that they are cancelled. Returns the number of messages dropped.
    pub fn mark_deleted(&self) -> u32 {
        if let Some(stream) = &self.stream {
            stream.delete();
        }
        let mut st = self.lock();
        st.deleted = true;
        let n = st.ready.len() as u32;
        // Paged tails go with their files; the store forgets the queue as a whole below.
        let (items, _tails) = st.ready.take_all();
        for item in items {
            self.memory.sub(item.cost());
        }
        if let Some(s) = &self.store {
            // Under the queue lock: no append for this queue can slip in after it.
            s.store.drop_queue(&s.key);
        }
        for c in st.consumers.drain(..) {
            let _ = c.connection.outbox.send(Outgoing::Cancel {
                channel: c.info.channel,
                consumer_tag: c.info.tag.clone(),
            });
        }
        st.consumers_changed(&self.memory);
        // A basic.get waiting for a read-back asks again, and finds the queue gone.
        st.wake_getters();
        n
    }
}
