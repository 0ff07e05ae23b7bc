//! The message store on a failing disk: write and sync failures injected into the
//! segment files (`segment::Faults`). A failed batch is nacked and cut back, the writer
//! goes on, and a restart reads back every confirmed message and nothing torn.

use super::tests::{msg, open, open_small, plain, put, q, restart, segments};
use super::*;
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};

fn temp(name: &str) -> std::path::PathBuf {
    super::tests::temp(&format!("faults-{name}"))
}

/// Appends and waits for the answer: the id if confirmed, `None` if nacked.
fn try_put(h: &StoreHandle, body: &str, queues: &[&str]) -> Option<u64> {
    let (tx, rx) = oneshot::channel();
    h.append(msg(body), q(queues), Some(tx.into()));
    rx.blocking_recv().ok()
}

fn len(path: &Path) -> u64 {
    std::fs::metadata(path).expect("segment").len()
}

/// Counts the calls of the failure hook.
fn count_failures(h: &StoreHandle) -> Arc<AtomicUsize> {
    let n = Arc::new(AtomicUsize::new(0));
    let seen = n.clone();
    h.on_write_failure(move |_| {
        seen.fetch_add(1, Relaxed);
    });
    n
}

#[test]
fn failed_write_is_nacked_cut_back_and_the_next_batch_is_confirmed() {
    let dir = temp("write");
    let (h, _) = open(&dir);
    let failures = count_failures(&h);
    put(&h, "a", &["q"]);
    let seg = segments(&dir).pop().expect("a segment");
    let good = len(&seg);

    // Half the record reaches the file, then the disk is full.
    h.faults().writes.store(1, Relaxed);
    assert_eq!(try_put(&h, "b", &["q"]), None, "a failed write is nacked");
    assert_eq!(len(&seg), good, "the torn record is cut off");
    assert!(h.is_failed());
    assert_eq!(failures.load(Relaxed), 1);

    put(&h, "c", &["q"]);
    assert!(!h.is_failed(), "a synced batch ends the failure");
    assert!(len(&seg) > good);

    let (_h, got) = restart(h, &dir);
    assert_eq!(plain(&got, "q"), ["a", "c"]);
    assert_eq!(
        segments(&dir)
            .iter()
            .filter(|p| p.extension().is_some_and(|x| x != "seg"))
            .count(),
        0
    );
}

#[test]
fn failed_sync_is_nacked_and_what_it_covered_is_cut_back() {
    let dir = temp("sync");
    let (h, _) = open(&dir);
    let failures = count_failures(&h);
    put(&h, "a", &["q"]);
    let seg = segments(&dir).pop().expect("a segment");
    let good = len(&seg);

    // The write succeeded but the fdatasync did not: the pages may be gone.
    h.faults().syncs.store(1, Relaxed);
    assert_eq!(try_put(&h, "b", &["q"]), None);
    assert_eq!(len(&seg), good);
    assert_eq!(failures.load(Relaxed), 1);
    // Failing again is nacked again.
    h.faults().syncs.store(1, Relaxed);
    assert_eq!(try_put(&h, "c", &["q"]), None);
    assert_eq!(failures.load(Relaxed), 2);
    assert!(h.flush_blocking().is_ok(), "nothing failed since");

    put(&h, "d", &["q"]);
    let (_h, got) = restart(h, &dir);
    assert_eq!(plain(&got, "q"), ["a", "d"]);
}

#[test]
fn acks_of_a_failed_batch_are_written_with_the_next_one() {
    let dir = temp("ack");
    let (h, _) = open(&dir);
    let a = put(&h, "a", &["q"]);
    put(&h, "b", &["q"]);
    h.faults().writes.store(1, Relaxed);
    h.ack(&Arc::from("q"), a);
    // The ack's write fails in this batch or the flush's; either way the flush that
    // follows the failure writes it again.
    let _ = h.flush_blocking();
    h.flush_blocking().expect("writes succeed again");
    let (_h, got) = restart(h, &dir);
    assert_eq!(plain(&got, "q"), ["b"], "the ack survived the failed write");
}

