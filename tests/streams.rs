//! Stream queues (`x-queue-type: stream`) over AMQP 0-9-1, as RabbitMQ 3.10.8 serves them:
//! declaration and its refusals, publishing with confirms, consumers with
//! x-stream-offset (first, last, next, an offset, a timestamp, an interval), the
//! x-stream-offset header, acks as credit, the refusals of basic.get, no-ack, consumers
//! without prefetch, nack/reject and purge, tail-follow, offsets across a restart,
//! retention, a long replay, and the management API's view. Texts checked on the
//! reference.

mod common;

use common::*;
use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    BasicRejectOptions, ConfirmSelectOptions, QueueDeclareOptions, QueuePurgeOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, Consumer};

fn stream_args(extra: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = table(&[("x-queue-type", AMQPValue::LongString("stream".into()))]);
    for (k, v) in extra {
        t.insert((*k).into(), v.clone());
    }
    t
}

async fn declare_stream(ch: &Channel, name: &str, extra: &[(&str, AMQPValue)]) -> u32 {
    within(ch.queue_declare(name.into(), durable(), stream_args(extra)))
        .await
        .expect("declare stream")
        .message_count()
}

/// Publishes `bodies` with confirms and waits for every ack.
async fn publish_confirmed(ch: &Channel, queue: &str, bodies: impl IntoIterator<Item = Vec<u8>>) {
    let mut pending = Vec::new();
    for body in bodies {
        let confirm = within(ch.basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions::default(),
            &body,
            BasicProperties::default(),
        ))
        .await
        .expect("publish");
        pending.push(confirm);
    }
    for p in pending {
        let c = within(p).await.expect("confirm");
        assert!(c.is_ack(), "publisher confirm is an ack");
    }
}

async fn confirming_channel(conn: &Connection) -> Channel {
    let ch = conn.create_channel().await.unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    ch
}

fn offset_arg(v: AMQPValue) -> FieldTable {
    table(&[("x-stream-offset", v)])
}

fn text(s: &str) -> AMQPValue {
    AMQPValue::LongString(s.into())
}

/// A consumer on `queue` with prefetch `prefetch` starting at `offset` (None: default).
async fn stream_consumer(
    conn: &Connection,
    queue: &str,
    prefetch: u16,
    offset: Option<AMQPValue>,
) -> (Channel, Consumer) {
    let ch = conn.create_channel().await.unwrap();
    ch.basic_qos(prefetch, BasicQosOptions::default())
        .await
        .unwrap();
    let args = offset.map(offset_arg).unwrap_or_default();
    let consumer = within(ch.basic_consume(
        queue.into(),
        "".into(),
        BasicConsumeOptions::default(),
        args,
    ))
    .await
    .expect("basic.consume");
    (ch, consumer)
}

async fn next_delivery(consumer: &mut Consumer) -> Delivery {
    within(consumer.next())
        .await
        .expect("consumer ended")
        .expect("delivery")
}

fn offset_of(d: &Delivery) -> i64 {
    let headers = d.properties.headers().as_ref().expect("headers");
    match headers.inner().get("x-stream-offset") {
        Some(AMQPValue::LongLongInt(n)) => *n,
        other => panic!("x-stream-offset header is a long, got {other:?}"),
    }
}

/// Reads `n` deliveries, acking each; returns (offset, body) pairs.
async fn take_acked(consumer: &mut Consumer, n: usize) -> Vec<(i64, Vec<u8>)> {
    let mut got = Vec::new();
    for _ in 0..n {
        let d = next_delivery(consumer).await;
        assert!(!d.redelivered, "stream deliveries are never redelivered");
        got.push((offset_of(&d), d.data.clone()));
        d.ack(BasicAckOptions::default()).await.unwrap();
    }
    got
}

fn bodies(range: std::ops::Range<usize>) -> impl Iterator<Item = Vec<u8>> {
    range.map(|i| format!("m{i}").into_bytes())
}

