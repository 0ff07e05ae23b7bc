//! The basic class on a channel, but for publishing (in `publish`): qos, consume and
//! cancel, get, ack / nack / reject and recover, and the consumer events.
//!
//! Called by `Channel::handle_method`. Acknowledging gives credit back and marks the
//! channel so its queues dispatch again after the current batch.

use super::delivery::requeue_entries;
use super::{Channel, ChannelConsumer, Ctx, Entry, Held, Settle};
use crate::access::permissions::{Permission, Resource};
use crate::broker::arguments::as_int;
use crate::broker::consumer::{Consumer, ConsumerInfo};
use crate::broker::events::ChannelRef;
use crate::broker::queue::{ConsumerRemoved, Get, Queue};
use crate::broker::stream::StartAt;
use crate::broker::stream_queue::args::start_at;
use crate::broker::tracer::{Delivery, Origin};
use crate::broker::vhost::{server_generated_name, REPLY_TO};
use crate::codec::{self, ShortStr};
use crate::error::Exception;
use crate::stats::{ConsumerView, Gauge, Key};
use amq_protocol::protocol::{basic as amqp_basic, AMQPClass};
use std::sync::Arc;

impl Channel {
    pub(super) fn qos(
        &mut self,
        ctx: &mut Ctx,
        prefetch_size: u32,
        prefetch_count: u16,
        global: bool,
    ) -> Result<(), Exception> {
        if prefetch_size != 0 {
            return Err(Exception::not_implemented(format!(
                "prefetch_size!=0 ({prefetch_size})"
            )));
        }
        if global {
            self.channel_credit.set_limit(prefetch_count as u32);
            self.credit_returned = true;
            self.stats
                .set(Gauge::GlobalPrefetchCount, prefetch_count as u64);
        } else {
            self.consumer_prefetch = prefetch_count as u32;
            self.stats.set(Gauge::PrefetchCount, prefetch_count as u64);
        }
        ctx.send(
            self.id,
            AMQPClass::Basic(amqp_basic::AMQPMethod::QosOk(amqp_basic::QosOk {})),
        );
        Ok(())
    }

    /// The queue an empty name stands for: the last one declared on this channel.
    pub(super) fn queue_name(&self, name: &str) -> Result<ShortStr, Exception> {
        if !name.is_empty() {
            return Ok(ShortStr::from(name));
        }
        self.last_queue
            .clone()
            .ok_or_else(|| Exception::not_found("no previously declared queue"))
    }

    pub(super) fn consume(
        &mut self,
        ctx: &mut Ctx,
        m: amqp_basic::Consume,
    ) -> Result<(), Exception> {
        let name = self.queue_name(m.queue.as_str())?;
        let tag = if m.consumer_tag.as_str().is_empty() {
            ShortStr::from(server_generated_name("amq.ctag-"))
        } else {
            ShortStr::from(m.consumer_tag.as_str())
        };
        if self.consumers.contains_key(&tag) {
            return Err(Exception::not_allowed(format!(
                "attempt to reuse consumer tag '{tag}'"
            )));
        }
        let queue = if name.as_str() == REPLY_TO {
            if !m.no_ack {
                return Err(Exception::precondition_failed(
                    "reply consumer cannot acknowledge",
                ));
            }
            if self.reply_queue.is_some() {
                return Err(Exception::precondition_failed("reply consumer already set"));
            }
            let queue = ctx.vhost.create_reply_queue();
            self.reply_queue = Some(queue.clone());
            queue
        } else {
            self.authorize(ctx, Resource::Queue, &name, Permission::Read)?;
            let queue = ctx.vhost.queue(&name, ctx.connection)?;
            crate::broker::arguments::validate_consumer_args(
                &m.arguments,
                &ctx.vhost.describe_queue(&name),
            )?;
            queue
        };
        let info = Arc::new(ConsumerInfo::new(
            tag.clone(),
            self.id,
            m.no_ack,
            self.consumer_prefetch,
            self.channel_credit.clone(),
        ));
        // A stream consumer starts where x-stream-offset says; RabbitMQ's refusals first.
        let start = match &queue.stream {
            Some(_) => Some(self.stream_start(&queue, &m, ctx.vhost.clock.unix_ms())?),
            None => None,
        };
        let priority = m
            .arguments
            .inner()
            .get("x-priority")
            .and_then(as_int)
            .unwrap_or(0) as i64;
        let consumer = Consumer {
            info: info.clone(),
            connection: ctx.handle.clone(),
            exclusive: m.exclusive,
            priority,
        };
        queue.add_consumer(consumer)?;
        if let Some(e) = ctx.vhost.events().filter(|_| name.as_str() != REPLY_TO) {
            let flags = (!m.no_ack, m.exclusive);
            let prefetch = self.consumer_prefetch.min(u16::MAX.into()) as u16;
            let at = self.event_ref(ctx);
            e.consumer_created(
                &ctx.vhost.name,
                &name,
                at,
                &tag,
                flags,
                prefetch,
                &m.arguments,
            );
        }
        if let (Some(stream), Some(start)) = (&queue.stream, start) {
            stream.start_reading(queue.clone(), info.clone(), ctx.handle.clone(), start);
        }
        // consume-ok still goes out before the first delivery: deliveries wait in the
        // outbox until the connection drains it, after this handler returns.
        if !m.nowait {
            ctx.send(
                self.id,
                AMQPClass::Basic(amqp_basic::AMQPMethod::ConsumeOk(amqp_basic::ConsumeOk {
                    consumer_tag: tag.as_str().into(),
                })),
            );
        }
        self.stats.add_consumer(ConsumerView {
            tag: tag.to_string(),
            queue: queue.name.to_string(),
            ack_required: !m.no_ack,
            exclusive: m.exclusive,
            prefetch_count: self.consumer_prefetch,
            arguments: crate::stats::fieldtable::to_json(&m.arguments),
        });
        self.consumers.insert(tag, ChannelConsumer { info, queue });
        Ok(())
    }

