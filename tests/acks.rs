//! Acknowledgements: ack / nack / reject (multiple, requeue), unknown tags, requeue order and
//! redelivered flags on channel/connection close and TCP loss, basic.recover, publisher confirms.
mod common;

use common::proxy::droppable;
use common::{amqp_error, consume, declare_queue, next_error, ready, within, TestBroker};
use futures::StreamExt;
use lapin::message::Delivery;
use lapin::options::*;
use lapin::{BasicProperties, Channel, Confirmation, Connection, Consumer};

async fn publish_numbered(ch: &Channel, queue: &str, n: usize) {
    for i in 1..=n {
        ch.basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions::default(),
            format!("m{i}").as_bytes(),
            BasicProperties::default(),
        )
        .await
        .expect("basic.publish");
    }
}

/// Receives `n` deliveries (the broker sends m1..mn in order).
async fn receive(consumer: &mut Consumer, n: usize) -> Vec<Delivery> {
    let mut got = Vec::new();
    for _ in 0..n {
        got.push(
            within(consumer.next())
                .await
                .expect("stream ended")
                .expect("delivery"),
        );
    }
    got
}

/// A queue with m1..mn published and a consumer (unlimited prefetch, manual ack) holding them
/// all unacknowledged; the consumer is cancelled so requeued messages stay in the queue.
async fn holding(
    broker: &TestBroker,
    queue: &str,
    n: usize,
) -> (Connection, Channel, Vec<Delivery>) {
    let (conn, ch) = broker.channel().await;
    declare_queue(&ch, queue).await;
    publish_numbered(&ch, queue, n).await;
    let mut consumer = consume(&ch, queue, BasicConsumeOptions::default()).await;
    let got = receive(&mut consumer, n).await;
    for (i, d) in got.iter().enumerate() {
        assert_eq!(d.data, format!("m{}", i + 1).as_bytes());
        assert_eq!(d.delivery_tag, i as u64 + 1);
    }
    within(ch.basic_cancel(consumer.tag(), BasicCancelOptions::default()))
        .await
        .unwrap();
    (conn, ch, got)
}

/// Asserts that `queue` holds exactly `expected` (body, redelivered), in order, and empties
/// it. Requeues may land a moment after the close or nack that caused them (RabbitMQ does
/// them asynchronously), so the messages are awaited through a no-ack consumer.
async fn assert_queue(ch: &Channel, queue: &str, expected: &[(&str, bool)]) {
    let mut got = Vec::new();
    if !expected.is_empty() {
        let mut consumer = consume(
            ch,
            queue,
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
        )
        .await;
        for d in receive(&mut consumer, expected.len()).await {
            got.push((String::from_utf8(d.data).unwrap(), d.redelivered));
        }
        within(ch.basic_cancel(consumer.tag(), BasicCancelOptions::default()))
            .await
            .unwrap();
        while let Some(d) = within(consumer.next()).await {
            let d = d.expect("delivery");
            got.push((String::from_utf8(d.data).unwrap(), d.redelivered));
        }
    }
    let want: Vec<(String, bool)> = expected.iter().map(|(b, r)| (b.to_string(), *r)).collect();
    assert_eq!(got, want);
    let rest = within(ch.basic_get(queue.into(), BasicGetOptions { no_ack: true }))
        .await
        .expect("basic.get");
    assert!(
        rest.is_none(),
        "unexpected message left: {:?}",
        rest.map(|m| m.delivery.data)
    );
}