#[tokio::test]
async fn declarations_are_checked_as_rabbitmq_does() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let nd = QueueDeclareOptions::default();
    let flags = |exclusive, auto_delete| QueueDeclareOptions {
        durable: true,
        exclusive,
        auto_delete,
        ..Default::default()
    };
    let cases: Vec<(&str, QueueDeclareOptions, FieldTable, String)> = vec![
        ("s.a", nd, stream_args(&[]), "invalid property 'non-durable' for queue 's.a' in vhost '/'".into()),
        ("s.a", flags(true, false), stream_args(&[]), "invalid property 'exclusive-owner' for queue 's.a' in vhost '/'".into()),
        ("s.a", flags(false, true), stream_args(&[]), "invalid property 'auto-delete' for queue 's.a' in vhost '/'".into()),
        ("s.a", durable(), stream_args(&[("x-max-age", text("7X"))]), "invalid arg 'x-max-age' for queue 's.a' in vhost '/': invalid_max_age".into()),
        ("s.a", durable(), stream_args(&[("x-max-age", text("0s"))]), "invalid arg 'x-max-age' for queue 's.a' in vhost '/': invalid_max_age".into()),
        ("s.a", durable(), stream_args(&[("x-max-age", text("1.5h"))]), "invalid arg 'x-max-age' for queue 's.a' in vhost '/': invalid_max_age".into()),
        ("s.a", durable(), stream_args(&[("x-max-age", AMQPValue::LongInt(7))]), "invalid arg 'x-max-age' for queue 's.a' in vhost '/': {unacceptable_type,signedint}".into()),
        ("s.a", durable(), stream_args(&[("x-stream-max-segment-size-bytes", text("x"))]), "invalid arg 'x-stream-max-segment-size-bytes' for queue 's.a' in vhost '/': \"expected integer, got longstr\"".into()),
        ("s.a", durable(), stream_args(&[("x-stream-max-segment-size-bytes", AMQPValue::LongInt(-1))]), "invalid arg 'x-stream-max-segment-size-bytes' for queue 's.a' in vhost '/': {value_negative,-1}".into()),
        ("s.a", durable(), stream_args(&[("x-max-length-bytes", text("x"))]), "invalid arg 'x-max-length-bytes' for queue 's.a' in vhost '/': \"expected integer, got longstr\"".into()),
        ("s.a", durable(), stream_args(&[("x-initial-cluster-size", AMQPValue::LongInt(0))]), "invalid arg 'x-initial-cluster-size' for queue 's.a' in vhost '/': {value_zero,0}".into()),
        ("s.a", durable(), stream_args(&[("x-initial-cluster-size", text("x"))]), "invalid arg 'x-initial-cluster-size' for queue 's.a' in vhost '/': \"expected integer, got longstr\"".into()),
        ("s.a", durable(), stream_args(&[("x-queue-leader-locator", text("foo"))]), "invalid arg 'x-queue-leader-locator' for queue 's.a' in vhost '/': invalid_queue_locator_arg".into()),
        ("s.a", durable(), stream_args(&[("x-queue-leader-locator", AMQPValue::LongInt(1))]), "invalid arg 'x-queue-leader-locator' for queue 's.a' in vhost '/': {unacceptable_type,signedint}".into()),
        ("s.a", durable(), stream_args(&[("x-max-length", AMQPValue::LongInt(1))]), "invalid arg 'x-max-length' for queue 's.a' in vhost '/' of queue type rabbit_stream_queue".into()),
        ("s.a", durable(), stream_args(&[("x-overflow", text("drop-head"))]), "invalid arg 'x-overflow' for queue 's.a' in vhost '/' of queue type rabbit_stream_queue".into()),
        ("s.a", durable(), stream_args(&[("x-dead-letter-exchange", text("dlx"))]), "invalid arg 'x-dead-letter-exchange' for queue 's.a' in vhost '/' of queue type rabbit_stream_queue".into()),
        ("s.a", durable(), stream_args(&[("x-expires", AMQPValue::LongInt(1000))]), "invalid arg 'x-expires' for queue 's.a' in vhost '/' of queue type rabbit_stream_queue".into()),
    ];
    for (name, options, args, detail) in cases {
        let ch = conn.create_channel().await.unwrap();
        expect_channel_error(
            &conn,
            &ch,
            ch.queue_declare(name.into(), options, args),
            406,
            &format!("PRECONDITION_FAILED - {detail}"),
        )
        .await;
    }
    // Every argument RabbitMQ takes for a stream, and every unit of x-max-age.
    let ch = conn.create_channel().await.unwrap();
    for (i, age) in ["1Y", "2M", "3D", "4h", "5m", "6s"].iter().enumerate() {
        let name = format!("s.ok{i}");
        declare_stream(
            &ch,
            &name,
            &[
                ("x-max-age", text(age)),
                ("x-max-length-bytes", AMQPValue::LongLongInt(1 << 30)),
                ("x-stream-max-segment-size-bytes", AMQPValue::LongInt(0)),
                ("x-initial-cluster-size", AMQPValue::LongInt(1)),
                ("x-queue-leader-locator", text("balanced")),
            ],
        )
        .await;
    }
    declare_stream(&ch, "s.age", &[("x-max-age", text("1h"))]).await;
    expect_channel_error(
        &conn,
        &ch,
        ch.queue_declare("s.age".into(), durable(), stream_args(&[("x-max-age", text("2h"))])),
        406,
        "PRECONDITION_FAILED - inequivalent arg 'x-max-age' for queue 's.age' in vhost '/': received '2h' but current is '1h'",
    )
    .await;
    broker.stop().await;
}

