//! Poison messages: messages of this queue that clients sent back over and over (nack or
//! reject with requeue, or their consumer's channel gone while they were unacked), kept
//! so the diagnostics can name them.
//!
//! Lives in the queue's state, under the queue lock. It is touched only on the requeue
//! path, when a message's delivery count reaches `POISON_DELIVERIES` (an integer compare
//! the requeue already makes room for), and when such a message leaves for good; never
//! per publish or per delivery. A queue without one holds a single empty `Option`.

use super::Queued;
use crate::codec::properties as props;

/// A message handed out this many times is called poison: a client that fails on a
/// message and requeues it makes it come back at once, so ten tries in a row are rarely
/// transient failures (quorum queues' own x-delivery-limit is usually set near this).
pub const POISON_DELIVERIES: u16 = 10;

/// Poison messages remembered per queue: one is enough to act on; a few show a pattern.
/// Past this, the entry redelivered least recently makes room.
const PER_QUEUE: usize = 8;

/// One message sent back over and over.
#[derive(Debug, Clone)]
pub struct Poisoned {
    /// Its place in the queue (unique while it lives there).
    pub seq: u64,
    pub routing_key: String,
    pub exchange: String,
    /// The message-id property, when the publisher set one.
    pub message_id: Option<String>,
    /// Times handed out and returned so far.
    pub deliveries: u16,
    /// When it reached the threshold, and when it came back last (ms since the epoch).
    pub since: u64,
    pub last: u64,
}

/// The poison messages of one queue (none in nearly every queue: no allocation then).
/// Boxed: 8 bytes in every queue's state instead of a Vec's 24.
#[allow(clippy::box_collection)]
#[derive(Debug, Default)]
pub(super) struct PoisonList(Option<Box<Vec<Poisoned>>>);

impl PoisonList {
    /// `item` came back with `deliveries` at or past the threshold.
    /// `now`: the broker clock's Unix ms.
    pub(super) fn returned(&mut self, item: &Queued, now: u64) {
        let list = self.0.get_or_insert_with(Box::default);
        if let Some(p) = list.iter_mut().find(|p| p.seq == item.seq) {
            p.deliveries = item.deliveries;
            p.last = now;
            return;
        }
        if list.len() >= PER_QUEUE {
            if let Some(oldest) = (0..list.len()).min_by_key(|&i| list[i].last) {
                list.swap_remove(oldest);
            }
        }
        let properties = item.msg.properties();
        list.push(Poisoned {
            seq: item.seq,
            routing_key: item.msg.routing_key().to_owned(),
            exchange: item.msg.exchange().to_owned(),
            message_id: props::short_str(properties, props::MESSAGE_ID).map(str::to_owned),
            deliveries: item.deliveries,
            since: now,
            last: now,
        });
    }

    /// The message `seq` left the queue for good (acked, rejected, dead-lettered).
    pub(super) fn forget(&mut self, seq: u64) {
        if let Some(list) = &mut self.0 {
            list.retain(|p| p.seq != seq);
            if list.is_empty() {
                self.0 = None;
            }
        }
    }

    /// Every ready message went (purge): the ones out with clients come back in the list
    /// if they are requeued again.
    pub(super) fn clear(&mut self) {
        self.0 = None;
    }

    pub(super) fn list(&self) -> Vec<Poisoned> {
        self.0.as_deref().cloned().unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::message::Message;

    fn item(seq: u64, deliveries: u16) -> Queued {
        Queued {
            seq,
            msg: Message::new("x", "k", &[0, 0], b"body"),
            redelivered: true,
            store_id: 0,
            expires_at: 0,
            priority: 0,
            cost: 0,
            deliveries,
        }
    }

    #[test]
    fn keeps_at_most_per_queue_and_forgets_settled_ones() {
        let mut list = PoisonList::default();
        for seq in 0..PER_QUEUE as u64 + 3 {
            list.returned(&item(seq, POISON_DELIVERIES), seq);
        }
        assert_eq!(list.list().len(), PER_QUEUE);
        list.returned(&item(5, POISON_DELIVERIES + 1), 100);
        let five = list.list().into_iter().find(|p| p.seq == 5).expect("seq 5");
        assert_eq!((five.deliveries, five.routing_key.as_str()), (11, "k"));
        list.forget(5);
        assert_eq!(list.list().len(), PER_QUEUE - 1);
        list.clear();
        assert!(list.0.is_none(), "nothing held once empty");
    }
}
