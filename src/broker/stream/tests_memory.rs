//! Unit tests of the stream log kept in memory (`StreamLog::in_memory`): the same
//! entries, offsets, start points, retention and readers as on disk, its blocks counted
//! in the memory accounting and given back by retention and deletion.

use super::tests::{
    body, check_entries, fill, read_all, reader_follows_appends, small_segments,
    start_points_as_rabbitmq,
};
use super::*;
use crate::broker::memory::Memory;
use std::sync::mpsc;
use std::sync::Arc;

fn in_memory(config: StreamConfig) -> (StreamLog, Arc<Memory>) {
    let memory = Memory::new(u64::MAX);
    (StreamLog::in_memory(config, Some(memory.clone())), memory)
}

#[test]
fn entries_read_back_in_order_across_segments_and_readers_follow_appends() {
    let (log, memory) = in_memory(small_segments(600));
    assert_eq!(log.dir(), None);
    reader_follows_appends(&log);
    fill(&log, 100, 500, 7);
    check_entries(&read_all(&log, 0), 0, 500);
    check_entries(&read_all(&log, 321), 321, 500);
    assert_eq!(log.sync().expect("nothing to sync"), 500);
    assert!(memory.used() > 0, "its blocks are counted");
}

#[test]
fn start_points_are_the_same_as_on_disk() {
    start_points_as_rabbitmq(&in_memory(StreamConfig::default()).0);
}

#[test]
fn retention_drops_whole_segments_gives_their_memory_back_and_readers_move_on() {
    let (log, memory) = in_memory(small_segments(1000));
    fill(&log, 0, 100, 1);
    let mut r = log.reader(0).expect("reader");
    assert_eq!(r.next().expect("next").map(|e| e.offset), Some(0));
    let before = memory.used();
    log.set_config(StreamConfig {
        max_length_bytes: Some(3000),
        ..small_segments(1000)
    });
    fill(&log, 100, 400, 1);
    let s = log.stats();
    assert!(s.bytes <= 3000 + 1000 && s.first_offset > 100, "{s:?}");
    assert!(
        memory.used() <= before,
        "dropped segments gave their blocks back: {} then {}",
        before,
        memory.used()
    );
    check_entries(&read_all(&log, 0), s.first_offset, 400);
    let mut last = 0;
    while let Some(e) = r.next().expect("next") {
        assert!(e.offset > last);
        last = e.offset;
    }
    assert_eq!(last, 399, "the reader went on at the first retained offset");
    // By age: everything but the active segment, as on disk.
    log.set_config(StreamConfig {
        max_age: Some(Duration::from_secs(1)),
        ..small_segments(1000)
    });
    let out = log.enforce_retention(399 * 10 + 1001).expect("retention");
    assert!(out.segments_deleted > 0);
    assert_eq!(log.stats().segments, 1);
}

#[test]
fn the_writer_thread_and_destroy_work_in_memory_and_destroy_frees_everything() {
    let (log, memory) = in_memory(small_segments(4000));
    let writer = log.spawn_writer().expect("writer");
    let (tx, rx) = mpsc::channel();
    for i in 0..10u64 {
        let tx = tx.clone();
        writer.submit(
            vec![(0, Bytes::from(body(i)))],
            Durability::Synced,
            Box::new(move |r| {
                let _ = tx.send(r.map(|r| r.start).ok());
            }),
        );
    }
    let offsets: Vec<_> = (0..10).map(|_| rx.recv().expect("callback")).collect();
    assert_eq!(offsets, (0..10).map(Some).collect::<Vec<_>>());
    let mut r = log.reader(0).expect("reader");
    assert!(memory.used() > 0);
    log.clone().destroy().expect("destroy");
    assert_eq!(memory.used(), 0, "every block came back");
    assert_eq!(
        log.append(0, b"x").expect_err("refused").kind(),
        io::ErrorKind::NotFound
    );
    // The reader ends with an error or the end, never a panic or a hang.
    for _ in 0..100 {
        match r.next() {
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    writer.stop();
}
