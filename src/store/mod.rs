//! Durable storage: the data-directory lock, the message store (segment files with group
//! commit) and the definitions file.
//!
//! Called by the broker: once at start (`StoreHandle::open`, `definitions::load`, then
//! `Recovered::stream` to read the stored messages back once its queues exist), then by
//! publishing channels (`append` for persistent messages routed to durable queues,
//! `flush_then` at tx.commit), consuming channels (`delivered`, `ack`), the vhost
//! (`drop_queue` on purge or delete, `defwriter` when durable topology changes: the
//! definitions file is rewritten on a thread of its own, coalesced) and shutdown
//! (`flush`). It never calls back into the broker, never blocks an async task (every
//! disk write happens on the writer threads; the handles only take a short lock to
//! number and enqueue; completions are callbacks), and never panics: damage found on
//! disk is logged and skipped, I/O failures are returned.
//!
//! Layout of a data directory:
//!
//! ```text
//! <data_dir>/LOCK              held (flock) by the running broker; holds its pid
//! <data_dir>/definitions.json  RabbitMQ's definitions format (see `definitions`)
//! <data_dir>/msgs/NNNNNNNNNN.seg   message store segments (see `record` for the layout)
//! ```
//!
//! Queue names in the store are opaque keys; use [`queue_key`] so that equal queue names
//! in different vhosts never meet. A message is written once however many durable queues
//! it went to; each queue settles it with `ack` (or all at once with `drop_queue`), and a
//! segment file is deleted once everything in it is settled.

pub mod definitions;
pub mod defwriter;
pub mod fieldvalue;
pub mod import;
mod index;
pub mod iostats;
mod record;
mod recovery;
mod segment;
mod syncer;
mod writer;

#[cfg(test)]
mod bench;
#[cfg(test)]
mod faults_tests;
#[cfg(test)]
mod tests;

use bytes::Bytes;
pub use iostats::IoStats;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;
use writer::{Request, Shared, Writer};

/// A persistent message as stored: what a consumer needs to receive it again.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredMessage {
    pub exchange: String,
    pub routing_key: String,
    /// Property flags and list exactly as the publisher sent them.
    pub properties: Bytes,
    pub body: Bytes,
}

impl StoredMessage {
    /// What it costs in memory while it waits for the writer: its bytes plus the request
    /// around them (queue keys, allocations). Counted by `queued_bytes`.
    pub(crate) fn queued_cost(&self) -> u64 {
        (self.exchange.len() + self.routing_key.len() + self.properties.len() + self.body.len())
            as u64
            + 160
    }
}

/// What was in the store at start-up: which messages each queue still holds, not the
/// messages themselves. [`Recovered::stream`] reads them back from the segments, one
/// segment at a time, so a backlog larger than memory can be recovered.
#[derive(Debug, Default)]
pub struct Recovered {
    /// The segment directory.
    dir: std::path::PathBuf,
    /// Queue keys by the numbers `segments` uses, with their live message counts (0 for
    /// numbers that hold nothing).
    queues: Vec<(Box<str>, usize)>,
    /// Segments holding live messages, oldest first.
    segments: Vec<recovery::LiveSegment>,
    /// (queue number, id) -> times delivered, for messages delivered more than once
    /// (quorum queues' redeliveries); once is the "delivered" bit of the offsets.
    times: std::collections::HashMap<(u32, u64), u16>,
    /// The broker's file I/O counters (reads and messages read back count there).
    io: Arc<IoStats>,
}

/// One recovered message, borrowing from the segment being read (see
/// [`Recovered::stream`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecoveredRecord<'a> {
    /// The id to pass to `ack`/`delivered` for this message.
    pub id: u64,
    pub exchange: &'a str,
    pub routing_key: &'a str,
    /// Property flags and list exactly as the publisher sent them.
    pub properties: &'a [u8],
    pub body: &'a [u8],
}

/// What to do once an append is durable: called with the message id after the
/// fdatasync that covers it, or with `None` if its write or sync failed (a full disk; the
/// caller nacks). Dropping it uncalled counts as `None`, so no path forgets a publisher.
pub struct Done(Kind);

enum Kind {
    Spent,
    Call(Box<dyn FnOnce(Option<u64>) + Send>),
    /// Answered through `Answers`, batched with the other tags for the same receiver that
    /// one sync covers (no allocation per message).
    Tagged(Arc<dyn Answers>, u64),
}

/// A receiver of many store answers at once (a connection's publisher confirms): one call
/// per sync, whatever the number of its messages that sync covered.
pub trait Answers: Send + Sync {
    /// The appends with these tags are durable (`ok`), or failed.
    fn answer(&self, tags: Vec<u64>, ok: bool);
}

