//! Benchmarks run by hand (ignored by `cargo test`): group-commit throughput, the disk's
//! fdatasync latency, and recovery time for a million messages.
//! `cargo test --release -- --ignored --nocapture bench_`

use super::tests::{segments, temp};
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
        let (h, _) = StoreHandle::open(&dir.join(format!("data-{with_acks}"))).expect("open");
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
                    h.ack(&"1:/bench.q".into(), id);
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
            h.io().figures().sync.count,
            total as f64 / h.io().figures().sync.count.max(1) as f64
        );
    });
        h.close();
    }

    let _ = std::fs::remove_dir_all(&dir);
}

/// Recovery of 1M persistent messages (16-byte bodies unless `WARREN_BENCH_BODY` says
/// otherwise) left unacked in one queue: open (pass 1) and handing every message out
/// (pass 2).
/// `cargo test --release --lib -- --ignored --nocapture bench_recovery`
///
/// To measure the peak memory of recovery alone, write the data in one process and
/// recover it in another: `WARREN_BENCH_DIR=/some/dir WARREN_BENCH_PHASE=write` then
/// `... WARREN_BENCH_PHASE=recover` under `/usr/bin/time -v`.
#[test]
#[ignore]
fn bench_recovery() {
    let phase = std::env::var("WARREN_BENCH_PHASE").unwrap_or_default();
    let given = std::env::var_os("WARREN_BENCH_DIR").map(std::path::PathBuf::from);
    let data = given.clone().unwrap_or_else(|| temp("bench-recover"));
    let n = 1_000_000u64;
    // Body size; 16 unless WARREN_BENCH_BODY says otherwise (1024 gives a 1 GiB backlog).
    let size: usize = std::env::var("WARREN_BENCH_BODY")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(16);
    if phase != "recover" {
        let _ = std::fs::remove_dir_all(&data);
        let (h, _) = StoreHandle::open(&data).expect("open");
        for i in 0..n {
            let m = StoredMessage {
                exchange: "bench".into(),
                routing_key: "k".into(),
                properties: Bytes::from_static(&[0x10, 0x00, 0x02]),
                body: Bytes::from(i.to_le_bytes().repeat(size.div_ceil(8))[..size].to_vec()),
            };
            h.append(m, vec!["1:/bench.q".into()], None);
            if i % 10_000 == 0 {
                h.flush_blocking().expect("flush");
            }
        }
        h.flush_blocking().expect("flush");
        h.close();
    }
    if phase == "write" {
        return;
    }
    let disk: u64 = segments(&data)
        .iter()
        .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .sum();
    let t = std::time::Instant::now();
    let (h, r) = StoreHandle::open(&data).expect("open");
    let open_secs = t.elapsed().as_secs_f64();
    assert_eq!(r.message_count(), n as usize);
    let (mut count, mut bytes) = (0usize, 0usize);
    r.stream(|rec, holders| {
        count += holders.len();
        bytes += rec.body.len();
    });
    assert_eq!(count, n as usize);
    assert_eq!(bytes, size * n as usize);
    let secs = t.elapsed().as_secs_f64();
    println!(
        "recovery of {n} messages ({} MiB of segments): open {open_secs:.2}s, all handed out {secs:.2}s",
        disk >> 20
    );
    h.close();
    if given.is_none() {
        let _ = std::fs::remove_dir_all(&data);
    }
}
