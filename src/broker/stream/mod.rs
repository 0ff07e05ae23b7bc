//! Stream queues' storage: an append-only log on disk, in segments, with its recovery,
//! retention and readers (`x-queue-type: stream`).
//!
//! Owns the files of one stream in one directory (`stream_dir`), or, for a broker in
//! memory, the same files kept in memory (`StreamLog::in_memory`, see `storage`). The AMQP side (declare,
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
//! keep a chunk near 1 MiB); `StartAt::Last` is the first offset of the last chunk and
//! `StartAt::Timestamp` the first chunk whose (newest) timestamp reaches it; a reader
//! starts exactly at the offset it is given (RabbitMQ attaches at the chunk and skips the
//! entries before it: the same entries arrive). Retention deletes whole segments, oldest
//! first, never the active one, when a segment rolls over (and when asked).
//!
//! On disk (`<dir>/<first offset, 20 digits>.segment` and `.index`): segments of
//! CRC-32C-checked chunks (`format`), one index record per chunk (`index`). In memory:
//! the segment list and a sparse index of one 32-byte point per 4096 entries or 4 MiB
//! per segment (`segment`). Opening reads the index files and checks each segment's last
//! chunk and what follows it (`recovery`), so after kill -9 only the tail is scanned.
//!
//! It must never keep entries in memory beyond a reader's bounded buffer, never panic on
//! what it reads from disk, and never lose an entry that `sync` covered. Damage found at
//! open ends the log there (cut, logged with what was dropped); damage inside what an
//! index vouches for is found by the reader that reaches it (`InvalidData`), never handed
//! out as entries; `StreamReader::skip_damaged` then goes on after that chunk.

#[cfg(test)]
mod bench;
mod chunks;
mod format;
mod index;
mod log;
mod reader;
mod recovery;
mod retention;
mod segment;
mod storage;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_damage;
#[cfg(test)]
mod tests_memory;
mod writer;

pub use log::StreamLog;
pub use reader::StreamReader;
pub use writer::{Durability, OnAppended, StreamWriter};

use bytes::Bytes;
use std::io;
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

impl StreamLog {
    /// A reader from `from` (clamped as `StartAt::Offset`): entries in order, from
    /// disk, with a buffer of at most ~256 KiB or one chunk. Opens a file: blocking.
    pub fn reader(&self, from: u64) -> io::Result<StreamReader> {
        StreamReader::new(self.clone(), from)
    }
}
