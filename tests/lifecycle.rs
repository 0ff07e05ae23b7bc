//! Lifecycles: server-named, exclusive and auto-delete queues and auto-delete exchanges under
//! every path (TCP drop, channel close, server cancel, broker shutdown), exchange-to-exchange
//! binding cycles, alternate exchanges with mandatory, internal exchanges.
mod common;

use common::proxy::droppable;
use common::{
    amqp_error, auto_delete, consume, counts, declare, exclusive, next_error, publish,
    queue_exists, wait_until, within, TestBroker,
};
use futures::StreamExt;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
};

// ---- helpers ----

async fn exchange(ch: &Channel, name: &str, kind: ExchangeKind, options: ExchangeDeclareOptions) {
    exchange_with(ch, name, kind, options, FieldTable::default()).await
}

async fn exchange_with(
    ch: &Channel,
    name: &str,
    kind: ExchangeKind,
    options: ExchangeDeclareOptions,
    args: FieldTable,
) {
    within(ch.exchange_declare(name.into(), kind, options, args))
        .await
        .expect("exchange.declare")
}

fn auto_delete_x() -> ExchangeDeclareOptions {
    ExchangeDeclareOptions {
        auto_delete: true,
        ..Default::default()
    }
}

fn alternate(ae: &str) -> FieldTable {
    let mut args = FieldTable::default();
    args.insert(
        ShortString::from("alternate-exchange"),
        AMQPValue::LongString(ae.into()),
    );
    args
}

async fn bind_q(ch: &Channel, queue: &str, ex: &str, key: &str) {
    within(ch.queue_bind(
        queue.into(),
        ex.into(),
        key.into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    ))
    .await
    .expect("queue.bind")
}

async fn bind_x(ch: &Channel, destination: &str, source: &str, key: &str) {
    within(ch.exchange_bind(
        destination.into(),
        source.into(),
        key.into(),
        ExchangeBindOptions::default(),
        FieldTable::default(),
    ))
    .await
    .expect("exchange.bind")
}

async fn exchange_exists(conn: &Connection, name: &str) -> bool {
    let ch = within(conn.create_channel()).await.unwrap();
    let options = ExchangeDeclareOptions {
        passive: true,
        ..Default::default()
    };
    match within(ch.exchange_declare(
        name.into(),
        ExchangeKind::Fanout,
        options,
        FieldTable::default(),
    ))
    .await
    {
        Ok(()) => true,
        Err(e) => {
            assert_eq!(amqp_error(&e).0, 404, "{e}");
            false
        }
    }
}

async fn wait_exchange_gone(conn: &Connection, name: &str) {
    wait_until(&format!("exchange {name} is gone"), || async {
        !exchange_exists(conn, name).await
    })
    .await
}

fn locked(queue: &str) -> String {
    format!(
        "RESOURCE_LOCKED - cannot obtain exclusive access to locked queue '{queue}' in vhost '/'. It could be \
         originally declared on another connection or the exclusive property value does not match that of the \
         original declaration."
    )
}

// ---- queues ----

#[tokio::test]
async fn server_named_queues_follow_their_flags_when_the_connection_drops() {
    let broker = TestBroker::start().await;
    let (proxy, _doomed, ch) = droppable(&broker).await;
    let excl = declare(&ch, "", exclusive()).await;
    let ad_consumed = declare(&ch, "", auto_delete()).await;
    let ad_idle = declare(&ch, "", auto_delete()).await;
    let plain = declare(&ch, "", QueueDeclareOptions::default()).await;
    let names = [&excl, &ad_consumed, &ad_idle, &plain];
    for (i, n) in names.iter().enumerate() {
        assert!(n.starts_with("amq.gen-"), "{n}");
        assert!(!names[..i].contains(n), "names are unique");
    }
    let _c = consume(&ch, &ad_consumed, BasicConsumeOptions::default()).await;
    let (watcher, wch) = broker.channel().await;
    assert_eq!(counts(&wch, &ad_consumed).await, (0, 1));
    proxy.cut();
    common::wait_queue_gone(&watcher, &excl).await;
    common::wait_queue_gone(&watcher, &ad_consumed).await;
    assert!(
        queue_exists(&watcher, &ad_idle).await,
        "auto-delete without ever a consumer stays"
    );
    assert!(
        queue_exists(&watcher, &plain).await,
        "a server-named queue is not exclusive by itself"
    );
    broker.stop().await;
}

