//! The object families: queues, channels, connections, object totals, churn and the
//! `rabbitmq_global_*` counters, aggregated (one sample per family) or per object.
//!
//! Read from the statistics registry and each queue's figures, gathered once per scrape
//! into plain values, then written; no lock is held while formatting. Aggregated channel
//! counters include closed channels (as the global counters do), so a rate over them
//! never dips when a publisher disconnects; per object they are each live channel's.

use super::text::{Exposition, Kind};
use crate::broker::queue::QueueFigures;
use crate::http::Api;
use crate::stats::counters::{Counts, Key};
use crate::stats::registry::{Bytes, Gauge};
use crate::stats::{Churn, Stats};

/// One queue's values.
struct QueueRow {
    vhost: String,
    name: String,
    figures: QueueFigures,
    published: u64,
}

/// One channel's values.
struct ChannelRow {
    name: String,
    counts: Counts,
    gauges: [u64; 7],
}

/// One connection's values.
struct ConnectionRow {
    name: String,
    bytes: [u64; 4],
    channels: u64,
}

/// Channel gauges as rabbitmq_prometheus names them.
const CHANNEL_GAUGES: [(&str, &str, Gauge); 7] = [
    (
        "rabbitmq_channel_consumers",
        "Consumers on a channel",
        Gauge::ConsumerCount,
    ),
    (
        "rabbitmq_channel_messages_unacked",
        "Deliveries on a channel waiting for an ack",
        Gauge::Unacked,
    ),
    (
        "rabbitmq_channel_messages_unconfirmed",
        "Publishes on a channel not yet confirmed",
        Gauge::Unconfirmed,
    ),
    (
        "rabbitmq_channel_messages_uncommitted",
        "Publishes in an open transaction",
        Gauge::Uncommitted,
    ),
    (
        "rabbitmq_channel_acks_uncommitted",
        "Acks in an open transaction",
        Gauge::AcksUncommitted,
    ),
    (
        "rabbitmq_consumer_prefetch",
        "The prefetch count consumers on a channel get",
        Gauge::PrefetchCount,
    ),
    (
        "rabbitmq_channel_prefetch",
        "The channel's global prefetch",
        Gauge::GlobalPrefetchCount,
    ),
];

/// Channel counters: (family, help, the message_stats counter it reads).
const CHANNEL_COUNTERS: [(&str, &str, Key); 11] = [
    (
        "rabbitmq_channel_messages_published_total",
        "Messages published on channels",
        Key::Publish,
    ),
    (
        "rabbitmq_channel_messages_confirmed_total",
        "Publishes confirmed to publishers",
        Key::Confirm,
    ),
    (
        "rabbitmq_channel_messages_unroutable_returned_total",
        "Unroutable mandatory messages returned",
        Key::ReturnUnroutable,
    ),
    (
        "rabbitmq_channel_messages_unroutable_dropped_total",
        "Unroutable messages dropped",
        Key::DropUnroutable,
    ),
    (
        "rabbitmq_channel_messages_delivered_ack_total",
        "Deliveries to consumers that ack",
        Key::Deliver,
    ),
    (
        "rabbitmq_channel_messages_delivered_total",
        "Deliveries to consumers without acks",
        Key::DeliverNoAck,
    ),
    (
        "rabbitmq_channel_get_ack_total",
        "basic.get answered, with an ack to come",
        Key::Get,
    ),
    (
        "rabbitmq_channel_get_total",
        "basic.get answered without acks",
        Key::GetNoAck,
    ),
    (
        "rabbitmq_channel_get_empty_total",
        "basic.get answered empty",
        Key::GetEmpty,
    ),
    (
        "rabbitmq_channel_messages_acked_total",
        "Acks received from consumers",
        Key::Ack,
    ),
    (
        "rabbitmq_channel_messages_redelivered_total",
        "Messages delivered again",
        Key::Redeliver,
    ),
];

