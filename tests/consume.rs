//! Consumers: basic.consume (tags, no-ack, exclusive), round-robin, basic.cancel (client and
//! server side), basic.get, and basic.qos prefetch, checked against RabbitMQ 3.10's replies.
mod common;

use common::wire::{close_fields, Wire};
use common::{amqp_error, assert_channel_error, counts, declare_queue, within, TestBroker};
use futures::{Stream, StreamExt};
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, Consumer};
use std::time::Duration;

/// How long a test watches for something that must NOT arrive.
const QUIET: Duration = Duration::from_millis(300);

async fn publish(ch: &Channel, queue: &str, body: &[u8]) {
    ch.basic_publish(
        "".into(),
        queue.into(),
        BasicPublishOptions::default(),
        body,
        BasicProperties::default(),
    )
    .await
    .expect("basic.publish");
}

async fn publish_numbered(ch: &Channel, queue: &str, n: usize) {
    for i in 0..n {
        publish(ch, queue, format!("m{i}").as_bytes()).await;
    }
}

async fn consume(
    ch: &Channel,
    queue: &str,
    tag: &str,
    options: BasicConsumeOptions,
) -> lapin::Result<Consumer> {
    within(ch.basic_consume(queue.into(), tag.into(), options, FieldTable::default())).await
}

fn no_ack() -> BasicConsumeOptions {
    BasicConsumeOptions {
        no_ack: true,
        ..Default::default()
    }
}

/// The next delivery's body, as a string.
async fn next_body(
    consumer: &mut (impl Stream<Item = lapin::Result<lapin::message::Delivery>> + Unpin),
) -> String {
    let d = within(consumer.next())
        .await
        .expect("stream ended")
        .expect("delivery");
    String::from_utf8(d.data).unwrap()
}

/// Asserts that no delivery arrives during `QUIET`.
async fn assert_quiet(
    consumer: &mut (impl Stream<Item = lapin::Result<lapin::message::Delivery>> + Unpin),
) {
    if let Ok(Some(d)) = tokio::time::timeout(QUIET, consumer.next()).await {
        panic!(
            "unexpected delivery: {:?}",
            d.map(|d| String::from_utf8_lossy(&d.data).into_owned())
        );
    }
}

/// A soft error: the channel is closed, the connection still works.
async fn assert_channel_closed(
    conn: &Connection,
    ch: &Channel,
    err: lapin::Error,
    code: u16,
    text: &str,
) {
    assert_channel_error(conn, ch, &err, code, text);
    let other = within(conn.create_channel())
        .await
        .expect("a new channel on the same connection");
    within(other.basic_qos(0, BasicQosOptions::default()))
        .await
        .expect("the connection still works");
}

/// A hard error: the connection is closed.
fn assert_connection_closed(conn: &Connection, err: lapin::Error, code: u16, text: &str) {
    assert_eq!(amqp_error(&err), (code, text.to_owned()));
    assert!(!conn.status().connected(), "connection should be closed");
}

#[tokio::test]
async fn consume_with_client_tag_and_server_generated_tag() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare_queue(&ch, "consume.tags").await;
    let mine = consume(
        &ch,
        "consume.tags",
        "my-tag",
        BasicConsumeOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(mine.tag().as_str(), "my-tag");
    let generated = consume(&ch, "consume.tags", "", BasicConsumeOptions::default())
        .await
        .unwrap();
    let tag = generated.tag();
    assert!(
        tag.as_str().starts_with("amq.ctag-"),
        "server-generated tag {tag}"
    );
    assert!(tag.as_str().len() > "amq.ctag-".len());
    let other = consume(&ch, "consume.tags", "", BasicConsumeOptions::default())
        .await
        .unwrap();
    assert_ne!(other.tag(), tag, "generated tags are unique");
    assert_eq!(counts(&ch, "consume.tags").await, (0, 3));
    broker.stop().await;
}

