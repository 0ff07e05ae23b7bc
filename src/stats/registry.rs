//! Every open connection and its channels, as the management API shows them: what the
//! connection said at connection.open, its byte counters, and per channel the gauges
//! (prefetch, confirm, tx, consumers, unacked...) and message counters.
//!
//! A connection task registers at connection.open (`Stats::register`) and holds the
//! `Registration`; dropping it (the connection's release, or its drop guard after a
//! panic) takes the entry out and folds its channels' counts into the retired totals,
//! so vhost, exchange and overall sums never go back. The registry's lock is taken at
//! open and close of a connection or channel and by readers for a list of `Arc`s, never
//! per message and never across an `.await`; everything per message is a single-writer
//! atomic on the connection's own `ConnStats` / `ChannelStats`.

use super::counters::{Counters, Counts};
use super::Stats;
use crate::broker::vhost::CloseSignal;
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Locks a registry map: every change is one insert or removal, consistent even if a
/// holder panicked.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// What a connection told at login; fixed for its life.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// RabbitMQ's "peer_host:peer_port -> host:port".
    pub name: String,
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub user: String,
    pub vhost: String,
    pub ssl: bool,
    /// On a TLS connection: what was negotiated.
    pub tls: TlsSession,
    pub auth_mechanism: String,
    /// The client's properties as RabbitMQ encodes a field table in JSON.
    pub client_properties: Value,
    pub channel_max: u16,
    pub frame_max: u32,
    /// The negotiated heartbeat, seconds.
    pub timeout: u16,
    /// Milliseconds since the Unix epoch.
    pub connected_at: u64,
}

/// A TLS session in RabbitMQ's words (all None on a plain connection).
#[derive(Debug, Clone, Default)]
pub struct TlsSession {
    /// "tlsv1.3".
    pub protocol: Option<String>,
    /// "any" (TLS 1.3), "ecdhe_rsa"...
    pub key_exchange: Option<String>,
    /// "aes_256_gcm".
    pub cipher: Option<String>,
    /// "sha384".
    pub hash: Option<String>,
}

/// Byte counters of a connection, in `Bytes` order.
#[derive(Debug, Clone, Copy)]
#[repr(usize)]
pub enum Bytes {
    RecvOct,
    RecvCnt,
    SendOct,
    SendCnt,
}

pub const BYTE_NAMES: [&str; 4] = ["recv_oct", "recv_cnt", "send_oct", "send_cnt"];

/// One open connection.
#[derive(Debug)]
pub struct ConnStats {
    pub id: u64,
    pub info: ConnInfo,
    bytes: [AtomicU64; 4],
    channels: Mutex<BTreeMap<u16, Arc<ChannelStats>>>,
    /// Closes the connection (DELETE /api/connections/{name}).
    pub close: Arc<CloseSignal>,
    /// The broker's clock, which its channels date their activity by.
    clock: crate::clock::Clock,
}

impl ConnStats {
    /// Bytes read or written in one batch, by the connection task (the only writer).
    #[inline]
    pub fn count(&self, which: Bytes, octets: usize) {
        let (oct, cnt) = match which {
            Bytes::RecvOct | Bytes::RecvCnt => (0, 1),
            Bytes::SendOct | Bytes::SendCnt => (2, 3),
        };
        for (i, n) in [(oct, octets as u64), (cnt, 1)] {
            let c = &self.bytes[i];
            c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
        }
    }

    pub fn bytes(&self) -> [u64; 4] {
        std::array::from_fn(|i| self.bytes[i].load(Ordering::Relaxed))
    }

    pub fn channels(&self) -> Vec<Arc<ChannelStats>> {
        lock(&self.channels).values().cloned().collect()
    }

    /// channel.open: the channel's shared stats, which its `Channel` holds.
    pub fn open_channel(&self, number: u16) -> Arc<ChannelStats> {
        let ch = Arc::new(ChannelStats::new(
            number,
            &self.info.name,
            self.clock.clone(),
        ));
        lock(&self.channels).insert(number, ch.clone());
        ch
    }
}

/// Gauges of a channel, in `Gauge` order.
#[derive(Debug, Clone, Copy)]
#[repr(usize)]
pub enum Gauge {
    PrefetchCount,
    GlobalPrefetchCount,
    Confirm,
    Transactional,
    ConsumerCount,
    Unacked,
    Unconfirmed,
    Uncommitted,
    AcksUncommitted,
}

const GAUGES: usize = 9;

/// A consumer as `/api/consumers` shows it; changed at consume and cancel only.
#[derive(Debug, Clone)]
pub struct ConsumerView {
    pub tag: String,
    pub queue: String,
    pub ack_required: bool,
    pub exclusive: bool,
    pub prefetch_count: u32,
    pub arguments: Value,
}

/// A publisher's tally for one exchange: (publish_in, publish_out).
#[derive(Debug, Default)]
pub struct ExchangeTally([AtomicU64; 2]);

