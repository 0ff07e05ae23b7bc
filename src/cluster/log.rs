//! The Raft log of one group, as openraft sees it: [`GroupLog`] implements
//! `RaftLogStorage` and `RaftLogReader` (storage-v2) for one group; every group of a node
//! shares one [`LogDisk`], the durable side (doc 3.4: the message store, so that one
//! fdatasync covers classic messages and every group's entries).
//!
//! `GroupLog` keeps the group's live entries, vote, committed and purged ids in memory
//! and answers every read from there; the disk only makes them durable and gives them
//! back at start ([`LogDisk::recover`]). `append` returns at once: the disk calls back
//! after the sync that covers the entries, and only then does openraft hear that they are
//! flushed (`LogFlushed::log_io_completed`), which is what Raft's safety rests on.
//!
//! [`StoreDisk`] is the disk on warren's message store (`stored`). [`MemDisk`] is an
//! in-memory one: durable for as long as the value lives, so state machine tests can
//! reopen a group from it as a restart would, without files.
//!
//! The encodings the store's records will carry are here too, so both sides agree:
//! [`encode_payload`]/[`decode_payload`] (an entry's payload, postcard) and
//! [`RaftState::encode`]/[`RaftState::decode`] (vote, committed, purged; fixed layout).

use super::{GroupId, NodeId, Tc};
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{
    CommittedLeaderId, Entry, EntryPayload, LogId, RaftLogReader, StorageError, StorageIOError,
    Vote,
};
use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::io;
use std::ops::RangeBounds;
use std::sync::{Arc, Mutex, MutexGuard};

/// What a group's log holds besides its entries; durable as one record, the latest wins
/// (doc 3.4's `RaftState`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RaftState {
    /// The last vote saved (synced before openraft goes on).
    pub vote: Option<Vote<NodeId>>,
    /// The last committed id openraft reported (not synced on its own).
    pub committed: Option<LogId<NodeId>>,
    /// The last entry removed by `purge`: openraft needs its term after a restart, and the
    /// entries that remain cannot tell it.
    pub purged: Option<LogId<NodeId>>,
}

/// Bytes of an encoded [`RaftState`].
pub const RAFT_STATE_LEN: usize = 8 + 8 + 1 + 2 * (1 + 8 + 8 + 8);

impl RaftState {
    /// Fixed layout, little-endian: vote term u64 | vote node u64 | vote committed u8 |
    /// committed (present u8 | index u64 | term u64 | node u64) | purged (the same).
    pub fn encode(&self, out: &mut Vec<u8>) {
        let vote = self.vote.unwrap_or_default();
        out.extend_from_slice(&vote.leader_id.term.to_le_bytes());
        out.extend_from_slice(&vote.leader_id.node_id.to_le_bytes());
        out.push(u8::from(vote.committed));
        for id in [&self.committed, &self.purged] {
            out.push(u8::from(id.is_some()));
            let id = id.unwrap_or_default();
            for n in [id.index, id.leader_id.term, id.leader_id.node_id] {
                out.extend_from_slice(&n.to_le_bytes());
            }
        }
    }

    /// The inverse of `encode`; `None` if `b` is not `RAFT_STATE_LEN` bytes or a flag is
    /// neither 0 nor 1 (a damaged record is skipped, never trusted).
    pub fn decode(b: &[u8]) -> Option<RaftState> {
        if b.len() != RAFT_STATE_LEN {
            return None;
        }
        let u64_at = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().unwrap_or([0; 8]));
        let flag = |at: usize| match b[at] {
            0 => Some(false),
            1 => Some(true),
            _ => None,
        };
        let mut vote = Vote::new(u64_at(0), u64_at(8));
        vote.committed = flag(16)?;
        // Nothing saved reads as openraft's default vote (term 0, node 0): the same as
        // none, which is what a fresh log answers.
        let vote = (vote != Vote::default()).then_some(vote);
        let log_id = |at: usize| -> Option<Option<LogId<NodeId>>> {
            let present = flag(at)?;
            let (index, term, node) = (u64_at(at + 1), u64_at(at + 9), u64_at(at + 17));
            Some(present.then(|| LogId::new(CommittedLeaderId::new(term, node), index)))
        };
        Some(RaftState {
            vote,
            committed: log_id(17)?,
            purged: log_id(42)?,
        })
    }
}

