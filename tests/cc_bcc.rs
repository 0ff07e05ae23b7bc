//! Sender-selected distribution: the CC and BCC headers add routing keys, BCC is removed
//! before delivery and storage, CC stays; wrong types are refused as RabbitMQ 3.10.8
//! refuses them; dead-lettering lists the CC keys in x-death. Expected values were taken
//! from the reference broker with the same pika calls.
mod common;

use common::{
    bind_queue, channel_close_error, declare, get_eventually, publish_with, table, within,
    TestBroker,
};
use lapin::options::*;
use lapin::types::{AMQPValue, FieldArray, FieldTable, LongString};
use lapin::{BasicProperties, Channel, ExchangeKind};

fn s(v: &str) -> AMQPValue {
    AMQPValue::LongString(v.into())
}

fn keys(list: &[&str]) -> AMQPValue {
    AMQPValue::FieldArray(FieldArray::from(
        list.iter().map(|k| s(k)).collect::<Vec<_>>(),
    ))
}

async fn exchange(ch: &Channel, name: &str, kind: ExchangeKind) {
    within(ch.exchange_declare(
        name.into(),
        kind,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    ))
    .await
    .expect("exchange.declare");
}

async fn queue(ch: &Channel, name: &str, args: FieldTable) {
    within(ch.queue_declare(name.into(), QueueDeclareOptions::default(), args))
        .await
        .expect("queue.declare");
}

async fn send(ch: &Channel, exchange: &str, key: &str, headers: FieldTable) {
    let props = BasicProperties::default().with_headers(headers);
    publish_with(ch, exchange, key, b"m", props).await;
}

/// Publishes with `headers` on a new channel of `conn` to `exchange` (key "cc.bad") and
/// checks the broker closes that channel with `code` and `text`, the connection staying.
async fn refused(
    conn: &lapin::Connection,
    exchange: &str,
    headers: FieldTable,
    code: u16,
    text: &str,
) {
    let ch = conn.create_channel().await.unwrap();
    let err = channel_close_error(&ch, async {
        ch.basic_publish(
            exchange.into(),
            "cc.bad".into(),
            BasicPublishOptions::default(),
            b"bad",
            BasicProperties::default().with_headers(headers),
        )
        .await
        .map(|_| ())
    })
    .await;
    common::assert_channel_error(conn, &ch, &err, code, text);
}

/// Messages ready in `queue`, after a round trip that follows the publishes.
async fn ready(ch: &Channel, queue: &str) -> u32 {
    common::ready(ch, queue).await
}

/// The headers of the next message in `queue` (which must hold one).
async fn headers_of(ch: &Channel, queue: &str) -> FieldTable {
    let m = get_eventually(ch, queue).await;
    m.delivery.properties.headers().clone().unwrap_or_default()
}

#[tokio::test]
async fn cc_and_bcc_route_once_to_each_queue_and_bcc_is_removed() {
    let broker = TestBroker::start().await;
    let (_c, ch) = broker.channel().await;
    exchange(&ch, "cc.d", ExchangeKind::Direct).await;
    for q in ["cc.q1", "cc.q2", "cc.q3"] {
        queue(&ch, q, FieldTable::default()).await;
    }
    bind_queue(&ch, "cc.q1", "cc.d", "k1").await;
    bind_queue(&ch, "cc.q1", "cc.d", "k2").await;
    bind_queue(&ch, "cc.q2", "cc.d", "k2").await;
    bind_queue(&ch, "cc.q3", "cc.d", "k3").await;
    let h = table(&[
        ("x", AMQPValue::LongInt(1)),
        ("CC", keys(&["k2"])),
        ("BCC", keys(&["k3"])),
    ]);
    send(&ch, "cc.d", "k1", h).await;
    for q in ["cc.q1", "cc.q2", "cc.q3"] {
        let m = get_eventually(&ch, q).await;
        assert_eq!(m.delivery.routing_key.as_str(), "k1", "routing key kept");
        let headers = m.delivery.properties.headers().clone().unwrap_or_default();
        assert_eq!(
            headers,
            table(&[("x", AMQPValue::LongInt(1)), ("CC", keys(&["k2"]))]),
            "{q}: BCC removed, CC and the rest kept"
        );
        assert_eq!(ready(&ch, q).await, 0, "{q} got it once");
    }
    // Keys are case-sensitive: a lower-case cc is just a header.
    send(&ch, "cc.d", "none", table(&[("cc", keys(&["k2"]))])).await;
    assert_eq!(ready(&ch, "cc.q2").await, 0);
    // Members that are not long strings are ignored, the others route.
    let mixed = AMQPValue::FieldArray(FieldArray::from(vec![
        AMQPValue::LongInt(1),
        s("k2"),
        keys(&["k3"]),
    ]));
    send(&ch, "cc.d", "none", table(&[("CC", mixed.clone())])).await;
    assert_eq!(headers_of(&ch, "cc.q2").await, table(&[("CC", mixed)]));
    assert_eq!(ready(&ch, "cc.q3").await, 0);
    broker.stop().await;
}

