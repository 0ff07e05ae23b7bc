//! A queue's unacknowledged messages in `/api/queues/{vhost}/{name}`: counted when they
//! go to a client that must settle them (manual-ack consumer, basic.get, the API's get),
//! no longer once acked, rejected, dead-lettered or put back (nack/reject requeue, channel
//! close, connection drop); kept, as RabbitMQ keeps them, by a consumer cancel and a
//! purge. No-ack deliveries never count. `messages` and `message_bytes` are ready plus
//! unacked, as the reference RabbitMQ 3.10 shows them.

mod common;

use amq_protocol::protocol::{basic, AMQPClass};
use common::http::Http;
use common::raw::Raw;
use common::{consume, publish, table, within, TestBroker};
use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicGetOptions, BasicNackOptions,
    BasicRejectOptions, QueueDeclareOptions, QueuePurgeOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Consumer};
use serde_json::{json, Value};

/// Bytes of every message body these tests publish.
const BODY: &[u8] = b"0123456789";

/// The figures this slice fills, as the API shows them for `queue` in "/".
async fn figures(http: &Http, queue: &str) -> Value {
    let q = http.get(&format!("/api/queues/%2f/{queue}")).await.json();
    let keys = [
        "messages",
        "messages_ready",
        "messages_unacknowledged",
        "messages_ram",
        "messages_ready_ram",
        "messages_unacknowledged_ram",
        "message_bytes",
        "message_bytes_ready",
        "message_bytes_unacknowledged",
        "message_bytes_ram",
    ];
    keys.iter()
        .map(|k| (k.to_string(), q[*k].clone()))
        .collect()
}

/// What `figures` shows with `ready` and `unacked` messages of `BODY`'s size.
fn expected(ready: u64, unacked: u64) -> Value {
    let size = BODY.len() as u64;
    json!({
        "messages": ready + unacked,
        "messages_ready": ready,
        "messages_unacknowledged": unacked,
        "messages_ram": ready + unacked,
        "messages_ready_ram": ready,
        "messages_unacknowledged_ram": unacked,
        "message_bytes": (ready + unacked) * size,
        "message_bytes_ready": ready * size,
        "message_bytes_unacknowledged": unacked * size,
        "message_bytes_ram": (ready + unacked) * size,
    })
}

/// Waits until the API shows `ready` and `unacked` for `queue` (acks have no reply, so
/// the broker handles them a little after the client sent them).
async fn shows(http: &Http, queue: &str, ready: u64, unacked: u64) {
    let want = expected(ready, unacked);
    let seen = std::cell::RefCell::new(Value::Null);
    let found = common::poll_within(common::EVENTUALLY, || async {
        let now = figures(http, queue).await;
        let done = now == want;
        *seen.borrow_mut() = now;
        done.then_some(())
    })
    .await;
    let seen = seen.into_inner();
    assert!(
        found.is_some(),
        "{queue}: wanted {want}, the API shows {seen}"
    );
}

async fn declare(ch: &Channel, queue: &str, args: FieldTable) {
    within(ch.queue_declare(queue.into(), QueueDeclareOptions::default(), args))
        .await
        .expect("queue.declare");
}

/// Declares `queue` and publishes `n` messages to it; waits until they are queued.
async fn queue_with(broker: &TestBroker, ch: &Channel, queue: &str, n: u64) {
    declare(ch, queue, FieldTable::default()).await;
    for _ in 0..n {
        publish(ch, "", queue, BODY).await;
    }
    shows(&broker.http(), queue, n, 0).await;
}

/// basic.get expecting an ack; its delivery tag.
async fn get(ch: &Channel, queue: &str) -> u64 {
    within(ch.basic_get(queue.into(), BasicGetOptions { no_ack: false }))
        .await
        .expect("basic.get")
        .expect("a message")
        .delivery_tag
}

/// The next `n` deliveries' tags.
async fn receive(consumer: &mut Consumer, n: usize) -> Vec<u64> {
    let mut tags = Vec::new();
    while tags.len() < n {
        let d = within(consumer.next()).await.expect("a delivery").unwrap();
        tags.push(d.delivery_tag);
    }
    tags
}

const ONE: BasicAckOptions = BasicAckOptions { multiple: false };
const UP_TO: BasicAckOptions = BasicAckOptions { multiple: true };

#[tokio::test]
async fn a_manual_ack_consumers_deliveries_count_until_acked_singly_or_multiply() {
    let broker = TestBroker::start_with_management().await;
    let http = broker.http();
    let (_conn, ch) = broker.channel().await;
    queue_with(&broker, &ch, "q", 4).await;
    let mut consumer = consume(&ch, "q", BasicConsumeOptions::default()).await;
    let tags = receive(&mut consumer, 4).await;
    shows(&http, "q", 0, 4).await;
    within(ch.basic_ack(tags[0], ONE)).await.unwrap();
    shows(&http, "q", 0, 3).await;
    within(ch.basic_ack(tags[2], UP_TO)).await.unwrap();
    shows(&http, "q", 0, 1).await;
    // A later publish is delivered at once: out, not ready.
    publish(&ch, "", "q", BODY).await;
    let later = receive(&mut consumer, 1).await;
    shows(&http, "q", 0, 2).await;
    within(ch.basic_ack(later[0], UP_TO)).await.unwrap();
    shows(&http, "q", 0, 0).await;
}

