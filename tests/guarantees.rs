//! Transactions, exchange-to-exchange bindings, alternate exchanges and direct reply-to.
mod common;

use common::{publish, ready, within, TestBroker};
use futures::StreamExt;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, ExchangeKind};

#[tokio::test]
async fn tx_commit_applies_and_rollback_discards_publishes_and_acks() {
    let broker = TestBroker::start().await;
    let (_c, ch) = broker.channel().await;
    ch.queue_declare(
        "txq".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    within(ch.tx_select()).await.unwrap();
    publish(&ch, "", "txq", b"a").await;
    publish(&ch, "", "txq", b"b").await;
    assert_eq!(ready(&ch, "txq").await, 0, "nothing before commit");
    within(ch.tx_commit()).await.unwrap();
    assert_eq!(ready(&ch, "txq").await, 2);
    publish(&ch, "", "txq", b"c").await;
    within(ch.tx_rollback()).await.unwrap();
    assert_eq!(ready(&ch, "txq").await, 2, "rolled back publish is gone");

    // an ack inside a rolled-back transaction does not happen
    let got = within(ch.basic_get("txq".into(), BasicGetOptions::default()))
        .await
        .unwrap()
        .expect("msg");
    got.delivery.ack(BasicAckOptions::default()).await.unwrap();
    within(ch.tx_rollback()).await.unwrap();
    got.delivery.ack(BasicAckOptions::default()).await.unwrap();
    within(ch.tx_commit()).await.unwrap();
    assert_eq!(ready(&ch, "txq").await, 1);
    broker.stop().await;
}

#[tokio::test]
async fn tx_commit_without_select_is_precondition_failed() {
    let broker = TestBroker::start().await;
    let (_c, ch) = broker.channel().await;
    let err = within(ch.tx_commit()).await.expect_err("not transactional");
    assert!(
        err.to_string()
            .contains("PRECONDITION_FAILED - channel is not transactional"),
        "{err}"
    );
    broker.stop().await;
}

#[tokio::test]
async fn exchange_bindings_route_once_through_cycles() {
    let broker = TestBroker::start().await;
    let (_c, ch) = broker.channel().await;
    for x in ["e1", "e2"] {
        ch.exchange_declare(
            x.into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    }
    ch.exchange_bind(
        "e2".into(),
        "e1".into(),
        "".into(),
        ExchangeBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.exchange_bind(
        "e1".into(),
        "e2".into(),
        "".into(),
        ExchangeBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.queue_declare(
        "e2q".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.queue_bind(
        "e2q".into(),
        "e2".into(),
        "".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.queue_bind(
        "e2q".into(),
        "e1".into(),
        "".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    publish(&ch, "e1", "k", b"x").await;
    assert_eq!(
        ready(&ch, "e2q").await,
        1,
        "delivered once despite two paths and a cycle"
    );
    ch.exchange_unbind(
        "e2".into(),
        "e1".into(),
        "".into(),
        ExchangeUnbindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.queue_unbind("e2q".into(), "e1".into(), "".into(), FieldTable::default())
        .await
        .unwrap();
    publish(&ch, "e1", "k", b"y").await;
    assert_eq!(ready(&ch, "e2q").await, 1, "unbound: nothing more arrives");
    broker.stop().await;
}

#[tokio::test]
async fn alternate_exchange_takes_unroutable_messages() {
    let broker = TestBroker::start().await;
    let (_c, ch) = broker.channel().await;
    ch.exchange_declare(
        "ae".into(),
        ExchangeKind::Fanout,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let mut args = FieldTable::default();
    args.insert(
        ShortString::from("alternate-exchange"),
        AMQPValue::LongString("ae".into()),
    );
    ch.exchange_declare(
        "main".into(),
        ExchangeKind::Direct,
        ExchangeDeclareOptions::default(),
        args,
    )
    .await
    .unwrap();
    ch.queue_declare(
        "aeq".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    ch.queue_bind(
        "aeq".into(),
        "ae".into(),
        "".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    publish(&ch, "main", "nobody", b"lost?").await;
    assert_eq!(ready(&ch, "aeq").await, 1);
    broker.stop().await;
}

#[tokio::test]
async fn direct_reply_to_round_trip_and_misuse() {
    let broker = TestBroker::start().await;
    let (_c, requester) = broker.channel().await;
    let (_c2, responder) = broker.channel().await;
    responder
        .queue_declare(
            "rpc".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut replies = requester
        .basic_consume(
            "amq.rabbitmq.reply-to".into(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    requester
        .basic_publish(
            "".into(),
            "rpc".into(),
            BasicPublishOptions::default(),
            b"ping",
            BasicProperties::default()
                .with_reply_to("amq.rabbitmq.reply-to".into())
                .with_correlation_id("c1".into()),
        )
        .await
        .unwrap();
    let req = within(responder.basic_get("rpc".into(), BasicGetOptions { no_ack: true }))
        .await
        .unwrap()
        .expect("request");
    let reply_to = req
        .delivery
        .properties
        .reply_to()
        .clone()
        .expect("reply_to")
        .to_string();
    assert!(reply_to.starts_with("amq.rabbitmq.reply-to."), "{reply_to}");
    responder
        .basic_publish(
            "".into(),
            reply_to.as_str().into(),
            BasicPublishOptions::default(),
            b"pong",
            BasicProperties::default().with_correlation_id("c1".into()),
        )
        .await
        .unwrap();
    let reply = within(replies.next()).await.expect("reply").expect("ok");
    assert_eq!(reply.data, b"pong");

    // publishing with reply_to set on a channel that does not consume replies
    let publish = responder.basic_publish(
        "".into(),
        "rpc".into(),
        BasicPublishOptions::default(),
        b"x",
        BasicProperties::default().with_reply_to("amq.rabbitmq.reply-to".into()),
    );
    let err =
        common::channel_close_error(&responder, async move { publish.await.map(|_| ()) }).await;
    assert!(
        err.to_string()
            .contains("fast reply consumer does not exist"),
        "{err}"
    );

    // consuming replies with acknowledgements
    let (_c3, ch) = broker.channel().await;
    let err = ch
        .basic_consume(
            "amq.rabbitmq.reply-to".into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect_err("ack mode refused");
    assert!(
        err.to_string()
            .contains("reply consumer cannot acknowledge"),
        "{err}"
    );
    broker.stop().await;
}

#[tokio::test]
async fn update_secret_is_acknowledged_and_the_connection_goes_on() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    within(conn.update_secret("guest".into(), "refresh".into()))
        .await
        .expect("update-secret-ok");
    let ch = conn.create_channel().await.expect("still usable");
    ch.queue_declare(
        "after-secret".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("declare");
    broker.stop().await;
}

#[tokio::test]
async fn consumer_priorities_serve_the_highest_consumer_with_room_first() {
    let broker = TestBroker::start().await;
    let (_c, ch) = broker.channel().await;
    ch.queue_declare(
        "cprio".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let (_c2, high_ch) = broker.channel().await;
    high_ch
        .basic_qos(2, BasicQosOptions::default())
        .await
        .unwrap();
    let mut high_args = FieldTable::default();
    high_args.insert(ShortString::from("x-priority"), AMQPValue::LongInt(10));
    let mut high = high_ch
        .basic_consume(
            "cprio".into(),
            "high".into(),
            BasicConsumeOptions::default(),
            high_args,
        )
        .await
        .unwrap();
    let mut low = ch
        .basic_consume(
            "cprio".into(),
            "low".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    for i in 0..5u8 {
        publish(&ch, "", "cprio", &[i]).await;
    }
    // The high-priority consumer takes what its prefetch allows; the rest overflow to low.
    let mut to_high = Vec::new();
    for _ in 0..2 {
        to_high.push(
            within(high.next())
                .await
                .expect("delivery")
                .expect("ok")
                .data[0],
        );
    }
    let mut to_low = Vec::new();
    for _ in 0..3 {
        to_low.push(
            within(low.next())
                .await
                .expect("delivery")
                .expect("ok")
                .data[0],
        );
    }
    assert_eq!(to_high, vec![0, 1]);
    assert_eq!(to_low, vec![2, 3, 4]);
    broker.stop().await;
}
