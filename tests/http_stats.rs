//! Statistics in the management API: /api/overview and /api/nodes in RabbitMQ 3.10.8's
//! shapes (keys compared side by side with the reference), per-tag visibility, and
//! counts and rates that move when messages flow (on a manual clock: each sample is the
//! clock moved one --stats-interval; waits on the sample counter and on events).

mod common;

use common::{within, TestBroker};
use futures::StreamExt;
use hyper::StatusCode;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicGetOptions, BasicPublishOptions,
    ConfirmSelectOptions,
};
use lapin::types::FieldTable;
use lapin::BasicProperties;
use serde_json::{json, Value};

async fn broker(interval_ms: u64) -> TestBroker {
    let broker = TestBroker::start_manual(|c| warren::Config {
        management_port: warren::ListenerPort::On(0),
        stats_interval: interval_ms,
        ..c
    })
    .await;
    let b = broker.server.broker();
    for (user, tag) in [("mgmt", "management"), ("mon", "monitoring")] {
        b.users().add(user, Some("pw")).expect("add user");
        b.users().set_tags(user, vec![tag.into()]).expect("tags");
        b.set_permissions(user, "/", ".*", ".*", ".*")
            .expect("permissions");
    }
    broker
}

/// Waits until the collector has taken `n` more samples than now.
async fn samples(broker: &TestBroker, n: u64) {
    broker.samples(n).await;
}

fn keys(v: &Value) -> Vec<String> {
    let mut k: Vec<String> = v.as_object().expect("object").keys().cloned().collect();
    k.sort();
    k
}

