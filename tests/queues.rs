//! Queues: queue.declare (server-named, passive, durable / exclusive / auto-delete, argument
//! equivalence, counts), exclusive locking and lifetime, auto-delete lifetime, purge, delete
//! with if-unused / if-empty, bind / unbind rules and texts, the default exchange, and the
//! "empty name means the channel's last declared queue" rule, each answered as RabbitMQ 3.10 does.
mod common;

use common::{
    exclusive, expect_channel_error, passive, publish, queue_exists, table, within, TestBroker,
};
use futures::StreamExt;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Consumer, Queue};

async fn declare(ch: &Channel, name: &str, options: QueueDeclareOptions) -> lapin::Result<Queue> {
    declare_with(ch, name, options, FieldTable::default()).await
}

async fn declare_with(
    ch: &Channel,
    name: &str,
    options: QueueDeclareOptions,
    arguments: FieldTable,
) -> lapin::Result<Queue> {
    within(ch.queue_declare(name.into(), options, arguments)).await
}

async fn bind(
    ch: &Channel,
    queue: &str,
    exchange: &str,
    key: &str,
    arguments: FieldTable,
) -> lapin::Result<()> {
    within(ch.queue_bind(
        queue.into(),
        exchange.into(),
        key.into(),
        QueueBindOptions::default(),
        arguments,
    ))
    .await
}

async fn consume(ch: &Channel, queue: &str, tag: &str) -> lapin::Result<Consumer> {
    within(ch.basic_consume(
        queue.into(),
        tag.into(),
        BasicConsumeOptions::default(),
        FieldTable::default(),
    ))
    .await
}

/// The body of the next message of `queue` (no-ack), or None when it is empty.
async fn get(ch: &Channel, queue: &str) -> lapin::Result<Option<Vec<u8>>> {
    let got = within(ch.basic_get(queue.into(), BasicGetOptions { no_ack: true })).await?;
    Ok(got.map(|m| m.delivery.data))
}

fn not_found(queue: &str) -> String {
    format!("NOT_FOUND - no queue '{queue}' in vhost '/'")
}

fn locked(queue: &str) -> String {
    format!(
        "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{queue}' in vhost '/'. It could be originally \
         declared on another connection or the exclusive property value does not match that of the original declaration."
    )
}

fn inequivalent(arg: &str, queue: &str, detail: &str) -> String {
    format!(
        "PRECONDITION_FAILED - inequivalent arg '{arg}' for queue '{queue}' in vhost '/': {detail}"
    )
}

const DEFAULT_EXCHANGE_REFUSED: &str =
    "ACCESS_REFUSED - operation not permitted on the default exchange";
const NO_PREVIOUS_QUEUE: &str = "NOT_FOUND - no previously declared queue";

#[tokio::test]
async fn server_named_queues() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    let a = declare(&ch, "", QueueDeclareOptions::default())
        .await
        .unwrap();
    let b = declare(&ch, "", exclusive()).await.unwrap();
    for q in [&a, &b] {
        let name = q.name().as_str();
        assert!(name.starts_with("amq.gen-"), "{name}");
        assert_eq!(name.len(), 30, "{name}");
        assert_eq!((q.message_count(), q.consumer_count()), (0, 0));
    }
    assert_ne!(a.name(), b.name());
    // A server-named queue is a queue like any other: reachable by its name.
    publish(&ch, "", a.name().as_str(), b"hello").await;
    assert_eq!(
        get(&ch, a.name().as_str()).await.unwrap().as_deref(),
        Some(&b"hello"[..])
    );
    broker.stop().await;
}

#[tokio::test]
async fn passive_declare_of_missing_queue_is_404() {
    let broker = TestBroker::start().await;
    let (conn, ch) = broker.channel().await;
    expect_channel_error(
        &conn,
        &ch,
        declare(&ch, "queues.missing", passive()),
        404,
        &not_found("queues.missing"),
    )
    .await;
    broker.stop().await;
}

