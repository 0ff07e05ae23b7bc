//! The Rust (lapin) column of the interop matrix: scenarios 01..15, 17 and `tls` of
//! interop/README.md, against `WARREN_INTEROP_URL` when set (interop/run.sh sets it, and
//! the `WARREN_INTEROP_TLS_*` variables for `tls`), else an in-process broker that
//! loads interop/definitions.json (scenario 17's user and vhost) as run.sh's does.
//!
//! One test, `scenarios`, runs them in order and prints exactly one line per scenario on
//! stdout (`NN pass`, `NN FAIL <reason>`, `NN n/a <reason>`), then fails if any failed.
//! Each scenario runs in its own task with a 20 s timeout, so a panic or a hang is a FAIL
//! of that scenario only.
mod common;
#[path = "interop/tls.rs"]
mod tls_scenario;
mod tls_support;

use common::{table, TestBroker};
use futures::StreamExt;
use lapin::options::*;
use lapin::types::{AMQPValue, ByteArray, DecimalValue, FieldArray, FieldTable, LongString};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, Consumer, ErrorKind,
    ExchangeKind,
};
use std::fmt::{Debug, Display};
use std::future::Future;
use std::io::Write;
use std::time::{Duration, Instant};
use tls_scenario::stls;

/// Scenario names are `interop.rust.NN...`.
const PREFIX: &str = "interop.rust.";
const SCENARIO_TIMEOUT: Duration = Duration::from_secs(20);
/// How long one awaited step (a delivery, a reply) may take inside a scenario.
const STEP: Duration = Duration::from_secs(10);
/// How long we watch to show that something does NOT arrive.
const QUIET: Duration = Duration::from_millis(500);

type R<T> = Result<T, String>;

enum Outcome {
    Pass,
    NotApplicable(String),
}

/// `what: error` for any failed step.
trait Context<T> {
    fn ctx(self, what: &str) -> R<T>;
}

impl<T, E: Display> Context<T> for Result<T, E> {
    fn ctx(self, what: &str) -> R<T> {
        self.map_err(|e| format!("{what}: {e}"))
    }
}

impl<T> Context<T> for Option<T> {
    fn ctx(self, what: &str) -> R<T> {
        self.ok_or_else(|| format!("{what}: nothing"))
    }
}

macro_rules! ensure {
    ($cond:expr, $($fmt:tt)+) => {
        if !$cond {
            return Err(format!($($fmt)+));
        }
    };
}

fn same<T: PartialEq + Debug>(what: &str, got: T, want: T) -> R<()> {
    ensure!(got == want, "{what}: got {got:?}, expected {want:?}");
    Ok(())
}

fn name(id: &str) -> String {
    format!("{PREFIX}{id}")
}

// ------------------------------------------------------------------ the runner

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scenarios() {
    let (url, broker) = match std::env::var("WARREN_INTEROP_URL") {
        Ok(url) if !url.is_empty() => (url, None),
        _ => {
            let definitions =
                std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("interop/definitions.json");
            let broker = TestBroker::start_with(|c| warren::Config {
                definitions: Some(definitions),
                ..c
            })
            .await;
            (broker.url(), Some(broker))
        }
    };
    eprintln!("interop (rust/lapin) against {url}");
    // Start on a fresh line whatever the harness printed before.
    println!();
    let failed = run_all(&url).await;
    if let Some(broker) = broker {
        broker.stop().await;
    }
    assert!(failed.is_empty(), "failed scenarios: {failed:?}");
}

fn one_line(text: &str) -> String {
    let flat: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    const MAX: usize = 300;
    if flat.chars().count() > MAX {
        format!("{}...", flat.chars().take(MAX).collect::<String>())
    } else {
        flat
    }
}

/// Runs every scenario in order, each in its own task under the scenario timeout, printing
/// its result line as soon as it is known; returns the numbers of the failed ones.
async fn run_all(url: &str) -> Vec<&'static str> {
    let mut failed = Vec::new();
    macro_rules! run {
        ($number:literal, $scenario:ident) => {
            let started = Instant::now();
            let result = isolated($scenario(url.to_owned())).await;
            eprintln!(
                "scenario {} ({}) took {:?}",
                $number,
                stringify!($scenario),
                started.elapsed()
            );
            if result.is_err() {
                failed.push($number);
            }
            report($number, result);
        };
    }
    run!("01", s01_connect);
    run!("02", s02_declare_publish_get);
    run!("03", s03_consume_manual_ack);
    run!("04", s04_fanout);
    run!("05", s05_topic);
    run!("06", s06_headers);
    run!("07", s07_publisher_confirms);
    run!("08", s08_transactions);
    run!("09", s09_reject_nack_requeue);
    run!("10", s10_mandatory_unroutable);
    run!("11", s11_passive_declare_missing);
    run!("12", s12_ten_mib);
    run!("13", s13_direct_reply_to);
    run!("14", s14_prefetch);
    run!("15", s15_properties_and_headers);
    run!("17", s17_own_user_and_vhost);
    run!("tls", stls);
    failed
}

