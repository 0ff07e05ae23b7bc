//! Start-up recovery in two passes, so that message bodies are never all in memory.
//!
//! Pass 1 (`replay`) is called once by `StoreHandle::open`, before the writer thread
//! exists, with the data directory already locked. It reads the segments one at a time,
//! in order, and rebuilds the index of live messages, the delivered marks and the next
//! id, copying no message body: memory is the index (4 bytes per live (message, queue)
//! pair), the delivered set and one read buffer (`segment::Reader`: 1 MiB, more only
//! while a single record is larger). It returns, besides the index for the
//! writer, a [`Recovered`]: per segment still holding live messages, where reading it
//! stopped and the live offsets of each queue (4 bytes per pair, the top bit marking
//! "delivered before the restart").
//!
//! Pass 2 (`Recovered::stream`) is called by the broker once its queues exist, while the
//! writer already runs. It reads those segments again, one at a time through the same
//! kind of buffer, and hands out each message some queue still holds, in id order, with
//! its holders; besides the buffer it holds that segment's live pairs sorted by id (8
//! bytes each) while it reads it. Only settled segments
//! are ever deleted and nothing is settled before the broker listens, so the files are
//! there; if one vanished or no longer reads anyway, it is logged and skipped.
//!
//! Damage never stops pass 1: a torn or corrupt record in the last segment truncates the
//! file there; in an earlier segment the rest of that segment is skipped (and pass 2
//! stops at the same place); a segment whose header is unreadable is renamed
//! `*.seg.corrupt`. Each case is logged with `tracing::warn!` saying what was dropped. It
//! returns an error only when the directory itself cannot be read or written.

use super::index::{Carried, Index, QueueOffsets};
use super::iostats::IoStats;
use super::record::{self, Next, Record};
use super::segment;
use super::{Recovered, RecoveredRecord};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::io;
use std::path::Path;
use std::sync::Arc;

/// Marks, in a live offset handed to pass 2, a message delivered before the restart.
const DELIVERED: u32 = 1 << 31;

/// What pass 1 produced.
pub(crate) struct Replayed {
    pub(crate) index: Index,
    pub(crate) recovered: Recovered,
    /// The first id not used by any record or header seen.
    pub(crate) next_id: u64,
    /// The number to give the next segment.
    pub(crate) next_segno: u64,
}

/// A segment pass 2 must read: it holds live messages.
#[derive(Debug)]
pub(crate) struct LiveSegment {
    segno: u64,
    first_id: u64,
    /// Where pass 1 stopped reading it; what follows was not trusted then either.
    end: u64,
    /// Per queue (its number in `Recovered::queues`) the offsets from `first_id` of its
    /// live messages, ascending, with [`DELIVERED`] set on those delivered before.
    queues: QueueOffsets,
}

/// Message ids are already well spread; SipHash would be a large part of replay time.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0.wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 << 8 | u64::from(b)).wrapping_mul(0x100_0000_01B3);
        }
    }
    fn write_u32(&mut self, n: u32) {
        self.0 = (self.0 ^ u64::from(n)).rotate_left(32);
    }
    fn write_u64(&mut self, n: u64) {
        self.0 ^= n;
    }
}

/// Delivered marks: (queue, id) -> times handed out (the highest count recorded).
type IdTimes = HashMap<(u32, u64), u16, BuildHasherDefault<IdHasher>>;

