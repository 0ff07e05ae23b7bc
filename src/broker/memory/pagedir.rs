//! The page directory and its I/O thread: where queues' paged tails live on disk, and
//! the one thread that creates, writes and deletes page files.
//!
//! Used by `paging::Tail` under the queue lock, so nothing here touches the disk on the
//! caller's thread: reads are `ReadAhead`s done on the I/O thread, which wake the queue
//! when they are done (`PageFile::read_at` reads the file directly only for
//! `Tail::drain`, which runs on the I/O thread itself). A write is handed to the I/O
//! thread as a `Chunk` (whole records, at the offset they will have in the file) that
//! stays in memory until it is on disk, and no longer: the write job owns it and frees
//! it when done, the file only keeps a weak reference (a read-back of that range
//! meanwhile is served from the chunk). A chunk whose write failed is kept by its file
//! until it is read past (messages are never lost for a full disk, only kept in
//! memory). Bytes in flight count against the memory budget
//! until they are written, and in the disk backlog that slows publishers down (as the
//! message store's does), so a disk that falls behind throttles publishers instead of
//! growing the heap unseen. Deleting a file (read through, purged, queue deleted) is
//! a job for the same thread, queued after that file's writes. Jobs run in order.
//!
//! Page files are a cache, not a store: the directory is wiped at start.

use super::Memory;
use crate::store::IoStats;
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Sender};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::thread::JoinHandle;

type Job = Box<dyn FnOnce() + Send>;

/// The directory page files live in, the numbering of new files and the I/O thread.
pub struct PageDir {
    path: PathBuf,
    next: AtomicU64,
    /// To the I/O thread; `None` once dropping.
    jobs: Mutex<Option<Sender<Job>>>,
    thread: Option<JoinHandle<()>>,
    io: Arc<IoState>,
}

/// What the I/O thread shares with the files it works on.
#[derive(Default)]
struct IoState {
    /// A write failed; logged once until one succeeds again.
    failing: AtomicBool,
    /// Bytes handed to the thread and not written yet.
    in_flight: AtomicU64,
    /// The broker's file I/O counters (shared with the message store).
    counters: Arc<IoStats>,
    /// Read-aheads, run before the next job in line: a consumer waiting for one must
    /// not wait behind the writes of a publisher that outruns it (tens of MB of them),
    /// and reading only bytes already written, it needs no place in their order.
    reads: Mutex<VecDeque<Job>>,
}

impl IoState {
    /// On the I/O thread (or inline once it is gone): the read-aheads waiting.
    fn run_reads(&self) {
        loop {
            let next = self
                .reads
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .pop_front();
            match next {
                Some(job) => job(),
                None => return,
            }
        }
    }
}

impl std::fmt::Debug for PageDir {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageDir").field("path", &self.path).finish()
    }
}

impl PageDir {
    /// Empties (or creates) `path` (pages left by an earlier run belong to nobody) and
    /// starts the I/O thread.
    pub fn create(path: &Path, counters: Arc<IoStats>) -> io::Result<PageDir> {
        match std::fs::remove_dir_all(path) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        std::fs::create_dir_all(path)?;
        let (tx, rx) = mpsc::channel::<Job>();
        let io = Arc::new(IoState {
            counters,
            ..IoState::default()
        });
        let thread_io = io.clone();
        let thread = std::thread::Builder::new()
            .name("warren-pages".into())
            .spawn(move || {
                while let Ok(job) = rx.recv() {
                    thread_io.run_reads();
                    job();
                }
                thread_io.run_reads();
            })?;
        Ok(PageDir {
            path: path.to_owned(),
            next: AtomicU64::new(1),
            jobs: Mutex::new(Some(tx)),
            thread: Some(thread),
            io,
        })
    }

