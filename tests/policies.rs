//! Policies and operator policies as clients see them over AMQP: a policy set through
//! the management API changes the queues and exchanges it matches at once (length
//! limits, overflow, dead-lettering, TTL, alternate exchanges), new ones at declaration,
//! with RabbitMQ's precedence between queue arguments, policies and operator policies,
//! and it survives a restart. Each behaviour was compared with RabbitMQ 3.10.8.

mod common;

use common::{declare_queue, table, wait_until, within, TestBroker};
use hyper::StatusCode;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Confirmation};
use serde_json::{json, Value};

async fn set_policy(broker: &TestBroker, kind: &str, name: &str, body: Value) {
    let reply = broker
        .http()
        .put(&format!("/api/{kind}/%2f/{name}"), &body)
        .await;
    assert!(
        matches!(reply.status, StatusCode::CREATED | StatusCode::NO_CONTENT),
        "{}",
        reply.text()
    );
}

async fn clear_policy(broker: &TestBroker, kind: &str, name: &str) {
    let reply = broker
        .http()
        .delete(&format!("/api/{kind}/%2f/{name}"))
        .await;
    assert_eq!(reply.status, StatusCode::NO_CONTENT);
}

async fn send(ch: &Channel, exchange: &str, key: &str, body: &[u8]) -> Confirmation {
    within(async {
        ch.basic_publish(
            exchange.into(),
            key.into(),
            BasicPublishOptions::default(),
            body,
            BasicProperties::default(),
        )
        .await
        .expect("publish")
        .await
        .expect("confirm")
    })
    .await
}

async fn confirming_channel(broker: &TestBroker) -> (lapin::Connection, Channel) {
    let (conn, ch) = broker.channel().await;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm.select");
    (conn, ch)
}

/// Every body in `queue`, taken with basic.get.
async fn bodies(ch: &Channel, queue: &str) -> Vec<String> {
    let mut out = Vec::new();
    while let Some(m) = within(ch.basic_get(queue.into(), BasicGetOptions { no_ack: true }))
        .await
        .expect("get")
    {
        out.push(String::from_utf8_lossy(&m.delivery.data).into_owned());
    }
    out
}

async fn fill(ch: &Channel, queue: &str, n: usize) {
    for i in 0..n {
        assert!(send(ch, "", queue, format!("m{i}").as_bytes())
            .await
            .is_ack());
    }
}

async fn declare_with(ch: &Channel, queue: &str, args: FieldTable) {
    ch.queue_declare(queue.into(), QueueDeclareOptions::default(), args)
        .await
        .expect("declare");
}

fn int(n: i32) -> AMQPValue {
    AMQPValue::LongInt(n)
}

fn text(s: &str) -> AMQPValue {
    AMQPValue::LongString(s.into())
}

#[tokio::test]
async fn a_max_length_policy_drops_the_excess_at_once_and_dead_letters_it() {
    let broker = TestBroker::start_with_management().await;
    let (_c, ch) = confirming_channel(&broker).await;
    declare_queue(&ch, "pol.dead").await;
    declare_queue(&ch, "pol.full").await;
    fill(&ch, "pol.full", 10).await;
    let def = json!({"max-length": 3, "dead-letter-exchange": "",
                     "dead-letter-routing-key": "pol.dead"});
    set_policy(
        &broker,
        "policies",
        "limit",
        json!({"pattern": "^pol\\.full$", "definition": def}),
    )
    .await;
    // Applied before the PUT answered: the three newest are left.
    assert_eq!(common::ready(&ch, "pol.full").await, 3);
    assert_eq!(bodies(&ch, "pol.full").await, ["m7", "m8", "m9"]);
    wait_until("the dropped messages are dead-lettered", || async {
        common::ready(&ch, "pol.dead").await == 7
    })
    .await;
    let first = common::get_eventually(&ch, "pol.dead").await;
    assert_eq!(first.delivery.data, b"m0");
    let death =
        first
            .delivery
            .properties
            .headers()
            .as_ref()
            .and_then(|h| match h.inner().get("x-death") {
                Some(AMQPValue::FieldArray(a)) => a.as_slice().first().cloned(),
                _ => None,
            });
    let Some(AMQPValue::FieldTable(death)) = death else {
        panic!("no x-death");
    };
    assert_eq!(death.inner().get("reason"), Some(&text("maxlen")));
    broker.stop().await;
}