/// Connection counters: (family, help, which byte counter).
const CONNECTION_COUNTERS: [(&str, &str, Bytes); 4] = [
    (
        "rabbitmq_connection_incoming_bytes_total",
        "Bytes received on connections",
        Bytes::RecvOct,
    ),
    (
        "rabbitmq_connection_outgoing_bytes_total",
        "Bytes sent on connections",
        Bytes::SendOct,
    ),
    (
        "rabbitmq_connection_incoming_packets_total",
        "Reads from connections' sockets",
        Bytes::RecvCnt,
    ),
    (
        "rabbitmq_connection_outgoing_packets_total",
        "Writes to connections' sockets",
        Bytes::SendCnt,
    ),
];

/// Churn: (family, help, which).
const CHURN: [(&str, &str, Churn); 7] = [
    (
        "rabbitmq_connections_opened_total",
        "Connections opened",
        Churn::ConnectionCreated,
    ),
    (
        "rabbitmq_connections_closed_total",
        "Connections closed",
        Churn::ConnectionClosed,
    ),
    (
        "rabbitmq_channels_opened_total",
        "Channels opened",
        Churn::ChannelCreated,
    ),
    (
        "rabbitmq_channels_closed_total",
        "Channels closed",
        Churn::ChannelClosed,
    ),
    (
        "rabbitmq_queues_declared_total",
        "Queue declarations",
        Churn::QueueDeclared,
    ),
    (
        "rabbitmq_queues_created_total",
        "Queues created",
        Churn::QueueCreated,
    ),
    (
        "rabbitmq_queues_deleted_total",
        "Queues deleted",
        Churn::QueueDeleted,
    ),
];

pub fn write(api: &Api, per_object: bool, out: &mut Exposition) {
    let stats = &api.broker.stats;
    let queues = queue_rows(api);
    let (connections, channels) = connection_rows(stats);
    write_churn(stats, out);
    write_queues(&queues, per_object, out);
    // Totals since start, closed channels included: the summed channel counters and
    // the global ones read the same figures.
    let overall = stats.overall_counts();
    write_channels(&overall, &channels, per_object, out);
    write_connections(&connections, per_object, out);
    let consumers: u64 = queues
        .iter()
        .map(|q| q.figures.consumers.len() as u64)
        .sum();
    let totals = [
        (
            "rabbitmq_connections",
            "Connections open",
            connections.len() as u64,
        ),
        ("rabbitmq_channels", "Channels open", channels.len() as u64),
        ("rabbitmq_consumers", "Consumers", consumers),
        ("rabbitmq_queues", "Queues", queues.len() as u64),
        (
            "rabbitmq_process_open_tcp_sockets",
            "Client connections' sockets open",
            connections.len() as u64,
        ),
    ];
    for (name, help, value) in totals {
        out.family(name, Kind::Gauge, help)
            .value(name, value as f64);
    }
    write_global(stats, &overall, &channels, consumers, out);
}

fn queue_rows(api: &Api) -> Vec<QueueRow> {
    let mut rows = Vec::new();
    for vhost in api.broker.vhost_list() {
        for q in vhost.queue_list() {
            rows.push(QueueRow {
                vhost: q.vhost.clone(),
                name: q.name.to_string(),
                figures: q.figures(),
                published: q.stats.snapshot().get(Key::Publish),
            });
        }
    }
    rows
}

fn connection_rows(stats: &Stats) -> (Vec<ConnectionRow>, Vec<ChannelRow>) {
    let (mut connections, mut channels) = (Vec::new(), Vec::new());
    for c in stats.connections() {
        let open = c.channels();
        connections.push(ConnectionRow {
            name: c.info.name.clone(),
            bytes: c.bytes(),
            channels: open.len() as u64,
        });
        for ch in open {
            channels.push(ChannelRow {
                name: ch.name.clone(),
                counts: ch.counters.snapshot(),
                gauges: CHANNEL_GAUGES.map(|(_, _, g)| ch.gauge(g)),
            });
        }
    }
    (connections, channels)
}

fn write_churn(stats: &Stats, out: &mut Exposition) {
    let churn = stats.churn_counts();
    for (name, help, which) in CHURN {
        out.family(name, Kind::Counter, help)
            .value(name, churn[which as usize] as f64);
    }
}

