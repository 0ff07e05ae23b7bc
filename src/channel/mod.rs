//! One AMQP channel: its state machine, content assembly, consumers, unacked deliveries
//! and confirms.
//!
//! Owned by its connection task as a plain struct (no lock); the connection hands it each
//! frame with a `Ctx` that gives access to the vhost and the connection's write buffer.
//! Handlers return `Result<_, Exception>`; the connection decides what an error closes.
//! A channel never blocks and never awaits: what it sends is appended to the write buffer
//! in order, what it asks of other connections goes through their outboxes.
//!
//! This file holds the channel's state and method dispatch; beside it: `content` (header
//! and body frames), `publish`, `basic` (consume, get, acks), `delivery` (deliveries in,
//! release on close), `declare`, `confirms`, `tx`, `unacked`, `authorize`.

pub(crate) mod authorize;
mod basic;
mod batch;
mod confirms;
mod content;
pub(crate) mod declare;
mod delivery;
mod publish;
mod tx;
mod unacked;

use crate::access::cache::AccessCache;
use crate::access::permissions::Permissions;
use crate::broker::consumer::Outgoing;
use crate::broker::consumer::{ConnectionHandle, ConsumerInfo, Credit};
use crate::broker::message::{Message, MessageBuilder};
use crate::broker::queue::Queue;
use crate::broker::vhost::VHost;
use crate::codec::{self, Method, Publish, ShortStr};
use crate::error::Exception;
use crate::hash::NameMap;
use crate::stats::{ChannelStats, ExchangeTally, Gauge};
use crate::store::Done;
use amq_protocol::protocol::{basic as amqp_basic, channel as amqp_channel, AMQPClass};
use confirms::Confirms;
use std::collections::HashMap;
use std::sync::Arc;
pub use tx::Held;
use tx::PendingCommit;
pub use unacked::{Entry, Unacked};

/// RabbitMQ's default `max_message_size` (128 MiB).
pub const MAX_MESSAGE_SIZE: u64 = 128 * 1024 * 1024;

/// What a channel handler may reach beyond the channel itself.
pub struct Ctx<'a> {
    pub connection: u64,
    /// The authenticated user (publishers' user_id must match it).
    pub user: &'a str,
    pub vhost: &'a Arc<VHost>,
    pub out: &'a mut crate::connection::out::Out,
    pub frame_max: u32,
    /// Largest message body accepted (`Broker::max_message_size`).
    pub max_message_size: u64,
    /// Who may do what: read through each channel's `AccessCache`.
    pub permissions: &'a Permissions,
    pub handle: &'a ConnectionHandle,
    /// Exclusive queues this connection declared, deleted when it closes.
    pub exclusive_queues: &'a mut NameMap<Arc<Queue>>,
}

impl Ctx<'_> {
    pub fn send(&mut self, channel: u16, method: AMQPClass) {
        codec::encode_method(self.out, channel, &method);
    }

    /// A store completion that reports back to this connection as `Outgoing::StoredMany`
    /// (batched per sync) or `Outgoing::Stored` for `channel` (a confirm's sequence
    /// number, or a commit's number).
    fn answer_from_store(&self, channel: u16, seq: u64) -> Done {
        if let Some(tag) = crate::broker::consumer::store_tag(channel, seq) {
            let to: Arc<dyn crate::store::Answers> = self.handle.answers.clone();
            return Done::tagged(to, tag);
        }
        let outbox = self.handle.outbox.clone();
        Done::new(move |id| {
            // A closed outbox means the connection is gone: nobody to answer.
            let _ = outbox.send(Outgoing::Stored {
                channel,
                seq,
                ok: id.is_some(),
            });
        })
    }
}

/// Where the channel is in assembling a published message.
#[derive(Debug, Default)]
enum Content {
    #[default]
    Idle,
    Header(Publish),
    /// The message is allocated at its full size; body frames are copied into it.
    Body {
        publish: Publish,
        message: MessageBuilder,
    },
    /// Body frames are read and dropped, as RabbitMQ does: `remaining` bytes of a message
    /// over the size limit (then `error` is raised), or, after a body frame longer than
    /// announced, everything until the next method (which gets UNEXPECTED_FRAME).
    Discard {
        remaining: u64,
        error: Option<Exception>,
    },
}

/// A consumer as its channel knows it.
#[derive(Debug)]
struct ChannelConsumer {
    info: Arc<ConsumerInfo>,
    queue: Arc<Queue>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum ChannelState {
    Open,
    /// We sent channel.close and discard everything but close-ok.
    Closing,
}

/// How a delivery is settled (at once, or when its transaction commits).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Settle {
    Ack,
    Requeue,
    Drop,
}

/// What a transaction holds until commit: routed publishes and settlements.
#[derive(Debug, Default)]
struct Transaction {
    publishes: Vec<(Message, Vec<Arc<Queue>>)>,
    settles: Vec<(Vec<(u64, Entry)>, Settle)>,
}

