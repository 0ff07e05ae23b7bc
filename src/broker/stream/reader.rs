//! `StreamReader`: one consumer's cursor through a stream, entry by entry, from disk.
//!
//! Made by `StreamLog::reader`, used by the AMQP side on a blocking thread. It reads
//! whole chunks through a `ChunkSource` (a buffer of at most ~256 KiB or one chunk) and
//! hands out entries as slices of the chunk (no copy). It sees only what the appender has
//! published (never a chunk half written), follows the log from segment to segment, and
//! when retention deleted the segment it was about to read it moves on to the first one
//! retained. It takes only the log's metadata lock, briefly, when it needs a new chunk.

use super::chunks::{ChunkSource, Next};
use super::format::{Entries, CHUNK_HEADER};
use super::index;
use super::log::{destroyed, StreamLog};
use super::Entry;
use bytes::Bytes;
use std::io;

/// Reads entries in order from an offset. One per consumer; Send.
#[derive(Debug)]
pub struct StreamReader {
    log: StreamLog,
    /// The offset `next()` returns next.
    next: u64,
    /// The segment being read and its file.
    base: u64,
    source: Option<ChunkSource>,
    chunk: Option<Chunk>,
}

/// The chunk being handed out entry by entry.
#[derive(Debug)]
struct Chunk {
    bytes: Bytes,
    /// Offset of the next entry in it, its position in the body, entries left.
    offset: u64,
    at: usize,
    left: u32,
}

impl StreamReader {
    pub(crate) fn new(log: StreamLog, from: u64) -> io::Result<Self> {
        let mut r = StreamReader {
            log,
            next: from,
            base: 0,
            source: None,
            chunk: None,
        };
        r.locate()?;
        Ok(r)
    }

    /// The next entry, or `None` at the end of what is written now (call again after
    /// more was appended). An `InvalidData` error means a damaged chunk on disk;
    /// `NotFound`, that the stream was deleted.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> io::Result<Option<Entry>> {
        loop {
            if let Some(entry) = self.next_in_chunk() {
                return Ok(Some(entry));
            }
            let (limit, sealed) = match self.visible() {
                Some(v) => v,
                None => {
                    // Deleted under us by retention (or the stream is gone).
                    self.locate()?;
                    continue;
                }
            };
            let Some(source) = self.source.as_mut() else {
                return Ok(None);
            };
            match source.next_chunk(limit, self.next)? {
                Next::Chunk(h, _, bytes) => {
                    self.chunk = Some(Chunk {
                        bytes,
                        offset: h.first_offset,
                        at: 0,
                        left: h.count,
                    });
                }
                Next::End if sealed && source.pos() >= limit => self.locate()?,
                Next::End if sealed => return Err(damaged(self.base, "chunk cut short")),
                Next::End => return Ok(None),
                Next::Bad(why) => return Err(damaged(self.base, why)),
            }
        }
    }

    /// After `next()` said `InvalidData`: moves past the damaged chunk to the next one
    /// the segment's index knows (or to the next segment), so a consumer loses that
    /// chunk's entries but is not stuck. Returns the offset reading goes on from.
    pub fn skip_damaged(&mut self) -> io::Result<u64> {
        let Some(at) = self.source.as_ref().map(|s| s.pos()) else {
            return Ok(self.next);
        };
        let stretch = {
            let meta = self.log.meta();
            meta.segments
                .iter()
                .find(|s| s.base == self.base)
                .map(|seg| {
                    let i = seg.points.partition_point(|p| p.pos <= at);
                    // From the stretch holding `at` to the first record of the next one.
                    let from = i.checked_sub(1).map_or(0, |i| seg.points[i].record);
                    let to = seg.points.get(i).map_or(seg.records, |p| p.record + 1);
                    (from, to, seg.end)
                })
        };
        let Some((from, to, end)) = stretch else {
            self.locate()?;
            return Ok(self.next);
        };
        let records = index::read_range(&self.log.shared.home.open(self.base, true)?, from, to)?;
        match (records.iter().find(|r| r.pos > at), self.source.as_mut()) {
            (Some(r), Some(source)) => {
                self.chunk = None;
                self.next = self.next.max(r.first_offset);
                source.seek(r.pos);
            }
            _ => {
                self.next = self.next.max(end);
                self.locate()?;
            }
        }
        tracing::warn!(home = %self.log.shared.home, segment = self.base, at, resume = self.next,
            "stream reader skipped a damaged chunk");
        Ok(self.next)
    }

    /// The offset the next `next()` returns (when there is one).
    pub fn position(&self) -> u64 {
        self.next
    }

    /// Bytes the reader holds in its buffer (not counting entries handed out).
    pub fn buffered_bytes(&self) -> usize {
        self.source.as_ref().map_or(0, |s| s.buffered())
    }

    /// The next entry of the current chunk at or after `next`.
    fn next_in_chunk(&mut self) -> Option<Entry> {
        let c = self.chunk.as_mut()?;
        let body = &c.bytes[CHUNK_HEADER..];
        let mut entries = Entries::resume(body, c.at, c.left);
        while let Some((ts, range)) = entries.next() {
            let offset = c.offset;
            c.offset += 1;
            if offset < self.next {
                continue;
            }
            (c.at, c.left) = (entries.at(), entries.left());
            self.next = offset + 1;
            let data = c
                .bytes
                .slice(CHUNK_HEADER + range.start..CHUNK_HEADER + range.end);
            return Some(Entry {
                offset,
                timestamp_ms: ts,
                data,
            });
        }
        self.chunk = None;
        None
    }

    /// How far the current segment may be read and whether it is closed; `None` when it
    /// is no longer in the log.
    fn visible(&self) -> Option<(u64, bool)> {
        let meta = self.log.meta();
        let last = meta.segments.back()?.base;
        let seg = meta.segments.iter().find(|s| s.base == self.base)?;
        Some((seg.size, seg.base != last))
    }

    /// Opens the segment holding `next` (clamped into the log) at the nearest sparse
    /// point before it.
    fn locate(&mut self) -> io::Result<()> {
        self.chunk = None;
        // A segment can be deleted between looking it up and opening it: look again.
        for _ in 0..16 {
            let (base, pos) = {
                let meta = self.log.meta();
                if meta.destroyed {
                    return Err(destroyed());
                }
                self.next = self.next.clamp(meta.first_offset(), meta.next_offset());
                let next = self.next;
                let seg = meta
                    .segments
                    .iter()
                    .rev()
                    .find(|s| s.base <= next)
                    .or(meta.segments.front());
                let Some(seg) = seg else {
                    return Err(destroyed());
                };
                (seg.base, seg.seek(next))
            };
            match self.log.shared.home.open(base, false) {
                Ok(file) => {
                    self.base = base;
                    self.source = Some(ChunkSource::new(file, pos));
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::other(
            "stream segments keep disappearing under the reader",
        ))
    }
}

fn damaged(base: u64, why: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("stream segment {base}: {why}"),
    )
}

/// A reader moves to whichever blocking thread serves its consumer.
const _: () = {
    const fn send<T: Send>() {}
    send::<StreamReader>();
};
