//! Limits. Queue length limits: x-max-length, x-max-length-bytes, x-overflow drop-head
//! and reject-publish (a refused publish is nacked to a confirming publisher). And the
//! broker's limits as RabbitMQ 3.10 has them, each refusal with its code and text:
//! `--max-connections` (further clients wait unanswered), vhost limits max-connections
//! and max-queues (from the definitions file, kept across restarts; malformed ones refused
//! whole, as RabbitMQ refuses them), channel_max in
//! tune-ok, `--max-message-size`.
mod common;

use amq_protocol::protocol::{connection, AMQPClass};
use common::raw::{plain, Raw, PROTOCOL_HEADER};
use common::{expect_channel_error, table, within, TestBroker};
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::BasicProperties;
use lapin::Confirmation;
use std::path::PathBuf;
use std::time::Duration;

async fn bodies(ch: &lapin::Channel, q: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while let Some(m) = within(ch.basic_get(q.into(), BasicGetOptions { no_ack: true }))
        .await
        .unwrap()
    {
        out.push(m.delivery.data);
    }
    out
}

async fn publish(ch: &lapin::Channel, q: &str, body: &[u8]) -> Confirmation {
    within(async {
        ch.basic_publish(
            "".into(),
            q.into(),
            BasicPublishOptions::default(),
            body,
            BasicProperties::default(),
        )
        .await
        .unwrap()
        .await
        .unwrap()
    })
    .await
}

#[tokio::test]
async fn max_length_drops_the_oldest_messages() {
    let broker = TestBroker::start().await;
    let (_c, ch) = broker.channel().await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    ch.queue_declare(
        "len".into(),
        QueueDeclareOptions::default(),
        table(&[("x-max-length", AMQPValue::LongInt(3))]),
    )
    .await
    .unwrap();
    for b in [b"1", b"2", b"3", b"4", b"5"] {
        assert!(publish(&ch, "len", b).await.is_ack());
    }
    assert_eq!(
        bodies(&ch, "len").await,
        vec![b"3".to_vec(), b"4".to_vec(), b"5".to_vec()]
    );
    broker.stop().await;
}

#[tokio::test]
async fn max_length_bytes_counts_bodies() {
    let broker = TestBroker::start().await;
    let (_c, ch) = broker.channel().await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let a = table(&[("x-max-length-bytes", AMQPValue::LongInt(10))]);
    ch.queue_declare("bytes".into(), QueueDeclareOptions::default(), a)
        .await
        .unwrap();
    for b in [b"aaaa", b"bbbb", b"cccc", b"dddd"] {
        publish(&ch, "bytes", b).await;
    }
    assert_eq!(
        bodies(&ch, "bytes").await,
        vec![b"cccc".to_vec(), b"dddd".to_vec()]
    );
    broker.stop().await;
}

#[tokio::test]
async fn reject_publish_nacks_what_does_not_fit() {
    let broker = TestBroker::start().await;
    let (_c, ch) = broker.channel().await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let a = table(&[
        ("x-max-length", AMQPValue::LongInt(2)),
        ("x-overflow", AMQPValue::LongString("reject-publish".into())),
    ]);
    ch.queue_declare("full".into(), QueueDeclareOptions::default(), a)
        .await
        .unwrap();
    assert!(publish(&ch, "full", b"1").await.is_ack());
    assert!(publish(&ch, "full", b"2").await.is_ack());
    assert!(
        publish(&ch, "full", b"3").await.is_nack(),
        "the queue is full"
    );
    assert_eq!(
        bodies(&ch, "full").await,
        vec![b"1".to_vec(), b"2".to_vec()]
    );
    assert!(publish(&ch, "full", b"4").await.is_ack(), "room again");
    broker.stop().await;
}

