//! `/api/exchanges...` of the management API: list, get, declare, delete, bindings by
//! source and destination, and publish, with RabbitMQ 3.10's codes, shapes and
//! refusals (compared side by side with the reference broker).

mod common;

use common::objects::user;
use common::{counts, TestBroker};
use hyper::{Method, StatusCode};
use serde_json::{json, Value};

#[tokio::test]
async fn exchanges_are_listed_declared_shown_and_deleted() {
    let broker = TestBroker::start_with_management().await;
    let http = broker.http();
    assert_eq!(
        http.get("/api/exchanges/%2f").await.names(),
        [
            "",
            "amq.direct",
            "amq.fanout",
            "amq.headers",
            "amq.match",
            "amq.rabbitmq.trace",
            "amq.topic"
        ]
    );
    assert_eq!(
        http.get("/api/exchanges/%2f/amq.direct").await.json(),
        json!({"name": "amq.direct", "vhost": "/", "type": "direct", "durable": true, "auto_delete": false,
               "internal": false, "arguments": {}, "incoming": [], "outgoing": [],
               "user_who_performed_action": "rmq-internal"})
    );
    assert_eq!(
        http.put("/api/exchanges/%2f/x1", &json!({"type": "topic"}))
            .await
            .status,
        StatusCode::CREATED
    );
    assert_eq!(
        http.put("/api/exchanges/%2f/x1", &json!({"type": "topic"}))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    // No type: direct, not durable (RabbitMQ's defaults).
    assert_eq!(
        http.put("/api/exchanges/%2f/x2", &json!({})).await.status,
        StatusCode::CREATED
    );
    let x2 = http
        .get("/api/exchanges/%2f/x2?columns=type,durable")
        .await
        .json();
    assert_eq!(x2, json!({"type": "direct", "durable": false}));
    let page = http
        .get("/api/exchanges?page=1&page_size=2&name=x&sort=name&sort_reverse=true")
        .await
        .json();
    assert_eq!(page["items"][0]["name"], "x2");
    assert_eq!(page["filtered_count"], 2);
    http.delete_once("/api/exchanges/%2f/x2").await;
    assert_eq!(
        http.get("/api/exchanges/%2f/x2").await.status,
        StatusCode::NOT_FOUND
    );
    broker.stop().await;
}

#[tokio::test]
async fn exchange_refusals_are_rabbitmqs() {
    let broker = TestBroker::start_with_management().await;
    let http = broker.http();
    http.put("/api/exchanges/%2f/x1", &json!({"type": "topic"}))
        .await;
    http.put("/api/queues/%2f/q1", &json!({})).await;
    http.post("/api/bindings/%2f/e/x1/q/q1", &json!({"routing_key": "k"}))
        .await;
    let bad = |reason: &str| json!({"error": "bad_request", "reason": reason});
    let reply = http
        .put("/api/exchanges/%2f/x1", &json!({"type": "direct"}))
        .await;
    assert_eq!(
        (reply.status, reply.json()),
        (StatusCode::BAD_REQUEST, bad("inequivalent arg 'type' for exchange 'x1' in vhost '/': received 'direct' but current is 'topic'"))
    );
    let reply = http
        .put("/api/exchanges/%2f/x3", &json!({"type": "nope"}))
        .await;
    assert_eq!(reply.json(), bad("unknown exchange type 'nope'"));
    let reply = http.delete("/api/exchanges/%2f/x1?if-unused=true").await;
    assert_eq!(reply.json(), bad("exchange 'x1' in vhost '/' in use"));
    let refused = json!({"error": "not_authorised", "reason": "Access refused."});
    for reply in [
        http.delete("/api/exchanges/%2f/amq.direct").await,
        http.put("/api/exchanges/%2f/amq.foo", &json!({})).await,
    ] {
        assert_eq!(
            (reply.status, reply.json()),
            (StatusCode::UNAUTHORIZED, refused.clone())
        );
    }
    for body in [
        &b"not json"[..],
        b"[]",
        br#"{"durable":"x"}"#,
        br#"{"type":5}"#,
        br#"{"arguments":[1]}"#,
    ] {
        let reply = http
            .request(
                Method::PUT,
                "/api/exchanges/%2f/x4",
                &[],
                Some(body.to_vec()),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{}",
            String::from_utf8_lossy(body)
        );
    }
    let long = "x".repeat(256);
    let reply = http
        .put(&format!("/api/exchanges/%2f/{long}"), &json!({}))
        .await;
    assert_eq!(
        reply.json(),
        bad("exchange should be less than 255 bytes, actually was 256\n")
    );
    user(
        &broker,
        "own",
        &["management"],
        Some(("^own", "^own", "^own")),
    );
    let own = http.as_user(Some(("own", "pw")));
    assert_eq!(
        own.put("/api/exchanges/%2f/own-x", &json!({})).await.status,
        StatusCode::CREATED
    );
    let reply = own.put("/api/exchanges/%2f/x5", &json!({})).await;
    assert_eq!(
        (reply.status, reply.json()),
        (StatusCode::UNAUTHORIZED, refused.clone())
    );
    let reply = own.delete("/api/exchanges/%2f/x1").await;
    assert_eq!(
        (reply.status, reply.json()),
        (StatusCode::UNAUTHORIZED, refused)
    );
    broker.stop().await;
}

#[tokio::test]
async fn bindings_by_source_and_by_destination() {
    let broker = TestBroker::start_with_management().await;
    let http = broker.http();
    http.put("/api/exchanges/%2f/x1", &json!({"type": "fanout"}))
        .await;
    http.put("/api/queues/%2f/q1", &json!({})).await;
    http.post("/api/bindings/%2f/e/x1/q/q1", &json!({"routing_key": "k"}))
        .await;
    http.post(
        "/api/bindings/%2f/e/amq.direct/e/x1",
        &json!({"routing_key": "k2"}),
    )
    .await;
    let source = http
        .get("/api/exchanges/%2f/x1/bindings/source")
        .await
        .json();
    assert_eq!(
        source,
        json!([{"source": "x1", "vhost": "/", "destination": "q1", "destination_type": "queue",
                "routing_key": "k", "arguments": {}, "properties_key": "k"}])
    );
    let destination = http
        .get("/api/exchanges/%2f/x1/bindings/destination")
        .await
        .json();
    assert_eq!(destination[0]["source"], "amq.direct");
    assert_eq!(destination[0]["destination_type"], "exchange");
    assert_eq!(
        http.get("/api/exchanges/%2f/nope/bindings/source")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
    broker.stop().await;
}

async fn publish(http: &common::http::Http, exchange: &str, body: Value) -> (StatusCode, Value) {
    let reply = http
        .post(&format!("/api/exchanges/%2f/{exchange}/publish"), &body)
        .await;
    (reply.status, reply.json())
}

#[tokio::test]
async fn publish_routes_like_a_channel_and_says_whether_it_routed() {
    let broker = TestBroker::start_with_management().await;
    let http = broker.http();
    http.put("/api/queues/%2f/q1", &json!({"durable": true}))
        .await;
    let msg = |key: &str, payload: &str, encoding: &str| {
        json!({"routing_key": key, "payload": payload, "payload_encoding": encoding,
               "properties": {"delivery_mode": 2, "headers": {"a": "b"}, "content_type": "text/plain"}})
    };
    assert_eq!(
        publish(&http, "amq.default", msg("q1", "hello", "string")).await,
        (StatusCode::OK, json!({"routed": true}))
    );
    assert_eq!(
        publish(&http, "amq.default", msg("q1", "AAEC/w==", "base64")).await,
        (StatusCode::OK, json!({"routed": true}))
    );
    assert_eq!(
        publish(&http, "amq.direct", msg("none", "x", "string")).await,
        (StatusCode::OK, json!({"routed": false}))
    );
    let (_conn, ch) = broker.channel().await;
    assert_eq!(counts(&ch, "q1").await.0, 2);
    let m = common::get_eventually(&ch, "q1").await;
    assert_eq!(m.delivery.data, b"hello");
    assert_eq!(m.delivery.properties.delivery_mode(), &Some(2));
    assert_eq!(
        m.delivery
            .properties
            .content_type()
            .as_ref()
            .map(|s| s.as_str()),
        Some("text/plain")
    );
    let m = common::get_eventually(&ch, "q1").await;
    assert_eq!(m.delivery.data, [0, 1, 2, 255]);
    broker.stop().await;
}

#[tokio::test]
async fn publish_refusals_are_rabbitmqs() {
    let broker = TestBroker::start_with_management().await;
    let http = broker.http();
    let ok =
        json!({"routing_key": "", "payload": "", "payload_encoding": "string", "properties": {}});
    let with = |key: &str, value: Value| {
        let mut body = ok.clone();
        body[key] = value;
        body
    };
    let without = |key: &str| {
        let mut body = ok.clone();
        body.as_object_mut().map(|m| m.remove(key));
        body
    };
    let bad = |reason: Value| {
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "bad_request", "reason": reason}),
        )
    };
    assert_eq!(
        publish(&http, "nope", ok.clone()).await,
        bad(json!("404 NOT_FOUND - no exchange 'nope' in vhost '/'"))
    );
    assert_eq!(
        publish(&http, "amq.default", without("properties")).await,
        bad(json!("[{key_missing,properties}]"))
    );
    assert_eq!(
        publish(&http, "amq.default", without("routing_key")).await,
        bad(json!("[{key_missing,routing_key}]"))
    );
    assert_eq!(
        publish(
            &http,
            "amq.default",
            with("payload_encoding", json!("bogus"))
        )
        .await,
        bad(json!(["unsupported_encoding", "bogus"]))
    );
    let b64 = with("payload_encoding", json!("base64"));
    let mut invalid = b64.clone();
    invalid["payload"] = json!("@@@");
    assert_eq!(
        publish(&http, "amq.default", invalid).await,
        bad(json!(["not_base64", "@@@"]))
    );
    assert_eq!(
        publish(&http, "amq.default", with("payload", json!(5))).await,
        bad(json!("payload_not_string"))
    );
    assert_eq!(
        publish(
            &http,
            "amq.default",
            with("properties", json!({"delivery_mode": "x"}))
        )
        .await,
        bad(json!(["not_int", "delivery_mode"]))
    );
    assert_eq!(
        publish(
            &http,
            "amq.default",
            with("properties", json!({"expiration": 5}))
        )
        .await,
        bad(json!(["not_string", "expiration"]))
    );
    assert_eq!(
        publish(
            &http,
            "amq.default",
            with("properties", json!({"headers": 5}))
        )
        .await
        .0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        publish(&http, "amq.default", with("properties", json!({"user_id": "bob"}))).await,
        bad(json!("406 PRECONDITION_FAILED - user_id property set to 'bob' but authenticated user was 'guest'"))
    );
    let reply = http
        .request(
            Method::POST,
            "/api/exchanges/%2f/amq.default/publish",
            &[],
            Some(b"{".to_vec()),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    user(
        &broker,
        "own",
        &["management"],
        Some(("^own", "^own", "^own")),
    );
    let own = http.as_user(Some(("own", "pw")));
    assert_eq!(
        publish(&own, "amq.default", ok.clone()).await,
        bad(json!("403 ACCESS_REFUSED - access to exchange 'amq.default' in vhost '/' refused for user 'own'"))
    );
    broker.stop().await;
}

