//! The delayed-message exchange (`x-delayed-message`, RabbitMQ's community plugin):
//! routing after `x-delay` through each `x-delayed-type`, immediate routing without a
//! positive delay, the plugin's refusals and its reading of odd `x-delay` types, order,
//! routing at due time (bindings made later count), mandatory and confirms, the pending
//! count in the management API, deletion dropping what is held, restarts (graceful and
//! kill -9) with persistent held messages, delays past any cap, and many pending.
//! Delays pass on the broker's manual clock, moved by the test (`advance`): what falls
//! due has been routed when `advance` returns.
mod common;

use common::{bind_queue, publish_with, refusal, table, within, TestBroker};
use futures::StreamExt;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Consumer, ExchangeKind};
use std::time::Duration;

fn delayed_kind() -> ExchangeKind {
    ExchangeKind::Custom("x-delayed-message".into())
}

fn typed(t: &str) -> FieldTable {
    table(&[("x-delayed-type", AMQPValue::LongString(t.into()))])
}

async fn declare_delayed(ch: &Channel, name: &str, t: &str, durable: bool) {
    within(ch.exchange_declare(
        name.into(),
        delayed_kind(),
        ExchangeDeclareOptions {
            durable,
            ..Default::default()
        },
        typed(t),
    ))
    .await
    .expect("exchange.declare x-delayed-message");
}

async fn bound(ch: &Channel, queue: &str, exchange: &str, key: &str, args: FieldTable) {
    within(ch.queue_declare(
        queue.into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    ))
    .await
    .expect("queue.declare");
    within(ch.queue_bind(
        queue.into(),
        exchange.into(),
        key.into(),
        QueueBindOptions::default(),
        args,
    ))
    .await
    .expect("queue.bind");
}

async fn confirm_mode(ch: &Channel) {
    within(ch.confirm_select(ConfirmSelectOptions::default()))
        .await
        .expect("confirm.select");
}

async fn drop_exchange(ch: &Channel, name: &str) {
    within(ch.exchange_delete(name.into(), ExchangeDeleteOptions::default()))
        .await
        .expect("exchange.delete");
}

/// The body of the next message in `queue`, waiting for one.
async fn got(ch: &Channel, queue: &str) -> Vec<u8> {
    common::get_eventually(ch, queue).await.delivery.data
}

/// A broker on a manual clock.
async fn manual() -> TestBroker {
    TestBroker::start_manual(|c| c).await
}

/// The message basic.get takes from `queue` now, if any.
async fn get_now(ch: &Channel, queue: &str) -> Option<lapin::message::BasicGetMessage> {
    within(ch.basic_get(queue.into(), BasicGetOptions { no_ack: true }))
        .await
        .expect("basic.get")
}

fn with_delay(delay: Option<AMQPValue>) -> BasicProperties {
    match delay {
        Some(v) => BasicProperties::default().with_headers(table(&[("x-delay", v)])),
        None => BasicProperties::default(),
    }
}

async fn consumer(ch: &Channel, queue: &str) -> Consumer {
    within(ch.basic_consume(
        queue.into(),
        "".into(),
        BasicConsumeOptions {
            no_ack: true,
            ..Default::default()
        },
        FieldTable::default(),
    ))
    .await
    .expect("basic.consume")
}

async fn next(c: &mut Consumer) -> lapin::message::Delivery {
    within(c.next())
        .await
        .expect("consumer ended")
        .expect("delivery")
}

fn header(d: &lapin::message::Delivery, name: &str) -> Option<AMQPValue> {
    d.properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(name).cloned())
}

/// Ready messages of `queue` (passive declare).
async fn ready(ch: &Channel, queue: &str) -> u32 {
    common::ready(ch, queue).await
}

