//! The collector: every `--stats-interval` milliseconds it samples every counter the API
//! shows (overall, per vhost, connection, channel, queue, exchange, churn) and keeps the
//! previous sample, so each counter X gets RabbitMQ's basic-mode `X_details.rate` (per
//! second over the last interval).
//!
//! One task, spawned by the server beside the housekeeping task. A sample reads
//! snapshots (lists of `Arc`s under short locks, relaxed loads); the rates map is
//! swapped under its own lock, which readers hold only to clone one entry. Exchange
//! totals are summed here, once per interval, from every channel's tallies, and served
//! from the sample (as RabbitMQ serves what its last stats event said).

use super::counters::{Counts, KEYS};
use super::registry::{lock, Bytes};
use super::Stats;
use crate::broker::Broker;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::watch;

/// The keys objects are sampled under.
pub mod key {
    pub const OVERALL: &str = "overall";
    pub const CHURN: &str = "churn";
    pub const QUEUE_TOTALS: &str = "queue_totals";
    pub fn vhost(v: &str) -> String {
        format!("v\0{v}")
    }
    pub fn vhost_totals(v: &str) -> String {
        format!("vt\0{v}")
    }
    pub fn vhost_bytes(v: &str) -> String {
        format!("vb\0{v}")
    }
    pub fn connection(name: &str) -> String {
        format!("c\0{name}")
    }
    pub fn channel(name: &str) -> String {
        format!("ch\0{name}")
    }
    pub fn queue(v: &str, name: &str) -> String {
        format!("q\0{v}\0{name}")
    }
    pub fn exchange(v: &str, name: &str) -> String {
        format!("x\0{v}\0{name}")
    }
}

/// The last sample and the rates it gave.
#[derive(Debug, Default)]
pub struct Rates {
    inner: Mutex<Inner>,
    samples: AtomicU64,
}

#[derive(Debug, Default)]
struct Inner {
    /// When it was taken, on the broker clock's `now_ms`.
    at: Option<u64>,
    values: HashMap<String, Vec<u64>>,
    rates: HashMap<String, Vec<f64>>,
}

impl Rates {
    pub fn samples(&self) -> u64 {
        self.samples.load(Ordering::Acquire)
    }

    /// Per-second rates of the object sampled under `key` (None before two samples).
    pub fn rates(&self, key: &str) -> Option<Vec<f64>> {
        lock(&self.inner).rates.get(key).cloned()
    }

    /// The values of the last sample under `key`.
    pub fn values(&self, key: &str) -> Option<Vec<u64>> {
        lock(&self.inner).values.get(key).cloned()
    }

    /// A new sample taken at `at` (the clock's `now_ms`): rates against the previous
    /// one, per second of clock time.
    pub fn record(&self, at: u64, values: HashMap<String, Vec<u64>>) {
        let mut inner = lock(&self.inner);
        let mut rates = HashMap::with_capacity(values.len());
        if let Some(prev_at) = inner.at {
            let secs = at.saturating_sub(prev_at) as f64 / 1000.0;
            if secs > 0.0 {
                for (k, now) in &values {
                    let Some(before) = inner.values.get(k) else {
                        continue;
                    };
                    let r = now
                        .iter()
                        .zip(before)
                        .map(|(n, b)| round(n.saturating_sub(*b) as f64 / secs))
                        .collect();
                    rates.insert(k.clone(), r);
                }
            }
        }
        let old = std::mem::replace(
            &mut *inner,
            Inner {
                at: Some(at),
                values,
                rates,
            },
        );
        drop(inner);
        // The old maps are freed outside the lock.
        drop(old);
        self.samples.fetch_add(1, Ordering::Release);
    }
}

/// RabbitMQ shows rates with one decimal.
fn round(r: f64) -> f64 {
    (r * 10.0).round() / 10.0
}

impl Stats {
    /// The rates the collector last computed for `key`.
    pub fn rates(&self, key: &str) -> Option<Vec<f64>> {
        self.rates.rates(key)
    }

    /// The values the collector last sampled for `key`.
    pub fn sampled(&self, key: &str) -> Option<Vec<u64>> {
        self.rates.values(key)
    }

    /// Message counters of every vhost with live channels or retired counts: closed
    /// channels' totals plus the open ones'.
    pub fn vhost_counts(&self) -> HashMap<String, Counts> {
        let mut out: HashMap<String, Counts> = lock(&self.retired).vhosts.clone();
        for c in self.connections() {
            let total = out.entry(c.info.vhost.clone()).or_default();
            for ch in c.channels() {
                total.add(&ch.counters.snapshot());
            }
        }
        out
    }

    /// Every counter of every vhost summed.
    pub fn overall_counts(&self) -> Counts {
        let mut total = Counts::default();
        for c in self.vhost_counts().values() {
            total.add(c);
        }
        total
    }

    /// (recv_oct, send_oct) per vhost, closed connections included.
    pub fn vhost_bytes(&self) -> HashMap<String, [u64; 2]> {
        let mut out = lock(&self.retired).vhost_bytes.clone();
        for c in self.connections() {
            let b = c.bytes();
            let v = out.entry(c.info.vhost.clone()).or_default();
            v[0] += b[Bytes::RecvOct as usize];
            v[1] += b[Bytes::SendOct as usize];
        }
        out
    }

    /// [publish_in, publish_out] per (vhost, exchange), from every channel's tallies.
    pub fn exchange_counts(&self) -> HashMap<(String, String), [u64; 2]> {
        let mut out = lock(&self.retired).exchanges.clone();
        for c in self.connections() {
            for ch in c.channels() {
                for (x, [i, o]) in ch.exchange_counts() {
                    let e = out.entry((c.info.vhost.clone(), x)).or_default();
                    e[0] += i;
                    e[1] += o;
                }
            }
        }
        out
    }

