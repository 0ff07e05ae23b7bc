//! Bounded memory per client: a consumer or a basic.get loop that does not read its
//! socket gets no more than its write window and the output high-water mark hold, the
//! rest stays in the queue; the unacked table follows what is unacked, not the range of
//! delivery tags; what connections hold is counted in the broker's memory (frames held
//! behind a commit included, up to the high-water mark); and queues count too, so a
//! client that declares them in a loop is held back before the memory alarm.
//! The slow clients are raw sockets with a small receive buffer that read nothing until
//! the test says so.
mod common;

use common::wire::{encode_frame, encode_method, short_str, Wire};
use common::{declare_queue, ready, within, TestBroker};
use lapin::Channel;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpSocket;

/// A body of `size` bytes that says which message it is.
fn body(n: u32, size: usize) -> Vec<u8> {
    let mut b = n.to_be_bytes().to_vec();
    b.resize(size, (n % 251) as u8);
    b
}

fn number(data: &[u8]) -> u32 {
    u32::from_be_bytes(data[..4].try_into().unwrap())
}

async fn small_budget() -> TestBroker {
    TestBroker::start_with(|c| warren::Config {
        queue_memory: 1 << 20,
        ..c
    })
    .await
}

/// Publishes messages 0..n of `size` bytes to `queue` (in one write, on a connection of
/// its own) and waits until the queue holds them all.
async fn fill(broker: &TestBroker, ch: &Channel, queue: &str, n: u32, size: usize) {
    let mut frames = Vec::new();
    for i in 0..n {
        let mut publish = 0u16.to_be_bytes().to_vec();
        publish.extend(short_str(""));
        publish.extend(short_str(queue));
        publish.push(0);
        frames.extend(encode_method(1, 60, 40, &publish));
        let mut header = [0, 60, 0, 0].to_vec();
        header.extend((size as u64).to_be_bytes());
        header.extend(0u16.to_be_bytes());
        frames.extend(encode_frame(2, 1, &header));
        frames.extend(encode_frame(3, 1, &body(i, size)));
    }
    let mut publisher = Wire::open(broker).await;
    publisher.bytes(&frames).await;
    common::wait_until("every message queued", || async {
        ready(ch, queue).await >= n
    })
    .await;
}

/// A connection with channel 1 open whose socket buffers little: what the broker writes
/// piles up on the broker's side while the test does not read.
async fn slow_reader(broker: &TestBroker) -> Wire {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = within(socket.connect(broker.addr)).await.unwrap();
    Wire::open_on(stream, 1).await
}

/// The ready count of `queue` once it stopped moving: the same over 20 looks in a row.
/// The broker gives no event for "stopped taking from the queue" (that is the absence
/// of one), so quiescence is what is observed: each look is a round trip to the broker.
async fn settled_ready(ch: &Channel, queue: &str) -> u32 {
    let looks = std::cell::Cell::new((u32::MAX, 0u32));
    common::eventually("the ready count to settle", || async {
        let now = ready(ch, queue).await;
        let (last, same) = looks.get();
        let same = if now == last { same + 1 } else { 0 };
        looks.set((now, same));
        (same >= 20).then_some(now)
    })
    .await
}

/// basic.consume arguments: manual ack, no qos (prefetch 0), server-named tag.
fn consume_args(queue: &str) -> Vec<u8> {
    let mut args = 0u16.to_be_bytes().to_vec();
    args.extend(short_str(queue));
    args.extend(short_str(""));
    args.push(0);
    args.extend(0u32.to_be_bytes());
    args
}

fn get_frame(queue: &str) -> Vec<u8> {
    let mut args = 0u16.to_be_bytes().to_vec();
    args.extend(short_str(queue));
    args.push(0);
    encode_method(1, 60, 70, &args)
}

fn ack_frame(tag: u64) -> Vec<u8> {
    let mut args = tag.to_be_bytes().to_vec();
    args.push(0);
    encode_method(1, 60, 80, &args)
}