#[tokio::test]
async fn cc_works_on_the_default_topic_fanout_and_through_exchange_bindings() {
    let broker = TestBroker::start().await;
    let (_c, ch) = broker.channel().await;
    for q in ["cc.a", "cc.b", "cc.c"] {
        queue(&ch, q, FieldTable::default()).await;
    }
    // The default exchange: CC and BCC name queues.
    let h = table(&[("CC", keys(&["cc.b"])), ("BCC", keys(&["cc.c"]))]);
    send(&ch, "", "cc.a", h).await;
    for q in ["cc.a", "cc.b", "cc.c"] {
        assert_eq!(headers_of(&ch, q).await, table(&[("CC", keys(&["cc.b"]))]));
    }
    // Topic: each CC key is matched against the patterns.
    exchange(&ch, "cc.t", ExchangeKind::Topic).await;
    bind_queue(&ch, "cc.b", "cc.t", "a.*").await;
    bind_queue(&ch, "cc.a", "cc.t", "#").await;
    send(&ch, "cc.t", "zzz", table(&[("CC", keys(&["a.b", "a.c"]))])).await;
    assert_eq!(ready(&ch, "cc.b").await, 1, "two CC keys match: once");
    assert_eq!(ready(&ch, "cc.a").await, 1);
    within(ch.queue_purge("cc.a".into(), QueuePurgeOptions::default()))
        .await
        .unwrap();
    within(ch.queue_purge("cc.b".into(), QueuePurgeOptions::default()))
        .await
        .unwrap();
    // Fanout ignores keys: one copy.
    exchange(&ch, "cc.f", ExchangeKind::Fanout).await;
    bind_queue(&ch, "cc.c", "cc.f", "").await;
    send(&ch, "cc.f", "x", table(&[("CC", keys(&["y", "z"]))])).await;
    assert_eq!(ready(&ch, "cc.c").await, 1);
    within(ch.queue_purge("cc.c".into(), QueuePurgeOptions::default()))
        .await
        .unwrap();
    // Exchange-to-exchange: the keys travel on to the next exchange.
    exchange(&ch, "cc.d", ExchangeKind::Direct).await;
    exchange(&ch, "cc.e2e", ExchangeKind::Direct).await;
    bind_queue(&ch, "cc.a", "cc.d", "k1").await;
    bind_queue(&ch, "cc.b", "cc.d", "k2").await;
    within(ch.exchange_bind(
        "cc.d".into(),
        "cc.e2e".into(),
        "k9".into(),
        ExchangeBindOptions::default(),
        FieldTable::default(),
    ))
    .await
    .unwrap();
    send(&ch, "cc.e2e", "k9", table(&[("CC", keys(&["k2"]))])).await;
    send(&ch, "cc.e2e", "k1", table(&[("CC", keys(&["k9"]))])).await;
    assert_eq!(
        ready(&ch, "cc.b").await,
        1,
        "k9 reached cc.d, k2 routed there"
    );
    assert_eq!(
        ready(&ch, "cc.a").await,
        1,
        "k9 (CC) reached cc.d, k1 routed there"
    );
    broker.stop().await;
}

#[tokio::test]
async fn mandatory_returns_only_when_no_key_routes() {
    let broker = TestBroker::start().await;
    let (_c, ch) = broker.channel().await;
    exchange(&ch, "cc.m", ExchangeKind::Direct).await;
    queue(&ch, "cc.m3", FieldTable::default()).await;
    bind_queue(&ch, "cc.m3", "cc.m", "k3").await;
    let mandatory = BasicPublishOptions {
        mandatory: true,
        ..Default::default()
    };
    for (bcc, body) in [("k3", b"routed"), ("zz", b"return")] {
        within(ch.basic_publish(
            "cc.m".into(),
            "nope".into(),
            mandatory,
            body,
            BasicProperties::default().with_headers(table(&[("BCC", keys(&[bcc]))])),
        ))
        .await
        .unwrap();
    }
    assert_eq!(ready(&ch, "cc.m3").await, 1);
    let returned = within(ch.wait_for_confirms()).await.unwrap();
    assert_eq!(returned.len(), 1);
    let r = &returned[0];
    assert_eq!(
        (
            r.reply_code,
            r.reply_text.as_str(),
            r.delivery.data.as_slice()
        ),
        (312, "NO_ROUTE", &b"return"[..])
    );
    assert_eq!(
        r.delivery.properties.headers().clone(),
        Some(FieldTable::default()),
        "returned without its BCC, as RabbitMQ does (an empty table stays)"
    );
    broker.stop().await;
}

