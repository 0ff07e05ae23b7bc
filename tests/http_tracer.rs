//! The message tracer (`/api/tracer`, warren's own endpoints): exchange and queue
//! traces with their routing results and publishers, the bounds (messages, payload
//! preview, property bytes, traces per broker, events per read, lifetime), `since`,
//! every refusal with its text, vhost isolation, and a trace whose exchange or queue is
//! deleted.

mod common;

use common::http::Http;
use common::objects::user;
use common::{publish, wait_until, TestBroker};
use futures::StreamExt;
use hyper::{Method, StatusCode};
use lapin::options::{
    BasicPublishOptions, BasicRejectOptions, ExchangeDeclareOptions, QueueBindOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel, ExchangeKind};
use serde_json::{json, Value};

/// Starts a trace; its id.
async fn start(http: &Http, vhost: &str, body: Value) -> String {
    let reply = http.post(&format!("/api/tracer/{vhost}"), &body).await;
    assert_eq!(reply.status, StatusCode::CREATED, "{}", reply.text());
    reply.json()["id"].as_str().expect("an id").to_owned()
}

/// The trace once it captured `n` messages (waiting for them).
async fn captured(http: &Http, vhost: &str, id: &str, n: u64) -> Value {
    let path = format!("/api/tracer/{vhost}/{id}");
    wait_until("the trace captures its messages", || async {
        http.get(&path).await.json()["captured"] == json!(n)
    })
    .await;
    http.get(&path).await.json()
}

/// How many traces `GET /api/tracer` lists.
async fn traces_seen(http: &Http) -> usize {
    http.get("/api/tracer")
        .await
        .json()
        .as_array()
        .map_or(0, Vec::len)
}

