//! Exchanges: the predeclared set, exchange.declare (types, flags, passive, equivalence,
//! reserved names), exchange.delete (if-unused, system exchanges), publishing to missing or
//! internal exchanges, and auto-delete exchanges, each answered as RabbitMQ 3.10 does.
mod common;

use common::{close_watcher, closed_with, refusal, within, TestBroker};
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ExchangeKind};
use std::future::Future;

const SYSTEM_EXCHANGES: [&str; 5] = [
    "amq.direct",
    "amq.fanout",
    "amq.topic",
    "amq.headers",
    "amq.match",
];

fn passive() -> ExchangeDeclareOptions {
    ExchangeDeclareOptions {
        passive: true,
        ..Default::default()
    }
}

async fn declare(
    ch: &Channel,
    name: &str,
    kind: ExchangeKind,
    options: ExchangeDeclareOptions,
) -> lapin::Result<()> {
    within(ch.exchange_declare(name.into(), kind, options, FieldTable::default())).await
}

/// Declares a non-exclusive queue and binds it to `exchange` with `key`.
async fn bound_queue(ch: &Channel, queue: &str, exchange: &str, key: &str) {
    within(ch.queue_declare(
        queue.into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    ))
    .await
    .unwrap();
    within(ch.queue_bind(
        queue.into(),
        exchange.into(),
        key.into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    ))
    .await
    .unwrap();
}

async fn unbind(ch: &Channel, queue: &str, exchange: &str, key: &str) {
    within(ch.queue_unbind(
        queue.into(),
        exchange.into(),
        key.into(),
        FieldTable::default(),
    ))
    .await
    .unwrap();
}

/// Runs a request that RabbitMQ refuses with channel.close `code` / `text`: the channel
/// ends, the connection stays usable and opens a new channel.
async fn expect_channel_error<T>(
    conn: &Connection,
    ch: &Channel,
    request: impl Future<Output = lapin::Result<T>>,
    code: u16,
    text: &str,
) {
    common::expect_channel_error(conn, ch, request, code, text).await;
    within(conn.create_channel())
        .await
        .expect("a new channel on the same connection");
}

/// Publishes, then makes one synchronous request so that the publish has been handled.
async fn publish_then_sync(ch: &Channel, exchange: &str, key: &str) -> lapin::Result<()> {
    within(ch.basic_publish(
        exchange.into(),
        key.into(),
        BasicPublishOptions::default(),
        b"m",
        BasicProperties::default(),
    ))
    .await?;
    declare(ch, "amq.direct", ExchangeKind::Direct, passive()).await
}

/// Publishes and returns the error of the channel.close the publish provoked, if any. The
/// close is asynchronous; a consumer on a private queue receives its error whenever it comes.
async fn publish_outcome(ch: &Channel, exchange: &str, key: &str) -> lapin::Result<()> {
    let watcher = close_watcher(ch).await;
    if publish_then_sync(ch, exchange, key).await.is_ok() {
        return Ok(());
    }
    Err(closed_with(watcher).await)
}

fn not_found(exchange: &str) -> String {
    format!("NOT_FOUND - no exchange '{exchange}' in vhost '/'")
}

fn inequivalent(arg: &str, exchange: &str, received: &str, current: &str) -> String {
    format!(
        "PRECONDITION_FAILED - inequivalent arg '{arg}' for exchange '{exchange}' in vhost '/': received '{received}' but current is '{current}'"
    )
}

const DEFAULT_EXCHANGE_REFUSED: &str =
    "ACCESS_REFUSED - operation not permitted on the default exchange";

#[tokio::test]
async fn predeclared_exchanges_exist() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    for name in SYSTEM_EXCHANGES {
        declare(&ch, name, ExchangeKind::Direct, passive())
            .await
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
    }
    // Each has its type and durable=true: an equivalent active declare is accepted.
    for (name, kind) in [
        ("amq.direct", ExchangeKind::Direct),
        ("amq.fanout", ExchangeKind::Fanout),
        ("amq.topic", ExchangeKind::Topic),
        ("amq.headers", ExchangeKind::Headers),
        ("amq.match", ExchangeKind::Headers),
    ] {
        let durable = ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        };
        declare(&ch, name, kind, durable)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e:?}"));
    }
    // The default exchange routes by queue name.
    within(ch.queue_declare(
        "exchanges.q".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    ))
    .await
    .unwrap();
    publish_then_sync(&ch, "", "exchanges.q").await.unwrap();
    let got = within(ch.basic_get("exchanges.q".into(), BasicGetOptions { no_ack: true }))
        .await
        .unwrap();
    assert_eq!(
        got.expect("routed by the default exchange").delivery.data,
        b"m"
    );
    broker.stop().await;
}