/// A family with one sample per row (labelled by `labels`) or their sum.
fn family<R>(
    out: &mut Exposition,
    (name, kind, help): (&str, Kind, &str),
    rows: &[R],
    per_object: bool,
    labels: impl Fn(&R) -> Vec<(&'static str, String)>,
    value: impl Fn(&R) -> f64,
) {
    out.family(name, kind, help);
    if per_object {
        for row in rows {
            let owned = labels(row);
            let pairs: Vec<(&str, &str)> = owned.iter().map(|(k, v)| (*k, v.as_str())).collect();
            out.sample(name, &pairs, value(row));
        }
    } else {
        out.value(name, rows.iter().map(&value).sum::<f64>());
    }
}

fn write_queues(rows: &[QueueRow], per_object: bool, out: &mut Exposition) {
    let labels = |q: &QueueRow| vec![("vhost", q.vhost.clone()), ("queue", q.name.clone())];
    type Value = fn(&QueueRow) -> f64;
    let gauges: [(&str, &str, Value); 9] = [
        (
            "rabbitmq_queue_messages_ready",
            "Messages ready for consumers",
            |q| q.figures.messages_ready as f64,
        ),
        ("rabbitmq_queue_messages", "Messages in queues", |q| {
            (q.figures.messages_ready + q.figures.messages_unacked) as f64
        }),
        (
            "rabbitmq_queue_messages_unacked",
            "Messages delivered to consumers but not yet acknowledged",
            |q| q.figures.messages_unacked as f64,
        ),
        ("rabbitmq_queue_consumers", "Consumers on queues", |q| {
            q.figures.consumers.len() as f64
        }),
        (
            "rabbitmq_queue_messages_bytes",
            "Body bytes of the messages in queues",
            |q| (q.figures.bytes_ready + q.figures.bytes_unacked) as f64,
        ),
        (
            "rabbitmq_queue_messages_unacked_bytes",
            "Body bytes of messages delivered to consumers but not yet acknowledged",
            |q| q.figures.bytes_unacked as f64,
        ),
        (
            "rabbitmq_queue_messages_ready_bytes",
            "Body bytes of ready messages",
            |q| q.figures.bytes_ready as f64,
        ),
        // As the queue JSON: a queue with consumers can always deliver at once.
        (
            "rabbitmq_queue_consumer_utilisation",
            "Share of time the queue can deliver to its consumers at once",
            |q| f64::from(u8::from(!q.figures.consumers.is_empty())),
        ),
        (
            "rabbitmq_queue_consumer_capacity",
            "Share of time the queue can deliver to its consumers at once",
            |q| f64::from(u8::from(!q.figures.consumers.is_empty())),
        ),
    ];
    for (name, help, value) in gauges {
        family(
            out,
            (name, Kind::Gauge, help),
            rows,
            per_object,
            labels,
            value,
        );
    }
    family(
        out,
        (
            "rabbitmq_queue_messages_published_total",
            Kind::Counter,
            "Messages published into queues",
        ),
        rows,
        per_object,
        labels,
        |q| q.published as f64,
    );
}

fn write_channels(overall: &Counts, rows: &[ChannelRow], per_object: bool, out: &mut Exposition) {
    let labels = |c: &ChannelRow| vec![("channel", c.name.clone())];
    for (i, (name, help, _)) in CHANNEL_GAUGES.iter().enumerate() {
        family(
            out,
            (name, Kind::Gauge, help),
            rows,
            per_object,
            labels,
            |c| c.gauges[i] as f64,
        );
    }
    // Aggregated counters are the totals since start, closed channels included.
    for (name, help, key) in CHANNEL_COUNTERS {
        if per_object {
            family(out, (name, Kind::Counter, help), rows, true, labels, |c| {
                c.counts.get(key) as f64
            });
        } else {
            out.family(name, Kind::Counter, help)
                .value(name, overall.get(key) as f64);
        }
    }
}

fn write_connections(rows: &[ConnectionRow], per_object: bool, out: &mut Exposition) {
    // rabbitmq_prometheus 3.10 labels a connection's samples `channel`; kept for the
    // dashboards that match on it.
    let labels = |c: &ConnectionRow| vec![("channel", c.name.clone())];
    for (name, help, which) in CONNECTION_COUNTERS {
        family(
            out,
            (name, Kind::Counter, help),
            rows,
            per_object,
            labels,
            |c| c.bytes[which as usize] as f64,
        );
    }
    family(
        out,
        (
            "rabbitmq_connection_channels",
            Kind::Gauge,
            "Channels open on connections",
        ),
        rows,
        per_object,
        labels,
        |c| c.channels as f64,
    );
}

/// The `rabbitmq_global_*` counters of 3.10, for AMQP 0-9-1 (every queue counted as
/// classic: warren does not split them by queue type).
fn write_global(
    stats: &Stats,
    c: &Counts,
    channels: &[ChannelRow],
    consumers: u64,
    out: &mut Exposition,
) {
    let routed: u64 = stats.exchange_counts().values().map(|[_, out]| out).sum();
    let protocol = [("protocol", "amqp091")];
    let by_type = [
        ("protocol", "amqp091"),
        ("queue_type", "rabbit_classic_queue"),
    ];
    let plain: [(&str, &str, u64); 5] = [
        (
            "rabbitmq_global_messages_received_total",
            "Messages received from publishers",
            c.get(Key::Publish),
        ),
        (
            "rabbitmq_global_messages_routed_total",
            "Messages routed to at least one queue",
            routed,
        ),
        (
            "rabbitmq_global_messages_unroutable_dropped_total",
            "Unroutable messages dropped",
            c.get(Key::DropUnroutable),
        ),
        (
            "rabbitmq_global_messages_unroutable_returned_total",
            "Unroutable messages returned",
            c.get(Key::ReturnUnroutable),
        ),
        (
            "rabbitmq_global_messages_confirmed_total",
            "Messages confirmed to publishers",
            c.get(Key::Confirm),
        ),
    ];
    for (name, help, value) in plain {
        out.family(name, Kind::Counter, help)
            .sample(name, &protocol, value as f64);
    }
    let delivered = c.deliver_get();
    let typed: [(&str, &str, u64); 7] = [
        (
            "rabbitmq_global_messages_delivered_total",
            "Messages delivered to consumers and basic.get",
            delivered,
        ),
        (
            "rabbitmq_global_messages_delivered_consume_manual_ack_total",
            "Deliveries to consumers that ack",
            c.get(Key::Deliver),
        ),
        (
            "rabbitmq_global_messages_delivered_consume_auto_ack_total",
            "Deliveries to consumers without acks",
            c.get(Key::DeliverNoAck),
        ),
        (
            "rabbitmq_global_messages_delivered_get_manual_ack_total",
            "basic.get answered with an ack to come",
            c.get(Key::Get),
        ),
        (
            "rabbitmq_global_messages_delivered_get_auto_ack_total",
            "basic.get answered without acks",
            c.get(Key::GetNoAck),
        ),
        (
            "rabbitmq_global_messages_get_empty_total",
            "basic.get answered empty",
            c.get(Key::GetEmpty),
        ),
        (
            "rabbitmq_global_messages_redelivered_total",
            "Messages delivered again",
            c.get(Key::Redeliver),
        ),
    ];
    for (name, help, value) in typed {
        out.family(name, Kind::Counter, help)
            .sample(name, &by_type, value as f64);
    }
    out.family(
        "rabbitmq_global_messages_acknowledged_total",
        Kind::Counter,
        "Acks received from consumers",
    )
    .sample(
        "rabbitmq_global_messages_acknowledged_total",
        &by_type,
        c.get(Key::Ack) as f64,
    );
    // gauges[0] is the channel's consumer count (`CHANNEL_GAUGES`).
    let publishers = channels.iter().filter(|c| c.gauges[0] == 0).count();
    out.family(
        "rabbitmq_global_publishers",
        Kind::Gauge,
        "Channels without consumers (publishers)",
    )
    .sample("rabbitmq_global_publishers", &protocol, publishers as f64);
    out.family("rabbitmq_global_consumers", Kind::Gauge, "Consumers")
        .sample("rabbitmq_global_consumers", &protocol, consumers as f64);
}
