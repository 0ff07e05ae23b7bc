//! Publisher confirms (concurrent publishers, multiple=true coalescing, nowait, returns before
//! acks, mode switches) and transactions (publish/ack/nack/reject commit and rollback),
//! including connections dropped in the middle of a transaction or of a confirm window.
mod common;

use common::proxy::droppable;
use common::wire::{encode_frame, encode_method, read_frame, short_str, Wire};
use common::{amqp_error, declare, exclusive, ready, within, TestBroker};
use futures::StreamExt;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Consumer};
use std::collections::{BTreeSet, HashMap};
use tokio::io::AsyncWriteExt;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

// ---- lapin helpers ----

async fn publish(ch: &Channel, queue: &str, body: &str) {
    within(ch.basic_publish(
        "".into(),
        queue.into(),
        BasicPublishOptions::default(),
        body.as_bytes(),
        BasicProperties::default(),
    ))
    .await
    .expect("basic.publish");
}

/// Gets `n` messages with acknowledgement mode (unacked on `ch`), in order.
async fn get_unacked(ch: &Channel, queue: &str, n: usize) -> Vec<u64> {
    let mut tags = Vec::new();
    for _ in 0..n {
        let got = within(ch.basic_get(queue.into(), BasicGetOptions::default()))
            .await
            .unwrap()
            .expect("get-ok");
        tags.push(got.delivery.delivery_tag);
    }
    tags
}

/// Empties `queue` through a no-ack consumer, expecting exactly `expected` (body, redelivered)
/// in order. Requeues may land a moment after the close that caused them, so they are awaited.
async fn drain(ch: &Channel, queue: &str, expected: &[(&str, bool)]) {
    let mut consumer: Consumer = within(ch.basic_consume(
        queue.into(),
        "".into(),
        BasicConsumeOptions {
            no_ack: true,
            ..Default::default()
        },
        FieldTable::default(),
    ))
    .await
    .expect("basic.consume");
    let mut got = Vec::new();
    for _ in 0..expected.len() {
        let d = within(consumer.next())
            .await
            .expect("stream")
            .expect("delivery");
        got.push((String::from_utf8(d.data).unwrap(), d.redelivered));
    }
    within(ch.basic_cancel(consumer.tag(), BasicCancelOptions::default()))
        .await
        .unwrap();
    while let Some(d) = within(consumer.next()).await {
        let d = d.expect("delivery");
        got.push((String::from_utf8(d.data).unwrap(), d.redelivered));
    }
    let want: Vec<(String, bool)> = expected.iter().map(|(b, r)| (b.to_string(), *r)).collect();
    assert_eq!(got, want);
    assert_eq!(ready(ch, queue).await, 0, "nothing else left");
}

// ---- a raw AMQP client, to see every basic.ack / basic.return frame as sent ----

/// Appends basic.publish + header + body (no properties) to `out`.
fn encode_publish(out: &mut Vec<u8>, channel: u16, key: &str, mandatory: bool, body: &[u8]) {
    let mut args = vec![0, 0];
    args.extend(short_str(""));
    args.extend(short_str(key));
    args.push(mandatory as u8);
    out.extend(encode_method(channel, 60, 40, &args));
    let mut header = 60u16.to_be_bytes().to_vec();
    header.extend(0u16.to_be_bytes());
    header.extend((body.len() as u64).to_be_bytes());
    header.extend(0u16.to_be_bytes());
    out.extend(encode_frame(2, channel, &header));
    out.extend(encode_frame(3, channel, body));
}

/// What the raw client reads on a channel.
#[derive(Debug, Clone, PartialEq)]
enum Seen {
    Ack {
        tag: u64,
        multiple: bool,
    },
    Nack {
        tag: u64,
        multiple: bool,
    },
    Return {
        code: u16,
        text: String,
        key: String,
    },
    Other {
        class: u16,
        id: u16,
        args: Vec<u8>,
    },
}

struct RawReader(OwnedReadHalf);

