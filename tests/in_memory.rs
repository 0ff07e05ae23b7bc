//! The in-memory mode (`Config { in_memory: true, .. }`, `--in-memory`, `--data-dir
//! none`): durable things and persistent messages with confirms, streams (start offsets,
//! consumers restarted at an offset, retention: the same deliveries as on disk), delayed
//! messages, the memory alarm in place of paging, a definitions file imported at start,
//! the management API and Prometheus; and after each, the data directory the broker was
//! given was never created. The binary is started both ways too.

mod common;

use common::*;
use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicGetOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

static NEXT: AtomicU64 = AtomicU64::new(0);

/// A path for a data directory that must never come to exist.
fn unused_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "warren-in-memory-{name}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// A broker in memory given `dir` as its data directory, with `adjust`'s settings.
async fn in_memory(
    dir: &Path,
    adjust: impl FnOnce(warren::Config) -> warren::Config,
) -> TestBroker {
    TestBroker::start_on(dir.to_path_buf(), |c| {
        adjust(warren::Config {
            in_memory: true,
            ..c
        })
    })
    .await
}

/// Shuts `broker` down and checks that its data directory never appeared.
async fn stop_and_check_untouched(broker: TestBroker) {
    let dir = broker.restart_later().await;
    assert!(!dir.exists(), "{} was created", dir.display());
}

async fn confirming(conn: &Connection) -> Channel {
    let ch = conn.create_channel().await.expect("channel");
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .expect("confirm.select");
    ch
}

fn persistent() -> BasicProperties {
    BasicProperties::default().with_delivery_mode(2)
}

/// Publishes each body to `queue` through the default exchange and waits for every
/// confirm, which must be an ack.
async fn publish_confirmed(ch: &Channel, queue: &str, bodies: &[Vec<u8>]) {
    let mut confirms = Vec::new();
    for body in bodies {
        confirms.push(
            within(ch.basic_publish(
                "".into(),
                queue.into(),
                Default::default(),
                body,
                persistent(),
            ))
            .await
            .expect("publish"),
        );
    }
    for c in confirms {
        assert!(within(c).await.expect("confirm").is_ack());
    }
}

#[tokio::test]
async fn durable_topology_and_persistent_messages_live_in_memory_with_immediate_confirms() {
    let dir = unused_dir("durable");
    let broker = in_memory(&dir, |c| c).await;
    let conn = broker.connect().await;
    let ch = confirming(&conn).await;
    within(ch.exchange_declare(
        "orders".into(),
        ExchangeKind::Topic,
        ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        },
        FieldTable::default(),
    ))
    .await
    .expect("durable exchange");
    declare(&ch, "orders.eu", durable()).await;
    bind_queue(&ch, "orders.eu", "orders", "eu.#").await;
    let mut confirms = Vec::new();
    for i in 0..50u32 {
        let body = format!("order-{i}");
        confirms.push(
            within(ch.basic_publish(
                "orders".into(),
                "eu.paris".into(),
                Default::default(),
                body.as_bytes(),
                persistent(),
            ))
            .await
            .expect("publish"),
        );
    }
    for c in confirms {
        assert!(within(c).await.expect("confirm").is_ack());
    }
    assert_eq!(ready(&ch, "orders.eu").await, 50);
    for i in 0..50u32 {
        let got = within(ch.basic_get("orders.eu".into(), BasicGetOptions { no_ack: true }))
            .await
            .expect("get")
            .expect("a message");
        assert_eq!(got.delivery.data, format!("order-{i}").into_bytes());
        assert_eq!(got.delivery.properties.delivery_mode(), &Some(2));
    }
    // Nothing sat waiting for a disk: the broker has no message store.
    assert_eq!(broker.server.broker().store_backlog(), 0);
    assert_eq!(broker.server.broker().definitions_writes(), 0);
    conn.close(200, "bye".into()).await.expect("close");
    stop_and_check_untouched(broker).await;
}

