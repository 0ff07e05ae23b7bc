//! Queues larger than the memory budget: past `queue_memory`, queues keep a short head in
//! memory and page the rest to `<data-dir>/pages`, read back in order. Covered: order and
//! contents, the memory staying near the budget, priorities, requeue, TTL, length limits,
//! purge and delete (files gone, persistent messages settled), recovery across a
//! restart with a backlog larger than the budget, and no disk read under the queue lock:
//! consumers and basic.get faster than the disk wait for the page I/O thread.
mod common;

use common::{passive, ready, table, within, TestBroker};
use futures::StreamExt;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel};

const BUDGET: u64 = 256 * 1024;

async fn small_budget() -> TestBroker {
    TestBroker::start_with(|c| warren::Config {
        queue_memory: BUDGET,
        ..c
    })
    .await
}

/// A 1 KiB body that says which message it is.
fn body(n: u32) -> Vec<u8> {
    let mut b = n.to_be_bytes().to_vec();
    b.resize(1024, (n % 251) as u8);
    b
}

fn number(data: &[u8]) -> u32 {
    u32::from_be_bytes(data[..4].try_into().unwrap())
}

/// Page files on disk once the page I/O thread has caught up (it writes and deletes
/// them off the queue lock).
async fn page_files(b: &TestBroker) -> usize {
    b.server.broker().page_io_done().await;
    std::fs::read_dir(b.data_dir.join("pages"))
        .map(|d| d.count())
        .unwrap_or(0)
}

async fn publish_numbered(
    ch: &Channel,
    queue: &str,
    range: std::ops::Range<u32>,
    props: BasicProperties,
) {
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .ok();
    for n in range {
        ch.basic_publish(
            "".into(),
            queue.into(),
            BasicPublishOptions::default(),
            &body(n),
            props.clone(),
        )
        .await
        .unwrap();
    }
    within(ch.wait_for_confirms()).await.unwrap();
}