#[derive(Debug)]
pub struct Channel {
    pub id: u16,
    pub state: ChannelState,
    content: Content,
    next_delivery_tag: u64,
    unacked: Unacked,
    consumers: HashMap<ShortStr, ChannelConsumer>,
    /// basic.qos global=false: the prefetch given to consumers started after it.
    consumer_prefetch: u32,
    /// basic.qos global=true: shared by all consumers of the channel.
    channel_credit: Arc<Credit>,
    /// The last queue declared on this channel, which an empty queue name refers to.
    last_queue: Option<ShortStr>,
    confirms: Option<Confirms>,
    tx: Option<Transaction>,
    /// Commits made so far (numbers the store's answers).
    commits: u64,
    /// A commit waiting for the store, with the frames held behind it.
    commit: Option<PendingCommit>,
    /// A basic.get waiting for a read-back from a page file, with the frames held
    /// behind it.
    waiting_get: Option<(amqp_basic::Get, Held)>,
    /// A method proposed to the cluster's log, with the frames held behind it until
    /// this node applied it.
    waiting_cluster: Option<Held>,
    /// The hidden queue of this channel's direct reply-to consumer.
    reply_queue: Option<Arc<Queue>>,
    /// Reused routing buffer: no allocation per publish.
    route_buf: Vec<Arc<Queue>>,
    /// Transient publishes for one queue, pushed together (`batch`).
    batch: batch::Batch,
    /// The CC and BCC keys of the message being assembled (empty without those headers).
    sender_keys: Vec<String>,
    /// Credit came back (ack, reject, a delivery written): queues should dispatch again.
    credit_returned: bool,
    /// The user's permissions in this vhost and the answers given lately.
    access: AccessCache,
    /// What the management API shows of this channel; written only by this task.
    pub stats: Arc<ChannelStats>,
    /// The tally of the exchange published to last: the registry's lock is taken
    /// only when a publisher changes exchange.
    last_exchange: Option<(ShortStr, Arc<ExchangeTally>)>,
    /// A method or delivery since the last tick: `idle_since` moves on the
    /// connection's tick (at most once a second), not per message.
    active: bool,
}

impl Channel {
    pub fn new(id: u16, stats: Arc<ChannelStats>) -> Self {
        Channel {
            id,
            state: ChannelState::Open,
            content: Content::Idle,
            next_delivery_tag: 1,
            unacked: Unacked::default(),
            consumers: HashMap::new(),
            consumer_prefetch: 0,
            channel_credit: Arc::new(Credit::new(0)),
            last_queue: None,
            confirms: None,
            tx: None,
            commits: 0,
            commit: None,
            waiting_get: None,
            waiting_cluster: None,
            reply_queue: None,
            route_buf: Vec::new(),
            batch: batch::Batch::default(),
            sender_keys: Vec::new(),
            credit_returned: false,
            access: AccessCache::default(),
            stats,
            last_exchange: None,
            active: false,
        }
    }

    /// A method frame on this (open) channel.
    pub fn handle_method(&mut self, ctx: &mut Ctx, method: Method) -> Result<(), Exception> {
        let (class_id, method_id) = method.ids();
        self.expect_method()?;
        self.active = true;
        let result = match method {
            Method::Publish(publish) => self.start_publish(publish),
            Method::Ack {
                delivery_tag,
                multiple,
            } => self.ack(delivery_tag, multiple),
            Method::Qos {
                prefetch_size,
                prefetch_count,
                global,
            } => self.qos(ctx, prefetch_size, prefetch_count, global),
            Method::Other(class) => self.dispatch(ctx, *class),
        };
        result.map_err(|e| e.or_on(class_id, method_id))
    }

    /// A method frame may come only between messages, whatever the method and the
    /// channel's state (RabbitMQ's frame assembler checks it first).
    pub fn expect_method(&self) -> Result<(), Exception> {
        match self.content {
            Content::Idle => Ok(()),
            // RabbitMQ blames the publish whose content was cut short.
            _ => Err(self.content_expected().on(60, 40)),
        }
    }

    fn content_expected(&self) -> Exception {
        match self.content {
            Content::Header(_) => Exception::unexpected_frame(
                "expected content header for class 60, got non content header frame instead",
            ),
            _ => Exception::unexpected_frame(
                "expected content body, got non content body frame instead",
            ),
        }
    }

