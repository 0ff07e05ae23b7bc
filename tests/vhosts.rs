//! Virtual hosts at runtime, through the broker's in-process API (`Server::broker()`),
//! as rabbitmqctl add_vhost / list_vhosts / delete_vhost / set_vhost_limits do them in
//! RabbitMQ 3.10.8: creating, listing, metadata kept across restarts, deleting with live
//! connections (320 CONNECTION_FORCED "vhost 'v' is deleted", as the reference sent it
//! on the wire) and with stored and paged messages (nothing comes back, the disk is
//! reclaimed), and limits set and cleared at runtime.
mod common;

use common::raw::Raw;
use common::{amqp_error, declare_queue, next_error, publish, ready, refusal, within, TestBroker};
use futures::StreamExt;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};
use serde_json::json;
use std::path::Path;
use warren::testing::{Broker, VhostError, VhostLimits, VhostMetadata};

fn metadata(description: &str, tags: &[&str], queue_type: Option<&str>) -> VhostMetadata {
    VhostMetadata {
        description: description.to_owned(),
        tags: tags.iter().map(|t| (*t).to_owned()).collect(),
        default_queue_type: queue_type.map(str::to_owned),
    }
}

/// `rabbitmqctl add_vhost NAME` then `set_permissions -p NAME guest ".*" ".*" ".*"`, so
/// that guest can connect to it.
fn add_vhost_for_guest(broker: &Broker, name: &str, metadata: VhostMetadata) {
    broker.add_vhost(name, metadata).expect("add vhost");
    broker
        .set_permissions("guest", name, ".*", ".*", ".*")
        .expect("permissions");
}

/// A lapin connection as guest to `vhost` (a name without characters to escape).
async fn connect_to(b: &TestBroker, vhost: &str) -> (Connection, Channel) {
    let url = format!("amqp://guest:guest@{}/{vhost}", b.addr);
    let conn = within(Connection::connect(&url, ConnectionProperties::default()))
        .await
        .expect("connect");
    let ch = within(conn.create_channel()).await.expect("channel");
    (conn, ch)
}

/// Login as guest and connection.open on `vhost`; the reply is the caller's to read.
async fn open_on(b: &TestBroker, vhost: &str) -> Raw {
    common::login::open_on(b.addr, vhost).await
}

fn persistent() -> BasicProperties {
    BasicProperties::default().with_delivery_mode(2)
}

/// Publishes `body` persistent `times` times on a confirming channel, each confirmed.
async fn publish_confirmed(ch: &Channel, exchange: &str, key: &str, body: &[u8], times: usize) {
    for _ in 0..times {
        let confirm = within(ch.basic_publish(
            exchange.into(),
            key.into(),
            BasicPublishOptions::default(),
            body,
            persistent(),
        ))
        .await
        .expect("publish");
        assert!(within(confirm).await.expect("confirm").is_ack());
    }
}

fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions {
        durable: true,
        ..Default::default()
    }
}

fn definitions(dir: &Path) -> serde_json::Value {
    let text = std::fs::read(dir.join("definitions.json")).expect("definitions.json");
    serde_json::from_slice(&text).expect("definitions JSON")
}

/// Bytes in the files of `dir` (0 if it does not exist).
fn bytes_in(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

#[tokio::test]
async fn vhosts_are_added_listed_and_found_as_rabbitmqctl_does() {
    let b = TestBroker::start().await;
    let broker = b.server.broker();
    let all = broker.list_vhosts();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].name, "/");
    assert_eq!(all[0].metadata, metadata("Default virtual host", &[], None));

    let first = metadata("first one", &["a", "b"], Some("classic"));
    assert_eq!(broker.add_vhost("v1", first.clone()), Ok(true));
    // As rabbitmqctl add_vhost: adding it again is no error and changes nothing.
    assert_eq!(
        broker.add_vhost("v1", metadata("other", &[], None)),
        Ok(false)
    );
    assert_eq!(
        broker.add_vhost("v2", metadata("", &[], Some("foo"))),
        Err(VhostError::InvalidQueueType)
    );
    assert_eq!(
        VhostError::InvalidQueueType.to_string(),
        "invalid_queue_type"
    );
    assert_eq!(broker.add_vhost("v0", VhostMetadata::default()), Ok(true));
    let names: Vec<String> = broker.list_vhosts().into_iter().map(|v| v.name).collect();
    assert_eq!(names, ["/", "v0", "v1"]);
    let v1 = broker.vhost_info("v1").expect("v1");
    assert_eq!(v1.metadata, first);
    assert_eq!((v1.limits, v1.connections), (None, 0));
    assert!(broker.vhost_info("v2").is_none());

    // A client with permissions there can use it at once, and it is counted.
    broker
        .set_permissions("guest", "v1", ".*", ".*", ".*")
        .expect("permissions");
    let (conn, ch) = connect_to(&b, "v1").await;
    declare_queue(&ch, "q").await;
    assert_eq!(broker.vhost_info("v1").map(|v| v.connections), Some(1));
    within(conn.close(200, "bye".into())).await.expect("close");
    b.stop().await;
}

