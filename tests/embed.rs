//! The embedding API: `Server::builder()` and what the handle gives a test (URLs, clock,
//! counters, shutdown and drop), several brokers in one process, and the builder's
//! refusals of what it cannot start with.

mod common;

use common::http::Http;
use common::*;
use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicRejectOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Connection, ConnectionProperties};
use serde_json::json;
use std::io::ErrorKind;
use std::time::Duration;
use warren::Server;

async fn connect(url: &str) -> lapin::Result<Connection> {
    within(Connection::connect(url, ConnectionProperties::default())).await
}

#[tokio::test]
async fn the_defaults_are_a_tests_a_local_broker_guest_and_no_management() {
    let broker = Server::builder().start().await.expect("start");
    let addr = broker.local_addr();
    assert_eq!(addr.ip().to_string(), "127.0.0.1");
    assert_ne!(addr.port(), 0);
    assert_eq!(
        broker.amqp_url(),
        format!("amqp://guest:guest@127.0.0.1:{}/%2F", addr.port())
    );
    assert_eq!(broker.management_url(), None);
    assert!(!broker.clock().is_manual());
    assert_eq!(broker.counters(), warren::Counters::default());
    let conn = connect(&broker.amqp_url()).await.expect("guest logs in");
    let ch = within(conn.create_channel()).await.unwrap();
    declare_queue(&ch, "embed.plain").await;
    publish(&ch, "", "embed.plain", b"one").await;
    publish(&ch, "", "embed.plain", b"two").await;
    let mut consumer = consume(&ch, "embed.plain", BasicConsumeOptions::default()).await;
    let first = within(consumer.next()).await.unwrap().unwrap();
    let second = within(consumer.next()).await.unwrap().unwrap();
    within(first.ack(BasicAckOptions::default())).await.unwrap();
    // The second stays unacked; the passive declare is a round trip after the ack.
    assert_eq!(ready(&ch, "embed.plain").await, 0);
    let q = broker.queue_counters("/", "embed.plain").expect("queue");
    assert_eq!(
        (q.published, q.delivered, q.acked, q.redelivered),
        (2, 2, 1, 0)
    );
    assert_eq!(
        (q.messages_ready, q.messages_unacked, q.consumers),
        (0, 1, 1)
    );
    let totals = broker.counters();
    assert_eq!(
        (totals.published, totals.delivered, totals.acked),
        (2, 2, 1)
    );
    assert_eq!(
        (totals.queues, totals.connections, totals.channels),
        (1, 1, 1)
    );
    assert_eq!((totals.messages_ready, totals.messages_unacked), (0, 1));
    drop(second);
    within(ch.close(200, "bye".into())).await.unwrap();
    // Back in the queue, given again.
    let ch = within(conn.create_channel()).await.unwrap();
    let again = get_eventually(&ch, "embed.plain").await;
    assert!(again.delivery.redelivered);
    within(ch.close(200, "bye".into())).await.unwrap();
    let q = broker.queue_counters("/", "embed.plain").expect("queue");
    assert_eq!((q.delivered, q.redelivered, q.messages_ready), (3, 1, 0));
    assert_eq!(broker.queue_counters("/", "embed.none"), None);
    assert_eq!(broker.queue_counters("no-such-vhost", "embed.plain"), None);
    broker.shutdown().await;
}

#[tokio::test]
async fn users_vhosts_and_permissions_are_created_and_the_url_logs_in_as_the_first_user() {
    let broker = Server::builder()
        .user("app user", "p@ss:w/rd", &["management"])
        .user("other", "x", &[])
        .vhost("orders")
        .permissions("app user", "/", ".*", ".*", ".*")
        .permissions("other", "orders", "^other\\.", ".*", ".*")
        .start()
        .await
        .expect("start");
    let port = broker.local_addr().port();
    assert_eq!(
        broker.amqp_url(),
        format!("amqp://app%20user:p%40ss%3Aw%2Frd@127.0.0.1:{port}/%2F")
    );
    let conn = connect(&broker.amqp_url()).await.expect("the URL logs in");
    within(conn.close(200, "bye".into())).await.unwrap();
    // guest is there as on any first start.
    let guest = format!("amqp://guest:guest@127.0.0.1:{port}/%2f");
    within(connect(&guest).await.unwrap().close(200, "bye".into()))
        .await
        .unwrap();
    // other may enter orders only, and configure only other.* there.
    let url = format!("amqp://other:x@127.0.0.1:{port}/orders");
    let conn = connect(&url).await.expect("other enters orders");
    let ch = within(conn.create_channel()).await.unwrap();
    declare_queue(&ch, "other.q").await;
    let refused = within(ch.queue_declare(
        "elsewhere".into(),
        QueueDeclareOptions::default(),
        FieldTable::default(),
    ))
    .await;
    assert_eq!(
        refusal(refused),
        (
            403,
            "ACCESS_REFUSED - access to queue 'elsewhere' in vhost 'orders' refused for user 'other'"
                .to_owned()
        )
    );
    let url = format!("amqp://other:x@127.0.0.1:{port}/%2f");
    assert_eq!(
        amqp_error(&connect(&url).await.expect_err("no permission on /")),
        (
            530,
            "NOT_ALLOWED - access to vhost '/' refused for user 'other'".to_owned()
        )
    );
    broker.shutdown().await;
}

