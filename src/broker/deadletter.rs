//! What a dead letter is: the message a queue lets go without a consumer taking it, why
//! (`Reason`), and where the queue's x-dead-letter-exchange settings send it
//! (`DeadLetterTarget`).
//!
//! Plain data, below the queue: a queue hands each `DeadLetter` to the sink its target
//! holds (an unbounded channel, so the send never blocks under the queue lock). The
//! vhost owns the receiving end and re-routes what arrives (`vhost::dead_letters`); a
//! test can hold the receiver itself and look at what a queue dead-lettered.

use super::message::Message;
use crate::codec::ShortStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::mpsc;

/// Why a message was dead-lettered, as x-death's `reason` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    Rejected,
    Expired,
    Maxlen,
    /// A quorum queue's x-delivery-limit was passed.
    DeliveryLimit,
}

impl Reason {
    /// The name x-death and x-first-death-reason carry.
    pub fn name(self) -> &'static str {
        match self {
            Reason::Rejected => "rejected",
            Reason::Expired => "expired",
            Reason::Maxlen => "maxlen",
            Reason::DeliveryLimit => "delivery_limit",
        }
    }
}

/// A queue's x-dead-letter-exchange and x-dead-letter-routing-key.
#[derive(Clone, Debug)]
pub struct DeadLetterTarget {
    pub exchange: String,
    pub routing_key: Option<String>,
    pub sink: DeadLetterSink,
    /// The vhost's count of messages dead-lettered (the embedding API's counters).
    pub counted: Arc<AtomicU64>,
}

/// The sending end of a vhost's dead-letter channel, counting what was sent and not
/// yet routed: a manual clock waits for that count to reach 0 before it moves on (see
/// `broker::timed`), so a dead letter is routed at the time it died.
#[derive(Clone, Debug)]
pub struct DeadLetterSink {
    tx: mpsc::UnboundedSender<DeadLetter>,
    pending: Arc<AtomicU64>,
}

/// A dead-letter channel: its sink and the receiving end the task (`run`) drains.
pub fn channel() -> (DeadLetterSink, mpsc::UnboundedReceiver<DeadLetter>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let pending = Arc::default();
    (DeadLetterSink { tx, pending }, rx)
}

impl DeadLetterSink {
    /// Hands a dead letter to the task; never blocks (allowed under a queue lock).
    pub fn send(&self, dl: DeadLetter) {
        self.pending.fetch_add(1, Ordering::AcqRel);
        if self.tx.send(dl).is_err() {
            // The task is gone (its vhost too): nothing will route it.
            self.pending.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// Dead letters sent and not yet routed.
    pub fn pending(&self) -> u64 {
        self.pending.load(Ordering::Acquire)
    }

    /// One dead letter was routed (or dropped) by the task that drains the channel.
    pub fn routed(&self) {
        self.pending.fetch_sub(1, Ordering::AcqRel);
    }
}

/// One message on its way from a queue to its dead-letter exchange: the message as it
/// was queued, the queue it died in and why, and the target settings at that moment.
#[derive(Debug)]
pub struct DeadLetter {
    pub msg: Message,
    pub queue: ShortStr,
    pub reason: Reason,
    pub exchange: String,
    pub routing_key: Option<String>,
}
