//! `StreamLog`: one stream's segments, the appender that writes them, group-commit
//! sync, and where consumers start.
//!
//! Called by the AMQP side through the methods documented in `mod.rs` (the writer
//! thread for appends, blocking threads for readers). Three locks, taken in this order
//! and never the other way: `appender` (the one writer: file writes happen under it,
//! and only appenders wait for it), `sync_lock` (one fdatasync at a time, others wait and
//! find their entries covered), `meta` (segment list and offsets: memory only, held for
//! a few field reads; readers take nothing else). No file I/O ever happens under `meta`.

use super::format::{cut_chunks, encode_chunk, CHUNK_HEADER, ENTRY_HEADER, SEGMENT_HEADER};
use super::index::{self, IndexRecord};
use super::segment::Segment;
use super::storage::{Home, MemDir, SegFile};
use super::{retention, RetentionOutcome, StartAt, StreamConfig, StreamStats, MAX_ENTRY_BYTES};
use crate::broker::memory::Memory;
use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::ops::Range;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// One stream's log. Cheap to clone (a shared handle); Send + Sync; every method takes
/// `&self`.
#[derive(Debug, Clone)]
pub struct StreamLog {
    pub(crate) shared: Arc<Shared>,
}

#[derive(Debug)]
pub(crate) struct Shared {
    /// Where the segment and index files are: a directory, or memory.
    pub home: Home,
    config: Mutex<StreamConfig>,
    appender: Mutex<Appender>,
    sync_lock: Mutex<()>,
    pub meta: Mutex<Meta>,
    /// Offsets below this are on disk (fdatasync'd).
    durable: AtomicU64,
}

/// The segment list and offsets readers and `resolve` look at.
#[derive(Debug)]
pub(crate) struct Meta {
    /// Oldest first; the last is the active one. Never empty.
    pub segments: VecDeque<Segment>,
    /// The active segment's file, for `sync`.
    active_file: Arc<SegFile>,
    pub destroyed: bool,
}

impl Meta {
    pub(crate) fn first_offset(&self) -> u64 {
        self.segments.front().map_or(0, |s| s.base)
    }

    pub(crate) fn next_offset(&self) -> u64 {
        self.segments.back().map_or(0, |s| s.end)
    }
}

/// The writing side: the active segment's files and where the next chunk goes.
#[derive(Debug)]
struct Appender {
    file: Arc<SegFile>,
    index: SegFile,
    base: u64,
    /// File position of the next chunk.
    pos: u64,
    /// The next offset.
    next: u64,
    /// Records in the active index file.
    records: u64,
    destroyed: bool,
    /// Reused encode buffers.
    out: Vec<u8>,
    idx_out: Vec<u8>,
}

/// What recovery hands over to build a log.
pub(crate) struct Recovered {
    pub segments: VecDeque<Segment>,
    pub active: File,
    pub active_index: File,
}

/// A stream log must be shared between the writer thread and readers.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<StreamLog>();
};

impl StreamLog {
    /// Opens (recovering) or creates the log in `dir`; see `mod.rs`.
    pub fn open(dir: &Path, config: StreamConfig) -> io::Result<StreamLog> {
        let r = super::recovery::recover(dir)?;
        let home = Home::Dir(dir.to_path_buf());
        let (file, index) = (SegFile::Disk(r.active), SegFile::Disk(r.active_index));
        Ok(Self::build(home, config, r.segments, file, index))
    }

    /// An empty log whose segments are kept in memory (the broker's in-memory mode),
    /// their blocks counted in `memory` when given. The same log in every other way:
    /// chunks, offsets, readers, retention; `sync` has nothing to do.
    pub fn in_memory(config: StreamConfig, memory: Option<Arc<Memory>>) -> StreamLog {
        let dir = MemDir::new(memory);
        let (file, index) = dir.create_segment(0);
        let segments = VecDeque::from([Segment::empty(0)]);
        Self::build(Home::Memory(dir), config, segments, file, index)
    }

    fn build(
        home: Home,
        config: StreamConfig,
        segments: VecDeque<Segment>,
        file: SegFile,
        index: SegFile,
    ) -> StreamLog {
        let active = segments
            .back()
            .cloned()
            .unwrap_or_else(|| Segment::empty(0));
        let file = Arc::new(file);
        let appender = Appender {
            file: file.clone(),
            index,
            base: active.base,
            pos: active.size,
            next: active.end,
            records: active.records,
            destroyed: false,
            out: Vec::new(),
            idx_out: Vec::new(),
        };
        StreamLog {
            shared: Arc::new(Shared {
                home,
                config: Mutex::new(config),
                appender: Mutex::new(appender),
                sync_lock: Mutex::new(()),
                durable: AtomicU64::new(active.end),
                meta: Mutex::new(Meta {
                    segments,
                    active_file: file,
                    destroyed: false,
                }),
            }),
        }
    }