/// Gets `prepare` messages (unacked) on a fresh channel, sends `settle`, and checks the broker
/// closes just that channel with 406 and `text`; `requeued` messages then come back.
async fn assert_settle_refused<F, Fut>(
    broker: &TestBroker,
    prepare: usize,
    settle: F,
    text: &str,
    requeued: u32,
) where
    F: FnOnce(Channel) -> Fut,
    Fut: std::future::Future<Output = lapin::Result<()>>,
{
    let (conn, ch) = broker.channel().await;
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let queue = format!(
        "acks.refused.{}",
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    declare_queue(&ch, &queue).await;
    publish_numbered(&ch, &queue, prepare).await;
    for _ in 0..prepare {
        within(ch.basic_get(queue.as_str().into(), BasicGetOptions::default()))
            .await
            .unwrap()
            .expect("get-ok");
    }
    let mut events = Box::pin(conn.events_listener());
    settle(ch.clone()).await.expect("sent");
    let err = next_error(&mut events).await;
    assert_eq!(amqp_error(&err), (406, text.to_owned()));
    assert!(!ch.status().connected(), "channel closed");
    assert!(conn.status().connected(), "connection survives");
    let other = within(conn.create_channel()).await.unwrap();
    assert_eq!(
        ready(&other, &queue).await,
        requeued,
        "the closed channel's unacked messages are back"
    );
}

#[tokio::test]
async fn ack_single_settles_only_that_delivery() {
    let broker = TestBroker::start().await;
    let (conn, ch, got) = holding(&broker, "acks.single", 3).await;
    within(ch.basic_ack(got[1].delivery_tag, BasicAckOptions { multiple: false }))
        .await
        .unwrap();
    within(ch.close(200, "bye".into())).await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    assert_queue(&ch, "acks.single", &[("m1", true), ("m3", true)]).await;
    broker.stop().await;
}

#[tokio::test]
async fn ack_multiple_settles_up_to_the_tag() {
    let broker = TestBroker::start().await;
    let (conn, ch, got) = holding(&broker, "acks.multiple", 5).await;
    within(ch.basic_ack(got[2].delivery_tag, BasicAckOptions { multiple: true }))
        .await
        .unwrap();
    within(ch.close(200, "bye".into())).await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    assert_queue(&ch, "acks.multiple", &[("m4", true), ("m5", true)]).await;
    broker.stop().await;
}

#[tokio::test]
async fn ack_multiple_with_tag_zero_settles_everything() {
    let broker = TestBroker::start().await;
    let (conn, ch, _got) = holding(&broker, "acks.zero", 5).await;
    within(ch.basic_ack(0, BasicAckOptions { multiple: true }))
        .await
        .unwrap();
    within(ch.close(200, "bye".into())).await.unwrap();
    let ch = conn.create_channel().await.unwrap();
    assert_queue(&ch, "acks.zero", &[]).await;
    broker.stop().await;
}

#[tokio::test]
async fn ack_multiple_with_tag_zero_and_nothing_outstanding_is_fine() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    within(ch.basic_ack(0, BasicAckOptions { multiple: true }))
        .await
        .unwrap();
    within(ch.basic_qos(0, BasicQosOptions::default()))
        .await
        .expect("channel still open");
    broker.stop().await;
}

#[tokio::test]
async fn nack_and_reject_requeue_put_messages_back_in_their_place() {
    // RabbitMQ: requeued messages keep their original position and come back redelivered.
    let broker = TestBroker::start().await;
    let (conn, ch, got) = holding(&broker, "acks.requeue", 5).await;
    within(ch.basic_nack(
        got[1].delivery_tag,
        BasicNackOptions {
            multiple: false,
            requeue: true,
        },
    ))
    .await
    .unwrap();
    within(ch.basic_reject(got[3].delivery_tag, BasicRejectOptions { requeue: true }))
        .await
        .unwrap();
    let other = conn.create_channel().await.unwrap();
    assert_queue(&other, "acks.requeue", &[("m2", true), ("m4", true)]).await;
    within(ch.close(200, "bye".into())).await.unwrap();
    assert_queue(
        &other,
        "acks.requeue",
        &[("m1", true), ("m3", true), ("m5", true)],
    )
    .await;
    broker.stop().await;
}

#[tokio::test]
async fn requeued_messages_go_before_later_ones_in_publish_order() {
    // Observed on RabbitMQ 3.10.8: get m1..m3, nack m2 then m1 -> m1, m2 (redelivered), m4, m5.
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare_queue(&ch, "acks.position").await;
    publish_numbered(&ch, "acks.position", 5).await;
    let mut tags = Vec::new();
    for _ in 0..3 {
        let m = within(ch.basic_get("acks.position".into(), BasicGetOptions::default()))
            .await
            .unwrap()
            .unwrap();
        tags.push(m.delivery.delivery_tag);
    }
    let requeue = BasicNackOptions {
        multiple: false,
        requeue: true,
    };
    within(ch.basic_nack(tags[1], requeue)).await.unwrap();
    within(ch.basic_nack(tags[0], requeue)).await.unwrap();
    assert_queue(
        &ch,
        "acks.position",
        &[("m1", true), ("m2", true), ("m4", false), ("m5", false)],
    )
    .await;
    broker.stop().await;
}