#[tokio::test]
async fn a_delayed_message_is_routed_after_its_delay_and_an_undelayed_one_at_once() {
    let broker = manual().await;
    let (_conn, ch) = broker.channel().await;
    declare_delayed(&ch, "dx", "direct", false).await;
    bound(&ch, "dq", "dx", "k", FieldTable::default()).await;
    publish_with(
        &ch,
        "dx",
        "k",
        b"later",
        with_delay(Some(AMQPValue::LongInt(300))),
    )
    .await;
    publish_with(&ch, "dx", "k", b"now", with_delay(None)).await;
    let first = get_now(&ch, "dq").await.expect("routed at once");
    assert_eq!(first.delivery.data, b"now");
    broker.advance(299).await;
    assert_eq!(ready(&ch, "dq").await, 0, "held until its delay has passed");
    broker.advance(1).await;
    let second = get_now(&ch, "dq")
        .await
        .expect("routed at its delay")
        .delivery;
    assert_eq!(second.data, b"later");
    // As the plugin does: x-delay comes out as minus the delay.
    assert_eq!(header(&second, "x-delay"), Some(AMQPValue::LongInt(-300)));
    assert_eq!(second.exchange.as_str(), "dx");
    assert_eq!(second.routing_key.as_str(), "k");
    broker.stop().await;
}

#[tokio::test]
async fn zero_negative_and_unreadable_delays_route_at_once() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare_delayed(&ch, "dx", "fanout", false).await;
    bound(&ch, "dq", "dx", "", FieldTable::default()).await;
    let immediate = [
        AMQPValue::LongInt(0),
        AMQPValue::LongInt(-5000),
        AMQPValue::LongLongInt(i64::MIN),
        AMQPValue::Boolean(true),
        AMQPValue::LongString(LongString::from("soon")),
        AMQPValue::LongString(LongString::from("-20000")),
        AMQPValue::Double(0.9),
        AMQPValue::Timestamp(60_000),
        AMQPValue::FieldTable(FieldTable::default()),
    ];
    for v in &immediate {
        publish_with(&ch, "dx", "", b"x", with_delay(Some(v.clone()))).await;
    }
    assert_eq!(ready(&ch, "dq").await, immediate.len() as u32);
    broker.stop().await;
}

#[tokio::test]
async fn delays_of_other_types_are_read_as_the_plugin_reads_them() {
    let broker = manual().await;
    let (_conn, ch) = broker.channel().await;
    declare_delayed(&ch, "dx", "fanout", false).await;
    bound(&ch, "dq", "dx", "", FieldTable::default()).await;
    // Strings as integers, floats truncated, every integer width.
    let delayed = [
        AMQPValue::LongString(LongString::from("200")),
        AMQPValue::Double(200.9),
        AMQPValue::Float(200.5),
        AMQPValue::ShortShortUInt(200),
        AMQPValue::ShortInt(200),
        AMQPValue::LongLongInt(200),
    ];
    for v in &delayed {
        publish_with(&ch, "dx", "", b"x", with_delay(Some(v.clone()))).await;
    }
    publish_with(&ch, "dx", "", b"marker", with_delay(None)).await;
    let marker = get_now(&ch, "dq").await.expect("the marker, at once");
    assert_eq!(marker.delivery.data, b"marker");
    broker.advance(199).await;
    assert_eq!(ready(&ch, "dq").await, 0, "every one is held 200 ms");
    broker.advance(1).await;
    assert_eq!(ready(&ch, "dq").await, delayed.len() as u32);
    for _ in &delayed {
        let d = get_now(&ch, "dq").await.expect("routed").delivery;
        assert_eq!(header(&d, "x-delay"), Some(AMQPValue::LongInt(-200)));
    }
    broker.stop().await;
}

