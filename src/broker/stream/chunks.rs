//! Reading whole chunks from a segment file in order, through one bounded buffer.
//!
//! Used by `StreamReader` (entries for consumers) and by recovery (checking a segment's
//! tail, rebuilding an index). Reads ahead `READ_AHEAD` bytes at a time but never past
//! the limit the caller gives (what the appender has published), so a chunk being
//! written is never seen half done. Its buffer holds at most `READ_AHEAD` bytes or one
//! chunk (chunks are near 1 MiB unless one entry is larger). Blocking file reads: callers
//! are off the runtime workers.

use super::format::{decode_header, verify, Bad, ChunkHeader, CHUNK_HEADER};
use super::index::read_up_to;
use super::storage::SegFile;
use bytes::{Bytes, BytesMut};
use std::io;

/// Bytes read from the file at a time (when a chunk is smaller).
pub(crate) const READ_AHEAD: usize = 256 * 1024;

/// What `next_chunk` found.
#[derive(Debug)]
pub(crate) enum Next {
    /// A whole, checked chunk: its header, its file position and its bytes (header
    /// included).
    Chunk(ChunkHeader, u64, Bytes),
    /// No whole chunk before the limit: the end of what is written (or a torn tail when
    /// `pos() < limit`).
    End,
    /// Bytes that are not a chunk, at `pos()`.
    Bad(&'static str),
}

#[derive(Debug)]
pub(crate) struct ChunkSource {
    file: SegFile,
    /// File position of `buf[0]`.
    pos: u64,
    buf: BytesMut,
}

impl ChunkSource {
    pub(crate) fn new(file: SegFile, pos: u64) -> Self {
        ChunkSource {
            file,
            pos,
            buf: BytesMut::new(),
        }
    }

    /// The file position of the next chunk.
    pub(crate) fn pos(&self) -> u64 {
        self.pos
    }

    /// Goes on reading from `pos` (dropping what is buffered).
    pub(crate) fn seek(&mut self, pos: u64) {
        self.buf = BytesMut::new();
        self.pos = pos;
    }

    /// Bytes held in the buffer (for the bounded-memory tests).
    pub(crate) fn buffered(&self) -> usize {
        self.buf.capacity()
    }

    /// The next whole chunk that ends before `limit`, skipping (unread, unchecked)
    /// chunks whose entries all lie before offset `skip_below`.
    pub(crate) fn next_chunk(&mut self, limit: u64, skip_below: u64) -> io::Result<Next> {
        loop {
            if !self.fill(CHUNK_HEADER, limit)? {
                return Ok(Next::End);
            }
            let header = match decode_header(&self.buf) {
                Ok(h) => h,
                Err(Bad::Short) => return Ok(Next::End),
                Err(Bad::Corrupt(why)) => return Ok(Next::Bad(why)),
            };
            let total = header.total_len();
            if self.pos + total > limit {
                return Ok(Next::End);
            }
            if header.end_offset() <= skip_below {
                self.skip(total);
                continue;
            }
            if !self.fill(total as usize, limit)? {
                return Ok(Next::End);
            }
            if let Err(e) = verify(&header, &self.buf) {
                return Ok(Next::Bad(match e {
                    Bad::Corrupt(why) => why,
                    Bad::Short => "chunk cut short",
                }));
            }
            let at = self.pos;
            let bytes = self.buf.split_to(total as usize).freeze();
            self.pos += total;
            return Ok(Next::Chunk(header, at, bytes));
        }
    }

    /// Moves past `n` bytes from `pos`, dropping what of them is buffered.
    fn skip(&mut self, n: u64) {
        let held = (self.buf.len() as u64).min(n);
        let _ = self.buf.split_to(held as usize);
        if held < n {
            self.buf.clear();
        }
        self.pos += n;
    }

    /// Makes the buffer hold at least `need` bytes, reading ahead up to `limit`; false
    /// when the file (up to `limit`) has fewer.
    fn fill(&mut self, need: usize, limit: u64) -> io::Result<bool> {
        if self.buf.len() >= need {
            return Ok(true);
        }
        let loaded_end = self.pos + self.buf.len() as u64;
        let available = limit.saturating_sub(loaded_end);
        let want = (need - self.buf.len()) as u64;
        if available < want {
            return Ok(false);
        }
        // Read ahead past what is needed, but only up to the limit and one buffer.
        let take = available.min(want.max(READ_AHEAD as u64)) as usize;
        if self.buf.capacity() - self.buf.len() < take && self.buf.is_empty() {
            // Start over rather than keep growing an allocation the entries handed
            // out may still share.
            self.buf = BytesMut::with_capacity(take);
        }
        let old = self.buf.len();
        self.buf.resize(old + take, 0);
        let got = read_up_to(&self.file, &mut self.buf[old..], loaded_end)?;
        self.buf.truncate(old + got);
        Ok(self.buf.len() >= need)
    }
}