/// Stream reading as a client sees it, for comparing a broker on disk with one in memory.
#[derive(Debug, PartialEq)]
struct StreamStory {
    first: Vec<(i64, Vec<u8>)>,
    from_offset: Vec<(i64, Vec<u8>)>,
    last: Vec<(i64, Vec<u8>)>,
    next: Vec<(i64, Vec<u8>)>,
    resumed: Vec<(i64, Vec<u8>)>,
    retained_from: i64,
}

fn stream_args(extra: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = table(&[("x-queue-type", AMQPValue::LongString("stream".into()))]);
    for (k, v) in extra {
        t.insert((*k).into(), v.clone());
    }
    t
}

/// A consumer on its own channel, prefetch 100, from `offset`.
async fn reader(conn: &Connection, queue: &str, offset: AMQPValue) -> (Channel, lapin::Consumer) {
    let ch = conn.create_channel().await.expect("channel");
    ch.basic_qos(100, BasicQosOptions::default())
        .await
        .expect("qos");
    let c = within(ch.basic_consume(
        queue.into(),
        "".into(),
        BasicConsumeOptions::default(),
        table(&[("x-stream-offset", offset)]),
    ))
    .await
    .expect("consume");
    (ch, c)
}

/// The next `n` deliveries as (x-stream-offset, body), acked.
async fn take(c: &mut lapin::Consumer, n: usize) -> Vec<(i64, Vec<u8>)> {
    let mut out = Vec::new();
    for _ in 0..n {
        let d = within(c.next()).await.expect("delivery").expect("ok");
        let offset = match d
            .properties
            .headers()
            .as_ref()
            .and_then(|h| h.inner().get("x-stream-offset").cloned())
        {
            Some(AMQPValue::LongLongInt(n)) => n,
            other => panic!("x-stream-offset is a long, got {other:?}"),
        };
        d.ack(BasicAckOptions::default()).await.expect("ack");
        out.push((offset, d.data));
    }
    out
}

fn numbered(range: std::ops::Range<u32>) -> Vec<Vec<u8>> {
    range.map(|i| format!("m{i}").into_bytes()).collect()
}

/// The same stream calls on any broker: publish, read from first, an offset, last and
/// next, a consumer cancelled and restarted where it stopped, retention.
async fn stream_story(broker: &TestBroker) -> StreamStory {
    let conn = broker.connect().await;
    let ch = confirming(&conn).await;
    within(ch.queue_declare("s".into(), durable(), stream_args(&[])))
        .await
        .expect("declare stream");
    publish_confirmed(&ch, "s", &numbered(0..20)).await;
    let (_a, mut a) = reader(&conn, "s", AMQPValue::LongString("first".into())).await;
    let first = take(&mut a, 20).await;
    let (_b, mut b) = reader(&conn, "s", AMQPValue::LongLongInt(7)).await;
    let from_offset = take(&mut b, 13).await;
    let (_c, mut c) = reader(&conn, "s", AMQPValue::LongString("last".into())).await;
    let last = take(&mut c, 1).await;
    let (_d, mut d) = reader(&conn, "s", AMQPValue::LongString("next".into())).await;
    // Once the "next" consumer is attached, only what follows reaches it.
    publish_confirmed(&ch, "s", &numbered(20..23)).await;
    let next = take(&mut d, 3).await;
    // A consumer that stops and comes back at the offset after the last it saw.
    let (e_ch, mut e) = reader(&conn, "s", AMQPValue::LongString("first".into())).await;
    let seen = take(&mut e, 5).await;
    e_ch.basic_cancel(e.tag().as_str().into(), BasicCancelOptions::default())
        .await
        .expect("cancel");
    let resume_at = seen.last().map_or(0, |(o, _)| o + 1);
    let (_f, mut f) = reader(&conn, "s", AMQPValue::LongLongInt(resume_at)).await;
    let resumed = take(&mut f, 23 - resume_at as usize).await;
    // Retention by size drops whole old segments, never the active one.
    within(ch.queue_declare(
        "s.ret".into(),
        durable(),
        stream_args(&[
            (
                "x-stream-max-segment-size-bytes",
                AMQPValue::LongInt(10_000),
            ),
            ("x-max-length-bytes", AMQPValue::LongInt(30_000)),
        ]),
    ))
    .await
    .expect("declare stream");
    publish_confirmed(&ch, "s.ret", &vec![vec![b'x'; 1000]; 200]).await;
    let (_g, mut g) = reader(&conn, "s.ret", AMQPValue::LongString("first".into())).await;
    let retained_from = take(&mut g, 1).await[0].0;
    conn.close(200, "bye".into()).await.expect("close");
    StreamStory {
        first,
        from_offset,
        last,
        next,
        resumed,
        retained_from,
    }
}

