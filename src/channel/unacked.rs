//! A channel's deliveries awaiting acknowledgement, in delivery-tag order.
//!
//! Owned by one channel; no locks. Tags only grow, and clients mostly settle the oldest
//! first, so entries sit in a deque with tombstones: settling the front is O(1), settling
//! in the middle is a binary search, and tombstones are swept from the front.

use crate::broker::consumer::ConsumerInfo;
use crate::broker::queue::{Queue, Queued};
use std::collections::VecDeque;
use std::sync::Arc;

#[derive(Debug)]
pub struct Entry {
    pub queue: Arc<Queue>,
    pub item: Queued,
    /// The consumer whose credit this delivery holds (none for basic.get).
    pub consumer: Option<Arc<ConsumerInfo>>,
}

#[derive(Debug, Default)]
pub struct Unacked {
    entries: VecDeque<(u64, Option<Entry>)>,
    live: usize,
}

impl Unacked {
    pub fn push(&mut self, tag: u64, entry: Entry) {
        self.entries.push_back((tag, Some(entry)));
        self.live += 1;
    }

    pub fn len(&self) -> usize {
        self.live
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Takes the entry with `tag` (and, with `multiple`, every older one), in tag order.
    /// `tag` 0 with `multiple` takes everything. `None` when `tag` is not outstanding.
    pub fn take(&mut self, tag: u64, multiple: bool) -> Option<Vec<(u64, Entry)>> {
        if multiple && tag == 0 {
            return Some(self.take_all());
        }
        let at = self.entries.binary_search_by_key(&tag, |(t, _)| *t).ok()?;
        self.entries[at].1.as_ref()?;
        let taken: Vec<(u64, Entry)> = if multiple {
            self.entries
                .range_mut(..=at)
                .filter_map(|(t, e)| Some((*t, e.take()?)))
                .collect()
        } else {
            self.entries[at]
                .1
                .take()
                .map(|e| (tag, e))
                .into_iter()
                .collect()
        };
        self.live -= taken.len();
        while matches!(self.entries.front(), Some((_, None))) {
            self.entries.pop_front();
        }
        Some(taken)
    }

    /// Puts back entries taken by a transaction that was rolled back.
    pub fn restore(&mut self, entries: Vec<(u64, Entry)>) {
        for (tag, entry) in entries {
            self.live += 1;
            match self.entries.binary_search_by_key(&tag, |(t, _)| *t) {
                Ok(at) => self.entries[at].1 = Some(entry),
                Err(at) => self.entries.insert(at, (tag, Some(entry))),
            }
        }
    }

    pub fn take_all(&mut self) -> Vec<(u64, Entry)> {
        self.live = 0;
        self.entries
            .drain(..)
            .filter_map(|(t, e)| Some((t, e?)))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::message::Message;
    use amq_protocol::types::FieldTable;

    fn entry(queue: &Arc<Queue>, seq: u64) -> Entry {
        let msg = Message::new("", "q", &[0, 0], b"");
        Entry {
            queue: queue.clone(),
            item: Queued {
                seq,
                msg,
                redelivered: false,
                store_id: 0,
                expires_at: 0,
                priority: 0,
                cost: 0,
                deliveries: 0,
            },
            consumer: None,
        }
    }

    #[test]
    fn settles_single_multiple_and_all_in_order() {
        let q = Queue::new(
            "q".into(),
            "/",
            false,
            None,
            false,
            FieldTable::default(),
            None,
            crate::broker::memory::Memory::new(u64::MAX),
            None,
        );
        let mut u = Unacked::default();
        for tag in [1, 2, 4, 5, 7] {
            u.push(tag, entry(&q, tag));
        }
        assert!(u.take(3, false).is_none(), "never delivered");
        assert_eq!(u.take(4, false).map(|v| v.len()), Some(1));
        assert!(u.take(4, false).is_none(), "acked twice");
        let older: Vec<u64> = u
            .take(5, true)
            .unwrap_or_default()
            .iter()
            .map(|(_, e)| e.item.seq)
            .collect();
        assert_eq!(older, vec![1, 2, 5]);
        assert_eq!(u.len(), 1);
        let two = u.take(7, false).unwrap_or_default();
        u.restore(two);
        assert_eq!(u.len(), 1);
        assert_eq!(u.take(0, true).map(|v| v.len()), Some(1));
        assert!(u.is_empty());
    }
}
