//! What the management API shows of a queue beyond its declaration: ready and unacked
//! messages and their bytes, consumers with their settings, whether it is deleted, when
//! it was last used. Copied under the queue lock (a few counters and one entry per consumer), so
//! the caller builds its JSON without any lock.
//!
//! Called by `http::objects`, one queue at a time, never under the topology lock.

use super::Queue;
use std::sync::atomic::Ordering;

/// One consumer of a queue, as `consumer_details` lists it.
#[derive(Clone, Debug)]
pub struct ConsumerFigures {
    pub tag: String,
    pub channel: u16,
    /// The connection's id (the conns slice names it).
    pub connection: u64,
    pub ack_required: bool,
    pub exclusive: bool,
    /// basic.qos prefetch of the consumer (0: none).
    pub prefetch: u32,
    pub priority: i64,
}

/// A queue's figures at one moment.
#[derive(Clone, Debug, Default)]
pub struct QueueFigures {
    pub messages_ready: u64,
    /// Body bytes of the ready messages, paged ones included.
    pub bytes_ready: u64,
    /// Messages out with clients waiting for an acknowledgement, and their body bytes.
    pub messages_unacked: u64,
    pub bytes_unacked: u64,
    /// Ready messages on disk (paged), and their body bytes.
    pub messages_paged: u64,
    pub bytes_paged: u64,
    /// Of those, the ones not in the message store (RabbitMQ's messages_paged_out).
    pub messages_paged_out: u64,
    pub bytes_paged_out: u64,
    /// Ready and unacked messages in the message store (persistent in a durable queue).
    pub messages_persistent: u64,
    pub bytes_persistent: u64,
    pub consumers: Vec<ConsumerFigures>,
    /// With x-single-active-consumer, the active one's tag.
    pub single_active_tag: Option<String>,
    /// Last declare, consume or get, in ms since the Unix epoch (wall clock).
    pub last_used_ms: u64,
}

impl Queue {
    /// This queue's figures now.
    pub fn figures(&self) -> QueueFigures {
        let st = self.lock();
        let consumers: Vec<ConsumerFigures> = st
            .consumers
            .iter()
            .map(|c| ConsumerFigures {
                tag: c.info.tag.to_string(),
                channel: c.info.channel,
                connection: c.connection.id,
                ack_required: !c.info.no_ack,
                exclusive: c.exclusive,
                prefetch: c.info.credit.limit(),
                priority: c.priority,
            })
            .collect();
        let single_active_tag = st
            .limits
            .single_active
            .then(|| consumers.first().map(|c| c.tag.clone()))
            .flatten();
        let (messages_unacked, bytes_unacked) = st.handed.unacked(&self.returned);
        // A stream's messages are its log's entries (RabbitMQ shows them as ready).
        let (messages_ready, bytes_ready) = match &self.stream {
            Some(s) => {
                let stats = s.stats();
                (stats.entries, stats.bytes)
            }
            None => (st.ready.len() as u64, st.ready.bytes),
        };
        let (unacked_stored, ready_stored) =
            (st.handed.unacked_stored(&self.returned), st.ready.stored());
        let ((messages_paged, bytes_paged), (messages_paged_out, bytes_paged_out)) =
            st.ready.paged();
        QueueFigures {
            messages_unacked,
            bytes_unacked,
            messages_paged,
            bytes_paged,
            messages_paged_out,
            bytes_paged_out,
            messages_persistent: ready_stored.0 + unacked_stored.0,
            bytes_persistent: ready_stored.1 + unacked_stored.1,
            messages_ready,
            bytes_ready,
            consumers,
            single_active_tag,
            last_used_ms: u64::try_from(self.clock.unix_at(self.last_used.load(Ordering::Relaxed)))
                .unwrap_or(0),
        }
    }
}