#[tokio::test]
async fn consumers_read_from_where_x_stream_offset_says_and_nothing_is_removed() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = confirming_channel(&conn).await;
    // RabbitMQ's declare-ok says 0 messages for a stream, whatever it holds.
    assert_eq!(declare_stream(&ch, "s", &[]).await, 0);
    publish_confirmed(&ch, "s", bodies(0..10)).await;
    assert_eq!(declare_stream(&ch, "s", &[]).await, 0);

    let all: Vec<(i64, Vec<u8>)> = (0..10).map(|i| (i, format!("m{i}").into_bytes())).collect();
    let (_c1, mut first) = stream_consumer(&conn, "s", 10, Some(text("first"))).await;
    assert_eq!(take_acked(&mut first, 10).await, all);
    // Consuming removed nothing: a second consumer reads it all again.
    let (_c2, mut again) = stream_consumer(&conn, "s", 3, Some(text("first"))).await;
    assert_eq!(take_acked(&mut again, 10).await, all);
    let (_c3, mut from5) = stream_consumer(&conn, "s", 10, Some(AMQPValue::LongLongInt(5))).await;
    assert_eq!(take_acked(&mut from5, 5).await, all[5..]);
    let (_c4, mut short) = stream_consumer(&conn, "s", 10, Some(AMQPValue::ShortInt(7))).await;
    assert_eq!(take_acked(&mut short, 3).await, all[7..]);
    // Below the first offset means the first; a timestamp in the past and an interval
    // reach back to the beginning.
    let (_c5, mut neg) = stream_consumer(&conn, "s", 10, Some(AMQPValue::LongInt(-1))).await;
    assert_eq!(take_acked(&mut neg, 10).await, all);
    let (_c6, mut ts) = stream_consumer(&conn, "s", 10, Some(AMQPValue::Timestamp(1))).await;
    assert_eq!(take_acked(&mut ts, 10).await, all);
    let (_c7, mut ago) = stream_consumer(&conn, "s", 10, Some(text("30m"))).await;
    assert_eq!(take_acked(&mut ago, 10).await, all);
    // last: the last chunk (each confirmed publish here is its own chunk).
    let (_c8, mut last) = stream_consumer(&conn, "s", 10, Some(text("last"))).await;
    assert_eq!(take_acked(&mut last, 1).await, all[9..]);
    // next (and the default, and past the end): only what comes after.
    let (_c9, mut next) = stream_consumer(&conn, "s", 10, Some(text("next"))).await;
    let (_c10, mut default) = stream_consumer(&conn, "s", 10, None).await;
    let (_c11, mut past) = stream_consumer(&conn, "s", 10, Some(AMQPValue::LongLongInt(99))).await;
    publish_confirmed(&ch, "s", bodies(10..12)).await;
    let more = vec![(10, b"m10".to_vec()), (11, b"m11".to_vec())];
    assert_eq!(take_acked(&mut next, 2).await, more);
    assert_eq!(take_acked(&mut default, 2).await, more);
    assert_eq!(take_acked(&mut past, 2).await, more);
    // Consumers at the end follow the tail: the earlier ones get the new entries too.
    assert_eq!(take_acked(&mut first, 2).await, more);
    assert_eq!(take_acked(&mut last, 2).await, more);
    // The consumer count is the queue's.
    let (_, consumers) = counts(&ch, "s").await;
    assert_eq!(consumers, 11);
    broker.stop().await;
}

