//! Segment files on disk: naming, listing, the open segment being appended to, and reading
//! a segment back record by record through a bounded buffer.
//!
//! Called by recovery (list, read, truncate, rename damaged files) and by the writer thread
//! (create, append, sync, unlink). Knows nothing about which messages are live (that is
//! `index`) nor about the record layout beyond the header (that is `record`). Never
//! rewrites bytes in the middle of a file: segments are append-only, and the only other
//! changes are truncating a torn tail, renaming a damaged file aside, and unlinking.

use super::record;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// A segment is closed and a new one started once it holds this many bytes.
pub(crate) const SEGMENT_BYTES: u64 = 64 << 20;
/// Pending bytes are written out (without syncing) once the buffer holds this much.
pub(crate) const WRITE_CHUNK: usize = 1 << 20;

pub(crate) fn path(dir: &Path, segno: u64) -> PathBuf {
    dir.join(format!("{segno:010}.seg"))
}

/// Segment numbers present in `dir`, ascending, and the highest number seen in any file
/// name there (including files renamed aside as damaged), so numbers are never reused.
pub(crate) fn list(dir: &Path) -> io::Result<(Vec<u64>, u64)> {
    let mut segs = Vec::new();
    let mut highest = 0;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some((num, rest)) = name.split_once('.') else {
            continue;
        };
        let Ok(n) = num.parse::<u64>() else { continue };
        highest = highest.max(n);
        if rest == "seg" {
            segs.push(n);
        }
    }
    segs.sort_unstable();
    Ok((segs, highest))
}

/// Makes directory entries (created, renamed or removed files) durable.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Moves a damaged segment out of the way, keeping it for inspection.
pub(crate) fn set_aside(dir: &Path, segno: u64) -> io::Result<PathBuf> {
    let from = path(dir, segno);
    let to = dir.join(format!("{segno:010}.seg.corrupt"));
    fs::rename(&from, &to)?;
    Ok(to)
}

/// Cuts a segment back to its first `len` bytes and makes that durable.
pub(crate) fn truncate(dir: &Path, segno: u64, len: u64) -> io::Result<()> {
    let f = OpenOptions::new().write(true).open(path(dir, segno))?;
    f.set_len(len)?;
    f.sync_all()
}

/// Reads a segment's records in order through a buffer of about [`READ_CHUNK`] bytes (more
/// only while one record is larger), so recovery never holds a whole segment.
pub(crate) struct Reader {
    file: io::Take<File>,
    /// Bytes read and not yet consumed start at `start`.
    buf: Vec<u8>,
    start: usize,
    /// File offset of `buf[0]`.
    base: u64,
    /// Bytes to read in all: the file's length at open, or less if limited.
    len: u64,
    eof: bool,
}

/// What a [`Reader`] reads from the file at a time.
pub(crate) const READ_CHUNK: usize = 1 << 20;

impl Reader {
    /// Opens segment `segno`, reading no further than `limit` bytes into it.
    pub(crate) fn open(dir: &Path, segno: u64, limit: u64) -> io::Result<Reader> {
        let file = File::open(path(dir, segno))?;
        let len = file.metadata()?.len().min(limit);
        Ok(Reader {
            file: file.take(limit),
            buf: Vec::new(),
            start: 0,
            base: 0,
            len,
            eof: false,
        })
    }

    /// The header's `first_id` (`None` if short or damaged). Call once, first.
    pub(crate) fn header(&mut self) -> io::Result<Option<u64>> {
        let have = self.fill(record::HEADER_LEN)?;
        let id = record::decode_header(&self.buf[self.start..self.start + have]);
        self.start += have;
        Ok(id)
    }

    /// The file offset of the next record.
    pub(crate) fn pos(&self) -> u64 {
        self.base + self.start as u64
    }