#[tokio::test]
async fn same_tag_on_two_channels_is_allowed() {
    let broker = TestBroker::start().await;
    let (conn, ch1) = broker.channel().await;
    let ch2 = conn.create_channel().await.unwrap();
    declare_queue(&ch1, "consume.sametag").await;
    let _c1 = consume(
        &ch1,
        "consume.sametag",
        "ctag",
        BasicConsumeOptions::default(),
    )
    .await
    .unwrap();
    let _c2 = consume(
        &ch2,
        "consume.sametag",
        "ctag",
        BasicConsumeOptions::default(),
    )
    .await
    .unwrap();
    assert_eq!(counts(&ch1, "consume.sametag").await, (0, 2));
    broker.stop().await;
}

#[tokio::test]
async fn duplicate_tag_on_a_channel_closes_the_connection_530() {
    let broker = TestBroker::start().await;
    let (conn, ch) = broker.channel().await;
    declare_queue(&ch, "consume.dup").await;
    let _first = consume(&ch, "consume.dup", "ctag", BasicConsumeOptions::default())
        .await
        .unwrap();
    let err = consume(&ch, "consume.dup", "ctag", BasicConsumeOptions::default())
        .await
        .unwrap_err();
    assert_connection_closed(
        &conn,
        err,
        530,
        "NOT_ALLOWED - attempt to reuse consumer tag 'ctag'",
    );
    broker.stop().await;
}

#[tokio::test]
async fn no_ack_consumer_receives_everything_and_nothing_stays_unacked() {
    let broker = TestBroker::start().await;
    let (conn, ch) = broker.channel().await;
    declare_queue(&ch, "consume.noack").await;
    publish_numbered(&ch, "consume.noack", 200).await;
    let consumer_ch = conn.create_channel().await.unwrap();
    let mut consumer = consume(&consumer_ch, "consume.noack", "c", no_ack())
        .await
        .unwrap();
    for i in 0..200u64 {
        let d = within(consumer.next())
            .await
            .expect("stream ended")
            .expect("delivery");
        assert_eq!(d.data, format!("m{i}").as_bytes());
        assert_eq!(d.delivery_tag, i + 1);
        assert!(!d.redelivered);
    }
    assert_quiet(&mut consumer).await;
    // Nothing was held unacknowledged: closing the channel puts nothing back.
    within(consumer_ch.close(200, "bye".into())).await.unwrap();
    assert_eq!(counts(&ch, "consume.noack").await, (0, 0));
    broker.stop().await;
}

