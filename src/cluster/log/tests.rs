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

#[tokio::test]
async fn vote_committed_purge_and_cut_survive_reopen() {
    let disk = MemDisk::new();
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
    // Another group on the same disk saw none of it.
    let mut other = GroupLog::open(4, disk);
    assert_eq!(other.get_log_state().await.unwrap().last_log_id, None);
    assert_eq!(other.read_vote().await.unwrap(), None);
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