#[tokio::test]
async fn default_exchange_cannot_be_declared_even_passively() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    for options in [passive(), ExchangeDeclareOptions::default()] {
        let ch = conn.create_channel().await.unwrap();
        expect_channel_error(
            &conn,
            &ch,
            declare(&ch, "", ExchangeKind::Direct, options),
            403,
            DEFAULT_EXCHANGE_REFUSED,
        )
        .await;
    }
    broker.stop().await;
}

#[tokio::test]
async fn declare_each_type_then_redeclare_and_passive() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    let flags = [
        ExchangeDeclareOptions::default(),
        ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        },
        ExchangeDeclareOptions {
            auto_delete: true,
            ..Default::default()
        },
        ExchangeDeclareOptions {
            internal: true,
            ..Default::default()
        },
    ];
    for kind in [
        ExchangeKind::Direct,
        ExchangeKind::Fanout,
        ExchangeKind::Topic,
        ExchangeKind::Headers,
    ] {
        for (i, options) in flags.iter().enumerate() {
            let name = format!("exchanges.{kind:?}.{i}");
            declare(&ch, &name, kind.clone(), *options).await.unwrap();
            declare(&ch, &name, kind.clone(), *options)
                .await
                .unwrap_or_else(|e| panic!("redeclare {name}: {e:?}"));
            // A passive declare names no type or flags that could conflict.
            declare(&ch, &name, ExchangeKind::Fanout, passive())
                .await
                .unwrap_or_else(|e| panic!("passive {name}: {e:?}"));
        }
    }
    broker.stop().await;
}

#[tokio::test]
async fn passive_declare_of_missing_exchange_is_404() {
    let broker = TestBroker::start().await;
    let (conn, ch) = broker.channel().await;
    let request = declare(&ch, "exchanges.missing", ExchangeKind::Direct, passive());
    expect_channel_error(&conn, &ch, request, 404, &not_found("exchanges.missing")).await;
    broker.stop().await;
}

#[tokio::test]
async fn redeclare_with_other_properties_is_406() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    let plain = ExchangeDeclareOptions::default();
    let cases = [
        (
            "exchanges.type",
            ExchangeKind::Fanout,
            plain,
            inequivalent("type", "exchanges.type", "fanout", "direct"),
        ),
        (
            "exchanges.durable",
            ExchangeKind::Direct,
            ExchangeDeclareOptions {
                durable: true,
                ..plain
            },
            inequivalent("durable", "exchanges.durable", "true", "false"),
        ),
        (
            "exchanges.ad",
            ExchangeKind::Direct,
            ExchangeDeclareOptions {
                auto_delete: true,
                ..plain
            },
            inequivalent("auto_delete", "exchanges.ad", "true", "false"),
        ),
        (
            "exchanges.int",
            ExchangeKind::Direct,
            ExchangeDeclareOptions {
                internal: true,
                ..plain
            },
            inequivalent("internal", "exchanges.int", "true", "false"),
        ),
    ];
    for (name, kind, options, text) in cases {
        let ch = conn.create_channel().await.unwrap();
        declare(&ch, name, ExchangeKind::Direct, plain)
            .await
            .unwrap();
        expect_channel_error(&conn, &ch, declare(&ch, name, kind, options), 406, &text).await;
    }
    // A system exchange is durable: declaring it transient is inequivalent.
    let ch = conn.create_channel().await.unwrap();
    let text = inequivalent("durable", "amq.direct", "false", "true");
    expect_channel_error(
        &conn,
        &ch,
        declare(&ch, "amq.direct", ExchangeKind::Direct, plain),
        406,
        &text,
    )
    .await;
    broker.stop().await;
}

#[tokio::test]
async fn redeclare_with_other_arguments_is_406() {
    let broker = TestBroker::start().await;
    let (conn, ch) = broker.channel().await;
    declare(
        &ch,
        "exchanges.args",
        ExchangeKind::Direct,
        Default::default(),
    )
    .await
    .unwrap();
    let mut args = FieldTable::default();
    args.insert(
        "alternate-exchange".into(),
        AMQPValue::LongString("amq.fanout".into()),
    );
    let request = within(ch.exchange_declare(
        "exchanges.args".into(),
        ExchangeKind::Direct,
        Default::default(),
        args,
    ));
    let text = "PRECONDITION_FAILED - inequivalent arg 'alternate-exchange' for exchange 'exchanges.args' in vhost '/': \
                received the value 'amq.fanout' of type 'longstr' but current is none";
    expect_channel_error(&conn, &ch, request, 406, text).await;
    broker.stop().await;
}

