//! `GroupLog` against openraft's own conformance suite (with a trivial state machine),
//! plus what the suite does not look at: reopening, the record encodings.

use super::*;
use crate::cluster::{Batch, Command, GroupSnapshot, PeerAddr, Reply};
use openraft::storage::{RaftLogStorageExt, RaftSnapshotBuilder, RaftStateMachine, Snapshot};
use openraft::testing::{StoreBuilder, Suite};
use openraft::{Membership, SnapshotMeta, StoredMembership};
use std::collections::BTreeSet;

/// What the machine remembers: the last applied entry, the membership, the snapshot.
#[derive(Default)]
struct Applied {
    last: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, PeerAddr>,
    snapshot: Option<(SnapshotMeta<NodeId, PeerAddr>, GroupSnapshot)>,
    built: u64,
}

/// The trivial state machine the suite needs beside the log: it applies nothing but
/// membership, answers every entry with an empty result list.
#[derive(Clone, Default)]
struct Machine(Arc<Mutex<Applied>>);

impl Machine {
    fn applied(&self) -> MutexGuard<'_, Applied> {
        self.0.lock().unwrap()
    }
}

impl RaftSnapshotBuilder<Tc> for Machine {
    async fn build_snapshot(&mut self) -> Result<Snapshot<Tc>, StorageError<NodeId>> {
        let mut a = self.applied();
        a.built += 1;
        let meta = SnapshotMeta {
            last_log_id: a.last,
            last_membership: a.membership.clone(),
            snapshot_id: format!("s{}", a.built),
        };
        let data = GroupSnapshot::default();
        a.snapshot = Some((meta.clone(), data.clone()));
        Ok(Snapshot {
            meta,
            snapshot: Box::new(data),
        })
    }
}

