//! Publishes to one queue, pushed together: consecutive transient messages a channel
//! routes to the same single queue wait here and go in under one take of the queue's
//! lock, instead of one take per message.
//!
//! Owned by its channel. `Channel::publish` adds to it and pushes it first whenever the
//! next message goes elsewhere (so each queue still gets a channel's messages in publish
//! order, and a dead letter from one queue never overtakes them); the connection pushes
//! every channel's batch before any method other than basic.publish and at the end of each
//! read (`Channel::flush`), and a closing channel pushes its own (`Channel::release`).
//! Each message keeps its own outcome: max-length, reject-publish (a nack for it),
//! dead-lettering, TTL, dispatch, exactly as one publish at a time. Never blocks, never
//! awaits, never touches the store (persistent messages for durable queues and stream
//! queues are not batched).

use super::Channel;
use crate::broker::message::Message;
use crate::broker::queue::{Enqueued, Queue};
use crate::stats::Key;
use std::sync::Arc;

/// The most messages a batch holds before it is pushed: bounds what sits outside the
/// queue's memory accounting (one read's worth at most in any case).
pub(super) const MAX_BATCH: usize = 256;

#[derive(Debug, Default)]
pub(super) struct Batch {
    queue: Option<Arc<Queue>>,
    messages: Vec<Message>,
    /// Their confirm sequence numbers, in the same order (empty without confirms).
    seqs: Vec<u64>,
}

impl Batch {
    /// Whether a message for `queue` may join this batch.
    fn takes(&self, queue: &Arc<Queue>) -> bool {
        self.messages.len() < MAX_BATCH && self.queue.as_ref().is_none_or(|q| Arc::ptr_eq(q, queue))
    }
}

impl Channel {
    /// Adds a routed transient message for the one queue `queue` (with its confirm
    /// sequence number), pushing what waits for another queue first.
    pub(super) fn batch(&mut self, queue: Arc<Queue>, msg: Message, seq: Option<u64>) {
        if !self.batch.takes(&queue) {
            self.push_batch();
        }
        let batch = &mut self.batch;
        batch.queue.get_or_insert(queue);
        batch.messages.push(msg);
        batch.seqs.extend(seq);
    }

    /// Pushes the waiting messages into their queue under one lock and settles their
    /// confirms: a nack for each one the queue refused, as a publish alone would get.
    pub fn push_batch(&mut self) {
        let Some(queue) = self.batch.queue.take() else {
            return;
        };
        let mut seqs = std::mem::take(&mut self.batch.seqs);
        if !seqs.is_empty() {
            // Counted when settled, as a publish alone is.
            self.stats.counters.bump(Key::Confirm, seqs.len() as u64);
        }
        let mut confirms = self.confirms.as_mut();
        let mut answers = seqs.drain(..);
        queue.publish_many(self.batch.messages.drain(..), |outcome| {
            if let (Some(c), Some(seq)) = (confirms.as_deref_mut(), answers.next()) {
                c.settle_now(seq, outcome != Enqueued::Refused);
            }
        });
        drop(answers);
        // The vector's room is kept for the next batch.
        self.batch.seqs = seqs;
    }
}
