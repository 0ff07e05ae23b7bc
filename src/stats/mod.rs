//! Statistics as RabbitMQ's management plugin shows them: the registry of connections
//! and channels (`registry`), message counters (`counters`), the collector that samples
//! them for rates (`collector`), and the JSON every object kind shares (`json`).
//!
//! `Stats` lives in the `Broker`. Counting happens where the work happens: a channel's
//! counters on its own `ChannelStats` (one writer, its connection task), a connection's
//! bytes per read or write batch, a queue's on the queue. Nothing here is a shared atomic
//! bumped per message by every publisher; the churn counters move once per object
//! created or closed. The HTTP API and the Prometheus exporter only read: snapshots of
//! `Arc`s taken under short locks, and the collector's last rates.

pub mod collector;
pub mod counters;
pub mod diagnostics;
pub mod fieldtable;
pub mod history;
pub mod json;
pub mod registry;

use registry::{ConnStats, Retired};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

pub use counters::{Counters, Counts, Key};
pub use registry::{
    ChannelStats, ConnInfo, ConsumerView, ExchangeTally, Gauge, Registration, TlsSession,
};

/// Object churn, as `churn_rates` names it.
#[derive(Debug, Clone, Copy)]
#[repr(usize)]
pub enum Churn {
    ConnectionCreated,
    ConnectionClosed,
    ChannelCreated,
    ChannelClosed,
    QueueDeclared,
    QueueCreated,
    QueueDeleted,
}

pub const CHURN_NAMES: [&str; 7] = [
    "connection_created",
    "connection_closed",
    "channel_created",
    "channel_closed",
    "queue_declared",
    "queue_created",
    "queue_deleted",
];

/// RabbitMQ's `collect_statistics_interval` default, milliseconds.
pub const DEFAULT_INTERVAL_MS: u64 = 5000;

/// The broker's statistics.
#[derive(Debug, Default)]
pub struct Stats {
    connections: Mutex<BTreeMap<u64, Arc<ConnStats>>>,
    retired: Mutex<Retired>,
    churn: [AtomicU64; 7],
    /// The collector's latest rates and how many samples it took.
    rates: collector::Rates,
    /// Developer diagnostics (unroutable publishes, churn, growth, poison messages).
    pub diagnostics: diagnostics::Diagnostics,
    /// The last minutes of samples, for charts (`history`).
    history: history::History,
    /// The broker's clock: dates (connected_at, idle_since) and sampling times.
    pub clock: crate::clock::Clock,
}

impl Stats {
    /// Statistics dated by `clock` (the broker's).
    pub fn with_clock(clock: crate::clock::Clock) -> Self {
        Stats {
            diagnostics: diagnostics::Diagnostics::with_clock(clock.clone()),
            clock,
            ..Default::default()
        }
    }

    /// Now, in Unix ms on the broker's clock (how statistics date things).
    pub fn now_ms(&self) -> u64 {
        self.clock.unix_ms_u64()
    }

    /// One object created or closed.
    pub fn churn(&self, what: Churn) {
        self.churn[what as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn churn_counts(&self) -> [u64; 7] {
        std::array::from_fn(|i| self.churn[i].load(Ordering::Relaxed))
    }

    /// Samples the collector has taken (tests wait on it rather than sleeping).
    pub fn samples(&self) -> u64 {
        self.rates.samples()
    }

    /// The recent samples kept for charts.
    pub fn history(&self) -> &history::History {
        &self.history
    }
}
