//! The manual clock driving the broker: message TTL and dead-lettering (a retry after
//! an hour, tested in milliseconds), chains of TTL queues resolved in one move in due
//! order, per-message expiration, x-expires, delayed messages, and two brokers with
//! clocks of their own. Nothing here sleeps: time moves only when a test moves it, and
//! `advance` returns once everything due has fired.
mod common;

use common::{bind_queue, declare_queue, publish, publish_with, ready, table, within, TestBroker};
use futures::StreamExt;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, ExchangeKind};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use warren::Clock;

const MINUTE: Duration = Duration::from_secs(60);

/// A broker on its own manual clock, which starts at 2030-01-01T00:00:00Z.
async fn broker_on_manual_clock() -> (TestBroker, Clock) {
    let clock = Clock::manual_at(UNIX_EPOCH + Duration::from_secs(1_893_456_000));
    let broker = TestBroker::start_with(|c| warren::Config {
        clock: clock.clone(),
        ..c
    })
    .await;
    (broker, clock)
}

async fn advance(clock: &Clock, by: Duration) {
    within(clock.advance(by)).await.expect("a manual clock");
}

fn secs(clock: &Clock) -> i64 {
    clock.unix_ms() / 1000
}

/// A queue whose messages live `ttl_ms` and then go to `next` through the default
/// exchange.
async fn ttl_queue(ch: &Channel, name: &str, ttl_ms: i32, next: &str) {
    let args = table(&[
        ("x-message-ttl", AMQPValue::LongInt(ttl_ms)),
        ("x-dead-letter-exchange", AMQPValue::LongString("".into())),
        (
            "x-dead-letter-routing-key",
            AMQPValue::LongString(next.into()),
        ),
    ]);
    within(ch.queue_declare(name.into(), QueueDeclareOptions::default(), args))
        .await
        .expect("declare a TTL queue");
}

async fn get(ch: &Channel, queue: &str) -> lapin::message::BasicGetMessage {
    within(ch.basic_get(queue.into(), BasicGetOptions { no_ack: true }))
        .await
        .expect("basic.get")
        .unwrap_or_else(|| panic!("a message in {queue}"))
}

/// The x-death entries of a message, newest first: (queue, reason, time in seconds).
fn deaths(msg: &lapin::message::BasicGetMessage) -> Vec<(String, String, i64)> {
    let headers = msg.properties.headers().clone().unwrap_or_default();
    let Some(AMQPValue::FieldArray(list)) = headers.inner().get("x-death") else {
        return Vec::new();
    };
    let text = |t: &FieldTable, k: &str| match t.inner().get(k) {
        Some(AMQPValue::LongString(s)) => s.to_string(),
        other => panic!("{k}: {other:?}"),
    };
    list.as_slice()
        .iter()
        .map(|d| {
            let AMQPValue::FieldTable(t) = d else {
                panic!("an x-death entry is a table: {d:?}")
            };
            let time = match t.inner().get("time") {
                Some(AMQPValue::Timestamp(s)) => *s as i64,
                other => panic!("time: {other:?}"),
            };
            (text(t, "queue"), text(t, "reason"), time)
        })
        .collect()
}

#[tokio::test]
async fn a_retry_after_an_hour_is_tested_without_waiting_an_hour() {
    let (broker, clock) = broker_on_manual_clock().await;
    let (_c, ch) = broker.channel().await;
    declare_queue(&ch, "work").await;
    ttl_queue(&ch, "wait", 3_600_000, "work").await;
    let start = secs(&clock);
    publish(&ch, "", "wait", b"retry me").await;
    assert_eq!(ready(&ch, "wait").await, 1);

    advance(&clock, 59 * MINUTE).await;
    assert_eq!((ready(&ch, "wait").await, ready(&ch, "work").await), (1, 0));

    advance(&clock, MINUTE).await;
    assert_eq!((ready(&ch, "wait").await, ready(&ch, "work").await), (0, 1));
    let msg = get(&ch, "work").await;
    assert_eq!(msg.data, b"retry me");
    assert_eq!(
        deaths(&msg),
        [("wait".to_owned(), "expired".to_owned(), start + 3600)]
    );
}

