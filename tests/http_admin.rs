//! The management API's administration endpoints: vhosts, users, permissions, topic
//! permissions, limits, parameters and the node-wide small ones, with the status
//! codes, JSON shapes and refusals RabbitMQ 3.10.8 gives (each compared with the
//! reference broker's answer).

mod common;

use common::http::Http;
use common::TestBroker;
use hyper::{Method, StatusCode};
use serde_json::{json, Value};

/// A user with `tags` and full permissions on "/".
fn user_with(broker: &TestBroker, name: &str, tags: &[&str]) -> Http {
    let b = broker.server.broker();
    b.users()
        .add_with_tags(
            name,
            Some("pw"),
            tags.iter().map(|t| t.to_string()).collect(),
        )
        .expect("add user");
    b.set_permissions(name, "/", ".*", ".*", ".*")
        .expect("perms");
    broker.http().as_user(Some((name, "pw")))
}

fn not_admin() -> Value {
    json!({"error": "not_authorised", "reason": "Not administrator user"})
}

fn not_found() -> Value {
    json!({"error": "Object Not Found", "reason": "Not Found"})
}

#[tokio::test]
async fn vhosts_are_created_listed_updated_and_deleted() {
    let broker = TestBroker::start_with_management().await;
    let http = broker.http();
    let reply = http
        .put(
            "/api/vhosts/v1",
            &json!({"description": "first", "tags": "a,b", "tracing": false}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let v = http.get("/api/vhosts/v1").await.json();
    assert_eq!(v["name"], "v1");
    assert_eq!(v["description"], "first");
    assert_eq!(v["tags"], json!(["a", "b"]));
    assert_eq!(v["default_queue_type"], "undefined");
    assert_eq!(
        v["metadata"],
        json!({"description": "first", "tags": ["a", "b"]})
    );
    assert_eq!(v["tracing"], false);
    let state = v["cluster_state"].as_object().expect("cluster_state");
    assert_eq!(state.values().collect::<Vec<_>>(), [&json!("running")]);
    // A PUT on an existing vhost replaces description and tags: 204.
    let reply = http
        .put(
            "/api/vhosts/v1",
            &json!({"description": "second", "tags": ["x"], "defaultqueuetype": "quorum"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    let v = http.get("/api/vhosts/v1").await.json();
    assert_eq!(
        (v["description"].clone(), v["tags"].clone()),
        (json!("second"), json!(["x"]))
    );
    assert_eq!(v["default_queue_type"], "quorum");
    assert_eq!(http.get("/api/vhosts").await.names(), ["/", "v1"]);
    // Paging and columns go through the shared list code.
    let page = http
        .get("/api/vhosts?page=1&page_size=1&columns=name")
        .await
        .json();
    assert_eq!(page["items"], json!([{"name": "/"}]));
    assert_eq!(page["total_count"], 2);
    assert_eq!(
        http.delete("/api/vhosts/v1").await.status,
        StatusCode::NO_CONTENT
    );
    let gone = http.get("/api/vhosts/v1").await;
    assert_eq!(
        (gone.status, gone.json()),
        (StatusCode::NOT_FOUND, not_found())
    );
    assert_eq!(
        http.delete("/api/vhosts/v1").await.status,
        StatusCode::NOT_FOUND
    );
    broker.stop().await;
}

#[tokio::test]
async fn vhost_bodies_that_are_not_json_objects_or_types_are_refused() {
    let broker = TestBroker::start_with_management().await;
    let http = broker.http();
    // Whitespace alone is not JSON either (the reference answers 400 not_json; only an
    // empty body is taken as `{}`).
    for body in [&b"notjson"[..], b"[1]", b"{\"a\":", b"  "] {
        let reply = http
            .request(Method::PUT, "/api/vhosts/bad", &[], Some(body.to_vec()))
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
        assert_eq!(
            reply.json(),
            json!({"error": "bad_request", "reason": "not_json"})
        );
    }
    let reply = http
        .put("/api/vhosts/bad", &json!({"defaultqueuetype": "foo"}))
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(reply.json()["reason"], "invalid_queue_type");
    let reply = http.put("/api/vhosts/bad", &json!({"tags": 5})).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(
        broker.server.broker().vhost("bad").is_none(),
        "nothing half-made"
    );
    broker.stop().await;
}

#[tokio::test]
async fn users_are_put_with_a_password_or_a_hash_and_deleted() {
    let broker = TestBroker::start_with_management().await;
    let http = broker.http();
    let reply = http
        .put(
            "/api/users/alice",
            &json!({"password": "secret", "tags": "management,monitoring"}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let u = http.get("/api/users/alice").await.json();
    assert_eq!(u["tags"], json!(["management", "monitoring"]));
    assert_eq!(u["hashing_algorithm"], "rabbit_password_hashing_sha256");
    assert_eq!(u["limits"], json!({}));
    let keys: Vec<&String> = u.as_object().expect("object").keys().collect();
    assert_eq!(keys.len(), 5, "{u}");
    // The new user logs in to the API with that password.
    let alice = http.as_user(Some(("alice", "secret")));
    assert_eq!(alice.get("/api/whoami").await.status, StatusCode::OK);
    // A hash exported by RabbitMQ ("guest" hashed by 3.10.8) is taken as it is.
    let hash = "fX3lwz8qM4mbIXz2UMvaidgXG36aJ43+f+OHJc2SUlsY2eoF";
    let reply = http
        .put("/api/users/alice", &json!({"password_hash": hash, "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": ["administrator"]}))
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(
        http.get("/api/users/alice").await.json()["password_hash"],
        hash
    );
    assert_eq!(
        http.as_user(Some(("alice", "guest")))
            .get("/api/whoami")
            .await
            .status,
        StatusCode::OK
    );
    // Refusals, each RabbitMQ's.
    let cases = [
        (json!({"password": "x"}), json!("tags_not_present")),
        (
            json!({"password": "x", "password_hash": "", "tags": ""}),
            json!("both_password_and_password_hash_are_provided"),
        ),
        (
            json!({"password_hash": "abc", "tags": ""}),
            json!(["not_base64", "abc"]),
        ),
        (
            json!({"password_hash": 5, "tags": ""}),
            json!(["not_base64", 5]),
        ),
    ];
    for (body, reason) in cases {
        let reply = http.put("/api/users/bob", &body).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(
            reply.json(),
            json!({"error": "bad_request", "reason": reason})
        );
    }
    let reply = http
        .put("/api/users/bob", &json!({"password_hash": hash, "hashing_algorithm": "rabbit_password_hashing_nope", "tags": ""}))
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.json()["reason"]
        .as_str()
        .expect("text")
        .contains("rabbit_password_hashing_nope"));
    for body in [
        json!({"password": 5, "tags": ""}),
        json!({"password": "x", "tags": 5}),
        json!({"password": "x", "tags": [1]}),
    ] {
        assert_eq!(
            http.put("/api/users/bob", &body).await.status,
            StatusCode::BAD_REQUEST,
            "{body}"
        );
    }
    assert_eq!(
        http.get("/api/users/bob").await.status,
        StatusCode::NOT_FOUND,
        "no refused PUT made bob"
    );
    // Without a password the user has none.
    assert_eq!(
        http.put("/api/users/bob", &json!({"tags": ""}))
            .await
            .status,
        StatusCode::CREATED
    );
    assert_eq!(http.get("/api/users/bob").await.json()["password_hash"], "");
    assert_eq!(
        http.delete("/api/users/bob").await.status,
        StatusCode::NO_CONTENT
    );
    let reply = http.delete("/api/users/bob").await;
    assert_eq!(
        (reply.status, reply.json()),
        (StatusCode::NOT_FOUND, not_found())
    );
    broker.stop().await;
}

#[tokio::test]
async fn bulk_delete_and_users_without_permissions() {
    let broker = TestBroker::start_with_management().await;
    let http = broker.http();
    for u in ["a", "b", "c"] {
        assert_eq!(
            http.put(
                &format!("/api/users/{u}"),
                &json!({"password": "p", "tags": ""})
            )
            .await
            .status,
            StatusCode::CREATED
        );
    }
    assert_eq!(
        http.put(
            "/api/permissions/%2f/a",
            &json!({"configure": ".*", "write": ".*", "read": ".*"})
        )
        .await
        .status,
        StatusCode::CREATED
    );
    assert_eq!(
        http.get("/api/users/without-permissions").await.names(),
        ["b", "c"]
    );
    let reply = http
        .post(
            "/api/users/bulk-delete",
            &json!({"users": ["b", "nosuch", "c"]}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.json(),
        json!({"error": "bad_request", "reason": ["no_such_user", "nosuch"]})
    );
    assert_eq!(
        http.get("/api/users/b").await.status,
        StatusCode::NOT_FOUND,
        "deleted before the unknown one, as RabbitMQ"
    );
    assert_eq!(
        http.post("/api/users/bulk-delete", &json!({"users": ["c"]}))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let reply = http
        .post("/api/users/bulk-delete", &json!({"user": []}))
        .await;
    assert_eq!(
        reply.json(),
        json!({"error": "bad_request", "reason": "[{key_missing,users}]"})
    );
    assert_eq!(
        http.post("/api/users/bulk-delete", &json!({"users": 5}))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        http.post("/api/users/bulk-delete", &json!({"users": [5]}))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    broker.stop().await;
}

#[tokio::test]
async fn permissions_round_trip_and_refuse_as_rabbitmq() {
    let broker = TestBroker::start_with_management().await;
    let http = broker.http();
    http.put("/api/users/u", &json!({"password": "p", "tags": ""}))
        .await;
    http.put("/api/vhosts/v", &json!({})).await;
    let perms = json!({"configure": "^c", "write": "^w", "read": "^r"});
    assert_eq!(
        http.put("/api/permissions/v/u", &perms).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        http.put("/api/permissions/v/u", &perms).await.status,
        StatusCode::NO_CONTENT
    );
    let expected =
        json!({"user": "u", "vhost": "v", "configure": "^c", "write": "^w", "read": "^r"});
    assert_eq!(http.get("/api/permissions/v/u").await.json(), expected);
    assert!(http
        .get("/api/permissions")
        .await
        .json()
        .as_array()
        .expect("list")
        .contains(&expected));
    // guest created "v" through the API: it got full permissions there, as in RabbitMQ.
    let creator =
        json!({"user": "guest", "vhost": "v", "configure": ".*", "write": ".*", "read": ".*"});
    assert_eq!(
        http.get("/api/vhosts/v/permissions").await.json(),
        json!([creator, expected])
    );
    assert_eq!(
        http.get("/api/users/u/permissions").await.json(),
        json!([expected])
    );
    let reply = http
        .put("/api/permissions/v/u", &json!({"configure": ".*"}))
        .await;
    assert_eq!(
        reply.json(),
        json!({"error": "bad_request", "reason": "[{key_missing,write},{key_missing,read}]"})
    );
    for path in ["/api/permissions/v/nosuch", "/api/permissions/nosuch/u"] {
        let reply = http.put(path, &perms).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST);
        assert_eq!(
            reply.json(),
            json!({"error": "bad_request", "reason": "vhost_or_user_not_found"})
        );
    }
    let reply = http
        .put(
            "/api/permissions/v/u",
            &json!({"configure": "(", "write": "", "read": ""}),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        http.get("/api/permissions/v/u").await.json(),
        expected,
        "a refused PUT changes nothing"
    );
    for path in [
        "/api/vhosts/nosuch/permissions",
        "/api/users/nosuch/permissions",
        "/api/users/nosuch/topic-permissions",
        "/api/permissions/v/nosuch",
    ] {
        assert_eq!(http.get(path).await.status, StatusCode::NOT_FOUND, "{path}");
    }
    http.delete_once("/api/permissions/v/u").await;
    broker.stop().await;
}

#[tokio::test]
async fn topic_permissions_round_trip() {
    let broker = TestBroker::start_with_management().await;
    let http = broker.http();
    http.put("/api/users/u", &json!({"password": "p", "tags": ""}))
        .await;
    let body = json!({"exchange": "amq.topic", "write": "^a", "read": ".*"});
    assert_eq!(
        http.put("/api/topic-permissions/%2f/u", &body).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        http.put("/api/topic-permissions/%2f/u", &body).await.status,
        StatusCode::NO_CONTENT
    );
    let expected =
        json!([{"user": "u", "vhost": "/", "exchange": "amq.topic", "write": "^a", "read": ".*"}]);
    assert_eq!(
        http.get("/api/topic-permissions/%2f/u").await.json(),
        expected
    );
    assert_eq!(http.get("/api/topic-permissions").await.json(), expected);
    assert_eq!(
        http.get("/api/vhosts/%2f/topic-permissions").await.json(),
        expected
    );
    assert_eq!(
        http.get("/api/users/u/topic-permissions").await.json(),
        expected
    );
    let reply = http
        .put(
            "/api/topic-permissions/%2f/u",
            &json!({"write": "", "read": ""}),
        )
        .await;
    assert_eq!(
        reply.json(),
        json!({"error": "bad_request", "reason": "[{key_missing,exchange}]"})
    );
    http.delete_once("/api/topic-permissions/%2f/u").await;
    assert_eq!(
        http.get("/api/topic-permissions/%2f/u").await.status,
        StatusCode::NOT_FOUND
    );
    broker.stop().await;
}

#[tokio::test]
async fn each_tag_gets_what_rabbitmq_gives_it() {
    let broker = TestBroker::start_with_management().await;
    let admin_only = [
        "/api/vhosts/%2f",
        "/api/users",
        "/api/users/guest",
        "/api/users/without-permissions",
        "/api/permissions",
        "/api/vhosts/%2f/permissions",
        "/api/users/guest/permissions",
        "/api/topic-permissions",
        "/api/definitions",
        "/api/definitions/%2f",
    ];
    let anyone = [
        "/api/vhosts",
        "/api/vhost-limits",
        "/api/vhost-limits/%2f",
        "/api/user-limits",
        "/api/cluster-name",
        "/api/extensions",
        "/api/aliveness-test/%2f",
        "/api/health/checks/alarms",
    ];
    for tag in ["management", "monitoring", "policymaker"] {
        let http = user_with(&broker, &format!("u-{tag}"), &[tag]);
        for path in admin_only {
            let reply = http.get(path).await;
            assert_eq!(
                (reply.status, reply.json()),
                (StatusCode::UNAUTHORIZED, not_admin()),
                "{tag} {path}"
            );
        }
        for path in anyone {
            assert_eq!(http.get(path).await.status, StatusCode::OK, "{tag} {path}");
        }
        let params = http.get("/api/parameters").await;
        let globals = http.get("/api/global-parameters").await;
        if tag == "policymaker" {
            assert_eq!(
                (params.status, globals.status),
                (StatusCode::OK, StatusCode::OK)
            );
        } else {
            let refused = json!({"error": "not_authorised", "reason": "User not authorised to access object"});
            assert_eq!(
                (params.status, params.json()),
                (StatusCode::UNAUTHORIZED, refused.clone()),
                "{tag}"
            );
            assert_eq!(globals.json(), refused, "{tag}");
        }
        let writes = [
            (Method::PUT, "/api/vhosts/x", json!({})),
            (Method::DELETE, "/api/vhosts/%2f", json!({})),
            (Method::PUT, "/api/users/x", json!({"tags": ""})),
            (
                Method::PUT,
                "/api/permissions/%2f/guest",
                json!({"configure": "", "write": "", "read": ""}),
            ),
            (
                Method::PUT,
                "/api/vhost-limits/%2f/max-queues",
                json!({"value": 1}),
            ),
            (
                Method::PUT,
                "/api/user-limits/guest/max-channels",
                json!({"value": 1}),
            ),
            (Method::PUT, "/api/cluster-name", json!({"name": "x"})),
            (Method::POST, "/api/definitions", json!({})),
            (
                Method::POST,
                "/api/users/bulk-delete",
                json!({"users": ["guest"]}),
            ),
        ];
        for (method, path, body) in writes {
            let reply = http
                .request(
                    method.clone(),
                    path,
                    &[],
                    Some(body.to_string().into_bytes()),
                )
                .await;
            assert_eq!(
                (reply.status, reply.json()),
                (StatusCode::UNAUTHORIZED, not_admin()),
                "{tag} {method} {path}"
            );
        }
    }
    // A management user sees only the vhosts they have permissions in.
    broker
        .server
        .broker()
        .add_vhost("hidden", Default::default())
        .expect("vhost");
    let http = broker.http().as_user(Some(("u-management", "pw")));
    assert_eq!(http.get("/api/vhosts").await.names(), ["/"]);
    let monitor = broker.http().as_user(Some(("u-monitoring", "pw")));
    assert_eq!(
        monitor
            .get("/api/vhosts")
            .await
            .json()
            .as_array()
            .expect("list")
            .len(),
        2
    );
    broker.stop().await;
}

#[tokio::test]
async fn limits_are_shown_to_management_users_as_rabbitmq_shows_them() {
    let broker = TestBroker::start_with_management().await;
    let http = broker.http();
    let m = user_with(&broker, "m", &["management"]);
    http.put("/api/users/other", &json!({"password": "p", "tags": ""}))
        .await;
    http.put(
        "/api/user-limits/other/max-connections",
        &json!({"value": 7}),
    )
    .await;
    http.put("/api/vhosts/private", &json!({})).await;
    http.put("/api/vhost-limits/private/max-queues", &json!({"value": 1}))
        .await;
    // Every user's limits, even another's.
    let expected = json!([{"user": "other", "value": {"max-connections": 7}}]);
    assert_eq!(m.get("/api/user-limits").await.json(), expected);
    assert_eq!(m.get("/api/user-limits/other").await.json(), expected);
    // Only the vhosts they may enter.
    assert_eq!(m.get("/api/vhost-limits").await.json(), json!([]));
    let reply = m.get("/api/vhost-limits/private").await;
    assert_eq!(
        (reply.status, reply.json()),
        (
            StatusCode::UNAUTHORIZED,
            json!({"error": "not_authorised", "reason": "User not authorised to access virtual host"})
        )
    );
    broker.stop().await;
}
