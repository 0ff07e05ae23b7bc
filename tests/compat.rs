//! Observable differences from RabbitMQ 3.10.8 found by running clients against both,
//! one test each, with the codes and texts the reference gave: argument types on
//! basic.consume and exchange.declare, the unknown exchange type's wording, basic.return
//! inside a transaction, declaring amq.rabbitmq.reply-to, the missed-heartbeat drop,
//! configurable server properties, listening on IPv6 beside IPv4, `amq.default` (no
//! alias over AMQP), a passive declare of '', access.request, and the TTL bound.

mod common;

use amq_protocol::frame::AMQPFrame;
use amq_protocol::protocol::{basic, connection, tx, AMQPClass};
use common::raw::{body_frame, header_frame, method_frame, Next, Raw};
use common::*;
use lapin::options::{BasicConsumeOptions, ExchangeDeclareOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::ExchangeKind;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

fn text(s: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(s))
}

/// basic.consume's x-priority must be an integer and x-cancel-on-ha-failover a boolean;
/// anything else closes the channel with 406 in RabbitMQ's words.
#[tokio::test]
async fn consumer_arguments_of_the_wrong_type_are_refused() {
    let broker = TestBroker::start().await;
    let refused = [
        (
            "x-priority",
            text("high"),
            "PRECONDITION_FAILED - invalid arg 'x-priority' for queue 'compat.q' in vhost '/': \"expected integer, got longstr\"",
        ),
        (
            "x-priority",
            AMQPValue::Boolean(true),
            "PRECONDITION_FAILED - invalid arg 'x-priority' for queue 'compat.q' in vhost '/': \"expected integer, got bool\"",
        ),
        (
            "x-cancel-on-ha-failover",
            text("yes"),
            "PRECONDITION_FAILED - invalid arg 'x-cancel-on-ha-failover' for queue 'compat.q' in vhost '/': {unacceptable_type,longstr}",
        ),
        (
            "x-cancel-on-ha-failover",
            AMQPValue::LongInt(1),
            "PRECONDITION_FAILED - invalid arg 'x-cancel-on-ha-failover' for queue 'compat.q' in vhost '/': {unacceptable_type,signedint}",
        ),
    ];
    let conn = broker.connect().await;
    let setup = conn.create_channel().await.expect("channel");
    declare(&setup, "compat.q", QueueDeclareOptions::default()).await;
    for (key, value, expected) in refused {
        let ch = conn.create_channel().await.expect("channel");
        let consume = ch.basic_consume(
            "compat.q".into(),
            "".into(),
            BasicConsumeOptions::default(),
            table(&[(key, value)]),
        );
        expect_channel_error(&conn, &ch, consume, 406, expected).await;
    }
    // The right types are accepted.
    for (key, value) in [
        ("x-priority", AMQPValue::LongInt(5)),
        ("x-priority", AMQPValue::ShortShortInt(-1)),
        ("x-cancel-on-ha-failover", AMQPValue::Boolean(true)),
    ] {
        let ch = conn.create_channel().await.expect("channel");
        within(ch.basic_consume(
            "compat.q".into(),
            "".into(),
            BasicConsumeOptions::default(),
            table(&[(key, value)]),
        ))
        .await
        .expect("consume with a well-typed argument");
    }
    broker.stop().await;
}

/// A new exchange's alternate-exchange must be a string.
#[tokio::test]
async fn alternate_exchange_of_the_wrong_type_is_refused() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    for (value, kind) in [
        (AMQPValue::LongInt(5), "signedint"),
        (AMQPValue::Boolean(true), "bool"),
        (AMQPValue::FieldTable(FieldTable::default()), "table"),
    ] {
        let ch = conn.create_channel().await.expect("channel");
        let declare = ch.exchange_declare(
            "compat.x".into(),
            ExchangeKind::Direct,
            ExchangeDeclareOptions::default(),
            table(&[("alternate-exchange", value)]),
        );
        let expected = format!(
            "PRECONDITION_FAILED - invalid type '{kind}' for arg 'alternate-exchange' in exchange 'compat.x' in vhost '/'"
        );
        expect_channel_error(&conn, &ch, declare, 406, &expected).await;
    }
    let ch = conn.create_channel().await.expect("channel");
    within(ch.exchange_declare(
        "compat.x".into(),
        ExchangeKind::Direct,
        ExchangeDeclareOptions::default(),
        table(&[("alternate-exchange", text("compat.missing"))]),
    ))
    .await
    .expect("a string naming a missing exchange is fine");
    broker.stop().await;
}

