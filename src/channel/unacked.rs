//! A channel's deliveries awaiting acknowledgement, in delivery-tag order.
//!
//! Owned by one channel; no locks. Tags only grow, and clients mostly settle the oldest
//! first, so entries sit in a deque with tombstones: settling the front is O(1), settling
//! in the middle is a binary search, and tombstones are swept from both ends. A client
//! that keeps one old delivery and settles everything after it would otherwise grow the
//! deque with the tag range: once tombstones outnumber live entries the deque is
//! compacted (amortised O(1) per settle), so memory follows what is unacked.

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

/// Tombstones below this many are left for the end sweeps: compacting a short deque
/// would cost more than it frees.
const COMPACT_MIN: usize = 64;

impl Unacked {
    pub fn push(&mut self, tag: u64, entry: Entry) {
        self.entries.push_back((tag, Some(entry)));
        self.live += 1;
    }

    /// Deliveries not settled yet (the management API's messages_unacknowledged).
    pub fn len(&self) -> usize {
        self.live
    }

    #[cfg(test)] // tests look; the broker does not need to
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
        self.sweep();
        Some(taken)
    }

    /// Drops tombstones at both ends, and all of them once they outnumber live entries.
    fn sweep(&mut self) {
        while matches!(self.entries.front(), Some((_, None))) {
            self.entries.pop_front();
        }
        while matches!(self.entries.back(), Some((_, None))) {
            self.entries.pop_back();
        }
        let tombstones = self.entries.len() - self.live;
        if tombstones >= COMPACT_MIN && tombstones > self.live {
            self.entries.retain(|(_, e)| e.is_some());
        }
        // A deque that once held a burst keeps its allocation otherwise.
        if self.entries.capacity() > 4 * self.entries.len().max(COMPACT_MIN) {
            self.entries.shrink_to(2 * self.entries.len());
        }
    }

    /// Slots the deque holds (live entries and tombstones), and its allocation in
    /// entries: what it costs in memory.
    pub fn footprint(&self) -> (usize, usize) {
        (self.entries.len(), self.entries.capacity())
    }

    /// Bytes one slot of the deque takes.
    pub const SLOT_BYTES: usize = std::mem::size_of::<(u64, Option<Entry>)>();

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
        let all = self
            .entries
            .drain(..)
            .filter_map(|(t, e)| Some((t, e?)))
            .collect();
        self.sweep();
        all
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

    fn queue() -> Arc<Queue> {
        Queue::new(
            "q".into(),
            "/",
            false,
            None,
            false,
            FieldTable::default(),
            None,
            None,
            crate::broker::memory::Memory::new(u64::MAX),
            crate::clock::Clock::real(),
            None,
            (Default::default(), &FieldTable::default()),
        )
    }

    #[test]
    fn settles_single_multiple_and_all_in_order() {
        let q = queue();
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

    #[test]
    fn one_old_delivery_kept_while_later_ones_are_acked_stays_compact() {
        let q = queue();
        let mut u = Unacked::default();
        let mut most = 0;
        for tag in 1..=100_000u64 {
            u.push(tag, entry(&q, tag));
            if tag >= 3 {
                assert!(u.take(tag - 1, false).is_some());
            }
            most = most.max(u.footprint().1);
        }
        // Tag 1 and the newest are live; everything between was acked one by one.
        assert_eq!(u.len(), 2);
        let (slots, allocated) = u.footprint();
        assert!(slots <= 2 * COMPACT_MIN, "{slots} slots for 2 unacked");
        assert!(allocated <= 8 * COMPACT_MIN, "{allocated} slots allocated");
        assert!(most <= 8 * COMPACT_MIN, "peaked at {most} slots");
        // Binary search still finds what is left after compactions.
        assert_eq!(u.take(1, false).map(|v| v.len()), Some(1));
        assert!(u.take(50_000, false).is_none());
        assert_eq!(u.take(100_000, true).map(|v| v.len()), Some(1));
        assert!(u.is_empty());
    }
}