#[tokio::test]
async fn acks_only_give_credit_back() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = confirming_channel(&conn).await;
    declare_stream(&ch, "s.credit", &[]).await;
    publish_confirmed(&ch, "s.credit", bodies(0..20)).await;
    let (cch, mut c) = stream_consumer(&conn, "s.credit", 2, Some(text("first"))).await;
    let a = next_delivery(&mut c).await;
    let b = next_delivery(&mut c).await;
    assert_eq!((offset_of(&a), offset_of(&b)), (0, 1));
    // Prefetch 2: nothing more until an ack (the queue's own consumer, asked through a
    // round trip on the same channel, has seen both).
    let (_, consumers) = counts(&cch, "s.credit").await;
    assert_eq!(consumers, 1);
    let early = tokio::time::timeout(std::time::Duration::from_millis(200), c.next()).await;
    assert!(early.is_err(), "no third delivery without credit");
    b.ack(BasicAckOptions { multiple: true }).await.unwrap();
    let got = take_acked(&mut c, 18).await;
    assert_eq!(got.first().map(|g| g.0), Some(2));
    assert_eq!(got.last().map(|g| g.0), Some(19));
    broker.stop().await;
}

/// "next" is fixed when basic.consume is handled, as on RabbitMQ: a publish the client
/// sends after basic.consume on the same channel (here in the same write, before
/// consume-ok) reaches the consumer. It was resolved later, in the reader task, so such
/// a publish could land before the start and never be delivered (seen under load).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn next_is_fixed_when_the_consume_is_handled() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = confirming_channel(&conn).await;
    declare_stream(&ch, "s.next", &[]).await;
    for round in 0..20usize {
        let cch = conn.create_channel().await.unwrap();
        cch.basic_qos(10, BasicQosOptions::default()).await.unwrap();
        let body = format!("r{round}").into_bytes();
        let (consumer, published) = tokio::join!(
            cch.basic_consume(
                "s.next".into(),
                "".into(),
                BasicConsumeOptions::default(),
                offset_arg(text("next")),
            ),
            cch.basic_publish(
                "".into(),
                "s.next".into(),
                BasicPublishOptions::default(),
                &body,
                BasicProperties::default(),
            )
        );
        published.expect("publish");
        let mut c = consumer.expect("basic.consume");
        let d = next_delivery(&mut c).await;
        assert_eq!((offset_of(&d), d.data), (round as i64, body));
        cch.close(200, "next round".into()).await.unwrap();
    }
    broker.stop().await;
}

