//! The writer thread: the only code that appends to segment files, with group commit.
//!
//! `StoreHandle`s send it requests over a channel. It wakes on the first, takes every
//! request already waiting, encodes them all into the current segment's buffer (writing
//! it out in 1 MiB chunks), and has the batch fdatasynced once if it holds a message, a
//! flush or a deletion; the completions fire only after that sync. Acks and delivered
//! marks alone never cost a sync: losing one in a crash only means a message comes back
//! (at-least-once), and the next sync covers them anyway.
//!
//! Pipelined: the fdatasync runs on the sync thread (`syncer`) while the writer takes and
//! writes the next batch; the writer waits for it only before it submits the next sync,
//! rolls or cuts a segment, or deletes one (at most one sync in flight, so a segment is
//! never cut or deleted under it). A batch written while the previous sync was in flight
//! lies after that sync's length: if that sync fails, both are cut and both fail.
//!
//! It also rolls segments at 64 MiB and deletes settled ones. It never blocks on anything
//! but its own disk I/O and never panics.
//!
//! A failed write or sync (a full disk) fails the batch, not the writer: the batch's
//! completions are dropped (publishers get a nack, tx.commit an error), the segment is
//! cut back to its length at the last good sync (so no torn record sits where later
//! records follow; after a failed fsync the kernel may have dropped those pages, so they
//! are never trusted), the failure hook raises the disk alarm, and the writer goes on:
//! the settlement records (acks, drops, delivered marks, records carried forward) of the
//! failed batch are written again with the next one, which comes with the next request
//! or after [`RETRY`]. A message whose record was cut keeps its place in the index: its
//! copy in memory (enqueued before the sync, as publishing does) is still a message of
//! that queue, delivered and acked as usual, only not durable; the nack told the
//! publisher the broker did not take responsibility for it, so it is gone after a
//! restart (or back, if a segment roll had already synced it), either of which a nacked
//! message may be.

use super::index::{Carried, Index};
use super::record;
use super::segment::{self, OpenSegment, WRITE_CHUNK};
use super::syncer::{Job, Syncer};
use super::StoredMessage;
use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, TryRecvError};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Requests drained into one batch at most, so completions are not held back forever
/// under a flood.
const MAX_BATCH: usize = 65_536;

/// After a failed batch, how long the writer waits for a request before it tries the
/// failed batch's settlement records (and deletions) again on its own.
pub(crate) const RETRY: Duration = Duration::from_secs(1);

/// Called on the writer thread at every failed write or sync (the broker raises its disk
/// alarm); must not block.
pub(crate) type FailureHook = Box<dyn Fn(&io::Error) + Send + Sync>;

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
        times: u16,
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
    /// The last batch failed (cleared by the next one that syncs).
    pub(crate) failed: AtomicBool,
    pub(crate) on_failure: OnceLock<FailureHook>,
    /// Failures to inject into the segments (tests only).
    #[cfg(test)]
    pub(crate) faults: Arc<super::segment::Faults>,
    /// Memory of the appends sent to the writer and not yet written (`queued_cost`).
    pub(crate) queued_bytes: AtomicU64,
    /// The broker's file I/O counters (syncs, writes, messages stored).
    pub(crate) io: Arc<super::iostats::IoStats>,
    /// The index's heap bytes, refreshed every `MEASURE_EVERY` batches.
    pub(crate) index_bytes: AtomicU64,
    /// Taken by the writer after the first request of each batch (tests only): a test
    /// that holds it makes everything it sends meanwhile one batch.
    #[cfg(test)]
    pub(crate) hold: std::sync::Mutex<()>,
}

/// Settlement records kept for a redo (`Writer::written`) before a batch syncs even
/// though it holds only acks: bounds that memory when nothing else syncs.
const MAX_UNSYNCED_RECORDS: usize = 65_536;

/// The largest list of completions kept for the next batch (a flood's is dropped).
const SPARE_APPENDED: usize = 16_384;

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
    /// Settlement records encoded since the current segment's last sync: written again
    /// if that sync fails.
    pub(crate) written: Vec<Carried>,
    /// Settlement records of a failed batch, to write with the next one.
    pub(crate) redo: Vec<Carried>,
    /// Acks and drops that arrived in a batch after it failed, for the next one.
    pub(crate) deferred: Vec<Request>,
    /// Segments chosen for deletion by a failed batch: unlinked after the next sync.
    pub(crate) unlink_later: Vec<u64>,
    /// The current segment could not be cut back after a failure: nothing more may be
    /// appended to it.
    pub(crate) must_roll: bool,
    /// The sync in flight (`syncer` runs it), if any.
    pub(crate) inflight: Option<Inflight>,
    /// Started by `run`.
    pub(crate) syncer: Option<Syncer>,
    /// Completions of a failed sync: dropped (nacked) once the failure is handled.
    pub(crate) nack_later: Vec<super::Done>,
    /// Reused for each append's queue numbers.
    pub(crate) scratch_queues: Vec<u32>,
    /// A batch's list of completions, back from the sync thread emptied, for the next one.
    pub(crate) spare_appended: Vec<(super::Done, u64)>,
}