impl Done {
    pub fn new(f: impl FnOnce(Option<u64>) + Send + 'static) -> Done {
        Done(Kind::Call(Box::new(f)))
    }

    /// Answered by `to.answer(&[tag, ...], ok)`, batched per sync.
    pub fn tagged(to: Arc<dyn Answers>, tag: u64) -> Done {
        Done(Kind::Tagged(to, tag))
    }

    pub(crate) fn complete(mut self, id: u64) {
        self.finish(Some(id));
    }

    /// Answers once: the message id when durable, `None` when it failed (or was dropped).
    fn finish(&mut self, id: Option<u64>) {
        match std::mem::replace(&mut self.0, Kind::Spent) {
            Kind::Call(f) => f(id),
            Kind::Tagged(to, tag) => to.answer(vec![tag], id.is_some()),
            Kind::Spent => {}
        }
    }

    /// Completes them all (leaving `all` empty), with one `answer` call per receiver of
    /// tagged ones.
    pub(crate) fn complete_all(all: &mut Vec<(Done, u64)>) {
        let mut groups: Vec<(Arc<dyn Answers>, Vec<u64>)> = Vec::new();
        for (mut done, id) in all.drain(..) {
            match std::mem::replace(&mut done.0, Kind::Spent) {
                Kind::Tagged(to, tag) => {
                    let same = |(g, _): &&mut (Arc<dyn Answers>, Vec<u64>)| {
                        std::ptr::addr_eq(Arc::as_ptr(g), Arc::as_ptr(&to))
                    };
                    match groups.iter_mut().find(same) {
                        Some((_, tags)) => tags.push(tag),
                        None => groups.push((to, vec![tag])),
                    }
                }
                Kind::Call(f) => f(Some(id)),
                Kind::Spent => {}
            }
        }
        for (to, tags) in groups {
            to.answer(tags, true);
        }
    }
}

impl Drop for Done {
    fn drop(&mut self) {
        self.finish(None);
    }
}

impl From<oneshot::Sender<u64>> for Done {
    /// The id on success; a dropped sender (receiver error) on failure.
    fn from(tx: oneshot::Sender<u64>) -> Done {
        Done::new(move |id| {
            if let Some(id) = id {
                let _ = tx.send(id);
            }
        })
    }
}

/// Tuning for [`StoreHandle::open_with`].
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// A segment file is closed and a new one started past this size (default 64 MiB).
    pub segment_bytes: u64,
    /// Where the store counts its file I/O (shared with the page files).
    pub io: Arc<IoStats>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            segment_bytes: segment::SEGMENT_BYTES,
            io: Arc::default(),
        }
    }
}

/// The store key of queue `name` in `vhost`. Length-prefixed, so no two (vhost, name)
/// pairs share a key whatever characters they hold. Shared (`Arc`): every ack names it.
pub fn queue_key(vhost: &str, name: &str) -> Arc<str> {
    Arc::from(format!("{}:{}{}", vhost.len(), vhost, name))
}

/// Splits a key made by [`queue_key`] back into (vhost, name).
pub fn split_queue_key(key: &str) -> Option<(&str, &str)> {
    let (len, rest) = key.split_once(':')?;
    let len: usize = len.parse().ok()?;
    if len > rest.len() || !rest.is_char_boundary(len) {
        return None;
    }
    Some(rest.split_at(len))
}

/// The broker's handle on the message store. Cheap to clone; `Send + Sync`. Dropping the
/// last clone lets the writer thread sync and exit, which releases the directory lock.
#[derive(Clone)]
pub struct StoreHandle {
    inner: Arc<Inner>,
}