    /// The directory (for files of other page users, such as delayed messages' spill).
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn sender(&self) -> Option<Sender<Job>> {
        self.jobs.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Runs `job` on the I/O thread after everything handed to it so far (on this
    /// thread if the I/O thread is gone, which only happens while dropping).
    pub fn background(&self, job: impl FnOnce() + Send + 'static) {
        run_on(self.sender().as_ref(), Box::new(job));
    }

    /// Resolves once every job handed to the I/O thread so far has run.
    pub fn idle(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.background(move || {
            let _ = tx.send(());
        });
        async move {
            let _ = rx.await;
        }
    }

    /// Bytes handed to the I/O thread and not written yet: with the message store's
    /// backlog, what makes publishers be read more slowly (`Broker::store_backlog`).
    pub fn in_flight(&self) -> u64 {
        self.io.in_flight.load(Ordering::Relaxed)
    }

    /// A new page file: numbered now, created on disk by its first write.
    pub(crate) fn new_file(&self) -> PageFile {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        PageFile {
            slot: Arc::new(FileSlot {
                path: self.path.join(format!("{n:010}.page")),
                file: OnceLock::new(),
                io: self.io.clone(),
                failed: Mutex::default(),
                any_failed: AtomicBool::new(false),
            }),
            jobs: self.sender(),
            written: 0,
            read: 0,
            messages: 0,
            body_bytes: 0,
            pending: VecDeque::new(),
        }
    }
}

impl Drop for PageDir {
    /// Lets the I/O thread finish what it was given (deletes included) and waits for it,
    /// so a broker opened next on the same directory never sees an old job.
    fn drop(&mut self) {
        drop(self.jobs.lock().unwrap_or_else(|e| e.into_inner()).take());
        if let Some(t) = self.thread.take() {
            // The last owner can go on the I/O thread itself (a job held it): it must
            // not wait for itself.
            if t.thread().id() != std::thread::current().id() {
                let _ = t.join();
            }
        }
    }
}

fn run_on(jobs: Option<&Sender<Job>>, job: Job) {
    match jobs {
        Some(tx) => {
            if let Err(mpsc::SendError(job)) = tx.send(job) {
                job();
            }
        }
        None => job(),
    }
}

/// A page file's path and handle, shared by the queue's `PageFile` and the jobs on it.
struct FileSlot {
    path: PathBuf,
    /// Set by the I/O thread when its first write creates the file.
    file: OnceLock<File>,
    io: Arc<IoState>,
    /// Chunks whose write failed, in offset order: the only place that keeps them
    /// alive, until the tail reads past them (a leaf lock, taken only when one failed).
    failed: Mutex<Vec<Arc<Chunk>>>,
    /// Whether `failed` may hold something (spares the lock on every read).
    any_failed: AtomicBool,
}

impl FileSlot {
    /// On the I/O thread: the file, created on first use.
    fn open(&self) -> io::Result<&File> {
        if let Some(f) = self.file.get() {
            return Ok(f);
        }
        let f = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&self.path)?;
        Ok(self.file.get_or_init(|| f))
    }

    /// On the I/O thread: keeps a chunk whose write failed, so it can still be read.
    fn keep_failed(&self, chunk: Arc<Chunk>) {
        let mut failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
        failed.push(chunk);
        self.any_failed.store(true, Ordering::Release);
    }

    /// Lets failed chunks that end at or before `read` go: their records were taken.
    fn release_failed(&self, read: u64) {
        if !self.any_failed.load(Ordering::Acquire) {
            return;
        }
        let mut failed = self.failed.lock().unwrap_or_else(|e| e.into_inner());
        failed.retain(|c| c.end() > read);
        self.any_failed.store(!failed.is_empty(), Ordering::Release);
    }
}

/// Whole records handed to the I/O thread, alive until they are on disk (owned by the
/// write job; by the file's `failed` list if the write fails).
struct Chunk {
    offset: u64,
    data: Vec<u8>,
}

impl Chunk {
    fn end(&self) -> u64 {
        self.offset + self.data.len() as u64
    }
}

/// A chunk as its file remembers it: where it lies, and the chunk while it is alive.
struct Pending {
    offset: u64,
    end: u64,
    chunk: Weak<Chunk>,
}

impl Pending {
    fn covers(&self, at: u64) -> bool {
        self.offset <= at && at < self.end
    }
}

/// One page file as its tail sees it. Dropping it deletes the file (on the I/O thread,
/// after its writes).
pub(crate) struct PageFile {
    slot: Arc<FileSlot>,
    jobs: Option<Sender<Job>>,
    /// Bytes handed to the I/O thread (the file's length once they are written).
    pub(crate) written: u64,
    pub(crate) read: u64,
    /// Messages written to this file and not read back yet, and their body bytes.
    pub(crate) messages: usize,
    pub(crate) body_bytes: u64,
    /// Chunks not known to be on disk yet, in offset order. Weak: a chunk's memory goes
    /// back the moment its write is done, whichever file it is in (a file in the middle
    /// of a long tail is neither appended to nor read for a long time).
    pending: VecDeque<Pending>,
}

impl std::fmt::Debug for PageFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PageFile")
            .field("path", &self.slot.path)
            .field("written", &self.written)
            .field("read", &self.read)
            .finish()
    }
}