/// An entry's payload as a `RaftEntry` record stores it (postcard). The log id is not
/// in it: the record's fixed fields hold index and term.
pub fn encode_payload(payload: &EntryPayload<Tc>) -> Vec<u8> {
    // Serialising our own types into a Vec cannot fail (no maps with non-string keys,
    // no unbounded recursion); an empty payload would decode as an error, not as data.
    postcard::to_allocvec(payload).unwrap_or_default()
}

/// The inverse of `encode_payload`, with the log id from the record's fields.
pub fn decode_payload(log_id: LogId<NodeId>, bytes: &[u8]) -> io::Result<Entry<Tc>> {
    let payload = postcard::from_bytes(bytes)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
    Ok(Entry { log_id, payload })
}

/// Called by the disk once a write is durable (`Ok`) or has failed.
pub type Durable = Box<dyn FnOnce(io::Result<()>) + Send>;

/// What a group recovers from the disk at start.
#[derive(Clone, Debug, Default)]
pub struct RecoveredLog {
    /// The live entries, in index order.
    pub entries: Vec<Entry<Tc>>,
    /// The latest state record.
    pub state: RaftState,
}

/// The durable side of every group's log on a node. Its calls never block on I/O: they
/// hand the work over and report through `Durable` callbacks.
pub trait LogDisk: Send + Sync + 'static {
    /// Writes `entries` of `group` (consecutive indexes, after the group's last) and
    /// calls `done` after the sync that covers them.
    fn append(&self, group: GroupId, entries: Vec<Entry<Tc>>, done: Durable);

    /// Records the group's vote, committed and purged ids (the latest wins). With `done`
    /// the write is synced before it is called; without, it rides the next sync.
    fn save_state(&self, group: GroupId, state: RaftState, done: Option<Durable>);

    /// Entries of `group` from index `from` on are gone (a conflicting suffix). Durable
    /// with the next sync, which comes before any later append of the group completes.
    fn cut(&self, group: GroupId, from: u64);

    /// Entries of `group` up to index `up_to` are no longer needed by the log (a
    /// snapshot covers them). Durable with the next sync.
    fn purge(&self, group: GroupId, up_to: u64);

    /// What `group` holds on disk: read once, before the group's `GroupLog` exists.
    fn recover(&self, group: GroupId) -> RecoveredLog;
}

/// In-memory state of one group's log.
#[derive(Debug, Default)]
struct Live {
    entries: BTreeMap<u64, Entry<Tc>>,
    state: RaftState,
}

/// The log of one group, for openraft (`Raft::new` takes it). Cheap to clone: openraft's
/// reader is another handle on the same state.
#[derive(Clone)]
pub struct GroupLog {
    group: GroupId,
    disk: Arc<dyn LogDisk>,
    live: Arc<Mutex<Live>>,
}

impl GroupLog {
    /// The log of `group`, as `disk` holds it.
    pub fn open(group: GroupId, disk: Arc<dyn LogDisk>) -> GroupLog {
        let rec = disk.recover(group);
        let live = Live {
            entries: rec
                .entries
                .into_iter()
                .map(|e| (e.log_id.index, e))
                .collect(),
            state: rec.state,
        };
        GroupLog {
            group,
            disk,
            live: Arc::new(Mutex::new(live)),
        }
    }

    /// The group this log belongs to.
    pub fn group(&self) -> GroupId {
        self.group
    }

    fn live(&self) -> MutexGuard<'_, Live> {
        // Plain data, consistent after every statement: usable after a panic elsewhere.
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Saves the state changed by `change`; with `sync`, waits until it is durable.
    async fn save_state(&self, change: impl FnOnce(&mut RaftState), sync: bool) -> io::Result<()> {
        let state = {
            let mut live = self.live();
            change(&mut live.state);
            live.state.clone()
        };
        if !sync {
            self.disk.save_state(self.group, state, None);
            return Ok(());
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let done: Durable = Box::new(move |r| {
            let _ = tx.send(r);
        });
        self.disk.save_state(self.group, state, Some(done));
        rx.await
            .unwrap_or_else(|_| Err(io::Error::other("raft log: the disk went away")))
    }
}

impl RaftLogReader<Tc> for GroupLog {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry<Tc>>, StorageError<NodeId>> {
        Ok(self
            .live()
            .entries
            .range(range)
            .map(|(_, e)| e.clone())
            .collect())
    }
}

impl RaftLogStorage<Tc> for GroupLog {
    type LogReader = GroupLog;

