//! Delayed messages (the `x-delayed-message` exchange): every message waiting for its
//! `x-delay`, across all vhosts, and the one task that routes them when they are due.
//!
//! Owned by the broker (one `Scheduler`, shared by its vhosts). A vhost's routing calls
//! `hold` (under its topology read lock: memory work and a non-blocking send to the
//! store only) when a delayed exchange takes a message; the firing task pops what is
//! due, releases the lock, and hands each message back to its vhost, which routes it
//! through the exchange's bindings as they are then (RabbitMQ's plugin routes at
//! delivery time too). Deleting an exchange or vhost drops its pending messages.
//!
//! Waiting messages sit in a binary min-heap ordered by (due time, arrival number), so
//! messages due at the same millisecond keep publish order; each costs one heap entry
//! (`ENTRY_BYTES`) besides the message, counted in the memory budget. A persistent
//! message held by a durable exchange is also in the message store, under a key of its
//! own per exchange (`store_key`), with its due time in the record's exchange field
//! (`stored_exchange`); it is settled there once routed, and read back by `recover` at
//! start. The task sleeps until the earliest due time and is woken when an earlier one
//! arrives: one timer for all, never one per message. Lock order: topology, then this
//! scheduler's state; nothing here takes a queue lock or waits under the lock.

pub mod clock;
pub mod recover;
mod spill;

use super::memory::Memory;
use super::message::Message;
use super::vhost::VHost;
use crate::store::StoreHandle;
use spill::{Spill, Spilled};
use std::cmp::{Ordering as CmpOrdering, Reverse};
use std::collections::{BinaryHeap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use tokio::sync::Notify;

/// What one waiting message costs besides its bytes: its heap entry (56 bytes, the heap
/// grows by doubling) and the message's allocation header.
pub const ENTRY_BYTES: usize = 2 * std::mem::size_of::<Entry>() + 16;
/// Messages routed per turn of the task before it lets others run.
const BATCH: usize = 4096;
/// The longest single sleep: the wall clock may be set forward meanwhile.
const MAX_SLEEP_MS: i64 = 60_000;

/// A delayed exchange as the scheduler knows it: where its messages go back to.
pub struct Target {
    vhost: Weak<VHost>,
    vhost_name: String,
    pub exchange: String,
    /// Its key in the message store (durable exchanges of a broker with a store).
    store: Option<(StoreHandle, Arc<str>)>,
    pending: AtomicU64,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Target")
            .field("vhost", &self.vhost_name)
            .field("exchange", &self.exchange)
            .finish()
    }
}

impl Target {
    /// The store handle and key persistent messages of this exchange are kept under.
    pub fn store(&self) -> Option<&(StoreHandle, Arc<str>)> {
        self.store.as_ref()
    }
}

/// One waiting message.
#[derive(Debug)]
struct Entry {
    due: i64,
    seq: u64,
    target: Arc<Target>,
    /// Already carrying `x-delay: -delay`, as it will be routed.
    body: Body,
    /// Its id in the message store (0: not stored).
    store_id: u64,
}

/// Where a waiting message's bytes are.
#[derive(Debug)]
enum Body {
    Memory(Message),
    Spilled(Spilled),
}

impl Body {
    /// What it counts in the memory accounting.
    fn cost(&self) -> usize {
        match self {
            Body::Memory(m) => m.size() + ENTRY_BYTES,
            Body::Spilled(_) => ENTRY_BYTES,
        }
    }
}

/// Messages due within this many ms are kept in memory even past the budget: writing
/// them out would not pay.
const SPILL_AFTER_MS: i64 = 2_000;

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}
impl Eq for Entry {}
impl PartialOrd for Entry {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}
impl Ord for Entry {
    fn cmp(&self, other: &Self) -> CmpOrdering {
        (self.due, self.seq).cmp(&(other.due, other.seq))
    }
}

#[derive(Debug, Default)]
struct State {
    heap: BinaryHeap<Reverse<Entry>>,
    /// Each delayed exchange with messages (or once had some), by (vhost, exchange).
    targets: HashMap<(String, String), Arc<Target>>,
    seq: u64,
    /// Messages past the budget (made when the page directory is first needed).
    spill: Option<Spill>,
}

/// A message that is due, to be routed by its vhost (`None`: its bytes come from the
/// spill file's read, in order).
struct Due {
    target: Arc<Target>,
    msg: Option<Message>,
    store_id: u64,
}

/// What `take_due` found.
struct Taken {
    due: Vec<Due>,
    /// The spilled ones' bytes, in order, once the I/O thread read them.
    spilled: Option<tokio::sync::oneshot::Receiver<Vec<Option<Message>>>>,
    /// When the next one is due (None: nothing waits).
    next: Option<i64>,
}

#[derive(Debug)]
pub struct Scheduler {
    state: Mutex<State>,
    wake: Arc<Notify>,
    started: AtomicBool,
    /// Shutting down: the task routes nothing more.
    stopped: Arc<AtomicBool>,
    memory: Arc<Memory>,
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        // The task holds only a weak reference: woken, it finds the scheduler gone.
        self.wake.notify_one();
    }
}

