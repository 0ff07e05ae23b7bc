//! The exchange types RabbitMQ 3.10 ships as plugins, on by default in warren:
//! `x-consistent-hash` (weights, routing key / hash-header / hash-property, the same key to
//! the same queue and to the queue RabbitMQ picks, few keys moving when a binding is added), `x-random` (every binding
//! reached), `x-recent-history` (the last N messages replayed to a new binding, the
//! no-store header, the length bound), their refusals with the reference's codes and
//! texts, wrong-typed arguments, restarts of durable ones, and the management API.
mod common;

use common::{publish_with, refusal, within, TestBroker};
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel, ExchangeKind};
use serde_json::json;
use std::collections::{HashMap, HashSet};

const CH: &str = "x-consistent-hash";
const RANDOM: &str = "x-random";
const RECENT: &str = "x-recent-history";

async fn exchange(ch: &Channel, name: &str, kind: &str, args: FieldTable) -> lapin::Result<()> {
    exchange_with(ch, name, kind, ExchangeDeclareOptions::default(), args).await
}

async fn exchange_with(
    ch: &Channel,
    name: &str,
    kind: &str,
    options: ExchangeDeclareOptions,
    args: FieldTable,
) -> lapin::Result<()> {
    within(ch.exchange_declare(
        name.into(),
        ExchangeKind::Custom(kind.into()),
        options,
        args,
    ))
    .await
}

async fn queue(ch: &Channel, name: &str, durable: bool) {
    let options = QueueDeclareOptions {
        durable,
        ..Default::default()
    };
    within(ch.queue_declare(name.into(), options, FieldTable::default()))
        .await
        .expect("queue.declare");
}

async fn bind(ch: &Channel, queue: &str, exchange: &str, key: &str) -> lapin::Result<()> {
    within(ch.queue_bind(
        queue.into(),
        exchange.into(),
        key.into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    ))
    .await
}

/// exchange.bind: messages routed by `source` also go through `destination`.
async fn bind_exchange(ch: &Channel, destination: &str, source: &str) {
    within(ch.exchange_bind(
        destination.into(),
        source.into(),
        "".into(),
        ExchangeBindOptions::default(),
        FieldTable::default(),
    ))
    .await
    .expect("exchange.bind");
}

/// Every message in `queue`, as (routing key, body), taken with basic.get.
async fn drain(ch: &Channel, queue: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    while let Some(m) = within(ch.basic_get(queue.into(), BasicGetOptions { no_ack: true }))
        .await
        .expect("basic.get")
    {
        out.push((
            m.delivery.routing_key.to_string(),
            String::from_utf8_lossy(&m.delivery.data).into_owned(),
        ));
    }
    out
}

fn args(entries: &[(&str, AMQPValue)]) -> FieldTable {
    common::table(entries)
}

fn text(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s))
}

/// Publishes one message per key and returns which of `queues` each key landed in.
async fn placement(
    ch: &Channel,
    exchange: &str,
    keys: &[String],
    queues: &[&str],
) -> HashMap<String, String> {
    for k in keys {
        publish_with(ch, exchange, k, b"", BasicProperties::default()).await;
    }
    let mut at = HashMap::new();
    for q in queues {
        for (key, _) in drain(ch, q).await {
            assert!(at.insert(key, q.to_string()).is_none(), "one queue per key");
        }
    }
    assert_eq!(at.len(), keys.len(), "every message routed exactly once");
    at
}

/// How many messages each of `queues` held (drained), smallest first.
async fn spread(ch: &Channel, queues: &[&str]) -> Vec<usize> {
    let mut counts = Vec::new();
    for q in queues {
        counts.push(drain(ch, q).await.len());
    }
    counts.sort_unstable();
    counts
}