#[tokio::test]
async fn amq_prefix_is_reserved() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    for (name, kind) in [
        ("amq.foo", ExchangeKind::Direct),
        ("amq.foo.bar", ExchangeKind::Topic),
    ] {
        let ch = conn.create_channel().await.unwrap();
        let text =
            format!("ACCESS_REFUSED - exchange name '{name}' contains reserved prefix 'amq.*'");
        expect_channel_error(
            &conn,
            &ch,
            declare(&ch, name, kind, Default::default()),
            403,
            &text,
        )
        .await;
    }
    // Passively, a missing amq.* exchange is simply not found.
    let ch = conn.create_channel().await.unwrap();
    expect_channel_error(
        &conn,
        &ch,
        declare(&ch, "amq.foo", ExchangeKind::Direct, passive()),
        404,
        &not_found("amq.foo"),
    )
    .await;
    broker.stop().await;
}

#[tokio::test]
async fn unknown_type_closes_the_connection_with_503() {
    let broker = TestBroker::start().await;
    let (conn, ch) = broker.channel().await;
    let result = declare(
        &ch,
        "exchanges.foo",
        ExchangeKind::Custom("foo".into()),
        Default::default(),
    )
    .await;
    let error = result.as_ref().err().cloned();
    assert_eq!(
        refusal(result),
        (
            503,
            "COMMAND_INVALID - invalid exchange type 'foo'".to_string()
        )
    );
    assert!(error.unwrap().is_amqp_hard_error());
    assert!(!conn.status().connected(), "503 is a connection error");
    assert!(within(conn.create_channel()).await.is_err());
    // The exchange was not created.
    let (_conn2, ch2) = broker.channel().await;
    assert_eq!(
        refusal(declare(&ch2, "exchanges.foo", ExchangeKind::Direct, passive()).await).0,
        404
    );
    broker.stop().await;
}

#[tokio::test]
async fn delete_removes_the_exchange_and_missing_is_fine() {
    let broker = TestBroker::start().await;
    let (conn, ch) = broker.channel().await;
    declare(
        &ch,
        "exchanges.del",
        ExchangeKind::Topic,
        Default::default(),
    )
    .await
    .unwrap();
    within(ch.exchange_delete("exchanges.del".into(), ExchangeDeleteOptions::default()))
        .await
        .unwrap();
    // Deleting a missing exchange is not an error, with or without if-unused.
    within(ch.exchange_delete("exchanges.del".into(), ExchangeDeleteOptions::default()))
        .await
        .unwrap();
    within(ch.exchange_delete(
        "exchanges.never".into(),
        ExchangeDeleteOptions {
            if_unused: true,
            nowait: false,
        },
    ))
    .await
    .unwrap();
    let request = declare(&ch, "exchanges.del", ExchangeKind::Topic, passive());
    expect_channel_error(&conn, &ch, request, 404, &not_found("exchanges.del")).await;
    broker.stop().await;
}

#[tokio::test]
async fn delete_if_unused_refuses_an_exchange_with_bindings() {
    let broker = TestBroker::start().await;
    let (conn, ch) = broker.channel().await;
    declare(
        &ch,
        "exchanges.inuse",
        ExchangeKind::Direct,
        Default::default(),
    )
    .await
    .unwrap();
    bound_queue(&ch, "exchanges.inuse.q", "exchanges.inuse", "k").await;
    let if_unused = ExchangeDeleteOptions {
        if_unused: true,
        nowait: false,
    };
    let request = ch.exchange_delete("exchanges.inuse".into(), if_unused);
    let text = "PRECONDITION_FAILED - exchange 'exchanges.inuse' in vhost '/' in use";
    expect_channel_error(&conn, &ch, request, 406, text).await;
    // Still there; once unbound, if-unused deletion succeeds.
    let ch = conn.create_channel().await.unwrap();
    declare(&ch, "exchanges.inuse", ExchangeKind::Direct, passive())
        .await
        .unwrap();
    unbind(&ch, "exchanges.inuse.q", "exchanges.inuse", "k").await;
    within(ch.exchange_delete("exchanges.inuse".into(), if_unused))
        .await
        .unwrap();
    assert_eq!(
        refusal(declare(&ch, "exchanges.inuse", ExchangeKind::Direct, passive()).await).0,
        404
    );
    broker.stop().await;
}

#[tokio::test]
async fn delete_drops_the_exchanges_bindings() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    declare(
        &ch,
        "exchanges.gone",
        ExchangeKind::Direct,
        Default::default(),
    )
    .await
    .unwrap();
    bound_queue(&ch, "exchanges.gone.q", "exchanges.gone", "k").await;
    within(ch.exchange_delete("exchanges.gone".into(), ExchangeDeleteOptions::default()))
        .await
        .unwrap();
    declare(
        &ch,
        "exchanges.gone",
        ExchangeKind::Direct,
        Default::default(),
    )
    .await
    .unwrap();
    publish_then_sync(&ch, "exchanges.gone", "k").await.unwrap();
    let got = within(ch.basic_get("exchanges.gone.q".into(), BasicGetOptions { no_ack: true }))
        .await
        .unwrap();
    assert!(got.is_none(), "the binding died with the first exchange");
    broker.stop().await;
}