#[tokio::test]
async fn rabbitmq_refusals_for_streams() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = confirming_channel(&conn).await;
    declare_stream(&ch, "s.r", &[]).await;
    publish_confirmed(&ch, "s.r", bodies(0..3)).await;

    // No prefetch on the channel: a channel error.
    let c = conn.create_channel().await.unwrap();
    expect_channel_error(
        &conn,
        &c,
        c.basic_consume(
            "s.r".into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        ),
        406,
        "PRECONDITION_FAILED - consumer prefetch count is not set for 'queue 's.r' in vhost '/''",
    )
    .await;

    // The rest close the connection.
    let hard = |detail: &str| (540u16, format!("NOT_IMPLEMENTED - {detail}"));
    let conn = broker.connect().await;
    let c = conn.create_channel().await.unwrap();
    c.basic_qos(10, BasicQosOptions::default()).await.unwrap();
    let no_ack = BasicConsumeOptions {
        no_ack: true,
        ..Default::default()
    };
    assert_eq!(
        refusal(
            within(c.basic_consume("s.r".into(), "".into(), no_ack, FieldTable::default())).await
        ),
        hard("automatic acknowledgement not supported by stream queues queue 's.r' in vhost '/'")
    );
    let conn = broker.connect().await;
    let c = conn.create_channel().await.unwrap();
    assert_eq!(
        refusal(within(c.basic_get("s.r".into(), Default::default())).await),
        hard("basic.get not supported by stream queues queue 's.r' in vhost '/'")
    );
    let conn = broker.connect().await;
    let c = conn.create_channel().await.unwrap();
    assert_eq!(
        refusal(within(c.queue_purge("s.r".into(), QueuePurgeOptions::default())).await),
        hard("queue.purge not supported by stream queues queue 's.r' in vhost '/'")
    );
    // A value of x-stream-offset RabbitMQ cannot read: its bare INTERNAL_ERROR.
    for bad in [
        text("foo"),
        AMQPValue::Boolean(true),
        text(""),
        text("-1s"),
        AMQPValue::Double(1.5),
    ] {
        let conn = broker.connect().await;
        let c = conn.create_channel().await.unwrap();
        c.basic_qos(10, BasicQosOptions::default()).await.unwrap();
        assert_eq!(
            refusal(
                within(c.basic_consume(
                    "s.r".into(),
                    "".into(),
                    BasicConsumeOptions::default(),
                    offset_arg(bad)
                ))
                .await
            ),
            (541, "INTERNAL_ERROR".to_owned())
        );
    }
    // nack and reject, with or without requeue.
    for reject in [false, true] {
        let conn = broker.connect().await;
        let mut events = Box::pin(conn.events_listener());
        let (_c, mut consumer) = stream_consumer(&conn, "s.r", 10, Some(text("first"))).await;
        let d = next_delivery(&mut consumer).await;
        if reject {
            let _ = d.reject(BasicRejectOptions { requeue: true }).await;
        } else {
            let _ = d
                .nack(BasicNackOptions {
                    multiple: false,
                    requeue: false,
                })
                .await;
        }
        let err = next_error(&mut events).await;
        assert_eq!(
            amqp_error(&err),
            hard("basic.nack and basic.reject not supported by stream queues queue 's.r' in vhost '/'")
        );
    }
    // The stream is unharmed by all that.
    let conn = broker.connect().await;
    let (_c, mut consumer) = stream_consumer(&conn, "s.r", 10, Some(text("first"))).await;
    assert_eq!(take_acked(&mut consumer, 3).await.len(), 3);
    broker.stop().await;
}

#[tokio::test]
async fn a_huge_prefetch_and_a_consumer_that_never_acks_are_bounded_by_credit() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = confirming_channel(&conn).await;
    declare_stream(&ch, "s.h", &[]).await;
    publish_confirmed(&ch, "s.h", bodies(0..300)).await;
    // Never acks: gets exactly its prefetch.
    let (_lazy_ch, mut lazy) = stream_consumer(&conn, "s.h", 5, Some(text("first"))).await;
    for i in 0..5 {
        assert_eq!(offset_of(&next_delivery(&mut lazy).await), i);
    }
    // The largest prefetch: every entry, in order.
    let (_c, mut big) = stream_consumer(&conn, "s.h", u16::MAX, Some(text("first"))).await;
    let got = take_acked(&mut big, 300).await;
    assert!(got.iter().enumerate().all(|(i, g)| g.0 == i as i64));
    let early = tokio::time::timeout(std::time::Duration::from_millis(100), lazy.next()).await;
    assert!(
        early.is_err(),
        "the consumer that never acks got nothing more"
    );
    broker.stop().await;
}

