//! A stream queue (`x-queue-type: stream`) served over AMQP 0-9-1 as RabbitMQ 3.10 serves
//! it: publishes append to the queue's log (`broker::stream`), consuming never removes,
//! each consumer reads on its own from where its x-stream-offset says, acks only give
//! credit back.
//!
//! A stream is a `Queue` whose `stream` field is set: the queue keeps what every queue
//! has (name, flags, consumers for counts, exclusivity and the management API), its
//! `ready` list stays empty, so classic dispatch never runs for it; this engine holds
//! the log, its writer thread and the consumers' readers (`reading`). The classic hot
//! path pays one branch on that field.
//!
//! Called by the vhost (open at declare and at recovery, delete), by `Queue` (publish,
//! consumers, dispatch after credit came back) and by channels (consume). Disk work
//! happens on the log's writer thread and, for readers, on tokio's blocking pool; never
//! on a runtime worker and never under a queue or topology lock (opening a log at
//! declare is the one exception: it creates a directory and an empty segment, or at
//! start scans the tail of the last segment).

pub mod args;
mod reading;

use super::consumer::{ConnectionHandle, ConsumerInfo};
use super::memory::Memory;
use super::message::Message;
use super::queue::Queue;
use super::stream::{Durability, StartAt, StreamLog, StreamStats, StreamWriter};
use crate::codec::ShortStr;
use crate::store::defwriter::DefinitionsHandle;
use crate::store::Done;
use reading::Reading;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;
use tracing::warn;

/// The AMQP side of one stream: its log, the writer thread, the offset up to which
/// entries are durable (and so visible to consumers), and its consumers' readers.
pub struct StreamQueue {
    log: Arc<StreamLog>,
    /// `None` once the queue is deleted.
    writer: Mutex<Option<StreamWriter>>,
    /// The next offset after the durable entries: consumers read below it and wait on it.
    committed: Arc<watch::Sender<u64>>,
    /// Confirms also wait for the definitions that hold the stream, as for any durable
    /// queue: a confirmed entry must come back with its queue after a crash.
    definitions: Option<DefinitionsHandle>,
    readings: Mutex<Vec<Arc<Reading>>>,
    /// Entries published (the management API's publish count is the queue's own).
    appended: AtomicU64,
    /// The broker's clock: each entry's timestamp (x-stream-offset by time, max-age).
    clock: crate::clock::Clock,
}

impl std::fmt::Debug for StreamQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamQueue")
            .field("dir", &self.log.dir())
            .finish()
    }
}

impl StreamQueue {
    /// Serves `log` (opened or recovered) and starts its writer thread.
    pub fn open(
        log: StreamLog,
        definitions: Option<DefinitionsHandle>,
        clock: crate::clock::Clock,
    ) -> std::io::Result<Arc<StreamQueue>> {
        let log = Arc::new(log);
        let writer = log.spawn_writer()?;
        let (committed, _) = watch::channel(log.next_offset());
        Ok(Arc::new(StreamQueue {
            log,
            writer: Mutex::new(Some(writer)),
            committed: Arc::new(committed),
            definitions,
            readings: Mutex::default(),
            appended: AtomicU64::new(0),
            clock,
        }))
    }

    /// Appends a message; `done` (a publisher confirm) is answered once the entry is
    /// durable, or with a failure (a nack) if it could not be written.
    pub fn publish(&self, msg: &Message, done: Option<Done>) {
        let done = match (&self.definitions, done) {
            (Some(defs), Some(d)) => Some(defs.cover(d)),
            (_, d) => d,
        };
        let writer = self.writer.lock().unwrap_or_else(|e| e.into_inner());
        let Some(writer) = writer.as_ref() else {
            // Deleted meanwhile: `done` drops, which nacks (the message is nowhere).
            return;
        };
        self.appended.fetch_add(1, Ordering::Relaxed);
        let committed = self.committed.clone();
        let entry = vec![(self.clock.unix_ms(), msg.to_bytes())];
        writer.submit(
            entry,
            Durability::Synced,
            Box::new(move |appended| match appended {
                Ok(range) => {
                    committed.send_if_modified(|c| {
                        let grew = range.end > *c;
                        *c = (*c).max(range.end);
                        grew
                    });
                    if let Some(d) = done {
                        d.complete(range.start.saturating_add(1));
                    }
                }
                Err(e) => warn!(error = %e, "stream append failed; the publisher gets a nack"),
            }),
        );
    }

    /// Starts feeding a consumer (already registered with its queue) from `start`.
    pub fn start_reading(
        self: &Arc<Self>,
        queue: Arc<Queue>,
        consumer: Arc<ConsumerInfo>,
        connection: ConnectionHandle,
        start: StartAt,
    ) {
        let reading = Arc::new(Reading::new(
            connection.id,
            consumer.channel,
            consumer.tag.clone(),
        ));
        self.readings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(reading.clone());
        // Fixed now, before consume-ok goes out, as RabbitMQ does: resolved later in the
        // reader task, "next" (or "last") could land after entries the client published
        // once it had consume-ok, and the consumer would never see them. Only a
        // timestamp reads an index file, so only it is left to the reader's blocking call.
        let start = match start {
            StartAt::Timestamp(_) => start,
            _ => StartAt::Offset(self.log.resolve(start)),
        };
        let source = reading::Source {
            log: self.log.clone(),
            committed: self.committed.subscribe(),
        };
        tokio::spawn(reading::run(
            source, reading, queue, consumer, connection, start,
        ));
    }

