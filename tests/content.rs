//! Message content: the 14 basic properties, header tables of every field type, and bodies
//! from 0 bytes to 128 MiB split over small frames, plus RabbitMQ's 128 MiB size limit.
mod common;

use common::wire::{close_fields, short_str, Wire, WIRE_FRAME_MAX};
use common::{declare_queue, within, TestBroker};
use futures::StreamExt;
use lapin::options::*;
use lapin::types::{AMQPValue, ByteArray, DecimalValue, FieldArray, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use std::time::{Duration, Instant};

const MIB: usize = 1024 * 1024;
/// RabbitMQ's default max_message_size.
const MAX_MESSAGE_SIZE: usize = 128 * MIB;

/// Like `within`, for transfers of many MiB.
async fn within_secs<T>(secs: u64, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), fut)
        .await
        .expect("timed out")
}

/// Publishes through the default exchange and takes the message back with basic.get.
async fn round_trip(
    ch: &Channel,
    queue: &str,
    body: &[u8],
    properties: BasicProperties,
    secs: u64,
) -> lapin::message::Delivery {
    ch.basic_publish(
        "".into(),
        queue.into(),
        BasicPublishOptions::default(),
        body,
        properties,
    )
    .await
    .expect("basic.publish");
    within_secs(
        secs,
        ch.basic_get(queue.into(), BasicGetOptions { no_ack: true }),
    )
    .await
    .expect("basic.get")
    .expect("get-ok")
    .delivery
}

/// A connection whose frames are at most 4096 bytes, so bodies span many frames.
async fn small_frames(broker: &TestBroker) -> (Connection, Channel) {
    let url = format!("{}?frame_max=4096", broker.url());
    let conn = within(Connection::connect(&url, ConnectionProperties::default()))
        .await
        .expect("connect");
    assert_eq!(
        conn.configuration().frame_max(),
        4096,
        "negotiated frame_max"
    );
    let ch = within(conn.create_channel()).await.expect("channel");
    (conn, ch)
}

/// A body whose every byte depends on its offset, so a lost or reordered frame shows.
fn patterned(len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (i % 251) as u8 ^ (i / 251) as u8)
        .collect()
}

fn all_properties() -> BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert(
        "x-origin".into(),
        AMQPValue::LongString("content-test".into()),
    );
    BasicProperties::default()
        .with_content_type("application/json".into())
        .with_content_encoding("gzip".into())
        .with_headers(headers)
        .with_delivery_mode(2)
        .with_priority(7)
        .with_correlation_id("corr-42".into())
        .with_reply_to("content.replies".into())
        .with_expiration("60000".into())
        .with_message_id("msg-0001".into())
        .with_timestamp(1_700_000_000)
        .with_type("order.created".into())
        .with_user_id("guest".into())
        .with_app_id("warren-tests".into())
        .with_cluster_id("cluster-a".into())
}

/// One header of every field type lapin can put on the wire (lapin has no encoding for
/// short strings inside tables, and no unsigned 64-bit type: RabbitMQ has neither).
fn every_field_type() -> FieldTable {
    let mut nested = FieldTable::default();
    nested.insert("inner-int".into(), AMQPValue::LongInt(-7));
    nested.insert("inner-str".into(), AMQPValue::LongString("deep".into()));
    let mut deeper = FieldTable::default();
    deeper.insert("leaf".into(), AMQPValue::Boolean(false));
    nested.insert("inner-table".into(), AMQPValue::FieldTable(deeper));

    let array = FieldArray::from(vec![
        AMQPValue::LongInt(1),
        AMQPValue::LongString("two".into()),
        AMQPValue::Boolean(true),
        AMQPValue::Double(4.5),
        AMQPValue::Void,
        AMQPValue::FieldArray(FieldArray::from(vec![AMQPValue::ShortShortUInt(9)])),
        AMQPValue::FieldTable(nested.clone()),
        AMQPValue::Timestamp(42),
    ]);

    let mut t = FieldTable::default();
    t.insert("bool".into(), AMQPValue::Boolean(true));
    t.insert("i8".into(), AMQPValue::ShortShortInt(-128));
    t.insert("u8".into(), AMQPValue::ShortShortUInt(255));
    t.insert("i16".into(), AMQPValue::ShortInt(-32768));
    t.insert("u16".into(), AMQPValue::ShortUInt(65535));
    t.insert("i32".into(), AMQPValue::LongInt(i32::MIN));
    t.insert("u32".into(), AMQPValue::LongUInt(u32::MAX));
    t.insert("i64".into(), AMQPValue::LongLongInt(i64::MIN));
    t.insert("f32".into(), AMQPValue::Float(1.5));
    t.insert("f64".into(), AMQPValue::Double(-2.25e300));
    t.insert(
        "decimal".into(),
        AMQPValue::DecimalValue(DecimalValue {
            scale: 2,
            value: 12345,
        }),
    );
    t.insert(
        "long-string".into(),
        AMQPValue::LongString("héllo wörld".into()),
    );
    t.insert(
        "binary-long-string".into(),
        AMQPValue::LongString(LongString::from(vec![0u8, 255, 1, 0xCE, 0])),
    );
    t.insert("empty-string".into(), AMQPValue::LongString("".into()));
    t.insert("timestamp".into(), AMQPValue::Timestamp(1_700_000_000));
    t.insert("table".into(), AMQPValue::FieldTable(nested));
    t.insert(
        "empty-table".into(),
        AMQPValue::FieldTable(FieldTable::default()),
    );
    t.insert("array".into(), AMQPValue::FieldArray(array));
    t.insert(
        "empty-array".into(),
        AMQPValue::FieldArray(FieldArray::default()),
    );
    t.insert("void".into(), AMQPValue::Void);
    t.insert(
        "bytes".into(),
        AMQPValue::ByteArray(ByteArray::from(vec![0u8, 1, 2, 0xCE, 0xFF])),
    );
    t
}

