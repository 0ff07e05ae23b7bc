//! Unit tests of the stream log's recovery: reopening, torn tails, flipped bytes,
//! garbage, lost or wrong index files, and random damage (property tests).

use super::format::SEGMENT_HEADER;
use super::segment::{index_path, segment_path};
use super::tests::{check_entries, fill, read_all, small_segments, temp};
use super::*;
use proptest::prelude::*;
use std::fs::OpenOptions;
use std::io::Write;

fn bases(dir: &Path) -> Vec<u64> {
    let mut v: Vec<u64> = std::fs::read_dir(dir)
        .expect("dir")
        .filter_map(|e| {
            e.ok()?
                .file_name()
                .to_str()?
                .strip_suffix(".segment")?
                .parse()
                .ok()
        })
        .collect();
    v.sort_unstable();
    v
}

fn append_bytes(path: &Path, bytes: &[u8]) {
    OpenOptions::new()
        .append(true)
        .open(path)
        .expect("open")
        .write_all(bytes)
        .expect("write");
}

/// The file position of chunk `n` of segment 0, from its index file.
fn chunk_pos(dir: &Path, n: usize) -> u64 {
    let idx = std::fs::read(index_path(dir, 0)).expect("index");
    let at = 8 + n * 32 + 16;
    u64::from_le_bytes(idx[at..at + 8].try_into().expect("8 bytes"))
}

fn flip(path: &Path, at: u64) {
    let mut b = std::fs::read(path).expect("read");
    b[at as usize] ^= 0x5a;
    std::fs::write(path, b).expect("write");
}

#[test]
fn reopening_keeps_offsets_segments_and_entries() {
    let dir = temp("reopen");
    let log = StreamLog::open(&dir, small_segments(1500)).expect("open");
    fill(&log, 0, 300, 3);
    let (stats, last) = (log.stats(), log.resolve(StartAt::Last));
    let ts = log.resolve(StartAt::Timestamp(1234));
    drop(log);
    let log = StreamLog::open(&dir, small_segments(1500)).expect("reopen");
    assert_eq!(log.stats(), stats);
    assert!(stats.segments > 3);
    assert_eq!(log.resolve(StartAt::Last), last);
    assert_eq!(log.resolve(StartAt::Timestamp(1234)), ts);
    check_entries(&read_all(&log, 0), 0, 300);
    assert_eq!(
        log.append(3000, &super::tests::body(300)).expect("append"),
        300
    );
    check_entries(&read_all(&log, 290), 290, 301);
}

#[test]
fn a_torn_tail_is_cut_and_appends_continue_after_the_last_whole_chunk() {
    let dir = temp("torn");
    let log = StreamLog::open(&dir, StreamConfig::default()).expect("open");
    fill(&log, 0, 20, 4);
    log.sync().expect("sync");
    let seg = segment_path(&dir, 0);
    let good = std::fs::metadata(&seg).expect("meta").len();
    // Half a chunk, as a write cut by kill -9 leaves it.
    let mut chunk = Vec::new();
    super::format::encode_chunk(&mut chunk, 20, &[(200, b"entry-20")]);
    append_bytes(&seg, &chunk[..chunk.len() / 2]);
    drop(log);
    let log = StreamLog::open(&dir, StreamConfig::default()).expect("reopen");
    assert_eq!(log.next_offset(), 20);
    assert_eq!(
        std::fs::metadata(&seg).expect("meta").len(),
        good,
        "torn bytes cut off"
    );
    fill(&log, 20, 25, 1);
    check_entries(&read_all(&log, 0), 0, 25);
}

#[test]
fn a_flipped_byte_in_the_tail_ends_the_log_at_the_chunk_before_it() {
    let dir = temp("flip");
    let log = StreamLog::open(&dir, StreamConfig::default()).expect("open");
    fill(&log, 0, 10, 1);
    drop(log);
    let seg = segment_path(&dir, 0);
    // The last chunk (the one recovery checks) damaged: the log ends before it.
    let pos9 = chunk_pos(&dir, 9);
    flip(&seg, pos9 + 40);
    let log = StreamLog::open(&dir, StreamConfig::default()).expect("reopen");
    assert_eq!(log.next_offset(), 9);
    check_entries(&read_all(&log, 0), 0, 9);
    assert_eq!(std::fs::metadata(&seg).expect("meta").len(), pos9);
}