#[tokio::test]
async fn overview_has_every_key_the_reference_returns() {
    let broker = broker(5000).await;
    let http = broker.http();
    let o = http.get("/api/overview").await;
    assert_eq!(o.status, StatusCode::OK);
    let o = o.json();
    // The keys RabbitMQ 3.10.8 returns to an administrator (curl on the reference).
    let mut expected = vec![
        "churn_rates",
        "cluster_name",
        "contexts",
        "disable_stats",
        "enable_queue_totals",
        "erlang_full_version",
        "erlang_version",
        "exchange_types",
        "listeners",
        "management_version",
        "message_stats",
        "node",
        "object_totals",
        "product_name",
        "product_version",
        "queue_totals",
        "rabbitmq_version",
        "rates_mode",
        "release_series_support_status",
        "sample_retention_policies",
        "statistics_db_event_queue",
    ];
    expected.sort();
    assert_eq!(keys(&o), expected);
    assert_eq!(o["rabbitmq_version"], "3.10.8");
    assert_eq!(o["management_version"], "3.10.8");
    assert_eq!(o["product_name"], "warren");
    assert_eq!(o["rates_mode"], "basic");
    // The four built-in kinds first, then the plugin kinds warren has on by default.
    let types: Vec<&str> = o["exchange_types"]
        .as_array()
        .map(|t| t.iter().filter_map(|t| t["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(types[..4], ["direct", "fanout", "headers", "topic"]);
    assert_eq!(
        keys(&o["object_totals"]),
        [
            "channels",
            "connections",
            "consumers",
            "exchanges",
            "queues"
        ]
    );
    assert_eq!(
        o["object_totals"]["exchanges"], 7,
        "the predeclared exchanges of /"
    );
    assert_eq!(
        keys(&o["queue_totals"]),
        [
            "messages",
            "messages_details",
            "messages_ready",
            "messages_ready_details",
            "messages_unacknowledged",
            "messages_unacknowledged_details"
        ]
    );
    assert_eq!(keys(&o["churn_rates"]).len(), 14);
    assert_eq!(
        keys(&o["message_stats"]).len(),
        28,
        "the reference's 28, disk_reads/writes included"
    );
    let protocols: Vec<&str> = o["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["protocol"].as_str().unwrap())
        .collect();
    assert_eq!(protocols, ["amqp", "http"]);
    assert_eq!(o["listeners"][0]["port"], broker.addr.port());
    assert_eq!(o["contexts"][0]["description"], "RabbitMQ Management");
    // A management user: no node, listeners, contexts or consumer total (as the
    // reference answers stats-m).
    let m = http
        .as_user(Some(("mgmt", "pw")))
        .get("/api/overview")
        .await
        .json();
    for k in ["node", "listeners", "contexts"] {
        assert!(m.get(k).is_none(), "{k}");
    }
    assert_eq!(
        keys(&m["object_totals"]),
        ["channels", "connections", "exchanges", "queues"]
    );
    // columns cuts the single object.
    let cut = http
        .get("/api/overview?columns=rabbitmq_version,object_totals.queues")
        .await
        .json();
    assert_eq!(
        cut,
        json!({"rabbitmq_version": "3.10.8", "object_totals": {"queues": 0}})
    );
    broker.stop().await;
}

#[tokio::test]
async fn nodes_show_real_figures_to_monitoring_users_only() {
    let broker = broker(5000).await;
    let http = broker.http();
    let list = http.get("/api/nodes").await;
    assert_eq!(list.status, StatusCode::OK);
    let nodes = list.json();
    assert_eq!(nodes.as_array().map(Vec::len), Some(1));
    let node = &nodes[0];
    let name = node["name"].as_str().unwrap();
    assert!(name.starts_with("rabbit@"));
    assert_eq!(http.get("/api/overview").await.json()["node"], json!(name));
    for k in [
        "mem_used",
        "mem_limit",
        "disk_free",
        "disk_free_limit",
        "fd_used",
        "fd_total",
        "proc_used",
        "proc_total",
        "processors",
        "sockets_total",
    ] {
        assert!(node[k].as_u64().is_some_and(|n| n > 0), "{k}: {}", node[k]);
    }
    for (k, v) in [
        ("mem_alarm", json!(false)),
        ("disk_free_alarm", json!(false)),
        ("running", json!(true)),
        ("type", json!("disc")),
        ("partitions", json!([])),
        ("sockets_used", json!(0)),
        ("run_queue", json!(0)),
    ] {
        assert_eq!(node[k], v, "{k}");
    }
    assert!(node["uptime"].is_u64());
    assert_eq!(
        node["io_read_count_details"]["rate"], 0.0,
        "RabbitMQ's keys, kept"
    );
    assert_eq!(node["mem_used_details"]["rate"], 0.0);
    assert!(node["connection_created_details"]["rate"].is_f64());
    let one = http.get(&format!("/api/nodes/{name}")).await;
    assert_eq!(
        (one.status, one.json()["name"].clone()),
        (StatusCode::OK, json!(name))
    );
    let missing = http.get("/api/nodes/rabbit@nowhere").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    let mon = http.as_user(Some(("mon", "pw")));
    assert_eq!(mon.get("/api/nodes").await.status, StatusCode::OK);
    let mgmt = http.as_user(Some(("mgmt", "pw")));
    for path in [
        "/api/nodes".to_owned(),
        format!("/api/nodes/{name}"),
        "/api/nodes/x".into(),
    ] {
        let r = mgmt.get(&path).await;
        assert_eq!(
            (r.status, r.json()),
            (
                StatusCode::UNAUTHORIZED,
                json!({"error": "not_authorised", "reason": "Not monitor user"})
            ),
            "{path}"
        );
    }
    broker.stop().await;
}

#[tokio::test]
async fn counts_move_and_rates_follow_when_messages_flow() {
    let broker = broker(50).await;
    let http = broker.http();
    let (conn, ch) = broker.channel().await;
    within(ch.confirm_select(ConfirmSelectOptions::default()))
        .await
        .expect("confirm");
    common::declare_queue(&ch, "flow").await;
    for _ in 0..5 {
        within(ch.basic_publish(
            "".into(),
            "flow".into(),
            BasicPublishOptions::default(),
            b"m",
            BasicProperties::default(),
        ))
        .await
        .expect("publish")
        .await
        .expect("confirmed");
    }
    // One returned (mandatory), one dropped, both unroutable.
    let mandatory = BasicPublishOptions {
        mandatory: true,
        ..Default::default()
    };
    within(ch.basic_publish(
        "".into(),
        "nowhere".into(),
        mandatory,
        b"r",
        BasicProperties::default(),
    ))
    .await
    .expect("publish")
    .await
    .expect("confirmed");
    within(ch.basic_publish(
        "".into(),
        "nowhere".into(),
        BasicPublishOptions::default(),
        b"d",
        BasicProperties::default(),
    ))
    .await
    .expect("publish")
    .await
    .expect("confirmed");
    let got = within(ch.basic_get("flow".into(), BasicGetOptions::default()))
        .await
        .expect("get")
        .expect("a message");
    within(got.delivery.ack(BasicAckOptions::default()))
        .await
        .expect("ack");
    assert!(
        within(ch.basic_get("nowhere-q".into(), BasicGetOptions::default()))
            .await
            .is_err()
    );
    let ch = within(conn.create_channel()).await.expect("channel");
    let mut consumer = within(ch.basic_consume(
        "flow".into(),
        "c".into(),
        BasicConsumeOptions::default(),
        FieldTable::default(),
    ))
    .await
    .expect("consume");
    for _ in 0..4 {
        let d = within(consumer.next())
            .await
            .expect("delivery")
            .expect("ok");
        within(d.ack(BasicAckOptions::default()))
            .await
            .expect("ack");
    }
    samples(&broker, 2).await;
    let o = http.get("/api/overview").await.json();
    let ms = &o["message_stats"];
    for (k, v) in [
        ("publish", 7),
        ("confirm", 7),
        ("return_unroutable", 1),
        ("drop_unroutable", 1),
        ("get", 1),
        ("deliver", 4),
        ("ack", 5),
        ("deliver_get", 5),
        ("redeliver", 0),
    ] {
        assert_eq!(ms[k], v, "overview {k}");
    }
    assert_eq!(o["object_totals"]["consumers"], 1);
    assert_eq!(o["object_totals"]["queues"], 1);
    assert_eq!(
        o["churn_rates"]["channel_created"], 2,
        "the closed channel counts too"
    );
    assert_eq!(o["churn_rates"]["channel_closed"], 1);
    assert_eq!(o["churn_rates"]["queue_declared"], 1);
    assert_eq!(o["churn_rates"]["queue_created"], 1);
    assert_eq!(o["churn_rates"]["queue_deleted"], 0);
    assert_eq!(o["queue_totals"]["messages"], 0);
    // The channel's own counters (the consumer's channel delivered and acked 4).
    let channels = http.get("/api/channels?sort=number").await.json();
    let consuming = channels
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["consumer_count"] == 1)
        .expect("consumer channel");
    assert_eq!(consuming["message_stats"]["deliver"], 4);
    assert_eq!(consuming["message_stats"]["ack"], 4);
    assert_eq!(consuming["message_stats"]["publish"], 0);
    // Rates: publishes between two samples show as a publish rate above 0 in the next
    // one (in the overview and on the connection's byte counters): 10 messages in one
    // interval of clock time (50 ms) are 200 a second.
    let publisher = within(conn.create_channel()).await.expect("channel");
    for _ in 0..10 {
        publish_once(&publisher).await.expect("publish");
    }
    common::synced(&publisher).await;
    samples(&broker, 1).await;
    let o = http.get("/api/overview").await.json();
    let c = http.get("/api/connections").await.json();
    let publish_rate = o["message_stats"]["publish_details"]["rate"].as_f64();
    assert_eq!(publish_rate, Some(200.0), "{}", o["message_stats"]);
    let recv_rate = c[0]["recv_oct_details"]["rate"].as_f64().unwrap_or(0.0);
    assert!(recv_rate > 0.0, "{}", c[0]);
    within(ch.queue_delete("flow".into(), Default::default()))
        .await
        .expect("delete");
    let o = http.get("/api/overview").await.json();
    assert_eq!(o["churn_rates"]["queue_deleted"], 1);
    assert_eq!(o["object_totals"]["queues"], 0);
    broker.stop().await;
}

async fn publish_once(ch: &lapin::Channel) -> lapin::Result<()> {
    ch.basic_publish(
        "".into(),
        "flow".into(),
        BasicPublishOptions::default(),
        b"x",
        BasicProperties::default(),
    )
    .await
    .map(|_| ())
}

#[tokio::test]
async fn a_stats_interval_below_10_ms_is_refused() {
    use clap::Parser;
    let refused = warren::Config::try_parse_from(["warren", "--stats-interval", "5"]);
    assert!(refused.is_err());
    let ok = warren::Config::try_parse_from(["warren", "--stats-interval", "250"]).expect("parses");
    assert_eq!(ok.stats_interval, 250);
    let default = warren::Config::try_parse_from(["warren"]).expect("parses");
    assert_eq!(default.stats_interval, 5000);
}

#[tokio::test]
async fn queues_exchanges_and_vhosts_carry_their_message_stats() {
    let broker = broker(20).await;
    let http = broker.http();
    let (_conn, ch) = broker.channel().await;
    ch.queue_declare("ms-q".into(), Default::default(), FieldTable::default())
        .await
        .expect("declare");
    // No traffic yet: RabbitMQ shows no message_stats on the queue.
    let q = http.get("/api/queues/%2f/ms-q").await.json();
    assert!(q.get("message_stats").is_none(), "{q}");
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirms");
    for _ in 0..3 {
        ch.basic_publish(
            "amq.direct".into(),
            "ms-q".into(),
            BasicPublishOptions::default(),
            b"x",
            BasicProperties::default(),
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
    }
    ch.queue_bind(
        "ms-q".into(),
        "amq.direct".into(),
        "ms-q".into(),
        Default::default(),
        FieldTable::default(),
    )
    .await
    .expect("bind");
    for _ in 0..2 {
        ch.basic_publish(
            "amq.direct".into(),
            "ms-q".into(),
            BasicPublishOptions::default(),
            b"x",
            BasicProperties::default(),
        )
        .await
        .expect("publish")
        .await
        .expect("confirm");
    }
    let got = ch
        .basic_get("ms-q".into(), BasicGetOptions { no_ack: true })
        .await
        .expect("get");
    assert!(got.is_some());
    samples(&broker, 2).await;
    let q = http.get("/api/queues/%2f/ms-q").await.json();
    assert_eq!(q["message_stats"]["publish"], 2, "{q}");
    assert_eq!(q["message_stats"]["get_no_ack"], 1, "{q}");
    assert!(
        q["message_stats"].get("ack").is_none(),
        "only counters that moved: {q}"
    );
    let x = http.get("/api/exchanges/%2f/amq.direct").await.json();
    assert_eq!(x["message_stats"]["publish_in"], 5, "{x}");
    assert_eq!(x["message_stats"]["publish_out"], 2, "{x}");
    let v = http.get("/api/vhosts/%2f").await.json();
    assert_eq!(v["message_stats"]["publish"], 5, "{v}");
    assert_eq!(v["messages"], 1, "{v}");
    assert!(v["recv_oct"].as_u64().unwrap_or(0) > 0, "{v}");
    broker.stop().await;
}
