//! Counters a test asserts on: messages published, delivered, acked, dead-lettered...
//! for the whole broker ([`Server::counters`]) and for one queue
//! ([`Server::queue_counters`]).
//!
//! Read, when asked, from the statistics the broker keeps for its management API
//! (channels' and queues' `message_stats`, queues' ready and unacked messages) and the
//! queues' dead-letter counts: nothing is counted for them on the message path. Each
//! count moves when the broker has done the work, not when a client sent it: after
//! `basic_ack` returns in a client, a round trip on the same channel (any synchronous
//! method, e.g. a passive queue declare) makes sure the broker has counted the ack.

use crate::server::Server;
use crate::stats::{Counts, Key};
use std::sync::atomic::Ordering;

/// The whole broker's counters since it started, over every vhost (closed connections
/// and channels included).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Counters {
    /// Messages clients published (basic.publish received, routed or not).
    pub published: u64,
    /// Publisher confirms sent (basic.ack to a publisher in confirm mode).
    pub confirmed: u64,
    /// Messages given to clients: basic.deliver to consumers and basic.get-ok, with or
    /// without acknowledgement (RabbitMQ's `deliver_get`).
    pub delivered: u64,
    /// Of those, messages given again (the redelivered flag set).
    pub redelivered: u64,
    /// Deliveries clients acknowledged.
    pub acked: u64,
    /// Mandatory messages no queue took, returned to their publisher.
    pub returned: u64,
    /// Messages no queue took, dropped (not mandatory).
    pub unroutable_dropped: u64,
    /// Messages queues sent to their dead-letter exchange: rejected or nacked without
    /// requeue, expired, or pushed out by a length limit.
    pub dead_lettered: u64,
    /// Messages waiting in queues now.
    pub messages_ready: u64,
    /// Messages delivered and waiting for an acknowledgement now.
    pub messages_unacked: u64,
    /// Queues now.
    pub queues: u64,
    /// Client connections now.
    pub connections: u64,
    /// Open channels now.
    pub channels: u64,
}

/// One queue's counters since it was declared.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct QueueCounters {
    /// Messages waiting in the queue now.
    pub messages_ready: u64,
    /// Messages delivered from it and waiting for an acknowledgement now.
    pub messages_unacked: u64,
    /// Consumers now.
    pub consumers: u64,
    /// Messages routed to the queue (dead-lettered ones and delayed ones included).
    pub published: u64,
    /// Messages given to clients from it (basic.deliver and basic.get-ok).
    pub delivered: u64,
    /// Of those, messages given again.
    pub redelivered: u64,
    /// Deliveries from it that clients acknowledged.
    pub acked: u64,
    /// Messages it sent to its dead-letter exchange.
    pub dead_lettered: u64,
}

impl Server {
    /// The whole broker's counters now; see [`Counters`].
    pub fn counters(&self) -> Counters {
        let broker = self.broker();
        let counts: Counts = broker.stats.overall_counts();
        let mut totals = Counters {
            published: counts.get(Key::Publish),
            confirmed: counts.get(Key::Confirm),
            delivered: counts.deliver_get(),
            redelivered: counts.get(Key::Redeliver),
            acked: counts.get(Key::Ack),
            returned: counts.get(Key::ReturnUnroutable),
            unroutable_dropped: counts.get(Key::DropUnroutable),
            ..Counters::default()
        };
        for vhost in broker.vhost_list() {
            totals.dead_lettered += vhost.dead_lettered();
            for queue in vhost.queue_list() {
                let figures = queue.figures();
                totals.messages_ready += figures.messages_ready;
                totals.messages_unacked += figures.messages_unacked;
                totals.queues += 1;
            }
        }
        let connections = broker.stats.connections();
        totals.connections = connections.len() as u64;
        totals.channels = connections.iter().map(|c| c.channels().len() as u64).sum();
        totals
    }

    /// The counters of queue `name` in `vhost` now, or `None` when there is no such
    /// queue; see [`QueueCounters`].
    pub fn queue_counters(&self, vhost: &str, name: &str) -> Option<QueueCounters> {
        let queue = self.broker().vhost(vhost)?.queue_any(name)?;
        let figures = queue.figures();
        let counts = queue.stats.snapshot();
        Some(QueueCounters {
            messages_ready: figures.messages_ready,
            messages_unacked: figures.messages_unacked,
            consumers: figures.consumers.len() as u64,
            published: counts.get(Key::Publish),
            delivered: counts.deliver_get(),
            redelivered: counts.get(Key::Redeliver),
            acked: counts.get(Key::Ack),
            dead_lettered: queue.dead_lettered.load(Ordering::Relaxed),
        })
    }
}
