//! Durability across restarts of the real `warren` binary: durable topology and persistent
//! messages after a graceful stop, confirmed messages after `kill -9` mid-run, torn and
//! corrupt segment tails, the data-directory lock, purge/delete, and definitions.json.
//!
//! Every test runs the built binary as a child process on its own temporary data directory,
//! stops it (SIGTERM or SIGKILL), starts it again on the same directory and checks what
//! came back. Children are killed when their guard drops; every wait is bounded.
mod common;

use common::{amqp_error, refusal, table, within};
use futures::StreamExt;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{
    BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind, PublisherConfirm,
};
use std::collections::{HashSet, VecDeque};
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, ChildStdout, Command};

// ---- the data directory and the broker process ----

/// A fresh temporary folder holding the data directory (`data/`) and the brokers' stderr
/// logs; removed when dropped.
struct TempRoot {
    root: PathBuf,
    data: PathBuf,
    starts: u32,
}

impl TempRoot {
    fn new(tag: &str) -> TempRoot {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let root = std::env::temp_dir().join(format!(
            "warren-durability-{tag}-{}-{nanos}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).expect("create the temp folder");
        TempRoot {
            data: root.join("data"),
            root,
            starts: 0,
        }
    }

    fn next_log(&mut self) -> PathBuf {
        self.starts += 1;
        self.root.join(format!("warren-{}.stderr", self.starts))
    }
}

impl Drop for TempRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

fn warren_command(data_dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_warren"));
    cmd.args([
        "--port",
        "0",
        "--bind",
        "127.0.0.1",
        "--log",
        "warn",
        // Tests run side by side: no fixed HTTP ports.
        "--management-port",
        "0",
        "--prometheus-port",
        "0",
        "--data-dir",
    ])
    .arg(data_dir)
    .env_remove("WARREN_DATA_DIR")
    // A tiny paging budget: every restart here also pages what it recovers, and the
    // kill -9 run pages while it publishes, so order and completeness are checked
    // through the page files too.
    .env("WARREN_QUEUE_MEMORY", "64KiB")
    .stdin(Stdio::null())
    .kill_on_drop(true);
    cmd
}

/// A running `warren` child; SIGKILLed when dropped unless already stopped.
struct Warren {
    child: Child,
    port: u16,
    log: PathBuf,
    /// Kept open so the broker never writes to a closed pipe.
    _stdout: BufReader<ChildStdout>,
}

impl Warren {
    /// Starts the binary on `dir.data` and waits (bounded) for its ready line.
    async fn start(dir: &mut TempRoot) -> Warren {
        let log = dir.next_log();
        let stderr = std::fs::File::create(&log).expect("stderr log file");
        let mut child = warren_command(&dir.data)
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawn warren");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        let read = tokio::time::timeout(Duration::from_secs(30), stdout.read_line(&mut line)).await;
        let log_text = || std::fs::read_to_string(&log).unwrap_or_default();
        match read {
            Ok(Ok(n)) if n > 0 => {}
            other => panic!(
                "warren printed no ready line ({other:?}); stderr:\n{}",
                log_text()
            ),
        }
        // "warren <version> ready on amqp://HOST:PORT"
        let line = line.trim();
        assert!(
            line.starts_with("warren ") && line.contains(" ready on amqp://"),
            "unexpected first line {line:?}"
        );
        let port = line
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"));
        Warren {
            child,
            port,
            log,
            _stdout: stdout,
        }
    }

    fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    async fn connect(&self) -> Connection {
        within(Connection::connect(
            &self.url(),
            ConnectionProperties::default(),
        ))
        .await
        .expect("connect")
    }

    /// A connection and a channel in confirm mode.
    async fn confirm_channel(&self) -> (Connection, Channel) {
        let conn = self.connect().await;
        let ch = within(conn.create_channel()).await.expect("channel");
        within(ch.confirm_select(ConfirmSelectOptions::default()))
            .await
            .expect("confirm.select");
        (conn, ch)
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Graceful stop: SIGTERM, then wait (bounded) for the exit, which must be a success.
    async fn terminate(mut self) {
        let pid = self.child.id().expect("warren still running");
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM {pid} failed");
        let status = self.wait_exit(Duration::from_secs(30)).await;
        assert!(
            status.success(),
            "warren exited with {status} after SIGTERM; stderr:\n{}",
            self.stderr()
        );
    }

    /// Crash: SIGKILL, and reap it.
    async fn kill9(mut self) {
        self.child.start_kill().expect("SIGKILL warren");
        self.wait_exit(Duration::from_secs(30)).await;
    }

    async fn wait_exit(&mut self, limit: Duration) -> ExitStatus {
        tokio::time::timeout(limit, self.child.wait())
            .await
            .expect("warren did not exit in time")
            .expect("wait for warren")
    }
}

impl Drop for Warren {
    fn drop(&mut self) {
        // Already exited: harmless. Otherwise kill it now and reap it.
        let _ = self.child.start_kill();
        let _ = self.child.try_wait();
    }
}

// ---- AMQP helpers ----

fn persistent() -> BasicProperties {
    BasicProperties::default().with_delivery_mode(2)
}

fn transient() -> BasicProperties {
    BasicProperties::default().with_delivery_mode(1)
}

fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..Default::default()
    }
}

fn durable_exchange() -> ExchangeDeclareOptions {
    ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    }
}