#[tokio::test]
async fn gets_count_until_acked_nacked_or_rejected_and_no_ack_gets_never_count() {
    let broker = TestBroker::start_with_management().await;
    let http = broker.http();
    let (_conn, ch) = broker.channel().await;
    queue_with(&broker, &ch, "q", 4).await;
    let a = get(&ch, "q").await;
    let b = get(&ch, "q").await;
    let c = get(&ch, "q").await;
    shows(&http, "q", 1, 3).await;
    let requeue = BasicNackOptions {
        multiple: false,
        requeue: true,
    };
    within(ch.basic_nack(a, requeue)).await.unwrap();
    shows(&http, "q", 2, 2).await;
    within(ch.basic_reject(b, BasicRejectOptions { requeue: false }))
        .await
        .unwrap();
    shows(&http, "q", 2, 1).await;
    within(ch.basic_reject(c, BasicRejectOptions { requeue: true }))
        .await
        .unwrap();
    shows(&http, "q", 3, 0).await;
    for _ in 0..3 {
        let got = within(ch.basic_get("q".into(), BasicGetOptions { no_ack: true }))
            .await
            .unwrap();
        assert!(got.is_some());
    }
    shows(&http, "q", 0, 0).await;
}

#[tokio::test]
async fn no_ack_deliveries_never_count() {
    let broker = TestBroker::start_with_management().await;
    let http = broker.http();
    let (_conn, ch) = broker.channel().await;
    queue_with(&broker, &ch, "q", 3).await;
    let no_ack = BasicConsumeOptions {
        no_ack: true,
        ..Default::default()
    };
    let mut consumer = consume(&ch, "q", no_ack).await;
    receive(&mut consumer, 3).await;
    assert_eq!(figures(&http, "q").await, expected(0, 0));
    publish(&ch, "", "q", BODY).await;
    receive(&mut consumer, 1).await;
    assert_eq!(figures(&http, "q").await, expected(0, 0));
}

#[tokio::test]
async fn dead_lettered_rejects_and_nacks_leave_the_count() {
    let broker = TestBroker::start_with_management().await;
    let http = broker.http();
    let (_conn, ch) = broker.channel().await;
    declare(&ch, "dlq", FieldTable::default()).await;
    let dlx = [("x-dead-letter-exchange", AMQPValue::LongString("".into()))];
    let mut args = table(&dlx);
    args.insert(
        "x-dead-letter-routing-key".into(),
        AMQPValue::LongString("dlq".into()),
    );
    declare(&ch, "q", args).await;
    for _ in 0..3 {
        publish(&ch, "", "q", BODY).await;
    }
    shows(&http, "q", 3, 0).await;
    let mut consumer = consume(&ch, "q", BasicConsumeOptions::default()).await;
    let tags = receive(&mut consumer, 3).await;
    shows(&http, "q", 0, 3).await;
    within(ch.basic_reject(tags[0], BasicRejectOptions { requeue: false }))
        .await
        .unwrap();
    shows(&http, "q", 0, 2).await;
    let drop_up_to = BasicNackOptions {
        multiple: true,
        requeue: false,
    };
    within(ch.basic_nack(tags[2], drop_up_to)).await.unwrap();
    shows(&http, "q", 0, 0).await;
    shows(&http, "dlq", 3, 0).await;
}

#[tokio::test]
async fn a_channel_close_puts_its_unacked_messages_back() {
    let broker = TestBroker::start_with_management().await;
    let http = broker.http();
    let (conn, ch) = broker.channel().await;
    queue_with(&broker, &ch, "q", 3).await;
    let getter = within(conn.create_channel()).await.unwrap();
    get(&getter, "q").await;
    let mut consumer = consume(&ch, "q", BasicConsumeOptions::default()).await;
    receive(&mut consumer, 2).await;
    shows(&http, "q", 0, 3).await;
    within(getter.close(200, "bye".into())).await.unwrap();
    // The consumer's channel is still open: what the getter held goes to it.
    receive(&mut consumer, 1).await;
    shows(&http, "q", 0, 3).await;
    within(ch.close(200, "bye".into())).await.unwrap();
    shows(&http, "q", 3, 0).await;
}

