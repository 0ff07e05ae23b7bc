//! Dead-lettering: rejected (no requeue), expired and length-dropped messages go to the
//! queue's x-dead-letter-exchange with RabbitMQ's x-death history.
mod common;

use common::{within, TestBroker};
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, ExchangeKind};

fn args(pairs: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in pairs {
        t.insert(ShortString::from(*k), v.clone());
    }
    t
}

fn s(v: &str) -> AMQPValue {
    AMQPValue::LongString(v.into())
}

/// A dead-letter exchange "dlx" (fanout) with its queue "dlq", and a source queue.
async fn setup(ch: &lapin::Channel, source: &str, extra: &[(&str, AMQPValue)]) {
    ch.exchange_declare(
        "dlx".into(),
        ExchangeKind::Fanout,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.queue_declare(
        "dlq".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.queue_bind(
        "dlq".into(),
        "dlx".into(),
        "".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let mut pairs = vec![("x-dead-letter-exchange", s("dlx"))];
    pairs.extend(extra.iter().cloned());
    ch.queue_declare(source.into(), QueueDeclareOptions::default(), args(&pairs))
        .await
        .unwrap();
}

/// Waits for the dead letter in "dlq" (dead-lettering is asynchronous, as in RabbitMQ).
async fn dead_letter(ch: &lapin::Channel) -> lapin::message::BasicGetMessage {
    common::get_eventually(ch, "dlq").await
}

fn death(m: &lapin::message::BasicGetMessage) -> (FieldTable, FieldTable) {
    let headers = m.delivery.properties.headers().clone().expect("headers");
    let Some(AMQPValue::FieldArray(deaths)) = headers.inner().get("x-death").cloned() else {
        panic!("no x-death in {headers:?}")
    };
    let Some(AMQPValue::FieldTable(first)) = deaths.as_slice().first().cloned() else {
        panic!("empty x-death")
    };
    (headers, first)
}

#[tokio::test]
async fn rejected_message_is_dead_lettered_with_its_history() {
    let broker = TestBroker::start().await;
    let (_c, ch) = broker.channel().await;
    setup(&ch, "work", &[]).await;
    ch.basic_publish(
        "".into(),
        "work".into(),
        BasicPublishOptions::default(),
        b"job",
        BasicProperties::default(),
    )
    .await
    .unwrap();
    let got = within(ch.basic_get("work".into(), BasicGetOptions::default()))
        .await
        .unwrap()
        .expect("job");
    got.delivery
        .reject(BasicRejectOptions { requeue: false })
        .await
        .unwrap();
    let m = dead_letter(&ch).await;
    assert_eq!(m.delivery.data, b"job");
    assert_eq!(m.delivery.exchange.as_str(), "dlx");
    assert_eq!(
        m.delivery.routing_key.as_str(),
        "work",
        "the original routing key"
    );
    let (headers, first) = death(&m);
    assert_eq!(first.inner().get("reason"), Some(&s("rejected")));
    assert_eq!(first.inner().get("queue"), Some(&s("work")));
    assert_eq!(first.inner().get("exchange"), Some(&s("")));
    assert_eq!(first.inner().get("count"), Some(&AMQPValue::LongLongInt(1)));
    assert_eq!(
        headers.inner().get("x-first-death-reason"),
        Some(&s("rejected"))
    );
    broker.stop().await;
}

#[tokio::test]
async fn expired_message_is_dead_lettered_without_its_expiration() {
    let broker = TestBroker::start_manual(|c| c).await;
    let (_c, ch) = broker.channel().await;
    setup(&ch, "delay", &[("x-dead-letter-routing-key", s("retry"))]).await;
    let props = BasicProperties::default().with_expiration("100".into());
    ch.basic_publish(
        "".into(),
        "delay".into(),
        BasicPublishOptions::default(),
        b"later",
        props,
    )
    .await
    .unwrap();
    common::synced(&ch).await;
    broker.advance(100).await;
    let m = dead_letter(&ch).await;
    assert_eq!(
        m.delivery.routing_key.as_str(),
        "retry",
        "x-dead-letter-routing-key"
    );
    assert!(m.delivery.properties.expiration().is_none());
    let (_, first) = death(&m);
    assert_eq!(first.inner().get("reason"), Some(&s("expired")));
    assert_eq!(first.inner().get("original-expiration"), Some(&s("100")));
    broker.stop().await;
}

#[tokio::test]
async fn message_dropped_by_max_length_is_dead_lettered() {
    let broker = TestBroker::start().await;
    let (_c, ch) = broker.channel().await;
    setup(&ch, "short", &[("x-max-length", AMQPValue::LongInt(1))]).await;
    for b in [b"first", b"secnd"] {
        ch.basic_publish(
            "".into(),
            "short".into(),
            BasicPublishOptions::default(),
            b,
            BasicProperties::default(),
        )
        .await
        .unwrap();
    }
    let m = dead_letter(&ch).await;
    assert_eq!(m.delivery.data, b"first");
    assert_eq!(death(&m).1.inner().get("reason"), Some(&s("maxlen")));
    broker.stop().await;
}

#[tokio::test]
async fn automatic_dead_letter_cycles_are_dropped_rejections_are_not() {
    let broker = TestBroker::start_manual(|c| c).await;
    let (_c, ch) = broker.channel().await;
    let declare = |name: &'static str, to: &'static str, ttl: bool| {
        let ch = ch.clone();
        async move {
            let mut a = vec![
                ("x-dead-letter-exchange", s("")),
                ("x-dead-letter-routing-key", s(to)),
            ];
            if ttl {
                a.push(("x-message-ttl", AMQPValue::LongInt(20)));
            }
            ch.queue_declare(name.into(), QueueDeclareOptions::default(), args(&a))
                .await
                .unwrap();
        }
    };
    let publish = |queue: &'static str| {
        let ch = ch.clone();
        async move {
            ch.basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions::default(),
                b"m",
                BasicProperties::default(),
            )
            .await
            .unwrap();
        }
    };
    // Expiring into itself, and round two queues: once round, the message is dropped
    // (without the check it would circle forever).
    declare("cyc.self", "cyc.self", true).await;
    declare("cyc.a", "cyc.b", true).await;
    declare("cyc.b", "cyc.a", true).await;
    publish("cyc.self").await;
    publish("cyc.a").await;
    common::synced(&ch).await;
    // Each expiry (every 20 ms, in turn) happens within this one step of the clock.
    broker.advance(200).await;
    assert_eq!(common::ready(&ch, "cyc.self").await, 0);
    assert_eq!(common::ready(&ch, "cyc.a").await, 0);
    assert_eq!(common::ready(&ch, "cyc.b").await, 0);

    // A rejection back into the same queue is a client's decision: it comes back.
    declare("cyc.rj", "cyc.rj", false).await;
    publish("cyc.rj").await;
    let got = common::get_eventually_with(&ch, "cyc.rj", false).await;
    got.delivery
        .reject(BasicRejectOptions { requeue: false })
        .await
        .unwrap();
    let back = common::get_eventually(&ch, "cyc.rj").await;
    assert_eq!(back.delivery.data, b"m");
    broker.stop().await;
}

#[tokio::test]
async fn quorum_queues_count_deliveries_and_dead_letter_past_the_limit() {
    let broker = TestBroker::start().await;
    let (_c, ch) = broker.channel().await;
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    ch.queue_declare("qdl.dead".into(), durable, FieldTable::default())
        .await
        .unwrap();
    let a = args(&[
        ("x-queue-type", s("quorum")),
        ("x-delivery-limit", AMQPValue::LongInt(2)),
        ("x-dead-letter-exchange", s("")),
        ("x-dead-letter-routing-key", s("qdl.dead")),
    ]);
    ch.queue_declare("qdl.q".into(), durable, a).await.unwrap();
    let props = BasicProperties::default().with_headers(args(&[("a", AMQPValue::LongInt(1))]));
    ch.basic_publish(
        "".into(),
        "qdl.q".into(),
        BasicPublishOptions::default(),
        b"poison",
        props,
    )
    .await
    .unwrap();
    // Delivered with x-delivery-count 0, 1, 2 and returned each time: the third return
    // passes the limit and the message is dead-lettered, without the count header.
    for n in 0..3i64 {
        let m = common::get_eventually_with(&ch, "qdl.q", false).await;
        let headers = m.delivery.properties.headers().clone().unwrap_or_default();
        assert_eq!(
            headers.inner().get("x-delivery-count"),
            Some(&AMQPValue::LongLongInt(n))
        );
        assert_eq!(m.delivery.redelivered, n > 0);
        m.delivery
            .nack(BasicNackOptions {
                requeue: true,
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let dead = common::get_eventually(&ch, "qdl.dead").await;
    assert_eq!(dead.delivery.data, b"poison");
    let headers = dead
        .delivery
        .properties
        .headers()
        .clone()
        .unwrap_or_default();
    assert!(headers.inner().get("x-delivery-count").is_none());
    assert_eq!(headers.inner().get("a"), Some(&AMQPValue::LongInt(1)));
    assert_eq!(
        headers.inner().get("x-first-death-reason"),
        Some(&s("delivery_limit"))
    );
    assert_eq!(common::ready(&ch, "qdl.q").await, 0);
    broker.stop().await;
}