    /// Where a stream consumer starts, after RabbitMQ's checks: manual acks and a
    /// prefetch are required (credit is what bounds a reader), x-stream-offset must read.
    /// `now`: the broker clock's Unix ms (an interval offset counts back from it).
    fn stream_start(
        &self,
        queue: &Queue,
        m: &amqp_basic::Consume,
        now: i64,
    ) -> Result<StartAt, Exception> {
        if m.no_ack {
            return Err(Exception::not_implemented(format!(
                "automatic acknowledgement not supported by stream queues {}",
                queue.describe()
            )));
        }
        if self.consumer_prefetch == 0 {
            return Err(Exception::precondition_failed(format!(
                "consumer prefetch count is not set for '{}'",
                queue.describe()
            )));
        }
        start_at(&m.arguments, now)
    }

    pub(super) fn cancel(&mut self, ctx: &mut Ctx, m: amqp_basic::Cancel) -> Result<(), Exception> {
        let tag = m.consumer_tag.as_str();
        if let Some(c) = self.consumers.remove(tag) {
            self.stats.remove_consumer(tag);
            self.consumer_deleted_event(ctx, &c.queue, tag);
            if c.queue.remove_consumer(ctx.connection, self.id, tag)
                == ConsumerRemoved::RemovedLastOfAutoDelete
            {
                ctx.vhost.remove_queue(&c.queue);
            }
            if self
                .reply_queue
                .as_ref()
                .is_some_and(|q| q.id == c.queue.id)
            {
                self.reply_queue = None;
            }
        }
        if !m.nowait {
            ctx.send(
                self.id,
                AMQPClass::Basic(amqp_basic::AMQPMethod::CancelOk(amqp_basic::CancelOk {
                    consumer_tag: m.consumer_tag,
                })),
            );
        }
        Ok(())
    }

    /// The queue read back what a waiting basic.get needs: it asks again. Returns the
    /// frames held behind it for the connection to handle now (none if it waits again).
    pub fn get_ready(&mut self, ctx: &mut Ctx) -> Result<Held, Exception> {
        let Some((m, held)) = self.waiting_get.take() else {
            return Ok(Held::new());
        };
        self.get(ctx, m)?;
        match &mut self.waiting_get {
            Some((_, again)) => {
                *again = held;
                Ok(Held::new())
            }
            None => Ok(held),
        }
    }