/// One whole line on stdout, flushed at once, so it never mixes with other output.
fn report(number: &str, result: R<Outcome>) {
    let line = match result {
        Ok(Outcome::Pass) => format!("{number} pass"),
        Ok(Outcome::NotApplicable(why)) => format!("{number} n/a {}", one_line(&why)),
        Err(why) => format!("{number} FAIL {}", one_line(&why)),
    };
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// A panic or a timeout in `scenario` becomes its failure; the task is aborted on timeout,
/// which drops (and so closes) its connections.
async fn isolated(scenario: impl Future<Output = R<Outcome>> + Send + 'static) -> R<Outcome> {
    let mut task = tokio::spawn(scenario);
    match tokio::time::timeout(SCENARIO_TIMEOUT, &mut task).await {
        Ok(Ok(result)) => result,
        Ok(Err(join)) if join.is_panic() => {
            let payload = join.into_panic();
            let text = payload
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "?".into());
            Err(format!("panicked: {text}"))
        }
        Ok(Err(join)) => Err(format!("task failed: {join}")),
        Err(_) => {
            task.abort();
            Err(format!("timed out after {}s", SCENARIO_TIMEOUT.as_secs()))
        }
    }
}

// ------------------------------------------------------------------ helpers

async fn step<T>(what: &str, fut: impl Future<Output = T>) -> R<T> {
    tokio::time::timeout(STEP, fut)
        .await
        .map_err(|_| format!("{what}: no answer within {}s", STEP.as_secs()))
}

async fn connect(url: &str) -> R<Connection> {
    step(
        "connect",
        Connection::connect(url, ConnectionProperties::default()),
    )
    .await?
    .ctx("connect")
}

async fn open(url: &str) -> R<(Connection, Channel)> {
    let conn = connect(url).await?;
    let ch = step("channel.open", conn.create_channel())
        .await?
        .ctx("channel.open")?;
    Ok((conn, ch))
}

async fn close(conn: Connection) -> R<()> {
    step("connection.close", conn.close(200, "bye".into()))
        .await?
        .ctx("connection.close")
}

/// An exclusive queue (gone with its connection, so reruns start clean).
async fn declare_exclusive(ch: &Channel, queue: &str) -> R<()> {
    let options = QueueDeclareOptions {
        exclusive: true,
        ..Default::default()
    };
    let q = step(
        "queue.declare",
        ch.queue_declare(queue.into(), options, FieldTable::default()),
    )
    .await?
    .ctx(&format!("queue.declare {queue}"))?;
    same("declare-ok queue name", q.name().as_str(), queue)?;
    same("declare-ok message count", q.message_count(), 0)
}

/// Ready messages, as a passive queue.declare reports them.
async fn ready(ch: &Channel, queue: &str) -> R<u32> {
    let options = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let q = step(
        "passive queue.declare",
        ch.queue_declare(queue.into(), options, FieldTable::default()),
    )
    .await?
    .ctx(&format!("passive queue.declare {queue}"))?;
    Ok(q.message_count())
}

async fn delete_queue(ch: &Channel, queue: &str) -> R<u32> {
    step(
        "queue.delete",
        ch.queue_delete(queue.into(), QueueDeleteOptions::default()),
    )
    .await?
    .ctx(&format!("queue.delete {queue}"))
}

async fn declare_exchange(ch: &Channel, exchange: &str, kind: ExchangeKind) -> R<()> {
    let options = ExchangeDeclareOptions {
        auto_delete: true,
        ..Default::default()
    };
    step(
        "exchange.declare",
        ch.exchange_declare(exchange.into(), kind, options, FieldTable::default()),
    )
    .await?
    .ctx(&format!("exchange.declare {exchange}"))
}

async fn delete_exchange(ch: &Channel, exchange: &str) -> R<()> {
    step(
        "exchange.delete",
        ch.exchange_delete(exchange.into(), ExchangeDeleteOptions::default()),
    )
    .await?
    .ctx(&format!("exchange.delete {exchange}"))
}

async fn bind(ch: &Channel, queue: &str, exchange: &str, key: &str, args: FieldTable) -> R<()> {
    step(
        "queue.bind",
        ch.queue_bind(
            queue.into(),
            exchange.into(),
            key.into(),
            QueueBindOptions::default(),
            args,
        ),
    )
    .await?
    .ctx(&format!("queue.bind {queue} to {exchange} ({key})"))
}

async fn publish_with(
    ch: &Channel,
    exchange: &str,
    key: &str,
    options: BasicPublishOptions,
    body: &[u8],
    properties: BasicProperties,
) -> R<lapin::PublisherConfirm> {
    step(
        "basic.publish",
        ch.basic_publish(exchange.into(), key.into(), options, body, properties),
    )
    .await?
    .ctx("basic.publish")
}

async fn publish(ch: &Channel, exchange: &str, key: &str, body: &[u8]) -> R<()> {
    publish_with(
        ch,
        exchange,
        key,
        BasicPublishOptions::default(),
        body,
        BasicProperties::default(),
    )
    .await
    .map(drop)
}

async fn get(ch: &Channel, queue: &str) -> R<Option<lapin::message::BasicGetMessage>> {
    step(
        "basic.get",
        ch.basic_get(queue.into(), BasicGetOptions { no_ack: true }),
    )
    .await?
    .ctx(&format!("basic.get {queue}"))
}

