//! What crosses from a queue to a consumer's connection: the outbox messages, the shared
//! consumer record and the credit that bounds in-flight deliveries.
//!
//! Queues hold `Consumer` entries and push `Outgoing` items into the consumer
//! connection's unbounded outbox while holding only their own lock (a send never blocks).
//! Credit keeps the outbox bounded: every delivery takes one unit of its consumer's
//! write window when the queue hands it out, given back once the connection wrote it
//! into its write buffer (which the connection stops filling while the socket is
//! behind); a manual-ack delivery also takes one unit of prefetch, given back when it is
//! settled. So a consumer without prefetch (no-ack, or prefetch 0) that stops reading its
//! socket stops being fed, and its backlog stays in the queue.

use super::queue::{Queue, Queued};
use crate::codec::ShortStr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc::UnboundedSender;

/// The window of deliveries a consumer may have in its connection's outbox, not yet
/// written into the connection's write buffer.
pub const WRITE_WINDOW: u32 = 2000;
/// ... and their body bytes: 2000 large messages would be 128 MiB at 64 KiB each, taken
/// out of the queue's memory accounting (and, read back from a page file, each an
/// allocation of its own) while they wait for the socket. Past this, no more go out
/// until some are written (one message may pass it, so any size gets through).
pub const WRITE_WINDOW_BYTES: u32 = 8 << 20;

/// A bounded count of in-flight deliveries; limit 0 means unbounded.
#[derive(Debug, Default)]
pub struct Credit {
    limit: AtomicU32,
    used: AtomicU32,
}

impl Credit {
    pub fn new(limit: u32) -> Self {
        Credit {
            limit: AtomicU32::new(limit),
            used: AtomicU32::new(0),
        }
    }

    /// The limit now (0: unbounded), as the management API shows a prefetch count.
    pub fn limit(&self) -> u32 {
        self.limit.load(Ordering::Relaxed)
    }

    pub fn set_limit(&self, limit: u32) {
        self.limit.store(limit, Ordering::Relaxed);
    }

    pub fn has_room(&self) -> bool {
        let limit = self.limit.load(Ordering::Relaxed);
        limit == 0 || self.used.load(Ordering::Relaxed) < limit
    }

    /// Takes one unit if the limit allows it.
    pub fn try_take(&self) -> bool {
        let limit = self.limit.load(Ordering::Relaxed);
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                (limit == 0 || u < limit).then_some(u + 1)
            })
            .is_ok()
    }

    /// Counts `n` units taken whatever the limit (checked before with `has_room`).
    pub fn add(&self, n: u32) {
        self.used.fetch_add(n, Ordering::AcqRel);
    }

    pub fn give_back(&self, n: u32) {
        let _ = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                Some(u.saturating_sub(n))
            });
    }
}

/// One consumer, shared between the queue that feeds it and the channel that owns it.
#[derive(Debug)]
pub struct ConsumerInfo {
    pub tag: ShortStr,
    pub channel: u16,
    pub no_ack: bool,
    /// Per-consumer prefetch (basic.qos global=false) of a manual-ack consumer; back on
    /// settle. Unbounded (0) for no-ack consumers.
    pub credit: Credit,
    /// The channel-wide prefetch (basic.qos global=true), shared by its consumers.
    pub channel_credit: Arc<Credit>,
    /// Deliveries in the outbox not yet written (`WRITE_WINDOW`); back once written.
    pub window: Credit,
    /// Their body bytes (`WRITE_WINDOW_BYTES`): added once the message is chosen
    /// (`sent`), back once written.
    pub window_bytes: Credit,
}

/// A delivery's bytes as the byte window counts them.
pub fn window_size(item: &crate::broker::queue::Queued) -> u32 {
    u32::try_from(item.msg.body().len()).unwrap_or(u32::MAX)
}

impl ConsumerInfo {
    pub fn new(
        tag: ShortStr,
        channel: u16,
        no_ack: bool,
        prefetch: u32,
        channel_credit: Arc<Credit>,
    ) -> Self {
        ConsumerInfo {
            tag,
            channel,
            no_ack,
            credit: Credit::new(if no_ack { 0 } else { prefetch }),
            channel_credit,
            window: Credit::new(WRITE_WINDOW),
            window_bytes: Credit::new(WRITE_WINDOW_BYTES),
        }
    }

    /// Whether one more delivery fits (without taking it).
    fn has_room(&self) -> bool {
        self.window.has_room()
            && self.window_bytes.has_room()
            && (self.no_ack || (self.credit.has_room() && self.channel_credit.has_room()))
    }

    /// Takes one delivery's credit (window, prefetch, channel prefetch) if all allow it.
    pub(super) fn try_take(&self) -> bool {
        if !self.window_bytes.has_room() || !self.window.try_take() {
            return false;
        }
        if self.no_ack {
            return true;
        }
        if self.credit.try_take() {
            if self.channel_credit.try_take() {
                return true;
            }
            self.credit.give_back(1);
        }
        self.window.give_back(1);
        false
    }

