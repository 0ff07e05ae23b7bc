//! `/api/queues...` of the management API: list, get, declare, delete, purge, bindings,
//! actions and get messages, with RabbitMQ 3.10's status codes, shapes and refusals
//! (compared side by side with the reference broker).

mod common;

use common::objects::user;
use common::{counts, publish, TestBroker};
use hyper::{Method, StatusCode};
use lapin::options::{BasicConsumeOptions, BasicPublishOptions};
use lapin::BasicProperties;
use serde_json::{json, Value};

#[tokio::test]
async fn a_declared_queue_is_listed_and_shown_with_rabbitmqs_fields() {
    let broker = TestBroker::start_with_management().await;
    let http = broker.http();
    let body = json!({"durable": true, "arguments": {"x-max-length": 5}});
    assert_eq!(
        http.put("/api/queues/%2f/q1", &body).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        http.put("/api/queues/%2f/q1", &body).await.status,
        StatusCode::NO_CONTENT
    );
    let (_conn, ch) = broker.channel().await;
    publish(&ch, "", "q1", b"hello").await;
    common::wait_until("the message is queued", || async {
        counts(&ch, "q1").await.0 == 1
    })
    .await;
    let q = http.get("/api/queues/%2f/q1").await;
    assert_eq!(q.status, StatusCode::OK);
    let q = q.json();
    for (key, value) in [
        ("name", json!("q1")),
        ("vhost", json!("/")),
        ("durable", json!(true)),
        ("auto_delete", json!(false)),
        ("exclusive", json!(false)),
        ("arguments", json!({"x-max-length": 5})),
        ("type", json!("classic")),
        ("state", json!("running")),
        ("messages", json!(1)),
        ("messages_ready", json!(1)),
        ("messages_unacknowledged", json!(0)),
        ("message_bytes", json!(5)),
        ("consumers", json!(0)),
        ("consumer_details", json!([])),
        ("exclusive_consumer_tag", Value::Null),
        ("policy", Value::Null),
        ("effective_policy_definition", json!({})),
    ] {
        assert_eq!(q[key], value, "{key}");
    }
    for key in [
        "node",
        "idle_since",
        "memory",
        "consumer_utilisation",
        "head_message_timestamp",
    ] {
        assert!(q.get(key).is_some(), "{key} missing");
    }
    let list = http.get("/api/queues").await.json();
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    assert_eq!(list[0]["name"], "q1");
    assert!(list[0].get("consumer_details").is_none());
    let page = http
        .get("/api/queues/%2f?page=1&page_size=10&columns=name,messages")
        .await
        .json();
    assert_eq!(page["items"], json!([{"name": "q1", "messages": 1}]));
    assert_eq!(
        http.get("/api/queues/%2f/nope").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        http.get("/api/queues/nope").await.status,
        StatusCode::NOT_FOUND
    );
    broker.stop().await;
}

