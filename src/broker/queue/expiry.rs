//! Time in a queue: the monotonic milliseconds it counts in, message expiry (x-message-ttl
//! and the expiration property) and the x-expires lease.
//!
//! Called by publish (a new message's expiry), by dispatch (expired heads are dropped
//! before handing out) and by the vhost's periodic sweep. Works under the queue lock the
//! caller holds or takes it briefly; never sleeps or waits.

use super::{Queue, QueueState};
use crate::broker::deadletter::Reason;
use crate::broker::message::Message;
use crate::codec::properties as props;
use std::sync::atomic::Ordering;

/// Milliseconds on a monotonic clock, starting at 1 (0 means "never" in `expires_at`).
pub fn now_ms() -> u64 {
    static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    START
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_millis() as u64
        + 1
}

impl Queue {
    /// When a message published now expires: the shorter of the queue's x-message-ttl
    /// and the message's expiration property; 0 when neither is set.
    pub(super) fn expiry(&self, message_ttl: Option<u64>, msg: &Message) -> u64 {
        let own = match props::short_str(msg.properties(), props::EXPIRATION) {
            Some(text) => text.parse::<u64>().ok(),
            None => None,
        };
        let ttl = match (message_ttl, own) {
            (Some(a), Some(b)) => a.min(b),
            (a, b) => match a.or(b) {
                Some(t) => t,
                None => return 0,
            },
        };
        self.may_expire.store(true, Ordering::Relaxed);
        now_ms().saturating_add(ttl)
    }

    /// Drops expired messages from the head, as RabbitMQ does: a message expires when it
    /// is at the head and its time is past (ones behind an unexpired head wait for it).
    pub(super) fn drop_expired(&self, st: &mut QueueState, now: u64) {
        while st
            .ready
            .front()
            .is_some_and(|q| q.expires_at != 0 && q.expires_at < now)
        {
            if let Some(item) = st.ready.pop_front() {
                self.dead_letter(item, Reason::Expired);
            }
        }
    }

    /// The periodic sweep: expire what reached its time at the head, with or without
    /// consumers. Cheap for queues that never saw a TTL.
    pub fn expire(&self) {
        if self.may_expire.load(Ordering::Relaxed) {
            let mut st = self.lock();
            self.drop_expired(&mut st, now_ms());
        }
    }

    /// Renews the x-expires lease: a declare, a basic.get, a consumer coming or going.
    pub fn touch(&self) {
        self.last_used.store(now_ms(), Ordering::Relaxed);
    }

    /// Whether x-expires has run out: no consumers and unused for that long.
    pub fn lease_expired(&self, now: u64) -> bool {
        let expires = self.expires.load(Ordering::Relaxed);
        if expires == 0 {
            return false;
        }
        now.saturating_sub(self.last_used.load(Ordering::Relaxed)) >= expires
            && self.lock().consumers.is_empty()
    }
}
