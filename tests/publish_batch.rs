//! Publishes that arrive together: many frames in one write, so the broker reads them in
//! one go and pushes a channel's transient messages for one queue as a batch. Each
//! message keeps its own outcome and order: a reject-publish queue nacks exactly the ones
//! it refuses, an unroutable mandatory message in the middle is returned (before its
//! ack), a basic.get written right behind the publishes sees all of them, and a channel
//! error in the middle of a write loses none of the publishes accepted before it.
mod common;

use amq_protocol::frame::AMQPFrame;
use amq_protocol::protocol::{basic, channel, confirm, AMQPClass};
use common::raw::{body_frame, header_frame, method_frame, Next, Raw};
use common::{table, within, TestBroker};
use lapin::options::*;
use lapin::types::AMQPValue;

/// basic.publish to the default exchange, its header and body, as bytes.
fn publish_frames(channel: u16, key: &str, mandatory: bool, body: &[u8]) -> Vec<u8> {
    publish_to(channel, "", key, mandatory, body)
}

fn publish_to(channel: u16, exchange: &str, key: &str, mandatory: bool, body: &[u8]) -> Vec<u8> {
    let publish = basic::Publish {
        exchange: exchange.into(),
        routing_key: key.into(),
        mandatory,
        ..Default::default()
    };
    let mut out = method_frame(
        channel,
        AMQPClass::Basic(basic::AMQPMethod::Publish(publish)),
    );
    out.extend(header_frame(channel, body.len() as u64));
    out.extend(body_frame(channel, body));
    out
}

fn get_frame(channel: u16, queue: &str) -> Vec<u8> {
    let get = basic::Get {
        queue: queue.into(),
        no_ack: true,
    };
    method_frame(channel, AMQPClass::Basic(basic::AMQPMethod::Get(get)))
}

/// What the server said about the publishes, in the order it said it.
#[derive(Debug, PartialEq)]
enum Seen {
    /// An ack covering every sequence number up to and including this one, or just it.
    Ack(u64, bool),
    Nack(u64),
    /// basic.return: reply code, text, routing key, body.
    Return(u16, String, String, Vec<u8>),
    /// basic.get-ok: body and message_count.
    Got(Vec<u8>, u32),
}

/// Reads until `until` says the list is complete; content follows its method.
async fn read_until(raw: &mut Raw, until: impl Fn(&[Seen]) -> bool) -> Vec<Seen> {
    let mut seen = Vec::new();
    let mut pending: Option<Seen> = None;
    while !until(&seen) {
        let frame = match within(raw.next()).await {
            Next::Frame(frame) => frame,
            Next::Closed => panic!("closed; saw {seen:?}"),
        };
        match frame {
            AMQPFrame::Method(1, AMQPClass::Basic(m)) => match m {
                basic::AMQPMethod::Ack(a) => seen.push(Seen::Ack(a.delivery_tag, a.multiple)),
                basic::AMQPMethod::Nack(n) => {
                    assert!(!n.multiple, "a refused publish is nacked alone");
                    seen.push(Seen::Nack(n.delivery_tag))
                }
                basic::AMQPMethod::Return(r) => {
                    pending = Some(Seen::Return(
                        r.reply_code,
                        r.reply_text.to_string(),
                        r.routing_key.to_string(),
                        Vec::new(),
                    ))
                }
                basic::AMQPMethod::GetOk(g) => {
                    pending = Some(Seen::Got(Vec::new(), g.message_count))
                }
                other => panic!("unexpected {other:?}"),
            },
            AMQPFrame::Header(1, _) => {}
            AMQPFrame::Body(1, data) => match pending.take() {
                Some(Seen::Return(code, text, key, _)) => {
                    seen.push(Seen::Return(code, text, key, data))
                }
                Some(Seen::Got(_, count)) => seen.push(Seen::Got(data, count)),
                other => panic!("a body after {other:?}"),
            },
            other => panic!("unexpected frame {other:?}"),
        }
    }
    seen
}