/// The next message on channel 1 (basic.deliver or basic.get-ok, its header and its
/// one body frame): (delivery tag, body).
async fn next_message(wire: &mut Wire) -> (u64, Vec<u8>) {
    let (ch, class, method, args) = wire.next_method().await;
    let tag_at = match (ch, class, method) {
        (1, 60, 60) => 1 + args[0] as usize,
        (1, 60, 71) => 0,
        other => panic!("expected a delivery, got {other:?}"),
    };
    let tag = u64::from_be_bytes(args[tag_at..tag_at + 8].try_into().unwrap());
    let (kind, _, _) = wire.next_frame().await;
    assert_eq!(kind, 2, "content header");
    let (kind, _, body) = wire.next_frame().await;
    assert_eq!(kind, 3, "content body");
    (tag, body)
}

#[tokio::test]
async fn a_prefetch_0_consumer_that_does_not_read_leaves_its_backlog_in_the_queue() {
    let b = small_budget().await;
    let (_c, ch) = b.channel().await;
    declare_queue(&ch, "backlog").await;
    let (n, size) = (10_000u32, 2048usize);
    fill(&b, &ch, "backlog", n, size).await;

    let mut wire = slow_reader(&b).await;
    wire.method(1, 60, 20, &consume_args("backlog")).await;
    let left = settled_ready(&ch, "backlog").await;
    assert!(
        left >= n / 2,
        "the consumer took {} of {n} messages it has not read",
        n - left
    );
    let used = b.server.broker().memory.used();
    assert!(
        used < u64::from(n) * size as u64 / 2,
        "messages in memory: {used} bytes"
    );

    // Once it reads, everything arrives, in order, once.
    wire.expect_method(1, 60, 21).await;
    for i in 0..n {
        let (tag, data) = next_message(&mut wire).await;
        assert_eq!((tag, number(&data)), (u64::from(i) + 1, i), "in order");
        assert_eq!(data, body(i, size));
    }
    let mut ack_all = u64::from(n).to_be_bytes().to_vec();
    ack_all.push(1);
    wire.method(1, 60, 80, &ack_all).await;
    assert_eq!(settled_ready(&ch, "backlog").await, 0);
    b.stop().await;
}

#[tokio::test]
async fn pipelined_basic_gets_wait_while_the_write_buffer_is_full() {
    let b = small_budget().await;
    let (_c, ch) = b.channel().await;
    declare_queue(&ch, "gets").await;
    let (n, size) = (3_000u32, 8192usize);
    fill(&b, &ch, "gets", n, size).await;

    // Every basic.get at once, from another task: the broker may stop reading them.
    let (mut reader, mut writer) = slow_reader(&b).await.into_split();
    let gets: Vec<u8> = (0..n).flat_map(|_| get_frame("gets")).collect();
    let sending = tokio::spawn(async move {
        writer.write_all(&gets).await.unwrap();
        writer
    });
    let left = settled_ready(&ch, "gets").await;
    assert!(
        left >= n / 2,
        "the broker answered {} of {n} gets nobody read",
        n - left
    );

    // Reading, the client gets every message, in order.
    for i in 0..n {
        let (kind, channel, payload) = common::wire::read_frame(&mut reader).await;
        assert_eq!((kind, channel, &payload[..4]), (1, 1, &[0, 60, 0, 71][..]));
        let tag = u64::from_be_bytes(payload[4..12].try_into().unwrap());
        let (kind, _, _) = common::wire::read_frame(&mut reader).await;
        assert_eq!(kind, 2);
        let (_, _, data) = common::wire::read_frame(&mut reader).await;
        assert_eq!((tag, number(&data)), (u64::from(i) + 1, i));
    }
    let mut writer = within(sending).await.unwrap();
    let mut ack_all = u64::from(n).to_be_bytes().to_vec();
    ack_all.push(1);
    writer
        .write_all(&encode_method(1, 60, 80, &ack_all))
        .await
        .unwrap();
    assert_eq!(settled_ready(&ch, "gets").await, 0);
    b.stop().await;
}

