//! The vhost's dead-letter task: messages its queues rejected without requeue, expired,
//! or dropped by a length limit go to their x-dead-letter-exchange, with RabbitMQ's
//! `x-death` history.
//!
//! Queues hand dead letters (`broker::deadletter`) to this task through the unbounded
//! sink their `DeadLetterTarget` holds (a non-blocking send, so it is allowed under a
//! queue lock); the task builds the new message and routes it like a publish, after
//! every lock was released. Started by `VHost::start_dead_lettering`.

use super::VHost;
use crate::broker::deadletter::{DeadLetter, DeadLetterSink, Reason};
use crate::broker::exchange::sender;
use crate::broker::message::{without_header, Message};
use crate::broker::persist::store_message;
use crate::broker::queue::Queue;
use crate::broker::tracer::Origin;
use amq_protocol::frame::WriteContext;
use amq_protocol::protocol::basic::{gen_properties, AMQPProperties};
use amq_protocol::types::{AMQPValue, FieldArray, FieldTable, LongString};
use std::sync::{Arc, Weak};
use tokio::sync::mpsc;

/// The vhost's dead-letter task: routes each dead letter as a new publish, and tells
/// `sink` each one is done (a manual clock waits for none to be pending).
pub async fn run(
    vhost: Weak<VHost>,
    mut rx: mpsc::UnboundedReceiver<DeadLetter>,
    sink: DeadLetterSink,
) {
    let mut targets: Vec<Arc<Queue>> = Vec::new();
    while let Some(dl) = rx.recv().await {
        let Some(vhost) = vhost.upgrade() else { return };
        route_one(&vhost, dl, &mut targets);
        sink.routed();
    }
}

/// Routes one dead letter as a new publish (`targets`: a reused buffer).
fn route_one(vhost: &VHost, dl: DeadLetter, targets: &mut Vec<Arc<Queue>>) {
    let (msg, deaths) = rewrite(&dl, vhost.clock.unix_ms());
    targets.clear();
    // A missing dead-letter exchange drops the message, as in RabbitMQ.
    if vhost.route(&dl.exchange, &msg, targets).is_err() {
        return;
    }
    // A message that died automatically all the way round back to a queue it died in
    // before would circle forever: RabbitMQ drops it for that queue. A rejection in
    // the cycle means a client decided, so the message goes on.
    if dl.reason != Reason::Rejected {
        targets.retain(|q| {
            let cycle = is_automatic_cycle(&q.name, &deaths);
            if cycle {
                tracing::debug!(queue = %q.name, "dead-letter cycle: message dropped");
            }
            !cycle
        });
    }
    vhost
        .tracing
        .published(&msg, targets, || Origin::DeadLetter);
    let store_id = store_message(&msg, targets, None);
    let sharers = targets.len();
    for q in targets.drain(..) {
        q.publish(msg.clone(), store_id, sharers);
    }
}

/// Whether the x-death history (newest first) shows `queue` earlier on, with no
/// rejection from that death to this one.
fn is_automatic_cycle(queue: &str, deaths: &[AMQPValue]) -> bool {
    let field = |d: &AMQPValue, key: &str| match d {
        AMQPValue::FieldTable(t) => match t.inner().get(key) {
            Some(AMQPValue::LongString(s)) => Some(s.as_bytes().to_vec()),
            _ => None,
        },
        _ => None,
    };
    let Some(at) = deaths
        .iter()
        .position(|d| field(d, "queue").as_deref() == Some(queue.as_bytes()))
    else {
        return false;
    };
    deaths[..=at].iter().all(|d| {
        matches!(d, AMQPValue::FieldTable(_))
            && field(d, "reason").as_deref() != Some(&b"rejected"[..])
    })
}