#[tokio::test]
async fn consistent_hash_follows_weights_and_keeps_each_key_on_one_queue() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    exchange(&ch, "ch.w", CH, FieldTable::default())
        .await
        .unwrap();
    for (q, weight) in [("ch.w.a", "1"), ("ch.w.b", "3")] {
        queue(&ch, q, false).await;
        bind(&ch, q, "ch.w", weight).await.unwrap();
    }
    let keys: Vec<String> = (0..2000).map(|i| format!("order-{i}")).collect();
    let first = placement(&ch, "ch.w", &keys, &["ch.w.a", "ch.w.b"]).await;
    let on_b = first.values().filter(|q| *q == "ch.w.b").count();
    // Expected 1500 of 2000 (sd ~19): the hash is deterministic, the bound is generous.
    assert!(
        (1350..=1650).contains(&on_b),
        "{on_b} of 2000 on the weight-3 queue"
    );

    // The same keys again: each lands where it did.
    let again = placement(&ch, "ch.w", &keys, &["ch.w.a", "ch.w.b"]).await;
    assert_eq!(first, again);

    // A third binding takes about a fifth of the keys and moves no others between a and b.
    queue(&ch, "ch.w.c", false).await;
    bind(&ch, "ch.w.c", "ch.w", "1").await.unwrap();
    let grown = placement(&ch, "ch.w", &keys, &["ch.w.a", "ch.w.b", "ch.w.c"]).await;
    let moved: Vec<_> = keys.iter().filter(|k| grown[*k] != first[*k]).collect();
    assert!(moved.iter().all(|k| grown[*k] == "ch.w.c"));
    assert!(
        (250..=550).contains(&moved.len()),
        "{} keys moved",
        moved.len()
    );

    // Unbinding b sends its keys elsewhere; a's keys stay put.
    within(ch.queue_unbind(
        "ch.w.b".into(),
        "ch.w".into(),
        "3".into(),
        FieldTable::default(),
    ))
    .await
    .unwrap();
    let shrunk = placement(&ch, "ch.w", &keys, &["ch.w.a", "ch.w.b", "ch.w.c"]).await;
    assert!(shrunk.values().all(|q| q != "ch.w.b"));
    assert!(keys
        .iter()
        .filter(|k| grown[*k] == "ch.w.a")
        .all(|k| shrunk[k] == "ch.w.a"));
    broker.stop().await;
}

#[tokio::test]
async fn consistent_hash_places_keys_where_rabbitmq_does() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    exchange(&ch, "ch.pin", CH, FieldTable::default())
        .await
        .unwrap();
    let queues = ["ch.pin.0", "ch.pin.1", "ch.pin.2"];
    for (i, q) in queues.iter().enumerate() {
        queue(&ch, q, false).await;
        bind(&ch, q, "ch.pin", &(i + 1).to_string()).await.unwrap();
    }
    let keys: Vec<String> = (0..20).map(|i| format!("key-{i}")).collect();
    let at = placement(&ch, "ch.pin", &keys, &queues).await;
    // RabbitMQ 3.10.8 with the plugin, the same bindings made in the same order.
    let rabbitmq = [2, 1, 2, 1, 2, 1, 2, 2, 2, 0, 0, 2, 0, 1, 1, 1, 2, 0, 2, 2];
    for (key, expected) in keys.iter().zip(rabbitmq) {
        assert_eq!(at[key], queues[expected], "{key}");
    }
    broker.stop().await;
}

#[tokio::test]
async fn consistent_hash_on_a_header_or_a_property() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    let header = args(&[("hash-header", text("user"))]);
    exchange(&ch, "ch.h", CH, header).await.unwrap();
    let by_id = args(&[("hash-property", text("message_id"))]);
    exchange(&ch, "ch.p", CH, by_id).await.unwrap();
    let by_time = args(&[("hash-property", text("timestamp"))]);
    exchange(&ch, "ch.t", CH, by_time).await.unwrap();
    let queues = ["ch.hp.1", "ch.hp.2", "ch.hp.3"];
    for q in queues {
        queue(&ch, q, false).await;
        for x in ["ch.h", "ch.p", "ch.t"] {
            bind(&ch, q, x, "10").await.unwrap();
        }
    }
    // Five publishes per user, each with another routing key: the header decides.
    for round in 0..5 {
        for user in 0..30 {
            let headers = args(&[("user", text(&format!("u{user}")))]);
            let props = BasicProperties::default().with_headers(headers);
            let key = format!("r{round}-{user}");
            publish_with(&ch, "ch.h", &key, format!("u{user}").as_bytes(), props).await;
        }
    }
    let mut home: HashMap<String, &str> = HashMap::new();
    for q in queues {
        for (_, user) in drain(&ch, q).await {
            assert_eq!(
                *home.entry(user).or_insert(q),
                q,
                "a user's messages stay together"
            );
        }
    }
    assert_eq!(home.len(), 30);
    assert!(
        queues.iter().all(|q| home.values().any(|h| h == q)),
        "{home:?}"
    );

    // Messages without the header all go to one queue (the plugin hashes "undefined");
    // a value of another type hashes too, the same value to the same queue.
    let nested = args(&[("deep", AMQPValue::FieldTable(args(&[("x", text("y"))])))]);
    for value in [
        None,
        Some(AMQPValue::LongInt(7)),
        Some(AMQPValue::Boolean(false)),
        Some(AMQPValue::FieldTable(nested)),
    ] {
        for i in 0..20 {
            let props = match &value {
                Some(v) => BasicProperties::default().with_headers(args(&[("user", v.clone())])),
                None => BasicProperties::default(),
            };
            publish_with(&ch, "ch.h", &format!("k{i}"), b"", props).await;
        }
        assert_eq!(spread(&ch, &queues).await, [0, 0, 20], "{value:?}");
    }

    // message_id and timestamp: the same value, the same queue, whatever the key.
    for (x, props) in [
        (
            "ch.p",
            BasicProperties::default().with_message_id("id-7".into()),
        ),
        (
            "ch.t",
            BasicProperties::default().with_timestamp(1_700_000_000),
        ),
    ] {
        for i in 0..10 {
            publish_with(&ch, x, &format!("k{i}"), b"", props.clone()).await;
        }
        assert_eq!(spread(&ch, &queues).await, [0, 0, 10], "{x}");
    }
    broker.stop().await;
}