#[tokio::test]
async fn deleting_a_vhost_closes_its_connections_with_320_and_spares_the_others() {
    let b = TestBroker::start().await;
    let broker = b.server.broker().clone();
    add_vhost_for_guest(&broker, "doomed", VhostMetadata::default());

    // On the doomed vhost: a raw client (to see the exact close), a lapin consumer
    // with an unacked delivery, and a publisher that keeps publishing.
    let mut raw = open_on(&b, "doomed").await;
    raw.expect_open_ok().await;
    let (consumer_conn, consumer_ch) = connect_to(&b, "doomed").await;
    let mut consumer_events = Box::pin(consumer_conn.events_listener());
    declare_queue(&consumer_ch, "work").await;
    publish(&consumer_ch, "", "work", b"in flight").await;
    let mut deliveries = within(consumer_ch.basic_consume(
        "work".into(),
        "c".into(),
        BasicConsumeOptions::default(),
        FieldTable::default(),
    ))
    .await
    .expect("consume");
    let held = within(deliveries.next()).await.expect("a delivery");
    assert!(held.is_ok());
    let (publisher_conn, publisher_ch) = connect_to(&b, "doomed").await;
    let publishing = tokio::spawn(async move {
        loop {
            let sent = publisher_ch
                .basic_publish(
                    "".into(),
                    "work".into(),
                    BasicPublishOptions::default(),
                    b"more",
                    BasicProperties::default(),
                )
                .await;
            if sent.is_err() {
                break;
            }
            tokio::task::yield_now().await;
        }
    });

    // On "/": a consumer that must not notice.
    let (other_conn, other_ch) = b.channel().await;
    declare_queue(&other_ch, "kept").await;
    let mut kept = within(other_ch.basic_consume(
        "kept".into(),
        "k".into(),
        BasicConsumeOptions {
            no_ack: true,
            ..Default::default()
        },
        FieldTable::default(),
    ))
    .await
    .expect("consume");

    let closed = within(broker.delete_vhost("doomed")).await.expect("delete");
    assert_eq!(closed, 3);

    // The reference RabbitMQ 3.10.8 sends exactly this (code 320, class 0, method 0).
    let close = raw.expect_connection_close().await;
    assert_eq!(close.reply_code, 320);
    assert_eq!(
        close.reply_text.as_str(),
        "CONNECTION_FORCED - vhost 'doomed' is deleted"
    );
    assert_eq!((close.class_id, close.method_id), (0, 0));
    raw.close_ok_then_closed().await;
    // The lapin clients see the same; the publisher's loop ends, nothing hangs.
    within(publishing).await.expect("publisher task");
    let err = amqp_error(&next_error(&mut consumer_events).await);
    assert_eq!(
        err,
        (
            320,
            "CONNECTION_FORCED - vhost 'doomed' is deleted".to_owned()
        )
    );
    assert!(!publisher_conn.status().connected());

    // The vhost is gone: opening it is refused as for any unknown vhost.
    let mut late = open_on(&b, "doomed").await;
    let refused = late.expect_connection_close().await;
    assert_eq!(
        (refused.reply_code, refused.reply_text.as_str()),
        (530, "NOT_ALLOWED - vhost doomed not found")
    );
    assert!(broker.vhost_info("doomed").is_none());
    assert_eq!(
        within(broker.delete_vhost("doomed")).await,
        Err(VhostError::NotFound("doomed".into()))
    );
    assert_eq!(
        VhostError::NotFound("doomed".into()).to_string(),
        "Virtual host 'doomed' does not exist"
    );

    // "/" goes on.
    publish(&other_ch, "", "kept", b"still here").await;
    let got = within(kept.next()).await.expect("delivery").expect("ok");
    assert_eq!(got.data, b"still here");
    assert!(other_conn.status().connected());
    // A vhost of the same name starts empty.
    add_vhost_for_guest(&broker, "doomed", VhostMetadata::default());
    let (_again, ch) = connect_to(&b, "doomed").await;
    let e = refusal(
        within(ch.queue_declare("work".into(), common::passive(), FieldTable::default())).await,
    );
    assert_eq!(
        e,
        (
            404,
            "NOT_FOUND - no queue 'work' in vhost 'doomed'".to_owned()
        )
    );
    b.stop().await;
}

