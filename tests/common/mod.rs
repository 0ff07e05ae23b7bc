//! Shared test support: a broker started in-process on 127.0.0.1:0, lapin helpers, a raw
//! AMQP client (`raw`, typed frames; `wire`, bytes) and a TCP proxy that can cut (`proxy`).
//!
//! Tests do not sleep. A wait for time runs on the broker's manual clock
//! (`TestBroker::start_manual`, `advance`, `samples`); a wait for something the client
//! hears awaits it; a wait for another task's effect goes through `eventually` /
//! `wait_until` (`poll_within`, the one short pause); an absence is checked with
//! `assert_still_pending`, the one real-time window.
#![allow(dead_code)]

pub mod events;
pub mod http;
pub mod login;
pub mod objects;
pub mod proxy;
pub mod raw;
pub mod wire;

use futures::{Stream, StreamExt};
use lapin::options::{BasicConsumeOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{
    BasicProperties, Channel, Connection, ConnectionProperties, Consumer, ErrorKind, Event,
};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// A broker running in this test process; shut down (or dropped with the runtime) at the end.
pub struct TestBroker {
    pub server: warren::Server,
    pub addr: SocketAddr,
    pub data_dir: PathBuf,
    /// The broker's clock (a clone: moving it moves the broker's time when manual).
    pub clock: warren::Clock,
    /// The statistics collector's interval (`--stats-interval`), in milliseconds.
    pub stats_interval: u64,
}

static NEXT: AtomicU64 = AtomicU64::new(0);

impl TestBroker {
    pub async fn start() -> TestBroker {
        Self::start_with(|c| c).await
    }

    /// A broker on a fresh data directory, with the settings `adjust` makes.
    pub async fn start_with(adjust: impl FnOnce(warren::Config) -> warren::Config) -> TestBroker {
        Self::start_on(scratch_dir("test"), adjust).await
    }

    /// A broker on `data_dir` (kept from an earlier broker, to test a restart).
    pub async fn start_on(
        data_dir: PathBuf,
        adjust: impl FnOnce(warren::Config) -> warren::Config,
    ) -> TestBroker {
        let config = adjust(warren::Config::local(&data_dir));
        let (clock, stats_interval) = (config.clock.clone(), config.stats_interval);
        let server = warren::start(config).await.expect("start broker");
        let addr = server.local_addr();
        TestBroker {
            server,
            addr,
            data_dir,
            clock,
            stats_interval,
        }
    }

    /// A broker on a manual clock, with the settings `adjust` makes: its time stands
    /// still until the test moves it (`advance`), so waits for time take no time.
    pub async fn start_manual(adjust: impl FnOnce(warren::Config) -> warren::Config) -> TestBroker {
        Self::start_with(|c| {
            adjust(warren::Config {
                clock: warren::Clock::manual(),
                ..c
            })
        })
        .await
    }

    /// Moves the broker's manual clock forward by `ms` milliseconds; everything that
    /// fell due on the way (expiries, delayed messages, samples) has fired on return.
    pub async fn advance(&self, ms: u64) {
        self.clock
            .advance(Duration::from_millis(ms))
            .await
            .expect("the broker runs on a manual clock");
    }

    /// A broker with its management listener on (a free port): `http()` calls it.
    /// A broker with the management API whose queues page past `queue_memory` bytes.
    pub async fn start_paging(queue_memory: u64) -> TestBroker {
        TestBroker::start_with(|c| warren::Config {
            queue_memory,
            management_port: warren::ListenerPort::On(0),
            ..c
        })
        .await
    }

    pub async fn start_with_management() -> TestBroker {
        Self::start_with(with_management).await
    }

    /// The management API as guest/guest (the broker must have its listener on).
    pub fn http(&self) -> http::Http {
        http::Http::new(
            self.server
                .management_addr()
                .expect("the management listener is on"),
        )
    }

    /// The Prometheus listener (no credentials; the broker must have it on).
    pub fn prometheus(&self) -> http::Http {
        http::Http::new(
            self.server
                .prometheus_addr()
                .expect("the Prometheus listener is on"),
        )
        .as_user(None)
    }

    /// amqp://guest:guest@127.0.0.1:PORT/%2f
    pub fn url(&self) -> String {
        format!("amqp://guest:guest@{}/%2f", self.addr)
    }

    pub async fn connect(&self) -> Connection {
        Connection::connect(&self.url(), ConnectionProperties::default())
            .await
            .expect("connect")
    }

    pub async fn channel(&self) -> (Connection, Channel) {
        let conn = self.connect().await;
        let ch = conn.create_channel().await.expect("channel");
        (conn, ch)
    }

    pub async fn stop(self) {
        let dir = self.restart_later().await;
        let _ = std::fs::remove_dir_all(dir);
    }

    /// Waits until the statistics collector has taken `n` more samples. On a manual
    /// clock the collector samples when the clock has moved an interval, so this moves
    /// it one interval per sample.
    pub async fn samples(&self, n: u64) {
        let stats = &self.server.broker().stats;
        for _ in 0..n {
            let target = stats.samples() + 1;
            if self.clock.is_manual() {
                self.advance(self.stats_interval).await;
            }
            wait_until("the collector's next sample", || async {
                stats.samples() >= target
            })
            .await;
        }
    }

    /// What `attempt` returns once it returns `Some`, trying again after each sample of
    /// the statistics collector (what the management API derives from samples changes
    /// only then); fails the test after 10 s, naming `what`.
    pub async fn sampled_until<T, F, Fut>(&self, what: &str, attempt: F) -> T
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Option<T>>,
    {
        retry_within(EVENTUALLY, attempt, || self.samples(1))
            .await
            .unwrap_or_else(|| panic!("timed out waiting for {what}"))
    }

    /// Stops gracefully and starts again on the same data directory and the same clock
    /// (a manual clock stays where the test left it).
    pub async fn restart(self) -> TestBroker {
        let clock = self.clock.clone();
        let dir = self.restart_later().await;
        Self::start_on(dir, |c| warren::Config { clock, ..c }).await
    }

    /// Shuts down gracefully and keeps the data directory for `start_on`.
    pub async fn restart_later(self) -> PathBuf {
        self.server.shutdown().await;
        self.data_dir
    }
}

/// A new empty directory under the system's temporary folder, named
/// `warren-{name}-{pid}-{n}`. A process ID comes round again on a busy machine, so what an
/// earlier test process with this ID left there is removed first: a test never starts on
/// another run's data.
pub fn scratch_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "warren-{name}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    match std::fs::remove_dir_all(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => panic!("cannot clear {}: {e}", dir.display()),
    }
    std::fs::create_dir_all(&dir)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", dir.display()));
    dir
}

