//! The event exchange's control-plane events (`--event-exchange`): logins, other vhosts'
//! events published in the default vhost, what the management API changes (users,
//! permissions, policies, vhosts and their limits), with RabbitMQ 3.10.8's routing keys,
//! headers and order (each compared with the reference broker with the plugin on).

mod common;

use common::events::{listen, next, next_of, passive_event_exchange, s, with_events};
use lapin::options::QueueDeclareOptions;
use lapin::types::AMQPValue;
use lapin::{Connection, ConnectionProperties};
use serde_json::json;

#[tokio::test]
async fn a_failed_login_tells_rabbitmqs_reason_as_character_codes() {
    let broker = with_events().await;
    let (_l, _lch, mut events) = listen(&broker, "user.authentication.*").await;
    let url = format!("amqp://guest:wrong@{}/%2f", broker.addr);
    assert!(Connection::connect(&url, ConnectionProperties::default())
        .await
        .is_err());
    let e = next_of(&mut events, "user.authentication.failure").await;
    assert_eq!(e.text("name"), "guest");
    let AMQPValue::FieldArray(codes) = e.get("error") else {
        panic!("error is not an array");
    };
    let reason: String = codes
        .as_slice()
        .iter()
        .map(|c| match c {
            AMQPValue::LongLongInt(n) => char::from(*n as u8),
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(reason, "user 'guest' - invalid credentials");
}

#[tokio::test]
async fn events_of_every_vhost_are_published_in_the_default_vhost() {
    let broker = with_events().await;
    let (_l, _lch, mut events) = listen(&broker, "queue.*").await;
    let http = broker.http();
    assert_eq!(
        http.put("/api/vhosts/ev-other", &json!({}))
            .await
            .status
            .as_u16(),
        201
    );
    let url = format!("amqp://guest:guest@{}/ev-other", broker.addr);
    let conn = Connection::connect(&url, ConnectionProperties::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    common::declare(&ch, "ev-elsewhere", QueueDeclareOptions::default()).await;
    let e = next(&mut events).await;
    assert_eq!(
        (e.key.as_str(), e.text("name"), e.text("vhost")),
        ("queue.created", "ev-elsewhere".into(), "ev-other".into())
    );
    // Only the default vhost has the exchange.
    let err = passive_event_exchange(&ch).await;
    assert_eq!(
        err,
        (
            404,
            "NOT_FOUND - no exchange 'amq.rabbitmq.event' in vhost 'ev-other'".into()
        )
    );
}

#[tokio::test]
async fn management_api_changes_name_their_caller() {
    let broker = with_events().await;
    let (_l, _lch, mut events) = listen(&broker, "#").await;
    let http = broker.http();
    http.put(
        "/api/users/ev-u",
        &json!({"password": "p", "tags": "management"}),
    )
    .await;
    let e = next_of(&mut events, "user.created").await;
    assert_eq!(
        (e.text("name"), e.text("user_who_performed_action")),
        ("ev-u".into(), "guest".into())
    );
    let e = next(&mut events).await;
    assert_eq!(
        (e.key.as_str(), e.strings("tags")),
        ("user.tags.set", vec!["management".into()])
    );
    http.put("/api/users/ev-u", &json!({"password": "p2", "tags": ""}))
        .await;
    let e = next(&mut events).await;
    assert_eq!(e.key, "user.password.changed");
    let e = next(&mut events).await;
    assert_eq!(
        (e.key.as_str(), e.strings("tags")),
        ("user.tags.set", vec![])
    );

    http.put(
        "/api/permissions/%2F/ev-u",
        &json!({"configure": ".*", "write": ".*", "read": ""}),
    )
    .await;
    let e = next(&mut events).await;
    assert_eq!(
        (
            e.key.as_str(),
            e.text("user"),
            e.text("read"),
            e.text("configure")
        ),
        ("permission.created", "ev-u".into(), "".into(), ".*".into())
    );
    http.delete("/api/permissions/%2F/ev-u").await;
    let e = next(&mut events).await;
    assert_eq!(
        (e.key.as_str(), e.text("user")),
        ("permission.deleted", "ev-u".into())
    );

    http.put(
        "/api/policies/%2F/ev-pol",
        &json!({"pattern": "^ev-", "definition": {"max-length": 5}, "priority": 1, "apply-to": "queues"}),
    )
    .await;
    let e = next(&mut events).await;
    assert_eq!(
        (e.key.as_str(), e.text("pattern")),
        ("policy.set", "^ev-".into())
    );
    assert_eq!(e.long("priority"), 1);
    let AMQPValue::FieldTable(def) = e.get("definition") else {
        panic!("definition is not a table");
    };
    assert_eq!(
        def.inner().get("max-length"),
        Some(&AMQPValue::LongLongInt(5))
    );
    http.delete("/api/policies/%2F/ev-pol").await;
    let e = next(&mut events).await;
    assert_eq!(
        (e.key.as_str(), e.text("name")),
        ("policy.cleared", "ev-pol".into())
    );

    // Topology through the API: the caller acts.
    http.put("/api/queues/%2F/ev-apiq", &json!({})).await;
    let e = next_of(&mut events, "queue.created").await;
    assert_eq!(e.text("user_who_performed_action"), "guest");

    http.delete("/api/users/ev-u").await;
    let e = next_of(&mut events, "user.deleted").await;
    assert_eq!(e.text("name"), "ev-u");
}

#[tokio::test]
async fn a_vhost_tells_its_creation_limits_and_deletion_in_rabbitmqs_order() {
    let broker = with_events().await;
    let (_l, _lch, mut events) = listen(&broker, "#").await;
    let http = broker.http();
    assert_eq!(
        http.put("/api/vhosts/ev-v", &json!({}))
            .await
            .status
            .as_u16(),
        201
    );
    let limit = json!({"value": 5});
    http.put("/api/vhost-limits/ev-v/max-connections", &limit)
        .await;
    assert_eq!(http.delete("/api/vhosts/ev-v").await.status.as_u16(), 204);
    let mut keys = Vec::new();
    while keys.last().map(String::as_str) != Some("vhost.down") {
        let e = next(&mut events).await;
        let about = ["vhost", "name"]
            .iter()
            .any(|k| e.headers.inner().get(*k) == Some(&s("ev-v")));
        if about {
            keys.push(e.key);
        }
    }
    let x7 = |k: &str| vec![k.to_owned(); 7];
    let expected: Vec<String> = [
        x7("exchange.created"),
        vec!["vhost.created".into(), "permission.created".into()],
        vec!["parameter.set".into(), "permission.deleted".into()],
        x7("exchange.deleted"),
        vec![
            "vhost.deleted".into(),
            "parameter.cleared".into(),
            "vhost.down".into(),
        ],
    ]
    .concat();
    assert_eq!(keys, expected);
}

#[tokio::test]
async fn a_global_parameter_is_set_and_cleared_as_parameter_set_as_rabbitmq_tells_it() {
    let broker = with_events().await;
    let (_l, _lch, mut events) = listen(&broker, "parameter.*").await;
    let http = broker.http();
    let status = http
        .put("/api/global-parameters/ev-gp", &json!({"value": {"a": 1}}))
        .await
        .status;
    assert_eq!(status.as_u16(), 201);
    let e = next(&mut events).await;
    assert_eq!(
        (e.key.as_str(), e.text("name"), e.text("component")),
        ("parameter.set", "ev-gp".into(), "global".into())
    );
    let AMQPValue::FieldTable(value) = e.get("value") else {
        panic!("value is not a table");
    };
    assert_eq!(value.inner().get("a"), Some(&AMQPValue::LongLongInt(1)));
    assert_eq!(
        http.delete("/api/global-parameters/ev-gp")
            .await
            .status
            .as_u16(),
        204
    );
    let e = next(&mut events).await;
    assert_eq!(
        (e.key.as_str(), e.text("name")),
        ("parameter.set", "ev-gp".into())
    );
    assert!(e.headers.inner().get("value").is_none());
}