#[tokio::test]
async fn streams_in_memory_deliver_what_streams_on_disk_deliver() {
    let on_disk = TestBroker::start().await;
    let disk = stream_story(&on_disk).await;
    on_disk.stop().await;
    let dir = unused_dir("streams");
    let broker = in_memory(&dir, |c| c).await;
    let memory = stream_story(&broker).await;
    assert_eq!(memory, disk, "the same deliveries as on disk");
    let entries = |r: std::ops::Range<u32>| -> Vec<(i64, Vec<u8>)> {
        r.map(|i| (i64::from(i), format!("m{i}").into_bytes()))
            .collect()
    };
    assert_eq!(memory.first, entries(0..20));
    assert_eq!(memory.from_offset, entries(7..20));
    assert_eq!(memory.last, entries(19..20));
    assert_eq!(memory.next, entries(20..23));
    assert_eq!(memory.resumed, entries(5..23));
    assert!(
        memory.retained_from > 0 && memory.retained_from < 199,
        "old segments went, the active one stayed: {}",
        memory.retained_from
    );
    // Deleting a stream gives its memory back.
    let used = broker.server.broker().memory.used();
    let (_conn, ch) = broker.channel().await;
    within(ch.queue_delete("s.ret".into(), Default::default()))
        .await
        .expect("delete");
    assert!(broker.server.broker().memory.used() < used);
    stop_and_check_untouched(broker).await;
}

#[tokio::test]
async fn delayed_messages_are_held_in_memory_and_routed_when_due() {
    let dir = unused_dir("delayed");
    let broker = in_memory(&dir, |c| c).await;
    let conn = broker.connect().await;
    let ch = confirming(&conn).await;
    within(ch.exchange_declare(
        "later".into(),
        ExchangeKind::Custom("x-delayed-message".into()),
        ExchangeDeclareOptions {
            durable: true,
            ..Default::default()
        },
        table(&[("x-delayed-type", AMQPValue::LongString("direct".into()))]),
    ))
    .await
    .expect("delayed exchange");
    declare(&ch, "due", durable()).await;
    bind_queue(&ch, "due", "later", "k").await;
    let held = persistent().with_headers(table(&[("x-delay", AMQPValue::LongInt(30))]));
    let confirm = within(ch.basic_publish(
        "later".into(),
        "k".into(),
        Default::default(),
        b"held",
        held,
    ))
    .await
    .expect("publish");
    assert!(within(confirm).await.expect("confirm").is_ack());
    let got = get_eventually(&ch, "due").await;
    assert_eq!(got.delivery.data, b"held");
    conn.close(200, "bye".into()).await.expect("close");
    stop_and_check_untouched(broker).await;
}