/// Every message in `queue` (basic.get until get-empty), bodies as text, in order.
async fn drain(ch: &Channel, queue: &str) -> R<Vec<String>> {
    let mut bodies = Vec::new();
    for _ in 0..1000 {
        match get(ch, queue).await? {
            Some(m) => bodies.push(String::from_utf8_lossy(&m.delivery.data).into_owned()),
            None => return Ok(bodies),
        }
    }
    Err(format!("{queue}: more than 1000 messages"))
}

async fn consume(ch: &Channel, queue: &str, no_ack: bool) -> R<Consumer> {
    let options = BasicConsumeOptions {
        no_ack,
        ..Default::default()
    };
    step(
        "basic.consume",
        ch.basic_consume(queue.into(), "".into(), options, FieldTable::default()),
    )
    .await?
    .ctx(&format!("basic.consume {queue}"))
}

async fn next(consumer: &mut Consumer, what: &str) -> R<lapin::message::Delivery> {
    step(what, consumer.next())
        .await?
        .ok_or_else(|| format!("{what}: consumer stream ended"))?
        .ctx(what)
}

/// Fails when a delivery arrives within `QUIET`.
async fn nothing_more(consumer: &mut Consumer, what: &str) -> R<()> {
    match tokio::time::timeout(QUIET, consumer.next()).await {
        Err(_) => Ok(()),
        Ok(Some(Ok(d))) => Err(format!(
            "{what}: unexpected delivery {:?}",
            String::from_utf8_lossy(&d.data)
        )),
        Ok(Some(Err(e))) => Err(format!("{what}: {e}")),
        Ok(None) => Err(format!("{what}: consumer stream ended")),
    }
}

fn text(d: &lapin::message::Delivery) -> String {
    String::from_utf8_lossy(&d.data).into_owned()
}

fn short<T: Display>(value: &Option<T>) -> Option<String> {
    value.as_ref().map(|v| v.to_string())
}

// ------------------------------------------------------------------ scenarios

/// 01 connect: heartbeat 10 s and frame_max 65536 asked for and negotiated, a channel
/// opened, both closed cleanly.
async fn s01_connect(url: String) -> R<Outcome> {
    let sep = if url.contains('?') { '&' } else { '?' };
    let conn = connect(&format!("{url}{sep}heartbeat=10&frame_max=65536")).await?;
    same("negotiated heartbeat", conn.configuration().heartbeat(), 10)?;
    same(
        "negotiated frame_max",
        conn.configuration().frame_max(),
        65536,
    )?;
    ensure!(
        conn.configuration().channel_max() > 0,
        "negotiated channel_max 0"
    );
    let mut events = Box::pin(conn.events_listener());
    let ch = step("channel.open", conn.create_channel())
        .await?
        .ctx("channel.open")?;
    ensure!(ch.status().connected(), "channel not open");
    step("channel.close", ch.close(200, "bye".into()))
        .await?
        .ctx("channel.close")?;
    ensure!(!ch.status().connected(), "channel still open after close");
    step("connection.close", conn.close(200, "bye".into()))
        .await?
        .ctx("connection.close")?;
    // A clean close leaves lapin in state Closed with no error event (lapin reports the
    // socket reaching EOF before it has processed close-ok as a connection error).
    if let Ok(Some(lapin::Event::Error(e))) = tokio::time::timeout(QUIET, events.next()).await {
        return Err(format!(
            "lapin reports a connection error after close-ok: {e}"
        ));
    }
    // lapin moves to Closed on its own task once it handled close-ok: on a loaded
    // machine that can come a moment after close() returned (CI saw `Closing` once).
    let closed = common::poll_within(QUIET, || async { conn.status().closed().then_some(()) });
    closed.await;
    ensure!(
        conn.status().closed(),
        "connection state after close-ok: {:?}",
        conn.status()
    );
    Ok(Outcome::Pass)
}

/// 02 declare, publish through the default exchange, get it back, then get-empty.
async fn s02_declare_publish_get(url: String) -> R<Outcome> {
    let q = name("02");
    let (conn, ch) = open(&url).await?;
    declare_exclusive(&ch, &q).await?;
    publish(&ch, "", &q, b"hello 02").await?;
    let got = get(&ch, &q).await?.ctx("basic.get")?;
    same("body", text(&got.delivery).as_str(), "hello 02")?;
    same("exchange", got.delivery.exchange.as_str(), "")?;
    same("routing key", got.delivery.routing_key.as_str(), q.as_str())?;
    same("redelivered", got.delivery.redelivered, false)?;
    same("get-ok message_count", got.message_count, 0)?;
    ensure!(get(&ch, &q).await?.is_none(), "second basic.get not empty");
    delete_queue(&ch, &q).await?;
    close(conn).await?;
    Ok(Outcome::Pass)
}

