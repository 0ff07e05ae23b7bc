//! The event exchange `amq.rabbitmq.event` (RabbitMQ's rabbitmq_event_exchange plugin):
//! broker events (queues, exchanges, bindings, connections, channels, consumers, users,
//! vhosts, permissions, policies) published as messages whose routing key is the event
//! name, with an empty body and the event's properties as headers.
//!
//! Off unless `--event-exchange` is given: the broker then holds no `Events`, every hook
//! is one branch on an `Option` and nothing is declared. When on, the exchange is a
//! durable, internal topic exchange in one vhost (the default vhost, as the plugin's
//! `vhost` setting defaults to it); events of every vhost are published there.
//!
//! Who calls it: the vhost (topology), the connection (connections, channels, logins),
//! the channel (consumers), the broker's user/vhost/permission/policy functions. They
//! call `emit` through the builders in `kinds`; `emit` only queues the event on a bounded
//! channel (a non-blocking send, so it is allowed anywhere, under any lock). One task
//! builds each message and routes it like a publish, after every lock was released: an
//! event never waits on the topology lock of the vhost it describes. What it must never
//! do: generate events about its own publishing (routing and delivering emit nothing), or
//! grow without bound (past `BACKLOG` queued events, new ones are dropped and counted).

mod kinds;
mod terms;

pub use kinds::{ChannelRef, ConnectionFacts, LoginFacts};

use super::message::Message;
use super::persist::store_message;
use super::queue::Queue;
use super::vhost::VHost;
use amq_protocol::frame::WriteContext;
use amq_protocol::protocol::basic::{gen_properties, AMQPProperties};
use amq_protocol::types::{AMQPValue, FieldTable, LongString, ShortString};
use std::cell::RefCell;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use tokio::sync::mpsc;

/// The exchange's name, as the plugin declares it.
pub const EXCHANGE: &str = "amq.rabbitmq.event";
/// Events queued for the publishing task at most; past it new events are dropped.
pub const BACKLOG: usize = 65_536;
/// The actor RabbitMQ names for what the broker did by itself (auto-delete, exclusive
/// queues of a closed connection, expiry).
pub const INTERNAL_ACTOR: &str = "rmq-internal";

/// One event: its routing key, headers and time.
#[derive(Debug)]
pub struct Event {
    pub key: &'static str,
    pub headers: FieldTable,
    /// Milliseconds since the Unix epoch.
    pub at_ms: u64,
}

/// The broker's event publisher (present only with `--event-exchange`).
#[derive(Debug)]
pub struct Events {
    /// The vhost the exchange lives in.
    vhost: String,
    /// RabbitMQ's node name form, for the `node` header and pid-like identifiers.
    node: String,
    tx: mpsc::Sender<Event>,
    rx: Mutex<Option<mpsc::Receiver<Event>>>,
    /// The vhost holding the exchange, once created (and again after it was recreated).
    target: Mutex<Weak<VHost>>,
    dropped: AtomicU64,
    /// The broker's clock (each event's `timestamp_in_ms`).
    clock: crate::clock::Clock,
}

impl Events {
    pub fn new(vhost: &str, node: &str, clock: crate::clock::Clock) -> Arc<Events> {
        let (tx, rx) = mpsc::channel(BACKLOG);
        Arc::new(Events {
            vhost: vhost.to_owned(),
            node: node.to_owned(),
            tx,
            rx: Mutex::new(Some(rx)),
            target: Mutex::new(Weak::new()),
            dropped: AtomicU64::new(0),
            clock,
        })
    }

    /// A vhost was created: it reports its events here, and if it is the exchange's
    /// vhost, the exchange is declared in it.
    pub fn attach(self: &Arc<Self>, vhost: &Arc<VHost>) {
        vhost.set_events(self.clone());
        if vhost.name == self.vhost {
            vhost.declare_event_exchange();
            *self.target.lock().unwrap_or_else(|e| e.into_inner()) = Arc::downgrade(vhost);
        }
    }

    /// Starts the publishing task (needs a tokio runtime; without one events stay queued
    /// up to the bound, then are dropped).
    pub fn start(self: &Arc<Self>) {
        let rx = self.rx.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let (Some(rx), Ok(rt)) = (rx, tokio::runtime::Handle::try_current()) {
            rt.spawn(run(Arc::downgrade(self), rx));
        }
    }

    /// Queues one event; never blocks.
    pub fn emit(&self, key: &'static str, headers: FieldTable) {
        let event = Event {
            key,
            headers,
            at_ms: self.clock.unix_ms_u64(),
        };
        if self.tx.try_send(event).is_err() && self.dropped.fetch_add(1, Ordering::Relaxed) == 0 {
            tracing::warn!(
                backlog = BACKLOG,
                "event exchange behind: events dropped (counted from now on)"
            );
        }
    }

    /// Events dropped because the backlog was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    fn target(&self) -> Option<Arc<VHost>> {
        self.target
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .upgrade()
    }
}

