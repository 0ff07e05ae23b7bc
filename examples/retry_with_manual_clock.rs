//! A retry-after-an-hour flow tested in milliseconds: a message waits in a queue whose
//! TTL is one hour and which dead-letters to the work queue. On a manual clock nothing
//! happens until the test moves time; `advance(1 h)` expires the message, which arrives
//! in the work queue with RabbitMQ's `x-death` history, and the counters agree.
//!
//! Run with `cargo run --example retry_with_manual_clock`: it exits 0 when every
//! assertion holds. README.md's "Use it in your tests" shows this file; keep them in sync.

use futures::StreamExt;
use lapin::options::{BasicConsumeOptions, BasicPublishOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Connection, ConnectionProperties};
use std::time::Duration;

const HOUR: Duration = Duration::from_secs(3600);

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let broker = warren::Server::builder()
        .clock(warren::Clock::manual())
        .start()
        .await?;
    let conn = Connection::connect(&broker.amqp_url(), ConnectionProperties::default()).await?;
    let ch = conn.create_channel().await?;

    // retry.wait holds a message for an hour, then hands it to retry.work.
    let mut wait_args = FieldTable::default();
    wait_args.insert("x-message-ttl".into(), AMQPValue::LongUInt(3_600_000));
    wait_args.insert(
        "x-dead-letter-exchange".into(),
        AMQPValue::LongString("".into()),
    );
    wait_args.insert(
        "x-dead-letter-routing-key".into(),
        AMQPValue::LongString("retry.work".into()),
    );
    let options = QueueDeclareOptions::default();
    ch.queue_declare("retry.wait".into(), options, wait_args)
        .await?;
    ch.queue_declare("retry.work".into(), options, FieldTable::default())
        .await?;
    let mut work = ch
        .basic_consume(
            "retry.work".into(),
            "worker".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;

    // Publisher confirms: once confirmed, the message is in retry.wait.
    ch.confirm_select(Default::default()).await?;
    ch.basic_publish(
        "".into(),
        "retry.wait".into(),
        BasicPublishOptions::default(),
        b"try again",
        BasicProperties::default(),
    )
    .await?
    .await?;

    // Fifty-nine minutes: still waiting.
    broker
        .clock()
        .advance(HOUR - Duration::from_secs(60))
        .await?;
    let wait = broker
        .queue_counters("/", "retry.wait")
        .ok_or("no retry.wait")?;
    assert_eq!((wait.messages_ready, wait.dead_lettered), (1, 0));

    // The hour is up: the message expires and is dead-lettered before `advance` returns.
    broker.clock().advance(Duration::from_secs(60)).await?;
    // A bound on the wait, so that a broken flow fails instead of hanging.
    let next = tokio::time::timeout(Duration::from_secs(10), work.next());
    let delivery = next.await?.ok_or("the consumer ended")??;
    assert_eq!(delivery.data, b"try again");
    let headers = delivery.properties.headers().clone().ok_or("no headers")?;
    let Some(AMQPValue::FieldArray(deaths)) = headers.inner().get("x-death") else {
        return Err("no x-death header".into());
    };
    let Some(AMQPValue::FieldTable(death)) = deaths.as_slice().first() else {
        return Err("an empty x-death".into());
    };
    let field = |key: &str| death.inner().get(key).cloned();
    assert_eq!(
        field("queue"),
        Some(AMQPValue::LongString("retry.wait".into()))
    );
    assert_eq!(
        field("reason"),
        Some(AMQPValue::LongString("expired".into()))
    );
    assert_eq!(field("count"), Some(AMQPValue::LongLongInt(1)));

    let wait = broker
        .queue_counters("/", "retry.wait")
        .ok_or("no retry.wait")?;
    assert_eq!(
        (wait.published, wait.dead_lettered, wait.messages_ready),
        (1, 1, 0)
    );
    let work_counters = broker
        .queue_counters("/", "retry.work")
        .ok_or("no retry.work")?;
    assert_eq!((work_counters.published, work_counters.delivered), (1, 1));
    let totals = broker.counters();
    assert_eq!(
        (totals.published, totals.dead_lettered, totals.delivered),
        (1, 1, 1)
    );

    conn.close(200, "bye".into()).await?;
    broker.shutdown().await;
    println!("retry_with_manual_clock: ok");
    Ok(())
}
