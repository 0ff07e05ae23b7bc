//! What other tasks send a connection (deliveries, server cancels, store confirms), and
//! the release of everything a connection holds when it ends.
//!
//! Part of the connection task: these run between socket reads, never block, and put
//! back into their queues any delivery the connection can no longer hand out.

use super::{Connection, Phase, HIGH_WATER};
use crate::broker::consumer::Outgoing;
use tokio::sync::mpsc;
use tracing::debug;

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
                Outgoing::Deliver(d) => {
                    let channel = d.consumer.channel;
                    let (consumer, queue, queued) = (d.consumer, d.queue, d.item);
                    let undelivered = match self.with_channel(channel, |ch, ctx| {
                        ch.deliver(ctx, consumer.clone(), queue.clone(), queued.clone())
                    }) {
                        Some(Ok(())) => None,
                        Some(Err(back)) => Some(back),
                        None => {
                            consumer.give_back();
                            Some((queue, queued))
                        }
                    };
                    if let Some((queue, item)) = undelivered {
                        queue.requeue([item], false);
                    }
                }
                Outgoing::Stored { channel, seq, ok } => {
                    if let Some(ch) = self.channels.get_mut(&channel) {
                        ch.stored(seq, ok);
                    }
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

    pub(super) fn flush_channels(&mut self) {
        let Some((channels, mut ctx)) = self.split() else {
            return;
        };
        for ch in channels.values_mut() {
            ch.flush(&mut ctx);
        }
    }

    /// Gives back everything: consumers, unacked and undelivered messages, exclusive queues.
    pub(super) fn release(&mut self, outbox: &mut mpsc::UnboundedReceiver<Outgoing>) {
        let ids: Vec<u16> = self.channels.keys().copied().collect();
        for id in ids {
            self.with_channel(id, |ch, ctx| ch.release(ctx));
        }
        self.channels.clear();
        outbox.close();
        while let Ok(item) = outbox.try_recv() {
            give_back(item);
        }
        if let Some(vhost) = &self.vhost {
            for q in self.exclusive_queues.drain(..) {
                vhost.remove_queue(&q);
            }
        }
        if !matches!(self.phase, Phase::Done | Phase::CloseOkSent(_)) {
            debug!("connection released without an orderly close");
        }
    }
}

/// An outbox item that will never be handled: a delivery goes back to its queue.
pub(super) fn give_back(item: Outgoing) {
    if let Outgoing::Deliver(d) = item {
        d.consumer.give_back();
        d.queue.requeue([d.item], false);
    }
}