#[tokio::test]
async fn a_declare_that_conflicts_or_is_malformed_is_a_400_with_rabbitmqs_text() {
    let broker = TestBroker::start_with_management().await;
    let http = broker.http();
    http.put("/api/queues/%2f/q1", &json!({"durable": true}))
        .await;
    let cases: Vec<(&str, Vec<u8>, Value)> = vec![
        ("q1", br#"{"durable":false}"#.to_vec(), json!("inequivalent arg 'durable' for queue 'q1' in vhost '/': received 'false' but current is 'true'")),
        ("q2", br#"{"arguments":{"x-max-length":"x"}}"#.to_vec(), json!("invalid arg 'x-max-length' for queue 'q2' in vhost '/': \"expected integer, got longstr\"")),
        ("q2", b"not json".to_vec(), json!("not_json")),
        ("q2", b"[1]".to_vec(), json!("not_json")),
        ("q2", br#"{"durable":"yes"}"#.to_vec(), json!(["not_boolean", "yes"])),
        ("q2", br#"{"auto_delete":1}"#.to_vec(), json!(["not_boolean", 1])),
    ];
    for (name, body, reason) in cases {
        let reply = http
            .request(
                Method::PUT,
                &format!("/api/queues/%2f/{name}"),
                &[],
                Some(body),
            )
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{}", reply.text());
        assert_eq!(reply.json()["error"], "bad_request");
        assert_eq!(reply.json()["reason"], reason);
    }
    let long = "a".repeat(260);
    let reply = http
        .put(&format!("/api/queues/%2f/{long}"), &json!({}))
        .await;
    assert_eq!(
        reply.json(),
        json!({"error": "bad_request", "reason": "queue should be less than 255 bytes, actually was 260\n"})
    );
    // A percent-encoding that is not UTF-8 is refused, not a panic.
    let reply = http.get("/api/queues/%2f/q%ff").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let reply = http.put("/api/queues/nope/q1", &json!({})).await;
    assert_eq!(
        (reply.status, reply.json()),
        (
            StatusCode::NOT_FOUND,
            json!({"error": "not_found", "reason": "vhost_not_found"})
        )
    );
    let reply = http.put("/api/queues/%2f/amq.q", &json!({})).await;
    assert_eq!(
        (reply.status, reply.json()),
        (
            StatusCode::UNAUTHORIZED,
            json!({"error": "not_authorised", "reason": "Access refused."})
        )
    );
    broker.stop().await;
}

#[tokio::test]
async fn delete_honours_if_empty_and_if_unused_and_purge_empties() {
    let broker = TestBroker::start_with_management().await;
    let http = broker.http();
    http.put("/api/queues/%2f/q1", &json!({})).await;
    let (_conn, ch) = broker.channel().await;
    publish(&ch, "", "q1", b"x").await;
    common::wait_until("queued", || async { counts(&ch, "q1").await.0 == 1 }).await;
    let reply = http.delete("/api/queues/%2f/q1?if-empty=true").await;
    assert_eq!(
        (reply.status, reply.json()),
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "bad_request", "reason": "queue 'q1' in vhost '/' not empty"})
        )
    );
    let _consumer = common::consume(&ch, "q1", BasicConsumeOptions::default()).await;
    let reply = http.delete("/api/queues/%2f/q1?if-unused=true").await;
    assert_eq!(reply.json()["reason"], "queue 'q1' in vhost '/' in use");
    let (conn2, ch2) = broker.channel().await;
    http.put("/api/queues/%2f/q2", &json!({})).await;
    publish(&ch2, "", "q2", b"x").await;
    common::wait_until("queued", || async { counts(&ch2, "q2").await.0 == 1 }).await;
    assert_eq!(
        http.delete("/api/queues/%2f/q2/contents").await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(counts(&ch2, "q2").await.0, 0);
    http.delete_once("/api/queues/%2f/q2").await;
    assert_eq!(
        http.delete("/api/queues/%2f/q2/contents").await.status,
        StatusCode::NOT_FOUND
    );
    assert!(!common::queue_exists(&conn2, "q2").await);
    broker.stop().await;
}

#[tokio::test]
async fn sync_actions_on_a_classic_queue_are_accepted_and_do_nothing() {
    let broker = TestBroker::start_with_management().await;
    let http = broker.http();
    http.put("/api/queues/%2f/q1", &json!({})).await;
    for action in ["sync", "cancel_sync"] {
        let reply = http
            .post("/api/queues/%2f/q1/actions", &json!({"action": action}))
            .await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT);
    }
    let reply = http
        .post("/api/queues/%2f/q1/actions", &json!({"action": "bogus"}))
        .await;
    assert_eq!(
        (reply.status, reply.json()["reason"].clone()),
        (StatusCode::BAD_REQUEST, json!(["unknown", "bogus"]))
    );
    broker.stop().await;
}

async fn get(http: &common::http::Http, body: Value) -> Value {
    let reply = http.post("/api/queues/%2f/q1/get", &body).await;
    assert_eq!(reply.status, StatusCode::OK, "{}", reply.text());
    reply.json()
}

#[tokio::test]
async fn get_messages_requeues_or_settles_as_the_ack_mode_says() {
    let broker = TestBroker::start_with_management().await;
    let http = broker.http();
    http.put("/api/queues/%2f/q1", &json!({"durable": true}))
        .await;
    let (_conn, ch) = broker.channel().await;
    let props = BasicProperties::default()
        .with_delivery_mode(2)
        .with_priority(3)
        .with_headers(common::table(&[(
            "h",
            lapin::types::AMQPValue::LongLongInt(1),
        )]));
    ch.basic_publish(
        "".into(),
        "q1".into(),
        BasicPublishOptions::default(),
        b"hello",
        props,
    )
    .await
    .expect("publish");
    publish(&ch, "", "q1", &[0, 1, 2, 255]).await;
    common::wait_until("queued", || async { counts(&ch, "q1").await.0 == 2 }).await;
    let got = get(
        &http,
        json!({"count": 5, "ackmode": "ack_requeue_true", "encoding": "auto", "truncate": 3}),
    )
    .await;
    assert_eq!(
        got,
        json!([
            {"payload_bytes": 5, "redelivered": false, "exchange": "", "routing_key": "q1", "message_count": 1,
             "properties": {"delivery_mode": 2, "priority": 3, "headers": {"h": 1}}, "payload": "hel", "payload_encoding": "string"},
            {"payload_bytes": 4, "redelivered": false, "exchange": "", "routing_key": "q1", "message_count": 0,
             "properties": {}, "payload": "\u{0}\u{1}\u{2}", "payload_encoding": "string"},
        ])
    );
    let got = get(
        &http,
        json!({"count": 2, "ackmode": "reject_requeue_true", "encoding": "base64"}),
    )
    .await;
    assert_eq!(got[0]["payload"], "aGVsbG8=");
    assert_eq!(got[0]["redelivered"], true);
    assert_eq!(got[1]["payload"], "AAEC/w==");
    assert_eq!(counts(&ch, "q1").await.0, 2);
    let got = get(
        &http,
        json!({"count": 1, "ackmode": "ack_requeue_false", "encoding": "auto"}),
    )
    .await;
    assert_eq!(got[0]["payload"], "hello");
    assert_eq!(counts(&ch, "q1").await.0, 1);
    let got = get(
        &http,
        json!({"count": 1, "ackmode": "reject_requeue_false", "encoding": "auto"}),
    )
    .await;
    assert_eq!(
        got[0]["payload"], "AAEC/w==",
        "not UTF-8: base64 even in auto"
    );
    assert_eq!(counts(&ch, "q1").await.0, 0);
    assert_eq!(
        get(
            &http,
            json!({"count": 1, "ackmode": "ack_requeue_false", "encoding": "auto"})
        )
        .await,
        json!([])
    );
    broker.stop().await;
}

#[tokio::test]
async fn get_with_requeue_loses_and_duplicates_nothing_persistent_or_consumed() {
    let broker = TestBroker::start_with_management().await;
    let http = broker.http();
    http.put("/api/queues/%2f/q1", &json!({"durable": true}))
        .await;
    let (_conn, ch) = broker.channel().await;
    for i in 0..20u8 {
        ch.basic_publish(
            "".into(),
            "q1".into(),
            BasicPublishOptions::default(),
            &[i],
            BasicProperties::default().with_delivery_mode(2),
        )
        .await
        .expect("publish");
    }
    common::wait_until("queued", || async { counts(&ch, "q1").await.0 == 20 }).await;
    let got = get(
        &http,
        json!({"count": 30, "ackmode": "ack_requeue_true", "encoding": "base64"}),
    )
    .await;
    assert_eq!(got.as_array().map(Vec::len), Some(20));
    assert_eq!(counts(&ch, "q1").await.0, 20);
    // After a restart, the messages are all there, marked as seen.
    let dir = broker.restart_later().await;
    let broker = TestBroker::start_on(dir, |c| warren::Config {
        management_port: warren::ListenerPort::On(0),
        ..c
    })
    .await;
    let http = broker.http();
    let (_conn, ch) = broker.channel().await;
    assert_eq!(counts(&ch, "q1").await.0, 20);
    // A consumer attached meanwhile gets each message once, in order.
    let mut consumer = common::consume(
        &ch,
        "q1",
        BasicConsumeOptions {
            no_ack: true,
            ..Default::default()
        },
    )
    .await;
    let _ = get(
        &http,
        json!({"count": 5, "ackmode": "ack_requeue_true", "encoding": "auto"}),
    )
    .await;
    let mut seen = Vec::new();
    use futures::StreamExt;
    while seen.len() < 20 {
        let d = common::within(consumer.next())
            .await
            .expect("delivery")
            .expect("ok");
        seen.push(d.data[0]);
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..20u8).collect::<Vec<_>>());
    common::wait_until("empty", || async { counts(&ch, "q1").await.0 == 0 }).await;
    broker.stop().await;
}

