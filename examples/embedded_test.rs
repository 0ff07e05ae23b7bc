//! A test as an application writes it against warren started in its own process: the
//! builder starts a broker (in memory, 127.0.0.1, a free port), lapin publishes and
//! consumes through it, and the broker's counters confirm what happened.
//!
//! Run with `cargo run --example embedded_test`: it exits 0 when every assertion holds.
//! README.md's "Use it in your tests" shows this file from its first `use` on (a test
//! in tests/embed.rs keeps the two the same).

use futures::StreamExt;
use lapin::options::*;
use lapin::{types::FieldTable, BasicProperties, Connection, ConnectionProperties};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let broker = warren::Server::builder().start().await?;
    let conn = Connection::connect(&broker.amqp_url(), ConnectionProperties::default()).await?;
    let ch = conn.create_channel().await?;
    let no_args = FieldTable::default;
    ch.queue_declare("orders".into(), QueueDeclareOptions::default(), no_args())
        .await?;
    for order in ["one", "two", "three"] {
        let (options, props) = (BasicPublishOptions::default(), BasicProperties::default());
        ch.basic_publish("".into(), "orders".into(), options, order.as_bytes(), props)
            .await?;
    }

    let options = BasicConsumeOptions::default();
    let mut consumer = ch
        .basic_consume("orders".into(), "worker".into(), options, no_args())
        .await?;
    for expected in ["one", "two", "three"] {
        let delivery = consumer.next().await.ok_or("the consumer ended")??;
        assert_eq!(delivery.data, expected.as_bytes());
        delivery.ack(BasicAckOptions::default()).await?;
    }
    // channel.close-ok comes after the broker handled every ack sent before it: the
    // counters are final.
    ch.close(200, "done".into()).await?;

    let orders = broker.queue_counters("/", "orders").ok_or("no queue")?;
    assert_eq!(
        (orders.published, orders.delivered, orders.acked),
        (3, 3, 3)
    );
    assert_eq!((orders.messages_ready, orders.messages_unacked), (0, 0));
    let totals = broker.counters();
    assert_eq!(
        (totals.published, totals.acked, totals.dead_lettered),
        (3, 3, 0)
    );

    conn.close(200, "bye".into()).await?;
    broker.shutdown().await;
    Ok(())
}