impl RawReader {
    /// The next method (content and heartbeat frames skipped): (channel, what).
    async fn next(&mut self) -> (u16, Seen) {
        loop {
            let (kind, channel, payload) = read_frame(&mut self.0).await;
            if kind != 1 {
                continue;
            }
            let class = u16::from_be_bytes([payload[0], payload[1]]);
            let id = u16::from_be_bytes([payload[2], payload[3]]);
            let args = &payload[4..];
            let tag = || u64::from_be_bytes(args[..8].try_into().unwrap());
            let seen = match (class, id) {
                (60, 80) => Seen::Ack {
                    tag: tag(),
                    multiple: args[8] & 1 == 1,
                },
                (60, 120) => Seen::Nack {
                    tag: tag(),
                    multiple: args[8] & 1 == 1,
                },
                (60, 50) => {
                    let code = u16::from_be_bytes([args[0], args[1]]);
                    let text_len = args[2] as usize;
                    let text = String::from_utf8_lossy(&args[3..3 + text_len]).to_string();
                    let rest = &args[3 + text_len..];
                    let ex_len = rest[0] as usize;
                    let rest = &rest[1 + ex_len..];
                    let key = String::from_utf8_lossy(&rest[1..1 + rest[0] as usize]).to_string();
                    Seen::Return { code, text, key }
                }
                (10, 50) | (20, 40) => panic!(
                    "the broker closed channel {channel}: {}",
                    String::from_utf8_lossy(&args[3..3 + args[2] as usize])
                ),
                _ => Seen::Other {
                    class,
                    id,
                    args: args.to_vec(),
                },
            };
            return (channel, seen);
        }
    }

    async fn expect(&mut self, channel: u16, class: u16, id: u16) -> Vec<u8> {
        match self.next().await {
            (
                ch,
                Seen::Other {
                    class: c,
                    id: i,
                    args,
                },
            ) if (ch, c, i) == (channel, class, id) => args,
            other => panic!("expected {class}.{id} on channel {channel}, got {other:?}"),
        }
    }
}

struct RawWriter(OwnedWriteHalf);

impl RawWriter {
    async fn send(&mut self, bytes: &[u8]) {
        within(self.0.write_all(bytes)).await.expect("write");
    }

    async fn method(&mut self, channel: u16, class: u16, id: u16, args: &[u8]) {
        self.send(&encode_method(channel, class, id, args)).await;
    }
}

/// Opens a raw connection with `channels` channels (1..=n), each in confirm mode.
async fn raw_confirming(broker: &TestBroker, channels: u16) -> (RawReader, RawWriter) {
    let (mut r, mut w) = raw_open(broker, channels).await;
    for ch in 1..=channels {
        w.method(ch, 85, 10, &[0]).await;
        r.expect(ch, 85, 11).await;
    }
    (r, w)
}

/// Opens a raw connection with `channels` channels (1..=n).
async fn raw_open(broker: &TestBroker, channels: u16) -> (RawReader, RawWriter) {
    let (r, w) = Wire::open_channels(broker, channels).await.into_split();
    (RawReader(r), RawWriter(w))
}

/// Tracks the confirms of one channel: each tag must be confirmed exactly once.
#[derive(Default)]
struct Confirms {
    pending: BTreeSet<u64>,
    acked: BTreeSet<u64>,
    /// the number of tags each multiple=true ack covered
    coalesced: Vec<usize>,
}

impl Confirms {
    fn published(&mut self, tag: u64) {
        self.pending.insert(tag);
    }

    fn ack(&mut self, tag: u64, multiple: bool) {
        let covered: Vec<u64> = if multiple {
            self.pending.range(..=tag).copied().collect()
        } else {
            vec![tag]
        };
        assert!(
            !covered.is_empty(),
            "ack {tag} (multiple={multiple}) covers no pending tag"
        );
        for t in &covered {
            assert!(
                self.pending.remove(t),
                "tag {t} confirmed twice or never published"
            );
            self.acked.insert(*t);
        }
        if multiple {
            self.coalesced.push(covered.len());
        }
    }

    fn done(&self) -> bool {
        self.pending.is_empty()
    }
}

// ---- confirms ----