#[test]
fn nacked_message_can_still_be_acked_and_later_ids_are_stored() {
    let dir = temp("nacked-ack");
    let (h, _) = open(&dir);
    put(&h, "a", &["q"]);
    h.faults().writes.store(1, Relaxed);
    let (tx, rx) = oneshot::channel();
    let b = h.append(msg("b"), q(&["q"]), Some(tx.into()));
    assert!(rx.blocking_recv().is_err());
    // Its copy in memory is consumed and acked as usual: the ack of a record that is
    // not on disk is harmless.
    h.delivered(&Arc::from("q"), b, 1);
    h.ack(&Arc::from("q"), b);
    put(&h, "c", &["q"]);
    let (h, got) = restart(h, &dir);
    assert_eq!(plain(&got, "q"), ["a", "c"]);
    let (_h, got) = restart(h, &dir);
    assert_eq!(plain(&got, "q"), ["a", "c"], "a second replay agrees");
}

#[test]
fn failure_creating_a_segment_is_retried_with_the_same_number() {
    let dir = temp("roll");
    let (h, _) = open_small(&dir);
    let big = "x".repeat(1500);
    put(&h, &big, &["q"]);
    put(&h, &big, &["q"]);
    let before = segments(&dir);
    // The next record does not fit: the new segment's header write fails.
    h.faults().writes.store(1, Relaxed);
    assert_eq!(try_put(&h, "y".repeat(1500).as_str(), &["q"]), None);
    assert_eq!(segments(&dir), before, "the half-made segment is removed");
    put(&h, &"z".repeat(1500), &["q"]);
    let (_h, got) = restart(h, &dir);
    let firsts: Vec<char> = plain(&got, "q")
        .iter()
        .filter_map(|b| b.chars().next())
        .collect();
    assert_eq!(firsts, ['x', 'x', 'z']);
}

#[test]
fn settled_segments_are_deleted_after_a_failed_batch() {
    let dir = temp("unlink");
    let (h, _) = open_small(&dir);
    let big = "x".repeat(1500);
    let ids: Vec<u64> = (0..6).map(|_| put(&h, &big, &["q"])).collect();
    let before = segments(&dir).len();
    assert!(before >= 3);
    h.faults().syncs.store(1, Relaxed);
    for &id in &ids[..4] {
        h.ack(&Arc::from("q"), id);
    }
    let _ = h.flush_blocking();
    h.flush_blocking().expect("writes succeed again");
    // Files are unlinked after the completions fire: one more batch waits for that.
    h.flush_blocking().expect("flushed");
    assert!(
        segments(&dir).len() < before,
        "emptied segments went after all: {before} {:?}",
        segments(&dir)
    );
    let (_h, got) = restart(h, &dir);
    assert_eq!(plain(&got, "q").len(), 2);
}

#[test]
fn failed_sync_with_later_batches_written_behind_it_loses_no_confirmed_message() {
    // Many appends in flight at once: the writer writes later batches while a sync runs.
    // One sync fails: every batch written behind it is cut with it and nacked, and every
    // confirmed message comes back after a restart, with no torn record.
    let dir = temp("pipeline");
    let (h, _) = open(&dir);
    let failures = count_failures(&h);
    put(&h, "first", &["q"]);
    let (tx, rx) = std::sync::mpsc::channel();
    for i in 0..3000u32 {
        if i == 100 {
            h.faults().syncs.store(1, Relaxed);
        }
        let tx = tx.clone();
        let body = format!("m{i}");
        h.append(
            msg(&body),
            q(&["q"]),
            Some(Done::new(move |id| {
                let _ = tx.send((body, id.is_some()));
            })),
        );
    }
    drop(tx);
    let answers: Vec<(String, bool)> = rx.iter().collect();
    assert_eq!(answers.len(), 3000, "every publish is answered");
    let nacked = answers.iter().filter(|(_, ok)| !ok).count();
    assert!(nacked > 0, "the failed sync nacked its batch");
    assert_eq!(failures.load(Relaxed), 1);
    h.flush_blocking().expect("writes succeed again");
    let (_h, got) = restart(h, &dir);
    let back: std::collections::HashSet<String> = plain(&got, "q").into_iter().collect();
    for (body, ok) in &answers {
        if *ok {
            assert!(back.contains(body), "confirmed {body} lost");
        }
    }
    assert!(back.contains("first"));
    let set_aside = std::fs::read_dir(dir.join("msgs"))
        .expect("msgs dir")
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".corrupt"))
        .count();
    assert_eq!(set_aside, 0, "nothing torn set aside");
}
