//! A full disk without root or a mount: `RLIMIT_FSIZE` makes the broker's file writes
//! past a size fail (EFBIG; SIGXFSZ ignored), as a full file system fails them with
//! ENOSPC. Persistent publishes are nacked (never confirmed and lost), the disk alarm
//! blocks publishers at once, and once writes succeed again the alarm clears and
//! publishing resumes; after a restart every confirmed message is there, once.
//!
//! The limit is per process, so this file holds one test.

mod common;

use common::*;
use lapin::options::{BasicGetOptions, BasicPublishOptions, ConfirmSelectOptions};
use lapin::Confirmation;
use lapin::{BasicProperties, Channel};
use std::collections::BTreeSet;

fn set_file_size_limit(bytes: u64) {
    let lim = libc::rlimit {
        rlim_cur: bytes,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: setrlimit reads the struct we pass; it changes no memory of ours.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_FSIZE, &lim) }, 0);
}

fn largest_segment(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir.join("msgs"))
        .expect("msgs")
        .filter_map(|e| e.ok()?.metadata().ok().map(|m| m.len()))
        .max()
        .unwrap_or(0)
}

/// Publishes `ids` (persistent, 1 KiB each) and returns those confirmed and those nacked.
async fn publish(ch: &Channel, ids: std::ops::Range<u32>) -> (Vec<u32>, Vec<u32>) {
    let mut pending = Vec::new();
    for i in ids {
        let mut body = format!("m{i:05}").into_bytes();
        body.resize(1024, b'.');
        let confirm = ch
            .basic_publish(
                "".into(),
                "diskfull".into(),
                BasicPublishOptions::default(),
                &body,
                BasicProperties::default().with_delivery_mode(2),
            )
            .await
            .expect("publish");
        pending.push((i, confirm));
    }
    let (mut acked, mut nacked) = (Vec::new(), Vec::new());
    for (i, confirm) in pending {
        match within(confirm).await.expect("confirm") {
            Confirmation::Ack(_) => acked.push(i),
            Confirmation::Nack(_) => nacked.push(i),
            Confirmation::NotRequested => panic!("confirms were selected"),
        }
    }
    (acked, nacked)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_nacks_blocks_and_resumes_without_losing_a_confirmed_message() {
    // SAFETY: ignoring a signal installs no handler code; writes past the limit then
    // fail with EFBIG instead of killing the process.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    let broker = TestBroker::start_with(|mut c| {
        c.disk_free_limit = 0;
        c
    })
    .await;
    let (conn, ch) = broker.channel().await;
    let mut events = Box::pin(conn.events_listener());
    declare(
        &ch,
        "diskfull",
        lapin::options::QueueDeclareOptions {
            durable: true,
            ..Default::default()
        },
    )
    .await;
    within(ch.confirm_select(ConfirmSelectOptions::default()))
        .await
        .expect("confirm.select");
    let (mut confirmed, nacked) = publish(&ch, 0..10).await;
    assert_eq!((confirmed.len(), nacked.len()), (10, 0));

    // The disk is "full" a few records on.
    set_file_size_limit(largest_segment(&broker.data_dir) + 4096);
    // In a task of its own: lapin holds publishes back while the connection is blocked.
    let publishing = tokio::spawn({
        let ch = ch.clone();
        async move { publish(&ch, 10..40).await }
    });
    next_blocked(&mut events, true).await;
    assert!(broker.server.broker().memory.alarmed());

    // Space is back: the next probe write clears the alarm and publishing resumes.
    set_file_size_limit(libc::RLIM_INFINITY);
    next_blocked(&mut events, false).await;
    let (acked, nacked) = within(publishing).await.expect("publishing task");
    assert!(!nacked.is_empty(), "writes past the limit are nacked");
    confirmed.extend(acked);
    let (acked, nacked) = publish(&ch, 40..50).await;
    assert_eq!((acked.len(), nacked.len()), (10, 0), "publishing resumed");
    confirmed.extend(acked);
    drop(conn);

    let dir = broker.restart_later().await;
    let broker = TestBroker::start_on(dir, |c| c).await;
    let (_conn, ch) = broker.channel().await;
    let mut got = Vec::new();
    while let Some(m) = within(ch.basic_get("diskfull".into(), BasicGetOptions { no_ack: true }))
        .await
        .expect("get")
    {
        let body = String::from_utf8_lossy(&m.delivery.data).into_owned();
        assert!(
            body.ends_with('.') && body.len() == 1024,
            "undamaged: {body:.8}"
        );
        got.push(body[1..6].parse::<u32>().expect("id"));
    }
    let unique: BTreeSet<u32> = got.iter().copied().collect();
    assert_eq!(unique.len(), got.len(), "no message twice");
    let missing: Vec<u32> = confirmed
        .iter()
        .filter(|i| !unique.contains(i))
        .copied()
        .collect();
    assert!(missing.is_empty(), "confirmed and lost: {missing:?}");
    broker.stop().await;
}