#[tokio::test]
async fn a_deleted_vhost_leaves_nothing_on_disk_and_nothing_comes_back() {
    // A small queue budget, so that part of the backlog is paged to disk too.
    let b = TestBroker::start_with(|c| warren::Config {
        queue_memory: 256 * 1024,
        ..c
    })
    .await;
    let broker = b.server.broker().clone();
    add_vhost_for_guest(&broker, "big", metadata("to go", &[], None));
    {
        let (_conn, ch) = connect_to(&b, "big").await;
        within(ch.confirm_select(ConfirmSelectOptions::default()))
            .await
            .expect("confirms");
        within(ch.queue_declare("stored".into(), durable(), FieldTable::default()))
            .await
            .expect("declare");
        within(ch.exchange_declare(
            "x".into(),
            lapin::ExchangeKind::Fanout,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        ))
        .await
        .expect("exchange");
        within(ch.queue_bind(
            "stored".into(),
            "x".into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        ))
        .await
        .expect("bind");
        publish_confirmed(&ch, "x", "", &[7u8; 16 * 1024], 200).await;
        assert_eq!(ready(&ch, "stored").await, 200);
    }
    // "/" keeps a durable queue (empty: a live message would keep its segment).
    let (_c, ch) = b.channel().await;
    within(ch.queue_declare("mine".into(), durable(), FieldTable::default()))
        .await
        .expect("declare");
    broker.page_io_done().await;
    let msgs = b.data_dir.join("msgs");
    assert!(bytes_in(&msgs) > 200 * 16 * 1024, "the messages are stored");
    assert!(bytes_in(&b.data_dir.join("pages")) > 0, "part is paged");
    let defs = definitions(&b.data_dir);
    assert!(defs["queues"]
        .as_array()
        .unwrap()
        .iter()
        .any(|q| q["vhost"] == "big"));

    within(broker.delete_vhost("big")).await.expect("delete");
    // When delete_vhost returns, the definitions file and the page files show it.
    let defs = definitions(&b.data_dir);
    for key in ["vhosts", "queues", "exchanges", "bindings", "permissions"] {
        let left: Vec<_> = defs[key]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["vhost"] == "big" || e["name"] == "big")
            .collect();
        assert!(left.is_empty(), "{key} still names the vhost: {left:?}");
    }
    assert_eq!(bytes_in(&b.data_dir.join("pages")), 0, "page files deleted");
    drop((_c, ch, broker));

    let dir = b.restart_later().await;
    let b = TestBroker::start_on(dir, |c| c).await;
    let broker = b.server.broker();
    let names: Vec<String> = broker.list_vhosts().into_iter().map(|v| v.name).collect();
    assert_eq!(names, ["/"]);
    let (_c, ch) = b.channel().await;
    assert_eq!(
        ready(&ch, "mine").await,
        0,
        "the other vhost's queue is back"
    );
    // The segments that held the deleted vhost's messages are gone: what is left is the
    // new, near-empty segment.
    let left = bytes_in(&b.data_dir.join("msgs"));
    assert!(left < 64 * 1024, "{left} bytes left in the message store");
    b.stop().await;
}

