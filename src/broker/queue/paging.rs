//! Paging: the part of a queue that does not fit in memory, kept on disk in order.
//!
//! A `Tail` holds the messages behind a queue level's in-memory head: appended at the
//! back as they are published while memory is over budget, read back from the front in
//! chunks when the head runs dry. Records go into a write buffer and from there, a few
//! hundred KiB at a time, to the page directory's I/O thread, which writes them into
//! page files under `<data_dir>/pages` (see `memory::pagedir`); a file is deleted as soon as it
//! has been read through, so disk use follows the backlog.
//!
//! Page files are a cache, not a store: they are wiped at start. Persistent messages are
//! also in the message store (which is what recovery reads); transient ones are gone after
//! a restart, as in RabbitMQ.
//!
//! Owned by the queue and used under its lock, where it never touches the disk. Writes,
//! deletes and read-backs happen on the I/O thread: after each refill (and each write)
//! the tail asks it to read the next `READ_BYTES` ahead, so the next refill finds them in
//! memory; records whose write is still in flight are read from memory too. A refill that
//! outruns its read-ahead (a consumer faster than the disk) takes nothing and the queue
//! waits: the read-ahead wakes it when it is done (`Wake`), and meanwhile the queue's
//! lock stays free for publishers and everyone else. It never panics: a write that
//! fails keeps its records in memory, readable from there; a read that fails drops the
//! rest of that file and logs how many messages went with it.

use super::browse::TailView;
use super::{msg_cost, Queued};
use crate::broker::memory::pagedir::{record_len, PageFile, ReadAhead};
pub use crate::broker::memory::pagedir::{PageDir, Wake};
use crate::broker::memory::Memory;
use crate::broker::message::Message;
use std::collections::VecDeque;
use std::sync::Arc;

/// The write buffer goes to the I/O thread once it holds this much.
const FLUSH_BYTES: usize = 256 * 1024;
/// A refill reads about this much from a page file.
const READ_BYTES: usize = 256 * 1024;
/// A page file takes no more appends past this size; the next write starts a new one.
/// (Smaller in unit tests, so that a few MB make a tail of several files.)
const FILE_BYTES: u64 = if cfg!(test) { 4 << 20 } else { 64 << 20 };
/// Record header: length (u32), seq, store id, expires_at (u64 each), flags, priority,
/// deliveries (u16).
const HEADER: usize = 4 + 8 + 8 + 8 + 1 + 1 + 2;
const REDELIVERED: u8 = 1;

/// Messages behind a queue level's head, oldest first: in page files, then in the write
/// buffer. Dropping it deletes its files.
#[derive(Debug, Default)]
pub struct Tail {
    files: VecDeque<PageFile>,
    /// Encoded records after the end of the last file, not yet written.
    buffer: Vec<u8>,
    /// The buffer's capacity as counted in `memory` (its messages left the accounting
    /// when they came here: the buffer counts instead).
    buffer_counted: usize,
    buffer_messages: usize,
    buffer_body_bytes: u64,
    len: usize,
    body_bytes: u64,
    /// Messages with a store id (persistent in a durable queue): a purge must ack them.
    stored: usize,
    /// Their body bytes.
    stored_bytes: u64,
    /// The next read-back, done ahead on the I/O thread so that a refill finds it in
    /// memory instead of reading under the queue lock.
    ahead: Option<ReadAhead>,
    /// Where paged bytes in flight or read ahead are counted (set by the first push).
    memory: Option<Arc<Memory>>,
    /// Called when a read-ahead is done (set by the first push).
    wake: Option<Wake>,
}

impl Tail {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Body bytes of the messages held.
    pub fn body_bytes(&self) -> u64 {
        self.body_bytes
    }

    /// Messages held that are not in the message store, and their body bytes: what
    /// RabbitMQ calls paged out (persistent ones on disk are in the store).
    pub fn transient(&self) -> (usize, u64) {
        (self.len - self.stored, self.body_bytes - self.stored_bytes)
    }

    /// Whether some message here is in the message store.
    pub fn has_stored(&self) -> bool {
        self.stored > 0
    }

