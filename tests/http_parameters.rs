//! The management API's limits and parameters: vhost and user limits, runtime and
//! global parameters, the cluster name, with RabbitMQ 3.10.8's status codes, bodies and
//! texts (each compared with the reference broker's answer).

mod common;

use common::TestBroker;
use hyper::StatusCode;
use serde_json::json;

#[tokio::test]
async fn vhost_and_user_limits_are_set_one_at_a_time() {
    let broker = TestBroker::start_with_management().await;
    let http = broker.http();
    assert_eq!(http.get("/api/vhost-limits").await.json(), json!([]));
    assert_eq!(
        http.put(
            "/api/vhost-limits/%2f/max-connections",
            &json!({"value": 10})
        )
        .await
        .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        http.put("/api/vhost-limits/%2f/max-queues", &json!({"value": 5}))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let expected = json!([{"vhost": "/", "value": {"max-connections": 10, "max-queues": 5}}]);
    assert_eq!(http.get("/api/vhost-limits").await.json(), expected);
    assert_eq!(http.get("/api/vhost-limits/%2f").await.json(), expected);
    let p = json!([{"value": {"max-connections": 10, "max-queues": 5}, "vhost": "/", "component": "vhost-limits", "name": "limits"}]);
    assert_eq!(http.get("/api/parameters").await.json(), p);
    assert_eq!(http.get("/api/parameters/vhost-limits/%2f").await.json(), p);
    let reply = http
        .put("/api/vhost-limits/%2f/max-queues", &json!({"value": "x"}))
        .await;
    assert_eq!(
        reply.json(),
        json!({"error": "bad_request", "reason": "Validation failed\n\nmax-queues should be a number, actually was <<\"x\">>\n"})
    );
    let reply = http
        .put("/api/vhost-limits/%2f/max-foo", &json!({"value": 1}))
        .await;
    assert_eq!(
        reply.json(),
        json!({"error": "bad_request", "reason": "Validation failed\n\nUnrecognised terms [{<<\"max-foo\">>,1}] in limits\n"})
    );
    let reply = http
        .put("/api/vhost-limits/%2f/max-queues", &json!({}))
        .await;
    assert_eq!(
        reply.json(),
        json!({"error": "bad_request", "reason": "[{key_missing,value}]"})
    );
    let reply = http
        .put("/api/vhost-limits/nosuch/max-queues", &json!({"value": 1}))
        .await;
    assert_eq!(
        (reply.status, reply.json()),
        (
            StatusCode::NOT_FOUND,
            json!({"error": "not_found", "reason": "vhost_not_found"})
        )
    );
    assert_eq!(
        http.get("/api/vhost-limits/%2f").await.json(),
        expected,
        "refusals changed nothing"
    );
    assert_eq!(
        http.delete("/api/vhost-limits/%2f/max-connections")
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        http.delete("/api/vhost-limits/%2f/max-connections")
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        http.get("/api/vhost-limits/%2f").await.json(),
        json!([{"vhost": "/", "value": {"max-queues": 5}}])
    );
    assert_eq!(
        http.get("/api/vhost-limits/nosuch").await.status,
        StatusCode::NOT_FOUND
    );

    http.put("/api/users/u", &json!({"password": "p", "tags": ""}))
        .await;
    assert_eq!(
        http.put("/api/user-limits/u/max-connections", &json!({"value": 3}))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        http.get("/api/user-limits").await.json(),
        json!([{"user": "u", "value": {"max-connections": 3}}])
    );
    assert_eq!(
        http.get("/api/user-limits/u").await.json(),
        json!([{"user": "u", "value": {"max-connections": 3}}])
    );
    assert_eq!(
        http.get("/api/users/u").await.json()["limits"],
        json!({"max-connections": 3})
    );
    let reply = http
        .put("/api/user-limits/u/max-foo", &json!({"value": 3}))
        .await;
    assert_eq!(
        reply.json(),
        json!({"error": "bad_request", "reason": "Unrecognised terms [{<<\"max-foo\">>,3}] in user-limits"})
    );
    let reply = http
        .put("/api/user-limits/nosuch/max-channels", &json!({"value": 3}))
        .await;
    assert_eq!(
        reply.json(),
        json!({"error": "bad_request", "reason": ["no_such_user", "nosuch"]})
    );
    assert_eq!(
        http.put("/api/user-limits/u/max-channels", &json!({"value": "x"}))
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        http.delete("/api/user-limits/u/max-connections")
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        http.delete("/api/user-limits/u/max-connections")
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(http.get("/api/user-limits/u").await.json(), json!([]));
    assert_eq!(
        http.get("/api/user-limits/nosuch").await.status,
        StatusCode::NOT_FOUND
    );
    broker.stop().await;
}

#[tokio::test]
async fn parameters_global_parameters_and_the_cluster_name() {
    let broker = TestBroker::start_with_management().await;
    let http = broker.http();
    let globals = http.get("/api/global-parameters").await.json();
    assert_eq!(globals[0]["name"], "internal_cluster_id");
    assert!(globals[0]["value"]
        .as_str()
        .expect("id")
        .starts_with("rabbitmq-cluster-id-"));
    let name = http.get("/api/cluster-name").await.json()["name"].clone();
    assert!(name.as_str().expect("name").starts_with("rabbit@"));
    assert_eq!(
        http.put("/api/cluster-name", &json!({"name": "warren-test"}))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        http.get("/api/cluster-name").await.json(),
        json!({"name": "warren-test"})
    );
    assert_eq!(
        http.get("/api/global-parameters/cluster_name").await.json(),
        json!({"name": "cluster_name", "value": "warren-test"})
    );
    let reply = http.put("/api/cluster-name", &json!({"nam": "x"})).await;
    assert_eq!(
        reply.json(),
        json!({"error": "bad_request", "reason": "[{key_missing,name}]"})
    );
    assert_eq!(
        http.put("/api/global-parameters/g", &json!({"value": {"a": 1}}))
            .await
            .status,
        StatusCode::CREATED
    );
    assert_eq!(
        http.put("/api/global-parameters/g", &json!({"value": 2}))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        http.get("/api/global-parameters/g").await.json(),
        json!({"name": "g", "value": 2})
    );
    http.delete_once("/api/global-parameters/g").await;
    // Components of plugins warren does not have: empty lists, a PUT refused.
    assert_eq!(http.get("/api/parameters/shovel").await.json(), json!([]));
    assert_eq!(
        http.get("/api/parameters/shovel/%2f").await.json(),
        json!([])
    );
    assert_eq!(
        http.get("/api/parameters/shovel/%2f/x").await.status,
        StatusCode::NOT_FOUND
    );
    let reply = http
        .put("/api/parameters/shovel/%2f/x", &json!({"value": 1}))
        .await;
    assert_eq!(
        reply.json(),
        json!({"error": "bad_request", "reason": "Validation failed\n\ncomponent shovel not found\n"})
    );
    // vhost-limits as a parameter.
    assert_eq!(
        http.put(
            "/api/parameters/vhost-limits/%2f/limits",
            &json!({"value": {"max-queues": 5}})
        )
        .await
        .status,
        StatusCode::CREATED
    );
    assert_eq!(
        http.get("/api/parameters/vhost-limits/%2f/limits")
            .await
            .json(),
        json!({"value": {"max-queues": 5}, "vhost": "/", "component": "vhost-limits", "name": "limits"})
    );
    http.delete_once("/api/parameters/vhost-limits/%2f/limits")
        .await;
    assert_eq!(
        http.get("/api/parameters/vhost-limits/nosuch").await.status,
        StatusCode::NOT_FOUND
    );
    // /api/auth needs no login; extensions: none (no UI).
    let auth = http.as_user(None).get("/api/auth").await;
    assert_eq!(
        auth.json(),
        json!({"enable_uaa": false, "uaa_client_id": "", "uaa_location": ""})
    );
    assert_eq!(http.get("/api/extensions").await.json(), json!([]));
    broker.stop().await;
}

#[tokio::test]
async fn the_cluster_name_and_global_parameters_survive_a_restart() {
    let broker = TestBroker::start_with_management().await;
    let http = broker.http();
    let id = http
        .get("/api/global-parameters/internal_cluster_id")
        .await
        .json();
    assert_eq!(
        http.put("/api/cluster-name", &json!({"name": "kept"}))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        http.put("/api/global-parameters/g", &json!({"value": [1, 2]}))
            .await
            .status,
        StatusCode::CREATED
    );
    let dir = broker.restart_later().await;
    let broker = TestBroker::start_on(dir, |c| warren::Config {
        management_port: warren::ListenerPort::On(0),
        ..c
    })
    .await;
    let http = broker.http();
    assert_eq!(
        http.get("/api/cluster-name").await.json(),
        json!({"name": "kept"})
    );
    assert_eq!(
        http.get("/api/global-parameters/g").await.json(),
        json!({"name": "g", "value": [1, 2]})
    );
    assert_eq!(
        http.get("/api/global-parameters/internal_cluster_id")
            .await
            .json(),
        id,
        "the id stays"
    );
    broker.stop().await;
}