#[tokio::test]
async fn one_old_delivery_kept_unacked_does_not_grow_the_unacked_table() {
    let b = TestBroker::start().await;
    let (_c, ch) = b.channel().await;
    declare_queue(&ch, "kept").await;
    let n = 50_000u32;
    fill(&b, &ch, "kept", n, 16).await;

    // Keep the first and the last delivery, ack every one between by itself as it comes
    // (the table cannot shrink from either end).
    let mut wire = Wire::open(&b).await;
    let memory = b.server.broker().memory.clone();
    let before = memory.clients();
    wire.method(1, 60, 20, &consume_args("kept")).await;
    wire.expect_method(1, 60, 21).await;
    let mut acks = Vec::new();
    for i in 0..n {
        let (tag, data) = next_message(&mut wire).await;
        assert_eq!(number(&data), i);
        if tag > 1 && tag < u64::from(n) {
            acks.extend(ack_frame(tag));
        }
        if acks.len() > 16 * 1024 || i + 1 == n {
            wire.bytes(&std::mem::take(&mut acks)).await;
        }
    }
    assert_eq!(settled_ready(&ch, "kept").await, 0);
    // The connections' share of the broker's memory (their buffers and unacked tables,
    // measured on their tick) comes back down to their buffers: two entries are unacked.
    // (Without compaction the table would hold 50,000 slots, over 3 MiB.)
    common::wait_until("the connections' memory back down", || async {
        memory.clients() <= before + (1 << 20)
    })
    .await;
    // And both are still there to settle, once.
    wire.bytes(&ack_frame(u64::from(n))).await;
    wire.bytes(&ack_frame(1)).await;
    wire.bytes(&ack_frame(1)).await;
    let (_, class, method, args) = wire.next_method().await;
    assert_eq!(
        (class, method),
        (20, 40),
        "the second ack of 1 closes the channel"
    );
    assert_eq!(
        common::wire::close_fields(&args).1,
        "PRECONDITION_FAILED - unknown delivery tag 1"
    );
    b.stop().await;
}

#[tokio::test]
async fn deliveries_taken_from_the_outbox_stop_at_the_high_water_mark() {
    let b = small_budget().await;
    let (_c, ch) = b.channel().await;
    declare_queue(&ch, "large").await;
    // 300 messages of 120 KiB: all fit in the write window at once.
    let (n, size) = (300u32, 120 * 1024);
    fill(&b, &ch, "large", n, size).await;

    let mut wire = slow_reader(&b).await;
    let memory = b.server.broker().memory.clone();
    let before = memory.clients();
    let mut no_ack = consume_args("large");
    no_ack[2 + 1 + "large".len() + 1] = 2;
    wire.method(1, 60, 20, &no_ack).await;
    settled_ready(&ch, "large").await;
    // Deliveries wait in the outbox while the write buffer is full: the connection holds
    // about the high-water mark (1 MiB) and a message, not a batch of them (30 MiB).
    let held = memory.clients() - before;
    assert!(held < 8 << 20, "the connection holds {held} bytes");

    wire.expect_method(1, 60, 21).await;
    for i in 0..n {
        let (_, data) = next_message(&mut wire).await;
        assert_eq!(number(&data), i, "in order");
    }
    b.stop().await;
}

/// Queues count in the memory accounting: a client that declares queues in a loop is
/// held back (connection.blocked, its socket not read) once memory is crowded, before the
/// alarm, while other clients go on publishing, consuming and redeclaring what exists;
/// it is read again once memory is no longer crowded. RabbitMQ blocks only publishers
/// (and bounds queues with the vhost's max-queues); this is warren's extension.
#[tokio::test]
async fn a_client_declaring_queues_in_a_loop_is_held_back_before_the_alarm() {
    let b = TestBroker::start_with(|c| warren::Config {
        memory_limit: Some(2 << 20),
        ..c
    })
    .await;
    let memory = b.server.broker().memory.clone();
    let (declarer, dch) = b.channel().await;
    let mut declared = 0;
    // The declare that crowds memory is still answered; the client hears it is blocked.
    while !memory.crowded() {
        declare_queue(&dch, &format!("q{declared}")).await;
        declared += 1;
    }
    assert!(declared > 1000, "{declared} queues crowd 2 MiB");
    common::wait_until("connection.blocked", || async {
        declarer.status().blocked()
    })
    .await;
    assert!(!memory.alarmed(), "records alone do not raise the alarm");
    let late = tokio::spawn({
        let dch = dch.clone();
        async move { declare_queue(&dch, "late").await }
    });

    let (other, och) = b.channel().await;
    declare_queue(&och, "q0").await;
    common::publish(&och, "", "q0", b"still flowing").await;
    let got = common::get_eventually(&och, "q0").await;
    assert_eq!(got.delivery.data, b"still flowing");
    assert!(!other.status().blocked() && !memory.alarmed());
    assert!(!late.is_finished(), "a held client's declare was answered");

    for i in 0..declared {
        within(och.queue_delete(format!("q{i}").as_str().into(), Default::default()))
            .await
            .expect("queue.delete");
    }
    within(late).await.expect("the held declare is answered");
    assert!(!memory.crowded() && !declarer.status().blocked());
}