impl PageFile {
    pub(crate) fn path(&self) -> &Path {
        &self.slot.path
    }

    /// Hands `data` (whole records) to the I/O thread, to go at the end of the file. Its
    /// allocation counts in `memory` until it is written and freed.
    pub(crate) fn append(&mut self, data: Vec<u8>, memory: &Arc<Memory>) {
        self.forget_written();
        let (len, held) = (data.len(), data.capacity());
        let chunk = Arc::new(Chunk {
            offset: self.written,
            data,
        });
        self.written += len as u64;
        self.pending.push_back(Pending {
            offset: chunk.offset,
            end: chunk.end(),
            chunk: Arc::downgrade(&chunk),
        });
        memory.add(held);
        self.slot
            .io
            .in_flight
            .fetch_add(len as u64, Ordering::Relaxed);
        let (slot, memory) = (self.slot.clone(), memory.clone());
        run_on(
            self.jobs.as_ref(),
            Box::new(move || {
                let result = slot.open().and_then(|f| {
                    let write = || f.write_all_at(&chunk.data, chunk.offset);
                    slot.io.counters.write(chunk.data.len(), write)
                });
                let failing = &slot.io.failing;
                match result {
                    Ok(()) => {
                        if failing.swap(false, Ordering::Relaxed) {
                            tracing::info!("page files writable again");
                        }
                    }
                    Err(e) => {
                        // The chunk stays in memory: stop publishers before that grows.
                        memory.disk_write_failed();
                        if !failing.swap(true, Ordering::Relaxed) {
                            tracing::error!(error = %e, "cannot write a page file; keeping messages in memory");
                        }
                        slot.keep_failed(chunk.clone());
                    }
                }
                // Written: the last strong reference goes here, and the memory with it.
                drop(chunk);
                memory.sub(held);
                slot.io.in_flight.fetch_sub(len as u64, Ordering::Relaxed);
            }),
        );
    }

    /// Forgets the chunks that are gone (on disk now), and failed ones read past `read`.
    fn forget_written(&mut self) {
        self.pending.retain(|p| p.chunk.strong_count() > 0);
        self.slot.release_failed(self.read);
    }

    /// How many bytes from `at` can be read in one piece: to the end of the chunk still
    /// in memory that holds `at`, or on disk up to the next such chunk (or the end).
    pub(crate) fn span(&mut self, at: u64) -> u64 {
        self.forget_written();
        match self.pending.iter().find(|p| p.end > at) {
            Some(p) if p.offset <= at => p.end - at,
            Some(p) => p.offset - at,
            None => self.written.saturating_sub(at),
        }
    }

    /// The chunk that holds the bytes at `at` while they are still in memory (their
    /// write is in flight or failed); `None` once they are on disk. Call after `span`.
    fn chunk_at(&self, at: u64) -> Option<Arc<Chunk>> {
        self.pending
            .iter()
            .find(|p| p.covers(at))
            .and_then(|p| p.chunk.upgrade())
    }

    /// Whether the bytes at `at` are still in memory (see `chunk_at`).
    pub(crate) fn in_memory(&self, at: u64) -> bool {
        self.pending
            .iter()
            .any(|p| p.covers(at) && p.chunk.strong_count() > 0)
    }

    /// Reads up to `len` bytes at `at` (within `span(at)`, and more if the first record
    /// there is longer and ends in the same chunk) when they are still in memory;
    /// `None` when they are on disk (then they need a read-ahead).
    pub(crate) fn read_in_memory(&self, at: u64, len: usize) -> Option<Vec<u8>> {
        let c = self.chunk_at(at)?;
        let rest = c.data.get((at - c.offset) as usize..)?;
        let len = record_len(rest).map_or(len, |need| need.max(len));
        Some(rest[..len.min(rest.len())].to_vec())
    }

