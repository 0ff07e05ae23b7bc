//! Paging: the part of a queue that does not fit in memory, kept on disk in order.
//!
//! A `Tail` holds the messages behind a queue level's in-memory head: appended at the
//! back as they are published while memory is over budget, read back from the front in
//! chunks when the head runs dry. Records go into a write buffer and from there, a few
//! hundred KiB at a time, into page files under `<data_dir>/pages`; a file is deleted as
//! soon as it has been read through, so disk use follows the backlog.
//!
//! Page files are a cache, not a store: they are wiped at start. Persistent messages are
//! also in the message store (which is what recovery reads); transient ones are gone after
//! a restart, as in RabbitMQ.
//!
//! Owned by the queue and used under its lock. The I/O is synchronous and bounded: one
//! write of `FLUSH_BYTES` per that many bytes published, one read of `READ_BYTES` per
//! refill, against files the kernel usually still has cached. It never panics: a write
//! that fails keeps the records in the buffer (retried at the next flush); a read that
//! fails drops the rest of that file and logs how many messages went with it.

use super::{msg_cost, Queued};
use crate::broker::message::Message;
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The write buffer goes to disk once it holds this much.
const FLUSH_BYTES: usize = 256 * 1024;
/// A refill reads about this much from a page file.
const READ_BYTES: usize = 256 * 1024;
/// A page file takes no more appends past this size; the next write starts a new one.
const FILE_BYTES: u64 = 64 * 1024 * 1024;
/// Record header: length (u32), seq, store id, expires_at (u64 each), flags, priority,
/// deliveries (u16).
const HEADER: usize = 4 + 8 + 8 + 8 + 1 + 1 + 2;
const REDELIVERED: u8 = 1;

/// The directory page files live in, and the numbering of new files.
#[derive(Debug)]
pub struct PageDir {
    path: PathBuf,
    next: AtomicU64,
}

impl PageDir {
    /// Empties (or creates) `path`: pages left by an earlier run belong to nobody.
    pub fn create(path: &Path) -> io::Result<PageDir> {
        match std::fs::remove_dir_all(path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        std::fs::create_dir_all(path)?;
        Ok(PageDir {
            path: path.to_owned(),
            next: AtomicU64::new(1),
        })
    }

    fn new_file(&self) -> io::Result<PageFile> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let path = self.path.join(format!("{n:010}.page"));
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)?;
        Ok(PageFile {
            file,
            path,
            written: 0,
            read: 0,
            messages: 0,
            body_bytes: 0,
        })
    }
}

#[derive(Debug)]
struct PageFile {
    file: File,
    path: PathBuf,
    written: u64,
    read: u64,
    /// Messages written to this file and not read back yet, and their body bytes.
    messages: usize,
    body_bytes: u64,
}

impl Drop for PageFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Messages behind a queue level's head, oldest first: in page files, then in the write
/// buffer. Dropping it deletes its files.
#[derive(Debug, Default)]
pub struct Tail {
    files: VecDeque<PageFile>,
    /// Encoded records after the end of the last file, not yet written.
    buffer: Vec<u8>,
    buffer_messages: usize,
    buffer_body_bytes: u64,
    len: usize,
    body_bytes: u64,
    /// Messages with a store id (persistent in a durable queue): a purge must ack them.
    stored: usize,
    /// A write failed; logged once until one succeeds again.
    write_failing: bool,
}

impl Tail {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Body bytes of the messages held (for x-max-length-bytes).
    pub fn body_bytes(&self) -> u64 {
        self.body_bytes
    }

    /// Whether some message here is in the message store.
    pub fn has_stored(&self) -> bool {
        self.stored > 0
    }

    /// Appends `item` at the back; writes the buffer out once it is large enough.
    pub fn push(&mut self, item: &Queued, dir: &PageDir) {
        let raw = item.msg.raw();
        let len = (HEADER - 4 + raw.len()) as u32;
        self.buffer.extend_from_slice(&len.to_be_bytes());
        self.buffer.extend_from_slice(&item.seq.to_be_bytes());
        self.buffer.extend_from_slice(&item.store_id.to_be_bytes());
        self.buffer
            .extend_from_slice(&item.expires_at.to_be_bytes());
        self.buffer
            .push(if item.redelivered { REDELIVERED } else { 0 });
        self.buffer.push(item.priority);
        self.buffer
            .extend_from_slice(&item.deliveries.to_be_bytes());
        self.buffer.extend_from_slice(raw);
        let body = item.msg.body().len() as u64;
        self.buffer_messages += 1;
        self.buffer_body_bytes += body;
        self.len += 1;
        self.body_bytes += body;
        self.stored += usize::from(item.store_id != 0);
        if self.buffer.len() >= FLUSH_BYTES {
            self.flush(dir);
        }
    }

