//! A queue on its own: built, fed, consumed from and dead-lettering with neither a vhost
//! nor a broker, as the broker's one-way chain promises (a queue sees only what lies
//! below it: messages, memory, consumers, the dead-letter sink).

use super::{Enqueued, Queue};
use crate::broker::consumer::{ConnectionHandle, Consumer, ConsumerInfo, Credit, Outgoing};
use crate::broker::deadletter::{self, DeadLetter, DeadLetterTarget, Reason};
use crate::broker::memory::Memory;
use crate::broker::message::Message;
use crate::broker::policy::Applied;
use crate::codec::ShortStr;
use amq_protocol::types::{AMQPValue, FieldTable};
use std::sync::Arc;
use tokio::sync::mpsc::{self, UnboundedReceiver};

/// A transient queue named `q` whose dead letters go to `dlx` with key `retry`, into the
/// returned receiver (where a vhost would hold it).
fn queue(memory: &Arc<Memory>, args: FieldTable) -> (Arc<Queue>, UnboundedReceiver<DeadLetter>) {
    let (sink, dead) = deadletter::channel();
    let target = DeadLetterTarget {
        exchange: "dlx".into(),
        routing_key: Some("retry".into()),
        sink,
        counted: Arc::default(),
    };
    let effective = args.clone();
    let q = Queue::new(
        ShortStr::from("q"),
        "/",
        false,
        None,
        false,
        args,
        None,
        None,
        memory.clone(),
        crate::clock::Clock::real(),
        Some(target),
        (Applied::default(), &effective),
    );
    (q, dead)
}

/// A message published to the default exchange with no properties.
fn message(body: &[u8]) -> Message {
    Message::new("", "q", &[0, 0], body)
}

#[test]
fn a_queue_without_a_vhost_delivers_in_order_and_dead_letters_a_rejection() {
    let memory = Memory::new(u64::MAX);
    let (q, mut dead) = queue(&memory, FieldTable::default());
    assert_eq!(q.publish(message(b"one"), 0, 1), Enqueued::Yes);
    assert_eq!(q.publish(message(b"two"), 0, 1), Enqueued::Yes);
    assert_eq!(q.counts(), (2, 0));

    let (outbox, mut inbox) = mpsc::unbounded_channel();
    let info = Arc::new(ConsumerInfo::new(
        ShortStr::from("c"),
        1,
        false,
        10,
        Arc::new(Credit::new(0)),
    ));
    q.add_consumer(Consumer {
        info,
        connection: ConnectionHandle::new(7, outbox),
        exclusive: false,
        priority: 0,
    })
    .unwrap();
    let mut delivered = Vec::new();
    while let Ok(out) = inbox.try_recv() {
        match out {
            Outgoing::Deliver(d) => delivered.push(d.item),
            other => panic!("unexpected {other:?}"),
        }
    }
    let bodies: Vec<&[u8]> = delivered.iter().map(|i| i.msg.body()).collect();
    assert_eq!(bodies, [&b"one"[..], b"two"]);
    assert_eq!(q.counts(), (0, 1));

    q.acked(&delivered[0]);
    q.rejected(delivered.pop().unwrap());
    let dl = dead
        .try_recv()
        .expect("the rejected message is dead-lettered");
    assert_eq!(dl.reason, Reason::Rejected);
    assert_eq!(dl.queue.as_str(), "q");
    assert_eq!(dl.exchange, "dlx");
    assert_eq!(dl.routing_key.as_deref(), Some("retry"));
    assert_eq!(dl.msg.body(), b"two");
    assert!(dead.try_recv().is_err(), "the acked one is not");

    q.mark_deleted();
    drop((delivered, dl, q));
    assert_eq!(
        memory.used(),
        0,
        "everything the queue counted is given back"
    );
}

#[test]
fn a_queue_without_a_vhost_dead_letters_what_its_length_limit_drops() {
    let memory = Memory::new(u64::MAX);
    let mut args = FieldTable::default();
    args.insert("x-max-length".into(), AMQPValue::LongLongInt(1));
    let (q, mut dead) = queue(&memory, args);
    q.publish(message(b"old"), 0, 1);
    q.publish(message(b"new"), 0, 1);
    assert_eq!(q.counts(), (1, 0));
    let dl = dead.try_recv().expect("drop-head dead-letters the oldest");
    assert_eq!((dl.reason, dl.msg.body()), (Reason::Maxlen, &b"old"[..]));
    assert!(dead.try_recv().is_err());
}