    fn dispatch(&mut self, ctx: &mut Ctx, class: AMQPClass) -> Result<(), Exception> {
        use amqp_basic::AMQPMethod as B;
        match class {
            AMQPClass::Channel(amqp_channel::AMQPMethod::Open(_)) => {
                Err(Exception::channel_error("second 'channel.open' seen"))
            }
            // RabbitMQ 3.x refuses to stop deliveries with channel.flow (prefetch is the
            // way to throttle a consumer) and accepts active=true as a no-op.
            AMQPClass::Channel(amqp_channel::AMQPMethod::Flow(f)) if !f.active => {
                Err(Exception::not_implemented("active=false"))
            }
            AMQPClass::Channel(amqp_channel::AMQPMethod::Flow(_)) => {
                ctx.send(
                    self.id,
                    AMQPClass::Channel(amqp_channel::AMQPMethod::FlowOk(amqp_channel::FlowOk {
                        active: true,
                    })),
                );
                Ok(())
            }
            AMQPClass::Exchange(m) => self.exchange_method(ctx, m),
            AMQPClass::Queue(m) => self.queue_method(ctx, m),
            AMQPClass::Basic(B::Consume(m)) => self.consume(ctx, m),
            AMQPClass::Basic(B::Cancel(m)) => self.cancel(ctx, m),
            AMQPClass::Basic(B::Get(m)) => self.get(ctx, m),
            AMQPClass::Basic(B::Reject(m)) => self.reject(m.delivery_tag, false, m.requeue),
            AMQPClass::Basic(B::Nack(m)) => self.reject(m.delivery_tag, m.multiple, m.requeue),
            AMQPClass::Basic(B::Recover(m)) => {
                self.recover(m.requeue)?;
                ctx.send(
                    self.id,
                    AMQPClass::Basic(B::RecoverOk(amqp_basic::RecoverOk {})),
                );
                Ok(())
            }
            AMQPClass::Basic(B::RecoverAsync(m)) => self.recover(m.requeue),
            AMQPClass::Basic(B::Publish(_) | B::Ack(_) | B::Qos(_)) => Err(
                Exception::internal_error("hot-path method reached the generic parser"),
            ),
            AMQPClass::Tx(m) => self.tx_method(ctx, m),
            AMQPClass::Confirm(amq_protocol::protocol::confirm::AMQPMethod::Select(m)) => {
                if self.tx.is_some() {
                    return Err(Exception::precondition_failed(
                        "cannot switch from tx to confirm mode",
                    ));
                }
                self.confirm_select();
                if !m.nowait {
                    ctx.send(
                        self.id,
                        AMQPClass::Confirm(amq_protocol::protocol::confirm::AMQPMethod::SelectOk(
                            amq_protocol::protocol::confirm::SelectOk {},
                        )),
                    );
                }
                Ok(())
            }
            // The access class is gone from 0-9-1, but RabbitMQ still answers it (old
            // clients send it): request-ok (amq-protocol writes ticket 1), nothing checked.
            AMQPClass::Access(amq_protocol::protocol::access::AMQPMethod::Request(_)) => {
                ctx.send(
                    self.id,
                    AMQPClass::Access(amq_protocol::protocol::access::AMQPMethod::RequestOk(
                        amq_protocol::protocol::access::RequestOk {},
                    )),
                );
                Ok(())
            }
            other => Err(Exception::command_invalid(format!(
                "unexpected method {}.{} on channel {}",
                other.get_amqp_class_id(),
                other.get_amqp_method_id(),
                self.id
            ))),
        }
    }

    /// After a batch of frames or deliveries: feed the queues whose consumers on this
    /// channel got credit back, and write coalesced confirms.
    pub fn flush(&mut self, ctx: &mut Ctx) {
        self.push_batch();
        if std::mem::take(&mut self.credit_returned) {
            for c in self.consumers.values() {
                c.queue.dispatch();
            }
        }
        if let Some(confirms) = &mut self.confirms {
            confirms.flush(ctx.out, self.id);
            self.stats
                .set(Gauge::Unconfirmed, confirms.unconfirmed() as u64);
        }
        // Gauges, once per batch rather than per message.
        self.stats.set(Gauge::Unacked, self.unacked.len() as u64);
        if let Some(tx) = &self.tx {
            self.stats
                .set(Gauge::Uncommitted, tx.publishes.len() as u64);
            let acks = tx.settles.iter().map(|(e, _)| e.len() as u64).sum();
            self.stats.set(Gauge::AcksUncommitted, acks);
        }
    }

    /// The message store answered for a persistent publish (confirm mode: `seq` is its
    /// sequence number) or for a commit (tx mode: `seq` is the commit's number). Returns
    /// the frames a commit held back, for the connection to handle now.
    pub fn stored(&mut self, ctx: &mut Ctx, seq: u64, ok: bool) -> Result<Held, Exception> {
        match &mut self.confirms {
            Some(c) => {
                c.stored(seq, ok);
                Ok(Held::new())
            }
            None => self.committed(ctx, seq, ok),
        }
    }

    /// The connection's tick: a channel that worked since the last one is not idle.
    pub fn tick(&mut self) {
        if std::mem::take(&mut self.active) {
            self.stats.touch();
        }
    }

    /// What the unacked table takes in memory (its entries' messages are counted by
    /// their queues).
    pub fn unacked_bytes(&self) -> usize {
        self.unacked.footprint().1 * Unacked::SLOT_BYTES
    }

    /// Next delivery tag on this channel.
    fn next_tag(&mut self) -> u64 {
        let tag = self.next_delivery_tag;
        self.next_delivery_tag += 1;
        tag
    }
}

/// Frame on an unknown channel, or a channel opened twice: RabbitMQ's connection errors.
pub fn channel_open_ok(ctx: &mut Ctx, id: u16) {
    ctx.send(
        id,
        AMQPClass::Channel(amqp_channel::AMQPMethod::OpenOk(amqp_channel::OpenOk {})),
    );
}