#[tokio::test]
async fn exclusive_consumer_refuses_a_second_consumer_403() {
    let broker = TestBroker::start().await;
    let (conn, ch) = broker.channel().await;
    declare_queue(&ch, "consume.excl1").await;
    let _exclusive = consume(
        &ch,
        "consume.excl1",
        "x",
        BasicConsumeOptions {
            exclusive: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    // From another connection.
    let (conn2, ch2) = broker.channel().await;
    let err = consume(&ch2, "consume.excl1", "", BasicConsumeOptions::default())
        .await
        .unwrap_err();
    assert_channel_closed(
        &conn2,
        &ch2,
        err,
        403,
        "ACCESS_REFUSED - queue 'consume.excl1' in vhost '/' in exclusive use",
    )
    .await;
    // From the same connection, another channel.
    let ch3 = conn.create_channel().await.unwrap();
    let err = consume(&ch3, "consume.excl1", "", BasicConsumeOptions::default())
        .await
        .unwrap_err();
    assert_channel_closed(
        &conn,
        &ch3,
        err,
        403,
        "ACCESS_REFUSED - queue 'consume.excl1' in vhost '/' in exclusive use",
    )
    .await;
    assert_eq!(counts(&ch, "consume.excl1").await, (0, 1));
    broker.stop().await;
}

#[tokio::test]
async fn exclusive_consumer_refused_when_the_queue_has_a_consumer_403() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare_queue(&ch, "consume.excl2").await;
    let _normal = consume(&ch, "consume.excl2", "n", BasicConsumeOptions::default())
        .await
        .unwrap();
    let (conn2, ch2) = broker.channel().await;
    let err = consume(
        &ch2,
        "consume.excl2",
        "x",
        BasicConsumeOptions {
            exclusive: true,
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_channel_closed(
        &conn2,
        &ch2,
        err,
        403,
        "ACCESS_REFUSED - queue 'consume.excl2' in vhost '/' in exclusive use",
    )
    .await;
    broker.stop().await;
}

#[tokio::test]
async fn consume_on_a_missing_queue_404() {
    let broker = TestBroker::start().await;
    let (conn, ch) = broker.channel().await;
    let err = consume(&ch, "consume.missing", "", BasicConsumeOptions::default())
        .await
        .unwrap_err();
    assert_channel_closed(
        &conn,
        &ch,
        err,
        404,
        "NOT_FOUND - no queue 'consume.missing' in vhost '/'",
    )
    .await;
    broker.stop().await;
}

#[tokio::test]
async fn round_robin_between_two_consumers_with_prefetch_1() {
    let broker = TestBroker::start().await;
    let (conn, ch) = broker.channel().await;
    declare_queue(&ch, "consume.rr2").await;
    let cch = conn.create_channel().await.unwrap();
    within(cch.basic_qos(1, BasicQosOptions::default()))
        .await
        .unwrap();
    let mut a = consume(&cch, "consume.rr2", "a", BasicConsumeOptions::default())
        .await
        .unwrap();
    let mut b = consume(&cch, "consume.rr2", "b", BasicConsumeOptions::default())
        .await
        .unwrap();
    publish_numbered(&ch, "consume.rr2", 10).await;
    // Each consumer holds one message; acking one lets exactly that consumer take the next.
    let (mut got_a, mut got_b) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        for (consumer, got) in [(&mut a, &mut got_a), (&mut b, &mut got_b)] {
            let d = within(consumer.next())
                .await
                .expect("stream ended")
                .expect("delivery");
            got.push(String::from_utf8(d.data.clone()).unwrap());
            d.ack(BasicAckOptions::default()).await.unwrap();
        }
    }
    assert_eq!(got_a, ["m0", "m2", "m4", "m6", "m8"]);
    assert_eq!(got_b, ["m1", "m3", "m5", "m7", "m9"]);
    broker.stop().await;
}

#[tokio::test]
async fn round_robin_between_three_no_ack_consumers() {
    let broker = TestBroker::start().await;
    let (conn, ch) = broker.channel().await;
    declare_queue(&ch, "consume.rr3").await;
    let mut consumers = Vec::new();
    for tag in ["a", "b", "c"] {
        let cch = conn.create_channel().await.unwrap();
        consumers.push((
            cch.clone(),
            consume(&cch, "consume.rr3", tag, no_ack()).await.unwrap(),
        ));
    }
    publish_numbered(&ch, "consume.rr3", 12).await;
    for (i, (_, consumer)) in consumers.iter_mut().enumerate() {
        let mut got = Vec::new();
        for _ in 0..4 {
            got.push(next_body(consumer).await);
        }
        let expected: Vec<String> = (0..4).map(|k| format!("m{}", i + 3 * k)).collect();
        assert_eq!(got, expected, "consumer {i}");
    }
    for (_, consumer) in consumers.iter_mut() {
        assert_quiet(consumer).await;
    }
    broker.stop().await;
}

#[tokio::test]
async fn cancel_stops_deliveries_and_returns_cancel_ok() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare_queue(&ch, "consume.cancel").await;
    let mut consumer = consume(&ch, "consume.cancel", "c", BasicConsumeOptions::default())
        .await
        .unwrap();
    publish(&ch, "consume.cancel", b"before").await;
    let d = within(consumer.next())
        .await
        .expect("stream ended")
        .expect("delivery");
    assert_eq!(d.data, b"before");
    // lapin's basic_cancel resolves on cancel-ok.
    within(ch.basic_cancel("c".into(), BasicCancelOptions::default()))
        .await
        .expect("cancel-ok");
    assert!(
        within(consumer.next()).await.is_none(),
        "the consumer stream ends after cancel"
    );
    publish(&ch, "consume.cancel", b"after").await;
    // A delivery made before the cancel can still be acknowledged.
    d.ack(BasicAckOptions::default()).await.unwrap();
    let got = within(ch.basic_get("consume.cancel".into(), BasicGetOptions { no_ack: true }))
        .await
        .unwrap();
    assert_eq!(
        got.expect("not delivered after cancel: still queued")
            .delivery
            .data,
        b"after"
    );
    assert_eq!(
        counts(&ch, "consume.cancel").await,
        (0, 0),
        "the ack was accepted, nothing requeued"
    );
    broker.stop().await;
}

#[tokio::test]
async fn cancel_with_nowait() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare_queue(&ch, "consume.cancelnw").await;
    let _consumer = consume(&ch, "consume.cancelnw", "c", BasicConsumeOptions::default())
        .await
        .unwrap();
    assert_eq!(counts(&ch, "consume.cancelnw").await, (0, 1));
    within(ch.basic_cancel("c".into(), BasicCancelOptions { nowait: true }))
        .await
        .unwrap();
    // The passive declare is answered after the cancel was handled.
    assert_eq!(counts(&ch, "consume.cancelnw").await, (0, 0));
    publish(&ch, "consume.cancelnw", b"kept").await;
    let got = within(ch.basic_get("consume.cancelnw".into(), BasicGetOptions { no_ack: true }))
        .await
        .unwrap();
    assert_eq!(
        got.expect("not delivered after cancel: still queued")
            .delivery
            .data,
        b"kept"
    );
    // The tag is free again on this channel.
    let _again = consume(&ch, "consume.cancelnw", "c", BasicConsumeOptions::default())
        .await
        .unwrap();
    broker.stop().await;
}

