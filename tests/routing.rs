//! Routing: direct, fanout, topic (`*`, `#`, empty words) and headers (x-match all / any /
//! all-with-x / any-with-x, typed values, void) exchanges deliver to exactly the queues
//! RabbitMQ 3.10 does, once per queue; unbind and queue deletion stop routing; mandatory
//! unroutable messages come back as basic.return 312 NO_ROUTE.
mod common;

use common::{table, within, TestBroker};
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, ErrorKind, ExchangeKind};

fn s(text: &str) -> AMQPValue {
    AMQPValue::LongString(text.into())
}

async fn exchange(ch: &Channel, name: &str, kind: ExchangeKind) {
    within(ch.exchange_declare(
        name.into(),
        kind,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    ))
    .await
    .unwrap();
}

async fn queue(ch: &Channel, name: &str) {
    within(ch.queue_declare(
        name.into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    ))
    .await
    .unwrap();
}

async fn bind(ch: &Channel, queue: &str, exchange: &str, key: &str, arguments: FieldTable) {
    within(ch.queue_bind(
        queue.into(),
        exchange.into(),
        key.into(),
        QueueBindOptions::default(),
        arguments,
    ))
    .await
    .unwrap_or_else(|e| panic!("bind {queue} to {exchange} with {key:?}: {e:?}"));
}

async fn unbind(ch: &Channel, queue: &str, exchange: &str, key: &str, arguments: FieldTable) {
    within(ch.queue_unbind(queue.into(), exchange.into(), key.into(), arguments))
        .await
        .unwrap();
}

/// Publishes `body` (with `headers`, when given) to `exchange` / `key`.
async fn publish(ch: &Channel, exchange: &str, key: &str, body: &str, headers: Option<FieldTable>) {
    let mut properties = BasicProperties::default();
    if let Some(headers) = headers {
        properties = properties.with_headers(headers);
    }
    within(ch.basic_publish(
        exchange.into(),
        key.into(),
        BasicPublishOptions::default(),
        body.as_bytes(),
        properties,
    ))
    .await
    .unwrap();
}

/// Every message waiting in `queue`, as text, oldest first (taken with no-ack).
async fn drain(ch: &Channel, queue: &str) -> Vec<String> {
    let mut bodies = Vec::new();
    while let Some(m) = within(ch.basic_get(queue.into(), BasicGetOptions { no_ack: true }))
        .await
        .unwrap()
    {
        bodies.push(String::from_utf8(m.delivery.data).unwrap());
    }
    bodies
}

/// Asserts what each queue received; `expected` lists the bodies per queue in order.
async fn assert_received(ch: &Channel, expected: &[(&str, &[&str])]) {
    for (queue, bodies) in expected {
        assert_eq!(drain(ch, queue).await, *bodies, "messages in {queue}");
    }
}

#[tokio::test]
async fn direct_routes_by_exact_key() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    exchange(&ch, "routing.direct", ExchangeKind::Direct).await;
    for (q, keys) in [
        ("routing.d1", &["k"][..]),
        ("routing.d2", &["k"]),
        ("routing.d3", &["a", "b"]),
    ] {
        queue(&ch, q).await;
        for key in keys {
            bind(&ch, q, "routing.direct", key, FieldTable::default()).await;
        }
    }
    for key in ["k", "a", "b", "c", "K", "k.k", ""] {
        publish(&ch, "routing.direct", key, key, None).await;
    }
    assert_received(
        &ch,
        &[
            ("routing.d1", &["k"]),
            ("routing.d2", &["k"]),
            ("routing.d3", &["a", "b"]),
        ],
    )
    .await;
    broker.stop().await;
}

#[tokio::test]
async fn fanout_routes_to_every_bound_queue_once() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    exchange(&ch, "routing.fanout", ExchangeKind::Fanout).await;
    for (q, keys) in [
        ("routing.f1", &[""][..]),
        ("routing.f2", &["x"]),
        ("routing.f3", &["a", "b"]),
    ] {
        queue(&ch, q).await;
        for key in keys {
            bind(&ch, q, "routing.fanout", key, FieldTable::default()).await;
        }
    }
    publish(&ch, "routing.fanout", "k1", "k1", None).await;
    publish(&ch, "routing.fanout", "", "empty", None).await;
    let all: &[&str] = &["k1", "empty"];
    assert_received(
        &ch,
        &[
            ("routing.f1", all),
            ("routing.f2", all),
            ("routing.f3", all),
        ],
    )
    .await;
    broker.stop().await;
}

