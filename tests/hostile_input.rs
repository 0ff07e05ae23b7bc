//! Hostile input on raw sockets: field tables nested thousands deep (before login, in
//! arguments, in message headers), oversized frames before tune-ok, undecodable content
//! headers, names too long for a short string. Each case checks what RabbitMQ 3.10 does
//! (asked on a real one), that the broker process survives, and that other connections
//! keep working.
mod common;

use common::raw::Raw;
use common::wire::{close_fields, encode_frame, encode_method, long_str, short_str, Wire};
use common::{within, TestBroker};
use lapin::options::{QueueBindOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldArray, FieldTable};
use lapin::{BasicProperties, ExchangeKind};
use std::time::Duration;
use warren::testing::MAX_DEPTH;

/// RabbitMQ drops a refused handshake after about 3 s; allow for a slow machine.
const SILENT_CLOSE_BOUND: Duration = Duration::from_secs(8);

/// A field value: `levels` field arrays nested in one another, void innermost.
fn nested_value(levels: usize) -> Vec<u8> {
    // Written front to back: level i holds the 5 * (levels - i - 1) + 1 bytes inside it.
    let mut v = Vec::with_capacity(5 * levels + 1);
    for i in 0..levels {
        v.push(b'A');
        v.extend_from_slice(&((5 * (levels - i - 1) + 1) as u32).to_be_bytes());
    }
    v.push(b'V');
    v
}

