//! Developer diagnostics (`/api/diagnostics`): each kind driven with lapin against the
//! broker in-process, seen with its objects, then gone once its cause is gone. The
//! broker runs on a manual clock: each sample is the clock moved one --stats-interval
//! (`TestBroker::samples`), and waits are on the sample counter and on events.

mod common;

use common::{within, TestBroker};
use futures::StreamExt;
use hyper::StatusCode;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueBindOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel};
use serde_json::{json, Value};

async fn broker(interval_ms: u64) -> TestBroker {
    TestBroker::start_manual(|c| warren::Config {
        management_port: warren::ListenerPort::On(0),
        stats_interval: interval_ms,
        ..c
    })
    .await
}

/// The interval of the tests about growth: fast, yet 12 samples (the quiet window after
/// which growth is no longer reported) leave seconds to read the finding.
const TREND_MS: u64 = 200;

/// Waits until the collector has taken `n` more samples than now. Two samples after a
/// change make sure one was taken wholly after it (one may have been under way).
async fn samples(broker: &TestBroker, n: u64) {
    broker.samples(n).await;
}

/// The findings of `kind` now.
async fn findings(broker: &TestBroker, kind: &str) -> Vec<Value> {
    let reply = broker.http().get("/api/diagnostics").await;
    assert_eq!(reply.status, StatusCode::OK);
    let all = reply.json();
    all.as_array()
        .expect("a list")
        .iter()
        .filter(|f| f["kind"] == kind)
        .cloned()
        .collect()
}

/// Findings of `kind` once some exist (`want`) or none do, looking again after each
/// sample (findings change when the collector samples); fails after 10 s with `what`.
async fn eventually(broker: &TestBroker, kind: &str, want: bool, what: &str) -> Vec<Value> {
    broker
        .sampled_until(what, || async {
            let found = findings(broker, kind).await;
            (found.is_empty() != want).then_some(found)
        })
        .await
}