#[tokio::test]
async fn a_payload_over_the_message_size_limit_is_refused() {
    let broker = TestBroker::start_with(|c| warren::Config {
        management_port: warren::ListenerPort::On(0),
        max_message_size: 1000,
        ..c
    })
    .await;
    let http = broker.http();
    let body = json!({"routing_key": "", "payload": "x".repeat(1001), "payload_encoding": "string", "properties": {}});
    let (status, reply) = publish(&http, "amq.default", body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply["reason"],
        "406 PRECONDITION_FAILED - message size 1001 is larger than configured max size 1000"
    );
    broker.stop().await;
}

#[tokio::test]
async fn a_body_over_rabbitmqs_limit_is_a_400_and_one_under_it_is_served() {
    let broker = TestBroker::start_with_management().await;
    let http = broker.http();
    for (size, status) in [
        (3_000_000, StatusCode::OK),
        (25_000_000, StatusCode::BAD_REQUEST),
    ] {
        let body = json!({"routing_key": "none", "payload": "x".repeat(size), "payload_encoding": "string", "properties": {}});
        let (got, reply) = publish(&http, "amq.default", body).await;
        assert_eq!(got, status, "{size}");
        if status == StatusCode::BAD_REQUEST {
            assert_eq!(
                reply,
                json!({"error": "bad_request", "reason": "Exceeded HTTP request body size limit"})
            );
        }
    }
    broker.stop().await;
}

