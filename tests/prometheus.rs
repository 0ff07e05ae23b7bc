//! The Prometheus listener: rabbitmq_prometheus's families, kinds and labels in the text
//! format, without a login.

mod common;

use common::{declare, durable, publish_with, within, TestBroker};
use hyper::StatusCode;
use lapin::options::ConfirmSelectOptions;
use lapin::BasicProperties;
use std::collections::HashMap;

async fn broker_with_metrics() -> TestBroker {
    TestBroker::start_with(with_metrics).await
}

fn with_metrics(c: warren::Config) -> warren::Config {
    warren::Config {
        prometheus_port: warren::ListenerPort::On(0),
        management_port: warren::ListenerPort::On(0),
        ..c
    }
}

/// The scrape as (sample line without value → value), and each family's kind.
async fn scrape(
    broker: &TestBroker,
    path: &str,
) -> (HashMap<String, f64>, HashMap<String, String>) {
    let reply = broker.prometheus().get(path).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.header("content-type"),
        Some("text/plain; version=0.0.4")
    );
    let (mut samples, mut kinds) = (HashMap::new(), HashMap::new());
    for line in reply.text().lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE line");
            kinds.insert(name.to_owned(), kind.to_owned());
        } else if !line.starts_with('#') {
            let (series, value) = line.rsplit_once(' ').expect("sample line");
            let value = if value == "NaN" {
                f64::NAN
            } else {
                value.parse().expect("number")
            };
            samples.insert(series.to_owned(), value);
        }
    }
    (samples, kinds)
}

#[tokio::test]
async fn node_families_have_rabbitmqs_names_and_kinds() {
    let broker = broker_with_metrics().await;
    let (samples, kinds) = scrape(&broker, "/metrics").await;
    for (family, kind) in [
        ("rabbitmq_process_resident_memory_bytes", "gauge"),
        ("rabbitmq_resident_memory_limit_bytes", "gauge"),
        ("rabbitmq_disk_space_available_bytes", "gauge"),
        ("rabbitmq_disk_space_available_limit_bytes", "gauge"),
        ("rabbitmq_process_open_fds", "gauge"),
        ("rabbitmq_process_max_fds", "gauge"),
        ("rabbitmq_alarms_memory_used_watermark", "untyped"),
        ("rabbitmq_alarms_free_disk_space_watermark", "untyped"),
        ("rabbitmq_identity_info", "untyped"),
        ("rabbitmq_build_info", "untyped"),
        ("rabbitmq_auth_attempts_total", "counter"),
    ] {
        assert_eq!(
            kinds.get(family).map(String::as_str),
            Some(kind),
            "{family}"
        );
    }
    assert!(samples["rabbitmq_process_resident_memory_bytes"] > 1_000_000.0);
    assert!(samples["rabbitmq_process_open_fds"] >= 3.0);
    assert_eq!(samples["rabbitmq_alarms_memory_used_watermark"], 0.0);
    let identity = samples
        .keys()
        .find(|k| k.starts_with("rabbitmq_identity_info{rabbitmq_node=\"rabbit@"))
        .expect("identity with the node name");
    assert_eq!(samples[identity], 1.0);
    broker.stop().await;
}

#[tokio::test]
async fn logins_are_counted_per_protocol() {
    let broker = broker_with_metrics().await;
    let _conn = broker.connect().await;
    let refused = broker
        .http()
        .as_user(Some(("guest", "nope")))
        .get("/api/whoami")
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    broker.http().get("/api/whoami").await;
    let (samples, _) = scrape(&broker, "/metrics").await;
    let get = |name: &str, protocol: &str| samples[&format!("{name}{{protocol=\"{protocol}\"}}")];
    assert_eq!(
        get("rabbitmq_auth_attempts_succeeded_total", "amqp091"),
        1.0
    );
    assert_eq!(get("rabbitmq_auth_attempts_failed_total", "amqp091"), 0.0);
    assert_eq!(get("rabbitmq_auth_attempts_succeeded_total", "http"), 1.0);
    assert_eq!(get("rabbitmq_auth_attempts_failed_total", "http"), 1.0);
    assert_eq!(get("rabbitmq_auth_attempts_total", "http"), 2.0);
    broker.stop().await;
}

