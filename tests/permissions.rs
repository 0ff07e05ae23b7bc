//! Permissions on AMQP operations: each one allowed and refused as RabbitMQ 3.10 maps it
//! to configure, write and read (its 403 texts and its order of checks), and topic
//! permissions with `{username}` / `{vhost}` expansion. Guest logs in with permissions
//! narrowed through the API.
mod access;
mod common;

use access::*;
use common::{ready, refusal, within};
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::ExchangeKind;

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