#[tokio::test]
async fn definitions_load_from_json_as_from_a_file_and_leave_out_guest() {
    let definitions = json!({
        "users": [{"name": "svc", "password": "pw", "tags": ["administrator"]}],
        "vhosts": [{"name": "/"}],
        "permissions": [{"user": "svc", "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"}],
        "queues": [{"name": "embed.defined", "vhost": "/", "durable": true, "auto_delete": false, "arguments": {}}]
    });
    let broker = Server::builder()
        .definitions(&definitions)
        .start()
        .await
        .expect("start");
    // No builder user: the URL is guest's, and guest was not created.
    let err = connect(&broker.amqp_url())
        .await
        .expect_err("no guest with definitions");
    assert_eq!(
        amqp_error(&err),
        (
            403,
            "ACCESS_REFUSED - Login was refused using authentication mechanism PLAIN. For details see the broker logfile."
                .to_owned()
        )
    );
    let url = format!("amqp://svc:pw@{}/%2f", broker.local_addr());
    let conn = connect(&url).await.expect("svc logs in");
    let ch = within(conn.create_channel()).await.unwrap();
    assert_eq!(ready(&ch, "embed.defined").await, 0);
    broker.shutdown().await;

    // The same as text, and from a file, with a builder user on top.
    let dir = scratch_dir("embed-defs");
    let file = dir.join("defs.json");
    std::fs::write(&file, definitions.to_string()).unwrap();
    let broker = Server::builder()
        .definitions_file(&file)
        .definitions_json(r#"{"queues": [{"name": "embed.text", "vhost": "/"}]}"#)
        .user("extra", "pw", &[])
        .permissions("extra", "/", ".*", ".*", ".*")
        .start()
        .await
        .expect("start");
    let conn = connect(&broker.amqp_url()).await.expect("extra logs in");
    let ch = within(conn.create_channel()).await.unwrap();
    assert_eq!(ready(&ch, "embed.defined").await, 0);
    assert_eq!(ready(&ch, "embed.text").await, 0);
    broker.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// The `InvalidInput` or `InvalidData` error a builder's `start` fails with.
async fn start_error(builder: warren::Builder) -> std::io::Error {
    match builder.start().await {
        Ok(_) => panic!("the builder started a broker"),
        Err(e) => e,
    }
}

#[tokio::test]
async fn what_cannot_start_is_refused_before_anything_is_opened() {
    let e = start_error(Server::builder().permissions("guest", "/", "(", ".*", ".*")).await;
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert_eq!(
        e.to_string(),
        "permissions of user 'guest' in vhost '/': regular expression '(' is invalid"
    );
    let e = start_error(Server::builder().user("", "pw", &[])).await;
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    let e = start_error(Server::builder().vhost("")).await;
    assert_eq!(
        (e.kind(), e.to_string()),
        (ErrorKind::InvalidInput, "a vhost needs a name".into())
    );
    let e = start_error(Server::builder().stats_interval(Duration::from_millis(9))).await;
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    // RabbitMQ's cap on max_message_size holds in code as on the command line.
    let too_large = Server::builder().config(|c| warren::Config {
        max_message_size: (512 << 20) + 1,
        ..c
    });
    let e = start_error(too_large).await;
    assert_eq!(
        (e.kind(), e.to_string()),
        (
            ErrorKind::InvalidInput,
            "536870913 is above the largest message size allowed (536870912)".into()
        )
    );
    let e = start_error(Server::builder().log("warren=[")).await;
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
    assert!(e.to_string().starts_with("log filter 'warren=[': "), "{e}");
    // Malformed, wrong-typed and oversized-nesting definitions.
    for text in [
        "{",
        "not json",
        r#"{"users": 5}"#,
        r#"{"queues": [{"name": 7}]}"#,
        r#"{"vhosts": "/"}"#,
    ] {
        let e = start_error(Server::builder().definitions_json(text)).await;
        assert_eq!(e.kind(), ErrorKind::InvalidData, "{text}");
        assert!(e.to_string().starts_with("definitions: "), "{text}: {e}");
    }
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let e = start_error(Server::builder().definitions_json(format!(r#"{{"x": {deep}}}"#))).await;
    assert_eq!(e.kind(), ErrorKind::InvalidData);
    let e = start_error(Server::builder().definitions_file("/nonexistent/defs.json")).await;
    assert_eq!(e.kind(), ErrorKind::NotFound);
    // A port in use.
    let first = Server::builder().start().await.expect("start");
    let e = start_error(Server::builder().port(first.local_addr().port())).await;
    assert_eq!(e.kind(), ErrorKind::AddrInUse);
    first.shutdown().await;
}

#[tokio::test]
async fn dead_lettered_messages_are_counted_on_the_queue_and_in_the_totals() {
    let broker = Server::builder().start().await.expect("start");
    let conn = connect(&broker.amqp_url()).await.unwrap();
    let ch = within(conn.create_channel()).await.unwrap();
    let args = table(&[
        ("x-dead-letter-exchange", AMQPValue::LongString("".into())),
        (
            "x-dead-letter-routing-key",
            AMQPValue::LongString("embed.dlq".into()),
        ),
    ]);
    within(ch.queue_declare("embed.src".into(), QueueDeclareOptions::default(), args))
        .await
        .unwrap();
    declare_queue(&ch, "embed.dlq").await;
    declare_queue(&ch, "embed.nodlx").await;
    for body in [&b"a"[..], b"b", b"c"] {
        publish(&ch, "", "embed.src", body).await;
    }
    publish(&ch, "", "embed.nodlx", b"dropped").await;
    for queue in ["embed.src", "embed.src", "embed.nodlx"] {
        let m = get_eventually_with(&ch, queue, false).await;
        within(m.reject(BasicRejectOptions { requeue: false }))
            .await
            .unwrap();
    }
    let mut dlq = consume(
        &ch,
        "embed.dlq",
        BasicConsumeOptions {
            no_ack: true,
            ..Default::default()
        },
    )
    .await;
    for body in [&b"a"[..], b"b"] {
        assert_eq!(within(dlq.next()).await.unwrap().unwrap().data, body);
    }
    let src = broker.queue_counters("/", "embed.src").unwrap();
    assert_eq!(
        (src.published, src.dead_lettered, src.messages_ready),
        (3, 2, 1)
    );
    let dlq_counts = broker.queue_counters("/", "embed.dlq").unwrap();
    assert_eq!((dlq_counts.published, dlq_counts.delivered), (2, 2));
    // Rejected without a dead-letter exchange: dropped, not dead-lettered.
    let nodlx = broker.queue_counters("/", "embed.nodlx").unwrap();
    assert_eq!((nodlx.dead_lettered, nodlx.messages_ready), (0, 0));
    assert_eq!(broker.counters().dead_lettered, 2);
    // The total outlives the queue.
    within(ch.queue_delete("embed.src".into(), QueueDeleteOptions::default()))
        .await
        .unwrap();
    assert_eq!(broker.counters().dead_lettered, 2);
    broker.shutdown().await;
}

#[tokio::test]
async fn several_brokers_in_one_process_are_apart() {
    let a = Server::builder().start().await.expect("a");
    let b = Server::builder().start().await.expect("b");
    assert_ne!(a.local_addr(), b.local_addr());
    let (conn_a, conn_b) = (
        connect(&a.amqp_url()).await.unwrap(),
        connect(&b.amqp_url()).await.unwrap(),
    );
    let ch_a = within(conn_a.create_channel()).await.unwrap();
    let ch_b = within(conn_b.create_channel()).await.unwrap();
    // The same queue name in each.
    declare_queue(&ch_a, "embed.same").await;
    declare_queue(&ch_b, "embed.same").await;
    for _ in 0..3 {
        publish(&ch_a, "", "embed.same", b"for a").await;
    }
    publish(&ch_b, "", "embed.same", b"for b").await;
    assert_eq!(ready(&ch_a, "embed.same").await, 3);
    assert_eq!(ready(&ch_b, "embed.same").await, 1);
    assert_eq!(
        get_eventually(&ch_b, "embed.same").await.delivery.data,
        b"for b"
    );
    let (qa, qb) = (
        a.queue_counters("/", "embed.same").unwrap(),
        b.queue_counters("/", "embed.same").unwrap(),
    );
    assert_eq!((qa.published, qa.messages_ready, qa.delivered), (3, 3, 0));
    assert_eq!((qb.published, qb.messages_ready, qb.delivered), (1, 0, 1));
    assert_eq!((a.counters().published, b.counters().published), (3, 1));
    // One stops; the other goes on.
    within(conn_a.close(200, "bye".into())).await.unwrap();
    a.shutdown().await;
    publish(&ch_b, "", "embed.same", b"still here").await;
    assert_eq!(
        get_eventually(&ch_b, "embed.same").await.delivery.data,
        b"still here"
    );
    // A manual clock moves one broker's time only.
    let c = Server::builder()
        .clock(warren::Clock::manual())
        .start()
        .await
        .expect("c");
    let before = (b.clock().unix_ms(), c.clock().unix_ms());
    c.clock()
        .advance(Duration::from_secs(86_400))
        .await
        .expect("manual");
    assert_eq!(c.clock().unix_ms(), before.1 + 86_400_000);
    assert!(b.clock().unix_ms() < before.0 + 86_400_000);
    assert_eq!(
        b.clock().advance(Duration::from_secs(1)).await,
        Err(warren::ClockError::NotManual)
    );
    b.shutdown().await;
    c.shutdown().await;
}

#[tokio::test]
async fn dropping_the_handle_stops_the_broker_with_connection_forced() {
    let broker = Server::builder().start().await.expect("start");
    let (url, addr) = (broker.amqp_url(), broker.local_addr());
    let conn = connect(&url).await.unwrap();
    let mut events = Box::pin(conn.events_listener());
    drop(broker);
    assert_eq!(
        amqp_error(&next_error(&mut events).await),
        (
            320,
            "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'"
                .to_owned()
        )
    );
    // The listener is closed with the accept loop.
    let refused = within(async {
        loop {
            match tokio::net::TcpStream::connect(addr).await {
                Err(e) => break e,
                // The accept loop may not have ended yet: its socket still takes this one.
                Ok(_) => tokio::task::yield_now().await,
            }
        }
    })
    .await;
    assert_eq!(refused.kind(), ErrorKind::ConnectionRefused);
}

#[tokio::test]
async fn the_management_listener_is_on_when_asked_and_serves_the_api() {
    let broker = Server::builder()
        .management(true)
        .start()
        .await
        .expect("start");
    let url = broker.management_url().expect("on");
    let addr = broker.management_addr().expect("on");
    assert_eq!(url, format!("http://127.0.0.1:{}", addr.port()));
    let overview = Http::new(addr).get("/api/overview").await;
    assert_eq!(overview.status, 200);
    assert_eq!(overview.json()["rabbitmq_version"], "3.10.8");
    broker.shutdown().await;
    let off = Server::builder()
        .management_port(0)
        .management(false)
        .start()
        .await
        .unwrap();
    assert_eq!(off.management_url(), None);
    off.shutdown().await;
}

#[tokio::test]
async fn a_data_directory_keeps_durable_state_across_a_restart() {
    let dir = scratch_dir("embed-dir");
    let broker = Server::builder()
        .data_dir(&dir)
        .start()
        .await
        .expect("start");
    let conn = connect(&broker.amqp_url()).await.unwrap();
    let ch = within(conn.create_channel()).await.unwrap();
    declare(&ch, "embed.durable", durable()).await;
    within(ch.confirm_select(Default::default())).await.unwrap();
    within(
        within(ch.basic_publish(
            "".into(),
            "embed.durable".into(),
            Default::default(),
            b"kept",
            lapin::BasicProperties::default().with_delivery_mode(2),
        ))
        .await
        .unwrap(),
    )
    .await
    .unwrap();
    broker.shutdown().await;
    let broker = Server::builder()
        .data_dir(&dir)
        .start()
        .await
        .expect("restart");
    let conn = connect(&broker.amqp_url()).await.unwrap();
    let ch = within(conn.create_channel()).await.unwrap();
    assert_eq!(
        get_eventually(&ch, "embed.durable").await.delivery.data,
        b"kept"
    );
    broker.shutdown().await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_readme_shows_the_embedded_example_as_it_is() {
    let root = env!("CARGO_MANIFEST_DIR");
    let example = std::fs::read_to_string(format!("{root}/examples/embedded_test.rs")).unwrap();
    let readme = std::fs::read_to_string(format!("{root}/README.md")).unwrap();
    let body = &example[example.find("\nuse ").expect("a use line") + 1..];
    let section = &readme[readme.find("## Use it in your tests").expect("the section")..];
    assert!(
        section.contains(&format!("```rust\n{body}```")),
        "README.md's lapin example differs from examples/embedded_test.rs"
    );
}