/// The object of `kind` a finding names.
fn object<'a>(finding: &'a Value, kind: &str) -> &'a Value {
    finding["objects"]
        .as_array()
        .expect("objects")
        .iter()
        .find(|o| o["type"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in {finding}"))
}

async fn confirmed(ch: &Channel) {
    within(ch.confirm_select(ConfirmSelectOptions::default()))
        .await
        .expect("confirm.select");
}

/// Publishes and waits for the broker's confirm (so the message was routed or dropped).
async fn publish(ch: &Channel, exchange: &str, key: &str, mandatory: bool, props: BasicProperties) {
    let options = BasicPublishOptions {
        mandatory,
        ..Default::default()
    };
    within(async {
        ch.basic_publish(exchange.into(), key.into(), options, b"m", props)
            .await
            .expect("publish")
            .await
            .expect("confirm")
    })
    .await;
}

#[tokio::test]
async fn unroutable_publishes_are_named_until_a_binding_routes_them() {
    let broker = broker(5000).await;
    let http = broker.http();
    let (_conn, ch) = broker.channel().await;
    confirmed(&ch).await;
    ch.exchange_declare(
        "diag.x".into(),
        lapin::ExchangeKind::Direct,
        Default::default(),
        FieldTable::default(),
    )
    .await
    .expect("exchange.declare");
    assert!(findings(&broker, "unroutable").await.is_empty());
    for mandatory in [false, false, true] {
        publish(
            &ch,
            "diag.x",
            "nowhere",
            mandatory,
            BasicProperties::default(),
        )
        .await;
    }
    publish(&ch, "", "no-such-queue", false, BasicProperties::default()).await;

    let found = findings(&broker, "unroutable").await;
    assert_eq!(found.len(), 2, "{found:?}");
    let f = found
        .iter()
        .find(|f| f["details"]["exchange"] == "diag.x")
        .expect("diag.x");
    assert_eq!(f["severity"], "warning", "two of three were dropped");
    assert_eq!(f["vhost"], "/");
    assert_eq!(f["details"]["routing_key"], "nowhere");
    assert_eq!(f["details"]["count"], 3);
    assert_eq!(f["details"]["mandatory"], 1);
    assert_eq!(
        f["hint"],
        "no queue is bound to exchange 'diag.x' with routing key 'nowhere': bind one, or \
         publish with mandatory to be told"
    );
    assert!(f["summary"]
        .as_str()
        .expect("summary")
        .contains("3 messages"));
    assert_eq!(
        object(f, "exchange"),
        &json!({"type": "exchange", "vhost": "/", "name": "diag.x", "routing_key": "nowhere"})
    );
    let connections = http.get("/api/connections").await.names();
    assert_eq!(object(f, "connection")["name"], connections[0].as_str());
    let channel = object(f, "channel")["name"].as_str().expect("channel");
    assert_eq!(channel, format!("{} (1)", connections[0]));
    assert!(f["since"].as_u64().expect("since") > 0);
    let default = found
        .iter()
        .find(|f| f["details"]["exchange"] == "")
        .expect("default exchange");
    assert_eq!(
        default["hint"],
        "no queue is named 'no-such-queue': declare it before publishing, or fix the routing key"
    );

    // The cause goes: a queue bound with that key, a queue with that name.
    common::declare_queue(&ch, "diag.bound").await;
    ch.queue_bind(
        "diag.bound".into(),
        "diag.x".into(),
        "nowhere".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("queue.bind");
    common::declare_queue(&ch, "no-such-queue").await;
    assert!(findings(&broker, "unroutable").await.is_empty());
    broker.stop().await;
}

#[tokio::test]
async fn findings_follow_the_callers_vhost_access() {
    let broker = broker(5000).await;
    let b = broker.server.broker();
    b.add_vhost("diag-v", Default::default()).expect("vhost");
    b.users().add("dev", Some("pw")).expect("user");
    b.users()
        .set_tags("dev", vec!["management".into()])
        .expect("tags");
    b.set_permissions("dev", "diag-v", ".*", ".*", ".*")
        .expect("permissions");
    let (_conn, ch) = broker.channel().await;
    confirmed(&ch).await;
    publish(&ch, "amq.direct", "lost", true, BasicProperties::default()).await;
    let dev = broker.http().as_user(Some(("dev", "pw")));
    assert_eq!(dev.get("/api/diagnostics").await.json(), json!([]));
    assert_eq!(dev.get("/api/diagnostics/diag-v").await.json(), json!([]));
    let refused = dev.get("/api/diagnostics/%2F").await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        refused.json(),
        json!({"error": "not_authorised", "reason": "User not authorised to access virtual host"})
    );
    let missing = broker.http().get("/api/diagnostics/nope").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(
        missing.json(),
        json!({"error": "Object Not Found", "reason": "Not Found"})
    );
    let anonymous = broker.http().as_user(None).get("/api/diagnostics").await;
    assert_eq!(anonymous.status, StatusCode::UNAUTHORIZED);
    let guest = broker.http().get("/api/diagnostics/%2F").await.json();
    assert_eq!(guest[0]["kind"], "unroutable");
    assert_eq!(
        guest[0]["severity"], "info",
        "mandatory: the publisher was told"
    );
    broker.stop().await;
}

#[tokio::test]
async fn a_queue_growing_without_consumer_is_named_until_consumed() {
    let broker = broker(TREND_MS).await;
    let (_conn, ch) = broker.channel().await;
    confirmed(&ch).await;
    common::declare_queue(&ch, "diag.grow").await;
    common::declare_queue(&ch, "diag.steady").await;
    publish(&ch, "", "diag.steady", false, BasicProperties::default()).await;
    for _ in 0..3 {
        publish(&ch, "", "diag.grow", false, BasicProperties::default()).await;
        samples(&broker, 2).await;
    }
    let found = findings(&broker, "queue_growing_without_consumer").await;
    assert_eq!(found.len(), 1, "only the growing one: {found:?}");
    let f = &found[0];
    assert_eq!(
        f["objects"],
        json!([{"type": "queue", "vhost": "/", "name": "diag.grow"}])
    );
    assert_eq!(f["details"]["messages_ready"], 3);
    assert_eq!(
        f["summary"],
        "queue 'diag.grow' in vhost '/' has no consumer and its ready messages grew from 1 to 3"
    );
    let _consumer = common::consume(&ch, "diag.grow", BasicConsumeOptions::default()).await;
    eventually(&broker, "queue_growing_without_consumer", false, "consumed").await;
    broker.stop().await;
}

#[tokio::test]
async fn a_consumer_without_prefetch_piling_up_unacked_is_named_until_it_acks() {
    let broker = broker(TREND_MS).await;
    let (_conn, ch) = broker.channel().await;
    confirmed(&ch).await;
    common::declare_queue(&ch, "diag.np").await;
    // A consumer with a prefetch on another channel is no candidate.
    let (_c2, limited) = broker.channel().await;
    within(limited.basic_qos(1000, BasicQosOptions::default()))
        .await
        .expect("qos");
    common::declare_queue(&limited, "diag.limited").await;
    let _limited = common::consume(&limited, "diag.limited", BasicConsumeOptions::default()).await;
    let mut consumer = within(ch.basic_consume(
        "diag.np".into(),
        "np-tag".into(),
        BasicConsumeOptions::default(),
        FieldTable::default(),
    ))
    .await
    .expect("consume");
    samples(&broker, 2).await;
    let mut last_tag = 0;
    for _ in 0..3 {
        for _ in 0..30 {
            publish(&ch, "", "diag.np", false, BasicProperties::default()).await;
            publish(
                &limited,
                "",
                "diag.limited",
                false,
                BasicProperties::default(),
            )
            .await;
        }
        for _ in 0..30 {
            let d = within(consumer.next())
                .await
                .expect("delivery")
                .expect("ok");
            last_tag = d.delivery_tag;
        }
        samples(&broker, 2).await;
    }
    let found = findings(&broker, "consumer_no_prefetch").await;
    assert_eq!(found.len(), 1, "{found:?}");
    let f = &found[0];
    assert_eq!(f["details"]["messages_unacknowledged"], 90);
    let c = object(f, "consumer");
    assert_eq!(
        (c["name"].as_str(), c["queue"].as_str()),
        (Some("np-tag"), Some("diag.np"))
    );
    assert_eq!(object(f, "queue")["name"], "diag.np");
    assert!(object(f, "channel")["name"]
        .as_str()
        .expect("name")
        .ends_with("(1)"));
    assert!(f["hint"].as_str().expect("hint").contains("prefetch"));
    ch.basic_ack(last_tag, BasicAckOptions { multiple: true })
        .await
        .expect("ack");
    eventually(&broker, "consumer_no_prefetch", false, "acked").await;
    broker.stop().await;
}

#[tokio::test]
async fn a_connection_leaking_channels_is_named_until_it_closes_them() {
    let broker = broker(TREND_MS).await;
    let conn = broker.connect().await;
    let mut channels = Vec::new();
    for _ in 0..3 {
        for _ in 0..40 {
            channels.push(within(conn.create_channel()).await.expect("channel"));
        }
        samples(&broker, 2).await;
    }
    let found = findings(&broker, "channel_leak").await;
    assert_eq!(found.len(), 1, "{found:?}");
    let f = &found[0];
    assert_eq!(f["details"]["channels"], 120);
    let names = broker.http().get("/api/connections").await.names();
    assert_eq!(object(f, "connection")["name"], names[0].as_str());
    assert_eq!(object(f, "connection")["user"], "guest");
    for ch in channels.drain(..100) {
        within(ch.close(200, "done".into())).await.expect("close");
    }
    eventually(&broker, "channel_leak", false, "channels closed").await;
    broker.stop().await;
}

#[tokio::test]
async fn short_lived_connections_are_churn_until_they_stop() {
    // A window of 12 samples (3 s here) for ten connections opened and closed.
    let broker = broker(250).await;
    // A long-lived connection from the same host and user is not counted.
    let _kept = broker.connect().await;
    for _ in 0..12 {
        let conn = broker.connect().await;
        within(conn.close(200, "bye".into())).await.expect("close");
    }
    let found = eventually(&broker, "connection_churn", true, "churn").await;
    assert_eq!(found.len(), 1, "{found:?}");
    let f = &found[0];
    assert_eq!(f["details"]["peer_host"], "127.0.0.1");
    assert_eq!(f["details"]["user"], "guest");
    // Each close is counted when the server's side of it ends, just after the client's:
    // the tick that found churn may have come before the last one or two.
    let counted = f["details"]["short_lived"].as_u64().expect("count");
    assert!((10..=12).contains(&counted), "{counted}");
    assert!(f["details"]["client_product"]
        .as_str()
        .is_some_and(|p| !p.is_empty()));
    let c = object(f, "connection");
    assert_eq!(c["closed"], true);
    // Quiet for a whole window: no longer churning.
    samples(&broker, 13).await;
    assert!(findings(&broker, "connection_churn").await.is_empty());
    broker.stop().await;
}

/// basic.get with manual ack, then nack with requeue: one more delivery of the head.
async fn get_and_requeue(ch: &Channel, queue: &str) {
    let got = common::get_eventually_with(ch, queue, false).await;
    within(ch.basic_nack(
        got.delivery.delivery_tag,
        BasicNackOptions {
            requeue: true,
            ..Default::default()
        },
    ))
    .await
    .expect("nack");
}

#[tokio::test]
async fn a_message_requeued_over_and_over_is_poison_until_acked() {
    let broker = broker(5000).await;
    let (_conn, ch) = broker.channel().await;
    confirmed(&ch).await;
    common::declare_queue(&ch, "diag.poison").await;
    let props = BasicProperties::default().with_message_id("order-17".into());
    publish(&ch, "", "diag.poison", false, props).await;
    for _ in 0..9 {
        get_and_requeue(&ch, "diag.poison").await;
    }
    // The ninth requeue is done once the message can be got again.
    let got = common::get_eventually_with(&ch, "diag.poison", false).await;
    assert!(
        findings(&broker, "poison_message").await.is_empty(),
        "9 < 10"
    );
    within(ch.basic_nack(
        got.delivery.delivery_tag,
        BasicNackOptions {
            requeue: true,
            ..Default::default()
        },
    ))
    .await
    .expect("nack");
    let found = eventually(&broker, "poison_message", true, "poison").await;
    let f = &found[0];
    assert_eq!(
        f["summary"],
        "message 'order-17' (routing key 'diag.poison') in queue 'diag.poison' was delivered \
         10 times and sent back each time"
    );
    assert_eq!(f["details"]["deliveries"], 10);
    assert_eq!(
        f["objects"],
        json!([{"type": "queue", "vhost": "/", "name": "diag.poison"}])
    );
    // Settled for good: poison no more.
    let got = common::get_eventually_with(&ch, "diag.poison", false).await;
    within(ch.basic_ack(got.delivery.delivery_tag, BasicAckOptions::default()))
        .await
        .expect("ack");
    eventually(&broker, "poison_message", false, "acked").await;
    broker.stop().await;
}
