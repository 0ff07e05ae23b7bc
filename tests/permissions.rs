//! Permissions: every AMQP operation allowed and refused as RabbitMQ 3.10 maps it to
//! configure, write and read (with its 403 texts and its order of checks), topic
//! permissions with `{username}` / `{vhost}` expansion, connection.open without
//! permissions (530), changes reaching open connections, the API's errors, and
//! persistence across a restart. Guest logs in with permissions narrowed through the API.
mod common;

use common::raw::{plain, Raw};
use common::{amqp_error, closed_with, ready, refusal, within, TestBroker};
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ExchangeKind};
use warren::testing::{PermissionEntry, PermissionError, TopicPermissionEntry};

/// RabbitMQ's refusal text for guest on `kind` `name` in vhost "/".
fn refused(kind: &str, name: &str) -> (u16, String) {
    (
        403,
        format!("ACCESS_REFUSED - access to {kind} '{name}' in vhost '/' refused for user 'guest'"),
    )
}

fn topic_refused(key: &str, exchange: &str) -> (u16, String) {
    (
        403,
        format!(
            "ACCESS_REFUSED - access to topic '{key}' in exchange '{exchange}' in vhost '/' refused for user 'guest'"
        ),
    )
}

/// Sets guest's permissions on "/".
fn allow(b: &TestBroker, configure: &str, write: &str, read: &str) {
    b.server
        .broker()
        .set_permissions("guest", "/", configure, write, read)
        .expect("set_permissions");
}

async fn channel(conn: &Connection) -> Channel {
    within(conn.create_channel()).await.expect("channel")
}