#[tokio::test]
async fn all_fourteen_properties_round_trip() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare_queue(&ch, "content.props").await;
    let props = all_properties();
    let got = round_trip(&ch, "content.props", b"{}", props.clone(), 10).await;
    assert_eq!(got.properties, props, "basic.get");

    // And through a consumer (basic.deliver).
    ch.basic_publish(
        "".into(),
        "content.props".into(),
        BasicPublishOptions::default(),
        b"{}",
        props.clone(),
    )
    .await
    .unwrap();
    let mut consumer = within(ch.basic_consume(
        "content.props".into(),
        "".into(),
        BasicConsumeOptions {
            no_ack: true,
            ..Default::default()
        },
        FieldTable::default(),
    ))
    .await
    .unwrap();
    let d = within(consumer.next())
        .await
        .expect("stream ended")
        .expect("delivery");
    assert_eq!(d.properties, props, "basic.deliver");
    broker.stop().await;
}

#[tokio::test]
async fn no_properties_round_trip_as_none() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare_queue(&ch, "content.noprops").await;
    let got = round_trip(&ch, "content.noprops", b"x", BasicProperties::default(), 10).await;
    assert_eq!(got.properties, BasicProperties::default());
    broker.stop().await;
}

#[tokio::test]
async fn header_table_with_every_field_type_round_trips() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare_queue(&ch, "content.headers").await;
    let headers = every_field_type();
    let props = BasicProperties::default().with_headers(headers.clone());
    let got = round_trip(&ch, "content.headers", b"h", props, 10).await;
    let back = got.properties.headers().clone().expect("headers");
    for (key, value) in headers.inner() {
        assert_eq!(back.inner().get(key), Some(value), "header {key}");
    }
    assert_eq!(back, headers);
    broker.stop().await;
}

#[tokio::test]
async fn bodies_around_the_frame_size_round_trip_over_small_frames() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = small_frames(&broker).await;
    declare_queue(&ch, "content.bodies").await;
    // frame_max 4096: a body frame carries at most 4096 - 8 = 4088 bytes.
    for len in [
        0,
        1,
        4087,
        4088,
        4089,
        2 * 4088,
        2 * 4088 + 1,
        MIB,
        10 * MIB,
    ] {
        let body = patterned(len);
        let got = round_trip(&ch, "content.bodies", &body, BasicProperties::default(), 30).await;
        assert_eq!(got.data.len(), len);
        assert!(got.data == body, "body of {len} bytes differs");
    }
    broker.stop().await;
}

#[tokio::test]
async fn large_body_round_trips_through_a_consumer_over_small_frames() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = small_frames(&broker).await;
    declare_queue(&ch, "content.consumed").await;
    let mut consumer = within(ch.basic_consume(
        "content.consumed".into(),
        "".into(),
        BasicConsumeOptions::default(),
        FieldTable::default(),
    ))
    .await
    .unwrap();
    let body = patterned(10 * MIB + 3);
    ch.basic_publish(
        "".into(),
        "content.consumed".into(),
        BasicPublishOptions::default(),
        &body,
        BasicProperties::default(),
    )
    .await
    .unwrap();
    let d = within_secs(30, consumer.next())
        .await
        .expect("stream ended")
        .expect("delivery");
    assert!(d.data == body, "10 MiB body differs");
    d.ack(BasicAckOptions::default()).await.unwrap();
    broker.stop().await;
}

