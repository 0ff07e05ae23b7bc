//! Quorum queues' delivery counts and poison-message handling as RabbitMQ 3.10.8 shows
//! them: x-delivery-count on every delivery (0 the first time), counted on every return
//! (nack or reject with requeue, basic.recover, the channel closing), not on a consumer
//! cancel; past x-delivery-limit (argument or `delivery-limit` policy) the message is
//! dead-lettered with reason delivery_limit or dropped. Counts survive restarts: the
//! store records each redelivery of a persistent message in a durable quorum queue.
mod common;

use common::{get_eventually, get_eventually_with, table, within, TestBroker};
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel};
use serde_json::json;

fn s(v: &str) -> AMQPValue {
    AMQPValue::LongString(v.into())
}

fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..Default::default()
    }
}

/// A durable quorum queue `name` with `extra` arguments, and a durable dead-letter queue
/// `name.dead` reached through the default exchange.
async fn quorum(ch: &Channel, name: &str, extra: &[(&str, AMQPValue)]) {
    let dead = format!("{name}.dead");
    within(ch.queue_declare(dead.as_str().into(), durable(), FieldTable::default()))
        .await
        .expect("dead-letter queue");
    let mut args = vec![
        ("x-queue-type", s("quorum")),
        ("x-dead-letter-exchange", s("")),
        ("x-dead-letter-routing-key", s(&dead)),
    ];
    args.extend_from_slice(extra);
    within(ch.queue_declare(name.into(), durable(), table(&args)))
        .await
        .expect("quorum queue");
}

async fn publish_persistent(ch: &Channel, queue: &str, body: &[u8]) {
    within(ch.confirm_select(ConfirmSelectOptions::default()))
        .await
        .unwrap();
    within(ch.basic_publish(
        "".into(),
        queue.into(),
        BasicPublishOptions::default(),
        body,
        BasicProperties::default().with_delivery_mode(2),
    ))
    .await
    .unwrap()
    .await
    .unwrap();
}

/// The x-delivery-count of a delivery, if any.
fn count_of(props: &BasicProperties) -> Option<i64> {
    match props.headers().as_ref()?.inner().get("x-delivery-count") {
        Some(AMQPValue::LongLongInt(n)) => Some(*n),
        _ => None,
    }
}

