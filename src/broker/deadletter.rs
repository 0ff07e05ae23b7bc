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
    pub sink: mpsc::UnboundedSender<DeadLetter>,
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