/// RabbitMQ says "unknown exchange type" for a name that is no Erlang atom (any made-up
/// type) and "invalid exchange type" for one that is (such as '' or 'foo').
#[tokio::test]
async fn unknown_exchange_types_are_worded_as_rabbitmq_words_them() {
    let broker = TestBroker::start().await;
    for (kind, word) in [
        ("bogus", "unknown"),
        ("x-nothing", "unknown"),
        ("", "invalid"),
    ] {
        let (conn, ch) = broker.channel().await;
        let result = within(ch.exchange_declare(
            "compat.typed".into(),
            ExchangeKind::Custom(kind.into()),
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        ))
        .await;
        assert_eq!(
            refusal(result),
            (
                503,
                format!("COMMAND_INVALID - {word} exchange type '{kind}'")
            )
        );
        assert!(!conn.status().connected(), "503 is a connection error");
    }
    broker.stop().await;
}

async fn publish_mandatory(raw: &mut Raw, routing_key: &str) {
    let publish = basic::Publish {
        exchange: "amq.direct".into(),
        routing_key: routing_key.into(),
        mandatory: true,
        ..Default::default()
    };
    let mut frames = method_frame(1, AMQPClass::Basic(basic::AMQPMethod::Publish(publish)));
    frames.extend(header_frame(1, 2));
    frames.extend(body_frame(1, b"tx"));
    raw.bytes(&frames).await;
}

/// What the server sends next on a raw socket, named.
async fn next_name(raw: &mut Raw) -> String {
    match raw.recv().await {
        Next::Frame(AMQPFrame::Method(_, AMQPClass::Basic(basic::AMQPMethod::Return(r)))) => {
            format!("return {} {}", r.reply_code, r.reply_text)
        }
        Next::Frame(AMQPFrame::Method(_, AMQPClass::Tx(tx::AMQPMethod::CommitOk(_)))) => {
            "commit-ok".into()
        }
        Next::Frame(AMQPFrame::Method(_, AMQPClass::Tx(tx::AMQPMethod::RollbackOk(_)))) => {
            "rollback-ok".into()
        }
        Next::Frame(AMQPFrame::Method(_, AMQPClass::Tx(tx::AMQPMethod::SelectOk(_)))) => {
            "select-ok".into()
        }
        Next::Frame(AMQPFrame::Header(..)) => "header".into(),
        Next::Frame(AMQPFrame::Body(..)) => "body".into(),
        other => format!("{other:?}"),
    }
}

/// In a transaction an unroutable mandatory message comes back at tx.commit, just before
/// commit-ok, and not at all after a rollback (RabbitMQ 3.10.8, observed with pika).
#[tokio::test]
async fn a_mandatory_publish_in_a_transaction_is_returned_at_commit() {
    let broker = TestBroker::start().await;
    let mut raw = Raw::open_with_channel(broker.addr, 131_072).await;
    raw.send(1, AMQPClass::Tx(tx::AMQPMethod::Select(tx::Select {})))
        .await;
    assert_eq!(next_name(&mut raw).await, "select-ok");
    publish_mandatory(&mut raw, "compat.nowhere").await;
    raw.send(1, AMQPClass::Tx(tx::AMQPMethod::Rollback(tx::Rollback {})))
        .await;
    // Nothing came back for the publish before the rollback, and nothing after.
    assert_eq!(next_name(&mut raw).await, "rollback-ok");
    publish_mandatory(&mut raw, "compat.nowhere").await;
    raw.send(1, AMQPClass::Tx(tx::AMQPMethod::Commit(tx::Commit {})))
        .await;
    let mut seen = Vec::new();
    for _ in 0..4 {
        seen.push(next_name(&mut raw).await);
    }
    assert_eq!(
        seen,
        ["return 312 NO_ROUTE", "header", "body", "commit-ok"],
        "the return goes out at commit, before commit-ok"
    );
    // Gone before the stop: the shutdown would wait for its close-ok (3 s).
    drop(raw);
    broker.stop().await;
}

