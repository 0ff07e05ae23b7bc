//! The shortest path a client takes: connect, declare, publish, get, consume, ack.
mod common;

use common::{within, TestBroker};
use futures::StreamExt;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::BasicProperties;

#[tokio::test]
async fn declare_publish_get_consume_ack() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    let q = ch
        .queue_declare(
            "smoke".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    assert_eq!(q.message_count(), 0);
    for body in [b"one".as_slice(), b"two"] {
        ch.basic_publish(
            "".into(),
            "smoke".into(),
            BasicPublishOptions::default(),
            body,
            BasicProperties::default(),
        )
        .await
        .unwrap();
    }
    let got = within(ch.basic_get("smoke".into(), BasicGetOptions { no_ack: true }))
        .await
        .unwrap()
        .expect("a message");
    assert_eq!(got.delivery.data, b"one");
    assert_eq!(got.message_count, 1);
    let mut consumer = ch
        .basic_consume(
            "smoke".into(),
            "c1".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let d = within(consumer.next())
        .await
        .expect("delivery")
        .expect("ok");
    assert_eq!(d.data, b"two");
    d.ack(BasicAckOptions::default()).await.unwrap();
    broker.stop().await;
}