#[tokio::test]
async fn cancel_of_an_unknown_tag_is_answered_with_cancel_ok() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    within(ch.basic_cancel("consume.nobody".into(), BasicCancelOptions::default()))
        .await
        .expect("cancel-ok");
    assert!(ch.status().connected());
    broker.stop().await;
}

#[tokio::test]
async fn get_ok_with_message_count_then_get_empty() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare_queue(&ch, "consume.get").await;
    publish_numbered(&ch, "consume.get", 3).await;
    for (i, remaining) in [2u32, 1, 0].into_iter().enumerate() {
        let got = within(ch.basic_get("consume.get".into(), BasicGetOptions { no_ack: true }))
            .await
            .unwrap()
            .expect("get-ok");
        assert_eq!(got.message_count, remaining);
        assert_eq!(got.delivery.data, format!("m{i}").as_bytes());
        assert_eq!(got.delivery.exchange.as_str(), "");
        assert_eq!(got.delivery.routing_key.as_str(), "consume.get");
        assert!(!got.delivery.redelivered);
        assert_eq!(got.delivery.delivery_tag, i as u64 + 1);
    }
    let empty = within(ch.basic_get("consume.get".into(), BasicGetOptions { no_ack: true }))
        .await
        .unwrap();
    assert!(empty.is_none(), "get-empty");
    broker.stop().await;
}

#[tokio::test]
async fn get_on_a_missing_queue_404() {
    let broker = TestBroker::start().await;
    let (conn, ch) = broker.channel().await;
    let err = within(ch.basic_get("consume.missing".into(), BasicGetOptions::default()))
        .await
        .unwrap_err();
    assert_channel_closed(
        &conn,
        &ch,
        err,
        404,
        "NOT_FOUND - no queue 'consume.missing' in vhost '/'",
    )
    .await;
    broker.stop().await;
}

