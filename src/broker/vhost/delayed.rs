//! A vhost's side of delayed messages: holding a message a delayed exchange took
//! (`hold`, from routing), routing it when it is due (`route_due`, from the scheduler's
//! task), and giving recovered messages back to their exchanges (`recover_held`).
//!
//! Called under the topology read lock for `hold` (memory work and non-blocking sends
//! to the store only); `route_due` takes the lock itself and pushes into queues after
//! releasing it, like a channel's publish. Never waits on disk.

use super::{Routing, Topology, VHost};
use crate::broker::delayed::{self, clock, Scheduler, Target};
use crate::broker::exchange::{delay, Exchange, ExchangeKind};
use crate::broker::message::Message;
use crate::broker::persist::{record, store_message};
use crate::codec::properties as props;
use crate::store::Done;
use std::sync::{Arc, Weak};

/// The broker's scheduler and this vhost's own weak handle (for the scheduler's
/// targets), set once when the broker makes the vhost.
#[derive(Debug)]
pub(super) struct DelayedHandle {
    scheduler: Arc<Scheduler>,
    me: Weak<VHost>,
}

/// What routing did with delayed exchanges on the way.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Held {
    /// Delayed exchanges that took the message (it is routed later, so it is neither
    /// unroutable nor returned now).
    pub count: u32,
    /// It was written to the message store: its confirm waits for the next sync.
    pub stored: bool,
}

impl VHost {
    /// Delayed exchanges of this vhost hold their messages in `scheduler`.
    pub fn set_delayed(self: &Arc<Self>, scheduler: Arc<Scheduler>) {
        let _ = self.delayed.set(DelayedHandle {
            scheduler,
            me: Arc::downgrade(self),
        });
    }

    /// The delay exchange `x` gives `msg`, if it takes it (never without a scheduler).
    pub(super) fn delay_at(&self, x: &Exchange, msg: &Message) -> Option<u64> {
        if x.kind != ExchangeKind::Delayed {
            return None;
        }
        self.delayed.get()?;
        x.delay(msg)
    }

    /// Holds `msg` for delayed exchange `x` for `delay` ms, writing it to the store if it
    /// is persistent and `x` durable. Under the topology read lock.
    pub(super) fn hold(&self, x: &Exchange, msg: &Message, delay: u64, held: &mut Held) {
        let Some(target) = self.target(x) else {
            return;
        };
        let Some(h) = self.delayed.get() else {
            return;
        };
        let routed = msg.with_header("x-delay", Some(delay::routed_header(delay)));
        let due = clock::due_after(&h.scheduler.clock, delay);
        let mut store_id = 0;
        if let (Some((store, key)), Some(2)) =
            (target.store(), props::delivery_mode(msg.properties()))
        {
            let record = record(&routed, delayed::stored_exchange(due, routed.exchange()));
            store_id = store.append(record, vec![key.clone()], None);
            held.stored = true;
        }
        held.count += 1;
        h.scheduler.hold(target, routed, due, store_id);
        h.scheduler.start();
    }

    fn target(&self, x: &Exchange) -> Option<Arc<Target>> {
        let h = self.delayed.get()?;
        let me = h.me.upgrade()?;
        let store = self
            .persist
            .as_ref()
            .filter(|_| x.durable)
            .map(|p| &p.store);
        Some(h.scheduler.target(&me, &x.name, store))
    }

    /// A held message is due: route it through `exchange` as its bindings are now (an
    /// unroutable one goes to the alternate exchange, or is dropped: nobody is left to
    /// return it to).
    pub fn route_due(&self, exchange: &str, msg: &Message) {
        let mut targets = Vec::new();
        {
            let topo = self.read();
            if topo.deleted {
                return;
            }
            let Some(x) = topo.exchanges.get(exchange) else {
                return;
            };
            let mut held = Held::default();
            // Its CC keys route it too (BCC was cut out when it was published).
            let extra = crate::broker::exchange::sender::routes(msg.properties());
            self.route_from(
                &topo,
                (exchange, x),
                (msg, &extra),
                &mut targets,
                Routing::Publish,
                &mut held,
            );
        }
        if targets.len() > 1 {
            targets.sort_unstable_by_key(|q| q.id);
            targets.dedup_by_key(|q| q.id);
        }
        self.tracing
            .published(msg, &targets, || crate::broker::tracer::Origin::Management);
        let store_id = store_message(msg, &targets, None);
        let sharers = targets.len();
        for q in targets {
            q.publish(msg.clone(), store_id, sharers);
        }
    }

    /// Calls `done` once what was held (and written) so far is on disk, with the
    /// definitions that hold its exchange.
    pub fn after_held_stored(&self, done: Done) {
        match &self.persist {
            Some(p) => p.store.flush_then(p.definitions().cover(done)),
            None => done.complete(0),
        }
    }

    /// The delayed exchange a recovered record of store key `exchange` goes back to, if
    /// it still exists, is durable and delayed.
    pub fn recovered_target(&self, exchange: &str) -> Option<Arc<Target>> {
        let topo = self.read();
        let x = topo
            .exchanges
            .get(exchange)
            .filter(|x| x.kind == ExchangeKind::Delayed && x.durable)?;
        self.target(x)
    }

    /// How many messages exchange `name` holds (None: not a delayed exchange).
    pub(super) fn held_count(&self, topo: &Topology, name: &str) -> Option<u64> {
        let x = topo.exchanges.get(name)?;
        if x.kind != ExchangeKind::Delayed {
            return None;
        }
        Some(
            self.delayed
                .get()
                .map_or(0, |h| h.scheduler.pending(&self.name, name)),
        )
    }

    /// Exchange `name` is gone: so are the messages it held.
    pub(super) fn drop_held(&self, name: &str) {
        if let Some(h) = self.delayed.get() {
            h.scheduler.drop_exchange(&self.name, name);
        }
    }
}