#[tokio::test]
async fn each_delayed_type_routes_as_that_type() {
    let broker = manual().await;
    let (_conn, ch) = broker.channel().await;
    declare_delayed(&ch, "d-direct", "direct", false).await;
    declare_delayed(&ch, "d-fanout", "fanout", false).await;
    declare_delayed(&ch, "d-topic", "topic", false).await;
    declare_delayed(&ch, "d-headers", "headers", false).await;
    bound(&ch, "q-direct", "d-direct", "a", FieldTable::default()).await;
    bound(
        &ch,
        "q-fanout",
        "d-fanout",
        "ignored",
        FieldTable::default(),
    )
    .await;
    bound(&ch, "q-topic", "d-topic", "a.*", FieldTable::default()).await;
    let match_args = table(&[
        ("x-match", AMQPValue::LongString("all".into())),
        ("color", AMQPValue::LongString("red".into())),
    ]);
    bound(&ch, "q-headers", "d-headers", "", match_args).await;
    let delay = || AMQPValue::LongInt(100);
    publish_with(&ch, "d-direct", "a", b"hit", with_delay(Some(delay()))).await;
    publish_with(&ch, "d-direct", "b", b"miss", with_delay(Some(delay()))).await;
    publish_with(&ch, "d-fanout", "zz", b"hit", with_delay(Some(delay()))).await;
    publish_with(&ch, "d-topic", "a.b", b"hit", with_delay(Some(delay()))).await;
    publish_with(&ch, "d-topic", "b.a", b"miss", with_delay(Some(delay()))).await;
    let red = BasicProperties::default().with_headers(table(&[
        ("x-delay", delay()),
        ("color", AMQPValue::LongString("red".into())),
    ]));
    let blue = BasicProperties::default().with_headers(table(&[
        ("x-delay", delay()),
        ("color", AMQPValue::LongString("blue".into())),
    ]));
    publish_with(&ch, "d-headers", "", b"hit", red).await;
    publish_with(&ch, "d-headers", "", b"miss", blue).await;
    for q in ["q-direct", "q-fanout", "q-topic", "q-headers"] {
        assert_eq!(ready(&ch, q).await, 0, "{q} before the delay");
    }
    broker.advance(100).await;
    for q in ["q-direct", "q-fanout", "q-topic", "q-headers"] {
        let m = get_now(&ch, q).await.expect("routed when due");
        assert_eq!(m.delivery.data, b"hit", "{q}");
    }
    // The misses went nowhere (no alternate exchange).
    for q in ["q-direct", "q-fanout", "q-topic", "q-headers"] {
        assert_eq!(ready(&ch, q).await, 0, "{q} after");
    }
    broker.stop().await;
}

#[tokio::test]
async fn x_delayed_type_is_refused_as_the_plugin_refuses_it() {
    let broker = TestBroker::start().await;
    let cases: [(FieldTable, u16, &str); 5] = [
        (
            FieldTable::default(),
            406,
            "PRECONDITION_FAILED - Invalid argument, 'x-delayed-type' must be an existing exchange type",
        ),
        (
            table(&[("x-delayed-type", AMQPValue::LongInt(1))]),
            406,
            "PRECONDITION_FAILED - Invalid argument, 'x-delayed-type' must be an existing exchange type",
        ),
        (
            typed("x-delayed-message"),
            406,
            "PRECONDITION_FAILED - Invalid argument, 'x-delayed-message' can't be used for 'x-delayed-type'",
        ),
        (
            typed("foo"),
            503,
            "COMMAND_INVALID - invalid exchange type 'foo'",
        ),
        (
            typed(""),
            503,
            "COMMAND_INVALID - invalid exchange type ''",
        ),
    ];
    for (args, code, text) in cases {
        let (_conn, ch) = broker.channel().await;
        let got = refusal(
            within(ch.exchange_declare(
                "bad".into(),
                delayed_kind(),
                ExchangeDeclareOptions::default(),
                args,
            ))
            .await,
        );
        assert_eq!(got, (code, text.to_owned()));
    }
    // A plugin type may be proxied too (the plugin allows any existing type).
    let (_conn, ch) = broker.channel().await;
    declare_delayed(&ch, "random", "x-random", false).await;
    // Redeclaring with another type is refused as for any exchange.
    declare_delayed(&ch, "ok", "topic", false).await;
    let got = refusal(
        within(ch.exchange_declare(
            "ok".into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        ))
        .await,
    );
    assert_eq!(
        got,
        (
            406,
            "PRECONDITION_FAILED - inequivalent arg 'type' for exchange 'ok' in vhost '/': received 'topic' but current is 'x-delayed-message'".to_owned()
        )
    );
    broker.stop().await;
}