    /// Reads `len` bytes at `at` (within `span(at)`): from memory if they are not on
    /// disk yet, else from the file (only on the I/O thread).
    pub(crate) fn read_at(&self, at: u64, len: usize) -> io::Result<Vec<u8>> {
        if let Some(c) = self.chunk_at(at) {
            let start = (at - c.offset) as usize;
            return c
                .data
                .get(start..start + len)
                .map(<[u8]>::to_vec)
                .ok_or_else(|| io::Error::other("read past a pending chunk"));
        }
        let file = self
            .slot
            .file
            .get()
            .ok_or_else(|| io::Error::other("page file was never created"))?;
        let mut buf = vec![0u8; len];
        read_counted(&self.slot.io, file, &mut buf, at)?;
        Ok(buf)
    }

    /// Asks the I/O thread to read `len` bytes at `at` now (bytes on disk: within
    /// `span(at)` when asked), or the whole first record there if it is longer and ends
    /// within `max`, so that the refill that needs them finds them in memory (see
    /// `ReadAhead`); `wake` is called once they are there.
    pub(crate) fn read_ahead(
        &self,
        at: u64,
        (len, max): (usize, u64),
        memory: &Arc<Memory>,
        wake: Option<Wake>,
    ) -> ReadAhead {
        let cell = Arc::new(Mutex::new(AheadCell::default()));
        let (slot, weak, memory2) = (self.slot.clone(), Arc::downgrade(&cell), memory.clone());
        self.read_first(Box::new(move || {
            // Whatever happens, the queue is woken: a basic.get waiting for this read
            // must be answered even if the tail went (a purge) or moved on.
            let _wake = WakeOnDrop(wake);
            // Nobody waits for it any more (the tail moved on or went): skip the read.
            let Some(cell) = weak.upgrade() else { return };
            let read = |len: usize| {
                let mut buf = vec![0u8; len];
                slot.file
                    .get()
                    .ok_or_else(|| io::Error::other("page file was never created"))
                    .and_then(|f| read_counted(&slot.io, f, &mut buf, at))
                    .map(|()| buf)
            };
            let result = read(len).and_then(|buf| match record_len(&buf) {
                // A record larger than the chunk: read exactly that record.
                Some(need) if need > buf.len() && need as u64 <= max => read(need),
                _ => Ok(buf),
            });
            {
                let mut c = cell.lock().unwrap_or_else(|e| e.into_inner());
                if c.cancelled {
                    return;
                }
                if let Ok(buf) = &result {
                    memory2.add(buf.len());
                }
                c.done = Some(result);
            }
        }));
        ReadAhead {
            slot: self.slot.clone(),
            at,
            cell,
            memory: memory.clone(),
        }
    }

    /// Hands `job` to the I/O thread ahead of the writes in line (see
    /// `IoState::reads`); the job sent after it wakes the thread if it sleeps, and runs
    /// it inline once the thread is gone.
    fn read_first(&self, job: Job) {
        let io = &self.slot.io;
        io.reads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push_back(job);
        let io = io.clone();
        run_on(self.jobs.as_ref(), Box::new(move || io.run_reads()));
    }

    /// What a browse needs to read this file's unread records later, off the queue lock
    /// (`FileView`). Holding the slot keeps the file open even if the tail deletes it.
    pub(crate) fn view(&self) -> FileView {
        FileView {
            slot: self.slot.clone(),
            pending: self
                .pending
                .iter()
                .filter_map(|p| p.chunk.upgrade())
                .collect(),
            start: self.read,
            end: self.written,
            messages: self.messages,
        }
    }

    /// Bytes of chunks still in memory (in flight, or failed and not read past).
    #[cfg(test)]
    pub(crate) fn held_bytes(&self) -> usize {
        self.pending
            .iter()
            .filter_map(|p| p.chunk.upgrade())
            .map(|c| c.data.capacity())
            .sum()
    }

    #[cfg(test)]
    pub(crate) fn file(&self) -> Option<&File> {
        self.slot.file.get()
    }
}

/// A page file's unread records as they were when a browse looked (`PageFile::view`):
/// read later, on a blocking thread, never under the queue lock. Written bytes never
/// change and the open handle outlives a delete, so what it reads is what was there.
pub(crate) struct FileView {
    slot: Arc<FileSlot>,
    /// Chunks that were not known to be on disk: read from memory.
    pending: Vec<Arc<Chunk>>,
    pub(crate) start: u64,
    pub(crate) end: u64,
    /// Unread messages between `start` and `end`.
    pub(crate) messages: usize,
}