#[tokio::test]
async fn nack_multiple_requeues_up_to_the_tag() {
    let broker = TestBroker::start().await;
    let (conn, ch, got) = holding(&broker, "acks.nackmulti", 5).await;
    within(ch.basic_nack(
        got[3].delivery_tag,
        BasicNackOptions {
            multiple: true,
            requeue: true,
        },
    ))
    .await
    .unwrap();
    let other = conn.create_channel().await.unwrap();
    assert_queue(
        &other,
        "acks.nackmulti",
        &[("m1", true), ("m2", true), ("m3", true), ("m4", true)],
    )
    .await;
    within(ch.close(200, "bye".into())).await.unwrap();
    assert_queue(&other, "acks.nackmulti", &[("m5", true)]).await;
    broker.stop().await;
}

#[tokio::test]
async fn nack_multiple_without_requeue_drops() {
    let broker = TestBroker::start().await;
    let (conn, ch, got) = holding(&broker, "acks.nackdrop", 4).await;
    within(ch.basic_nack(
        got[2].delivery_tag,
        BasicNackOptions {
            multiple: true,
            requeue: false,
        },
    ))
    .await
    .unwrap();
    within(ch.close(200, "bye".into())).await.unwrap();
    let other = conn.create_channel().await.unwrap();
    assert_queue(&other, "acks.nackdrop", &[("m4", true)]).await;
    broker.stop().await;
}

#[tokio::test]
async fn reject_without_requeue_drops_the_message() {
    let broker = TestBroker::start().await;
    let (conn, ch, got) = holding(&broker, "acks.rejectdrop", 2).await;
    within(ch.basic_reject(got[0].delivery_tag, BasicRejectOptions { requeue: false }))
        .await
        .unwrap();
    let other = conn.create_channel().await.unwrap();
    assert_eq!(ready(&other, "acks.rejectdrop").await, 0);
    within(ch.close(200, "bye".into())).await.unwrap();
    assert_queue(&other, "acks.rejectdrop", &[("m2", true)]).await;
    broker.stop().await;
}

#[tokio::test]
async fn ack_of_an_unknown_delivery_tag_406() {
    let broker = TestBroker::start().await;
    assert_settle_refused(
        &broker,
        0,
        |ch| async move { ch.basic_ack(5, BasicAckOptions::default()).await },
        "PRECONDITION_FAILED - unknown delivery tag 5",
        0,
    )
    .await;
    broker.stop().await;
}

#[tokio::test]
async fn reject_and_nack_of_unknown_delivery_tags_406() {
    let broker = TestBroker::start().await;
    assert_settle_refused(
        &broker,
        1,
        |ch| async move {
            ch.basic_reject(3, BasicRejectOptions { requeue: true })
                .await
        },
        "PRECONDITION_FAILED - unknown delivery tag 3",
        1,
    )
    .await;
    assert_settle_refused(
        &broker,
        1,
        |ch| async move {
            ch.basic_nack(
                4,
                BasicNackOptions {
                    multiple: false,
                    requeue: true,
                },
            )
            .await
        },
        "PRECONDITION_FAILED - unknown delivery tag 4",
        1,
    )
    .await;
    broker.stop().await;
}

#[tokio::test]
async fn double_ack_406() {
    let broker = TestBroker::start().await;
    assert_settle_refused(
        &broker,
        1,
        |ch| async move {
            ch.basic_ack(1, BasicAckOptions::default()).await?;
            ch.basic_ack(1, BasicAckOptions::default()).await
        },
        "PRECONDITION_FAILED - unknown delivery tag 1",
        0,
    )
    .await;
    broker.stop().await;
}

#[tokio::test]
async fn ack_tag_zero_without_multiple_406() {
    let broker = TestBroker::start().await;
    assert_settle_refused(
        &broker,
        1,
        |ch| async move { ch.basic_ack(0, BasicAckOptions { multiple: false }).await },
        "PRECONDITION_FAILED - unknown delivery tag 0",
        1,
    )
    .await;
    broker.stop().await;
}

