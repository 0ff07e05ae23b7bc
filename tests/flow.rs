//! Memory-based flow control: above the memory limit, publishing connections are no
//! longer read (and told so with connection.blocked) until consumers drain the queues.
mod common;

use common::within;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};

#[tokio::test]
async fn memory_alarm_blocks_publishers_until_consumers_drain() {
    let dir = common::scratch_dir("flow");
    let config = warren::Config {
        memory_limit: Some(256 * 1024),
        ..warren::Config::local(&dir)
    };
    let server = warren::start(config).await.expect("start");
    let url = format!("amqp://guest:guest@{}/%2f", server.local_addr());
    let publisher = within(Connection::connect(&url, ConnectionProperties::default()))
        .await
        .unwrap();
    let mut events = Box::pin(publisher.events_listener());
    let pch = publisher.create_channel().await.unwrap();
    pch.queue_declare(
        "flow".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();

    // 64 x 8 KiB is twice the limit: the alarm goes off part way. Publishing runs in its
    // own task: once the broker stops reading, the client's writes stall.
    let body = vec![7u8; 8 * 1024];
    let publishing = tokio::spawn({
        let (pch, body) = (pch.clone(), body.clone());
        async move {
            for _ in 0..64 {
                pch.basic_publish(
                    "".into(),
                    "flow".into(),
                    BasicPublishOptions::default(),
                    &body,
                    BasicProperties::default(),
                )
                .await?;
            }
            lapin::Result::Ok(())
        }
    });
    common::next_blocked(&mut events, true).await;
    assert!(server.broker().memory.alarmed());

    // The blocked connection is not read: a request on it waits.
    let mut pending = tokio::spawn({
        let pch = pch.clone();
        async move {
            pch.queue_declare(
                "flow".into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
        }
    });
    common::assert_still_pending(&mut pending, "a blocked publisher's request was answered").await;

    // A consumer on another connection drains; the publisher is then read again and
    // every message it sent arrives.
    let consumer = within(Connection::connect(&url, ConnectionProperties::default()))
        .await
        .unwrap();
    let cch = consumer.create_channel().await.unwrap();
    // The publisher's last messages arrive once it is read again, after the first gets.
    for _ in 0..64 {
        let m = common::get_eventually(&cch, "flow").await;
        assert_eq!(m.delivery.data.len(), body.len());
    }
    within(pending)
        .await
        .expect("join")
        .expect("answered once unblocked");
    within(publishing)
        .await
        .expect("join")
        .expect("every publish went out");
    assert!(!server.broker().memory.alarmed());
    common::next_blocked(&mut events, false).await;
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn low_disk_blocks_publishers_but_not_consumers() {
    // A free-space limit no disk meets: the disk alarm is on from the start.
    let b = common::TestBroker::start_with(|c| warren::Config {
        disk_free_limit: u64::MAX,
        ..c
    })
    .await;
    assert!(b.server.broker().memory.alarmed());
    assert_eq!(b.server.broker().memory.alarm_reason(), "low on disk");

    let consumer = b.connect().await;
    let cch = consumer.create_channel().await.unwrap();
    cch.queue_declare(
        "disk".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("a connection that has not published is served");

    let publisher = b.connect().await;
    let mut events = Box::pin(publisher.events_listener());
    let pch = publisher.create_channel().await.unwrap();
    pch.basic_publish(
        "".into(),
        "disk".into(),
        BasicPublishOptions::default(),
        b"one",
        BasicProperties::default(),
    )
    .await
    .unwrap();
    common::next_blocked(&mut events, true).await;
    // The message read before the block is delivered; the consumer is not blocked.
    let got = common::get_eventually(&cch, "disk").await;
    assert_eq!(got.delivery.data, b"one");
    b.stop().await;
}