/// Binding patterns and, for each, the published keys it receives (from RabbitMQ 3.10.8).
const TOPIC_KEYS: [&str; 14] = [
    "a.b", "a", "b", "", "a.x.b", "a.x.y.b", "a..b", "a.b.c", "x.a.y", ".", "a.", ".b", "a.b.b",
    "b.a",
];
const TOPIC_TABLE: [(&str, &[&str]); 19] = [
    ("a.b", &["a.b"]),
    ("*", &["a", "b"]),
    ("*.b", &["a.b", ".b"]),
    ("a.*", &["a.b", "a."]),
    ("a.*.b", &["a.x.b", "a..b", "a.b.b"]),
    ("#", &TOPIC_KEYS),
    (
        "a.#",
        &[
            "a.b", "a", "a.x.b", "a.x.y.b", "a..b", "a.b.c", "a.", "a.b.b",
        ],
    ),
    (
        "#.b",
        &["a.b", "b", "a.x.b", "a.x.y.b", "a..b", ".b", "a.b.b"],
    ),
    ("a.#.b", &["a.b", "a.x.b", "a.x.y.b", "a..b", "a.b.b"]),
    ("#.#", &TOPIC_KEYS),
    ("a..b", &["a..b"]),
    ("", &[""]),
    ("*.*", &["a.b", ".", "a.", ".b", "b.a"]),
    (
        "#.a.#",
        &[
            "a.b", "a", "a.x.b", "a.x.y.b", "a..b", "a.b.c", "x.a.y", "a.", "a.b.b", "b.a",
        ],
    ),
    ("a.#.#.b", &["a.b", "a.x.b", "a.x.y.b", "a..b", "a.b.b"]),
    (
        "*.#",
        &[
            "a.b", "a", "b", "a.x.b", "a.x.y.b", "a..b", "a.b.c", "x.a.y", ".", "a.", ".b",
            "a.b.b", "b.a",
        ],
    ),
    (".", &["."]),
    ("a.", &["a."]),
    (".b", &[".b"]),
];

#[tokio::test]
async fn topic_patterns_match_exactly_the_keys_rabbitmq_matches() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    exchange(&ch, "routing.topic", ExchangeKind::Topic).await;
    for (i, (pattern, _)) in TOPIC_TABLE.iter().enumerate() {
        let q = format!("routing.t{i}");
        queue(&ch, &q).await;
        bind(&ch, &q, "routing.topic", pattern, FieldTable::default()).await;
    }
    for key in TOPIC_KEYS {
        publish(&ch, "routing.topic", key, key, None).await;
    }
    for (i, (pattern, keys)) in TOPIC_TABLE.iter().enumerate() {
        assert_eq!(
            drain(&ch, &format!("routing.t{i}")).await,
            *keys,
            "pattern {pattern:?}"
        );
    }
    broker.stop().await;
}

#[tokio::test]
async fn headers_match_all_any_and_with_x_on_typed_values() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    exchange(&ch, "routing.headers", ExchangeKind::Headers).await;
    let five = || AMQPValue::LongInt(5);
    let bindings = [
        (
            "routing.h.all",
            table(&[("x-match", s("all")), ("a", five()), ("b", s("x"))]),
        ),
        (
            "routing.h.any",
            table(&[("x-match", s("any")), ("a", five()), ("b", s("x"))]),
        ),
        ("routing.h.default", table(&[("a", five())])),
        (
            "routing.h.void",
            table(&[("x-match", s("all")), ("a", AMQPValue::Void)]),
        ),
        (
            "routing.h.allx",
            table(&[("x-match", s("all-with-x")), ("x-k", s("1")), ("a", five())]),
        ),
        (
            "routing.h.anyx",
            table(&[("x-match", s("any-with-x")), ("x-k", s("1"))]),
        ),
        (
            "routing.h.anyplain",
            table(&[("x-match", s("any")), ("x-k", s("1"))]),
        ),
        ("routing.h.bool", table(&[("t", AMQPValue::Boolean(true))])),
        ("routing.h.noneall", table(&[("x-match", s("all"))])),
        ("routing.h.noneany", table(&[("x-match", s("any"))])),
    ];
    for (q, args) in &bindings {
        queue(&ch, q).await;
        bind(&ch, q, "routing.headers", "", args.clone()).await;
    }
    let messages = [
        ("a5b", Some(table(&[("a", five()), ("b", s("x"))]))),
        ("a5wide", Some(table(&[("a", AMQPValue::LongLongInt(5))]))),
        (
            "a5narrow",
            Some(table(&[("a", AMQPValue::ShortShortInt(5))])),
        ),
        ("astr", Some(table(&[("a", s("5"))]))),
        ("bonly", Some(table(&[("b", s("x"))]))),
        ("xk", Some(table(&[("x-k", s("1")), ("a", five())]))),
        ("xkonly", Some(table(&[("x-k", s("1"))]))),
        ("t1", Some(table(&[("t", AMQPValue::Boolean(true))]))),
        ("tint", Some(table(&[("t", AMQPValue::LongInt(1))]))),
        ("none", None),
    ];
    for (body, headers) in messages {
        // The routing key plays no part.
        publish(&ch, "routing.headers", "ignored", body, headers).await;
    }
    assert_received(
        &ch,
        &[
            ("routing.h.all", &["a5b"]),
            (
                "routing.h.any",
                &["a5b", "a5wide", "a5narrow", "bonly", "xk"],
            ),
            ("routing.h.default", &["a5b", "a5wide", "a5narrow", "xk"]),
            (
                "routing.h.void",
                &["a5b", "a5wide", "a5narrow", "astr", "xk"],
            ),
            ("routing.h.allx", &["xk"]),
            ("routing.h.anyx", &["xk", "xkonly"]),
            ("routing.h.anyplain", &[]),
            ("routing.h.bool", &["t1"]),
            (
                "routing.h.noneall",
                &[
                    "a5b", "a5wide", "a5narrow", "astr", "bonly", "xk", "xkonly", "t1", "tint",
                    "none",
                ],
            ),
            ("routing.h.noneany", &[]),
        ],
    )
    .await;
    broker.stop().await;
}