/// basic.get (manual ack), asserts x-delivery-count is `n`, nacks it back.
async fn get_and_requeue(ch: &Channel, queue: &str, n: i64) {
    let m = get_eventually_with(ch, queue, false).await;
    assert_eq!(count_of(&m.delivery.properties), Some(n), "delivery {n}");
    assert_eq!(m.delivery.redelivered, n > 0);
    m.delivery
        .nack(BasicNackOptions {
            requeue: true,
            ..Default::default()
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn delivery_counts_survive_a_restart() {
    let broker = TestBroker::start().await;
    let (c, ch) = broker.channel().await;
    quorum(&ch, "qd.a", &[]).await;
    publish_persistent(&ch, "qd.a", b"m").await;
    for n in 0..3 {
        get_and_requeue(&ch, "qd.a", n).await;
    }
    c.close(200, "bye".into()).await.ok();
    let broker = TestBroker::start_on(broker.restart_later().await, |c| c).await;
    let (_c, ch) = broker.channel().await;
    get_and_requeue(&ch, "qd.a", 3).await;
    // And again: the count recorded after the restart survives the next one.
    let broker = TestBroker::start_on(broker.restart_later().await, |c| c).await;
    let (_c, ch) = broker.channel().await;
    let m = get_eventually_with(&ch, "qd.a", false).await;
    assert_eq!(count_of(&m.delivery.properties), Some(4));
    m.delivery.ack(BasicAckOptions::default()).await.unwrap();
    assert_eq!(common::ready(&ch, "qd.a").await, 0);
    broker.stop().await;
}

#[tokio::test]
async fn a_delivery_out_with_a_client_at_the_restart_counts_as_returned() {
    let broker = TestBroker::start().await;
    let (_c, ch) = broker.channel().await;
    quorum(&ch, "qd.b", &[]).await;
    publish_persistent(&ch, "qd.b", b"m").await;
    get_and_requeue(&ch, "qd.b", 0).await;
    // Delivered a second time and still unacked when the broker stops.
    let m = get_eventually_with(&ch, "qd.b", false).await;
    assert_eq!(count_of(&m.delivery.properties), Some(1));
    let broker = TestBroker::start_on(broker.restart_later().await, |c| c).await;
    let (_c, ch) = broker.channel().await;
    let m = get_eventually_with(&ch, "qd.b", false).await;
    assert_eq!(count_of(&m.delivery.properties), Some(2));
    assert!(m.delivery.redelivered);
    broker.stop().await;
}

#[tokio::test]
async fn the_delivery_limit_still_applies_after_a_restart() {
    let broker = TestBroker::start().await;
    let (c, ch) = broker.channel().await;
    quorum(&ch, "qd.c", &[("x-delivery-limit", AMQPValue::LongInt(2))]).await;
    publish_persistent(&ch, "qd.c", b"poison").await;
    get_and_requeue(&ch, "qd.c", 0).await;
    get_and_requeue(&ch, "qd.c", 1).await;
    c.close(200, "bye".into()).await.ok();
    let broker = TestBroker::start_on(broker.restart_later().await, |c| c).await;
    let (_c, ch) = broker.channel().await;
    get_and_requeue(&ch, "qd.c", 2).await;
    let dead = get_eventually(&ch, "qd.c.dead").await;
    assert_eq!(dead.delivery.data, b"poison");
    let headers = dead
        .delivery
        .properties
        .headers()
        .clone()
        .unwrap_or_default();
    assert!(headers.inner().get("x-delivery-count").is_none());
    assert_eq!(
        headers.inner().get("x-first-death-reason"),
        Some(&s("delivery_limit"))
    );
    let Some(AMQPValue::FieldArray(deaths)) = headers.inner().get("x-death") else {
        panic!("no x-death in {headers:?}");
    };
    let Some(AMQPValue::FieldTable(death)) = deaths.as_slice().first() else {
        panic!("empty x-death");
    };
    let field = |k: &str| death.inner().get(k).cloned();
    assert_eq!(field("reason"), Some(s("delivery_limit")));
    assert_eq!(field("queue"), Some(s("qd.c")));
    assert_eq!(field("exchange"), Some(s("")));
    assert_eq!(field("count"), Some(AMQPValue::LongLongInt(1)));
    assert_eq!(
        field("routing-keys"),
        Some(AMQPValue::FieldArray(vec![s("qd.c")].into()))
    );
    assert_eq!(common::ready(&ch, "qd.c").await, 0);
    broker.stop().await;
}

#[tokio::test]
async fn past_the_limit_while_out_at_the_restart_it_is_dead_lettered_on_recovery() {
    let broker = TestBroker::start().await;
    let (_c, ch) = broker.channel().await;
    quorum(&ch, "qd.d", &[("x-delivery-limit", AMQPValue::LongInt(1))]).await;
    publish_persistent(&ch, "qd.d", b"poison").await;
    get_and_requeue(&ch, "qd.d", 0).await;
    // Delivery 2 (count 1) is out when the broker stops: the restart returns it a second
    // time, past the limit of 1.
    let m = get_eventually_with(&ch, "qd.d", false).await;
    assert_eq!(count_of(&m.delivery.properties), Some(1));
    let broker = TestBroker::start_on(broker.restart_later().await, |c| c).await;
    let (_c, ch) = broker.channel().await;
    let dead = get_eventually(&ch, "qd.d.dead").await;
    assert_eq!(dead.delivery.data, b"poison");
    assert_eq!(common::ready(&ch, "qd.d").await, 0);
    broker.stop().await;
}

#[tokio::test]
async fn what_counts_as_a_return() {
    let broker = TestBroker::start().await;
    let (conn, ch) = broker.channel().await;
    quorum(&ch, "qd.e", &[]).await;
    publish_persistent(&ch, "qd.e", b"m").await;
    // reject with requeue
    let m = get_eventually_with(&ch, "qd.e", false).await;
    assert_eq!(count_of(&m.delivery.properties), Some(0));
    m.delivery
        .reject(BasicRejectOptions { requeue: true })
        .await
        .unwrap();
    // the channel closing with the message unacked
    let ch2 = conn.create_channel().await.unwrap();
    let m = get_eventually_with(&ch2, "qd.e", false).await;
    assert_eq!(count_of(&m.delivery.properties), Some(1));
    ch2.close(200, "bye".into()).await.unwrap();
    // basic.recover
    let m = get_eventually_with(&ch, "qd.e", false).await;
    assert_eq!(count_of(&m.delivery.properties), Some(2));
    within(ch.basic_recover(BasicRecoverOptions { requeue: true }))
        .await
        .unwrap();
    // a consumer cancel leaves its unacked message with the channel: no return
    let ch3 = conn.create_channel().await.unwrap();
    ch3.basic_qos(1, BasicQosOptions::default()).await.unwrap();
    let mut consumer = common::consume(&ch3, "qd.e", BasicConsumeOptions::default()).await;
    use futures::StreamExt;
    let d = within(consumer.next())
        .await
        .expect("delivery")
        .expect("ok");
    assert_eq!(count_of(&d.properties), Some(3));
    within(ch3.basic_cancel(consumer.tag(), BasicCancelOptions::default()))
        .await
        .unwrap();
    assert_eq!(common::counts(&ch, "qd.e").await.0, 0, "still out with ch3");
    d.ack(BasicAckOptions::default()).await.unwrap();
    assert_eq!(common::ready(&ch, "qd.e").await, 0);
    broker.stop().await;
}

#[tokio::test]
async fn the_delivery_limit_policy_drops_without_a_dead_letter_exchange() {
    let broker = TestBroker::start_with_management().await;
    let (_c, ch) = broker.channel().await;
    let reply = broker
        .http()
        .put(
            "/api/policies/%2F/qd-limit",
            &json!({"pattern": "^qd\\.p$", "definition": {"delivery-limit": 0}, "apply-to": "queues"}),
        )
        .await;
    assert!(reply.status.is_success(), "{}", reply.text());
    within(ch.queue_declare(
        "qd.p".into(),
        durable(),
        table(&[("x-queue-type", s("quorum"))]),
    ))
    .await
    .unwrap();
    publish_persistent(&ch, "qd.p", b"m").await;
    get_and_requeue(&ch, "qd.p", 0).await;
    common::wait_until("the message is dropped", || async {
        common::ready(&ch, "qd.p").await == 0
    })
    .await;
    broker.stop().await;
}
