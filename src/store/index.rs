//! Which stored messages are still live in which queue, per segment; when a segment may go.
//!
//! Owned by exactly one party at a time: recovery builds it while replaying the segments,
//! then hands it to the writer thread, which keeps it current as it appends records. Both
//! feed it the same calls in the same order, so the state after a replay equals the state
//! the writer had. It never touches files: it only says which segments are deletable and
//! which of their records must be copied forward first.
//!
//! Memory: 4 bytes per (message, queue) pair still held (an offset from the segment's
//! first id; its top bit marks it settled), plus the records copied forward. Message
//! bodies are never held here.
//!
//! Why records are copied forward: an Ack in segment S for a message in an older segment
//! T is what keeps that message settled on replay. If S were deleted while T stays, the
//! message would come back. So deleting S first re-appends ("carries") those of its Acks,
//! Delivered marks and Drops that still matter to the current segment; the writer makes
//! them durable before the file of S is unlinked.

use std::collections::{BTreeMap, BTreeSet, HashMap};

const SETTLED: u32 = 1 << 31;
/// A segment never spans more ids than fit below the settled bit.
pub(crate) const MAX_SPAN: u64 = (SETTLED - 1) as u64;

/// Per queue number, offsets from a segment's first id, ascending.
pub(crate) type QueueOffsets = Vec<(u32, Vec<u32>)>;

/// A record that must outlive the segment it sits in while its target lives.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Carried {
    Ack(u32, u64),
    /// Queue, message id, times handed out.
    Delivered(u32, u64, u16),
    Drop(u32, u64),
}

/// Offsets (id - first_id) of one queue's messages in one segment, ascending.
#[derive(Debug, Default)]
struct IdList {
    offs: Vec<u32>,
    /// Everything before `head` is settled (acks come mostly in order).
    head: usize,
    live: u32,
}

impl IdList {
    fn find(&self, off: u32) -> Option<usize> {
        let slice = self.offs.get(self.head..)?;
        slice
            .binary_search_by_key(&off, |o| o & !SETTLED)
            .ok()
            .map(|i| i + self.head)
    }

    fn settle_at(&mut self, i: usize) -> bool {
        match self.offs.get_mut(i) {
            Some(o) if *o & SETTLED == 0 => {
                *o |= SETTLED;
                self.live -= 1;
                while self.offs.get(self.head).is_some_and(|o| o & SETTLED != 0) {
                    self.head += 1;
                }
                // Give the settled prefix back once it is most of the list.
                if self.head > 1024 && self.head * 2 > self.offs.len() {
                    self.offs.drain(..self.head);
                    self.head = 0;
                }
                true
            }
            _ => false,
        }
    }
}

#[derive(Debug)]
pub(crate) struct SegMeta {
    pub(crate) first_id: u64,
    /// One past the highest id this segment can hold: the next segment's first id.
    end_id: u64,
    /// (message, queue) pairs not yet settled.
    pub(crate) live: u64,
    queues: HashMap<u32, IdList>,
    carried: Vec<Carried>,
    /// Chosen for deletion; its file is unlinked once the carried copies are durable.
    pub(crate) deleting: bool,
}

#[derive(Debug, Default)]
pub(crate) struct Index {
    names: Vec<Box<str>>,
    ids: HashMap<Box<str>, u32>,
    pub(crate) segments: BTreeMap<u64, SegMeta>,
    /// first_id -> segment number, to find the segment of a message id.
    by_first_id: BTreeMap<u64, u64>,
    /// The segment records are appended to now; never deleted.
    pub(crate) current: u64,
    candidates: BTreeSet<u64>,
}

impl Index {
    pub(crate) fn queue_id(&mut self, name: &str) -> u32 {
        if let Some(&q) = self.ids.get(name) {
            return q;
        }
        let q = self.names.len() as u32;
        self.names.push(name.into());
        self.ids.insert(name.into(), q);
        q
    }

    pub(crate) fn queue_name(&self, q: u32) -> &str {
        self.names.get(q as usize).map(|s| &**s).unwrap_or("")
    }

    /// Starts tracking a segment and makes it the current one.
    pub(crate) fn open_segment(&mut self, segno: u64, first_id: u64) {
        self.segments.insert(
            segno,
            SegMeta {
                first_id,
                end_id: u64::MAX,
                live: 0,
                queues: HashMap::new(),
                carried: Vec::new(),
                deleting: false,
            },
        );
        // Two segments can share a first id only if the older holds no message; the id
        // range belongs to the newer one.
        self.by_first_id.insert(first_id, segno);
        let old = std::mem::replace(&mut self.current, segno);
        if old != segno {
            if let Some(m) = self.segments.get_mut(&old) {
                m.end_id = first_id;
                if m.live == 0 {
                    self.candidates.insert(old);
                }
            }
        }
    }

    /// Whether `id` may be appended to the current segment.
    pub(crate) fn fits_current(&self, id: u64) -> bool {
        self.segments
            .get(&self.current)
            .is_some_and(|m| id >= m.first_id && id - m.first_id < MAX_SPAN)
    }