/// Any queue.declare of the direct reply-to pseudo-queue, passive or not, is answered
/// with declare-ok, 0 messages and 1 consumer, as RabbitMQ 3.10.8 answers it; a name
/// under it that is no live reply queue is still a 404.
#[tokio::test]
async fn declaring_the_reply_to_pseudo_queue_answers_declare_ok() {
    let broker = TestBroker::start().await;
    let (conn, ch) = broker.channel().await;
    for options in [passive(), QueueDeclareOptions::default(), exclusive()] {
        let ok = within(ch.queue_declare(
            "amq.rabbitmq.reply-to".into(),
            options,
            FieldTable::default(),
        ))
        .await
        .expect("declare-ok");
        assert_eq!(ok.name().as_str(), "amq.rabbitmq.reply-to");
        assert_eq!((ok.message_count(), ok.consumer_count()), (0, 1));
    }
    let declare = ch.queue_declare(
        "amq.rabbitmq.reply-to.compat".into(),
        passive(),
        FieldTable::default(),
    );
    expect_channel_error(
        &conn,
        &ch,
        declare,
        404,
        "NOT_FOUND - no queue 'amq.rabbitmq.reply-to.compat' in vhost '/'",
    )
    .await;
    broker.stop().await;
}

/// RabbitMQ looks for input once per heartbeat interval and drops the client after two
/// silent looks: 3 intervals after a client goes quiet right after connection.open, with
/// a TCP reset and no close method (heartbeat 1 s, on the broker's manual clock).
#[tokio::test]
async fn a_silent_client_is_dropped_after_two_silent_intervals_with_a_reset() {
    let broker = TestBroker::start_manual(|c| c).await;
    let mut raw = Raw::open_tuned(broker.addr, 2047, 131_072, 1).await;
    // Served for two and a half seconds of silence (a heartbeat each half second) ...
    raw.heartbeat_after_each_step(&broker.clock, Duration::from_millis(500), 5)
        .await;
    // ... then dropped, with a reset.
    broker.advance(1000).await;
    let reset = raw.ended_by_reset(Duration::from_secs(10)).await;
    assert!(
        reset,
        "the socket should end with a reset, as RabbitMQ's does"
    );
    broker.stop().await;
}

/// `--server-product` and friends replace what connection.start advertises; warren's
/// own values stay the default, and the capabilities are never replaced.
#[tokio::test]
async fn server_properties_can_be_configured() {
    let broker = TestBroker::start_with(|c| warren::Config {
        server_product: Some("RabbitMQ".into()),
        server_version: Some("3.10.8".into()),
        server_platform: Some("Erlang/OTP 25.2.3".into()),
        server_properties: vec!["information=compat test".into()],
        ..c
    })
    .await;
    let (_raw, start) = Raw::start(broker.addr).await;
    let props = start.server_properties.inner();
    for (key, value) in [
        ("product", "RabbitMQ"),
        ("version", "3.10.8"),
        ("platform", "Erlang/OTP 25.2.3"),
        ("information", "compat test"),
        ("cluster_name", "warren"),
    ] {
        assert_eq!(props.get(key), Some(&text(value)), "{key}");
    }
    assert!(matches!(
        props.get("capabilities"),
        Some(AMQPValue::FieldTable(caps)) if caps.inner().contains_key("publisher_confirms")
    ));
    broker.stop().await;

    let plain = TestBroker::start().await;
    let (_raw, start) = Raw::start(plain.addr).await;
    assert_eq!(
        start.server_properties.inner().get("product"),
        Some(&text("warren"))
    );
    plain.stop().await;

    // Refused before anything is opened: a start with them fails.
    let dir = std::env::temp_dir().join(format!("warren-compat-props-{}", std::process::id()));
    let mut config = warren::Config::local(&dir);
    config.server_properties = vec!["capabilities=none".into()];
    let refused = warren::start(config).await.err().expect("refused");
    assert_eq!(refused.kind(), std::io::ErrorKind::InvalidInput);
    let _ = std::fs::remove_dir_all(dir);
}

fn has_ipv6() -> bool {
    std::net::TcpListener::bind("[::1]:0").is_ok()
}

/// A full handshake and a channel over `addr` (the socket is dropped after).
async fn amqp_open_over(addr: SocketAddr) {
    Raw::open_with_channel(addr, 131_072).await;
}

/// With no --bind, warren listens as RabbitMQ does: IPv4 and IPv6 (where the machine has
/// it), so a client resolving localhost to ::1 gets in.
#[tokio::test]
async fn the_default_listens_on_ipv4_and_ipv6() {
    let broker = TestBroker::start_with(|c| warren::Config {
        bind: Vec::new(),
        management_port: warren::ListenerPort::On(0),
        ..c
    })
    .await;
    let port = broker.addr.port();
    amqp_open_over(SocketAddr::from(([127, 0, 0, 1], port))).await;
    if has_ipv6() {
        amqp_open_over(SocketAddr::new(
            IpAddr::from([0u16, 0, 0, 0, 0, 0, 0, 1]),
            port,
        ))
        .await;
        let api = broker
            .server
            .management_addr()
            .expect("management on")
            .port();
        let ok = tokio::net::TcpStream::connect(("::1", api)).await;
        assert!(ok.is_ok(), "the management API takes IPv6 clients too");
    }
    broker.stop().await;
}

