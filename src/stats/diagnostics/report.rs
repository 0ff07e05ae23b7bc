//! The findings the management API shows: the last tick's (growth, churn) and those
//! checked on demand: unroutable keys that still route nowhere and poison messages still
//! in their queues.
//!
//! Called by `http::diagnostics` per request. Copies the tables out under their locks,
//! then routes and reads queues with no lock of its own held; forgets the unroutable keys
//! whose cause is gone afterwards.

use super::unroutable::Unroutable;
use super::{object, Finding, Severity};
use crate::broker::message::Message;
use crate::broker::queue::Poisoned;
use crate::broker::Broker;
use crate::stats::registry::lock;
use serde_json::{json, Value};

/// Every finding now, warnings first, newest first within a severity.
pub fn findings(broker: &Broker) -> Vec<Finding> {
    let d = &broker.stats.diagnostics;
    let mut out = lock(&d.ticked).clone();
    out.extend(unroutable(broker));
    for vhost in broker.vhost_list() {
        for q in vhost.queue_list() {
            for p in q.poisoned() {
                out.push(poison_finding(&vhost.name, &q.name, &p));
            }
        }
    }
    out.sort_by(|a, b| {
        (a.severity != Severity::Warning, std::cmp::Reverse(a.since))
            .cmp(&(b.severity != Severity::Warning, std::cmp::Reverse(b.since)))
    });
    out
}

/// Unroutable keys that still route nowhere; those that route now (a binding was added)
/// or whose exchange or vhost is gone are forgotten.
fn unroutable(broker: &Broker) -> Vec<Finding> {
    let d = &broker.stats.diagnostics;
    let entries = lock(&d.unroutable).list(broker.stats.now_ms());
    let (mut out, mut gone, mut targets) = (Vec::new(), Vec::new(), Vec::new());
    for (hash, e) in entries {
        let Some(vhost) = broker.vhost(&e.vhost) else {
            gone.push(hash);
            continue;
        };
        // A message with the same exchange and key and no properties: what routing would
        // do with it now (a headers exchange, which looks at headers, stays listed).
        let probe = Message::new(&e.exchange, &e.routing_key, &[0, 0], &[]);
        targets.clear();
        match vhost.probe_route(&e.exchange, &probe, &mut targets) {
            Ok(()) if targets.is_empty() => {
                let open = broker.stats.connection(&e.connection).is_some();
                out.push(unroutable_finding(&e, open));
            }
            _ => gone.push(hash),
        }
    }
    if !gone.is_empty() {
        lock(&d.unroutable).forget(&gone);
    }
    out
}

/// "1 message", "3 messages".
fn messages(n: u64) -> String {
    format!("{n} message{}", if n == 1 { "" } else { "s" })
}

/// `open`: the publishing connection is still open (else its objects say closed, and
/// the UI shows them without a link).
fn unroutable_finding(e: &Unroutable, open: bool) -> Finding {
    let closed = if open {
        Value::Null
    } else {
        json!({"closed": true})
    };
    let (x, k, v) = (&e.exchange, &e.routing_key, &e.vhost);
    let all_mandatory = e.mandatory == e.count;
    let told = if all_mandatory {
        "the publisher gets them back (mandatory)"
    } else if e.mandatory == 0 {
        "dropped"
    } else {
        "dropped unless mandatory"
    };
    let (summary, hint) = if x.is_empty() || x == "amq.default" {
        (
            format!(
                "{} published to the default exchange with routing key '{k}' in vhost '{v}' \
                 found no queue named '{k}' ({told}), from connection '{}'",
                messages(e.count),
                e.connection
            ),
            format!(
                "no queue is named '{k}': declare it before publishing, or fix the routing key"
            ),
        )
    } else {
        let tail = if all_mandatory {
            "bind one"
        } else {
            "bind one, or publish with mandatory to be told"
        };
        (
            format!(
                "{} published to exchange '{x}' with routing key '{k}' in vhost '{v}' {} \
                 routed to no queue ({told}), from connection '{}'",
                messages(e.count),
                if e.count == 1 { "was" } else { "were" },
                e.connection
            ),
            format!("no queue is bound to exchange '{x}' with routing key '{k}': {tail}"),
        )
    };
    Finding {
        kind: "unroutable",
        severity: if all_mandatory {
            Severity::Info
        } else {
            Severity::Warning
        },
        vhost: v.clone(),
        summary,
        hint,
        objects: vec![
            object("exchange", v, x, json!({"routing_key": k})),
            object("connection", v, &e.connection, closed.clone()),
            object("channel", v, &e.channel, closed),
        ],
        since: e.first,
        details: json!({
            "exchange": x,
            "routing_key": k,
            "connection": e.connection,
            "channel": e.channel,
            "count": e.count,
            "mandatory": e.mandatory,
            "first_seen": e.first,
            "last_seen": e.last,
        }),
    }
}

fn poison_finding(vhost: &str, queue: &str, p: &Poisoned) -> Finding {
    let what = match &p.message_id {
        Some(id) => format!("message '{id}' (routing key '{}')", p.routing_key),
        None => format!("a message with routing key '{}'", p.routing_key),
    };
    Finding {
        kind: "poison_message",
        severity: Severity::Warning,
        vhost: vhost.to_owned(),
        summary: format!(
            "{what} in queue '{queue}' was delivered {} times and sent back each time",
            p.deliveries
        ),
        hint: "a consumer fails on it and requeues it: reject it without requeue (and \
               dead-letter it), or use a quorum queue with x-delivery-limit"
            .into(),
        objects: vec![object("queue", vhost, queue, Value::Null)],
        since: p.since,
        details: json!({
            "routing_key": p.routing_key,
            "exchange": p.exchange,
            "message_id": p.message_id,
            "deliveries": p.deliveries,
            "last_returned": p.last,
        }),
    }
}
