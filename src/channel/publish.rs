//! basic.publish on a channel: checks, routing, the queues' pushes, mandatory returns,
//! publisher confirms and the publish statistics.
//!
//! Called by `Channel::handle_method` (start) and the content assembler (the finished
//! message). Routes under the vhost's read lock, then pushes into each queue; a confirm
//! for a persistent message waits for the store. Never blocks, never awaits.

use super::{Channel, Confirms, Ctx};
use crate::broker::arguments::parse_expiration;
use crate::broker::exchange::sender;
use crate::broker::message::Message;
use crate::broker::persist::{store_message, will_store};
use crate::broker::queue::Enqueued;
use crate::broker::stream_queue::split_done;
use crate::broker::tracer::Origin;
use crate::broker::vhost::REPLY_TO;
use crate::codec::properties as props;
use crate::codec::{self, Publish, ShortStr};
use crate::error::{Exception, ReplyCode};
use crate::stats::{Gauge, Key};
use crate::store::Done;
use bytes::Bytes;

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
            // Streams answer a confirm once their log is durable, and replicated queues
            // once the cluster's log committed it, beside the store.
            let streams = targets.iter().filter(|q| q.confirms_itself()).count();
            let to_store = held.stored || will_store(&msg, &targets);
            if !to_store && streams == 0 && targets.len() == 1 {
                // Transient for one queue: pushed with the channel's next messages for it,
                // its confirm settled then (a nack if the queue refuses it).
                if let Some(queue) = targets.pop() {
                    self.batch(queue, msg, seq);
                }
                self.route_buf = targets;
                return Ok(());
            }
            // Anything else goes in now, after what waits for a queue.
            self.push_batch();
            // A persistent message in durable queues is written once, for all of them;
            // its confirm waits for the fdatasync that covers it. Only a write (to the
            // store or a stream's log) answers later: a completion made for anything else
            // was dropped unused, and its drop sent an ignored answer through the outbox
            // per publish (issue 16: hundreds of MB after a burst of transient confirms).
            let done = seq
                .filter(|_| to_store || streams > 0)
                .map(|seq| ctx.answer_from_store(self.id, seq));
            let (done, mut stream_done) = match done {
                Some(d) if streams > 0 => confirm_parts(d, streams, to_store),
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
                // Only a stream or a replicated queue takes a part: one popped for a
                // classic queue routed before it would be dropped, a nack for a routed
                // message.
                let part = queue.confirms_itself().then(|| stream_done.pop()).flatten();
                if queue.stream_publish(&msg, part) {
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