#[tokio::test]
async fn prefetch_per_consumer_keeps_exactly_n_in_flight() {
    let broker = TestBroker::start().await;
    let (conn, ch) = broker.channel().await;
    declare_queue(&ch, "consume.prefetch").await;
    let cch = conn.create_channel().await.unwrap();
    within(cch.basic_qos(3, BasicQosOptions { global: false }))
        .await
        .unwrap();
    let mut consumer = consume(
        &cch,
        "consume.prefetch",
        "c",
        BasicConsumeOptions::default(),
    )
    .await
    .unwrap();
    publish_numbered(&ch, "consume.prefetch", 10).await;
    let mut held = Vec::new();
    for i in 0..3 {
        let d = within(consumer.next())
            .await
            .expect("stream ended")
            .expect("delivery");
        assert_eq!(d.data, format!("m{i}").as_bytes());
        held.push(d);
    }
    assert_quiet(&mut consumer).await;
    assert_eq!(counts(&ch, "consume.prefetch").await, (7, 1));
    held.remove(0)
        .ack(BasicAckOptions::default())
        .await
        .unwrap();
    assert_eq!(
        next_body(&mut consumer).await,
        "m3",
        "one ack lets exactly one more in"
    );
    assert_quiet(&mut consumer).await;
    assert_eq!(counts(&ch, "consume.prefetch").await, (6, 1));
    broker.stop().await;
}

#[tokio::test]
async fn prefetch_applies_to_each_consumer_separately() {
    let broker = TestBroker::start().await;
    let (conn, ch) = broker.channel().await;
    declare_queue(&ch, "consume.prefetch.a").await;
    declare_queue(&ch, "consume.prefetch.b").await;
    let cch = conn.create_channel().await.unwrap();
    within(cch.basic_qos(2, BasicQosOptions { global: false }))
        .await
        .unwrap();
    let mut a = consume(
        &cch,
        "consume.prefetch.a",
        "a",
        BasicConsumeOptions::default(),
    )
    .await
    .unwrap();
    let mut b = consume(
        &cch,
        "consume.prefetch.b",
        "b",
        BasicConsumeOptions::default(),
    )
    .await
    .unwrap();
    publish_numbered(&ch, "consume.prefetch.a", 5).await;
    publish_numbered(&ch, "consume.prefetch.b", 5).await;
    for consumer in [&mut a, &mut b] {
        assert_eq!(next_body(consumer).await, "m0");
        assert_eq!(next_body(consumer).await, "m1");
    }
    assert_quiet(&mut a).await;
    assert_quiet(&mut b).await;
    broker.stop().await;
}

#[tokio::test]
async fn global_prefetch_is_shared_by_the_channels_consumers() {
    let broker = TestBroker::start().await;
    let (conn, ch) = broker.channel().await;
    declare_queue(&ch, "consume.global.a").await;
    declare_queue(&ch, "consume.global.b").await;
    let cch = conn.create_channel().await.unwrap();
    within(cch.basic_qos(3, BasicQosOptions { global: true }))
        .await
        .unwrap();
    let a = consume(
        &cch,
        "consume.global.a",
        "a",
        BasicConsumeOptions::default(),
    )
    .await
    .unwrap();
    let b = consume(
        &cch,
        "consume.global.b",
        "b",
        BasicConsumeOptions::default(),
    )
    .await
    .unwrap();
    publish_numbered(&ch, "consume.global.a", 5).await;
    publish_numbered(&ch, "consume.global.b", 5).await;
    let mut both = futures::stream::select(a, b);
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(
            within(both.next())
                .await
                .expect("stream ended")
                .expect("delivery"),
        );
    }
    assert_quiet(&mut both).await;
    let (ready_a, _) = counts(&ch, "consume.global.a").await;
    let (ready_b, _) = counts(&ch, "consume.global.b").await;
    assert_eq!(
        ready_a + ready_b,
        7,
        "3 in flight in total over both consumers"
    );
    held.remove(0)
        .ack(BasicAckOptions::default())
        .await
        .unwrap();
    held.push(
        within(both.next())
            .await
            .expect("stream ended")
            .expect("delivery"),
    );
    assert_quiet(&mut both).await;
    broker.stop().await;
}