fn long_str(s: &str) -> AMQPValue {
    AMQPValue::LongString(s.into())
}

async fn declare_queue(ch: &Channel, name: &str, options: QueueDeclareOptions, args: FieldTable) {
    within(ch.queue_declare(name.into(), options, args))
        .await
        .unwrap_or_else(|e| panic!("queue.declare {name}: {e}"));
}

async fn declare_exchange(ch: &Channel, name: &str, kind: ExchangeKind, args: FieldTable) {
    within(ch.exchange_declare(name.into(), kind, durable_exchange(), args))
        .await
        .unwrap_or_else(|e| panic!("exchange.declare {name}: {e}"));
}

async fn bind(ch: &Channel, queue: &str, exchange: &str, key: &str, args: FieldTable) {
    within(ch.queue_bind(
        queue.into(),
        exchange.into(),
        key.into(),
        QueueBindOptions::default(),
        args,
    ))
    .await
    .unwrap_or_else(|e| panic!("queue.bind {queue} -> {exchange}: {e}"));
}

/// Publishes and, on a confirm channel, waits for the broker's ack.
async fn publish(ch: &Channel, exchange: &str, key: &str, body: &str, props: BasicProperties) {
    let confirm = within(ch.basic_publish(
        exchange.into(),
        key.into(),
        BasicPublishOptions::default(),
        body.as_bytes(),
        props,
    ))
    .await
    .expect("basic.publish");
    let confirmation = within(confirm).await.expect("publisher confirm");
    assert!(
        !confirmation.is_nack(),
        "the broker nacked {body:?} published to {exchange:?}/{key:?}"
    );
}

/// Ready count of `queue` by passive declare (on a fresh channel), or the AMQP error.
async fn passive_queue(conn: &Connection, queue: &str) -> Result<u32, (u16, String)> {
    let ch = within(conn.create_channel()).await.expect("channel");
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    match within(ch.queue_declare(queue.into(), passive, FieldTable::default())).await {
        Ok(q) => Ok(q.message_count()),
        Err(e) => Err(amqp_error(&e)),
    }
}

/// Passive exchange.declare (on a fresh channel): Ok, or the AMQP error.
async fn passive_exchange(conn: &Connection, exchange: &str) -> Result<(), (u16, String)> {
    let ch = within(conn.create_channel()).await.expect("channel");
    let passive = ExchangeDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let r = within(ch.exchange_declare(
        exchange.into(),
        ExchangeKind::Direct,
        passive,
        FieldTable::default(),
    ))
    .await;
    r.map_err(|e| amqp_error(&e))
}

fn no_queue(name: &str) -> (u16, String) {
    (404, format!("NOT_FOUND - no queue '{name}' in vhost '/'"))
}

fn no_exchange(name: &str) -> (u16, String) {
    (
        404,
        format!("NOT_FOUND - no exchange '{name}' in vhost '/'"),
    )
}

/// Empties `queue` with no-ack basic.get: (body, redelivered) in order. At most `limit`
/// messages; more is a failure.
async fn drain(ch: &Channel, queue: &str, limit: usize) -> Vec<(String, bool)> {
    let mut got = Vec::new();
    loop {
        let next = within(ch.basic_get(queue.into(), BasicGetOptions { no_ack: true }))
            .await
            .unwrap_or_else(|e| panic!("basic.get {queue}: {e}"));
        let Some(m) = next else { return got };
        got.push((
            String::from_utf8(m.delivery.data).expect("utf-8 body"),
            m.delivery.redelivered,
        ));
        assert!(
            got.len() <= limit,
            "{queue} holds more than {limit} messages"
        );
    }
}