/// Consumes `count` messages with acks and returns their numbers (and redelivered flags).
async fn consume_numbers(ch: &Channel, queue: &str, count: usize) -> Vec<(u32, bool)> {
    ch.basic_qos(500, BasicQosOptions::default()).await.unwrap();
    let mut consumer = ch
        .basic_consume(
            queue.into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut got = Vec::with_capacity(count);
    while got.len() < count {
        let d = within(consumer.next()).await.unwrap().unwrap();
        assert_eq!(d.data, body(number(&d.data)), "body intact");
        got.push((number(&d.data), d.redelivered));
        d.ack(BasicAckOptions::default()).await.unwrap();
    }
    ch.basic_cancel(consumer.tag(), BasicCancelOptions::default())
        .await
        .unwrap();
    got
}

#[tokio::test]
async fn a_backlog_beyond_the_budget_is_paged_and_read_back_in_order() {
    let b = small_budget().await;
    let (_c, ch) = b.channel().await;
    ch.queue_declare(
        "big".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    let n = 20_000u32; // about 20 MiB, 80 times the budget
    publish_numbered(&ch, "big", 0..n, BasicProperties::default()).await;
    assert_eq!(ready(&ch, "big").await, n, "paged messages are counted");
    assert!(page_files(&b).await > 0, "the backlog is on disk");
    let used = b.server.broker().memory.used();
    assert!(
        used < 4 * BUDGET,
        "queued messages in memory stay near the budget: {used} bytes"
    );

    let got = consume_numbers(&ch, "big", n as usize).await;
    let numbers: Vec<u32> = got.iter().map(|g| g.0).collect();
    assert_eq!(numbers, (0..n).collect::<Vec<_>>(), "in publish order");
    assert_eq!(ready(&ch, "big").await, 0);
    assert_eq!(
        page_files(&b).await,
        0,
        "read-through page files are deleted"
    );
    b.stop().await;
}

#[tokio::test]
async fn basic_get_reads_through_the_paged_tail() {
    let b = small_budget().await;
    let (_c, ch) = b.channel().await;
    ch.queue_declare(
        "get".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    publish_numbered(&ch, "get", 0..3000, BasicProperties::default()).await;
    for n in 0..3000u32 {
        let m = ch
            .basic_get("get".into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
            .expect("a message while the count says there are some");
        assert_eq!(number(&m.delivery.data), n);
        assert_eq!(m.message_count, 2999 - n);
    }
    assert!(ch
        .basic_get("get".into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap()
        .is_none());
    b.stop().await;
}

#[tokio::test]
async fn priorities_hold_across_paging() {
    let b = small_budget().await;
    let (_c, ch) = b.channel().await;
    let args = table(&[("x-max-priority", AMQPValue::ShortShortUInt(3))]);
    ch.queue_declare("prio".into(), QueueDeclareOptions::default(), args)
        .await
        .unwrap();
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .unwrap();
    let n = 4000u32;
    for i in 0..n {
        // Priorities 0..=4; 4 is above x-max-priority and counts as 3.
        let props = BasicProperties::default().with_priority((i % 5) as u8);
        ch.basic_publish(
            "".into(),
            "prio".into(),
            BasicPublishOptions::default(),
            &body(i),
            props,
        )
        .await
        .unwrap();
    }
    within(ch.wait_for_confirms()).await.unwrap();
    assert!(page_files(&b).await > 0);
    let got: Vec<u32> = consume_numbers(&ch, "prio", n as usize)
        .await
        .into_iter()
        .map(|g| g.0)
        .collect();
    let level = |i: u32| (i % 5).min(3);
    let mut want: Vec<u32> = (0..n).collect();
    want.sort_by_key(|&i| (std::cmp::Reverse(level(i)), i));
    assert_eq!(
        got, want,
        "highest priority first, publish order within a level"
    );
    b.stop().await;
}

#[tokio::test]
async fn requeued_messages_go_back_before_the_paged_tail() {
    let b = small_budget().await;
    let (c, ch) = b.channel().await;
    ch.queue_declare(
        "rq".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    publish_numbered(&ch, "rq", 0..5000, BasicProperties::default()).await;

    // Take 300 without acking them, then close the channel: they go back.
    let taker = c.create_channel().await.unwrap();
    taker
        .basic_qos(300, BasicQosOptions::default())
        .await
        .unwrap();
    let mut consumer = taker
        .basic_consume(
            "rq".into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    for n in 0..300u32 {
        let d = within(consumer.next()).await.unwrap().unwrap();
        assert_eq!(number(&d.data), n);
    }
    taker.close(200, "bye".into()).await.unwrap();

    let got = consume_numbers(&ch, "rq", 5000).await;
    let numbers: Vec<u32> = got.iter().map(|g| g.0).collect();
    assert_eq!(numbers, (0..5000).collect::<Vec<_>>());
    assert!(
        got[..300].iter().all(|g| g.1),
        "the requeued ones are redelivered"
    );
    assert!(got[300..].iter().all(|g| !g.1));
    b.stop().await;
}

#[tokio::test]
async fn paged_messages_expire_and_length_limits_count_them() {
    let b = TestBroker::start_manual(|c| warren::Config {
        queue_memory: BUDGET,
        ..c
    })
    .await;
    let (_c, ch) = b.channel().await;
    let ttl = table(&[("x-message-ttl", AMQPValue::LongUInt(300))]);
    ch.queue_declare("ttl".into(), QueueDeclareOptions::default(), ttl)
        .await
        .unwrap();
    let max = table(&[("x-max-length", AMQPValue::LongUInt(1000))]);
    ch.queue_declare("max".into(), QueueDeclareOptions::default(), max)
        .await
        .unwrap();
    publish_numbered(&ch, "ttl", 0..4000, BasicProperties::default()).await;
    publish_numbered(&ch, "max", 0..6000, BasicProperties::default()).await;
    assert_eq!(ready(&ch, "max").await, 1000);
    let got: Vec<u32> = consume_numbers(&ch, "max", 1000)
        .await
        .into_iter()
        .map(|g| g.0)
        .collect();
    assert_eq!(
        got,
        (5000..6000).collect::<Vec<_>>(),
        "drop-head kept the newest"
    );

    // The sweep expires the whole paged backlog once its time has passed (what is on
    // disk is dropped as the page I/O thread gets to it).
    assert_eq!(ready(&ch, "ttl").await, 4000, "not yet expired");
    b.advance(400).await;
    common::wait_until("expired messages dropped, paged ones too", || async {
        ready(&ch, "ttl").await == 0
    })
    .await;
    assert_eq!(page_files(&b).await, 0);
    b.stop().await;
}

#[tokio::test]
async fn purge_and_delete_remove_paged_messages_for_good() {
    let b = small_budget().await;
    let (_c, ch) = b.channel().await;
    for q in ["purged", "deleted", "kept"] {
        ch.queue_declare(
            q.into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    }
    let persistent = BasicProperties::default().with_delivery_mode(2);
    publish_numbered(&ch, "purged", 0..3000, persistent.clone()).await;
    publish_numbered(&ch, "deleted", 0..3000, persistent.clone()).await;
    publish_numbered(&ch, "kept", 0..3000, persistent).await;
    assert!(page_files(&b).await > 0);
    let purged = ch
        .queue_purge("purged".into(), QueuePurgeOptions::default())
        .await
        .unwrap();
    assert_eq!(purged, 3000);
    let deleted = ch
        .queue_delete("deleted".into(), QueueDeleteOptions::default())
        .await
        .unwrap();
    assert_eq!(deleted, 3000);

    // After a restart (which also rebuilds the paged backlog from the message store, past
    // the budget again), purged and deleted messages stay gone and the rest is in order.
    let dir = b.restart_later().await;
    let b = TestBroker::start_on(dir, |c| warren::Config {
        queue_memory: BUDGET,
        ..c
    })
    .await;
    let (_c, ch) = b.channel().await;
    assert_eq!(ready(&ch, "purged").await, 0);
    assert!(ch
        .queue_declare("deleted".into(), passive(), FieldTable::default())
        .await
        .is_err());
    let (_c, ch) = b.channel().await;
    assert_eq!(ready(&ch, "kept").await, 3000);
    let got: Vec<u32> = consume_numbers(&ch, "kept", 3000)
        .await
        .into_iter()
        .map(|g| g.0)
        .collect();
    assert_eq!(got, (0..3000).collect::<Vec<_>>());
    b.stop().await;
}

#[tokio::test]
async fn a_lazy_queue_pages_under_the_budget_too() {
    // The default budget (128 MiB) is far from reached; x-queue-mode lazy pages anyway.
    let b = TestBroker::start().await;
    let (_c, ch) = b.channel().await;
    let lazy = table(&[("x-queue-mode", AMQPValue::LongString("lazy".into()))]);
    ch.queue_declare("lazy".into(), QueueDeclareOptions::default(), lazy)
        .await
        .unwrap();
    ch.queue_declare(
        "eager".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    publish_numbered(&ch, "eager", 0..2000, BasicProperties::default()).await;
    assert_eq!(page_files(&b).await, 0, "an ordinary queue stays in memory");
    publish_numbered(&ch, "lazy", 0..2000, BasicProperties::default()).await;
    assert!(page_files(&b).await > 0, "the lazy one is on disk");
    let got: Vec<u32> = consume_numbers(&ch, "lazy", 2000)
        .await
        .into_iter()
        .map(|g| g.0)
        .collect();
    assert_eq!(got, (0..2000).collect::<Vec<_>>());
    b.stop().await;
}

/// Declares `queue`, pages `n` numbered messages into it, then holds the page I/O thread
/// still: no read-back finishes until the returned sender is used (or dropped).
async fn paged_with_disk_held(
    b: &TestBroker,
    ch: &Channel,
    queue: &str,
    n: u32,
) -> std::sync::mpsc::Sender<()> {
    ch.queue_declare(
        queue.into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .unwrap();
    publish_numbered(ch, queue, 0..n, BasicProperties::default()).await;
    assert!(page_files(b).await > 0, "the backlog is on disk");
    let (release, held) = std::sync::mpsc::channel::<()>();
    let pages = b
        .server
        .broker()
        .memory
        .page_dir()
        .expect("a page directory");
    pages.background(move || {
        let _ = held.recv();
    });
    release
}

/// A consumer faster than the disk (no-ack: nothing limits it) outruns the read-ahead:
/// the queue waits for the page I/O thread instead of reading under its lock, so it
/// stays responsive meanwhile (here with the I/O thread held still), and the whole
/// backlog still comes back, in order.
#[tokio::test]
async fn a_consumer_faster_than_the_disk_drains_a_paged_queue_in_order() {
    let b = small_budget().await;
    let (_c, ch) = b.channel().await;
    let n = 20_000u32;
    let release = paged_with_disk_held(&b, &ch, "fast", n).await;
    let (_c2, consumer_ch) = b.channel().await;
    let mut consumer = consumer_ch
        .basic_consume(
            "fast".into(),
            "".into(),
            BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();
    let mut next = 0u32;
    // What was in memory (the head and what was read ahead) comes at once ...
    while next < 64 {
        let d = within(consumer.next()).await.unwrap().unwrap();
        assert_eq!(number(&d.data), next);
        next += 1;
    }
    // ... then the queue waits for the disk, and answers others meanwhile.
    let (_c3, other) = b.channel().await;
    let count = within(other.queue_declare("fast".into(), passive(), FieldTable::default()))
        .await
        .expect("the waiting queue answers")
        .message_count();
    // Nothing beyond the head and one read-ahead left the queue: it did not read the
    // disk itself (the I/O thread is held).
    assert!(count > n - 1000, "{count} left while the disk is held");
    common::publish(&other, "", "fast", &body(n)).await;

    release.send(()).unwrap();
    while next <= n {
        let d = within(consumer.next()).await.unwrap().unwrap();
        assert_eq!(number(&d.data), next, "in order");
        assert_eq!(d.data, body(next), "body intact");
        next += 1;
    }
    assert_eq!(ready(&ch, "fast").await, 0);
    assert_eq!(
        page_files(&b).await,
        0,
        "read-through page files are deleted"
    );
    b.stop().await;
}

/// basic.get on a paged queue whose head waits for the disk (the page I/O thread held
/// still) is not answered get-empty: the channel waits and answers once the read-back is
/// done, and what the client sent after it on that channel comes after, in order.
#[tokio::test]
async fn basic_get_waits_for_a_read_back_instead_of_answering_empty() {
    let b = small_budget().await;
    let (_c, ch) = b.channel().await;
    let n = 3000u32;
    let release = paged_with_disk_held(&b, &ch, "getwait", n).await;
    let (_c2, getter) = b.channel().await;
    let mut getting = tokio::spawn(async move {
        for i in 0..n {
            let m = getter
                .basic_get("getwait".into(), BasicGetOptions { no_ack: true })
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("get-empty at {i} while {} are queued", n - i));
            assert_eq!(number(&m.delivery.data), i, "in order");
        }
    });
    // The head and one read-ahead come from memory; then a get must wait for the disk.
    let passive_count = || async {
        within(ch.queue_declare("getwait".into(), passive(), FieldTable::default()))
            .await
            .unwrap()
            .message_count()
    };
    common::wait_until("the in-memory part taken", || async {
        passive_count().await < n - 64
    })
    .await;
    common::assert_still_pending(&mut getting, "gets went on while the disk was held").await;
    assert!(passive_count().await > n - 1000);
    release.send(()).unwrap();
    within(getting).await.unwrap();
    b.stop().await;
}
