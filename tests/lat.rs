//! Connection threads (`--connection-threads`) and the runtime's worker count
//! (`--workers`): connections served on threads of their own behave as on the shared
//! runtime (publish -> queue -> consumer across threads, in order; refusals; a broker
//! shutdown closes them with 320), and both flags refuse values out of range.

mod common;

use clap::Parser;
use common::raw::Raw;
use common::{consume, declare_queue, publish, refusal, wait_until, within, TestBroker};
use futures::StreamExt;
use lapin::options::{BasicConsumeOptions, QueueDeclareOptions};

async fn threaded(n: u16) -> TestBroker {
    TestBroker::start_with(|mut c| {
        c.connection_threads = n;
        c
    })
    .await
}

/// Whether this process has a thread of that name (Linux: /proc/self/task/*/comm).
fn thread_named(name: &str) -> bool {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return true; // not Linux: nothing to look at
    };
    tasks
        .flatten()
        .any(|t| std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.trim() == name))
}

#[tokio::test]
async fn a_pair_across_connection_threads_delivers_everything_in_order() {
    let broker = threaded(2).await;
    // A thread names itself once it runs, which may be just after the broker started.
    wait_until("the broker's connection threads", || async {
        thread_named("warren-conn-1")
    })
    .await;
    // Consecutive connections go to different threads: the consumer's on one, the
    // publisher's on the other, the queue between them.
    let (_cc, consumer_ch) = within(broker.channel()).await;
    let (_pc, publisher_ch) = within(broker.channel()).await;
    declare_queue(&consumer_ch, "lat.pair").await;
    let mut deliveries = consume(
        &consumer_ch,
        "lat.pair",
        BasicConsumeOptions {
            no_ack: true,
            ..Default::default()
        },
    )
    .await;
    for i in 0..2000u32 {
        publish(&publisher_ch, "", "lat.pair", &i.to_be_bytes()).await;
    }
    for i in 0..2000u32 {
        let d = within(deliveries.next())
            .await
            .expect("a delivery")
            .expect("ok");
        assert_eq!(d.data, i.to_be_bytes(), "delivery {i} out of order");
    }
    broker.stop().await;
}

#[tokio::test]
async fn refusals_on_a_connection_thread_are_rabbitmqs() {
    let broker = threaded(3).await;
    let (_conn, ch) = within(broker.channel()).await;
    let passive = QueueDeclareOptions {
        passive: true,
        ..Default::default()
    };
    let refused = refusal(
        ch.queue_declare("lat.missing".into(), passive, Default::default())
            .await,
    );
    assert_eq!(
        refused,
        (
            404,
            "NOT_FOUND - no queue 'lat.missing' in vhost '/'".to_owned()
        )
    );
    // The connection goes on serving on its thread after the channel's close.
    let ch2 = within(_conn.create_channel()).await.expect("channel");
    declare_queue(&ch2, "lat.after").await;
    broker.stop().await;
}

#[tokio::test]
async fn shutdown_closes_threaded_connections_with_connection_forced() {
    let broker = threaded(2).await;
    let mut raws = Vec::new();
    for _ in 0..3 {
        let mut raw = Raw::open(broker.addr).await;
        raw.open_channel(1).await;
        raws.push(raw);
    }
    let stop = tokio::spawn(broker.stop());
    for raw in &mut raws {
        let close = raw.expect_connection_close().await;
        assert_eq!(
            (close.reply_code, close.reply_text.as_str()),
            (
                320,
                "CONNECTION_FORCED - broker forced connection closure with reason 'shutdown'"
            )
        );
        raw.close_ok_then_closed().await;
    }
    within(stop).await.expect("shutdown");
}

#[test]
fn workers_and_connection_threads_are_bounded() {
    let parse = |args: &[&str]| {
        let mut argv = vec!["warren"];
        argv.extend_from_slice(args);
        warren::Config::try_parse_from(argv)
    };
    let default = parse(&[]).expect("parses");
    assert_eq!((default.workers, default.connection_threads), (None, 0));
    let set = parse(&["--workers", "3", "--connection-threads", "2"]).expect("parses");
    assert_eq!((set.workers, set.connection_threads), (Some(3), 2));
    for bad in [
        &["--workers", "0"][..],
        &["--workers", "1025"],
        &["--workers", "-1"],
        &["--workers", "many"],
        &["--connection-threads", "1025"],
        &["--connection-threads", "x"],
    ] {
        assert!(parse(bad).is_err(), "{bad:?} should be refused");
    }
}