#[tokio::test]
async fn global_and_per_consumer_prefetch_both_apply() {
    // RabbitMQ: qos(3, global) then qos(1) gives each new consumer 1, within a shared 3.
    let broker = TestBroker::start().await;
    let (conn, ch) = broker.channel().await;
    declare_queue(&ch, "consume.both.a").await;
    declare_queue(&ch, "consume.both.b").await;
    let cch = conn.create_channel().await.unwrap();
    within(cch.basic_qos(3, BasicQosOptions { global: true }))
        .await
        .unwrap();
    within(cch.basic_qos(1, BasicQosOptions { global: false }))
        .await
        .unwrap();
    let mut a = consume(&cch, "consume.both.a", "a", BasicConsumeOptions::default())
        .await
        .unwrap();
    let mut b = consume(&cch, "consume.both.b", "b", BasicConsumeOptions::default())
        .await
        .unwrap();
    publish_numbered(&ch, "consume.both.a", 5).await;
    publish_numbered(&ch, "consume.both.b", 5).await;
    assert_eq!(next_body(&mut a).await, "m0");
    assert_eq!(next_body(&mut b).await, "m0");
    assert_quiet(&mut a).await;
    assert_quiet(&mut b).await;
    broker.stop().await;
}

#[tokio::test]
async fn prefetch_change_does_not_affect_running_consumers() {
    // RabbitMQ 3.10: basic.qos global=false applies to consumers started after it.
    let broker = TestBroker::start().await;
    let (conn, ch) = broker.channel().await;
    declare_queue(&ch, "consume.qoslater").await;
    let cch = conn.create_channel().await.unwrap();
    within(cch.basic_qos(1, BasicQosOptions::default()))
        .await
        .unwrap();
    let mut consumer = consume(
        &cch,
        "consume.qoslater",
        "c",
        BasicConsumeOptions::default(),
    )
    .await
    .unwrap();
    publish_numbered(&ch, "consume.qoslater", 5).await;
    let d = within(consumer.next())
        .await
        .expect("stream ended")
        .expect("delivery");
    within(cch.basic_qos(3, BasicQosOptions::default()))
        .await
        .unwrap();
    d.ack(BasicAckOptions::default()).await.unwrap();
    assert_eq!(next_body(&mut consumer).await, "m1");
    assert_quiet(&mut consumer).await;
    broker.stop().await;
}

#[tokio::test]
async fn prefetch_size_is_not_implemented_540() {
    // lapin cannot send prefetch_size, so this one speaks raw AMQP.
    let broker = TestBroker::start().await;
    let mut raw = Wire::open(&broker).await;
    let mut args = 1000u32.to_be_bytes().to_vec(); // prefetch_size
    args.extend_from_slice(&0u16.to_be_bytes()); // prefetch_count
    args.push(0); // global
    raw.method(1, 60, 10, &args).await;
    let (channel, class, method, payload) = raw.next_method().await;
    assert_eq!((channel, class, method), (0, 10, 50), "connection.close");
    let (code, text, failing) = close_fields(&payload);
    assert_eq!(code, 540);
    assert_eq!(text, "NOT_IMPLEMENTED - prefetch_size!=0 (1000)");
    assert_eq!(failing, (60, 10));
    // Gone before the stop: the shutdown would wait for its close-ok (3 s).
    drop(raw);
    broker.stop().await;
}

#[tokio::test]
async fn queue_deleted_on_the_same_connection_cancels_its_consumer() {
    let broker = TestBroker::start().await;
    let (conn, ch) = broker.channel().await;
    declare_queue(&ch, "consume.deleted").await;
    let cch = conn.create_channel().await.unwrap();
    let mut consumer = consume(&cch, "consume.deleted", "c", BasicConsumeOptions::default())
        .await
        .unwrap();
    publish(&ch, "consume.deleted", b"one").await;
    assert_eq!(next_body(&mut consumer).await, "one");
    within(ch.queue_delete("consume.deleted".into(), QueueDeleteOptions::default()))
        .await
        .unwrap();
    // lapin announces consumer_cancel_notify: the server's basic.cancel ends the stream.
    assert!(
        within(consumer.next()).await.is_none(),
        "the consumer stream ends"
    );
    assert!(
        cch.status().connected(),
        "the consumer's channel stays open"
    );
    broker.stop().await;
}

