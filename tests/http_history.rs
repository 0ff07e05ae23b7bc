//! History for charts: RabbitMQ's `?msg_rates_age=&msg_rates_incr=` (and `lengths_`,
//! `data_rates_`, `node_stats_`) on /api/overview and /api/vhosts/{name}: `samples`
//! arrays (newest first) with `avg_rate` and `avg`, which parameters count, the 400s
//! RabbitMQ 3.10.8 answers (compared with the reference), the ring's bound, and the
//! caller's vhosts only. On a manual clock: each sample is the clock moved one
//! --stats-interval; waits look at the API again after each sample.

mod common;

use common::{declare_queue, publish, TestBroker};
use hyper::StatusCode;
use serde_json::{json, Value};
use warren::testing::HISTORY_LEN;

async fn broker(interval_ms: u64) -> TestBroker {
    TestBroker::start_manual(|c| warren::Config {
        management_port: warren::ListenerPort::On(0),
        stats_interval: interval_ms,
        ..c
    })
    .await
}

/// Looks at `path` after each sample until `done` holds for its JSON; that JSON.
async fn until(broker: &TestBroker, path: &str, done: impl Fn(&Value) -> bool) -> Value {
    let http = broker.http();
    broker
        .sampled_until(path, || async {
            let r = http.get(path).await;
            assert_eq!(r.status, StatusCode::OK, "{}", r.text());
            let v = r.json();
            done(&v).then_some(v)
        })
        .await
}