#[tokio::test]
async fn exclusive_queue_dies_with_its_owner_dropped_abruptly_while_others_consume() {
    let broker = TestBroker::start().await;
    let (other, och) = broker.channel().await;
    declare(&och, "lifecycle.shared", QueueDeclareOptions::default()).await;

    let (proxy, _owner, ch) = droppable(&broker).await;
    declare(&ch, "lifecycle.excl", exclusive()).await;
    publish(&ch, "", "lifecycle.excl", b"e1").await;
    publish(&ch, "", "lifecycle.excl", b"e2").await;
    let mut mine = consume(&ch, "lifecycle.excl", BasicConsumeOptions::default()).await;
    within(mine.next()).await.unwrap().unwrap();
    // The owner also consumes the shared queue and holds one message unacked.
    within(ch.basic_qos(1, BasicQosOptions::default()))
        .await
        .unwrap();
    let mut owner_shared = consume(&ch, "lifecycle.shared", BasicConsumeOptions::default()).await;

    // Another connection cannot consume, get or declare the exclusive queue: 405.
    for attempt in 0..2 {
        let ch2 = within(other.create_channel()).await.unwrap();
        let err = if attempt == 0 {
            within(ch2.basic_consume(
                "lifecycle.excl".into(),
                "".into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            ))
            .await
            .map(|_| ())
            .expect_err("consume refused")
        } else {
            within(ch2.basic_get("lifecycle.excl".into(), BasicGetOptions::default()))
                .await
                .map(|_| ())
                .expect_err("get refused")
        };
        assert_eq!(amqp_error(&err), (405, locked("lifecycle.excl")));
        assert!(!ch2.status().connected(), "a channel error");
    }
    assert!(other.status().connected());

    let mut theirs = consume(&och, "lifecycle.shared", BasicConsumeOptions::default()).await;
    publish(&och, "", "lifecycle.shared", b"s1").await;
    let held = within(owner_shared.next()).await.unwrap().unwrap();
    assert_eq!(held.data, b"s1");
    publish(&och, "", "lifecycle.shared", b"s2").await;
    let d = within(theirs.next()).await.unwrap().unwrap();
    assert_eq!((d.data.as_slice(), d.redelivered), (&b"s2"[..], false));

    proxy.cut();
    // The owner's unacked shared message goes to the other consumer, redelivered.
    let d = within(theirs.next()).await.unwrap().unwrap();
    assert_eq!((d.data.as_slice(), d.redelivered), (&b"s1"[..], true));
    common::wait_queue_gone(&other, "lifecycle.excl").await;
    // The name is free again; its messages died with it.
    let ch3 = within(other.create_channel()).await.unwrap();
    declare(&ch3, "lifecycle.excl", QueueDeclareOptions::default()).await;
    assert_eq!(counts(&ch3, "lifecycle.excl").await, (0, 0));
    broker.stop().await;
}

#[tokio::test]
async fn auto_delete_queue_lives_until_its_last_consumer_goes_by_any_path() {
    let broker = TestBroker::start().await;
    let (conn, ch) = broker.channel().await;
    declare(&ch, "lifecycle.ad", auto_delete()).await;
    // consumer A: through a connection that is cut
    let (proxy, _a_conn, a_ch) = droppable(&broker).await;
    let _a = consume(&a_ch, "lifecycle.ad", BasicConsumeOptions::default()).await;
    // consumers B1, B2 on one channel that is closed
    let b_ch = within(conn.create_channel()).await.unwrap();
    let _b1 = consume(&b_ch, "lifecycle.ad", BasicConsumeOptions::default()).await;
    let _b2 = consume(&b_ch, "lifecycle.ad", BasicConsumeOptions::default()).await;
    // consumer C, cancelled by the client at the end
    let c_ch = within(conn.create_channel()).await.unwrap();
    let c = consume(&c_ch, "lifecycle.ad", BasicConsumeOptions::default()).await;
    assert_eq!(counts(&ch, "lifecycle.ad").await, (0, 4));

    proxy.cut();
    wait_until("A's consumer is gone", || async {
        counts(&ch, "lifecycle.ad").await.1 == 3
    })
    .await;
    within(b_ch.close(200, "bye".into())).await.unwrap();
    wait_until("B's consumers are gone", || async {
        counts(&ch, "lifecycle.ad").await.1 == 1
    })
    .await;
    publish(&ch, "", "lifecycle.ad", b"kept").await;
    within(c_ch.basic_cancel(c.tag(), BasicCancelOptions::default()))
        .await
        .unwrap();
    common::wait_queue_gone(&conn, "lifecycle.ad").await;
    broker.stop().await;
}

