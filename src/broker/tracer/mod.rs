//! The message tracer: a developer watches the messages published to an exchange or
//! routed into a queue, a bounded number of them, for a bounded time.
//!
//! Each vhost owns one `Tracing`. Every path that routes a message (a channel's
//! publish, the management API's publish, dead-lettering) calls `Tracing::published`
//! once the routing result is known. With no trace capturing in the vhost that costs
//! one relaxed atomic load: no lock, no allocation. The management API starts, lists,
//! reads and deletes traces (`src/http/tracer.rs`). Locks here are short, memory-only,
//! taken after the topology lock was released, and never held across an `.await`;
//! order: the list, then one trace's state.

mod trace;

pub use trace::{Bounds, Event, Kind, Snapshot, Stop, Target, Trace};

use crate::broker::exchange::canonical_exchange;
use crate::broker::message::Message;
use crate::broker::queue::{now_ms, Queue};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Traces a broker keeps at once, capturing or stopped and still readable.
pub const MAX_TRACES: usize = 20;
/// The largest `max_messages` a trace may ask for.
pub const MAX_MESSAGES: usize = 10_000;
/// The largest payload preview per event.
pub const MAX_PAYLOAD_BYTES: usize = 65_536;
/// The longest lifetime, in seconds.
pub const MAX_SECONDS: u64 = 3600;

/// Who published a traced message.
#[derive(Debug, Clone, Copy)]
pub enum Origin<'a> {
    /// An AMQP channel: its statistics name ("<connection name> (<number>)").
    Channel { name: &'a str, number: u16 },
    /// `POST /api/exchanges/{vhost}/{name}/publish`.
    Management,
    /// A queue's dead-lettering.
    DeadLetter,
}

impl Origin<'_> {
    /// (origin, connection name, channel number) as the API shows them.
    fn parts(&self) -> (&'static str, Option<&str>, Option<u16>) {
        match *self {
            Origin::Channel { name, number } => {
                let connection = name.rsplit_once(" (").map_or(name, |(c, _)| c);
                ("amqp", Some(connection), Some(number))
            }
            Origin::Management => ("management", None, None),
            Origin::DeadLetter => ("dead-letter", None, None),
        }
    }
}

/// A delivery as a trace shows it.
#[derive(Debug, Clone, Copy)]
pub struct Delivery<'a> {
    /// The consumer's tag; `None` for a get.
    pub consumer_tag: Option<&'a str>,
    pub redelivered: bool,
    pub origin: Origin<'a>,
}

/// One vhost's traces.
#[derive(Debug, Default)]
pub struct Tracing {
    /// Traces in this vhost still capturing: the publish path's only check.
    active: AtomicUsize,
    traces: Mutex<Vec<Arc<Trace>>>,
}

impl Tracing {
    fn list(&self) -> MutexGuard<'_, Vec<Arc<Trace>>> {
        self.traces.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A message was routed: `targets` are the queues it reached (the exchange it was
    /// published to is the message's own). `origin` is asked only when a trace is on;
    /// nothing else is computed before the check.
    #[inline]
    pub fn published<'a>(
        &self,
        msg: &Message,
        targets: &[Arc<Queue>],
        origin: impl FnOnce() -> Origin<'a>,
    ) {
        if self.active.load(Ordering::Relaxed) == 0 {
            return;
        }
        let origin = origin();
        let exchange = canonical_exchange(msg.exchange());
        self.capture(
            |t| t.watches(exchange, targets),
            |t, now| t.record(Kind::Publish, exchange, msg, targets, &origin, now),
        );
    }

    /// `queue` handed `msg` to a consumer or to a get. `delivery` is asked only when a
    /// trace is on: with none, this is one relaxed load.
    #[inline]
    pub fn delivered<'a>(
        &self,
        queue: &Queue,
        msg: &Message,
        delivery: impl FnOnce() -> Delivery<'a>,
    ) {
        if self.active.load(Ordering::Relaxed) == 0 {
            return;
        }
        let d = delivery();
        let kind = Kind::Deliver {
            consumer_tag: d.consumer_tag.map(str::to_owned),
            redelivered: d.redelivered,
        };
        self.capture(
            |t| matches!(t.target, Target::Queue { id, .. } if id == queue.id),
            |t, now| t.record(kind.clone(), msg.exchange(), msg, &[], &d.origin, now),
        );
    }

    /// Records into every capturing trace that `watches`; a trace whose lifetime ran
    /// out, or that `record` filled, stops.
    #[cold]
    fn capture(&self, watches: impl Fn(&Trace) -> bool, record: impl Fn(&Trace, u64) -> bool) {
        // The clock is read only for a message some trace watches: a trace on another
        // exchange or queue costs this vhost's publishes a lock and a scan, no more.
        let mut clock = None;
        for t in self.list().iter().filter(|t| watches(t)) {
            let now = *clock.get_or_insert_with(now_ms);
            if t.expire(now) || record(t, now) {
                self.active.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    /// Stops `t` for `why`, keeping the active count right.
    fn stop(&self, t: &Trace, why: Stop, now: u64) {
        if t.stop(why, now) {
            self.active.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Ends traces whose lifetime ran out and drops those stopped long ago; the traces
    /// left (for listing and counting).
    pub fn sweep(&self) -> Vec<Arc<Trace>> {
        let now = now_ms();
        let mut list = self.list();
        for t in list.iter() {
            if t.expire(now) {
                self.active.fetch_sub(1, Ordering::Relaxed);
            }
        }
        list.retain(|t| !t.stale(now));
        list.clone()
    }

    /// Starts a trace. The caller has checked the bounds and the broker-wide count.
    pub fn start(&self, id: String, vhost: &str, target: Target, bounds: Bounds) -> Arc<Trace> {
        let t = Arc::new(Trace::new(id, vhost, target, bounds, now_ms()));
        let mut list = self.list();
        list.push(t.clone());
        self.active.fetch_add(1, Ordering::Relaxed);
        t
    }

    pub fn get(&self, id: &str) -> Option<Arc<Trace>> {
        self.sweep().into_iter().find(|t| t.id == id)
    }

    /// Ends a trace whose exchange or queue is gone (`alive` says whether it still is).
    pub fn check_target(&self, t: &Trace, alive: bool) {
        if !alive {
            self.stop(t, Stop::Deleted, now_ms());
        }
    }

    /// Stops and forgets a trace; false if there is none with this id.
    pub fn delete(&self, id: &str) -> bool {
        let mut list = self.list();
        let Some(at) = list.iter().position(|t| t.id == id) else {
            return false;
        };
        let t = list.remove(at);
        self.stop(&t, Stop::Stopped, now_ms());
        true
    }

    /// The exchange `name` was deleted: traces on it end now (a later exchange of the
    /// same name is another object).
    pub fn exchange_deleted(&self, name: &str) {
        if self.active.load(Ordering::Relaxed) == 0 {
            return;
        }
        let now = now_ms();
        for t in self.list().iter() {
            if matches!(&t.target, Target::Exchange(x) if x == name) {
                self.stop(t, Stop::Deleted, now);
            }
        }
    }
}