/// `config` with the management listener on a free port (`TestBroker::http()`).
pub fn with_management(config: warren::Config) -> warren::Config {
    warren::Config {
        management_port: warren::ListenerPort::On(0),
        ..config
    }
}

/// The AMQP port in the ready line ("warren <version> ready on amqp://HOST:PORT") a
/// spawned `warren` binary prints first on its piped stdout.
pub async fn ready_port(child: &mut tokio::process::Child) -> u16 {
    use tokio::io::AsyncBufReadExt;
    let stdout = child.stdout.take().expect("stdout piped");
    let mut line = String::new();
    within(tokio::io::BufReader::new(stdout).read_line(&mut line))
        .await
        .expect("ready line");
    let port = line.trim().rsplit(':').next().and_then(|p| p.parse().ok());
    port.unwrap_or_else(|| panic!("no port in {line:?}"))
}

/// Fails the test instead of hanging when `fut` takes longer than 10 s.
pub async fn within<T>(fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(10), fut)
        .await
        .expect("timed out")
}

/// The next message basic.get returns from `queue` (no-ack), polling until one is there
/// (messages that reach a queue through another task, e.g. dead-lettering).
pub async fn get_eventually(ch: &Channel, queue: &str) -> lapin::message::BasicGetMessage {
    get_eventually_with(ch, queue, true).await
}