#[tokio::test]
async fn a_chain_of_ttl_queues_resolves_in_one_advance_in_due_order() {
    let (broker, clock) = broker_on_manual_clock().await;
    let (_c, ch) = broker.channel().await;
    declare_queue(&ch, "end").await;
    ttl_queue(&ch, "second", 20 * 60_000, "end").await;
    ttl_queue(&ch, "first", 30 * 60_000, "second").await;
    let start = secs(&clock);
    // "a" reaches the end after 30 + 20 minutes; "b", straight into the second queue,
    // after 20: it must come out first.
    publish(&ch, "", "first", b"a").await;
    publish(&ch, "", "second", b"b").await;
    // Answered after both publishes (one channel keeps order): they are in.
    assert_eq!(ready(&ch, "second").await, 1);

    advance(&clock, 2 * 60 * MINUTE).await;
    assert_eq!(ready(&ch, "end").await, 2);
    let b = get(&ch, "end").await;
    let a = get(&ch, "end").await;
    assert_eq!(
        (b.data.as_slice(), a.data.as_slice()),
        (&b"b"[..], &b"a"[..])
    );
    assert_eq!(
        deaths(&b),
        [("second".to_owned(), "expired".to_owned(), start + 20 * 60)]
    );
    // Each death at its own time, newest first: the clock stopped at both.
    assert_eq!(
        deaths(&a),
        [
            ("second".to_owned(), "expired".to_owned(), start + 50 * 60),
            ("first".to_owned(), "expired".to_owned(), start + 30 * 60),
        ]
    );
}

#[tokio::test]
async fn per_message_expiration_follows_the_clock() {
    let (broker, clock) = broker_on_manual_clock().await;
    let (_c, ch) = broker.channel().await;
    declare_queue(&ch, "q").await;
    let props = BasicProperties::default().with_expiration("60000".into());
    publish_with(&ch, "", "q", b"short-lived", props).await;
    publish(&ch, "", "q", b"forever").await;
    assert_eq!(ready(&ch, "q").await, 2);

    advance(&clock, Duration::from_secs(59)).await;
    assert_eq!(ready(&ch, "q").await, 2);
    advance(&clock, Duration::from_secs(1)).await;
    assert_eq!(ready(&ch, "q").await, 1);
    assert_eq!(get(&ch, "q").await.data, b"forever");
}

#[tokio::test]
async fn x_expires_deletes_an_unused_queue_when_the_clock_says() {
    let (broker, clock) = broker_on_manual_clock().await;
    let conn = broker.connect().await;
    let ch = conn.create_channel().await.expect("channel");
    let args = table(&[("x-expires", AMQPValue::LongInt(600_000))]);
    within(ch.queue_declare("lease".into(), QueueDeclareOptions::default(), args))
        .await
        .expect("declare");

    advance(&clock, 9 * MINUTE).await;
    // A passive declare uses the queue, as in RabbitMQ: the lease counts from it.
    assert!(common::queue_exists(&conn, "lease").await);
    advance(&clock, 10 * MINUTE).await;
    assert!(!common::queue_exists(&conn, "lease").await);
}

#[tokio::test]
async fn delayed_messages_are_routed_in_due_order_as_the_clock_moves() {
    let (broker, clock) = broker_on_manual_clock().await;
    let (_c, ch) = broker.channel().await;
    within(ch.exchange_declare(
        "later".into(),
        ExchangeKind::Custom("x-delayed-message".into()),
        ExchangeDeclareOptions::default(),
        table(&[("x-delayed-type", AMQPValue::LongString("direct".into()))]),
    ))
    .await
    .expect("declare the delayed exchange");
    declare_queue(&ch, "q").await;
    bind_queue(&ch, "q", "later", "k").await;
    for (body, delay) in [
        ("in 30 s", 30_000),
        ("in 10 s", 10_000),
        ("in 20 s", 20_000),
    ] {
        let headers = table(&[("x-delay", AMQPValue::LongInt(delay))]);
        publish_with(
            &ch,
            "later",
            "k",
            body.as_bytes(),
            BasicProperties::default().with_headers(headers),
        )
        .await;
    }
    assert_eq!(ready(&ch, "q").await, 0);
    advance(&clock, Duration::from_secs(10)).await;
    assert_eq!(ready(&ch, "q").await, 1);
    advance(&clock, Duration::from_secs(25)).await;
    let bodies: Vec<Vec<u8>> = [
        get(&ch, "q").await,
        get(&ch, "q").await,
        get(&ch, "q").await,
    ]
    .into_iter()
    .map(|m| m.data.clone())
    .collect();
    assert_eq!(
        bodies,
        [
            b"in 10 s".to_vec(),
            b"in 20 s".to_vec(),
            b"in 30 s".to_vec()
        ]
    );
}