#[tokio::test]
async fn a_dropped_connection_puts_its_unacked_messages_back() {
    let broker = TestBroker::start_with_management().await;
    let http = broker.http();
    let (_conn, ch) = broker.channel().await;
    queue_with(&broker, &ch, "q", 2).await;
    let mut raw = Raw::open(broker.addr).await;
    raw.open_channel(1).await;
    let get = basic::Get {
        queue: "q".into(),
        no_ack: false,
    };
    raw.send(1, AMQPClass::Basic(basic::AMQPMethod::Get(get)))
        .await;
    shows(&http, "q", 1, 1).await;
    // No connection.close: the socket just goes.
    drop(raw);
    shows(&http, "q", 2, 0).await;
}

#[tokio::test]
async fn a_cancelled_consumers_unacked_messages_stay_unacked_until_settled() {
    // RabbitMQ too: basic.cancel does not requeue, the channel still owes the acks.
    let broker = TestBroker::start_with_management().await;
    let http = broker.http();
    let (_conn, ch) = broker.channel().await;
    queue_with(&broker, &ch, "q", 2).await;
    let mut consumer = consume(&ch, "q", BasicConsumeOptions::default()).await;
    let tags = receive(&mut consumer, 2).await;
    within(ch.basic_cancel(consumer.tag(), BasicCancelOptions::default()))
        .await
        .unwrap();
    shows(&http, "q", 0, 2).await;
    within(ch.basic_ack(tags[0], ONE)).await.unwrap();
    shows(&http, "q", 0, 1).await;
    within(ch.basic_recover(lapin::options::BasicRecoverOptions { requeue: true }))
        .await
        .unwrap();
    shows(&http, "q", 1, 0).await;
}

#[tokio::test]
async fn a_purge_keeps_unacked_messages_and_a_deleted_queue_takes_them() {
    let broker = TestBroker::start_with_management().await;
    let http = broker.http();
    let (_conn, ch) = broker.channel().await;
    queue_with(&broker, &ch, "q", 3).await;
    let a = get(&ch, "q").await;
    let b = get(&ch, "q").await;
    shows(&http, "q", 1, 2).await;
    // As in RabbitMQ: purge drops the ready message only, and counts only it.
    let purged = within(ch.queue_purge("q".into(), QueuePurgeOptions::default()))
        .await
        .unwrap();
    assert_eq!(purged, 1);
    shows(&http, "q", 0, 2).await;
    within(ch.basic_ack(a, ONE)).await.unwrap();
    shows(&http, "q", 0, 1).await;
    // Deleted with a message out: its ack later is no error, and a queue declared
    // again under the name starts from nothing.
    within(ch.queue_delete("q".into(), Default::default()))
        .await
        .unwrap();
    within(ch.basic_ack(b, ONE)).await.unwrap();
    declare(&ch, "q", FieldTable::default()).await;
    assert_eq!(figures(&http, "q").await, expected(0, 0));
    publish(&ch, "", "q", BODY).await;
    shows(&http, "q", 1, 0).await;
}

#[tokio::test]
async fn the_apis_get_counts_nothing_once_it_has_answered() {
    let broker = TestBroker::start_with_management().await;
    let http = broker.http();
    let (_conn, ch) = broker.channel().await;
    queue_with(&broker, &ch, "q", 3).await;
    for (mode, ready) in [
        ("ack_requeue_true", 3),
        ("reject_requeue_true", 3),
        ("reject_requeue_false", 2),
        ("ack_requeue_false", 1),
    ] {
        let body = json!({"count": 1, "ackmode": mode, "encoding": "auto"});
        let got = http.post("/api/queues/%2f/q/get", &body).await;
        assert_eq!(got.json().as_array().map(Vec::len), Some(1), "{mode}");
        assert_eq!(figures(&http, "q").await, expected(ready, 0), "{mode}");
    }
}

#[tokio::test]
async fn prometheus_shows_each_queues_unacked_messages_and_bytes() {
    let broker = TestBroker::start_with(|c| warren::Config {
        management_port: warren::ListenerPort::On(0),
        prometheus_port: warren::ListenerPort::On(0),
        ..c
    })
    .await;
    let (_conn, ch) = broker.channel().await;
    queue_with(&broker, &ch, "q", 3).await;
    get(&ch, "q").await;
    get(&ch, "q").await;
    shows(&broker.http(), "q", 1, 2).await;
    let text = broker.prometheus().get("/metrics/per-object").await.text();
    let sample = |family: &str| {
        let series = format!("{family}{{vhost=\"/\",queue=\"q\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(series.as_str()))
            .map(str::to_owned)
    };
    let size = BODY.len();
    for (family, value) in [
        ("rabbitmq_queue_messages", "3".to_owned()),
        ("rabbitmq_queue_messages_ready", "1".to_owned()),
        ("rabbitmq_queue_messages_unacked", "2".to_owned()),
        ("rabbitmq_queue_messages_bytes", (3 * size).to_string()),
        (
            "rabbitmq_queue_messages_unacked_bytes",
            (2 * size).to_string(),
        ),
    ] {
        assert_eq!(sample(family), Some(value), "{family}");
    }
}