#[tokio::test]
async fn body_of_exactly_128_mib_round_trips_over_small_frames() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = small_frames(&broker).await;
    declare_queue(&ch, "content.max").await;
    let body = patterned(MAX_MESSAGE_SIZE);
    let started = Instant::now();
    let got = round_trip(&ch, "content.max", &body, BasicProperties::default(), 180).await;
    assert_eq!(got.data.len(), MAX_MESSAGE_SIZE);
    assert!(got.data == body, "128 MiB body differs");
    eprintln!(
        "128 MiB round trip over 4096-byte frames: {:?}",
        started.elapsed()
    );
    broker.stop().await;
}

#[tokio::test]
async fn body_above_128_mib_is_refused_406() {
    // RabbitMQ 3.10.8 says nothing after the content header alone; once the whole body is in
    // it closes the channel with 406 (failing method basic.publish). lapin would need 128 MiB
    // in memory and hides the close details, so this speaks raw AMQP.
    let broker = TestBroker::start().await;
    let mut raw = Wire::open(&broker).await;
    let size = MAX_MESSAGE_SIZE + 1;
    let mut publish = 0u16.to_be_bytes().to_vec();
    publish.extend(short_str(""));
    publish.extend(short_str("content.toobig"));
    publish.push(0);
    raw.method(1, 60, 40, &publish).await;
    let mut header = 60u16.to_be_bytes().to_vec();
    header.extend(0u16.to_be_bytes());
    header.extend((size as u64).to_be_bytes());
    header.extend(0u16.to_be_bytes());
    raw.frame(2, 1, &header).await;
    // The broker may answer now or after the body: send the body, then read.
    let chunk = vec![b'x'; WIRE_FRAME_MAX as usize - 8];
    let mut left = size;
    while left > 0 {
        let n = left.min(chunk.len());
        if !raw.try_frame(3, 1, &chunk[..n]).await {
            break; // the broker may already have closed the socket
        }
        left -= n;
    }
    let (channel, class, method, args) = raw.next_method().await;
    assert_eq!((channel, class, method), (1, 20, 40), "channel.close");
    let (code, text, failing) = close_fields(&args);
    assert_eq!(code, 406);
    assert_eq!(
        text,
        "PRECONDITION_FAILED - message size 134217729 is larger than configured max size 134217728"
    );
    assert_eq!(failing, (60, 40));
    // Gone before the stop: the shutdown would wait for its close-ok (3 s).
    drop(raw);
    broker.stop().await;
}

#[tokio::test]
async fn header_table_bytes_come_back_unchanged() {
    // Key order (not sorted), field types and encoding exactly as the publisher wrote them.
    let broker = TestBroker::start().await;
    let mut raw = Wire::open(&broker).await;
    let mut declare = 0u16.to_be_bytes().to_vec();
    declare.extend(short_str("content.raw"));
    declare.extend([0, 0, 0, 0, 0]); // flags, empty arguments
    raw.method(1, 50, 10, &declare).await;
    raw.expect_method(1, 50, 11).await;

    let mut table = Vec::new();
    for (key, value) in [
        ("zeta", &b"t\x01"[..]),
        ("alpha", b"I\x00\x00\x00\x07"),
        ("mid", b"S\x00\x00\x00\x02hi"),
        ("short", b"s\xff\xfe"),
    ] {
        table.extend(short_str(key));
        table.extend_from_slice(value);
    }
    let mut properties = 0x2000u16.to_be_bytes().to_vec(); // headers only
    properties.extend((table.len() as u32).to_be_bytes());
    properties.extend(&table);

    let mut publish = 0u16.to_be_bytes().to_vec();
    publish.extend(short_str(""));
    publish.extend(short_str("content.raw"));
    publish.push(0);
    raw.method(1, 60, 40, &publish).await;
    let mut header = 60u16.to_be_bytes().to_vec();
    header.extend(0u16.to_be_bytes());
    header.extend(2u64.to_be_bytes());
    header.extend(&properties);
    raw.frame(2, 1, &header).await;
    raw.frame(3, 1, b"ok").await;

    let mut get = 0u16.to_be_bytes().to_vec();
    get.extend(short_str("content.raw"));
    get.push(1); // no-ack
    raw.method(1, 60, 70, &get).await;
    raw.expect_method(1, 60, 71).await; // get-ok
    let (kind, _, payload) = raw.next_frame().await;
    assert_eq!(kind, 2, "content header");
    assert_eq!(&payload[12..], &properties[..], "property bytes");
    // Gone before the stop: the shutdown would wait for its close-ok (3 s).
    drop(raw);
    broker.stop().await;
}