#[tokio::test]
async fn flags_are_kept_and_equivalent_redeclare_succeeds() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    let with_args = table(&[
        ("x-max-length", AMQPValue::LongInt(10)),
        ("x-message-ttl", AMQPValue::LongInt(1000)),
    ]);
    let cases = [
        (
            "queues.plain",
            QueueDeclareOptions::default(),
            FieldTable::default(),
        ),
        (
            "queues.durable",
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        ),
        ("queues.exclusive", exclusive(), FieldTable::default()),
        (
            "queues.ad",
            QueueDeclareOptions {
                auto_delete: true,
                ..Default::default()
            },
            FieldTable::default(),
        ),
        ("queues.args", QueueDeclareOptions::default(), with_args),
    ];
    for (name, options, arguments) in cases {
        declare_with(&ch, name, options, arguments.clone())
            .await
            .unwrap();
        declare_with(&ch, name, options, arguments)
            .await
            .unwrap_or_else(|e| panic!("redeclare {name}: {e:?}"));
        // A passive declare ignores the flags and arguments it carries.
        let odd = QueueDeclareOptions {
            passive: true,
            durable: !options.durable,
            auto_delete: !options.auto_delete,
            ..options
        };
        declare_with(
            &ch,
            name,
            odd,
            table(&[("x-max-length", AMQPValue::LongInt(99))]),
        )
        .await
        .unwrap_or_else(|e| panic!("passive {name}: {e:?}"));
    }
    broker.stop().await;
}

#[tokio::test]
async fn redeclare_with_other_properties_is_406() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let plain = QueueDeclareOptions::default();
    let ten = || table(&[("x-max-length", AMQPValue::LongInt(10))]);
    let ttl = |ms| table(&[("x-message-ttl", AMQPValue::LongInt(ms))]);
    let cases = [
        (
            "queues.durable",
            FieldTable::default(),
            QueueDeclareOptions {
                durable: true,
                ..plain
            },
            FieldTable::default(),
            inequivalent(
                "durable",
                "queues.durable",
                "received 'true' but current is 'false'",
            ),
        ),
        (
            "queues.ad",
            FieldTable::default(),
            QueueDeclareOptions {
                auto_delete: true,
                ..plain
            },
            FieldTable::default(),
            inequivalent(
                "auto_delete",
                "queues.ad",
                "received 'true' but current is 'false'",
            ),
        ),
        (
            "queues.len",
            ten(),
            plain,
            table(&[("x-max-length", AMQPValue::LongInt(20))]),
            inequivalent(
                "x-max-length",
                "queues.len",
                "received '20' but current is '10'",
            ),
        ),
        (
            "queues.len2",
            ten(),
            plain,
            FieldTable::default(),
            inequivalent(
                "x-max-length",
                "queues.len2",
                "received none but current is the value '10' of type 'signedint'",
            ),
        ),
        (
            "queues.len3",
            FieldTable::default(),
            plain,
            ten(),
            inequivalent(
                "x-max-length",
                "queues.len3",
                "received the value '10' of type 'signedint' but current is none",
            ),
        ),
        (
            "queues.ttl",
            ttl(1000),
            plain,
            ttl(2000),
            inequivalent(
                "x-message-ttl",
                "queues.ttl",
                "received '2000' but current is '1000'",
            ),
        ),
        (
            "queues.ttl2",
            ttl(1000),
            plain,
            FieldTable::default(),
            inequivalent(
                "x-message-ttl",
                "queues.ttl2",
                "received none but current is the value '1000' of type 'signedint'",
            ),
        ),
    ];
    for (name, first_args, options, second_args, text) in cases {
        let ch = conn.create_channel().await.unwrap();
        declare_with(&ch, name, plain, first_args).await.unwrap();
        expect_channel_error(
            &conn,
            &ch,
            declare_with(&ch, name, options, second_args),
            406,
            &text,
        )
        .await;
    }
    broker.stop().await;
}