/// Publishes `n` persistent copies of `body` to `queue` on a task of its own: once the
/// broker stops reading the connection (an alarm), the client's writes stall there.
fn publish_in_background(
    ch: &Channel,
    queue: &str,
    n: usize,
    body: &[u8],
) -> tokio::task::JoinHandle<lapin::Result<()>> {
    let (ch, queue, body) = (ch.clone(), queue.to_owned(), body.to_vec());
    tokio::spawn(async move {
        for _ in 0..n {
            let routing = queue.as_str().into();
            ch.basic_publish("".into(), routing, Default::default(), &body, persistent())
                .await?;
        }
        Ok(())
    })
}

#[tokio::test]
async fn past_the_memory_budget_publishers_are_blocked_until_consumers_drain() {
    let dir = unused_dir("budget");
    // The budget is the lower of the two: with no disk to page to, queued messages
    // past it block publishers instead.
    let broker = in_memory(&dir, |c| warren::Config {
        queue_memory: 256 * 1024,
        ..c
    })
    .await;
    assert_eq!(broker.server.broker().memory.limit(), 256 * 1024);
    let publisher = broker.connect().await;
    let pch = publisher.create_channel().await.expect("channel");
    declare(&pch, "backlog", durable()).await;
    // 64 x 8 KiB is twice the budget: the alarm goes off part way, and the publisher's
    // writes stall once the broker stops reading it.
    let body = vec![7u8; 8 * 1024];
    let publishing = publish_in_background(&pch, "backlog", 64, &body);
    wait_until("connection.blocked", || async {
        publisher.status().blocked()
    })
    .await;
    assert!(broker.server.broker().memory.memory_alarm());
    // Nothing was paged: every message is in memory, and a consumer gets them all.
    let (_consumer, cch) = broker.channel().await;
    let mut got = 0;
    while got < 64 {
        let m = get_eventually(&cch, "backlog").await;
        assert_eq!(m.delivery.data.len(), body.len());
        got += 1;
    }
    within(publishing)
        .await
        .expect("join")
        .expect("every publish went out");
    wait_until("connection.unblocked", || async {
        !publisher.status().blocked()
    })
    .await;
    assert!(!broker.server.broker().memory.alarmed());
    assert_eq!(ready(&cch, "backlog").await, 0, "none lost, none left");
    stop_and_check_untouched(broker).await;
}

#[tokio::test]
async fn a_definitions_file_is_imported_and_its_queues_live_in_memory() {
    let input = unused_dir("definitions-input");
    std::fs::create_dir_all(&input).expect("input dir");
    let file = input.join("defs.json");
    let defs = serde_json::json!({
        "rabbit_version": "3.10.8",
        "users": [
            {"name": "guest", "password": "guest", "tags": ["administrator"], "limits": {}},
            {"name": "app", "password": "s3cret", "tags": [], "limits": {}}
        ],
        "vhosts": [{"name": "/"}, {"name": "shop"}],
        "permissions": [
            {"user": "guest", "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"},
            {"user": "app", "vhost": "shop", "configure": ".*", "write": ".*", "read": ".*"}
        ],
        "policies": [{"vhost": "shop", "name": "cap", "pattern": "^capped$",
            "apply-to": "queues", "priority": 0, "definition": {"max-length": 2}}],
        "queues": [
            {"name": "capped", "vhost": "shop", "durable": true, "auto_delete": false,
             "arguments": {}},
            {"name": "events", "vhost": "shop", "durable": true, "auto_delete": false,
             "arguments": {"x-queue-type": "stream"}}
        ],
        "exchanges": [{"name": "in", "vhost": "shop", "type": "fanout", "durable": true,
            "auto_delete": false, "internal": false, "arguments": {}}],
        "bindings": [
            {"source": "in", "vhost": "shop", "destination": "capped",
             "destination_type": "queue", "routing_key": "", "arguments": {}},
            {"source": "in", "vhost": "shop", "destination": "events",
             "destination_type": "queue", "routing_key": "", "arguments": {}}
        ]
    });
    std::fs::write(&file, defs.to_string()).expect("write definitions");
    let dir = unused_dir("definitions");
    let broker = in_memory(&dir, |c| warren::Config {
        definitions: Some(file.clone()),
        ..c
    })
    .await;
    let url = format!("amqp://app:s3cret@{}/shop", broker.addr);
    let conn = within(Connection::connect(&url, ConnectionProperties::default()))
        .await
        .expect("the imported user logs in to the imported vhost");
    let ch = confirming(&conn).await;
    for i in 0..3u8 {
        let c = within(ch.basic_publish(
            "in".into(),
            "".into(),
            Default::default(),
            &[i],
            persistent(),
        ))
        .await
        .expect("publish");
        // An ack: the classic queue the fanout routes to first must not take the
        // stream's part of the confirm (it did, and the publisher got a nack).
        let c = within(c).await.expect("confirm");
        assert!(c.is_ack(), "{i}: {c:?}");
    }
    // The policy holds (max-length 2 drops the oldest), the binding routes, and the
    // stream from the file is a stream: it keeps all three.
    assert_eq!(ready(&ch, "capped").await, 2);
    let (_r, mut events) = reader(&conn, "events", AMQPValue::LongString("first".into())).await;
    let got = take(&mut events, 3).await;
    assert_eq!(got, vec![(0, vec![0]), (1, vec![1]), (2, vec![2])]);
    conn.close(200, "bye".into()).await.expect("close");
    stop_and_check_untouched(broker).await;
    assert_eq!(
        std::fs::read_dir(&input).expect("input").count(),
        1,
        "only the definitions file the test wrote"
    );
    let _ = std::fs::remove_dir_all(&input);
}