/// 03 ten messages consumed in order with manual acks; the queue is then empty.
async fn s03_consume_manual_ack(url: String) -> R<Outcome> {
    let q = name("03");
    let (conn, ch) = open(&url).await?;
    declare_exclusive(&ch, &q).await?;
    for i in 0..10 {
        publish(&ch, "", &q, format!("m{i}").as_bytes()).await?;
    }
    let mut consumer = consume(&ch, &q, false).await?;
    for i in 0..10 {
        let d = next(&mut consumer, &format!("delivery {i}")).await?;
        same("delivery order", text(&d), format!("m{i}"))?;
        same("redelivered", d.redelivered, false)?;
        step("basic.ack", d.ack(BasicAckOptions::default()))
            .await?
            .ctx("basic.ack")?;
    }
    nothing_more(&mut consumer, "after 10 deliveries").await?;
    same("ready messages afterwards", ready(&ch, &q).await?, 0)?;
    step(
        "basic.cancel",
        ch.basic_cancel(consumer.tag(), BasicCancelOptions::default()),
    )
    .await?
    .ctx("basic.cancel")?;
    same("queue.delete count", delete_queue(&ch, &q).await?, 0)?;
    close(conn).await?;
    Ok(Outcome::Pass)
}

/// 04 a fanout exchange copies one message to each of its three queues.
async fn s04_fanout(url: String) -> R<Outcome> {
    let x = name("04.fanout");
    let (conn, ch) = open(&url).await?;
    declare_exchange(&ch, &x, ExchangeKind::Fanout).await?;
    let queues: Vec<String> = (1..=3).map(|i| name(&format!("04.q{i}"))).collect();
    for q in &queues {
        declare_exclusive(&ch, q).await?;
        bind(&ch, q, &x, "", FieldTable::default()).await?;
    }
    publish(&ch, &x, "any.key", b"fanned").await?;
    for q in &queues {
        same(q, drain(&ch, q).await?, vec!["fanned".to_owned()])?;
    }
    delete_exchange(&ch, &x).await?;
    close(conn).await?;
    Ok(Outcome::Pass)
}