#[tokio::test]
async fn offsets_and_contents_survive_a_restart() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = confirming_channel(&conn).await;
    declare_stream(&ch, "s.restart", &[]).await;
    publish_confirmed(&ch, "s.restart", bodies(0..100)).await;
    drop(conn);
    let dir = broker.restart_later().await;
    let broker = TestBroker::start_on(dir, |c| c).await;
    let conn = broker.connect().await;
    let (_c, mut from50) =
        stream_consumer(&conn, "s.restart", 50, Some(AMQPValue::LongLongInt(50))).await;
    let got = take_acked(&mut from50, 50).await;
    let want: Vec<(i64, Vec<u8>)> = (50..100)
        .map(|i| (i as i64, format!("m{i}").into_bytes()))
        .collect();
    assert_eq!(got, want);
    // Appends continue after the last offset.
    let ch = confirming_channel(&conn).await;
    publish_confirmed(&ch, "s.restart", bodies(100..101)).await;
    assert_eq!(
        take_acked(&mut from50, 1).await,
        vec![(100, b"m100".to_vec())]
    );
    let (_c2, mut first) = stream_consumer(&conn, "s.restart", 200, Some(text("first"))).await;
    assert_eq!(take_acked(&mut first, 101).await.len(), 101);
    broker.stop().await;
}

#[tokio::test]
async fn retention_drops_whole_old_segments() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = confirming_channel(&conn).await;
    declare_stream(
        &ch,
        "s.ret",
        &[
            (
                "x-stream-max-segment-size-bytes",
                AMQPValue::LongInt(10_000),
            ),
            ("x-max-length-bytes", AMQPValue::LongInt(30_000)),
        ],
    )
    .await;
    let body = vec![b'x'; 1000];
    publish_confirmed(&ch, "s.ret", (0..200).map(|_| body.clone())).await;
    let (_c, mut first) = stream_consumer(&conn, "s.ret", 100, Some(text("first"))).await;
    let start = offset_of(&next_delivery(&mut first).await);
    assert!(start > 0, "old segments were dropped");
    assert!(start < 199, "the active segment stays: {start}");
    broker.stop().await;
}

#[tokio::test]
async fn a_max_age_policy_drops_old_segments() {
    let broker = TestBroker::start_manual(common::with_management).await;
    let conn = broker.connect().await;
    let ch = confirming_channel(&conn).await;
    let segment = (
        "x-stream-max-segment-size-bytes",
        AMQPValue::LongInt(10_000),
    );
    declare_stream(&ch, "s.pol", &[segment]).await;
    let policy = serde_json::json!({
        "pattern": "^s\\.pol$", "apply-to": "queues", "definition": {"max-age": "1s"}
    });
    let reply = broker
        .http()
        .put("/api/policies/%2F/s.pol.age", &policy)
        .await;
    assert!(reply.status.is_success(), "{:?}", reply.text());
    let body = vec![b'x'; 1000];
    publish_confirmed(&ch, "s.pol", (0..50).map(|_| body.clone())).await;
    // The entries must be older than max-age on the broker's clock.
    broker.advance(1100).await;
    // New segments roll over, and retention (evaluated then) drops the aged ones.
    publish_confirmed(&ch, "s.pol", (0..30).map(|_| body.clone())).await;
    let (_c, mut first) = stream_consumer(&conn, "s.pol", 100, Some(text("first"))).await;
    let start = offset_of(&next_delivery(&mut first).await);
    assert!(
        start >= 40,
        "segments older than max-age were dropped: first is {start}"
    );
    broker.stop().await;
}