#[tokio::test]
async fn exclusive_flag_must_match_on_redeclare() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = conn.create_channel().await.unwrap();
    declare(&ch, "queues.shared", QueueDeclareOptions::default())
        .await
        .unwrap();
    expect_channel_error(
        &conn,
        &ch,
        declare(&ch, "queues.shared", exclusive()),
        405,
        &locked("queues.shared"),
    )
    .await;
    let ch = conn.create_channel().await.unwrap();
    declare(&ch, "queues.mine", exclusive()).await.unwrap();
    let request = declare(&ch, "queues.mine", QueueDeclareOptions::default());
    expect_channel_error(&conn, &ch, request, 405, &locked("queues.mine")).await;
    broker.stop().await;
}

#[tokio::test]
async fn exclusive_queue_is_locked_for_other_connections() {
    let broker = TestBroker::start().await;
    let (owner, owner_ch) = broker.channel().await;
    declare(&owner_ch, "queues.locked", exclusive())
        .await
        .unwrap();
    publish(&owner_ch, "", "queues.locked", b"kept").await;
    let other = broker.connect().await;
    let q = "queues.locked";
    let text = locked(q);
    macro_rules! refused {
        ($ch:ident => $request:expr) => {{
            let $ch = other.create_channel().await.unwrap();
            expect_channel_error(&other, &$ch, $request, 405, &text).await;
        }};
    }
    refused!(ch => declare(&ch, q, QueueDeclareOptions::default()));
    refused!(ch => declare(&ch, q, exclusive()));
    refused!(ch => declare(&ch, q, passive()));
    refused!(ch => consume(&ch, q, "thief"));
    refused!(ch => get(&ch, q));
    refused!(ch => bind(&ch, q, "amq.direct", "k", FieldTable::default()));
    refused!(ch => ch.queue_purge(q.into(), QueuePurgeOptions::default()));
    refused!(ch => ch.queue_delete(q.into(), QueueDeleteOptions::default()));
    // Not refused: unbind (nothing to unbind) and publishing to it.
    let ch = other.create_channel().await.unwrap();
    within(ch.queue_unbind(
        q.into(),
        "amq.direct".into(),
        "k".into(),
        FieldTable::default(),
    ))
    .await
    .unwrap();
    publish(&ch, "", q, b"from other").await;
    within(ch.basic_qos(1, BasicQosOptions::default()))
        .await
        .unwrap(); // a round trip after the publish
                   // The owner still has it, with both messages.
    assert_eq!(
        get(&owner_ch, q).await.unwrap().as_deref(),
        Some(&b"kept"[..])
    );
    assert_eq!(
        get(&owner_ch, q).await.unwrap().as_deref(),
        Some(&b"from other"[..])
    );
    drop(owner);
    broker.stop().await;
}

#[tokio::test]
async fn exclusive_queue_dies_with_its_connection() {
    let broker = TestBroker::start().await;
    let (owner, ch) = broker.channel().await;
    declare(&ch, "queues.excl", exclusive()).await.unwrap();
    let watcher = broker.connect().await;
    let other_ch = watcher.create_channel().await.unwrap();
    expect_channel_error(
        &watcher,
        &other_ch,
        declare(&other_ch, "queues.excl", passive()),
        405,
        &locked("queues.excl"),
    )
    .await;
    within(owner.close(200, "bye".into())).await.unwrap();
    common::wait_queue_gone(&watcher, "queues.excl").await;
    // The name is free again, for anyone.
    let ch = watcher.create_channel().await.unwrap();
    declare(&ch, "queues.excl", QueueDeclareOptions::default())
        .await
        .unwrap();
    broker.stop().await;
}

