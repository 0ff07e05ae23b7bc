//! One trace: what it watches, its bounds, and the events it captured.
//!
//! Built by `Tracing::start` (the management API's `POST /api/tracer/{vhost}`), filled
//! by `Tracing::capture` on the publish path, read by the API. Its state sits behind a
//! short std mutex holding only memory (never a topology or queue lock inside it, never
//! across an `.await`). It never holds a message: an event copies at most
//! `payload_bytes` of the body and the property bytes (at most `MAX_PROPERTY_BYTES`), so
//! a trace's memory is bounded by `max_messages` × (`payload_bytes` + that).

use super::Origin;
use crate::broker::message::Message;
use crate::broker::queue::Queue;
use std::sync::{Arc, Mutex, MutexGuard};

/// Property bytes kept per event; a message whose properties (headers, mostly) are
/// larger keeps none and says so (`properties_truncated`).
pub const MAX_PROPERTY_BYTES: usize = 16 * 1024;
/// Queue names kept per event; `routed_count` says how many there were.
pub const MAX_ROUTED_NAMES: usize = 100;
/// How long a stopped trace stays readable before it is dropped (unless deleted first).
pub const KEEP_STOPPED_MS: u64 = 10 * 60 * 1000;

/// What a trace watches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Every message published to this exchange (by its canonical name: "" is the
    /// default exchange), routed or not.
    Exchange(String),
    /// Every message routed into this queue; `id` tells it from a later queue of the
    /// same name.
    Queue { name: String, id: u64 },
}

/// Why a trace stopped capturing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// It captured `max_messages`.
    Full,
    /// Its lifetime ran out.
    Expired,
    /// The exchange or queue it watched was deleted.
    Deleted,
    /// A user stopped it (deleting it).
    Stopped,
}

impl Stop {
    pub fn as_str(self) -> &'static str {
        match self {
            Stop::Full => "max_messages reached",
            Stop::Expired => "lifetime ended",
            Stop::Deleted => "object deleted",
            Stop::Stopped => "stopped",
        }
    }
}

/// The limits a trace was started with (already checked against the maxima).
#[derive(Debug, Clone, Copy)]
pub struct Bounds {
    pub max_messages: usize,
    pub payload_bytes: usize,
    pub seconds: u64,
}

/// What happened to a captured message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// It was published (to the traced exchange, or routed into the traced queue).
    Publish,
    /// The traced queue handed it to a consumer (its tag) or to a get (`None`).
    Deliver {
        consumer_tag: Option<String>,
        redelivered: bool,
    },
}

/// One captured message.
#[derive(Debug)]
pub struct Event {
    pub seq: u64,
    pub kind: Kind,
    /// Wall clock, milliseconds since the epoch.
    pub timestamp: u64,
    pub exchange: String,
    pub routing_key: String,
    /// The publisher's property bytes, or `None` when larger than `MAX_PROPERTY_BYTES`.
    pub properties: Option<Vec<u8>>,
    /// The first `payload_bytes` of the body.
    pub payload: Vec<u8>,
    /// The whole body's size.
    pub payload_bytes: usize,
    /// The first `MAX_ROUTED_NAMES` queues it was routed to.
    pub routed_to: Vec<String>,
    pub routed_count: usize,
    pub origin: &'static str,
    pub connection: Option<String>,
    pub channel: Option<u16>,
}

#[derive(Debug, Default)]
struct State {
    events: Vec<Event>,
    /// Set once, when capturing ends: why, and when (ms, the clock's `now_ms`).
    stopped: Option<(Stop, u64)>,
}

#[derive(Debug)]
pub struct Trace {
    pub id: String,
    pub vhost: String,
    pub target: Target,
    pub bounds: Bounds,
    /// Wall clock at start, ms since the epoch.
    pub started: u64,
    /// When its lifetime ends (the clock's `now_ms`).
    deadline: u64,
    /// The broker's clock, for each event's date.
    clock: crate::clock::Clock,
    state: Mutex<State>,
}