#[tokio::test]
async fn concurrent_publishers_get_every_message_confirmed_exactly_once() {
    const CONNECTIONS: usize = 3;
    const CHANNELS: u16 = 2;
    const PER_CHANNEL: u64 = 300;
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare(&ch, "confirms.conc", QueueDeclareOptions::default()).await;

    // Two consumers on their own connections take messages while they are published.
    let mut consumers = Vec::new();
    for _ in 0..2 {
        let (conn, cch) = broker.channel().await;
        within(cch.basic_qos(50, BasicQosOptions::default()))
            .await
            .unwrap();
        let consumer = within(cch.basic_consume(
            "confirms.conc".into(),
            "".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        ))
        .await
        .unwrap();
        consumers.push((conn, consumer));
    }
    let total = CONNECTIONS * CHANNELS as usize * PER_CHANNEL as usize;
    let (bodies_tx, mut bodies_rx) = tokio::sync::mpsc::unbounded_channel::<(usize, String)>();
    for (i, (_conn, mut consumer)) in consumers.into_iter().enumerate() {
        let tx = bodies_tx.clone();
        tokio::spawn(async move {
            let _conn = _conn;
            while let Some(Ok(d)) = consumer.next().await {
                d.ack(BasicAckOptions::default()).await.expect("ack");
                let _ = tx.send((i, String::from_utf8(d.data).unwrap()));
            }
        });
    }
    drop(bodies_tx);

    let mut publishers = Vec::new();
    for c in 0..CONNECTIONS {
        let (mut r, mut w) = raw_confirming(&broker, CHANNELS).await;
        publishers.push(tokio::spawn(async move {
            let mut tracks: HashMap<u16, Confirms> = HashMap::new();
            let mut out = Vec::new();
            for seq in 1..=PER_CHANNEL {
                for ch in 1..=CHANNELS {
                    let body = format!("{c}.{ch}.{seq}");
                    encode_publish(&mut out, ch, "confirms.conc", false, body.as_bytes());
                    tracks.entry(ch).or_default().published(seq);
                }
                if seq % 100 == 0 {
                    w.send(&out).await; // bursts: the broker may coalesce their confirms
                    out.clear();
                }
            }
            w.send(&out).await;
            while !tracks.values().all(Confirms::done) {
                match r.next().await {
                    (ch, Seen::Ack { tag, multiple }) => tracks
                        .get_mut(&ch)
                        .expect("a publishing channel")
                        .ack(tag, multiple),
                    other => panic!("unexpected {other:?}"),
                }
            }
            (tracks, r, w)
        }));
    }
    let mut coalesced = Vec::new();
    let mut raw_connections = Vec::new();
    for p in publishers {
        let (tracks, r, w) = within(p).await.unwrap();
        for t in tracks.values() {
            assert_eq!(t.acked.len() as u64, PER_CHANNEL, "every tag confirmed");
            coalesced.extend(t.coalesced.iter().copied());
        }
        raw_connections.push((r, w));
    }
    drop(raw_connections); // the raw connections end (no close handshake: the broker may wait)
    assert!(
        coalesced.iter().any(|&n| n > 1),
        "some ack with multiple=true covers a range of tags: {coalesced:?}"
    );

    // Every message reaches a consumer once; each publisher channel's messages in order.
    let mut last: HashMap<(usize, String), u64> = HashMap::new();
    let mut seen = BTreeSet::new();
    for _ in 0..total {
        let (consumer, body) = within(bodies_rx.recv()).await.expect("a delivery");
        let (publisher, seq) = body.rsplit_once('.').unwrap();
        let seq: u64 = seq.parse().unwrap();
        let prev = last
            .insert((consumer, publisher.to_owned()), seq)
            .unwrap_or(0);
        assert!(seq > prev, "{body} after {publisher}.{prev}");
        assert!(seen.insert(body.clone()), "{body} delivered twice");
    }
    assert_eq!(ready(&ch, "confirms.conc").await, 0);
    broker.stop().await;
}