    /// Writes the buffer to the last page file (a new one when there is none or it is
    /// full). On failure the records stay in the buffer, still readable from there.
    fn flush(&mut self, dir: &PageDir) {
        let reuse = self.files.back().is_some_and(|f| f.written < FILE_BYTES);
        if !reuse {
            match dir.new_file() {
                Ok(f) => self.files.push_back(f),
                Err(e) => return self.write_failed(&e),
            }
        }
        let Some(f) = self.files.back_mut() else {
            return;
        };
        if let Err(e) = f.file.write_all(&self.buffer) {
            return self.write_failed(&e);
        }
        f.written += self.buffer.len() as u64;
        f.messages += self.buffer_messages;
        f.body_bytes += self.buffer_body_bytes;
        self.buffer.clear();
        self.buffer_messages = 0;
        self.buffer_body_bytes = 0;
        if self.write_failing {
            self.write_failing = false;
            tracing::info!("page files writable again");
        }
    }

    fn write_failed(&mut self, e: &io::Error) {
        if !self.write_failing {
            self.write_failing = true;
            tracing::error!(error = %e, "cannot write a page file; keeping messages in memory");
        }
        // A partial write may have left bytes past `written`: cut them, and write the next
        // attempt where the good data ends.
        if let Some(f) = self.files.back_mut() {
            let _ = f.file.set_len(f.written);
            let _ = std::io::Seek::seek(&mut f.file, io::SeekFrom::Start(f.written));
        }
    }

    /// Takes messages from the front, about `READ_BYTES` of them (at least one if any),
    /// into `out`; returns how many.
    pub fn refill(&mut self, out: &mut VecDeque<Queued>) -> usize {
        let before = out.len();
        while out.len() == before && !self.is_empty() {
            if self.files.is_empty() {
                self.refill_from_buffer(out);
            } else {
                self.refill_from_file(out);
            }
        }
        out.len() - before
    }

    fn refill_from_buffer(&mut self, out: &mut VecDeque<Queued>) {
        let mut pos = 0;
        while pos < self.buffer.len() && pos < READ_BYTES {
            match decode(&self.buffer[pos..]) {
                Some((item, used)) => {
                    pos += used;
                    self.took(&item);
                    self.buffer_messages -= 1;
                    self.buffer_body_bytes -= item.msg.body().len() as u64;
                    out.push_back(item);
                }
                None => {
                    // Our own bytes, in memory: cannot happen short of a bug. Drop them
                    // rather than loop.
                    tracing::error!(
                        messages = self.buffer_messages,
                        "undecodable page buffer; dropping it"
                    );
                    self.lost(self.buffer_messages, self.buffer_body_bytes);
                    self.buffer.clear();
                    self.buffer_messages = 0;
                    self.buffer_body_bytes = 0;
                    return;
                }
            }
        }
        self.buffer.drain(..pos);
    }

    fn refill_from_file(&mut self, out: &mut VecDeque<Queued>) {
        let Some(f) = self.files.front_mut() else {
            return;
        };
        if f.read >= f.written {
            // Read through (a partly damaged file may still count messages: they are
            // lost).
            let (m, b) = (f.messages, f.body_bytes);
            self.files.pop_front();
            if m > 0 {
                tracing::error!(messages = m, "page file ended early; messages lost");
                self.lost(m, b);
            }
            return;
        }
        let left = f.written - f.read;
        let mut chunk = vec![0u8; left.min(READ_BYTES as u64) as usize];
        let result = f.file.read_exact_at(&mut chunk, f.read).and_then(|()| {
            // A record larger than the chunk: read exactly that record.
            let need = record_len(&chunk).unwrap_or(0);
            if need > chunk.len() && need as u64 <= left {
                chunk.resize(need, 0);
                f.file.read_exact_at(&mut chunk, f.read)?;
            }
            Ok(())
        });
        let mut pos = 0;
        let mut got = Vec::new();
        if let Err(e) = &result {
            tracing::error!(error = %e, file = %f.path.display(), "cannot read a page file");
        } else {
            while let Some((item, used)) = decode(&chunk[pos..]) {
                pos += used;
                got.push(item);
            }
        }
        if got.is_empty() {
            // Unreadable or undecodable at this point: give up the rest of the file.
            let (m, b) = (f.messages, f.body_bytes);
            tracing::error!(
                file = %f.path.display(),
                messages = m,
                "page file damaged; the rest of its messages are lost"
            );
            self.files.pop_front();
            self.lost(m, b);
            return;
        }
        f.read += pos as u64;
        f.messages -= got.len();
        for item in &got {
            f.body_bytes -= item.msg.body().len() as u64;
        }
        if f.read >= f.written && f.messages == 0 {
            // Read through: its space goes back now, not at the next refill (which may
            // never come if the queue stays empty).
            self.files.pop_front();
        }
        for item in got {
            self.took(&item);
            out.push_back(item);
        }
    }