#[tokio::test]
async fn get_refusals_are_rabbitmqs() {
    let broker = TestBroker::start_with_management().await;
    let http = broker.http();
    http.put("/api/queues/%2f/q1", &json!({})).await;
    let reply = http
        .post(
            "/api/queues/%2f/nope/get",
            &json!({"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"}),
        )
        .await;
    assert_eq!(
        (reply.status, reply.json()),
        (
            StatusCode::NOT_FOUND,
            json!({"error": "not_found", "reason": "NOT_FOUND - no queue 'nope' in vhost '/'"})
        )
    );
    let reply = http
        .post(
            "/api/queues/%2f/q1/get",
            &json!({"count": 1, "ackmode": "ack_requeue_true", "encoding": "bogus"}),
        )
        .await;
    assert_eq!(
        reply.json()["reason"],
        "Unsupported encoding. Please use auto or base64."
    );
    let reply = http
        .post(
            "/api/queues/%2f/q1/get",
            &json!({"ackmode": "ack_requeue_true", "encoding": "auto"}),
        )
        .await;
    assert_eq!(reply.json()["reason"], "[{key_missing,count}]");
    for body in [
        json!({"count": "x", "ackmode": "ack_requeue_true", "encoding": "auto"}),
        json!({"count": 1, "ackmode": "bogus", "encoding": "auto"}),
    ] {
        let reply = http.post("/api/queues/%2f/q1/get", &body).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
    }
    user(&broker, "reader", &["management"], Some(("", "", "^own")));
    let reply = http
        .as_user(Some(("reader", "pw")))
        .post(
            "/api/queues/%2f/q1/get",
            &json!({"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"}),
        )
        .await;
    assert_eq!(
        (reply.status, reply.json()),
        (
            StatusCode::UNAUTHORIZED,
            json!({"error": "not_authorised", "reason": "ACCESS_REFUSED - access to queue 'q1' in vhost '/' refused for user 'reader'"})
        )
    );
    broker.stop().await;
}