#[tokio::test]
async fn mandatory_unroutable_return_comes_before_its_ack() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare(&ch, "confirms.routable", QueueDeclareOptions::default()).await;
    let (mut r, mut w) = raw_confirming(&broker, 1).await;
    let mut out = Vec::new();
    encode_publish(&mut out, 1, "confirms.routable", true, b"1");
    encode_publish(&mut out, 1, "confirms.nowhere", true, b"2");
    encode_publish(&mut out, 1, "confirms.nowhere", false, b"3"); // dropped, no return
    encode_publish(&mut out, 1, "confirms.routable", true, b"4");
    w.send(&out).await;
    let mut track = Confirms::default();
    (1..=4).for_each(|t| track.published(t));
    let mut returned = Vec::new();
    while !track.done() {
        match r.next().await {
            (1, Seen::Ack { tag, multiple }) => {
                track.ack(tag, multiple);
                if track.acked.contains(&2) {
                    assert_eq!(returned.len(), 1, "the return came before the ack of tag 2");
                }
            }
            (1, Seen::Return { code, text, key }) => {
                assert!(!track.acked.contains(&2), "return after its ack");
                returned.push((code, text, key));
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(
        returned,
        [(312, "NO_ROUTE".to_owned(), "confirms.nowhere".to_owned())]
    );
    assert_eq!(ready(&ch, "confirms.routable").await, 2);
    drop((r, w));
    broker.stop().await;
}

#[tokio::test]
async fn confirm_select_nowait_and_repeated_select() {
    // lapin only enters confirm mode on select-ok, so nowait is sent raw.
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare(&ch, "confirms.nowait", QueueDeclareOptions::default()).await;
    let (mut r, mut w) = raw_open(&broker, 1).await;
    w.method(1, 85, 10, &[1]).await; // nowait: no select-ok
    let mut out = Vec::new();
    for i in 1..=20 {
        encode_publish(
            &mut out,
            1,
            "confirms.nowait",
            false,
            format!("m{i}").as_bytes(),
        );
    }
    w.send(&out).await;
    let mut track = Confirms::default();
    (1..=20).for_each(|t| track.published(t));
    while !track.done() {
        match r.next().await {
            (1, Seen::Ack { tag, multiple }) => track.ack(tag, multiple),
            other => panic!("expected only acks, got {other:?}"),
        }
    }
    // selecting again on a confirm channel is fine, and answered
    w.method(1, 85, 10, &[0]).await;
    r.expect(1, 85, 11).await;
    drop((r, w));
    assert_eq!(ready(&ch, "confirms.nowait").await, 20);
    broker.stop().await;
}

#[tokio::test]
async fn switching_between_tx_and_confirm_mode_is_406() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let tx = within(conn.create_channel()).await.unwrap();
    within(tx.tx_select()).await.unwrap();
    within(tx.tx_select())
        .await
        .expect("tx.select twice is fine");
    let err = within(tx.confirm_select(ConfirmSelectOptions::default()))
        .await
        .expect_err("tx -> confirm refused");
    assert_eq!(
        amqp_error(&err),
        (
            406,
            "PRECONDITION_FAILED - cannot switch from tx to confirm mode".to_owned()
        )
    );
    assert!(!tx.status().connected(), "the channel is closed");

    let confirm = within(conn.create_channel()).await.unwrap();
    within(confirm.confirm_select(ConfirmSelectOptions::default()))
        .await
        .unwrap();
    let err = within(confirm.tx_select())
        .await
        .expect_err("confirm -> tx refused");
    assert_eq!(
        amqp_error(&err),
        (
            406,
            "PRECONDITION_FAILED - cannot switch from confirm to tx mode".to_owned()
        )
    );
    assert!(!confirm.status().connected(), "the channel is closed");
    assert!(conn.status().connected(), "channel errors only");
    broker.stop().await;
}

#[tokio::test]
async fn connection_dropped_in_a_confirm_window_keeps_every_confirmed_message() {
    const N: u64 = 3000;
    let broker = TestBroker::start().await;
    let (conn, ch) = broker.channel().await;
    declare(&ch, "confirms.window", QueueDeclareOptions::default()).await;
    let (mut r, mut w) = raw_confirming(&broker, 1).await;
    // an exclusive queue shows when the broker has finished with the dropped connection
    let mut args = vec![0, 0];
    args.extend(short_str("confirms.window.marker"));
    args.push(0b0000_0100); // exclusive
    args.extend(0u32.to_be_bytes());
    w.method(1, 50, 10, &args).await;
    r.expect(1, 50, 11).await;
    let writer = tokio::spawn(async move {
        let mut out = Vec::new();
        for i in 1..=N {
            encode_publish(
                &mut out,
                1,
                "confirms.window",
                false,
                i.to_string().as_bytes(),
            );
        }
        w.send(&out).await;
        w
    });
    let mut track = Confirms::default();
    (1..=N).for_each(|t| track.published(t));
    while track.acked.len() < 500 {
        match r.next().await {
            (1, Seen::Ack { tag, multiple }) => track.ack(tag, multiple),
            other => panic!("unexpected {other:?}"),
        }
    }
    writer.abort();
    let _ = writer.await;
    drop(r); // both halves gone: the socket closes without any AMQP close
    common::wait_queue_gone(&conn, "confirms.window.marker").await;

    let n = ready(&ch, "confirms.window").await;
    let mut got = Vec::new();
    for _ in 0..n {
        let m = within(ch.basic_get("confirms.window".into(), BasicGetOptions { no_ack: true }))
            .await
            .unwrap()
            .expect("get-ok");
        got.push(
            String::from_utf8(m.delivery.data)
                .unwrap()
                .parse::<u64>()
                .unwrap(),
        );
    }
    assert!(
        got.windows(2).all(|w| w[0] < w[1]),
        "in publish order, no duplicates"
    );
    assert!(got.iter().all(|&t| (1..=N).contains(&t)));
    let kept: BTreeSet<u64> = got.into_iter().collect();
    let lost: Vec<&u64> = track.acked.iter().filter(|t| !kept.contains(t)).collect();
    assert!(lost.is_empty(), "confirmed but missing: {lost:?}");
    broker.stop().await;
}

// ---- transactions ----

#[tokio::test]
async fn commit_applies_publishes_acks_nacks_and_rejects_together() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    let (_other, och) = broker.channel().await;
    declare(&ch, "tx.all", QueueDeclareOptions::default()).await;
    for i in 1..=6 {
        publish(&ch, "tx.all", &format!("m{i}")).await;
    }
    let t = get_unacked(&ch, "tx.all", 6).await;
    within(ch.tx_select()).await.unwrap();
    publish(&ch, "tx.all", "p1").await;
    publish(&ch, "tx.all", "p2").await;
    let requeue = |requeue| BasicNackOptions {
        multiple: false,
        requeue,
    };
    within(ch.basic_ack(t[0], BasicAckOptions::default()))
        .await
        .unwrap();
    within(ch.basic_nack(t[1], requeue(true))).await.unwrap();
    within(ch.basic_reject(t[2], BasicRejectOptions { requeue: false }))
        .await
        .unwrap();
    within(ch.basic_nack(t[3], requeue(false))).await.unwrap();
    within(ch.basic_reject(t[4], BasicRejectOptions { requeue: true }))
        .await
        .unwrap();
    assert_eq!(
        ready(&ch, "tx.all").await,
        0,
        "nothing happened before commit"
    );
    assert_eq!(ready(&och, "tx.all").await, 0);
    within(ch.tx_commit()).await.unwrap();
    assert_eq!(
        ready(&ch, "tx.all").await,
        4,
        "commit-ok after all took effect"
    );
    // the requeued ones come first (publish order), redelivered; m6 is still unacked
    drain(
        &och,
        "tx.all",
        &[("m2", true), ("m5", true), ("p1", false), ("p2", false)],
    )
    .await;
    within(ch.close(200, "bye".into())).await.unwrap();
    drain(&och, "tx.all", &[("m6", true)]).await;
    broker.stop().await;
}

