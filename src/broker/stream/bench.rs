//! Benchmarks run by hand (ignored by `cargo test`): append throughput with a sync per
//! 1000 entries, the writer thread with synced batches, sequential reads, reopening.
//! `cargo test --release --lib broker::stream::bench -- --ignored --nocapture`

use super::tests::{small_segments, temp};
use super::*;
use std::time::Instant;

fn rate(what: &str, entries: u64, bytes: u64, t: Instant) {
    let s = t.elapsed().as_secs_f64();
    println!(
        "{what}: {entries} entries in {s:.2} s = {:.0} entries/s, {:.1} MB/s",
        entries as f64 / s,
        bytes as f64 / s / 1e6
    );
}

fn append_run(name: &str, size: usize, per_batch: u64, total: u64) -> StreamLog {
    let dir = temp(&format!("bench-{name}"));
    let log = StreamLog::open(&dir, small_segments(64 * 1024 * 1024)).expect("open");
    let data = vec![0x5au8; size];
    let t = Instant::now();
    let mut done = 0u64;
    while done < total {
        let batch: Vec<(i64, &[u8])> = (0..per_batch)
            .map(|i| ((done + i) as i64, &data[..]))
            .collect();
        log.append_batch(&batch).expect("append");
        done += per_batch;
        if done % 1000 < per_batch {
            log.sync().expect("sync");
        }
    }
    log.sync().expect("sync");
    rate(
        &format!("append {size} B entries, {per_batch} per chunk, sync per 1000"),
        total,
        total * size as u64,
        t,
    );
    log
}

fn read_run(log: &StreamLog, size: usize) {
    let t = Instant::now();
    let mut r = log.reader(0).expect("reader");
    let mut n = 0u64;
    while let Some(e) = r.next().expect("next") {
        n += 1;
        std::hint::black_box(&e.data);
    }
    rate(
        &format!("read {size} B entries sequentially"),
        n,
        n * size as u64,
        t,
    );
}

#[test]
#[ignore]
fn bench_append_and_read() {
    for (size, per, total) in [
        (100, 1, 200_000),
        (100, 100, 2_000_000),
        (1024, 100, 1_000_000),
        (65536, 10, 20_000),
    ] {
        let log = append_run(&format!("{size}-{per}"), size, per, total);
        read_run(&log, size);
        let t = Instant::now();
        let stats = log.stats();
        let dir = log.dir().expect("on disk").to_path_buf();
        drop(log);
        let again = StreamLog::open(&dir, small_segments(64 * 1024 * 1024)).expect("reopen");
        assert_eq!(again.stats(), stats);
        println!(
            "reopen {} segments, {} MB: {:.1} ms",
            stats.segments,
            stats.bytes / 1_000_000,
            t.elapsed().as_secs_f64() * 1e3
        );
        let _ = std::fs::remove_dir_all(dir);
    }
}

#[test]
#[ignore]
fn bench_writer_thread_synced() {
    let dir = temp("bench-writer");
    let log = StreamLog::open(&dir, StreamConfig::default()).expect("open");
    let writer = log.spawn_writer().expect("writer");
    let (tx, rx) = std::sync::mpsc::channel();
    let data = bytes::Bytes::from(vec![0x5au8; 100]);
    let (batches, per) = (20_000u64, 50u64);
    let t = Instant::now();
    let mut in_flight = 0;
    for _ in 0..batches {
        if in_flight == 64 {
            rx.recv().expect("callback");
            in_flight -= 1;
        }
        let tx = tx.clone();
        let entries = (0..per).map(|i| (i as i64, data.clone())).collect();
        writer.submit(
            entries,
            Durability::Synced,
            Box::new(move |r| tx.send(r.is_ok()).expect("send")),
        );
        in_flight += 1;
    }
    for _ in 0..in_flight {
        rx.recv().expect("callback");
    }
    rate(
        "writer thread, 100 B entries, 50 per batch, 64 batches in flight, each synced",
        batches * per,
        batches * per * 100,
        t,
    );
    writer.stop();
    let _ = std::fs::remove_dir_all(dir);
}
