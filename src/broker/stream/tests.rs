//! Unit tests of the stream log: appending and reading, where consumers start, retention,
//! the writer thread, bounded memory. Damage and recovery are in `tests_damage.rs`.

use super::chunks::READ_AHEAD;
use super::format::{CHUNK_TARGET, SEGMENT_HEADER};
use super::segment::{segment_path, SPARSE_ENTRIES};
use super::*;
use std::path::PathBuf;
use std::sync::mpsc;

/// A fresh directory for one test (removed first if a previous run left it).
pub(super) fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("warren-stream-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

pub(super) fn small_segments(bytes: u64) -> StreamConfig {
    StreamConfig {
        max_segment_size_bytes: bytes,
        ..StreamConfig::default()
    }
}

/// The body the tests give entry `i`.
pub(super) fn body(i: u64) -> Vec<u8> {
    format!("entry-{i}").into_bytes()
}

/// Appends entries `from..to` one batch of `per` at a time, timestamp = offset * 10.
pub(super) fn fill(log: &StreamLog, from: u64, to: u64, per: u64) {
    let mut i = from;
    while i < to {
        let n = per.min(to - i);
        let bodies: Vec<Vec<u8>> = (i..i + n).map(body).collect();
        let batch: Vec<(i64, &[u8])> = bodies
            .iter()
            .zip(i..)
            .map(|(b, o)| (o as i64 * 10, &b[..]))
            .collect();
        let r = log.append_batch(&batch).expect("append");
        assert_eq!(r, i..i + n);
        i += n;
    }
}

/// Everything a reader from `from` returns now.
pub(super) fn read_all(log: &StreamLog, from: u64) -> Vec<Entry> {
    let mut r = log.reader(from).expect("reader");
    let mut out = Vec::new();
    while let Some(e) = r.next().expect("next") {
        out.push(e);
    }
    out
}

pub(super) fn check_entries(entries: &[Entry], from: u64, to: u64) {
    assert_eq!(entries.len() as u64, to - from, "entries {from}..{to}");
    for (e, i) in entries.iter().zip(from..) {
        assert_eq!(e.offset, i);
        assert_eq!(e.timestamp_ms, i as i64 * 10);
        assert_eq!(&e.data[..], &body(i)[..]);
    }
}

#[test]
fn append_then_read_in_order() {
    let dir = temp("read");
    let log = StreamLog::open(&dir, StreamConfig::default()).expect("open");
    assert_eq!(log.append(0, b"entry-0").expect("append"), 0);
    fill(&log, 1, 500, 7);
    check_entries(&read_all(&log, 0), 0, 500);
    check_entries(&read_all(&log, 123), 123, 500);
    assert!(read_all(&log, 500).is_empty());
    let s = log.stats();
    assert_eq!(
        (s.first_offset, s.next_offset, s.entries, s.segments),
        (0, 500, 500, 1)
    );
    assert!(s.bytes > SEGMENT_HEADER);
    let _ = log.append_batch(&[]).expect("empty batch");
    assert_eq!(log.next_offset(), 500);
}

#[test]
fn a_reader_waits_at_the_end_and_sees_later_appends_across_segments() {
    let dir = temp("follow");
    reader_follows_appends(&StreamLog::open(&dir, small_segments(600)).expect("open"));
}

/// On an empty `log` of 600-byte segments: a reader at the end sees each append.
pub(super) fn reader_follows_appends(log: &StreamLog) {
    let mut r = log.reader(0).expect("reader");
    assert_eq!(r.next().expect("next"), None);
    for i in 0..100u64 {
        log.append(i as i64 * 10, &body(i)).expect("append");
        let e = r.next().expect("next").expect("the entry just written");
        assert_eq!((e.offset, &e.data[..]), (i, &body(i)[..]));
        assert_eq!(r.next().expect("next"), None);
    }
    assert!(log.stats().segments > 5, "{:?}", log.stats());
}

#[test]
fn resolve_gives_rabbitmq_start_offsets() {
    let dir = temp("resolve");
    start_points_as_rabbitmq(&StreamLog::open(&dir, StreamConfig::default()).expect("open"));
}

/// Where consumers start on `log` (empty, unsegmented), as RabbitMQ's streams say.
pub(super) fn start_points_as_rabbitmq(log: &StreamLog) {
    for s in [
        StartAt::First,
        StartAt::Last,
        StartAt::Next,
        StartAt::Offset(5),
        StartAt::Timestamp(0),
    ] {
        assert_eq!(log.resolve(s), 0, "{s:?} on an empty log");
    }
    // Chunks: 0..10 (ts 1000), 10..15 (ts 2000), 15..20 (ts 3000).
    let bodies: Vec<Vec<u8>> = (0..20).map(body).collect();
    let batch =
        |r: std::ops::Range<usize>, ts| bodies[r].iter().map(|b| (ts, &b[..])).collect::<Vec<_>>();
    log.append_batch(&batch(0..10, 1000)).expect("chunk");
    log.append_batch(&batch(10..15, 2000)).expect("chunk");
    log.append_batch(&batch(15..20, 3000)).expect("chunk");
    assert_eq!(log.resolve(StartAt::First), 0);
    assert_eq!(
        log.resolve(StartAt::Last),
        15,
        "the last chunk's first offset"
    );
    assert_eq!(log.resolve(StartAt::Next), 20);
    assert_eq!(log.resolve(StartAt::Offset(7)), 7);
    assert_eq!(log.resolve(StartAt::Offset(99)), 20, "past the end: next");
    assert_eq!(
        log.resolve(StartAt::Timestamp(0)),
        0,
        "before everything: first"
    );
    assert_eq!(log.resolve(StartAt::Timestamp(1000)), 0);
    assert_eq!(
        log.resolve(StartAt::Timestamp(1001)),
        10,
        "chunk granularity"
    );
    assert_eq!(log.resolve(StartAt::Timestamp(2000)), 10);
    assert_eq!(log.resolve(StartAt::Timestamp(2500)), 15);
    assert_eq!(
        log.resolve(StartAt::Timestamp(3001)),
        20,
        "after everything: next"
    );
    assert_eq!(log.last_chunk_offset(), 15);
}

#[test]
fn resolve_timestamp_reads_the_right_stretch_of_a_long_index() {
    let dir = temp("resolve-long");
    let log = StreamLog::open(&dir, small_segments(200_000)).expect("open");
    // One entry per chunk, so the index has many sparse points per segment.
    for i in 0..(3 * SPARSE_ENTRIES) {
        log.append(i as i64 * 10, &body(i)).expect("append");
    }
    assert!(log.stats().segments > 1);
    for probe in [0, 1, 4095, 4096, 4097, 8191, 10_000, 3 * SPARSE_ENTRIES - 1] {
        assert_eq!(log.resolve(StartAt::Timestamp(probe as i64 * 10)), probe);
        assert_eq!(
            log.resolve(StartAt::Timestamp(probe as i64 * 10 - 5)),
            probe
        );
    }
    assert_eq!(log.resolve(StartAt::Last), 3 * SPARSE_ENTRIES - 1);
}

#[test]
fn a_batch_larger_than_a_chunk_is_cut_and_last_names_the_last_chunk() {
    let dir = temp("cut");
    let log = StreamLog::open(&dir, StreamConfig::default()).expect("open");
    let big = vec![7u8; CHUNK_TARGET / 2];
    let r = log
        .append_batch(&[(1, &big[..]), (2, &big[..]), (3, &big[..])])
        .expect("append");
    assert_eq!(r, 0..3);
    assert_eq!(
        log.resolve(StartAt::Last),
        2,
        "three half-MiB entries make chunks [0,1] and [2]"
    );
    let all = read_all(&log, 0);
    assert_eq!(all.len(), 3);
    assert!(all.iter().all(|e| e.data.len() == big.len()));
}

#[test]
fn an_oversized_entry_is_refused_and_nothing_written() {
    let dir = temp("oversized");
    let log = StreamLog::open(&dir, StreamConfig::default()).expect("open");
    // Zeroed pages are not touched, so this costs no real memory.
    let huge = vec![0u8; MAX_ENTRY_BYTES + 1];
    let e = log
        .append_batch(&[(0, b"small"), (0, &huge[..])])
        .expect_err("refused");
    assert_eq!(e.kind(), io::ErrorKind::InvalidInput);
    assert_eq!(log.next_offset(), 0);
    assert_eq!(log.append(0, b"after").expect("append"), 0);
}

#[test]
fn retention_by_bytes_drops_whole_oldest_segments_never_the_active_one() {
    let dir = temp("ret-bytes");
    let config = StreamConfig {
        max_length_bytes: Some(3000),
        ..small_segments(1000)
    };
    let log = StreamLog::open(&dir, config).expect("open");
    fill(&log, 0, 400, 1);
    let s = log.stats();
    assert!(s.bytes <= 3000 + 1000, "{s:?}");
    assert!(s.first_offset > 0 && s.segments >= 3, "{s:?}");
    // The first offset is a segment's first: readers from 0 start there.
    assert!(segment_path(&dir, s.first_offset).exists());
    check_entries(&read_all(&log, 0), s.first_offset, 400);
    assert_eq!(log.resolve(StartAt::Offset(0)), s.first_offset);
    assert_eq!(log.resolve(StartAt::First), s.first_offset);
    // A limit smaller than one segment keeps the active one.
    let tiny = StreamLog::open(
        &temp("ret-tiny"),
        StreamConfig {
            max_length_bytes: Some(1),
            ..small_segments(500)
        },
    )
    .expect("open");
    fill(&tiny, 0, 100, 1);
    assert_eq!(tiny.stats().segments, 1);
    assert!(tiny.stats().entries > 0);
}

#[test]
fn retention_by_age_drops_segments_whose_newest_entry_is_too_old() {
    let dir = temp("ret-age");
    let config = StreamConfig {
        max_age: Some(Duration::from_secs(10)),
        ..small_segments(1000)
    };
    let log = StreamLog::open(&dir, config).expect("open");
    // Timestamps are offset * 10 ms: 300 entries span 3 s, nothing is old yet.
    fill(&log, 0, 300, 1);
    let before = log.stats();
    assert_eq!(before.first_offset, 0);
    // Ten seconds past the newest entry everything but the active segment goes.
    let newest = 299 * 10;
    let out = log
        .enforce_retention(newest + 10_000 + 1)
        .expect("retention");
    assert_eq!(out.segments_deleted, before.segments - 1);
    assert_eq!(log.stats().segments, 1);
    assert_eq!(out.first_offset, log.first_offset());
    check_entries(&read_all(&log, 0), log.first_offset(), 300);
    // Within the age nothing more goes.
    assert_eq!(
        log.enforce_retention(newest)
            .expect("retention")
            .segments_deleted,
        0
    );
}

#[test]
fn age_retention_runs_when_a_segment_rolls_over() {
    let dir = temp("ret-roll");
    let config = StreamConfig {
        max_age: Some(Duration::from_millis(100)),
        ..small_segments(1000)
    };
    let log = StreamLog::open(&dir, config).expect("open");
    fill(&log, 0, 200, 1); // timestamps 0..2000 ms: older segments fall out as it goes
    let s = log.stats();
    assert!(s.first_offset > 100, "{s:?}");
}

#[test]
fn a_reader_whose_segment_was_deleted_moves_to_the_first_retained() {
    let dir = temp("reader-retention");
    let log = StreamLog::open(&dir, small_segments(1000)).expect("open");
    fill(&log, 0, 100, 1);
    let mut r = log.reader(0).expect("reader");
    assert_eq!(r.next().expect("next").map(|e| e.offset), Some(0));
    log.set_config(StreamConfig {
        max_length_bytes: Some(2000),
        ..small_segments(1000)
    });
    fill(&log, 100, 300, 1);
    let first = log.first_offset();
    assert!(first > 100, "{:?}", log.stats());
    // What the reader had already read ahead it may still hand out; then it jumps.
    let mut last = 0;
    let mut jumped = false;
    while let Some(e) = r.next().expect("next") {
        assert!(e.offset > last, "in order: {} after {last}", e.offset);
        jumped |= e.offset == first && last + 1 != first;
        last = e.offset;
    }
    assert!(jumped, "the reader went on at the first retained offset");
    assert_eq!(last, 299);
}

#[test]
fn sync_covers_everything_appended_and_concurrent_callers_share_it() {
    let dir = temp("sync");
    let log = StreamLog::open(&dir, small_segments(2000)).expect("open");
    assert_eq!(log.sync().expect("sync"), 0);
    fill(&log, 0, 50, 5);
    assert_eq!(log.sync().expect("sync"), 50);
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let log = log.clone();
            std::thread::spawn(move || {
                for i in 0..25u64 {
                    log.append(0, &body(t * 100 + i)).expect("append");
                    assert!(log.sync().expect("sync") >= 1);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().expect("thread");
    }
    assert_eq!(log.sync().expect("sync"), 150);
    assert_eq!(read_all(&log, 0).len(), 150);
}

#[test]
fn the_writer_thread_appends_in_order_and_reports_offsets() {
    let dir = temp("writer");
    let log = StreamLog::open(&dir, small_segments(4000)).expect("open");
    let writer = log.spawn_writer().expect("writer");
    let (tx, rx) = mpsc::channel();
    for b in 0..50u64 {
        let entries: Vec<(i64, Bytes)> = (b * 4..b * 4 + 4)
            .map(|i| (i as i64 * 10, Bytes::from(body(i))))
            .collect();
        let tx = tx.clone();
        let durability = if b % 2 == 0 {
            Durability::Synced
        } else {
            Durability::Written
        };
        writer.submit(
            entries,
            durability,
            Box::new(move |r| tx.send((b, r.expect("appended"))).expect("send")),
        );
    }
    for b in 0..50u64 {
        let (batch, range) = rx.recv().expect("callback");
        assert_eq!(
            (batch, range),
            (b, b * 4..b * 4 + 4),
            "callbacks in submission order"
        );
    }
    assert_eq!(writer.backlog_bytes(), 0);
    check_entries(&read_all(writer.log(), 0), 0, 200);
    writer.stop();
}

#[test]
fn destroy_removes_the_files_and_refuses_later_appends() {
    let dir = temp("destroy");
    let log = StreamLog::open(&dir, small_segments(500)).expect("open");
    fill(&log, 0, 50, 1);
    let writer = log.spawn_writer().expect("writer");
    let mut r = log.reader(0).expect("reader");
    log.clone().destroy().expect("destroy");
    assert!(!dir.exists());
    assert_eq!(
        log.append(0, b"x").expect_err("refused").kind(),
        io::ErrorKind::NotFound
    );
    let (tx, rx) = mpsc::channel();
    writer.submit(
        vec![(0, Bytes::from_static(b"x"))],
        Durability::Synced,
        Box::new(move |r| {
            let _ = tx.send(r.is_err());
        }),
    );
    assert!(
        rx.recv().expect("callback"),
        "the writer's append is refused too"
    );
    // A reader ends with an error, not a panic or a hang.
    let mut errors = 0;
    for _ in 0..100 {
        match r.next() {
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(_) => {
                errors += 1;
                break;
            }
        }
    }
    assert_eq!(errors, 1);
}

#[test]
fn stream_dirs_are_per_vhost_and_queue_and_safe_for_any_name() {
    let base = Path::new("/data");
    let a = stream_dir(base, "/", "q");
    assert!(a.starts_with("/data/streams"));
    assert_ne!(a, stream_dir(base, "/", "q2"));
    assert_ne!(a, stream_dir(base, "other", "q"));
    assert_eq!(a, stream_dir(base, "/", "q"));
    let odd = stream_dir(base, "../..", "a/b\0 ..");
    assert_eq!(odd.components().count(), a.components().count());
}

#[test]
fn a_reader_of_a_million_small_entries_keeps_a_bounded_buffer() {
    let dir = temp("million");
    let log = StreamLog::open(&dir, small_segments(8 * 1024 * 1024)).expect("open");
    const N: u64 = 1_000_000;
    let data = [5u8; 16];
    let mut i = 0;
    while i < N {
        let batch: Vec<(i64, &[u8])> = (0..1000).map(|_| (i as i64, &data[..])).collect();
        log.append_batch(&batch).expect("append");
        i += 1000;
    }
    let mut r = log.reader(0).expect("reader");
    let (mut n, mut most) = (0u64, 0usize);
    while let Some(e) = r.next().expect("next") {
        assert_eq!(e.offset, n);
        n += 1;
        most = most.max(r.buffered_bytes());
    }
    assert_eq!(n, N);
    assert!(
        most <= READ_AHEAD + CHUNK_TARGET,
        "reader buffer peaked at {most} bytes"
    );
    // The in-memory index stays sparse: a point per 4096 entries or 4 MiB, per segment.
    let meta = log.meta();
    let points: usize = meta.segments.iter().map(|s| s.points.len()).sum();
    assert!(
        points as u64 <= N / 1000 / 4 + 2 * meta.segments.len() as u64,
        "{points} points"
    );
}
