//! Connection lifecycle as RabbitMQ 3.10 does it: connection.start, SASL (PLAIN, AMQPLAIN),
//! tune / tune-ok, connection.open, close, heartbeats, channel ids, closing channels and
//! broker shutdown. lapin where it can say it, a raw socket (amq-protocol frames) elsewhere.
mod common;

use amq_protocol::frame::AMQPFrame;
use amq_protocol::protocol::{basic, channel, connection, queue, AMQPClass};
use amq_protocol::types::AMQPValue;
use common::login::amqplain;
use common::raw::{encode, plain, Raw};
use common::{amqp_error, non_loopback_ipv4, within, TestBroker};
use lapin::options::{BasicGetOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use std::net::IpAddr;
use std::time::Duration;

/// (reply code, reply text, class id, method id) of a close method, for one assert_eq.
fn close_parts(close: &connection::Close) -> (u16, &str, u16, u16) {
    (
        close.reply_code,
        close.reply_text.as_str(),
        close.class_id,
        close.method_id,
    )
}

/// The broker still takes a new lapin connection and answers on it.
async fn assert_serves(broker: &TestBroker) {
    let (conn, ch) = within(broker.channel()).await;
    within(ch.queue_declare(
        "connection.alive".into(),
        QueueDeclareOptions::default(),
        Default::default(),
    ))
    .await
    .expect("queue.declare on a fresh connection");
    within(conn.close(200, "bye".into())).await.expect("close");
}

fn long_str(v: Option<&AMQPValue>) -> String {
    match v {
        Some(AMQPValue::LongString(s)) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        other => panic!("expected a long string, got {other:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// connection.start and SASL

#[tokio::test]
async fn lapin_connects_as_guest_and_gets_the_offered_tune_values() {
    let broker = TestBroker::start().await;
    let conn = within(broker.connect()).await;
    assert!(conn.status().connected());
    assert_eq!(conn.status().username(), "guest");
    let config = conn.configuration();
    assert_eq!(
        (config.channel_max(), config.frame_max(), config.heartbeat()),
        (2047, 131_072, 60)
    );
    within(conn.close(200, "bye".into())).await.unwrap();
    broker.stop().await;
}

#[tokio::test]
async fn connection_start_carries_rabbitmq_like_server_properties() {
    let broker = TestBroker::start().await;
    let (_raw, start) = Raw::start(broker.addr).await;
    assert_eq!((start.version_major, start.version_minor), (0, 9));
    let props = start.server_properties.inner();
    for key in ["product", "version", "platform", "copyright", "information"] {
        assert!(
            !long_str(props.get(key)).is_empty(),
            "server property {key} is empty"
        );
    }
    let Some(AMQPValue::FieldTable(caps)) = props.get("capabilities") else {
        panic!("no capabilities table in {props:?}")
    };
    for cap in [
        "publisher_confirms",
        "basic.nack",
        "consumer_cancel_notify",
        "authentication_failure_close",
        "per_consumer_qos",
    ] {
        assert_eq!(
            caps.inner().get(cap),
            Some(&AMQPValue::Boolean(true)),
            "capability {cap}"
        );
    }
    // Everything advertised is a capability RabbitMQ 3.10 advertises too, and is true.
    const RABBITMQ_CAPABILITIES: [&str; 9] = [
        "publisher_confirms",
        "exchange_exchange_bindings",
        "basic.nack",
        "consumer_cancel_notify",
        "connection.blocked",
        "consumer_priorities",
        "authentication_failure_close",
        "per_consumer_qos",
        "direct_reply_to",
    ];
    for (name, value) in caps.inner() {
        assert!(
            RABBITMQ_CAPABILITIES.contains(&name.as_str()),
            "unknown capability {name}"
        );
        assert_eq!(value, &AMQPValue::Boolean(true), "capability {name}");
    }
    // RabbitMQ's order (its registry's), whatever the configured one.
    assert_eq!(start.mechanisms.as_bytes(), b"AMQPLAIN PLAIN");
    assert_eq!(start.locales.as_bytes(), b"en_US");
    broker.stop().await;
}

#[tokio::test]
async fn wrong_password_is_refused_with_access_refused() {
    let broker = TestBroker::start().await;
    let url = format!("amqp://guest:wrong@{}/%2f", broker.addr);
    let err = within(Connection::connect(&url, ConnectionProperties::default()))
        .await
        .expect_err("login must fail");
    assert_eq!(
        amqp_error(&err),
        (
            403,
            "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. For details see the broker logfile."
                .to_owned()
        )
    );
    assert_serves(&broker).await;
    broker.stop().await;
}

#[tokio::test]
async fn wrong_password_with_authentication_failure_close_gets_close_0_0() {
    let broker = TestBroker::start().await;
    let (mut raw, _) = Raw::start(broker.addr).await;
    raw.start_ok("PLAIN", plain("guest", "wrong"), true).await;
    let close = raw.expect_connection_close().await;
    assert_eq!(
        close_parts(&close),
        (
            403,
            "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. For details see the broker logfile.",
            0,
            0
        )
    );
    raw.close_ok_then_closed().await;
    broker.stop().await;
}

/// RabbitMQ sends no close method to a client that did not announce
/// authentication_failure_close: it waits ~3 s and drops the socket.
#[tokio::test]
async fn wrong_password_without_the_capability_is_dropped_silently() {
    let broker = TestBroker::start().await;
    let (mut raw, _) = Raw::start(broker.addr).await;
    raw.start_ok("PLAIN", plain("guest", "wrong"), false).await;
    raw.expect_closed_within(Duration::from_secs(5)).await;
    broker.stop().await;
}

/// RabbitMQ: no close method, the socket is dropped after ~3 s.
#[tokio::test]
async fn unknown_sasl_mechanism_is_dropped_silently() {
    let broker = TestBroker::start().await;
    let (mut raw, _) = Raw::start(broker.addr).await;
    raw.start_ok("FOO", plain("guest", "guest"), true).await;
    raw.expect_closed_within(Duration::from_secs(5)).await;
    assert_serves(&broker).await;
    broker.stop().await;
}

#[tokio::test]
async fn amqplain_login_works() {
    let broker = TestBroker::start().await;
    let (mut raw, _) = Raw::start(broker.addr).await;
    raw.start_ok("AMQPLAIN", amqplain("guest", "guest"), true)
        .await;
    let tune = raw.expect_tune().await;
    raw.tune_ok(tune.channel_max, tune.frame_max, 0).await;
    raw.open_vhost("/").await;
    raw.expect_open_ok().await;
    raw.open_channel(1).await;

    // lapin speaks it too when asked.
    let url = format!("{}?auth_mechanism=amqplain", broker.url());
    let conn = within(Connection::connect(&url, ConnectionProperties::default()))
        .await
        .expect("AMQPLAIN login");
    within(conn.create_channel()).await.unwrap();
    // Gone before the stop: the shutdown would wait for its close-ok (3 s).
    drop(raw);
    broker.stop().await;
}

#[tokio::test]
async fn amqplain_with_a_wrong_password_is_refused() {
    let broker = TestBroker::start().await;
    let (mut raw, _) = Raw::start(broker.addr).await;
    raw.start_ok("AMQPLAIN", amqplain("guest", "wrong"), true)
        .await;
    let close = raw.expect_connection_close().await;
    assert_eq!(
        close_parts(&close),
        (
            403,
            "ACCESS_REFUSED - Login was refused using authentication mechanism AMQPLAIN. For details see the broker logfile.",
            0,
            0
        )
    );
    broker.stop().await;
}

/// The guest user may only log in over loopback (RabbitMQ's loopback_users). Needs a
/// non-loopback address on this machine; without one only the unit check runs.
#[tokio::test]
async fn guest_is_refused_from_a_non_loopback_address() {
    let broker = warren::testing::Broker::new();
    let remote: IpAddr = "192.0.2.7".parse().unwrap();
    assert_eq!(
        broker.authenticate("guest", "guest", remote),
        Err(warren::testing::LoginRefused::LoopbackOnly)
    );
    assert_eq!(
        broker.authenticate("guest", "guest", "127.0.0.1".parse().unwrap()),
        Ok(())
    );
    assert_eq!(
        broker.authenticate("guest", "guest", "::1".parse().unwrap()),
        Ok(())
    );

    let Some(ip) = non_loopback_ipv4() else {
        eprintln!("no non-loopback IPv4 address here: end-to-end part skipped");
        return;
    };
    let dir = common::scratch_dir("test-connection-remote");
    let config = warren::Config {
        bind: vec!["0.0.0.0".parse().unwrap()],
        ..warren::Config::local(&dir)
    };
    let server = warren::start(config)
        .await
        .expect("start broker on 0.0.0.0");
    let url = format!("amqp://guest:guest@{ip}:{}/%2f", server.local_addr().port());
    let err = within(Connection::connect(&url, ConnectionProperties::default()))
        .await
        .expect_err("guest from afar");
    let (code, text) = amqp_error(&err);
    assert_eq!(code, 403, "{text}");
    // RabbitMQ gives clients with authentication_failure_close (lapin is one) the same
    // "safe" text for every refused login.
    assert_eq!(text, "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. For details see the broker logfile.");
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

// ---------------------------------------------------------------------------------------
// tune, open, close

#[tokio::test]
async fn tune_offers_rabbitmq_defaults() {
    let broker = TestBroker::start().await;
    let (mut raw, _) = Raw::start(broker.addr).await;
    raw.start_ok("PLAIN", plain("guest", "guest"), true).await;
    let tune = raw.expect_tune().await;
    assert_eq!(
        (tune.channel_max, tune.frame_max, tune.heartbeat),
        (2047, 131_072, 60)
    );
    broker.stop().await;
}

#[tokio::test]
async fn the_clients_smaller_tune_values_win() {
    let broker = TestBroker::start().await;
    let url = format!("{}?frame_max=8192&heartbeat=5&channel_max=10", broker.url());
    let conn = within(Connection::connect(&url, ConnectionProperties::default()))
        .await
        .expect("connect");
    let config = conn.configuration();
    assert_eq!(
        (config.channel_max(), config.frame_max(), config.heartbeat()),
        (10, 8192, 5)
    );

    // The negotiated frame_max holds both ways: a body larger than a frame is split by
    // lapin and accepted, and comes back split by the broker.
    let ch = within(conn.create_channel()).await.unwrap();
    ch.queue_declare(
        "connection.tune".into(),
        QueueDeclareOptions::default(),
        Default::default(),
    )
    .await
    .unwrap();
    let body: Vec<u8> = (0..20_000u32).map(|i| i as u8).collect();
    within(ch.basic_publish(
        "".into(),
        "connection.tune".into(),
        BasicPublishOptions::default(),
        &body,
        BasicProperties::default(),
    ))
    .await
    .unwrap();
    let got = within(ch.basic_get("connection.tune".into(), BasicGetOptions { no_ack: true }))
        .await
        .unwrap()
        .expect("the message");
    assert_eq!(got.delivery.data, body);
    broker.stop().await;
}

/// RabbitMQ 3.10 checks tune-ok's frame_max against 4096 and, in the tuning state, drops
/// the socket after ~3 s without a close method (with or without connection.open).
#[tokio::test]
async fn tune_ok_frame_max_below_4096_is_refused() {
    let broker = TestBroker::start().await;
    let (mut raw, _) = Raw::start(broker.addr).await;
    raw.start_ok("PLAIN", plain("guest", "guest"), true).await;
    raw.expect_tune().await;
    raw.tune_ok(2047, 1024, 0).await;
    raw.open_vhost("/").await;
    raw.expect_closed_within(Duration::from_secs(5)).await;
    assert_serves(&broker).await;
    broker.stop().await;
}

#[tokio::test]
async fn open_of_an_unknown_vhost_is_not_allowed() {
    let broker = TestBroker::start().await;
    let url = format!("amqp://guest:guest@{}/nope", broker.addr);
    let err = within(Connection::connect(&url, ConnectionProperties::default()))
        .await
        .expect_err("no such vhost");
    assert_eq!(
        amqp_error(&err),
        (530, "NOT_ALLOWED - vhost nope not found".to_owned())
    );

    let (mut raw, _) = Raw::start(broker.addr).await;
    raw.start_ok("PLAIN", plain("guest", "guest"), true).await;
    raw.expect_tune().await;
    raw.tune_ok(2047, 131_072, 0).await;
    raw.open_vhost("nope").await;
    let close = raw.expect_connection_close().await;
    assert_eq!(
        close_parts(&close),
        (530, "NOT_ALLOWED - vhost nope not found", 10, 40)
    );
    raw.close_ok_then_closed().await;
    broker.stop().await;
}

#[tokio::test]
async fn client_close_is_answered_with_close_ok() {
    let broker = TestBroker::start().await;
    let mut raw = Raw::open(broker.addr).await;
    raw.open_channel(1).await;
    let close = connection::Close {
        reply_code: 200,
        reply_text: "bye".into(),
        class_id: 0,
        method_id: 0,
    };
    raw.send(
        0,
        AMQPClass::Connection(connection::AMQPMethod::Close(close)),
    )
    .await;
    match raw.method().await {
        (0, AMQPClass::Connection(connection::AMQPMethod::CloseOk(_))) => {}
        other => panic!("expected connection.close-ok, got {other:?}"),
    }

    let conn = within(broker.connect()).await;
    // lapin's close returns once close-ok arrived; its status may still say "closing"
    // for a moment, so only the exchange itself is checked.
    within(conn.close(200, "bye".into()))
        .await
        .expect("lapin close");
    broker.stop().await;
}

// ---------------------------------------------------------------------------------------
// heartbeats

/// With heartbeat=1, RabbitMQ sends a heartbeat every ~0.5 s while idle and drops a silent
/// client after ~3 s (two to three intervals), without a close method. On the broker's
/// manual clock, moved half a second at a time.
#[tokio::test]
async fn idle_server_sends_heartbeats_and_drops_a_silent_client() {
    let broker = TestBroker::start_manual(|c| c).await;
    let mut raw = Raw::open_tuned(broker.addr, 2047, 131_072, 1).await;
    // Still served two seconds in, a heartbeat each half second ...
    raw.heartbeat_after_each_step(&broker.clock, Duration::from_millis(500), 4)
        .await;
    // ... and dropped by five.
    broker.advance(3000).await;
    raw.expect_closed_within(Duration::from_secs(10)).await;
    assert_serves(&broker).await;
    broker.stop().await;
}

#[tokio::test]
async fn a_client_that_sends_heartbeats_stays_connected() {
    let broker = TestBroker::start_manual(|c| c).await;
    let mut raw = Raw::open_tuned(broker.addr, 2047, 131_072, 1).await;
    let heartbeat = encode(&AMQPFrame::Heartbeat);
    // Four seconds of clock time, the client's heartbeat each half second.
    for _ in 0..8 {
        raw.bytes(&heartbeat).await;
        raw.heartbeat_after_each_step(&broker.clock, Duration::from_millis(500), 1)
            .await;
    }
    raw.open_channel(1).await;
    drop(raw);
    broker.stop().await;
}

// ---------------------------------------------------------------------------------------
// channel ids

/// RabbitMQ's channel_max limits how many channels are open, not their numbers.
#[tokio::test]
async fn channel_ids_above_channel_max_are_accepted() {
    let broker = TestBroker::start().await;
    let mut raw = Raw::open_tuned(broker.addr, 10, 131_072, 0).await;
    raw.open_channel(11).await;
    raw.open_channel(65535).await;
    broker.stop().await;
}

#[tokio::test]
async fn opening_more_channels_than_channel_max_is_not_allowed() {
    let broker = TestBroker::start().await;
    let mut raw = Raw::open_tuned(broker.addr, 2, 131_072, 0).await;
    raw.open_channel(1).await;
    raw.open_channel(2).await;
    raw.channel_open(3).await;
    let close = raw.expect_connection_close().await;
    assert_eq!(
        close_parts(&close),
        (530, "NOT_ALLOWED - number of channels opened (2) has reached the negotiated channel_max (2)", 0, 0)
    );
    raw.close_ok_then_closed().await;
    broker.stop().await;
}

#[tokio::test]
async fn reopening_an_open_channel_is_a_channel_error() {
    let broker = TestBroker::start().await;
    let mut raw = Raw::open(broker.addr).await;
    raw.open_channel(1).await;
    raw.channel_open(1).await;
    let close = raw.expect_connection_close().await;
    assert_eq!(
        close_parts(&close),
        (504, "CHANNEL_ERROR - second 'channel.open' seen", 20, 10)
    );
    raw.close_ok_then_closed().await;
    assert_serves(&broker).await;
    broker.stop().await;
}

#[tokio::test]
async fn a_method_on_a_never_opened_channel_is_a_channel_error() {
    let broker = TestBroker::start().await;
    let mut raw = Raw::open(broker.addr).await;
    raw.queue_declare(3, "connection.never", false).await;
    let close = raw.expect_connection_close().await;
    assert_eq!(
        close_parts(&close),
        (504, "CHANNEL_ERROR - expected 'channel.open'", 50, 10)
    );
    raw.close_ok_then_closed().await;
    broker.stop().await;
}

/// After the server's channel.close, everything on that channel but close / close-ok is
/// dropped (a publish with its content, a declare); then the id can be reused.
#[tokio::test]
async fn frames_on_a_closing_channel_are_discarded_until_close_ok() {
    let broker = TestBroker::start().await;
    let mut raw = Raw::open(broker.addr).await;
    raw.open_channel(1).await;
    raw.queue_declare(1, "connection.closing", false).await;
    assert!(matches!(
        raw.method().await,
        (1, AMQPClass::Queue(queue::AMQPMethod::DeclareOk(_)))
    ));

    let ack = basic::Ack {
        delivery_tag: 99,
        multiple: false,
    };
    raw.send(1, AMQPClass::Basic(basic::AMQPMethod::Ack(ack)))
        .await;
    match raw.method().await {
        (1, AMQPClass::Channel(channel::AMQPMethod::Close(close))) => assert_eq!(
            (
                close.reply_code,
                close.reply_text.as_str(),
                close.class_id,
                close.method_id
            ),
            (406, "PRECONDITION_FAILED - unknown delivery tag 99", 60, 80)
        ),
        other => panic!("expected channel.close, got {other:?}"),
    }
    raw.publish(1, "connection.closing", b"dropped").await;
    raw.queue_declare(1, "connection.closing.dropped", false)
        .await;
    let quiet = tokio::time::timeout(Duration::from_millis(300), raw.recv()).await;
    assert!(
        quiet.is_err(),
        "the server answered on a closing channel: {quiet:?}"
    );

    raw.send(
        1,
        AMQPClass::Channel(channel::AMQPMethod::CloseOk(channel::CloseOk {})),
    )
    .await;
    raw.open_channel(1).await;
    raw.queue_declare(1, "connection.closing", true).await;
    match raw.method().await {
        (1, AMQPClass::Queue(queue::AMQPMethod::DeclareOk(ok))) => {
            assert_eq!(ok.message_count, 0, "the publish was kept")
        }
        other => panic!("expected queue.declare-ok, got {other:?}"),
    }
    raw.queue_declare(1, "connection.closing.dropped", true)
        .await;
    match raw.method().await {
        (1, AMQPClass::Channel(channel::AMQPMethod::Close(close))) => assert_eq!(
            (close.reply_code, close.reply_text.as_str()),
            (
                404,
                "NOT_FOUND - no queue 'connection.closing.dropped' in vhost '/'"
            )
        ),
        other => panic!("expected the declare made while closing to be dropped, got {other:?}"),
    }
    // Gone before the stop: the shutdown would wait for its close-ok (3 s).
    drop(raw);
    broker.stop().await;
}

// ---------------------------------------------------------------------------------------
// shutdown

#[tokio::test]
async fn shutdown_closes_connections_with_connection_forced() {
    let broker = TestBroker::start().await;
    let (conn, ch) = within(broker.channel()).await;
    let mut raw = Raw::open(broker.addr).await;
    raw.open_channel(1).await;

    let stop = tokio::spawn(broker.stop());
    let close = raw.expect_connection_close().await;
    assert_eq!(
        close_parts(&close),
        (
            320,
            "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'",
            0,
            0
        )
    );
    raw.close_ok_then_closed().await;
    within(stop).await.expect("shutdown");

    let declared = within(ch.queue_declare(
        "connection.after".into(),
        QueueDeclareOptions::default(),
        Default::default(),
    ))
    .await;
    assert!(
        declared.is_err(),
        "lapin's channel still works after shutdown"
    );
    assert!(
        !conn.status().connected(),
        "lapin still sees the connection as connected"
    );
}