#[tokio::test]
async fn closing_the_declaring_channel_keeps_exclusive_queues_and_ends_auto_delete_ones() {
    let broker = TestBroker::start().await;
    let (conn, ch) = broker.channel().await;
    let excl = declare(&ch, "", exclusive()).await;
    let ad = declare(&ch, "", auto_delete()).await;
    let mut c1 = consume(&ch, &excl, BasicConsumeOptions::default()).await;
    let _c2 = consume(&ch, &ad, BasicConsumeOptions::default()).await;
    publish(&ch, "", &excl, b"held").await;
    // Delivered (and unacked) before the close: a delivery still on its way when the
    // channel closes goes back without the redelivered flag.
    within(c1.next())
        .await
        .expect("delivery")
        .expect("delivery");
    within(ch.close(200, "bye".into())).await.unwrap();
    // exclusivity belongs to the connection, not to the channel
    common::wait_queue_gone(&conn, &ad).await;
    let ch2 = within(conn.create_channel()).await.unwrap();
    wait_until("the closed channel's delivery is requeued", || async {
        counts(&ch2, &excl).await == (1, 0)
    })
    .await;
    let got = within(ch2.basic_get(excl.as_str().into(), BasicGetOptions { no_ack: true }))
        .await
        .unwrap()
        .expect("get-ok");
    assert_eq!(
        (got.delivery.data.as_slice(), got.delivery.redelivered),
        (&b"held"[..], true)
    );
    broker.stop().await;
}

#[tokio::test]
async fn auto_delete_queue_never_consumed_outlives_its_connection() {
    let broker = TestBroker::start().await;
    let (watcher, _wch) = broker.channel().await;
    let (closing, ch) = broker.channel().await;
    declare(&ch, "lifecycle.ad.clean", auto_delete()).await;
    within(closing.close(200, "bye".into())).await.unwrap();
    let (proxy, _dropped, ch) = droppable(&broker).await;
    declare(&ch, "lifecycle.ad.dropped", auto_delete()).await;
    // basic.get is not a consumer: it does not arm the auto-delete
    publish(&ch, "", "lifecycle.ad.dropped", b"m").await;
    within(ch.basic_get(
        "lifecycle.ad.dropped".into(),
        BasicGetOptions { no_ack: true },
    ))
    .await
    .unwrap()
    .expect("get-ok");
    let marker = declare(&ch, "", exclusive()).await;
    proxy.cut();
    // The broker has handled the drop once that connection's exclusive queue is gone
    // (its channels, and their consumers, are released before its exclusive queues).
    common::wait_queue_gone(&watcher, &marker).await;
    assert!(queue_exists(&watcher, "lifecycle.ad.clean").await);
    assert!(queue_exists(&watcher, "lifecycle.ad.dropped").await);
    broker.stop().await;
}

#[tokio::test]
async fn server_cancel_on_queue_deletion_keeps_the_channel_and_removes_auto_delete_exchanges() {
    let broker = TestBroker::start().await;
    let (conn, ch) = broker.channel().await;
    exchange(
        &ch,
        "lifecycle.cancel.x",
        ExchangeKind::Fanout,
        auto_delete_x(),
    )
    .await;
    declare(&ch, "lifecycle.cancel.q", auto_delete()).await;
    bind_q(&ch, "lifecycle.cancel.q", "lifecycle.cancel.x", "").await;
    let keep = declare(&ch, "", exclusive()).await;
    let mut cancelled = consume(&ch, "lifecycle.cancel.q", BasicConsumeOptions::default()).await;
    let mut other = consume(
        &ch,
        &keep,
        BasicConsumeOptions {
            no_ack: true,
            ..Default::default()
        },
    )
    .await;
    publish(&ch, "lifecycle.cancel.x", "", b"before").await;
    let d = within(cancelled.next()).await.unwrap().unwrap();
    assert_eq!(d.data, b"before");

    let (_deleter, dch) = broker.channel().await;
    within(dch.queue_delete("lifecycle.cancel.q".into(), QueueDeleteOptions::default()))
        .await
        .unwrap();
    assert!(
        within(cancelled.next()).await.is_none(),
        "basic.cancel from the server ends the consumer"
    );
    // The delivery of the deleted queue is gone with it: acking it is harmless.
    within(d.ack(BasicAckOptions::default())).await.unwrap();
    assert!(ch.status().connected(), "the channel stays open");
    publish(&ch, "", &keep, b"still here").await;
    assert_eq!(
        within(other.next()).await.unwrap().unwrap().data,
        b"still here"
    );
    // The queue was the exchange's last binding.
    wait_exchange_gone(&conn, "lifecycle.cancel.x").await;
    broker.stop().await;
}

