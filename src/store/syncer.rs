//! The sync thread: runs the fdatasync of one batch while the writer thread already encodes
//! and writes the next one, then fires (or, on failure, drops) that batch's completions.
//!
//! Called only by the writer (`writer.rs`), which keeps at most one sync in flight: it
//! hands over a [`Job`] (the segment's file, the completions the sync covers), writes
//! the next batch to the page cache meanwhile, and collects the result with [`Syncer::wait`]
//! before it submits another sync, rolls or cuts a segment, or deletes one, so a segment is
//! never cut back or deleted under a pending sync. A failed sync hands the job's
//! completions back to the writer, which drops them (publishers are nacked) only after it
//! raised the alarm and cut the segment back. Never touches the index or the segment's
//! bookkeeping, never panics; if the thread cannot be started, jobs run inline on the
//! writer thread (the old, unpipelined behaviour).

use super::writer::Shared;
use super::Done;
use std::fs::File;
use std::io;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;

/// One batch's sync: make `file` durable, then fire the completions.
pub(crate) struct Job {
    pub(crate) file: Arc<File>,
    pub(crate) appended: Vec<(Done, u64)>,
    pub(crate) flushes: Vec<Done>,
    /// A failure injected by a test (the sync is not attempted).
    pub(crate) inject_failure: bool,
}

/// A failed sync: the error, and the completions it held, for the writer to drop (nack)
/// once it has cut the segment back.
pub(crate) type Failed = (io::Error, Vec<Done>);

impl Job {
    /// Syncs and fires the completions; on failure hands them back. On success returns
    /// the emptied list of appends, for the writer to fill again (no allocation per
    /// batch).
    fn run(mut self, shared: &Shared) -> Result<Vec<(Done, u64)>, Failed> {
        let result = if self.inject_failure {
            Err(io::Error::from_raw_os_error(libc::EIO))
        } else {
            shared.io.sync(|| self.file.sync_data())
        };
        if let Err(e) = result {
            let mut nack: Vec<Done> = self.appended.into_iter().map(|(d, _)| d).collect();
            nack.extend(self.flushes);
            return Err((e, nack));
        }
        // Cleared before the completions fire, so whoever sees one sees the store healthy
        // (the writer collects this sync before it can record a new failure).
        if shared.failed.swap(false, Ordering::Relaxed) {
            tracing::info!("message store: writes succeed again");
        }
        // A completion that panicked must not stop the thread: the writer would take the
        // lost result for a failed sync and cut back records already confirmed.
        let mut appended = std::mem::take(&mut self.appended);
        let fire = std::panic::AssertUnwindSafe(|| {
            Done::complete_all(&mut appended);
            for done in self.flushes {
                done.complete(0);
            }
        });
        if std::panic::catch_unwind(fire).is_err() {
            tracing::error!("message store: a completion panicked; the sync stands");
            appended = Vec::new();
        }
        Ok(appended)
    }
}

/// The sync thread: where jobs go, where results come back, the thread.
type Thread = (
    Sender<Job>,
    Receiver<Result<Vec<(Done, u64)>, Failed>>,
    std::thread::JoinHandle<()>,
);

pub(crate) struct Syncer {
    /// `None` when the thread could not be started: jobs run inline.
    thread: Option<Thread>,
    /// The result of an inline job, not collected yet.
    inline: Option<Result<Vec<(Done, u64)>, Failed>>,
    /// A job was submitted and its result not collected yet.
    pending: bool,
    shared: Arc<Shared>,
}

impl Syncer {
    pub(crate) fn start(shared: Arc<Shared>) -> Syncer {
        let (jobs, job_rx) = mpsc::channel::<Job>();
        let (res_tx, results) = mpsc::channel();
        let on_thread = shared.clone();
        let spawned = std::thread::Builder::new()
            .name("warren-store-sync".into())
            .spawn(move || {
                for job in job_rx {
                    if res_tx.send(job.run(&on_thread)).is_err() {
                        break;
                    }
                }
            });
        let thread = match spawned {
            Ok(h) => Some((jobs, results, h)),
            Err(e) => {
                tracing::warn!(error = %e, "message store: no sync thread; syncing on the writer thread");
                None
            }
        };
        Syncer {
            thread,
            inline: None,
            pending: false,
            shared,
        }
    }

    /// Hands `job` over. Call [`Syncer::wait`] before the next submit.
    pub(crate) fn submit(&mut self, job: Job) {
        debug_assert!(!self.pending);
        self.pending = true;
        let job = match &self.thread {
            Some((jobs, _, _)) => match jobs.send(job) {
                Ok(()) => return,
                // The thread is gone (only at teardown): run inline.
                Err(mpsc::SendError(job)) => job,
            },
            None => job,
        };
        self.inline = Some(job.run(&self.shared));
    }

    /// Waits for the submitted job (if any) and returns its result.
    pub(crate) fn wait(&mut self) -> Option<Result<Vec<(Done, u64)>, Failed>> {
        if !std::mem::replace(&mut self.pending, false) {
            return None;
        }
        if let Some(r) = self.inline.take() {
            return Some(r);
        }
        let (_, results, _) = self.thread.as_ref()?;
        Some(results.recv().unwrap_or_else(|_| {
            Err((
                io::Error::other("message store sync thread stopped"),
                Vec::new(),
            ))
        }))
    }
}

impl Drop for Syncer {
    fn drop(&mut self) {
        if let Some((jobs, results, h)) = self.thread.take() {
            drop(jobs);
            drop(results);
            let _ = h.join();
        }
    }
}