/// `get_eventually`, with manual ack when `no_ack` is false (the caller settles it).
pub async fn get_eventually_with(
    ch: &Channel,
    queue: &str,
    no_ack: bool,
) -> lapin::message::BasicGetMessage {
    eventually(&format!("a message in {queue}"), || async {
        ch.basic_get(queue.into(), lapin::options::BasicGetOptions { no_ack })
            .await
            .expect("basic.get")
    })
    .await
}

// ---- declare options and tables ----

pub fn exclusive() -> QueueDeclareOptions {
    QueueDeclareOptions {
        exclusive: true,
        ..Default::default()
    }
}

pub fn auto_delete() -> QueueDeclareOptions {
    QueueDeclareOptions {
        auto_delete: true,
        ..Default::default()
    }
}

pub fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..Default::default()
    }
}

pub fn passive() -> QueueDeclareOptions {
    QueueDeclareOptions {
        passive: true,
        ..Default::default()
    }
}

pub fn table(entries: &[(&str, AMQPValue)]) -> FieldTable {
    let mut table = FieldTable::default();
    for (k, v) in entries {
        table.insert((*k).into(), v.clone());
    }
    table
}

// ---- small lapin steps, each bounded by `within` ----

/// queue.declare with default flags.
pub async fn declare_queue(ch: &Channel, queue: &str) {
    within(ch.queue_declare(
        queue.into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    ))
    .await
    .expect("queue.declare");
}

/// queue.declare with these flags; the queue's name (server-named for "").
pub async fn declare(ch: &Channel, queue: &str, options: QueueDeclareOptions) -> String {
    within(ch.queue_declare(queue.into(), options, FieldTable::default()))
        .await
        .expect("queue.declare")
        .name()
        .to_string()
}

pub async fn publish(ch: &Channel, exchange: &str, key: &str, body: &[u8]) {
    publish_with(ch, exchange, key, body, BasicProperties::default()).await;
}

/// basic.publish with `props`, waiting for the request to be written.
pub async fn publish_with(
    ch: &Channel,
    exchange: &str,
    key: &str,
    body: &[u8],
    props: BasicProperties,
) {
    within(ch.basic_publish(
        exchange.into(),
        key.into(),
        BasicPublishOptions::default(),
        body,
        props,
    ))
    .await
    .expect("basic.publish");
}

/// queue.bind of `queue` to `exchange` with `key` and no arguments.
pub async fn bind_queue(ch: &Channel, queue: &str, exchange: &str, key: &str) {
    within(ch.queue_bind(
        queue.into(),
        exchange.into(),
        key.into(),
        lapin::options::QueueBindOptions::default(),
        FieldTable::default(),
    ))
    .await
    .expect("queue.bind");
}

/// basic.consume with a server-generated tag.
pub async fn consume(ch: &Channel, queue: &str, options: BasicConsumeOptions) -> Consumer {
    within(ch.basic_consume(queue.into(), "".into(), options, FieldTable::default()))
        .await
        .expect("basic.consume")
}

/// A round trip on `ch` (a passive declare of amq.direct): when it returns, the broker
/// has handled everything sent before it on that connection (it handles a connection's
/// frames in order), e.g. the publishes a test sent before it moves the clock.
pub async fn synced(ch: &Channel) {
    within(ch.exchange_declare(
        "amq.direct".into(),
        lapin::ExchangeKind::Direct,
        lapin::options::ExchangeDeclareOptions {
            passive: true,
            ..Default::default()
        },
        FieldTable::default(),
    ))
    .await
    .expect("passive exchange.declare");
}

/// Ready messages of `queue`, by a passive declare.
pub async fn ready(ch: &Channel, queue: &str) -> u32 {
    counts(ch, queue).await.0
}

