//! What crosses from a queue to a consumer's connection: the outbox messages, the shared
//! consumer record and the credit that bounds in-flight deliveries.
//!
//! Queues hold `Consumer` entries and push `Outgoing` items into the consumer
//! connection's unbounded outbox while holding only their own lock (a send never blocks).
//! Credit keeps the outbox bounded: a delivery takes one unit when the queue hands it out
//! and gives it back on ack (manual ack) or once written (no-ack).

use super::queue::{Queue, Queued};
use crate::codec::ShortStr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc::UnboundedSender;

/// The window of unwritten deliveries a no-ack consumer may have in its outbox.
pub const NO_ACK_WINDOW: u32 = 2000;

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
    /// Per-consumer prefetch (basic.qos global=false), or the no-ack window.
    pub credit: Credit,
    /// The channel-wide prefetch (basic.qos global=true), shared by its consumers.
    pub channel_credit: Arc<Credit>,
}

impl ConsumerInfo {
    /// Whether one more delivery fits (without taking it).
    fn has_room(&self) -> bool {
        self.credit.has_room() && (self.no_ack || self.channel_credit.has_room())
    }

    fn try_take(&self) -> bool {
        if !self.credit.try_take() {
            return false;
        }
        if self.no_ack || self.channel_credit.try_take() {
            return true;
        }
        self.credit.give_back(1);
        false
    }

    pub fn give_back(&self) {
        self.credit.give_back(1);
        if !self.no_ack {
            self.channel_credit.give_back(1);
        }
    }
}

/// The way into a connection task from elsewhere.
#[derive(Clone, Debug)]
pub struct ConnectionHandle {
    pub id: u64,
    pub outbox: UnboundedSender<Outgoing>,
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
    /// The server cancels a consumer (its queue was deleted).
    Cancel {
        channel: u16,
        consumer_tag: ShortStr,
    },
}