/// Pass 1: replays every segment of `dir` into an index, copying no message body.
pub(crate) fn replay(dir: &Path, io: &Arc<IoStats>) -> io::Result<Replayed> {
    let (segnos, highest) = segment::list(dir)?;
    let mut ix = Index::default();
    let mut delivered = IdTimes::default();
    // Where reading each segment stopped.
    let mut ends: HashMap<u64, u64> = HashMap::new();
    let mut next_id: u64 = 1;
    let last = segnos.last().copied();

    for &segno in &segnos {
        let is_last = Some(segno) == last;
        let file_len = std::fs::metadata(segment::path(dir, segno))?.len();
        let mut reader = segment::Reader::open(dir, segno, u64::MAX, io.clone())?;
        let first_id = match reader.header()? {
            Some(id) if id >= next_id => id,
            found => {
                drop(reader);
                if is_last && file_len < record::HEADER_LEN as u64 {
                    // Created but its header never reached the disk: nothing was in it.
                    tracing::warn!(
                        segment = segno,
                        bytes = file_len,
                        "removing a segment with a torn header"
                    );
                    std::fs::remove_file(segment::path(dir, segno))?;
                } else {
                    let to = segment::set_aside(dir, segno)?;
                    tracing::warn!(
                        segment = segno,
                        bytes = file_len,
                        header_first_id = ?found,
                        expected_at_least = next_id,
                        moved_to = %to.display(),
                        "segment header unreadable or out of order; its records are dropped"
                    );
                }
                continue;
            }
        };
        next_id = first_id;
        ix.open_segment(segno, first_id);
        let mut counts = [0u64; 4];
        let stop = loop {
            match reader.next()? {
                Next::Record(rec, _) => {
                    if !apply(
                        &mut ix,
                        segno,
                        rec,
                        &mut delivered,
                        &mut next_id,
                        &mut counts,
                    ) {
                        break Some("message id out of order");
                    }
                }
                Next::End => break None,
                Next::Torn(why) | Next::Bad(why) => break Some(why),
            }
        };
        let pos = reader.pos();
        drop(reader);
        ends.insert(segno, pos);
        tracing::debug!(
            segment = segno,
            messages = counts[0],
            acks = counts[1],
            "segment replayed"
        );
        if let Some(why) = stop {
            let dropped = file_len.saturating_sub(pos);
            if is_last {
                tracing::warn!(
                    segment = segno,
                    offset = pos,
                    dropped_bytes = dropped,
                    reason = why,
                    "torn or corrupt tail in the last segment; truncating it there"
                );
                segment::truncate(dir, segno, pos)?;
            } else {
                tracing::warn!(
                    segment = segno,
                    offset = pos,
                    skipped_bytes = dropped,
                    reason = why,
                    "corrupt record in an earlier segment; skipping the rest of that segment"
                );
            }
        }
    }

    let recovered = live_set(&ix, &delivered, &ends, dir, io);
    let next_segno = highest.max(last.unwrap_or(0)) + 1;
    Ok(Replayed {
        index: ix,
        recovered,
        next_id,
        next_segno,
    })
}

/// What pass 2 needs, taken from the index after pass 1.
fn live_set(
    ix: &Index,
    delivered: &IdTimes,
    ends: &HashMap<u64, u64>,
    dir: &Path,
    io: &Arc<IoStats>,
) -> Recovered {
    // Queue numbers of the index are reused as they are; only the names of queues that
    // hold something are kept (empty names for the others cost 16 bytes each).
    let mut counts: HashMap<u32, usize> = HashMap::new();
    let mut segments = Vec::new();
    // Counts above one (quorum queues' redeliveries): rare, so kept apart from the
    // offsets, whose one spare bit says "delivered".
    let mut times = HashMap::new();
    for (segno, first_id, mut queues) in ix.live_by_segment() {
        for (q, offs) in &mut queues {
            *counts.entry(*q).or_default() += offs.len();
            if !delivered.is_empty() {
                for o in offs.iter_mut() {
                    let id = first_id + u64::from(*o);
                    if let Some(&n) = delivered.get(&(*q, id)) {
                        *o |= DELIVERED;
                        if n > 1 {
                            times.insert((*q, id), n);
                        }
                    }
                }
            }
        }
        segments.push(LiveSegment {
            segno,
            first_id,
            end: ends.get(&segno).copied().unwrap_or(u64::MAX),
            queues,
        });
    }
    let slots = counts.keys().map(|&q| q as usize + 1).max().unwrap_or(0);
    let mut names: Vec<(Box<str>, usize)> = vec![(Box::from(""), 0); slots];
    for (q, n) in counts {
        names[q as usize] = (ix.queue_name(q).into(), n);
    }
    Recovered {
        dir: dir.to_owned(),
        queues: names,
        segments,
        times,
        io: io.clone(),
    }
}

/// Applies one record to the index exactly as the writer did when it appended it. False
/// when the record contradicts the segment (a message id that does not fit), which is
/// treated like a corrupt record.
fn apply(
    ix: &mut Index,
    segno: u64,
    rec: Record<'_>,
    delivered: &mut IdTimes,
    next_id: &mut u64,
    counts: &mut [u64; 4],
) -> bool {
    match rec {
        Record::Message { id, queues, .. } => {
            if id < *next_id {
                return false;
            }
            let mut qs: Vec<u32> = queues.iter().map(|q| ix.queue_id(q)).collect();
            qs.sort_unstable();
            qs.dedup();
            if !ix.add_message(id, &qs) {
                return false;
            }
            *next_id = id + 1;
            counts[0] += 1;
        }
        Record::Ack { queue, id } => {
            counts[1] += 1;
            let q = ix.queue_id(queue);
            if ix.settle(q, id) {
                delivered.remove(&(q, id));
            }
            ix.note(segno, Carried::Ack(q, id));
        }
        Record::Delivered { queue, id, times } => {
            counts[2] += 1;
            let q = ix.queue_id(queue);
            if ix.is_live(q, id) {
                let n = delivered.entry((q, id)).or_default();
                *n = (*n).max(times);
                ix.note(segno, Carried::Delivered(q, id, times));
            }
        }
        Record::Drop { queue, up_to } => {
            counts[3] += 1;
            let q = ix.queue_id(queue);
            ix.drop_queue(q, up_to, |id| {
                delivered.remove(&(q, id));
            });
            ix.note(segno, Carried::Drop(q, up_to));
        }
    }
    true
}