#[tokio::test]
async fn consistent_hash_refusals_match_the_plugin() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let conn = &conn;
    let fresh = || async move { within(conn.create_channel()).await.unwrap() };
    let pf = |t: &str| (406u16, format!("PRECONDITION_FAILED - {t}"));

    let both = args(&[
        ("hash-header", text("h")),
        ("hash-property", text("message_id")),
    ]);
    assert_eq!(
        refusal(exchange(&fresh().await, "ch.r1", CH, both).await),
        pf("hash-header and hash-property are mutually exclusive")
    );
    let unknown = args(&[("hash-property", text("app_id"))]);
    assert_eq!(
        refusal(exchange(&fresh().await, "ch.r2", CH, unknown).await),
        pf("Unsupported property: app_id")
    );
    // RabbitMQ 3.10 crashes on a non-string value (541, connection closed); warren says
    // what is wrong and closes the channel only.
    let number = args(&[("hash-header", AMQPValue::LongLongInt(5))]);
    assert_eq!(
        refusal(exchange(&fresh().await, "ch.r3", CH, number).await),
        pf("Invalid argument 5, 'hash-header' must be a string")
    );
    let table = args(&[(
        "hash-property",
        AMQPValue::FieldTable(FieldTable::default()),
    )]);
    assert_eq!(
        refusal(exchange(&fresh().await, "ch.r4", CH, table).await),
        pf("Invalid argument [], 'hash-property' must be a string")
    );
    assert!(conn.status().connected());

    let ch = fresh().await;
    exchange(&ch, "ch.r", CH, FieldTable::default())
        .await
        .unwrap();
    queue(&ch, "ch.r.q", false).await;
    for (key, expected) in [
        ("abc", "The binding key must be an integer: <<\"abc\">>"),
        ("1.5", "The binding key must be an integer: <<\"1.5\">>"),
        ("", "The binding key must be an integer: <<>>"),
        (" 3", "The binding key must be an integer: <<\" 3\">>"),
        ("0", "The binding key must be greater than 0"),
        ("-2", "The binding key must be greater than 0"),
        ("4294967296", "The binding key must be at most 4294967295"),
    ] {
        let ch = fresh().await;
        assert_eq!(
            refusal(bind(&ch, "ch.r.q", "ch.r", key).await),
            pf(expected),
            "{key:?}"
        );
    }
    // Erlang's list_to_integer reads a sign; the binding holds.
    bind(&ch, "ch.r.q", "ch.r", "+3").await.unwrap();
    publish_with(&ch, "ch.r", "anything", b"m", BasicProperties::default()).await;
    assert_eq!(drain(&ch, "ch.r.q").await.len(), 1);
    broker.stop().await;
}