#[tokio::test]
async fn a_new_alternate_or_dead_letter_exchange_needs_write_on_it() {
    let broker = TestBroker::start_with_management().await;
    let http = broker.http();
    user(
        &broker,
        "own",
        &["management"],
        Some(("^own", "^own", "^own")),
    );
    let own = http.as_user(Some(("own", "pw")));
    let refused = (
        StatusCode::UNAUTHORIZED,
        json!({"error": "not_authorised", "reason": "Access refused."}),
    );
    let reply = own
        .put(
            "/api/queues/%2f/own-dl",
            &json!({"arguments": {"x-dead-letter-exchange": "amq.direct"}}),
        )
        .await;
    assert_eq!((reply.status, reply.json()), refused.clone());
    let reply = own
        .put(
            "/api/exchanges/%2f/own-ae",
            &json!({"arguments": {"alternate-exchange": "amq.direct"}}),
        )
        .await;
    assert_eq!((reply.status, reply.json()), refused);
    let reply = own
        .put(
            "/api/exchanges/%2f/own-ae",
            &json!({"arguments": {"alternate-exchange": "own-x"}}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    assert_eq!(
        http.get("/api/queues/%2f/own-dl").await.status,
        StatusCode::NOT_FOUND
    );
    broker.stop().await;
}