#[tokio::test]
async fn the_management_api_and_prometheus_report_a_node_in_memory() {
    let dir = unused_dir("management");
    let broker = in_memory(&dir, |c| warren::Config {
        management_port: warren::ListenerPort::On(0),
        prometheus_port: warren::ListenerPort::On(0),
        ..c
    })
    .await;
    let http = broker.http();
    let overview = http.get("/api/overview").await;
    assert_eq!(overview.status, 200, "{}", overview.text());
    let nodes = http.get("/api/nodes").await.json();
    let node = &nodes[0];
    assert_eq!(node["type"], "ram");
    assert_eq!(node["storage"], "memory");
    assert_eq!(node["db_dir"], "none");
    assert_eq!(node["disk_free"], 0);
    assert_eq!(node["disk_free_limit"], 0);
    assert_eq!(node["disk_free_alarm"], false);
    assert_eq!(node["mem_alarm"], false);
    // A durable queue declared through the API lives in memory too.
    let put = http
        .put(
            "/api/queues/%2f/api.q",
            &serde_json::json!({"durable": true}),
        )
        .await;
    assert_eq!(put.status, 201, "{}", put.text());
    assert_eq!(
        http.get("/api/queues/%2f/api.q").await.json()["durable"],
        true
    );
    let metrics = broker.prometheus().get("/metrics").await.text();
    for line in [
        "rabbitmq_disk_space_available_bytes 0",
        "rabbitmq_disk_space_available_limit_bytes 0",
        "rabbitmq_alarms_free_disk_space_watermark 0",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }
    stop_and_check_untouched(broker).await;
}

/// The binary with `args`, run in `cwd`; its AMQP port (management off, so the ready
/// line is all it prints).
async fn spawn_binary(cwd: &Path, args: &[&str]) -> (tokio::process::Child, u16) {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_warren"))
        .args(["--bind", "127.0.0.1", "--port", "0", "--log", "warn"])
        .args(["--management-port", "0", "--prometheus-port", "0"])
        .args(args)
        .current_dir(cwd)
        .env_remove("WARREN_DATA_DIR")
        .env_remove("WARREN_IN_MEMORY")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn warren");
    let port = ready_port(&mut child).await;
    (child, port)
}