impl ExchangeTally {
    /// One message in, and whether it was routed (`publish_out`), by the channel's task.
    #[inline]
    pub fn bump(&self, routed: bool) {
        let c = &self.0[0];
        c.store(c.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        if routed {
            let c = &self.0[1];
            c.store(c.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
        }
    }

    pub fn get(&self) -> [u64; 2] {
        [
            self.0[0].load(Ordering::Relaxed),
            self.0[1].load(Ordering::Relaxed),
        ]
    }
}

/// One open channel.
#[derive(Debug)]
pub struct ChannelStats {
    pub number: u16,
    /// "<connection name> (<number>)".
    pub name: String,
    pub counters: Counters,
    gauges: [AtomicU64; GAUGES],
    /// Per exchange published to: this channel's tallies, summed by readers (two
    /// publishers on one exchange never share a counter).
    exchanges: Mutex<HashMap<String, Arc<ExchangeTally>>>,
    consumers: Mutex<Vec<ConsumerView>>,
    /// When the channel last did something, ms since the epoch (per batch).
    idle_since: AtomicU64,
    clock: crate::clock::Clock,
}

impl ChannelStats {
    fn new(number: u16, connection: &str, clock: crate::clock::Clock) -> Self {
        ChannelStats {
            number,
            name: format!("{connection} ({number})"),
            counters: Counters::default(),
            gauges: Default::default(),
            exchanges: Mutex::default(),
            consumers: Mutex::default(),
            idle_since: AtomicU64::new(clock.unix_ms_u64()),
            clock,
        }
    }

    /// A detached channel (tests and channels driven without a connection).
    pub fn detached(number: u16) -> Arc<Self> {
        Arc::new(Self::new(number, "", crate::clock::Clock::real()))
    }

    #[inline]
    pub fn set(&self, gauge: Gauge, value: u64) {
        self.gauges[gauge as usize].store(value, Ordering::Relaxed);
    }

    pub fn gauge(&self, gauge: Gauge) -> u64 {
        self.gauges[gauge as usize].load(Ordering::Relaxed)
    }

    pub fn touch(&self) {
        self.idle_since
            .store(self.clock.unix_ms_u64(), Ordering::Relaxed);
    }

    pub fn idle_since(&self) -> u64 {
        self.idle_since.load(Ordering::Relaxed)
    }

    /// This channel's tally for `exchange`, made on first use; the channel keeps the
    /// `Arc` of the exchange it published to last, so the lock is taken only when a
    /// publisher changes exchange.
    pub fn exchange_tally(&self, exchange: &str) -> Arc<ExchangeTally> {
        lock(&self.exchanges)
            .entry(exchange.to_owned())
            .or_default()
            .clone()
    }

    /// (exchange, [publish_in, publish_out]) for every exchange published to.
    pub fn exchange_counts(&self) -> Vec<(String, [u64; 2])> {
        lock(&self.exchanges)
            .iter()
            .map(|(k, t)| (k.clone(), t.get()))
            .collect()
    }

    pub fn consumers(&self) -> Vec<ConsumerView> {
        lock(&self.consumers).clone()
    }

    pub fn add_consumer(&self, c: ConsumerView) {
        let mut list = lock(&self.consumers);
        list.push(c);
        self.set(Gauge::ConsumerCount, list.len() as u64);
    }

    pub fn remove_consumer(&self, tag: &str) {
        let mut list = lock(&self.consumers);
        list.retain(|c| c.tag != tag);
        self.set(Gauge::ConsumerCount, list.len() as u64);
    }
}

/// A connection's place in the registry, until dropped.
#[derive(Debug)]
pub struct Registration {
    stats: Arc<Stats>,
    pub conn: Arc<ConnStats>,
}

impl Stats {
    /// connection.open succeeded: the connection is listed from now on.
    pub fn register(
        self: &Arc<Self>,
        id: u64,
        info: ConnInfo,
        close: Arc<CloseSignal>,
    ) -> Registration {
        let conn = Arc::new(ConnStats {
            id,
            info,
            bytes: Default::default(),
            channels: Mutex::default(),
            close,
            clock: self.clock.clone(),
        });
        lock(&self.connections).insert(id, conn.clone());
        self.churn(super::Churn::ConnectionCreated);
        Registration {
            stats: self.clone(),
            conn,
        }
    }

    /// Every open connection, in the order they were opened.
    pub fn connections(&self) -> Vec<Arc<ConnStats>> {
        lock(&self.connections).values().cloned().collect()
    }

    /// The open connection called `name`.
    pub fn connection(&self, name: &str) -> Option<Arc<ConnStats>> {
        lock(&self.connections)
            .values()
            .find(|c| c.info.name == name)
            .cloned()
    }

    /// A channel is gone: its counts join the retired totals of its vhost and exchanges.
    fn retire(&self, vhost: &str, ch: &ChannelStats) {
        let counts = ch.counters.snapshot();
        let exchanges = ch.exchange_counts();
        let mut retired = lock(&self.retired);
        retired
            .vhosts
            .entry(vhost.to_owned())
            .or_default()
            .add(&counts);
        for (exchange, [i, o]) in exchanges {
            let e = retired
                .exchanges
                .entry((vhost.to_owned(), exchange))
                .or_default();
            e[0] += i;
            e[1] += o;
        }
        drop(retired);
        self.churn(super::Churn::ChannelClosed);
    }
}

/// Counts of closed channels and connections, so sums never go back.
#[derive(Debug, Default)]
pub(super) struct Retired {
    pub vhosts: HashMap<String, Counts>,
    pub exchanges: HashMap<(String, String), [u64; 2]>,
    /// Bytes of closed connections per vhost: (recv_oct, send_oct).
    pub vhost_bytes: HashMap<String, [u64; 2]>,
}

impl Registration {
    /// channel.open on this connection.
    pub fn open_channel(&self, number: u16) -> Arc<ChannelStats> {
        self.stats.churn(super::Churn::ChannelCreated);
        self.conn.open_channel(number)
    }

    /// A channel of this connection closed.
    pub fn close_channel(&self, number: u16) {
        let gone = lock(&self.conn.channels).remove(&number);
        if let Some(ch) = gone {
            self.stats.retire(&self.conn.info.vhost, &ch);
        }
    }

    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        lock(&self.stats.connections).remove(&self.conn.id);
        let channels = std::mem::take(&mut *lock(&self.conn.channels));
        for ch in channels.values() {
            self.stats.retire(&self.conn.info.vhost, ch);
        }
        let b = self.conn.bytes();
        let mut retired = lock(&self.stats.retired);
        let v = retired
            .vhost_bytes
            .entry(self.conn.info.vhost.clone())
            .or_default();
        v[0] += b[Bytes::RecvOct as usize];
        v[1] += b[Bytes::SendOct as usize];
        drop(retired);
        self.stats.churn(super::Churn::ConnectionClosed);
        self.stats.diagnostics.connection_closed(&self.conn.info);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{Churn, Key};

    fn info(name: &str, vhost: &str) -> ConnInfo {
        let addr: SocketAddr = "127.0.0.1:1".parse().expect("addr");
        ConnInfo {
            name: name.into(),
            peer: addr,
            local: addr,
            user: "u".into(),
            vhost: vhost.into(),
            ssl: false,
            tls: TlsSession::default(),
            auth_mechanism: "PLAIN".into(),
            client_properties: Value::Null,
            channel_max: 1,
            frame_max: 4096,
            timeout: 0,
            connected_at: 0,
        }
    }

    #[test]
    fn sums_survive_channels_and_connections_closing() {
        let stats = Arc::new(Stats::default());
        let (signal, _rx) = CloseSignal::new();
        let a = stats.register(1, info("a", "/"), signal.clone());
        let b = stats.register(2, info("b", "/"), signal);
        let (ca, cb) = (a.open_channel(1), b.open_channel(1));
        for (ch, n) in [(&ca, 2), (&cb, 3)] {
            ch.counters.bump(Key::Publish, n);
            for _ in 0..n {
                ch.exchange_tally("x").bump(true);
            }
        }
        ca.exchange_tally("y").bump(false);
        a.conn.count(Bytes::RecvOct, 100);
        assert_eq!(stats.overall_counts().get(Key::Publish), 5);
        let key = ("/".to_owned(), "x".to_owned());
        assert_eq!(stats.exchange_counts()[&key], [5, 5]);
        a.close_channel(1);
        drop(b);
        assert_eq!(stats.connections().len(), 1);
        assert_eq!(
            stats.overall_counts().get(Key::Publish),
            5,
            "retired counts stay"
        );
        assert_eq!(stats.exchange_counts()[&key], [5, 5]);
        assert_eq!(stats.exchange_counts()[&("/".into(), "y".into())], [1, 0]);
        drop(a);
        assert!(stats.connections().is_empty());
        assert_eq!(stats.vhost_bytes()["/"], [100, 0]);
        let churn = stats.churn_counts();
        assert_eq!(churn[Churn::ConnectionCreated as usize], 2);
        assert_eq!(churn[Churn::ConnectionClosed as usize], 2);
        assert_eq!(churn[Churn::ChannelCreated as usize], 2);
        assert_eq!(churn[Churn::ChannelClosed as usize], 2);
    }

    #[test]
    fn consumers_and_gauges_are_kept_per_channel() {
        let ch = ChannelStats::detached(3);
        let view = |tag: &str| ConsumerView {
            tag: tag.into(),
            queue: "q".into(),
            ack_required: true,
            exclusive: false,
            prefetch_count: 0,
            arguments: Value::Null,
        };
        ch.add_consumer(view("a"));
        ch.add_consumer(view("b"));
        ch.remove_consumer("a");
        assert_eq!(ch.gauge(Gauge::ConsumerCount), 1);
        assert_eq!(ch.consumers()[0].tag, "b");
        ch.set(Gauge::PrefetchCount, 7);
        assert_eq!(ch.gauge(Gauge::PrefetchCount), 7);
    }
}
