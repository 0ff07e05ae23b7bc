//! `/api/bindings...` of the management API: lists, bind (POST with the Location
//! header), one binding by properties_key (GET, DELETE), with RabbitMQ 3.10's codes,
//! shapes and refusals (compared side by side with the reference broker).

mod common;

use common::objects::user;
use common::{publish, TestBroker};
use hyper::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn bind_answers_201_with_a_location_ending_in_the_properties_key() {
    let broker = TestBroker::start_with_management().await;
    let http = broker.http();
    http.put("/api/exchanges/%2f/x1", &json!({"type": "topic"}))
        .await;
    http.put("/api/queues/%2f/q1", &json!({})).await;
    let cases = [
        (json!({"routing_key": "", "arguments": {}}), "~"),
        (json!({"routing_key": "a.b"}), "a.b"),
        (json!({}), "~"),
        (json!({"routing_key": "a b/c~d%e+f"}), "a+b%2Fc%7Ed%25e%2Bf"),
    ];
    for (body, key) in &cases {
        let reply = http.post("/api/bindings/%2f/e/x1/q/q1", body).await;
        assert_eq!(reply.status, StatusCode::CREATED, "{body}");
        let location = reply.header("location").expect("location").to_owned();
        let encoded: String = key.replace('%', "%25").replace('+', "%2B");
        assert_eq!(location, format!("../../../../%2F/e/x1/q/q1/{encoded}"));
        // The Location, resolved, finds the binding.
        let one = http
            .get(&format!("/api/bindings/%2f/e/x1/q/q1/{encoded}"))
            .await;
        assert_eq!(one.status, StatusCode::OK, "{key}");
        assert_eq!(one.json()["properties_key"], *key);
    }
    let reply = http
        .post(
            "/api/bindings/%2f/e/x1/q/q1",
            &json!({"routing_key": "a.b", "arguments": {"k": 1}}),
        )
        .await;
    let location = reply.header("location").expect("location").to_owned();
    let props = location.rsplit('/').next().expect("key").to_owned();
    assert!(props.starts_with("a.b~") && props.len() == 10, "{props}");
    let listed = http.get("/api/bindings/%2f/e/x1/q/q1").await.json();
    assert_eq!(listed.as_array().map(Vec::len), Some(4));
    assert!(listed
        .as_array()
        .expect("list")
        .iter()
        .any(|b| b["properties_key"] == props.as_str() && b["arguments"] == json!({"k": 1})));
    // Messages follow the new bindings.
    let (_conn, ch) = broker.channel().await;
    publish(&ch, "x1", "a.b", b"m").await;
    common::get_eventually(&ch, "q1").await;
    http.delete_once(&format!("/api/bindings/%2f/e/x1/q/q1/{props}"))
        .await;
    assert_eq!(
        http.get("/api/bindings/%2f/e/x1/q/q1/zzz").await.status,
        StatusCode::NOT_FOUND
    );
    broker.stop().await;
}

#[tokio::test]
async fn lists_show_the_default_bindings_and_exchange_to_exchange_ones() {
    let broker = TestBroker::start_with_management().await;
    let http = broker.http();
    http.put("/api/exchanges/%2f/x1", &json!({"type": "fanout"}))
        .await;
    http.put("/api/queues/%2f/q1", &json!({})).await;
    let reply = http
        .post(
            "/api/bindings/%2f/e/amq.direct/e/x1",
            &json!({"routing_key": "k"}),
        )
        .await;
    assert_eq!(
        reply.header("location"),
        Some("../../../../%2F/e/amq.direct/e/x1/k")
    );
    let all = http.get("/api/bindings").await.json();
    assert_eq!(
        all,
        json!([
            {"source": "", "vhost": "/", "destination": "q1", "destination_type": "queue",
             "routing_key": "q1", "arguments": {}, "properties_key": "q1"},
            {"source": "amq.direct", "vhost": "/", "destination": "x1", "destination_type": "exchange",
             "routing_key": "k", "arguments": {}, "properties_key": "k"},
        ])
    );
    assert_eq!(http.get("/api/bindings/%2f").await.json(), all);
    assert_eq!(
        http.get("/api/queues/%2f/q1/bindings").await.json(),
        json!([all[0]])
    );
    assert_eq!(
        http.get("/api/bindings/%2f/e/amq.direct/e/x1").await.json(),
        json!([all[1]])
    );
    // Between objects that do not exist: an empty list, as RabbitMQ answers.
    assert_eq!(
        http.get("/api/bindings/%2f/e/nope/q/q1").await.json(),
        json!([])
    );
    assert_eq!(
        http.get("/api/bindings/nope").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        http.delete("/api/bindings/%2f/e/amq.direct/e/x1/k")
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        http.get("/api/bindings/%2f/e/amq.direct/e/x1").await.json(),
        json!([])
    );
    broker.stop().await;
}