#[tokio::test]
async fn auto_delete_queue_dies_with_its_last_consumer_only() {
    let broker = TestBroker::start().await;
    let (conn, ch) = broker.channel().await;
    let auto_delete = QueueDeclareOptions {
        auto_delete: true,
        ..Default::default()
    };
    declare(&ch, "queues.ad", auto_delete).await.unwrap();
    // Never consumed: it stays, whatever else happens to it (nothing but a consumer's
    // cancel deletes it, in the handler that answers: no later task could).
    publish(&ch, "", "queues.ad", b"m").await;
    assert!(get(&ch, "queues.ad").await.unwrap().is_some());
    assert!(queue_exists(&conn, "queues.ad").await);
    let _c1 = consume(&ch, "queues.ad", "c1").await.unwrap();
    let _c2 = consume(&ch, "queues.ad", "c2").await.unwrap();
    within(ch.basic_cancel("c1".into(), BasicCancelOptions::default()))
        .await
        .unwrap();
    let q = declare(&ch, "queues.ad", passive())
        .await
        .expect("one consumer left");
    assert_eq!(q.consumer_count(), 1);
    within(ch.basic_cancel("c2".into(), BasicCancelOptions::default()))
        .await
        .unwrap();
    common::wait_queue_gone(&conn, "queues.ad").await;
    broker.stop().await;
}

#[tokio::test]
async fn auto_delete_queue_dies_when_its_consumers_channel_closes() {
    let broker = TestBroker::start().await;
    let (conn, ch) = broker.channel().await;
    let auto_delete = QueueDeclareOptions {
        auto_delete: true,
        ..Default::default()
    };
    declare(&ch, "queues.ad2", auto_delete).await.unwrap();
    let consumer_ch = conn.create_channel().await.unwrap();
    let _c = consume(&consumer_ch, "queues.ad2", "c").await.unwrap();
    within(consumer_ch.close(200, "bye".into())).await.unwrap();
    common::wait_queue_gone(&conn, "queues.ad2").await;
    broker.stop().await;
}

#[tokio::test]
async fn declare_ok_counts_ready_messages_and_consumers() {
    let broker = TestBroker::start().await;
    let (conn, ch) = broker.channel().await;
    declare(&ch, "queues.counts", QueueDeclareOptions::default())
        .await
        .unwrap();
    for body in [b"0", b"1", b"2", b"3"] {
        publish(&ch, "", "queues.counts", body).await;
    }
    // RabbitMQ answers queue.declare ahead of deliveries still on their way to the queue; a
    // basic.get is answered after them, so all four are in when it returns.
    assert_eq!(
        get(&ch, "queues.counts").await.unwrap().as_deref(),
        Some(&b"0"[..])
    );
    let q = declare(&ch, "queues.counts", QueueDeclareOptions::default())
        .await
        .unwrap();
    assert_eq!((q.message_count(), q.consumer_count()), (3, 0));
    // One consumer holding one unacked message: two ready, one consumer.
    let consumer_ch = conn.create_channel().await.unwrap();
    within(consumer_ch.basic_qos(1, BasicQosOptions::default()))
        .await
        .unwrap();
    let mut consumer = consume(&consumer_ch, "queues.counts", "c").await.unwrap();
    let first = within(consumer.next()).await.expect("a delivery").unwrap();
    assert_eq!(first.data, b"1");
    let q = declare(&ch, "queues.counts", passive()).await.unwrap();
    assert_eq!((q.message_count(), q.consumer_count()), (2, 1));
    broker.stop().await;
}

#[tokio::test]
async fn purge_returns_the_count() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare(&ch, "queues.purge", QueueDeclareOptions::default())
        .await
        .unwrap();
    for body in [b"1", b"2", b"3"] {
        publish(&ch, "", "queues.purge", body).await;
    }
    assert_eq!(
        within(ch.queue_purge("queues.purge".into(), QueuePurgeOptions::default()))
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        within(ch.queue_purge("queues.purge".into(), QueuePurgeOptions::default()))
            .await
            .unwrap(),
        0
    );
    assert!(get(&ch, "queues.purge").await.unwrap().is_none());
    broker.stop().await;
}