/// A broker with, made under full permissions: exchanges `p.topic` (topic), `p.direct`
/// and `p.dst` (fanout), queue `p.q` bound to `p.topic` with `a.b`.
async fn setup() -> (TestBroker, Connection) {
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

async fn bind(ch: &Channel, queue: &str, exchange: &str, key: &str) -> lapin::Result<()> {
    within(ch.queue_bind(
        queue.into(),
        exchange.into(),
        key.into(),
        Default::default(),
        FieldTable::default(),
    ))
    .await
}

async fn unbind(ch: &Channel, queue: &str, exchange: &str, key: &str) -> lapin::Result<()> {
    within(ch.queue_unbind(
        queue.into(),
        exchange.into(),
        key.into(),
        FieldTable::default(),
    ))
    .await
}

async fn bind_x(ch: &Channel, dst: &str, src: &str, key: &str) -> lapin::Result<()> {
    within(ch.exchange_bind(
        dst.into(),
        src.into(),
        key.into(),
        Default::default(),
        FieldTable::default(),
    ))
    .await
}

async fn unbind_x(ch: &Channel, dst: &str, src: &str, key: &str) -> lapin::Result<()> {
    within(ch.exchange_unbind(
        dst.into(),
        src.into(),
        key.into(),
        Default::default(),
        FieldTable::default(),
    ))
    .await
}

async fn declare_x(
    ch: &Channel,
    name: &str,
    kind: ExchangeKind,
    args: FieldTable,
) -> lapin::Result<()> {
    within(ch.exchange_declare(name.into(), kind, Default::default(), args)).await
}

async fn declare_q(ch: &Channel, name: &str, args: FieldTable) -> lapin::Result<String> {
    within(ch.queue_declare(name.into(), Default::default(), args))
        .await
        .map(|q| q.name().to_string())
}

fn arg(key: &str, value: &str) -> FieldTable {
    common::table(&[(key, AMQPValue::LongString(value.into()))])
}

/// Runs `request` on a fresh channel; it must be refused with `expected`.
async fn expect_refusal<T, F, Fut>(conn: &Connection, expected: (u16, String), request: F)
where
    F: FnOnce(Channel) -> Fut,
    Fut: std::future::Future<Output = lapin::Result<T>>,
{
    let ch = channel(conn).await;
    assert_eq!(refusal(request(ch.clone()).await), expected);
    assert!(!ch.status().connected(), "the channel should be closed");
    assert!(conn.status().connected(), "a 403 closes only the channel");
}

fn no_ack() -> BasicConsumeOptions {
    BasicConsumeOptions {
        no_ack: true,
        ..Default::default()
    }
}

/// A direct reply-to consumer on `ch` (it needs no permission): it receives the error
/// the channel is closed with (see `common::closed_with`).
async fn reply_to_watcher(ch: &Channel) -> lapin::Consumer {
    let queue = "amq.rabbitmq.reply-to".into();
    within(ch.basic_consume(queue, "watch".into(), no_ack(), FieldTable::default()))
        .await
        .expect("reply-to consumer")
}

/// Publishes on a fresh channel and returns the error the channel was closed with.
async fn publish_refusal(conn: &Connection, exchange: &str, key: &str) -> (u16, String) {
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
async fn publish_counted(ch: &Channel, exchange: &str, key: &str) -> u32 {
    common::publish(ch, exchange, key, b"x").await;
    ready(ch, "p.q").await
}

#[tokio::test]
async fn publish_needs_write_on_the_exchange_the_default_one_included() {
    let (b, conn) = setup().await;
    allow(&b, "", "^p\\.direct$", "");
    for x in ["", "amq.default"] {
        assert_eq!(
            publish_refusal(&conn, x, "p.q").await,
            refused("exchange", "amq.default")
        );
    }
    assert_eq!(
        publish_refusal(&conn, "p.topic", "a.b").await,
        refused("exchange", "p.topic")
    );
    // Refused before the exchange is looked up: 403, not 404.
    assert_eq!(
        publish_refusal(&conn, "p.missing", "k").await,
        refused("exchange", "p.missing")
    );
    let ch = channel(&conn).await;
    assert_eq!(publish_counted(&ch, "p.direct", "k").await, 0);
    allow(&b, "", "^amq\\.default$", "");
    assert_eq!(publish_counted(&ch, "", "p.q").await, 1);
    b.stop().await;
}

#[tokio::test]
async fn declares_and_deletes_need_configure() {
    let (b, conn) = setup().await;
    allow(&b, "^(p\\.x2|amq\\.gen.*)$", ".*", ".*");
    let none = FieldTable::default;
    expect_refusal(&conn, refused("queue", "p.q2"), |ch| async move {
        declare_q(&ch, "p.q2", none()).await
    })
    .await;
    // An existing queue needs configure too.
    expect_refusal(&conn, refused("queue", "p.q"), |ch| async move {
        declare_q(&ch, "p.q", none()).await
    })
    .await;
    // The reserved prefix is refused before the permission is looked at.
    let reserved = "ACCESS_REFUSED - queue name 'amq.q' contains reserved prefix 'amq.*'";
    expect_refusal(&conn, (403, reserved.into()), |ch| async move {
        declare_q(&ch, "amq.q", none()).await
    })
    .await;
    let ch = channel(&conn).await;
    let named = declare_q(&ch, "", none()).await.unwrap();
    assert!(named.starts_with("amq.gen-"), "{named}");
    declare_x(&ch, "p.x2", ExchangeKind::Direct, none())
        .await
        .unwrap();
    expect_refusal(&conn, refused("exchange", "p.x3"), |ch| async move {
        declare_x(&ch, "p.x3", ExchangeKind::Direct, none()).await
    })
    .await;
    // For exchanges the permission comes before the reserved prefix.
    expect_refusal(&conn, refused("exchange", "amq.x"), |ch| async move {
        declare_x(&ch, "amq.x", ExchangeKind::Direct, none()).await
    })
    .await;
    let default = "ACCESS_REFUSED - operation not permitted on the default exchange";
    expect_refusal(&conn, (403, default.into()), |ch| async move {
        declare_x(&ch, "", ExchangeKind::Direct, none()).await
    })
    .await;
    for x in ["p.topic", "p.missing"] {
        expect_refusal(&conn, refused("exchange", x), |ch| async move {
            within(ch.exchange_delete(x.into(), Default::default())).await
        })
        .await;
    }
    let system =
        "ACCESS_REFUSED - deletion of system exchange 'amq.direct' in vhost '/' not allowed";
    expect_refusal(&conn, (403, system.into()), |ch| async move {
        within(ch.exchange_delete("amq.direct".into(), Default::default())).await
    })
    .await;
    for q in ["p.q", "p.missing"] {
        expect_refusal(&conn, refused("queue", q), |ch| async move {
            within(ch.queue_delete(q.into(), Default::default())).await
        })
        .await;
    }
    let ch = channel(&conn).await;
    within(ch.exchange_delete("p.x2".into(), Default::default()))
        .await
        .unwrap();
    within(ch.queue_delete(named.as_str().into(), Default::default()))
        .await
        .unwrap();
    b.stop().await;
}

#[tokio::test]
async fn server_named_and_exclusive_queues_are_checked_by_their_names() {
    let (b, conn) = setup().await;
    allow(&b, "^excl\\.", "", "");
    let ch = channel(&conn).await;
    declare_q(&ch, "excl.1", FieldTable::default())
        .await
        .unwrap();
    let err = refusal(declare_q(&channel(&conn).await, "", FieldTable::default()).await);
    let prefix = "ACCESS_REFUSED - access to queue 'amq.gen-";
    assert!(err.0 == 403 && err.1.starts_with(prefix), "{err:?}");
    assert!(err.1.ends_with("' in vhost '/' refused for user 'guest'"));
    let ch = channel(&conn).await;
    let q = within(ch.queue_declare("excl.2".into(), common::exclusive(), FieldTable::default()))
        .await
        .unwrap();
    assert_eq!(q.name().as_str(), "excl.2");
    expect_refusal(&conn, refused("queue", "other"), |ch| async move {
        within(ch.queue_declare("other".into(), common::exclusive(), FieldTable::default())).await
    })
    .await;
    b.stop().await;
}

#[tokio::test]
async fn passive_declares_need_no_permission() {
    let (b, conn) = setup().await;
    allow(&b, "", "", "");
    let ch = channel(&conn).await;
    assert_eq!(ready(&ch, "p.q").await, 0);
    let passive = ExchangeDeclareOptions {
        passive: true,
        ..Default::default()
    };
    within(ch.exchange_declare(
        "p.topic".into(),
        ExchangeKind::Topic,
        passive,
        FieldTable::default(),
    ))
    .await
    .unwrap();
    let missing = (
        404,
        "NOT_FOUND - no queue 'p.missing' in vhost '/'".to_owned(),
    );
    expect_refusal(&conn, missing, |ch| async move {
        within(ch.queue_declare("p.missing".into(), common::passive(), FieldTable::default())).await
    })
    .await;
    b.stop().await;
}

#[tokio::test]
async fn consume_get_and_purge_need_read_direct_reply_to_needs_nothing() {
    let (b, conn) = setup().await;
    allow(&b, "", "^amq\\.default$", "^p\\.q$");
    let ch = channel(&conn).await;
    common::publish(&ch, "", "p.q", b"m").await;
    within(ch.queue_purge("p.q".into(), Default::default()))
        .await
        .unwrap();
    common::publish(&ch, "", "p.q", b"m").await;
    let got = within(ch.basic_get("p.q".into(), BasicGetOptions { no_ack: true }))
        .await
        .unwrap();
    assert!(got.is_some());
    common::consume(&ch, "p.q", Default::default()).await;
    allow(&b, "", "", "");
    expect_refusal(&conn, refused("queue", "p.q"), |ch| async move {
        within(ch.basic_get("p.q".into(), BasicGetOptions { no_ack: true })).await
    })
    .await;
    expect_refusal(&conn, refused("queue", "p.missing"), |ch| async move {
        within(ch.basic_get("p.missing".into(), BasicGetOptions { no_ack: true })).await
    })
    .await;
    expect_refusal(&conn, refused("queue", "p.q"), |ch| async move {
        within(ch.basic_consume(
            "p.q".into(),
            "".into(),
            Default::default(),
            FieldTable::default(),
        ))
        .await
    })
    .await;
    expect_refusal(&conn, refused("queue", "p.q"), |ch| async move {
        within(ch.queue_purge("p.q".into(), Default::default())).await
    })
    .await;
    // Consuming from direct reply-to needs no permission.
    reply_to_watcher(&channel(&conn).await).await;
    b.stop().await;
}

#[tokio::test]
async fn bindings_need_write_on_the_destination_and_read_on_the_source() {
    let (b, conn) = setup().await;
    allow(&b, "", "", "");
    expect_refusal(&conn, refused("queue", "p.q"), |ch| async move {
        bind(&ch, "p.q", "p.direct", "k").await
    })
    .await;
    // The destination's permission comes first, even for the default exchange.
    expect_refusal(&conn, refused("queue", "p.q"), |ch| async move {
        bind(&ch, "p.q", "", "k").await
    })
    .await;
    expect_refusal(&conn, refused("exchange", "p.dst"), |ch| async move {
        bind_x(&ch, "p.dst", "p.direct", "k").await
    })
    .await;
    allow(&b, "", "^p\\.(q|dst)$", "");
    let default = (
        403,
        "ACCESS_REFUSED - operation not permitted on the default exchange".to_owned(),
    );
    expect_refusal(&conn, default, |ch| async move {
        bind(&ch, "p.q", "", "k").await
    })
    .await;
    for (unbinding, x) in [
        (false, "p.direct"),
        (true, "p.direct"),
        (false, "p.missing"),
    ] {
        expect_refusal(&conn, refused("exchange", x), |ch| async move {
            if unbinding {
                unbind(&ch, "p.q", x, "k").await
            } else {
                bind(&ch, "p.q", x, "k").await
            }
        })
        .await;
    }
    expect_refusal(&conn, refused("exchange", "p.direct"), |ch| async move {
        unbind_x(&ch, "p.dst", "p.direct", "k").await
    })
    .await;
    allow(&b, "", "^p\\.(q|dst)$", "^p\\.(direct|missing)$");
    let ch = channel(&conn).await;
    bind(&ch, "p.q", "p.direct", "k").await.unwrap();
    unbind(&ch, "p.q", "p.direct", "k").await.unwrap();
    bind_x(&ch, "p.dst", "p.direct", "k").await.unwrap();
    unbind_x(&ch, "p.dst", "p.direct", "k").await.unwrap();
    // Allowed, then the missing exchange is reported.
    let missing = (
        404,
        "NOT_FOUND - no exchange 'p.missing' in vhost '/'".to_owned(),
    );
    expect_refusal(&conn, missing, |ch| async move {
        bind(&ch, "p.q", "p.missing", "k").await
    })
    .await;
    b.stop().await;
}

#[tokio::test]
async fn alternate_and_dead_letter_exchanges_need_read_and_write_on_creation() {
    let (b, conn) = setup().await;
    let mine = "^(p\\.ae|p\\.dl|p\\.dl2)$";
    let ae = || arg("alternate-exchange", "p.direct");
    let dlx = || arg("x-dead-letter-exchange", "p.direct");
    allow(&b, mine, "", "");
    expect_refusal(&conn, refused("exchange", "p.ae"), |ch| async move {
        declare_x(&ch, "p.ae", ExchangeKind::Fanout, ae()).await
    })
    .await;
    expect_refusal(&conn, refused("queue", "p.dl"), |ch| async move {
        declare_q(&ch, "p.dl", dlx()).await
    })
    .await;
    allow(&b, mine, "", mine);
    expect_refusal(&conn, refused("exchange", "p.direct"), |ch| async move {
        declare_x(&ch, "p.ae", ExchangeKind::Fanout, ae()).await
    })
    .await;
    expect_refusal(&conn, refused("exchange", "p.direct"), |ch| async move {
        declare_q(&ch, "p.dl", dlx()).await
    })
    .await;
    expect_refusal(&conn, refused("exchange", "amq.default"), |ch| async move {
        declare_q(&ch, "p.dl2", arg("x-dead-letter-exchange", "")).await
    })
    .await;
    allow(&b, mine, "^p\\.direct$", mine);
    let ch = channel(&conn).await;
    declare_x(&ch, "p.ae", ExchangeKind::Fanout, ae())
        .await
        .unwrap();
    declare_q(&ch, "p.dl", dlx()).await.unwrap();
    // Redeclaring what exists needs configure only.
    allow(&b, mine, "", "");
    let ch = channel(&conn).await;
    declare_x(&ch, "p.ae", ExchangeKind::Fanout, ae())
        .await
        .unwrap();
    declare_q(&ch, "p.dl", dlx()).await.unwrap();
    b.stop().await;
}

#[tokio::test]
async fn topic_permissions_check_routing_and_binding_keys_with_expansion() {
    let (b, conn) = setup().await;
    let broker = b.server.broker();
    broker
        .set_topic_permissions(
            "guest",
            "/",
            "p.topic",
            "^{username}\\.",
            "^({username}|{vhost})\\.",
        )
        .unwrap();
    let ch = channel(&conn).await;
    bind(&ch, "p.q", "p.topic", "guest.#").await.unwrap();
    assert_eq!(publish_counted(&ch, "p.topic", "guest.x").await, 1);
    assert_eq!(
        publish_refusal(&conn, "p.topic", "other.x").await,
        topic_refused("other.x", "p.topic")
    );
    bind(&channel(&conn).await, "p.q", "p.topic", "/.x")
        .await
        .unwrap();
    expect_refusal(&conn, topic_refused("x.#", "p.topic"), |ch| async move {
        bind(&ch, "p.q", "p.topic", "x.#").await
    })
    .await;
    expect_refusal(&conn, topic_refused("a.b", "p.topic"), |ch| async move {
        unbind(&ch, "p.q", "p.topic", "a.b").await
    })
    .await;
    expect_refusal(&conn, topic_refused("k", "p.topic"), |ch| async move {
        bind_x(&ch, "p.dst", "p.topic", "k").await
    })
    .await;
    // Only topic exchanges: a topic permission on a direct exchange changes nothing.
    broker
        .set_topic_permissions("guest", "/", "p.direct", "", "")
        .unwrap();
    let ch = channel(&conn).await;
    bind(&ch, "p.q", "p.direct", "any").await.unwrap();
    assert_eq!(publish_counted(&ch, "p.direct", "any").await, 2);
    // An empty pattern allows only the empty key; no permission at all allows all.
    broker
        .set_topic_permissions("guest", "/", "amq.topic", "", "")
        .unwrap();
    assert_eq!(publish_counted(&ch, "amq.topic", "").await, 2);
    assert_eq!(
        publish_refusal(&conn, "amq.topic", "a").await,
        topic_refused("a", "amq.topic")
    );
    broker
        .clear_topic_permissions("guest", "/", Some("amq.topic"))
        .unwrap();
    let ch = channel(&conn).await;
    assert_eq!(publish_counted(&ch, "amq.topic", "a").await, 2);
    broker.clear_topic_permissions("guest", "/", None).unwrap();
    assert_eq!(publish_counted(&ch, "p.topic", "other.a.b").await, 2);
    assert!(broker.list_topic_permissions().is_empty());
    b.stop().await;
}

/// Logs in as guest and sends connection.open for `vhost`.
async fn open_on(b: &TestBroker, vhost: &str) -> Raw {
    let (mut raw, _) = Raw::start(b.addr).await;
    raw.start_ok("PLAIN", plain("guest", "guest"), true).await;
    raw.expect_tune().await;
    raw.tune_ok(2047, 131_072, 0).await;
    raw.open_vhost(vhost).await;
    raw
}

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
    // Forgetting a vhost or user takes everything of it.
    broker.forget_vhost_permissions("/");
    assert!(broker.list_permissions().is_empty() && broker.list_topic_permissions().is_empty());
    broker.grant("guest", "/", ".*", ".*", ".*").unwrap();
    broker.forget_user_permissions("guest");
    assert!(broker.list_permissions().is_empty());
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