#[tokio::test]
async fn equal_due_times_keep_publish_order_and_earlier_due_go_first() {
    let broker = manual().await;
    let (_conn, ch) = broker.channel().await;
    declare_delayed(&ch, "dx", "fanout", false).await;
    bound(&ch, "dq", "dx", "", FieldTable::default()).await;
    let mut c = consumer(&ch, "dq").await;
    // A far one first, then a near one: the near one still comes first.
    publish_with(
        &ch,
        "dx",
        "",
        b"far",
        with_delay(Some(AMQPValue::LongInt(400))),
    )
    .await;
    for i in 0..50u32 {
        // The same x-delay on a clock that stands still: the same due millisecond.
        publish_with(
            &ch,
            "dx",
            "",
            &i.to_be_bytes(),
            with_delay(Some(AMQPValue::LongInt(100))),
        )
        .await;
    }
    // One step over both due times: they still fall due in order.
    common::synced(&ch).await;
    broker.advance(400).await;
    let mut last = None;
    for _ in 0..50 {
        let d = next(&mut c).await;
        let n = u32::from_be_bytes(d.data[..4].try_into().unwrap());
        assert!(last.is_none_or(|l| n > l), "{n} after {last:?}");
        last = Some(n);
    }
    assert_eq!(next(&mut c).await.data, b"far");
    broker.stop().await;
}

#[tokio::test]
async fn routing_happens_at_due_time_with_the_bindings_then() {
    let broker = manual().await;
    let (_conn, ch) = broker.channel().await;
    declare_delayed(&ch, "dx", "direct", false).await;
    within(ch.queue_declare(
        "late".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    ))
    .await
    .unwrap();
    publish_with(
        &ch,
        "dx",
        "k",
        b"m",
        with_delay(Some(AMQPValue::LongInt(250))),
    )
    .await;
    // Bound after the publish, before it is due: the message still gets there.
    common::synced(&ch).await;
    broker.advance(200).await;
    bind_queue(&ch, "late", "dx", "k").await;
    broker.advance(50).await;
    let m = get_now(&ch, "late").await.expect("routed when due");
    assert_eq!(m.delivery.data, b"m");
    broker.stop().await;
}

#[tokio::test]
async fn exchange_to_exchange_bindings_and_alternate_exchanges_apply_when_due() {
    let broker = manual().await;
    let (_conn, ch) = broker.channel().await;
    // fanout "front" -> delayed "dx" -> queue; unroutable at due time -> alternate "ae".
    within(ch.exchange_declare(
        "ae".into(),
        ExchangeKind::Fanout,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    ))
    .await
    .unwrap();
    bound(&ch, "ae-q", "ae", "", FieldTable::default()).await;
    let mut args = typed("direct");
    args.insert(
        "alternate-exchange".into(),
        AMQPValue::LongString("ae".into()),
    );
    within(ch.exchange_declare(
        "dx".into(),
        delayed_kind(),
        ExchangeDeclareOptions::default(),
        args,
    ))
    .await
    .unwrap();
    within(ch.exchange_declare(
        "front".into(),
        ExchangeKind::Fanout,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    ))
    .await
    .unwrap();
    within(ch.exchange_bind(
        "dx".into(),
        "front".into(),
        "".into(),
        ExchangeBindOptions::default(),
        FieldTable::default(),
    ))
    .await
    .unwrap();
    bound(&ch, "dq", "dx", "k", FieldTable::default()).await;
    publish_with(
        &ch,
        "front",
        "k",
        b"via-front",
        with_delay(Some(AMQPValue::LongInt(150))),
    )
    .await;
    publish_with(
        &ch,
        "dx",
        "nobody",
        b"to-ae",
        with_delay(Some(AMQPValue::LongInt(150))),
    )
    .await;
    // Held: the alternate exchange is not used at publish time (unlike the plugin).
    assert_eq!(ready(&ch, "ae-q").await, 0);
    broker.advance(150).await;
    assert_eq!(got(&ch, "dq").await, b"via-front");
    assert_eq!(got(&ch, "ae-q").await, b"to-ae");
    broker.stop().await;
}