/// 05 topic routing: `*` is one word, `#` zero or more; exact sets per queue.
async fn s05_topic(url: String) -> R<Outcome> {
    let x = name("05.topic");
    let (conn, ch) = open(&url).await?;
    declare_exchange(&ch, &x, ExchangeKind::Topic).await?;
    let patterns = ["a.*", "a.#", "#.z", "*.b.*"];
    let queues: Vec<String> = (1..=patterns.len())
        .map(|i| name(&format!("05.q{i}")))
        .collect();
    for (q, pattern) in queues.iter().zip(patterns) {
        declare_exclusive(&ch, q).await?;
        bind(&ch, q, &x, pattern, FieldTable::default()).await?;
    }
    for key in ["a.b", "a.b.c", "x.y.z", "a", "q.b.r", "a.z", "z", "b.a.z.b"] {
        publish(&ch, &x, key, key.as_bytes()).await?;
    }
    let expected: [&[&str]; 4] = [
        &["a.b", "a.z"],               // a.*
        &["a.b", "a.b.c", "a", "a.z"], // a.#
        &["x.y.z", "a.z", "z"],        // #.z
        &["a.b.c", "q.b.r"],           // *.b.*
    ];
    for ((q, pattern), want) in queues.iter().zip(patterns).zip(expected) {
        same(
            &format!("queue bound with {pattern}"),
            drain(&ch, q).await?,
            strings(want),
        )?;
    }
    delete_exchange(&ch, &x).await?;
    close(conn).await?;
    Ok(Outcome::Pass)
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn long_string(s: &str) -> AMQPValue {
    AMQPValue::LongString(s.into())
}

/// 06 headers routing with x-match all and any; exact sets.
async fn s06_headers(url: String) -> R<Outcome> {
    let x = name("06.headers");
    let q_all = name("06.all");
    let q_any = name("06.any");
    let (conn, ch) = open(&url).await?;
    declare_exchange(&ch, &x, ExchangeKind::Headers).await?;
    for (q, mode) in [(&q_all, "all"), (&q_any, "any")] {
        declare_exclusive(&ch, q).await?;
        let args = table(&[
            ("x-match", long_string(mode)),
            ("format", long_string("pdf")),
            ("type", long_string("report")),
        ]);
        bind(&ch, q, &x, "", args).await?;
    }
    let messages = [
        (
            "both",
            table(&[
                ("format", long_string("pdf")),
                ("type", long_string("report")),
            ]),
        ),
        (
            "one",
            table(&[("format", long_string("pdf")), ("type", long_string("log"))]),
        ),
        ("other", table(&[("format", long_string("zip"))])),
        (
            "extra",
            table(&[
                ("format", long_string("pdf")),
                ("type", long_string("report")),
                ("size", AMQPValue::LongInt(7)),
            ]),
        ),
        ("none", FieldTable::default()),
        ("type-only", table(&[("type", long_string("report"))])),
    ];
    for (body, headers) in messages {
        let properties = BasicProperties::default().with_headers(headers);
        publish_with(
            &ch,
            &x,
            "",
            BasicPublishOptions::default(),
            body.as_bytes(),
            properties,
        )
        .await?;
    }
    same(
        "x-match all",
        drain(&ch, &q_all).await?,
        strings(&["both", "extra"]),
    )?;
    same(
        "x-match any",
        drain(&ch, &q_any).await?,
        strings(&["both", "one", "extra", "type-only"]),
    )?;
    delete_exchange(&ch, &x).await?;
    close(conn).await?;
    Ok(Outcome::Pass)
}

/// 07 publisher confirms: 1,000 publishes, every one acked, none nacked.
async fn s07_publisher_confirms(url: String) -> R<Outcome> {
    let q = name("07");
    let (conn, ch) = open(&url).await?;
    declare_exclusive(&ch, &q).await?;
    step(
        "confirm.select",
        ch.confirm_select(ConfirmSelectOptions::default()),
    )
    .await?
    .ctx("confirm.select")?;
    let mut pending = Vec::with_capacity(1000);
    for i in 0..1000 {
        let body = format!("c{i}");
        pending.push(
            publish_with(
                &ch,
                "",
                &q,
                BasicPublishOptions::default(),
                body.as_bytes(),
                BasicProperties::default(),
            )
            .await?,
        );
    }
    let (mut acks, mut nacks) = (0, 0);
    for confirm in pending {
        match step("confirm", confirm).await?.ctx("confirm")? {
            Confirmation::Ack(None) => acks += 1,
            Confirmation::Nack(_) => nacks += 1,
            other => return Err(format!("unexpected confirmation {other:?}")),
        }
    }
    same("nacks", nacks, 0)?;
    same("acks", acks, 1000)?;
    same("ready messages", ready(&ch, &q).await?, 1000)?;
    same("queue.delete count", delete_queue(&ch, &q).await?, 1000)?;
    close(conn).await?;
    Ok(Outcome::Pass)
}

/// 08 transactions: two publishes committed are there; one rolled back is not.
async fn s08_transactions(url: String) -> R<Outcome> {
    let q = name("08");
    let (conn, ch) = open(&url).await?;
    declare_exclusive(&ch, &q).await?;
    step("tx.select", ch.tx_select()).await?.ctx("tx.select")?;
    publish(&ch, "", &q, b"t1").await?;
    publish(&ch, "", &q, b"t2").await?;
    step("tx.commit", ch.tx_commit()).await?.ctx("tx.commit")?;
    same("ready after commit", ready(&ch, &q).await?, 2)?;
    publish(&ch, "", &q, b"t3").await?;
    step("tx.rollback", ch.tx_rollback())
        .await?
        .ctx("tx.rollback")?;
    same("ready after rollback", ready(&ch, &q).await?, 2)?;
    // The channel stays transactional; get (no-ack) needs no commit to show the messages.
    same("bodies", drain(&ch, &q).await?, strings(&["t1", "t2"]))?;
    close(conn).await?;
    Ok(Outcome::Pass)
}

/// 09 reject (requeue) then nack (requeue): the message comes back redelivered; then acked.
async fn s09_reject_nack_requeue(url: String) -> R<Outcome> {
    let q = name("09");
    let (conn, ch) = open(&url).await?;
    declare_exclusive(&ch, &q).await?;
    publish(&ch, "", &q, b"bounce").await?;
    let mut consumer = consume(&ch, &q, false).await?;
    let first = next(&mut consumer, "first delivery").await?;
    same("first body", text(&first).as_str(), "bounce")?;
    same("first redelivered", first.redelivered, false)?;
    step(
        "basic.reject",
        first.reject(BasicRejectOptions { requeue: true }),
    )
    .await?
    .ctx("basic.reject")?;
    let second = next(&mut consumer, "delivery after reject").await?;
    same("body after reject", text(&second).as_str(), "bounce")?;
    same("redelivered after reject", second.redelivered, true)?;
    step(
        "basic.nack",
        second.nack(BasicNackOptions {
            multiple: false,
            requeue: true,
        }),
    )
    .await?
    .ctx("basic.nack")?;
    let third = next(&mut consumer, "delivery after nack").await?;
    same("body after nack", text(&third).as_str(), "bounce")?;
    same("redelivered after nack", third.redelivered, true)?;
    step("basic.ack", third.ack(BasicAckOptions::default()))
        .await?
        .ctx("basic.ack")?;
    nothing_more(&mut consumer, "after the ack").await?;
    same("ready afterwards", ready(&ch, &q).await?, 0)?;
    close(conn).await?;
    Ok(Outcome::Pass)
}

/// 10 mandatory publish routed nowhere: basic.return 312 NO_ROUTE with the original body.
async fn s10_mandatory_unroutable(url: String) -> R<Outcome> {
    let x = name("10.direct");
    let key = name("10.nobody");
    let (conn, ch) = open(&url).await?;
    declare_exchange(&ch, &x, ExchangeKind::Direct).await?;
    let mandatory = BasicPublishOptions {
        mandatory: true,
        ..Default::default()
    };
    let properties = BasicProperties::default().with_message_id("m-10".into());
    publish_with(&ch, &x, &key, mandatory, b"returned body", properties).await?;
    // Without confirms lapin keeps returns aside; a synchronous round trip on the same
    // channel (the broker answers in order) guarantees the basic.return has arrived.
    let passive = ExchangeDeclareOptions {
        passive: true,
        ..Default::default()
    };
    step(
        "passive exchange.declare",
        ch.exchange_declare(
            x.as_str().into(),
            ExchangeKind::Direct,
            passive,
            FieldTable::default(),
        ),
    )
    .await?
    .ctx("passive exchange.declare")?;
    let returned = step("collect returns", ch.wait_for_confirms())
        .await?
        .ctx("collect returns")?;
    same("returned messages", returned.len(), 1)?;
    let r = &returned[0];
    same("reply code", r.reply_code, 312)?;
    same("reply text", r.reply_text.as_str(), "NO_ROUTE")?;
    same("exchange", r.delivery.exchange.as_str(), x.as_str())?;
    same("routing key", r.delivery.routing_key.as_str(), key.as_str())?;
    same(
        "body",
        r.delivery.data.as_slice(),
        b"returned body".as_slice(),
    )?;
    same(
        "message_id",
        short(r.delivery.properties.message_id()),
        Some("m-10".into()),
    )?;
    delete_exchange(&ch, &x).await?;
    close(conn).await?;
    Ok(Outcome::Pass)
}

/// 11 passive declare of a missing queue closes the channel with 404; a new channel on the
/// same connection works.
async fn s11_passive_declare_missing(url: String) -> R<Outcome> {
    let missing = name("11.missing");
    let q = name("11");
    let (conn, ch) = open(&url).await?;
    let options = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let result = step(
        "passive queue.declare",
        ch.queue_declare(missing.as_str().into(), options, FieldTable::default()),
    )
    .await?;
    let err = match result {
        Ok(_) => return Err(format!("passive declare of {missing} succeeded")),
        Err(e) => e,
    };
    let ErrorKind::ProtocolError(amqp) = err.kind() else {
        return Err(format!(
            "expected a channel.close from the broker, got {err}"
        ));
    };
    same("reply code", amqp.get_id(), 404)?;
    let vhost = conn.status().vhost();
    let want = format!("NOT_FOUND - no queue '{missing}' in vhost '{vhost}'");
    let got = amqp.get_message().to_string();
    ensure!(
        got.starts_with("NOT_FOUND - no queue '"),
        "reply text {got:?}, expected it to start with \"NOT_FOUND - no queue '\""
    );
    same("reply text", got.as_str(), want.as_str())?;
    ensure!(!ch.status().connected(), "channel still open after 404");
    ensure!(
        conn.status().connected(),
        "connection closed by a channel error"
    );

    let ch2 = step("second channel.open", conn.create_channel())
        .await?
        .ctx("second channel.open")?;
    declare_exclusive(&ch2, &q).await?;
    publish(&ch2, "", &q, b"after 404").await?;
    same("after 404", drain(&ch2, &q).await?, strings(&["after 404"]))?;
    delete_queue(&ch2, &q).await?;
    close(conn).await?;
    Ok(Outcome::Pass)
}

/// Pseudo-random bytes (xorshift64*), reproducible.
fn pseudo_random(len: usize, mut seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        seed ^= seed >> 12;
        seed ^= seed << 25;
        seed ^= seed >> 27;
        out.extend_from_slice(&seed.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// 12 a 10 MiB body of pseudo-random bytes comes back byte for byte, by get and by consume.
async fn s12_ten_mib(url: String) -> R<Outcome> {
    let q = name("12");
    let body = pseudo_random(10 * 1024 * 1024, 0x9E37_79B9_7F4A_7C15);
    let (conn, ch) = open(&url).await?;
    declare_exclusive(&ch, &q).await?;
    publish(&ch, "", &q, &body).await?;
    let got = get(&ch, &q).await?.ctx("basic.get of the 10 MiB message")?;
    compare_bodies("basic.get", &got.delivery.data, &body)?;
    publish(&ch, "", &q, &body).await?;
    let mut consumer = consume(&ch, &q, true).await?;
    let d = next(&mut consumer, "10 MiB delivery").await?;
    compare_bodies("basic.deliver", &d.data, &body)?;
    close(conn).await?;
    Ok(Outcome::Pass)
}

fn compare_bodies(what: &str, got: &[u8], want: &[u8]) -> R<()> {
    same(&format!("{what} body length"), got.len(), want.len())?;
    if let Some(at) = got.iter().zip(want).position(|(a, b)| a != b) {
        return Err(format!("{what}: bodies differ at byte {at}"));
    }
    Ok(())
}

/// 13 RPC over direct reply-to: the requester consumes amq.rabbitmq.reply-to (no-ack), a
/// responder on another connection answers to the reply_to it got.
async fn s13_direct_reply_to(url: String) -> R<Outcome> {
    const REPLY_TO: &str = "amq.rabbitmq.reply-to";
    let server_q = name("13.rpc");
    let (responder, rch) = open(&url).await?;
    declare_exclusive(&rch, &server_q).await?;
    let mut requests = consume(&rch, &server_q, false).await?;

    let (requester, qch) = open(&url).await?;
    let mut replies = consume(&qch, REPLY_TO, true).await?;
    let request = BasicProperties::default()
        .with_reply_to(REPLY_TO.into())
        .with_correlation_id("corr-13".into());
    publish_with(
        &qch,
        "",
        &server_q,
        BasicPublishOptions::default(),
        b"ping",
        request,
    )
    .await?;

    let req = next(&mut requests, "request").await?;
    same("request body", text(&req).as_str(), "ping")?;
    let reply_to = short(req.properties.reply_to()).ctx("request reply_to")?;
    ensure!(
        reply_to.starts_with("amq.rabbitmq.reply-to."),
        "reply_to seen by the responder: {reply_to:?}"
    );
    let correlation = short(req.properties.correlation_id());
    same(
        "request correlation_id",
        correlation.clone(),
        Some("corr-13".into()),
    )?;
    let reply = BasicProperties::default().with_correlation_id(correlation.unwrap().into());
    publish_with(
        &rch,
        "",
        &reply_to,
        BasicPublishOptions::default(),
        b"reply:ping",
        reply,
    )
    .await?;
    step("basic.ack", req.ack(BasicAckOptions::default()))
        .await?
        .ctx("basic.ack")?;

    let got = next(&mut replies, "reply").await?;
    same("reply body", text(&got).as_str(), "reply:ping")?;
    same(
        "reply correlation_id",
        short(got.properties.correlation_id()),
        Some("corr-13".into()),
    )?;
    same(
        "reply routing key",
        got.routing_key.as_str(),
        reply_to.as_str(),
    )?;
    delete_queue(&rch, &server_q).await?;
    close(requester).await?;
    close(responder).await?;
    Ok(Outcome::Pass)
}

/// 14 prefetch 5: five of twenty arrive unacked; a multiple ack lets the next five in.
async fn s14_prefetch(url: String) -> R<Outcome> {
    let q = name("14");
    let (conn, ch) = open(&url).await?;
    declare_exclusive(&ch, &q).await?;
    step("basic.qos", ch.basic_qos(5, BasicQosOptions::default()))
        .await?
        .ctx("basic.qos")?;
    for i in 0..20 {
        publish(&ch, "", &q, format!("p{i}").as_bytes()).await?;
    }
    let mut consumer = consume(&ch, &q, false).await?;
    for window in 0..2 {
        let mut last = 0;
        for i in window * 5..window * 5 + 5 {
            let d = next(&mut consumer, &format!("delivery {i}")).await?;
            same("delivery order", text(&d), format!("p{i}"))?;
            last = d.delivery_tag;
        }
        nothing_more(
            &mut consumer,
            &format!("window {} of 5 unacked", window + 1),
        )
        .await?;
        step(
            "basic.ack multiple",
            ch.basic_ack(last, BasicAckOptions { multiple: true }),
        )
        .await?
        .ctx("basic.ack multiple")?;
    }
    step(
        "basic.cancel",
        ch.basic_cancel(consumer.tag(), BasicCancelOptions::default()),
    )
    .await?
    .ctx("basic.cancel")?;
    delete_queue(&ch, &q).await?;
    close(conn).await?;
    Ok(Outcome::Pass)
}

/// One header of every field type lapin can put on the wire. Not here: short strings
/// (lapin encodes them with an invalid tag) and unsigned 64-bit integers (lapin has no
/// wire type for them; RabbitMQ neither).
fn every_field_type() -> FieldTable {
    let inner = table(&[
        ("n", AMQPValue::LongInt(-7)),
        ("s", long_string("deep")),
        (
            "t",
            AMQPValue::FieldTable(table(&[("leaf", AMQPValue::Boolean(false))])),
        ),
    ]);
    let array = FieldArray::from(vec![
        AMQPValue::LongInt(1),
        long_string("two"),
        AMQPValue::Boolean(true),
        AMQPValue::Double(4.5),
        AMQPValue::Void,
        AMQPValue::ShortShortUInt(9),
        AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::ShortInt(-3)])),
        AMQPValue::FieldTable(inner.clone()),
        AMQPValue::Timestamp(42),
        AMQPValue::ByteArray(ByteArray::from(vec![7u8, 0, 7])),
    ]);
    table(&[
        ("bool-true", AMQPValue::Boolean(true)),
        ("bool-false", AMQPValue::Boolean(false)),
        ("i8", AMQPValue::ShortShortInt(i8::MIN)),
        ("u8", AMQPValue::ShortShortUInt(u8::MAX)),
        ("i16", AMQPValue::ShortInt(i16::MIN)),
        ("u16", AMQPValue::ShortUInt(u16::MAX)),
        ("i32", AMQPValue::LongInt(i32::MIN)),
        ("u32", AMQPValue::LongUInt(u32::MAX)),
        ("i64", AMQPValue::LongLongInt(i64::MIN)),
        ("i64-max", AMQPValue::LongLongInt(i64::MAX)),
        ("f32", AMQPValue::Float(-1.25)),
        ("f64", AMQPValue::Double(6.02214076e23)),
        (
            "decimal",
            AMQPValue::DecimalValue(DecimalValue {
                scale: 3,
                value: 123_456,
            }),
        ),
        ("string", long_string("héllo, wörld")),
        ("empty-string", long_string("")),
        (
            "binary-string",
            AMQPValue::LongString(LongString::from(vec![0u8, 0xFF, 0x80, 0])),
        ),
        ("timestamp", AMQPValue::Timestamp(1_700_000_000)),
        ("table", AMQPValue::FieldTable(inner)),
        ("empty-table", AMQPValue::FieldTable(FieldTable::default())),
        ("array", AMQPValue::FieldArray(array)),
        ("empty-array", AMQPValue::FieldArray(FieldArray::default())),
        ("void", AMQPValue::Void),
        (
            "bytes",
            AMQPValue::ByteArray(ByteArray::from(vec![0u8, 1, 0xFE, 0xFF])),
        ),
    ])
}