/// A trace as a reader sees it at one moment.
#[derive(Debug)]
pub struct Snapshot {
    pub captured: usize,
    pub stopped: Option<Stop>,
    /// Seconds of lifetime left (0 once stopped).
    pub expires_in: u64,
}

impl Trace {
    pub(super) fn new(
        id: String,
        vhost: &str,
        target: Target,
        bounds: Bounds,
        clock: &crate::clock::Clock,
    ) -> Self {
        let now = clock.now_ms();
        Trace {
            id,
            vhost: vhost.to_owned(),
            target,
            bounds,
            started: clock.unix_ms_u64(),
            clock: clock.clone(),
            deadline: now.saturating_add(bounds.seconds.saturating_mul(1000)),
            state: Mutex::default(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while pushing an event leaves a consistent vector.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a message published to `exchange` and routed to `targets` is one it
    /// watches (before any copy is made).
    pub(super) fn watches(&self, exchange: &str, targets: &[Arc<Queue>]) -> bool {
        match &self.target {
            Target::Exchange(name) => name == exchange,
            Target::Queue { id, .. } => targets.iter().any(|q| q.id == *id),
        }
    }

    /// Ends capturing (the first reason wins); true if this call ended it.
    pub(super) fn stop(&self, why: Stop, now: u64) -> bool {
        let mut st = self.state();
        if st.stopped.is_some() {
            return false;
        }
        st.stopped = Some((why, now));
        true
    }

    /// Stops it when its lifetime ran out; true if this call stopped it.
    pub(super) fn expire(&self, now: u64) -> bool {
        now >= self.deadline && self.stop(Stop::Expired, now)
    }

    /// Stopped longer ago than `KEEP_STOPPED_MS`: to be dropped.
    pub(super) fn stale(&self, now: u64) -> bool {
        self.state()
            .stopped
            .is_some_and(|(_, at)| now.saturating_sub(at) >= KEEP_STOPPED_MS)
    }

    pub fn is_active(&self) -> bool {
        self.state().stopped.is_none()
    }

    /// Records one message; returns true when this event filled the trace (it stopped).
    pub(super) fn record(
        &self,
        kind: Kind,
        exchange: &str,
        msg: &Message,
        targets: &[Arc<Queue>],
        origin: &Origin<'_>,
        now: u64,
    ) -> bool {
        // The copies are made before the lock: the lock covers only the push.
        let body = msg.body();
        let props = msg.properties();
        let (origin_name, connection, channel) = origin.parts();
        let mut event = Event {
            seq: 0,
            kind,
            timestamp: self.clock.unix_ms_u64(),
            exchange: exchange.to_owned(),
            routing_key: msg.routing_key().to_owned(),
            properties: (props.len() <= MAX_PROPERTY_BYTES).then(|| props.to_vec()),
            payload: body[..body.len().min(self.bounds.payload_bytes)].to_vec(),
            payload_bytes: body.len(),
            routed_to: targets
                .iter()
                .take(MAX_ROUTED_NAMES)
                .map(|q| q.name.as_str().to_owned())
                .collect(),
            routed_count: targets.len(),
            origin: origin_name,
            connection: connection.map(str::to_owned),
            channel,
        };
        let mut st = self.state();
        if st.stopped.is_some() {
            return false;
        }
        event.seq = st.events.len() as u64 + 1;
        st.events.push(event);
        if st.events.len() >= self.bounds.max_messages {
            st.stopped = Some((Stop::Full, now));
            return true;
        }
        false
    }

    /// Its state now, and the events after `since` given to `each`.
    pub fn read(&self, since: u64, now: u64, each: &mut dyn FnMut(&Event)) -> Snapshot {
        let st = self.state();
        let from = (since as usize).min(st.events.len());
        st.events[from..].iter().for_each(&mut *each);
        Snapshot {
            captured: st.events.len(),
            stopped: st.stopped.map(|(why, _)| why),
            expires_in: if st.stopped.is_some() {
                0
            } else {
                self.deadline.saturating_sub(now).div_ceil(1000)
            },
        }
    }
}