#[tokio::test]
async fn the_api_acts_with_the_callers_permissions_and_tags() {
    let broker = TestBroker::start_with_management().await;
    let http = broker.http();
    http.put("/api/queues/%2f/q1", &json!({})).await;
    user(
        &broker,
        "own",
        &["management"],
        Some(("^own", "^own", "^own")),
    );
    user(&broker, "outsider", &["management"], None);
    user(&broker, "watcher", &["monitoring"], None);
    let own = http.as_user(Some(("own", "pw")));
    let refused = json!({"error": "not_authorised", "reason": "Access refused."});
    let reply = own.put("/api/queues/%2f/q3", &json!({})).await;
    assert_eq!(
        (reply.status, reply.json()),
        (StatusCode::UNAUTHORIZED, refused.clone())
    );
    assert_eq!(
        own.put("/api/queues/%2f/own1", &json!({})).await.status,
        StatusCode::CREATED
    );
    let reply = own.delete("/api/queues/%2f/q1").await;
    assert_eq!(
        (reply.status, reply.json()),
        (StatusCode::UNAUTHORIZED, refused.clone())
    );
    let reply = own.delete("/api/queues/%2f/q1/contents").await;
    assert_eq!(
        (reply.status, reply.json()),
        (StatusCode::UNAUTHORIZED, refused)
    );
    // Reading: everything in the vhosts one has permissions in.
    assert_eq!(own.get("/api/queues/%2f/q1").await.status, StatusCode::OK);
    assert_eq!(
        own.get("/api/queues").await.json().as_array().map(Vec::len),
        Some(2)
    );
    let outsider = http.as_user(Some(("outsider", "pw")));
    assert_eq!(outsider.get("/api/queues").await.json(), json!([]));
    let reply = outsider.get("/api/queues/%2f/q1").await;
    assert_eq!(
        (reply.status, reply.json()),
        (
            StatusCode::UNAUTHORIZED,
            json!({"error": "not_authorised", "reason": "User not authorised to access virtual host"})
        )
    );
    let reply = outsider.put("/api/queues/%2f/own2", &json!({})).await;
    assert_eq!(
        reply.json()["reason"],
        "User not authorised to access virtual host"
    );
    // monitoring sees every vhost, but may not act where it has no permissions.
    let watcher = http.as_user(Some(("watcher", "pw")));
    assert_eq!(
        watcher
            .get("/api/queues")
            .await
            .json()
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    assert_eq!(
        watcher.put("/api/queues/%2f/own3", &json!({})).await.status,
        StatusCode::UNAUTHORIZED
    );
    user(&broker, "plain", &[], Some((".*", ".*", ".*")));
    let reply = http.as_user(Some(("plain", "pw"))).get("/api/queues").await;
    assert_eq!(reply.json()["reason"], "Not management user");
    assert_eq!(
        http.as_user(None).get("/api/queues").await.status,
        StatusCode::UNAUTHORIZED
    );
    broker.stop().await;
}

#[tokio::test]
async fn get_reads_a_paged_queue_back_in_order() {
    let broker = TestBroker::start_with_management().await;
    let http = broker.http();
    // x-queue-mode lazy pages past a short head whatever the budget: gets wait for
    // read-backs from the page files.
    let declare = json!({"durable": true, "arguments": {"x-queue-mode": "lazy"}});
    http.put("/api/queues/%2f/q1", &declare).await;
    let (_conn, ch) = broker.channel().await;
    for i in 0..2000u32 {
        let props = BasicProperties::default().with_delivery_mode(if i % 2 == 0 { 2 } else { 1 });
        ch.basic_publish(
            "".into(),
            "q1".into(),
            BasicPublishOptions::default(),
            i.to_string().as_bytes(),
            props,
        )
        .await
        .expect("publish");
    }
    common::wait_until("queued", || async { counts(&ch, "q1").await.0 == 2000 }).await;
    let got = get(
        &http,
        json!({"count": 2000, "ackmode": "ack_requeue_false", "encoding": "auto"}),
    )
    .await;
    let numbers: Vec<u32> = got
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|m| m["payload"].as_str()?.parse().ok())
        .collect();
    assert_eq!(numbers, (0..2000).collect::<Vec<_>>());
    assert_eq!(counts(&ch, "q1").await.0, 0);
    broker.stop().await;
}

