//! The JSON of a connection, a channel and a consumer as RabbitMQ 3.10's management API
//! writes them, built from the statistics registry's snapshots.
//!
//! Called by the connection, channel and consumer endpoints (and the overview's
//! counts). Pure: reads relaxed snapshots and the collector's rates, holds no lock of
//! the broker. Erlang-only fields (garbage_collection, reductions) are left out.

use crate::stats::collector::key;
use crate::stats::registry::{ConnStats, BYTE_NAMES};
use crate::stats::{json as sj, ChannelStats, ConsumerView, Gauge, Stats};
use serde_json::{json, Value};

/// A connection, as `/api/connections` lists it.
pub fn connection(stats: &Stats, node: &str, c: &ConnStats) -> Value {
    let i = &c.info;
    let mut m = json!({
        "auth_mechanism": i.auth_mechanism,
        "channel_max": i.channel_max,
        "channels": c.channels().len(),
        "client_properties": i.client_properties,
        "connected_at": i.connected_at,
        "frame_max": i.frame_max,
        "host": i.local.ip().to_string(),
        "name": i.name,
        "node": node,
        "peer_cert_issuer": null,
        "peer_cert_subject": null,
        "peer_cert_validity": null,
        "peer_host": i.peer.ip().to_string(),
        "peer_port": i.peer.port(),
        "port": i.local.port(),
        "protocol": "AMQP 0-9-1",
        "send_pend": 0,
        "ssl": i.ssl,
        "ssl_cipher": i.tls.cipher,
        "ssl_hash": i.tls.hash,
        "ssl_key_exchange": i.tls.key_exchange,
        "ssl_protocol": i.tls.protocol,
        "state": "running",
        "timeout": i.timeout,
        "type": "network",
        "user": i.user,
        "user_who_performed_action": i.user,
        "vhost": i.vhost,
    });
    if let Value::Object(map) = &mut m {
        let k = key::connection(&i.name);
        let (bytes, rates) = (c.bytes(), stats.rates(&k).unwrap_or_default());
        // RabbitMQ gives rates for the octets only; the counts go plain.
        for (i, name) in BYTE_NAMES.iter().enumerate() {
            if name.ends_with("_oct") {
                let rate = rates.get(i..=i);
                sj::fill(map, &[name], &bytes[i..=i], rate);
            } else {
                map.insert((*name).to_owned(), json!(bytes[i]));
            }
        }
    }
    m
}

/// What a channel or consumer says about its connection.
fn connection_details(c: &ConnStats) -> Value {
    json!({
        "name": c.info.name,
        "peer_host": c.info.peer.ip().to_string(),
        "peer_port": c.info.peer.port(),
    })
}

/// A channel, as `/api/channels` lists it.
pub fn channel(stats: &Stats, node: &str, c: &ConnStats, ch: &ChannelStats) -> Value {
    let g = |gauge| ch.gauge(gauge);
    json!({
        "acks_uncommitted": g(Gauge::AcksUncommitted),
        "confirm": g(Gauge::Confirm) != 0,
        "connection_details": connection_details(c),
        "consumer_count": g(Gauge::ConsumerCount),
        "global_prefetch_count": g(Gauge::GlobalPrefetchCount),
        "idle_since": iso8601(ch.idle_since()),
        "message_stats": sj::message_stats(stats, &ch.counters.snapshot(), &key::channel(&ch.name)),
        "messages_unacknowledged": g(Gauge::Unacked),
        "messages_uncommitted": g(Gauge::Uncommitted),
        "messages_unconfirmed": g(Gauge::Unconfirmed),
        "name": ch.name,
        "node": node,
        "number": ch.number,
        "pending_raft_commands": 0,
        "prefetch_count": g(Gauge::PrefetchCount),
        "state": "running",
        "transactional": g(Gauge::Transactional) != 0,
        "user": c.info.user,
        "user_who_performed_action": c.info.user,
        "vhost": c.info.vhost,
    })
}

/// A consumer, as `/api/consumers` lists it.
pub fn consumer(node: &str, c: &ConnStats, ch: &ChannelStats, v: &ConsumerView) -> Value {
    json!({
        "arguments": v.arguments,
        "ack_required": v.ack_required,
        "active": true,
        "activity_status": "up",
        "channel_details": {
            "connection_name": c.info.name,
            "name": ch.name,
            "node": node,
            "number": ch.number,
            "peer_host": c.info.peer.ip().to_string(),
            "peer_port": c.info.peer.port(),
            "user": c.info.user,
        },
        "consumer_tag": v.tag,
        "exclusive": v.exclusive,
        "prefetch_count": v.prefetch_count,
        "queue": {"name": v.queue, "vhost": c.info.vhost},
    })
}

/// Milliseconds since the epoch as RabbitMQ writes `idle_since`:
/// "2026-12-05T02:21:46.881+00:00".
pub fn iso8601(ms: u64) -> String {
    let c = crate::clock::calendar::civil((ms / 1000) as i64);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}+00:00",
        c.year,
        c.month,
        c.day,
        c.hour,
        c.minute,
        c.second,
        ms % 1000
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn idle_since_is_written_like_rabbitmq() {
        assert_eq!(iso8601(0), "1970-01-01T00:00:00.000+00:00");
        assert_eq!(iso8601(1_796_437_306_881), "2026-12-05T02:21:46.881+00:00");
        assert_eq!(iso8601(951_782_400_001), "2000-02-29T00:00:00.001+00:00");
    }
}