/// Routes each event as a publish to the exchange, like the plugin: persistent delivery
/// mode, the event time as the `timestamp` property (seconds), no other property.
async fn run(events: Weak<Events>, mut rx: mpsc::Receiver<Event>) {
    let mut targets: Vec<Arc<Queue>> = Vec::new();
    while let Some(event) = rx.recv().await {
        let Some(vhost) = events.upgrade().and_then(|e| e.target()) else {
            continue;
        };
        let msg = message(event);
        targets.clear();
        // Nothing bound, or the vhost is being deleted: the event is dropped.
        if vhost.route_event(EXCHANGE, &msg, &mut targets).is_err() || targets.is_empty() {
            continue;
        }
        let store_id = store_message(&msg, &targets, None);
        let sharers = targets.len();
        for q in targets.drain(..) {
            q.publish(msg.clone(), store_id, sharers);
        }
    }
}

fn message(event: Event) -> Message {
    let mut headers = event.headers;
    headers.insert(
        "timestamp_in_ms".into(),
        AMQPValue::LongLongInt(event.at_ms as i64),
    );
    let props = AMQPProperties::default()
        .with_delivery_mode(2)
        .with_timestamp(event.at_ms / 1000)
        .with_headers(headers);
    let raw = gen_properties(&props)(WriteContext::from(Vec::new()))
        .map(|c| c.write)
        .unwrap_or_else(|_| vec![0, 0]);
    Message::new(EXCHANGE, event.key, &raw, &[])
}

thread_local! {
    /// The user on whose behalf the current thread changes things (see `acting_as`).
    static ACTOR: RefCell<String> = const { RefCell::new(String::new()) };
}

/// While the guard lives, events emitted on this thread name `user` as
/// `user_who_performed_action`. Not `Send`: it cannot be held across an `.await`, where
/// another task could run on this thread.
pub struct Acting(PhantomData<*const ()>);

pub fn acting_as(user: &str) -> Acting {
    ACTOR.with(|a| {
        let mut a = a.borrow_mut();
        a.clear();
        a.push_str(user);
    });
    Acting(PhantomData)
}

impl Drop for Acting {
    fn drop(&mut self) {
        ACTOR.with(|a| a.borrow_mut().clear());
    }
}

/// The acting user, or `rmq-internal` when the broker acts by itself.
fn actor() -> AMQPValue {
    ACTOR.with(|a| {
        let a = a.borrow();
        text(if a.is_empty() { INTERNAL_ACTOR } else { &a })
    })
}

fn text(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s.as_bytes().to_vec()))
}

/// Headers built field by field.
struct Headers(FieldTable);

impl Headers {
    fn new() -> Self {
        Headers(FieldTable::default())
    }
    fn acted(self) -> Self {
        self.value("user_who_performed_action", actor())
    }
    fn value(mut self, key: &str, v: AMQPValue) -> Self {
        self.0.insert(ShortString::from(key), v);
        self
    }
    fn str(self, key: &str, v: &str) -> Self {
        self.value(key, text(v))
    }
    fn bool(self, key: &str, v: bool) -> Self {
        self.value(key, AMQPValue::Boolean(v))
    }
    fn long(self, key: &str, v: i64) -> Self {
        self.value(key, AMQPValue::LongLongInt(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn past_the_backlog_events_are_dropped_and_counted() {
        // No runtime: nothing drains the channel, so it fills up to the bound.
        let events = Events::new("/", "rabbit@test", crate::clock::Clock::real());
        for _ in 0..BACKLOG {
            events.emit("queue.created", FieldTable::default());
        }
        assert_eq!(events.dropped(), 0);
        events.emit("queue.created", FieldTable::default());
        events.emit("queue.deleted", FieldTable::default());
        assert_eq!(events.dropped(), 2);
    }

    #[test]
    fn the_actor_is_the_guarded_user_then_rmq_internal_again() {
        let text = |v: AMQPValue| match v {
            AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
            _ => String::new(),
        };
        assert_eq!(text(actor()), INTERNAL_ACTOR);
        {
            let _acting = acting_as("alice");
            assert_eq!(text(actor()), "alice");
        }
        assert_eq!(text(actor()), INTERNAL_ACTOR);
    }

    #[test]
    fn an_event_is_a_persistent_empty_message_with_its_time() {
        let msg = message(Event {
            key: "queue.created",
            headers: Headers::new().str("name", "q").0,
            at_ms: 1_796_457_617_474,
        });
        assert_eq!(
            (msg.exchange(), msg.routing_key()),
            (EXCHANGE, "queue.created")
        );
        assert!(msg.body().is_empty());
        let props = msg.decode_properties().expect("properties");
        assert_eq!(props.delivery_mode(), &Some(2));
        assert_eq!(props.timestamp(), &Some(1_796_457_617));
        let headers = props.headers().clone().unwrap_or_default();
        assert_eq!(
            headers.inner().get("timestamp_in_ms"),
            Some(&AMQPValue::LongLongInt(1_796_457_617_474))
        );
    }
}