impl Recovered {
    /// (queue key, live message count), for logging and for dropping unknown queues.
    pub fn queues(&self) -> impl Iterator<Item = (&str, usize)> + '_ {
        self.queues
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| (&**k, *n))
    }

    /// Heap bytes this plan holds until `stream` consumes it (4 per live pair).
    pub fn heap_bytes(&self) -> u64 {
        self.segments
            .iter()
            .map(|s| {
                s.queues
                    .iter()
                    .map(|(_, o)| o.capacity() * 4 + 32)
                    .sum::<usize>()
                    + 64
            })
            .sum::<usize>() as u64
            + self.times.capacity() as u64 * 24
    }

    /// Total live (message, queue) pairs.
    pub fn message_count(&self) -> usize {
        self.queues.iter().map(|(_, n)| n).sum()
    }

    /// Pass 2: reads the segments holding live messages, in order, and calls `each` once
    /// per stored message that some queue still holds, in ascending id order, with the
    /// queues holding it (queue key, times delivered before: 0 for none, so redelivered
    /// when above 0). At most one segment is in memory
    /// at a time. A segment that vanished or no longer reads is logged and skipped (never
    /// a panic, never an error that stops the broker).
    pub fn stream(self, mut each: impl FnMut(&RecoveredRecord<'_>, &[(&str, u16)])) {
        let Recovered {
            dir,
            queues: names,
            segments,
            times,
            io,
        } = self;
        let mut holders: Vec<(&str, u16)> = Vec::new();
        for seg in segments {
            let want: usize = seg.queues.iter().map(|(_, o)| o.len()).sum();
            let mut reader = match segment::Reader::open(&dir, seg.segno, seg.end, io.clone())
                .and_then(|mut r| r.header().map(|h| (r, h)))
            {
                Ok((r, Some(first))) if first == seg.first_id => r,
                Ok(_) => {
                    tracing::warn!(
                        segment = seg.segno,
                        lost = want,
                        "message store: a segment with live messages changed since start-up \
                         (header differs); its messages are skipped"
                    );
                    continue;
                }
                Err(e) => {
                    tracing::warn!(
                        segment = seg.segno,
                        error = %e,
                        lost = want,
                        "message store: a segment with live messages could not be read \
                         again; its messages are skipped"
                    );
                    continue;
                }
            };
            // Every live (offset, queue) pair of this segment, in offset order; the
            // offsets of each message come together.
            let mut live: Vec<(u32, u32)> = Vec::with_capacity(want);
            for (q, offs) in seg.queues {
                live.extend(offs.into_iter().map(|o| (o, q)));
            }
            live.sort_unstable_by_key(|&(o, q)| (o & !DELIVERED, q));
            let mut at = 0; // next unmatched entry of `live`
            let mut handed = 0usize; // pairs handed out
            while at < live.len() {
                let pos = reader.pos();
                let rec = match reader.next() {
                    Ok(Next::Record(rec, _)) => rec,
                    Ok(Next::End) => break,
                    Ok(Next::Torn(why) | Next::Bad(why)) => {
                        tracing::warn!(
                            segment = seg.segno,
                            offset = pos,
                            reason = why,
                            "message store: a segment no longer reads as it did at start-up; \
                             the rest of it is skipped"
                        );
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(
                            segment = seg.segno,
                            offset = pos,
                            error = %e,
                            "message store: reading a segment again failed; the rest of it \
                             is skipped"
                        );
                        break;
                    }
                };
                let Record::Message {
                    id,
                    exchange,
                    routing_key,
                    properties,
                    body,
                    ..
                } = rec
                else {
                    continue;
                };
                let Some(off) = id
                    .checked_sub(seg.first_id)
                    .and_then(|o| u32::try_from(o).ok())
                else {
                    continue;
                };
                // Entries below `off` name messages not found where they should be.
                while live.get(at).is_some_and(|&(o, _)| o & !DELIVERED < off) {
                    at += 1;
                }
                holders.clear();
                while let Some(&(o, q)) = live.get(at).filter(|&&(o, _)| o & !DELIVERED == off) {
                    let name = names.get(q as usize).map_or("", |(k, _)| &**k);
                    let delivered = match o & DELIVERED != 0 {
                        true => times.get(&(q, id)).copied().unwrap_or(1),
                        false => 0,
                    };
                    holders.push((name, delivered));
                    at += 1;
                }
                handed += holders.len();
                if !holders.is_empty() {
                    let rec = RecoveredRecord {
                        id,
                        exchange,
                        routing_key,
                        properties,
                        body,
                    };
                    io.recovered(1);
                    each(&rec, &holders);
                }
            }
            if handed < want {
                tracing::warn!(
                    segment = seg.segno,
                    lost = want - handed,
                    "message store: live messages not found again in their segment; skipped"
                );
            }
        }
    }
}
