//! Message-store tests: real files in temporary directories, the store closed and opened
//! again as a restart would, segments damaged by hand.

use super::*;
use std::collections::HashMap;
use std::path::PathBuf;

pub(super) fn temp(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("warren-store-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

pub(super) fn msg(body: &str) -> StoredMessage {
    StoredMessage {
        exchange: "ex".into(),
        routing_key: "rk".into(),
        properties: Bytes::from_static(&[0x10, 0x00, 0x02]),
        body: Bytes::copy_from_slice(body.as_bytes()),
    }
}

pub(super) fn q(names: &[&str]) -> Vec<Arc<str>> {
    names.iter().map(|&s| Arc::from(s)).collect()
}

/// Appends and waits for the confirm.
pub(super) fn put(h: &StoreHandle, body: &str, queues: &[&str]) -> u64 {
    let (tx, rx) = oneshot::channel();
    let id = h.append(msg(body), q(queues), Some(tx.into()));
    assert_eq!(rx.blocking_recv().expect("confirmed"), id);
    id
}

/// A recovery read back in full through [`Recovered::stream`].
#[derive(Debug, Default)]
pub(super) struct Got {
    pub(super) queues: HashMap<String, Vec<Msg>>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Msg {
    id: u64,
    msg: StoredMessage,
    redelivered: bool,
    /// Times delivered before the restart.
    times: u16,
}

/// Streams `r`, checking what every stream must satisfy: ids strictly ascending, each
/// message with at least one holder and no queue twice, and counts as announced.
pub(super) fn read_all(r: Recovered) -> Got {
    let announced: HashMap<String, usize> = r.queues().map(|(k, n)| (k.to_owned(), n)).collect();
    let total = r.message_count();
    assert_eq!(announced.values().sum::<usize>(), total);
    let mut got = Got::default();
    let mut last = 0;
    r.stream(|rec, holders| {
        assert!(rec.id > last, "ids ascend: {} after {last}", rec.id);
        last = rec.id;
        assert!(!holders.is_empty());
        for (i, (k, _)) in holders.iter().enumerate() {
            assert!(!holders[..i].iter().any(|(j, _)| j == k), "{k} twice");
        }
        for &(k, times) in holders {
            got.queues.entry(k.to_owned()).or_default().push(Msg {
                id: rec.id,
                msg: StoredMessage {
                    exchange: rec.exchange.to_owned(),
                    routing_key: rec.routing_key.to_owned(),
                    properties: Bytes::copy_from_slice(rec.properties),
                    body: Bytes::copy_from_slice(rec.body),
                },
                redelivered: times > 0,
                times,
            });
        }
    });
    let counts: HashMap<String, usize> = got
        .queues
        .iter()
        .map(|(k, v)| (k.clone(), v.len()))
        .collect();
    assert_eq!(counts, announced, "streamed what was announced");
    got
}

pub(super) fn open(dir: &Path) -> (StoreHandle, Got) {
    let (h, r) = StoreHandle::open(dir).expect("open");
    (h, read_all(r))
}

pub(super) fn open_small_raw(dir: &Path) -> (StoreHandle, Recovered) {
    StoreHandle::open_with(
        dir,
        StoreOptions {
            segment_bytes: 4096,
            ..StoreOptions::default()
        },
    )
    .expect("open")
}

pub(super) fn open_small(dir: &Path) -> (StoreHandle, Got) {
    let (h, r) = open_small_raw(dir);
    (h, read_all(r))
}

pub(super) fn restart(h: StoreHandle, dir: &Path) -> (StoreHandle, Got) {
    h.flush_blocking().expect("flush");
    h.close();
    open(dir)
}

fn bodies(r: &Got, queue: &str) -> Vec<(String, bool)> {
    r.queues
        .get(queue)
        .map(|v| {
            v.iter()
                .map(|m| {
                    (
                        String::from_utf8_lossy(&m.msg.body).into_owned(),
                        m.redelivered,
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

pub(super) fn plain(r: &Got, queue: &str) -> Vec<String> {
    bodies(r, queue).into_iter().map(|(b, _)| b).collect()
}

pub(super) fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir.join("msgs"))
        .expect("msgs dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    v.sort();
    v
}

/// The last segment that holds records (the newest one may be empty: a restart starts
/// a fresh segment).
fn last_with_records(dir: &Path) -> PathBuf {
    segments(dir)
        .into_iter()
        .rev()
        .find(|p| {
            std::fs::metadata(p)
                .map(|m| m.len() > record::HEADER_LEN as u64)
                .unwrap_or(false)
        })
        .expect("a segment with records")
}

#[test]
fn append_ack_recover_in_order() {
    let dir = temp("order");
    let (h, r) = open(&dir);
    assert!(r.queues.is_empty());
    let ids: Vec<u64> = (1..=5).map(|i| put(&h, &format!("m{i}"), &["q"])).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    h.ack(&"q".into(), ids[1]);
    h.ack(&"q".into(), ids[3]);
    let (h, r) = restart(h, &dir);
    assert_eq!(
        bodies(&r, "q"),
        vec![
            ("m1".into(), false),
            ("m3".into(), false),
            ("m5".into(), false)
        ]
    );
    assert_eq!(
        r.queues["q"].iter().map(|m| m.id).collect::<Vec<_>>(),
        vec![ids[0], ids[2], ids[4]]
    );
    assert_eq!(r.queues["q"][0].msg, msg("m1"));
    h.close();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn message_in_two_queues_is_stored_once_and_kept_until_both_ack() {
    let dir = temp("twoq");
    let (h, _) = open(&dir);
    let id = put(&h, "shared-body-0123456789", &["a", "b"]);
    let (h, r) = restart(h, &dir);
    let all: Vec<u8> = segments(&dir)
        .iter()
        .flat_map(|p| std::fs::read(p).expect("read"))
        .collect();
    let needle = b"shared-body-0123456789";
    assert_eq!(
        all.windows(needle.len()).filter(|w| w == needle).count(),
        1,
        "written once"
    );
    assert_eq!(plain(&r, "a"), vec!["shared-body-0123456789"]);
    assert_eq!(plain(&r, "b"), vec!["shared-body-0123456789"]);
    h.ack(&"a".into(), id);
    let (h, r) = restart(h, &dir);
    assert_eq!(plain(&r, "a"), Vec::<String>::new());
    assert_eq!(plain(&r, "b"), vec!["shared-body-0123456789"]);
    h.ack(&"b".into(), r.queues["b"][0].id);
    let (h, r) = restart(h, &dir);
    assert!(r.queues.is_empty());
    // Everything settled: only the fresh segment of this run is left.
    assert_eq!(segments(&dir).len(), 1);
    h.close();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn redelivered_flags_follow_delivered_and_unacked() {
    let dir = temp("redeliv");
    let (h, _) = open(&dir);
    let m1 = put(&h, "m1", &["q", "r"]);
    let m2 = put(&h, "m2", &["q"]);
    let _m3 = put(&h, "m3", &["q"]);
    h.delivered(&"q".into(), m1, 1);
    h.delivered(&"q".into(), m2, 1);
    h.ack(&"q".into(), m2);
    h.delivered(&"nosuchqueue".into(), m1, 1);
    let (h, r) = restart(h, &dir);
    assert_eq!(
        bodies(&r, "q"),
        vec![("m1".into(), true), ("m3".into(), false)]
    );
    assert_eq!(
        bodies(&r, "r"),
        vec![("m1".into(), false)],
        "delivery is per queue"
    );
    // Still redelivered after another restart, even without a new delivered mark.
    let (h, r) = restart(h, &dir);
    assert_eq!(
        bodies(&r, "q"),
        vec![("m1".into(), true), ("m3".into(), false)]
    );
    h.close();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn delivery_counts_survive_restarts_and_segment_deletion() {
    let dir = temp("times");
    let (h, _) = open_small(&dir);
    let m1 = put(&h, "m1", &["q", "r"]);
    let m2 = put(&h, "m2", &["q"]);
    // The marks land in a segment of settled fillers: deleting it carries them forward.
    let filler = "x".repeat(1000);
    for _ in 0..8 {
        let id = put(&h, &filler, &["f"]);
        h.ack(&"f".into(), id);
    }
    h.delivered(&"q".into(), m1, 1);
    h.delivered(&"q".into(), m1, 3);
    // A lower count recorded later (a duplicate carried forward) does not lower it.
    h.delivered(&"q".into(), m1, 2);
    h.delivered(&"r".into(), m1, 1);
    h.delivered(&"q".into(), m2, 1);
    // Fill segments and settle them so that the marks are carried forward.
    for _ in 0..40 {
        let id = put(&h, &filler, &["f"]);
        h.ack(&"f".into(), id);
    }
    let mut h = h;
    for _ in 0..2 {
        h.flush_blocking().expect("flush");
        h.close();
        let (again, got) = open_small(&dir);
        let times = |q: &str| -> Vec<u16> { got.queues[q].iter().map(|m| m.times).collect() };
        assert_eq!(times("q"), [3, 1]);
        assert_eq!(times("r"), [1]);
        h = again;
    }
    h.close();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn settled_segments_are_deleted() {
    let dir = temp("delete");
    let (h, _) = open_small(&dir);
    let body = "x".repeat(500);
    let ids: Vec<u64> = (0..40).map(|_| put(&h, &body, &["q"])).collect();
    assert!(
        segments(&dir).len() >= 5,
        "small segments roll: {}",
        segments(&dir).len()
    );
    for &id in &ids {
        h.ack(&"q".into(), id);
    }
    h.flush_blocking().expect("flush");
    // Settling happens in the writer; one more batch runs the deletions.
    h.flush_blocking().expect("flush");
    assert_eq!(segments(&dir).len(), 1, "only the current segment is left");
    let (h, r) = restart(h, &dir);
    assert!(r.queues.is_empty());
    assert_eq!(segments(&dir).len(), 1);
    h.close();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn acks_survive_deletion_of_the_segment_holding_them() {
    // The first message stays unacked, pinning segment 1; acks for the rest of segment 1
    // are written in later segments, which empty out and are deleted. Those acks must be
    // carried forward, or the acked messages of segment 1 would come back.
    let dir = temp("carry");
    let (h, _) = open_small(&dir);
    let body = "y".repeat(700);
    let ids: Vec<u64> = (0..30)
        .map(|i| put(&h, &format!("{i:02}{body}"), &["q"]))
        .collect();
    h.delivered(&"q".into(), ids[0], 1);
    for &id in &ids[1..] {
        h.ack(&"q".into(), id);
        put(&h, "filler", &["f"]);
        h.ack(&"f".into(), ids.last().copied().unwrap_or(0) + 1); // a no-op ack, harmless
    }
    h.drop_queue(&"f".into());
    h.flush_blocking().expect("flush");
    h.flush_blocking().expect("flush");
    let n = segments(&dir).len();
    assert!(n <= 3, "settled segments were deleted, {n} left");
    let (h, r) = restart(h, &dir);
    assert_eq!(
        r.queues.len(),
        1,
        "{:?}",
        r.queues.keys().collect::<Vec<_>>()
    );
    assert_eq!(r.queues["q"].len(), 1);
    assert_eq!(r.queues["q"][0].id, ids[0]);
    assert!(r.queues["q"][0].redelivered);
    let (h, r) = restart(h, &dir);
    assert_eq!(r.queues["q"].len(), 1);
    h.close();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn torn_tail_keeps_the_good_prefix() {
    let dir = temp("torn");
    let (h, _) = open(&dir);
    for i in 0..10 {
        put(&h, &format!("m{i}"), &["q"]);
    }
    h.close();
    let last = last_with_records(&dir);
    let len = std::fs::metadata(&last).expect("meta").len();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&last)
        .expect("open seg");
    f.set_len(len - 5).expect("truncate");
    drop(f);
    let (h, r) = open(&dir);
    assert_eq!(
        plain(&r, "q"),
        (0..9).map(|i| format!("m{i}")).collect::<Vec<_>>()
    );
    put(&h, "after", &["q"]);
    let (h, r) = restart(h, &dir);
    let mut want: Vec<String> = (0..9).map(|i| format!("m{i}")).collect();
    want.push("after".into());
    assert_eq!(plain(&r, "q"), want);
    h.close();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn flipped_byte_in_last_record_drops_only_it() {
    let dir = temp("flip");
    let (h, _) = open(&dir);
    for i in 0..10 {
        put(&h, &format!("m{i}"), &["q"]);
    }
    h.close();
    let last = last_with_records(&dir);
    let mut data = std::fs::read(&last).expect("read");
    let n = data.len();
    data[n - 1] ^= 0x40; // last byte of the last body
    std::fs::write(&last, &data).expect("write");
    let (h, r) = open(&dir);
    assert_eq!(
        plain(&r, "q"),
        (0..9).map(|i| format!("m{i}")).collect::<Vec<_>>()
    );
    assert!(
        std::fs::metadata(&last).expect("meta").len() < n as u64,
        "truncated at the bad record"
    );
    // Zeros after the good prefix (a file extended but never written) are a tail too.
    h.close();
    let last = last_with_records(&dir);
    let mut f = std::fs::OpenOptions::new()
        .append(true)
        .open(&last)
        .expect("open");
    f.write_all(&[0u8; 100]).expect("zeros");
    drop(f);
    let (h, r) = open(&dir);
    assert_eq!(plain(&r, "q").len(), 9);
    h.close();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn corrupt_record_in_an_earlier_segment_skips_the_rest_of_it() {
    let dir = temp("earlier");
    let (h, _) = open_small(&dir);
    let body = "z".repeat(900);
    for i in 0..12 {
        put(&h, &format!("{i:02}{body}"), &["q"]);
    }
    h.close();
    let segs = segments(&dir);
    assert!(segs.len() >= 3);
    // Damage the second record of the first segment.
    let mut data = std::fs::read(&segs[0]).expect("read");
    let first_len = u32::from_le_bytes([data[20], data[21], data[22], data[23]]) as usize;
    let second = record::HEADER_LEN + record::RECORD_HEAD + first_len;
    data[second + 30] ^= 1;
    std::fs::write(&segs[0], &data).expect("write");
    let (h, r) = open_small(&dir);
    let got: Vec<String> = plain(&r, "q").iter().map(|b| b[..2].to_string()).collect();
    assert_eq!(got[0], "00");
    assert!(!got.contains(&"01".to_string()));
    assert_eq!(
        got.last().map(String::as_str),
        Some("11"),
        "later segments intact: {got:?}"
    );
    h.close();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn restart_after_restart_keeps_ids_increasing() {
    let dir = temp("restarts");
    let (h, _) = open(&dir);
    let a = put(&h, "a", &["q"]);
    let (h, r) = restart(h, &dir);
    assert_eq!(plain(&r, "q"), vec!["a"]);
    let b = put(&h, "b", &["q"]);
    assert!(b > a);
    h.ack(&"q".into(), a);
    let (h, r) = restart(h, &dir);
    assert_eq!(plain(&r, "q"), vec!["b"]);
    h.ack(&"q".into(), b);
    let (h, r) = restart(h, &dir);
    assert!(r.queues.is_empty());
    // Everything was deleted; the id counter still must not go back.
    let c = put(&h, "c", &["q"]);
    assert!(c > b, "{c} > {b}");
    let (h, r) = restart(h, &dir);
    assert_eq!(plain(&r, "q"), vec!["c"]);
    h.close();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn drop_queue_settles_only_what_came_before() {
    let dir = temp("drop");
    let (h, _) = open(&dir);
    put(&h, "q1", &["q", "r"]);
    put(&h, "q2", &["q"]);
    h.drop_queue(&"q".into());
    put(&h, "q3", &["q"]);
    let (h, r) = restart(h, &dir);
    assert_eq!(plain(&r, "q"), vec!["q3"]);
    assert_eq!(plain(&r, "r"), vec!["q1"]);
    h.close();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn second_open_of_a_locked_directory_is_refused() {
    let dir = temp("lock");
    let (h, _) = open(&dir);
    let err = StoreHandle::open(&dir).err().expect("refused");
    assert_eq!(err.kind(), io::ErrorKind::ResourceBusy);
    assert!(
        err.to_string().contains("in use by another warren"),
        "{err}"
    );
    h.close();
    let (h, _) = open(&dir);
    h.close();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn queue_keys_split_back() {
    let k = queue_key("a/b:c", "q:1");
    assert_eq!(split_queue_key(&k), Some(("a/b:c", "q:1")));
    assert_ne!(queue_key("ab", "c"), queue_key("a", "bc"));
    assert_eq!(split_queue_key("9:abc"), None);
}

#[test]
fn handle_is_send_sync_clone() {
    fn check<T: Send + Sync + Clone + 'static>() {}
    check::<StoreHandle>();
}

/// Random appends, acks, delivered marks, drops and restarts on small segments, checked
/// against a model after every restart.
#[test]
fn random_operations_match_a_model() {
    for seed in [0x9E37_79B9_7F4A_7C15, 1, 0xDEAD_BEEF] {
        random_run(seed, 1500);
    }
}

fn random_run(mut seed: u64, steps: usize) {
    use std::collections::{BTreeMap, HashMap};
    let dir = temp(&format!("model-{seed}"));
    let (mut h, _) = open_small(&dir);
    let names = ["a", "b", "c"];
    let mut model: HashMap<&str, BTreeMap<u64, (String, bool)>> = HashMap::new();
    let mut rnd = move |n: u64| {
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (seed >> 33) % n
    };
    for step in 0..steps {
        let op = rnd(100);
        let qn = names[rnd(3) as usize];
        if op < 40 {
            let mask = 1 + rnd(7);
            let qs: Vec<&str> = names
                .iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, n)| *n)
                .collect();
            let body = format!("{step}-{}", "p".repeat(rnd(400) as usize));
            let id = put(&h, &body, &qs);
            for n in qs {
                model
                    .entry(n)
                    .or_default()
                    .insert(id, (body.clone(), false));
            }
        } else if op < 80 {
            let live = model.entry(qn).or_default();
            if !live.is_empty() {
                // Mostly the oldest (a consumer keeping up), sometimes any.
                let k = if rnd(4) == 0 {
                    rnd(live.len() as u64) as usize
                } else {
                    0
                };
                let id = *live.keys().nth(k).unwrap_or(&0);
                live.remove(&id);
                h.ack(&qn.into(), id);
            }
        } else if op < 92 {
            let live = model.entry(qn).or_default();
            if !live.is_empty() {
                let k = rnd(live.len() as u64) as usize;
                let id = *live.keys().nth(k).unwrap_or(&0);
                if let Some(e) = live.get_mut(&id) {
                    e.1 = true;
                }
                h.delivered(&qn.into(), id, 1);
            }
        } else if op < 94 {
            model.entry(qn).or_default().clear();
            h.drop_queue(&qn.into());
        } else if op < 97 {
            h.flush_blocking().expect("flush");
            h.close();
            let (h2, r) = open_small(&dir);
            h = h2;
            for n in names {
                let want: Vec<(u64, String, bool)> = model
                    .get(n)
                    .map(|m| m.iter().map(|(id, (b, d))| (*id, b.clone(), *d)).collect())
                    .unwrap_or_default();
                let got: Vec<(u64, String, bool)> = r
                    .queues
                    .get(n)
                    .map(|v| {
                        v.iter()
                            .map(|m| {
                                (
                                    m.id,
                                    String::from_utf8_lossy(&m.msg.body).into_owned(),
                                    m.redelivered,
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                assert_eq!(got, want, "queue {n} after restart at step {step}");
            }
        }
    }
    let live_bytes: usize = model
        .values()
        .flat_map(|m| m.values())
        .map(|(b, _)| b.len())
        .sum();
    let disk: u64 = segments(&dir)
        .iter()
        .map(|p| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
        .sum();
    println!("model: {live_bytes} live body bytes, {disk} bytes of segments");
    assert!(
        disk < live_bytes as u64 * 3 + 64 * 4096,
        "disk follows the backlog"
    );
    h.close();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Everything `stream` hands out: (id, body, holders sorted by queue key).
type Streamed = Vec<(u64, String, Vec<(String, bool)>)>;

fn stream_all(r: Recovered) -> Streamed {
    let mut out = Vec::new();
    r.stream(|rec, holders| {
        let mut hs: Vec<(String, bool)> = holders
            .iter()
            .map(|&(k, d)| (k.to_owned(), d > 0))
            .collect();
        hs.sort();
        out.push((rec.id, String::from_utf8_lossy(rec.body).into_owned(), hs));
    });
    out
}

#[test]
fn recovery_streams_ids_queues_and_flags_in_order() {
    use std::collections::BTreeMap;
    let dir = temp("stream");
    let (h, _) = open_small(&dir);
    let names = ["a", "b", "c"];
    // id -> (body, queue -> delivered)
    let mut model: BTreeMap<u64, (String, BTreeMap<String, bool>)> = BTreeMap::new();
    for i in 0..300usize {
        let qs: Vec<&str> = match i % 4 {
            0 => vec!["a"],
            1 => vec!["a", "b"],
            2 => vec!["b", "c"],
            _ => vec!["a", "b", "c"],
        };
        let body = format!("{i:03}-{}", "s".repeat(50 + i % 200));
        let id = put(&h, &body, &qs);
        let holders = qs.iter().map(|q| (q.to_string(), false)).collect();
        model.insert(id, (body, holders));
    }
    let ids: Vec<u64> = model.keys().copied().collect();
    for (n, &id) in ids.iter().enumerate() {
        for (k, q) in names.iter().enumerate() {
            let Some((_, holders)) = model.get_mut(&id) else {
                continue;
            };
            if !holders.contains_key(*q) {
                continue;
            }
            // Holes: acked in some queues, delivered-and-unacked in others.
            if (n + k) % 3 == 0 || (n > 40 && n < 120) {
                h.ack(&(*q).into(), id);
                holders.remove(*q);
            } else if (n + 2 * k) % 5 == 0 {
                h.delivered(&(*q).into(), id, 1);
                holders.insert(q.to_string(), true);
            }
        }
    }
    model.retain(|_, (_, holders)| !holders.is_empty());
    h.flush_blocking().expect("flush");
    let tail = put(&h, "torn-tail-message", &["a"]);
    h.close();
    assert!(segments(&dir).len() >= 5, "{}", segments(&dir).len());
    let last = last_with_records(&dir);
    let len = std::fs::metadata(&last).expect("meta").len();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&last)
        .expect("open seg");
    f.set_len(len - 5).expect("tear the tail");
    drop(f);

    let (h, r) = open_small_raw(&dir);
    let want: Streamed = model
        .iter()
        .filter(|(&id, _)| id != tail)
        .map(|(&id, (body, holders))| {
            (
                id,
                body.clone(),
                holders.iter().map(|(q, &d)| (q.clone(), d)).collect(),
            )
        })
        .collect();
    let pairs: usize = want.iter().map(|(_, _, hs)| hs.len()).sum();
    assert_eq!(r.message_count(), pairs);
    let mut announced: Vec<(String, usize)> = r.queues().map(|(k, n)| (k.to_owned(), n)).collect();
    announced.sort();
    let mut per_queue: Vec<(String, usize)> = names
        .iter()
        .map(|q| {
            let n = want
                .iter()
                .filter(|(_, _, hs)| hs.iter().any(|(k, _)| k == q))
                .count();
            (q.to_string(), n)
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    per_queue.sort();
    assert_eq!(announced, per_queue);
    let got = stream_all(r);
    assert!(got.len() > 50 && got.iter().any(|(_, _, hs)| hs.len() > 1));
    assert!(got.iter().any(|(_, _, hs)| hs.iter().any(|&(_, d)| d)));
    assert_eq!(got, want);
    // The same again after another restart (the delivered marks were carried).
    let (h, r) = {
        h.close();
        open_small_raw(&dir)
    };
    assert_eq!(stream_all(r), want);
    h.close();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn stream_skips_segments_that_vanished_or_changed() {
    let dir = temp("vanish");
    let (h, _) = open_small(&dir);
    let body = "v".repeat(600);
    let ids: Vec<u64> = (0..40)
        .map(|i| put(&h, &format!("{i:02}{body}"), &["q"]))
        .collect();
    h.close();
    let (h, r) = open_small_raw(&dir);
    assert_eq!(r.message_count(), ids.len());
    let segs = segments(&dir);
    assert!(segs.len() >= 5);
    // The writer runs meanwhile; a segment disappears, another is overwritten, a third
    // gets garbage in the middle.
    std::fs::remove_file(&segs[0]).expect("remove");
    std::fs::write(&segs[1], b"not a segment").expect("overwrite");
    let mut data = std::fs::read(&segs[2]).expect("read");
    let mid = data.len() / 2;
    data[mid] ^= 0xFF;
    std::fs::write(&segs[2], &data).expect("damage");
    let got = stream_all(r);
    assert!(!got.is_empty());
    assert!(got.len() < ids.len());
    assert!(got.windows(2).all(|w| w[0].0 < w[1].0));
    assert_eq!(
        got.last().map(|g| g.0),
        ids.last().copied(),
        "later segments intact"
    );
    h.close();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn records_straddling_read_chunks_and_larger_than_one_come_back() {
    let dir = temp("chunks");
    let (h, _) = open(&dir);
    let mut want = Vec::new();
    for i in 0..4000 {
        // 3.7 MiB of records of awkward sizes, and one record of 3 MiB in the middle.
        let body = if i == 1500 {
            "L".repeat(3 << 20)
        } else {
            format!("{i:04}{}", "c".repeat(700 + i % 333))
        };
        put(&h, &body, &["q"]);
        want.push(body);
    }
    let (h, r) = restart(h, &dir);
    assert_eq!(
        segments(&dir).len(),
        2,
        "one segment with records, one fresh"
    );
    assert!(plain(&r, "q") == want, "every body back, in order");
    h.close();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn index_and_recovery_plan_report_memory_that_grows_with_the_backlog() {
    let dir = temp("heap");
    let (h, _) = open(&dir);
    let empty = h.index_bytes();
    // Each `put` waits for its batch, so the index is measured many times over.
    for i in 0..2000 {
        put(&h, &format!("m{i}"), &["q", "r"]);
    }
    let full = h.index_bytes();
    assert!(
        full >= empty + 2 * 2000 * 4,
        "4 bytes per message and queue at least: {empty} -> {full}"
    );
    h.close();
    let (h, r) = StoreHandle::open(&dir).expect("reopen");
    assert!(r.heap_bytes() >= 2 * 2000 * 4, "{}", r.heap_bytes());
    assert!(h.index_bytes() >= 2 * 2000 * 4, "measured at open");
    drop(r);
    h.close();
    let _ = std::fs::remove_dir_all(&dir);
}

/// Records every `answer` call.
#[derive(Default)]
struct Recorder(Mutex<Vec<(Vec<u64>, bool)>>);

impl Answers for Recorder {
    fn answer(&self, tags: Vec<u64>, ok: bool) {
        self.0.lock().expect("lock").push((tags, ok));
    }
}

#[test]
fn tagged_completions_are_answered_once_per_receiver_and_dropped_ones_fail() {
    let (a, b) = (Arc::new(Recorder::default()), Arc::new(Recorder::default()));
    let (ta, tb): (Arc<dyn Answers>, Arc<dyn Answers>) = (a.clone(), b.clone());
    let called = Arc::new(Mutex::new(None));
    let seen = called.clone();
    let mut all = vec![
        (Done::tagged(ta.clone(), 1), 10),
        (Done::tagged(tb.clone(), 7), 11),
        (
            Done::new(move |id| *seen.lock().expect("lock") = Some(id)),
            12,
        ),
        (Done::tagged(ta.clone(), 2), 13),
        (Done::tagged(tb.clone(), 8), 14),
    ];
    Done::complete_all(&mut all);
    assert!(all.is_empty());
    assert_eq!(*a.0.lock().expect("lock"), vec![(vec![1, 2], true)]);
    assert_eq!(*b.0.lock().expect("lock"), vec![(vec![7, 8], true)]);
    assert_eq!(*called.lock().expect("lock"), Some(Some(12)));
    drop(Done::tagged(ta, 3));
    assert_eq!(a.0.lock().expect("lock").last(), Some(&(vec![3], false)));
}