#[tokio::test]
async fn broker_shutdown_closes_every_connection_with_320_and_forgets_transient_queues() {
    let broker = TestBroker::start().await;
    let (c1, ch1) = broker.channel().await;
    let (c2, ch2) = broker.channel().await;
    let excl = declare(&ch1, "", exclusive()).await;
    declare(&ch1, "lifecycle.shutdown.ad", auto_delete()).await;
    declare(
        &ch1,
        "lifecycle.shutdown.plain",
        QueueDeclareOptions::default(),
    )
    .await;
    publish(&ch1, "", "lifecycle.shutdown.plain", b"transient").await;
    let _consumer = consume(&ch1, &excl, BasicConsumeOptions::default()).await;
    let _ad = consume(
        &ch2,
        "lifecycle.shutdown.ad",
        BasicConsumeOptions::default(),
    )
    .await;
    within(ch2.tx_select()).await.unwrap();
    let mut e1 = Box::pin(c1.events_listener());
    let mut e2 = Box::pin(c2.events_listener());

    let TestBroker {
        server, data_dir, ..
    } = broker;
    let stopping = tokio::spawn(server.shutdown());
    let forced = (
        320,
        "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'".to_owned(),
    );
    assert_eq!(amqp_error(&next_error(&mut e1).await), forced);
    assert_eq!(amqp_error(&next_error(&mut e2).await), forced);
    within(stopping).await.unwrap();
    assert!(!c1.status().connected() && !c2.status().connected());

    // Restarted on the same data directory: nothing transient came back.
    let server = warren::start(warren::Config::local(&data_dir))
        .await
        .expect("restart");
    let url = format!("amqp://guest:guest@{}/%2f", server.local_addr());
    let conn = within(Connection::connect(&url, ConnectionProperties::default()))
        .await
        .unwrap();
    for q in [
        excl.as_str(),
        "lifecycle.shutdown.ad",
        "lifecycle.shutdown.plain",
    ] {
        assert!(!queue_exists(&conn, q).await, "{q} did not survive");
    }
    server.shutdown().await;
    let _ = std::fs::remove_dir_all(&data_dir);
}

// ---- auto-delete exchanges and exchange-to-exchange bindings ----

#[tokio::test]
async fn auto_delete_exchange_goes_with_its_last_queue_binding() {
    let broker = TestBroker::start().await;
    let (conn, ch) = broker.channel().await;
    declare(&ch, "lifecycle.adx.q", QueueDeclareOptions::default()).await;
    // by unbinding: only the last binding counts
    exchange(
        &ch,
        "lifecycle.adx.1",
        ExchangeKind::Direct,
        auto_delete_x(),
    )
    .await;
    bind_q(&ch, "lifecycle.adx.q", "lifecycle.adx.1", "a").await;
    bind_q(&ch, "lifecycle.adx.q", "lifecycle.adx.1", "b").await;
    within(ch.queue_unbind(
        "lifecycle.adx.q".into(),
        "lifecycle.adx.1".into(),
        "a".into(),
        FieldTable::default(),
    ))
    .await
    .unwrap();
    assert!(exchange_exists(&conn, "lifecycle.adx.1").await);
    within(ch.queue_unbind(
        "lifecycle.adx.q".into(),
        "lifecycle.adx.1".into(),
        "b".into(),
        FieldTable::default(),
    ))
    .await
    .unwrap();
    wait_exchange_gone(&conn, "lifecycle.adx.1").await;
    // by deleting the queue
    exchange(
        &ch,
        "lifecycle.adx.2",
        ExchangeKind::Fanout,
        auto_delete_x(),
    )
    .await;
    bind_q(&ch, "lifecycle.adx.q", "lifecycle.adx.2", "").await;
    within(ch.queue_delete("lifecycle.adx.q".into(), QueueDeleteOptions::default()))
        .await
        .unwrap();
    wait_exchange_gone(&conn, "lifecycle.adx.2").await;
    // by the owner of an exclusive queue dropping its connection
    let (proxy, _doomed, dch) = droppable(&broker).await;
    exchange(
        &dch,
        "lifecycle.adx.3",
        ExchangeKind::Fanout,
        auto_delete_x(),
    )
    .await;
    let q = declare(&dch, "", exclusive()).await;
    bind_q(&dch, &q, "lifecycle.adx.3", "").await;
    proxy.cut();
    wait_exchange_gone(&conn, "lifecycle.adx.3").await;
    // never bound: it stays (an auto-delete exchange goes only in the handler that
    // removes its last binding, before that handler answers)
    exchange(
        &ch,
        "lifecycle.adx.4",
        ExchangeKind::Fanout,
        auto_delete_x(),
    )
    .await;
    assert!(exchange_exists(&conn, "lifecycle.adx.4").await);
    broker.stop().await;
}