/// 15 all 14 basic properties and a header of every field type come back exactly.
async fn s15_properties_and_headers(url: String) -> R<Outcome> {
    let q = name("15");
    let (conn, ch) = open(&url).await?;
    let sent = BasicProperties::default()
        .with_content_type("application/x-interop".into())
        .with_content_encoding("identity".into())
        .with_headers(every_field_type())
        .with_delivery_mode(2)
        .with_priority(7)
        .with_correlation_id("corr-15".into())
        .with_reply_to(name("15.replies").as_str().into())
        .with_expiration("600000".into())
        .with_message_id("msg-15".into())
        .with_timestamp(1_700_000_015)
        .with_type("interop.kind".into())
        // RabbitMQ refuses a user_id other than the login.
        .with_user_id(conn.status().username().as_str().into())
        .with_app_id("interop-rust".into())
        .with_cluster_id("cluster-15".into());
    declare_exclusive(&ch, &q).await?;
    publish_with(
        &ch,
        "",
        &q,
        BasicPublishOptions::default(),
        b"props",
        sent.clone(),
    )
    .await?;
    let got = get(&ch, &q).await?.ctx("basic.get")?;
    same("body", text(&got.delivery).as_str(), "props")?;
    compare_properties(&got.delivery.properties, &sent)?;
    delete_queue(&ch, &q).await?;
    close(conn).await?;
    Ok(Outcome::Pass)
}