#[tokio::test]
async fn invalid_x_match_is_406() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let cases = [
        (s("foo"), "PRECONDITION_FAILED - Invalid x-match field value <<\"foo\">>; expected all, any, all-with-x, or any-with-x"),
        (AMQPValue::LongInt(1), "PRECONDITION_FAILED - Invalid x-match field type signedint (value 1); expected longstr"),
    ];
    for (x_match, text) in cases {
        let ch = conn.create_channel().await.unwrap();
        queue(&ch, "routing.hq").await;
        let args = table(&[("x-match", x_match), ("a", s("1"))]);
        let result = within(ch.queue_bind(
            "routing.hq".into(),
            "amq.headers".into(),
            "".into(),
            QueueBindOptions::default(),
            args,
        ))
        .await;
        match result.map_err(|e| e.kind().clone()) {
            Err(ErrorKind::ProtocolError(e)) => {
                assert_eq!((e.get_id(), e.get_message().as_str()), (406, text))
            }
            other => panic!("expected 406, got {other:?}"),
        }
        assert!(!ch.status().connected(), "the channel should be closed");
        assert!(conn.status().connected(), "the connection should survive");
    }
    broker.stop().await;
}

#[tokio::test]
async fn a_queue_matched_by_several_bindings_gets_the_message_once() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    exchange(&ch, "routing.once.direct", ExchangeKind::Direct).await;
    exchange(&ch, "routing.once.topic", ExchangeKind::Topic).await;
    exchange(&ch, "routing.once.headers", ExchangeKind::Headers).await;
    queue(&ch, "routing.once").await;
    // direct: the same key bound three times with different arguments
    for args in [
        FieldTable::default(),
        table(&[("a", AMQPValue::LongInt(1))]),
        table(&[("a", AMQPValue::LongInt(2))]),
    ] {
        bind(&ch, "routing.once", "routing.once.direct", "k", args).await;
    }
    // topic: several patterns that all match a.b, including the literal key
    for pattern in ["a.b", "a.*", "*.b", "#", "a.#.b"] {
        bind(
            &ch,
            "routing.once",
            "routing.once.topic",
            pattern,
            FieldTable::default(),
        )
        .await;
    }
    // headers: an all and an any binding that both match
    bind(
        &ch,
        "routing.once",
        "routing.once.headers",
        "",
        table(&[("x-match", s("all")), ("h", s("1"))]),
    )
    .await;
    bind(
        &ch,
        "routing.once",
        "routing.once.headers",
        "",
        table(&[("x-match", s("any")), ("h", s("1")), ("g", s("2"))]),
    )
    .await;
    publish(&ch, "routing.once.direct", "k", "direct", None).await;
    publish(&ch, "routing.once.topic", "a.b", "topic", None).await;
    publish(
        &ch,
        "routing.once.headers",
        "",
        "headers",
        Some(table(&[("h", s("1"))])),
    )
    .await;
    assert_received(&ch, &[("routing.once", &["direct", "topic", "headers"])]).await;
    broker.stop().await;
}

