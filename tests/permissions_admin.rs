//! Permissions around the operations: connection.open without them (530), changes
//! reaching open connections, the API's errors as rabbitmqctl's, persistence across a
//! restart and definitions files in RabbitMQ's shape.
mod access;
mod common;

use access::*;
use common::{amqp_error, closed_with, ready, TestBroker};
use warren::testing::{PermissionEntry, PermissionError, TopicPermissionEntry, VhostMetadata};

#[tokio::test]
async fn connection_open_without_permissions_is_refused_with_530() {
    let b = TestBroker::start().await;
    let broker = b.server.broker();
    broker.clear_permissions("guest", "/").unwrap();
    let mut raw = open_on(&b, "/").await;
    let close = raw.expect_connection_close().await;
    assert_eq!(close.reply_code, 530);
    assert_eq!(
        close.reply_text.as_str(),
        "NOT_ALLOWED - access to vhost '/' refused for user 'guest'"
    );
    assert_eq!((close.class_id, close.method_id), (10, 40));
    let mut raw = open_on(&b, "nowhere").await;
    let close = raw.expect_connection_close().await;
    assert_eq!(
        (close.reply_code, close.reply_text.as_str()),
        (530, "NOT_ALLOWED - vhost nowhere not found")
    );
    // Empty patterns are permissions: the user gets in (and can do nothing).
    allow(&b, "", "", "");
    let mut raw = open_on(&b, "/").await;
    raw.expect_open_ok().await;
    b.stop().await;
}

#[tokio::test]
async fn changes_reach_open_connections_at_their_next_operation() {
    let (b, conn) = setup().await;
    let ch = channel(&conn).await;
    assert_eq!(publish_counted(&ch, "", "p.q").await, 1);
    allow(&b, ".*", "", ".*");
    assert_eq!(
        publish_refusal(&conn, "", "p.q").await,
        refused("exchange", "amq.default")
    );
    // The channel that published before (its cache allowed it) is refused too.
    let watcher = reply_to_watcher(&ch).await;
    common::publish(&ch, "", "p.q", b"x").await;
    assert_eq!(
        amqp_error(&closed_with(watcher).await),
        refused("exchange", "amq.default")
    );
    // All permissions cleared: the connection stays open, as in RabbitMQ; new channels
    // open, what needs no permission works, the rest is refused.
    b.server.broker().clear_permissions("guest", "/").unwrap();
    let ch = channel(&conn).await;
    assert_eq!(ready(&ch, "p.q").await, 1);
    assert_eq!(
        publish_refusal(&conn, "", "p.q").await,
        refused("exchange", "amq.default")
    );
    assert!(conn.status().connected());
    allow(&b, ".*", ".*", ".*");
    let ch = channel(&conn).await;
    assert_eq!(publish_counted(&ch, "", "p.q").await, 2);
    b.stop().await;
}

#[tokio::test]
async fn the_api_answers_as_rabbitmqctl() {
    let b = TestBroker::start().await;
    let broker = b.server.broker();
    assert_eq!(
        broker.list_permissions(),
        vec![PermissionEntry {
            user: "guest".into(),
            vhost: "/".into(),
            configure: ".*".into(),
            write: ".*".into(),
            read: ".*".into(),
        }]
    );
    let no_user = PermissionError::NoSuchUser("nobody".into());
    let no_vhost = PermissionError::NoSuchVhost("nowhere".into());
    assert_eq!(no_user.to_string(), "User nobody does not exist");
    assert_eq!(no_vhost.to_string(), "Virtual host nowhere does not exist");
    assert_eq!(
        broker.set_permissions("nobody", "/", ".*", ".*", ".*"),
        Err(no_user.clone())
    );
    assert_eq!(
        broker.set_permissions("guest", "nowhere", ".*", ".*", ".*"),
        Err(no_vhost.clone())
    );
    // The user is checked before the vhost, the patterns before both.
    assert_eq!(
        broker.set_permissions("nobody", "nowhere", ".*", ".*", ".*"),
        Err(no_user.clone())
    );
    let bad = broker
        .set_permissions("nobody", "/", ".*", "(", ".*")
        .unwrap_err();
    assert_eq!(bad.to_string(), "regular expression '(' is invalid");
    assert_eq!(
        broker.set_topic_permissions("guest", "/", "amq.topic", "(", ""),
        Err(PermissionError::InvalidRegex("(".into()))
    );
    assert_eq!(
        broker.clear_permissions("nobody", "/"),
        Err(no_user.clone())
    );
    assert_eq!(
        broker.clear_permissions("guest", "nowhere"),
        Err(no_vhost.clone())
    );
    assert_eq!(
        broker.list_vhost_permissions("nowhere"),
        Err(no_vhost.clone())
    );
    assert_eq!(broker.list_user_permissions("nobody"), Err(no_user.clone()));
    assert_eq!(broker.list_user_permissions("guest").unwrap().len(), 1);
    assert_eq!(broker.list_vhost_permissions("/").unwrap().len(), 1);
    // Clearing a topic permission that is not there is fine, as in rabbitmqctl.
    broker
        .clear_topic_permissions("guest", "/", Some("nothing"))
        .unwrap();
    broker
        .set_topic_permissions("guest", "/", "amq.topic", "^w", "^r")
        .unwrap();
    let entry = TopicPermissionEntry {
        user: "guest".into(),
        vhost: "/".into(),
        exchange: "amq.topic".into(),
        write: "^w".into(),
        read: "^r".into(),
    };
    assert_eq!(
        broker
            .list_user_topic_permissions("guest", Some("/"))
            .unwrap(),
        vec![entry.clone()]
    );
    assert_eq!(
        broker.list_vhost_topic_permissions("/").unwrap(),
        vec![entry]
    );
    // Deleting a vhost or a user takes every permission and topic permission of it.
    broker.add_vhost("gone", VhostMetadata::default()).unwrap();
    broker
        .set_permissions("guest", "gone", ".*", ".*", ".*")
        .unwrap();
    broker
        .set_topic_permissions("guest", "gone", "amq.topic", "^w", "^r")
        .unwrap();
    broker.delete_vhost("gone").await.unwrap();
    assert!(broker.list_permissions().iter().all(|p| p.vhost != "gone"));
    assert!(broker
        .list_topic_permissions()
        .iter()
        .all(|p| p.vhost != "gone"));
    broker.users().add("leaver", Some("pw")).unwrap();
    broker
        .set_permissions("leaver", "/", ".*", ".*", ".*")
        .unwrap();
    broker
        .set_topic_permissions("leaver", "/", "amq.topic", "^w", "^r")
        .unwrap();
    broker.users().delete("leaver").unwrap();
    assert!(broker.list_permissions().iter().all(|p| p.user != "leaver"));
    assert!(broker
        .list_topic_permissions()
        .iter()
        .all(|p| p.user != "leaver"));
    b.stop().await;
}

