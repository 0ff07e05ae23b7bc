//! Support for the permission tests: guest's permissions narrowed through the broker's
//! API, a broker with a small topology, lapin steps, and the refusal texts.
#![allow(dead_code)]

use crate::common;
use crate::common::raw::Raw;
use crate::common::{amqp_error, closed_with, ready, refusal, within, TestBroker};
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ExchangeKind};

/// RabbitMQ's refusal text for guest on `kind` `name` in vhost "/".
pub fn refused(kind: &str, name: &str) -> (u16, String) {
    (
        403,
        format!("ACCESS_REFUSED - access to {kind} '{name}' in vhost '/' refused for user 'guest'"),
    )
}

pub fn topic_refused(key: &str, exchange: &str) -> (u16, String) {
    (
        403,
        format!(
            "ACCESS_REFUSED - access to topic '{key}' in exchange '{exchange}' in vhost '/' refused for user 'guest'"
        ),
    )
}

/// Sets guest's permissions on "/".
pub fn allow(b: &TestBroker, configure: &str, write: &str, read: &str) {
    b.server
        .broker()
        .set_permissions("guest", "/", configure, write, read)
        .expect("set_permissions");
}

pub async fn channel(conn: &Connection) -> Channel {
    within(conn.create_channel()).await.expect("channel")
}

/// A broker with, made under full permissions: exchanges `p.topic` (topic), `p.direct`
/// and `p.dst` (fanout), queue `p.q` bound to `p.topic` with `a.b`.
pub async fn setup() -> (TestBroker, Connection) {
    let b = TestBroker::start().await;
    let conn = b.connect().await;
    let ch = channel(&conn).await;
    for (x, kind) in [
        ("p.topic", ExchangeKind::Topic),
        ("p.direct", ExchangeKind::Direct),
        ("p.dst", ExchangeKind::Fanout),
    ] {
        within(ch.exchange_declare(x.into(), kind, Default::default(), FieldTable::default()))
            .await
            .unwrap();
    }
    common::declare_queue(&ch, "p.q").await;
    bind(&ch, "p.q", "p.topic", "a.b").await.unwrap();
    (b, conn)
}

pub async fn bind(ch: &Channel, queue: &str, exchange: &str, key: &str) -> lapin::Result<()> {
    within(ch.queue_bind(
        queue.into(),
        exchange.into(),
        key.into(),
        Default::default(),
        FieldTable::default(),
    ))
    .await
}

pub async fn unbind(ch: &Channel, queue: &str, exchange: &str, key: &str) -> lapin::Result<()> {
    within(ch.queue_unbind(
        queue.into(),
        exchange.into(),
        key.into(),
        FieldTable::default(),
    ))
    .await
}

pub async fn bind_x(ch: &Channel, dst: &str, src: &str, key: &str) -> lapin::Result<()> {
    within(ch.exchange_bind(
        dst.into(),
        src.into(),
        key.into(),
        Default::default(),
        FieldTable::default(),
    ))
    .await
}

pub async fn unbind_x(ch: &Channel, dst: &str, src: &str, key: &str) -> lapin::Result<()> {
    within(ch.exchange_unbind(
        dst.into(),
        src.into(),
        key.into(),
        Default::default(),
        FieldTable::default(),
    ))
    .await
}

pub async fn declare_x(
    ch: &Channel,
    name: &str,
    kind: ExchangeKind,
    args: FieldTable,
) -> lapin::Result<()> {
    within(ch.exchange_declare(name.into(), kind, Default::default(), args)).await
}

pub async fn declare_q(ch: &Channel, name: &str, args: FieldTable) -> lapin::Result<String> {
    within(ch.queue_declare(name.into(), Default::default(), args))
        .await
        .map(|q| q.name().to_string())
}

pub fn arg(key: &str, value: &str) -> FieldTable {
    common::table(&[(key, AMQPValue::LongString(value.into()))])
}

/// Runs `request` on a fresh channel; it must be refused with `expected`.
pub async fn expect_refusal<T, F, Fut>(conn: &Connection, expected: (u16, String), request: F)
where
    F: FnOnce(Channel) -> Fut,
    Fut: std::future::Future<Output = lapin::Result<T>>,
{
    let ch = channel(conn).await;
    assert_eq!(refusal(request(ch.clone()).await), expected);
    assert!(!ch.status().connected(), "the channel should be closed");
    assert!(conn.status().connected(), "a 403 closes only the channel");
}

pub fn no_ack() -> BasicConsumeOptions {
    BasicConsumeOptions {
        no_ack: true,
        ..Default::default()
    }
}

/// A direct reply-to consumer on `ch` (it needs no permission): it receives the error
/// the channel is closed with (see `common::closed_with`).
pub async fn reply_to_watcher(ch: &Channel) -> lapin::Consumer {
    let queue = "amq.rabbitmq.reply-to".into();
    within(ch.basic_consume(queue, "watch".into(), no_ack(), FieldTable::default()))
        .await
        .expect("reply-to consumer")
}

/// Publishes on a fresh channel and returns the error the channel was closed with.
pub async fn publish_refusal(conn: &Connection, exchange: &str, key: &str) -> (u16, String) {
    let ch = channel(conn).await;
    let watcher = reply_to_watcher(&ch).await;
    let _ = within(ch.basic_publish(
        exchange.into(),
        key.into(),
        BasicPublishOptions::default(),
        b"x",
        BasicProperties::default(),
    ))
    .await;
    amqp_error(&closed_with(watcher).await)
}

/// Publishes `key` to `exchange` and returns how many messages `p.q` holds after it
/// (the passive declare needs no permission and waits for the publish to be handled).
pub async fn publish_counted(ch: &Channel, exchange: &str, key: &str) -> u32 {
    common::publish(ch, exchange, key, b"x").await;
    ready(ch, "p.q").await
}

/// Logs in as guest and sends connection.open for `vhost`.
pub async fn open_on(b: &TestBroker, vhost: &str) -> Raw {
    crate::common::login::open_on(b.addr, vhost).await
}

/// A data directory whose definitions.json is `defs`.
pub fn data_dir_with(defs: serde_json::Value) -> std::path::PathBuf {
    let dir = common::scratch_dir("permissions");
    std::fs::write(dir.join("definitions.json"), defs.to_string()).unwrap();
    dir
}