#[tokio::test]
async fn a_consumer_reads_past_a_damaged_chunk() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = confirming_channel(&conn).await;
    let segment = (
        "x-stream-max-segment-size-bytes",
        AMQPValue::LongInt(10_000),
    );
    declare_stream(&ch, "s.dmg", &[segment]).await;
    let body = vec![b'x'; 1000];
    publish_confirmed(&ch, "s.dmg", (0..60).map(|_| body.clone())).await;
    drop(conn);
    let dir = broker.restart_later().await;
    // Flip a byte in the middle of the first (not the last) segment.
    let streams = std::fs::read_dir(dir.join("streams"))
        .unwrap()
        .flatten()
        .next()
        .unwrap();
    let log = std::fs::read_dir(streams.path())
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let mut segments: Vec<_> = std::fs::read_dir(&log)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "segment"))
        .collect();
    segments.sort();
    assert!(segments.len() > 2, "small segments: {segments:?}");
    let mut bytes = std::fs::read(&segments[0]).unwrap();
    let mid = bytes.len() / 2;
    bytes[mid] ^= 0xff;
    std::fs::write(&segments[0], bytes).unwrap();
    let broker = TestBroker::start_on(dir, |c| c).await;
    let conn = broker.connect().await;
    let (_c, mut first) = stream_consumer(&conn, "s.dmg", 100, Some(text("first"))).await;
    let mut offsets = Vec::new();
    while offsets.last() != Some(&59) {
        let d = next_delivery(&mut first).await;
        offsets.push(offset_of(&d));
        d.ack(BasicAckOptions::default()).await.unwrap();
    }
    assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{offsets:?}");
    assert!(
        offsets.len() < 60,
        "the damaged chunk's entries are skipped: {offsets:?}"
    );
    broker.stop().await;
}

#[tokio::test]
async fn deleting_a_stream_removes_its_log_and_a_new_one_starts_empty() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = confirming_channel(&conn).await;
    declare_stream(&ch, "s.del", &[]).await;
    publish_confirmed(&ch, "s.del", bodies(0..5)).await;
    let (_c, mut consumer) = stream_consumer(&conn, "s.del", 10, Some(text("next"))).await;
    within(ch.queue_delete("s.del".into(), Default::default()))
        .await
        .unwrap();
    // The consumer is cancelled by the server.
    assert!(within(consumer.next()).await.is_none(), "cancelled");
    declare_stream(&ch, "s.del", &[]).await;
    publish_confirmed(&ch, "s.del", bodies(7..8)).await;
    let (_c2, mut fresh) = stream_consumer(&conn, "s.del", 10, Some(text("first"))).await;
    assert_eq!(take_acked(&mut fresh, 1).await, vec![(0, b"m7".to_vec())]);
    let streams = broker.data_dir.join("streams");
    let logs: usize = std::fs::read_dir(&streams)
        .unwrap()
        .flatten()
        .map(|vhost| std::fs::read_dir(vhost.path()).unwrap().count())
        .sum();
    assert!(
        logs <= 2,
        "one live log (a deleted one may still be on its way out)"
    );
    broker.stop().await;
}

#[tokio::test]
async fn the_management_api_shows_a_stream() {
    let broker = TestBroker::start_with_management().await;
    let conn = broker.connect().await;
    let ch = confirming_channel(&conn).await;
    declare_stream(&ch, "s.api", &[("x-max-age", text("1h"))]).await;
    publish_confirmed(&ch, "s.api", bodies(0..5)).await;
    let (_c, mut consumer) = stream_consumer(&conn, "s.api", 2, Some(text("first"))).await;
    take_acked(&mut consumer, 5).await;
    let q = broker.http().get("/api/queues/%2F/s.api").await.json();
    assert_eq!(q["type"], "stream");
    assert_eq!(q["messages"], 5);
    assert_eq!(q["messages_ready"], 5);
    assert_eq!(q["messages_unacknowledged"], 0);
    assert_eq!(q["consumers"], 1);
    assert_eq!(q["arguments"]["x-max-age"], "1h");
    let node = q["node"].as_str().unwrap().to_owned();
    assert_eq!(q["members"], serde_json::json!([node]));
    assert_eq!(q["online"], serde_json::json!([node]));
    assert_eq!(q["readers"][&node], 1);
    broker.stop().await;
}

