//! A queue's messages out with clients waiting for an acknowledgement (the management
//! API's messages_unacknowledged and message_bytes_unacknowledged), counted without a
//! second lock or an atomic on the paths that already hold the queue lock.
//!
//! Handing out (dispatch to a manual-ack consumer, basic.get or the API's get with an ack
//! expected) and putting back (requeue, an undelivered delivery) run under the queue lock:
//! they move `Handed`, plain numbers in the queue state. Acks and rejects without requeue
//! run on the channel without the queue lock: they add to `Returned`, two relaxed atomics
//! of the queue. Unacked is the difference, read under the queue lock by
//! `Queue::figures`; an ack seen there was always handed out before, so it never goes
//! negative. No-ack deliveries are never counted. Never takes a lock itself.

use super::Queued;
use std::sync::atomic::{AtomicU64, Ordering};

/// Body bytes of a message, as the management API counts message bytes.
fn body_len(item: &Queued) -> u64 {
    item.msg.body().len() as u64
}

/// Handed out minus put back, under the queue lock: all of them, and those in the
/// message store (the API's messages_persistent counts them too).
#[derive(Debug, Default)]
pub(super) struct Handed {
    all: Tally,
    stored: Tally,
}

#[derive(Debug, Default)]
struct Tally {
    count: u64,
    bytes: u64,
}

impl Tally {
    fn add(&mut self, item: &Queued) {
        self.count = self.count.wrapping_add(1);
        self.bytes = self.bytes.wrapping_add(body_len(item));
    }

    fn sub(&mut self, item: &Queued) {
        self.count = self.count.wrapping_sub(1);
        self.bytes = self.bytes.wrapping_sub(body_len(item));
    }

    /// (messages, bytes) of this less what `returned` settled.
    fn less(&self, returned: &AtomicTally) -> (u64, u64) {
        // Wrapping on both sides: only the difference means anything. It is never
        // "negative" (see the module comment); saturating guards a bug from showing
        // 2^64 in the API.
        let count = self
            .count
            .wrapping_sub(returned.count.load(Ordering::Relaxed));
        let bytes = self
            .bytes
            .wrapping_sub(returned.bytes.load(Ordering::Relaxed));
        let sane = |n: u64| if n > u64::MAX / 2 { 0 } else { n };
        (sane(count), sane(bytes))
    }
}

impl Handed {
    /// `item` goes to a client that will settle it.
    pub(super) fn out(&mut self, item: &Queued) {
        self.all.add(item);
        if item.store_id != 0 {
            self.stored.add(item);
        }
    }

    /// `item`, handed out before, comes back to the queue (or leaves it under its lock).
    pub(super) fn back(&mut self, item: &Queued) {
        self.all.sub(item);
        if item.store_id != 0 {
            self.stored.sub(item);
        }
    }

    /// (messages, bytes) out now, given what was settled without the lock.
    pub(super) fn unacked(&self, returned: &Returned) -> (u64, u64) {
        self.all.less(&returned.all)
    }

    /// The same of those in the message store.
    pub(super) fn unacked_stored(&self, returned: &Returned) -> (u64, u64) {
        self.stored.less(&returned.stored)
    }
}

/// Settled for good by a client (ack, reject or nack without requeue), without the lock.
#[derive(Debug, Default)]
pub(super) struct Returned {
    all: AtomicTally,
    stored: AtomicTally,
}

#[derive(Debug, Default)]
struct AtomicTally {
    count: AtomicU64,
    bytes: AtomicU64,
}

impl AtomicTally {
    fn add(&self, item: &Queued) {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.bytes.fetch_add(body_len(item), Ordering::Relaxed);
    }
}

impl Returned {
    pub(super) fn settled(&self, item: &Queued) {
        self.all.add(item);
        if item.store_id != 0 {
            // Persistent: its settlement costs a store write already.
            self.stored.add(item);
        }
    }
}
