//! A connection task that panics costs that client its connection and nothing else: the
//! drop guard requeues its unacked messages in order and deletes its exclusive and
//! auto-delete queues, the accept loop logs the panic with the connection's name, and the
//! broker goes on. tx.commit with persistent messages in durable queues (which panicked
//! on c54a01c) answers once the store has synced, without blocking, in order.
//!
//! The panics are made on purpose through warren's test hooks (cargo feature
//! `test-hooks`, on for the integration tests only).
mod common;

use amq_protocol::frame::{AMQPContentHeader, AMQPFrame};
use amq_protocol::protocol::{basic, queue, tx, AMQPClass};
use common::raw::{body_frame, encode, method_frame, Raw};
use common::{
    auto_delete, consume, declare, declare_queue, exclusive, publish, queue_exists, ready,
    wait_until, within, TestBroker,
};
use lapin::options::{
    BasicConsumeOptions, BasicGetOptions, BasicPublishOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Connection};
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use warren::testing::{PANIC_IN_RELEASE_QUEUE, PANIC_QUEUE};

// ---- what the broker logs, captured (this test binary's global subscriber) ----

#[derive(Clone, Default)]
struct Log(Arc<Mutex<Vec<u8>>>);

impl Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn log() -> &'static Log {
    static LOG: OnceLock<Log> = OnceLock::new();
    LOG.get_or_init(|| {
        let log = Log::default();
        let writer = log.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .init();
        log
    })
}

/// The log lines written so far that contain every one of `words`.
fn logged(words: &[&str]) -> Vec<String> {
    let bytes = log().0.lock().unwrap().clone();
    String::from_utf8_lossy(&bytes)
        .lines()
        .filter(|l| words.iter().all(|w| l.contains(w)))
        .map(str::to_owned)
        .collect()
}

fn persistent() -> BasicProperties {
    BasicProperties::default().with_delivery_mode(2)
}

fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..Default::default()
    }
}

/// Makes `conn`'s task panic through the test hook; the client sees its connection end.
async fn panic_connection(conn: &Connection) {
    let ch = within(conn.create_channel()).await.expect("channel");
    let declared = within(ch.queue_declare(
        PANIC_QUEUE.into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    ))
    .await;
    assert!(
        declared.is_err(),
        "the hook's queue.declare must not be answered"
    );
}

// ---- defect 2: tx.commit of persistent messages in a durable queue ----

#[tokio::test]
async fn commit_of_persistent_messages_in_a_durable_queue_is_answered_and_kept() {
    let broker = TestBroker::start().await;
    let (conn, ch) = broker.channel().await;
    declare(&ch, "tx.durable", durable()).await;
    within(ch.tx_select()).await.expect("tx.select");
    for body in ["p1", "p2", "p3"] {
        within(ch.basic_publish(
            "".into(),
            "tx.durable".into(),
            BasicPublishOptions::default(),
            body.as_bytes(),
            persistent(),
        ))
        .await
        .expect("basic.publish");
    }
    publish(&ch, "", "tx.durable", b"transient").await;
    within(ch.tx_commit()).await.expect("tx.commit-ok");
    assert_eq!(ready(&ch, "tx.durable").await, 4);
    // The connection is still whole: a second transaction commits too.
    publish(&ch, "", "tx.durable", b"t2").await;
    within(ch.tx_commit()).await.expect("second tx.commit-ok");
    within(conn.close(200, "bye".into())).await.expect("close");

    let dir = broker.restart_later().await;
    let broker = TestBroker::start_on(dir, |c| c).await;
    let (_conn, ch) = broker.channel().await;
    for body in ["p1", "p2", "p3"] {
        let got = within(ch.basic_get("tx.durable".into(), BasicGetOptions { no_ack: true }))
            .await
            .unwrap()
            .expect("a persistent message committed before the restart");
        assert_eq!(got.delivery.data, body.as_bytes());
    }
    assert_eq!(ready(&ch, "tx.durable").await, 0);
    broker.stop().await;
}

fn persistent_publish(channel: u16, queue: &str, body: &[u8]) -> Vec<u8> {
    let publish = basic::Publish {
        routing_key: queue.into(),
        ..Default::default()
    };
    let header = AMQPContentHeader {
        class_id: 60,
        body_size: body.len() as u64,
        properties: persistent(),
    };
    let mut bytes = method_frame(
        channel,
        AMQPClass::Basic(basic::AMQPMethod::Publish(publish)),
    );
    bytes.extend(encode(&AMQPFrame::Header(channel, header)));
    bytes.extend(body_frame(channel, body));
    bytes
}

fn commit(channel: u16) -> Vec<u8> {
    method_frame(
        channel,
        AMQPClass::Tx(tx::AMQPMethod::Commit(tx::Commit {})),
    )
}

fn passive_declare(channel: u16, queue: &str) -> Vec<u8> {
    let declare = queue::Declare {
        queue: queue.into(),
        passive: true,
        ..Default::default()
    };
    method_frame(
        channel,
        AMQPClass::Queue(queue::AMQPMethod::Declare(declare)),
    )
}