/// `drain` when every message is expected with redelivered=false.
async fn drain_bodies(ch: &Channel, queue: &str, limit: usize) -> Vec<String> {
    drain(ch, queue, limit)
        .await
        .into_iter()
        .map(|(body, redelivered)| {
            assert!(!redelivered, "{body:?} in {queue} came back redelivered");
            body
        })
        .collect()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

// ---- 1. graceful restart ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_restart_keeps_durable_topology_and_persistent_messages() {
    let mut dir = TempRoot::new("graceful");
    let warren = Warren::start(&mut dir).await;
    let (conn, ch) = warren.confirm_channel().await;

    // Durable topology with arguments: an alternate exchange, a queue argument, an
    // exchange-to-exchange binding and a headers binding with its arguments.
    declare_exchange(&ch, "dur.ae", ExchangeKind::Fanout, FieldTable::default()).await;
    declare_queue(&ch, "dur.ae.q", durable(), FieldTable::default()).await;
    bind(&ch, "dur.ae.q", "dur.ae", "", FieldTable::default()).await;
    let ae_args = table(&[("alternate-exchange", long_str("dur.ae"))]);
    declare_exchange(&ch, "dur.direct", ExchangeKind::Direct, ae_args.clone()).await;
    let q_args = table(&[("x-max-length", AMQPValue::LongInt(3))]);
    declare_queue(&ch, "dur.q", durable(), q_args.clone()).await;
    bind(&ch, "dur.q", "dur.direct", "k", FieldTable::default()).await;
    declare_exchange(&ch, "dur.topic", ExchangeKind::Topic, FieldTable::default()).await;
    declare_exchange(&ch, "dur.fan", ExchangeKind::Fanout, FieldTable::default()).await;
    within(ch.exchange_bind(
        "dur.fan".into(),
        "dur.topic".into(),
        "a.#".into(),
        ExchangeBindOptions::default(),
        FieldTable::default(),
    ))
    .await
    .expect("exchange.bind");
    declare_queue(&ch, "dur.q2", durable(), FieldTable::default()).await;
    bind(&ch, "dur.q2", "dur.fan", "", FieldTable::default()).await;
    declare_exchange(&ch, "dur.hdr", ExchangeKind::Headers, FieldTable::default()).await;
    declare_queue(&ch, "dur.q3", durable(), FieldTable::default()).await;
    let match_blue = table(&[("x-match", long_str("all")), ("kind", long_str("blue"))]);
    bind(&ch, "dur.q3", "dur.hdr", "", match_blue).await;

    // Non-durable objects, and bindings that involve one of them.
    within(ch.exchange_declare(
        "dur.tx".into(),
        ExchangeKind::Direct,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    ))
    .await
    .expect("transient exchange");
    declare_queue(
        &ch,
        "dur.tq",
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await;
    let exclusive_durable = QueueDeclareOptions {
        durable: true,
        exclusive: true,
        ..Default::default()
    };
    declare_queue(&ch, "dur.xq", exclusive_durable, FieldTable::default()).await;
    bind(&ch, "dur.tq", "dur.direct", "t", FieldTable::default()).await;
    bind(&ch, "dur.q", "dur.tx", "t", FieldTable::default()).await;
    // A persistent message in a non-durable queue goes with the queue.
    publish(&ch, "dur.direct", "t", "in-transient-queue", persistent()).await;

    // Messages: m1 acked, m2 (transient) and m3 delivered and left unacked, the rest ready.
    declare_queue(&ch, "dur.msgs", durable(), FieldTable::default()).await;
    for (body, props) in [
        ("m1", persistent()),
        ("m2", transient()),
        ("m3", persistent()),
        ("m4", persistent()),
        ("m5", transient()),
        ("m6", persistent()),
        ("m7", persistent()),
    ] {
        publish(&ch, "", "dur.msgs", body, props).await;
    }
    let get_acked = BasicGetOptions { no_ack: false };
    let m1 = within(ch.basic_get("dur.msgs".into(), get_acked))
        .await
        .unwrap()
        .expect("m1");
    assert_eq!(m1.delivery.data, b"m1");
    within(m1.delivery.ack(BasicAckOptions::default()))
        .await
        .expect("ack m1");
    for expected in ["m2", "m3"] {
        let m = within(ch.basic_get("dur.msgs".into(), get_acked))
            .await
            .unwrap()
            .expect("a message");
        assert_eq!(m.delivery.data, expected.as_bytes());
    }
    // Round trip so the ack of m1 is processed before the stop.
    assert_eq!(passive_queue(&conn, "dur.msgs").await, Ok(4));

    // The same through a consumer (prefetch 2): c1 acked, c2 delivered and unacked, c3
    // never delivered.
    declare_queue(&ch, "dur.consumed", durable(), FieldTable::default()).await;
    for body in ["c1", "c2", "c3"] {
        publish(&ch, "", "dur.consumed", body, persistent()).await;
    }
    let consumer_ch = within(conn.create_channel()).await.unwrap();
    within(consumer_ch.basic_qos(2, BasicQosOptions::default()))
        .await
        .unwrap();
    let mut consumer = within(consumer_ch.basic_consume(
        "dur.consumed".into(),
        "dur.consumer".into(),
        BasicConsumeOptions::default(),
        FieldTable::default(),
    ))
    .await
    .unwrap();
    let c1 = within(consumer.next()).await.expect("c1").expect("c1");
    let c2 = within(consumer.next()).await.expect("c2").expect("c2");
    assert_eq!(
        (c1.data.as_slice(), c2.data.as_slice()),
        (&b"c1"[..], &b"c2"[..])
    );
    within(c1.ack(BasicAckOptions::default())).await.unwrap();
    // c1's ack frees a prefetch slot: c3 arrives, and is left unacked as well.
    let c3 = within(consumer.next()).await.expect("c3").expect("c3");
    assert_eq!(c3.data, b"c3");

    warren.terminate().await;
    let warren = Warren::start(&mut dir).await;
    let (conn, ch) = warren.confirm_channel().await;

    for exchange in ["dur.ae", "dur.direct", "dur.topic", "dur.fan", "dur.hdr"] {
        assert_eq!(
            passive_exchange(&conn, exchange).await,
            Ok(()),
            "{exchange}"
        );
    }
    for queue in ["dur.ae.q", "dur.q", "dur.q2", "dur.q3"] {
        assert_eq!(passive_queue(&conn, queue).await, Ok(0), "{queue}");
    }
    assert_eq!(
        passive_exchange(&conn, "dur.tx").await,
        Err(no_exchange("dur.tx"))
    );
    assert_eq!(
        passive_queue(&conn, "dur.tq").await,
        Err(no_queue("dur.tq"))
    );
    assert_eq!(
        passive_queue(&conn, "dur.xq").await,
        Err(no_queue("dur.xq"))
    );

    // Persistent messages are back in order, the unacked one redelivered; transient and
    // acked ones are gone.
    let msgs = drain(&ch, "dur.msgs", 10).await;
    assert_eq!(
        msgs,
        vec![
            ("m3".to_string(), true),
            ("m4".to_string(), false),
            ("m6".to_string(), false),
            ("m7".to_string(), false)
        ]
    );
    assert_eq!(
        drain(&ch, "dur.consumed", 10).await,
        vec![("c2".to_string(), true), ("c3".to_string(), true)]
    );

    // Drained messages stay gone after another restart.
    warren.terminate().await;
    let warren = Warren::start(&mut dir).await;
    let (conn, ch) = warren.confirm_channel().await;
    assert_eq!(passive_queue(&conn, "dur.msgs").await, Ok(0));

    // Arguments are back: the same declaration is accepted, one without them is refused
    // (RabbitMQ keeps the argument's AMQP type across a restart: 'signedint' as declared).
    declare_queue(&ch, "dur.q", durable(), q_args).await;
    declare_exchange(&ch, "dur.direct", ExchangeKind::Direct, ae_args).await;
    let ch2 = within(conn.create_channel()).await.unwrap();
    assert_eq!(
        refusal(within(ch2.queue_declare("dur.q".into(), durable(), FieldTable::default())).await),
        (
            406,
            "PRECONDITION_FAILED - inequivalent arg 'x-max-length' for queue 'dur.q' in vhost '/': \
             received none but current is the value '3' of type 'signedint'"
                .to_string()
        )
    );

    // Routing through every restored binding.
    for body in ["r1", "r2"] {
        publish(&ch, "dur.direct", "k", body, transient()).await;
    }
    assert_eq!(drain_bodies(&ch, "dur.q", 5).await, strings(&["r1", "r2"]));
    publish(&ch, "dur.direct", "nowhere", "to-ae", transient()).await;
    // The binding to the vanished transient queue is gone too, so "t" is unroutable.
    publish(&ch, "dur.direct", "t", "t-to-ae", transient()).await;
    assert_eq!(
        drain_bodies(&ch, "dur.ae.q", 5).await,
        strings(&["to-ae", "t-to-ae"])
    );
    publish(&ch, "dur.topic", "a.b", "via-e2e", transient()).await;
    publish(&ch, "dur.topic", "b.a", "not-via-e2e", transient()).await;
    assert_eq!(drain_bodies(&ch, "dur.q2", 5).await, strings(&["via-e2e"]));
    let blue = BasicProperties::default().with_headers(table(&[("kind", long_str("blue"))]));
    let red = BasicProperties::default().with_headers(table(&[("kind", long_str("red"))]));
    publish(&ch, "dur.hdr", "", "blue", blue).await;
    publish(&ch, "dur.hdr", "", "red", red).await;
    assert_eq!(drain_bodies(&ch, "dur.q3", 5).await, strings(&["blue"]));
    warren.terminate().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovered_message_keeps_properties_exchange_and_routing_key() {
    let mut dir = TempRoot::new("props");
    let warren = Warren::start(&mut dir).await;
    let (_conn, ch) = warren.confirm_channel().await;
    declare_exchange(
        &ch,
        "dur.props.x",
        ExchangeKind::Topic,
        FieldTable::default(),
    )
    .await;
    declare_queue(&ch, "dur.props", durable(), FieldTable::default()).await;
    bind(
        &ch,
        "dur.props",
        "dur.props.x",
        "p.#",
        FieldTable::default(),
    )
    .await;
    let props = persistent()
        .with_content_type("text/plain".into())
        .with_content_encoding("identity".into())
        .with_correlation_id("c-4".into())
        .with_reply_to("replies".into())
        .with_message_id("id-4".into())
        .with_timestamp(1_700_000_000)
        .with_type("kind-4".into())
        .with_app_id("app-4".into())
        .with_priority(3)
        .with_expiration("3600000".into())
        .with_headers(table(&[
            ("h", long_str("v")),
            ("n", AMQPValue::LongInt(42)),
        ]));
    publish(&ch, "dur.props.x", "p.one", "body-4", props.clone()).await;
    warren.terminate().await;

    let warren = Warren::start(&mut dir).await;
    let (_conn, ch) = warren.confirm_channel().await;
    let got = within(ch.basic_get("dur.props".into(), BasicGetOptions { no_ack: true }))
        .await
        .unwrap()
        .expect("the persistent message is back");
    assert_eq!(got.delivery.data, b"body-4");
    assert_eq!(got.delivery.exchange.as_str(), "dur.props.x");
    assert_eq!(got.delivery.routing_key.as_str(), "p.one");
    assert!(!got.delivery.redelivered);
    assert_eq!(got.delivery.properties, props);
    warren.terminate().await;
}

// ---- 2. kill -9 in the middle of a confirmed publishing run ----

fn crash_body(seq: u64) -> String {
    format!("crash-{seq:09}")
}

fn crash_seq(body: &str) -> u64 {
    body.strip_prefix("crash-")
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("foreign body {body:?}"))
}

/// Publishes persistent messages 0, 1, 2... with at most `window` confirms outstanding,
/// until the connection fails. Returns (published count, sequence numbers the broker
/// acked). `confirmed` counts the acks seen so far, for the caller to await.
async fn publish_until_failure(
    ch: Channel,
    window: usize,
    confirmed: tokio::sync::watch::Sender<u64>,
) -> (u64, Vec<u64>) {
    let mut pending: VecDeque<(u64, PublisherConfirm)> = VecDeque::new();
    let mut acked = Vec::new();
    let mut published = 0u64;
    let mut failed = false;
    while !failed && published < 5_000_000 {
        let seq = published;
        match ch
            .basic_publish(
                "".into(),
                "dur.crash".into(),
                BasicPublishOptions::default(),
                crash_body(seq).as_bytes(),
                persistent(),
            )
            .await
        {
            Ok(confirm) => {
                pending.push_back((seq, confirm));
                published += 1;
            }
            Err(_) => break,
        }
        while pending.len() >= window {
            let (seq, confirm) = pending.pop_front().expect("pending");
            match tokio::time::timeout(Duration::from_secs(10), confirm).await {
                Ok(Ok(c)) if c.is_ack() => {
                    acked.push(seq);
                    confirmed.send_modify(|n| *n += 1);
                }
                Ok(Ok(_nack)) => {}
                _ => {
                    failed = true;
                    break;
                }
            }
        }
    }
    // The connection is gone: confirms that had arrived are resolved; give any frames
    // still buffered a short, bounded while to be read.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3);
    for (seq, confirm) in pending {
        if let Ok(Ok(c)) = tokio::time::timeout_at(deadline, confirm).await {
            if c.is_ack() {
                acked.push(seq);
            }
        }
    }
    (published, acked)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_during_confirmed_publishing_keeps_every_confirmed_message_once_in_order() {
    let mut dir = TempRoot::new("kill9");
    let warren = Warren::start(&mut dir).await;
    let (conn, ch) = warren.confirm_channel().await;
    declare_queue(&ch, "dur.crash", durable(), FieldTable::default()).await;

    let (confirmed, mut confirms) = tokio::sync::watch::channel(0u64);
    let publisher = tokio::spawn(publish_until_failure(ch, 1000, confirmed));
    // An error: the publisher ended (and dropped its sender) before 5,000 confirms.
    let reached = tokio::time::timeout(Duration::from_secs(90), async {
        confirms.wait_for(|n| *n >= 5_000).await.is_ok()
    });
    match reached.await {
        Ok(true) => {}
        Ok(false) => panic!("the publisher stopped early"),
        Err(_) => panic!("only {} confirms in 90 s", *confirms.borrow()),
    }
    assert!(
        !publisher.is_finished(),
        "the publisher stopped before the kill"
    );
    warren.kill9().await;
    let (published, acked) = tokio::time::timeout(Duration::from_secs(60), publisher)
        .await
        .expect("the publisher did not notice the crash")
        .expect("publisher task");
    drop(conn);
    assert!(acked.len() >= 5_000);
    assert!(
        (acked.len() as u64) < published,
        "every publish was confirmed before the kill ({published}): the kill did not land mid-run"
    );

    let warren = Warren::start(&mut dir).await;
    let (conn, ch) = warren.confirm_channel().await;
    let ready = passive_queue(&conn, "dur.crash")
        .await
        .expect("dur.crash is back");
    let got: Vec<u64> = tokio::time::timeout(
        Duration::from_secs(300),
        drain_bodies(&ch, "dur.crash", published as usize),
    )
    .await
    .expect("draining took too long")
    .iter()
    .map(|b| crash_seq(b))
    .collect();
    eprintln!(
        "kill -9: {published} published, {} confirmed, {} recovered",
        acked.len(),
        got.len()
    );
    assert_eq!(
        got.len() as u64,
        u64::from(ready),
        "passive count vs drained"
    );
    if let Some(w) = got.windows(2).find(|w| w[0] >= w[1]) {
        panic!(
            "recovered out of order or duplicated: {} then {}",
            w[0], w[1]
        );
    }
    assert!(
        got.iter().all(|&s| s < published),
        "a message that was never published"
    );
    let present: HashSet<u64> = got.iter().copied().collect();
    let missing: Vec<u64> = acked
        .iter()
        .copied()
        .filter(|s| !present.contains(s))
        .collect();
    assert!(
        missing.is_empty(),
        "{} confirmed messages lost (first {:?}); {} confirmed, {} published, {} recovered",
        missing.len(),
        &missing[..missing.len().min(10)],
        acked.len(),
        published,
        got.len()
    );

    // The store keeps working after the crash: drained messages stay gone, new ones stay.
    publish(&ch, "", "dur.crash", &crash_body(published), persistent()).await;
    warren.terminate().await;
    let warren = Warren::start(&mut dir).await;
    let (_conn, ch) = warren.confirm_channel().await;
    assert_eq!(
        drain_bodies(&ch, "dur.crash", 10).await,
        vec![crash_body(published)]
    );
    warren.terminate().await;
}

// ---- 3. damaged last segment ----

fn corrupt_body(i: usize) -> String {
    format!("corrupt-{i:04}-{}", "x".repeat(200))
}

/// Publishes `n` confirmed persistent messages to the durable queue `dur.corrupt`, then
/// stops the broker gracefully.
async fn fill_and_stop(dir: &mut TempRoot, n: usize) {
    let warren = Warren::start(dir).await;
    let (_conn, ch) = warren.confirm_channel().await;
    declare_queue(&ch, "dur.corrupt", durable(), FieldTable::default()).await;
    for i in 0..n {
        publish(&ch, "", "dur.corrupt", &corrupt_body(i), persistent()).await;
    }
    warren.terminate().await;
}

/// The segment file with the highest number in `<data>/msgs`.
fn last_segment(data: &Path) -> PathBuf {
    let mut segs: Vec<PathBuf> = std::fs::read_dir(data.join("msgs"))
        .expect("msgs folder")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segs.sort();
    segs.pop().expect("a segment file")
}

/// Where `body` (the last message published) starts in the file: inside its record.
fn offset_of(bytes: &[u8], body: &str) -> usize {
    let needle = body.as_bytes();
    bytes
        .windows(needle.len())
        .rposition(|w| w == needle)
        .expect("the last message's body is in the last segment")
}

/// Starts on the damaged directory, expects the first `n - 1` messages, then checks that
/// the store keeps working: a new message survives another restart.
async fn expect_good_prefix(dir: &mut TempRoot, n: usize) {
    let warren = Warren::start(dir).await;
    let (conn, ch) = warren.confirm_channel().await;
    assert_eq!(passive_queue(&conn, "dur.corrupt").await, Ok(n as u32 - 1));
    let expected: Vec<String> = (0..n - 1).map(corrupt_body).collect();
    assert_eq!(drain_bodies(&ch, "dur.corrupt", n).await, expected);
    let log = warren.stderr();
    assert!(
        log.contains("WARN"),
        "the dropped tail was not logged; stderr:\n{log}"
    );
    publish(&ch, "", "dur.corrupt", "after-repair", persistent()).await;
    warren.terminate().await;

    let warren = Warren::start(dir).await;
    let (_conn, ch) = warren.confirm_channel().await;
    assert_eq!(
        drain_bodies(&ch, "dur.corrupt", n).await,
        strings(&["after-repair"])
    );
    warren.terminate().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_last_record_is_dropped_and_the_broker_starts() {
    const N: usize = 20;
    let mut dir = TempRoot::new("torn");
    fill_and_stop(&mut dir, N).await;
    let seg = last_segment(&dir.data);
    let bytes = std::fs::read(&seg).unwrap();
    let cut = offset_of(&bytes, &corrupt_body(N - 1)) + 100;
    assert!(cut < bytes.len());
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(cut as u64)
        .unwrap();
    expect_good_prefix(&mut dir, N).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flipped_byte_in_last_record_is_dropped_and_the_broker_starts() {
    const N: usize = 20;
    let mut dir = TempRoot::new("flip");
    fill_and_stop(&mut dir, N).await;
    let seg = last_segment(&dir.data);
    let mut bytes = std::fs::read(&seg).unwrap();
    let at = offset_of(&bytes, &corrupt_body(N - 1)) + 50;
    bytes[at] ^= 0x01;
    std::fs::write(&seg, &bytes).unwrap();
    expect_good_prefix(&mut dir, N).await;
}

// ---- 4. the data-directory lock ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn second_broker_on_the_same_data_dir_refuses_and_the_first_keeps_working() {
    let mut dir = TempRoot::new("lock");
    let first = Warren::start(&mut dir).await;
    let (_conn, ch) = first.confirm_channel().await;
    declare_queue(&ch, "dur.lock", durable(), FieldTable::default()).await;
    publish(&ch, "", "dur.lock", "before", persistent()).await;

    let second = tokio::time::timeout(
        Duration::from_secs(30),
        warren_command(&dir.data)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output(),
    )
    .await
    .expect("the second broker neither failed nor exited")
    .expect("run the second broker");
    let stdout = String::from_utf8_lossy(&second.stdout);
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert!(
        !second.status.success(),
        "the second broker exited with success"
    );
    assert!(
        !stdout.contains("ready on"),
        "the second broker said it was ready: {stdout}"
    );
    assert!(
        stderr.to_lowercase().contains("lock") && stderr.contains(&*dir.data.to_string_lossy()),
        "stderr should name the lock and the data directory: {stderr}"
    );

    // The first broker is unaffected, and so is its directory.
    publish(&ch, "", "dur.lock", "after", persistent()).await;
    first.terminate().await;
    let again = Warren::start(&mut dir).await;
    let (_conn, ch) = again.confirm_channel().await;
    assert_eq!(
        drain_bodies(&ch, "dur.lock", 5).await,
        strings(&["before", "after"])
    );
    again.terminate().await;
}

// ---- 5. purge and delete ----

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purged_and_deleted_messages_do_not_come_back() {
    let mut dir = TempRoot::new("purge");
    let warren = Warren::start(&mut dir).await;
    let (conn, ch) = warren.confirm_channel().await;
    declare_exchange(&ch, "dur.fan5", ExchangeKind::Fanout, FieldTable::default()).await;
    for q in ["dur.purged", "dur.deleted", "dur.kept", "dur.recreated"] {
        declare_queue(&ch, q, durable(), FieldTable::default()).await;
        bind(&ch, q, "dur.fan5", "", FieldTable::default()).await;
    }
    // Each message is stored once for the four queues.
    let first: Vec<String> = (0..5).map(|i| format!("a{i}")).collect();
    for body in &first {
        publish(&ch, "dur.fan5", "", body, persistent()).await;
    }
    let purged = within(ch.queue_purge("dur.purged".into(), QueuePurgeOptions::default()))
        .await
        .expect("queue.purge");
    assert_eq!(purged, 5);
    let deleted = within(ch.queue_delete("dur.deleted".into(), QueueDeleteOptions::default()))
        .await
        .expect("queue.delete");
    assert_eq!(deleted, 5);
    within(ch.queue_delete("dur.recreated".into(), QueueDeleteOptions::default()))
        .await
        .expect("queue.delete");
    declare_queue(&ch, "dur.recreated", durable(), FieldTable::default()).await;
    bind(&ch, "dur.recreated", "dur.fan5", "", FieldTable::default()).await;
    // Published after the purge: these stay.
    for body in ["b0", "b1"] {
        publish(&ch, "dur.fan5", "", body, persistent()).await;
    }
    assert_eq!(passive_queue(&conn, "dur.purged").await, Ok(2));

    warren.terminate().await;
    let warren = Warren::start(&mut dir).await;
    let (conn, ch) = warren.confirm_channel().await;
    assert_eq!(
        passive_queue(&conn, "dur.deleted").await,
        Err(no_queue("dur.deleted"))
    );
    assert_eq!(
        drain_bodies(&ch, "dur.purged", 10).await,
        strings(&["b0", "b1"])
    );
    assert_eq!(
        drain_bodies(&ch, "dur.recreated", 10).await,
        strings(&["b0", "b1"])
    );
    let mut kept = first.clone();
    kept.extend(strings(&["b0", "b1"]));
    assert_eq!(drain_bodies(&ch, "dur.kept", 10).await, kept);

    // And once more: a deleted durable queue stays deleted, drained messages stay gone.
    warren.terminate().await;
    let warren = Warren::start(&mut dir).await;
    let conn2 = warren.connect().await;
    assert_eq!(
        passive_queue(&conn2, "dur.deleted").await,
        Err(no_queue("dur.deleted"))
    );
    for q in ["dur.purged", "dur.recreated", "dur.kept"] {
        assert_eq!(passive_queue(&conn2, q).await, Ok(0), "{q}");
    }
    drop(conn);
    warren.terminate().await;
}

// ---- 6. definitions.json ----

fn find<'a>(list: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    list.as_array()?.iter().find(|o| o["name"] == name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn definitions_file_has_rabbitmq_shape_after_restart() {
    use serde_json::json;
    let mut dir = TempRoot::new("defs");
    let warren = Warren::start(&mut dir).await;
    let (_conn, ch) = warren.confirm_channel().await;
    let ae_args = table(&[("alternate-exchange", long_str("dur.defs.ae"))]);
    declare_exchange(&ch, "dur.defs.x", ExchangeKind::Topic, ae_args).await;
    let q_args = table(&[
        ("x-max-length", AMQPValue::LongInt(7)),
        ("x-message-ttl", AMQPValue::LongInt(60_000)),
        ("x-dead-letter-exchange", long_str("dur.defs.dlx")),
    ]);
    declare_queue(&ch, "dur.defs.q", durable(), q_args).await;
    bind(
        &ch,
        "dur.defs.q",
        "dur.defs.x",
        "k.#",
        FieldTable::default(),
    )
    .await;
    within(ch.exchange_declare(
        "dur.defs.tx".into(),
        ExchangeKind::Fanout,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    ))
    .await
    .unwrap();
    declare_queue(
        &ch,
        "dur.defs.tq",
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await;
    let exclusive_durable = QueueDeclareOptions {
        durable: true,
        exclusive: true,
        ..Default::default()
    };
    declare_queue(&ch, "dur.defs.xq", exclusive_durable, FieldTable::default()).await;
    warren.terminate().await;

    let warren = Warren::start(&mut dir).await;
    let conn = warren.connect().await;
    assert_eq!(passive_queue(&conn, "dur.defs.q").await, Ok(0));
    let text =
        std::fs::read_to_string(dir.data.join("definitions.json")).expect("definitions.json");
    let defs: serde_json::Value = serde_json::from_str(&text).expect("definitions.json is JSON");
    for key in [
        "users",
        "vhosts",
        "permissions",
        "queues",
        "exchanges",
        "bindings",
    ] {
        assert!(defs[key].is_array(), "{key} should be a list in {text}");
    }
    assert!(defs["rabbit_version"].is_string(), "rabbit_version: {text}");
    assert!(
        find(&defs["users"], "guest").is_some(),
        "guest user: {text}"
    );
    assert!(find(&defs["vhosts"], "/").is_some(), "vhost /: {text}");
    assert!(
        defs["permissions"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["user"] == "guest" && p["vhost"] == "/"),
        "guest's permissions on /: {text}"
    );

    let q = find(&defs["queues"], "dur.defs.q").unwrap_or_else(|| panic!("dur.defs.q: {text}"));
    assert_eq!(q["vhost"], "/");
    assert_eq!(q["durable"], true);
    assert_eq!(q["auto_delete"], false);
    assert_eq!(
        q["arguments"],
        json!({"x-max-length": 7, "x-message-ttl": 60000, "x-dead-letter-exchange": "dur.defs.dlx"})
    );
    for gone in ["dur.defs.tq", "dur.defs.xq"] {
        assert!(
            find(&defs["queues"], gone).is_none(),
            "{gone} is listed: {text}"
        );
    }

    let x = find(&defs["exchanges"], "dur.defs.x").unwrap_or_else(|| panic!("dur.defs.x: {text}"));
    assert_eq!(x["vhost"], "/");
    assert_eq!(x["type"], "topic");
    assert_eq!(x["durable"], true);
    assert_eq!(x["auto_delete"], false);
    assert_eq!(x["internal"], false);
    assert_eq!(x["arguments"], json!({"alternate-exchange": "dur.defs.ae"}));
    assert!(
        find(&defs["exchanges"], "dur.defs.tx").is_none(),
        "dur.defs.tx is listed: {text}"
    );
    // Like RabbitMQ's export: no built-in exchanges, no default-exchange bindings.
    for x in defs["exchanges"].as_array().unwrap() {
        let name = x["name"].as_str().unwrap_or("");
        assert!(
            !name.is_empty() && !name.starts_with("amq."),
            "built-in exchange {name:?} listed"
        );
    }
    let bindings = defs["bindings"].as_array().unwrap();
    assert!(
        bindings.iter().all(|b| b["source"] != ""),
        "default-exchange bindings listed: {text}"
    );
    assert!(
        bindings.iter().any(|b| *b
            == json!({
                "source": "dur.defs.x",
                "vhost": "/",
                "destination": "dur.defs.q",
                "destination_type": "queue",
                "routing_key": "k.#",
                "arguments": {}
            })),
        "the binding dur.defs.x -> dur.defs.q: {text}"
    );
    warren.terminate().await;
}

// ---- the ready line and SIGTERM ----

/// Once the ready line is out, SIGTERM must mean a graceful stop (flush, exit 0), however
/// soon it comes. A shell waits, already started, to send the signal the moment the line
/// is read, so the signal lands as early as a supervisor's could.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_right_after_the_ready_line_stops_gracefully() {
    use tokio::io::AsyncWriteExt;
    let dir = TempRoot::new("sigterm");
    for round in 0..20 {
        let mut child = warren_command(&dir.data)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn warren");
        let pid = child.id().expect("pid").to_string();
        let mut killer = Command::new("sh")
            .args(["-c", "read _ && kill -TERM \"$0\"", &pid])
            .stdin(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn sh");
        let mut stdout = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        let read = tokio::time::timeout(Duration::from_secs(30), stdout.read_line(&mut line)).await;
        assert!(matches!(read, Ok(Ok(n)) if n > 0), "no ready line");
        let mut go = killer.stdin.take().expect("sh stdin");
        go.write_all(b"go\n").await.expect("tell sh to signal");
        drop(go);
        let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
            .await
            .expect("warren did not exit in time")
            .expect("wait for warren");
        let _ = killer.wait().await;
        assert!(
            status.success(),
            "round {round}: warren exited with {status} on a SIGTERM just after its ready line"
        );
    }
}

// ---- 7. definitions written off the connection task, coalesced ----

/// A confirm for a persistent message is sent only once the queue (and the binding) it
/// went to are in the definitions file, though declare-ok and bind-ok no longer wait for
/// the file: a kill -9 right after the last confirm loses neither.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_right_after_a_confirm_keeps_the_fresh_queue_and_binding_it_went_to() {
    const ROUNDS: usize = 20;
    let mut dir = TempRoot::new("defs-kill9");
    let warren = Warren::start(&mut dir).await;
    let (_conn, ch) = warren.confirm_channel().await;
    declare_exchange(&ch, "fresh.x", ExchangeKind::Direct, FieldTable::default()).await;
    for i in 0..ROUNDS {
        let q = format!("fresh.q{i}");
        declare_queue(&ch, &q, durable(), FieldTable::default()).await;
        bind(&ch, &q, "fresh.x", &q, FieldTable::default()).await;
        publish(&ch, "fresh.x", &q, &q, persistent()).await;
    }
    warren.kill9().await;

    let warren = Warren::start(&mut dir).await;
    let (conn, ch) = warren.confirm_channel().await;
    for i in 0..ROUNDS {
        let q = format!("fresh.q{i}");
        assert_eq!(passive_queue(&conn, &q).await, Ok(1), "{q} and its message");
        // The binding came back too: a new message routes through it.
        publish(&ch, "fresh.x", &q, "again", persistent()).await;
        assert_eq!(drain_bodies(&ch, &q, 2).await, strings(&[&q, "again"]));
    }
}

/// 10,000 durable queues declared one after the other: the definitions file is not
/// rewritten per declare (that was O(N^2) bytes), and the last write holds all of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declaring_10000_durable_queues_rewrites_the_definitions_file_far_fewer_times() {
    const QUEUES: usize = 10_000;
    let broker = common::TestBroker::start().await;
    let counter = broker.server.broker().clone();
    let (_conn, ch) = broker.channel().await;
    let before = counter.definitions_writes();
    for i in 0..QUEUES {
        declare_queue(&ch, &format!("many.{i}"), durable(), FieldTable::default()).await;
    }
    // A graceful stop waits for the write that covers the last declare.
    let data_dir = broker.restart_later().await;
    let writes = counter.definitions_writes() - before;
    let text = std::fs::read(data_dir.join("definitions.json")).expect("definitions.json");
    let _ = std::fs::remove_dir_all(&data_dir);
    let defs: serde_json::Value = serde_json::from_slice(&text).expect("definitions JSON");
    let queues = defs["queues"].as_array().map_or(0, Vec::len);
    assert_eq!(queues, QUEUES, "every queue is in the file");
    assert!(
        (1..QUEUES as u64 / 10).contains(&writes),
        "{writes} rewrites of the definitions file for {QUEUES} declares"
    );
    eprintln!("{QUEUES} durable queues declared: definitions written {writes} times");
}
