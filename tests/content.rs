//! Message content: the 14 basic properties, header tables of every field type, and bodies
//! from 0 bytes to 128 MiB split over small frames, plus RabbitMQ's 128 MiB size limit.
mod common;

use common::{within, TestBroker};
use futures::StreamExt;
use lapin::options::*;
use lapin::types::{AMQPValue, ByteArray, DecimalValue, FieldArray, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const MIB: usize = 1024 * 1024;
/// RabbitMQ's default max_message_size.
const MAX_MESSAGE_SIZE: usize = 128 * MIB;

async fn declare(ch: &Channel, queue: &str) {
    within(ch.queue_declare(
        queue.into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    ))
    .await
    .expect("queue.declare");
}

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
    declare(&ch, "content.props").await;
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
    declare(&ch, "content.noprops").await;
    let got = round_trip(&ch, "content.noprops", b"x", BasicProperties::default(), 10).await;
    assert_eq!(got.properties, BasicProperties::default());
    broker.stop().await;
}

#[tokio::test]
async fn header_table_with_every_field_type_round_trips() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare(&ch, "content.headers").await;
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
    declare(&ch, "content.bodies").await;
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
    declare(&ch, "content.consumed").await;
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
    declare(&ch, "content.max").await;
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
    let mut raw = Raw::open(&broker).await;
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
    let chunk = vec![b'x'; RAW_FRAME_MAX as usize - 8];
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
    broker.stop().await;
}

#[tokio::test]
async fn header_table_bytes_come_back_unchanged() {
    // Key order (not sorted), field types and encoding exactly as the publisher wrote them.
    let broker = TestBroker::start().await;
    let mut raw = Raw::open(&broker).await;
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
    broker.stop().await;
}

// ---- raw AMQP, for what lapin cannot show ----

const RAW_FRAME_MAX: u32 = 131072;

/// A bare AMQP connection with channel 1 open.
struct Raw {
    stream: TcpStream,
}

impl Raw {
    async fn open(broker: &TestBroker) -> Raw {
        let stream = within(TcpStream::connect(broker.addr)).await.unwrap();
        let mut raw = Raw { stream };
        raw.stream.write_all(b"AMQP\x00\x00\x09\x01").await.unwrap();
        raw.expect_method(0, 10, 10).await; // start
        let mut start_ok = 0u32.to_be_bytes().to_vec(); // empty client properties
        start_ok.extend(short_str("PLAIN"));
        start_ok.extend(long_str(b"\0guest\0guest"));
        start_ok.extend(short_str("en_US"));
        raw.method(0, 10, 11, &start_ok).await;
        raw.expect_method(0, 10, 30).await; // tune
        let mut tune_ok = 2047u16.to_be_bytes().to_vec();
        tune_ok.extend(RAW_FRAME_MAX.to_be_bytes());
        tune_ok.extend(0u16.to_be_bytes());
        raw.method(0, 10, 31, &tune_ok).await;
        let mut open = short_str("/");
        open.extend(short_str(""));
        open.push(0);
        raw.method(0, 10, 40, &open).await;
        raw.expect_method(0, 10, 41).await;
        raw.method(1, 20, 10, &short_str("")).await;
        raw.expect_method(1, 20, 11).await;
        raw
    }

    fn encode(kind: u8, channel: u16, payload: &[u8]) -> Vec<u8> {
        let mut frame = vec![kind];
        frame.extend(channel.to_be_bytes());
        frame.extend((payload.len() as u32).to_be_bytes());
        frame.extend_from_slice(payload);
        frame.push(0xCE);
        frame
    }

    async fn frame(&mut self, kind: u8, channel: u16, payload: &[u8]) {
        within(self.stream.write_all(&Self::encode(kind, channel, payload)))
            .await
            .unwrap();
    }

    /// Writes a frame; false if the broker has closed the socket.
    async fn try_frame(&mut self, kind: u8, channel: u16, payload: &[u8]) -> bool {
        within(self.stream.write_all(&Self::encode(kind, channel, payload)))
            .await
            .is_ok()
    }

    async fn method(&mut self, channel: u16, class: u16, method: u16, args: &[u8]) {
        let mut payload = class.to_be_bytes().to_vec();
        payload.extend(method.to_be_bytes());
        payload.extend_from_slice(args);
        self.frame(1, channel, &payload).await;
    }

    /// The next frame: type, channel, payload.
    async fn next_frame(&mut self) -> (u8, u16, Vec<u8>) {
        let mut header = [0u8; 7];
        within(self.stream.read_exact(&mut header))
            .await
            .expect("a frame");
        let size = u32::from_be_bytes([header[3], header[4], header[5], header[6]]) as usize;
        let mut payload = vec![0u8; size + 1];
        within(self.stream.read_exact(&mut payload))
            .await
            .expect("a frame payload");
        assert_eq!(payload.pop(), Some(0xCE), "frame end");
        (
            header[0],
            u16::from_be_bytes([header[1], header[2]]),
            payload,
        )
    }

    /// The next method frame (other frames skipped): channel, class, method, args.
    async fn next_method(&mut self) -> (u16, u16, u16, Vec<u8>) {
        loop {
            let (kind, channel, payload) = self.next_frame().await;
            if kind == 1 {
                let class = u16::from_be_bytes([payload[0], payload[1]]);
                let method = u16::from_be_bytes([payload[2], payload[3]]);
                return (channel, class, method, payload[4..].to_vec());
            }
        }
    }

    async fn expect_method(&mut self, channel: u16, class: u16, method: u16) {
        let (ch, c, m, _) = self.next_method().await;
        assert_eq!((ch, c, m), (channel, class, method), "unexpected method");
    }
}

fn short_str(s: &str) -> Vec<u8> {
    let mut v = vec![s.len() as u8];
    v.extend_from_slice(s.as_bytes());
    v
}

fn long_str(b: &[u8]) -> Vec<u8> {
    let mut v = (b.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(b);
    v
}

/// reply-code, reply-text and failing (class, method) of a connection/channel.close.
fn close_fields(args: &[u8]) -> (u16, String, (u16, u16)) {
    let code = u16::from_be_bytes([args[0], args[1]]);
    let len = args[2] as usize;
    let text = String::from_utf8(args[3..3 + len].to_vec()).unwrap();
    let rest = &args[3 + len..];
    (
        code,
        text,
        (
            u16::from_be_bytes([rest[0], rest[1]]),
            u16::from_be_bytes([rest[2], rest[3]]),
        ),
    )
}