impl FileView {
    /// `len` bytes at `at` (within `start..end`): from the chunks held in memory where
    /// they cover it, else from the file (on the caller's thread: not a runtime worker).
    pub(crate) fn read_at(&self, at: u64, len: usize) -> io::Result<Vec<u8>> {
        let mut out = Vec::with_capacity(len);
        let mut pos = at;
        let end = at + len as u64;
        while pos < end {
            let next = self.pending.iter().find(|c| c.end() > pos);
            match next {
                Some(c) if c.offset <= pos => {
                    let from = (pos - c.offset) as usize;
                    let upto = (end.min(c.end()) - c.offset) as usize;
                    out.extend_from_slice(&c.data[from..upto]);
                    pos = c.offset + upto as u64;
                }
                _ => {
                    let upto = next.map_or(end, |c| c.offset.min(end));
                    let file = self
                        .slot
                        .file
                        .get()
                        .ok_or_else(|| io::Error::other("page file was never created"))?;
                    let mut buf = vec![0u8; (upto - pos) as usize];
                    read_counted(&self.slot.io, file, &mut buf, pos)?;
                    out.extend_from_slice(&buf);
                    pos = upto;
                }
            }
        }
        Ok(out)
    }
}

/// Called on the I/O thread when a read-ahead is done: the queue serves its consumers
/// (and basic.gets) that waited for it. Must not take the queue's lock on this thread
/// synchronously (the I/O thread runs jobs inline while its directory is dropped, under
/// a queue lock): it hands the work to the runtime.
#[derive(Clone)]
pub struct Wake(pub Arc<dyn Fn() + Send + Sync>);

impl std::fmt::Debug for Wake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Wake")
    }
}

/// Calls its `Wake` when dropped: at the end of a read-ahead job, on every path.
struct WakeOnDrop(Option<Wake>);

impl Drop for WakeOnDrop {
    fn drop(&mut self) {
        if let Some(wake) = &self.0 {
            (wake.0)();
        }
    }
}

/// What a read-ahead job leaves for the tail.
#[derive(Default)]
struct AheadCell {
    done: Option<io::Result<Vec<u8>>>,
    cancelled: bool,
}

/// A read of a page file done ahead of time on the I/O thread. The bytes count in the
/// memory budget from the read until they are taken (or the read-ahead is dropped).
pub(crate) struct ReadAhead {
    slot: Arc<FileSlot>,
    at: u64,
    cell: Arc<Mutex<AheadCell>>,
    memory: Arc<Memory>,
}

impl std::fmt::Debug for ReadAhead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadAhead").field("at", &self.at).finish()
    }
}

impl ReadAhead {
    /// Whether it reads `file` at `at`.
    pub(crate) fn is_for(&self, file: &PageFile, at: u64) -> bool {
        Arc::ptr_eq(&self.slot, &file.slot) && self.at == at
    }

    /// What was read, once the read is done (`None` until then).
    pub(crate) fn take(&self) -> Option<io::Result<Vec<u8>>> {
        let done = self
            .cell
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .done
            .take()?;
        if let Ok(data) = &done {
            self.memory.sub(data.len());
        }
        Some(done)
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        let mut c = self.cell.lock().unwrap_or_else(|e| e.into_inner());
        c.cancelled = true;
        if let Some(Ok(data)) = c.done.take() {
            self.memory.sub(data.len());
        }
    }
}

impl Drop for PageFile {
    fn drop(&mut self) {
        let slot = self.slot.clone();
        run_on(
            self.jobs.as_ref(),
            Box::new(move || {
                if slot.file.get().is_some() {
                    let _ = std::fs::remove_file(&slot.path);
                }
            }),
        );
    }
}

/// The length of the record at the start of `data`, when its length field is there.
pub(crate) fn record_len(data: &[u8]) -> Option<usize> {
    let len = u32::from_be_bytes(data.get(..4)?.try_into().ok()?) as usize;
    Some(4 + len)
}

/// Fills `buf` from `file` at `at`, counted in the broker's file I/O figures.
fn read_counted(io: &IoState, file: &File, buf: &mut [u8], at: u64) -> io::Result<()> {
    let len = buf.len();
    io.counters
        .read(|| file.read_exact_at(buf, at).map(|()| len))
        .map(drop)
}
