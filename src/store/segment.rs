//! Segment files on disk: naming, listing, the open segment being appended to, and reading
//! a segment back record by record through a bounded buffer.
//!
//! Called by recovery (list, read, truncate, rename damaged files) and by the writer thread
//! (create, append, sync, unlink). Knows nothing about which messages are live (that is
//! `index`) nor about the record layout beyond the header (that is `record`). Never
//! rewrites bytes in the middle of a file: segments are append-only, and the only other
//! changes are truncating a torn tail (at recovery, or by the writer after a failed write
//! or sync: `OpenSegment::cut_back`), renaming a damaged file aside, and unlinking.

use super::iostats::IoStats;
use super::record;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
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
    /// The broker's file I/O counters.
    io: std::sync::Arc<IoStats>,
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
    pub(crate) fn open(
        dir: &Path,
        segno: u64,
        limit: u64,
        io: std::sync::Arc<IoStats>,
    ) -> io::Result<Reader> {
        let file = File::open(path(dir, segno))?;
        let len = file.metadata()?.len().min(limit);
        Ok(Reader {
            io,
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
            let (file, buf) = (&mut self.file, &mut self.buf[filled..]);
            match self.io.read(|| file.read(buf)) {
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
    /// Shared with the sync thread while a sync of it is in flight.
    file: std::sync::Arc<File>,
    pub(crate) buf: Vec<u8>,
    /// Bytes in the file plus bytes still in `buf`.
    pub(crate) len: u64,
    /// Bytes written to the file since the last sync.
    unsynced: bool,
    /// The file's length at the last successful sync: everything before it is whole
    /// records, durable. A failed write or sync cuts the file back to it.
    synced_len: u64,
    /// The broker's file I/O counters.
    io: std::sync::Arc<IoStats>,
    /// Failures to inject (tests only; see `faults_tests`).
    #[cfg(test)]
    pub(crate) faults: Option<std::sync::Arc<Faults>>,
}

/// Write and sync failures a test asks for: each counter is how many of the next calls
/// fail. A failed write first writes half its bytes, as a disk that fills mid-write does.
#[cfg(test)]
#[derive(Debug, Default)]
pub(crate) struct Faults {
    pub(crate) writes: std::sync::atomic::AtomicU32,
    pub(crate) syncs: std::sync::atomic::AtomicU32,
}

#[cfg(test)]
impl Faults {
    fn take(n: &std::sync::atomic::AtomicU32) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        n.fetch_update(Relaxed, Relaxed, |v| v.checked_sub(1))
            .is_ok()
    }
}

#[cfg(test)]
fn no_space() -> io::Error {
    io::Error::from_raw_os_error(libc::ENOSPC)
}

impl OpenSegment {
    /// Creates a new segment file with its header, durable (file and directory entry)
    /// before this returns, so the id counter in the header survives a crash.
    /// A file that could not be completed (a full disk) is removed again, so the same
    /// number can be tried later.
    pub(crate) fn create(
        dir: &Path,
        segno: u64,
        first_id: u64,
        io: std::sync::Arc<IoStats>,
    ) -> io::Result<OpenSegment> {
        Self::open_new(dir, segno, first_id, io)?.made_durable(dir)
    }

    /// `create`, with failures injected from the start.
    #[cfg(test)]
    pub(crate) fn create_with(
        dir: &Path,
        segno: u64,
        first_id: u64,
        faults: std::sync::Arc<Faults>,
        io: std::sync::Arc<IoStats>,
    ) -> io::Result<OpenSegment> {
        let mut seg = Self::open_new(dir, segno, first_id, io)?;
        seg.faults = Some(faults);
        seg.made_durable(dir)
    }

    fn open_new(
        dir: &Path,
        segno: u64,
        first_id: u64,
        io: std::sync::Arc<IoStats>,
    ) -> io::Result<OpenSegment> {
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(path(dir, segno))?;
        let mut buf = Vec::with_capacity(WRITE_CHUNK);
        record::encode_header(&mut buf, first_id);
        Ok(OpenSegment {
            segno,
            file: std::sync::Arc::new(file),
            buf,
            len: record::HEADER_LEN as u64,
            unsynced: false,
            synced_len: 0,
            io,
            #[cfg(test)]
            faults: None,
        })
    }

    /// Writes the header and makes file and directory entry durable, or removes the file.
    fn made_durable(mut self, dir: &Path) -> io::Result<OpenSegment> {
        if let Err(e) = self.sync().and_then(|()| sync_dir(dir)) {
            let segno = self.segno;
            drop(self);
            let _ = fs::remove_file(path(dir, segno));
            return Err(e);
        }
        Ok(self)
    }

    pub(crate) fn note_appended(&mut self, bytes: usize) {
        self.len += bytes as u64;
    }

    /// Writes the buffered records to the file (no sync).
    pub(crate) fn write_out(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        #[cfg(test)]
        if self
            .faults
            .as_ref()
            .is_some_and(|f| Faults::take(&f.writes))
        {
            self.unsynced = true;
            (&*self.file).write_all(&self.buf[..self.buf.len() / 2])?;
            return Err(no_space());
        }
        self.io
            .write(self.buf.len(), || (&*self.file).write_all(&self.buf))?;
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
            #[cfg(test)]
            if self.faults.as_ref().is_some_and(|f| Faults::take(&f.syncs)) {
                return Err(io::Error::from_raw_os_error(libc::EIO));
            }
            self.io.sync(|| self.file.sync_data())?;
            self.unsynced = false;
        }
        self.synced_len = self.len;
        Ok(())
    }

    /// After a failed write or sync: drops what is buffered and cuts the file back to its
    /// length at the last successful sync, so no torn or half-written record stays where
    /// later records would follow it (recovery would skip everything after it). What was
    /// cut was never confirmed. Err if the file cannot be cut: then nothing more may be
    /// appended to it (the writer starts a new segment).
    pub(crate) fn cut_back(&mut self) -> io::Result<()> {
        self.buf.clear();
        self.len = self.synced_len;
        // Synced again next time, so the new length is durable before anything after it.
        self.unsynced = true;
        self.file.set_len(self.synced_len)?;
        (&*self.file).seek(SeekFrom::Start(self.synced_len))?;
        Ok(())
    }

    /// Writes out what is buffered and returns what a sync on another thread needs: the
    /// file, and the length that sync makes durable (pass it to [`OpenSegment::synced_to`]
    /// once it succeeded), and whether a test injected a failure into it.
    pub(crate) fn start_sync(&mut self) -> io::Result<(std::sync::Arc<File>, u64, bool)> {
        self.write_out()?;
        self.unsynced = false;
        #[cfg(test)]
        let inject = self.faults.as_ref().is_some_and(|f| Faults::take(&f.syncs));
        #[cfg(not(test))]
        let inject = false;
        Ok((self.file.clone(), self.len, inject))
    }

    /// A sync started by [`OpenSegment::start_sync`] at length `len` succeeded.
    pub(crate) fn synced_to(&mut self, len: u64) {
        self.synced_len = self.synced_len.max(len);
    }
}