/// The store key of a delayed exchange's held messages. Its shape ("delayed:" before a
/// queue key) never parses as a queue key, so no queue ever meets it.
pub fn store_key(vhost: &str, exchange: &str) -> Arc<str> {
    Arc::from(format!(
        "delayed:{}",
        crate::store::queue_key(vhost, exchange)
    ))
}

/// The (vhost, exchange) a key made by `store_key` names.
pub fn split_store_key(key: &str) -> Option<(&str, &str)> {
    crate::store::split_queue_key(key.strip_prefix("delayed:")?)
}

/// What a held message's record keeps in its exchange field: its due time and the
/// exchange it was published to (which consumers see).
pub fn stored_exchange(due: i64, published_to: &str) -> String {
    format!("{due}:{published_to}")
}

/// Reverses `stored_exchange`.
pub fn split_stored_exchange(field: &str) -> Option<(i64, &str)> {
    let (due, exchange) = field.split_once(':')?;
    Some((due.parse().ok()?, exchange))
}

impl Scheduler {
    pub fn new(memory: Arc<Memory>) -> Arc<Scheduler> {
        Arc::new(Scheduler {
            state: Mutex::default(),
            wake: Arc::new(Notify::new()),
            started: AtomicBool::new(false),
            stopped: Arc::default(),
            memory,
        })
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The target for `exchange` of `vhost`, made on first use.
    pub fn target(
        &self,
        vhost: &Arc<VHost>,
        exchange: &str,
        store: Option<&StoreHandle>,
    ) -> Arc<Target> {
        let mut st = self.lock();
        let key = (vhost.name.clone(), exchange.to_owned());
        st.targets
            .entry(key)
            .or_insert_with(|| {
                Arc::new(Target {
                    vhost: Arc::downgrade(vhost),
                    vhost_name: vhost.name.clone(),
                    exchange: exchange.to_owned(),
                    store: store.map(|s| (s.clone(), store_key(&vhost.name, exchange))),
                    pending: AtomicU64::new(0),
                })
            })
            .clone()
    }

    /// Holds `msg` for `target` until `due` (Unix ms). `store_id` is its record in the
    /// message store, if it was written there. Does not start the firing task (recovery
    /// holds everything first; see `start`).
    pub fn hold(&self, target: Arc<Target>, msg: Message, due: i64, store_id: u64) {
        target.pending.fetch_add(1, Ordering::Relaxed);
        let mut st = self.lock();
        let body = self.place(&mut st, msg, due);
        self.memory.add(body.cost());
        let earliest = st.heap.peek().is_none_or(|Reverse(e)| due < e.due);
        st.seq += 1;
        let seq = st.seq;
        st.heap.push(Reverse(Entry {
            due,
            seq,
            target,
            body,
            store_id,
        }));
        drop(st);
        if earliest {
            self.wake.notify_one();
        }
    }

    /// How many messages `exchange` of `vhost` holds now.
    pub fn pending(&self, vhost: &str, exchange: &str) -> u64 {
        let st = self.lock();
        st.targets
            .get(&(vhost.to_owned(), exchange.to_owned()))
            .map_or(0, |t| t.pending.load(Ordering::Relaxed))
    }

    /// How many messages all delayed exchanges hold now.
    pub fn total_pending(&self) -> usize {
        self.lock().heap.len()
    }

    /// The exchange was deleted: its waiting messages are dropped (and settled in the
    /// store), as they would route nowhere. Returns how many.
    pub fn drop_exchange(&self, vhost: &str, exchange: &str) -> u64 {
        let mut st = self.lock();
        let Some(target) = st.targets.remove(&(vhost.to_owned(), exchange.to_owned())) else {
            return 0;
        };
        self.drop_where(&mut st, |t| Arc::ptr_eq(t, &target))
    }

    /// The vhost was deleted: every message its delayed exchanges hold is dropped.
    pub fn drop_vhost(&self, vhost: &str) -> u64 {
        let mut st = self.lock();
        st.targets.retain(|(v, _), _| v != vhost);
        self.drop_where(&mut st, |t| t.vhost_name == vhost)
    }

    /// Where a new message waits: in memory, or past the memory budget (and not due
    /// soon) in the spill file.
    fn place(&self, st: &mut State, msg: Message, due: i64) -> Body {
        let Some(dir) = self.memory.paging() else {
            return Body::Memory(msg);
        };
        if due.saturating_sub(clock::now_unix_ms()) < SPILL_AFTER_MS {
            return Body::Memory(msg);
        }
        let spill = st.spill.get_or_insert_with(|| Spill::new(dir));
        match spill.write(dir, &msg) {
            Some(at) => Body::Spilled(at),
            None => Body::Memory(msg),
        }
    }

    fn drop_where(&self, st: &mut State, gone: impl Fn(&Arc<Target>) -> bool) -> u64 {
        let (mut dropped, mut spilled) = (0, 0);
        st.heap.retain(|Reverse(e)| {
            if !gone(&e.target) {
                return true;
            }
            dropped += 1;
            spilled += u64::from(matches!(e.body, Body::Spilled(_)));
            self.settle(e);
            false
        });
        if let (Some(spill), Some(dir)) = (&mut st.spill, self.memory.page_dir()) {
            spill.forget(dir, spilled);
        }
        dropped
    }

    /// A message leaves the scheduler (routed or dropped).
    fn settle(&self, e: &Entry) {
        self.memory.sub(e.body.cost());
        e.target.pending.fetch_sub(1, Ordering::Relaxed);
        if let (Some((store, key)), id @ 1..) = (&e.target.store, e.store_id) {
            store.ack(key, id);
        }
    }

    /// Takes up to `BATCH` messages due at `now`, in due order; and when the next one
    /// is due (None: nothing waits).
    fn take_due(&self, now: i64) -> Taken {
        let mut st = self.lock();
        let mut due = Vec::new();
        let mut spilled = Vec::new();
        while due.len() < BATCH {
            match st.heap.peek() {
                Some(Reverse(e)) if e.due <= now => {}
                _ => break,
            }
            let Some(Reverse(e)) = st.heap.pop() else {
                break;
            };
            // Counted out here; the store record is settled once the vhost routed it.
            self.memory.sub(e.body.cost());
            e.target.pending.fetch_sub(1, Ordering::Relaxed);
            let msg = match e.body {
                Body::Memory(m) => Some(m),
                Body::Spilled(at) => {
                    spilled.push(at);
                    None
                }
            };
            due.push(Due {
                target: e.target,
                msg,
                store_id: e.store_id,
            });
        }
        // Queued under the lock: before any later write reuses the emptied file.
        let spilled = match (&mut st.spill, self.memory.page_dir()) {
            (Some(spill), Some(dir)) if !spilled.is_empty() => Some(spill.read(dir, spilled)),
            _ => None,
        };
        Taken {
            due,
            spilled,
            next: st.heap.peek().map(|Reverse(e)| e.due),
        }
    }

    /// Starts the firing task if it is not running and a runtime is at hand: called by
    /// the server once recovery is done, and by each publish that holds a message (for
    /// a broker used without the server).
    pub fn start(self: &Arc<Self>) {
        if self.started.load(Ordering::Relaxed) {
            return;
        }
        let Ok(rt) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.started.swap(true, Ordering::AcqRel) {
            return;
        }
        rt.spawn(run(
            Arc::downgrade(self),
            self.wake.clone(),
            self.stopped.clone(),
        ));
    }

    /// The broker is stopping: the firing task ends without routing anything more
    /// (before the store's last flush, so nothing it routes can miss it).
    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        self.wake.notify_one();
    }
}

