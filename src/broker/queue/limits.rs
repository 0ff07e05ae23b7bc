//! A queue's effective limits and modes (x-max-length, x-overflow, x-message-ttl,
//! x-expires, x-max-priority and the others), read from its effective arguments.
//!
//! Built by the queue at declaration and again when a policy changes them; plain data
//! read under the queue lock, never a lock or I/O of its own.

use super::ready::Ready;
use crate::broker::arguments::{as_int, text_arg, QueueType};
use amq_protocol::types::{AMQPValue, FieldTable};

/// x-max-length, x-max-length-bytes, x-overflow and the others, read from the effective
/// arguments (the declared ones with the policies' settings, `policy::effective_queue_arguments`).
#[derive(Debug, Default)]
pub(super) struct Limits {
    pub(super) max_length: Option<u64>,
    pub(super) max_bytes: Option<u64>,
    /// x-overflow reject-publish(-dlx): refuse new messages instead of dropping old ones.
    pub(super) reject_publish: bool,
    /// x-overflow reject-publish-dlx: and dead-letter what was refused.
    pub(super) dead_letter_refused: bool,
    /// x-queue-mode lazy: page past a short head whatever the memory budget says.
    pub(super) lazy: bool,
    /// x-single-active-consumer: only the earliest registered consumer is served; the
    /// next one takes over when it goes (RabbitMQ 3.10 ignores x-priority here).
    pub(super) single_active: bool,
    /// x-queue-type quorum: deliveries carry x-delivery-count.
    pub(super) quorum: bool,
    /// x-delivery-limit (quorum queues): a message returned more often than this is
    /// dead-lettered (reason delivery_limit) or dropped.
    pub(super) delivery_limit: Option<u64>,
    /// x-message-ttl in milliseconds.
    pub(super) message_ttl: Option<u64>,
    /// x-expires: the queue is deleted after this many milliseconds unused.
    pub(super) expires: Option<u64>,
    /// x-max-priority: messages are served by their priority property, up to this.
    pub(super) max_priority: Option<u8>,
}

impl Limits {
    pub(super) fn from_arguments(args: &FieldTable) -> Limits {
        let int = |key: &str| {
            args.inner()
                .get(key)
                .and_then(as_int)
                .and_then(|n| u64::try_from(n).ok())
        };
        let text = |key: &str| text_arg(args, key).unwrap_or_default();
        let overflow = text("x-overflow");
        let quorum = QueueType::of(args) == QueueType::Quorum;
        Limits {
            max_length: int("x-max-length"),
            max_bytes: int("x-max-length-bytes"),
            reject_publish: overflow.starts_with(b"reject-publish"),
            dead_letter_refused: overflow == b"reject-publish-dlx",
            lazy: text("x-queue-mode") == b"lazy",
            single_active: matches!(
                args.inner().get("x-single-active-consumer"),
                Some(AMQPValue::Boolean(true))
            ),
            quorum,
            delivery_limit: int("x-delivery-limit").filter(|_| quorum),
            message_ttl: int("x-message-ttl"),
            expires: int("x-expires"),
            max_priority: int("x-max-priority").map(|p| p.min(255) as u8),
        }
    }

    pub(super) fn over(&self, ready: &Ready) -> bool {
        self.max_length.is_some_and(|m| ready.len() as u64 > m)
            || self.max_bytes.is_some_and(|m| ready.bytes > m)
    }

    /// Whether one more message of `body` bytes would not fit.
    pub(super) fn full_for(&self, ready: &Ready, body: usize) -> bool {
        self.max_length.is_some_and(|m| ready.len() as u64 + 1 > m)
            || self
                .max_bytes
                .is_some_and(|m| ready.bytes + body as u64 > m)
    }
}