    /// The segment whose id range holds `id`, if that segment is still tracked.
    fn segment_of(&self, id: u64) -> Option<u64> {
        let (_, &segno) = self.by_first_id.range(..=id).next_back()?;
        self.segments
            .get(&segno)
            .filter(|m| id < m.end_id)
            .map(|_| segno)
    }

    /// Heap bytes the index holds (offset lists, carried records, per-segment and
    /// per-queue entries): it grows with the backlog, so the broker counts it against the
    /// paging budget.
    pub(crate) fn heap_bytes(&self) -> u64 {
        let lists: usize = self
            .segments
            .values()
            .map(|m| {
                let queues: usize = m.queues.values().map(|l| l.offs.capacity() * 4 + 64).sum();
                queues + m.carried.capacity() * std::mem::size_of::<Carried>() + 160
            })
            .sum();
        (lists + self.names.iter().map(|n| n.len() * 2 + 64).sum::<usize>()) as u64
    }

    /// The number of a queue name seen before, without remembering new names.
    pub(crate) fn find_queue(&self, name: &str) -> Option<u32> {
        self.ids.get(name).copied()
    }

    /// Registers a message of the current segment. Returns false if its id cannot be
    /// placed there (out of order: a damaged file), in which case nothing changed.
    pub(crate) fn add_message(&mut self, id: u64, queues: &[u32]) -> bool {
        if !self.fits_current(id) {
            return false;
        }
        let Some(seg) = self.segments.get_mut(&self.current) else {
            return false;
        };
        let off = (id - seg.first_id) as u32;
        for &q in queues {
            let list = seg.queues.entry(q).or_default();
            if list.offs.last().is_some_and(|&o| o & !SETTLED >= off) {
                continue; // duplicate queue in one message, or ids out of order
            }
            list.offs.push(off);
            list.live += 1;
            seg.live += 1;
        }
        true
    }

    pub(crate) fn is_live(&self, q: u32, id: u64) -> bool {
        let Some(seg) = self.segment_of(id).and_then(|s| self.segments.get(&s)) else {
            return false;
        };
        let Some(list) = seg.queues.get(&q) else {
            return false;
        };
        let off = id.wrapping_sub(seg.first_id);
        off < MAX_SPAN
            && list
                .find(off as u32)
                .is_some_and(|i| list.offs[i] & SETTLED == 0)
    }

    /// Settles `id` in queue `q`; false if it was not live there.
    pub(crate) fn settle(&mut self, q: u32, id: u64) -> bool {
        let Some(segno) = self.segment_of(id) else {
            return false;
        };
        let current = self.current;
        let Some(seg) = self.segments.get_mut(&segno) else {
            return false;
        };
        let off = id.wrapping_sub(seg.first_id);
        if off >= MAX_SPAN {
            return false;
        }
        let Some(list) = seg.queues.get_mut(&q) else {
            return false;
        };
        let Some(i) = list.find(off as u32) else {
            return false;
        };
        if !list.settle_at(i) {
            return false;
        }
        if list.live == 0 {
            seg.queues.remove(&q);
        }
        seg.live -= 1;
        if seg.live == 0 && segno != current {
            self.candidates.insert(segno);
        }
        true
    }

    /// Settles every message of `q` with id <= `up_to`, calling `each` with their ids.
    /// Returns how many were settled.
    pub(crate) fn drop_queue(&mut self, q: u32, up_to: u64, mut each: impl FnMut(u64)) -> u64 {
        let current = self.current;
        let mut n = 0;
        for (&segno, seg) in self.segments.iter_mut() {
            if seg.first_id > up_to {
                break;
            }
            let Some(list) = seg.queues.get_mut(&q) else {
                continue;
            };
            let limit = up_to - seg.first_id;
            for i in list.head..list.offs.len() {
                let o = list.offs[i];
                if u64::from(o & !SETTLED) > limit {
                    break;
                }
                if o & SETTLED == 0 {
                    each(seg.first_id + u64::from(o));
                    list.offs[i] |= SETTLED;
                    list.live -= 1;
                    seg.live -= 1;
                    n += 1;
                }
            }
            if list.live == 0 {
                seg.queues.remove(&q);
            } else {
                while list.offs.get(list.head).is_some_and(|o| o & SETTLED != 0) {
                    list.head += 1;
                }
            }
            if seg.live == 0 && segno != current {
                self.candidates.insert(segno);
            }
        }
        n
    }

    /// Remembers that segment `segno` holds `c`, if `c` concerns an older segment.
    pub(crate) fn note(&mut self, segno: u64, c: Carried) {
        let keep = match c {
            Carried::Ack(_, id) | Carried::Delivered(_, id, _) => {
                self.segment_of(id).is_some_and(|t| t < segno)
            }
            Carried::Drop(..) => self.segments.range(..segno).next().is_some(),
        };
        if keep {
            if let Some(seg) = self.segments.get_mut(&segno) {
                seg.carried.push(c);
            }
        }
    }