#[tokio::test]
async fn cc_or_bcc_that_is_not_an_array_closes_the_channel_with_406() {
    let broker = TestBroker::start().await;
    let (conn, ch) = broker.channel().await;
    queue(&ch, "cc.bad", FieldTable::default()).await;
    let cases = [
        ("CC", s("k2"), "longstr"),
        ("BCC", AMQPValue::LongInt(5), "signedint"),
        ("CC", AMQPValue::FieldTable(FieldTable::default()), "table"),
        ("BCC", AMQPValue::Void, "void"),
        ("CC", AMQPValue::ByteArray(vec![1u8, 2].into()), "binary"),
        ("CC", AMQPValue::Boolean(true), "bool"),
        ("BCC", AMQPValue::LongLongInt(1), "long"),
    ];
    for (name, value, atom) in cases {
        let text = format!(
            "PRECONDITION_FAILED - invalid message: {{unacceptable_type_in_header,\"{name}\",{atom}}}"
        );
        refused(&conn, "", table(&[(name, value)]), 406, &text).await;
    }
    // RabbitMQ looks the exchange up first: a missing one is the refusal.
    let text = "NOT_FOUND - no exchange 'cc.missing' in vhost '/'";
    refused(&conn, "cc.missing", table(&[("CC", s("k"))]), 404, text).await;
    // An array of anything is accepted (no key in it).
    let ints = AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::LongInt(1)]));
    send(&ch, "", "cc.bad", table(&[("CC", ints)])).await;
    assert_eq!(
        ready(&ch, "cc.bad").await,
        1,
        "nothing refused reached the queue before"
    );
    broker.stop().await;
}