#[tokio::test]
async fn a_held_mandatory_message_is_not_returned_and_is_confirmed() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    confirm_mode(&ch).await;
    declare_delayed(&ch, "dx", "direct", true).await;
    let confirm = within(ch.basic_publish(
        "dx".into(),
        "nowhere".into(),
        BasicPublishOptions {
            mandatory: true,
            ..Default::default()
        },
        b"m",
        with_delay(Some(AMQPValue::LongInt(60_000))).with_delivery_mode(2),
    ))
    .await
    .unwrap();
    let c = within(confirm).await.unwrap();
    assert!(c.is_ack());
    assert!(
        c.take_message().is_none(),
        "no basic.return for a held message"
    );
    // Undelayed and unroutable: returned as by any exchange.
    let confirm = within(ch.basic_publish(
        "dx".into(),
        "nowhere".into(),
        BasicPublishOptions {
            mandatory: true,
            ..Default::default()
        },
        b"m",
        BasicProperties::default(),
    ))
    .await
    .unwrap();
    let c = within(confirm).await.unwrap();
    let returned = c.take_message().expect("returned");
    assert_eq!(returned.reply_code, 312);
    broker.stop().await;
}

#[tokio::test]
async fn the_api_counts_held_messages_and_deleting_the_exchange_drops_them() {
    let broker = TestBroker::start_manual(common::with_management).await;
    let http = broker.http();
    let (_conn, ch) = broker.channel().await;
    declare_delayed(&ch, "dx", "direct", false).await;
    bound(&ch, "dq", "dx", "k", FieldTable::default()).await;
    for _ in 0..3 {
        publish_with(
            &ch,
            "dx",
            "k",
            b"m",
            with_delay(Some(AMQPValue::LongInt(300))),
        )
        .await;
    }
    let x = http.get("/api/exchanges/%2F/dx").await.json();
    assert_eq!(x["type"], "x-delayed-message");
    assert_eq!(x["messages_delayed"], 3);
    assert_eq!(x["arguments"]["x-delayed-type"], "direct");
    // Other exchanges have no such field.
    let direct = http.get("/api/exchanges/%2F/amq.direct").await.json();
    assert!(direct.get("messages_delayed").is_none());
    let listed = http.get("/api/exchanges/%2F").await.json();
    let row = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "dx")
        .unwrap()
        .clone();
    assert_eq!(row["messages_delayed"], 3);
    let types = http.get("/api/overview").await.json();
    assert!(types["exchange_types"]
        .as_array()
        .unwrap()
        .iter()
        .any(|t| t["name"] == "x-delayed-message"));
    // Deleted with what it held: redeclared and bound again, nothing arrives.
    drop_exchange(&ch, "dx").await;
    declare_delayed(&ch, "dx", "direct", false).await;
    bind_queue(&ch, "dq", "dx", "k").await;
    let x = http.get("/api/exchanges/%2F/dx").await.json();
    assert_eq!(x["messages_delayed"], 0);
    broker.advance(400).await;
    assert_eq!(ready(&ch, "dq").await, 0);
    broker.stop().await;
}

#[tokio::test]
async fn delays_past_any_cap_are_held() {
    let broker = TestBroker::start_with_management().await;
    let http = broker.http();
    let (_conn, ch) = broker.channel().await;
    declare_delayed(&ch, "dx", "fanout", false).await;
    bound(&ch, "dq", "dx", "", FieldTable::default()).await;
    for v in [
        AMQPValue::LongLongInt(i64::MAX),
        AMQPValue::LongUInt(u32::MAX),
        AMQPValue::Double(1e300),
        AMQPValue::LongString(LongString::from("99999999999999999999999999")),
        // Past year 9999.
        AMQPValue::LongLongInt(300_000_000_000_000),
    ] {
        publish_with(&ch, "dx", "", b"m", with_delay(Some(v))).await;
    }
    let x = http.get("/api/exchanges/%2F/dx").await.json();
    assert_eq!(x["messages_delayed"], 5);
    assert_eq!(ready(&ch, "dq").await, 0);
    broker.stop().await;
}

