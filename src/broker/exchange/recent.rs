//! The `x-recent-history` exchange (RabbitMQ's recent-history plugin): routes like fanout
//! and keeps the last N messages it routed (`x-recent-history-length`, default 20), which
//! a queue or exchange newly bound to it receives, oldest first. A message whose header
//! `x-recent-history-no-store` is the boolean true is routed but not kept.
//!
//! Called by `Exchange` (mod.rs): `validate` when the exchange is created, `remember` per
//! message under the topology read lock, `kept` when a binding is added (the vhost then
//! delivers the copies after dropping its lock). The kept messages share their bytes
//! with the queues holding them and are counted in the memory accounting; they live in
//! memory only, as the plugin's RAM table does, so a restart starts an empty history.
//! The lock here is a leaf: nothing is called while it is held.

use super::headers::term_text;
use crate::broker::memory::Memory;
use crate::broker::message::Message;
use crate::codec::properties as props;
use crate::error::Exception;
use amq_protocol::types::{AMQPValue, FieldTable};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

pub const LENGTH_ARG: &str = "x-recent-history-length";
/// The plugin's default history length.
pub const DEFAULT_LENGTH: usize = 20;
const NO_STORE: &str = "x-recent-history-no-store";

#[derive(Debug)]
pub struct RecentHistory {
    length: usize,
    kept: Mutex<Kept>,
}

#[derive(Debug, Default)]
struct Kept {
    messages: VecDeque<Message>,
    bytes: usize,
    memory: Option<Arc<Memory>>,
}

/// The length argument's value, when it is an integer of a type the plugin accepts
/// (byte, short, signedint, long: not the unsigned ones).
fn length_of(v: &AMQPValue) -> Option<i64> {
    match v {
        AMQPValue::ShortShortInt(i) => Some(i64::from(*i)),
        AMQPValue::ShortInt(i) => Some(i64::from(*i)),
        AMQPValue::LongInt(i) => Some(i64::from(*i)),
        AMQPValue::LongLongInt(i) => Some(*i),
        _ => None,
    }
}

/// The exchange's arguments as the plugin checks them when the exchange is created.
pub fn validate(args: &FieldTable) -> Result<(), Exception> {
    match args.inner().get(LENGTH_ARG) {
        None => Ok(()),
        Some(v) if length_of(v).is_some_and(|n| n > 0) => Ok(()),
        Some(v) => Err(Exception::precondition_failed(format!(
            "Invalid argument {}, '{LENGTH_ARG}' must be a positive integer",
            term_text(v)
        ))),
    }
}

impl RecentHistory {
    pub fn new(args: &FieldTable) -> Self {
        let length = args
            .inner()
            .get(LENGTH_ARG)
            .and_then(length_of)
            .filter(|n| *n > 0)
            .map_or(DEFAULT_LENGTH, |n| usize::try_from(n).unwrap_or(usize::MAX));
        RecentHistory {
            length,
            kept: Mutex::new(Kept::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Kept> {
        self.kept.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts the kept messages in `memory` from now on.
    pub fn charge_to(&self, memory: &Arc<Memory>) {
        let mut kept = self.lock();
        memory.add(kept.bytes);
        kept.memory = Some(memory.clone());
    }

    /// Keeps `msg` (unless it asks not to be), dropping the oldest past the length.
    pub fn remember(&self, msg: &Message) {
        // Headers are decoded only for messages that carry some.
        if props::flags(msg.properties()) & props::HEADERS != 0 {
            let headers = msg.headers();
            let no_store = headers.as_ref().and_then(|h| h.inner().get(NO_STORE));
            if matches!(no_store, Some(AMQPValue::Boolean(true))) {
                return;
            }
        }
        let mut kept = self.lock();
        let kept = &mut *kept;
        kept.messages.push_back(msg.clone());
        let mut added = msg.size();
        let mut freed = 0;
        while kept.messages.len() > self.length {
            if let Some(old) = kept.messages.pop_front() {
                freed += old.size();
            }
        }
        kept.bytes = kept.bytes + added - freed;
        if let Some(m) = &kept.memory {
            // Net change only: a full history replacing like with like stays put.
            if added >= freed {
                added -= freed;
                m.add(added);
            } else {
                m.sub(freed - added);
            }
        }
    }

    /// The kept messages, oldest first, for a new binding.
    pub fn kept(&self) -> Vec<Message> {
        self.lock().messages.iter().cloned().collect()
    }
}

impl Drop for Kept {
    fn drop(&mut self) {
        if let Some(m) = &self.memory {
            m.sub(self.bytes);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::types::ShortString;

    fn args(v: AMQPValue) -> FieldTable {
        let mut t = FieldTable::default();
        t.insert(ShortString::from(LENGTH_ARG), v);
        t
    }

    #[test]
    fn keeps_the_last_n_oldest_first_and_counts_them() {
        let memory = Memory::new(1 << 30);
        let h = RecentHistory::new(&args(AMQPValue::LongInt(3)));
        h.charge_to(&memory);
        for i in 0..5u8 {
            h.remember(&Message::new("x", "k", &[0, 0], &[i]));
        }
        let bodies: Vec<u8> = h.kept().iter().map(|m| m.body()[0]).collect();
        assert_eq!(bodies, [2, 3, 4]);
        let one = Message::new("x", "k", &[0, 0], &[0]).size() as u64;
        assert_eq!(memory.used(), 3 * one);
        drop(h);
        assert_eq!(memory.used(), 0);
    }

    #[test]
    fn length_refusals_print_the_value_as_erlang_does() {
        let text = |v| validate(&args(v)).err().map(|e| e.text);
        let t = |shown: &str| {
            Some(format!(
                "PRECONDITION_FAILED - Invalid argument {shown}, 'x-recent-history-length' must be a positive integer"
            ))
        };
        assert_eq!(text(AMQPValue::LongLongInt(0)), t("0"));
        assert_eq!(text(AMQPValue::LongInt(-1)), t("-1"));
        assert_eq!(text(AMQPValue::Boolean(true)), t("true"));
        assert_eq!(text(AMQPValue::LongString("abc".into())), t("<<\"abc\">>"));
        assert_eq!(text(AMQPValue::LongUInt(5)), t("5"));
        assert_eq!(text(AMQPValue::ShortShortInt(5)), None);
        assert_eq!(RecentHistory::new(&FieldTable::default()).length, 20);
    }
}
