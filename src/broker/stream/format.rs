//! The byte layout of a stream's segment files: the file header and chunks of entries.
//!
//! Called by the appender (encode) and by recovery and readers (decode). Pure functions
//! over byte slices: no I/O, no state. Decoding never trusts its input: every length is
//! checked against the bytes there are, and what does not parse is `Bad`, never a panic.
//!
//! ```text
//! segment = "WSTRSEG1" (8) chunk*
//! chunk   = magic "WSCH" (4) | crc u32 | first_offset u64 | timestamp i64 | count u32
//!           | body_len u32                                        (header, 32 bytes)
//!           | body: count x ( len u32 | timestamp i64 | data )
//!           crc = crc32c(header bytes 8..32, body)
//! ```
//! Integers little-endian. A chunk's timestamp is its newest entry's (what retention by
//! age and `StartAt::Timestamp` look at); each entry keeps its own as well. A chunk's body
//! is kept near `CHUNK_TARGET` bytes unless one entry alone is larger, which is what
//! bounds a reader's buffer.

use crc32c::crc32c;

pub(crate) const SEGMENT_MAGIC: [u8; 8] = *b"WSTRSEG1";
pub(crate) const SEGMENT_HEADER: u64 = 8;
const CHUNK_MAGIC: [u8; 4] = *b"WSCH";
pub(crate) const CHUNK_HEADER: usize = 32;
/// Per entry in a body: length and timestamp.
pub(crate) const ENTRY_HEADER: usize = 12;
/// A batch is cut into chunks of about this many body bytes.
pub(crate) const CHUNK_TARGET: usize = 1024 * 1024;
/// The largest body a chunk can have: one entry of the largest size.
pub(crate) const MAX_BODY: usize = super::MAX_ENTRY_BYTES + ENTRY_HEADER;

/// A chunk header as decoded (its checksum not yet checked against the body).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChunkHeader {
    pub crc: u32,
    pub first_offset: u64,
    pub timestamp: i64,
    pub count: u32,
    pub body_len: u32,
}

impl ChunkHeader {
    /// Header plus body.
    pub(crate) fn total_len(&self) -> u64 {
        CHUNK_HEADER as u64 + self.body_len as u64
    }

    /// The offset after this chunk's last entry.
    pub(crate) fn end_offset(&self) -> u64 {
        self.first_offset + self.count as u64
    }
}

/// Why bytes are not a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bad {
    /// Fewer bytes than the header says (a torn write, or the end of what is visible).
    Short,
    /// Not a chunk: wrong magic, impossible lengths, checksum mismatch, a body whose
    /// entries do not add up.
    Corrupt(&'static str),
}

/// Decodes a chunk header from the first `CHUNK_HEADER` bytes.
pub(crate) fn decode_header(bytes: &[u8]) -> Result<ChunkHeader, Bad> {
    let h = bytes.get(..CHUNK_HEADER).ok_or(Bad::Short)?;
    if h[..4] != CHUNK_MAGIC {
        return Err(Bad::Corrupt("bad chunk magic"));
    }
    let header = ChunkHeader {
        crc: u32_at(h, 4),
        first_offset: u64_at(h, 8),
        timestamp: u64_at(h, 16) as i64,
        count: u32_at(h, 24),
        body_len: u32_at(h, 28),
    };
    let min_body = header.count as u64 * ENTRY_HEADER as u64;
    if header.count == 0 || (header.body_len as u64) < min_body {
        return Err(Bad::Corrupt("chunk counts do not add up"));
    }
    if header.body_len as usize > MAX_BODY {
        return Err(Bad::Corrupt("chunk body too large"));
    }
    Ok(header)
}

