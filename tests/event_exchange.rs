//! The event exchange `amq.rabbitmq.event` (`--event-exchange`, RabbitMQ's
//! rabbitmq_event_exchange plugin): which events exist, their routing keys, headers and
//! header types as RabbitMQ 3.10.8 writes them (each compared with the reference broker
//! with the plugin on), the vhost they are published in, the refusals on the exchange,
//! and a declare/delete storm with a `#` consumer that must not hang.

mod common;

use common::{refusal, table, within, TestBroker};
use futures::StreamExt;
use lapin::options::{
    BasicCancelOptions, BasicConsumeOptions, BasicPublishOptions, ExchangeDeclareOptions,
    ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, Consumer, ExchangeKind};
use serde_json::json;

const EXCHANGE: &str = "amq.rabbitmq.event";

async fn with_events() -> TestBroker {
    TestBroker::start_with(|c| warren::Config {
        event_exchange: true,
        management_port: warren::ListenerPort::On(0),
        ..c
    })
    .await
}

/// A consumer of every event matching `pattern` (on its own connection).
async fn listen(broker: &TestBroker, pattern: &str) -> (Connection, Channel, Consumer) {
    let (conn, ch) = broker.channel().await;
    let q = within(ch.queue_declare(
        "".into(),
        QueueDeclareOptions {
            exclusive: true,
            ..Default::default()
        },
        FieldTable::default(),
    ))
    .await
    .unwrap();
    let name = q.name().as_str().to_owned();
    within(ch.queue_bind(
        name.as_str().into(),
        EXCHANGE.into(),
        pattern.into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    ))
    .await
    .unwrap();
    let consumer = common::consume(
        &ch,
        &name,
        BasicConsumeOptions {
            no_ack: true,
            ..Default::default()
        },
    )
    .await;
    (conn, ch, consumer)
}

struct Ev {
    key: String,
    headers: FieldTable,
    props: BasicProperties,
    body: Vec<u8>,
}

impl Ev {
    fn get(&self, k: &str) -> &AMQPValue {
        self.headers
            .inner()
            .get(k)
            .unwrap_or_else(|| panic!("{} has no header {k}: {:?}", self.key, self.headers))
    }
    fn text(&self, k: &str) -> String {
        match self.get(k) {
            AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
            other => panic!("{k} is not a longstr: {other:?}"),
        }
    }
    fn flag(&self, k: &str) -> bool {
        match self.get(k) {
            AMQPValue::Boolean(b) => *b,
            other => panic!("{k} is not a bool: {other:?}"),
        }
    }
    fn long(&self, k: &str) -> i64 {
        match self.get(k) {
            AMQPValue::LongLongInt(n) => *n,
            other => panic!("{k} is not a long: {other:?}"),
        }
    }
    fn strings(&self, k: &str) -> Vec<String> {
        match self.get(k) {
            AMQPValue::FieldArray(a) => a
                .as_slice()
                .iter()
                .map(|v| match v {
                    AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
                    other => panic!("{k} holds {other:?}"),
                })
                .collect(),
            other => panic!("{k} is not an array: {other:?}"),
        }
    }
    fn keys(&self) -> Vec<&str> {
        self.headers.inner().keys().map(|k| k.as_str()).collect()
    }
}

/// The next event.
async fn next(consumer: &mut Consumer) -> Ev {
    let d = within(consumer.next())
        .await
        .expect("consumer open")
        .expect("delivery");
    Ev {
        key: d.routing_key.as_str().to_owned(),
        headers: d.properties.headers().clone().unwrap_or_default(),
        props: d.properties.clone(),
        body: d.data.clone(),
    }
}

/// The next event with routing key `key` (others are skipped).
async fn next_of(consumer: &mut Consumer, key: &str) -> Ev {
    loop {
        let e = next(consumer).await;
        if e.key == key {
            return e;
        }
    }
}

fn s(v: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(v))
}

