//! Browsing a queue: its ready messages in delivery order, from position N, looked at
//! without being taken. Nothing about the queue changes: no message leaves or comes
//! back, `redelivered` and delivery counts stay as they are, no TTL is applied, paged
//! messages stay paged, statistics count nothing.
//!
//! Called by the management API (`GET /api/queues/{vhost}/{name}/browse`). Under the
//! queue lock `Queue::browse` only copies what it needs (`Ready::view`: a reference
//! count per message in memory, a `FileView` per page file, a copy of the page write
//! buffer) and lets go; `Browse::read` then decodes the paged records, reading page files
//! on the caller's thread, which must be a blocking one (never a runtime worker, never
//! under a lock). A page file deleted meanwhile is still read through its open handle.

use super::paging::decode;
use super::{as_delivered, Queue, Queued};
use crate::broker::memory::pagedir::{record_len, FileView};

/// The most messages one browse covers (a search's scan included): bounds what is
/// copied under the queue lock and what is read from disk.
pub const MAX_BROWSE: usize = 100_000;

/// Page file bytes read at once while walking records.
const BLOCK: usize = 1024 * 1024;

/// A stretch of ready messages in delivery order.
pub(super) enum Part {
    /// Messages in memory, the first at this position.
    Memory(usize, Vec<Queued>),
    /// Paged messages of one priority level's tail; its first message at this position.
    Paged(usize, TailView),
}

/// A tail's messages as `Tail::view` saw them.
#[derive(Default)]
pub struct TailView {
    /// (index in the tail of the file's first unread message, messages of it to skip,
    /// the file).
    pub(super) files: Vec<(usize, usize, FileView)>,
    /// The write buffer's records, the same way.
    pub(super) buffer: Option<(usize, usize, Vec<u8>)>,
}

/// What a browse saw under the lock, to be read off it.
pub struct Browse {
    /// Ready messages at that moment.
    pub ready: usize,
    parts: Vec<Part>,
    quorum: bool,
    /// One past the last position covered.
    end: usize,
}

impl Queue {
    /// Messages `from..from + take` (at most `MAX_BROWSE`) of the ready ones, to read
    /// with `Browse::read`. Changes nothing.
    pub fn browse(&self, from: usize, take: usize) -> Browse {
        let take = take.min(MAX_BROWSE);
        let st = self.lock();
        let parts = match st.deleted {
            true => Vec::new(),
            false => st.ready.view(from, take),
        };
        Browse {
            ready: st.ready.len(),
            parts,
            quorum: self.quorum,
            end: from.saturating_add(take),
        }
    }
}

impl Browse {
    /// Calls `visit` with each message and its position, in delivery order, as a
    /// consumer would receive it (quorum queues: with x-delivery-count), until it
    /// returns false or the range ends. Reads page files: call it on a blocking thread.
    pub fn read(&self, visit: &mut dyn FnMut(usize, Queued) -> bool) {
        let end = self.end;
        let quorum = self.quorum;
        let mut shown = |at: usize, item: Queued| at < end && visit(at, as_delivered(quorum, item));
        for part in &self.parts {
            let more = match part {
                Part::Memory(first, items) => items
                    .iter()
                    .enumerate()
                    .all(|(i, q)| shown(first + i, q.clone())),
                Part::Paged(first, tail) => tail.read(&mut |i, q| shown(first + i, q)),
            };
            if !more {
                return;
            }
        }
    }
}

impl TailView {
    /// Visits the records in order with their index in the tail; false once `visit`
    /// said stop. A damaged file loses the rest of its records for this look only
    /// (the positions after it stay right: they come from the message counts).
    fn read(&self, visit: &mut dyn FnMut(usize, Queued) -> bool) -> bool {
        for (base, skip, file) in &self.files {
            if !read_file(*base, *skip, file, visit) {
                return false;
            }
        }
        let Some((base, skip, buffer)) = &self.buffer else {
            return true;
        };
        let mut pos = 0;
        let mut n = 0;
        while pos < buffer.len() {
            let Some(len) = record_len(&buffer[pos..]) else {
                break;
            };
            if n >= *skip {
                let Some((item, _)) = buffer.get(pos..).and_then(decode) else {
                    break;
                };
                if !visit(base + n, item) {
                    return false;
                }
            }
            pos += len;
            n += 1;
        }
        true
    }
}

/// A file's records from its first unread one, `skip` of them left out.
fn read_file(
    base: usize,
    skip: usize,
    file: &FileView,
    visit: &mut dyn FnMut(usize, Queued) -> bool,
) -> bool {
    let mut block = Block::default();
    let mut at = file.start;
    for n in 0..file.messages {
        let Some(len) = block.bytes(file, at, 4).and_then(record_len) else {
            return true;
        };
        if n >= skip {
            let Some((item, _)) = block.bytes(file, at, len).and_then(decode) else {
                tracing::warn!(
                    "browse: a page file record does not decode; skipping the rest of the file"
                );
                return true;
            };
            if !visit(base + n, item) {
                return false;
            }
        }
        at += len as u64;
    }
    true
}

/// The part of a page file last read: records are walked through it, a block at a time.
#[derive(Default)]
struct Block {
    start: u64,
    data: Vec<u8>,
}

impl Block {
    /// `need` bytes at `at`, reading the next block (or the whole record when it is
    /// larger) when they are not here; None past the file's end or when reading fails.
    fn bytes(&mut self, file: &FileView, at: u64, need: usize) -> Option<&[u8]> {
        let upto = at.checked_add(need as u64)?;
        let here = at >= self.start && upto <= self.start + self.data.len() as u64;
        if !here {
            if upto > file.end {
                return None;
            }
            let len = (file.end - at).min(need.max(BLOCK) as u64) as usize;
            self.data = file
                .read_at(at, len)
                .map_err(|e| tracing::warn!(error = %e, "browse: cannot read a page file"))
                .ok()?;
            self.start = at;
        }
        let from = (at - self.start) as usize;
        self.data.get(from..from + need)
    }
}