    /// Appends `item` at the back; hands the buffer to the I/O thread once it is large
    /// enough (its bytes count in `memory` until they are written). The first push asks
    /// `wake` for what its read-aheads call when done.
    pub fn push(
        &mut self,
        item: &Queued,
        dir: &PageDir,
        memory: &Arc<Memory>,
        wake: &dyn Fn() -> Option<Wake>,
    ) {
        let (head, body) = item.msg.raw_parts();
        let len = (HEADER - 4 + head.len() + body.len()) as u32;
        if self.buffer.capacity() == 0 {
            // Room for a flush's worth at once: no reallocation (and copy) on the way.
            self.buffer
                .reserve_exact(FLUSH_BYTES + HEADER + len as usize);
        }
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
        self.buffer.extend_from_slice(head);
        self.buffer.extend_from_slice(body);
        let body = item.msg.body().len() as u64;
        self.buffer_messages += 1;
        self.buffer_body_bytes += body;
        self.len += 1;
        self.body_bytes += body;
        if item.store_id != 0 {
            self.stored += 1;
            self.stored_bytes += body;
        }
        if self.memory.is_none() {
            self.memory = Some(memory.clone());
            self.wake = wake();
        }
        if self.buffer.len() >= FLUSH_BYTES {
            self.flush(dir, memory);
        }
        self.count_buffer();
    }

    /// Brings the buffer's share of the memory accounting up to its capacity now.
    fn count_buffer(&mut self) {
        let Some(memory) = &self.memory else { return };
        let now = self.buffer.capacity();
        match now.cmp(&self.buffer_counted) {
            std::cmp::Ordering::Greater => memory.add(now - self.buffer_counted),
            std::cmp::Ordering::Less => memory.sub(self.buffer_counted - now),
            std::cmp::Ordering::Equal => {}
        }
        self.buffer_counted = now;
    }

    /// Hands the buffer to the last page file (a new one when there is none or it is
    /// full).
    fn flush(&mut self, dir: &PageDir, memory: &Arc<Memory>) {
        if self.files.back().is_none_or(|f| f.written >= FILE_BYTES) {
            self.files.push_back(dir.new_file());
        }
        let Some(f) = self.files.back_mut() else {
            return;
        };
        let mut data = std::mem::take(&mut self.buffer);
        // The file counts the chunk from here, by its capacity: give back the room it
        // was reserved with and did not use.
        data.shrink_to_fit();
        f.append(data, memory);
        f.messages += self.buffer_messages;
        f.body_bytes += self.buffer_body_bytes;
        self.buffer_messages = 0;
        self.buffer_body_bytes = 0;
        self.read_ahead();
    }

    /// Starts reading the next part of the front file on the I/O thread (what is on
    /// disk of it), unless that is under way already.
    fn read_ahead(&mut self) {
        let (Some(f), Some(memory)) = (self.files.front_mut(), &self.memory) else {
            return;
        };
        let on_disk = f.span(f.read);
        if on_disk == 0
            || f.in_memory(f.read)
            || self.ahead.as_ref().is_some_and(|a| a.is_for(f, f.read))
        {
            return;
        }
        let len = on_disk.min(READ_BYTES as u64) as usize;
        self.ahead = Some(f.read_ahead(f.read, (len, on_disk), memory, self.wake.clone()));
    }

    /// Takes messages from the front, about `READ_BYTES` of them, into `out`; returns how
    /// many. None while the front is on disk and its read-ahead is not done yet: the
    /// read-ahead calls `wake` when it is. Then starts reading the next part ahead.
    pub fn refill(&mut self, out: &mut VecDeque<Queued>) -> usize {
        let n = self.take_front(out, false);
        self.read_ahead();
        n
    }