    /// The record at [`Reader::pos`], decoded exactly as `record::next` would decode it
    /// from the whole file; a record's offset is that of the byte after it.
    pub(crate) fn next(&mut self) -> io::Result<record::Next<'_>> {
        let have = self.fill(record::RECORD_HEAD)?;
        let mut want = have;
        if have == record::RECORD_HEAD {
            let b = &self.buf[self.start..self.start + 4];
            let len = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
            if (1..=record::MAX_RECORD).contains(&len) {
                want = self.fill(record::RECORD_HEAD + len)?;
            }
        }
        let at = self.pos();
        let slice = &self.buf[self.start..self.start + want];
        Ok(match record::next(slice, 0) {
            record::Next::Record(rec, after) => {
                self.start += after;
                record::Next::Record(rec, (at + after as u64) as usize)
            }
            other => other,
        })
    }

    /// Makes `n` unconsumed bytes available if the file has them; returns how many are
    /// (at most `n`).
    fn fill(&mut self, n: usize) -> io::Result<usize> {
        if self.buf.len() - self.start >= n || self.eof {
            return Ok(n.min(self.buf.len() - self.start));
        }
        // Move the unconsumed tail (less than one record) to the front.
        self.buf.drain(..self.start);
        self.base += self.start as u64;
        self.start = 0;
        if self.buf.capacity() > 4 * READ_CHUNK && n <= READ_CHUNK {
            self.buf.shrink_to(READ_CHUNK);
        }
        // A chunk, but no more than the file should still hold (small segments stay cheap).
        let left = self.len.saturating_sub(self.base) as usize;
        let target = n.max(READ_CHUNK.min(left));
        let mut filled = self.buf.len();
        self.buf.resize(target, 0);
        while filled < n {
            match self.file.read(&mut self.buf[filled..]) {
                Ok(0) => {
                    self.eof = true;
                    break;
                }
                Ok(k) => filled += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.buf.truncate(filled);
                    return Err(e);
                }
            }
        }
        self.buf.truncate(filled);
        Ok(n.min(filled))
    }
}

/// The segment being appended to. Records are encoded straight into `buf`; `write_out`
/// hands them to the kernel, `sync` makes them durable.
pub(crate) struct OpenSegment {
    pub(crate) segno: u64,
    file: File,
    pub(crate) buf: Vec<u8>,
    /// Bytes in the file plus bytes still in `buf`.
    pub(crate) len: u64,
    /// Bytes written to the file since the last sync.
    unsynced: bool,
}

impl OpenSegment {
    /// Creates a new segment file with its header, durable (file and directory entry)
    /// before this returns, so the id counter in the header survives a crash.
    pub(crate) fn create(dir: &Path, segno: u64, first_id: u64) -> io::Result<OpenSegment> {
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path(dir, segno))?;
        let mut buf = Vec::with_capacity(WRITE_CHUNK);
        record::encode_header(&mut buf, first_id);
        let mut seg = OpenSegment {
            segno,
            file,
            buf,
            len: record::HEADER_LEN as u64,
            unsynced: false,
        };
        seg.write_out()?;
        seg.sync()?;
        sync_dir(dir)?;
        Ok(seg)
    }

    pub(crate) fn note_appended(&mut self, bytes: usize) {
        self.len += bytes as u64;
    }

    /// Writes the buffered records to the file (no sync).
    pub(crate) fn write_out(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.file.write_all(&self.buf)?;
        self.unsynced = true;
        self.buf.clear();
        // A huge body made the buffer huge; do not keep that memory for small records.
        if self.buf.capacity() > 16 * WRITE_CHUNK {
            self.buf = Vec::with_capacity(WRITE_CHUNK);
        }
        Ok(())
    }

    /// Writes out what is buffered and fdatasyncs, if anything was written since the
    /// last sync.
    pub(crate) fn sync(&mut self) -> io::Result<()> {
        self.write_out()?;
        if self.unsynced {
            self.file.sync_data()?;
            self.unsynced = false;
        }
        Ok(())
    }
}