struct Inner {
    /// The next message id. Ids are assigned and enqueued under this lock so the writer
    /// receives them in increasing order (segments hold contiguous id ranges).
    next_id: Mutex<u64>,
    tx: Sender<Request>,
    shared: Arc<Shared>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl StoreHandle {
    /// Locks `data_dir` (creating it if needed), replays the message store (pass 1 of
    /// recovery: the index only, no message bodies) and starts the writer thread. Read the
    /// recovered messages with [`Recovered::stream`]. Fails with `ErrorKind::ResourceBusy` if another process (or another
    /// open in this process) holds the directory; otherwise only if the directory cannot
    /// be read or written. Damaged segments never make it fail (see `recovery`).
    pub fn open(data_dir: &Path) -> io::Result<(StoreHandle, Recovered)> {
        Self::open_with(data_dir, StoreOptions::default())
    }

    /// `open` with explicit options.
    pub fn open_with(data_dir: &Path, opts: StoreOptions) -> io::Result<(StoreHandle, Recovered)> {
        let msgs = data_dir.join("msgs");
        std::fs::create_dir_all(&msgs)?;
        let lock = lock_dir(data_dir)?;
        let rep = recovery::replay(&msgs, &opts.io)?;
        let seg =
            segment::OpenSegment::create(&msgs, rep.next_segno, rep.next_id, opts.io.clone())?;
        let mut ix = rep.index;
        ix.open_segment(seg.segno, rep.next_id);
        ix.collect_empty();
        let shared = Arc::new(Shared {
            io: opts.io.clone(),
            ..Shared::default()
        });
        #[cfg(test)]
        let seg = {
            let mut seg = seg;
            seg.faults = Some(shared.faults.clone());
            seg
        };
        let mut w = Writer {
            dir: msgs,
            ix,
            seg,
            next_segno: rep.next_segno + 1,
            segment_bytes: opts.segment_bytes.max(4096),
            next_id: rep.next_id,
            shared: shared.clone(),
            _lock: lock,
            written: Vec::new(),
            redo: Vec::new(),
            deferred: Vec::new(),
            unlink_later: Vec::new(),
            must_roll: false,
            inflight: None,
            syncer: None,
            nack_later: Vec::new(),
            scratch_queues: Vec::new(),
            spare_appended: Vec::new(),
        };
        // Settled segments left by the previous run go now, before anything new arrives.
        let mut dels = Vec::new();
        w.carry_forward(&mut dels)?;
        w.seg.sync()?;
        w.written.clear();
        w.unlink(dels);

        tracing::info!(
            queues = rep.recovered.queues().count(),
            messages = rep.recovered.message_count(),
            next_id = rep.next_id,
            segments = w.ix.segments.len(),
            "message store recovered"
        );
        w.measure();
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("warren-store".into())
            .spawn(move || w.run(rx))?;
        let inner = Inner {
            next_id: Mutex::new(rep.next_id),
            tx,
            shared,
            thread: Mutex::new(Some(thread)),
        };
        Ok((
            StoreHandle {
                inner: Arc::new(inner),
            },
            rep.recovered,
        ))
    }

    /// Stores `msg` once for all `queues` (queue keys) and returns its id at once. `done`
    /// receives the id after the fdatasync that covers the record: send the publisher
    /// confirm then. If that write or sync fails, `done` is dropped instead (its receiver
    /// gets an error): nack. The id stays valid for `ack` and `delivered` either way. With no queues nothing is written and `done` fires at once.
    pub fn append(&self, msg: StoredMessage, queues: Vec<Arc<str>>, done: Option<Done>) -> u64 {
        let mut next = lock(&self.inner.next_id);
        let id = *next;
        *next += 1;
        if queues.is_empty() {
            drop(next);
            if let Some(done) = done {
                done.complete(id);
            }
            return id;
        }
        self.inner
            .shared
            .queued_bytes
            .fetch_add(msg.queued_cost(), Ordering::Relaxed);
        // A send error means the writer is gone; dropping `done` tells the caller.
        let _ = self.inner.tx.send(Request::Append(Box::new(writer::Append {
            id,
            msg,
            queues,
            done,
        })));
        id
    }

    /// Message `id` is settled in `queue` (acked, or rejected/expired without requeue).
    /// Durable with the next sync; no completion.
    pub fn ack(&self, queue: &Arc<str>, id: u64) {
        let _ = self.inner.tx.send(Request::Ack {
            queue: queue.clone(),
            id,
        });
    }

    /// Message `id` was handed to a consumer of `queue` for the `times`th time; after a
    /// restart it comes back with redelivered=true unless acked, and with this count.
    /// Needed the first time it is delivered, and again only where the count matters
    /// (quorum queues' x-delivery-count). The highest count recorded wins.
    pub fn delivered(&self, queue: &Arc<str>, id: u64, times: u16) {
        let _ = self.inner.tx.send(Request::Delivered {
            queue: queue.clone(),
            id,
            times,
        });
    }

    /// Settles every message of `queue` stored so far (queue deleted, or purged). Call it
    /// while holding the queue's lock so no append for this queue slips in between;
    /// for a purge that must spare later messages, use [`StoreHandle::drop_queue_up_to`].
    pub fn drop_queue(&self, queue: &Arc<str>) {
        let next = lock(&self.inner.next_id);
        let up_to = next.saturating_sub(1);
        // Sent under the id lock: every message with id <= up_to is already enqueued.
        let _ = self.inner.tx.send(Request::Drop {
            queue: queue.clone(),
            up_to,
        });
    }

    /// Settles the messages of `queue` whose id is at most `up_to` (a purge that knows the
    /// highest id it removed).
    pub fn drop_queue_up_to(&self, queue: &Arc<str>, up_to: u64) {
        let _ = self.inner.tx.send(Request::Drop {
            queue: queue.clone(),
            up_to,
        });
    }

    /// Calls `done` once everything sent so far is written and fdatasynced (with id 0), or
    /// drops it (`None`) if a write or sync failed meanwhile. For the connection task, which must not
    /// wait: tx.commit answers from `done`.
    pub fn flush_then(&self, done: Done) {
        // A send error means the writer is gone; dropping `done` tells the caller.
        let _ = self.inner.tx.send(Request::Flush(done));
    }

    /// Waits until everything sent so far is written and fdatasynced. Err if a write or
    /// sync failed meanwhile (some of it is not durable).
    pub async fn flush(&self) -> io::Result<()> {
        let (tx, rx) = oneshot::channel();
        self.flush_then(tx.into());
        rx.await
            .map(|_| ())
            .map_err(|_| io::Error::other("message store has failed; see the log"))
    }

    /// `flush` for the store's own tests, outside any runtime. The broker never blocks a
    /// thread on the store.
    #[cfg(test)]
    pub(crate) fn flush_blocking(&self) -> io::Result<()> {
        let (tx, rx) = oneshot::channel();
        self.flush_then(tx.into());
        rx.blocking_recv()
            .map(|_| ())
            .map_err(|_| io::Error::other("message store has failed; see the log"))
    }

    /// True while writes fail: the last batch failed and none has synced since.
    pub fn is_failed(&self) -> bool {
        self.inner.shared.failed.load(Ordering::Relaxed)
    }

    /// Sets what the writer thread calls at every failed write or sync (the broker raises
    /// its disk alarm). It runs on the writer thread and must not block. Only the first
    /// hook set is kept.
    pub fn on_write_failure(&self, hook: impl Fn(&io::Error) + Send + Sync + 'static) {
        let _ = self.inner.shared.on_failure.set(Box::new(hook));
    }

    /// The failures to inject into this store's writes (tests only).
    #[cfg(test)]
    pub(crate) fn faults(&self) -> &segment::Faults {
        &self.inner.shared.faults
    }

    /// Holds the writer before its next batch until the guard is dropped (tests only):
    /// what is sent meanwhile is written and synced as one batch.
    #[cfg(test)]
    pub(crate) fn hold_writer(&self) -> std::sync::MutexGuard<'_, ()> {
        lock(&self.inner.shared.hold)
    }