/// A client that writes past tx.commit without waiting gets every reply on that channel
/// in order, each after the commit before it; its other channel is served meanwhile.
#[tokio::test]
async fn pipelined_commits_are_answered_in_order() {
    let broker = TestBroker::start().await;
    {
        let (_conn, ch) = broker.channel().await;
        declare(&ch, "tx.pipe", durable()).await;
    }
    let mut raw = Raw::open(broker.addr).await;
    raw.open_channel(1).await;
    raw.open_channel(2).await;
    raw.send(1, AMQPClass::Tx(tx::AMQPMethod::Select(tx::Select {})))
        .await;
    match raw.method().await {
        (1, AMQPClass::Tx(tx::AMQPMethod::SelectOk(_))) => {}
        other => panic!("expected tx.select-ok, got {other:?}"),
    }
    let mut pipeline = Vec::new();
    for round in 1..=3u8 {
        pipeline.extend(persistent_publish(1, "tx.pipe", &[round]));
        pipeline.extend(commit(1));
        pipeline.extend(passive_declare(1, "tx.pipe"));
        pipeline.extend(passive_declare(2, "tx.pipe"));
    }
    raw.bytes(&pipeline).await;
    let mut on_1 = Vec::new();
    let mut on_2 = 0;
    while on_1.len() < 6 || on_2 < 3 {
        match raw.method().await {
            (1, AMQPClass::Tx(tx::AMQPMethod::CommitOk(_))) => on_1.push("commit-ok".to_owned()),
            (1, AMQPClass::Queue(queue::AMQPMethod::DeclareOk(ok))) => {
                on_1.push(format!("declare-ok {}", ok.message_count))
            }
            (2, AMQPClass::Queue(queue::AMQPMethod::DeclareOk(_))) => on_2 += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        on_1,
        [
            "commit-ok",
            "declare-ok 1",
            "commit-ok",
            "declare-ok 2",
            "commit-ok",
            "declare-ok 3"
        ]
    );
    broker.stop().await;
}

// ---- panics contained ----

#[tokio::test]
async fn a_panicking_connection_releases_what_it_held_and_the_broker_goes_on() {
    log();
    let broker = TestBroker::start().await;
    let (other, watcher) = broker.channel().await;
    declare_queue(&watcher, "panic.work").await;
    for body in ["m1", "m2", "m3"] {
        publish(&watcher, "", "panic.work", body.as_bytes()).await;
    }

    let (doomed, ch) = broker.channel().await;
    declare(&ch, "panic.mine", exclusive()).await;
    declare(&ch, "panic.auto", auto_delete()).await;
    // Held: lapin cancels a consumer it drops.
    let _consumer = consume(&ch, "panic.auto", BasicConsumeOptions::default()).await;
    // Three deliveries unacked on the doomed connection.
    for body in ["m1", "m2", "m3"] {
        let got = within(ch.basic_get("panic.work".into(), BasicGetOptions { no_ack: false }))
            .await
            .unwrap()
            .expect("a message");
        assert_eq!(got.delivery.data, body.as_bytes());
    }
    assert_eq!(ready(&watcher, "panic.work").await, 0);

    panic_connection(&doomed).await;

    // Requeued in their order, marked redelivered.
    wait_until("unacked messages requeued", || async {
        ready(&watcher, "panic.work").await == 3
    })
    .await;
    for body in ["m1", "m2", "m3"] {
        let got = within(watcher.basic_get("panic.work".into(), BasicGetOptions { no_ack: true }))
            .await
            .unwrap()
            .expect("a requeued message");
        assert_eq!(got.delivery.data, body.as_bytes());
        assert!(got.delivery.redelivered);
    }
    // Its exclusive queue is gone (not RESOURCE_LOCKED for everyone), and so is the
    // auto-delete queue it consumed from.
    assert!(!queue_exists(&other, "panic.mine").await);
    assert!(!queue_exists(&other, "panic.auto").await);
    declare(&watcher, "panic.mine", exclusive()).await;
    // Logged by name: connection id, peer, user and vhost.
    wait_until("the panic logged", || async {
        !logged(&["connection task panicked", "on purpose"]).is_empty()
    })
    .await;
    let line = &logged(&["connection task panicked", "on purpose"])[0];
    assert!(line.contains("from 127.0.0.1:"), "{line}");
    assert!(line.contains("user 'guest', vhost '/'"), "{line}");
    // New connections are served as ever.
    let (_fresh, ch) = broker.channel().await;
    declare_queue(&ch, "panic.after").await;
    broker.stop().await;
}

/// A panic in the drop guard itself (releasing a channel, during unwinding) is contained
/// too: the process does not abort and the other release steps still run.
#[tokio::test]
async fn a_panic_while_releasing_is_contained() {
    log();
    let broker = TestBroker::start().await;
    let (doomed, ch) = broker.channel().await;
    declare(&ch, "panic2.mine", exclusive()).await;
    declare_queue(&ch, PANIC_IN_RELEASE_QUEUE).await;
    let _consumer = consume(&ch, PANIC_IN_RELEASE_QUEUE, BasicConsumeOptions::default()).await;

    panic_connection(&doomed).await;

    let (conn, ch) = broker.channel().await;
    wait_until("the exclusive queue deleted", || async {
        !queue_exists(&conn, "panic2.mine").await
    })
    .await;
    declare(&ch, "panic2.mine", exclusive()).await;
    assert!(!logged(&["panic while releasing a connection", "releasing a channel"]).is_empty());
    broker.stop().await;
}
