//! The basic class on a channel: publish and confirms, qos, consume and cancel, get,
//! ack / nack / reject and recover.
//!
//! Called by `Channel::handle_method` and the content assembler. Publishing routes under
//! the vhost's read lock, then pushes into each queue; acknowledging gives credit back
//! and marks the channel so its queues dispatch again after the current batch.

use super::{requeue_entries, Channel, ChannelConsumer, Confirms, Ctx, Entry, Held, Settle};
use crate::access::permissions::{Permission, Resource};
use crate::broker::arguments::{as_int, parse_expiration};
use crate::broker::consumer::{Consumer, ConsumerInfo};
use crate::broker::events::ChannelRef;
use crate::broker::exchange::sender;
use crate::broker::message::Message;
use crate::broker::persist::{store_message, will_store};
use crate::broker::queue::{ConsumerRemoved, Enqueued, Get, Queue};
use crate::broker::stream::StartAt;
use crate::broker::stream_queue::args::start_at;
use crate::broker::stream_queue::split_done;
use crate::broker::tracer::{Delivery, Origin};
use crate::broker::vhost::{server_generated_name, REPLY_TO};
use crate::codec::properties as props;
use crate::codec::{self, Publish, ShortStr};
use crate::error::{Exception, ReplyCode};
use crate::stats::{ConsumerView, Gauge, Key};
use crate::store::Done;
use amq_protocol::protocol::{basic as amqp_basic, AMQPClass};
use bytes::Bytes;
use std::sync::Arc;

impl Channel {
    pub(super) fn start_publish(&mut self, publish: Publish) -> Result<(), Exception> {
        if publish.immediate {
            return Err(Exception::not_implemented("immediate=true"));
        }
        self.content = super::Content::Header(publish);
        Ok(())
    }

    /// A whole message arrived: route it, enqueue it, return or confirm it.
    pub(super) fn publish(
        &mut self,
        ctx: &mut Ctx,
        publish: Publish,
        msg: Message,
    ) -> Result<(), Exception> {
        let mut targets = std::mem::take(&mut self.route_buf);
        let routed = ctx
            .vhost
            .route_keys(msg.exchange(), &msg, &self.sender_keys, &mut targets);
        let held = match routed {
            Ok(held) => held,
            Err(e) => {
                self.route_buf = targets;
                return Err(e.on(60, 40));
            }
        };
        // A delayed exchange that took it routes it later: not unroutable now, and never
        // returned (as with RabbitMQ's plugin, mandatory cannot apply to it then).
        let unroutable = targets.is_empty() && held.count == 0;
        let (stats, number) = (&self.stats, self.id);
        ctx.vhost
            .tracing
            .published(&msg, &targets, || Origin::Channel {
                name: &stats.name,
                number,
            });
        self.count_publish(&publish.exchange, !unroutable, publish.mandatory);
        if unroutable {
            // The unroutable path only: a routed publish never takes this lock.
            if let Some(stats) = ctx.vhost.stats() {
                stats.diagnostics.unroutable(
                    &ctx.vhost.name,
                    msg.exchange(),
                    msg.routing_key(),
                    &self.stats.name,
                    publish.mandatory,
                );
            }
        }
        let seq = self.confirms.as_mut().map(Confirms::next);
        let (mut stored, mut refused) = (false, false);
        if let Some(tx) = &mut self.tx {
            // In a transaction RabbitMQ returns an unroutable mandatory message at
            // commit, just before commit-ok (and never, after a rollback): it waits in
            // the transaction with no queues.
            if !targets.is_empty() || (unroutable && publish.mandatory) {
                tx.publishes.push((msg, std::mem::take(&mut targets)));
            }
        } else if targets.is_empty() && !held.stored {
            if unroutable && publish.mandatory {
                self.send_return(ctx, &msg);
            }
        } else {
            // A persistent message in durable queues is written once, for all of them;
            // its confirm waits for the fdatasync that covers it.
            let done = seq.map(|seq| ctx.answer_from_store(self.id, seq));
            // Streams answer a confirm once their log is durable, beside the store.
            let streams = targets.iter().filter(|q| q.stream.is_some()).count();
            let (done, mut stream_done) = match done {
                Some(d) if streams > 0 => {
                    let to_store = held.stored || will_store(&msg, &targets);
                    confirm_parts(d, streams, to_store)
                }
                d => (d, Vec::new()),
            };
            // Held and written by a delayed exchange: one sync after both writes covers it.
            let (for_queues, for_held) = if held.stored {
                (None, done)
            } else {
                (done, None)
            };
            let store_id = store_message(&msg, &targets, for_queues);
            stored = store_id != 0 || (streams > 0 && seq.is_some());
            if let Some(done) = for_held {
                ctx.vhost.after_held_stored(done);
                stored = true;
            }
            let sharers = targets.len();
            for queue in targets.drain(..) {
                if queue.stream_publish(&msg, stream_done.pop()) {
                    continue;
                }
                refused |= queue.publish(msg.clone(), store_id, sharers) == Enqueued::Refused;
            }
        }
        self.route_buf = targets;
        if let (Some(confirms), Some(seq)) = (&mut self.confirms, seq) {
            // A queue that refused it (x-overflow reject-publish) makes it a nack, as in
            // RabbitMQ; a later answer from the store for it is then ignored.
            // Counted when settled here or sent to the store, not when the ack goes out.
            self.stats.counters.bump(Key::Confirm, 1);
            if refused {
                confirms.settle_now(seq, false);
            } else if stored {
                confirms.wait_for_store(seq);
            } else {
                confirms.settle_now(seq, true);
            }
        }
        Ok(())
    }