/// Names the first property or header that differs.
fn compare_properties(got: &BasicProperties, want: &BasicProperties) -> R<()> {
    if got == want {
        return Ok(());
    }
    if let (Some(g), Some(w)) = (got.headers(), want.headers()) {
        compare_tables("headers", g, w)?;
    }
    macro_rules! property {
        ($($field:ident),*) => {
            $(same(stringify!($field), got.$field(), want.$field())?;)*
        };
    }
    property!(
        content_type,
        content_encoding,
        headers,
        delivery_mode,
        priority,
        correlation_id,
        reply_to,
        expiration,
        message_id,
        timestamp,
        kind,
        user_id,
        app_id,
        cluster_id
    );
    Err(format!("properties differ: got {got:?}"))
}

fn compare_tables(path: &str, got: &FieldTable, want: &FieldTable) -> R<()> {
    let keys = |t: &FieldTable| t.inner().keys().map(|k| k.to_string()).collect::<Vec<_>>();
    same(&format!("{path} keys"), keys(got), keys(want))?;
    for (k, w) in want.inner() {
        let g = got.inner().get(k).ctx(&format!("{path}.{k}"))?;
        let here = format!("{path}.{k}");
        match (g, w) {
            (AMQPValue::FieldTable(g), AMQPValue::FieldTable(w)) => compare_tables(&here, g, w)?,
            _ => same(&here, g, w)?,
        }
    }
    Ok(())
}

