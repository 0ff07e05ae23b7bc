//! The writer thread: the only code that appends to segment files, with group commit.
//!
//! `StoreHandle`s send it requests over a channel. It wakes on the first, takes every
//! request already waiting, encodes them all into the current segment's buffer (writing
//! it out in 1 MiB chunks), fdatasyncs once for the whole batch if the batch holds a
//! message, a flush or a deletion, and only then fires the completions. Acks and
//! delivered marks alone never cost a sync: losing one in a crash only means a message
//! comes back (at-least-once), and the next sync covers them anyway.
//!
//! It also rolls segments at 64 MiB and deletes settled ones. It never blocks on anything
//! but its own disk I/O and never panics. After a write or sync error it stops writing
//! for good (after a failed fsync the kernel may have dropped the data, so retrying
//! could confirm messages that are lost): the store is marked failed and every later
//! completion is dropped, which the caller sees as the sender going away.

use super::index::{Carried, Index};
use super::record;
use super::segment::{self, OpenSegment, WRITE_CHUNK};
use super::StoredMessage;
use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::Arc;

/// Requests drained into one batch at most, so completions are not held back forever
/// under a flood.
const MAX_BATCH: usize = 65_536;

pub(crate) enum Request {
    /// Boxed: acks and delivered marks are most of the traffic, and every slot of the
    /// request channel is as large as the largest variant.
    Append(Box<Append>),
    Ack {
        queue: Arc<str>,
        id: u64,
    },
    Delivered {
        queue: Arc<str>,
        id: u64,
    },
    Drop {
        queue: Arc<str>,
        up_to: u64,
    },
    /// Completed (with id 0) after the sync that covers everything sent before it.
    Flush(super::Done),
}

pub(crate) struct Append {
    pub(crate) id: u64,
    pub(crate) msg: StoredMessage,
    pub(crate) queues: Vec<Arc<str>>,
    pub(crate) done: Option<super::Done>,
}

/// State shared with the handles.
#[derive(Default)]
pub(crate) struct Shared {
    pub(crate) failed: AtomicBool,
    /// Memory of the appends sent to the writer and not yet written (`queued_cost`).
    pub(crate) queued_bytes: AtomicU64,
    /// fdatasyncs done for batches (a metric: appends / syncs = mean batch size).
    pub(crate) syncs: AtomicU64,
    /// The index's heap bytes, refreshed every `MEASURE_EVERY` batches.
    pub(crate) index_bytes: AtomicU64,
}

/// Batches between two measurements of the index (a walk over its segments).
const MEASURE_EVERY: u32 = 32;

pub(crate) struct Writer {
    pub(crate) dir: PathBuf,
    pub(crate) ix: Index,
    pub(crate) seg: OpenSegment,
    pub(crate) next_segno: u64,
    /// Roll to a new segment past this size.
    pub(crate) segment_bytes: u64,
    /// The first id not yet written; the header of the next segment records it.
    pub(crate) next_id: u64,
    pub(crate) shared: Arc<Shared>,
    /// Held (locked) for as long as the writer runs.
    pub(crate) _lock: File,
}

/// Completions waiting for the batch's sync.
#[derive(Default)]
struct Batch {
    sync: bool,
    appended: Vec<(super::Done, u64)>,
    flushes: Vec<super::Done>,
    /// Delivered marks, written at the end of the batch unless an ack in the same batch
    /// made them pointless (the common case for a consumer that keeps up).
    delivered: Vec<(u32, u64)>,
}

impl Writer {
    pub(crate) fn run(mut self, rx: Receiver<Request>) {
        let mut batches = 0u32;
        while let Ok(first) = rx.recv() {
            let mut batch = Batch::default();
            let mut next = Some(first);
            let mut n = 0;
            while let Some(req) = next.take() {
                self.handle(req, &mut batch);
                n += 1;
                if n < MAX_BATCH {
                    next = rx.try_recv().ok();
                }
            }
            self.finish_batch(batch);
            batches = batches.wrapping_add(1);
            if batches.is_multiple_of(MEASURE_EVERY) {
                self.measure();
            }
        }
        // Every handle is gone: make what was written durable before the lock goes.
        if !self.is_failed() {
            if let Err(e) = self.seg.sync() {
                tracing::error!(error = %e, "message store: final sync failed");
            }
        }
    }