/// --bind is repeatable: loopback over IPv4 and IPv6 share one port.
#[tokio::test]
async fn several_bind_addresses_share_the_port() {
    if !has_ipv6() {
        return;
    }
    let v6: IpAddr = "::1".parse().expect("ip");
    let broker = TestBroker::start_with(|c| warren::Config {
        bind: vec![IpAddr::from([127, 0, 0, 1]), v6],
        ..c
    })
    .await;
    let port = broker.addr.port();
    assert_eq!(broker.addr.ip(), IpAddr::from([127, 0, 0, 1]));
    amqp_open_over(SocketAddr::new(v6, port)).await;
    amqp_open_over(broker.addr).await;
    // A guest from ::1 is on loopback; the peer it shows is written plainly.
    let (_conn, _ch) = broker.channel().await;
    broker.stop().await;
}

/// Over AMQP, RabbitMQ 3.10.8 knows no `amq.default` alias of the default exchange
/// (only its HTTP API uses that name): a publish or bind to it is a 404, a declare a
/// reserved-prefix 403, a delete a system-exchange 403.
#[tokio::test]
async fn amq_default_is_no_alias_over_amqp() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = conn.create_channel().await.expect("channel");
    let err = channel_close_error(&ch, async {
        ch.basic_publish(
            "amq.default".into(),
            "compat.q".into(),
            Default::default(),
            b"x",
            Default::default(),
        )
        .await
        .map(|_| ())
    })
    .await;
    assert_eq!(
        amqp_error(&err),
        (
            404,
            "NOT_FOUND - no exchange 'amq.default' in vhost '/'".to_owned()
        )
    );
    let ch = conn.create_channel().await.expect("channel");
    let passive = ch.exchange_declare(
        "amq.default".into(),
        ExchangeKind::Direct,
        ExchangeDeclareOptions {
            passive: true,
            ..Default::default()
        },
        FieldTable::default(),
    );
    let text = "NOT_FOUND - no exchange 'amq.default' in vhost '/'";
    expect_channel_error(&conn, &ch, passive, 404, text).await;
    let ch = conn.create_channel().await.expect("channel");
    let active = ch.exchange_declare(
        "amq.default".into(),
        ExchangeKind::Direct,
        ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    );
    let text = "ACCESS_REFUSED - exchange name 'amq.default' contains reserved prefix 'amq.*'";
    expect_channel_error(&conn, &ch, active, 403, text).await;
    let ch = conn.create_channel().await.expect("channel");
    let delete = ch.exchange_delete("amq.default".into(), Default::default());
    let text =
        "ACCESS_REFUSED - deletion of system exchange 'amq.default' in vhost '/' not allowed";
    expect_channel_error(&conn, &ch, delete, 403, text).await;
    let ch = conn.create_channel().await.expect("channel");
    declare(&ch, "compat.bound", exclusive()).await;
    let bind = ch.queue_bind(
        "compat.bound".into(),
        "amq.default".into(),
        "k".into(),
        Default::default(),
        FieldTable::default(),
    );
    let text = "NOT_FOUND - no exchange 'amq.default' in vhost '/'";
    expect_channel_error(&conn, &ch, bind, 404, text).await;
    broker.stop().await;
}

/// A passive declare of '' is a 404 for the queue '', even after a queue was declared on
/// the channel (other methods with '' still mean the last one).
#[tokio::test]
async fn a_passive_declare_of_the_empty_name_is_not_the_last_queue() {
    let broker = TestBroker::start().await;
    let (conn, ch) = broker.channel().await;
    declare(&ch, "compat.last", exclusive()).await;
    let passive = ch.queue_declare("".into(), passive(), FieldTable::default());
    expect_channel_error(
        &conn,
        &ch,
        passive,
        404,
        "NOT_FOUND - no queue '' in vhost '/'",
    )
    .await;
    broker.stop().await;
}

