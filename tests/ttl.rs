//! Message TTL: the queue's x-message-ttl and the per-message expiration property; expired
//! messages leave from the head of the queue, whether or not anyone consumes. Time is
//! the broker's manual clock, moved by the test: what falls due has happened when
//! `advance` returns.
mod common;

use common::{within, TestBroker};
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::BasicProperties;

async fn count(ch: &lapin::Channel, q: &str) -> u32 {
    within(ch.queue_declare(
        q.into(),
        QueueDeclareOptions {
            passive: true,
            ..Default::default()
        },
        FieldTable::default(),
    ))
    .await
    .unwrap()
    .message_count()
}

async fn publish(ch: &lapin::Channel, q: &str, body: &[u8], props: BasicProperties) {
    ch.basic_publish(
        "".into(),
        q.into(),
        BasicPublishOptions::default(),
        body,
        props,
    )
    .await
    .unwrap();
}

async fn manual() -> TestBroker {
    TestBroker::start_manual(|c| c).await
}

#[tokio::test]
async fn queue_ttl_expires_messages_nobody_consumed() {
    let broker = manual().await;
    let (_c, ch) = broker.channel().await;
    let mut args = FieldTable::default();
    args.insert(ShortString::from("x-message-ttl"), AMQPValue::LongInt(300));
    ch.queue_declare("ttl.q".into(), QueueDeclareOptions::default(), args)
        .await
        .unwrap();
    publish(&ch, "ttl.q", b"old", BasicProperties::default()).await;
    assert_eq!(count(&ch, "ttl.q").await, 1);
    broker.advance(250).await;
    assert_eq!(count(&ch, "ttl.q").await, 1, "not yet expired");
    broker.advance(100).await;
    assert_eq!(count(&ch, "ttl.q").await, 0, "expired");
    publish(&ch, "ttl.q", b"fresh", BasicProperties::default()).await;
    let got = within(ch.basic_get("ttl.q".into(), BasicGetOptions { no_ack: true }))
        .await
        .unwrap();
    assert_eq!(got.map(|m| m.delivery.data), Some(b"fresh".to_vec()));
    broker.stop().await;
}

#[tokio::test]
async fn expiration_property_expires_a_message_and_the_shorter_ttl_wins() {
    let broker = manual().await;
    let (_c, ch) = broker.channel().await;
    let mut args = FieldTable::default();
    args.insert(
        ShortString::from("x-message-ttl"),
        AMQPValue::LongInt(60_000),
    );
    ch.queue_declare("exp.q".into(), QueueDeclareOptions::default(), args)
        .await
        .unwrap();
    publish(
        &ch,
        "exp.q",
        b"short",
        BasicProperties::default().with_expiration("200".into()),
    )
    .await;
    publish(&ch, "exp.q", b"long", BasicProperties::default()).await;
    common::synced(&ch).await;
    broker.advance(150).await;
    assert_eq!(count(&ch, "exp.q").await, 2, "not yet expired");
    broker.advance(100).await;
    assert_eq!(count(&ch, "exp.q").await, 1, "the shorter TTL expired");
    let got = within(ch.basic_get("exp.q".into(), BasicGetOptions { no_ack: true }))
        .await
        .unwrap();
    assert_eq!(got.map(|m| m.delivery.data), Some(b"long".to_vec()));
    broker.stop().await;
}

#[tokio::test]
async fn an_expired_message_behind_a_live_head_waits_for_it() {
    // RabbitMQ expires messages only at the head of the queue.
    let broker = manual().await;
    let (_c, ch) = broker.channel().await;
    ch.queue_declare(
        "head.q".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    publish(&ch, "head.q", b"keeps", BasicProperties::default()).await;
    publish(
        &ch,
        "head.q",
        b"expires",
        BasicProperties::default().with_expiration("100".into()),
    )
    .await;
    common::synced(&ch).await;
    broker.advance(500).await;
    assert_eq!(
        count(&ch, "head.q").await,
        2,
        "still behind an unexpired head"
    );
    let first = within(ch.basic_get("head.q".into(), BasicGetOptions { no_ack: true }))
        .await
        .unwrap();
    assert_eq!(first.map(|m| m.delivery.data), Some(b"keeps".to_vec()));
    let second = within(ch.basic_get("head.q".into(), BasicGetOptions { no_ack: true }))
        .await
        .unwrap();
    assert!(second.is_none(), "expired once it reached the head");
    broker.stop().await;
}

#[tokio::test]
async fn ttl_zero_still_reaches_a_waiting_consumer() {
    use futures::StreamExt;
    let broker = TestBroker::start().await;
    let (_c, ch) = broker.channel().await;
    let mut args = FieldTable::default();
    args.insert(ShortString::from("x-message-ttl"), AMQPValue::LongInt(0));
    ch.queue_declare("zero.q".into(), QueueDeclareOptions::default(), args)
        .await
        .unwrap();
    let mut consumer = ch
        .basic_consume(
            "zero.q".into(),
            "c".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    publish(&ch, "zero.q", b"now", BasicProperties::default()).await;
    let d = within(consumer.next())
        .await
        .expect("delivery")
        .expect("ok");
    assert_eq!(d.data, b"now");
    broker.stop().await;
}

#[tokio::test]
async fn x_expires_deletes_a_queue_left_unused() {
    use futures::StreamExt;
    let broker = manual().await;
    let (_c, ch) = broker.channel().await;
    let mut args = FieldTable::default();
    args.insert(ShortString::from("x-expires"), AMQPValue::LongInt(400));
    ch.queue_declare(
        "lease.q".into(),
        QueueDeclareOptions::default(),
        args.clone(),
    )
    .await
    .unwrap();
    // A consumer keeps it alive however long it stays.
    let mut consumer = ch
        .basic_consume(
            "lease.q".into(),
            "c".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    broker.advance(800).await;
    assert_eq!(count(&ch, "lease.q").await, 0, "still there while consumed");
    ch.basic_cancel("c".into(), BasicCancelOptions::default())
        .await
        .unwrap();
    assert!(consumer.next().await.is_none());
    // Unused from now on: gone after the lease (a passive declare would renew it, as
    // in RabbitMQ, so look only once, after the lease).
    broker.advance(900).await;
    let (_c2, watcher) = broker.channel().await;
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let err = within(watcher.queue_declare("lease.q".into(), passive, FieldTable::default()))
        .await
        .expect_err("expired");
    assert!(
        err.to_string()
            .contains("NOT_FOUND - no queue 'lease.q' in vhost '/'"),
        "{err}"
    );
    broker.stop().await;
}