/// Checks a whole chunk (`bytes` starts at its header and holds at least all of it)
/// and that its entries fill the body exactly.
pub(crate) fn verify(header: &ChunkHeader, bytes: &[u8]) -> Result<(), Bad> {
    let total = header.total_len() as usize;
    let chunk = bytes.get(..total).ok_or(Bad::Short)?;
    if crc32c(&chunk[8..]) != header.crc {
        return Err(Bad::Corrupt("chunk checksum mismatch"));
    }
    let mut entries = Entries::new(&chunk[CHUNK_HEADER..], header.count);
    for _ in 0..header.count {
        entries
            .next()
            .ok_or(Bad::Corrupt("chunk entries overrun the body"))?;
    }
    if entries.rest != 0 {
        return Err(Bad::Corrupt("chunk body longer than its entries"));
    }
    Ok(())
}

/// The entries of a verified body: (timestamp, byte range of the data in the body).
pub(crate) struct Entries<'a> {
    body: &'a [u8],
    at: usize,
    left: u32,
    /// Body bytes after the last entry taken (0 once all are taken from a good body).
    pub rest: usize,
}

impl<'a> Entries<'a> {
    pub(crate) fn new(body: &'a [u8], count: u32) -> Self {
        Self::resume(body, 0, count)
    }

    /// Continues after `at` bytes of the body with `left` entries to go.
    pub(crate) fn resume(body: &'a [u8], at: usize, left: u32) -> Self {
        Entries {
            body,
            at,
            left,
            rest: body.len().saturating_sub(at),
        }
    }

    pub(crate) fn at(&self) -> usize {
        self.at
    }

    pub(crate) fn left(&self) -> u32 {
        self.left
    }
}

impl Iterator for Entries<'_> {
    type Item = (i64, std::ops::Range<usize>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        let head = self.body.get(self.at..self.at + ENTRY_HEADER)?;
        let len = u32_at(head, 0) as usize;
        let ts = u64_at(head, 4) as i64;
        let start = self.at + ENTRY_HEADER;
        let end = start.checked_add(len).filter(|e| *e <= self.body.len())?;
        self.at = end;
        self.left -= 1;
        self.rest = self.body.len() - end;
        Some((ts, start..end))
    }
}

/// Appends one chunk holding `entries` to `out`; they get offsets from `first_offset`.
pub(crate) fn encode_chunk(out: &mut Vec<u8>, first_offset: u64, entries: &[(i64, &[u8])]) {
    let start = out.len();
    let body_len: usize = entries.iter().map(|(_, d)| ENTRY_HEADER + d.len()).sum();
    let timestamp = entries.iter().map(|(t, _)| *t).max().unwrap_or(0);
    out.reserve(CHUNK_HEADER + body_len);
    out.extend_from_slice(&CHUNK_MAGIC);
    out.extend_from_slice(&[0; 4]); // the checksum, filled in below
    out.extend_from_slice(&first_offset.to_le_bytes());
    out.extend_from_slice(&timestamp.to_le_bytes());
    out.extend_from_slice(&(entries.len() as u32).to_le_bytes());
    out.extend_from_slice(&(body_len as u32).to_le_bytes());
    for (ts, data) in entries {
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(&ts.to_le_bytes());
        out.extend_from_slice(data);
    }
    let crc = crc32c(&out[start + 8..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Cuts a batch into chunks: consecutive runs whose bodies stay within `CHUNK_TARGET`
/// (a run holds at least one entry). Returns the runs' lengths.
pub(crate) fn cut_chunks<T>(entries: &[(i64, T)], len: impl Fn(&T) -> usize) -> Vec<usize> {
    let mut runs = Vec::new();
    let (mut n, mut bytes) = (0usize, 0usize);
    for (_, d) in entries {
        let size = ENTRY_HEADER + len(d);
        if n > 0 && bytes + size > CHUNK_TARGET {
            runs.push(n);
            (n, bytes) = (0, 0);
        }
        n += 1;
        bytes += size;
    }
    if n > 0 {
        runs.push(n);
    }
    runs
}

pub(crate) fn u32_at(b: &[u8], at: usize) -> u32 {
    let mut x = [0u8; 4];
    x.copy_from_slice(&b[at..at + 4]);
    u32::from_le_bytes(x)
}

pub(crate) fn u64_at(b: &[u8], at: usize) -> u64 {
    let mut x = [0u8; 8];
    x.copy_from_slice(&b[at..at + 8]);
    u64::from_le_bytes(x)
}