    pub(crate) fn measure(&self) {
        self.shared
            .index_bytes
            .store(self.ix.heap_bytes(), Ordering::Relaxed);
    }

    fn is_failed(&self) -> bool {
        self.shared.failed.load(Ordering::Relaxed)
    }

    fn fail(&self, what: &str, e: &std::io::Error) {
        if !self.shared.failed.swap(true, Ordering::Relaxed) {
            tracing::error!(
                error = %e,
                during = what,
                dir = %self.dir.display(),
                "message store failed; persistent messages can no longer be confirmed"
            );
        }
    }

    fn handle(&mut self, req: Request, batch: &mut Batch) {
        if let Request::Append(a) = &req {
            self.shared
                .queued_bytes
                .fetch_sub(a.msg.queued_cost(), Ordering::Relaxed);
        }
        if self.is_failed() {
            return; // completions dropped: callers see the store is gone
        }
        if let Err(e) = self.handle_inner(req, batch) {
            self.fail("append", &e);
        }
    }

    fn handle_inner(&mut self, req: Request, batch: &mut Batch) -> std::io::Result<()> {
        match req {
            Request::Append(a) => {
                let Append {
                    id,
                    msg,
                    queues,
                    done,
                } = *a;
                let len = record::message_len(&msg, &queues);
                self.make_room(len, Some(id))?;
                let mut qs: Vec<u32> = queues.iter().map(|q| self.ix.queue_id(q)).collect();
                qs.sort_unstable();
                qs.dedup();
                if !self.ix.add_message(id, &qs) {
                    // Ids reach the writer in order (the handle assigns them under its
                    // send lock), so this means a bug, not bad input.
                    tracing::error!(
                        id,
                        next_id = self.next_id,
                        "message store: id out of order; not stored"
                    );
                    return Ok(());
                }
                record::encode_message(&mut self.seg.buf, id, &msg, &queues);
                self.seg.note_appended(len);
                self.next_id = self.next_id.max(id + 1);
                batch.sync = true;
                if let Some(done) = done {
                    batch.appended.push((done, id));
                }
            }
            Request::Ack { queue, id } => {
                let Some(q) = self.ix.find_queue(&queue) else {
                    return Ok(());
                };
                self.make_room(record::RECORD_HEAD + 9 + queue.len(), None)?;
                if self.ix.settle(q, id) {
                    self.append_carried(Carried::Ack(q, id));
                }
            }
            Request::Delivered { queue, id } => {
                if let Some(q) = self.ix.find_queue(&queue) {
                    batch.delivered.push((q, id));
                }
            }
            Request::Drop { queue, up_to } => {
                let Some(q) = self.ix.find_queue(&queue) else {
                    return Ok(());
                };
                self.make_room(record::RECORD_HEAD + 9 + queue.len(), None)?;
                if self.ix.drop_queue(q, up_to, |_| {}) > 0 {
                    self.append_carried(Carried::Drop(q, up_to));
                }
            }
            Request::Flush(done) => {
                batch.sync = true;
                batch.flushes.push(done);
            }
        }
        if self.seg.buf.len() >= WRITE_CHUNK {
            self.seg.write_out()?;
        }
        Ok(())
    }

    /// Encodes an ack, delivered mark or drop into the current segment and tells the
    /// index that this segment now holds it.
    fn append_carried(&mut self, c: Carried) {
        let before = self.seg.buf.len();
        match &c {
            Carried::Ack(q, id) => {
                record::encode_ack(&mut self.seg.buf, self.ix.queue_name(*q), *id)
            }
            Carried::Delivered(q, id) => {
                record::encode_delivered(&mut self.seg.buf, self.ix.queue_name(*q), *id)
            }
            Carried::Drop(q, up_to) => {
                record::encode_drop(&mut self.seg.buf, self.ix.queue_name(*q), *up_to)
            }
        }
        let added = self.seg.buf.len() - before;
        self.seg.note_appended(added);
        let segno = self.seg.segno;
        self.ix.note(segno, c);
    }