#[tokio::test]
async fn purge_of_missing_queue_is_404() {
    let broker = TestBroker::start().await;
    let (conn, ch) = broker.channel().await;
    let request = ch.queue_purge("queues.missing".into(), QueuePurgeOptions::default());
    expect_channel_error(&conn, &ch, request, 404, &not_found("queues.missing")).await;
    broker.stop().await;
}

#[tokio::test]
async fn delete_if_unused_and_if_empty() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = conn.create_channel().await.unwrap();
    declare(&ch, "queues.del", QueueDeclareOptions::default())
        .await
        .unwrap();
    publish(&ch, "", "queues.del", b"1").await;
    publish(&ch, "", "queues.del", b"2").await;
    let consumer_ch = conn.create_channel().await.unwrap();
    within(consumer_ch.basic_qos(1, BasicQosOptions::default()))
        .await
        .unwrap();
    let mut consumer = consume(&consumer_ch, "queues.del", "c").await.unwrap();
    within(consumer.next()).await.expect("a delivery").unwrap();

    let if_unused = QueueDeleteOptions {
        if_unused: true,
        ..Default::default()
    };
    let request = ch.queue_delete("queues.del".into(), if_unused);
    let text = "PRECONDITION_FAILED - queue 'queues.del' in vhost '/' in use";
    expect_channel_error(&conn, &ch, request, 406, text).await;

    let ch = conn.create_channel().await.unwrap();
    let if_empty = QueueDeleteOptions {
        if_empty: true,
        ..Default::default()
    };
    let request = ch.queue_delete("queues.del".into(), if_empty);
    let text = "PRECONDITION_FAILED - queue 'queues.del' in vhost '/' not empty";
    expect_channel_error(&conn, &ch, request, 406, text).await;

    // Plain delete: the count is the ready messages (the unacked one is not counted).
    let ch = conn.create_channel().await.unwrap();
    assert_eq!(
        within(ch.queue_delete("queues.del".into(), QueueDeleteOptions::default()))
            .await
            .unwrap(),
        1
    );
    assert!(!queue_exists(&conn, "queues.del").await);

    // if-unused and if-empty both hold on an idle empty queue.
    declare(&ch, "queues.idle", QueueDeclareOptions::default())
        .await
        .unwrap();
    let both = QueueDeleteOptions {
        if_unused: true,
        if_empty: true,
        ..Default::default()
    };
    assert_eq!(
        within(ch.queue_delete("queues.idle".into(), both))
            .await
            .unwrap(),
        0
    );
    assert!(!queue_exists(&conn, "queues.idle").await);
    broker.stop().await;
}

#[tokio::test]
async fn delete_of_missing_queue_is_ok_with_count_0() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    assert_eq!(
        within(ch.queue_delete("queues.missing".into(), QueueDeleteOptions::default()))
            .await
            .unwrap(),
        0
    );
    let both = QueueDeleteOptions {
        if_unused: true,
        if_empty: true,
        ..Default::default()
    };
    assert_eq!(
        within(ch.queue_delete("queues.missing".into(), both))
            .await
            .unwrap(),
        0
    );
    assert!(ch.status().connected());
    broker.stop().await;
}

#[tokio::test]
async fn amq_prefix_is_reserved() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = conn.create_channel().await.unwrap();
    let text = "ACCESS_REFUSED - queue name 'amq.foo' contains reserved prefix 'amq.*'";
    expect_channel_error(
        &conn,
        &ch,
        declare(&ch, "amq.foo", QueueDeclareOptions::default()),
        403,
        text,
    )
    .await;
    let ch = conn.create_channel().await.unwrap();
    expect_channel_error(
        &conn,
        &ch,
        declare(&ch, "amq.foo", passive()),
        404,
        &not_found("amq.foo"),
    )
    .await;
    broker.stop().await;
}