#[tokio::test]
async fn only_the_metrics_paths_answer() {
    let broker = broker_with_metrics().await;
    assert_eq!(
        broker.prometheus().get("/api/whoami").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        broker.prometheus().get("/metrics/per-object").await.status,
        StatusCode::OK
    );
    broker.stop().await;
}

#[tokio::test]
async fn queues_channels_connections_and_global_counters_are_exported() {
    use futures::StreamExt;
    use lapin::options::{
        BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, ConfirmSelectOptions,
    };
    use lapin::types::FieldTable;
    let broker = broker_with_metrics().await;
    let (_conn, ch) = broker.channel().await;
    ch.queue_declare("pm-q".into(), Default::default(), FieldTable::default())
        .await
        .expect("declare");
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirms");
    for _ in 0..4 {
        ch.basic_publish(
            "".into(),
            "pm-q".into(),
            BasicPublishOptions::default(),
            b"hello",
            Default::default(),
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
    }
    ch.basic_publish(
        "".into(),
        "nowhere".into(),
        BasicPublishOptions::default(),
        b"x",
        Default::default(),
    )
    .await
    .expect("publish")
    .await
    .expect("confirm");
    let (samples, kinds) = scrape(&broker, "/metrics/per-object").await;
    let q = |family: &str| samples[&format!("{family}{{vhost=\"/\",queue=\"pm-q\"}}")];
    assert_eq!(q("rabbitmq_queue_messages_ready"), 4.0);
    assert_eq!(q("rabbitmq_queue_messages_ready_bytes"), 20.0);
    assert_eq!(q("rabbitmq_queue_messages_published_total"), 4.0);
    assert_eq!(kinds["rabbitmq_queue_messages_published_total"], "counter");
    let channel = samples
        .keys()
        .find(|k| k.starts_with("rabbitmq_channel_messages_published_total{channel=\""))
        .expect("a channel sample")
        .clone();
    assert_eq!(samples[&channel], 5.0);
    assert!(samples
        .keys()
        .any(|k| k.starts_with("rabbitmq_connection_incoming_bytes_total{channel=\"127.0.0.1:")));
    // A consumer that acks two, then the aggregated view.
    let mut consumer = ch
        .basic_consume(
            "pm-q".into(),
            "c".into(),
            BasicConsumeOptions::default(),
            FieldTable::default(),
        )
        .await
        .expect("consume");
    for _ in 0..4 {
        let d = common::within(consumer.next())
            .await
            .expect("delivery")
            .expect("ok");
        d.ack(BasicAckOptions::default()).await.expect("ack");
    }
    let (samples, _) = scrape(&broker, "/metrics").await;
    assert_eq!(samples["rabbitmq_queues"], 1.0);
    assert_eq!(samples["rabbitmq_connections"], 1.0);
    assert_eq!(samples["rabbitmq_channels"], 1.0);
    assert_eq!(samples["rabbitmq_consumers"], 1.0);
    assert_eq!(samples["rabbitmq_channel_messages_published_total"], 5.0);
    assert_eq!(samples["rabbitmq_channel_messages_confirmed_total"], 5.0);
    assert_eq!(
        samples["rabbitmq_channel_messages_unroutable_dropped_total"],
        1.0
    );
    assert_eq!(
        samples["rabbitmq_channel_messages_delivered_ack_total"],
        4.0
    );
    assert_eq!(samples["rabbitmq_channel_messages_acked_total"], 4.0);
    assert_eq!(samples["rabbitmq_queue_messages_ready"], 0.0);
    assert_eq!(samples["rabbitmq_queues_created_total"], 1.0);
    assert_eq!(
        samples["rabbitmq_global_messages_received_total{protocol=\"amqp091\"}"],
        5.0
    );
    assert_eq!(
        samples["rabbitmq_global_messages_routed_total{protocol=\"amqp091\"}"],
        4.0
    );
    assert_eq!(
        samples["rabbitmq_global_messages_delivered_consume_manual_ack_total{protocol=\"amqp091\",queue_type=\"rabbit_classic_queue\"}"],
        4.0
    );
    broker.stop().await;
}

/// The message store's file I/O, under RabbitMQ's names in the scrape and in /api/nodes:
/// each persistent message written, the writes and fdatasyncs that made it durable, and
/// at a restart the messages and bytes read back. A broker in memory does no file I/O.
#[tokio::test]
async fn message_store_io_is_counted() {
    const BODY: usize = 1000;
    let broker = broker_with_metrics().await;
    let (_conn, ch) = broker.channel().await;
    within(ch.confirm_select(ConfirmSelectOptions::default()))
        .await
        .expect("confirm.select");
    declare(&ch, "io-q", durable()).await;
    for _ in 0..10 {
        let props = BasicProperties::default().with_delivery_mode(2);
        publish_with(&ch, "", "io-q", &[7; BODY], props).await;
    }
    assert!(within(ch.wait_for_confirms())
        .await
        .expect("confirms")
        .is_empty());
    let (samples, kinds) = scrape(&broker, "/metrics").await;
    for family in [
        "rabbitmq_io_write_ops_total",
        "rabbitmq_io_sync_ops_total",
        "rabbitmq_io_sync_time_seconds_total",
        "rabbitmq_msg_store_write_total",
        "rabbitmq_msg_store_read_total",
    ] {
        assert_eq!(
            kinds.get(family).map(String::as_str),
            Some("counter"),
            "{family}"
        );
    }
    assert_eq!(samples["rabbitmq_msg_store_write_total"], 10.0);
    assert!(samples["rabbitmq_io_write_bytes_total"] >= (10 * BODY) as f64);
    assert!(samples["rabbitmq_io_sync_ops_total"] >= 1.0);
    assert_eq!(samples["rabbitmq_msg_store_read_total"], 0.0);
    let node = &broker.http().get("/api/nodes").await.json()[0];
    assert_eq!(node["msg_store_write_count"], 10);
    assert!(node["io_sync_count"].as_u64().expect("count") >= 1);
    assert!(node["io_sync_avg_time"].as_f64().expect("ms") > 0.0);
    assert!(node["io_write_bytes"].as_u64().expect("bytes") >= (10 * BODY) as u64);

    let dir = broker.restart_later().await;
    let broker = TestBroker::start_on(dir, with_metrics).await;
    let (samples, _) = scrape(&broker, "/metrics").await;
    assert_eq!(samples["rabbitmq_msg_store_read_total"], 10.0);
    assert!(samples["rabbitmq_io_read_bytes_total"] >= (10 * BODY) as f64);
    assert_eq!(samples["rabbitmq_msg_store_write_total"], 0.0);
    broker.stop().await;

    let broker = TestBroker::start_with(|c| warren::Config {
        in_memory: true,
        ..with_metrics(c)
    })
    .await;
    let (_conn, ch) = broker.channel().await;
    declare(&ch, "io-q", durable()).await;
    let props = BasicProperties::default().with_delivery_mode(2);
    publish_with(&ch, "", "io-q", b"kept in memory", props).await;
    common::synced(&ch).await;
    let (samples, _) = scrape(&broker, "/metrics").await;
    for family in [
        "rabbitmq_io_write_ops_total",
        "rabbitmq_msg_store_write_total",
    ] {
        assert_eq!(samples[family], 0.0, "{family}");
    }
    broker.stop().await;
}