fn persistent_delay(ms: i32) -> BasicProperties {
    with_delay(Some(AMQPValue::LongInt(ms))).with_delivery_mode(2)
}

async fn durable_setup(ch: &Channel) {
    declare_delayed(ch, "dx", "direct", true).await;
    within(ch.queue_declare(
        "dq".into(),
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    ))
    .await
    .unwrap();
    bind_queue(ch, "dq", "dx", "k").await;
}

async fn confirmed(ch: &Channel, body: &[u8], props: BasicProperties) {
    let confirm = within(ch.basic_publish(
        "dx".into(),
        "k".into(),
        BasicPublishOptions::default(),
        body,
        props,
    ))
    .await
    .unwrap();
    assert!(within(confirm).await.unwrap().is_ack());
}

#[tokio::test]
async fn persistent_held_messages_survive_a_restart_before_they_are_due() {
    let broker = manual().await;
    let (conn, ch) = broker.channel().await;
    confirm_mode(&ch).await;
    durable_setup(&ch).await;
    confirmed(&ch, b"persistent", persistent_delay(1500)).await;
    confirmed(
        &ch,
        b"transient",
        with_delay(Some(AMQPValue::LongInt(1500))),
    )
    .await;
    drop(conn);
    // The same clock goes on across the restart, still short of the due time.
    broker.advance(1000).await;
    let broker = broker.restart().await;
    let (_conn, ch) = broker.channel().await;
    broker.advance(499).await;
    assert_eq!(ready(&ch, "dq").await, 0, "held until due");
    broker.advance(1).await;
    let m = get_now(&ch, "dq").await.expect("routed when due");
    assert_eq!(m.delivery.data, b"persistent");
    // Routed, then settled: not held again after another restart, and the transient
    // one is gone.
    let broker = broker.restart().await;
    let (_conn, ch) = broker.channel().await;
    broker.advance(2000).await;
    assert_eq!(ready(&ch, "dq").await, 0);
    broker.stop().await;
}

#[tokio::test]
async fn overdue_messages_are_routed_at_start_in_due_order() {
    let broker = manual().await;
    let (conn, ch) = broker.channel().await;
    confirm_mode(&ch).await;
    durable_setup(&ch).await;
    confirmed(&ch, b"second", persistent_delay(300)).await;
    confirmed(&ch, b"first", persistent_delay(200)).await;
    drop(conn);
    // Down while they fall due (a graceful stop does not route them).
    let clock = broker.clock.clone();
    let dir = broker.restart_later().await;
    clock
        .advance(Duration::from_millis(400))
        .await
        .expect("manual");
    let broker = TestBroker::start_on(dir, |c| warren::Config { clock, ..c }).await;
    let (_conn, ch) = broker.channel().await;
    assert_eq!(got(&ch, "dq").await, b"first");
    assert_eq!(got(&ch, "dq").await, b"second");
    broker.stop().await;
}

#[tokio::test]
async fn a_deleted_durable_exchange_leaves_nothing_to_recover() {
    let broker = manual().await;
    let (conn, ch) = broker.channel().await;
    confirm_mode(&ch).await;
    durable_setup(&ch).await;
    confirmed(&ch, b"m", persistent_delay(200)).await;
    drop_exchange(&ch, "dx").await;
    declare_delayed(&ch, "dx", "direct", true).await;
    bind_queue(&ch, "dq", "dx", "k").await;
    drop(conn);
    let broker = broker.restart().await;
    let (_conn, ch) = broker.channel().await;
    broker.advance(400).await;
    assert_eq!(ready(&ch, "dq").await, 0);
    broker.stop().await;
}