#[tokio::test]
async fn the_binary_serves_with_data_dir_none_and_with_in_memory() {
    for args in [
        &["--data-dir", "none"][..],
        &["--in-memory"],
        &["--in-memory", "--data-dir", "never-created"],
    ] {
        let cwd = unused_dir("binary");
        std::fs::create_dir_all(&cwd).expect("cwd");
        let (mut child, port) = spawn_binary(&cwd, args).await;
        let url = format!("amqp://guest:guest@127.0.0.1:{port}/%2f");
        let conn = within(Connection::connect(&url, ConnectionProperties::default()))
            .await
            .expect("connect");
        let ch = confirming(&conn).await;
        declare(&ch, "q", durable()).await;
        publish_confirmed(&ch, "q", &numbered(0..3)).await;
        assert_eq!(ready(&ch, "q").await, 3, "{args:?}");
        conn.close(200, "bye".into()).await.expect("close");
        child.kill().await.expect("kill");
        let left: Vec<_> = std::fs::read_dir(&cwd)
            .expect("cwd")
            .map(|e| e.map(|e| e.file_name()))
            .collect();
        assert!(left.is_empty(), "{args:?} left {left:?} in its directory");
        let _ = std::fs::remove_dir_all(&cwd);
    }
}

#[tokio::test]
async fn a_publish_routed_to_a_classic_queue_then_a_stream_is_confirmed_with_an_ack() {
    // On disk and in memory alike: the fanout routes to the classic queue first (bound
    // first), which once took the stream's part of the confirm and nacked it.
    let on_disk = TestBroker::start().await;
    let dir = unused_dir("fanout");
    let memory = in_memory(&dir, |c| c).await;
    for broker in [&on_disk, &memory] {
        let conn = broker.connect().await;
        let ch = confirming(&conn).await;
        within(ch.exchange_declare(
            "both".into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions::default(),
            FieldTable::default(),
        ))
        .await
        .expect("fanout");
        declare(&ch, "classic", durable()).await;
        within(ch.queue_declare("log".into(), durable(), stream_args(&[])))
            .await
            .expect("stream");
        bind_queue(&ch, "classic", "both", "").await;
        bind_queue(&ch, "log", "both", "").await;
        for props in [persistent(), BasicProperties::default()] {
            let c =
                within(ch.basic_publish("both".into(), "".into(), Default::default(), b"x", props))
                    .await
                    .expect("publish");
            let c = within(c).await.expect("confirm");
            assert!(c.is_ack(), "{c:?}");
        }
        assert_eq!(ready(&ch, "classic").await, 2);
        conn.close(200, "bye".into()).await.expect("close");
    }
    on_disk.stop().await;
    stop_and_check_untouched(memory).await;
}

#[tokio::test]
async fn a_stream_past_the_memory_budget_blocks_publishers_until_it_is_deleted() {
    let dir = unused_dir("stream-budget");
    let broker = in_memory(&dir, |c| warren::Config {
        queue_memory: 512 * 1024,
        ..c
    })
    .await;
    let publisher = broker.connect().await;
    let pch = publisher.create_channel().await.expect("channel");
    within(pch.queue_declare("big".into(), durable(), stream_args(&[])))
        .await
        .expect("stream");
    // A stream keeps what it is given, whoever reads it: only retention or deletion
    // gives its memory back. 100 x 8 KiB is past the budget.
    let publishing = publish_in_background(&pch, "big", 100, &[1u8; 8 * 1024]);
    wait_until("connection.blocked", || async {
        publisher.status().blocked()
    })
    .await;
    let (_admin, ach) = broker.channel().await;
    within(ach.queue_delete("big".into(), Default::default()))
        .await
        .expect("delete the stream");
    wait_until("connection.unblocked", || async {
        !publisher.status().blocked()
    })
    .await;
    within(publishing)
        .await
        .expect("join")
        .expect("the rest went out");
    stop_and_check_untouched(broker).await;
}