    /// Starts a new segment if `len` more bytes would take the current one past its size,
    /// or if message `id` cannot be placed in it.
    fn make_room(&mut self, len: usize, id: Option<u64>) -> std::io::Result<()> {
        let has_records = self.seg.len > record::HEADER_LEN as u64;
        let full = has_records && self.seg.len + len as u64 > self.segment_bytes;
        let misfit = id.is_some_and(|id| !self.ix.fits_current(id));
        if !(full || misfit) {
            return Ok(());
        }
        // The old segment's records become durable now; their completions still wait for
        // the batch's own sync, which comes after.
        self.seg.sync()?;
        let segno = self.next_segno;
        let first_id = id.map_or(self.next_id, |id| id.max(self.next_id));
        let new = OpenSegment::create(&self.dir, segno, first_id)?;
        self.next_segno += 1;
        self.seg = new;
        self.ix.open_segment(segno, first_id);
        tracing::debug!(segment = segno, first_id, "message store: new segment");
        Ok(())
    }

    /// Copies forward what emptied segments still carry, syncs, fires completions, then
    /// unlinks the emptied segments.
    fn finish_batch(&mut self, batch: Batch) {
        let mut deleted = Vec::new();
        if !self.is_failed() {
            if let Err(e) = self.write_delivered(&batch.delivered) {
                self.fail("append", &e);
            }
        }
        if !self.is_failed() {
            match self.carry_forward() {
                Ok(d) => deleted = d,
                Err(e) => self.fail("carrying records forward", &e),
            }
        }
        let synced = if self.is_failed() {
            false
        } else {
            let r = if batch.sync || !deleted.is_empty() {
                self.shared.syncs.fetch_add(1, Ordering::Relaxed);
                self.seg.sync()
            } else {
                self.seg.write_out()
            };
            match r {
                Ok(()) => true,
                Err(e) => {
                    self.fail("fdatasync", &e);
                    false
                }
            }
        };
        if !synced {
            return; // dropping the batch drops the completions
        }
        for (done, id) in batch.appended {
            done.complete(id);
        }
        for done in batch.flushes {
            done.complete(0);
        }
        self.unlink(deleted);
    }

    fn write_delivered(&mut self, marks: &[(u32, u64)]) -> std::io::Result<()> {
        for &(q, id) in marks {
            if self.ix.is_live(q, id) {
                self.make_room(record::RECORD_HEAD + 9 + self.ix.queue_name(q).len(), None)?;
                self.append_carried(Carried::Delivered(q, id));
            }
        }
        Ok(())
    }

    /// Re-appends what emptied segments carry; returns their numbers.
    pub(crate) fn carry_forward(&mut self) -> std::io::Result<Vec<u64>> {
        let dels = self.ix.take_deletable();
        let mut out = Vec::with_capacity(dels.len());
        for (segno, carried) in dels {
            for c in carried {
                self.make_room(record::RECORD_HEAD + 9 + 255, None)?;
                self.append_carried(c);
            }
            out.push(segno);
        }
        Ok(out)
    }

    /// Removes segment files whose carried records are durable elsewhere.
    pub(crate) fn unlink(&mut self, segnos: Vec<u64>) {
        if segnos.is_empty() {
            return;
        }
        for segno in segnos {
            match std::fs::remove_file(segment::path(&self.dir, segno)) {
                Ok(()) => {
                    tracing::debug!(segment = segno, "message store: settled segment deleted")
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    // Harmless for correctness (replay settles it again); it only costs disk.
                    tracing::warn!(segment = segno, error = %e, "message store: could not delete a settled segment");
                }
            }
            self.ix.remove_segment(segno);
        }
        if let Err(e) = segment::sync_dir(&self.dir) {
            tracing::warn!(error = %e, "message store: directory sync after deletion failed");
        }
    }
}