#[tokio::test]
async fn hostile_cc_values_route_what_they_can_and_never_break_the_broker() {
    let broker = TestBroker::start().await;
    let (_c, ch) = broker.channel().await;
    queue(&ch, "cc.h", FieldTable::default()).await;
    // A key that is not UTF-8 cannot name a binding: ignored.
    let raw = AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::LongString(
        LongString::from(vec![0xff, 0xfe]),
    )]));
    send(&ch, "", "cc.h", table(&[("CC", raw)])).await;
    // Thousands of keys (bounded by frame_max like any header): each is looked up once.
    let many: Vec<String> = (0..5000).map(|i| format!("nobody-{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    send(&ch, "", "cc.h", table(&[("BCC", keys(&many))])).await;
    // A BCC nested deep inside arrays is no key.
    let mut deep = keys(&["cc.h"]);
    for _ in 0..50 {
        deep = AMQPValue::FieldArray(FieldArray::from(vec![deep]));
    }
    send(&ch, "", "nobody", table(&[("CC", deep)])).await;
    assert_eq!(ready(&ch, "cc.h").await, 2);
    let m = get_eventually(&ch, "cc.h").await;
    assert!(m.delivery.properties.headers().is_some());
    let m = get_eventually(&ch, "cc.h").await;
    assert_eq!(
        m.delivery.properties.headers().clone(),
        Some(FieldTable::default()),
        "the 5000-key BCC is gone"
    );
    assert!(ch.status().connected());
    broker.stop().await;
}

#[tokio::test]
async fn dead_lettering_lists_cc_keys_and_drops_cc_with_a_dead_letter_routing_key() {
    let broker = TestBroker::start().await;
    let (_c, ch) = broker.channel().await;
    exchange(&ch, "cc.dd", ExchangeKind::Direct).await;
    exchange(&ch, "cc.dlx", ExchangeKind::Direct).await;
    for q in ["cc.a", "cc.b", "cc.r"] {
        queue(&ch, q, FieldTable::default()).await;
    }
    bind_queue(&ch, "cc.a", "cc.dlx", "k1").await;
    bind_queue(&ch, "cc.b", "cc.dlx", "b").await;
    bind_queue(&ch, "cc.r", "cc.dlx", "r").await;
    queue(
        &ch,
        "cc.src",
        table(&[("x-dead-letter-exchange", s("cc.dlx"))]),
    )
    .await;
    queue(
        &ch,
        "cc.src2",
        table(&[
            ("x-dead-letter-exchange", s("cc.dlx")),
            ("x-dead-letter-routing-key", s("r")),
        ]),
    )
    .await;
    bind_queue(&ch, "cc.src", "cc.dd", "k1").await;
    bind_queue(&ch, "cc.src2", "cc.dd", "k1").await;
    let h = table(&[("CC", keys(&["b", "k1"])), ("BCC", keys(&["c"]))]);
    send(&ch, "cc.dd", "k1", h).await;
    let death_keys = |headers: &FieldTable| match headers.inner().get("x-death") {
        Some(AMQPValue::FieldArray(a)) => match a.as_slice().first() {
            Some(AMQPValue::FieldTable(t)) => t.inner().get("routing-keys").cloned(),
            _ => None,
        },
        _ => None,
    };
    // Without x-dead-letter-routing-key: routed again with its key and CC keys, CC kept.
    let m = common::get_eventually_with(&ch, "cc.src", false).await;
    m.delivery
        .reject(BasicRejectOptions { requeue: false })
        .await
        .unwrap();
    for q in ["cc.a", "cc.b"] {
        let headers = headers_of(&ch, q).await;
        assert_eq!(death_keys(&headers), Some(keys(&["k1", "b", "k1"])), "{q}");
        assert_eq!(headers.inner().get("CC"), Some(&keys(&["b", "k1"])));
        assert!(headers.inner().get("BCC").is_none());
    }
    // With it: that key alone, and the CC header is gone; x-death still lists them.
    let m = common::get_eventually_with(&ch, "cc.src2", false).await;
    m.delivery
        .reject(BasicRejectOptions { requeue: false })
        .await
        .unwrap();
    let headers = headers_of(&ch, "cc.r").await;
    assert_eq!(death_keys(&headers), Some(keys(&["k1", "b", "k1"])));
    assert!(headers.inner().get("CC").is_none());
    for q in ["cc.a", "cc.b"] {
        assert_eq!(
            ready(&ch, q).await,
            0,
            "{q}: the dead-letter routing key alone"
        );
    }
    broker.stop().await;
}

#[tokio::test]
async fn bcc_is_not_stored_and_cc_routes_survive_a_restart() {
    let broker = TestBroker::start().await;
    let (c, ch) = broker.channel().await;
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    for q in ["cc.p1", "cc.p2"] {
        declare(&ch, q, durable).await;
    }
    within(ch.confirm_select(ConfirmSelectOptions::default()))
        .await
        .unwrap();
    let props = BasicProperties::default()
        .with_delivery_mode(2)
        .with_headers(table(&[("BCC", keys(&["cc.p2"])), ("y", s("1"))]));
    within(ch.basic_publish(
        "".into(),
        "cc.p1".into(),
        BasicPublishOptions::default(),
        b"kept",
        props,
    ))
    .await
    .unwrap()
    .await
    .unwrap();
    drop(ch);
    c.close(200, "bye".into()).await.ok();
    let dir = broker.restart_later().await;
    let broker = TestBroker::start_on(dir, |c| c).await;
    let (_c, ch) = broker.channel().await;
    for q in ["cc.p1", "cc.p2"] {
        assert_eq!(
            headers_of(&ch, q).await,
            table(&[("y", s("1"))]),
            "{q}: stored without BCC"
        );
    }
    broker.stop().await;
}

#[tokio::test]
async fn the_management_api_publish_honours_cc_and_bcc_and_refuses_as_rabbitmq() {
    let broker = TestBroker::start_with_management().await;
    let (_c, ch) = broker.channel().await;
    for q in ["cc.h1", "cc.h2", "cc.h3"] {
        queue(&ch, q, FieldTable::default()).await;
    }
    let http = broker.http();
    let publish = |headers: serde_json::Value| {
        serde_json::json!({"properties": {"headers": headers}, "routing_key": "cc.h1",
                           "payload": "x", "payload_encoding": "string"})
    };
    let path = "/api/exchanges/%2F/amq.default/publish";
    let reply = http
        .post(
            path,
            &publish(serde_json::json!({"CC": ["cc.h2"], "BCC": ["cc.h3"]})),
        )
        .await;
    assert_eq!(reply.json(), serde_json::json!({"routed": true}));
    for q in ["cc.h1", "cc.h2", "cc.h3"] {
        assert_eq!(
            headers_of(&ch, q).await,
            table(&[("CC", keys(&["cc.h2"]))]),
            "{q}"
        );
    }
    let reply = http
        .post(path, &publish(serde_json::json!({"CC": "cc.h2"})))
        .await;
    assert_eq!(reply.status.as_u16(), 400);
    assert_eq!(
        reply.json(),
        serde_json::json!({"error": "bad_request",
            "reason": "406 PRECONDITION_FAILED - invalid message: {unacceptable_type_in_header,\"CC\",longstr}"})
    );
    broker.stop().await;
}