#[tokio::test]
async fn hostile_paths_and_bodies_get_a_400_with_a_json_reason() {
    let broker = TestBroker::start_with_management().await;
    let http = broker.http();
    http.put("/api/queues/%2f/q1", &json!({})).await;
    let deep = format!("{}{}", "[".repeat(200), "]".repeat(200));
    let bodies: Vec<Vec<u8>> = vec![
        b"not json".to_vec(),
        vec![0xff, 0xfe, 0x00],
        b"\"a string\"".to_vec(),
        b"{\"arguments\": ".to_vec(),
        deep.into_bytes(),
    ];
    let writes = [
        (Method::PUT, "/api/queues/%2f/q2"),
        (Method::PUT, "/api/exchanges/%2f/x2"),
        (Method::POST, "/api/bindings/%2f/e/amq.direct/q/q1"),
        (Method::POST, "/api/exchanges/%2f/amq.default/publish"),
        (Method::POST, "/api/queues/%2f/q1/get"),
        (Method::POST, "/api/queues/%2f/q1/actions"),
    ];
    for (method, path) in &writes {
        for body in &bodies {
            let reply = http
                .request(method.clone(), path, &[], Some(body.clone()))
                .await;
            assert_eq!(
                reply.status,
                StatusCode::BAD_REQUEST,
                "{method} {path} {:?}",
                String::from_utf8_lossy(body)
            );
            assert_eq!(reply.json()["error"], "bad_request");
        }
    }
    for body in [
        json!({"count": -1, "ackmode": "ack_requeue_true", "encoding": "auto"}),
        json!({"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto", "truncate": "x"}),
        json!({"count": 1, "ackmode": 5, "encoding": "auto"}),
    ] {
        let reply = http.post("/api/queues/%2f/q1/get", &body).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
    }
    for path in [
        "/api/queues/%ff",
        "/api/queues/%2f/%c3%28",
        "/api/exchanges/%2f/%ff/bindings/source",
        "/api/bindings/%2f/e/%ff/q/q1",
        "/api/bindings/%2f/e/amq.direct/q/q1/%ff",
    ] {
        let reply = http.get(path).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(reply.json()["error"], "bad_request", "{path}");
    }
    // The broker still serves.
    assert_eq!(http.get("/api/queues/%2f/q1").await.status, StatusCode::OK);
    broker.stop().await;
}

