//! What the log keeps in memory about one segment: its offsets, size, newest timestamp
//! and a sparse index of positions; and the segment and index files' names.
//!
//! Owned by `StreamLog`'s metadata (behind its short lock), updated by the appender after
//! each written chunk and built by recovery from index records. Memory work only.
//!
//! The sparse index holds one point per `SPARSE_ENTRIES` entries or `SPARSE_BYTES` bytes
//! (whichever comes first) plus the segment's first chunk, 32 bytes each: for a
//! 500 MB segment at most ~120 points for the bytes plus one per 4096 entries. A point
//! also carries the newest timestamp of the chunks up to the next point, so a timestamp
//! is found by reading only one stretch of the index file.

use super::index::IndexRecord;
use std::path::{Path, PathBuf};

/// Entries between two sparse points, at most.
pub(crate) const SPARSE_ENTRIES: u64 = 4096;
/// Bytes between two sparse points, at most (plus one chunk).
pub(crate) const SPARSE_BYTES: u64 = 4 * 1024 * 1024;

/// A sparse index point: a chunk's offset and positions, and the newest timestamp of the
/// chunks from it to the next point.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Point {
    pub offset: u64,
    pub pos: u64,
    /// Its record number in the index file.
    pub record: u64,
    pub max_ts: i64,
}

#[derive(Debug, Clone)]
pub(crate) struct Segment {
    /// The first offset (the file's name); for an empty segment the next offset.
    pub base: u64,
    /// The offset after its last chunk.
    pub end: u64,
    /// Bytes in the file that belong to the log (header and whole chunks).
    pub size: u64,
    /// Chunks, and so records in its index file.
    pub records: u64,
    pub last_chunk: Option<u64>,
    pub max_ts: Option<i64>,
    pub points: Vec<Point>,
    since_entries: u64,
    since_bytes: u64,
}

impl Segment {
    pub(crate) fn empty(base: u64) -> Self {
        Segment {
            base,
            end: base,
            size: super::format::SEGMENT_HEADER,
            records: 0,
            last_chunk: None,
            max_ts: None,
            points: Vec::new(),
            since_entries: 0,
            since_bytes: 0,
        }
    }

    /// Notes a chunk appended to this segment: `len` bytes at `record.pos`.
    pub(crate) fn add_chunk(&mut self, record: &IndexRecord, len: u64) {
        let new_point = self.points.is_empty()
            || self.since_entries >= SPARSE_ENTRIES
            || self.since_bytes >= SPARSE_BYTES;
        if new_point {
            self.points.push(Point {
                offset: record.first_offset,
                pos: record.pos,
                record: self.records,
                max_ts: record.timestamp,
            });
            self.since_entries = 0;
            self.since_bytes = 0;
        } else if let Some(p) = self.points.last_mut() {
            p.max_ts = p.max_ts.max(record.timestamp);
        }
        self.since_entries += record.count as u64;
        self.since_bytes += len;
        self.records += 1;
        self.end = record.end_offset();
        self.size = record.pos + len;
        self.last_chunk = Some(record.first_offset);
        self.max_ts = Some(
            self.max_ts
                .map_or(record.timestamp, |t| t.max(record.timestamp)),
        );
    }

    /// Where to start reading for `offset`: the last point at or before it (the file
    /// position and the point's offset), or the first chunk's position.
    pub(crate) fn seek(&self, offset: u64) -> u64 {
        let i = self.points.partition_point(|p| p.offset <= offset);
        match i.checked_sub(1).and_then(|i| self.points.get(i)) {
            Some(p) => p.pos,
            None => super::format::SEGMENT_HEADER,
        }
    }

    /// The first stretch of index records (record numbers `from..to`) holding a chunk
    /// whose timestamp is at or after `ts`, with the offset of its first chunk.
    pub(crate) fn stretch_reaching(&self, ts: i64) -> Option<(u64, u64, u64)> {
        let i = self.points.iter().position(|p| p.max_ts >= ts)?;
        let to = self.points.get(i + 1).map_or(self.records, |n| n.record);
        let p = &self.points[i];
        Some((p.record, to, p.offset))
    }
}

pub(crate) fn segment_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.segment"))
}

pub(crate) fn index_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.index"))
}

/// The kind of a file in a stream's directory, by name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileKind {
    Segment(u64),
    Index(u64),
}

pub(crate) fn parse_name(name: &str) -> Option<FileKind> {
    let (stem, ext) = name.split_once('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let base = stem.parse().ok()?;
    match ext {
        "segment" => Some(FileKind::Segment(base)),
        "index" => Some(FileKind::Index(base)),
        _ => None,
    }
}