    /// Messages unacknowledged on the channels of each vhost.
    pub fn vhost_unacked(&self) -> HashMap<String, u64> {
        let mut out = HashMap::new();
        for c in self.connections() {
            let n: u64 = c
                .channels()
                .iter()
                .map(|ch| ch.gauge(super::Gauge::Unacked))
                .sum();
            *out.entry(c.info.vhost.clone()).or_default() += n;
        }
        out
    }
}

/// One sample of everything, keyed as `key` says.
pub fn sample(broker: &Broker) -> HashMap<String, Vec<u64>> {
    let stats = &broker.stats;
    let mut values: HashMap<String, Vec<u64>> = HashMap::new();
    let vhost_counts = stats.vhost_counts();
    let mut overall = Counts::default();
    for (v, c) in &vhost_counts {
        overall.add(c);
        values.insert(key::vhost(v), with_deliver_get(c));
    }
    values.insert(key::OVERALL.into(), with_deliver_get(&overall));
    values.insert(key::CHURN.into(), stats.churn_counts().to_vec());
    for (v, b) in stats.vhost_bytes() {
        values.insert(key::vhost_bytes(&v), b.to_vec());
    }
    for c in stats.connections() {
        values.insert(key::connection(&c.info.name), c.bytes().to_vec());
        for ch in c.channels() {
            values.insert(
                key::channel(&ch.name),
                with_deliver_get(&ch.counters.snapshot()),
            );
        }
    }
    for ((v, x), io) in stats.exchange_counts() {
        values.insert(key::exchange(&v, &x), io.to_vec());
    }
    let unacked = stats.vhost_unacked();
    let mut totals = [0u64; 3];
    for vhost in broker.vhost_list() {
        let mut vt = [0u64; 3];
        for q in vhost.queue_list() {
            vt[1] += u64::from(q.counts().0);
            // A queue nothing went through has no rates to keep: 100,000 idle queues
            // would otherwise hold ~100 MB of samples nobody reads.
            let counts = q.stats.snapshot();
            if counts.0.iter().any(|&n| n != 0) {
                values.insert(key::queue(&vhost.name, &q.name), with_deliver_get(&counts));
            }
        }
        vt[2] = unacked.get(&vhost.name).copied().unwrap_or(0);
        vt[0] = vt[1] + vt[2];
        for i in 0..3 {
            totals[i] += vt[i];
        }
        values.insert(key::vhost_totals(&vhost.name), vt.to_vec());
    }
    values.insert(key::QUEUE_TOTALS.into(), totals.to_vec());
    values
}

/// The counters followed by `deliver_get`, as sampled.
fn with_deliver_get(c: &Counts) -> Vec<u64> {
    let mut v = Vec::with_capacity(KEYS + 1);
    v.extend_from_slice(&c.0);
    v.push(c.deliver_get());
    v
}

/// Samples every `interval` until `shutdown`; the first sample at once, so rates exist
/// after one interval. On a manual clock: once at start, then at most once per move of
/// the clock (after it, not at each of its steps), when the move took the clock at
/// least `interval` past the last sample; rates are per second of clock time.
pub async fn run(broker: Arc<Broker>, interval: Duration, mut shutdown: watch::Receiver<bool>) {
    let interval = interval.max(Duration::from_millis(10));
    let interval_ms = interval.as_millis() as u64;
    broker.stats.diagnostics.set_interval(interval_ms);
    if let Some(mut moves) = broker.clock.moves() {
        take_sample(&broker);
        let mut last = broker.clock.now_ms();
        loop {
            tokio::select! {
                _ = shutdown.changed() => break,
                moved = moves.changed() => {
                    if moved.is_err() {
                        break;
                    }
                    let now = broker.clock.now_ms();
                    if now.saturating_sub(last) >= interval_ms {
                        take_sample(&broker);
                        last = now;
                    }
                }
            }
        }
        return;
    }
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            _ = tick.tick() => take_sample(&broker),
        }
    }
}

/// One sample: history, diagnostics, rates.
fn take_sample(broker: &Broker) {
    let values = sample(broker);
    broker.stats.history.record(broker.stats.now_ms(), &values);
    // Before the sample counts: whoever waits on it sees this tick's findings.
    super::diagnostics::tick(broker);
    broker.stats.rates.record(broker.clock.now_ms(), values);
}

#[cfg(test)]
mod tests {
    use super::{key, sample};
    use crate::broker::vhost::QueueDeclare;
    use crate::broker::Broker;
    use crate::stats::Key;
    use amq_protocol::types::FieldTable;

    #[test]
    fn only_queues_something_went_through_are_sampled() {
        let broker = Broker::new();
        let vhost = broker.vhost("/").expect("default vhost");
        let arguments = FieldTable::default();
        for name in ["idle", "busy"] {
            let d = QueueDeclare {
                name,
                passive: false,
                durable: false,
                exclusive: false,
                auto_delete: false,
                arguments: &arguments,
                server_named: false,
            };
            vhost.declare_queue(&d, 1).expect("declare");
        }
        let busy = vhost.queue("busy", 1).expect("queue");
        busy.stats.add(Key::Publish, 3);
        let values = sample(&broker);
        assert!(!values.contains_key(&key::queue("/", "idle")));
        assert_eq!(values[&key::queue("/", "busy")][0], 3);
    }
}