    pub(super) fn get(&mut self, ctx: &mut Ctx, m: amqp_basic::Get) -> Result<(), Exception> {
        let name = self.queue_name(m.queue.as_str())?;
        self.authorize(ctx, Resource::Queue, &name, Permission::Read)?;
        let queue = ctx.vhost.queue(&name, ctx.connection)?;
        if queue.stream.is_some() {
            return Err(Exception::not_implemented(format!(
                "basic.get not supported by stream queues {}",
                queue.describe()
            )));
        }
        let (item, remaining) = match queue.get(ctx.handle, self.id, !m.no_ack) {
            Get::Message(item, remaining) => (item, remaining),
            Get::Empty => {
                self.stats.counters.bump(Key::GetEmpty, 1);
                queue.stats.add(Key::GetEmpty, 1);
                ctx.send(
                    self.id,
                    AMQPClass::Basic(amqp_basic::AMQPMethod::GetEmpty(amqp_basic::GetEmpty {})),
                );
                return Ok(());
            }
            // The head is being read back from a page file: get-empty would deny messages
            // the queue has, so the channel waits (holding what the client sends after)
            // and asks again when the queue says (`get_ready`).
            Get::Wait => {
                self.waiting_get = Some((m, Held::new()));
                return Ok(());
            }
        };
        let key = if m.no_ack { Key::GetNoAck } else { Key::Get };
        self.stats.counters.bump(key, 1);
        queue.stats.add(key, 1);
        if item.redelivered {
            self.stats.counters.bump(Key::Redeliver, 1);
            queue.stats.add(Key::Redeliver, 1);
        }
        let (stats, number) = (&self.stats, self.id);
        ctx.vhost.tracing.delivered(&queue, &item.msg, || Delivery {
            consumer_tag: None,
            redelivered: item.redelivered,
            origin: Origin::Channel {
                name: &stats.name,
                number,
            },
        });
        let tag = self.next_tag();
        codec::encode_get_ok(
            ctx.out,
            self.id,
            tag,
            item.redelivered,
            item.msg.exchange(),
            item.msg.routing_key(),
            remaining,
        );
        ctx.out.put_content(self.id, &item.msg, ctx.frame_max);
        if m.no_ack {
            queue.settled(&item);
        } else {
            queue.delivered(&item);
            self.unacked.push(
                tag,
                super::Entry {
                    queue,
                    item,
                    consumer: None,
                },
            );
        }
        Ok(())
    }

    fn unknown_tag(tag: u64) -> Exception {
        Exception::precondition_failed(format!("unknown delivery tag {tag}"))
    }

    pub(super) fn ack(&mut self, tag: u64, multiple: bool) -> Result<(), Exception> {
        let entries = self
            .unacked
            .take(tag, multiple)
            .ok_or_else(|| Self::unknown_tag(tag))?;
        self.settle(entries, Settle::Ack);
        Ok(())
    }

    pub(super) fn reject(
        &mut self,
        tag: u64,
        multiple: bool,
        requeue: bool,
    ) -> Result<(), Exception> {
        let entries = self
            .unacked
            .take(tag, multiple)
            .ok_or_else(|| Self::unknown_tag(tag))?;
        if let Some((_, e)) = entries.iter().find(|(_, e)| e.queue.stream.is_some()) {
            let refusal = Exception::not_implemented(format!(
                "basic.nack and basic.reject not supported by stream queues {}",
                e.queue.describe()
            ));
            // The connection closes: what was taken goes back as on any close.
            requeue_entries(entries);
            return Err(refusal);
        }
        self.settle(
            entries,
            if requeue {
                Settle::Requeue
            } else {
                Settle::Drop
            },
        );
        Ok(())
    }

    /// Settles deliveries now, or at commit inside a transaction.
    pub(super) fn settle(&mut self, entries: Vec<(u64, Entry)>, how: Settle) {
        if let Some(tx) = &mut self.tx {
            tx.settles.push((entries, how));
            return;
        }
        self.credit_returned = true;
        match how {
            Settle::Requeue => requeue_entries(entries),
            Settle::Ack | Settle::Drop => {
                if how == Settle::Ack {
                    self.stats.counters.bump(Key::Ack, entries.len() as u64);
                }
                for (_, e) in entries {
                    if how == Settle::Ack {
                        e.queue.stats.add(Key::Ack, 1);
                    }
                    if let Some(c) = &e.consumer {
                        c.settled();
                    }
                    if how == Settle::Drop {
                        e.queue.rejected(e.item);
                    } else {
                        e.queue.acked(&e.item);
                    }
                }
            }
        }
    }

    pub(super) fn recover(&mut self, requeue: bool) -> Result<(), Exception> {
        if !requeue {
            return Err(Exception::not_implemented("requeue=false"));
        }
        self.credit_returned = true;
        requeue_entries(self.unacked.take_all());
        Ok(())
    }
}

impl Channel {
    /// This channel as consumer events name it.
    fn event_ref(&self, ctx: &Ctx) -> ChannelRef {
        ChannelRef {
            connection: ctx.connection,
            number: self.id,
        }
    }

    /// consumer.deleted, with the event exchange on (not for direct reply-to, which
    /// RabbitMQ does not report either).
    pub(super) fn consumer_deleted_event(&self, ctx: &Ctx, queue: &Queue, tag: &str) {
        if let Some(e) = ctx.vhost.events() {
            if !queue.name.starts_with(crate::broker::vhost::REPLY_PREFIX) {
                let at = self.event_ref(ctx);
                e.consumer_deleted(&ctx.vhost.name, &queue.name, at, tag, true);
            }
        }
    }
}
