//! `StreamWriter`: the thread that appends to one stream, so no stream write or fsync
//! runs on a runtime worker or under a queue lock.
//!
//! Made by `StreamLog::spawn_writer`; the AMQP side calls `submit` from its connection
//! tasks (a channel send, never I/O). The thread takes every batch waiting, appends each
//! as one chunk in submission order, runs one fdatasync for all of them if any asked for
//! it (group commit), then calls each batch's callback with its offsets or its error.
//! Bytes submitted and not yet written are counted (`backlog_bytes`) so the caller can
//! slow publishers down as it does for the message store. The thread ends when the last
//! `StreamWriter` handle is dropped, after the batches already submitted.

use super::log::StreamLog;
use bytes::Bytes;
use std::io;
use std::ops::Range;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;

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

struct Job {
    entries: Vec<(i64, Bytes)>,
    durability: Durability,
    on_appended: OnAppended,
    bytes: u64,
}

/// Batches taken in one round, at most (then they are written and their callbacks run
/// before more are taken, so callbacks are not delayed by an endless stream).
const ROUND_JOBS: usize = 1024;

/// The handle to a stream's writer thread.
#[derive(Debug)]
pub struct StreamWriter {
    jobs: Option<Sender<Job>>,
    thread: Option<JoinHandle<()>>,
    backlog: Arc<AtomicU64>,
    log: StreamLog,
}

impl StreamLog {
    /// Starts this stream's writer thread (see `writer.rs`). Readers keep using the log.
    pub fn spawn_writer(&self) -> io::Result<StreamWriter> {
        let (tx, rx) = mpsc::channel();
        let backlog = Arc::new(AtomicU64::new(0));
        let (log, counted) = (self.clone(), backlog.clone());
        let thread = std::thread::Builder::new()
            .name("warren-stream".into())
            .spawn(move || run(&log, &rx, &counted))?;
        Ok(StreamWriter {
            jobs: Some(tx),
            thread: Some(thread),
            backlog,
            log: self.clone(),
        })
    }
}

impl StreamWriter {
    /// Hands a batch (timestamp ms, entry) to the writer thread; never blocks. Batches
    /// are appended in submission order, each as one chunk (an empty batch gets an empty
    /// range at the current end). If the thread is gone the callback gets the error here.
    pub fn submit(
        &self,
        entries: Vec<(i64, Bytes)>,
        durability: Durability,
        on_appended: OnAppended,
    ) {
        let bytes = entries.iter().map(|(_, d)| d.len() as u64).sum();
        self.backlog.fetch_add(bytes, Ordering::Relaxed);
        let job = Job {
            entries,
            durability,
            on_appended,
            bytes,
        };
        let refused = match &self.jobs {
            Some(tx) => tx.send(job).err().map(|e| e.0),
            None => Some(job),
        };
        if let Some(job) = refused {
            self.backlog.fetch_sub(job.bytes, Ordering::Relaxed);
            (job.on_appended)(Err(io::Error::other("stream writer stopped")));
        }
    }

    /// Entry bytes submitted and not yet written.
    pub fn backlog_bytes(&self) -> u64 {
        self.backlog.load(Ordering::Relaxed)
    }

    /// The log this writer appends to.
    pub fn log(&self) -> &StreamLog {
        &self.log
    }

    /// Stops the thread after the batches already submitted and waits for it. Blocking:
    /// call it off the runtime workers (dropping the writer does the same without
    /// waiting).
    pub fn stop(mut self) {
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for StreamWriter {
    fn drop(&mut self) {
        // Closing the channel ends the thread once it has drained; not joined here, as a
        // drop may happen on a runtime worker.
        self.jobs = None;
    }
}

fn run(log: &StreamLog, rx: &Receiver<Job>, backlog: &AtomicU64) {
    while let Ok(first) = rx.recv() {
        let mut round = vec![first];
        while round.len() < ROUND_JOBS {
            match rx.try_recv() {
                Ok(job) => round.push(job),
                Err(_) => break,
            }
        }
        let results: Vec<io::Result<Range<u64>>> = round
            .iter()
            .map(|job| {
                let entries: Vec<(i64, &[u8])> =
                    job.entries.iter().map(|(t, d)| (*t, &d[..])).collect();
                let r = log.append_batch(&entries);
                backlog.fetch_sub(job.bytes, Ordering::Relaxed);
                r
            })
            .collect();
        let wants_sync = round
            .iter()
            .zip(&results)
            .any(|(job, r)| job.durability == Durability::Synced && r.is_ok());
        let synced = if wants_sync {
            log.sync().map(|_| ())
        } else {
            Ok(())
        };
        for (job, result) in round.into_iter().zip(results) {
            let result = match (&synced, job.durability, result) {
                (Err(e), Durability::Synced, Ok(_)) => Err(io::Error::new(e.kind(), e.to_string())),
                (_, _, r) => r,
            };
            (job.on_appended)(result);
        }
    }
}