#[tokio::test]
async fn rollback_discards_publishes_and_settlements() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    let (_other, och) = broker.channel().await;
    declare(&ch, "tx.rollback", QueueDeclareOptions::default()).await;
    for i in 1..=4 {
        publish(&ch, "tx.rollback", &format!("r{i}")).await;
    }
    let t = get_unacked(&ch, "tx.rollback", 4).await;
    within(ch.tx_select()).await.unwrap();
    publish(&ch, "tx.rollback", "rp").await;
    within(ch.basic_ack(t[1], BasicAckOptions { multiple: true }))
        .await
        .unwrap();
    within(ch.basic_reject(t[2], BasicRejectOptions { requeue: false }))
        .await
        .unwrap();
    within(ch.basic_nack(
        t[3],
        BasicNackOptions {
            multiple: false,
            requeue: true,
        },
    ))
    .await
    .unwrap();
    within(ch.tx_rollback()).await.unwrap();
    assert_eq!(ready(&ch, "tx.rollback").await, 0, "no publish, no requeue");
    within(ch.tx_commit()).await.expect("an empty commit");
    assert_eq!(ready(&ch, "tx.rollback").await, 0);
    // the four are still unacked on the channel: closing it brings them back
    within(ch.close(200, "bye".into())).await.unwrap();
    drain(
        &och,
        "tx.rollback",
        &[("r1", true), ("r2", true), ("r3", true), ("r4", true)],
    )
    .await;
    broker.stop().await;
}

#[tokio::test]
async fn connection_dropped_in_a_transaction_applies_nothing() {
    let broker = TestBroker::start().await;
    let (conn, och) = broker.channel().await;
    declare(&och, "tx.drop", QueueDeclareOptions::default()).await;
    for i in 1..=3 {
        publish(&och, "tx.drop", &format!("m{i}")).await;
    }
    let (proxy, _dropped, ch) = droppable(&broker).await;
    let marker = declare(&ch, "", exclusive()).await;
    let t = get_unacked(&ch, "tx.drop", 3).await;
    within(ch.tx_select()).await.unwrap();
    publish(&ch, "tx.drop", "uncommitted").await;
    within(ch.basic_ack(t[0], BasicAckOptions::default()))
        .await
        .unwrap();
    within(ch.basic_reject(t[1], BasicRejectOptions { requeue: false }))
        .await
        .unwrap();
    // a synchronous round trip: the broker has handled everything above
    within(ch.basic_qos(0, BasicQosOptions::default()))
        .await
        .unwrap();
    assert_eq!(ready(&och, "tx.drop").await, 0);
    proxy.cut();
    common::wait_queue_gone(&conn, &marker).await;
    drain(&och, "tx.drop", &[("m1", true), ("m2", true), ("m3", true)]).await;
    broker.stop().await;
}
