//! The collector's tick for the diagnostics: finds the candidate objects (queues without
//! consumers holding messages, channels with a manual-ack consumer and no prefetch,
//! connections with many channels), follows their values in `trends`, and turns growth
//! and connection churn into findings kept until the next tick.
//!
//! Called by `stats::collector` once per interval, before the sample is published (so a
//! test that waits for the sample counter sees this tick's findings). Reads snapshots
//! (lists of `Arc`s, queue counts under each queue's short lock); takes its own locks
//! only after those reads.

use super::trends::{self, Subject, Trend};
use super::{churn, object, Finding, Severity};
use crate::broker::Broker;
use crate::stats::registry::lock;
use crate::stats::registry::ConnStats;
use crate::stats::Gauge;
use serde_json::{json, Value};
use std::sync::Arc;

/// What a finding about a candidate needs beside its trend.
enum Context {
    Queue,
    NoPrefetch {
        vhost: String,
        connection: String,
        /// (consumer tag, queue) of the no-prefetch manual-ack consumers.
        consumers: Vec<(String, String)>,
    },
    Leak {
        vhost: String,
        user: String,
    },
}

/// One tick: trends and churn to findings.
pub fn tick(broker: &Broker) {
    let now = broker.stats.now_ms();
    let candidates = candidates(broker);
    let d = &broker.stats.diagnostics;
    let mut findings = Vec::new();
    {
        let mut trends = lock(&d.trends);
        trends.update(
            candidates.iter().map(|(s, v, _)| (s.clone(), *v)).collect(),
            now,
        );
        for (subject, _, context) in &candidates {
            let Some(t) = trends.get(subject).filter(|t| t.growing()) else {
                continue;
            };
            if let Some(f) = growth_finding(subject, context, t) {
                findings.push(f);
            }
        }
    }
    let window = d.window_ms(churn::WINDOW_SAMPLES);
    let churning = lock(&d.short_lived).churning(now, window);
    findings.extend(
        churning
            .into_iter()
            .map(|(g, t)| churn_finding(&g, &t, window)),
    );
    *lock(&d.ticked) = findings;
}

/// Every candidate object with the value followed.
fn candidates(broker: &Broker) -> Vec<(Subject, u64, Context)> {
    let mut out = Vec::new();
    for vhost in broker.vhost_list() {
        for q in vhost.queue_list() {
            let (ready, consumers) = q.counts();
            if consumers == 0 && ready > 0 {
                let subject = Subject::Queue(vhost.name.clone(), q.name.to_string());
                out.push((subject, u64::from(ready), Context::Queue));
            }
        }
    }
    for c in broker.stats.connections() {
        let channels = c.channels();
        let count = channels.len() as u64;
        if count >= trends::LEAK_TRACK_FROM {
            let context = Context::Leak {
                vhost: c.info.vhost.clone(),
                user: c.info.user.clone(),
            };
            out.push((Subject::Connection(c.info.name.clone()), count, context));
        }
        for ch in &channels {
            if let Some(context) = no_prefetch(&c, ch) {
                let unacked = ch.gauge(Gauge::Unacked);
                out.push((Subject::Channel(ch.name.clone()), unacked, context));
            }
        }
    }
    out
}

/// A channel whose manual-ack consumers have no prefetch limit at all (neither theirs
/// nor the channel's global one).
fn no_prefetch(c: &ConnStats, ch: &Arc<crate::stats::ChannelStats>) -> Option<Context> {
    if ch.gauge(Gauge::ConsumerCount) == 0 || ch.gauge(Gauge::GlobalPrefetchCount) != 0 {
        return None;
    }
    let consumers: Vec<(String, String)> = ch
        .consumers()
        .into_iter()
        .filter(|v| v.ack_required && v.prefetch_count == 0)
        .map(|v| (v.tag, v.queue))
        .collect();
    (!consumers.is_empty()).then(|| Context::NoPrefetch {
        vhost: c.info.vhost.clone(),
        connection: c.info.name.clone(),
        consumers,
    })
}