/// The firing task: route what is due, then sleep until the next due time or until an
/// earlier message arrives.
async fn run(scheduler: Weak<Scheduler>, wake: Arc<Notify>, stopped: Arc<AtomicBool>) {
    loop {
        let Some(s) = scheduler
            .upgrade()
            .filter(|_| !stopped.load(Ordering::Acquire))
        else {
            return;
        };
        let now = clock::now_unix_ms();
        let Taken { due, spilled, next } = s.take_due(now);
        let full = due.len() == BATCH;
        drop(s);
        let mut read_back = match spilled {
            Some(rx) => rx.await.unwrap_or_default(),
            None => Vec::new(),
        }
        .into_iter();
        if stopped.load(Ordering::Acquire) {
            return;
        }
        for d in due {
            let msg = match d.msg {
                Some(m) => Some(m),
                None => read_back.next().flatten(),
            };
            match (msg, d.target.vhost.upgrade()) {
                (Some(msg), Some(vhost)) => vhost.route_due(&d.target.exchange, &msg),
                (None, _) => tracing::warn!(
                    exchange = %d.target.exchange,
                    "a held message could not be read back from the spill file: dropped"
                ),
                _ => {}
            }
            if let (Some((store, key)), id @ 1..) = (&d.target.store, d.store_id) {
                // After the routed copies were sent to the store: the writer keeps
                // order, so a crash never loses the message (at worst routes it twice).
                store.ack(key, id);
            }
        }
        if full {
            tokio::task::yield_now().await;
            continue;
        }
        let wait = next.map_or(MAX_SLEEP_MS, |t| {
            t.saturating_sub(now).clamp(0, MAX_SLEEP_MS)
        });
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(std::time::Duration::from_millis(wait as u64)) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_heap_entry_stays_small() {
        // due, arrival, target, body (a message or a spill position), store id.
        assert!(
            std::mem::size_of::<Entry>() <= 56,
            "{}",
            std::mem::size_of::<Entry>()
        );
    }

    #[test]
    fn store_keys_and_fields_round_trip_and_never_look_like_queue_keys() {
        let key = store_key("/", "dx");
        assert_eq!(split_store_key(&key), Some(("/", "dx")));
        assert_eq!(crate::store::split_queue_key(&key), None);
        assert_eq!(split_store_key(&crate::store::queue_key("/", "dx")), None);
        let field = stored_exchange(i64::MAX, "a:b");
        assert_eq!(split_stored_exchange(&field), Some((i64::MAX, "a:b")));
        assert_eq!(split_stored_exchange("x:y"), None);
    }
}