#[tokio::test]
async fn reject_publish_dlx_nacks_and_dead_letters_what_does_not_fit() {
    let broker = TestBroker::start().await;
    let (_c, ch) = broker.channel().await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    ch.queue_declare(
        "refused".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let a = table(&[
        ("x-max-length", AMQPValue::LongInt(1)),
        (
            "x-overflow",
            AMQPValue::LongString("reject-publish-dlx".into()),
        ),
        ("x-dead-letter-exchange", AMQPValue::LongString("".into())),
        (
            "x-dead-letter-routing-key",
            AMQPValue::LongString("refused".into()),
        ),
    ]);
    ch.queue_declare("full-dlx".into(), QueueDeclareOptions::default(), a)
        .await
        .unwrap();
    assert!(publish(&ch, "full-dlx", b"1").await.is_ack());
    assert!(
        publish(&ch, "full-dlx", b"2").await.is_nack(),
        "the queue is full"
    );
    assert_eq!(bodies(&ch, "full-dlx").await, vec![b"1".to_vec()]);
    let dead = common::get_eventually(&ch, "refused").await;
    assert_eq!(dead.delivery.data, b"2");
    let headers = dead
        .delivery
        .properties
        .headers()
        .clone()
        .unwrap_or_default();
    let Some(AMQPValue::FieldArray(deaths)) = headers.inner().get("x-death") else {
        panic!("x-death missing: {headers:?}");
    };
    let Some(AMQPValue::FieldTable(first)) = deaths.as_slice().first() else {
        panic!("x-death empty");
    };
    assert_eq!(
        first.inner().get("reason"),
        Some(&AMQPValue::LongString("maxlen".into()))
    );
    broker.stop().await;
}

#[tokio::test]
async fn max_priority_serves_higher_priorities_first_fifo_within_one() {
    let broker = TestBroker::start().await;
    let (_c, ch) = broker.channel().await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let a = table(&[("x-max-priority", AMQPValue::ShortShortUInt(5))]);
    ch.queue_declare("prio".into(), QueueDeclareOptions::default(), a)
        .await
        .unwrap();
    for (body, priority) in [
        (b"p1a", Some(1)),
        (b"p9a", Some(9)),
        (b"p0a", None),
        (b"p5a", Some(5)),
        (b"p1b", Some(1)),
        (b"p5b", Some(5)),
    ] {
        let props = match priority {
            Some(p) => BasicProperties::default().with_priority(p),
            None => BasicProperties::default(),
        };
        within(async {
            ch.basic_publish(
                "".into(),
                "prio".into(),
                BasicPublishOptions::default(),
                body,
                props,
            )
            .await
            .unwrap()
            .await
            .unwrap()
        })
        .await;
    }
    // 9 is above x-max-priority 5, so it counts as 5; published before the other fives,
    // it comes first among them.
    let order: Vec<Vec<u8>> = bodies(&ch, "prio").await;
    let expected: Vec<Vec<u8>> = [&b"p9a"[..], b"p5a", b"p5b", b"p1a", b"p1b", b"p0a"]
        .iter()
        .map(|b| b.to_vec())
        .collect();
    assert_eq!(order, expected);
    broker.stop().await;
}

// ---- the broker's limits ----

#[tokio::test]
async fn max_connections_holds_further_clients_until_one_leaves() {
    let b = TestBroker::start_with(|c| warren::Config {
        max_connections: Some(1),
        ..c
    })
    .await;
    let first = b.connect().await;
    // The kernel completes the TCP handshake; the broker does not take the client on.
    let mut waiting = Raw::connect(b.addr).await;
    waiting.bytes(PROTOCOL_HEADER).await;
    let early = tokio::time::timeout(Duration::from_millis(300), waiting.next()).await;
    assert!(early.is_err(), "answered over the limit: {early:?}");
    within(first.close(200, "bye".into())).await.unwrap();
    match waiting.method().await {
        (0, AMQPClass::Connection(connection::AMQPMethod::Start(_))) => {}
        other => panic!("expected connection.start once a slot freed, got {other:?}"),
    }
    b.stop().await;
}

/// A data directory whose definitions give vhost `limited` these limits (the parameter
/// as RabbitMQ 3.10's export writes it).
fn limited_vhost_dir(limits: serde_json::Value) -> PathBuf {
    let dir = common::scratch_dir("limits");
    // A data directory with vhosts has its users too (none are made up at start, as in
    // RabbitMQ): guest/guest, hashed as RabbitMQ 3.10 exported it.
    let defs = serde_json::json!({
        "users": [{"name": "guest", "tags": ["administrator"],
                   "password_hash": "fX3lwz8qM4mbIXz2UMvaidgXG36aJ43+f+OHJc2SUlsY2eoF",
                   "hashing_algorithm": "rabbit_password_hashing_sha256"}],
        "vhosts": [{"name": "/"}, {"name": "limited"}],
        "permissions": [
            {"user": "guest", "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"},
            {"user": "guest", "vhost": "limited", "configure": ".*", "write": ".*", "read": ".*"}
        ],
        "parameters": [{
            "value": limits,
            "vhost": "limited",
            "component": "vhost-limits",
            "name": "limits"
        }]
    });
    std::fs::write(dir.join("definitions.json"), defs.to_string()).unwrap();
    dir
}

/// Login as guest and connection.open on `vhost`; the reply is the caller's to read.
async fn open_on(addr: std::net::SocketAddr, vhost: &str) -> Raw {
    let (mut raw, _) = Raw::start(addr).await;
    raw.start_ok("PLAIN", plain("guest", "guest"), true).await;
    raw.expect_tune().await;
    raw.tune_ok(2047, 131_072, 0).await;
    raw.open_vhost(vhost).await;
    raw
}

/// A lapin connection to the vhost "limited" and a channel on it.
async fn limited_channel(b: &TestBroker) -> (lapin::Connection, lapin::Channel) {
    let url = format!("amqp://guest:guest@{}/limited", b.addr);
    let conn = within(lapin::Connection::connect(
        &url,
        lapin::ConnectionProperties::default(),
    ))
    .await
    .unwrap();
    let ch = conn.create_channel().await.unwrap();
    (conn, ch)
}

#[tokio::test]
async fn vhost_max_connections_refuses_the_connection_over_it() {
    let dir = limited_vhost_dir(serde_json::json!({"max-connections": 1}));
    let b = TestBroker::start_on(dir, |c| c).await;
    let mut first = open_on(b.addr, "limited").await;
    first.expect_open_ok().await;

    let mut second = open_on(b.addr, "limited").await;
    let close = second.expect_connection_close().await;
    assert_eq!(
        (close.reply_code, close.reply_text.as_str(), close.class_id, close.method_id),
        (
            530,
            "NOT_ALLOWED - access to vhost 'limited' refused for user 'guest': connection limit (1) is reached",
            10,
            40
        )
    );
    second.close_ok_then_closed().await;
    // Other vhosts are not limited.
    Raw::open(b.addr).await;

    // The first leaves: its place is free as soon as it closed.
    first
        .send(
            0,
            AMQPClass::Connection(connection::AMQPMethod::Close(connection::Close {
                reply_code: 200,
                ..Default::default()
            })),
        )
        .await;
    match first.method().await {
        (0, AMQPClass::Connection(connection::AMQPMethod::CloseOk(_))) => {}
        other => panic!("expected close-ok, got {other:?}"),
    }
    open_on(b.addr, "limited").await.expect_open_ok().await;
    b.stop().await;
}

#[tokio::test]
async fn vhost_max_queues_refuses_a_new_queue_over_it() {
    let dir = limited_vhost_dir(serde_json::json!({"max-queues": 2}));
    let b = TestBroker::start_on(dir, |c| c).await;
    let (conn, ch) = limited_channel(&b).await;
    for q in ["a", "b"] {
        common::declare_queue(&ch, q).await;
    }
    let refused = "PRECONDITION_FAILED - cannot declare queue 'c': queue limit in vhost 'limited' (2) is reached";
    expect_channel_error(
        &conn,
        &ch,
        ch.queue_declare(
            "c".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        ),
        406,
        refused,
    )
    .await;
    // Declaring one that exists is not a new queue; a server-named one is.
    let ch = conn.create_channel().await.unwrap();
    common::declare_queue(&ch, "a").await;
    let err = within(ch.queue_declare(
        "".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    ))
    .await
    .unwrap_err();
    let (code, text) = common::amqp_error(&err);
    assert_eq!(code, 406);
    assert!(
        text.starts_with("PRECONDITION_FAILED - cannot declare queue 'amq.gen-")
            && text.ends_with("': queue limit in vhost 'limited' (2) is reached"),
        "{text}"
    );
    let ch = conn.create_channel().await.unwrap();
    ch.queue_delete("a".into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    common::declare_queue(&ch, "c").await;
    b.stop().await;
}

#[tokio::test]
async fn vhost_limits_are_kept_in_the_definitions_across_a_restart() {
    let dir = limited_vhost_dir(serde_json::json!({"max-queues": 1, "max-connections": 5}));
    let b = TestBroker::start_on(dir, |c| c).await;
    let (conn, ch) = limited_channel(&b).await;
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    common::declare(&ch, "kept", durable).await;
    drop(conn);
    let dir = b.restart_later().await;

    let text = std::fs::read_to_string(dir.join("definitions.json")).unwrap();
    let defs: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        defs["parameters"],
        serde_json::json!([{
            "value": {"max-connections": 5, "max-queues": 1},
            "vhost": "limited",
            "component": "vhost-limits",
            "name": "limits"
        }])
    );
    let b = TestBroker::start_on(dir, |c| c).await;
    let (conn, ch) = limited_channel(&b).await;
    expect_channel_error(
        &conn,
        &ch,
        ch.queue_declare("more".into(), durable, FieldTable::default()),
        406,
        "PRECONDITION_FAILED - cannot declare queue 'more': queue limit in vhost 'limited' (1) is reached",
    )
    .await;
    b.stop().await;
}

#[tokio::test]
async fn tune_ok_channel_max_0_or_above_the_servers_is_refused_without_a_word() {
    // As RabbitMQ: 0 ("no limit") is above the server's 2047; the socket closes after
    // the silent-close delay with nothing sent.
    let b = TestBroker::start().await;
    let refused = |channel_max: u16| {
        let addr = b.addr;
        async move {
            let (mut raw, _) = Raw::start(addr).await;
            raw.start_ok("PLAIN", plain("guest", "guest"), true).await;
            assert_eq!(raw.expect_tune().await.channel_max, 2047);
            raw.tune_ok(channel_max, 131_072, 0).await;
            raw.open_vhost("/").await;
            raw.expect_silent_close_within(Duration::from_secs(6)).await;
        }
    };
    tokio::join!(refused(0), refused(2048));
    b.stop().await;
}

#[tokio::test]
async fn max_message_size_is_configurable() {
    let b = TestBroker::start_with(|c| warren::Config {
        max_message_size: 1000,
        ..c
    })
    .await;
    let (_c, ch) = b.channel().await;
    common::declare_queue(&ch, "sized").await;
    let mut raw = Raw::open_with_channel(b.addr, 131_072).await;
    raw.publish(1, "sized", &[1u8; 1000]).await;
    raw.publish(1, "sized", &[2u8; 1001]).await;
    match raw.method().await {
        (1, AMQPClass::Channel(amq_protocol::protocol::channel::AMQPMethod::Close(close))) => {
            assert_eq!(
                (close.reply_code, close.reply_text.as_str(), close.class_id, close.method_id),
                (
                    406,
                    "PRECONDITION_FAILED - message size 1001 is larger than configured max size 1000",
                    60,
                    40
                )
            );
        }
        other => panic!("expected channel.close, got {other:?}"),
    }
    assert_eq!(
        common::ready(&ch, "sized").await,
        1,
        "the one at the limit went in"
    );
    // Gone before the stop: the shutdown would wait for its close-ok (3 s).
    drop(raw);
    b.stop().await;
}

/// Malformed vhost limits in the definitions file (a string, a float, a nested object, an
/// unknown key, a value that is not an object) load without a panic and, as RabbitMQ 3.10
/// refuses such a parameter whole (set_vhost_limits and import_definitions), leave the
/// vhost without limits; negative values and absent keys are no limit.
#[tokio::test]
async fn malformed_vhost_limits_in_the_definitions_are_refused_whole() {
    use serde_json::json;
    // (the parameter, whether RabbitMQ takes it)
    for (limits, taken) in [
        (json!({"max-queues": 1, "max-connections": "1"}), false),
        (json!({"max-queues": 1, "max-connections": 1.5}), false),
        (json!({"max-queues": 1, "max-connections": {"n": 1}}), false),
        (json!({"max-queues": 1, "foo": 1}), false),
        (json!([{"max-queues": 1}]), false),
        (json!("max-queues"), false),
        (json!({"max-queues": -1, "max-connections": -7}), true),
        (json!({}), true),
    ] {
        let b = TestBroker::start_on(limited_vhost_dir(limits.clone()), |c| c).await;
        let vhost = b.server.broker().vhost("limited").expect("vhost loaded");
        assert_eq!(vhost.limits().is_some(), taken, "{limits}");
        // Two connections and two queues: no limit holds them back.
        let (_c1, ch) = limited_channel(&b).await;
        let (_c2, _) = limited_channel(&b).await;
        common::declare_queue(&ch, "one").await;
        common::declare_queue(&ch, "two").await;
        b.stop().await;
    }
}