#[tokio::test]
async fn reject_publish_from_a_policy_refuses_new_messages_and_keeps_or_drops_as_rabbitmq() {
    let broker = TestBroker::start_with_management().await;
    let (_c, ch) = confirming_channel(&broker).await;
    declare_queue(&ch, "rp").await;
    declare_queue(&ch, "both").await;
    fill(&ch, "rp", 4).await;
    fill(&ch, "both", 4).await;
    let def = json!({"overflow": "reject-publish"});
    set_policy(
        &broker,
        "policies",
        "rp",
        json!({"pattern": "^rp$", "definition": def}),
    )
    .await;
    let def = json!({"max-length": 2, "overflow": "reject-publish"});
    set_policy(
        &broker,
        "policies",
        "rp",
        json!({"pattern": "^rp$", "definition": def}),
    )
    .await;
    // As RabbitMQ: a queue already in reject-publish mode keeps what is over its new
    // limit; one that gets the limit and the mode at once drops the excess (RabbitMQ
    // applies the limit first, under the mode it had).
    assert_eq!(common::ready(&ch, "rp").await, 4);
    assert!(send(&ch, "", "rp", b"refused").await.is_nack());
    let def = json!({"max-length": 2, "overflow": "reject-publish"});
    set_policy(
        &broker,
        "policies",
        "both",
        json!({"pattern": "^both$", "definition": def}),
    )
    .await;
    assert_eq!(bodies_peek(&ch, "both").await, ["m2", "m3"]);
    assert!(send(&ch, "", "both", b"refused").await.is_nack());
    // Cleared: the queue takes messages again.
    clear_policy(&broker, "policies", "rp").await;
    assert!(send(&ch, "", "rp", b"taken").await.is_ack());
    assert_eq!(common::ready(&ch, "rp").await, 5);
    broker.stop().await;
}

#[tokio::test]
async fn drop_head_policy_applies_to_queues_declared_later() {
    let broker = TestBroker::start_with_management().await;
    let def = json!({"max-length": 2, "overflow": "drop-head"});
    set_policy(
        &broker,
        "policies",
        "dh",
        json!({"pattern": "^dh", "definition": def, "apply-to": "queues"}),
    )
    .await;
    let (_c, ch) = confirming_channel(&broker).await;
    declare_queue(&ch, "dh.new").await;
    declare_queue(&ch, "other").await;
    fill(&ch, "dh.new", 5).await;
    fill(&ch, "other", 5).await;
    assert_eq!(bodies(&ch, "dh.new").await, ["m3", "m4"]);
    assert_eq!(
        common::ready(&ch, "other").await,
        5,
        "the pattern does not match"
    );
    broker.stop().await;
}

#[tokio::test]
async fn a_message_ttl_policy_expires_messages_published_after_it() {
    let broker = TestBroker::start_with_management().await;
    let (_c, ch) = confirming_channel(&broker).await;
    declare_queue(&ch, "ttl").await;
    fill(&ch, "ttl", 1).await;
    set_policy(
        &broker,
        "policies",
        "ttl",
        json!({"pattern": "^ttl$", "definition": {"message-ttl": 1}}),
    )
    .await;
    assert!(send(&ch, "", "ttl", b"short").await.is_ack());
    // RabbitMQ 3.10 keeps the expiry a message got when it was queued: the one queued
    // before the policy stays, the one after expires.
    wait_until("the message published after the policy expires", || async {
        bodies_peek(&ch, "ttl").await == ["m0"]
    })
    .await;
    broker.stop().await;
}

/// The bodies in `queue`, requeued after reading (the queue keeps them).
async fn bodies_peek(ch: &Channel, queue: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut last = 0;
    while let Some(m) = within(ch.basic_get(queue.into(), BasicGetOptions { no_ack: false }))
        .await
        .expect("get")
    {
        out.push(String::from_utf8_lossy(&m.delivery.data).into_owned());
        last = m.delivery.delivery_tag;
    }
    if last != 0 {
        ch.basic_nack(
            last,
            BasicNackOptions {
                multiple: true,
                requeue: true,
            },
        )
        .await
        .expect("nack");
    }
    out
}

