//! Large messages, which the broker keeps as shared slices of what it received and writes
//! to consumers without copying (vectored writes): bodies either side of the 16 KiB
//! threshold, 64 KiB, 1 MiB and 16 MiB delivered to consumers intact and in order,
//! interleaved on several channels, through clients with a small frame_max, to a reader
//! slower than the broker (its writes stop part-way through a body and resume), over TLS,
//! through page files, and persistent across a restart.
mod common;
mod tls_support;

use common::{declare, durable, table, within, TestBroker};
use futures::StreamExt;
use lapin::options::*;
use lapin::types::AMQPValue;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const KIB: usize = 1024;
const MIB: usize = 1024 * KIB;

/// A body that says which message it is and where each byte sits.
fn body(n: usize, size: usize) -> Vec<u8> {
    (0..size).map(|i| (i / 7 + n * 31) as u8).collect()
}

/// One body of each size, each saying which it is.
fn bodies_of(sizes: &[usize]) -> Vec<Vec<u8>> {
    sizes.iter().enumerate().map(|(n, s)| body(n, *s)).collect()
}

/// Publishes `bodies` to `queue` (transient) and consumes them back from it, checked.
async fn round_trip(ch: &Channel, queue: &str, bodies: &[Vec<u8>]) {
    within_secs(
        60,
        publish_all(ch, queue, bodies, BasicProperties::default()),
    )
    .await;
    consume_all(ch, queue, bodies).await;
}

/// Like `within`, for transfers of many MiB on a loaded machine.
async fn within_secs<T>(secs: u64, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), fut)
        .await
        .expect("timed out")
}

async fn connect(url: &str) -> (Connection, Channel) {
    let conn = within(Connection::connect(url, ConnectionProperties::default()))
        .await
        .expect("connect");
    let ch = within(conn.create_channel()).await.expect("channel");
    (conn, ch)
}

/// Publishes `bodies` to `queue` with confirms, `props` on each.
async fn publish_all(ch: &Channel, queue: &str, bodies: &[Vec<u8>], props: BasicProperties) {
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .ok();
    for b in bodies {
        let confirm = ch
            .basic_publish(
                "".into(),
                queue.into(),
                BasicPublishOptions::default(),
                b,
                props.clone(),
            )
            .await
            .expect("publish");
        assert!(confirm.await.expect("confirm").is_ack());
    }
}

/// A no-ack consumer on `queue`.
async fn no_ack_consumer(ch: &Channel, queue: &str) -> lapin::Consumer {
    let options = BasicConsumeOptions {
        no_ack: true,
        ..Default::default()
    };
    ch.basic_consume(queue.into(), "".into(), options, Default::default())
        .await
        .expect("consume")
}

/// The next `expected.len()` deliveries are `expected`, in order.
async fn expect_bodies(consumer: &mut lapin::Consumer, queue: &str, expected: &[Vec<u8>]) {
    for (n, want) in expected.iter().enumerate() {
        let d = within_secs(60, consumer.next())
            .await
            .expect("a delivery")
            .expect("ok");
        assert_eq!(d.data.len(), want.len(), "message {n} of {queue}: length");
        assert!(d.data == *want, "message {n} of {queue}: body differs");
    }
}

/// Consumes `expected.len()` messages from `queue` and checks them, in order.
async fn consume_all(ch: &Channel, queue: &str, expected: &[Vec<u8>]) {
    expect_bodies(&mut no_ack_consumer(ch, queue).await, queue, expected).await;
}

#[tokio::test]
async fn bodies_of_every_size_reach_a_consumer_intact_and_in_order() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    let q = declare(&ch, "large.sizes", Default::default()).await;
    let sizes = [
        0,
        1,
        16 * KIB - 1,
        16 * KIB,
        16 * KIB + 1,
        64 * KIB,
        128 * KIB - 8,
        128 * KIB,
        MIB,
        16 * MIB,
    ];
    round_trip(&ch, &q, &bodies_of(&sizes)).await;
    broker.stop().await;
}

#[tokio::test]
async fn large_and_small_deliveries_interleave_on_channels_in_order() {
    let broker = TestBroker::start().await;
    let (conn, ch) = broker.channel().await;
    // One consumer connection with three channels: their deliveries share its write
    // buffer, small ones copied in, large ones spliced between them.
    let consumer_conn = broker.connect().await;
    let mut expected = Vec::new();
    let mut consumers = Vec::new();
    for c in 0..3 {
        let q = declare(&ch, &format!("large.mix.{c}"), Default::default()).await;
        let bodies: Vec<Vec<u8>> = (0..30)
            .map(|n| body(n + c, if n % 3 == 0 { 100 } else { 20 * KIB + n * 1000 }))
            .collect();
        publish_all(&ch, &q, &bodies, BasicProperties::default()).await;
        let cch = within(consumer_conn.create_channel()).await.unwrap();
        let consumer = no_ack_consumer(&cch, &q).await;
        consumers.push((cch, consumer));
        expected.push(bodies);
    }
    for ((_, mut consumer), bodies) in consumers.into_iter().zip(expected) {
        expect_bodies(&mut consumer, "large.mix", &bodies).await;
    }
    within(conn.close(200, "bye".into())).await.unwrap();
    broker.stop().await;
}