/// A passive exchange.declare of the event exchange: its refusal.
async fn passive_event_exchange(ch: &Channel) -> (u16, String) {
    let declared = ch
        .exchange_declare(
            EXCHANGE.into(),
            ExchangeKind::Topic,
            ExchangeDeclareOptions {
                passive: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await;
    refusal(declared)
}

#[tokio::test]
async fn without_the_flag_there_is_no_event_exchange() {
    let broker = TestBroker::start().await;
    let (_c, ch) = broker.channel().await;
    let err = passive_event_exchange(&ch).await;
    assert_eq!(
        err,
        (
            404,
            "NOT_FOUND - no exchange 'amq.rabbitmq.event' in vhost '/'".into()
        )
    );
    assert!(broker.server.broker().events.is_none());
}

#[tokio::test]
async fn the_exchange_is_a_durable_internal_topic_that_clients_cannot_touch() {
    let broker = with_events().await;
    let x = broker
        .http()
        .get("/api/exchanges/%2F/amq.rabbitmq.event")
        .await;
    let x = x.json();
    assert_eq!(
        (&x["type"], &x["durable"], &x["internal"], &x["auto_delete"]),
        (&json!("topic"), &json!(true), &json!(true), &json!(false))
    );
    let (conn, ch) = broker.channel().await;
    // Declared again as it is: fine; otherwise RabbitMQ's equivalence checks.
    within(ch.exchange_declare(
        EXCHANGE.into(),
        ExchangeKind::Topic,
        ExchangeDeclareOptions {
            durable: true,
            internal: true,
            ..Default::default()
        },
        FieldTable::default(),
    ))
    .await
    .expect("redeclare");
    let publish = ch
        .basic_publish(
            EXCHANGE.into(),
            "queue.created".into(),
            BasicPublishOptions::default(),
            b"",
            BasicProperties::default(),
        )
        .await;
    // The refusal closes the channel; a later call reports it.
    let err = match publish {
        Ok(confirm) => refusal(confirm.await.and(ch.basic_qos(1, Default::default()).await)),
        Err(e) => refusal::<()>(Err(e)),
    };
    assert_eq!(
        err,
        (
            403,
            "ACCESS_REFUSED - cannot publish to internal exchange 'amq.rabbitmq.event' in vhost '/'"
                .into()
        )
    );
    let ch = conn.create_channel().await.unwrap();
    let err = refusal(
        ch.exchange_delete(EXCHANGE.into(), ExchangeDeleteOptions::default())
            .await,
    );
    assert_eq!(
        err,
        (
            403,
            "ACCESS_REFUSED - deletion of system exchange 'amq.rabbitmq.event' in vhost '/' not allowed"
                .into()
        )
    );
    // Not in the definitions: it exists while the flag is on.
    let defs = broker.http().get("/api/definitions").await.json();
    let names: Vec<&str> = defs["exchanges"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|x| x["name"].as_str())
        .collect();
    assert!(!names.contains(&EXCHANGE), "{names:?}");
}

#[tokio::test]
async fn topology_events_carry_rabbitmqs_headers() {
    let broker = with_events().await;
    let (_l, _lch, mut events) = listen(&broker, "#").await;
    let (_c, ch) = broker.channel().await;
    let args = table(&[("x-max-length", AMQPValue::LongInt(10))]);
    within(ch.queue_declare(
        "ev-q".into(),
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
        args,
    ))
    .await
    .unwrap();
    let e = next_of(&mut events, "queue.created").await;
    assert!(e.body.is_empty());
    assert_eq!(e.props.delivery_mode(), &Some(2));
    let ts = e.props.timestamp().expect("timestamp property");
    assert_eq!(ts, (e.long("timestamp_in_ms") / 1000) as u64);
    assert_eq!(e.text("name"), "ev-q");
    assert_eq!(e.text("vhost"), "/");
    assert_eq!(e.text("user_who_performed_action"), "guest");
    assert!(e.flag("durable") && !e.flag("auto_delete") && !e.flag("exclusive"));
    assert_eq!(e.text("owner_pid"), "");
    assert_eq!(
        e.strings("arguments"),
        [r#"{<<"x-max-length">>,signedint,10}"#]
    );
    let mut keys = e.keys();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "arguments",
            "auto_delete",
            "durable",
            "exclusive",
            "name",
            "owner_pid",
            "timestamp_in_ms",
            "user_who_performed_action",
            "vhost"
        ]
    );

    let ae = table(&[("alternate-exchange", s("foo"))]);
    within(ch.exchange_declare(
        "ev-x".into(),
        ExchangeKind::Direct,
        ExchangeDeclareOptions::default(),
        ae,
    ))
    .await
    .unwrap();
    let e = next_of(&mut events, "exchange.created").await;
    assert_eq!(
        (e.text("name"), e.text("type"), e.text("policy")),
        ("ev-x".into(), "direct".into(), "".into())
    );
    assert!(!e.flag("durable") && !e.flag("internal") && !e.flag("auto_delete"));
    assert_eq!(
        e.strings("arguments"),
        [r#"{<<"alternate-exchange">>,longstr,<<"foo">>}"#]
    );

    let bargs = table(&[("a", AMQPValue::LongInt(1))]);
    within(ch.queue_bind(
        "ev-q".into(),
        "ev-x".into(),
        "rk".into(),
        QueueBindOptions::default(),
        bargs.clone(),
    ))
    .await
    .unwrap();
    let e = next_of(&mut events, "binding.created").await;
    assert_eq!(
        [
            e.text("source_name"),
            e.text("source_kind"),
            e.text("destination_name"),
            e.text("destination_kind"),
            e.text("routing_key"),
            e.text("vhost"),
        ],
        ["ev-x", "exchange", "ev-q", "queue", "rk", "/"]
    );
    assert_eq!(e.strings("arguments"), [r#"{<<"a">>,signedint,1}"#]);
    within(ch.queue_unbind("ev-q".into(), "ev-x".into(), "rk".into(), bargs))
        .await
        .unwrap();
    let e = next_of(&mut events, "binding.deleted").await;
    assert_eq!(e.text("destination_name"), "ev-q");

    // An exchange-to-exchange binding goes with the exchange: binding.deleted too.
    within(ch.exchange_bind(
        "ev-x".into(),
        "amq.direct".into(),
        "rk2".into(),
        Default::default(),
        FieldTable::default(),
    ))
    .await
    .unwrap();
    let e = next_of(&mut events, "binding.created").await;
    assert_eq!(
        (e.text("destination_kind"), e.text("source_name")),
        ("exchange".into(), "amq.direct".into())
    );
    within(ch.exchange_delete("ev-x".into(), ExchangeDeleteOptions::default()))
        .await
        .unwrap();
    let e = next(&mut events).await;
    assert_eq!(
        (e.key.as_str(), e.text("routing_key")),
        ("binding.deleted", "rk2".into())
    );
    let e = next(&mut events).await;
    assert_eq!(
        (e.key.as_str(), e.text("name")),
        ("exchange.deleted", "ev-x".into())
    );
    assert_eq!(e.text("user_who_performed_action"), "guest");

    within(ch.queue_delete("ev-q".into(), QueueDeleteOptions::default()))
        .await
        .unwrap();
    let e = next(&mut events).await;
    assert_eq!(
        (e.key.as_str(), e.text("name")),
        ("queue.deleted", "ev-q".into())
    );
    let mut keys = e.keys();
    keys.sort_unstable();
    assert_eq!(
        keys,
        [
            "name",
            "timestamp_in_ms",
            "user_who_performed_action",
            "vhost"
        ]
    );
}

#[tokio::test]
async fn connection_channel_and_consumer_events() {
    let broker = with_events().await;
    let (_l, _lch, mut events) = listen(&broker, "#").await;
    let props = ConnectionProperties::default().with_connection_name("ev-conn".into());
    let conn = within(Connection::connect(&broker.url(), props))
        .await
        .unwrap();

    let login = next_of(&mut events, "user.authentication.success").await;
    assert_eq!(login.text("name"), "guest");
    assert_eq!(login.text("auth_mechanism"), "PLAIN");
    assert_eq!(login.text("connection_type"), "network");
    assert_eq!(login.text("peer_host"), "{127,0,0,1}");
    assert!(!login.flag("ssl"));
    assert!(login
        .headers
        .inner()
        .get("user_who_performed_action")
        .is_none());

    let created = next_of(&mut events, "connection.created").await;
    assert_eq!(created.text("user_provided_name"), "ev-conn");
    assert_eq!(created.text("user"), "guest");
    assert_eq!(created.text("vhost"), "/");
    assert_eq!(created.text("protocol"), "{0,9,1}");
    assert_eq!(created.text("type"), "network");
    assert_eq!(created.text("ssl_protocol"), "");
    assert_eq!(created.long("port"), i64::from(broker.addr.port()));
    assert!(created.long("channel_max") > 0 && created.long("frame_max") > 0);
    let name = created.text("name");
    assert!(name.ends_with(&format!("-> {}", broker.addr)), "{name}");
    assert!(created
        .strings("client_properties")
        .contains(&r#"{<<"connection_name">>,longstr,<<"ev-conn">>}"#.to_owned()));
    let conn_pid = created.text("pid");

    let ch = conn.create_channel().await.unwrap();
    let e = next_of(&mut events, "channel.created").await;
    assert_eq!(e.long("number"), i64::from(ch.id()));
    assert_eq!(e.text("connection"), conn_pid);
    assert_eq!(e.text("name"), format!("{name} ({})", ch.id()));
    let ch_pid = e.text("pid");

    common::declare(&ch, "ev-consumed", QueueDeclareOptions::default()).await;
    let args = table(&[("x-priority", AMQPValue::LongInt(3))]);
    let c = within(ch.basic_consume(
        "ev-consumed".into(),
        "ev-tag".into(),
        BasicConsumeOptions::default(),
        args,
    ))
    .await
    .unwrap();
    let e = next_of(&mut events, "consumer.created").await;
    assert_eq!(
        (e.text("consumer_tag"), e.text("queue"), e.text("channel")),
        ("ev-tag".into(), "ev-consumed".into(), ch_pid.clone())
    );
    assert!(e.flag("ack_required") && !e.flag("exclusive"));
    assert_eq!(e.long("prefetch_count"), 0);
    assert_eq!(
        e.strings("arguments"),
        [r#"{<<"x-priority">>,signedint,3}"#]
    );
    within(ch.basic_cancel(c.tag().as_str().into(), BasicCancelOptions::default()))
        .await
        .unwrap();
    let e = next(&mut events).await;
    assert_eq!(
        (e.key.as_str(), e.text("consumer_tag")),
        ("consumer.deleted", "ev-tag".into())
    );

    // An exclusive queue goes with its connection, deleted by "rmq-internal".
    common::declare(&ch, "ev-excl", common::exclusive()).await;
    let e = next_of(&mut events, "queue.created").await;
    assert_eq!(e.text("owner_pid"), conn_pid);
    within(ch.close(200, "bye".into())).await.unwrap();
    let e = next(&mut events).await;
    assert_eq!((e.key.as_str(), e.text("pid")), ("channel.closed", ch_pid));
    within(conn.close(200, "bye".into())).await.unwrap();
    let e = next(&mut events).await;
    assert_eq!(
        (
            e.key.as_str(),
            e.text("name"),
            e.text("user_who_performed_action")
        ),
        ("queue.deleted", "ev-excl".into(), "rmq-internal".into())
    );
    let e = next(&mut events).await;
    assert_eq!(
        (e.key.as_str(), e.text("pid")),
        ("connection.closed", conn_pid)
    );
    assert_eq!(e.text("user_provided_name"), "ev-conn");
}

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
async fn a_declare_and_delete_storm_with_a_consumer_on_everything_does_not_hang() {
    let broker = with_events().await;
    let (_l, _lch, mut events) = listen(&broker, "#").await;
    const TASKS: usize = 4;
    const ROUNDS: usize = 100;
    let mut tasks = Vec::new();
    for t in 0..TASKS {
        let (conn, ch) = broker.channel().await;
        tasks.push(tokio::spawn(async move {
            for i in 0..ROUNDS {
                let q = format!("storm-{t}-{i}");
                ch.queue_declare(q.as_str().into(), Default::default(), FieldTable::default())
                    .await
                    .unwrap();
                ch.queue_bind(
                    q.as_str().into(),
                    "amq.topic".into(),
                    "#".into(),
                    Default::default(),
                    FieldTable::default(),
                )
                .await
                .unwrap();
                ch.queue_delete(q.as_str().into(), Default::default())
                    .await
                    .unwrap();
            }
            drop(conn);
        }));
    }
    for t in tasks {
        within(t).await.unwrap();
    }
    // queue.created, binding.created, queue.deleted, binding.deleted per round.
    let (mut deleted, mut consumers) = (0, 0);
    while deleted < TASKS * ROUNDS {
        match next(&mut events).await.key.as_str() {
            "queue.deleted" => deleted += 1,
            "consumer.created" => consumers += 1,
            _ => {}
        }
    }
    // Thousands of deliveries to the `#` consumer, and no event about them: its own
    // consumer.created at most, once.
    assert!(consumers <= 1, "{consumers} consumer.created");
}

#[tokio::test]
async fn deleting_a_consumed_queue_tells_of_its_consumer_twice_as_rabbitmq_does() {
    let broker = with_events().await;
    let (_l, _lch, mut events) = listen(&broker, "#").await;
    let (_c, ch) = broker.channel().await;
    common::declare(&ch, "ev-gone", QueueDeclareOptions::default()).await;
    // Kept: lapin cancels a consumer it drops.
    let _consumer = within(ch.basic_consume(
        "ev-gone".into(),
        "ev-gone-tag".into(),
        BasicConsumeOptions::default(),
        FieldTable::default(),
    ))
    .await
    .unwrap();
    let (_c2, ch2) = broker.channel().await;
    within(ch2.queue_delete("ev-gone".into(), QueueDeleteOptions::default()))
        .await
        .unwrap();
    // Only the events about this queue (the other connections tell theirs too).
    let mut about = Vec::new();
    while about.len() < 5 {
        let Ok(Some(Ok(d))) =
            tokio::time::timeout(std::time::Duration::from_secs(3), events.next()).await
        else {
            panic!("only {about:?}");
        };
        let e = Ev {
            key: d.routing_key.as_str().to_owned(),
            headers: d.properties.headers().clone().unwrap_or_default(),
            props: d.properties.clone(),
            body: d.data.clone(),
        };
        let mine = ["queue", "name"]
            .iter()
            .any(|k| e.headers.inner().get(*k) == Some(&s("ev-gone")));
        if mine {
            let actor = e.headers.inner().get("user_who_performed_action").cloned();
            about.push((e.key, actor));
        }
    }
    let guest = Some(s("guest"));
    assert_eq!(
        about,
        [
            ("queue.created".to_owned(), guest.clone()),
            ("consumer.created".to_owned(), guest.clone()),
            // The queue tells (as the deleting user), then the consumer's channel (no actor).
            ("consumer.deleted".to_owned(), guest.clone()),
            ("queue.deleted".to_owned(), guest),
            ("consumer.deleted".to_owned(), None),
        ]
    );
}

#[tokio::test]
async fn a_huge_argument_table_is_cut_in_the_event_and_the_listener_lives_on() {
    let broker = with_events().await;
    let (_l, lch, mut events) = listen(&broker, "queue.created").await;
    let (_c, ch) = broker.channel().await;
    let huge = AMQPValue::LongString(LongString::from(vec![b'x'; 100_000]));
    let args = table(&[("a-small", AMQPValue::LongInt(1)), ("b-huge", huge)]);
    within(ch.queue_declare("ev-huge".into(), QueueDeclareOptions::default(), args))
        .await
        .unwrap();
    let e = next(&mut events).await;
    assert_eq!(e.text("name"), "ev-huge");
    assert_eq!(e.strings("arguments"), [r#"{<<"a-small">>,signedint,1}"#]);
    // The listener's channel still works.
    common::declare(&lch, "ev-after", QueueDeclareOptions::default()).await;
}

#[tokio::test]
async fn a_durable_queue_keeps_its_binding_and_persistent_events_across_a_restart() {
    let broker = with_events().await;
    let (_c, ch) = broker.channel().await;
    common::declare(&ch, "ev-durable", common::durable()).await;
    within(ch.queue_bind(
        "ev-durable".into(),
        EXCHANGE.into(),
        "queue.deleted".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    ))
    .await
    .unwrap();
    common::declare(&ch, "ev-short", QueueDeclareOptions::default()).await;
    within(ch.queue_delete("ev-short".into(), QueueDeleteOptions::default()))
        .await
        .unwrap();
    common::wait_until("the event is queued", || async {
        common::ready(&ch, "ev-durable").await == 1
    })
    .await;
    drop((ch, _c));
    let dir = broker.restart_later().await;
    let broker = TestBroker::start_on(dir, |c| warren::Config {
        event_exchange: true,
        ..c
    })
    .await;
    let (_c, ch) = broker.channel().await;
    // The persistent event survived, and the binding still routes new ones.
    let m = common::get_eventually(&ch, "ev-durable").await;
    assert_eq!(m.delivery.routing_key.as_str(), "queue.deleted");
    common::declare(&ch, "ev-short2", QueueDeclareOptions::default()).await;
    within(ch.queue_delete("ev-short2".into(), QueueDeleteOptions::default()))
        .await
        .unwrap();
    let m = common::get_eventually(&ch, "ev-durable").await;
    let headers = m.delivery.properties.headers().clone().unwrap_or_default();
    assert_eq!(headers.inner().get("name"), Some(&s("ev-short2")));
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
