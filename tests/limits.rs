//! Queue length limits: x-max-length, x-max-length-bytes, x-overflow drop-head and
//! reject-publish (a refused publish is nacked to a confirming publisher).
mod common;

use common::{table, within, TestBroker};
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::BasicProperties;
use lapin::Confirmation;

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