#[tokio::test]
async fn a_long_log_is_replayed_in_order() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = confirming_channel(&conn).await;
    declare_stream(&ch, "s.long", &[]).await;
    const N: usize = 200_000;
    for chunk in 0..(N / 10_000) {
        publish_confirmed(&ch, "s.long", bodies(chunk * 10_000..(chunk + 1) * 10_000)).await;
    }
    let (_c, mut consumer) = stream_consumer(&conn, "s.long", 1000, Some(text("first"))).await;
    let replay = async {
        for i in 0..N {
            let d = consumer.next().await.expect("consumer").expect("delivery");
            assert_eq!(offset_of(&d), i as i64);
            if i % 500 == 499 {
                d.ack(BasicAckOptions { multiple: true }).await.unwrap();
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(300), replay)
        .await
        .expect("replayed within 5 minutes");
    broker.stop().await;
}

/// The warren binary on `data` (port 0 = a free one, or the port it had); its port.
async fn spawn_warren(data: &std::path::Path, port: u16) -> (tokio::process::Child, u16) {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_warren"))
        .args([
            "--bind",
            "127.0.0.1",
            "--log",
            "warn",
            "--management-port",
            "0",
        ])
        .args([
            "--prometheus-port",
            "0",
            "--port",
            &port.to_string(),
            "--data-dir",
        ])
        .arg(data)
        .env_remove("WARREN_DATA_DIR")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn warren");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    let mut reader = tokio::io::BufReader::new(stdout);
    tokio::time::timeout(
        std::time::Duration::from_secs(30),
        reader.read_line(&mut line),
    )
    .await
    .expect("a ready line within 30 s")
    .expect("read the ready line");
    // "warren <version> ready on amqp://HOST:PORT"
    let port = line.trim().rsplit(':').next().and_then(|p| p.parse().ok());
    // The pipe stays open (the broker never writes to a closed one).
    tokio::spawn(
        async move { while reader.read_line(&mut String::new()).await.unwrap_or(0) > 0 {} },
    );
    (child, port.unwrap_or_else(|| panic!("no port in {line:?}")))
}

#[tokio::test]
async fn confirmed_entries_survive_kill_9() {
    let data = std::env::temp_dir().join(format!("warren-streams-kill9-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let (mut warren, port) = spawn_warren(&data, 0).await;
    let url = format!("amqp://guest:guest@127.0.0.1:{port}/%2f");
    let conn = Connection::connect(&url, Default::default())
        .await
        .expect("connect");
    let ch = confirming_channel(&conn).await;
    declare_stream(
        &ch,
        "s.kill",
        &[(
            "x-stream-max-segment-size-bytes",
            AMQPValue::LongInt(20_000),
        )],
    )
    .await;
    publish_confirmed(&ch, "s.kill", bodies(0..1000)).await;
    warren.start_kill().expect("kill -9");
    let _ = warren.wait().await;
    let (_warren, _) = spawn_warren(&data, port).await;
    let conn = Connection::connect(&url, Default::default())
        .await
        .expect("connect again");
    let (_c, mut first) = stream_consumer(&conn, "s.kill", 500, Some(text("first"))).await;
    let got = take_acked(&mut first, 1000).await;
    let want: Vec<(i64, Vec<u8>)> = (0..1000)
        .map(|i| (i as i64, format!("m{i}").into_bytes()))
        .collect();
    assert_eq!(got, want);
    drop(conn);
    let _ = std::fs::remove_dir_all(&data);
}
