//! A segment's index file: one small record per chunk (offset, timestamp, file
//! position), so opening a log does not read its segments and a timestamp is found
//! without scanning entries.
//!
//! Written by the appender after each chunk, read by recovery (`load`) and by
//! `StreamLog::resolve` for timestamps (`read_range`). The index is derived data: a
//! missing, short or corrupt one is rebuilt from its segment, so it is synced only when
//! its segment is closed. Decoding never trusts the file.
//!
//! ```text
//! index  = "WSTRIDX1" (8) record*
//! record = first_offset u64 | timestamp i64 | pos u64 | count u32 | crc32c(first 28) u32
//! ```

use super::format::{u32_at, u64_at, ChunkHeader};
use super::storage::ReadAt;
use crc32c::crc32c;
use std::io;

pub(crate) const INDEX_MAGIC: [u8; 8] = *b"WSTRIDX1";
pub(crate) const INDEX_HEADER: u64 = 8;
pub(crate) const RECORD: usize = 32;

/// One chunk as the index knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IndexRecord {
    pub first_offset: u64,
    pub timestamp: i64,
    pub pos: u64,
    pub count: u32,
}

impl IndexRecord {
    pub(crate) fn of(header: &ChunkHeader, pos: u64) -> Self {
        IndexRecord {
            first_offset: header.first_offset,
            timestamp: header.timestamp,
            pos,
            count: header.count,
        }
    }

    pub(crate) fn end_offset(&self) -> u64 {
        self.first_offset + self.count as u64
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        let start = out.len();
        out.extend_from_slice(&self.first_offset.to_le_bytes());
        out.extend_from_slice(&self.timestamp.to_le_bytes());
        out.extend_from_slice(&self.pos.to_le_bytes());
        out.extend_from_slice(&self.count.to_le_bytes());
        let crc = crc32c(&out[start..]);
        out.extend_from_slice(&crc.to_le_bytes());
    }

    fn decode(b: &[u8]) -> Option<Self> {
        let b = b.get(..RECORD)?;
        if crc32c(&b[..28]) != u32_at(b, 28) {
            return None;
        }
        Some(IndexRecord {
            first_offset: u64_at(b, 0),
            timestamp: u64_at(b, 8) as i64,
            pos: u64_at(b, 16),
            count: u32_at(b, 24),
        })
    }
}

/// The file position of record number `n`.
pub(crate) fn record_pos(n: u64) -> u64 {
    INDEX_HEADER + n * RECORD as u64
}

/// Reads an index file in blocks and hands its longest good prefix to `each`: records
/// that decode, with consecutive offsets from `base` and increasing positions. What
/// follows the prefix is ignored (the caller rebuilds it from the segment). A file
/// without the magic has no records. Returns how many records were good.
pub(crate) fn load(
    file: &impl ReadAt,
    base: u64,
    mut each: impl FnMut(IndexRecord),
) -> io::Result<u64> {
    let mut magic = [0u8; 8];
    if read_up_to(file, &mut magic, 0)? < magic.len() || magic != INDEX_MAGIC {
        return Ok(0);
    }
    let mut block = vec![0u8; 2048 * RECORD];
    let (mut n, mut expect, mut last_pos) = (0u64, base, None::<u64>);
    loop {
        let got = read_up_to(file, &mut block, record_pos(n))?;
        let mut whole = 0;
        for raw in block[..got].chunks_exact(RECORD) {
            let Some(r) = IndexRecord::decode(raw) else {
                return Ok(n);
            };
            if r.first_offset != expect || r.count == 0 || last_pos.is_some_and(|p| r.pos <= p) {
                return Ok(n);
            }
            expect = r.end_offset();
            last_pos = Some(r.pos);
            each(r);
            n += 1;
            whole += 1;
        }
        if whole * RECORD < block.len() {
            return Ok(n);
        }
    }
}

/// Reads records `from..to` (record numbers) of an index file; stops early at a record
/// that does not decode.
pub(crate) fn read_range(file: &impl ReadAt, from: u64, to: u64) -> io::Result<Vec<IndexRecord>> {
    let n = to.saturating_sub(from) as usize;
    let mut bytes = vec![0u8; n * RECORD];
    let got = read_up_to(file, &mut bytes, record_pos(from))?;
    Ok(bytes[..got]
        .chunks_exact(RECORD)
        .map_while(IndexRecord::decode)
        .collect())
}

/// Reads as much of `buf` as the file has from `pos`.
pub(crate) fn read_up_to(file: &impl ReadAt, buf: &mut [u8], pos: u64) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match file.read_at(&mut buf[got..], pos + got as u64) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}