#[tokio::test]
async fn consumers_and_exclusive_queues_are_shown_and_locked_to_the_api() {
    let broker = TestBroker::start_with_management().await;
    let http = broker.http();
    let (conn, ch) = broker.channel().await;
    common::declare(&ch, "mine", common::exclusive()).await;
    ch.basic_qos(7, Default::default()).await.expect("qos");
    let _c = common::consume(
        &ch,
        "mine",
        BasicConsumeOptions {
            exclusive: true,
            ..Default::default()
        },
    )
    .await;
    let q = http.get("/api/queues/%2f/mine").await.json();
    assert_eq!(q["exclusive"], true);
    assert_eq!(q["consumers"], 1);
    let tag = q["consumer_details"][0]["consumer_tag"]
        .as_str()
        .expect("tag")
        .to_owned();
    assert_eq!(q["exclusive_consumer_tag"], tag.as_str());
    assert_eq!(q["consumer_details"][0]["ack_required"], true);
    assert_eq!(q["consumer_details"][0]["prefetch_count"], 7);
    assert_eq!(
        q["consumer_details"][0]["queue"],
        json!({"name": "mine", "vhost": "/"})
    );
    // The consumer's channel as /api/channels names it, with its connection.
    let details = &q["consumer_details"][0]["channel_details"];
    let connection = details["connection_name"]
        .as_str()
        .expect("connection name");
    assert!(connection.starts_with("127.0.0.1:"), "{details}");
    assert_eq!(
        details["name"],
        format!("{connection} ({})", details["number"])
    );
    assert_eq!(details["user"], "guest");
    let channel = http
        .get(&format!(
            "/api/channels/{}",
            common::http::segment(details["name"].as_str().unwrap_or_default())
        ))
        .await;
    assert_eq!(channel.status, StatusCode::OK, "{}", channel.text());
    assert!(
        q.get("idle_since").is_none(),
        "a queue with a consumer is not idle"
    );
    // Another connection's exclusive queue is locked to the API, as RabbitMQ answers.
    let locked = "cannot obtain exclusive access to locked queue 'mine' in vhost '/'. It could be \
                  originally declared on another connection or the exclusive property value does \
                  not match that of the original declaration.";
    let bad = |reason: String| {
        (
            StatusCode::BAD_REQUEST,
            json!({"error": "bad_request", "reason": reason}),
        )
    };
    let reply = http.delete("/api/queues/%2f/mine").await;
    assert_eq!((reply.status, reply.json()), bad(locked.to_owned()));
    let reply = http.delete("/api/queues/%2f/mine/contents").await;
    assert_eq!((reply.status, reply.json()), bad(locked.to_owned()));
    let reply = http
        .post(
            "/api/queues/%2f/mine/get",
            &json!({"count": 1, "ackmode": "ack_requeue_true", "encoding": "auto"}),
        )
        .await;
    assert_eq!(
        (reply.status, reply.json()),
        bad(format!("405 RESOURCE_LOCKED - {locked}"))
    );
    assert!(common::queue_exists(&conn, "mine").await);
    broker.stop().await;
}

#[tokio::test]
async fn get_takes_its_count_as_a_number_or_a_string_of_digits() {
    // rabbitmqadmin sends "count": "1"; RabbitMQ reads either.
    let broker = TestBroker::start_with_management().await;
    let http = broker.http();
    http.put("/api/queues/%2f/gc", &json!({})).await;
    let publish = json!({"routing_key": "gc", "payload": "m", "payload_encoding": "string", "properties": {}});
    for _ in 0..3 {
        http.post("/api/exchanges/%2f/amq.default/publish", &publish)
            .await;
    }
    let get =
        |count: Value| json!({"count": count, "ackmode": "ack_requeue_false", "encoding": "auto"});
    let reply = http.post("/api/queues/%2f/gc/get", &get(json!("2"))).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json().as_array().map(Vec::len), Some(2));
    let reply = http.post("/api/queues/%2f/gc/get", &get(json!(1))).await;
    assert_eq!(reply.json().as_array().map(Vec::len), Some(1));
    let reply = http
        .post("/api/queues/%2f/gc/get", &get(json!("two")))
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.json()["reason"], json!(["not_int", "count"]));
    broker.stop().await;
}