    /// Memory taken by messages handed to `append` and not yet written: the signal for
    /// publisher flow control when the disk falls behind.
    pub fn queued_bytes(&self) -> u64 {
        self.inner.shared.queued_bytes.load(Ordering::Relaxed)
    }

    /// Heap bytes of the store's index of live messages (about 4 per message and queue),
    /// measured every few batches: memory that grows with the backlog.
    pub fn index_bytes(&self) -> u64 {
        self.inner.shared.index_bytes.load(Ordering::Relaxed)
    }

    /// The file I/O counters this store adds to.
    pub fn io(&self) -> &Arc<IoStats> {
        &self.inner.shared.io
    }

    /// Drops this handle; if it was the last one, waits (blocking) for the writer to sync
    /// and exit, so the directory lock is free when this returns. Call `flush` first to
    /// learn whether the final writes succeeded.
    pub fn close(self) {
        drop(self);
    }
}

impl Drop for Inner {
    /// The last handle is gone: let the writer sync what it holds and exit, and wait for
    /// it, so the directory lock is free once the broker is dropped.
    fn drop(&mut self) {
        let (tx, _) = mpsc::channel();
        drop(std::mem::replace(&mut self.tx, tx));
        let handle = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(h) = handle {
            let _ = h.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The guarded values are plain counters/handles, valid even if a holder panicked.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Takes the exclusive lock on `<data_dir>/LOCK`; refuses if someone else has it.
fn lock_dir(data_dir: &Path) -> io::Result<File> {
    let path = data_dir.join("LOCK");
    let mut f = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)?;
    match f.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            return Err(io::Error::new(
                io::ErrorKind::ResourceBusy,
                format!(
                    "data directory {} is in use by another warren (lock {} is held{}); \
                     stop it or choose another --data-dir",
                    data_dir.display(),
                    path.display(),
                    match holder.trim() {
                        "" => String::new(),
                        pid => format!(" by pid {pid}"),
                    }
                ),
            ));
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(e),
    }
    f.set_len(0)?;
    writeln!(f, "{}", std::process::id())?;
    Ok(f)
}