#[tokio::test]
async fn random_reaches_every_binding_and_sends_each_message_once() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    exchange(&ch, "rnd", RANDOM, FieldTable::default())
        .await
        .unwrap();
    // Nothing bound: unroutable, as with the plugin.
    publish_with(&ch, "rnd", "k", b"", BasicProperties::default()).await;
    let queues = ["rnd.1", "rnd.2", "rnd.3"];
    for q in queues {
        queue(&ch, q, false).await;
        // The key is ignored.
        bind(&ch, q, "rnd", q).await.unwrap();
    }
    for i in 0..300 {
        publish_with(
            &ch,
            "rnd",
            "whatever",
            i.to_string().as_bytes(),
            BasicProperties::default(),
        )
        .await;
    }
    let mut seen = HashSet::new();
    for q in queues {
        let got = drain(&ch, q).await;
        // Each 1/3 of 300; zero would be a (1 - 1/3)^300 event.
        assert!(!got.is_empty(), "{q} got nothing");
        for (_, body) in got {
            assert!(seen.insert(body), "a message was delivered twice");
        }
    }
    assert_eq!(seen.len(), 300);

    // Through an exchange-to-exchange binding: the chosen binding may be an exchange.
    exchange(&ch, "rnd.fan", "fanout", FieldTable::default())
        .await
        .unwrap();
    bind_exchange(&ch, "rnd.fan", "rnd").await;
    queue(&ch, "rnd.behind", false).await;
    bind(&ch, "rnd.behind", "rnd.fan", "").await.unwrap();
    for _ in 0..200 {
        publish_with(&ch, "rnd", "k", b"", BasicProperties::default()).await;
    }
    let behind = drain(&ch, "rnd.behind").await.len();
    let mut direct = 0;
    for q in queues {
        direct += drain(&ch, q).await.len();
    }
    assert_eq!(behind + direct, 200);
    assert!(behind > 0);
    broker.stop().await;
}

#[tokio::test]
async fn recent_history_replays_the_last_messages_to_new_bindings() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    let three = args(&[("x-recent-history-length", AMQPValue::LongInt(3))]);
    exchange(&ch, "rh", RECENT, three).await.unwrap();
    for i in 0..6 {
        // Only the boolean true keeps a message out of the history.
        let props = match i {
            2 => BasicProperties::default().with_headers(args(&[(
                "x-recent-history-no-store",
                AMQPValue::Boolean(true),
            )])),
            3 => BasicProperties::default()
                .with_headers(args(&[("x-recent-history-no-store", text("true"))])),
            _ => BasicProperties::default(),
        };
        publish_with(&ch, "rh", &format!("r{i}"), i.to_string().as_bytes(), props).await;
    }
    let bodies = |got: Vec<(String, String)>| got.into_iter().map(|(_, b)| b).collect::<Vec<_>>();
    queue(&ch, "rh.q1", false).await;
    bind(&ch, "rh.q1", "rh", "ignored").await.unwrap();
    assert_eq!(bodies(drain(&ch, "rh.q1").await), ["3", "4", "5"]);
    // The same binding again is no new binding: nothing is replayed.
    bind(&ch, "rh.q1", "rh", "ignored").await.unwrap();
    assert!(drain(&ch, "rh.q1").await.is_empty());
    // Another key is another binding: replayed again.
    bind(&ch, "rh.q1", "rh", "other").await.unwrap();
    assert_eq!(bodies(drain(&ch, "rh.q1").await), ["3", "4", "5"]);

    // Live messages go to every binding, like fanout (once per queue).
    queue(&ch, "rh.q2", false).await;
    bind(&ch, "rh.q2", "rh", "").await.unwrap();
    assert_eq!(drain(&ch, "rh.q2").await.len(), 3);
    publish_with(&ch, "rh", "live", b"6", BasicProperties::default()).await;
    assert_eq!(bodies(drain(&ch, "rh.q1").await), ["6"]);
    assert_eq!(bodies(drain(&ch, "rh.q2").await), ["6"]);

    // An exchange bound to it gets the history routed on, through an internal one too.
    let internal = ExchangeDeclareOptions {
        internal: true,
        ..Default::default()
    };
    exchange_with(&ch, "rh.inner", "fanout", internal, FieldTable::default())
        .await
        .unwrap();
    queue(&ch, "rh.q3", false).await;
    bind(&ch, "rh.q3", "rh.inner", "").await.unwrap();
    bind_exchange(&ch, "rh.inner", "rh").await;
    assert_eq!(bodies(drain(&ch, "rh.q3").await), ["4", "5", "6"]);
    let routed = drain(&ch, "rh.q3").await;
    assert!(routed.is_empty());

    // The default length is 20.
    exchange(&ch, "rh.default", RECENT, FieldTable::default())
        .await
        .unwrap();
    for i in 0..25 {
        publish_with(
            &ch,
            "rh.default",
            "k",
            i.to_string().as_bytes(),
            BasicProperties::default(),
        )
        .await;
    }
    queue(&ch, "rh.q4", false).await;
    bind(&ch, "rh.q4", "rh.default", "").await.unwrap();
    let got = bodies(drain(&ch, "rh.q4").await);
    assert_eq!(got.len(), 20);
    assert_eq!(got.first().map(String::as_str), Some("5"));

    // Deleting the exchange drops its history; a new one starts empty.
    within(ch.exchange_delete("rh.default".into(), ExchangeDeleteOptions::default()))
        .await
        .unwrap();
    exchange(&ch, "rh.default", RECENT, FieldTable::default())
        .await
        .unwrap();
    bind(&ch, "rh.q4", "rh.default", "again").await.unwrap();
    assert!(drain(&ch, "rh.q4").await.is_empty());
    broker.stop().await;
}