/// What the writer must do once the sync in flight is done.
pub(crate) struct Inflight {
    segno: u64,
    /// The segment length that sync makes durable.
    len: u64,
    /// Settlement records written before `len` since the previous sync (a redo on failure).
    written: Vec<Carried>,
    /// Segments to unlink once it succeeded.
    deleted: Vec<u64>,
}

/// Completions waiting for the batch's sync.
#[derive(Default)]
struct Batch {
    sync: bool,
    appended: Vec<(super::Done, u64)>,
    flushes: Vec<super::Done>,
    /// Delivered marks, written at the end of the batch unless an ack in the same batch
    /// made them pointless (the common case for a consumer that keeps up).
    delivered: Vec<(u32, u64, u16)>,
    /// The first write error: the batch ends there (deferred requests that follow it
    /// are deferred again).
    failed: Option<io::Error>,
}

impl Writer {
    pub(crate) fn run(mut self, rx: Receiver<Request>) {
        self.syncer = Some(Syncer::start(self.shared.clone()));
        let mut batches = 0u32;
        loop {
            // With a sync in flight, what is waiting becomes the next batch; with nothing
            // waiting, collect that sync before sleeping (its deletions, its failure).
            let first = if self.inflight.is_some() {
                match rx.try_recv() {
                    Ok(req) => Some(req),
                    Err(TryRecvError::Empty) => {
                        if let Err(e) = self.collect() {
                            self.fail_batch(Batch::default(), e);
                        }
                        continue;
                    }
                    Err(TryRecvError::Disconnected) => break,
                }
            // With work left by a failed batch, try again after a while even if no
            // request comes.
            } else if self.has_leftovers() {
                match rx.recv_timeout(RETRY) {
                    Ok(req) => Some(req),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            } else {
                match rx.recv() {
                    Ok(req) => Some(req),
                    Err(_) => break,
                }
            };
            #[cfg(test)]
            drop(super::lock(&self.shared.hold));
            let mut batch = self.begin_batch();
            let mut next = first;
            let mut n = 0;
            while let Some(req) = next.take() {
                self.handle(req, &mut batch);
                n += 1;
                // A failed batch ends at once: what comes next is tried in a new one.
                if n < MAX_BATCH && batch.failed.is_none() {
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
        let mut last = self.begin_batch();
        last.sync = true;
        self.finish_batch(last);
        if let Err(e) = self.collect() {
            self.fail_batch(Batch::default(), e);
        }
    }

    /// Waits for the sync in flight. On success: its length is durable, its deletions
    /// happen. On failure (its completions were dropped): its settlement records and
    /// deletions join this batch's, which fails too (the caller cuts the segment back).
    fn collect(&mut self) -> io::Result<()> {
        let Some(f) = self.inflight.take() else {
            return Ok(());
        };
        let result = match self.syncer.as_mut().and_then(Syncer::wait) {
            Some(r) => r,
            None => Err((
                io::Error::other("message store: sync result lost"),
                Vec::new(),
            )),
        };
        match result {
            Ok(spare) => {
                // Kept unless a flood made it large (that memory goes back).
                if spare.capacity() <= SPARE_APPENDED {
                    self.spare_appended = spare;
                }
                if self.seg.segno == f.segno {
                    self.seg.synced_to(f.len);
                }
                self.unlink(f.deleted);
                Ok(())
            }
            Err((e, nack)) => {
                self.nack_later.extend(nack);
                let mut written = f.written;
                written.append(&mut self.written);
                self.written = written;
                self.unlink_later.extend(f.deleted);
                Err(e)
            }
        }
    }

    fn has_leftovers(&self) -> bool {
        !(self.redo.is_empty() && self.deferred.is_empty() && self.unlink_later.is_empty())
    }

    /// A new batch, starting with what a failed one left: its deferred requests, then its
    /// settlement records again.
    fn begin_batch(&mut self) -> Batch {
        let mut batch = Batch {
            sync: self.has_leftovers(),
            appended: std::mem::take(&mut self.spare_appended),
            ..Batch::default()
        };
        for req in std::mem::take(&mut self.deferred) {
            self.handle(req, &mut batch);
        }
        if batch.failed.is_none() {
            if let Err(e) = self.write_redo() {
                batch.failed = Some(e);
            }
        }
        batch
    }

    pub(crate) fn measure(&self) {
        self.shared
            .index_bytes
            .store(self.ix.heap_bytes(), Ordering::Relaxed);
    }

    /// A batch failed: raise the alarm, log the first failure of a run of them.
    fn note_failure(&self, e: &io::Error) {
        if !self.shared.failed.swap(true, Ordering::Relaxed) {
            tracing::error!(
                error = %e,
                dir = %self.dir.display(),
                "message store: write failed; persistent messages are nacked until writes succeed again"
            );
        }
        if let Some(hook) = self.shared.on_failure.get() {
            hook(e);
        }
    }

    fn handle(&mut self, req: Request, batch: &mut Batch) {
        if let Request::Append(a) = &req {
            self.shared
                .queued_bytes
                .fetch_sub(a.msg.queued_cost(), Ordering::Relaxed);
        }
        if batch.failed.is_some() {
            match req {
                // Completions dropped: the publisher is nacked, tx.commit fails.
                Request::Append(_) | Request::Flush(_) => {}
                settlement => self.deferred.push(settlement),
            }
            return;
        }
        if let Err(e) = self.handle_inner(req, batch) {
            batch.failed = Some(e);
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
                // A scratch list kept across appends: no allocation per message.
                let mut qs = std::mem::take(&mut self.scratch_queues);
                qs.clear();
                qs.extend(queues.iter().map(|q| self.ix.queue_id(q)));
                qs.sort_unstable();
                qs.dedup();
                let added = self.ix.add_message(id, &qs);
                self.scratch_queues = qs;
                if !added {
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
                self.shared.io.stored(1);
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
                if let Err(e) = self.make_room(record::RECORD_HEAD + 9 + queue.len(), None) {
                    self.deferred.push(Request::Ack { queue, id });
                    return Err(e);
                }
                if self.ix.settle(q, id) {
                    self.append_carried(Carried::Ack(q, id));
                }
            }
            Request::Delivered { queue, id, times } => {
                if let Some(q) = self.ix.find_queue(&queue) {
                    batch.delivered.push((q, id, times));
                }
            }
            Request::Drop { queue, up_to } => {
                let Some(q) = self.ix.find_queue(&queue) else {
                    return Ok(());
                };
                if let Err(e) = self.make_room(record::RECORD_HEAD + 9 + queue.len(), None) {
                    self.deferred.push(Request::Drop { queue, up_to });
                    return Err(e);
                }
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
        self.written.push(c.clone());
        let before = self.seg.buf.len();
        match &c {
            Carried::Ack(q, id) => {
                record::encode_ack(&mut self.seg.buf, self.ix.queue_name(*q), *id)
            }
            Carried::Delivered(q, id, times) => {
                record::encode_delivered(&mut self.seg.buf, self.ix.queue_name(*q), *id, *times)
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
        if !(full || misfit || self.must_roll) {
            return Ok(());
        }
        // The segment is synced (or abandoned) and replaced: not under a pending sync.
        self.collect()?;
        // The old segment's records become durable now; their completions still wait for
        // the batch's own sync, which comes after. One that could not be cut back after
        // a failure is left as it is: recovery stops reading it at the damage.
        if !self.must_roll {
            self.seg.sync()?;
            self.written.clear();
        }
        let segno = self.next_segno;
        let first_id = id.map_or(self.next_id, |id| id.max(self.next_id));
        #[cfg(not(test))]
        let new = OpenSegment::create(&self.dir, segno, first_id, self.shared.io.clone())?;
        #[cfg(test)]
        let new = OpenSegment::create_with(
            &self.dir,
            segno,
            first_id,
            self.shared.faults.clone(),
            self.shared.io.clone(),
        )?;
        self.next_segno += 1;
        self.must_roll = false;
        self.seg = new;
        self.ix.open_segment(segno, first_id);
        tracing::debug!(segment = segno, first_id, "message store: new segment");
        Ok(())
    }

    /// Copies forward what emptied segments still carry, syncs, fires completions, then
    /// unlinks the emptied segments. On a failure it cuts the segment back and keeps the
    /// settlement records and deletions for the next batch; the completions are dropped.
    fn finish_batch(&mut self, mut batch: Batch) {
        let mut deleted = std::mem::take(&mut self.unlink_later);
        let result = match batch.failed.take() {
            Some(e) => Err(e),
            None => self.write_out_batch(&mut batch, &mut deleted),
        };
        if let Err(e) = result {
            self.unlink_later.append(&mut deleted);
            self.fail_batch(batch, e);
        }
    }

    /// A batch failed (or the sync before it did): raise the alarm, cut the segment back
    /// to its last good sync, keep the settlement records and deletions for the next
    /// batch. Dropping `batch` drops its completions.
    fn fail_batch(&mut self, batch: Batch, e: io::Error) {
        // Not written yet: the marks go with the redo.
        let marks = batch.delivered.iter();
        self.redo
            .extend(marks.map(|&(q, id, times)| Carried::Delivered(q, id, times)));
        // Nothing may be cut under a pending sync; its failure (if it failed too) is
        // already this one.
        if let Err(e2) = self.collect() {
            tracing::debug!(error = %e2, "message store: the sync in flight failed too");
        }
        self.note_failure(&e);
        if let Err(e) = self.seg.cut_back() {
            tracing::error!(segment = self.seg.segno, error = %e, "message store: cannot cut a segment back after a failed write; starting a new one");
            self.must_roll = true;
        }
        self.redo.append(&mut self.written);
        // Nacked only now: the alarm is up and the segment cut when a publisher hears.
        self.nack_later.clear();
        drop(batch);
    }

    /// The end of a batch that has not failed so far: delivered marks, records carried
    /// forward, the write (while the previous sync may still run), then, once that sync
    /// is collected, this batch's sync is handed to the sync thread with its completions
    /// (when nothing needs a sync, only the write).
    fn write_out_batch(&mut self, batch: &mut Batch, deleted: &mut Vec<u64>) -> io::Result<()> {
        self.write_delivered(&batch.delivered)?;
        // Written: a failure from here on redoes them from `written`.
        batch.delivered.clear();
        self.carry_forward(deleted)?;
        if !(batch.sync || !deleted.is_empty() || self.written.len() >= MAX_UNSYNCED_RECORDS) {
            return self.seg.write_out();
        }
        self.seg.write_out()?;
        self.collect()?;
        let (file, len, inject_failure) = self.seg.start_sync()?;
        self.inflight = Some(Inflight {
            segno: self.seg.segno,
            len,
            written: std::mem::take(&mut self.written),
            deleted: std::mem::take(deleted),
        });
        let job = Job {
            file,
            appended: std::mem::take(&mut batch.appended),
            flushes: std::mem::take(&mut batch.flushes),
            inject_failure,
        };
        match self.syncer.as_mut() {
            Some(s) => s.submit(job),
            None => {
                // Outside `run` (never in practice): no pipeline.
                let mut s = Syncer::start(self.shared.clone());
                s.submit(job);
                self.syncer = Some(s);
            }
        }
        Ok(())
    }

    fn write_delivered(&mut self, marks: &[(u32, u64, u16)]) -> std::io::Result<()> {
        for &(q, id, times) in marks {
            if self.ix.is_live(q, id) {
                self.make_room(record::RECORD_HEAD + 11 + self.ix.queue_name(q).len(), None)?;
                self.append_carried(Carried::Delivered(q, id, times));
            }
        }
        Ok(())
    }

    /// Re-appends what emptied segments carry and adds their numbers to `deleted` (to
    /// unlink after the sync). If a write fails, what was not appended stays in `redo`.
    pub(crate) fn carry_forward(&mut self, deleted: &mut Vec<u64>) -> std::io::Result<()> {
        for (segno, carried) in self.ix.take_deletable() {
            self.redo.extend(carried);
            deleted.push(segno);
        }
        self.write_redo()
    }

    /// Appends the records waiting in `redo` (a delivered mark only if still useful).
    fn write_redo(&mut self) -> std::io::Result<()> {
        while let Some(c) = self.redo.pop() {
            if let Carried::Delivered(q, id, _) = c {
                if !self.ix.is_live(q, id) {
                    continue;
                }
            }
            if let Err(e) = self.make_room(record::RECORD_HEAD + 11 + 255, None) {
                self.redo.push(c);
                return Err(e);
            }
            self.append_carried(c);
        }
        if self.seg.buf.len() >= WRITE_CHUNK {
            self.seg.write_out()?;
        }
        Ok(())
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