#[tokio::test]
async fn auto_delete_exchange_goes_with_its_last_exchange_binding_as_source_only() {
    let broker = TestBroker::start().await;
    let (conn, ch) = broker.channel().await;
    let plain = ExchangeDeclareOptions::default();
    // source of an e2e binding, unbound
    exchange(
        &ch,
        "lifecycle.e2e.src1",
        ExchangeKind::Fanout,
        auto_delete_x(),
    )
    .await;
    exchange(&ch, "lifecycle.e2e.dst1", ExchangeKind::Fanout, plain).await;
    bind_x(&ch, "lifecycle.e2e.dst1", "lifecycle.e2e.src1", "").await;
    within(ch.exchange_unbind(
        "lifecycle.e2e.dst1".into(),
        "lifecycle.e2e.src1".into(),
        "".into(),
        ExchangeUnbindOptions::default(),
        FieldTable::default(),
    ))
    .await
    .unwrap();
    wait_exchange_gone(&conn, "lifecycle.e2e.src1").await;
    // source of an e2e binding whose destination exchange is deleted
    exchange(
        &ch,
        "lifecycle.e2e.src2",
        ExchangeKind::Fanout,
        auto_delete_x(),
    )
    .await;
    exchange(&ch, "lifecycle.e2e.dst2", ExchangeKind::Fanout, plain).await;
    bind_x(&ch, "lifecycle.e2e.dst2", "lifecycle.e2e.src2", "").await;
    within(ch.exchange_delete(
        "lifecycle.e2e.dst2".into(),
        ExchangeDeleteOptions::default(),
    ))
    .await
    .unwrap();
    wait_exchange_gone(&conn, "lifecycle.e2e.src2").await;
    // destination of an e2e binding: removing that binding does not delete it
    exchange(&ch, "lifecycle.e2e.src3", ExchangeKind::Fanout, plain).await;
    exchange(
        &ch,
        "lifecycle.e2e.dst3",
        ExchangeKind::Fanout,
        auto_delete_x(),
    )
    .await;
    bind_x(&ch, "lifecycle.e2e.dst3", "lifecycle.e2e.src3", "").await;
    within(ch.exchange_unbind(
        "lifecycle.e2e.dst3".into(),
        "lifecycle.e2e.src3".into(),
        "".into(),
        ExchangeUnbindOptions::default(),
        FieldTable::default(),
    ))
    .await
    .unwrap();
    // (unbind-ok came after anything the unbind removed)
    assert!(exchange_exists(&conn, "lifecycle.e2e.dst3").await);
    // a chain cascades: a -> b -> queue; deleting the queue removes b, then a
    exchange(
        &ch,
        "lifecycle.e2e.a",
        ExchangeKind::Fanout,
        auto_delete_x(),
    )
    .await;
    exchange(
        &ch,
        "lifecycle.e2e.b",
        ExchangeKind::Fanout,
        auto_delete_x(),
    )
    .await;
    declare(&ch, "lifecycle.e2e.q", QueueDeclareOptions::default()).await;
    bind_x(&ch, "lifecycle.e2e.b", "lifecycle.e2e.a", "").await;
    bind_q(&ch, "lifecycle.e2e.q", "lifecycle.e2e.b", "").await;
    publish(&ch, "lifecycle.e2e.a", "", b"through").await;
    assert_eq!(counts(&ch, "lifecycle.e2e.q").await, (1, 0));
    within(ch.queue_delete("lifecycle.e2e.q".into(), QueueDeleteOptions::default()))
        .await
        .unwrap();
    wait_exchange_gone(&conn, "lifecycle.e2e.b").await;
    wait_exchange_gone(&conn, "lifecycle.e2e.a").await;
    broker.stop().await;
}