/// A client that pipelines far more than 1 MiB behind a tx.commit that waits for the disk
/// (the store held still) is read only until the frames held behind the commit reach the
/// high-water mark: what it holds stays bounded (and counted), another client goes on
/// publishing and consuming meanwhile, and once the disk answers every commit is
/// answered and every message is in the queue, in order.
#[tokio::test]
async fn far_more_than_a_mib_pipelined_behind_a_waiting_commit_is_held_to_the_cap() {
    use amq_protocol::frame::{AMQPContentHeader, AMQPFrame};
    use amq_protocol::protocol::{basic, tx, AMQPClass, BasicProperties};
    use common::raw::{body_frame, encode, header_frame, method_frame, Raw};

    let b = TestBroker::start().await;
    let memory = b.server.broker().memory.clone();
    let (_c, ch) = b.channel().await;
    let durable = lapin::options::QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    common::declare(&ch, "tx.held", durable).await;
    declare_queue(&ch, "tx.other").await;
    let mut raw = Raw::open(b.addr).await;
    raw.open_channel(1).await;
    raw.send(1, AMQPClass::Tx(tx::AMQPMethod::Select(tx::Select {})))
        .await;
    raw.method().await;

    let publish = |body: &[u8], persistent: bool| {
        let method = AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
            routing_key: "tx.held".into(),
            ..Default::default()
        }));
        let mut bytes = method_frame(1, method);
        if persistent {
            let header = AMQPContentHeader {
                class_id: 60,
                body_size: body.len() as u64,
                properties: BasicProperties::default().with_delivery_mode(2),
            };
            bytes.extend(encode(&AMQPFrame::Header(1, header)));
        } else {
            bytes.extend(header_frame(1, body.len() as u64));
        }
        bytes.extend(body_frame(1, body));
        bytes
    };
    let commit = method_frame(1, AMQPClass::Tx(tx::AMQPMethod::Commit(tx::Commit {})));
    // A persistent message and its commit (which waits for the store), then 8 MiB more.
    const MORE: u32 = 2000;
    let mut pipeline = publish(&body(0, 4096), true);
    pipeline.extend(&commit);
    for n in 1..=MORE {
        pipeline.extend(publish(&body(n, 4096), false));
    }
    pipeline.extend(&commit);

    let before = memory.clients();
    let release = b.server.broker().hold_store();
    let other = async {
        wait_until_held(&memory, before).await;
        // Another client is served meanwhile.
        for i in 0..200u32 {
            common::publish(&ch, "", "tx.other", &body(i, 256)).await;
            let bound = memory.clients().saturating_sub(before);
            assert!(bound < 3 << 20, "the pipelining client holds {bound} bytes");
        }
        for i in 0..200u32 {
            let got = common::get_eventually(&ch, "tx.other").await;
            assert_eq!(number(&got.delivery.data), i);
        }
        release.send(()).unwrap();
    };
    within(async { tokio::join!(raw.bytes(&pipeline), other) }).await;

    for _ in 0..2 {
        match raw.method().await {
            (1, AMQPClass::Tx(tx::AMQPMethod::CommitOk(_))) => {}
            other => panic!("expected tx.commit-ok, got {other:?}"),
        }
    }
    assert_eq!(ready(&ch, "tx.held").await, MORE + 1, "nothing lost");
    for n in 0..=MORE {
        let got = common::get_eventually(&ch, "tx.held").await;
        assert_eq!(got.delivery.data, body(n, 4096), "in order");
    }
    b.stop().await;
}

/// Waits until the connection pipelining behind a commit holds about the high-water
/// mark (1 MiB) in frames.
async fn wait_until_held(memory: &warren::testing::Memory, before: u64) {
    common::wait_until("frames held behind the commit", || async {
        memory.clients().saturating_sub(before) >= 1 << 20
    })
    .await;
}