#[test]
fn a_flipped_byte_the_index_vouched_for_is_found_by_readers() {
    let dir = temp("flip-middle");
    let log = StreamLog::open(&dir, StreamConfig::default()).expect("open");
    fill(&log, 0, 10, 1);
    drop(log);
    let pos6 = chunk_pos(&dir, 6);
    flip(&segment_path(&dir, 0), pos6 + 40);
    // Opening reads only index files and the last chunk, so the log still says 10; a
    // reader stops at the damaged chunk with InvalidData rather than hand out bad bytes.
    let log = StreamLog::open(&dir, StreamConfig::default()).expect("reopen");
    assert_eq!(log.next_offset(), 10);
    let mut r = log.reader(0).expect("reader");
    for i in 0..6 {
        assert_eq!(r.next().expect("next").map(|e| e.offset), Some(i));
    }
    assert_eq!(
        r.next().expect_err("damage").kind(),
        io::ErrorKind::InvalidData
    );
    // Past the damaged chunk reading goes on.
    assert_eq!(r.skip_damaged().expect("skip"), 7);
    assert_eq!(r.next().expect("next").map(|e| e.offset), Some(7));
    assert_eq!(read_all(&log, 8).len(), 2);
    assert_eq!(
        log.reader(6)
            .expect("reader")
            .next()
            .expect_err("damage")
            .kind(),
        io::ErrorKind::InvalidData
    );
}

#[test]
fn garbage_after_the_log_and_a_lost_index_are_handled() {
    let dir = temp("garbage");
    let log = StreamLog::open(&dir, small_segments(1000)).expect("open");
    fill(&log, 0, 100, 2);
    let stats = log.stats();
    drop(log);
    let b = bases(&dir);
    let last = *b.last().expect("segments");
    append_bytes(&segment_path(&dir, last), &[0xAB; 333]);
    std::fs::remove_file(index_path(&dir, b[1])).expect("lose an index");
    std::fs::write(index_path(&dir, b[2]), b"not an index at all").expect("garbage index");
    let log = StreamLog::open(&dir, small_segments(1000)).expect("reopen");
    assert_eq!(log.stats(), stats);
    check_entries(&read_all(&log, 0), 0, 100);
    assert_eq!(
        log.resolve(StartAt::Timestamp(b[2] as i64 * 10 + 1)),
        b[2],
        "chunks of two"
    );
    // The rebuilt indexes are good for the next open too.
    drop(log);
    assert_eq!(
        StreamLog::open(&dir, small_segments(1000))
            .expect("reopen")
            .stats(),
        stats
    );
}

#[test]
fn damage_in_an_older_segment_ends_the_log_there() {
    let dir = temp("older");
    let log = StreamLog::open(&dir, small_segments(1000)).expect("open");
    fill(&log, 0, 100, 1);
    drop(log);
    let b = bases(&dir);
    assert!(b.len() > 3);
    // Cut the second segment in the middle of a chunk.
    let seg = segment_path(&dir, b[1]);
    let len = std::fs::metadata(&seg).expect("meta").len();
    OpenOptions::new()
        .write(true)
        .open(&seg)
        .expect("open")
        .set_len(len - 5)
        .expect("truncate");
    let log = StreamLog::open(&dir, small_segments(1000)).expect("reopen");
    let s = log.stats();
    assert_eq!(s.segments, 2);
    assert!(s.next_offset > b[1] && s.next_offset < b[2], "{s:?}");
    check_entries(&read_all(&log, 0), 0, s.next_offset);
    assert_eq!(bases(&dir), b[..2].to_vec());
    // Appends go on from the damage.
    assert_eq!(log.append(0, b"x").expect("append"), s.next_offset);
}

#[test]
fn a_segment_without_its_header_is_emptied() {
    let dir = temp("header");
    let log = StreamLog::open(&dir, StreamConfig::default()).expect("open");
    fill(&log, 0, 10, 1);
    drop(log);
    flip(&segment_path(&dir, 0), 2);
    let log = StreamLog::open(&dir, StreamConfig::default()).expect("reopen");
    assert_eq!((log.first_offset(), log.next_offset()), (0, 0));
    assert_eq!(
        std::fs::metadata(segment_path(&dir, 0))
            .expect("meta")
            .len(),
        SEGMENT_HEADER
    );
    assert_eq!(log.append(0, b"again").expect("append"), 0);
}

