//! Stream queues' storage: an append-only log on disk, in segments, with its recovery,
//! retention and readers (`x-queue-type: stream`).
//!
//! Owns the files of one stream in one directory (`stream_dir`). The AMQP side (declare,
//! publish, consume with `x-stream-offset`) calls it; nothing here knows AMQP: an entry is
//! opaque bytes the caller encodes, plus a timestamp in ms since the Unix epoch.
//!
//! How to call it: every method that can touch the disk (`open`, `append*`, `sync`,
//! `reader`, `StreamReader::next`, `resolve` for timestamps, `enforce_retention`,
//! `destroy`) blocks, so callers run them off the runtime workers and never under a queue
//! or topology lock. Publishing goes through `StreamLog::spawn_writer`: one thread per
//! stream that appends what `StreamWriter::submit` hands it, one chunk per submitted
//! batch, syncs once per round for all the batches that asked for it (group commit), and
//! then calls each batch's callback with its offsets (the place to send confirms and wake
//! consumers). Readers run wherever the caller reads (e.g. `spawn_blocking`), one
//! `StreamReader` per consumer; they never take the writer's lock, only a short lock on
//! the list of segments.
//!
//! Semantics follow RabbitMQ's streams (osiris): offsets start at 0 and are consecutive;
//! entries are written in chunks (one chunk per `append_batch`/`submit`, split only to
//! keep a chunk near 1 MiB); `StartAt::Last` is the first offset of the last chunk;
//! retention deletes whole segments, oldest first, never the active one.
//!
//! It must never keep entries in memory beyond a reader's bounded buffer, never panic on
//! what it reads from disk (damage ends the log there, logged), and never lose an entry
//! that `sync` covered.

use bytes::Bytes;
use std::io;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The default `x-stream-max-segment-size-bytes`, as RabbitMQ's.
pub const DEFAULT_MAX_SEGMENT_SIZE_BYTES: u64 = 500_000_000;
/// The largest entry accepted; bigger ones are refused with `InvalidInput`.
pub const MAX_ENTRY_BYTES: usize = 512 * 1024 * 1024;

/// A stream's retention and segment size, from its queue arguments (and policy).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamConfig {
    /// `x-max-age`: a segment whose newest entry is older than this is deleted.
    pub max_age: Option<Duration>,
    /// `x-max-length-bytes`: oldest segments are deleted while the log is larger.
    pub max_length_bytes: Option<u64>,
    /// `x-stream-max-segment-size-bytes`: a segment is closed (and retention evaluated)
    /// when the next chunk would take it past this.
    pub max_segment_size_bytes: u64,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            max_age: None,
            max_length_bytes: None,
            max_segment_size_bytes: DEFAULT_MAX_SEGMENT_SIZE_BYTES,
        }
    }
}

/// Where a consumer starts (`x-stream-offset`). An interval ("30m", "7D") is the
/// caller's to turn into `Timestamp(now - interval)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartAt {
    /// The first entry still retained.
    First,
    /// The first entry of the last chunk (so a non-empty stream gives at least one).
    Last,
    /// Only entries written from now on.
    Next,
    /// This offset, clamped into `[first_offset, next_offset]`.
    Offset(u64),
    /// The first chunk whose timestamp (ms since the epoch) is at or after this.
    Timestamp(i64),
}

/// One entry read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub offset: u64,
    pub timestamp_ms: i64,
    pub data: Bytes,
}

/// Figures for the management API and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StreamStats {
    pub first_offset: u64,
    pub next_offset: u64,
    /// Entries still retained (`next_offset - first_offset`).
    pub entries: u64,
    /// Bytes of all segment files.
    pub bytes: u64,
    pub segments: u64,
}

/// What `enforce_retention` deleted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RetentionOutcome {
    pub segments_deleted: u64,
    pub bytes_deleted: u64,
    /// The first offset retained afterwards.
    pub first_offset: u64,
}

/// The directory of one stream: `<data_dir>/streams/<hash of vhost>/<hash of queue>/`.
/// Hashes (hex SHA-256 prefixes) keep any vhost or queue name a safe, short path.
pub fn stream_dir(data_dir: &Path, vhost: &str, queue: &str) -> PathBuf {
    data_dir
        .join("streams")
        .join(name_hash(vhost))
        .join(name_hash(queue))
}

fn name_hash(name: &str) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, name.as_bytes());
    digest.as_ref()[..16]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// One stream's log. Send + Sync; every method takes `&self` (internal locking).
#[derive(Debug)]
pub struct StreamLog {
    dir: PathBuf,
    config: StreamConfig,
}

impl StreamLog {
    /// Opens (recovering) or creates the log in `dir`. Only the segment list and a
    /// sparse index are kept in memory. Recovery checks the last segment's tail and
    /// truncates a torn or corrupt end; damage elsewhere ends the log there (logged).
    pub fn open(dir: &Path, config: StreamConfig) -> io::Result<StreamLog> {
        std::fs::create_dir_all(dir)?;
        Ok(StreamLog {
            dir: dir.to_path_buf(),
            config,
        })
    }

