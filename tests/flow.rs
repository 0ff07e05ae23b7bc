//! Memory-based flow control: above the memory limit, publishing connections are no
//! longer read (and told so with connection.blocked) until consumers drain the queues.
mod common;

use common::within;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection, ConnectionProperties};
use std::time::Duration;

#[tokio::test]
async fn memory_alarm_blocks_publishers_until_consumers_drain() {
    let dir = std::env::temp_dir().join(format!("warren-flow-{}", std::process::id()));
    let config = warren::Config {
        memory_limit: Some(256 * 1024),
        ..warren::Config::local(&dir)
    };
    let server = warren::start(config).await.expect("start");
    let url = format!("amqp://guest:guest@{}/%2f", server.local_addr());
    let publisher = within(Connection::connect(&url, ConnectionProperties::default()))
        .await
        .unwrap();
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
    within(async {
        while !publisher.status().blocked() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(server.broker().memory.alarmed());

    // The blocked connection is not read: a request on it waits.
    let pending = tokio::spawn({
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
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !pending.is_finished(),
        "a blocked publisher's request was answered"
    );

    // A consumer on another connection drains; the publisher is then read again and
    // every message it sent arrives.
    let consumer = within(Connection::connect(&url, ConnectionProperties::default()))
        .await
        .unwrap();
    let cch = consumer.create_channel().await.unwrap();
    let mut got = 0;
    within(async {
        while got < 64 {
            match cch
                .basic_get("flow".into(), BasicGetOptions { no_ack: true })
                .await
                .unwrap()
            {
                Some(m) => {
                    assert_eq!(m.delivery.data.len(), body.len());
                    got += 1;
                }
                None => tokio::time::sleep(Duration::from_millis(5)).await,
            }
        }
    })
    .await;
    within(pending)
        .await
        .expect("join")
        .expect("answered once unblocked");
    within(publishing)
        .await
        .expect("join")
        .expect("every publish went out");
    assert!(!server.broker().memory.alarmed());
    within(async {
        while publisher.status().blocked() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
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
    within(async {
        while !publisher.status().blocked() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    // The message read before the block is delivered; the consumer is not blocked.
    let got = common::get_eventually(&cch, "disk").await;
    assert_eq!(got.delivery.data, b"one");
    b.stop().await;
}
