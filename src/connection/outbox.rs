//! What other tasks send a connection (deliveries, server cancels, store answers), and
//! the release of everything a connection holds when it ends, also run by its drop guard.
//!
//! Part of the connection task: these run between socket reads, never block, and put
//! back into their queues any delivery the connection can no longer hand out.
//!
//! A panic in a connection task is contained: tokio catches it, the task's future is
//! dropped and `Drop for Connection` releases what it held; the accept loop logs it.
//! Shared std locks (topology, queues, store, definitions) recover from poisoning with
//! `into_inner` rather than propagate it: the work under them is short memory work whose
//! steps each leave the state usable, and a poisoned lock that panicked every later user
//! would turn one bad connection into a dead broker.

use super::{Connection, Phase, HIGH_WATER};
use crate::broker::consumer::window_size;
use crate::broker::consumer::Outgoing;
use crate::channel::Held;
use crate::error::Exception;
use std::panic::AssertUnwindSafe;
use tracing::{debug, error};

impl Connection {
    /// Writes deliveries and server cancels taken from the outbox, until the write buffer
    /// reaches the high-water mark: the rest wait in `pending` (still holding their
    /// consumers' write window) until it drains.
    pub(super) fn process_outbox(&mut self) {
        let notify = self.consumer_cancel_notify;
        while self.out.len() < HIGH_WATER {
            let Some(item) = self.pending.pop_front() else {
                break;
            };
            match item {
                // After our connection.close (the vhost was deleted, the broker stops)
                // nothing but close-ok may go out: deliveries go back to their queues.
                item @ (Outgoing::Deliver(_) | Outgoing::Cancel { .. })
                    if self.phase != Phase::Running =>
                {
                    give_back(item)
                }
                Outgoing::Deliver(d) => {
                    let channel = d.consumer.channel;
                    let (consumer, queue, queued) = (d.consumer, d.queue, d.item);
                    let counted = !consumer.no_ack;
                    let undelivered = match self.with_channel(channel, |ch, ctx| {
                        ch.deliver(ctx, consumer.clone(), queue.clone(), queued.clone())
                    }) {
                        Some(Ok(())) => None,
                        Some(Err(back)) => Some(back),
                        None => {
                            consumer.give_back(window_size(&queued));
                            Some((queue, queued))
                        }
                    };
                    if let Some((queue, item)) = undelivered {
                        queue.unsent(item, counted);
                    }
                }
                // After our connection.close nothing but close-ok may go out.
                Outgoing::Stored { .. } if self.phase != Phase::Running => {}
                Outgoing::Stored { channel, seq, ok } => {
                    #[cfg(feature = "test-hooks")]
                    self.client_memory.store_answer();
                    let answer = self.with_channel(channel, |ch, ctx| ch.stored(ctx, seq, ok));
                    self.answered(channel, answer);
                }
                Outgoing::StoredMany { .. } if self.phase != Phase::Running => {}
                Outgoing::StoredMany { tags, ok } => {
                    #[cfg(feature = "test-hooks")]
                    self.client_memory.store_answer();
                    for tag in tags {
                        let (channel, seq) = crate::broker::consumer::untag(tag);
                        let answer = self.with_channel(channel, |ch, ctx| ch.stored(ctx, seq, ok));
                        self.answered(channel, answer);
                    }
                }
                Outgoing::Replicated { .. } if self.phase != Phase::Running => {}
                Outgoing::Replicated {
                    channel,
                    result,
                    nowait,
                } => {
                    let answer =
                        self.with_channel(channel, |ch, ctx| ch.replicated(ctx, result, nowait));
                    self.answered(channel, answer);
                }
                Outgoing::GetReady { .. } if self.phase != Phase::Running => {}
                Outgoing::GetReady { channel } => {
                    let answer = self.with_channel(channel, |ch, ctx| ch.get_ready(ctx));
                    self.answered(channel, answer);
                }
                Outgoing::Cancel {
                    channel,
                    consumer_tag,
                } => {
                    self.with_channel(channel, |ch, ctx| {
                        ch.server_cancel(ctx, consumer_tag, notify)
                    });
                }
            }
        }
        self.flush_channels();
    }

    /// A channel's wait (a commit, a basic.get) was answered: the frames it held are
    /// handled now, in order.
    fn answered(&mut self, channel: u16, answer: Option<Result<Held, Exception>>) {
        match answer {
            Some(Ok(held)) => self.release_held(held),
            Some(Err(e)) => self.fail(channel, e),
            None => {}
        }
    }

    pub(super) fn flush_channels(&mut self) {
        let Some((channels, mut ctx)) = self.split() else {
            return;
        };
        for ch in channels.values_mut() {
            ch.flush(&mut ctx);
        }
    }

    /// Gives back everything: consumers, unacked and undelivered messages, exclusive queues.
    /// Runs once, when the client is done (close-ok sent) or the task ends, and from
    /// the drop guard if the task panicked or was aborted. Each step is contained: after
    /// a panic the state may be half-changed, and a panic here, during unwinding, must
    /// neither abort the process nor skip the steps after it.
    pub(super) fn release(&mut self) {
        if std::mem::replace(&mut self.released, true) {
            return;
        }
        let ids: Vec<u16> = self.channels.keys().copied().collect();
        let acting = self.acting();
        for id in ids {
            contained("releasing a channel", || {
                self.with_channel(id, |ch, ctx| ch.release(ctx));
            });
            self.channel_event(id, false);
        }
        drop(acting);
        self.channels.clear();
        // Out of the management API's lists; the channels' counts join the totals.
        self.registration = None;
        self.outbox.close();
        contained("requeueing undelivered messages", || {
            for item in self.pending.drain(..) {
                give_back(item);
            }
            while let Ok(item) = self.outbox.try_recv() {
                give_back(item);
            }
        });
        if let Some(vhost) = &self.vhost {
            for (_, q) in self.exclusive_queues.drain() {
                contained("deleting an exclusive queue", || {
                    vhost.remove_queue(&q);
                });
            }
        }
        // The vhost's connection count (its max-connections limit) drops here, and the
        // user's count of connections and channels.
        self.vhost_slot = None;
        self.user_slot = None;
        self.closed_event();
        if !matches!(self.phase, Phase::Done | Phase::CloseOkSent(_)) {
            debug!("connection released without an orderly close");
        }
    }
}

impl Drop for Connection {
    /// The drop guard: however the task ends (return, panic, abort at shutdown), what the
    /// connection holds goes back to the broker. On a normal end `release` already ran.
    fn drop(&mut self) {
        self.release();
    }
}

/// Runs one step of the release; a panic in it is logged and the release goes on.
fn contained(step: &str, f: impl FnOnce()) {
    if std::panic::catch_unwind(AssertUnwindSafe(f)).is_err() {
        error!(
            step,
            "panic while releasing a connection; what that step held may stay"
        );
    }
}

/// An outbox item that will never be handled: a delivery goes back to its queue.
pub(super) fn give_back(item: Outgoing) {
    if let Outgoing::Deliver(d) = item {
        d.consumer.give_back(window_size(&d.item));
        d.queue.unsent(d.item, !d.consumer.no_ack);
    }
}
