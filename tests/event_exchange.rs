//! The event exchange `amq.rabbitmq.event` (`--event-exchange`, RabbitMQ's
//! rabbitmq_event_exchange plugin): which events exist, their routing keys, headers and
//! header types as RabbitMQ 3.10.8 writes them (each compared with the reference broker
//! with the plugin on) for topology, connections, channels and consumers, the refusals on
//! the exchange, bounds, a restart, and a declare/delete storm with a `#` consumer that
//! must not hang. The control-plane events are in event_exchange_admin.rs.

mod common;

use common::events::{listen, next, next_of, passive_event_exchange, s, with_events, Ev, EXCHANGE};
use common::{amqp_error, channel_close_error, refusal, table, within, TestBroker};
use futures::StreamExt;
use lapin::options::{
    BasicCancelOptions, BasicConsumeOptions, BasicPublishOptions, ExchangeDeclareOptions,
    ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Connection, ConnectionProperties, ExchangeKind};
use serde_json::json;

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
    // The refusal closes the channel asynchronously; a watcher on it sees the close.
    let publish = async {
        ch.basic_publish(
            EXCHANGE.into(),
            "queue.created".into(),
            BasicPublishOptions::default(),
            b"",
            BasicProperties::default(),
        )
        .await
        .map(drop)
    };
    let err = amqp_error(&channel_close_error(&ch, publish).await);
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