#[tokio::test]
async fn bind_refusals_are_rabbitmqs() {
    let broker = TestBroker::start_with_management().await;
    let http = broker.http();
    http.put("/api/queues/%2f/q1", &json!({})).await;
    let not_found = |reason: &str| {
        (
            StatusCode::NOT_FOUND,
            json!({"error": "not_found", "reason": reason}),
        )
    };
    let reply = http
        .post(
            "/api/bindings/%2f/e/nope/q/q1",
            &json!({"routing_key": "k"}),
        )
        .await;
    assert_eq!(
        (reply.status, reply.json()),
        not_found("no exchange 'nope' in vhost '/'")
    );
    let reply = http
        .post(
            "/api/bindings/%2f/e/amq.direct/q/nope",
            &json!({"routing_key": "k"}),
        )
        .await;
    assert_eq!(
        (reply.status, reply.json()),
        not_found("no queue 'nope' in vhost '/'")
    );
    let refused = (
        StatusCode::UNAUTHORIZED,
        json!({"error": "not_authorised", "reason": "Access refused."}),
    );
    let reply = http
        .post(
            "/api/bindings/%2f/e/amq.default/q/q1",
            &json!({"routing_key": "k"}),
        )
        .await;
    assert_eq!((reply.status, reply.json()), refused.clone());
    for body in [
        &b"nope"[..],
        br#"{"routing_key":[1]}"#,
        br#"{"arguments":"x"}"#,
    ] {
        let reply = http
            .request(
                Method::POST,
                "/api/bindings/%2f/e/amq.direct/q/q1",
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
    let reply = http
        .post("/api/bindings/%2f/e/amq.direct/x/q1", &json!({}))
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    // Write on the destination and read on the source, as a channel needs them.
    user(
        &broker,
        "own",
        &["management"],
        Some(("^own", "^own", "^own")),
    );
    http.put("/api/queues/%2f/own-q", &json!({})).await;
    let own = http.as_user(Some(("own", "pw")));
    let reply = own
        .post(
            "/api/bindings/%2f/e/amq.direct/q/own-q",
            &json!({"routing_key": "k"}),
        )
        .await;
    assert_eq!((reply.status, reply.json()), refused.clone());
    let reply = own
        .post(
            "/api/bindings/%2f/e/amq.direct/q/q1",
            &json!({"routing_key": "k"}),
        )
        .await;
    assert_eq!((reply.status, reply.json()), refused.clone());
    http.post(
        "/api/bindings/%2f/e/amq.direct/q/q1",
        &json!({"routing_key": "k"}),
    )
    .await;
    let reply = own.delete("/api/bindings/%2f/e/amq.direct/q/q1/k").await;
    assert_eq!((reply.status, reply.json()), refused);
    user(&broker, "outsider", &["management"], None);
    let reply = http
        .as_user(Some(("outsider", "pw")))
        .get("/api/bindings")
        .await;
    assert_eq!(reply.json(), json!([]));
    broker.stop().await;
}

#[tokio::test]
async fn topic_permissions_apply_to_binds_and_publishes() {
    let broker = TestBroker::start_with_management().await;
    let http = broker.http();
    user(
        &broker,
        "topical",
        &["management"],
        Some((".*", ".*", ".*")),
    );
    broker
        .server
        .broker()
        .set_topic_permissions("topical", "/", "amq.topic", "^ok", "^ok")
        .expect("topic permissions");
    let topical = http.as_user(Some(("topical", "pw")));
    topical.put("/api/queues/%2f/tq", &json!({})).await;
    let reply = topical
        .post(
            "/api/bindings/%2f/e/amq.topic/q/tq",
            &json!({"routing_key": "bad"}),
        )
        .await;
    assert_eq!(
        (reply.status, reply.json()),
        (
            StatusCode::UNAUTHORIZED,
            json!({"error": "not_authorised", "reason": "Access refused."})
        )
    );
    let reply = topical
        .post(
            "/api/bindings/%2f/e/amq.topic/q/tq",
            &json!({"routing_key": "ok"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let publish = |key: &str| json!({"routing_key": key, "payload": "x", "payload_encoding": "string", "properties": {}});
    let reply = topical
        .post("/api/exchanges/%2f/amq.topic/publish", &publish("bad"))
        .await;
    assert_eq!(
        (reply.status, reply.json()),
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "bad_request", "reason": "403 ACCESS_REFUSED - access to topic 'bad' in exchange 'amq.topic' in vhost '/' refused for user 'topical'"})
        )
    );
    let reply = topical
        .post("/api/exchanges/%2f/amq.topic/publish", &publish("ok"))
        .await;
    assert_eq!(reply.json(), json!({"routed": true}));
    broker.stop().await;
}

#[tokio::test]
async fn a_properties_key_is_found_escaped_once_or_twice() {
    // rabbitmqadmin escapes the routing key once (`a.%2A`, which arrives as `a.*`);
    // a client that took the listed key (`a.%2A`) and escaped it again sends `a.%252A`.
    let broker = TestBroker::start_with_management().await;
    let http = broker.http();
    http.put("/api/queues/%2f/pk", &json!({})).await;
    for key in ["a.*", "b.*"] {
        let reply = http
            .post(
                "/api/bindings/%2f/e/amq.topic/q/pk",
                &json!({"routing_key": key}),
            )
            .await;
        assert_eq!(reply.status, StatusCode::CREATED);
    }
    let base = "/api/bindings/%2f/e/amq.topic/q/pk";
    assert_eq!(
        http.get(&format!("{base}/a.%2A")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        http.get(&format!("{base}/a.%252A")).await.status,
        StatusCode::OK
    );
    assert_eq!(
        http.delete(&format!("{base}/a.%2A")).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        http.delete(&format!("{base}/b.%252A")).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        http.get(&format!("{base}/a.%2A")).await.status,
        StatusCode::NOT_FOUND
    );
    broker.stop().await;
}