async fn bind(ch: &Channel, queue: &str, exchange: &str, key: &str) {
    common::declare_queue(ch, queue).await;
    ch.queue_bind(
        queue.into(),
        exchange.into(),
        key.into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("bind");
}

async fn exchange(ch: &Channel, name: &str) {
    ch.exchange_declare(
        name.into(),
        ExchangeKind::Direct,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("exchange.declare");
}

#[tokio::test]
async fn an_exchange_trace_shows_routed_and_unroutable_messages_with_their_publisher() {
    let broker = TestBroker::start_with_management().await;
    let http = broker.http();
    let (_conn, ch) = broker.channel().await;
    exchange(&ch, "orders").await;
    bind(&ch, "q2", "orders", "new").await;
    bind(&ch, "q1", "orders", "new").await;
    let id = start(&http, "%2f", json!({"exchange": "orders"})).await;
    let trace = http.get(&format!("/api/tracer/%2f/{id}")).await.json();
    for (key, value) in [
        ("id", json!(id)),
        ("vhost", json!("/")),
        ("exchange", json!("orders")),
        ("active", json!(true)),
        ("captured", json!(0)),
        ("max_messages", json!(100)),
        ("payload_bytes", json!(256)),
        ("events", json!([])),
    ] {
        assert_eq!(trace[key], value, "{key}");
    }
    assert!(trace["expires_in"]
        .as_u64()
        .is_some_and(|s| s > 590 && s <= 600));

    let mut headers = FieldTable::default();
    headers.insert(
        "tenant".into(),
        AMQPValue::LongString(LongString::from("acme")),
    );
    let props = BasicProperties::default()
        .with_content_type("application/json".into())
        .with_message_id("m-1".into())
        .with_headers(headers);
    ch.basic_publish(
        "orders".into(),
        "new".into(),
        BasicPublishOptions::default(),
        br#"{"id": 7}"#,
        props,
    )
    .await
    .expect("publish");
    publish(&ch, "orders", "nobody", b"lost").await;
    // Published elsewhere: not in this trace.
    publish(&ch, "", "q1", b"direct").await;
    publish(&ch, "orders", "new", b"third").await;

    let trace = captured(&http, "%2f", &id, 3).await;
    let events = trace["events"].as_array().expect("events");
    assert_eq!(events.len(), 3);
    let routed = &events[0];
    assert_eq!(routed["seq"], 1);
    assert_eq!(routed["exchange"], "orders");
    assert_eq!(routed["routing_key"], "new");
    assert_eq!(routed["routed_to"], json!(["q2", "q1"]));
    assert_eq!(routed["routed_count"], 2);
    assert_eq!(routed["unroutable"], false);
    assert_eq!(routed["payload"], r#"{"id": 7}"#);
    assert_eq!(routed["payload_encoding"], "string");
    assert_eq!(routed["payload_bytes"], 9);
    assert_eq!(
        routed["properties"],
        json!({"content_type": "application/json", "message_id": "m-1",
               "headers": {"tenant": "acme"}})
    );
    assert_eq!(routed["origin"], "amqp");
    assert_eq!(routed["channel"], 1);
    let connections = http.get("/api/connections").await.json();
    assert_eq!(routed["connection"], connections[0]["name"]);
    assert!(routed["timestamp"]
        .as_u64()
        .is_some_and(|t| t > 1_600_000_000_000));

    let lost = &events[1];
    assert_eq!(lost["routing_key"], "nobody");
    assert_eq!(lost["routed_to"], json!([]));
    assert_eq!(lost["unroutable"], true);
    assert_eq!(events[2]["seq"], 3);
    assert_eq!(events[2]["payload"], "third");
}

#[tokio::test]
async fn a_queue_trace_sees_every_way_into_the_queue() {
    let broker = TestBroker::start_with_management().await;
    let http = broker.http();
    let (_conn, ch) = broker.channel().await;
    bind(&ch, "watched", "amq.fanout", "").await;
    common::declare_queue(&ch, "dying").await;
    // `dying` dead-letters through the default exchange into `watched`.
    assert_eq!(
        http.put(
            "/api/queues/%2f/dying2",
            &json!({"arguments": {"x-dead-letter-exchange": "",
                                  "x-dead-letter-routing-key": "watched"}})
        )
        .await
        .status,
        StatusCode::CREATED
    );
    let id = start(&http, "%2f", json!({"queue": "watched"})).await;
    assert_eq!(
        http.get(&format!("/api/tracer/%2f/{id}")).await.json()["queue"],
        "watched"
    );
    publish(&ch, "", "watched", b"default").await;
    publish(&ch, "amq.fanout", "any", b"fanout").await;
    publish(&ch, "", "dying", b"elsewhere").await;
    let reply = http
        .post(
            "/api/exchanges/%2f/amq.default/publish",
            &json!({"routing_key": "watched", "payload": "api", "payload_encoding": "string",
                    "properties": {}}),
        )
        .await;
    assert_eq!(reply.json(), json!({"routed": true}));
    publish(&ch, "", "dying2", b"dead").await;
    let got = common::get_eventually_with(&ch, "dying2", false).await;
    got.delivery
        .acker
        .reject(BasicRejectOptions { requeue: false })
        .await
        .expect("reject");

    let trace = captured(&http, "%2f", &id, 4).await;
    let events = trace["events"].as_array().expect("events");
    let seen: Vec<(&str, &str, &str)> = events
        .iter()
        .map(|e| {
            (
                e["exchange"].as_str().unwrap_or("?"),
                e["payload"].as_str().unwrap_or("?"),
                e["origin"].as_str().unwrap_or("?"),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("", "default", "amqp"),
            ("amq.fanout", "fanout", "amqp"),
            ("", "api", "management"),
            ("", "dead", "dead-letter"),
        ]
    );
    assert_eq!(events[2]["connection"], Value::Null);
    assert_eq!(events[3]["routed_to"], json!(["watched"]));
    assert!(events[3]["properties"]["headers"]["x-death"].is_array());
}

#[tokio::test]
async fn a_trace_stops_at_max_messages_and_cuts_payloads_and_large_properties() {
    let broker = TestBroker::start_with_management().await;
    let http = broker.http();
    let (_conn, ch) = broker.channel().await;
    let id = start(
        &http,
        "%2f",
        json!({"exchange": "amq.topic", "max_messages": 2, "payload_bytes": 4}),
    )
    .await;
    publish(&ch, "amq.topic", "a", "abcdefghij".as_bytes()).await;
    // A cut inside a character keeps the whole characters before it.
    publish(&ch, "amq.topic", "b", "abcé".as_bytes()).await;
    publish(&ch, "amq.topic", "c", b"third").await;
    publish(&ch, "", "nowhere", b"sync").await;
    let trace = captured(&http, "%2f", &id, 2).await;
    assert_eq!(trace["active"], false);
    assert_eq!(trace["stop_reason"], "max_messages reached");
    assert_eq!(trace["expires_in"], 0);
    let events = &trace["events"];
    assert_eq!(events[0]["payload"], "abcd");
    assert_eq!(events[0]["payload_bytes"], 10);
    assert_eq!(events[0]["payload_truncated"], true);
    assert_eq!(events[1]["payload"], "abc");
    assert_eq!(events[1]["payload_encoding"], "string");
    // Binary payloads come as base64.
    let id = start(
        &http,
        "%2f",
        json!({"exchange": "amq.direct", "payload_bytes": 0}),
    )
    .await;
    publish(&ch, "amq.direct", "k", &[0xff, 0xfe]).await;
    let mut big = FieldTable::default();
    big.insert(
        "blob".into(),
        AMQPValue::LongString(LongString::from("x".repeat(20_000))),
    );
    ch.basic_publish(
        "amq.direct".into(),
        "k".into(),
        BasicPublishOptions::default(),
        b"big headers",
        BasicProperties::default().with_headers(big),
    )
    .await
    .expect("publish");
    let trace = captured(&http, "%2f", &id, 2).await;
    assert_eq!(trace["events"][0]["payload"], "");
    assert_eq!(trace["events"][0]["payload_bytes"], 2);
    assert_eq!(trace["events"][0]["properties_truncated"], false);
    assert_eq!(trace["events"][1]["properties"], json!({}));
    assert_eq!(trace["events"][1]["properties_truncated"], true);
    let id = start(
        &http,
        "%2f",
        json!({"exchange": "amq.match", "payload_bytes": 3}),
    )
    .await;
    publish(&ch, "amq.match", "k", &[0xff, 0xfe, 0xfd, 0xfc]).await;
    let trace = captured(&http, "%2f", &id, 1).await;
    assert_eq!(trace["events"][0]["payload"], "//79");
    assert_eq!(trace["events"][0]["payload_encoding"], "base64");
}

#[tokio::test]
async fn since_returns_only_newer_events_and_a_read_is_bounded() {
    let broker = TestBroker::start_with_management().await;
    let http = broker.http();
    let (_conn, ch) = broker.channel().await;
    let id = start(
        &http,
        "%2f",
        json!({"exchange": "amq.direct", "max_messages": 1001}),
    )
    .await;
    for i in 0..1001 {
        publish(&ch, "amq.direct", &format!("k{i}"), b"m").await;
    }
    let first = captured(&http, "%2f", &id, 1001).await;
    assert_eq!(first["events"].as_array().map(Vec::len), Some(1000));
    assert_eq!(first["more"], true);
    let rest = http
        .get(&format!("/api/tracer/%2f/{id}?since=1000"))
        .await
        .json();
    assert_eq!(rest["more"], false);
    assert_eq!(rest["events"].as_array().map(Vec::len), Some(1));
    assert_eq!(rest["events"][0]["seq"], 1001);
    assert_eq!(rest["events"][0]["routing_key"], "k1000");
    let some = http
        .get(&format!("/api/tracer/%2f/{id}?since=998"))
        .await
        .json();
    let seqs: Vec<u64> = some["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|e| e["seq"].as_u64())
        .collect();
    assert_eq!(seqs, [999, 1000, 1001]);
    let none = http
        .get(&format!("/api/tracer/%2f/{id}?since=5000"))
        .await
        .json();
    assert_eq!(none["events"], json!([]));
    assert_eq!(none["captured"], 1001);
}

#[tokio::test]
async fn a_broker_keeps_at_most_twenty_traces() {
    let broker = TestBroker::start_with_management().await;
    let http = broker.http();
    let mut ids = Vec::new();
    for _ in 0..20 {
        ids.push(start(&http, "%2f", json!({"exchange": "amq.direct"})).await);
    }
    let refused = http
        .post("/api/tracer/%2f", &json!({"exchange": "amq.direct"}))
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        refused.json(),
        json!({"error": "bad_request",
               "reason": "too many traces: a broker keeps at most 20; delete one first"})
    );
    assert_eq!(traces_seen(&http).await, 20);
    http.delete_once(&format!("/api/tracer/%2f/{}", ids[0]))
        .await;
    assert_eq!(
        http.get(&format!("/api/tracer/%2f/{}", ids[0]))
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    start(&http, "%2f", json!({"exchange": "amq.direct"})).await;
}

#[tokio::test]
async fn bad_requests_are_refused_with_their_reasons() {
    let broker = TestBroker::start_with_management().await;
    let http = broker.http();
    let bad = |reason: &str| json!({"error": "bad_request", "reason": reason});
    for (body, reason) in [
        (
            json!({}),
            bad("give exactly one of \"exchange\" or \"queue\""),
        ),
        (
            json!({"exchange": "amq.direct", "queue": "q"}),
            bad("give exactly one of \"exchange\" or \"queue\""),
        ),
        (json!({"exchange": 5}), bad("exchange must be a string")),
        (json!({"queue": ["q"]}), bad("queue must be a string")),
        (
            json!({"exchange": "amq.direct", "max_messages": 0}),
            bad("max_messages must be an integer from 1 to 10000"),
        ),
        (
            json!({"exchange": "amq.direct", "max_messages": 10001}),
            bad("max_messages must be an integer from 1 to 10000"),
        ),
        (
            json!({"exchange": "amq.direct", "max_messages": "5"}),
            bad("max_messages must be an integer from 1 to 10000"),
        ),
        (
            json!({"exchange": "amq.direct", "payload_bytes": 65537}),
            bad("payload_bytes must be an integer from 0 to 65536"),
        ),
        (
            json!({"exchange": "amq.direct", "seconds": 0}),
            bad("seconds must be an integer from 1 to 3600"),
        ),
        (
            json!({"exchange": "amq.direct", "seconds": 3601}),
            bad("seconds must be an integer from 1 to 3600"),
        ),
        (
            json!({"exchange": "nope"}),
            json!({"error": "not_found", "reason": "no exchange 'nope' in vhost '/'"}),
        ),
        (
            json!({"queue": "nope"}),
            json!({"error": "not_found", "reason": "no queue 'nope' in vhost '/'"}),
        ),
    ] {
        let reply = http.post("/api/tracer/%2f", &body).await;
        let status = if reason["error"] == "not_found" {
            StatusCode::NOT_FOUND
        } else {
            StatusCode::BAD_REQUEST
        };
        assert_eq!((reply.status, reply.json()), (status, reason), "{body}");
    }
    // The largest bounds are accepted.
    start(
        &http,
        "%2f",
        json!({"exchange": "", "max_messages": 10000, "payload_bytes": 65536, "seconds": 3600}),
    )
    .await;
    let not_json = http
        .request(Method::POST, "/api/tracer/%2f", &[], Some(b"{".to_vec()))
        .await;
    assert_eq!(not_json.status, StatusCode::BAD_REQUEST);
    let missing_vhost = http
        .post("/api/tracer/nope", &json!({"exchange": "amq.direct"}))
        .await;
    assert_eq!(
        (missing_vhost.status, missing_vhost.json()),
        (
            StatusCode::NOT_FOUND,
            json!({"error": "not_found", "reason": "vhost_not_found"})
        )
    );
    let unknown = http.get("/api/tracer/%2f/trace-nope").await;
    assert_eq!(
        (unknown.status, unknown.json()),
        (
            StatusCode::NOT_FOUND,
            json!({"error": "Object Not Found", "reason": "Not Found"})
        )
    );
    assert_eq!(
        http.delete("/api/tracer/%2f/trace-nope").await.status,
        StatusCode::NOT_FOUND
    );
    let id = start(&http, "%2f", json!({"exchange": "amq.direct"})).await;
    let since = http.get(&format!("/api/tracer/%2f/{id}?since=-1")).await;
    assert_eq!(
        (since.status, since.json()),
        (
            StatusCode::BAD_REQUEST,
            bad("since must be a non-negative integer")
        )
    );
    assert_eq!(
        http.as_user(None).get("/api/tracer").await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn access_follows_the_vhost_and_read_permissions() {
    let broker = TestBroker::start_with_management().await;
    let http = broker.http();
    // May read only queues named "mine*"; has no access to vhost "other".
    user(&broker, "dev", &["management"], Some((".*", ".*", "^mine")));
    let b = broker.server.broker();
    b.add_vhost("other", Default::default()).expect("vhost");
    b.set_permissions("guest", "other", ".*", ".*", ".*")
        .expect("permissions");
    let dev = http.as_user(Some(("dev", "pw")));
    assert_eq!(
        http.put("/api/queues/%2f/mine", &json!({})).await.status,
        StatusCode::CREATED
    );
    let refused = dev
        .post("/api/tracer/%2f", &json!({"exchange": "amq.direct"}))
        .await;
    assert_eq!(
        (refused.status, refused.json()),
        (
            StatusCode::UNAUTHORIZED,
            json!({"error": "not_authorised", "reason": "Access refused."})
        )
    );
    start(&dev, "%2f", json!({"queue": "mine"})).await;
    let theirs = start(&http, "other", json!({"exchange": "amq.fanout"})).await;
    let other = dev
        .post("/api/tracer/other", &json!({"exchange": "amq.fanout"}))
        .await;
    assert_eq!(other.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        dev.get(&format!("/api/tracer/other/{theirs}")).await.status,
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(traces_seen(&dev).await, 1);
    let listed = dev.get("/api/tracer").await.json();
    assert_eq!(listed[0]["queue"], "mine");
    assert_eq!(traces_seen(&http).await, 2);
    // A trace id is found only in its own vhost.
    assert_eq!(
        http.get(&format!("/api/tracer/%2f/{theirs}")).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_trace_on_one_vhost_does_not_see_another() {
    let broker = TestBroker::start_with_management().await;
    let http = broker.http();
    let b = broker.server.broker();
    b.add_vhost("other", Default::default()).expect("vhost");
    b.set_permissions("guest", "other", ".*", ".*", ".*")
        .expect("permissions");
    let here = start(&http, "%2f", json!({"exchange": "amq.fanout"})).await;
    let there = start(&http, "other", json!({"exchange": "amq.fanout"})).await;
    let conn = lapin::Connection::connect(
        &format!("amqp://guest:guest@{}/other", broker.addr),
        lapin::ConnectionProperties::default(),
    )
    .await
    .expect("connect to other");
    let ch = conn.create_channel().await.expect("channel");
    publish(&ch, "amq.fanout", "", b"over there").await;
    let trace = captured(&http, "other", &there, 1).await;
    assert_eq!(trace["events"][0]["payload"], "over there");
    let (_conn, ch) = broker.channel().await;
    publish(&ch, "amq.fanout", "", b"here").await;
    let trace = captured(&http, "%2f", &here, 1).await;
    assert_eq!(trace["events"][0]["payload"], "here");
    assert_eq!(
        http.get(&format!("/api/tracer/other/{there}")).await.json()["captured"],
        1
    );
}

#[tokio::test]
async fn deleting_the_traced_exchange_or_queue_ends_the_trace() {
    let broker = TestBroker::start_with_management().await;
    let http = broker.http();
    let (_conn, ch) = broker.channel().await;
    exchange(&ch, "gone").await;
    common::declare_queue(&ch, "q").await;
    let on_exchange = start(&http, "%2f", json!({"exchange": "gone"})).await;
    let on_queue = start(&http, "%2f", json!({"queue": "q"})).await;
    publish(&ch, "gone", "k", b"before").await;
    publish(&ch, "", "q", b"before").await;
    captured(&http, "%2f", &on_exchange, 1).await;
    captured(&http, "%2f", &on_queue, 1).await;
    http.delete_once("/api/exchanges/%2f/gone").await;
    http.delete_once("/api/queues/%2f/q").await;
    // Declared again: another exchange and another queue, not the traced ones.
    exchange(&ch, "gone").await;
    common::declare_queue(&ch, "q").await;
    publish(&ch, "gone", "k", b"after").await;
    publish(&ch, "", "q", b"after").await;
    common::counts(&ch, "q").await;
    for id in [&on_exchange, &on_queue] {
        let trace = http.get(&format!("/api/tracer/%2f/{id}")).await.json();
        assert_eq!(trace["active"], false, "{trace}");
        assert_eq!(trace["stop_reason"], "object deleted");
        assert_eq!(trace["captured"], 1);
        assert_eq!(trace["events"][0]["payload"], "before");
    }
    http.delete_once(&format!("/api/tracer/%2f/{on_queue}"))
        .await;
}

#[tokio::test]
async fn a_trace_ends_when_its_lifetime_runs_out() {
    let broker = TestBroker::start_with_management().await;
    let http = broker.http();
    let id = start(
        &http,
        "%2f",
        json!({"exchange": "amq.direct", "seconds": 1}),
    )
    .await;
    let path = format!("/api/tracer/%2f/{id}");
    wait_until("the trace's lifetime ends", || async {
        http.get(&path).await.json()["active"] == false
    })
    .await;
    let trace = http.get(&path).await.json();
    assert_eq!(trace["stop_reason"], "lifetime ended");
    assert_eq!(trace["expires_in"], 0);
    let (_conn, ch) = broker.channel().await;
    publish(&ch, "amq.direct", "k", b"late").await;
    // A round trip on the same channel: the publish was handled before it.
    common::declare_queue(&ch, "sync").await;
    assert_eq!(http.get(&path).await.json()["captured"], 0);
}

#[tokio::test]
async fn a_queue_trace_shows_deliveries_to_consumers_and_gets() {
    let broker = TestBroker::start_with_management().await;
    let http = broker.http();
    let (_conn, ch) = broker.channel().await;
    common::declare_queue(&ch, "work").await;
    let id = start(&http, "%2f", json!({"queue": "work"})).await;
    publish(&ch, "", "work", b"one").await;
    common::get_eventually(&ch, "work").await;
    let mut consumer = ch
        .basic_consume(
            "work".into(),
            "c1".into(),
            lapin::options::BasicConsumeOptions {
                no_ack: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await
        .expect("consume");
    publish(&ch, "", "work", b"two").await;
    common::within(consumer.next())
        .await
        .expect("a delivery")
        .expect("delivery");
    let trace = captured(&http, "%2f", &id, 4).await;
    let seen: Vec<(Value, Value, Value)> = trace["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| {
            (
                e["event"].clone(),
                e["payload"].clone(),
                e.get("consumer_tag").cloned().unwrap_or(json!("-")),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (json!("publish"), json!("one"), json!("-")),
            (json!("deliver"), json!("one"), Value::Null),
            (json!("publish"), json!("two"), json!("-")),
            (json!("deliver"), json!("two"), json!("c1")),
        ]
    );
    let deliver = &trace["events"][3];
    assert_eq!(deliver["redelivered"], false);
    assert_eq!(deliver["unroutable"], false);
    assert_eq!(deliver["channel"], 1);
}