#[tokio::test]
async fn two_brokers_keep_two_clocks() {
    let (one, clock_one) = broker_on_manual_clock().await;
    let (two, _clock_two) = broker_on_manual_clock().await;
    let (_c1, ch1) = one.channel().await;
    let (_c2, ch2) = two.channel().await;
    for ch in [&ch1, &ch2] {
        declare_queue(ch, "gone-later").await;
        ttl_queue(ch, "wait", 60_000, "gone-later").await;
        publish(ch, "", "wait", b"m").await;
        assert_eq!(ready(ch, "wait").await, 1);
    }
    advance(&clock_one, MINUTE).await;
    assert_eq!(ready(&ch1, "gone-later").await, 1);
    assert_eq!(
        ready(&ch2, "wait").await,
        1,
        "the other broker's clock did not move"
    );
}

#[tokio::test]
async fn the_manual_clock_only_moves_forward_and_the_real_one_not_at_all() {
    let clock = Clock::manual_at(UNIX_EPOCH + Duration::from_secs(1_893_456_000));
    let earlier = UNIX_EPOCH + Duration::from_secs(1_000);
    let refused = clock.set(earlier).await.expect_err("backwards");
    assert_eq!(
        refused.to_string(),
        "the clock only moves forward: it is at 2030-01-01T00:00:00.000Z and \
         1970-01-01T00:16:40.000Z is before that"
    );
    let later = UNIX_EPOCH + Duration::from_secs(1_893_456_000 + 90 * 60);
    assert_eq!(clock.set(later).await, Ok(later));
    assert_eq!(clock.now(), later);
    let real = Clock::real();
    assert_eq!(
        real.advance(MINUTE).await.map_err(|e| e.to_string()),
        Err(
            "the broker runs on the real clock; only a manual clock (--clock manual) can be moved"
                .to_owned()
        )
    );
    assert!(real.now() >= SystemTime::now() - MINUTE);
}

#[tokio::test]
async fn stream_entries_are_dated_by_the_clock() {
    let (broker, clock) = broker_on_manual_clock().await;
    let conn = broker.connect().await;
    let ch = conn.create_channel().await.expect("channel");
    within(ch.confirm_select(ConfirmSelectOptions::default()))
        .await
        .expect("confirms");
    let args = table(&[("x-queue-type", AMQPValue::LongString("stream".into()))]);
    within(ch.queue_declare("log".into(), common::durable(), args))
        .await
        .expect("declare a stream");
    let confirmed = |body: &'static [u8]| {
        let ch = ch.clone();
        async move {
            let confirm = within(ch.basic_publish(
                "".into(),
                "log".into(),
                BasicPublishOptions::default(),
                body,
                BasicProperties::default(),
            ))
            .await
            .expect("publish");
            assert!(within(confirm).await.expect("confirm").is_ack());
        }
    };
    confirmed(b"two hours ago").await;
    advance(&clock, 2 * 60 * MINUTE).await;
    confirmed(b"just now").await;
    // "The last hour" counts back from the clock's time.
    within(ch.basic_qos(10, BasicQosOptions::default()))
        .await
        .expect("qos");
    let offset = table(&[("x-stream-offset", AMQPValue::LongString("1h".into()))]);
    let mut consumer = within(ch.basic_consume(
        "log".into(),
        "".into(),
        BasicConsumeOptions::default(),
        offset,
    ))
    .await
    .expect("consume");
    let first = within(consumer.next())
        .await
        .expect("a delivery")
        .expect("delivery");
    assert_eq!(first.data, b"just now");
}