    pub fn config(&self) -> StreamConfig {
        self.shared
            .config
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Changes retention and segment size (a policy changed); applies from the next
    /// append (segment size) and the next retention run.
    pub fn set_config(&self, config: StreamConfig) {
        *self.shared.config.lock().unwrap_or_else(|p| p.into_inner()) = config;
    }

    /// The directory holding the log's files; `None` for a log in memory.
    pub fn dir(&self) -> Option<&Path> {
        self.shared.home.dir()
    }

    /// Appends one entry as one chunk; returns its offset. Written, not yet durable.
    pub fn append(&self, timestamp_ms: i64, entry: &[u8]) -> io::Result<u64> {
        self.append_batch(&[(timestamp_ms, entry)]).map(|r| r.start)
    }

    /// Appends a batch as one chunk (cut only past ~1 MiB) with one write per segment
    /// touched; returns the offsets given. Written, not yet durable. An entry over
    /// `MAX_ENTRY_BYTES` refuses the whole batch (`InvalidInput`), nothing written. If a
    /// write fails after a segment rolled over, the entries before the roll stay in the
    /// log (the error is still returned: at-least-once for whoever retries).
    pub fn append_batch(&self, entries: &[(i64, &[u8])]) -> io::Result<Range<u64>> {
        if let Some((_, big)) = entries.iter().find(|(_, d)| d.len() > MAX_ENTRY_BYTES) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "stream entry of {} bytes exceeds the limit of {MAX_ENTRY_BYTES}",
                    big.len()
                ),
            ));
        }
        let mut app = self.appender();
        if app.destroyed {
            return Err(destroyed());
        }
        let start = app.next;
        let max_segment = self.config().max_segment_size_bytes;
        let mut rolled = false;
        let mut pending: Vec<(IndexRecord, u64)> = Vec::new();
        let mut at = 0;
        for run in cut_chunks(entries, |d| d.len()) {
            let chunk = &entries[at..at + run];
            at += run;
            let len = (CHUNK_HEADER
                + chunk
                    .iter()
                    .map(|(_, d)| ENTRY_HEADER + d.len())
                    .sum::<usize>()) as u64;
            let end = app.pos + app.out.len() as u64;
            if end > SEGMENT_HEADER && end + len > max_segment {
                self.flush(&mut app, &mut pending)?;
                self.roll(&mut app)?;
                rolled = true;
            }
            let record = IndexRecord {
                first_offset: app.next,
                timestamp: chunk.iter().map(|(t, _)| *t).max().unwrap_or(0),
                pos: app.pos + app.out.len() as u64,
                count: run as u32,
            };
            let first = app.next;
            encode_chunk(&mut app.out, first, chunk);
            app.next += run as u64;
            pending.push((record, len));
        }
        self.flush(&mut app, &mut pending)?;
        let range = start..app.next;
        drop(app);
        if rolled {
            // As RabbitMQ does: retention is looked at when a segment fills up, with the
            // newest timestamp as "now" (the caller's clock).
            let now = entries.iter().map(|(t, _)| *t).max().unwrap_or(0);
            if let Err(e) = self.enforce_retention(now) {
                tracing::warn!(home = %self.shared.home, error = %e, "stream retention failed");
            }
        }
        Ok(range)
    }

    /// Writes what `append_batch` encoded for the active segment and publishes it.
    fn flush(&self, app: &mut Appender, pending: &mut Vec<(IndexRecord, u64)>) -> io::Result<()> {
        if pending.is_empty() {
            return Ok(());
        }
        if let Err(e) = app.file.write_all_at(&app.out, app.pos) {
            // Nothing of it is published; cut off whatever part reached the file.
            let _ = app.file.set_len(app.pos);
            app.out.clear();
            app.next = pending[0].0.first_offset;
            pending.clear();
            return Err(e);
        }
        app.pos += app.out.len() as u64;
        app.out.clear();
        app.idx_out.clear();
        for (r, _) in pending.iter() {
            r.encode(&mut app.idx_out);
        }
        // The index is derived data (rebuilt from the segment when short or wrong), so a
        // failed index write is logged, not refused.
        if let Err(e) = app
            .index
            .write_all_at(&app.idx_out, index::record_pos(app.records))
        {
            tracing::warn!(home = %self.shared.home, error = %e, "stream index write failed");
        }
        app.records += pending.len() as u64;
        let mut meta = self.meta();
        if let Some(seg) = meta.segments.back_mut() {
            for (r, len) in pending.iter() {
                seg.add_chunk(r, *len);
            }
        }
        drop(meta);
        pending.clear();
        Ok(())
    }

    /// Closes the active segment (synced) and starts a new one at the next offset.
    fn roll(&self, app: &mut Appender) -> io::Result<()> {
        app.file.sync_data()?;
        app.index.sync_data()?;
        let (file, index) = self.shared.home.create_segment(app.next)?;
        let file = Arc::new(file);
        app.file = file.clone();
        app.index = index;
        app.base = app.next;
        app.pos = SEGMENT_HEADER;
        app.records = 0;
        let mut meta = self.meta();
        meta.segments.push_back(Segment::empty(app.base));
        meta.active_file = file;
        Ok(())
    }

    /// Makes everything appended so far durable; returns the first offset not yet
    /// durable afterwards. Concurrent callers share one fdatasync. Blocking.
    pub fn sync(&self) -> io::Result<u64> {
        let target = self.next_offset();
        let _one = self
            .shared
            .sync_lock
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let done = self.shared.durable.load(Ordering::Acquire);
        if done >= target {
            return Ok(done);
        }
        let (file, upto) = {
            let meta = self.meta();
            (meta.active_file.clone(), meta.next_offset())
        };
        file.sync_data()?;
        Ok(self
            .shared
            .durable
            .fetch_max(upto, Ordering::AcqRel)
            .max(upto))
    }

    pub fn first_offset(&self) -> u64 {
        self.meta().first_offset()
    }

    pub fn next_offset(&self) -> u64 {
        self.meta().next_offset()
    }

    /// The first offset of the last chunk (`next_offset` when the log is empty).
    pub fn last_chunk_offset(&self) -> u64 {
        let meta = self.meta();
        meta.segments
            .iter()
            .rev()
            .find_map(|s| s.last_chunk)
            .unwrap_or(meta.next_offset())
    }

    pub fn stats(&self) -> StreamStats {
        let meta = self.meta();
        let (first, next) = (meta.first_offset(), meta.next_offset());
        StreamStats {
            first_offset: first,
            next_offset: next,
            entries: next - first,
            bytes: meta.segments.iter().map(|s| s.size).sum(),
            segments: meta.segments.len() as u64,
        }
    }

    /// Where a consumer starts (see `StartAt`). A timestamp reads one stretch of one
    /// index file (at most `SPARSE_ENTRIES` records): call it off the runtime workers.
    pub fn resolve(&self, start: StartAt) -> u64 {
        match start {
            StartAt::First => self.first_offset(),
            StartAt::Next => self.next_offset(),
            StartAt::Last => self.last_chunk_offset(),
            StartAt::Offset(n) => {
                let meta = self.meta();
                n.clamp(meta.first_offset(), meta.next_offset())
            }
            StartAt::Timestamp(ts) => self.resolve_timestamp(ts),
        }
    }

    /// The first chunk whose timestamp is at or after `ts`, or the next offset.
    fn resolve_timestamp(&self, ts: i64) -> u64 {
        let (found, next) = {
            let meta = self.meta();
            let found = meta
                .segments
                .iter()
                .filter(|s| s.max_ts.is_some_and(|m| m >= ts))
                .find_map(|s| Some((s.base, s.stretch_reaching(ts)?)));
            (found, meta.next_offset())
        };
        let Some((base, (from, to, stretch_first))) = found else {
            return next;
        };
        let records = (self.shared.home.open(base, true))
            .and_then(|f| index::read_range(&f, from, to))
            .unwrap_or_default();
        // An index that cannot be read gives the start of the stretch: chunk-exact
        // otherwise, at most one stretch early then.
        let offset = records
            .iter()
            .find(|r| r.timestamp >= ts)
            .map_or(stretch_first, |r| r.first_offset);
        offset.clamp(self.first_offset(), next)
    }

    /// Applies retention now (see `mod.rs`).
    pub fn enforce_retention(&self, now_ms: i64) -> io::Result<RetentionOutcome> {
        let config = self.config();
        let (gone, first) = {
            let mut meta = self.meta();
            let sizes: Vec<(u64, Option<i64>)> =
                meta.segments.iter().map(|s| (s.size, s.max_ts)).collect();
            let n = retention::segments_to_delete(&sizes, &config, now_ms);
            let gone: Vec<Segment> = meta.segments.drain(..n).collect();
            (gone, meta.first_offset())
        };
        let mut outcome = RetentionOutcome {
            first_offset: first,
            ..Default::default()
        };
        for seg in &gone {
            self.shared.home.remove_segment(seg.base)?;
            outcome.segments_deleted += 1;
            outcome.bytes_deleted += seg.size;
        }
        if !gone.is_empty() {
            tracing::debug!(home = %self.shared.home, segments = gone.len(), first, "stream retention");
        }
        Ok(outcome)
    }

    /// Deletes the log's files and directory (in memory: gives its memory back). Every
    /// handle to the log (the writer thread's too) refuses appends from then on;
    /// readers end with `NotFound`.
    pub fn destroy(self) -> io::Result<()> {
        let mut app = self.appender();
        app.destroyed = true;
        self.meta().destroyed = true;
        self.shared.home.destroy()
    }

    fn appender(&self) -> MutexGuard<'_, Appender> {
        self.shared
            .appender
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn meta(&self) -> MutexGuard<'_, Meta> {
        self.shared.meta.lock().unwrap_or_else(|p| p.into_inner())
    }
}

pub(crate) fn destroyed() -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, "stream deleted")
}