#[tokio::test]
async fn permissions_survive_a_restart_in_rabbitmq_shape() {
    let b = TestBroker::start().await;
    let broker = b.server.broker();
    broker
        .set_permissions("guest", "/", "^c", "^w", "^r")
        .unwrap();
    broker
        .set_topic_permissions("guest", "/", "amq.topic", "^{username}", "^{vhost}")
        .unwrap();
    let dir = b.restart_later().await;
    let text = std::fs::read_to_string(dir.join("definitions.json")).unwrap();
    let defs: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(
        defs["permissions"],
        serde_json::json!([{"user": "guest", "vhost": "/", "configure": "^c", "write": "^w", "read": "^r"}])
    );
    assert_eq!(
        defs["topic_permissions"],
        serde_json::json!([{"user": "guest", "vhost": "/", "exchange": "amq.topic",
                            "write": "^{username}", "read": "^{vhost}"}])
    );
    let b = TestBroker::start_on(dir, |c| c).await;
    let broker = b.server.broker();
    assert_eq!(broker.list_permissions()[0].write, "^w");
    assert_eq!(broker.list_topic_permissions()[0].write, "^{username}");
    let conn = b.connect().await;
    assert_eq!(
        publish_refusal(&conn, "", "q").await,
        refused("exchange", "amq.default")
    );
    // Cleared, after a restart guest stays without permissions (no default grant again).
    broker.clear_permissions("guest", "/").unwrap();
    let dir = b.restart_later().await;
    let b = TestBroker::start_on(dir, |c| c).await;
    assert!(b.server.broker().list_permissions().is_empty());
    let mut raw = open_on(&b, "/").await;
    assert_eq!(raw.expect_connection_close().await.reply_code, 530);
    b.stop().await;
}

#[tokio::test]
async fn definitions_in_rabbitmq_export_shape_are_loaded() {
    // The entries as RabbitMQ 3.10.8's export writes them (user and vhost our own).
    let dir = data_dir_with(serde_json::json!({
        "users": [{"name": "guest", "password_hash": "d2Fycg/mEkHejBhwT2TESLC0I72WJK5djSfz+byMJddMQLtL",
                   "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": ["administrator"], "limits": {}}],
        "vhosts": [{"name": "/"}, {"name": "other"}],
        "permissions": [{"user": "guest", "vhost": "other", "configure": ".*", "write": ".*", "read": ".*"}],
        "topic_permissions": [{"user": "guest", "vhost": "other", "exchange": "amq.topic",
                               "write": "^{username}-w", "read": "^{vhost}-r"}]
    }));
    let b = TestBroker::start_on(dir, |c| c).await;
    let broker = b.server.broker();
    assert_eq!(broker.list_permissions().len(), 1);
    assert_eq!(broker.list_topic_permissions()[0].read, "^{vhost}-r");
    // No permission on "/" in the file: guest is not let in there.
    let mut raw = open_on(&b, "/").await;
    assert_eq!(raw.expect_connection_close().await.reply_code, 530);
    let mut raw = open_on(&b, "other").await;
    raw.expect_open_ok().await;
    b.stop().await;
}