#[tokio::test]
async fn ack_multiple_above_the_outstanding_tags_406() {
    let broker = TestBroker::start().await;
    assert_settle_refused(
        &broker,
        2,
        |ch| async move { ch.basic_ack(7, BasicAckOptions { multiple: true }).await },
        "PRECONDITION_FAILED - unknown delivery tag 7",
        2,
    )
    .await;
    broker.stop().await;
}

#[tokio::test]
async fn ack_of_a_no_ack_delivery_406() {
    let broker = TestBroker::start().await;
    let (conn, ch) = broker.channel().await;
    declare_queue(&ch, "acks.noack").await;
    publish_numbered(&ch, "acks.noack", 1).await;
    let m = within(ch.basic_get("acks.noack".into(), BasicGetOptions { no_ack: true }))
        .await
        .unwrap()
        .unwrap();
    let mut events = Box::pin(conn.events_listener());
    within(ch.basic_ack(m.delivery.delivery_tag, BasicAckOptions::default()))
        .await
        .unwrap();
    let err = next_error(&mut events).await;
    assert_eq!(
        amqp_error(&err),
        (
            406,
            "PRECONDITION_FAILED - unknown delivery tag 1".to_owned()
        )
    );
    assert!(conn.status().connected());
    broker.stop().await;
}

#[tokio::test]
async fn closing_a_channel_requeues_its_unacked_messages_in_order() {
    let broker = TestBroker::start().await;
    let (conn, ch) = broker.channel().await;
    declare_queue(&ch, "acks.chclose").await;
    publish_numbered(&ch, "acks.chclose", 6).await;
    let cch = conn.create_channel().await.unwrap();
    let mut consumer = consume(&cch, "acks.chclose", BasicConsumeOptions::default()).await;
    let got = receive(&mut consumer, 6).await;
    // Settle some so the requeued set has holes: m2 acked, m5 rejected (dropped).
    within(cch.basic_ack(got[1].delivery_tag, BasicAckOptions::default()))
        .await
        .unwrap();
    within(cch.basic_reject(got[4].delivery_tag, BasicRejectOptions { requeue: false }))
        .await
        .unwrap();
    within(cch.close(200, "bye".into())).await.unwrap();
    assert_queue(
        &ch,
        "acks.chclose",
        &[("m1", true), ("m3", true), ("m4", true), ("m6", true)],
    )
    .await;
    broker.stop().await;
}

#[tokio::test]
async fn closing_a_connection_requeues_its_unacked_messages_in_order() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare_queue(&ch, "acks.connclose").await;
    publish_numbered(&ch, "acks.connclose", 5).await;
    let (consumer_conn, cch) = broker.channel().await;
    let mut consumer = consume(&cch, "acks.connclose", BasicConsumeOptions::default()).await;
    let got = receive(&mut consumer, 5).await;
    within(cch.basic_ack(got[2].delivery_tag, BasicAckOptions::default()))
        .await
        .unwrap();
    within(consumer_conn.close(200, "bye".into()))
        .await
        .unwrap();
    assert_queue(
        &ch,
        "acks.connclose",
        &[("m1", true), ("m2", true), ("m4", true), ("m5", true)],
    )
    .await;
    broker.stop().await;
}

#[tokio::test]
async fn losing_the_tcp_connection_requeues_unacked_messages_in_order() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare_queue(&ch, "acks.tcpdrop").await;
    publish_numbered(&ch, "acks.tcpdrop", 5).await;
    // The consumer reaches the broker through a proxy that the test cuts.
    let (proxy, _consumer_conn, cch) = droppable(&broker).await;
    let mut consumer = consume(&cch, "acks.tcpdrop", BasicConsumeOptions::default()).await;
    let got = receive(&mut consumer, 5).await;
    within(cch.basic_ack(got[0].delivery_tag, BasicAckOptions::default()))
        .await
        .unwrap();
    within(cch.basic_qos(0, BasicQosOptions::default()))
        .await
        .unwrap(); // the ack went through
    proxy.cut();
    // The broker notices the EOF and requeues; the consumer below waits for that.
    assert_queue(
        &ch,
        "acks.tcpdrop",
        &[("m2", true), ("m3", true), ("m4", true), ("m5", true)],
    )
    .await;
    broker.stop().await;
}