/// (ready messages, consumers) of `queue`, by a passive declare.
pub async fn counts(ch: &Channel, queue: &str) -> (u32, u32) {
    let q = within(ch.queue_declare(queue.into(), passive(), FieldTable::default()))
        .await
        .expect("passive queue.declare");
    (q.message_count(), q.consumer_count())
}

/// Whether the queue exists (passive declare on a throwaway channel; 404 means no).
pub async fn queue_exists(conn: &Connection, queue: &str) -> bool {
    let ch = within(conn.create_channel()).await.unwrap();
    match within(ch.queue_declare(queue.into(), passive(), FieldTable::default())).await {
        Ok(_) => true,
        Err(e) => {
            assert_eq!(amqp_error(&e).0, 404, "{e}");
            false
        }
    }
}

// ---- errors ----

/// The reply code and text of the AMQP error the broker closed with.
pub fn amqp_error(err: &lapin::Error) -> (u16, String) {
    match err.kind() {
        ErrorKind::ProtocolError(e) => (e.get_id(), e.get_message().to_string()),
        other => panic!("expected an AMQP error from the broker, got {other:?}"),
    }
}

/// The address this machine would use to reach the outside (no packet is sent): a
/// client connecting from it is not on loopback.
pub fn non_loopback_ipv4() -> Option<std::net::IpAddr> {
    let sock = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    sock.connect("192.0.2.1:9")
        .or_else(|_| sock.connect("8.8.8.8:53"))
        .ok()?;
    let ip = sock.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

/// The reply code and text of the AMQP error a request that must fail carries.
pub fn refusal<T>(result: lapin::Result<T>) -> (u16, String) {
    match result {
        Ok(_) => panic!("expected an AMQP error, the request succeeded"),
        Err(e) => amqp_error(&e),
    }
}

/// The next error the connection reports (a channel.close from the broker after an
/// asynchronous method such as basic.ack).
pub async fn next_error(events: &mut (impl Stream<Item = Event> + Unpin)) -> lapin::Error {
    loop {
        if let Event::Error(e) = within(events.next()).await.expect("events stream ended") {
            return e;
        }
    }
}

/// A soft error: `err` is `code` / `text`, the channel is closed, the connection is not.
pub fn assert_channel_error(
    conn: &Connection,
    ch: &Channel,
    err: &lapin::Error,
    code: u16,
    text: &str,
) {
    assert_eq!(amqp_error(err), (code, text.to_owned()));
    assert!(!ch.status().connected(), "the channel should be closed");
    assert!(
        conn.status().connected(),
        "the connection should survive a channel error"
    );
}

/// Runs a request that RabbitMQ refuses with channel.close `code` / `text`: the channel
/// ends, the connection stays usable.
pub async fn expect_channel_error<T>(
    conn: &Connection,
    ch: &Channel,
    request: impl std::future::Future<Output = lapin::Result<T>>,
    code: u16,
    text: &str,
) {
    let err = within(request)
        .await
        .err()
        .expect("expected an AMQP error, the request succeeded");
    assert_channel_error(conn, ch, &err, code, text);
}

/// A consumer on a private queue of `ch`: it receives the channel's error whenever the
/// server closes the channel (see `closed_with`).
pub async fn close_watcher(ch: &Channel) -> Consumer {
    let watch = within(ch.queue_declare("".into(), exclusive(), FieldTable::default()))
        .await
        .expect("private queue");
    within(ch.basic_consume(
        watch.name().clone(),
        "close-watch".into(),
        BasicConsumeOptions {
            no_ack: true,
            ..Default::default()
        },
        FieldTable::default(),
    ))
    .await
    .expect("watch consumer")
}

/// The error the watched channel was closed with.
pub async fn closed_with(mut watcher: Consumer) -> lapin::Error {
    match within(watcher.next()).await {
        Some(Err(e)) => e,
        other => panic!("the channel was not closed with an error: {other:?}"),
    }
}

/// Runs `action`, which should make the server close `ch` asynchronously (a bad publish),
/// and returns the error the channel was closed with. A consumer on a private queue
/// receives that error whenever the close arrives, before or after the next request.
pub async fn channel_close_error<Fut>(ch: &Channel, action: Fut) -> lapin::Error
where
    Fut: std::future::Future<Output = lapin::Result<()>>,
{
    let watcher = close_watcher(ch).await;
    if let Err(e) = within(action).await {
        return e;
    }
    closed_with(watcher).await
}

// ---- waiting for another task's effect ----

/// How long `eventually` and `wait_until` wait before failing the test.
pub const EVENTUALLY: Duration = Duration::from_secs(10);

/// Tries `attempt` until it returns `Some`, for at most `bound`; `None` when it never
/// did. This is the one place the test suite pauses, between tries: it waits for
/// another task's effect (a connection's teardown, a dead letter's routing, the
/// collector's next sample), not for time, so each pause is short (5 ms) and the wait
/// ends as soon as the effect shows. Waits for time use the manual clock instead
/// (`TestBroker::start_manual`), and waits for something the client hears (a delivery,
/// a confirm, connection.blocked) await it directly.
pub async fn poll_within<T, F, Fut>(bound: Duration, attempt: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    retry_within(bound, attempt, || {
        tokio::time::sleep(Duration::from_millis(5))
    })
    .await
}

/// Tries `attempt` until it returns `Some`, awaiting `between` after each miss, for at
/// most `bound`; `None` when it never did.
async fn retry_within<T, F, Fut, B, BFut>(
    bound: Duration,
    mut attempt: F,
    mut between: B,
) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
    B: FnMut() -> BFut,
    BFut: std::future::Future<Output = ()>,
{
    let tried = tokio::time::timeout(bound, async {
        loop {
            if let Some(done) = attempt().await {
                return done;
            }
            between().await;
        }
    });
    tried.await.ok()
}

/// What `attempt` returns once it returns `Some`; fails the test, naming `what`, after
/// 10 s (see `poll_within`).
pub async fn eventually<T, F, Fut>(what: &str, attempt: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    poll_within(EVENTUALLY, attempt)
        .await
        .unwrap_or_else(|| panic!("timed out waiting for {what}"))
}

/// Waits until `done` holds, failing after 10 s with `what`. For effects that follow an
/// event asynchronously (RabbitMQ, too, removes exclusive and auto-delete entities just
/// after the event that ends them), so a client may briefly still see the old state.
pub async fn wait_until<F, Fut>(what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    eventually(what, || {
        let check = done();
        async move { check.await.then_some(()) }
    })
    .await
}

/// Asserts `fut` has not completed after a short real-time window (100 ms). For checks
/// that something does NOT happen (a blocked connection is not read, a handshake over
/// the connection limit is not answered, a get waits for the disk): only time passing
/// can witness an absence, so this window is real time on purpose, and short (a wrong
/// answer would come at once).
pub async fn assert_still_pending<F: std::future::Future + Unpin>(fut: &mut F, what: &str) {
    let window = tokio::time::timeout(Duration::from_millis(100), fut).await;
    assert!(window.is_err(), "{what}");
}

/// Waits until `queue` no longer exists (see `queue_exists`): its removal follows the
/// event that ends it asynchronously (a connection's teardown, a last consumer gone).
pub async fn wait_queue_gone(conn: &Connection, queue: &str) {
    wait_until(&format!("queue {queue} gone"), || async {
        !queue_exists(conn, queue).await
    })
    .await
}

/// Waits for connection.blocked (`blocked`) or connection.unblocked among a
/// connection's `events` (`conn.events_listener()`, taken before the broker sends it).
pub async fn next_blocked(events: &mut (impl Stream<Item = Event> + Unpin), blocked: bool) {
    loop {
        match within(events.next()).await.expect("events stream ended") {
            Event::ConnectionBlocked(_) if blocked => return,
            Event::ConnectionUnblocked if !blocked => return,
            _ => {}
        }
    }
}