/// `url` with other credentials and vhost (the host and port kept).
fn as_user(url: &str, user: &str, password: &str, vhost: &str) -> R<String> {
    let rest = url.split_once("://").ctx("scheme in the URL")?.1;
    let host = rest.rsplit_once('@').map_or(rest, |(_, h)| h);
    let host = host.split(['/', '?']).next().unwrap_or(host);
    let vhost = if vhost == "/" { "%2f" } else { vhost };
    Ok(format!("amqp://{user}:{password}@{host}/{vhost}"))
}

/// 17 a non-guest user on its own vhost (interop/definitions.json, or INTEROP_USER,
/// INTEROP_PASS, INTEROP_VHOST): declare, publish, consume and ack there; the same user
/// is refused on `/` with 530 at connection.open.
async fn s17_own_user_and_vhost(url: String) -> R<Outcome> {
    let var = |name: &str, default: &str| std::env::var(name).unwrap_or_else(|_| default.into());
    let (user, password) = (
        var("INTEROP_USER", "interop"),
        var("INTEROP_PASS", "interop-pw"),
    );
    let vhost = var("INTEROP_VHOST", "interop-vh");
    let q = name("17");
    let (conn, ch) = open(&as_user(&url, &user, &password, &vhost)?).await?;
    same("vhost", conn.status().vhost().as_str(), vhost.as_str())?;
    declare_exclusive(&ch, &q).await?;
    publish(&ch, "", &q, b"own vhost").await?;
    let mut consumer = consume(&ch, &q, false).await?;
    let d = next(&mut consumer, "delivery").await?;
    same("body", text(&d), "own vhost".to_owned())?;
    step("basic.ack", d.ack(BasicAckOptions::default()))
        .await?
        .ctx("basic.ack")?;
    close(conn).await?;
    let refused = step(
        "connect to /",
        Connection::connect(
            &as_user(&url, &user, &password, "/")?,
            ConnectionProperties::default(),
        ),
    )
    .await?;
    let err = match refused {
        Ok(_) => return Err("connection.open on / accepted".into()),
        Err(e) => e,
    };
    let ErrorKind::ProtocolError(amqp) = err.kind() else {
        return Err(format!(
            "expected a connection.close from the broker, got {err}"
        ));
    };
    same("reply code", amqp.get_id(), 530)?;
    let want = format!("NOT_ALLOWED - access to vhost '/' refused for user '{user}'");
    same("reply text", amqp.get_message().as_str(), want.as_str())?;
    Ok(Outcome::Pass)
}