    /// A consumer was cancelled (or its channel or connection went): its reader stops.
    pub fn stop_reading(&self, connection: u64, channel: u16, tag: &ShortStr) {
        let mut readings = self.readings.lock().unwrap_or_else(|e| e.into_inner());
        readings.retain(|r| {
            let this = r.is(connection, channel, tag);
            if this {
                r.stop();
            }
            !this
        });
    }

    /// Credit came back to some consumer: every reader looks again (a stream has few).
    pub fn wake(&self) {
        for r in self
            .readings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            r.wake();
        }
    }

    /// The queue's effective arguments changed (a policy): retention follows them from
    /// the next segment roll-over on. Memory only (the log's configuration).
    pub fn reconfigure(&self, effective: &amq_protocol::types::FieldTable) {
        self.log.set_config(args::config(effective));
    }

    /// Entries, bytes and offsets of the log now.
    pub fn stats(&self) -> StreamStats {
        self.log.stats()
    }

    /// Readers running now.
    pub fn readers(&self) -> usize {
        self.readings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// The queue is deleted: readers stop, the writer stops after what it was handed,
    /// and the log's files go. The directory is renamed away at once (one rename, so a
    /// stream declared again under the same name starts empty) and removed on a thread.
    pub fn delete(&self) {
        for r in self
            .readings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            r.stop();
        }
        let writer = self.writer.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some(writer) = writer else { return };
        let Some(dir) = self.log.dir() else {
            // In memory: the writer thread ends once it has drained, and the log's
            // memory comes back now (readers still holding it end with NotFound).
            drop(writer);
            let _ = StreamLog::clone(&self.log).destroy();
            return;
        };
        static DELETED: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "deleted-{}-{}",
            std::process::id(),
            DELETED.fetch_add(1, Ordering::Relaxed)
        );
        let trash = dir.with_file_name(name);
        let doomed = match std::fs::rename(dir, &trash) {
            Ok(()) => trash,
            Err(e) => {
                warn!(error = %e, dir = %dir.display(), "could not move a deleted stream's files away");
                dir.to_path_buf()
            }
        };
        let spawned = std::thread::Builder::new()
            .name("stream-delete".into())
            .spawn(move || {
                drop(writer);
                if let Err(e) = std::fs::remove_dir_all(&doomed) {
                    warn!(error = %e, dir = %doomed.display(), "could not remove a deleted stream's files");
                }
            });
        if let Err(e) = spawned {
            warn!(error = %e, "could not start a thread to remove a deleted stream's files");
        }
    }
}

/// Splits a confirm into `parts` answers: the publisher hears success once every part
/// succeeded, failure (a nack) as soon as one failed.
pub fn split_done(done: Done, parts: usize) -> Vec<Done> {
    struct Join {
        left: usize,
        done: Option<Done>,
    }
    let join = Arc::new(Mutex::new(Join {
        left: parts,
        done: Some(done),
    }));
    (0..parts)
        .map(|_| {
            let join = join.clone();
            Done::new(move |id| {
                // Taken out under the lock, answered after it (the answer sends).
                let answer = {
                    let mut j = join.lock().unwrap_or_else(|e| e.into_inner());
                    j.left = j.left.saturating_sub(1);
                    match id {
                        Some(_) if j.left > 0 => None,
                        _ => j.done.take().map(|d| (d, id)),
                    }
                };
                match answer {
                    Some((d, Some(id))) => d.complete(id),
                    // Dropped uncalled: the publisher gets a nack.
                    Some((d, None)) => drop(d),
                    None => {}
                }
            })
        })
        .collect()
}

/// The engine for a queue declared (or recovered) with `arguments`: a stream queue's log
/// in its directory under `data_dir`, or `None` for the other types. Without a data
/// directory (a broker in memory) the log is kept in memory, counted in `memory`.
pub fn open_for(
    data_dir: Option<&Path>,
    memory: &Arc<Memory>,
    definitions: Option<DefinitionsHandle>,
    vhost: &str,
    queue: &str,
    arguments: &amq_protocol::types::FieldTable,
    clock: &crate::clock::Clock,
) -> Result<Option<Arc<StreamQueue>>, crate::error::Exception> {
    use super::arguments::QueueType;
    if QueueType::of(arguments) != QueueType::Stream {
        return Ok(None);
    }
    let config = args::config(arguments);
    let log = match data_dir {
        Some(data_dir) => {
            StreamLog::open(&super::stream::stream_dir(data_dir, vhost, queue), config)
        }
        None => Ok(StreamLog::in_memory(config, Some(memory.clone()))),
    };
    log.and_then(|log| StreamQueue::open(log, definitions, clock.clone()))
        .map(Some)
        .map_err(|e| {
            crate::error::Exception::internal_error(format!(
                "cannot open the log of stream queue '{queue}' in vhost '{vhost}': {e}"
            ))
        })
}