    /// The delivery that credit was taken for is `bytes` large (see `window_bytes`).
    pub fn sent(&self, bytes: u32) {
        self.window_bytes.add(bytes);
    }

    /// A delivery of `bytes` was written into the connection's write buffer: the window
    /// opens.
    pub fn written(&self, bytes: u32) {
        self.window.give_back(1);
        self.window_bytes.give_back(bytes);
    }

    /// A written delivery was settled (acked, rejected, requeued): prefetch opens.
    pub fn settled(&self) {
        if !self.no_ack {
            self.credit.give_back(1);
            self.channel_credit.give_back(1);
        }
    }

    /// A delivery of `bytes` goes back unwritten: everything it took comes back.
    pub fn give_back(&self, bytes: u32) {
        self.written(bytes);
        self.settled();
    }
}

/// The way into a connection task from elsewhere.
#[derive(Clone, Debug)]
pub struct ConnectionHandle {
    pub id: u64,
    pub outbox: UnboundedSender<Outgoing>,
    /// The store's batched answers to this connection (`Outgoing::StoredMany`).
    pub answers: Arc<StoreAnswers>,
}

impl ConnectionHandle {
    pub fn new(id: u64, outbox: UnboundedSender<Outgoing>) -> ConnectionHandle {
        let answers = Arc::new(StoreAnswers {
            outbox: outbox.clone(),
        });
        ConnectionHandle {
            id,
            outbox,
            answers,
        }
    }
}

/// The tag a store answer carries for `seq` on `channel` (`Outgoing::StoredMany`), when
/// `seq` fits in 48 bits.
pub fn store_tag(channel: u16, seq: u64) -> Option<u64> {
    (seq < 1 << 48).then(|| (seq << 16) | u64::from(channel))
}

/// The channel and sequence number `store_tag` packed.
pub fn untag(tag: u64) -> (u16, u64) {
    (tag as u16, tag >> 16)
}

/// Sends a connection the store's answers for many of its publishes at once: one outbox
/// item (one wake-up) per sync, not one per message (tags: `store_tag`).
#[derive(Debug)]
pub struct StoreAnswers {
    outbox: UnboundedSender<Outgoing>,
}

impl crate::store::Answers for StoreAnswers {
    fn answer(&self, tags: Vec<u64>, ok: bool) {
        // A closed outbox means the connection is gone: nobody to answer.
        let _ = self.outbox.send(Outgoing::StoredMany { tags, ok });
    }
}

/// A queue's entry for one consumer.
#[derive(Debug)]
pub struct Consumer {
    pub info: Arc<ConsumerInfo>,
    pub connection: ConnectionHandle,
    pub exclusive: bool,
    /// x-priority: higher-priority consumers with credit are served first.
    pub priority: i64,
}

impl Consumer {
    pub(super) fn has_room(&self) -> bool {
        self.info.has_room()
    }

    pub(super) fn try_take_credit(&self) -> bool {
        self.info.try_take()
    }
}

/// A message handed to a consumer, on its way to the consumer's connection.
#[derive(Debug)]
pub struct Delivery {
    pub consumer: Arc<ConsumerInfo>,
    pub queue: Arc<Queue>,
    pub item: Queued,
}

/// What other tasks ask of a connection task.
#[derive(Debug)]
pub enum Outgoing {
    Deliver(Delivery),
    /// The message store made a persistent publish durable (or failed to): confirm it.
    Stored {
        channel: u16,
        seq: u64,
        ok: bool,
    },
    /// `Stored` for many publishes (tags: `store_tag`), from one sync.
    StoredMany {
        tags: Vec<u64>,
        ok: bool,
    },
    /// A basic.get on `channel` waited for a read-back from a page file: ask again.
    GetReady {
        channel: u16,
    },
    /// The cluster applied a method `channel` proposed (its -ok reply, sent unless
    /// `nowait`), or refused it.
    Replicated {
        channel: u16,
        result: Result<amq_protocol::protocol::AMQPClass, crate::error::Exception>,
        nowait: bool,
    },
    /// The server cancels a consumer (its queue was deleted).
    Cancel {
        channel: u16,
        consumer_tag: ShortStr,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_write_window_closes_on_bytes_as_well_as_on_deliveries() {
        let info = ConsumerInfo::new("c".into(), 1, true, 0, Arc::new(Credit::new(0)));
        // Large deliveries: the byte window closes long before the count window.
        let big = 1 << 20;
        let mut out = 0;
        while info.try_take() {
            info.sent(big);
            out += 1;
        }
        assert_eq!(out, WRITE_WINDOW_BYTES / big);
        assert!(!info.has_room());
        info.written(big);
        assert!(info.try_take(), "one written: room for one more");
        info.sent(big);
        // A delivery larger than the whole window still goes when nothing is out.
        for _ in 0..out {
            info.give_back(big);
        }
        assert!(info.try_take());
        info.sent(4 * WRITE_WINDOW_BYTES);
        assert!(!info.try_take());
        info.written(4 * WRITE_WINDOW_BYTES);
        assert!(info.has_room());
    }
}
