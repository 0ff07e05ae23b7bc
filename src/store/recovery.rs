//! Start-up replay: reads every segment in order, rebuilds the index of live messages and
//! returns, per queue, the messages still held, in publish order, with their redelivered
//! flags.
//!
//! Called once by `StoreHandle::open`, before the writer thread exists, with the data
//! directory already locked. Damage never stops it: a torn or corrupt record in the last
//! segment truncates the file there; in an earlier segment the rest of that segment is
//! skipped; a segment whose header is unreadable is renamed `*.seg.corrupt`. Each case is
//! logged with `tracing::warn!` saying what was dropped. It returns an error only when the
//! directory itself cannot be read or written.

use super::index::{Carried, Index};
use super::record::{self, Next, Record};
use super::segment;
use super::{RecoveredMessage, StoredMessage};
use bytes::Bytes;
use std::collections::{HashMap, HashSet};
use std::hash::{BuildHasherDefault, Hasher};
use std::io;
use std::path::Path;

/// What a replay produced.
pub(crate) struct Replayed {
    pub(crate) index: Index,
    pub(crate) queues: HashMap<String, Vec<RecoveredMessage>>,
    /// The first id not used by any record or header seen.
    pub(crate) next_id: u64,
    /// The number to give the next segment.
    pub(crate) next_segno: u64,
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

type IdMap<V> = HashMap<u64, V, BuildHasherDefault<IdHasher>>;
type IdSet = HashSet<(u32, u64), BuildHasherDefault<IdHasher>>;

struct Pending {
    msg: StoredMessage,
    /// Queues still holding it; dropped from memory at zero.
    holders: u32,
}

pub(crate) fn replay(dir: &Path) -> io::Result<Replayed> {
    let (segnos, highest) = segment::list(dir)?;
    let mut ix = Index::default();
    let mut pending: IdMap<Pending> = IdMap::default();
    let mut delivered = IdSet::default();
    let mut next_id: u64 = 1;
    let last = segnos.last().copied();

    for &segno in &segnos {
        let is_last = Some(segno) == last;
        let data = segment::read(dir, segno)?;
        let first_id = match record::decode_header(&data) {
            Some(id) if id >= next_id => id,
            found => {
                if is_last && data.len() < record::HEADER_LEN {
                    // Created but its header never reached the disk: nothing was in it.
                    tracing::warn!(
                        segment = segno,
                        bytes = data.len(),
                        "removing a segment with a torn header"
                    );
                    std::fs::remove_file(segment::path(dir, segno))?;
                } else {
                    let to = segment::set_aside(dir, segno)?;
                    tracing::warn!(
                        segment = segno,
                        bytes = data.len(),
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
        let mut pos = record::HEADER_LEN;
        let mut counts = [0u64; 4];
        let stop = loop {
            match record::next(&data, pos) {
                Next::Record(rec, after) => {
                    if !apply(
                        &mut ix,
                        segno,
                        rec,
                        &mut pending,
                        &mut delivered,
                        &mut next_id,
                        &mut counts,
                    ) {
                        break Some("message id out of order");
                    }
                    pos = after;
                }
                Next::End => break None,
                Next::Torn(why) | Next::Bad(why) => break Some(why),
            }
        };
        tracing::debug!(
            segment = segno,
            messages = counts[0],
            acks = counts[1],
            "segment replayed"
        );
        if let Some(why) = stop {
            let dropped = data.len() - pos;
            if is_last {
                tracing::warn!(
                    segment = segno,
                    offset = pos,
                    dropped_bytes = dropped,
                    reason = why,
                    "torn or corrupt tail in the last segment; truncating it there"
                );
                segment::truncate(dir, segno, pos as u64)?;
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

    let mut queues = HashMap::new();
    for q in ix.queues_with_messages() {
        let list: Vec<RecoveredMessage> = ix
            .live_ids(q)
            .into_iter()
            .filter_map(|id| {
                let redelivered = delivered.contains(&(q, id));
                // Moved out at its last queue; cloned (two short strings, two refcounts)
                // for the others.
                let p = pending.get_mut(&id)?;
                p.holders = p.holders.saturating_sub(1);
                let msg = if p.holders == 0 {
                    pending.remove(&id)?.msg
                } else {
                    p.msg.clone()
                };
                Some(RecoveredMessage {
                    id,
                    msg,
                    redelivered,
                })
            })
            .collect();
        if !list.is_empty() {
            queues.insert(ix.queue_name(q).to_owned(), list);
        }
    }
    let next_segno = highest.max(last.unwrap_or(0)) + 1;
    Ok(Replayed {
        index: ix,
        queues,
        next_id,
        next_segno,
    })
}

/// Applies one record to the index exactly as the writer did when it appended it. False
/// when the record contradicts the segment (a message id that does not fit), which is
/// treated like a corrupt record.
fn apply(
    ix: &mut Index,
    segno: u64,
    rec: Record<'_>,
    pending: &mut IdMap<Pending>,
    delivered: &mut IdSet,
    next_id: &mut u64,
    counts: &mut [u64; 4],
) -> bool {
    match rec {
        Record::Message {
            id,
            exchange,
            routing_key,
            queues,
            properties,
            body,
        } => {
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
            // Copies out of the segment buffer so that one surviving message does not pin
            // a whole 64 MiB segment in memory.
            let msg = StoredMessage {
                exchange: exchange.to_owned(),
                routing_key: routing_key.to_owned(),
                properties: Bytes::copy_from_slice(properties),
                body: Bytes::copy_from_slice(body),
            };
            let holders = qs.len() as u32;
            if holders > 0 {
                pending.insert(id, Pending { msg, holders });
            }
        }
        Record::Ack { queue, id } => {
            counts[1] += 1;
            let q = ix.queue_id(queue);
            if ix.settle(q, id) {
                release(pending, id);
                delivered.remove(&(q, id));
            }
            ix.note(segno, Carried::Ack(q, id));
        }
        Record::Delivered { queue, id } => {
            counts[2] += 1;
            let q = ix.queue_id(queue);
            if ix.is_live(q, id) {
                delivered.insert((q, id));
                ix.note(segno, Carried::Delivered(q, id));
            }
        }
        Record::Drop { queue, up_to } => {
            counts[3] += 1;
            let q = ix.queue_id(queue);
            ix.drop_queue(q, up_to, |id| {
                release(pending, id);
                delivered.remove(&(q, id));
            });
            ix.note(segno, Carried::Drop(q, up_to));
        }
    }
    true
}

fn release(pending: &mut IdMap<Pending>, id: u64) {
    if let Some(p) = pending.get_mut(&id) {
        p.holders = p.holders.saturating_sub(1);
        if p.holders == 0 {
            pending.remove(&id);
        }
    }
}