#[tokio::test]
async fn system_and_default_exchanges_cannot_be_deleted() {
    let broker = TestBroker::start().await;
    let conn = broker.connect().await;
    for name in SYSTEM_EXCHANGES {
        for if_unused in [false, true] {
            let ch = conn.create_channel().await.unwrap();
            let request = ch.exchange_delete(
                name.into(),
                ExchangeDeleteOptions {
                    if_unused,
                    nowait: false,
                },
            );
            let text = format!(
                "ACCESS_REFUSED - deletion of system exchange '{name}' in vhost '/' not allowed"
            );
            expect_channel_error(&conn, &ch, request, 403, &text).await;
        }
    }
    let ch = conn.create_channel().await.unwrap();
    let request = ch.exchange_delete("".into(), ExchangeDeleteOptions::default());
    expect_channel_error(&conn, &ch, request, 403, DEFAULT_EXCHANGE_REFUSED).await;
    // All still there.
    let ch = conn.create_channel().await.unwrap();
    for name in SYSTEM_EXCHANGES {
        declare(&ch, name, ExchangeKind::Direct, passive())
            .await
            .unwrap();
    }
    broker.stop().await;
}

#[tokio::test]
async fn publish_to_missing_exchange_closes_the_channel_with_404() {
    let broker = TestBroker::start().await;
    let (conn, ch) = broker.channel().await;
    let request = publish_outcome(&ch, "exchanges.missing", "k");
    expect_channel_error(&conn, &ch, request, 404, &not_found("exchanges.missing")).await;
    broker.stop().await;
}

#[tokio::test]
async fn publish_to_internal_exchange_is_403() {
    let broker = TestBroker::start().await;
    let (conn, ch) = broker.channel().await;
    let internal = ExchangeDeclareOptions {
        internal: true,
        ..Default::default()
    };
    declare(&ch, "exchanges.internal", ExchangeKind::Fanout, internal)
        .await
        .unwrap();
    let request = publish_outcome(&ch, "exchanges.internal", "");
    let text =
        "ACCESS_REFUSED - cannot publish to internal exchange 'exchanges.internal' in vhost '/'";
    expect_channel_error(&conn, &ch, request, 403, text).await;
    broker.stop().await;
}

#[tokio::test]
async fn auto_delete_exchange_goes_with_its_last_binding() {
    let broker = TestBroker::start().await;
    let (conn, ch) = broker.channel().await;
    let auto_delete = ExchangeDeclareOptions {
        auto_delete: true,
        ..Default::default()
    };
    declare(&ch, "exchanges.ad", ExchangeKind::Direct, auto_delete)
        .await
        .unwrap();
    // Never bound: it stays.
    declare(&ch, "exchanges.ad", ExchangeKind::Direct, passive())
        .await
        .unwrap();
    bound_queue(&ch, "exchanges.ad.q1", "exchanges.ad", "k1").await;
    bound_queue(&ch, "exchanges.ad.q1", "exchanges.ad", "k2").await;
    bound_queue(&ch, "exchanges.ad.q2", "exchanges.ad", "k1").await;
    unbind(&ch, "exchanges.ad.q1", "exchanges.ad", "k1").await;
    unbind(&ch, "exchanges.ad.q1", "exchanges.ad", "k2").await;
    declare(&ch, "exchanges.ad", ExchangeKind::Direct, passive())
        .await
        .expect("one binding left");
    unbind(&ch, "exchanges.ad.q2", "exchanges.ad", "k1").await;
    let request = declare(&ch, "exchanges.ad", ExchangeKind::Direct, passive());
    expect_channel_error(&conn, &ch, request, 404, &not_found("exchanges.ad")).await;
    broker.stop().await;
}

#[tokio::test]
async fn auto_delete_exchange_goes_when_its_last_bound_queue_is_deleted() {
    let broker = TestBroker::start().await;
    let (conn, ch) = broker.channel().await;
    let auto_delete = ExchangeDeclareOptions {
        auto_delete: true,
        ..Default::default()
    };
    declare(&ch, "exchanges.ad3", ExchangeKind::Fanout, auto_delete)
        .await
        .unwrap();
    bound_queue(&ch, "exchanges.ad3.q", "exchanges.ad3", "").await;
    within(ch.queue_delete("exchanges.ad3.q".into(), QueueDeleteOptions::default()))
        .await
        .unwrap();
    let request = declare(&ch, "exchanges.ad3", ExchangeKind::Fanout, passive());
    expect_channel_error(&conn, &ch, request, 404, &not_found("exchanges.ad3")).await;
    broker.stop().await;
}