/// The deprecated access.request is answered with request-ok, as RabbitMQ does.
#[tokio::test]
async fn access_request_is_answered() {
    use amq_protocol::protocol::access;
    let broker = TestBroker::start().await;
    let mut raw = Raw::open_with_channel(broker.addr, 131_072).await;
    let request = access::Request {
        realm: "/data".into(),
        exclusive: false,
        passive: false,
        active: true,
        write: false,
        read: true,
    };
    raw.send(1, AMQPClass::Access(access::AMQPMethod::Request(request)))
        .await;
    assert!(matches!(
        raw.method().await,
        (1, AMQPClass::Access(access::AMQPMethod::RequestOk(_)))
    ));
    raw.open_channel(2).await;
    // Gone before the stop: the shutdown would wait for its close-ok (3 s).
    drop(raw);
    broker.stop().await;
}

/// x-message-ttl and x-expires stop at ten years (315360000000 ms), as in RabbitMQ.
#[tokio::test]
async fn ttl_and_expiry_arguments_are_bounded() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    for key in ["x-message-ttl", "x-expires"] {
        let ch = conn.create_channel().await.expect("channel");
        let name = format!("compat.{key}");
        let args = table(&[(key, AMQPValue::LongLongInt(315_360_000_000))]);
        within(ch.queue_declare(name.as_str().into(), exclusive(), args))
            .await
            .expect("ten years is accepted");
        let args = table(&[(key, AMQPValue::LongLongInt(315_360_000_001))]);
        let declare = ch.queue_declare("compat.too-long".into(), exclusive(), args);
        let text = format!(
            "PRECONDITION_FAILED - invalid arg '{key}' for queue 'compat.too-long' in vhost '/': {{value_too_large,315360000001}}"
        );
        expect_channel_error(&conn, &ch, declare, 406, &text).await;
    }
    broker.stop().await;
}

/// RabbitMQ strips CR and LF from the names of declare, delete, bind and unbind (not of
/// publish, consume or get): "compat\nx" declares "compatx".
#[tokio::test]
async fn declare_delete_and_bind_strip_cr_and_lf_from_names() {
    let broker = TestBroker::start().await;
    let (conn, ch) = broker.channel().await;
    within(ch.exchange_declare(
        "compat\nx".into(),
        ExchangeKind::Direct,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    ))
    .await
    .expect("declared");
    declare(&ch, "compat\r\nq", QueueDeclareOptions::default()).await;
    let ok = within(ch.queue_declare("compatq".into(), passive(), FieldTable::default()))
        .await
        .expect("the queue is named without CR/LF");
    assert_eq!(ok.name().as_str(), "compatq");
    within(ch.queue_bind(
        "compat\nq".into(),
        "compat\nx".into(),
        "k".into(),
        Default::default(),
        FieldTable::default(),
    ))
    .await
    .expect("bound through the stripped names");
    publish(&ch, "compatx", "k", b"routed").await;
    assert_eq!(ready(&ch, "compatq").await, 1);
    // Consume does not strip: "compat\nq" is another (missing) queue there.
    let consume = ch.basic_consume(
        "compat\nq".into(),
        "".into(),
        BasicConsumeOptions::default(),
        FieldTable::default(),
    );
    expect_channel_error(
        &conn,
        &ch,
        consume,
        404,
        "NOT_FOUND - no queue 'compat\nq' in vhost '/'",
    )
    .await;
    let ch = conn.create_channel().await.expect("channel");
    within(ch.queue_delete("compat\nq".into(), Default::default()))
        .await
        .expect("deleted");
    within(ch.exchange_delete("compat\nx".into(), Default::default()))
        .await
        .expect("deleted");
    assert!(!queue_exists(&conn, "compatq").await);
    broker.stop().await;
}

/// connection.start's cluster_name is the cluster name parameter once one is set (as
/// RabbitMQ advertises its cluster's name), "warren" before.
#[tokio::test]
async fn the_advertised_cluster_name_follows_the_parameter() {
    let broker = TestBroker::start_with_management().await;
    let cluster_name =
        |start: connection::Start| start.server_properties.inner().get("cluster_name").cloned();
    let (_raw, start) = Raw::start(broker.addr).await;
    assert_eq!(cluster_name(start), Some(text("warren")));
    let reply = broker
        .http()
        .put(
            "/api/cluster-name",
            &serde_json::json!({"name": "compat-cluster"}),
        )
        .await;
    assert_eq!(reply.status, 204);
    let (_raw, start) = Raw::start(broker.addr).await;
    assert_eq!(cluster_name(start), Some(text("compat-cluster")));
    broker.stop().await;
}