impl RaftStateMachine<Tc> for Machine {
    type SnapshotBuilder = Machine;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, PeerAddr>), StorageError<NodeId>>
    {
        let a = self.applied();
        Ok((a.last, a.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Reply>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<Tc>> + Send,
        I::IntoIter: Send,
    {
        let mut a = self.applied();
        let mut replies = Vec::new();
        for e in entries {
            a.last = Some(e.log_id);
            if let EntryPayload::Membership(m) = e.payload {
                a.membership = StoredMembership::new(Some(e.log_id), m);
            }
            replies.push(Reply::Results(Vec::new()));
        }
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Machine {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<GroupSnapshot>, StorageError<NodeId>> {
        Ok(Box::default())
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, PeerAddr>,
        snapshot: Box<GroupSnapshot>,
    ) -> Result<(), StorageError<NodeId>> {
        let mut a = self.applied();
        a.last = meta.last_log_id;
        a.membership = meta.last_membership.clone();
        a.snapshot = Some((meta.clone(), *snapshot));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<Tc>>, StorageError<NodeId>> {
        Ok(self
            .applied()
            .snapshot
            .clone()
            .map(|(meta, data)| Snapshot {
                meta,
                snapshot: Box::new(data),
            }))
    }
}

/// A fresh group log on a fresh in-memory disk for each of the suite's tests.
struct Fresh;

impl StoreBuilder<Tc, GroupLog, Machine> for Fresh {
    async fn build(&self) -> Result<((), GroupLog, Machine), StorageError<NodeId>> {
        Ok(((), GroupLog::open(7, MemDisk::new()), Machine::default()))
    }
}

#[test]
fn openraft_conformance_suite() {
    // It runs each test on a runtime of its own: not inside one.
    Suite::test_all(Fresh).expect("openraft's storage suite passes");
}

/// A fresh message store in a directory of its own for each of the suite's tests; the
/// guard removes the directory.
struct FreshStore(std::sync::atomic::AtomicU32);

/// Removes a test's store directory when the suite is done with it.
struct RemoveDir(std::path::PathBuf);

impl Drop for RemoveDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl StoreBuilder<Tc, GroupLog, Machine, RemoveDir> for FreshStore {
    async fn build(&self) -> Result<(RemoveDir, GroupLog, Machine), StorageError<NodeId>> {
        let n = self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = temp(&format!("suite-{n}"));
        let disk = StoreDisk::open(&dir).map_err(|e| StorageIOError::read(&e))?;
        Ok((RemoveDir(dir), GroupLog::open(7, disk), Machine::default()))
    }
}

#[test]
fn openraft_conformance_suite_on_the_store() {
    let builder = FreshStore(std::sync::atomic::AtomicU32::new(0));
    Suite::test_all(builder).expect("openraft's storage suite passes on the store");
}

fn log_id(term: u64, index: u64) -> LogId<NodeId> {
    LogId::new(CommittedLeaderId::new(term, 0), index)
}

fn blank(term: u64, index: u64) -> Entry<Tc> {
    Entry {
        log_id: log_id(term, index),
        payload: EntryPayload::Blank,
    }
}

fn normal(term: u64, index: u64, seq: u64) -> Entry<Tc> {
    let batch = Batch {
        proposer: (2, 0xfeed),
        seq,
        cmds: Vec::new(),
    };
    Entry {
        log_id: log_id(term, index),
        payload: EntryPayload::Normal(Command::Meta(batch)),
    }
}

fn membership(term: u64, index: u64) -> Entry<Tc> {
    let voters = BTreeSet::from([1, 2, 3]);
    let addr = |n: NodeId| PeerAddr {
        name: format!("warren@n{n}"),
        addr: format!("127.0.0.1:{}", 25670 + n),
    };
    let nodes: BTreeMap<NodeId, PeerAddr> = voters.iter().map(|&n| (n, addr(n))).collect();
    Entry {
        log_id: log_id(term, index),
        payload: EntryPayload::Membership(Membership::new(vec![voters], nodes)),
    }
}

/// Appends, votes, commits, purges and cuts on group 3, reopens the disk with `reopen`
/// (a restart), and checks that group 3 reads back as it was and group 4 is untouched.
async fn survives_reopen(
    disk: Arc<dyn LogDisk>,
    reopen: impl FnOnce(Arc<dyn LogDisk>) -> Arc<dyn LogDisk>,
) {
    let mut log = GroupLog::open(3, disk.clone());
    let entries = vec![
        membership(1, 1),
        blank(1, 2),
        normal(1, 3, 1),
        normal(2, 4, 2),
    ];
    log.blocking_append(entries.clone()).await.unwrap();
    log.blocking_append([normal(2, 5, 3), blank(2, 6)])
        .await
        .unwrap();
    let vote = Vote::new_committed(2, 1);
    log.save_vote(&vote).await.unwrap();
    log.save_committed(Some(log_id(2, 4))).await.unwrap();
    log.purge(log_id(1, 2)).await.unwrap();
    log.truncate(log_id(2, 6)).await.unwrap();
    drop(log);

    let disk = reopen(disk);
    let mut again = GroupLog::open(3, disk.clone());
    assert_eq!(again.read_vote().await.unwrap(), Some(vote));
    assert_eq!(again.read_committed().await.unwrap(), Some(log_id(2, 4)));
    let state = again.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 2)));
    assert_eq!(state.last_log_id, Some(log_id(2, 5)));
    let read = again.try_get_log_entries(0..100).await.unwrap();
    assert_eq!(
        read,
        vec![normal(1, 3, 1), normal(2, 4, 2), normal(2, 5, 3)]
    );
    let mut other = GroupLog::open(4, disk);
    assert_eq!(other.get_log_state().await.unwrap().last_log_id, None);
    assert_eq!(other.read_vote().await.unwrap(), None);
}

#[tokio::test]
async fn vote_committed_purge_and_cut_survive_reopen() {
    survives_reopen(MemDisk::new(), |d| d).await;
}

fn temp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("warren-raftlog-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// Drops `disk` (the store's writer syncs and lets the directory go) and opens `dir`
/// again.
fn restart(disk: Arc<dyn LogDisk>, dir: &std::path::Path) -> Arc<dyn LogDisk> {
    drop(disk);
    StoreDisk::open(dir).expect("store reopens")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn on_the_store_vote_committed_purge_and_cut_survive_reopen() {
    let dir = temp("reopen");
    let disk = StoreDisk::open(&dir).unwrap();
    survives_reopen(disk, |d| restart(d, &dir)).await;
    // The same again after a second restart (recovery settled what it dropped).
    let disk = restart(StoreDisk::open(&dir).unwrap(), &dir);
    let mut log = GroupLog::open(3, disk);
    let read = log.try_get_log_entries(0..100).await.unwrap();
    assert_eq!(
        read,
        vec![normal(1, 3, 1), normal(2, 4, 2), normal(2, 5, 3)]
    );
    drop(log);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn a_failed_write_fails_the_append_and_leaves_no_torn_entry() {
    let dir = temp("torn");
    let disk = StoreDisk::open(&dir).unwrap();
    let mut log = GroupLog::open(5, disk.clone());
    log.blocking_append([blank(1, 1), normal(1, 2, 1)])
        .await
        .unwrap();
    // Half the next write reaches the file, then the disk is full: the store cuts it
    // back and the append is answered with an error (openraft stops the group).
    disk.store
        .faults()
        .writes
        .store(1, std::sync::atomic::Ordering::Relaxed);
    let failed = log
        .blocking_append([normal(1, 3, 2), normal(1, 4, 3)])
        .await;
    assert!(failed.is_err(), "a cut write is not flushed: {failed:?}");
    drop(log);
    let mut again = GroupLog::open(5, restart(disk, &dir));
    let read = again.try_get_log_entries(0..100).await.unwrap();
    assert_eq!(read, vec![blank(1, 1), normal(1, 2, 1)]);
    drop(again);
    let _ = std::fs::remove_dir_all(&dir);
}

/// A classic persistent message and two groups' entries sent while the writer is held
/// are written as one batch: one fdatasync covers all of them.
#[test]
fn one_sync_covers_classic_messages_and_two_groups_entries() {
    let dir = temp("onesync");
    let disk = StoreDisk::open(&dir).unwrap();
    let syncs = || disk.store.io().figures().sync.count;
    let (tx, rx) = std::sync::mpsc::channel::<&str>();
    let before = syncs();
    {
        let _held = disk.store.hold_writer();
        let classic = crate::store::StoredMessage {
            exchange: "amq.direct".into(),
            routing_key: "k".into(),
            properties: bytes::Bytes::new(),
            body: bytes::Bytes::from_static(b"classic"),
        };
        let t = tx.clone();
        let done = crate::store::Done::new(move |id| {
            t.send(if id.is_some() { "classic" } else { "nack" })
                .unwrap()
        });
        disk.store
            .append(classic, vec![crate::store::queue_key("/", "q")], Some(done));
        for group in [1, 2] {
            let t = tx.clone();
            let entries = vec![blank(1, 1), normal(1, 2, 1)];
            disk.append(
                group,
                entries,
                Box::new(move |r| t.send(if r.is_ok() { "raft" } else { "failed" }).unwrap()),
            );
        }
    }
    let mut answers: Vec<&str> = (0..3).map(|_| rx.recv().unwrap()).collect();
    answers.sort_unstable();
    assert_eq!(answers, ["classic", "raft", "raft"]);
    assert_eq!(syncs() - before, 1, "one fdatasync for the whole batch");
    drop(disk);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_vote_is_synced_before_it_returns_committed_is_not() {
    let disk = MemDisk::new();
    let mut log = GroupLog::open(1, disk.clone());
    log.save_vote(&Vote::new(1, 2)).await.unwrap();
    assert_eq!(disk.syncs(), 1);
    log.save_committed(Some(log_id(1, 1))).await.unwrap();
    assert_eq!(disk.syncs(), 1, "committed rides the next sync");
    log.blocking_append([blank(1, 1)]).await.unwrap();
    assert_eq!(disk.syncs(), 2);
}

#[test]
fn raft_state_round_trips_and_refuses_damage() {
    let mut vote = Vote::new(9, 3);
    vote.committed = true;
    let states = [
        RaftState::default(),
        RaftState {
            vote: Some(vote),
            committed: Some(log_id(9, 120)),
            purged: Some(log_id(4, 64)),
        },
        RaftState {
            vote: Some(Vote::new(1, 1)),
            committed: None,
            purged: Some(log_id(0, 0)),
        },
    ];
    for state in states {
        let mut b = Vec::new();
        state.encode(&mut b);
        assert_eq!(b.len(), RAFT_STATE_LEN);
        assert_eq!(RaftState::decode(&b), Some(state));
        assert_eq!(RaftState::decode(&b[1..]), None);
        let mut bad = b.clone();
        bad[16] = 2;
        assert_eq!(RaftState::decode(&bad), None);
    }
}

#[test]
fn payloads_round_trip_and_garbage_is_an_error() {
    for e in [blank(1, 1), normal(3, 2, 17), membership(4, 3)] {
        let bytes = encode_payload(&e.payload);
        assert_eq!(decode_payload(e.log_id, &bytes).unwrap(), e);
    }
    assert!(decode_payload(log_id(1, 1), &[0xff, 0xff, 0xff]).is_err());
    assert!(decode_payload(log_id(1, 1), &[]).is_err());
}

/// Appends `per_group` entries to `group`, one at a time as openraft does (the next
/// once the previous is durable), then sends on `finished`.
fn append_chain(
    disk: Arc<StoreDisk>,
    group: GroupId,
    index: u64,
    per_group: u64,
    finished: std::sync::mpsc::Sender<()>,
) {
    let next = disk.clone();
    let entries = vec![normal(1, index, index)];
    disk.append(
        group,
        entries,
        Box::new(move |r| {
            r.expect("durable");
            if index == per_group {
                let _ = finished.send(());
            } else {
                append_chain(next, group, index + 1, per_group, finished);
            }
        }),
    );
}

/// Entries per second through the store when every group has one append in flight
/// (openraft's leader waits for each flush), and the entries one fdatasync covers.
/// `cargo test --release --lib -- --ignored --nocapture bench_raft_appends`
#[test]
#[ignore]
fn bench_raft_appends() {
    for groups in [1u64, 16, 256] {
        let dir = temp(&format!("bench-{groups}"));
        let disk = StoreDisk::open(&dir).unwrap();
        let per_group = (20_000 / groups).max(200);
        let (tx, rx) = std::sync::mpsc::channel();
        let syncs = disk.store.io().figures().sync.count;
        let start = std::time::Instant::now();
        for g in 1..=groups {
            append_chain(disk.clone(), g, 1, per_group, tx.clone());
        }
        for _ in 0..groups {
            rx.recv().unwrap();
        }
        let secs = start.elapsed().as_secs_f64();
        let syncs = disk.store.io().figures().sync.count - syncs;
        let total = groups * per_group;
        println!(
            "{groups} groups x {per_group} entries: {:.0} entries/s, {syncs} syncs, {:.1} entries per sync",
            total as f64 / secs,
            total as f64 / syncs.max(1) as f64
        );
        drop(disk);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