#[tokio::test]
async fn bind_and_unbind_with_arguments() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    within(ch.exchange_declare(
        "queues.x".into(),
        lapin::ExchangeKind::Direct,
        Default::default(),
        FieldTable::default(),
    ))
    .await
    .unwrap();
    declare(&ch, "queues.bound", QueueDeclareOptions::default())
        .await
        .unwrap();
    let a1 = || table(&[("a", AMQPValue::LongInt(1))]);
    bind(&ch, "queues.bound", "queues.x", "k", a1())
        .await
        .unwrap();
    bind(&ch, "queues.bound", "queues.x", "k", a1())
        .await
        .expect("binding twice is fine");
    // The arguments are part of the binding: unbinding without them removes nothing.
    within(ch.queue_unbind(
        "queues.bound".into(),
        "queues.x".into(),
        "k".into(),
        FieldTable::default(),
    ))
    .await
    .unwrap();
    publish(&ch, "queues.x", "k", b"1").await;
    assert_eq!(
        get(&ch, "queues.bound").await.unwrap().as_deref(),
        Some(&b"1"[..])
    );
    within(ch.queue_unbind("queues.bound".into(), "queues.x".into(), "k".into(), a1()))
        .await
        .unwrap();
    publish(&ch, "queues.x", "k", b"2").await;
    assert!(get(&ch, "queues.bound").await.unwrap().is_none());
    // Unbinding what is not bound, or from / to what does not exist, is not an error.
    within(ch.queue_unbind("queues.bound".into(), "queues.x".into(), "k".into(), a1()))
        .await
        .unwrap();
    within(ch.queue_unbind(
        "queues.missing".into(),
        "queues.x".into(),
        "k".into(),
        FieldTable::default(),
    ))
    .await
    .unwrap();
    within(ch.queue_unbind(
        "queues.bound".into(),
        "queues.missing".into(),
        "k".into(),
        FieldTable::default(),
    ))
    .await
    .unwrap();
    assert!(ch.status().connected());
    broker.stop().await;
}

#[tokio::test]
async fn default_exchange_refuses_bind_and_unbind() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = conn.create_channel().await.unwrap();
    declare(&ch, "queues.q", QueueDeclareOptions::default())
        .await
        .unwrap();
    let request = bind(&ch, "queues.q", "", "queues.q", FieldTable::default());
    expect_channel_error(&conn, &ch, request, 403, DEFAULT_EXCHANGE_REFUSED).await;
    let ch = conn.create_channel().await.unwrap();
    let request = ch.queue_unbind(
        "queues.q".into(),
        "".into(),
        "queues.q".into(),
        FieldTable::default(),
    );
    expect_channel_error(&conn, &ch, request, 403, DEFAULT_EXCHANGE_REFUSED).await;
    broker.stop().await;
}

#[tokio::test]
async fn bind_to_missing_exchange_or_queue_is_404() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = conn.create_channel().await.unwrap();
    declare(&ch, "queues.q", QueueDeclareOptions::default())
        .await
        .unwrap();
    let cases = [
        (
            "queues.q",
            "queues.missingx",
            "NOT_FOUND - no exchange 'queues.missingx' in vhost '/'",
        ),
        (
            "queues.missing",
            "amq.direct",
            "NOT_FOUND - no queue 'queues.missing' in vhost '/'",
        ),
    ];
    for (queue, exchange, text) in cases {
        let ch = conn.create_channel().await.unwrap();
        expect_channel_error(
            &conn,
            &ch,
            bind(&ch, queue, exchange, "k", FieldTable::default()),
            404,
            text,
        )
        .await;
    }
    broker.stop().await;
}