fn samples(details: &Value) -> Vec<(u64, u64)> {
    details["samples"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|s| {
                    (
                        s["timestamp"].as_u64().expect("ts"),
                        s["sample"].as_u64().expect("n"),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

const BOTH: &str = "/api/overview?msg_rates_age=2&msg_rates_incr=1&lengths_age=2&lengths_incr=1";

#[tokio::test]
async fn overview_samples_are_newest_first_every_incr_with_averages() {
    let broker = broker(50).await;
    let (_conn, ch) = broker.channel().await;
    declare_queue(&ch, "hist").await;
    for _ in 0..4 {
        publish(&ch, "", "hist", b"m").await;
    }
    // Three samples one second apart, the newest showing the 4 publishes and 4 queued.
    let o = until(&broker, BOTH, |o| {
        let p = samples(&o["message_stats"]["publish_details"]);
        let q = samples(&o["queue_totals"]["messages_details"]);
        p.len() == 3 && p[0].1 == 4 && q.first().is_some_and(|s| s.1 == 4)
    })
    .await;
    let p = samples(&o["message_stats"]["publish_details"]);
    assert_eq!(p[0].0 % 1000, 0, "timestamps fall on multiples of incr");
    assert_eq!(p[0].0 - p[1].0, 1000);
    assert_eq!(p[1].0 - p[2].0, 1000);
    let details = &o["message_stats"]["publish_details"];
    for k in ["rate", "samples", "avg_rate", "avg"] {
        assert!(details.get(k).is_some(), "{k} missing: {details}");
    }
    let (newest, oldest) = (p[0].1 as f64, p[2].1 as f64);
    assert_eq!(details["avg_rate"].as_f64(), Some((newest - oldest) / 2.0));
    let mean = p.iter().map(|s| s.1 as f64).sum::<f64>() / 3.0;
    assert_eq!(details["avg"].as_f64(), Some(mean));
    // Every details object of message_stats has samples (disk_reads too, as zeros), and
    // so do the queue totals and, with both ranges asked, the churn counters.
    for (k, v) in o["message_stats"].as_object().expect("message_stats") {
        if k.ends_with("_details") {
            assert_eq!(samples(v).len(), 3, "{k}");
        }
    }
    assert_eq!(samples(&o["message_stats"]["disk_reads_details"])[0].1, 0);
    for k in ["messages", "messages_ready", "messages_unacknowledged"] {
        assert_eq!(
            samples(&o["queue_totals"][format!("{k}_details")]).len(),
            3,
            "{k}"
        );
    }
    assert_eq!(
        samples(&o["queue_totals"]["messages_ready_details"])[0].1,
        4
    );
    let created = samples(&o["churn_rates"]["connection_created_details"]);
    assert_eq!(created.len(), 3);
    assert!(created[0].1 >= 1);
}

#[tokio::test]
async fn each_range_charts_its_own_section() {
    let broker = broker(50).await;
    let http = broker.http();
    // Message rates only: message_stats has samples, the totals and churn do not.
    let o = http
        .get("/api/overview?msg_rates_age=60&msg_rates_incr=5")
        .await
        .json();
    assert!(o["message_stats"]["publish_details"]["samples"].is_array());
    assert!(o["queue_totals"]["messages_details"]
        .get("samples")
        .is_none());
    assert!(o["churn_rates"]["channel_created_details"]
        .get("samples")
        .is_none());
    // Lengths only: the totals, not the rates; churn needs both (as RabbitMQ answers).
    let o = http
        .get("/api/overview?lengths_age=60&lengths_incr=5")
        .await
        .json();
    assert!(o["queue_totals"]["messages_details"]["samples"].is_array());
    assert!(o["message_stats"]["publish_details"]
        .get("samples")
        .is_none());
    assert!(o["churn_rates"]["channel_created_details"]
        .get("samples")
        .is_none());
    // One sample: no averages.
    let o = until(
        &broker,
        "/api/overview?msg_rates_age=60&msg_rates_incr=120",
        |o| samples(&o["message_stats"]["publish_details"]).len() == 1,
    )
    .await;
    assert_eq!(
        o["message_stats"]["publish_details"]
            .as_object()
            .map(|d| d.keys().cloned().collect::<Vec<_>>()),
        Some(vec!["rate".to_owned(), "samples".to_owned()])
    );
    // Not integers: as if not given (RabbitMQ ignores them too).
    for q in [
        "msg_rates_age=abc&msg_rates_incr=5",
        "msg_rates_age=60.5&msg_rates_incr=5",
        "msg_rates_age=60",
        "msg_rates_age=&msg_rates_incr=5",
    ] {
        let r = http.get(&format!("/api/overview?{q}")).await;
        assert_eq!(r.status, StatusCode::OK, "{q}");
        assert!(
            r.json()["message_stats"]["publish_details"]
                .get("samples")
                .is_none(),
            "{q}"
        );
    }
    // A sign is an integer's: "+60" is 60.
    let r = http
        .get("/api/overview?msg_rates_age=%2B60&msg_rates_incr=5")
        .await;
    assert!(r.json()["message_stats"]["publish_details"]["samples"].is_array());
}

#[tokio::test]
async fn bad_ranges_are_refused_as_rabbitmq_refuses_them() {
    let broker = broker(5000).await;
    let http = broker.http();
    for (q, reason) in [
        ("msg_rates_age=60&msg_rates_incr=0", "age 60, incr 0"),
        ("msg_rates_age=-60&msg_rates_incr=5", "age -60, incr 5"),
        ("msg_rates_age=0&msg_rates_incr=5", "age 0, incr 5"),
        ("lengths_age=60&lengths_incr=-5", "age 60, incr -5"),
        ("data_rates_age=0&data_rates_incr=5", "age 0, incr 5"),
        ("node_stats_age=0&node_stats_incr=5", "age 0, incr 5"),
        ("msg_rates_age=007&msg_rates_incr=0", "age 7, incr 0"),
        // More than 500 samples.
        ("msg_rates_age=501&msg_rates_incr=1", "age 501, incr 1"),
        ("lengths_age=1002&lengths_incr=2", "age 1002, incr 2"),
        (
            "msg_rates_age=99999999999999999999&msg_rates_incr=5",
            "age 99999999999999999999, incr 5",
        ),
    ] {
        for path in ["/api/overview", "/api/vhosts/%2F"] {
            let r = http.get(&format!("{path}?{q}")).await;
            assert_eq!(r.status, StatusCode::BAD_REQUEST, "{path}?{q}");
            assert_eq!(
                r.json(),
                json!({"error": "bad_request", "reason": format!("Invalid range parameters: {reason}")}),
                "{path}?{q}"
            );
        }
    }
    // 500 samples is the most, and allowed.
    for q in [
        "msg_rates_age=500&msg_rates_incr=1",
        "msg_rates_age=1001&msg_rates_incr=2",
    ] {
        assert_eq!(
            http.get(&format!("/api/overview?{q}")).await.status,
            StatusCode::OK,
            "{q}"
        );
    }
}

#[tokio::test]
async fn the_ring_holds_at_most_its_bound_and_answers_only_what_it_holds() {
    let broker = broker(10).await;
    let stats = &broker.server.broker().stats;
    broker.samples(HISTORY_LEN as u64 + 20).await;
    assert_eq!(stats.history().len(), HISTORY_LEN);
    // 121 entries 10 ms apart cover about 1.2 s: an answer for the last 500 s holds
    // only the seconds the ring knows, not 501 invented samples.
    let o = broker
        .http()
        .get("/api/overview?msg_rates_age=500&msg_rates_incr=1")
        .await
        .json();
    let n = samples(&o["message_stats"]["publish_details"]).len();
    assert!((1..=3).contains(&n), "{n} samples");
}

#[tokio::test]
async fn a_vhost_has_its_own_samples_and_the_overview_only_the_callers_vhosts() {
    let broker = broker(50).await;
    let http = broker.http();
    let b = broker.server.broker();
    assert_eq!(
        http.put("/api/vhosts/other", &json!({})).await.status,
        StatusCode::CREATED
    );
    b.users().add("mgmt", Some("pw")).expect("add user");
    b.users()
        .set_tags("mgmt", vec!["management".into()])
        .expect("tags");
    b.set_permissions("mgmt", "other", ".*", ".*", ".*")
        .expect("permissions");
    let (_conn, ch) = broker.channel().await;
    declare_queue(&ch, "v").await;
    for _ in 0..3 {
        publish(&ch, "", "v", b"m").await;
    }
    let path = "/api/vhosts/%2F?msg_rates_age=5&msg_rates_incr=5&lengths_age=5&lengths_incr=5&data_rates_age=5&data_rates_incr=5";
    let v = until(&broker, path, |v| {
        samples(&v["message_stats"]["publish_details"])
            .first()
            .is_some_and(|s| s.1 == 3)
    })
    .await;
    assert_eq!(samples(&v["messages_details"])[0].1, 3);
    assert!(samples(&v["recv_oct_details"])[0].1 > 0);
    assert!(!samples(&v["send_oct_details"]).is_empty());
    // The admin's overview counts "/"; mgmt sees only "other", where nothing happened.
    until(&broker, BOTH, |o| {
        samples(&o["message_stats"]["publish_details"])
            .first()
            .is_some_and(|s| s.1 == 3)
    })
    .await;
    let o = http.as_user(Some(("mgmt", "pw"))).get(BOTH).await.json();
    let p = samples(&o["message_stats"]["publish_details"]);
    assert!(!p.is_empty());
    assert!(p.iter().all(|s| s.1 == 0), "{p:?}");
    assert!(samples(&o["queue_totals"]["messages_details"])
        .iter()
        .all(|s| s.1 == 0));
}

#[tokio::test]
async fn nodes_say_the_queue_memory_budget_and_its_use() {
    let broker = TestBroker::start_manual(|c| warren::Config {
        management_port: warren::ListenerPort::On(0),
        queue_memory: 64 << 20,
        ..c
    })
    .await;
    let (_conn, ch) = broker.channel().await;
    declare_queue(&ch, "mem").await;
    publish(&ch, "", "mem", &[7u8; 10_000]).await;
    let http = broker.http();
    let n = &until(&broker, "/api/nodes", |n| {
        n[0]["queue_memory_used"]
            .as_u64()
            .is_some_and(|u| u >= 10_000)
    })
    .await[0];
    assert_eq!(n["queue_memory_limit"], json!(64u64 << 20));
    // Monitoring figures: a management user is refused, as for every node figure.
    let b = broker.server.broker();
    b.users().add("mgmt", Some("pw")).expect("add user");
    b.users()
        .set_tags("mgmt", vec!["management".into()])
        .expect("tags");
    let r = http.as_user(Some(("mgmt", "pw"))).get("/api/nodes").await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        r.json(),
        json!({"error": "not_authorised", "reason": "Not monitor user"})
    );
}