/// Every sequence number up to `last` answered, each exactly once: `acked` / `nacked`.
fn outcomes(seen: &[Seen], last: u64) -> (Vec<u64>, Vec<u64>) {
    let (mut acked, mut nacked) = (Vec::new(), Vec::new());
    let mut answered = std::collections::BTreeSet::new();
    for s in seen {
        match s {
            Seen::Ack(tag, true) => {
                for seq in 1..=*tag {
                    if answered.insert(seq) {
                        acked.push(seq);
                    }
                }
            }
            Seen::Ack(tag, false) => {
                assert!(answered.insert(*tag), "{tag} answered twice");
                acked.push(*tag);
            }
            Seen::Nack(tag) => {
                assert!(answered.insert(*tag), "{tag} answered twice");
                nacked.push(*tag);
            }
            _ => {}
        }
    }
    assert_eq!(
        answered.len() as u64,
        last,
        "every publish answered: {seen:?}"
    );
    acked.sort_unstable();
    (acked, nacked)
}

fn answered(seen: &[Seen], last: u64) -> bool {
    let mut upto = 0;
    let mut alone = std::collections::BTreeSet::new();
    for s in seen {
        match s {
            Seen::Ack(tag, true) => upto = upto.max(*tag),
            Seen::Ack(tag, false) | Seen::Nack(tag) => {
                alone.insert(*tag);
            }
            _ => {}
        }
    }
    (1..=last).all(|seq| seq <= upto || alone.contains(&seq))
}

/// Every message left in `queue`, in order (taken with basic.get).
async fn bodies(ch: &lapin::Channel, queue: &str) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(m) = within(ch.basic_get(queue.into(), BasicGetOptions { no_ack: true }))
        .await
        .unwrap()
    {
        out.push(String::from_utf8(m.delivery.data).unwrap());
    }
    out
}

async fn confirming(broker: &TestBroker) -> Raw {
    let mut raw = Raw::open_with_channel(broker.addr, 131_072).await;
    raw.send(
        1,
        AMQPClass::Confirm(confirm::AMQPMethod::Select(confirm::Select {
            nowait: false,
        })),
    )
    .await;
    match raw.method().await {
        (1, AMQPClass::Confirm(confirm::AMQPMethod::SelectOk(_))) => {}
        other => panic!("expected confirm.select-ok, got {other:?}"),
    }
    raw
}

#[tokio::test]
async fn one_write_of_publishes_keeps_each_outcome_and_order() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    let limited = table(&[
        ("x-max-length", AMQPValue::LongInt(2)),
        ("x-overflow", AMQPValue::LongString("reject-publish".into())),
    ]);
    within(ch.queue_declare("full".into(), QueueDeclareOptions::default(), limited))
        .await
        .unwrap();
    common::declare_queue(&ch, "open").await;

    let mut raw = confirming(&broker).await;
    let mut write = Vec::new();
    for (key, mandatory, body) in [
        ("full", false, "f1"),   // 1 ack
        ("open", false, "o1"),   // 2 ack
        ("full", false, "f2"),   // 3 ack
        ("full", false, "f3"),   // 4 nack: the queue is full
        ("nowhere", true, "r1"), // 5 returned, then acked
        ("open", false, "o2"),   // 6 ack
        ("full", false, "f4"),   // 7 nack
        ("open", false, "o3"),   // 8 ack
    ] {
        write.extend(publish_frames(1, key, mandatory, body.as_bytes()));
    }
    // Right behind the publishes, in the same write: the gets see all of them.
    write.extend(get_frame(1, "full"));
    write.extend(get_frame(1, "open"));
    raw.bytes(&write).await;

    let seen = read_until(&mut raw, |seen| {
        answered(seen, 8) && seen.iter().filter(|s| matches!(s, Seen::Got(..))).count() == 2
    })
    .await;
    let (acked, nacked) = outcomes(&seen, 8);
    assert_eq!(acked, [1, 2, 3, 5, 6, 8]);
    assert_eq!(nacked, [4, 7]);
    let returned = seen
        .iter()
        .position(|s| matches!(s, Seen::Return(..)))
        .expect("the unroutable mandatory message comes back");
    assert_eq!(
        seen[returned],
        Seen::Return(312, "NO_ROUTE".into(), "nowhere".into(), b"r1".to_vec())
    );
    let ack_of_5 = seen
        .iter()
        .position(|s| matches!(s, Seen::Ack(t, m) if *t == 5 || (*m && *t > 5)))
        .expect("5 is acked");
    assert!(
        returned < ack_of_5,
        "the return comes before its ack: {seen:?}"
    );
    let got: Vec<&Seen> = seen.iter().filter(|s| matches!(s, Seen::Got(..))).collect();
    assert_eq!(
        got,
        [&Seen::Got(b"f1".to_vec(), 1), &Seen::Got(b"o1".to_vec(), 2)]
    );

    // What is left, in publish order.
    assert_eq!(bodies(&ch, "full").await, ["f2"]);
    assert_eq!(bodies(&ch, "open").await, ["o2", "o3"]);
}

