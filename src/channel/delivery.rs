//! What reaches a channel from its queues and what it gives back when it goes:
//! deliveries to its consumers (tagged and recorded as unacked), server-side cancels,
//! and the release of its consumers and unacked messages in tag order.
//!
//! Called by the connection for its outbox items and on every exit path. Writes into
//! the connection's write buffer; never blocks, never awaits.

use super::{Channel, ChannelState, Content, Ctx, Entry};
use crate::broker::consumer::window_size;
use crate::broker::consumer::ConsumerInfo;
use crate::broker::queue::{ConsumerRemoved, Queue, Queued};
use crate::broker::tracer::{Delivery, Origin};
use crate::codec::{self, ShortStr};
use crate::stats::Key;
use amq_protocol::protocol::{basic as amqp_basic, AMQPClass};
use std::sync::Arc;

impl Channel {
    /// A delivery from one of this channel's consumers' queues. Returns it when the
    /// consumer is gone (cancelled, channel closing) so the caller puts it back.
    pub fn deliver(
        &mut self,
        ctx: &mut Ctx,
        consumer: Arc<ConsumerInfo>,
        queue: Arc<Queue>,
        item: Queued,
    ) -> Result<(), (Arc<Queue>, Queued)> {
        let current = self
            .consumers
            .get(&consumer.tag)
            .is_some_and(|c| Arc::ptr_eq(&c.info, &consumer));
        if self.state != ChannelState::Open || !current {
            consumer.give_back(window_size(&item));
            return Err((queue, item));
        }
        let tag = self.next_tag();
        codec::encode_deliver(
            ctx.out,
            self.id,
            consumer.tag.as_str(),
            tag,
            item.redelivered,
            item.msg.exchange(),
            item.msg.routing_key(),
        );
        ctx.out.put_content(self.id, &item.msg, ctx.frame_max);
        let (stats, number) = (&self.stats, self.id);
        ctx.vhost.tracing.delivered(&queue, &item.msg, || Delivery {
            consumer_tag: Some(consumer.tag.as_str()),
            redelivered: item.redelivered,
            origin: Origin::Channel {
                name: &stats.name,
                number,
            },
        });
        // Written: the window opens again (prefetch, if any, waits for the ack).
        consumer.written(window_size(&item));
        self.credit_returned = true;
        self.active = true;
        let key = if consumer.no_ack {
            Key::DeliverNoAck
        } else {
            Key::Deliver
        };
        self.stats.counters.bump(key, 1);
        queue.stats.add(key, 1);
        if item.redelivered {
            self.stats.counters.bump(Key::Redeliver, 1);
            queue.stats.add(Key::Redeliver, 1);
        }
        if consumer.no_ack {
            queue.settled(&item);
        } else {
            queue.delivered(&item);
            self.unacked.push(
                tag,
                Entry {
                    queue,
                    item,
                    consumer: Some(consumer),
                },
            );
        }
        Ok(())
    }

    /// The server cancels a consumer whose queue was deleted.
    pub fn server_cancel(&mut self, ctx: &mut Ctx, consumer_tag: ShortStr, notify: bool) {
        self.stats.remove_consumer(consumer_tag.as_str());
        let removed = self.consumers.remove(&consumer_tag);
        if let (Some(c), Some(e)) = (&removed, ctx.vhost.events()) {
            let at = crate::broker::events::ChannelRef {
                connection: ctx.connection,
                number: self.id,
            };
            e.consumer_deleted(&ctx.vhost.name, &c.queue.name, at, &consumer_tag, false);
        }
        if removed.is_some() && notify && self.state == ChannelState::Open {
            ctx.send(
                self.id,
                AMQPClass::Basic(amqp_basic::AMQPMethod::Cancel(amqp_basic::Cancel {
                    consumer_tag: consumer_tag.as_str().into(),
                    nowait: true,
                })),
            );
        }
    }

    /// Releases everything the channel holds: consumers are cancelled, unacked messages
    /// go back to their queues in order, auto-delete queues left without consumers go.
    pub fn release(&mut self, ctx: &mut Ctx) {
        #[cfg(feature = "test-hooks")]
        if self
            .consumers
            .values()
            .any(|c| c.queue.name.as_str() == crate::connection::test_hooks::PANIC_IN_RELEASE_QUEUE)
        {
            panic!("test hook: a channel's release panics on purpose");
        }
        // Publishes accepted before the channel closes still go in.
        self.push_batch();
        self.reply_queue = None;
        for (tag, c) in std::mem::take(&mut self.consumers) {
            self.consumer_deleted_event(ctx, &c.queue, tag.as_str());
            if c.queue
                .remove_consumer(ctx.connection, self.id, tag.as_str())
                == ConsumerRemoved::RemovedLastOfAutoDelete
            {
                ctx.vhost.remove_queue(&c.queue);
            }
        }
        if let Some(tx) = self.tx.take() {
            // Settlements of an unfinished transaction never happened.
            for (entries, _) in tx.settles {
                self.unacked.restore(entries);
            }
        }
        requeue_entries(self.unacked.take_all());
        self.content = Content::Idle;
    }
}

/// Gives credit back and puts settled-by-requeue entries back in their queues, one call
/// per run of entries from the same queue (they arrive in tag order).
pub(super) fn requeue_entries(entries: Vec<(u64, Entry)>) {
    let mut run: Vec<Queued> = Vec::new();
    let mut run_queue: Option<Arc<Queue>> = None;
    for (_, e) in entries {
        if let Some(c) = &e.consumer {
            c.settled();
        }
        if run_queue.as_ref().is_some_and(|q| q.id != e.queue.id) {
            if let Some(q) = run_queue.take() {
                q.requeue(std::mem::take(&mut run));
            }
        }
        run_queue.get_or_insert(e.queue);
        run.push(e.item);
    }
    if let Some(q) = run_queue {
        q.requeue(run);
    }
}