    /// basic.return of an unroutable mandatory message, with its content.
    pub(super) fn send_return(&self, ctx: &mut Ctx, msg: &Message) {
        codec::encode_return(
            ctx.out,
            self.id,
            ReplyCode::NoRoute as u16,
            "NO_ROUTE",
            msg.exchange(),
            msg.routing_key(),
        );
        codec::encode_content(
            ctx.out,
            self.id,
            msg.properties(),
            msg.body(),
            ctx.frame_max,
        );
    }

    /// RabbitMQ's checks of user_id, CC and BCC (their keys kept for routing, BCC cut
    /// out), and direct reply-to's rewrite of reply_to. Most messages set none of these
    /// flags and pass untouched.
    pub(super) fn check_properties(
        &mut self,
        ctx: &Ctx,
        exchange: &ShortStr,
        mut properties: Bytes,
    ) -> Result<Bytes, Exception> {
        let flags = props::flags(&properties);
        if flags & props::USER_ID != 0 {
            let user_id = props::short_str(&properties, props::USER_ID).unwrap_or_default();
            if user_id != ctx.user {
                return Err(Exception::precondition_failed(format!(
                    "user_id property set to '{user_id}' but authenticated user was '{}'",
                    ctx.user
                )));
            }
        }
        if flags & props::EXPIRATION != 0 {
            parse_expiration(props::short_str(&properties, props::EXPIRATION).unwrap_or_default())?;
        }
        if flags & props::REPLY_TO != 0
            && props::short_str(&properties, props::REPLY_TO) == Some(REPLY_TO)
        {
            let queue = self.reply_queue.as_ref().ok_or_else(|| {
                Exception::precondition_failed("fast reply consumer does not exist")
            })?;
            properties =
                props::replace_short_str(&properties, props::REPLY_TO, queue.name.as_str())
                    .unwrap_or(properties);
        }
        // RabbitMQ reads CC and BCC last, when it builds the message.
        self.sender_keys.clear();
        if flags & props::HEADERS != 0 {
            let scanned =
                sender::scan(&properties).map_err(|e| lookup_first(ctx, exchange.as_str(), e));
            if let Some(routes) = scanned? {
                self.sender_keys = routes.keys;
                properties = routes.stripped.unwrap_or(properties);
            }
        }
        Ok(properties)
    }

    pub(super) fn confirm_select(&mut self) {
        self.confirms.get_or_insert_with(Confirms::default);
        self.stats.set(Gauge::Confirm, 1);
    }

    /// A message published to `exchange` (routed to some queue or not): the channel's
    /// counters and its tally for the exchange.
    fn count_publish(&mut self, exchange: &ShortStr, routed: bool, mandatory: bool) {
        let c = &self.stats.counters;
        c.bump(Key::Publish, 1);
        if !routed {
            c.bump(
                if mandatory {
                    Key::ReturnUnroutable
                } else {
                    Key::DropUnroutable
                },
                1,
            );
        }
        match &self.last_exchange {
            Some((name, tally)) if name == exchange => tally.bump(routed),
            _ => {
                let tally = self.stats.exchange_tally(exchange.as_str());
                tally.bump(routed);
                self.last_exchange = Some((exchange.clone(), tally));
            }
        }
    }

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
        codec::encode_content(
            ctx.out,
            self.id,
            item.msg.properties(),
            item.msg.body(),
            ctx.frame_max,
        );
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

/// RabbitMQ looks the exchange up before it reads CC and BCC: a missing or internal
/// exchange is the refusal then, not the header's type. Only on that refusal's path.
fn lookup_first(ctx: &Ctx, exchange: &str, refusal: Exception) -> Exception {
    let probe = Message::new(exchange, "", &[0, 0], b"");
    match ctx.vhost.probe_route(exchange, &probe, &mut Vec::new()) {
        Err(lookup) => lookup,
        Ok(()) => refusal,
    }
}

/// A confirm for a message routed to `streams` stream queues: one part for each stream's
/// log and, if the message store holds it too (`to_store`), one for the store (returned
/// first); the publisher is answered when all parts are.
fn confirm_parts(done: Done, streams: usize, to_store: bool) -> (Option<Done>, Vec<Done>) {
    let mut parts = split_done(done, streams + usize::from(to_store));
    let store = if to_store { parts.pop() } else { None };
    (store, parts)
}