    /// Takes at least one message from the front if any is left; with `on_io_thread`
    /// (`drain`) it reads the file itself, else it waits for the read-ahead instead.
    fn take_front(&mut self, out: &mut VecDeque<Queued>, on_io_thread: bool) -> usize {
        let before = out.len();
        while out.len() == before && !self.is_empty() {
            let progress = if self.files.is_empty() {
                self.refill_from_buffer(out);
                true
            } else {
                self.refill_from_file(out, on_io_thread)
            };
            if !progress {
                break;
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
        if self.buffer.is_empty() {
            // Read through: a tail that stops paging keeps no buffer.
            self.buffer = Vec::new();
        }
        self.count_buffer();
    }

    /// Reads the next records of the front file into `out`; false when they are on disk
    /// and must wait for the read-ahead (asked for here if it was not yet).
    fn refill_from_file(&mut self, out: &mut VecDeque<Queued>, on_io_thread: bool) -> bool {
        let Some(f) = self.files.front_mut() else {
            return true;
        };
        let left = f.span(f.read);
        if left == 0 {
            // Read through (a partly damaged file may still count messages: they are
            // lost).
            let (m, b) = (f.messages, f.body_bytes);
            self.files.pop_front();
            if m > 0 {
                tracing::error!(messages = m, "page file ended early; messages lost");
                self.lost(m, b);
            }
            return true;
        }
        let len = left.min(READ_BYTES as u64) as usize;
        let in_memory = if on_io_thread {
            None
        } else {
            // In a chunk whose write is in flight or failed.
            f.read_in_memory(f.read, len)
        };
        let result = if let Some(bytes) = in_memory {
            self.ahead = None;
            Ok(bytes)
        } else if on_io_thread {
            // On this thread that may touch the disk.
            self.ahead = None;
            f.read_at(f.read, len)
                .and_then(|chunk| match record_len(&chunk) {
                    // A record larger than the chunk: read exactly that record.
                    Some(need) if need > chunk.len() && need as u64 <= left => {
                        f.read_at(f.read, need)
                    }
                    _ => Ok(chunk),
                })
        } else {
            let Some(ahead) = self.ahead.take().filter(|a| a.is_for(f, f.read)) else {
                let memory = self.memory.clone().unwrap_or_else(|| Memory::new(u64::MAX));
                self.ahead = Some(f.read_ahead(f.read, (len, left), &memory, self.wake.clone()));
                return false;
            };
            match ahead.take() {
                Some(done) => done.map(|mut bytes| {
                    bytes.truncate(left as usize);
                    bytes
                }),
                None => {
                    self.ahead = Some(ahead);
                    return false;
                }
            }
        };
        let chunk = result.unwrap_or_else(|e| {
            tracing::error!(error = %e, file = %f.path().display(), "cannot read a page file");
            Vec::new()
        });
        let (mut pos, mut got) = (0, Vec::new());
        while let Some((item, used)) = decode(&chunk[pos..]) {
            pos += used;
            got.push(item);
        }
        if got.is_empty() {
            // Unreadable or undecodable at this point: give up the rest of the file.
            let (m, b) = (f.messages, f.body_bytes);
            tracing::error!(
                file = %f.path().display(),
                messages = m,
                "page file damaged; the rest of its messages are lost"
            );
            self.files.pop_front();
            self.lost(m, b);
            return true;
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
        true
    }

    fn took(&mut self, item: &Queued) {
        self.len -= 1;
        self.body_bytes -= item.msg.body().len() as u64;
        if item.store_id != 0 {
            self.stored -= 1;
            self.stored_bytes -= item.msg.body().len() as u64;
        }
    }

    fn lost(&mut self, messages: usize, body_bytes: u64) {
        self.len = self.len.saturating_sub(messages);
        self.body_bytes = self.body_bytes.saturating_sub(body_bytes);
        // Which of the lost were stored is not known: keep the figures within bounds.
        self.stored = self.stored.min(self.len);
        self.stored_bytes = self.stored_bytes.min(self.body_bytes);
    }

    /// What a browse reads of messages `skip..skip + take` of this tail, later and off
    /// the queue lock: the page files that hold them (files wholly before are left out)
    /// and a copy of the write buffer when the range reaches it. Changes nothing.
    pub fn view(&self, skip: usize, take: usize) -> TailView {
        let mut view = TailView::default();
        let (mut base, end) = (0, skip.saturating_add(take));
        for f in &self.files {
            if base >= end {
                return view;
            }
            if skip < base + f.messages {
                view.files.push((base, skip.saturating_sub(base), f.view()));
            }
            base += f.messages;
        }
        if base < end && skip < base + self.buffer_messages {
            // Bounded: the buffer goes to a file once it passes FLUSH_BYTES.
            view.buffer = Some((base, skip.saturating_sub(base), self.buffer.clone()));
        }
        view
    }

    /// Every message left, oldest first, read back one chunk at a time (a purge that has
    /// store ids to settle). Consumes the tail; its files go as they are read.
    pub fn drain(mut self) -> impl Iterator<Item = Queued> {
        let mut chunk = VecDeque::new();
        std::iter::from_fn(move || {
            if chunk.is_empty() {
                self.take_front(&mut chunk, true);
            }
            chunk.pop_front()
        })
    }
}

impl Drop for Tail {
    /// The write buffer leaves the accounting with it (files and read-aheads see to
    /// their own).
    fn drop(&mut self) {
        if let Some(memory) = &self.memory {
            memory.sub(self.buffer_counted);
        }
    }
}

/// Decodes the record at the start of `data`: the item and the bytes it took. `None` when
/// the record is incomplete or damaged.
pub(super) fn decode(data: &[u8]) -> Option<(Queued, usize)> {
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
        // An earlier test process with this ID may have left pages here.
        let _ = std::fs::remove_dir_all(&path);
        PageDir::create(&path, Default::default()).unwrap()
    }

    /// Waits for the I/O thread to run everything handed to it so far.
    fn settle(d: &PageDir) {
        let (tx, rx) = std::sync::mpsc::channel();
        d.background(move || tx.send(()).unwrap());
        rx.recv().unwrap();
    }

    /// Holds the I/O thread (every job handed to it queues behind) until the returned
    /// sender sends or drops.
    fn hold(d: &PageDir) -> std::sync::mpsc::Sender<()> {
        let (release, held) = std::sync::mpsc::channel::<()>();
        d.background(move || {
            let _ = held.recv();
        });
        release
    }

    /// `refill`, waiting for the I/O thread when the tail waits for a read-ahead.
    fn refill_waiting(t: &mut Tail, d: &PageDir, out: &mut VecDeque<Queued>) -> usize {
        loop {
            let n = t.refill(out);
            if n > 0 || t.is_empty() {
                return n;
            }
            settle(d);
        }
    }

    fn files_in(d: &PageDir) -> usize {
        settle(d);
        std::fs::read_dir(d.path()).unwrap().count()
    }

    #[test]
    fn messages_come_back_in_order_with_their_fields() {
        let d = dir("order");
        let m = Memory::new(u64::MAX);
        let mut t = Tail::default();
        let body = vec![7u8; 1000];
        for seq in 0..2000 {
            t.push(&item(seq, &body), &d, &m, &|| None);
        }
        assert_eq!(t.len(), 2000);
        assert_eq!(t.body_bytes(), 2_000_000);
        assert!(
            files_in(&d) >= 1,
            "past FLUSH_BYTES the buffer went to a file"
        );
        let mut out = VecDeque::new();
        let mut seen = 0;
        while refill_waiting(&mut t, &d, &mut out) > 0 {
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
        let m = Memory::new(u64::MAX);
        let mut t = Tail::default();
        let mut next = 0u64;
        let mut expect = 0u64;
        let mut out = VecDeque::new();
        for round in 0..50 {
            for _ in 0..(round * 37 % 400 + 1) {
                t.push(
                    &item(next, &vec![1u8; (next % 3000) as usize]),
                    &d,
                    &m,
                    &|| None,
                );
                next += 1;
            }
            refill_waiting(&mut t, &d, &mut out);
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
        let m = Memory::new(u64::MAX);
        let mut t = Tail::default();
        let big = vec![9u8; 3 * READ_BYTES];
        t.push(&item(1, &big), &d, &m, &|| None);
        t.push(&item(2, b"small"), &d, &m, &|| None);
        let got: Vec<Queued> = t.drain().collect();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].msg.body(), &big[..]);
        assert_eq!(got[1].msg.body(), b"small");
    }

    #[test]
    fn a_damaged_file_loses_its_messages_but_not_the_queue() {
        let d = dir("damage");
        let m = Memory::new(u64::MAX);
        let mut t = Tail::default();
        for seq in 0..600 {
            t.push(&item(seq, &[5u8; 1000]), &d, &m, &|| None);
        }
        // Overwrite the first file's first record header with garbage (and forget the
        // read-ahead that already holds it).
        settle(&d);
        t.ahead = None;
        let first = t.files.front().unwrap();
        std::os::unix::fs::FileExt::write_all_at(first.file().unwrap(), &[0xff; 8], 0).unwrap();
        let mut out = VecDeque::new();
        let mut total = 0;
        while refill_waiting(&mut t, &d, &mut out) > 0 {
            total += out.len();
            out.clear();
        }
        assert!(total < 600, "the damaged file's messages are gone");
        assert!(t.is_empty(), "and the tail still empties cleanly");
    }

    #[test]
    fn when_page_files_cannot_be_written_messages_stay_in_memory_in_order() {
        let d = dir("unwritable");
        let m = Memory::new(u64::MAX);
        // The directory is replaced by a plain file: no page file can be created.
        std::fs::remove_dir_all(d.path()).unwrap();
        std::fs::write(d.path(), b"in the way").unwrap();
        let mut t = Tail::default();
        for seq in 0..1000 {
            t.push(&item(seq, &[3u8; 1000]), &d, &m, &|| None);
        }
        settle(&d);
        assert!(!t.files.is_empty() && t.files.iter().all(|f| f.file().is_none()));
        let got: Vec<u64> = t.drain().map(|q| q.seq).collect();
        assert_eq!(
            got,
            (0..1000).collect::<Vec<_>>(),
            "nothing lost, nothing reordered"
        );
        let _ = std::fs::remove_file(d.path());
    }

    #[test]
    fn a_file_read_through_is_deleted_even_when_nothing_follows_it() {
        let d = dir("last");
        let m = Memory::new(u64::MAX);
        let mut t = Tail::default();
        let mut seq = 0;
        // Push until a flush has just emptied the buffer: everything is in the file.
        loop {
            t.push(&item(seq, &[1u8; 1000]), &d, &m, &|| None);
            seq += 1;
            if t.buffer.is_empty() {
                break;
            }
        }
        assert_eq!(files_in(&d), 1);
        let mut out = VecDeque::new();
        while !t.is_empty() {
            refill_waiting(&mut t, &d, &mut out);
        }
        assert_eq!(out.len() as u64, seq);
        assert_eq!(files_in(&d), 0, "the queue is empty: so is the disk");
    }

    #[test]
    fn dropping_a_tail_deletes_its_files() {
        let d = dir("drop");
        let m = Memory::new(u64::MAX);
        let mut t = Tail::default();
        for seq in 0..1000 {
            t.push(&item(seq, &[0u8; 1000]), &d, &m, &|| None);
        }
        assert!(files_in(&d) > 0);
        drop(t);
        assert_eq!(files_in(&d), 0);
    }

    #[test]
    fn records_whose_write_is_still_in_flight_are_read_back_from_memory() {
        let d = dir("inflight");
        let m = Memory::new(u64::MAX);
        // Hold the I/O thread: every write queues behind this job.
        let release = hold(&d);
        let mut t = Tail::default();
        for seq in 0..2000 {
            t.push(&item(seq, &[4u8; 1000]), &d, &m, &|| None);
        }
        assert!(
            t.files.len() == 1 && t.files[0].file().is_none(),
            "nothing on disk yet"
        );
        assert!(
            m.used() >= FLUSH_BYTES as u64,
            "bytes in flight count as memory"
        );
        assert_eq!(
            d.in_flight() + t.buffer.capacity() as u64,
            m.used(),
            "and as disk backlog (the write buffer counts in memory only)"
        );
        let mut out = VecDeque::new();
        let mut next = 0;
        while next < 1000 {
            refill_waiting(&mut t, &d, &mut out);
            while let Some(q) = out.pop_front() {
                assert_eq!(q.seq, next);
                next += 1;
            }
        }
        release.send(()).unwrap();
        settle(&d);
        assert_eq!(d.in_flight(), 0);
        assert!(
            m.used() <= (READ_BYTES + t.buffer.capacity()) as u64,
            "written: no longer counted (only the next read-ahead is)"
        );
        // The rest comes from the file now, still in order.
        for q in t.drain() {
            assert_eq!(q.seq, next);
            next += 1;
        }
        assert_eq!(next, 2000);
        assert_eq!(files_in(&d), 0);
    }

    #[test]
    fn the_next_read_back_is_done_ahead_on_the_io_thread() {
        let d = dir("ahead");
        let m = Memory::new(u64::MAX);
        let mut t = Tail::default();
        for seq in 0..2000 {
            t.push(&item(seq, &[6u8; 1000]), &d, &m, &|| None);
        }
        settle(&d);
        assert_eq!(
            m.used(),
            (READ_BYTES + t.buffer.capacity()) as u64,
            "written; the front read ahead and the write buffer, counted"
        );
        // Spoil what was read ahead on disk: the refill does not read the disk.
        let file = t.files.front().unwrap().file().unwrap();
        std::os::unix::fs::FileExt::write_all_at(file, &vec![0xff; READ_BYTES], 0).unwrap();
        let mut out = VecDeque::new();
        let n = t.refill(&mut out);
        assert!(n > 200, "{n} records from the read-ahead");
        assert!(out.iter().map(|q| q.seq).eq(0..n as u64));
        assert!(out.iter().all(|q| q.msg.body() == [6u8; 1000]));
        // The refill started the next read-ahead; dropping the tail gives it back.
        settle(&d);
        assert_eq!(m.used(), (READ_BYTES + t.buffer.capacity()) as u64);
        drop(t);
        assert_eq!(m.used(), 0);
        assert_eq!(files_in(&d), 0);
    }

    #[test]
    fn a_refill_that_outruns_the_read_ahead_waits_for_it_and_is_woken() {
        let d = dir("outrun");
        let m = Memory::new(u64::MAX);
        let woken = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let wake = Wake(Arc::new({
            let woken = woken.clone();
            move || {
                woken.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }));
        let mut t = Tail::default();
        for seq in 0..2000 {
            t.push(&item(seq, &[8u8; 1000]), &d, &m, &|| Some(wake.clone()));
        }
        settle(&d);
        // Hold the I/O thread: the read-ahead the first refill starts queues behind this.
        let release = hold(&d);
        let mut out = VecDeque::new();
        let first = t.refill(&mut out);
        assert!(first > 0, "the front was read ahead already");
        let woken_before = woken.load(std::sync::atomic::Ordering::SeqCst);
        assert_eq!(
            t.refill(&mut out),
            0,
            "nothing read under the caller's lock"
        );
        assert!(!t.is_empty());
        release.send(()).unwrap();
        settle(&d);
        assert!(woken.load(std::sync::atomic::Ordering::SeqCst) > woken_before);
        let mut next = 0;
        loop {
            while let Some(q) = out.pop_front() {
                assert_eq!(q.seq, next);
                next += 1;
            }
            if refill_waiting(&mut t, &d, &mut out) == 0 {
                break;
            }
        }
        assert_eq!(next, 2000, "all of them, in order");
        drop(t);
        assert_eq!(m.used(), 0);
    }

    #[test]
    fn a_tail_only_appended_to_keeps_only_the_last_chunk_in_memory() {
        let d = dir("appendonly");
        let m = Memory::new(u64::MAX);
        let mut t = Tail::default();
        for seq in 0..20_000 {
            t.push(&item(seq, &[2u8; 1000]), &d, &m, &|| None);
            // Less than a chunk between two waits for the I/O thread: each append finds
            // every earlier chunk written, however slow the thread (it used to wait
            // every 500, so on a loaded machine up to three chunks were in flight).
            if seq % 200 == 0 {
                settle(&d);
            }
        }
        settle(&d);
        let held: usize = t.files.iter().map(PageFile::held_bytes).sum();
        assert!(
            held <= 2 * FLUSH_BYTES,
            "{held} bytes of a 20 MB backlog still in memory"
        );
        assert_eq!(t.drain().count(), 20_000);
    }

    /// What the tail holds in memory: its write buffer and the chunks not freed yet.
    fn held(t: &Tail) -> usize {
        t.buffer.capacity() + t.files.iter().map(PageFile::held_bytes).sum::<usize>()
    }

    #[test]
    fn written_chunks_are_freed_in_every_file_and_the_accounting_says_what_is_held() {
        let d = dir("flood");
        let m = Memory::new(u64::MAX);
        // Hold the I/O thread while a flood of several files is appended: every chunk is
        // in flight when its file fills up (what a disk behind a fast publisher does).
        let release = hold(&d);
        let mut t = Tail::default();
        let body = vec![4u8; 64 * 1024];
        for seq in 0..300 {
            t.push(&item(seq, &body), &d, &m, &|| None);
        }
        assert!(t.files.len() >= 4, "{} files", t.files.len());
        assert_eq!(m.used() as usize, held(&t), "in flight: counted as held");
        release.send(()).unwrap();
        settle(&d);
        // Files in the middle of the tail are neither appended to nor read: their chunks
        // must go all the same (they used to stay until the file was read).
        let chunks: usize = t.files.iter().map(PageFile::held_bytes).sum();
        assert_eq!(chunks, 0, "written chunks still in memory");
        let ahead = m.used() as usize - held(&t);
        assert!(
            ahead <= READ_BYTES + HEADER + body.len(),
            "beyond the buffer, only the front's read-ahead is counted: {ahead}"
        );
        drop(t);
        assert_eq!(m.used(), 0, "a dropped tail gives back all it counted");
    }
}
