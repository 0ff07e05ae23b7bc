//! Where a queue's messages are, as `/api/queues/{vhost}/{name}` tells it, RabbitMQ
//! 3.10's classic-queue figures: `messages_ram` / `message_bytes_ram` (ready messages
//! in memory, plus unacked ones, which always are), `messages_paged_out` /
//! `message_bytes_paged_out` (messages on disk that are not in the message store) and
//! `messages_persistent` / `message_bytes_persistent` (persistent messages of a durable
//! queue, ready or unacked). Checked with a queue filled far past a small paging budget
//! (`queue_memory`), then partly taken and drained.
mod common;

use common::http::Http;
use common::{durable, within, TestBroker};
use lapin::options::{BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions};
use lapin::{BasicProperties, Channel};
use serde_json::Value;

const SIZE: u64 = 1000;

/// Publishes `n` messages of `SIZE` bytes (persistent ones with delivery mode 2) and
/// waits for their confirms.
async fn publish(ch: &Channel, queue: &str, n: u64, persistent: bool) {
    let props = BasicProperties::default().with_delivery_mode(if persistent { 2 } else { 1 });
    for _ in 0..n {
        within(ch.basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions::default(),
            &[7u8; SIZE as usize],
            props.clone(),
        ))
        .await
        .unwrap();
    }
    within(ch.wait_for_confirms()).await.unwrap();
}

/// Every figure of these tests, in one read.
async fn figures(http: &Http, queue: &str) -> Value {
    http.get(&format!("/api/queues/%2f/{queue}")).await.json()
}

fn n(q: &Value, key: &str) -> u64 {
    q[key]
        .as_u64()
        .unwrap_or_else(|| panic!("{key} missing: {q}"))
}

#[tokio::test]
async fn paged_out_ram_and_persistent_figures_add_up_past_the_paging_budget() {
    let b = TestBroker::start_paging(256 * 1024).await;
    let http = b.http();
    let (_c, ch) = b.channel().await;
    common::declare(&ch, "deep", durable()).await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    // Transient first, far past the budget; then persistent ones, which land in the
    // paged tail behind them (a level that pages keeps paging, in order).
    let (transient, persistent) = (3000, 500);
    publish(&ch, "deep", transient, false).await;
    publish(&ch, "deep", persistent, true).await;
    // Two taken and not acked yet: unacked, in memory.
    let mut taken = Vec::new();
    for _ in 0..2 {
        let m = within(ch.basic_get("deep".into(), BasicGetOptions { no_ack: false }))
            .await
            .unwrap()
            .expect("a message");
        taken.push(m);
    }

    let q = figures(&http, "deep").await;
    let total = transient + persistent;
    assert_eq!(n(&q, "messages"), total, "{q}");
    assert_eq!(n(&q, "messages_ready"), total - 2);
    assert_eq!(n(&q, "messages_unacknowledged_ram"), 2);
    let ready_ram = n(&q, "messages_ready_ram");
    let paged_out = n(&q, "messages_paged_out");
    assert!((1..1000).contains(&ready_ram), "a short head: {q}");
    assert!(paged_out > 2000, "most transient messages are on disk: {q}");
    // Ready: in memory, or on disk (transient: paged out; persistent: in the store).
    assert_eq!(ready_ram + paged_out + persistent, total - 2, "{q}");
    assert_eq!(n(&q, "messages_ram"), ready_ram + 2);
    assert_eq!(n(&q, "message_bytes_ram"), (ready_ram + 2) * SIZE);
    assert_eq!(n(&q, "message_bytes_paged_out"), paged_out * SIZE);
    assert_eq!(n(&q, "messages_persistent"), persistent);
    assert_eq!(n(&q, "message_bytes_persistent"), persistent * SIZE);
    assert_eq!(n(&q, "message_bytes"), total * SIZE);
    // The page files' writes count in the node's file I/O figures, beside the store's.
    let node = &http.get("/api/nodes").await.json()[0];
    assert!(n(node, "io_write_bytes") >= paged_out * SIZE, "{node}");
    let writes_before = n(node, "io_write_count");

    // Drained but for the last persistent message, taken and not acked: it counts as
    // persistent and in memory, nothing is paged out.
    for m in taken {
        m.ack(Default::default()).await.unwrap();
    }
    let mut last = None;
    for _ in 0..total - 2 {
        let m = within(ch.basic_get("deep".into(), BasicGetOptions { no_ack: false }))
            .await
            .unwrap()
            .expect("a message");
        if let Some(prev) = last.replace(m) {
            prev.ack(Default::default()).await.unwrap();
        }
    }
    common::synced(&ch).await;
    // Reading the paged messages back counted their bytes as file reads.
    let node = &http.get("/api/nodes").await.json()[0];
    assert!(n(node, "io_read_bytes") >= paged_out * SIZE, "{node}");
    assert!(n(node, "io_write_count") >= writes_before, "{node}");
    let q = figures(&http, "deep").await;
    for (key, want) in [
        ("messages", 1),
        ("messages_ram", 1),
        ("messages_paged_out", 0),
        ("message_bytes_paged_out", 0),
        ("messages_persistent", 1),
        ("message_bytes_persistent", SIZE),
    ] {
        assert_eq!(n(&q, key), want, "{key}: {q}");
    }
    last.unwrap().ack(Default::default()).await.unwrap();
    common::synced(&ch).await;
    let q = figures(&http, "deep").await;
    assert_eq!(n(&q, "messages_persistent"), 0, "{q}");
    b.stop().await;
}