#[test]
fn stray_files_are_left_alone_and_orphan_indexes_removed() {
    let dir = temp("stray");
    std::fs::create_dir_all(&dir).expect("dir");
    std::fs::write(dir.join("README"), b"mine").expect("write");
    std::fs::write(index_path(&dir, 77), b"orphan").expect("write");
    let log = StreamLog::open(&dir, StreamConfig::default()).expect("open");
    assert_eq!(log.next_offset(), 0);
    assert!(dir.join("README").exists());
    assert!(!index_path(&dir, 77).exists());
}

/// How a test damages a log's files.
#[derive(Debug, Clone)]
enum Damage {
    Flip {
        file: usize,
        at: u64,
        xor: u8,
    },
    Truncate {
        file: usize,
        at: u64,
    },
    Garbage {
        file: usize,
        at: u64,
        bytes: Vec<u8>,
    },
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (0usize..8, 0u64..4000, 1u8..=255).prop_map(|(file, at, xor)| Damage::Flip {
            file,
            at,
            xor
        }),
        (0usize..8, 0u64..4000).prop_map(|(file, at)| Damage::Truncate { file, at }),
        (
            0usize..8,
            0u64..4000,
            proptest::collection::vec(any::<u8>(), 1..64)
        )
            .prop_map(|(file, at, bytes)| Damage::Garbage { file, at, bytes }),
    ]
}

fn apply(dir: &Path, d: &Damage) {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("dir")
        .filter_map(|e| Some(e.ok()?.path()))
        .collect();
    files.sort();
    let (file, at) = match d {
        Damage::Flip { file, at, .. }
        | Damage::Truncate { file, at }
        | Damage::Garbage { file, at, .. } => (file, at),
    };
    let path = &files[file % files.len()];
    let mut b = std::fs::read(path).expect("read");
    let at = (*at as usize).min(b.len());
    match d {
        Damage::Flip { xor, .. } if at < b.len() => b[at] ^= xor,
        Damage::Flip { .. } => {}
        Damage::Truncate { .. } => b.truncate(at),
        Damage::Garbage { bytes, .. } => {
            let end = (at + bytes.len()).min(b.len());
            b.splice(at..end, bytes.iter().copied());
        }
    }
    std::fs::write(path, b).expect("write");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Whatever the damage, opening works, the log is a prefix of what was written (a
    /// reader may end with InvalidData at damage the index vouched for, never with wrong
    /// entries), and appends go on at the next offset.
    #[test]
    fn damaged_logs_open_as_a_prefix(damages in proptest::collection::vec(damage(), 1..4), case in 0u32..1_000_000) {
        let dir = temp(&format!("prop-{case}"));
        let log = StreamLog::open(&dir, small_segments(1200)).expect("open");
        fill(&log, 0, 120, 3);
        drop(log);
        for d in &damages {
            apply(&dir, d);
        }
        let log = StreamLog::open(&dir, small_segments(1200)).expect("open after damage");
        let next = log.next_offset();
        prop_assert!(next <= 120);
        let mut r = log.reader(0).expect("reader");
        let mut expect = log.first_offset();
        let mut skips = 0;
        loop {
            match r.next() {
                Ok(Some(e)) => {
                    // In order, and only what was written (entries may be skipped only
                    // after a damaged chunk).
                    prop_assert!(e.offset >= expect);
                    prop_assert!(e.offset == expect || skips > 0);
                    prop_assert_eq!(&e.data[..], &super::tests::body(e.offset)[..]);
                    expect = e.offset + 1;
                }
                Ok(None) => { prop_assert_eq!(expect, next); break; }
                Err(e) => {
                    prop_assert_eq!(e.kind(), io::ErrorKind::InvalidData);
                    skips += 1;
                    prop_assert!(skips < 50, "skipping damage ends");
                    expect = r.skip_damaged().expect("skip");
                }
            }
        }
        prop_assert_eq!(log.append(0, b"after").expect("append"), next);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn bytes_trailing_a_complete_older_segment_are_cut_without_losing_the_next() {
    let dir = temp("trailing");
    let log = StreamLog::open(&dir, small_segments(1000)).expect("open");
    fill(&log, 0, 60, 1);
    let stats = log.stats();
    drop(log);
    let b = bases(&dir);
    let seg = segment_path(&dir, b[1]);
    let len = std::fs::metadata(&seg).expect("meta").len();
    append_bytes(&seg, &[0u8; 100]);
    let log = StreamLog::open(&dir, small_segments(1000)).expect("reopen");
    assert_eq!(log.stats(), stats);
    assert_eq!(std::fs::metadata(&seg).expect("meta").len(), len);
    check_entries(&read_all(&log, 0), 0, 60);
}