    fn took(&mut self, item: &Queued) {
        self.len -= 1;
        self.body_bytes -= item.msg.body().len() as u64;
        self.stored -= usize::from(item.store_id != 0);
    }

    fn lost(&mut self, messages: usize, body_bytes: u64) {
        self.len = self.len.saturating_sub(messages);
        self.body_bytes = self.body_bytes.saturating_sub(body_bytes);
        if self.len == 0 {
            self.stored = 0;
        }
    }

    /// Every message left, oldest first, read back one chunk at a time (a purge that has
    /// store ids to settle). Consumes the tail; its files go as they are read.
    pub fn drain(mut self) -> impl Iterator<Item = Queued> {
        let mut chunk = VecDeque::new();
        std::iter::from_fn(move || {
            if chunk.is_empty() {
                self.refill(&mut chunk);
            }
            chunk.pop_front()
        })
    }
}

/// The length of the record at the start of `data`, when its length field is there.
fn record_len(data: &[u8]) -> Option<usize> {
    let len = u32::from_be_bytes(data.get(..4)?.try_into().ok()?) as usize;
    Some(4 + len)
}

/// Decodes the record at the start of `data`: the item and the bytes it took. `None` when
/// the record is incomplete or damaged.
fn decode(data: &[u8]) -> Option<(Queued, usize)> {
    let end = record_len(data)?;
    if end < HEADER || end > data.len() {
        return None;
    }
    let u64_at = |at: usize| -> Option<u64> {
        Some(u64::from_be_bytes(data.get(at..at + 8)?.try_into().ok()?))
    };
    let msg = Message::from_raw(&data[HEADER..end])?;
    let item = Queued {
        // Read back, it is an allocation of its own: its whole cost counts.
        cost: msg_cost(&msg, 1),
        seq: u64_at(4)?,
        store_id: u64_at(12)?,
        expires_at: u64_at(20)?,
        redelivered: data[28] & REDELIVERED != 0,
        priority: data[29],
        deliveries: u16::from_be_bytes([data[30], data[31]]),
        msg,
    };
    Some((item, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(seq: u64, body: &[u8]) -> Queued {
        Queued {
            seq,
            msg: Message::new("ex", "rk", &[0, 0], body),
            redelivered: seq.is_multiple_of(3),
            store_id: seq % 2,
            expires_at: seq * 10,
            priority: (seq % 5) as u8,
            cost: 0,
            deliveries: (seq % 7) as u16,
        }
    }

    fn dir(name: &str) -> PageDir {
        let path =
            std::env::temp_dir().join(format!("warren-paging-{name}-{}", std::process::id()));
        PageDir::create(&path).unwrap()
    }

    fn files_in(d: &PageDir) -> usize {
        std::fs::read_dir(&d.path).unwrap().count()
    }

    #[test]
    fn messages_come_back_in_order_with_their_fields() {
        let d = dir("order");
        let mut t = Tail::default();
        let body = vec![7u8; 1000];
        for seq in 0..2000 {
            t.push(&item(seq, &body), &d);
        }
        assert_eq!(t.len(), 2000);
        assert_eq!(t.body_bytes(), 2_000_000);
        assert!(
            files_in(&d) >= 1,
            "past FLUSH_BYTES the buffer went to a file"
        );
        let mut out = VecDeque::new();
        let mut seen = 0;
        while t.refill(&mut out) > 0 {
            while let Some(q) = out.pop_front() {
                let want = item(seen, &body);
                assert_eq!(q.deliveries, want.deliveries);
                assert_eq!(
                    (q.seq, q.store_id, q.expires_at, q.redelivered, q.priority),
                    (
                        want.seq,
                        want.store_id,
                        want.expires_at,
                        want.redelivered,
                        want.priority
                    )
                );
                assert_eq!((q.msg.exchange(), q.msg.routing_key()), ("ex", "rk"));
                assert_eq!(q.msg.body(), &body[..]);
                seen += 1;
            }
        }
        assert_eq!(seen, 2000);
        assert!(t.is_empty() && t.body_bytes() == 0 && !t.has_stored());
        assert_eq!(files_in(&d), 0, "read-through files are deleted");
    }

    #[test]
    fn appends_after_partial_reads_keep_the_order() {
        let d = dir("interleave");
        let mut t = Tail::default();
        let mut next = 0u64;
        let mut expect = 0u64;
        let mut out = VecDeque::new();
        for round in 0..50 {
            for _ in 0..(round * 37 % 400 + 1) {
                t.push(&item(next, &vec![1u8; (next % 3000) as usize]), &d);
                next += 1;
            }
            t.refill(&mut out);
            while let Some(q) = out.pop_front() {
                assert_eq!(q.seq, expect);
                expect += 1;
            }
        }
        for q in t.drain() {
            assert_eq!(q.seq, expect);
            expect += 1;
        }
        assert_eq!(expect, next);
        assert_eq!(files_in(&d), 0);
    }

    #[test]
    fn a_record_larger_than_a_read_chunk_is_read_whole() {
        let d = dir("large");
        let mut t = Tail::default();
        let big = vec![9u8; 3 * READ_BYTES];
        t.push(&item(1, &big), &d);
        t.push(&item(2, b"small"), &d);
        let got: Vec<Queued> = t.drain().collect();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].msg.body(), &big[..]);
        assert_eq!(got[1].msg.body(), b"small");
    }

    #[test]
    fn a_damaged_file_loses_its_messages_but_not_the_queue() {
        let d = dir("damage");
        let mut t = Tail::default();
        for seq in 0..600 {
            t.push(&item(seq, &[5u8; 1000]), &d);
        }
        // Overwrite the first file's first record header with garbage.
        let first = t.files.front().unwrap();
        first.file.write_all_at(&[0xff; 8], 0).unwrap();
        let mut out = VecDeque::new();
        let mut total = 0;
        while t.refill(&mut out) > 0 {
            total += out.len();
            out.clear();
        }
        assert!(total < 600, "the damaged file's messages are gone");
        assert!(t.is_empty(), "and the tail still empties cleanly");
    }

    #[test]
    fn when_page_files_cannot_be_written_messages_stay_in_memory_in_order() {
        let d = dir("unwritable");
        // The directory is replaced by a plain file: no page file can be created.
        std::fs::remove_dir_all(&d.path).unwrap();
        std::fs::write(&d.path, b"in the way").unwrap();
        let mut t = Tail::default();
        for seq in 0..1000 {
            t.push(&item(seq, &[3u8; 1000]), &d);
        }
        assert!(t.write_failing && t.files.is_empty());
        let got: Vec<u64> = t.drain().map(|q| q.seq).collect();
        assert_eq!(
            got,
            (0..1000).collect::<Vec<_>>(),
            "nothing lost, nothing reordered"
        );
        let _ = std::fs::remove_file(&d.path);
    }

    #[test]
    fn a_file_read_through_is_deleted_even_when_nothing_follows_it() {
        let d = dir("last");
        let mut t = Tail::default();
        let mut seq = 0;
        // Push until a flush has just emptied the buffer: everything is in the file.
        loop {
            t.push(&item(seq, &[1u8; 1000]), &d);
            seq += 1;
            if t.buffer.is_empty() {
                break;
            }
        }
        assert_eq!(files_in(&d), 1);
        let mut out = VecDeque::new();
        while !t.is_empty() {
            t.refill(&mut out);
        }
        assert_eq!(out.len() as u64, seq);
        assert_eq!(files_in(&d), 0, "the queue is empty: so is the disk");
    }

    #[test]
    fn dropping_a_tail_deletes_its_files() {
        let d = dir("drop");
        let mut t = Tail::default();
        for seq in 0..1000 {
            t.push(&item(seq, &[0u8; 1000]), &d);
        }
        assert!(files_in(&d) > 0);
        drop(t);
        assert_eq!(files_in(&d), 0);
    }
}
