//! Developer diagnostics: things that go wrong in development and that RabbitMQ shows at
//! best as a rate, each named with the objects concerned and a one-line hint.
//!
//! `Diagnostics` lives in `Stats`. What it costs on the message path: nothing on a routed
//! publish; an unroutable publish takes one short lock to tally its key
//! (`unroutable`); a connection close one short lock (`churn`); a requeue compares an
//! integer the queue already keeps (`broker::queue::poison`). Everything about growth is
//! judged in the collector's tick (`scan`), on candidate objects only. The management API
//! asks for `findings`, which adds what is cheaper to check on demand (unroutable keys
//! still unroutable, poison messages still in their queues). Never holds a lock of its
//! own while taking a broker lock.

pub mod churn;
mod report;
mod scan;

pub use report::findings;
pub use scan::tick;
pub mod trends;
pub mod unroutable;

use super::registry::lock;
use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// Messages are lost, pile up or resources leak.
    Warning,
    /// Worth knowing; nothing is lost (a mandatory publish is returned to its publisher).
    Info,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Warning => "warning",
            Severity::Info => "info",
        }
    }
}

/// One diagnosis.
#[derive(Debug, Clone)]
pub struct Finding {
    pub kind: &'static str,
    pub severity: Severity,
    pub vhost: String,
    /// One line with the names and numbers.
    pub summary: String,
    /// One line: what to do.
    pub hint: String,
    /// `{"type", "vhost", "name", ...}` of each object concerned.
    pub objects: Vec<Value>,
    /// When it began (ms since the epoch).
    pub since: u64,
    pub details: Value,
}

impl Finding {
    pub fn to_json(&self) -> Value {
        json!({
            "kind": self.kind,
            "severity": self.severity.as_str(),
            "vhost": self.vhost,
            "summary": self.summary,
            "hint": self.hint,
            "objects": self.objects,
            "since": self.since,
            "details": self.details,
        })
    }
}

/// An object a finding names: its type ("exchange", "queue", "connection", "channel",
/// "consumer"), vhost and name, and `extra` fields.
pub fn object(kind: &str, vhost: &str, name: &str, extra: Value) -> Value {
    let mut o = Map::new();
    o.insert("type".into(), kind.into());
    o.insert("vhost".into(), vhost.into());
    o.insert("name".into(), name.into());
    if let Value::Object(extra) = extra {
        o.extend(extra);
    }
    Value::Object(o)
}

/// The diagnostics' state: event tables filled on rare paths, trends and the findings of
/// the last tick.
#[derive(Debug)]
pub struct Diagnostics {
    unroutable: Mutex<unroutable::Table>,
    short_lived: Mutex<churn::ShortLived>,
    trends: Mutex<trends::Trends>,
    /// What the last tick found (growth and churn).
    ticked: Mutex<Vec<Finding>>,
    /// The collector's interval (ms): windows are counted in samples of it.
    interval_ms: AtomicU64,
    /// The broker's clock (when things happened).
    clock: crate::clock::Clock,
}

impl Default for Diagnostics {
    fn default() -> Self {
        Diagnostics {
            unroutable: Mutex::default(),
            short_lived: Mutex::default(),
            trends: Mutex::default(),
            ticked: Mutex::default(),
            interval_ms: AtomicU64::new(super::DEFAULT_INTERVAL_MS),
            clock: crate::clock::Clock::real(),
        }
    }
}

impl Diagnostics {
    /// Diagnostics dated by `clock`.
    pub fn with_clock(clock: crate::clock::Clock) -> Self {
        Diagnostics {
            clock,
            ..Default::default()
        }
    }

    /// An unroutable publish on `channel` (named "<connection> (<n>)").
    pub fn unroutable(
        &self,
        vhost: &str,
        exchange: &str,
        routing_key: &str,
        channel: &str,
        mandatory: bool,
    ) {
        let connection = channel
            .rsplit_once(" (")
            .map_or(channel, |(connection, _)| connection);
        let key = unroutable::Key {
            vhost,
            exchange,
            routing_key,
            connection,
        };
        let now = self.clock.unix_ms_u64();
        lock(&self.unroutable).record(&key, channel, mandatory, now);
    }

    /// A connection closed: short-lived ones are counted by group.
    pub fn connection_closed(&self, info: &super::ConnInfo) {
        let now = self.clock.unix_ms_u64();
        let lifetime = now.saturating_sub(info.connected_at);
        if lifetime >= churn::SHORT_LIVED_MS {
            return;
        }
        let product = info
            .client_properties
            .get("product")
            .and_then(Value::as_str)
            .unwrap_or_default();
        let group = churn::Group {
            vhost: info.vhost.clone(),
            peer_host: info.peer.ip().to_string(),
            user: info.user.clone(),
            product: product.to_owned(),
        };
        lock(&self.short_lived).closed(group, &info.name, lifetime, now);
    }

    /// The collector runs every `ms`.
    pub fn set_interval(&self, ms: u64) {
        self.interval_ms.store(ms.max(1), Ordering::Relaxed);
    }

    fn window_ms(&self, samples: u64) -> u64 {
        self.interval_ms
            .load(Ordering::Relaxed)
            .saturating_mul(samples)
    }
}
