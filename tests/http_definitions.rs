//! `/api/definitions`: RabbitMQ's format both ways. A file exported by RabbitMQ 3.10.8
//! (tests/fixtures/rabbitmq-3.10.8-definitions.json, cut to one vhost's objects) imports
//! into warren with everything in it usable; warren's export re-imports to the same
//! state; hostile files are refused whole with a 400 and change nothing.

mod common;

use common::TestBroker;
use hyper::{Method, StatusCode};
use lapin::options::BasicPublishOptions;
use lapin::BasicProperties;
use serde_json::{json, Value};

const FIXTURE: &str = include_str!("fixtures/rabbitmq-3.10.8-definitions.json");

fn fixture() -> Value {
    serde_json::from_str(FIXTURE).expect("fixture is JSON")
}

/// An export (or one of its lists) with its lists sorted, without the per-node id, to
/// compare two exports.
fn canonical(mut defs: Value) -> Value {
    if let Value::Array(items) = &mut defs {
        items.sort_by_key(|i| i.to_string());
        return defs;
    }
    let o = defs.as_object_mut().expect("object");
    if let Some(Value::Array(g)) = o.get_mut("global_parameters") {
        g.retain(|p| p["name"] != "internal_cluster_id");
    }
    for (_, v) in o.iter_mut() {
        if let Value::Array(items) = v {
            items.sort_by_key(|i| i.to_string());
        }
    }
    defs
}

#[tokio::test]
async fn a_file_exported_by_rabbitmq_imports_and_works() {
    let broker = TestBroker::start_with_management().await;
    let http = broker.http();
    let reply = http.post("/api/definitions", &fixture()).await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT, "{}", reply.text());
    let user = http.get("/api/users/admin-fx-user").await.json();
    assert_eq!(user["tags"], json!(["management", "policymaker"]));
    assert_eq!(user["limits"], json!({"max-connections": 7}));
    // RabbitMQ's hash of "fxpass" logs in.
    let fx = http.as_user(Some(("admin-fx-user", "fxpass")));
    assert_eq!(fx.get("/api/whoami").await.status, StatusCode::OK);
    assert_eq!(
        http.get("/api/vhost-limits/admin-fx").await.json(),
        json!([{"vhost": "admin-fx", "value": {"max-queues": 50}}])
    );
    assert_eq!(
        http.get("/api/permissions/admin-fx/admin-fx-user")
            .await
            .json(),
        json!({"user": "admin-fx-user", "vhost": "admin-fx", "configure": "^fx-.*", "write": ".*", "read": ".*"})
    );
    assert_eq!(
        http.get("/api/topic-permissions/admin-fx/admin-fx-user")
            .await
            .json()[0]["write"],
        "^fx\\."
    );
    assert_eq!(
        http.get("/api/cluster-name").await.json(),
        json!({"name": "warren-ref-5682@vm"})
    );
    // The topology routes: fx-topic -> fx-orders by key; fx-topic -> fx-headers ->
    // fx-plain by header.
    let url = format!("amqp://guest:guest@{}/admin-fx", broker.addr);
    let conn = lapin::Connection::connect(&url, lapin::ConnectionProperties::default())
        .await
        .expect("connect to the imported vhost");
    let ch = conn.create_channel().await.expect("channel");
    common::publish(&ch, "fx-topic", "fx.orders.1", b"order").await;
    let headers = lapin::types::FieldTable::from(std::collections::BTreeMap::from([(
        lapin::types::ShortString::from("kind"),
        lapin::types::AMQPValue::LongString("a".into()),
    )]));
    ch.basic_publish(
        "fx-topic".into(),
        "fx.h".into(),
        BasicPublishOptions::default(),
        b"h",
        BasicProperties::default().with_headers(headers),
    )
    .await
    .expect("publish")
    .await
    .expect("published");
    assert_eq!(
        common::get_eventually(&ch, "fx-orders").await.data,
        b"order"
    );
    assert_eq!(common::get_eventually(&ch, "fx-plain").await.data, b"h");
    // The queue's arguments came along (x-max-length 100 is enforced as declared).
    let (_, q) = conn
        .create_channel()
        .await
        .expect("channel")
        .queue_declare(
            "fx-orders".into(),
            lapin::options::QueueDeclareOptions {
                passive: true,
                ..Default::default()
            },
            Default::default(),
        )
        .await
        .map(|q| ((), q))
        .expect("passive declare");
    assert_eq!(q.message_count(), 0);
    // Importing the same file again keeps the queues as they are, messages included.
    common::publish(&ch, "fx-topic", "fx.orders.2", b"kept").await;
    common::wait_until("the message is queued", || async {
        common::ready(&ch, "fx-orders").await == 1
    })
    .await;
    assert_eq!(
        http.post("/api/definitions", &fixture()).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(common::get_eventually(&ch, "fx-orders").await.data, b"kept");
    common::publish(&ch, "fx-topic", "fx.orders.3", b"still routed").await;
    assert_eq!(
        common::get_eventually(&ch, "fx-orders").await.data,
        b"still routed"
    );
    broker.stop().await;
}