#[tokio::test]
async fn unbind_stops_routing() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    let h = || table(&[("x-match", s("any")), ("h", s("1"))]);
    let cases = [
        (
            "routing.u.direct",
            ExchangeKind::Direct,
            "k",
            FieldTable::default(),
        ),
        (
            "routing.u.fanout",
            ExchangeKind::Fanout,
            "",
            FieldTable::default(),
        ),
        (
            "routing.u.topic",
            ExchangeKind::Topic,
            "a.#",
            FieldTable::default(),
        ),
        ("routing.u.headers", ExchangeKind::Headers, "", h()),
    ];
    queue(&ch, "routing.u").await;
    for (x, kind, key, args) in cases {
        exchange(&ch, x, kind).await;
        bind(&ch, "routing.u", x, key, args.clone()).await;
        publish(&ch, x, "k", "before", Some(table(&[("h", s("1"))]))).await;
        // The topic binding a.# does not match k: bind a second pattern that does.
        if x == "routing.u.topic" {
            bind(&ch, "routing.u", x, "k", FieldTable::default()).await;
            publish(&ch, x, "k", "before", None).await;
            unbind(&ch, "routing.u", x, "k", FieldTable::default()).await;
        }
        unbind(&ch, "routing.u", x, key, args).await;
        publish(&ch, x, "k", "after", Some(table(&[("h", s("1"))]))).await;
        publish(&ch, x, "a.k", "after", Some(table(&[("h", s("1"))]))).await;
        assert_eq!(drain(&ch, "routing.u").await, ["before"], "{x}");
    }
    broker.stop().await;
}

#[tokio::test]
async fn deleting_a_queue_removes_its_bindings() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    let h = || table(&[("h", s("1"))]);
    let exchanges = [
        (
            "routing.q.direct",
            ExchangeKind::Direct,
            "k",
            FieldTable::default(),
        ),
        (
            "routing.q.fanout",
            ExchangeKind::Fanout,
            "",
            FieldTable::default(),
        ),
        (
            "routing.q.topic",
            ExchangeKind::Topic,
            "#",
            FieldTable::default(),
        ),
        ("routing.q.headers", ExchangeKind::Headers, "", h()),
    ];
    queue(&ch, "routing.q").await;
    for (x, kind, key, args) in &exchanges {
        exchange(&ch, x, kind.clone()).await;
        bind(&ch, "routing.q", x, key, args.clone()).await;
    }
    within(ch.queue_delete("routing.q".into(), QueueDeleteOptions::default()))
        .await
        .unwrap();
    queue(&ch, "routing.q").await;
    for (x, ..) in &exchanges {
        publish(&ch, x, "k", x, Some(h())).await;
    }
    assert_received(&ch, &[("routing.q", &[])]).await;
    broker.stop().await;
}

#[tokio::test]
async fn mandatory_unroutable_message_is_returned_with_312_no_route() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    queue(&ch, "routing.m").await;
    bind(
        &ch,
        "routing.m",
        "amq.direct",
        "routed",
        FieldTable::default(),
    )
    .await;
    let mandatory = BasicPublishOptions {
        mandatory: true,
        ..Default::default()
    };
    let properties = BasicProperties::default()
        .with_content_type("text/plain".into())
        .with_headers(table(&[("h", s("1"))]));
    let sends: [(&str, &str, BasicPublishOptions, &[u8]); 5] = [
        ("amq.direct", "nobody", mandatory, b"lost"),
        ("amq.direct", "routed", mandatory, b"kept"),
        (
            "amq.direct",
            "nobody",
            BasicPublishOptions::default(),
            b"dropped silently",
        ),
        ("", "routing.no-such-queue", mandatory, b"lost too"),
        ("amq.direct", "nobody", mandatory, b""),
    ];
    for (exchange, key, options, body) in sends {
        within(ch.basic_publish(
            exchange.into(),
            key.into(),
            options,
            body,
            properties.clone(),
        ))
        .await
        .unwrap();
    }
    // A round trip: the returns precede its reply.
    assert_eq!(drain(&ch, "routing.m").await, ["kept"]);
    // Publisher confirms are off: lapin hands over the returned messages here.
    let returned = within(ch.wait_for_confirms()).await.unwrap();
    let summary: Vec<_> = returned
        .iter()
        .map(|r| {
            (
                r.reply_code,
                r.reply_text.as_str(),
                r.delivery.exchange.as_str(),
                r.delivery.routing_key.as_str(),
                r.delivery.data.as_slice(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (312, "NO_ROUTE", "amq.direct", "nobody", &b"lost"[..]),
            (
                312,
                "NO_ROUTE",
                "",
                "routing.no-such-queue",
                &b"lost too"[..]
            ),
            (312, "NO_ROUTE", "amq.direct", "nobody", &b""[..]),
        ]
    );
    for r in &returned {
        assert_eq!(
            r.delivery.properties, properties,
            "the properties come back unchanged"
        );
    }
    assert!(ch.status().connected());
    broker.stop().await;
}
