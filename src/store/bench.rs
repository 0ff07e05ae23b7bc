//! Benchmarks run by hand (ignored by `cargo test`): group-commit throughput, the disk's
//! fdatasync latency, and replay time for a million messages.
//! `cargo test --release -- --ignored --nocapture bench_`

use super::tests::{open, segments, temp};
use super::*;

/// Throughput of appends with 1000 in flight and the fdatasync latency of this disk.
/// `cargo test --release -- --ignored --nocapture bench_`
#[test]
#[ignore]
fn bench_group_commit() {
    let dir = temp("bench");
    std::fs::create_dir_all(&dir).expect("dir");
    let probe = dir.join("probe");
    let mut f = std::fs::File::create(&probe).expect("probe");
    let mut lat = Vec::new();
    for _ in 0..2000 {
        let t = std::time::Instant::now();
        f.write_all(&[7u8; 64]).expect("write");
        f.sync_data().expect("sync");
        lat.push(t.elapsed().as_micros() as u64);
    }
    lat.sort_unstable();
    println!(
        "fdatasync after a 64-byte append: p50 {} us, p90 {} us, p99 {} us, mean {} us",
        lat[lat.len() / 2],
        lat[lat.len() * 9 / 10],
        lat[lat.len() * 99 / 100],
        lat.iter().sum::<u64>() / lat.len() as u64
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("rt");
    for with_acks in [false, true] {
        let (h, _) = open(&dir.join(format!("data-{with_acks}")));
        let total = 300_000u64;
        rt.block_on(async {
        let body = Bytes::from_static(b"0123456789abcdef");
        let mut inflight = std::collections::VecDeque::new();
        let t = std::time::Instant::now();
        let mut sent = 0u64;
        let mut done = 0u64;
        while done < total {
            while inflight.len() < 1000 && sent < total {
                let (tx, rx) = oneshot::channel();
                let m = StoredMessage {
                    exchange: "bench".into(),
                    routing_key: "k".into(),
                    properties: Bytes::from_static(&[0x10, 0x00, 0x02]),
                    body: body.clone(),
                };
                h.append(m, vec!["1:/bench.q".into()], Some(tx.into()));
                inflight.push_back(rx);
                sent += 1;
            }
            if let Some(rx) = inflight.pop_front() {
                let id = rx.await.expect("confirmed");
                if with_acks {
                    h.ack("1:/bench.q", id);
                }
                done += 1;
            }
        }
        let secs = t.elapsed().as_secs_f64();
        println!(
            "group commit, 16-byte bodies, 1000 in flight, acks {}: {} appends+completions in {:.2}s = {:.0}/s, {} fdatasyncs ({:.0} per batch)",
            if with_acks { "too" } else { "none" },
            total,
            secs,
            total as f64 / secs,
            h.sync_count(),
            total as f64 / h.sync_count().max(1) as f64
        );
    });
        h.close();
    }

    // Recovery time: 1M persistent 16-byte messages left unacked in one queue.
    let data = dir.join("recover");
    let (h, _) = open(&data);
    let n = 1_000_000u64;
    for i in 0..n {
        let m = StoredMessage {
            exchange: "bench".into(),
            routing_key: "k".into(),
            properties: Bytes::from_static(&[0x10, 0x00, 0x02]),
            body: Bytes::copy_from_slice(&i.to_le_bytes().repeat(2)),
        };
        h.append(m, vec!["1:/bench.q".into()], None);
    }
    h.flush_blocking().expect("flush");
    h.close();
    let disk: u64 = segments(&data)
        .iter()
        .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .sum();
    let t = std::time::Instant::now();
    let (h, r) = open(&data);
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(r.queues["1:/bench.q"].len(), n as usize);
    println!(
        "recovery of {n} messages ({} MiB of segments): {secs:.2}s",
        disk >> 20
    );
    h.close();
    let _ = std::fs::remove_dir_all(&dir);
}