#[tokio::test]
async fn bind_with_both_missing_reports_the_exchange() {
    let broker = TestBroker::start().await;
    let (conn, ch) = broker.channel().await;
    let request = bind(
        &ch,
        "queues.missing",
        "queues.missingx",
        "k",
        FieldTable::default(),
    );
    expect_channel_error(
        &conn,
        &ch,
        request,
        404,
        "NOT_FOUND - no exchange 'queues.missingx' in vhost '/'",
    )
    .await;
    broker.stop().await;
}

#[tokio::test]
async fn every_queue_is_reachable_through_the_default_exchange() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    let names = ["queues.d1", "queues.d2", "queues.d3"];
    declare(&ch, names[0], QueueDeclareOptions::default())
        .await
        .unwrap();
    declare(
        &ch,
        names[1],
        QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
    )
    .await
    .unwrap();
    declare(&ch, names[2], exclusive()).await.unwrap();
    for name in names {
        publish(&ch, "", name, name.as_bytes()).await;
    }
    // To a queue that does not exist: dropped, no error.
    publish(&ch, "", "queues.nobody", b"lost").await;
    for name in names {
        assert_eq!(
            get(&ch, name).await.unwrap().as_deref(),
            Some(name.as_bytes())
        );
        assert!(
            get(&ch, name).await.unwrap().is_none(),
            "{name} got only its own message"
        );
    }
    assert!(ch.status().connected());
    broker.stop().await;
}

#[tokio::test]
async fn empty_queue_name_means_the_last_declared_queue() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare(&ch, "queues.first", QueueDeclareOptions::default())
        .await
        .unwrap();
    let last = declare(&ch, "", exclusive()).await.unwrap();
    let last = last.name().as_str();
    bind(&ch, "", "amq.direct", "queues.k", FieldTable::default())
        .await
        .unwrap();
    publish(&ch, "amq.direct", "queues.k", b"1").await;
    publish(&ch, "amq.direct", "queues.k", b"2").await;
    publish(&ch, "amq.direct", "queues.k", b"3").await;
    assert_eq!(get(&ch, "").await.unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(
        within(ch.queue_purge("".into(), QueuePurgeOptions::default()))
            .await
            .unwrap(),
        2
    );
    publish(&ch, "amq.direct", "queues.k", b"4").await;
    let mut consumer = consume(&ch, "", "c").await.unwrap();
    let d = within(consumer.next()).await.expect("a delivery").unwrap();
    assert_eq!(
        (d.data.as_slice(), d.routing_key.as_str()),
        (&b"4"[..], "queues.k")
    );
    // The named queue declared first saw none of it.
    assert!(get(&ch, "queues.first").await.unwrap().is_none());
    let q = declare(&ch, last, passive()).await.unwrap();
    assert_eq!(q.consumer_count(), 1);
    broker.stop().await;
}

#[tokio::test]
async fn empty_queue_name_without_a_declared_queue_is_404() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let ch = conn.create_channel().await.unwrap();
    expect_channel_error(
        &conn,
        &ch,
        bind(&ch, "", "amq.direct", "k", FieldTable::default()),
        404,
        NO_PREVIOUS_QUEUE,
    )
    .await;
    let ch = conn.create_channel().await.unwrap();
    expect_channel_error(&conn, &ch, consume(&ch, "", "c"), 404, NO_PREVIOUS_QUEUE).await;
    let ch = conn.create_channel().await.unwrap();
    expect_channel_error(&conn, &ch, get(&ch, ""), 404, NO_PREVIOUS_QUEUE).await;
    let ch = conn.create_channel().await.unwrap();
    expect_channel_error(
        &conn,
        &ch,
        ch.queue_purge("".into(), QueuePurgeOptions::default()),
        404,
        NO_PREVIOUS_QUEUE,
    )
    .await;
    let ch = conn.create_channel().await.unwrap();
    let request = ch.queue_delete("".into(), QueueDeleteOptions::default());
    expect_channel_error(&conn, &ch, request, 404, NO_PREVIOUS_QUEUE).await;
    let ch = conn.create_channel().await.unwrap();
    let request = ch.queue_unbind(
        "".into(),
        "amq.direct".into(),
        "k".into(),
        FieldTable::default(),
    );
    expect_channel_error(&conn, &ch, request, 404, NO_PREVIOUS_QUEUE).await;
    // The last declared queue is per channel: a queue declared on another channel does not count.
    let other = conn.create_channel().await.unwrap();
    declare(&other, "queues.elsewhere", QueueDeclareOptions::default())
        .await
        .unwrap();
    let ch = conn.create_channel().await.unwrap();
    expect_channel_error(&conn, &ch, get(&ch, ""), 404, NO_PREVIOUS_QUEUE).await;
    broker.stop().await;
}