#[tokio::test]
async fn a_client_with_a_small_frame_max_sends_and_gets_large_bodies() {
    let broker = TestBroker::start().await;
    let (_c, ch) = broker.channel().await;
    let q = declare(&ch, "large.frames", Default::default()).await;
    // 4096-byte frames both ways: bodies arrive in many frames (assembled once) and go
    // out split into frames of the consumer's size, slices of the one shared body.
    let url = format!("{}?frame_max=4096", broker.url());
    let (_small, small) = connect(&url).await;
    let bodies = bodies_of(&[20 * KIB, 64 * KIB, MIB + 3]);
    round_trip(&small, &q, &bodies).await;
    // Received whole in one frame, sent in 4 KiB frames (another queue: the consumer
    // above is still there).
    let q = declare(&ch, "large.frames.get", Default::default()).await;
    let one_frame = vec![body(9, 64 * KIB)];
    publish_all(&ch, &q, &one_frame, BasicProperties::default()).await;
    let got = within(small.basic_get(q.as_str().into(), BasicGetOptions { no_ack: true }))
        .await
        .unwrap()
        .unwrap();
    assert!(got.delivery.data == one_frame[0]);
    broker.stop().await;
}

/// A TCP proxy that passes the client's bytes on at once and the broker's slowly, in
/// small pieces: the broker's socket fills and its writes stop part-way.
async fn slow_reader_proxy(upstream: std::net::SocketAddr) -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let Ok((client, _)) = listener.accept().await else {
            return;
        };
        let Ok(server) = TcpStream::connect(upstream).await else {
            return;
        };
        let (mut cr, mut cw) = client.into_split();
        let (mut sr, mut sw) = server.into_split();
        tokio::spawn(async move {
            let _ = tokio::io::copy(&mut cr, &mut sw).await;
        });
        let mut buf = vec![0u8; 7 * KIB + 3];
        loop {
            let n = match sr.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            if cw.write_all(&buf[..n]).await.is_err() {
                return;
            }
            // Real time is what is under test: the reader is slower than the writer.
            tokio::time::sleep(Duration::from_micros(300)).await;
        }
    });
    addr
}

#[tokio::test]
async fn a_slow_reader_gets_every_byte_of_large_bodies() {
    let broker = TestBroker::start().await;
    let (_c, ch) = broker.channel().await;
    let q = declare(&ch, "large.slow", Default::default()).await;
    // Above the high-water mark several times over, mixed with small ones.
    let bodies: Vec<Vec<u8>> = (0..12)
        .map(|n| body(n, if n % 4 == 3 { 10 } else { 700 * KIB + n }))
        .collect();
    publish_all(&ch, &q, &bodies, BasicProperties::default()).await;
    let proxy = slow_reader_proxy(broker.addr).await;
    let (_slow, slow) = connect(&format!("amqp://guest:guest@{proxy}/%2f")).await;
    consume_all(&slow, &q, &bodies).await;
    broker.stop().await;
}

#[tokio::test]
async fn paged_and_persistent_large_bodies_come_back() {
    // A budget smaller than one body: everything past the head is paged.
    let broker = TestBroker::start_with(|c| warren::Config {
        queue_memory: 64 * KIB as u64,
        ..c
    })
    .await;
    let (_c, ch) = broker.channel().await;
    let paged = declare(&ch, "large.paged", Default::default()).await;
    let kept = declare(&ch, "large.kept", durable()).await;
    let bodies: Vec<Vec<u8>> = (0..8).map(|n| body(n, 100 * KIB + n)).collect();
    publish_all(&ch, &paged, &bodies, BasicProperties::default()).await;
    publish_all(
        &ch,
        &kept,
        &bodies,
        BasicProperties::default().with_delivery_mode(2),
    )
    .await;
    consume_all(&ch, &paged, &bodies).await;
    drop(ch);
    let broker = broker.restart().await;
    let (_c, ch) = broker.channel().await;
    consume_all(&ch, &kept, &bodies).await;
    broker.stop().await;
}

#[tokio::test]
async fn a_quorum_queue_adds_its_header_to_a_large_body() {
    // The header is added on redelivery, the body stays the one shared body.
    let broker = TestBroker::start().await;
    let (_c, ch) = broker.channel().await;
    let args = table(&[("x-queue-type", AMQPValue::LongString("quorum".into()))]);
    let q = ch
        .queue_declare(
            "large.quorum".into(),
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            args,
        )
        .await
        .unwrap();
    let want = body(1, 200 * KIB);
    publish_all(
        &ch,
        q.name().as_str(),
        std::slice::from_ref(&want),
        BasicProperties::default(),
    )
    .await;
    let first = within(ch.basic_get("large.quorum".into(), BasicGetOptions::default()))
        .await
        .unwrap()
        .unwrap();
    first
        .delivery
        .nack(BasicNackOptions {
            requeue: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let again = common::get_eventually(&ch, "large.quorum").await;
    assert!(again.delivery.data == want);
    let count = again
        .delivery
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get("x-delivery-count").cloned());
    assert!(count.is_some(), "x-delivery-count on the redelivery");
    broker.stop().await;
}

#[tokio::test]
async fn large_bodies_go_both_ways_over_tls() {
    use tls_support::{client_config, Ca, ServerFiles, TlsProxy};
    let ca = Ca::new("warren large CA");
    let files = ServerFiles::write(&ca, &ca.server());
    let broker = TestBroker::start_with(|c| files.configure(c)).await;
    let tls = broker.server.tls_addr().expect("a TLS listener");
    let proxy = TlsProxy::start(tls, client_config(&ca, None, &[])).await;
    let (_conn, ch) = connect(&proxy.url()).await;
    let q = declare(&ch, "large.tls", Default::default()).await;
    let bodies = bodies_of(&[64 * KIB, 5 * KIB, 3 * MIB]);
    round_trip(&ch, &q, &bodies).await;
    broker.stop().await;
    let _ = std::fs::remove_dir_all(&files.dir);
}
