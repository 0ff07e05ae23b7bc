//! A queue's consumers and dispatch: adding and removing consumers, and handing ready
//! messages to the consumer whose turn it is (priorities, single active consumer,
//! credit).
//!
//! Called by consuming channels and by the queue itself whenever messages or credit
//! arrive. Runs under the queue lock; the only thing it does to the outside world is a
//! non-blocking send into a consumer connection's outbox.

use super::{ConsumerRemoved, Queue, QueueState};
use crate::broker::consumer::window_size;
use crate::broker::consumer::{Consumer, Delivery, Outgoing};
use crate::codec::ShortStr;
use crate::error::Exception;
use std::sync::atomic::Ordering;
use std::sync::Arc;

impl Queue {
    pub fn add_consumer(self: &Arc<Self>, consumer: Consumer) -> Result<(), Exception> {
        self.touch();
        let mut st = self.lock();
        let taken = st.consumers.iter().any(|c| c.exclusive);
        if taken || (consumer.exclusive && !st.consumers.is_empty()) {
            return Err(Exception::access_refused(format!(
                "{} in exclusive use",
                self.describe()
            )));
        }
        if let Some(r) = self.replica() {
            r.consumer_added(self, &consumer);
        }
        st.consumers.push(consumer);
        st.consumers_changed(&self.memory);
        self.dispatch_locked(&mut st);
        Ok(())
    }

    /// The connection and record of one consumer of this queue, if it is here.
    pub fn find_consumer(
        &self,
        connection: u64,
        channel: u16,
        tag: &str,
    ) -> Option<(
        super::ConnectionHandle,
        Arc<crate::broker::consumer::ConsumerInfo>,
    )> {
        let st = self.lock();
        st.consumers
            .iter()
            .find(|c| {
                c.connection.id == connection
                    && c.info.channel == channel
                    && c.info.tag.as_str() == tag
            })
            .map(|c| (c.connection.clone(), c.info.clone()))
    }

    pub fn remove_consumer(&self, connection: u64, channel: u16, tag: &str) -> ConsumerRemoved {
        self.touch();
        if let Some(stream) = &self.stream {
            stream.stop_reading(connection, channel, &ShortStr::from(tag));
        }
        let mut st = self.lock();
        let Some(at) = st.consumers.iter().position(|c| {
            c.connection.id == connection && c.info.channel == channel && c.info.tag.as_str() == tag
        }) else {
            return ConsumerRemoved::NotFound;
        };
        st.consumers.remove(at);
        if let Some(r) = self.replica() {
            r.consumer_removed(self, connection, channel, tag);
        }
        st.consumers_changed(&self.memory);
        if st.next_consumer > at {
            st.next_consumer -= 1;
        }
        if self.auto_delete && st.consumers.is_empty() && !st.deleted {
            ConsumerRemoved::RemovedLastOfAutoDelete
        } else {
            ConsumerRemoved::Removed
        }
    }

    /// Feeds consumers that got credit back.
    pub fn dispatch(self: &Arc<Self>) {
        if let Some(stream) = &self.stream {
            return stream.wake();
        }
        let mut st = self.lock();
        self.dispatch_locked(&mut st);
    }

    pub(super) fn dispatch_locked(self: &Arc<Self>, st: &mut QueueState) {
        let now = if self.may_expire.load(Ordering::Relaxed) {
            self.clock.now_ms()
        } else {
            0
        };
        while !st.ready.is_empty() && !st.consumers.is_empty() {
            if now != 0 {
                self.drop_expired(st, now);
            }
            // Nothing left, or the head waits for a read-back from a page file (it wakes
            // the queue when done): no credit is taken for nothing.
            if st.ready.front().is_none() {
                return;
            }
            let n = st.consumers.len();
            let idx = if st.limits.single_active {
                // Consumers stay in registration order: the first is the active one.
                if !st.consumers[0].try_take_credit() {
                    return;
                }
                0
            } else {
                let start = st.next_consumer % n;
                // Consumer priorities: only the highest priority that has room is served,
                // round-robin among its consumers.
                let Some(top) = st
                    .consumers
                    .iter()
                    .filter(|c| c.has_room())
                    .map(|c| c.priority)
                    .max()
                else {
                    return;
                };
                let Some(idx) = (0..n).map(|i| (start + i) % n).find(|&i| {
                    st.consumers[i].priority == top && st.consumers[i].try_take_credit()
                }) else {
                    return;
                };
                st.next_consumer = (idx + 1) % n;
                idx
            };
            let Some(item) = st.ready.pop_front() else {
                return;
            };
            let item = self.outgoing(item);
            st.consumers[idx].info.sent(window_size(&item));
            // Counted before the send moves it, and taken back if the send fails.
            let counted = !st.consumers[idx].info.no_ack;
            if counted {
                st.handed.out(&item);
            }
            let consumer = &st.consumers[idx];
            let delivery = Delivery {
                consumer: consumer.info.clone(),
                queue: self.clone(),
                item,
            };
            if let Err(failed) = consumer.connection.outbox.send(Outgoing::Deliver(delivery)) {
                // The consumer's connection is gone without cancelling: take the message
                // back and forget the consumer; its connection cleanup finds nothing left.
                if let Outgoing::Deliver(d) = failed.0 {
                    consumer.info.give_back(window_size(&d.item));
                    if counted {
                        st.handed.back(&d.item);
                    }
                    st.ready.push_front(d.item);
                }
                st.consumers.remove(idx);
                st.consumers_changed(&self.memory);
                st.next_consumer = 0;
            }
        }
    }
}