#[tokio::test]
async fn recent_history_length_refusals_match_the_plugin() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let refused = |shown: &str| {
        (
            406u16,
            format!(
                "PRECONDITION_FAILED - Invalid argument {shown}, 'x-recent-history-length' must be a positive integer"
            ),
        )
    };
    for (value, shown) in [
        (AMQPValue::LongLongInt(0), "0"),
        (AMQPValue::LongLongInt(-1), "-1"),
        (text("abc"), "<<\"abc\">>"),
        (AMQPValue::Boolean(true), "true"),
        (
            AMQPValue::DecimalValue(lapin::types::DecimalValue {
                scale: 1,
                value: 15,
            }),
            "{1,15}",
        ),
    ] {
        let ch = within(conn.create_channel()).await.unwrap();
        let a = args(&[("x-recent-history-length", value)]);
        assert_eq!(
            refusal(exchange(&ch, "rh.bad", RECENT, a).await),
            refused(shown)
        );
    }
    // Accepted: the signed integer types, however large (the plugin sets no maximum).
    let ch = within(conn.create_channel()).await.unwrap();
    for (i, v) in [
        AMQPValue::ShortShortInt(1),
        AMQPValue::ShortInt(2),
        AMQPValue::LongLongInt(1_000_000_000_000),
    ]
    .into_iter()
    .enumerate()
    {
        let a = args(&[("x-recent-history-length", v)]);
        exchange(&ch, &format!("rh.ok{i}"), RECENT, a)
            .await
            .unwrap();
    }
    broker.stop().await;
}

#[tokio::test]
async fn durable_plugin_exchanges_survive_a_restart() {
    let broker = TestBroker::start().await;
    let (conn, ch) = broker.channel().await;
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..Default::default()
    };
    let by_header = args(&[("hash-header", text("h"))]);
    exchange_with(&ch, "d.ch", CH, durable, by_header.clone())
        .await
        .unwrap();
    exchange_with(&ch, "d.rnd", RANDOM, durable, FieldTable::default())
        .await
        .unwrap();
    exchange_with(&ch, "d.rh", RECENT, durable, FieldTable::default())
        .await
        .unwrap();
    for (q, w) in [("d.q1", "1"), ("d.q2", "2")] {
        queue(&ch, q, true).await;
        bind(&ch, q, "d.ch", w).await.unwrap();
        bind(&ch, q, "d.rnd", "").await.unwrap();
    }
    let keyed = |v: &str| BasicProperties::default().with_headers(args(&[("h", text(v))]));
    let values: Vec<String> = (0..100).map(|i| format!("v{i}")).collect();
    let mut before = HashMap::new();
    for v in &values {
        publish_with(&ch, "d.ch", "k", v.as_bytes(), keyed(v)).await;
    }
    for q in ["d.q1", "d.q2"] {
        for (_, v) in drain(&ch, q).await {
            before.insert(v, q);
        }
    }
    publish_with(&ch, "d.rh", "k", b"kept before", BasicProperties::default()).await;
    drop(ch);
    conn.close(200, "bye".into()).await.ok();

    let broker = TestBroker::start_on(broker.restart_later().await, |c| c).await;
    let (_conn, ch) = broker.channel().await;
    // The same type and arguments redeclare; another type is inequivalent.
    exchange_with(&ch, "d.ch", CH, durable, by_header)
        .await
        .unwrap();
    let (code, _) =
        refusal(exchange_with(&ch, "d.rnd", "fanout", durable, FieldTable::default()).await);
    assert_eq!(code, 406);
    let (_c, ch) = broker.channel().await;
    for v in &values {
        publish_with(&ch, "d.ch", "k", v.as_bytes(), keyed(v)).await;
    }
    for q in ["d.q1", "d.q2"] {
        for (_, v) in drain(&ch, q).await {
            assert_eq!(before[&v], q, "{v} lands where it did before the restart");
        }
    }
    publish_with(&ch, "d.rnd", "k", b"r", BasicProperties::default()).await;
    let n = drain(&ch, "d.q1").await.len() + drain(&ch, "d.q2").await.len();
    assert_eq!(n, 1);
    // The history lives in memory only, as the plugin's RAM table does.
    queue(&ch, "d.q3", false).await;
    bind(&ch, "d.q3", "d.rh", "").await.unwrap();
    assert!(drain(&ch, "d.q3").await.is_empty());
    broker.stop().await;
}

