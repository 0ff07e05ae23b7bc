//! `/api/policies` and `/api/operator-policies`: shapes, status codes, refusals per tag
//! and invalid definitions, each as the reference RabbitMQ 3.10.8 answers them.

mod common;

use common::TestBroker;
use hyper::StatusCode;
use serde_json::{json, Value};

fn policy(pattern: &str, definition: Value) -> Value {
    json!({"pattern": pattern, "definition": definition})
}

#[tokio::test]
async fn a_policy_is_created_read_listed_updated_and_deleted() {
    let broker = TestBroker::start_with_management().await;
    let http = broker.http();
    let body = json!({"pattern": "^x", "definition": {"max-length": 1}, "priority": -3,
                      "apply-to": "queues"});
    assert_eq!(
        http.put("/api/policies/%2f/p1", &body).await.status,
        StatusCode::CREATED
    );
    let expected = json!({"vhost": "/", "name": "p1", "pattern": "^x", "apply-to": "queues",
                          "definition": {"max-length": 1}, "priority": -3});
    let reply = http.get("/api/policies/%2f/p1").await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(reply.json(), expected);
    assert_eq!(http.get("/api/policies").await.json(), json!([expected]));
    assert_eq!(
        http.get("/api/policies/%2f").await.json(),
        json!([expected])
    );
    // Defaults: apply-to all, priority 0; a second PUT replaces it (204).
    let reply = http
        .put("/api/policies/%2f/p1", &policy("^y", json!({"expires": 5})))
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
    assert_eq!(
        http.get("/api/policies/%2f/p1").await.json(),
        json!({"vhost": "/", "name": "p1", "pattern": "^y", "apply-to": "all",
               "definition": {"expires": 5}, "priority": 0})
    );
    assert_eq!(
        http.delete("/api/policies/%2f/p1").await.status,
        StatusCode::NO_CONTENT
    );
    let gone = http.delete("/api/policies/%2f/p1").await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
    assert_eq!(
        gone.json(),
        json!({"error": "Object Not Found", "reason": "Not Found"})
    );
    assert_eq!(
        http.get("/api/policies/%2f/p1").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(http.get("/api/policies").await.json(), json!([]));
    // A vhost that does not exist.
    let reply = http
        .put(
            "/api/policies/nowhere/p",
            &policy("^x", json!({"max-length": 1})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    assert_eq!(
        reply.json(),
        json!({"error": "not_found", "reason": "vhost_not_found"})
    );
    assert_eq!(
        http.get("/api/policies/nowhere").await.status,
        StatusCode::NOT_FOUND
    );
    broker.stop().await;
}

#[tokio::test]
async fn operator_policies_take_limits_only_and_list_with_their_own_path() {
    let broker = TestBroker::start_with_management().await;
    let http = broker.http();
    let def = json!({"max-length": 5, "delivery-limit": 2, "expires": 1000, "message-ttl": 5,
                     "max-length-bytes": 6});
    let reply = http
        .put("/api/operator-policies/%2f/op", &policy("^x", def.clone()))
        .await;
    assert_eq!(reply.status, StatusCode::CREATED);
    let expected = json!([{"vhost": "/", "name": "op", "pattern": "^x", "apply-to": "all",
                           "definition": def, "priority": 0}]);
    assert_eq!(http.get("/api/operator-policies").await.json(), expected);
    assert_eq!(
        http.get("/api/operator-policies/%2f").await.json(),
        expected
    );
    assert_eq!(
        http.get("/api/operator-policies/%2f/op").await.json(),
        expected[0]
    );
    assert_eq!(http.get("/api/policies").await.json(), json!([]));
    // Not escaped for operator policies, as the reference answers.
    let reply = http
        .put(
            "/api/operator-policies/%2f/op",
            &policy("^x", json!({"overflow": "drop-head"})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.json(),
        json!({"error": "bad_request", "reason":
            "Validation failed\n\n[{<<\"overflow\">>,<<\"drop-head\">>}] are not recognised policy settings\n"})
    );
    http.delete_once("/api/operator-policies/%2f/op").await;
    broker.stop().await;
}

#[tokio::test]
async fn invalid_policies_are_refused_with_the_references_texts() {
    let broker = TestBroker::start_with_management().await;
    let http = broker.http();
    let failed = |lines: &str| format!("Validation failed\n\n{lines}\n");
    let cases = [
        (
            policy("^x", json!({"max-length": -1})),
            failed("-1 is not a valid maximum length"),
        ),
        (
            policy("^x", json!({"max-length": "a"})),
            failed("&lt;&lt;\"a\"&gt;&gt; is not a valid maximum length"),
        ),
        (
            policy("^x", json!({"foo": 1})),
            failed("[{&lt;&lt;\"foo\"&gt;&gt;,1}] are not recognised policy settings"),
        ),
        (
            policy("^x", json!({"max-priority": 1})),
            failed("[{&lt;&lt;\"max-priority\"&gt;&gt;,1}] are not recognised policy settings"),
        ),
        (policy("^x", json!({})), failed("no policy provided")),
        (
            policy("^x", json!({"expires": 0})),
            failed("0 is not a valid queue expiry"),
        ),
        (
            policy("^x", json!({"max-length": 1, "expires": -1})),
            failed("-1 is not a valid queue expiry"),
        ),
        (
            policy("^x", json!({"overflow": "x"})),
            failed("&lt;&lt;\"x\"&gt;&gt; is not a valid overflow value"),
        ),
        (
            policy("^x", json!({"queue-mode": "x"})),
            failed("&lt;&lt;\"x\"&gt;&gt; is not a valid queue-mode value"),
        ),
        (
            policy("^x", json!({"dead-letter-exchange": 1})),
            failed("1 is not a valid dead letter exchange name"),
        ),
        (
            policy("^x", json!({"alternate-exchange": 1})),
            failed("1 is not a valid alternate exchange name"),
        ),
        (
            policy("^x", json!({"delivery-limit": -2})),
            failed("-2 is not a valid delivery limit"),
        ),
        (
            policy("^x", json!({"message-ttl": 1.5})),
            failed("1.5 is not a valid message TTL"),
        ),
        (
            json!({"pattern": "^x", "definition": {"max-length": 1}, "apply-to": "classic_queues"}),
            failed(
                "apply-to 'classic_queues' unrecognised; should be 'queues', 'exchanges' or 'all'",
            ),
        ),
        (
            json!({"pattern": "^x", "definition": {"max-length": 1}, "priority": "a"}),
            failed("priority should be a number, actually was &lt;&lt;\"a\"&gt;&gt;"),
        ),
        (
            json!({"pattern": 5, "definition": {"max-length": 1}}),
            failed("pattern should be a binary but was 5"),
        ),
        (
            json!({"definition": {"max-length": 1}}),
            "[{key_missing,pattern}]".to_owned(),
        ),
        (
            json!({"pattern": "^x"}),
            "[{key_missing,definition}]".to_owned(),
        ),
    ];
    for (body, reason) in cases {
        let reply = http.put("/api/policies/%2f/bad", &body).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(
            reply.json(),
            json!({"error": "bad_request", "reason": reason}),
            "{body}"
        );
    }
    let reply = http
        .put(
            "/api/policies/%2f/bad",
            &policy("(", json!({"max-length": 1})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    let reason = reply.json()["reason"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(
        reason.starts_with(
            "Validation failed\n\npattern should be regular expression but is invalid"
        ),
        "{reason}"
    );
    assert_eq!(http.get("/api/policies").await.json(), json!([]));
    broker.stop().await;
}

#[tokio::test]
async fn each_tag_may_do_what_the_reference_lets_it() {
    let broker = TestBroker::start_with_management().await;
    let b = broker.server.broker();
    for (user, tag) in [
        ("m", "management"),
        ("mon", "monitoring"),
        ("pm", "policymaker"),
        ("none", ""),
    ] {
        b.users().add(user, Some("pw")).expect("add user");
        if !tag.is_empty() {
            b.users().set_tags(user, vec![tag.into()]).expect("tags");
        }
    }
    for user in ["m", "pm"] {
        b.set_permissions(user, "/", ".*", ".*", ".*")
            .expect("grant");
    }
    let http = broker.http();
    let p = policy("^zz", json!({"max-length": 3}));
    http.put("/api/policies/%2f/p", &p).await;
    http.put("/api/operator-policies/%2f/o", &p).await;
    let as_user = |u: &str| broker.http().as_user(Some((u, "pw")));
    let refused = |reason: &str| json!({"error": "not_authorised", "reason": reason});
    let object = refused("User not authorised to access object");
    let admin = refused("Not administrator user");
    let vhost = refused("User not authorised to access virtual host");

    // management: lists where it has permissions, nothing more.
    let m = as_user("m");
    assert_eq!(
        m.get("/api/policies").await.json().as_array().map(Vec::len),
        Some(1)
    );
    assert_eq!(
        m.get("/api/policies/%2f")
            .await
            .json()
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    assert_eq!(
        m.get("/api/operator-policies")
            .await
            .json()
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    assert_eq!(m.get("/api/policies/%2f/p").await.json(), object);
    assert_eq!(m.put("/api/policies/%2f/q", &p).await.json(), object);
    assert_eq!(m.delete("/api/policies/%2f/p").await.json(), object);
    assert_eq!(m.get("/api/operator-policies/%2f/o").await.json(), admin);
    assert_eq!(
        m.put("/api/operator-policies/%2f/q", &p).await.json(),
        admin
    );
    assert_eq!(m.delete("/api/operator-policies/%2f/o").await.json(), admin);

    // monitoring without permissions: empty lists, refused in the vhost.
    let mon = as_user("mon");
    assert_eq!(mon.get("/api/policies").await.json(), json!([]));
    assert_eq!(mon.get("/api/operator-policies").await.json(), json!([]));
    let reply = mon.get("/api/policies/%2f").await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert_eq!(reply.json(), vhost);
    assert_eq!(mon.get("/api/operator-policies/%2f").await.json(), vhost);
    assert_eq!(mon.get("/api/policies/%2f/p").await.json(), object);
    assert_eq!(mon.get("/api/operator-policies/%2f/o").await.json(), admin);

    // policymaker: policies yes, operator policies no.
    let pm = as_user("pm");
    assert_eq!(pm.get("/api/policies/%2f/p").await.status, StatusCode::OK);
    assert_eq!(
        pm.get("/api/policies/%2f/none").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        pm.put("/api/policies/%2f/p2", &p).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        pm.delete("/api/policies/%2f/p2").await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        pm.delete("/api/policies/%2f/p2").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        pm.put("/api/operator-policies/%2f/o", &p).await.json(),
        admin
    );
    assert_eq!(
        pm.delete("/api/operator-policies/%2f/o").await.json(),
        admin
    );

    // No management tag: nothing.
    let none = as_user("none");
    for path in [
        "/api/policies",
        "/api/policies/%2f/p",
        "/api/operator-policies",
    ] {
        let reply = none.get(path).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
        assert_eq!(reply.json(), refused("Not management user"));
    }
    broker.stop().await;
}

#[tokio::test]
async fn lists_page_and_filter_like_every_list() {
    let broker = TestBroker::start_with_management().await;
    let http = broker.http();
    for name in ["a", "b", "c"] {
        http.put(
            &format!("/api/policies/%2f/{name}"),
            &policy("^x", json!({"max-length": 1})),
        )
        .await;
    }
    let reply = http.get("/api/policies?page=1&page_size=2&name=b").await;
    assert_eq!(reply.status, StatusCode::OK);
    let page = reply.json();
    assert_eq!(page["filtered_count"], 1);
    assert_eq!(page["items"][0]["name"], "b");
    let names = http
        .get("/api/policies?columns=name&sort=name&sort_reverse=true")
        .await;
    assert_eq!(
        names.json(),
        json!([{"name": "c"}, {"name": "b"}, {"name": "a"}])
    );
    broker.stop().await;
}

#[tokio::test]
async fn queues_and_exchanges_show_the_policies_that_apply_to_them() {
    let broker = TestBroker::start_with_management().await;
    let http = broker.http();
    let put = |path: &'static str, body: Value| {
        let http = http.clone();
        async move { http.put(path, &body).await.status }
    };
    assert_eq!(
        put("/api/queues/%2f/pq", json!({})).await,
        StatusCode::CREATED
    );
    assert_eq!(
        put("/api/exchanges/%2f/px", json!({"type": "fanout"})).await,
        StatusCode::CREATED
    );
    let queue = http.get("/api/queues/%2f/pq").await.json();
    assert_eq!(
        (
            &queue["policy"],
            &queue["operator_policy"],
            &queue["effective_policy_definition"]
        ),
        (&Value::Null, &Value::Null, &json!({}))
    );
    assert!(http
        .get("/api/exchanges/%2f/px")
        .await
        .json()
        .get("policy")
        .is_none());
    let body =
        json!({"pattern": "^p", "definition": {"max-length": 7, "alternate-exchange": "ae"}});
    assert_eq!(
        put("/api/policies/%2f/lim", body).await,
        StatusCode::CREATED
    );
    let op = json!({"pattern": "^pq$", "definition": {"max-length": 3}, "apply-to": "queues"});
    assert_eq!(
        put("/api/operator-policies/%2f/cap", op).await,
        StatusCode::CREATED
    );
    let queue = http.get("/api/queues/%2f/pq").await.json();
    assert_eq!(queue["policy"], "lim");
    assert_eq!(queue["operator_policy"], "cap");
    assert_eq!(queue["effective_policy_definition"]["max-length"], 3);
    let listed = http.get("/api/queues/%2f?columns=name,policy").await.json();
    assert_eq!(listed, json!([{"name": "pq", "policy": "lim"}]));
    assert_eq!(
        http.get("/api/exchanges/%2f/px").await.json()["policy"],
        "lim"
    );
    broker.stop().await;
}