#[tokio::test]
async fn limits_set_at_runtime_refuse_with_rabbitmq_texts_and_can_be_cleared() {
    let b = TestBroker::start().await;
    let broker = b.server.broker().clone();
    add_vhost_for_guest(&broker, "lim", VhostMetadata::default());
    let (conn, ch) = connect_to(&b, "lim").await;
    declare_queue(&ch, "first").await;

    broker
        .set_vhost_limits("lim", &json!({"max-queues": 1, "max-connections": 1}))
        .expect("set");
    assert_eq!(
        broker.vhost_limits("lim"),
        Ok(Some(VhostLimits {
            max_connections: Some(1),
            max_queues: Some(1)
        }))
    );
    // Effective at once for new queues and connections; what is open stays.
    let e = refusal(
        within(ch.queue_declare(
            "second".into(),
            QueueDeclareOptions::default(),
            FieldTable::default(),
        ))
        .await,
    );
    assert_eq!(
        e,
        (
            406,
            "PRECONDITION_FAILED - cannot declare queue 'second': queue limit in vhost 'lim' (1) is reached"
                .to_owned()
        )
    );
    let mut raw = open_on(&b, "lim").await;
    let close = raw.expect_connection_close().await;
    assert_eq!(
        (close.reply_code, close.reply_text.as_str()),
        (
            530,
            "NOT_ALLOWED - access to vhost 'lim' refused for user 'guest': connection limit (1) is reached"
        )
    );
    assert_eq!((close.class_id, close.method_id), (10, 40));
    assert!(conn.status().connected());

    // 0 allows none; -1 is no limit, and is kept as set (as RabbitMQ lists it).
    within(conn.close(200, "bye".into())).await.expect("close");
    broker
        .set_vhost_limits("lim", &json!({"max-connections": 0, "max-queues": -1}))
        .expect("set");
    let mut raw = open_on(&b, "lim").await;
    let close = raw.expect_connection_close().await;
    assert_eq!(
        close.reply_text.as_str(),
        "NOT_ALLOWED - access to vhost 'lim' refused for user 'guest': connection limit (0) is reached"
    );
    assert_eq!(
        broker.vhost_limits("lim").map(|l| l.map(|l| l.to_json())),
        Ok(Some(json!({"max-connections": 0, "max-queues": -1})))
    );

    // Refusals, as rabbitmqctl words them.
    let set = |v: serde_json::Value| {
        broker
            .set_vhost_limits("lim", &v)
            .map_err(|e| e.to_string())
    };
    assert_eq!(
        set(json!({"foo": 1})),
        Err("Validation failed\n\nUnrecognised terms [{<<\"foo\">>,1}] in limits".into())
    );
    assert_eq!(
        set(json!({"max-queues": "x"})),
        Err("Validation failed\n\nmax-queues should be a number, actually was <<\"x\">>".into())
    );
    assert_eq!(
        broker
            .set_vhost_limits("nope", &json!({"max-queues": 1}))
            .map_err(|e| e.to_string()),
        Err("Virtual host 'nope' does not exist".into())
    );

    // Cleared: anything goes again; clearing twice is RabbitMQ's error.
    broker.clear_vhost_limits("lim").expect("clear");
    assert_eq!(broker.vhost_limits("lim"), Ok(None));
    assert_eq!(
        broker.clear_vhost_limits("lim").map_err(|e| e.to_string()),
        Err("Parameter does not exist".into())
    );
    let (_conn, ch) = connect_to(&b, "lim").await;
    declare_queue(&ch, "second").await;
    declare_queue(&ch, "third").await;
    b.stop().await;
}