#[tokio::test]
async fn publishes_before_a_channel_error_in_the_same_write_are_kept() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    common::declare_queue(&ch, "kept").await;

    let mut raw = Raw::open_with_channel(broker.addr, 131_072).await;
    let mut write = Vec::new();
    for i in 0..50 {
        write.extend(publish_frames(1, "kept", false, format!("m{i}").as_bytes()));
    }
    write.extend(publish_to(1, "missing", "kept", false, b"refused"));
    // After the error: dropped by the closing channel, never published.
    write.extend(publish_frames(1, "kept", false, b"after"));
    raw.bytes(&write).await;
    match raw.method().await {
        (1, AMQPClass::Channel(channel::AMQPMethod::Close(c))) => {
            assert_eq!(c.reply_code, 404);
            assert_eq!(
                c.reply_text.as_str(),
                "NOT_FOUND - no exchange 'missing' in vhost '/'"
            );
            assert_eq!((c.class_id, c.method_id), (60, 40));
        }
        other => panic!("expected channel.close, got {other:?}"),
    }
    let expected: Vec<String> = (0..50).map(|i| format!("m{i}")).collect();
    assert_eq!(bodies(&ch, "kept").await, expected);
}

#[tokio::test]
async fn a_batch_alternating_between_queues_and_channels_keeps_every_queue_in_order() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    for q in ["q1", "q2"] {
        common::declare_queue(&ch, q).await;
    }
    let mut raw = Raw::open_with_channel(broker.addr, 131_072).await;
    raw.open_channel(2).await;
    let mut write = Vec::new();
    // Runs of different lengths (longer than one batch too) on two channels.
    for i in 0..700 {
        let (channel, queue) = match i % 7 {
            0..=2 => (1, "q1"),
            3 => (2, "q1"),
            4 | 5 => (1, "q2"),
            _ => (2, "q2"),
        };
        let body = format!("{channel}-{i}");
        write.extend(publish_frames(channel, queue, false, body.as_bytes()));
    }
    raw.bytes(&write).await;
    // A round trip on the same connection: everything before it was handled.
    raw.queue_declare(1, "q1", true).await;
    match raw.method().await {
        (1, AMQPClass::Queue(amq_protocol::protocol::queue::AMQPMethod::DeclareOk(ok))) => {
            assert_eq!(ok.message_count, 400)
        }
        other => panic!("expected declare-ok, got {other:?}"),
    }
    for (queue, residues) in [
        ("q1", [0, 1, 2, 3].as_slice()),
        ("q2", [4, 5, 6].as_slice()),
    ] {
        let got = bodies(&ch, queue).await;
        // Per channel, publish order; between channels any interleaving.
        for channel in [1, 2] {
            let mine: Vec<&String> = got
                .iter()
                .filter(|b| b.starts_with(&format!("{channel}-")))
                .collect();
            let expected: Vec<String> = (0..700)
                .filter(|i| residues.contains(&(i % 7)))
                .filter(|i| (if [3, 6].contains(&(i % 7)) { 2 } else { 1 }) == channel)
                .map(|i| format!("{channel}-{i}"))
                .collect();
            assert_eq!(
                mine,
                expected.iter().collect::<Vec<_>>(),
                "{queue} channel {channel}"
            );
        }
    }
}