/// A field table (length first) of `(key, encoded value)` entries.
fn table_bytes(entries: &[(&str, Vec<u8>)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (k, v) in entries {
        body.extend(short_str(k));
        body.extend_from_slice(v);
    }
    long_str(&body)
}

/// The same nesting for lapin: `levels` arrays, void innermost.
fn nested_amqp(levels: usize) -> AMQPValue {
    (0..levels).fold(AMQPValue::Void, |v, _| {
        AMQPValue::FieldArray(FieldArray::from(vec![v]))
    })
}

fn text(v: &str) -> Vec<u8> {
    let mut b = vec![b'S'];
    b.extend(long_str(v.as_bytes()));
    b
}

/// connection.start-ok's arguments with these client properties, logging in as guest.
fn start_ok_args(client_properties: &[u8]) -> Vec<u8> {
    let mut args = client_properties.to_vec();
    args.extend(short_str("PLAIN"));
    args.extend(long_str(b"\0guest\0guest"));
    args.extend(short_str("en_US"));
    args
}

/// Protocol header, connection.start read, then this start-ok payload sent.
async fn send_start_ok(broker: &TestBroker, args: &[u8]) -> Raw {
    let (mut raw, _) = Raw::start(broker.addr).await;
    raw.bytes(&encode_method(0, 10, 11, args)).await;
    raw
}

/// A fresh lapin connection still declares a queue.
async fn assert_serving(broker: &TestBroker) {
    let (conn, ch) = within(broker.channel()).await;
    within(ch.queue_declare(
        "hostile.alive".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    ))
    .await
    .expect("queue.declare on a fresh connection");
    within(conn.close(200, "bye".into())).await.expect("close");
}

/// The next method must be connection.close with these fields.
async fn expect_connection_close(wire: &mut Wire, code: u16, text: &str, ids: (u16, u16)) {
    let (channel, class, method, args) = wire.next_method().await;
    assert_eq!((channel, class, method), (0, 10, 50), "connection.close");
    assert_eq!(close_fields(&args), (code, text.to_owned(), ids));
}

// ---------------------------------------------------------------------------------------
// before login

/// Issue 10, defect 1: 3,000 nested arrays in client_properties (a 15 KB frame, no
/// credentials needed) overflowed a worker's stack and aborted the process. RabbitMQ
/// drops the socket (the frame is over the 4096 bytes allowed before tune-ok).
#[tokio::test]
async fn start_ok_nested_3000_deep_drops_the_socket_and_the_broker_lives() {
    let broker = TestBroker::start().await;
    let (bystander, bystander_ch) = within(broker.channel()).await;
    let props = table_bytes(&[("a", nested_value(3000))]);
    assert!(props.len() > 15_000);
    let mut raw = send_start_ok(&broker, &start_ok_args(&props)).await;
    raw.expect_silent_close_within(SILENT_CLOSE_BOUND).await;
    within(bystander_ch.queue_declare(
        "hostile.bystander".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    ))
    .await
    .expect("a connection opened before still works");
    within(bystander.close(200, "bye".into())).await.unwrap();
    assert_serving(&broker).await;
    broker.stop().await;
}

/// A 10 KB start-ok without any nesting: over the 4096-byte cap before tune-ok, so
/// dropped as RabbitMQ does, from the frame header alone.
#[tokio::test]
async fn start_ok_of_10_kb_drops_the_socket() {
    let broker = TestBroker::start().await;
    let props = table_bytes(&[("a", text(&"x".repeat(10_000)))]);
    let mut raw = send_start_ok(&broker, &start_ok_args(&props)).await;
    raw.expect_silent_close_within(SILENT_CLOSE_BOUND).await;
    assert_serving(&broker).await;
    broker.stop().await;
}

/// The cap is RabbitMQ's: a payload of exactly 4096 bytes is accepted, 4097 refused.
#[tokio::test]
async fn start_ok_payload_of_4096_bytes_is_accepted_and_4097_refused() {
    let broker = TestBroker::start().await;
    for (payload, accepted) in [(4096, true), (4097, false)] {
        // Payload: ids (4) + table + mechanism, response, locale (6 + 16 + 6).
        let table_len = payload - 4 - 28;
        let string_len = table_len - 4 - 2 - 1 - 4;
        let props = table_bytes(&[("a", text(&"x".repeat(string_len)))]);
        let args = start_ok_args(&props);
        assert_eq!(args.len() + 4, payload);
        let mut raw = send_start_ok(&broker, &args).await;
        if accepted {
            raw.expect_tune().await;
        } else {
            raw.expect_silent_close_within(SILENT_CLOSE_BOUND).await;
        }
    }
    broker.stop().await;
}

/// RabbitMQ users nest client properties 100 levels deep: accepted.
#[tokio::test]
async fn client_properties_100_deep_are_accepted() {
    let broker = TestBroker::start().await;
    let props = table_bytes(&[("a", nested_value(100))]);
    let mut raw = send_start_ok(&broker, &start_ok_args(&props)).await;
    raw.expect_tune().await;
    broker.stop().await;
}

/// Deeper than the limit but inside 4096 bytes: refused the way RabbitMQ refuses an
/// undecodable start-ok (socket dropped, no close method). (RabbitMQ itself has no depth
/// limit; warren's keeps every stored value readable, see `fieldscan::MAX_DEPTH`.)
#[tokio::test]
async fn client_properties_deeper_than_the_limit_drop_the_socket() {
    let broker = TestBroker::start().await;
    let props = table_bytes(&[("a", nested_value(700))]);
    assert!(props.len() < 4096);
    let mut raw = send_start_ok(&broker, &start_ok_args(&props)).await;
    raw.expect_silent_close_within(SILENT_CLOSE_BOUND).await;
    assert_serving(&broker).await;
    broker.stop().await;
}

/// An undecodable start-ok (trailing bytes) or AMQPLAIN response nested too deep: no
/// close method before the connection is open, as RabbitMQ.
#[tokio::test]
async fn undecodable_handshake_frames_drop_the_socket() {
    let broker = TestBroker::start().await;
    let mut trailing = start_ok_args(&table_bytes(&[]));
    trailing.extend(b"xx");
    let mut amqplain = table_bytes(&[]);
    amqplain.extend(short_str("AMQPLAIN"));
    let login = table_bytes(&[
        ("LOGIN", text("guest")),
        ("PASSWORD", text("guest")),
        ("x", nested_value(500)),
    ]);
    amqplain.extend(long_str(&login[4..]));
    amqplain.extend(short_str("en_US"));
    for args in [trailing, amqplain] {
        let mut raw = send_start_ok(&broker, &args).await;
        raw.expect_silent_close_within(SILENT_CLOSE_BOUND).await;
    }
    assert_serving(&broker).await;
    broker.stop().await;
}

// ---------------------------------------------------------------------------------------
// after login: arguments

/// 3,000 nested arrays in queue.declare's arguments fit a 128 KiB frame; they overflowed
/// the stack like the start-ok. Refused as an undecodable method (RabbitMQ's 501 for
/// arguments it cannot decode), and the broker goes on.
#[tokio::test]
async fn deep_queue_arguments_are_a_frame_error() {
    let broker = TestBroker::start().await;
    let mut wire = Wire::open(&broker).await;
    let mut args = vec![0, 0];
    args.extend(short_str("q"));
    args.push(0);
    args.extend(table_bytes(&[("x-a", nested_value(3000))]));
    wire.method(1, 50, 10, &args).await;
    let shown: Vec<String> = args[..32].iter().map(u8::to_string).collect();
    let text = format!("FRAME_ERROR - cannot decode <<{},...>>", shown.join(","));
    expect_connection_close(&mut wire, 501, &text, (50, 10)).await;
    assert_serving(&broker).await;
    // Gone before the stop: the shutdown would wait for its close-ok (3 s).
    drop(wire);
    broker.stop().await;
}

/// Arguments nested as deep as the limit allows, on a durable queue, exchange and
/// binding: accepted, saved, and read back after a restart (the definitions file must
/// not become unreadable, serde_json stops at 128 levels).
#[tokio::test]
async fn arguments_at_the_depth_limit_survive_a_restart() {
    let broker = TestBroker::start().await;
    let deep = || common::table(&[("x-deep", nested_amqp(MAX_DEPTH - 1))]);
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    {
        let (conn, ch) = within(broker.channel()).await;
        within(ch.exchange_declare(
            "hostile.deep.ex".into(),
            ExchangeKind::Fanout,
            lapin::options::ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            deep(),
        ))
        .await
        .expect("exchange with deep arguments");
        within(ch.queue_declare("hostile.deep.q".into(), durable, deep()))
            .await
            .expect("queue with deep arguments");
        within(ch.queue_bind(
            "hostile.deep.q".into(),
            "hostile.deep.ex".into(),
            "".into(),
            QueueBindOptions::default(),
            deep(),
        ))
        .await
        .expect("binding with deep arguments");
        within(conn.close(200, "bye".into())).await.unwrap();
    }
    let dir = broker.restart_later().await;
    let broker = TestBroker::start_on(dir, |c| c).await;
    let (conn, ch) = within(broker.channel()).await;
    // Redeclaring with the same arguments is equivalent: they came back whole.
    within(ch.queue_declare("hostile.deep.q".into(), durable, deep()))
        .await
        .expect("the queue is back with its arguments");
    common::publish(&ch, "hostile.deep.ex", "", b"through the binding").await;
    let got = common::get_eventually(&ch, "hostile.deep.q").await;
    assert_eq!(got.delivery.data, b"through the binding");
    within(conn.close(200, "bye".into())).await.unwrap();
    broker.stop().await;
}

// ---------------------------------------------------------------------------------------
// after login: message headers

/// A content header for basic.publish with this property list.
fn content_header(channel: u16, body_size: u64, properties: &[u8]) -> Vec<u8> {
    let mut payload = 60u16.to_be_bytes().to_vec();
    payload.extend(0u16.to_be_bytes());
    payload.extend(body_size.to_be_bytes());
    payload.extend_from_slice(properties);
    encode_frame(2, channel, &payload)
}

fn publish_args(exchange: &str, routing_key: &str) -> Vec<u8> {
    let mut args = vec![0, 0];
    args.extend(short_str(exchange));
    args.extend(short_str(routing_key));
    args.push(0);
    args
}

/// Headers nested 3,000 deep, published to a headers exchange: decoding them for routing
/// overflowed the stack. Now refused at the content header, as RabbitMQ refuses
/// properties it cannot decode (541, bare text, no method).
#[tokio::test]
async fn deep_headers_close_the_connection_with_internal_error() {
    let broker = TestBroker::start().await;
    let mut props = (1u16 << 13).to_be_bytes().to_vec();
    props.extend(table_bytes(&[
        ("k", text("v")),
        ("deep", nested_value(3000)),
    ]));
    publish_is_internal_error(&broker, "amq.match", "", &props).await;
    assert_serving(&broker).await;
    broker.stop().await;
}

/// Property lists RabbitMQ cannot decode close the connection with a bare 541: a field
/// type it does not know, a table longer than the frame, bytes after the last field, a
/// flag without its field.
#[tokio::test]
async fn undecodable_properties_close_the_connection_with_internal_error() {
    let broker = TestBroker::start().await;
    let headers = (1u16 << 13).to_be_bytes().to_vec();
    let cases: Vec<Vec<u8>> = vec![
        [headers.clone(), table_bytes(&[("k", b"Z\0".to_vec())])].concat(),
        [headers.clone(), vec![0, 0, 0, 50, 1, b'k']].concat(),
        [headers.clone(), table_bytes(&[]), b"abc".to_vec()].concat(),
        (1u16 << 15).to_be_bytes().to_vec(),
    ];
    for props in cases {
        publish_is_internal_error(&broker, "", "q", &props).await;
    }
    assert_serving(&broker).await;
    broker.stop().await;
}

/// Publishes a 2-byte message with property bytes `props` on a new connection and
/// expects the bare 541 connection.close RabbitMQ sends for properties it cannot decode.
async fn publish_is_internal_error(broker: &TestBroker, exchange: &str, key: &str, props: &[u8]) {
    let mut wire = Wire::open(broker).await;
    wire.bytes(&encode_method(1, 60, 40, &publish_args(exchange, key)))
        .await;
    wire.bytes(&content_header(1, 2, props)).await;
    wire.bytes(&encode_frame(3, 1, b"hi")).await;
    expect_connection_close(&mut wire, 541, "INTERNAL_ERROR", (0, 0)).await;
}

/// Headers nested 100 deep route through a headers exchange, are dead-lettered (x-death
/// added) and come back intact.
#[tokio::test]
async fn headers_100_deep_route_through_headers_exchange_and_dead_letter() {
    let broker = TestBroker::start().await;
    let (conn, ch) = within(broker.channel()).await;
    common::declare_queue(&ch, "hostile.sink").await;
    let source_args = common::table(&[
        ("x-dead-letter-exchange", AMQPValue::LongString("".into())),
        (
            "x-dead-letter-routing-key",
            AMQPValue::LongString("hostile.sink".into()),
        ),
        ("x-message-ttl", AMQPValue::LongInt(0)),
    ]);
    within(ch.queue_declare(
        "hostile.source".into(),
        QueueDeclareOptions::default(),
        source_args,
    ))
    .await
    .unwrap();
    let binding = common::table(&[
        ("x-match", AMQPValue::LongString("all".into())),
        ("k", AMQPValue::LongString("v".into())),
    ]);
    within(ch.queue_bind(
        "hostile.source".into(),
        "amq.match".into(),
        "".into(),
        QueueBindOptions::default(),
        binding,
    ))
    .await
    .unwrap();
    let deep = nested_amqp(100);
    let headers = common::table(&[
        ("k", AMQPValue::LongString("v".into())),
        ("deep", deep.clone()),
    ]);
    within(ch.basic_publish(
        "amq.match".into(),
        "".into(),
        Default::default(),
        b"deep",
        BasicProperties::default().with_headers(headers),
    ))
    .await
    .unwrap();
    let got = common::get_eventually(&ch, "hostile.sink").await;
    let headers = got
        .delivery
        .properties
        .headers()
        .clone()
        .unwrap_or_default();
    assert_eq!(headers.inner().get("deep"), Some(&deep));
    assert!(headers.inner().contains_key("x-death"));
    assert_eq!(got.delivery.data, b"deep");
    within(conn.close(200, "bye".into())).await.unwrap();
    broker.stop().await;
}

// ---------------------------------------------------------------------------------------
// names and lengths

/// x-dead-letter-routing-key is a routing key: more than 255 bytes is refused where it
/// enters (RabbitMQ 3.10 accepts it and fails later, with INTERNAL_ERROR on the
/// connection that gets the dead letter); 255 bytes is fine.
#[tokio::test]
async fn dead_letter_routing_key_over_255_bytes_is_refused() {
    let broker = TestBroker::start().await;
    let (conn, ch) = within(broker.channel()).await;
    let declare = |key: String| {
        let args = common::table(&[
            ("x-dead-letter-exchange", AMQPValue::LongString("".into())),
            (
                "x-dead-letter-routing-key",
                AMQPValue::LongString(key.into()),
            ),
        ]);
        ch.queue_declare("hostile.dlrk".into(), QueueDeclareOptions::default(), args)
    };
    within(declare("k".repeat(255))).await.expect("255 bytes");
    let refused = within(declare(format!("{}é", "k".repeat(254)))).await;
    assert_eq!(
        common::refusal(refused),
        (
            406,
            "PRECONDITION_FAILED - invalid arg 'x-dead-letter-routing-key' for queue \
             'hostile.dlrk' in vhost '/': {max_length_exceeded,256}"
                .to_owned()
        )
    );
    drop(conn);
    broker.stop().await;
}

/// Issue 10, defect 4: a name over 255 bytes (here a dead-letter routing key from an
/// imported RabbitMQ export, which RabbitMQ accepts) was cut mid-character and reached
/// the client as invalid UTF-8. It is now cut on a character boundary.
#[tokio::test]
async fn a_long_name_is_cut_on_a_character_boundary() {
    let broker = TestBroker::start().await;
    {
        let (conn, ch) = within(broker.channel()).await;
        within(ch.exchange_declare(
            "hostile.dlx".into(),
            ExchangeKind::Fanout,
            lapin::options::ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        ))
        .await
        .unwrap();
        let durable = QueueDeclareOptions {
            durable: true,
            ..Default::default()
        };
        within(ch.queue_declare("hostile.cut.sink".into(), durable, FieldTable::default()))
            .await
            .unwrap();
        within(ch.queue_bind(
            "hostile.cut.sink".into(),
            "hostile.dlx".into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        ))
        .await
        .unwrap();
        within(conn.close(200, "bye".into())).await.unwrap();
    }
    let dir = broker.restart_later().await;
    // The export RabbitMQ would write for a queue declared with a 256-byte key.
    let path = dir.join("definitions.json");
    let mut defs: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&path).expect("definitions.json")).unwrap();
    let long_key = format!("{}é", "a".repeat(254));
    assert_eq!(long_key.len(), 256);
    defs["queues"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "name": "hostile.cut.source", "vhost": "/", "durable": true, "auto_delete": false,
            "type": "classic",
            "arguments": {"x-dead-letter-exchange": "hostile.dlx",
                          "x-dead-letter-routing-key": long_key, "x-message-ttl": 0}
        }));
    std::fs::write(&path, serde_json::to_vec(&defs).unwrap()).unwrap();
    let broker = TestBroker::start_on(dir, |c| c).await;
    let (conn, ch) = within(broker.channel()).await;
    common::publish(&ch, "", "hostile.cut.source", b"cut").await;
    // lapin would refuse a get-ok with invalid UTF-8, so the routing key is read by hand.
    let mut wire = Wire::open(&broker).await;
    let mut get = vec![0, 0];
    get.extend(short_str("hostile.cut.sink"));
    get.push(1);
    // Dead-lettered by the queue after the publish: there once the sink counts it.
    common::wait_until("the dead letter in the sink", || async {
        common::ready(&ch, "hostile.cut.sink").await == 1
    })
    .await;
    wire.method(1, 60, 70, &get).await;
    let (_, class, method, args) = wire.next_method().await;
    assert_eq!((class, method), (60, 71), "basic.get-ok");
    // delivery tag, redelivered, exchange, then the routing key.
    let at = 9 + 1 + args[9] as usize;
    let routing_key = args[at + 1..at + 1 + args[at] as usize].to_vec();
    assert_eq!(
        String::from_utf8(routing_key).as_deref(),
        Ok(&*"a".repeat(254))
    );
    within(conn.close(200, "bye".into())).await.unwrap();
    // Gone before the stop: the shutdown would wait for its close-ok (3 s).
    drop(wire);
    broker.stop().await;
}