#[tokio::test]
async fn export_wipe_import_export_again_is_the_same() {
    let first = TestBroker::start_with_management().await;
    let http = first.http();
    assert_eq!(
        http.post("/api/definitions", &fixture()).await.status,
        StatusCode::NO_CONTENT
    );
    let exported = http.get("/api/definitions").await.json();
    // The shape of RabbitMQ's export: the same keys at the top.
    let mut keys: Vec<&String> = exported.as_object().expect("object").keys().collect();
    let reference = fixture();
    let mut expected: Vec<&String> = reference.as_object().expect("object").keys().collect();
    keys.sort();
    expected.sort();
    assert_eq!(keys, expected);
    assert_eq!(exported["rabbit_version"], "3.10.8");
    first.stop().await;

    let second = TestBroker::start_with_management().await;
    let http = second.http();
    assert_eq!(
        http.post("/api/definitions", &exported).await.status,
        StatusCode::NO_CONTENT
    );
    let again = http.get("/api/definitions").await.json();
    assert_eq!(canonical(again), canonical(exported.clone()));
    // And it survives a restart (the data directory's definitions file holds it).
    let dir = second.restart_later().await;
    let third = TestBroker::start_on(dir, |c| warren::Config {
        management_port: warren::ListenerPort::On(0),
        ..c
    })
    .await;
    let after = third.http().get("/api/definitions").await.json();
    for key in [
        "users",
        "vhosts",
        "permissions",
        "topic_permissions",
        "queues",
        "exchanges",
        "bindings",
        "parameters",
    ] {
        assert_eq!(
            canonical(after.clone())[key],
            canonical(exported.clone())[key],
            "{key}"
        );
    }
    third.stop().await;
}

#[tokio::test]
async fn one_vhost_is_exported_and_imported_without_its_name() {
    let broker = TestBroker::start_with_management().await;
    let http = broker.http();
    http.post("/api/definitions", &fixture()).await;
    let reply = http.get("/api/definitions/admin-fx?download=fx.json").await;
    assert_eq!(
        reply.header("content-disposition"),
        Some("attachment; filename=fx.json")
    );
    let one = reply.json();
    let mut keys: Vec<&String> = one.as_object().expect("object").keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "bindings",
            "exchanges",
            "parameters",
            "policies",
            "queues",
            "rabbit_version"
        ]
    );
    assert_eq!(one["queues"].as_array().expect("queues").len(), 2);
    assert!(one["queues"][0].get("vhost").is_none());
    assert_eq!(one["parameters"][0]["vhost"], "admin-fx");
    // Into another vhost: everything lands there.
    http.put("/api/vhosts/copy", &json!({})).await;
    assert_eq!(
        http.post("/api/definitions/copy", &one).await.status,
        StatusCode::NO_CONTENT
    );
    let copy = http.get("/api/definitions/copy").await.json();
    assert_eq!(
        canonical(copy["queues"].clone()),
        canonical(one["queues"].clone())
    );
    assert_eq!(copy["bindings"].as_array().expect("bindings").len(), 3);
    assert_eq!(copy["parameters"][0]["vhost"], "copy");
    let reply = http.post("/api/definitions/nosuch", &json!({})).await;
    assert_eq!(
        (reply.status, reply.json()),
        (
            StatusCode::NOT_FOUND,
            json!({"error": "not_found", "reason": "vhost_not_found"})
        )
    );
    assert_eq!(
        http.get("/api/definitions/nosuch").await.status,
        StatusCode::NOT_FOUND
    );
    broker.stop().await;
}