    /// The configuration the log was opened with.
    pub fn config(&self) -> &StreamConfig {
        &self.config
    }

    /// Appends one entry (one chunk); returns its offset. Written, not yet durable.
    pub fn append(&self, timestamp_ms: i64, entry: &[u8]) -> io::Result<u64> {
        self.append_batch(&[(timestamp_ms, entry)]).map(|r| r.start)
    }

    /// Appends a batch as one chunk (split only past ~1 MiB) with one write; returns the
    /// offsets given. Written, not yet durable. An entry over `MAX_ENTRY_BYTES` refuses
    /// the whole batch (`InvalidInput`), nothing written.
    pub fn append_batch(&self, entries: &[(i64, &[u8])]) -> io::Result<Range<u64>> {
        let _ = entries;
        Err(io::Error::other("stream log: not implemented yet"))
    }

    /// Makes everything appended so far durable (fdatasync); returns the first offset
    /// not yet durable afterwards. Concurrent callers share one sync. Blocking.
    pub fn sync(&self) -> io::Result<u64> {
        Ok(0)
    }

    /// The first offset still in the log (after retention).
    pub fn first_offset(&self) -> u64 {
        0
    }

    /// The offset the next entry will get.
    pub fn next_offset(&self) -> u64 {
        0
    }

    /// The first offset of the last chunk (`next_offset` when the log is empty).
    pub fn last_chunk_offset(&self) -> u64 {
        0
    }

    pub fn stats(&self) -> StreamStats {
        StreamStats::default()
    }

    /// Where a consumer starts, in RabbitMQ's terms (see `StartAt`). A timestamp may
    /// read a segment's index file: call it off the runtime workers.
    pub fn resolve(&self, start: StartAt) -> u64 {
        let _ = start;
        0
    }

    /// A reader from `from` (clamped as `StartAt::Offset`): entries in order, from
    /// disk, with a buffer of at most ~1 MiB or one chunk.
    pub fn reader(&self, from: u64) -> io::Result<StreamReader> {
        Ok(StreamReader { next: from })
    }

    /// Applies retention (max_age against `now_ms`, max_length_bytes): deletes whole
    /// oldest segments, never the active one. Appends evaluate it themselves when a
    /// segment rolls over (as RabbitMQ does); housekeeping may call it too.
    pub fn enforce_retention(&self, now_ms: i64) -> io::Result<RetentionOutcome> {
        let _ = now_ms;
        Ok(RetentionOutcome::default())
    }

    /// Starts this stream's writer thread (see the module doc). The log is shared with
    /// it; readers keep using the log itself.
    pub fn spawn_writer(self: &std::sync::Arc<Self>) -> io::Result<StreamWriter> {
        Ok(StreamWriter { log: self.clone() })
    }

    /// Deletes the log's files and directory (queue.delete). Open readers keep reading
    /// what they hold open; a writer must have been dropped first.
    pub fn destroy(self) -> io::Result<()> {
        std::fs::remove_dir_all(&self.dir)
    }
}

/// Reads entries in order from an offset. Not Sync; one per consumer.
#[derive(Debug)]
pub struct StreamReader {
    next: u64,
}

impl StreamReader {
    /// The next entry, or `None` at the end of what is written now (call again after
    /// more was appended). An `InvalidData` error means a damaged chunk on disk.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> io::Result<Option<Entry>> {
        Ok(None)
    }

    /// The offset the next `next()` returns (when there is one).
    pub fn position(&self) -> u64 {
        self.next
    }
}

/// Whether a submitted batch needs to be on disk before its callback runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// fdatasync before the callback (publisher confirms).
    Synced,
    /// Written to the file (readable by consumers), no sync of its own.
    Written,
}

/// Called on the writer thread once a batch is written (and synced when asked): its
/// offsets, or the error that refused it. Must not block (send, wake, return).
pub type OnAppended = Box<dyn FnOnce(io::Result<Range<u64>>) + Send>;

/// The handle to a stream's writer thread. Dropping it stops the thread after the
/// batches already submitted.
#[derive(Debug)]
pub struct StreamWriter {
    log: std::sync::Arc<StreamLog>,
}

impl StreamWriter {
    /// Hands a batch (timestamp, entry) to the writer thread; never blocks on I/O.
    /// Batches are appended in submission order, each as one chunk.
    pub fn submit(
        &self,
        entries: Vec<(i64, Bytes)>,
        durability: Durability,
        on_appended: OnAppended,
    ) {
        let _ = (entries, durability);
        on_appended(Err(io::Error::other("stream log: not implemented yet")));
    }

    /// The log this writer appends to.
    pub fn log(&self) -> &std::sync::Arc<StreamLog> {
        &self.log
    }
}