// ---------------------------------------------------------------------------------------
// the fuzzing entry points

mod entry_points {
    use super::{nested_value, table_bytes};
    use proptest::prelude::*;
    use warren::fuzzing::{decode_frames, parse_properties, parse_table};

    /// A method frame for one of the methods that carry a table, with random arguments.
    fn method_frame(ids: (u16, u16), args: &[u8]) -> Vec<u8> {
        let mut payload = ids.0.to_be_bytes().to_vec();
        payload.extend(ids.1.to_be_bytes());
        payload.extend_from_slice(args);
        super::encode_frame(1, 0, &payload)
    }

    #[test]
    fn deep_inputs_end_without_overflowing_the_stack() {
        let deep = table_bytes(&[("a", nested_value(50_000))]);
        parse_table(&deep);
        let mut props = (1u16 << 13).to_be_bytes().to_vec();
        props.extend_from_slice(&deep);
        parse_properties(&props);
        // 20,000 levels still fit a 128 KiB frame.
        let mut declare = vec![0, 0, 1, b'q', 0];
        declare.extend(table_bytes(&[("a", nested_value(20_000))]));
        decode_frames(&method_frame((50, 10), &declare));
    }

    proptest! {
        #[test]
        fn any_bytes_end_without_panicking(data in proptest::collection::vec(any::<u8>(), 0..512)) {
            decode_frames(&data);
            parse_properties(&data);
            parse_table(&data);
        }

        #[test]
        fn methods_with_tables_and_random_arguments_end_without_panicking(
            which in 0usize..9,
            args in proptest::collection::vec(any::<u8>(), 0..256),
        ) {
            let ids = [(10, 10), (10, 11), (40, 10), (40, 30), (40, 40), (50, 10), (50, 20), (50, 50), (60, 20)][which];
            decode_frames(&method_frame(ids, &args));
            let mut header = 60u16.to_be_bytes().to_vec();
            header.extend([0, 0]);
            header.extend(0u64.to_be_bytes());
            header.extend_from_slice(&args);
            decode_frames(&super::encode_frame(2, 1, &header));
        }
    }
}
