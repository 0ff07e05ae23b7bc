//! One stream consumer's reader: a task that reads the log from where the consumer
//! started and hands entries to the consumer's connection as its credit allows, then
//! waits at the end of the log for more (tail-follow, woken when entries become durable,
//! never polling).
//!
//! Started by `StreamQueue::start_reading`. Reading the file happens in
//! `spawn_blocking`, a batch at a time, never on a runtime worker and never under a
//! lock. What it holds is bounded: one batch of entries (at most `BATCH` and the
//! consumer's prefetch) besides what credit lets into the connection's outbox. It must
//! never deliver an entry that is not durable yet, and never remove anything.

use crate::broker::consumer::window_size;
use crate::broker::consumer::{ConnectionHandle, ConsumerInfo, Delivery, Outgoing};
use crate::broker::message::Message;
use crate::broker::queue::{Queue, Queued};
use crate::broker::stream::{Entry, StartAt, StreamLog, StreamReader};
use crate::codec::ShortStr;
use amq_protocol::types::AMQPValue;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use tokio::sync::{watch, Notify};
use tracing::warn;

/// Entries read from the file in one blocking call, at most.
const BATCH: usize = 256;

/// The header every delivery from a stream carries: the entry's offset.
const OFFSET_HEADER: &str = "x-stream-offset";

/// The handle on a running reader: who it reads for, and how to wake or stop it.
#[derive(Debug)]
pub struct Reading {
    connection: u64,
    channel: u16,
    tag: ShortStr,
    wake: Notify,
    stopped: AtomicBool,
}

impl Reading {
    pub fn new(connection: u64, channel: u16, tag: ShortStr) -> Reading {
        Reading {
            connection,
            channel,
            tag,
            wake: Notify::new(),
            stopped: AtomicBool::new(false),
        }
    }

    pub fn is(&self, connection: u64, channel: u16, tag: &ShortStr) -> bool {
        self.connection == connection && self.channel == channel && &self.tag == tag
    }

    /// Credit may have come back: look again (a wake while running is kept for later).
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub fn stop(&self) {
        self.stopped.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    fn stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }
}

/// What a reader reads from: the log, and the durable end it may read up to.
pub struct Source {
    pub log: Arc<StreamLog>,
    pub committed: watch::Receiver<u64>,
}

/// The reader's loop; ends when stopped, when the consumer's connection is gone, or
/// when the log cannot be read (logged; the consumer then gets nothing more).
pub async fn run(
    mut source: Source,
    reading: Arc<Reading>,
    queue: Arc<Queue>,
    consumer: Arc<ConsumerInfo>,
    connection: ConnectionHandle,
    start: StartAt,
) {
    let log = source.log.clone();
    let opened = tokio::task::spawn_blocking(move || log.reader(log.resolve(start))).await;
    let mut reader = match opened {
        Ok(Ok(r)) => Some(r),
        Ok(Err(e)) => return warn!(error = %e, "cannot read a stream for a consumer"),
        Err(_) => return,
    };
    let batch = (consumer.credit.limit() as usize).clamp(1, BATCH);
    let mut pending: VecDeque<Entry> = VecDeque::new();
    loop {
        if reading.stopped() {
            return;
        }
        let committed = *source.committed.borrow_and_update();
        // Hand out what is durable, as long as credit allows.
        while let Some(entry) = pending.front() {
            if entry.offset >= committed || !consumer.try_take() {
                break;
            }
            let Some(entry) = pending.pop_front() else {
                break;
            };
            let Some(item) = delivery_item(&entry) else {
                consumer.give_back(0);
                warn!(
                    offset = entry.offset,
                    "skipping a stream entry that does not decode"
                );
                continue;
            };
            let bytes = window_size(&item);
            consumer.sent(bytes);
            let delivery = Delivery {
                consumer: consumer.clone(),
                queue: queue.clone(),
                item,
            };
            if connection.outbox.send(Outgoing::Deliver(delivery)).is_err() {
                // The connection is gone; its cleanup cancels the consumer.
                consumer.give_back(bytes);
                return;
            }
        }
        let behind = reader.as_ref().is_some_and(|r| r.position() < committed);
        if pending.is_empty() && behind {
            let Some(mut r) = reader.take() else { return };
            let read = tokio::task::spawn_blocking(move || {
                let got = read_batch(&mut r, batch, committed);
                (r, got)
            })
            .await;
            match read {
                Ok((r, Ok(entries))) => {
                    reader = Some(r);
                    pending = entries;
                    if !pending.is_empty() {
                        continue;
                    }
                    // Nothing readable below the durable end yet: wait rather than spin.
                }
                Ok((_, Err(e))) => {
                    return warn!(error = %e, "a stream consumer's read failed; it stops here")
                }
                Err(_) => return,
            }
        }
        // Waiting: for credit (an ack), for new durable entries, or to be stopped.
        tokio::select! {
            _ = reading.wake.notified() => {}
            changed = source.committed.changed() => {
                if changed.is_err() {
                    return;
                }
            }
        }
    }
}

/// Damaged chunks skipped in one batch at most (each skip moves forward).
const MAX_SKIPS: usize = 1000;

/// Up to `max` entries, stopping after the last one below `committed`. A chunk damaged
/// on disk is skipped (its entries are lost to this consumer, logged), as RabbitMQ's
/// readers skip what fails its checksum rather than stop.
fn read_batch(
    reader: &mut StreamReader,
    max: usize,
    committed: u64,
) -> std::io::Result<VecDeque<Entry>> {
    let mut out = VecDeque::with_capacity(max);
    let mut skips = 0;
    while out.len() < max && reader.position() < committed {
        match reader.next() {
            Ok(Some(e)) => {
                let last = e.offset + 1 >= committed;
                out.push_back(e);
                if last {
                    break;
                }
            }
            Ok(None) => break,
            Err(e) if e.kind() == std::io::ErrorKind::InvalidData && skips < MAX_SKIPS => {
                skips += 1;
                let at = reader.position();
                let from = reader.skip_damaged()?;
                warn!(error = %e, at, from, "a stream consumer skips a damaged chunk");
            }
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// The entry as a delivery: the message as published, with its offset in the
/// x-stream-offset header; never redelivered; costs nothing in the queue's accounting
/// (nothing is held for it: an ack only gives credit back).
fn delivery_item(entry: &Entry) -> Option<Queued> {
    let msg = Message::from_raw(&entry.data)?;
    let offset = i64::try_from(entry.offset).unwrap_or(i64::MAX);
    let msg = msg.with_header(OFFSET_HEADER, Some(AMQPValue::LongLongInt(offset)));
    Some(Queued {
        seq: entry.offset,
        msg,
        redelivered: false,
        store_id: 0,
        expires_at: 0,
        priority: 0,
        cost: 0,
        deliveries: 0,
    })
}