#[tokio::test]
async fn many_pending_messages_are_held_and_counted_in_memory() {
    let broker = TestBroker::start_with_management().await;
    let http = broker.http();
    let (_conn, ch) = broker.channel().await;
    declare_delayed(&ch, "dx", "fanout", false).await;
    let n = 20_000u32;
    for i in 0..n {
        let props = with_delay(Some(AMQPValue::LongLongInt(86_400_000 + i64::from(i))));
        within(ch.basic_publish(
            "dx".into(),
            "".into(),
            BasicPublishOptions::default(),
            b"0123456789abcdef",
            props,
        ))
        .await
        .unwrap();
    }
    common::wait_until("all held", || async {
        http.get("/api/exchanges/%2F/dx").await.json()["messages_delayed"] == n
    })
    .await;
    drop_exchange(&ch, "dx").await;
    broker.stop().await;
}

/// The warren binary on `dir`, and its AMQP port from the ready line.
async fn spawn_warren(dir: &std::path::Path) -> (tokio::process::Child, u16) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_warren"))
        .args(["--port", "0", "--bind", "127.0.0.1", "--log", "warn"])
        .args([
            "--management-port",
            "0",
            "--prometheus-port",
            "0",
            "--data-dir",
        ])
        .arg(dir)
        .env_remove("WARREN_DATA_DIR")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn warren");
    let port = common::ready_port(&mut child).await;
    (child, port)
}

#[tokio::test]
async fn confirmed_held_messages_survive_kill_9() {
    let dir = common::scratch_dir("delayed-kill9");
    let (mut child, port) = spawn_warren(&dir).await;
    let url = format!("amqp://guest:guest@127.0.0.1:{port}/%2f");
    let conn = within(lapin::Connection::connect(&url, Default::default()))
        .await
        .unwrap();
    let ch = within(conn.create_channel()).await.unwrap();
    confirm_mode(&ch).await;
    durable_setup(&ch).await;
    for i in 0..20u8 {
        confirmed(&ch, &[i], persistent_delay(300 + i32::from(i))).await;
    }
    child.start_kill().expect("SIGKILL");
    let _ = within(child.wait()).await;
    let (_child, port) = spawn_warren(&dir).await;
    let url = format!("amqp://guest:guest@127.0.0.1:{port}/%2f");
    let conn = within(lapin::Connection::connect(&url, Default::default()))
        .await
        .unwrap();
    let ch = within(conn.create_channel()).await.unwrap();
    for i in 0..20u8 {
        let m = common::get_eventually(&ch, "dq").await;
        assert_eq!(m.delivery.data, [i]);
    }
    drop(conn);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn past_the_memory_budget_held_messages_spill_to_disk_and_come_back_in_order() {
    // A budget the process itself already fills: every far enough message spills.
    // On the real clock: a manual clock fires due messages synchronously, so it never
    // spills them; the messages wait 2.5 s of real time here.
    let broker = TestBroker::start_with(|c| warren::Config {
        queue_memory: 1 << 20,
        ..c
    })
    .await;
    let (_conn, ch) = broker.channel().await;
    declare_delayed(&ch, "dx", "direct", false).await;
    bound(&ch, "dq", "dx", "k", FieldTable::default()).await;
    let n = 3000u32;
    let body = |i: u32| format!("message {i} {}", "x".repeat(200)).into_bytes();
    for i in 0..n {
        // Due in about 2.5 s, in publish order (a few share a millisecond).
        publish_with(
            &ch,
            "dx",
            "k",
            &body(i),
            with_delay(Some(AMQPValue::LongInt(2500))),
        )
        .await;
    }
    let spill = broker.data_dir.join("pages").join("delayed.spill");
    common::wait_until("the spill file", || async {
        std::fs::metadata(&spill).is_ok_and(|m| m.len() > 0)
    })
    .await;
    assert_eq!(ready(&ch, "dq").await, 0);
    let mut c = consumer(&ch, "dq").await;
    for i in 0..n {
        let d = next(&mut c).await;
        assert_eq!(d.data, body(i), "message {i}");
        assert_eq!(header(&d, "x-delay"), Some(AMQPValue::LongInt(-2500)));
    }
    // Nothing left in it: emptied.
    common::wait_until("the spill file emptied", || async {
        std::fs::metadata(&spill).is_ok_and(|m| m.len() == 0)
    })
    .await;
    broker.stop().await;
}