#[tokio::test]
async fn exchange_binding_cycles_deliver_one_copy_per_queue() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    // t1 -> t2 -> t3 -> t1 (topic), with a fanout f on the side: t2 -> f -> t1
    for x in ["lifecycle.cyc.t1", "lifecycle.cyc.t2", "lifecycle.cyc.t3"] {
        exchange(
            &ch,
            x,
            ExchangeKind::Topic,
            ExchangeDeclareOptions::default(),
        )
        .await;
    }
    exchange(
        &ch,
        "lifecycle.cyc.f",
        ExchangeKind::Fanout,
        ExchangeDeclareOptions::default(),
    )
    .await;
    bind_x(&ch, "lifecycle.cyc.t2", "lifecycle.cyc.t1", "#").await;
    bind_x(&ch, "lifecycle.cyc.t3", "lifecycle.cyc.t2", "a.*").await;
    bind_x(&ch, "lifecycle.cyc.t1", "lifecycle.cyc.t3", "#").await;
    bind_x(&ch, "lifecycle.cyc.f", "lifecycle.cyc.t2", "#").await;
    bind_x(&ch, "lifecycle.cyc.t1", "lifecycle.cyc.f", "").await;
    for (q, x, key) in [
        ("lifecycle.cyc.q1", "lifecycle.cyc.t1", "#"),
        ("lifecycle.cyc.q2", "lifecycle.cyc.t2", "#"),
        ("lifecycle.cyc.q3", "lifecycle.cyc.t3", "#"),
        ("lifecycle.cyc.qall", "lifecycle.cyc.t1", "#"),
        ("lifecycle.cyc.qall", "lifecycle.cyc.t3", "#"),
        ("lifecycle.cyc.qall", "lifecycle.cyc.f", ""),
    ] {
        declare(&ch, q, QueueDeclareOptions::default()).await;
        bind_q(&ch, q, x, key).await;
    }
    // a.b reaches t1, t2, t3 (t2 -> t3 matches a.*) and f
    publish(&ch, "lifecycle.cyc.t3", "a.b", b"1").await;
    // b.c reaches t1, t2 and f, not t3
    publish(&ch, "lifecycle.cyc.f", "b.c", b"2").await;
    let expect = [
        ("lifecycle.cyc.q1", 2),
        ("lifecycle.cyc.q2", 2),
        ("lifecycle.cyc.q3", 1),
        ("lifecycle.cyc.qall", 2),
    ];
    for (q, n) in expect {
        assert_eq!(counts(&ch, q).await.0, n, "{q}: one copy per message");
    }
    broker.stop().await;
}

// ---- alternate exchanges and mandatory ----

/// Publishes a mandatory message on a confirm channel: Some((code, text, exchange, key)) when
/// it came back with basic.return (lapin attaches the return to the confirm that follows it).
async fn mandatory(ch: &Channel, ex: &str, key: &str) -> Option<(u16, String, String, String)> {
    let confirm = within(ch.basic_publish(
        ex.into(),
        key.into(),
        BasicPublishOptions {
            mandatory: true,
            ..Default::default()
        },
        b"m",
        BasicProperties::default(),
    ))
    .await
    .expect("basic.publish");
    match within(confirm).await.expect("confirm") {
        Confirmation::Ack(None) => None,
        Confirmation::Ack(Some(r)) => Some((
            r.reply_code,
            r.reply_text.to_string(),
            r.delivery.exchange.to_string(),
            r.delivery.routing_key.to_string(),
        )),
        other => panic!("unexpected confirmation {other:?}"),
    }
}