#[tokio::test]
async fn the_form_upload_of_the_ui_and_rabbitmqadmin_is_taken() {
    let broker = TestBroker::start_with_management().await;
    let http = broker.http();
    let form = |with_redirect: bool, vhost: &str| {
        let file = json!({"vhosts": [{"name": vhost}]}).to_string();
        let mut body = format!("--B0und\r\nContent-Disposition: form-data; name=\"file\"; filename=\"d.json\"\r\nContent-Type: application/json\r\n\r\n{file}\r\n");
        if with_redirect {
            body.push_str(
                "--B0und\r\nContent-Disposition: form-data; name=\"redirect\"\r\n\r\n../../\r\n",
            );
        }
        body.push_str("--B0und--\r\n");
        body.into_bytes()
    };
    let ct = [("content-type", "multipart/form-data; boundary=B0und")];
    let reply = http
        .request(
            Method::POST,
            "/api/definitions",
            &ct,
            Some(form(false, "f1")),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    let reply = http
        .request(
            Method::POST,
            "/api/definitions",
            &ct,
            Some(form(true, "f2")),
        )
        .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(reply.header("location"), Some("../../"));
    for v in ["f1", "f2"] {
        assert_eq!(
            http.get(&format!("/api/vhosts/{v}")).await.status,
            StatusCode::OK
        );
    }
    let reply = http
        .request(
            Method::POST,
            "/api/definitions",
            &ct,
            Some(b"--B0und\r\nbroken".to_vec()),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    broker.stop().await;
}

#[tokio::test]
async fn hostile_files_are_refused_whole() {
    let broker = TestBroker::start_with_management().await;
    let http = broker.http();
    let before = canonical(http.get("/api/definitions").await.json());
    let raw = |body: Vec<u8>| http.request(Method::POST, "/api/definitions", &[], Some(body));
    let failed = json!({"error": "bad_request", "reason": "failed_to_parse_json"});
    for body in [&b"notjson"[..], b"[1]", b"5", b"{\"users\": [}"] {
        let reply = raw(body.to_vec()).await;
        assert_eq!(
            (reply.status, reply.json()),
            (StatusCode::BAD_REQUEST, failed.clone())
        );
    }
    // Deep nesting: past serde_json's limit, a 400, never a stack overflow.
    let deep = format!(
        "{{\"vhosts\": {}{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    assert_eq!(raw(deep.into_bytes()).await.status, StatusCode::BAD_REQUEST);
    // Huge: past RabbitMQ's 20 MiB body limit.
    let huge = format!("{{\"x\": \"{}\"}}", "a".repeat(21 << 20));
    assert_eq!(
        raw(huge.into_bytes()).await.status,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    // Wrong types anywhere.
    for body in [
        json!({"users": 5}),
        json!({"queues": [{"name": 1, "vhost": "/"}]}),
        json!({"vhosts": [{"name": null}]}),
    ] {
        assert_eq!(
            http.post("/api/definitions", &body).await.status,
            StatusCode::BAD_REQUEST,
            "{body}"
        );
    }
    // Each file below also creates a user and a vhost: a refusal must create neither.
    let user = json!({"name": "half", "password_hash": "", "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": []});
    let cases = [
        (
            json!({"queues": [{"name": "q", "vhost": "nope", "durable": true}]}),
            json!(["no_such_vhost", "nope"]),
        ),
        (
            json!({"permissions": [{"user": "ghost", "vhost": "/", "configure": "", "write": "", "read": ""}]}),
            json!(["no_such_user", "ghost"]),
        ),
        (
            json!({"permissions": [{"user": "half", "vhost": "/", "configure": "(", "write": "", "read": ""}]}),
            Value::Null,
        ),
        (
            json!({"exchanges": [{"name": "x", "vhost": "/", "type": "x-nope", "durable": true}]}),
            Value::Null,
        ),
        (
            json!({"parameters": [{"component": "vhost-limits", "vhost": "/", "name": "limits", "value": {"max-queues": "x"}}]}),
            Value::Null,
        ),
        (
            json!({"parameters": [{"component": "shovel", "vhost": "/", "name": "s", "value": {}}]}),
            Value::Null,
        ),
        (
            json!({"users": [{"name": "odd", "password_hash": "abcdefgh", "hashing_algorithm": "nope"}]}),
            Value::Null,
        ),
    ];
    for (mut body, reason) in cases {
        let o = body.as_object_mut().expect("object");
        o.entry("users")
            .or_insert(json!([]))
            .as_array_mut()
            .expect("users")
            .push(user.clone());
        o.insert("vhosts".into(), json!([{"name": "half-vhost"}]));
        let reply = http.post("/api/definitions", &body).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
        if !reason.is_null() {
            assert_eq!(reply.json()["reason"], reason);
        }
        assert_eq!(
            canonical(http.get("/api/definitions").await.json()),
            before,
            "{body} changed something"
        );
    }
    broker.stop().await;
}

#[tokio::test]
async fn policies_and_operator_policies_travel_with_the_definitions() {
    let broker = TestBroker::start_with_management().await;
    let http = broker.http();
    let file = json!({
        "policies": [{"vhost": "/", "name": "ttl", "pattern": "^p\\.", "apply-to": "queues",
                      "definition": {"message-ttl": 1000}, "priority": 1}],
        "parameters": [{"vhost": "/", "component": "operator_policy", "name": "cap",
                        "value": {"pattern": ".*", "apply-to": "queues",
                                  "definition": {"max-length": 10}, "priority": 0}}],
        "queues": [{"name": "p.q", "vhost": "/", "durable": true, "auto_delete": false, "arguments": {}}]
    });
    assert_eq!(
        http.post("/api/definitions", &file).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        http.get("/api/policies/%2f/ttl").await.json()["definition"],
        json!({"message-ttl": 1000})
    );
    let params = http.get("/api/parameters/operator_policy").await.json();
    assert_eq!(params[0]["name"], "cap");
    assert_eq!(params[0]["value"]["definition"], json!({"max-length": 10}));
    let exported = http.get("/api/definitions").await.json();
    assert_eq!(exported["policies"], file["policies"]);
    assert!(exported["parameters"]
        .as_array()
        .expect("parameters")
        .contains(&file["parameters"][0]));
    // An invalid policy refuses the whole file.
    let bad = json!({
        "vhosts": [{"name": "not-made"}],
        "policies": [{"vhost": "/", "name": "bad", "pattern": "x", "definition": {"message-ttl": "soon"}}]
    });
    let reply = http.post("/api/definitions", &bad).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.json()["reason"]
        .as_str()
        .expect("text")
        .starts_with("Validation failed"));
    assert_eq!(
        http.get("/api/vhosts/not-made").await.status,
        StatusCode::NOT_FOUND
    );
    let reply = http
        .post("/api/definitions", &json!({"policies": [{"vhost": "nope", "name": "p", "pattern": "x", "definition": {}}]}))
        .await;
    assert_eq!(reply.json()["reason"], json!(["no_such_vhost", "nope"]));
    broker.stop().await;
}

#[tokio::test]
async fn an_imported_policy_applies_to_queues_that_already_exist() {
    let broker = TestBroker::start_with_management().await;
    let (_conn, ch) = broker.channel().await;
    common::declare_queue(&ch, "p.existing").await;
    let file = json!({
        "policies": [{"vhost": "/", "name": "ttl", "pattern": "^p\\.", "apply-to": "queues",
                      "definition": {"message-ttl": 1000}, "priority": 0}]
    });
    let http = broker.http();
    assert_eq!(
        http.post("/api/definitions", &file).await.status,
        StatusCode::NO_CONTENT
    );
    let queue = http.get("/api/queues/%2f/p.existing").await.json();
    assert_eq!(queue["policy"], "ttl");
    broker.stop().await;
}

#[tokio::test]
async fn the_export_lists_transient_objects_but_not_exclusive_queues() {
    // As RabbitMQ's GET /api/definitions: transient and auto-delete queues and exchanges
    // are exported (the definitions file keeps durable ones only); exclusive queues not.
    let broker = TestBroker::start_with_management().await;
    let http = broker.http();
    let (_conn, ch) = broker.channel().await;
    let transient = lapin::options::QueueDeclareOptions::default();
    let exclusive = lapin::options::QueueDeclareOptions {
        exclusive: true,
        ..Default::default()
    };
    let fields = lapin::types::FieldTable::default;
    ch.queue_declare("t-q".into(), transient, fields())
        .await
        .expect("declare");
    ch.queue_declare("x-q".into(), exclusive, fields())
        .await
        .expect("declare");
    ch.exchange_declare(
        "t-x".into(),
        lapin::ExchangeKind::Fanout,
        Default::default(),
        fields(),
    )
    .await
    .expect("declare");
    ch.queue_bind(
        "t-q".into(),
        "t-x".into(),
        "".into(),
        Default::default(),
        fields(),
    )
    .await
    .expect("bind");
    let defs = http.get("/api/definitions").await.json();
    let names = |kind: &str| -> Vec<String> {
        defs[kind]
            .as_array()
            .expect("list")
            .iter()
            .map(|o| o["name"].as_str().unwrap_or_default().to_owned())
            .collect()
    };
    assert!(names("queues").contains(&"t-q".to_owned()), "{defs}");
    assert!(!names("queues").contains(&"x-q".to_owned()), "{defs}");
    assert!(names("exchanges").contains(&"t-x".to_owned()), "{defs}");
    let queue = defs["queues"]
        .as_array()
        .expect("queues")
        .iter()
        .find(|q| q["name"] == "t-q")
        .cloned();
    assert_eq!(queue.expect("t-q")["durable"], false);
    assert!(defs["bindings"]
        .as_array()
        .expect("bindings")
        .iter()
        .any(|b| b["source"] == "t-x"));
    broker.stop().await;
}