#[tokio::test]
async fn a_dead_letter_exchange_policy_takes_rejected_messages() {
    let broker = TestBroker::start_with_management().await;
    let (_c, ch) = confirming_channel(&broker).await;
    declare_queue(&ch, "work").await;
    declare_queue(&ch, "parked").await;
    ch.queue_bind(
        "parked".into(),
        "amq.fanout".into(),
        "".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("bind");
    set_policy(
        &broker,
        "policies",
        "dlx",
        json!({"pattern": "^work$", "definition": {"dead-letter-exchange": "amq.fanout"}}),
    )
    .await;
    assert!(send(&ch, "", "work", b"bad").await.is_ack());
    let m = common::get_eventually_with(&ch, "work", false).await;
    ch.basic_reject(
        m.delivery.delivery_tag,
        BasicRejectOptions { requeue: false },
    )
    .await
    .expect("reject");
    let parked = common::get_eventually(&ch, "parked").await;
    assert_eq!(parked.delivery.data, b"bad");
    broker.stop().await;
}

#[tokio::test]
async fn an_alternate_exchange_policy_catches_unroutable_messages_until_cleared() {
    let broker = TestBroker::start_with_management().await;
    let (_c, ch) = confirming_channel(&broker).await;
    ch.exchange_declare(
        "unbound".into(),
        lapin::ExchangeKind::Direct,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("exchange");
    declare_queue(&ch, "caught").await;
    ch.queue_bind(
        "caught".into(),
        "amq.fanout".into(),
        "".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    )
    .await
    .expect("bind");
    let body = json!({"pattern": "^unbound$", "definition": {"alternate-exchange": "amq.fanout"},
                      "apply-to": "exchanges"});
    set_policy(&broker, "policies", "ae", body).await;
    assert!(send(&ch, "unbound", "nowhere", b"1").await.is_ack());
    assert_eq!(common::ready(&ch, "caught").await, 1);
    // A queues-only policy does not touch exchanges.
    let body = json!({"pattern": "^unbound$", "definition": {"alternate-exchange": "amq.fanout"},
                      "apply-to": "queues"});
    set_policy(&broker, "policies", "ae", body).await;
    assert!(send(&ch, "unbound", "nowhere", b"2").await.is_ack());
    assert_eq!(common::ready(&ch, "caught").await, 1);
    // The exchange's own argument wins over a policy.
    let args = table(&[("alternate-exchange", text("amq.fanout"))]);
    ch.exchange_declare(
        "own.ae".into(),
        lapin::ExchangeKind::Direct,
        ExchangeDeclareOptions::default(),
        args,
    )
    .await
    .expect("exchange");
    let body = json!({"pattern": "^own", "definition": {"alternate-exchange": "missing"}});
    set_policy(&broker, "policies", "ae2", body).await;
    assert!(send(&ch, "own.ae", "nowhere", b"3").await.is_ack());
    assert_eq!(common::ready(&ch, "caught").await, 2);
    clear_policy(&broker, "policies", "ae").await;
    broker.stop().await;
}

#[tokio::test]
async fn queue_arguments_policies_and_operator_policies_combine_as_in_rabbitmq() {
    let broker = TestBroker::start_with_management().await;
    let (_c, ch) = confirming_channel(&broker).await;
    declare_queue(&ch, "pre.dead.arg").await;
    declare_queue(&ch, "pre.dead.pol").await;
    // The argument's limit is lower than the policy's: the argument holds.
    declare_with(&ch, "pre.low", table(&[("x-max-length", int(2))])).await;
    // The policy's limit is lower than the argument's: the policy holds.
    declare_with(&ch, "pre.high", table(&[("x-max-length", int(8))])).await;
    // The dead-letter exchange of the argument wins over the policy's.
    let args = table(&[
        ("x-max-length", int(1)),
        ("x-dead-letter-exchange", text("")),
        ("x-dead-letter-routing-key", text("pre.dead.arg")),
    ]);
    declare_with(&ch, "pre.dlx", args).await;
    let def = json!({"max-length": 4, "dead-letter-exchange": "",
                     "dead-letter-routing-key": "pre.dead.pol"});
    set_policy(
        &broker,
        "policies",
        "p",
        json!({"pattern": "^pre\\.(low|high|dlx)$", "definition": def}),
    )
    .await;
    fill(&ch, "pre.low", 6).await;
    fill(&ch, "pre.high", 6).await;
    fill(&ch, "pre.dlx", 2).await;
    assert_eq!(common::ready(&ch, "pre.low").await, 2);
    assert_eq!(common::ready(&ch, "pre.high").await, 4);
    wait_until("dead-lettered through the argument", || async {
        common::ready(&ch, "pre.dead.arg").await == 1
    })
    .await;
    // The queues without a dead-letter argument use the policy's: 4 + 2 dropped.
    wait_until("dead-lettered through the policy", || async {
        common::ready(&ch, "pre.dead.pol").await == 6
    })
    .await;
    // An operator policy lowers every limit it sets below the others.
    set_policy(
        &broker,
        "operator-policies",
        "op",
        json!({"pattern": "^pre\\.", "definition": {"max-length": 1}}),
    )
    .await;
    assert_eq!(common::ready(&ch, "pre.low").await, 1);
    assert_eq!(common::ready(&ch, "pre.high").await, 1);
    // A higher operator limit changes nothing; cleared, the policy's limit is back.
    set_policy(
        &broker,
        "operator-policies",
        "op",
        json!({"pattern": "^pre\\.", "definition": {"max-length": 100}}),
    )
    .await;
    fill(&ch, "pre.high", 6).await;
    assert_eq!(common::ready(&ch, "pre.high").await, 4);
    clear_policy(&broker, "operator-policies", "op").await;
    clear_policy(&broker, "policies", "p").await;
    fill(&ch, "pre.high", 6).await;
    assert_eq!(
        common::ready(&ch, "pre.high").await,
        8,
        "the argument alone"
    );
    broker.stop().await;
}

#[tokio::test]
async fn the_highest_priority_wins_and_ties_go_to_the_name_that_sorts_last() {
    let broker = TestBroker::start_with_management().await;
    let (_c, ch) = confirming_channel(&broker).await;
    declare_queue(&ch, "tie").await;
    for (name, limit) in [("b", 7), ("d", 5), ("a", 8)] {
        let body = json!({"pattern": "^tie$", "definition": {"max-length": limit}});
        set_policy(&broker, "policies", name, body).await;
    }
    fill(&ch, "tie", 10).await;
    assert_eq!(
        common::ready(&ch, "tie").await,
        5,
        "d: the last name of equal priority"
    );
    let body = json!({"pattern": "^tie$", "definition": {"max-length": 3}, "priority": 1});
    set_policy(&broker, "policies", "a", body).await;
    assert_eq!(
        common::ready(&ch, "tie").await,
        3,
        "a: now the highest priority"
    );
    broker.stop().await;
}

#[tokio::test]
async fn policies_survive_a_restart_and_apply_to_the_restored_queues() {
    let broker = TestBroker::start_with_management().await;
    let (c, ch) = confirming_channel(&broker).await;
    common::declare(&ch, "kept", common::durable()).await;
    set_policy(
        &broker,
        "policies",
        "keep",
        json!({"pattern": "^kept$", "definition": {"max-length": 2}, "priority": 3}),
    )
    .await;
    set_policy(
        &broker,
        "operator-policies",
        "cap",
        json!({"pattern": "^kept$", "definition": {"max-length": 1}}),
    )
    .await;
    drop(ch);
    let _ = c.close(200, "bye".into()).await;
    let policies = broker.http().get("/api/policies").await.json();
    let operator = broker.http().get("/api/operator-policies").await.json();
    let dir = broker.restart_later().await;
    let broker = TestBroker::start_on(dir, |c| warren::Config {
        management_port: warren::ListenerPort::On(0),
        ..c
    })
    .await;
    assert_eq!(broker.http().get("/api/policies").await.json(), policies);
    assert_eq!(
        broker.http().get("/api/operator-policies").await.json(),
        operator
    );
    let (_c, ch) = confirming_channel(&broker).await;
    fill(&ch, "kept", 3).await;
    assert_eq!(common::ready(&ch, "kept").await, 1);
    // The file holds them as RabbitMQ exports them.
    let file = std::fs::read(broker.data_dir.join("definitions.json")).expect("definitions");
    let defs: Value = serde_json::from_slice(&file).expect("json");
    assert_eq!(defs["policies"][0]["name"], "keep");
    let op = defs["parameters"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["component"] == "operator_policy"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(op["name"], "cap");
    assert_eq!(op["value"]["definition"], json!({"max-length": 1}));
    broker.stop().await;
}

#[tokio::test]
async fn policies_are_imported_from_a_definitions_file_as_the_reference_exports_them() {
    // The shape of `rabbitmqctl export_definitions` on RabbitMQ 3.10.8: policies in
    // their section, operator policies as "operator_policy" runtime parameters.
    let defs = json!({
        "rabbit_version": "3.10.8",
        "users": [{"name": "guest", "password_hash": "fX3lwz8qM4mbIXz2UMvaidgXG36aJ43+f+OHJc2SUlsY2eoF", "hashing_algorithm":
                   "rabbit_password_hashing_sha256", "tags": ["administrator"], "limits": {}}],
        "vhosts": [{"name": "/"}],
        "permissions": [{"user": "guest", "vhost": "/", "configure": ".*", "write": ".*",
                         "read": ".*"}],
        "parameters": [{"value": {"pattern": "^imp", "definition": {"max-length": 2},
                                  "priority": 0, "apply-to": "all"},
                        "vhost": "/", "component": "operator_policy", "name": "imp-op"}],
        "policies": [{"vhost": "/", "name": "imp", "pattern": "^imp", "apply-to": "queues",
                      "definition": {"max-length": 3, "overflow": "reject-publish"},
                      "priority": 0},
                     {"vhost": "/", "name": "broken", "pattern": "^x",
                      "definition": {"max-length": -1}, "priority": 0}],
        "queues": [{"name": "imp.q", "vhost": "/", "durable": true, "auto_delete": false,
                    "arguments": {}}],
        "exchanges": [], "bindings": []
    });
    let file = std::env::temp_dir().join(format!("warren-policies-{}.json", std::process::id()));
    std::fs::write(&file, defs.to_string()).expect("write definitions");
    let path = file.clone();
    let broker = TestBroker::start_with(move |c| warren::Config {
        management_port: warren::ListenerPort::On(0),
        definitions: Some(path),
        ..c
    })
    .await;
    let _ = std::fs::remove_file(&file);
    let listed = broker.http().get("/api/policies").await.json();
    assert_eq!(
        listed,
        json!([{"vhost": "/", "name": "imp", "pattern": "^imp", "apply-to": "queues",
                "definition": {"max-length": 3, "overflow": "reject-publish"}, "priority": 0}]),
        "the invalid one is skipped"
    );
    let (_c, ch) = confirming_channel(&broker).await;
    fill(&ch, "imp.q", 2).await;
    assert!(
        send(&ch, "", "imp.q", b"over").await.is_nack(),
        "the operator's 2 holds"
    );
    broker.stop().await;
}

#[tokio::test]
async fn an_expires_policy_deletes_a_queue_left_unused() {
    let broker = TestBroker::start_with_management().await;
    let (_conn, ch) = broker.channel().await;
    declare_queue(&ch, "exp.unused").await;
    declare_queue(&ch, "kept.unused").await;
    let body = json!({"pattern": "^exp\\.", "definition": {"expires": 50}});
    set_policy(&broker, "policies", "exp", body).await;
    // Looked at from inside: a passive declare would renew the lease it watches.
    let exists = |name: &str| {
        broker
            .server
            .broker()
            .vhost("/")
            .is_some_and(|v| v.has_queue(name))
    };
    wait_until("the queue expires", || async { !exists("exp.unused") }).await;
    assert!(exists("kept.unused"));
    broker.stop().await;
}