#[tokio::test]
async fn alternate_exchange_and_mandatory() {
    let broker = TestBroker::start().await;
    let (_conn, ch) = broker.channel().await;
    within(ch.confirm_select(ConfirmSelectOptions::default()))
        .await
        .unwrap();
    let fanout = ExchangeKind::Fanout;
    let direct = ExchangeKind::Direct;
    let plain = ExchangeDeclareOptions::default;
    // an internal AE that routes
    exchange(
        &ch,
        "lifecycle.ae",
        fanout.clone(),
        ExchangeDeclareOptions {
            internal: true,
            ..Default::default()
        },
    )
    .await;
    declare(&ch, "lifecycle.ae.q", QueueDeclareOptions::default()).await;
    bind_q(&ch, "lifecycle.ae.q", "lifecycle.ae", "").await;
    exchange_with(
        &ch,
        "lifecycle.main",
        direct.clone(),
        plain(),
        alternate("lifecycle.ae"),
    )
    .await;
    // an AE with no bindings; an AE that does not exist; AEs pointing at each other
    exchange(&ch, "lifecycle.ae.empty", fanout, plain()).await;
    exchange_with(
        &ch,
        "lifecycle.main2",
        direct.clone(),
        plain(),
        alternate("lifecycle.ae.empty"),
    )
    .await;
    exchange_with(
        &ch,
        "lifecycle.main3",
        direct.clone(),
        plain(),
        alternate("lifecycle.ae.missing"),
    )
    .await;
    exchange_with(
        &ch,
        "lifecycle.loop1",
        direct.clone(),
        plain(),
        alternate("lifecycle.loop2"),
    )
    .await;
    exchange_with(
        &ch,
        "lifecycle.loop2",
        direct.clone(),
        plain(),
        alternate("lifecycle.loop1"),
    )
    .await;
    // a chain: main4's AE is ae2 (routes nothing), whose AE is the internal ae
    exchange_with(
        &ch,
        "lifecycle.ae2",
        direct.clone(),
        plain(),
        alternate("lifecycle.ae"),
    )
    .await;
    exchange_with(
        &ch,
        "lifecycle.main4",
        direct,
        plain(),
        alternate("lifecycle.ae2"),
    )
    .await;

    assert_eq!(
        mandatory(&ch, "lifecycle.main", "k1").await,
        None,
        "the AE routed it: no return"
    );
    assert_eq!(
        mandatory(&ch, "lifecycle.main4", "k4").await,
        None,
        "AE of the AE"
    );
    assert_eq!(counts(&ch, "lifecycle.ae.q").await.0, 2);
    for (ex, key) in [
        ("lifecycle.main2", "k2"),
        ("lifecycle.main3", "k3"),
        ("lifecycle.loop1", "k5"),
    ] {
        assert_eq!(
            mandatory(&ch, ex, key).await,
            Some((312, "NO_ROUTE".to_owned(), ex.to_owned(), key.to_owned())),
            "returned with the exchange and key it was published to"
        );
    }
    assert_eq!(counts(&ch, "lifecycle.ae.q").await.0, 2);
    broker.stop().await;
}

#[tokio::test]
async fn internal_exchange_is_reached_through_bindings_but_refuses_publishes_403() {
    let broker = TestBroker::start().await;
    let (conn, ch) = broker.channel().await;
    exchange(
        &ch,
        "lifecycle.pub",
        ExchangeKind::Topic,
        ExchangeDeclareOptions::default(),
    )
    .await;
    exchange(
        &ch,
        "lifecycle.int",
        ExchangeKind::Topic,
        ExchangeDeclareOptions {
            internal: true,
            ..Default::default()
        },
    )
    .await;
    bind_x(&ch, "lifecycle.int", "lifecycle.pub", "a.#").await;
    declare(&ch, "lifecycle.int.q", QueueDeclareOptions::default()).await;
    bind_q(&ch, "lifecycle.int.q", "lifecycle.int", "#").await;
    publish(&ch, "lifecycle.pub", "a.b", b"through").await;
    publish(&ch, "lifecycle.pub", "b.b", b"not bound").await;
    assert_eq!(counts(&ch, "lifecycle.int.q").await, (1, 0));

    let pch = ch.clone();
    let err = common::channel_close_error(&ch, async move {
        pch.basic_publish(
            "lifecycle.int".into(),
            "a.b".into(),
            BasicPublishOptions::default(),
            b"direct",
            BasicProperties::default(),
        )
        .await
        .map(|_| ())
    })
    .await;
    assert_eq!(
        amqp_error(&err),
        (
            403,
            "ACCESS_REFUSED - cannot publish to internal exchange 'lifecycle.int' in vhost '/'"
                .to_owned()
        )
    );
    assert!(conn.status().connected(), "a channel error");
    let ch2 = within(conn.create_channel()).await.unwrap();
    assert_eq!(
        counts(&ch2, "lifecycle.int.q").await,
        (1, 0),
        "nothing got in"
    );
    broker.stop().await;
}