#[tokio::test]
async fn recover_with_requeue_redelivers_in_order() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare_queue(&ch, "acks.recover").await;
    publish_numbered(&ch, "acks.recover", 3).await;
    let mut consumer = consume(&ch, "acks.recover", BasicConsumeOptions::default()).await;
    let first = receive(&mut consumer, 3).await;
    assert!(first.iter().all(|d| !d.redelivered));
    within(ch.basic_recover(BasicRecoverOptions { requeue: true }))
        .await
        .expect("recover-ok");
    let again = receive(&mut consumer, 3).await;
    let bodies: Vec<_> = again
        .iter()
        .map(|d| (d.data.as_slice(), d.redelivered))
        .collect();
    assert_eq!(bodies, [(&b"m1"[..], true), (b"m2", true), (b"m3", true)]);
    assert!(again[0].delivery_tag > 3, "new delivery tags");
    within(ch.basic_ack(0, BasicAckOptions { multiple: true }))
        .await
        .unwrap();
    assert_eq!(ready(&ch, "acks.recover").await, 0);
    broker.stop().await;
}

#[tokio::test]
async fn recover_without_requeue_is_not_implemented_540() {
    let broker = TestBroker::start().await;
    let (conn, ch) = broker.channel().await;
    let err = within(ch.basic_recover(BasicRecoverOptions { requeue: false }))
        .await
        .unwrap_err();
    assert_eq!(
        amqp_error(&err),
        (540, "NOT_IMPLEMENTED - requeue=false".to_owned())
    );
    assert!(!conn.status().connected(), "a connection error");
    broker.stop().await;
}

#[tokio::test]
async fn publisher_confirms_ack_every_publish() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare_queue(&ch, "acks.confirms").await;
    within(ch.confirm_select(ConfirmSelectOptions::default()))
        .await
        .unwrap();
    let mut pending = Vec::new();
    for i in 0..100 {
        let confirm = ch
            .basic_publish(
                "".into(),
                "acks.confirms".into(),
                BasicPublishOptions::default(),
                format!("m{i}").as_bytes(),
                BasicProperties::default(),
            )
            .await
            .unwrap();
        pending.push(confirm);
    }
    for confirm in pending {
        assert_eq!(within(confirm).await.unwrap(), Confirmation::Ack(None));
    }
    assert_eq!(ready(&ch, "acks.confirms").await, 100);
    // A publish routed nowhere (not mandatory) is confirmed too.
    let confirm = ch
        .basic_publish(
            "".into(),
            "acks.nowhere".into(),
            BasicPublishOptions::default(),
            b"lost",
            BasicProperties::default(),
        )
        .await
        .unwrap();
    assert_eq!(within(confirm).await.unwrap(), Confirmation::Ack(None));
    broker.stop().await;
}

#[tokio::test]
async fn mandatory_unroutable_is_returned_before_its_confirm() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    within(ch.confirm_select(ConfirmSelectOptions::default()))
        .await
        .unwrap();
    let confirm = ch
        .basic_publish(
            "".into(),
            "acks.nowhere".into(),
            BasicPublishOptions {
                mandatory: true,
                ..Default::default()
            },
            b"bounced",
            BasicProperties::default().with_message_id("id-1".into()),
        )
        .await
        .unwrap();
    // lapin attaches a basic.return to the confirm that follows it.
    let Confirmation::Ack(Some(returned)) = within(confirm).await.unwrap() else {
        panic!("expected an ack carrying the returned message");
    };
    assert_eq!(returned.reply_code, 312);
    assert_eq!(returned.reply_text.as_str(), "NO_ROUTE");
    assert_eq!(returned.delivery.exchange.as_str(), "");
    assert_eq!(returned.delivery.routing_key.as_str(), "acks.nowhere");
    assert_eq!(returned.delivery.data, b"bounced");
    assert_eq!(
        returned
            .delivery
            .properties
            .message_id()
            .as_ref()
            .map(|s| s.as_str()),
        Some("id-1")
    );
    broker.stop().await;
}
