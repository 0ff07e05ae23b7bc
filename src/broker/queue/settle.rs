//! How a message leaves a queue or comes back: settled (the store forgets it), acked,
//! rejected and dead-lettered, marked delivered, requeued or put back unsent.
//!
//! Called by consuming channels (ack, reject, nack, recover, cleanup), by the queue's own
//! expiry and length limits, and by recovery. Dead letters go out through a non-blocking
//! send, so this runs under the queue lock without waiting on anyone.

use super::{as_delivered, Poisoned, Queue, Queued, DELIVERY_COUNT, POISON_DELIVERIES};
use crate::broker::deadletter::{DeadLetter, Reason};
use std::sync::atomic::Ordering;
use std::sync::Arc;

impl Queue {
    /// A message of this queue is settled for good (acked, rejected without requeue,
    /// delivered with no-ack, purged): the store forgets it.
    pub fn settled(&self, item: &Queued) {
        self.memory.sub(item.cost());
        if let (Some(s), id @ 1..) = (&self.store, item.store_id) {
            s.store.ack(&s.key, id);
        }
        if let (Some(r), id @ 1..) = (self.replica(), item.store_id) {
            r.settled(self, id);
        }
    }

    /// A message a client had to acknowledge is acked (or the API's get settles it).
    pub fn acked(&self, item: &Queued) {
        if self.stream.is_some() {
            // A stream keeps its entries: an ack only gave credit back (the channel did).
            return;
        }
        self.returned.settled(item);
        self.settled(item);
        self.forget_poison(item);
    }

    /// A message sent back over and over left for good: it is poison no more. Takes the
    /// queue lock, so only for such messages and never from under it.
    fn forget_poison(&self, item: &Queued) {
        if item.deliveries >= POISON_DELIVERIES {
            self.lock().poison.forget(item.seq);
        }
    }

    /// The messages of this queue sent back over and over (see `poison`).
    pub fn poisoned(&self) -> Vec<Poisoned> {
        self.lock().poison.list()
    }

    /// A message a client had to acknowledge is rejected or nacked without requeue.
    pub fn rejected(&self, item: Queued) {
        self.returned.settled(&item);
        self.forget_poison(&item);
        self.dead_letter(item, Reason::Rejected);
    }

    /// A message leaves for good without being consumed (rejected without requeue,
    /// expired, dropped by a length limit): settled, and dead-lettered if configured.
    pub fn dead_letter(&self, item: Queued, reason: Reason) {
        self.settled(&item);
        let target = self.dead_letter.read().unwrap_or_else(|e| e.into_inner());
        if let Some(t) = target.as_ref() {
            self.dead_lettered.fetch_add(1, Ordering::Relaxed);
            t.counted.fetch_add(1, Ordering::Relaxed);
            // The delivery count is added on the way to consumers; it does not travel on.
            let msg = match self.quorum {
                true => item.msg.with_header(DELIVERY_COUNT, None),
                false => item.msg,
            };
            t.sink.send(DeadLetter {
                msg,
                queue: self.name.clone(),
                reason,
                exchange: t.exchange.clone(),
                routing_key: t.routing_key.clone(),
            });
        }
    }

    /// A message goes to a client: the first time, the store marks it so that after a
    /// restart it comes back with redelivered=true unless acked; a quorum queue's store
    /// also counts every later delivery (one small record per redelivery, synced with the
    /// next batch), so x-delivery-count and x-delivery-limit survive restarts.
    pub fn delivered(&self, item: &Queued) {
        if let (Some(s), id @ 1..) = (&self.store, item.store_id) {
            if !item.redelivered {
                s.store.delivered(&s.key, id, 1);
            } else if self.quorum {
                s.store
                    .delivered(&s.key, id, item.deliveries.saturating_add(1));
            }
        }
    }

    /// A message leaving for a client: a quorum queue tells how often it went before.
    pub(super) fn outgoing(&self, item: Queued) -> Queued {
        as_delivered(self.quorum, item)
    }

    /// Puts back messages a client had to acknowledge (nack or reject with requeue,
    /// basic.recover, its channel or connection gone): they come back redelivered.
    pub fn requeue(self: &Arc<Self>, items: impl IntoIterator<Item = Queued>) {
        self.put_back(items, true, true);
    }

    /// Puts back a delivery that never reached its client (its consumer or connection
    /// went first); `counted`: it was for a manual-ack consumer.
    pub fn unsent(self: &Arc<Self>, item: Queued, counted: bool) {
        self.put_back([item], false, counted);
    }

    /// Puts messages back where their sequence numbers place them; `redelivered` marks
    /// those a client has seen; `counted`: they were handed out for acknowledgement.
    /// Then feeds consumers.
    fn put_back(
        self: &Arc<Self>,
        items: impl IntoIterator<Item = Queued>,
        redelivered: bool,
        counted: bool,
    ) {
        if self.stream.is_some() {
            // Nothing goes back into a stream: the entries never left it.
            return;
        }
        if let Some(r) = self.replica().filter(|r| !r.serves()) {
            // This node's copy only passes deliveries on: they go back to the leader's.
            let items: Vec<Queued> = items.into_iter().collect();
            if counted {
                let mut st = self.lock();
                for item in &items {
                    st.handed.back(item);
                }
            }
            r.put_back(self, items, redelivered);
            return;
        }
        let mut st = self.lock();
        if st.deleted {
            // Nowhere to go back to: the messages are gone with their queue.
            for item in items {
                if counted {
                    st.handed.back(&item);
                }
                self.memory.sub(item.cost());
            }
            return;
        }
        for mut item in items {
            if counted {
                st.handed.back(&item);
            }
            item.redelivered |= redelivered;
            if redelivered {
                // Counted in every queue (poison diagnostics); only quorum queues show it
                // to consumers and enforce a limit on it.
                item.deliveries = item.deliveries.saturating_add(1);
                if st
                    .limits
                    .delivery_limit
                    .is_some_and(|limit| u64::from(item.deliveries) > limit)
                {
                    st.poison.forget(item.seq);
                    self.dead_letter(item, Reason::DeliveryLimit);
                    continue;
                }
                if item.deliveries >= POISON_DELIVERIES {
                    st.poison.returned(&item, self.clock.unix_ms_u64());
                }
                if let (Some(r), id @ 1..) = (self.replica(), item.store_id) {
                    r.returned(self, id, item.deliveries);
                }
            }
            st.ready.insert_in_order(item);
        }
        self.dispatch_locked(&mut st);
    }
}