#[tokio::test]
async fn management_lists_the_types_and_definitions_carry_them() {
    let broker = TestBroker::start_with_management().await;
    let http = broker.http();
    let overview = http.get("/api/overview").await.json();
    let types: Vec<&str> = overview["exchange_types"]
        .as_array()
        .expect("exchange_types")
        .iter()
        .filter_map(|t| t["name"].as_str())
        .collect();
    for t in [CH, RANDOM, RECENT] {
        assert!(types.contains(&t), "{types:?}");
    }
    let put = http
        .put(
            "/api/exchanges/%2f/m.ch",
            &json!({"type": CH, "durable": true, "arguments": {"hash-property": "correlation_id"}}),
        )
        .await;
    assert!(put.status.is_success(), "{put:?}");
    let bad = http
        .put(
            "/api/exchanges/%2f/m.bad",
            &json!({"type": CH, "arguments": {"hash-property": "nope"}}),
        )
        .await;
    assert!(bad.status.is_client_error(), "{bad:?}");
    assert!(
        bad.text().contains("Unsupported property: nope"),
        "{}",
        bad.text()
    );
    http.put(
        "/api/exchanges/%2f/m.rh",
        &json!({"type": RECENT, "durable": true}),
    )
    .await;
    assert_eq!(http.get("/api/exchanges/%2f/m.ch").await.json()["type"], CH);
    assert_eq!(
        http.get("/api/exchanges/%2f/m.rh").await.json()["type"],
        RECENT
    );

    let (_conn, ch) = broker.channel().await;
    queue(&ch, "m.q", true).await;
    bind(&ch, "m.q", "m.ch", "5").await.unwrap();
    let defs = http.get("/api/definitions").await.json();
    let exported = defs["exchanges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["name"] == "m.ch")
        .cloned()
        .expect("m.ch exported");
    assert_eq!(exported["type"], CH);
    assert_eq!(exported["arguments"]["hash-property"], "correlation_id");

    // Deleted and imported back: it routes again, by its binding's weight.
    http.delete("/api/exchanges/%2f/m.ch").await;
    let reply = http.post("/api/definitions", &defs).await;
    assert!(reply.status.is_success(), "{reply:?}");
    let props = BasicProperties::default().with_correlation_id("c1".into());
    publish_with(&ch, "m.ch", "k", b"x", props).await;
    assert_eq!(drain(&ch, "m.q").await.len(), 1);

    // An import is checked as a declare is: refused whole, nothing created.
    let bad = json!({"exchanges": [{"name": "m.imported", "vhost": "/", "type": RECENT,
        "durable": true, "auto_delete": false, "internal": false,
        "arguments": {"x-recent-history-length": 0}}]});
    let reply = http.post("/api/definitions", &bad).await;
    assert!(reply.status.is_client_error(), "{reply:?}");
    assert!(reply
        .text()
        .contains("'x-recent-history-length' must be a positive integer"));
    assert!(http
        .get("/api/exchanges/%2f/m.imported")
        .await
        .status
        .is_client_error());
    broker.stop().await;
}