#[tokio::test]
async fn queue_deleted_by_another_connection_cancels_its_consumers() {
    let broker = TestBroker::start().await;
    let (conn, ch) = broker.channel().await;
    declare_queue(&ch, "consume.deleted2").await;
    let ch2 = conn.create_channel().await.unwrap();
    let mut first = consume(&ch, "consume.deleted2", "c", BasicConsumeOptions::default())
        .await
        .unwrap();
    let mut second = consume(&ch2, "consume.deleted2", "", no_ack())
        .await
        .unwrap();
    assert_eq!(counts(&ch, "consume.deleted2").await, (0, 2));

    let (_other, other_ch) = broker.channel().await;
    publish_numbered(&other_ch, "consume.deleted2", 3).await;
    let deleted =
        within(other_ch.queue_delete("consume.deleted2".into(), QueueDeleteOptions::default()))
            .await
            .unwrap();
    // Both consumers got some of the 3 (round-robin), none stays ready.
    assert_eq!(deleted, 0);
    let mut seen = 0;
    for consumer in [&mut first, &mut second] {
        while let Some(d) = within(consumer.next()).await {
            d.expect("delivery");
            seen += 1;
        }
    }
    assert_eq!(
        seen, 3,
        "deliveries before the cancel, then each stream ends"
    );
    assert!(ch.status().connected() && ch2.status().connected());
    // The cancelled tag is free again on its channel.
    declare_queue(&ch, "consume.deleted2").await;
    let _again = consume(&ch, "consume.deleted2", "c", BasicConsumeOptions::default())
        .await
        .unwrap();
    assert_eq!(counts(&ch, "consume.deleted2").await, (0, 1));
    broker.stop().await;
}

#[tokio::test]
async fn single_active_consumer_serves_the_first_and_hands_over_in_order() {
    let broker = TestBroker::start().await;
    let (conn, ch) = broker.channel().await;
    let mut args = FieldTable::default();
    args.insert(
        "x-single-active-consumer".into(),
        lapin::types::AMQPValue::Boolean(true),
    );
    within(ch.queue_declare("sac".into(), QueueDeclareOptions::default(), args))
        .await
        .unwrap();

    // The first consumer (manual ack, acking nothing) is the active one, even against a
    // later consumer with a higher x-priority.
    let first_ch = conn.create_channel().await.unwrap();
    let mut first = consume(&first_ch, "sac", "first", BasicConsumeOptions::default())
        .await
        .unwrap();
    let mut prio = FieldTable::default();
    prio.insert("x-priority".into(), lapin::types::AMQPValue::LongInt(10));
    let second_ch = conn.create_channel().await.unwrap();
    let mut second = within(second_ch.basic_consume("sac".into(), "second".into(), no_ack(), prio))
        .await
        .unwrap();
    publish_numbered(&ch, "sac", 3).await;
    for i in 0..3 {
        assert_eq!(next_body(&mut first).await, format!("m{i}"));
    }
    assert_quiet(&mut second).await;
    assert_eq!(counts(&ch, "sac").await, (0, 2), "both count as consumers");

    // An exclusive consumer cannot join a queue that has consumers.
    let third_ch = conn.create_channel().await.unwrap();
    let err = consume(
        &third_ch,
        "sac",
        "third",
        BasicConsumeOptions {
            exclusive: true,
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(
        amqp_error(&err),
        (
            403,
            "ACCESS_REFUSED - queue 'sac' in vhost '/' in exclusive use".to_owned()
        )
    );

    // The active consumer's channel closes: its unacked messages and the new ones go to
    // the next consumer, in order, the old ones marked redelivered.
    within(first_ch.close(200, "bye".into())).await.unwrap();
    publish(&ch, "sac", b"m3").await;
    for i in 0..4 {
        let d = within(second.next()).await.unwrap().unwrap();
        assert_eq!(String::from_utf8(d.data).unwrap(), format!("m{i}"));
        assert_eq!(d.redelivered, i < 3, "m{i}");
    }
    broker.stop().await;
}