    /// Segments that became empty since the last call, oldest first, each with the records
    /// that must be re-appended before its file goes. Marks them `deleting`.
    pub(crate) fn take_deletable(&mut self) -> Vec<(u64, Vec<Carried>)> {
        let mut out = Vec::new();
        let candidates = std::mem::take(&mut self.candidates);
        for segno in candidates {
            let Some(seg) = self.segments.get_mut(&segno) else {
                continue;
            };
            if seg.live != 0 || seg.deleting || segno == self.current {
                continue;
            }
            seg.deleting = true;
            let carried = std::mem::take(&mut seg.carried);
            // A target still counts while its file exists, even if it is being deleted in
            // this same batch: the unlinks may reach the disk in any order.
            let keep: Vec<Carried> = carried
                .into_iter()
                .filter(|c| match *c {
                    Carried::Ack(_, id) => self.segment_of(id).is_some_and(|t| t != segno),
                    Carried::Delivered(q, id, _) => self.is_live(q, id),
                    Carried::Drop(..) => self.segments.range(..segno).next().is_some(),
                })
                .collect();
            out.push((segno, keep));
        }
        out
    }

    /// Forgets a segment whose file is gone.
    pub(crate) fn remove_segment(&mut self, segno: u64) {
        if let Some(seg) = self.segments.remove(&segno) {
            if self.by_first_id.get(&seg.first_id) == Some(&segno) {
                self.by_first_id.remove(&seg.first_id);
            }
        }
    }

    /// Marks every empty, non-current segment as a deletion candidate (after recovery).
    pub(crate) fn collect_empty(&mut self) {
        for (&segno, seg) in &self.segments {
            if seg.live == 0 && segno != self.current {
                self.candidates.insert(segno);
            }
        }
    }

    /// Live message ids of queue `q`, in id (publish) order.
    #[cfg(test)]
    pub(crate) fn live_ids(&self, q: u32) -> Vec<u64> {
        let mut out = Vec::new();
        for seg in self.segments.values() {
            if let Some(list) = seg.queues.get(&q) {
                for &o in list.offs.get(list.head..).unwrap_or(&[]) {
                    if o & SETTLED == 0 {
                        out.push(seg.first_id + u64::from(o));
                    }
                }
            }
        }
        out
    }

    /// Every segment holding live messages, oldest first, as (segment number, first id,
    /// per queue (ascending queue number) the offsets from first id of its live messages,
    /// ascending). Offsets are below [`MAX_SPAN`], so their top bit is free for the caller.
    pub(crate) fn live_by_segment(&self) -> Vec<(u64, u64, QueueOffsets)> {
        let mut out = Vec::new();
        for (&segno, seg) in &self.segments {
            if seg.live == 0 {
                continue;
            }
            let mut queues: Vec<(u32, Vec<u32>)> = seg
                .queues
                .iter()
                .map(|(&q, list)| {
                    let offs: Vec<u32> = list
                        .offs
                        .get(list.head..)
                        .unwrap_or(&[])
                        .iter()
                        .copied()
                        .filter(|o| o & SETTLED == 0)
                        .collect();
                    (q, offs)
                })
                .filter(|(_, offs)| !offs.is_empty())
                .collect();
            queues.sort_unstable_by_key(|&(q, _)| q);
            out.push((segno, seg.first_id, queues));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settle_and_candidates() {
        let mut ix = Index::default();
        ix.open_segment(1, 1);
        let (a, b) = (ix.queue_id("a"), ix.queue_id("b"));
        assert!(ix.add_message(1, &[a, b]));
        assert!(ix.add_message(2, &[a]));
        ix.open_segment(2, 3);
        assert!(ix.add_message(3, &[b]));
        assert!(
            !ix.add_message(2, &[b]),
            "ids below the current segment are refused"
        );
        assert!(ix.settle(a, 1));
        assert!(!ix.settle(a, 1), "second ack is a no-op");
        assert!(ix.take_deletable().is_empty());
        assert!(ix.settle(b, 1));
        ix.note(2, Carried::Ack(b, 1));
        assert_eq!(ix.live_ids(a), vec![2]);
        assert_eq!(ix.drop_queue(a, 10, |_| {}), 1);
        let del = ix.take_deletable();
        assert_eq!(del, vec![(1, vec![])]);
        ix.remove_segment(1);
        assert_eq!(ix.live_ids(b), vec![3]);
        assert!(ix.is_live(b, 3));
    }

    #[test]
    fn carried_records_survive_only_while_needed() {
        let mut ix = Index::default();
        ix.open_segment(1, 1);
        let q = ix.queue_id("q");
        ix.add_message(1, &[q]);
        ix.add_message(2, &[q]);
        ix.open_segment(2, 3);
        ix.add_message(3, &[q]);
        assert!(ix.settle(q, 1));
        ix.note(2, Carried::Ack(q, 1));
        ix.note(2, Carried::Delivered(q, 2, 1));
        ix.note(2, Carried::Ack(q, 3)); // same segment: not kept
        ix.open_segment(3, 4);
        assert!(ix.settle(q, 3));
        let del = ix.take_deletable();
        assert_eq!(
            del,
            vec![(2, vec![Carried::Ack(q, 1), Carried::Delivered(q, 2, 1)])]
        );
    }
}