fn growth_finding(subject: &Subject, context: &Context, t: &Trend) -> Option<Finding> {
    let (from, to, since) = (t.low, t.last, t.since);
    let samples = json!({"from": from, "to": to, "rises": t.rises});
    match (subject, context) {
        (Subject::Queue(vhost, name), Context::Queue) => Some(Finding {
            kind: "queue_growing_without_consumer",
            severity: Severity::Warning,
            vhost: vhost.clone(),
            summary: format!(
                "queue '{name}' in vhost '{vhost}' has no consumer and its ready messages \
                 grew from {from} to {to}"
            ),
            hint: format!(
                "start a consumer on '{name}', or give it a message TTL or max-length so it \
                 cannot grow without bound"
            ),
            objects: vec![object("queue", vhost, name, Value::Null)],
            since,
            details: json!({"messages_ready": to, "trend": samples}),
        }),
        (
            Subject::Channel(channel),
            Context::NoPrefetch {
                vhost,
                connection,
                consumers,
            },
        ) if to >= trends::NO_PREFETCH_MIN_UNACKED => {
            let (tag, queue) = consumers.first()?;
            let mut objects = vec![
                object("channel", vhost, channel, Value::Null),
                object("connection", vhost, connection, Value::Null),
            ];
            for (tag, queue) in consumers {
                objects.push(object(
                    "consumer",
                    vhost,
                    tag,
                    json!({"queue": queue, "channel": channel}),
                ));
                objects.push(object("queue", vhost, queue, Value::Null));
            }
            Some(Finding {
                kind: "consumer_no_prefetch",
                severity: Severity::Warning,
                vhost: vhost.clone(),
                summary: format!(
                    "consumer '{tag}' on queue '{queue}' (channel '{channel}') acks manually \
                     with no prefetch limit; its unacked messages grew from {from} to {to}"
                ),
                hint: "set a prefetch (basic.qos, e.g. 100) before consuming, so the broker \
                       stops sending while that many wait for an ack"
                    .into(),
                objects,
                since,
                details: json!({"messages_unacknowledged": to, "trend": samples}),
            })
        }
        (Subject::Connection(name), Context::Leak { vhost, user })
            if to >= trends::LEAK_MIN_CHANNELS =>
        {
            Some(Finding {
                kind: "channel_leak",
                severity: Severity::Warning,
                vhost: vhost.clone(),
                summary: format!(
                    "connection '{name}' (user '{user}') has {to} channels, up from {from}, \
                     and keeps opening more"
                ),
                hint: "close each channel when done with it, or keep one per thread and \
                       reuse it"
                    .into(),
                objects: vec![object("connection", vhost, name, json!({"user": user}))],
                since,
                details: json!({"channels": to, "trend": samples}),
            })
        }
        _ => None,
    }
}

fn churn_finding(g: &churn::Group, t: &churn::Tally, window_ms: u64) -> Finding {
    let product = if g.product.is_empty() {
        "unnamed client".to_owned()
    } else {
        format!("client '{}'", g.product)
    };
    Finding {
        kind: "connection_churn",
        severity: Severity::Warning,
        vhost: g.vhost.clone(),
        summary: format!(
            "{} connections from {} (user '{}', {product}) lived less than {} ms each; at \
             least {} within the last {} s",
            t.total,
            g.peer_host,
            g.user,
            churn::SHORT_LIVED_MS,
            churn::MIN_SHORT_LIVED,
            window_ms / 1000
        ),
        hint: "open one connection per process and keep it open; publish and consume many \
               messages on it (each connection costs a TCP and an AMQP handshake)"
            .into(),
        objects: vec![object(
            "connection",
            &g.vhost,
            &t.last_name,
            json!({"closed": true, "user": g.user, "peer_host": g.peer_host}),
        )],
        since: t.first,
        details: json!({
            "peer_host": g.peer_host,
            "user": g.user,
            "client_product": g.product,
            "short_lived": t.total,
            "last_lifetime_ms": t.last_lifetime_ms,
            "last_closed": t.last(),
        }),
    }
}