    async fn get_log_state(&mut self) -> Result<LogState<Tc>, StorageError<NodeId>> {
        let live = self.live();
        let last_purged_log_id = live.state.purged;
        let last = live.entries.last_key_value().map(|(_, e)| e.log_id);
        Ok(LogState {
            last_purged_log_id,
            last_log_id: last.or(last_purged_log_id),
        })
    }

    async fn get_log_reader(&mut self) -> GroupLog {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError<NodeId>> {
        let vote = *vote;
        self.save_state(|s| s.vote = Some(vote), true)
            .await
            .map_err(|e| StorageIOError::write_vote(&e).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError<NodeId>> {
        Ok(self.live().state.vote)
    }

    /// Not synced on its own: losing it in a crash only means re-applying a few entries,
    /// which the machines tolerate (doc 3.4).
    async fn save_committed(
        &mut self,
        committed: Option<LogId<NodeId>>,
    ) -> Result<(), StorageError<NodeId>> {
        self.save_state(|s| s.committed = committed, false)
            .await
            .map_err(|e| StorageIOError::write(&e).into())
    }

    async fn read_committed(&mut self) -> Result<Option<LogId<NodeId>>, StorageError<NodeId>> {
        Ok(self.live().state.committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<Tc>,
    ) -> Result<(), StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<Tc>> + Send,
        I::IntoIter: Send,
    {
        let entries: Vec<Entry<Tc>> = entries.into_iter().collect();
        {
            let mut live = self.live();
            for e in &entries {
                live.entries.insert(e.log_id.index, e.clone());
            }
        }
        self.disk.append(
            self.group,
            entries,
            Box::new(move |r| callback.log_io_completed(r)),
        );
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        self.live().entries.split_off(&log_id.index);
        self.disk.cut(self.group, log_id.index);
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<NodeId>) -> Result<(), StorageError<NodeId>> {
        {
            let mut live = self.live();
            let rest = live.entries.split_off(&(log_id.index + 1));
            live.entries = rest;
        }
        // The purged id first: a crash between the two leaves entries that recovery
        // drops as purged, never a log whose first entry has no known predecessor.
        self.save_state(|s| s.purged = Some(log_id), false)
            .await
            .map_err(|e| StorageError::from(StorageIOError::write_logs(&e)))?;
        self.disk.purge(self.group, log_id.index);
        Ok(())
    }
}

/// The in-memory [`LogDisk`]: everything is durable at once, for as long as it lives.
/// Reopening a group from the same `MemDisk` is a restart without a crash; it counts the
/// syncs its callers asked for (`syncs`).
#[derive(Default)]
pub struct MemDisk {
    groups: Mutex<HashMap<GroupId, RecoveredLog>>,
    syncs: std::sync::atomic::AtomicU64,
}

impl MemDisk {
    /// An empty disk, to share between the groups of one node.
    pub fn new() -> Arc<MemDisk> {
        Arc::default()
    }

    /// Writes asked to be synced (appends and synced state saves).
    pub fn syncs(&self) -> u64 {
        self.syncs.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn with<T>(&self, group: GroupId, f: impl FnOnce(&mut RecoveredLog) -> T) -> T {
        let mut groups = self.groups.lock().unwrap_or_else(|e| e.into_inner());
        f(groups.entry(group).or_default())
    }

    fn synced(&self, done: Durable) {
        self.syncs
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        done(Ok(()));
    }
}

impl LogDisk for MemDisk {
    fn append(&self, group: GroupId, entries: Vec<Entry<Tc>>, done: Durable) {
        self.with(group, |g| g.entries.extend(entries));
        self.synced(done);
    }

    fn save_state(&self, group: GroupId, state: RaftState, done: Option<Durable>) {
        self.with(group, |g| g.state = state);
        if let Some(done) = done {
            self.synced(done);
        }
    }

    fn cut(&self, group: GroupId, from: u64) {
        self.with(group, |g| g.entries.retain(|e| e.log_id.index < from));
    }

    fn purge(&self, group: GroupId, up_to: u64) {
        self.with(group, |g| g.entries.retain(|e| e.log_id.index > up_to));
    }

    fn recover(&self, group: GroupId) -> RecoveredLog {
        let mut rec = self.with(group, |g| g.clone());
        // As the store's recovery will: entries a purge covers are gone even if the
        // purge itself was not recorded before the crash.
        let purged = rec.state.purged.map(|p| p.index);
        rec.entries
            .retain(|e| purged.is_none_or(|p| e.log_id.index > p));
        rec
    }
}

pub(crate) mod stored;
pub use stored::StoreDisk;

#[cfg(test)]
mod tests;