/// The dead-lettered copy (same body, headers with the x-death history, no expiration)
/// and that history, newest death first.
/// `now_ms`: the broker clock's Unix ms (x-death's `time`, in seconds).
fn rewrite(dl: &DeadLetter, now_ms: i64) -> (Message, Vec<AMQPValue>) {
    let props = dl.msg.decode_properties().unwrap_or_default();
    let mut headers = props.headers().clone().unwrap_or_default();
    let routing_key = dl
        .routing_key
        .clone()
        .unwrap_or_else(|| dl.msg.routing_key().to_owned());
    let now = u64::try_from(now_ms / 1000).unwrap_or(0);
    let s = |v: &str| AMQPValue::LongString(LongString::from(v));

    let mut deaths: Vec<AMQPValue> = match headers.inner().get("x-death") {
        Some(AMQPValue::FieldArray(a)) => a.as_slice().to_vec(),
        _ => Vec::new(),
    };
    let same = |t: &FieldTable| {
        matches!(t.inner().get("queue"), Some(AMQPValue::LongString(q)) if q.as_bytes() == dl.queue.as_bytes())
            && matches!(t.inner().get("reason"), Some(AMQPValue::LongString(r)) if r.as_bytes() == dl.reason.name().as_bytes())
    };
    let previous = deaths
        .iter()
        .position(|d| matches!(d, AMQPValue::FieldTable(t) if same(t)));
    let mut entry = match previous.map(|i| deaths.remove(i)) {
        Some(AMQPValue::FieldTable(t)) => t,
        _ => FieldTable::default(),
    };
    let count = match entry.inner().get("count") {
        Some(AMQPValue::LongLongInt(n)) => *n + 1,
        _ => 1,
    };
    entry.insert("count".into(), AMQPValue::LongLongInt(count));
    entry.insert("reason".into(), s(dl.reason.name()));
    entry.insert("queue".into(), s(&dl.queue));
    entry.insert("time".into(), AMQPValue::Timestamp(now));
    entry.insert("exchange".into(), s(dl.msg.exchange()));
    // The routing key, then the CC keys (BCC was cut out at publish), as RabbitMQ lists
    // them: duplicates kept.
    let keys = std::iter::once(dl.msg.routing_key().to_owned())
        .chain(sender::cc_keys(dl.msg.properties()))
        .map(|k| s(&k))
        .collect::<Vec<_>>();
    entry.insert(
        "routing-keys".into(),
        AMQPValue::FieldArray(FieldArray::from(keys)),
    );
    if let Some(exp) = props.expiration() {
        entry.insert("original-expiration".into(), s(exp.as_str()));
    }
    deaths.insert(0, AMQPValue::FieldTable(entry));
    headers.insert(
        "x-death".into(),
        AMQPValue::FieldArray(FieldArray::from(deaths.clone())),
    );
    if !headers.contains_key("x-first-death-reason") {
        headers.insert("x-first-death-reason".into(), s(dl.reason.name()));
        headers.insert("x-first-death-queue".into(), s(&dl.queue));
        headers.insert("x-first-death-exchange".into(), s(dl.msg.exchange()));
    }

    if dl.routing_key.is_some() {
        // Dead-lettered with x-dead-letter-routing-key: that key alone routes it, so its
        // CC keys go (RabbitMQ removes the header).
        headers = without_header(&headers, "CC");
    }
    let mut rebuilt = AMQPProperties::default().with_headers(headers);
    macro_rules! keep {
        ($get:ident, $with:ident) => {
            if let Some(v) = props.$get().clone() {
                rebuilt = rebuilt.$with(v);
            }
        };
    }
    keep!(content_type, with_content_type);
    keep!(content_encoding, with_content_encoding);
    keep!(delivery_mode, with_delivery_mode);
    keep!(priority, with_priority);
    keep!(correlation_id, with_correlation_id);
    keep!(reply_to, with_reply_to);
    keep!(message_id, with_message_id);
    keep!(timestamp, with_timestamp);
    keep!(kind, with_type);
    keep!(user_id, with_user_id);
    keep!(app_id, with_app_id);
    keep!(cluster_id, with_cluster_id);
    let raw = gen_properties(&rebuilt)(WriteContext::from(Vec::new()))
        .map(|c| c.write)
        .unwrap_or_else(|_| vec![0, 0]);
    (dl.msg.reheaded(&dl.exchange, &routing_key, &raw), deaths)
}