#[tokio::test]
async fn quorum_and_stream_declarations_are_checked_as_rabbitmq_does() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let kind = |k: &str| ("x-queue-type", AMQPValue::LongString(k.into()));
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    let cases: Vec<(&str, QueueDeclareOptions, FieldTable, &str)> = vec![
        (
            "",
            durable,
            table(&[kind("quorum")]),
            "PRECONDITION_FAILED - Cannot declare a server-named queue for type rabbit_quorum_queue",
        ),
        (
            "qq.ad",
            QueueDeclareOptions {
                durable: true,
                exclusive: true,
                auto_delete: true,
                ..Default::default()
            },
            table(&[kind("quorum")]),
            "PRECONDITION_FAILED - invalid property 'auto-delete' for queue 'qq.ad' in vhost '/'",
        ),
        (
            "qq.ex",
            QueueDeclareOptions {
                exclusive: true,
                ..Default::default()
            },
            table(&[kind("quorum")]),
            "PRECONDITION_FAILED - invalid property 'exclusive-owner' for queue 'qq.ex' in vhost '/'",
        ),
        (
            "qq.nd",
            QueueDeclareOptions::default(),
            table(&[kind("stream")]),
            "PRECONDITION_FAILED - invalid property 'non-durable' for queue 'qq.nd' in vhost '/'",
        ),
        (
            "qq.prio",
            durable,
            table(&[
                kind("quorum"),
                ("x-queue-mode", AMQPValue::LongString("lazy".into())),
                ("x-max-priority", AMQPValue::LongInt(5)),
            ]),
            "PRECONDITION_FAILED - invalid arg 'x-max-priority' for queue 'qq.prio' in vhost '/' of queue type rabbit_quorum_queue",
        ),
        (
            "qq.ttl",
            durable,
            table(&[kind("stream"), ("x-message-ttl", AMQPValue::LongInt(5))]),
            "PRECONDITION_FAILED - invalid arg 'x-message-ttl' for queue 'qq.ttl' in vhost '/' of queue type rabbit_stream_queue",
        ),
        (
            "qq.cl",
            QueueDeclareOptions::default(),
            table(&[("x-delivery-limit", AMQPValue::LongInt(2))]),
            "PRECONDITION_FAILED - invalid arg 'x-delivery-limit' for queue 'qq.cl' in vhost '/' of queue type rabbit_classic_queue",
        ),
    ];
    for (name, options, args, text) in cases {
        let ch = conn.create_channel().await.unwrap();
        expect_channel_error(
            &conn,
            &ch,
            ch.queue_declare(name.into(), options, args),
            406,
            text,
        )
        .await;
    }
    // What RabbitMQ accepts is accepted (and served as a classic queue).
    let ch = conn.create_channel().await.unwrap();
    within(ch.queue_declare(
        "qq.ok".into(),
        durable,
        table(&[kind("quorum"), ("x-delivery-limit", AMQPValue::LongInt(5))]),
    ))
    .await
    .expect("a durable quorum queue");
    publish(&ch, "", "qq.ok", b"m").await;
    assert_eq!(common::ready(&ch, "qq.ok").await, 1);
    broker.stop().await;
}