#[tokio::test]
async fn metadata_and_limits_are_saved_as_rabbitmq_exports_them_and_survive_a_restart() {
    let b = TestBroker::start().await;
    let broker = b.server.broker().clone();
    let meta = metadata("first one", &["a", "b"], Some("classic"));
    broker.add_vhost("kept", meta.clone()).expect("add");
    broker
        .set_vhost_limits("kept", &json!({"max-connections": 0, "max-queues": -1}))
        .expect("limits");
    broker.flush().await;
    // The shapes of RabbitMQ 3.10.8's export_definitions.
    let defs = definitions(&b.data_dir);
    let vhost = defs["vhosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "kept")
        .cloned();
    assert_eq!(
        vhost,
        Some(json!({
            "name": "kept",
            "limits": [["max-connections", 0], ["max-queues", -1]],
            "metadata": {"default_queue_type": "classic", "description": "first one", "tags": ["a", "b"]}
        }))
    );
    let default = defs["vhosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "/")
        .cloned();
    assert_eq!(
        default.map(|v| v["metadata"].clone()),
        Some(json!({"description": "Default virtual host", "tags": []}))
    );
    assert!(defs["parameters"].as_array().unwrap().contains(&json!({
        "component": "vhost-limits",
        "name": "limits",
        "value": {"max-connections": 0, "max-queues": -1},
        "vhost": "kept"
    })));

    drop(broker);
    let dir = b.restart_later().await;
    let b = TestBroker::start_on(dir, |c| c).await;
    let info = b.server.broker().vhost_info("kept").expect("kept");
    assert_eq!(info.metadata, meta);
    assert_eq!(
        info.limits,
        Some(VhostLimits {
            max_connections: Some(0),
            max_queues: Some(-1)
        })
    );
    let mut raw = open_on(&b, "kept").await;
    assert_eq!(raw.expect_connection_close().await.reply_code, 530);
    b.stop().await;
}

#[tokio::test]
async fn stored_messages_of_a_vhost_missing_from_the_definitions_are_reclaimed() {
    let b = TestBroker::start().await;
    add_vhost_for_guest(b.server.broker(), "edited", VhostMetadata::default());
    {
        let (_conn, ch) = connect_to(&b, "edited").await;
        within(ch.confirm_select(ConfirmSelectOptions::default()))
            .await
            .expect("confirms");
        within(ch.queue_declare("q".into(), durable(), FieldTable::default()))
            .await
            .expect("declare");
        publish_confirmed(&ch, "", "q", &[1u8; 64 * 1024], 20).await;
    }
    let dir = b.restart_later().await;
    // The vhost is taken out of the file while the broker is stopped.
    let mut defs = definitions(&dir);
    for key in ["vhosts", "queues"] {
        defs[key]
            .as_array_mut()
            .unwrap()
            .retain(|e| e["name"] != "edited" && e["vhost"] != "edited");
    }
    std::fs::write(dir.join("definitions.json"), defs.to_string()).expect("write");
    assert!(bytes_in(&dir.join("msgs")) > 20 * 64 * 1024);
    // The first start drops the messages (with a warning) and settles them in the store;
    // the next one finds their segment settled and deletes it.
    let b = TestBroker::start_on(dir, |c| c).await;
    assert!(b.server.broker().vhost_info("edited").is_none());
    let dir = b.restart_later().await;
    let b = TestBroker::start_on(dir, |c| c).await;
    let left = bytes_in(&b.data_dir.join("msgs"));
    assert!(left < 64 * 1024, "{left} bytes left in the message store");
    b.stop().await;
}

#[tokio::test]
async fn nothing_follows_the_320_when_a_backlogged_consumer_s_vhost_is_deleted() {
    use amq_protocol::frame::AMQPFrame;
    use amq_protocol::protocol::{basic, connection, AMQPClass};
    use common::raw::Next;
    let b = TestBroker::start().await;
    let broker = b.server.broker().clone();
    add_vhost_for_guest(&broker, "busy", VhostMetadata::default());
    let (_p, ch) = connect_to(&b, "busy").await;
    declare_queue(&ch, "flood").await;
    // A no-ack consumer that does not read: its socket and write buffer fill up, and
    // deliveries wait in its outbox when the vhost goes.
    let mut raw = open_on(&b, "busy").await;
    raw.expect_open_ok().await;
    raw.open_channel(1).await;
    let consume = basic::Consume {
        queue: "flood".into(),
        consumer_tag: "c".into(),
        no_ack: true,
        ..Default::default()
    };
    raw.send(1, AMQPClass::Basic(basic::AMQPMethod::Consume(consume)))
        .await;
    let body = vec![3u8; 4096];
    for _ in 0..3000 {
        publish(&ch, "", "flood", &body).await;
    }
    within(ch.queue_declare("flood".into(), common::passive(), FieldTable::default()))
        .await
        .expect("the publishes are handled");
    within(broker.delete_vhost("busy")).await.expect("delete");
    // Deliveries written before the close, then the close, then nothing but the end.
    loop {
        match raw.recv().await {
            Next::Frame(AMQPFrame::Method(
                0,
                AMQPClass::Connection(connection::AMQPMethod::Close(c)),
            )) => {
                assert_eq!(c.reply_code, 320);
                break;
            }
            Next::Frame(_) => {}
            Next::Closed => panic!("closed without connection.close"),
        }
    }
    raw.close_ok_then_closed().await;
    b.stop().await;
}

/// Resident memory of this process, from /proc (Linux).
fn resident_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// A measurement, not a check: resident memory taken by 1,000 empty vhosts. Run alone:
/// `cargo test --test vhosts memory_per_vhost -- --ignored --nocapture`.
#[tokio::test]
#[ignore]
async fn memory_per_vhost() {
    let b = TestBroker::start().await;
    let broker = b.server.broker().clone();
    broker.flush().await;
    let before = resident_bytes();
    for i in 0..1000 {
        broker
            .add_vhost(&format!("mem-{i}"), VhostMetadata::default())
            .expect("add");
    }
    broker.flush().await;
    let after = resident_bytes();
    println!(
        "1000 empty vhosts: {} KiB resident, {} bytes per vhost",
        (after - before) / 1024,
        (after - before) / 1000
    );
    drop(broker);
    b.stop().await;
}
