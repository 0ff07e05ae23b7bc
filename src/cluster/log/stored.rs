//! [`StoreDisk`]: the [`LogDisk`] on warren's message store, so that one fdatasync of the
//! store's writer covers classic persistent messages and every group's entries and
//! votes in the same batch (doc 3.4).
//!
//! A first step on the way to doc 3.4's own record kinds: an entry or a state is written
//! as an ordinary message record held by a reserved holder key that no `queue_key` can
//! equal (those start with a digit): `"\u{1}log:<group>"` holds a group's entries,
//! `"\u{1}st:<group>"` its latest state record. So the store's group commit, holders,
//! segment deletion, torn-tail handling and recovery serve the log unchanged: a purge is
//! a `drop_queue_up_to` of the log holder, a cut acks the entries it removes, a new state
//! record drops the older ones.
//!
//! An entry record: properties = raft index u64 | term u64 | leader node u64
//! (little-endian), body = [`encode_payload`]. A state record: body =
//! [`RaftState::encode`]. Exchange and routing key are empty.

use super::{decode_payload, encode_payload, Durable, LogDisk, RaftState, RecoveredLog};
use crate::cluster::{GroupId, Tc};
use crate::store::{Done, Recovered, StoreHandle, StoredMessage};
use bytes::Bytes;
use openraft::{CommittedLeaderId, Entry, LogId};
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

/// The holder of a group's entries.
fn log_key(group: GroupId) -> Arc<str> {
    Arc::from(format!("\u{1}log:{group}"))
}

/// The holder of a group's latest state record.
fn state_key(group: GroupId) -> Arc<str> {
    Arc::from(format!("\u{1}st:{group}"))
}

/// Which holder `key` is, if it is one of ours.
fn parse_key(key: &str) -> Option<(Holder, GroupId)> {
    let rest = key.strip_prefix('\u{1}')?;
    if let Some(g) = rest.strip_prefix("log:") {
        return Some((Holder::Log, g.parse().ok()?));
    }
    Some((Holder::State, rest.strip_prefix("st:")?.parse().ok()?))
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Holder {
    Log,
    State,
}

/// Where a group's records are in the store.
#[derive(Default)]
struct Ids {
    /// Raft index -> store id of its live entry. Store ids grow with the index: entries
    /// are appended in index order, and a cut removes everything above it first.
    entries: BTreeMap<u64, u64>,
}

/// The message store as every group's log disk.
pub struct StoreDisk {
    pub(crate) store: StoreHandle,
    ids: Mutex<HashMap<GroupId, Ids>>,
    /// What recovery found, taken by each group's first `recover`.
    recovered: Mutex<HashMap<GroupId, RecoveredLog>>,
}

impl StoreDisk {
    /// Opens the message store in `data_dir` for the raft log alone (the broker's own
    /// start-up will build it from its store handle with [`StoreDisk::new`] instead).
    pub fn open(data_dir: &Path) -> io::Result<Arc<StoreDisk>> {
        let (store, recovered) = StoreHandle::open(data_dir)?;
        Ok(StoreDisk::new(store, recovered))
    }

    /// The raft log on `store`, with what its recovery found. Reads every record the
    /// raft holders still hold; classic queues' records are not for it (the broker's
    /// recovery, which would stream those, skips the raft holders).
    pub(crate) fn new(store: StoreHandle, recovered: Recovered) -> Arc<StoreDisk> {
        let mut found: HashMap<GroupId, Vec<(u64, Found)>> = HashMap::new();
        recovered.stream(|rec, holders| {
            for &(key, _) in holders {
                let Some((holder, group)) = parse_key(key) else {
                    continue;
                };
                let item = match holder {
                    Holder::Log => decode_entry(rec.properties, rec.body).map(Found::Entry),
                    Holder::State => RaftState::decode(rec.body).map(Found::State),
                };
                match item {
                    Some(item) => found.entry(group).or_default().push((rec.id, item)),
                    None => {
                        tracing::warn!(group, id = rec.id, "raft log: unreadable record skipped")
                    }
                }
            }
        });
        let mut ids = HashMap::new();
        let mut logs = HashMap::new();
        for (group, records) in found {
            let (log, group_ids, stale) = rebuild(records);
            // Records a cut or a purge removed whose settlement a crash lost: settled now.
            let key = log_key(group);
            for id in stale {
                store.ack(&key, id);
            }
            ids.insert(group, group_ids);
            logs.insert(group, log);
        }
        Arc::new(StoreDisk {
            store,
            ids: Mutex::new(ids),
            recovered: Mutex::new(logs),
        })
    }

    fn ids(&self) -> MutexGuard<'_, HashMap<GroupId, Ids>> {
        self.ids.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self, key: &Arc<str>, properties: Bytes, body: Vec<u8>, done: Option<Done>) -> u64 {
        let msg = StoredMessage {
            exchange: String::new(),
            routing_key: String::new(),
            properties,
            body: Bytes::from(body),
        };
        self.store.append(msg, vec![key.clone()], done)
    }
}

/// A record recovery read for a group.
enum Found {
    Entry(Entry<Tc>),
    State(RaftState),
}

/// An entry record's fields back into an entry; `None` if damaged.
fn decode_entry(properties: &[u8], body: &[u8]) -> Option<Entry<Tc>> {
    let head: &[u8; 24] = properties.try_into().ok()?;
    let n = |i: usize| u64::from_le_bytes(head[i * 8..i * 8 + 8].try_into().unwrap_or([0; 8]));
    let log_id = LogId::new(CommittedLeaderId::new(n(1), n(2)), n(0));
    decode_payload(log_id, body).ok()
}

/// A group's log from its records in store-id order: a later entry at index i replaces
/// what was at i and above (an unsynced cut that a crash lost is redone here), the last
/// state wins, and entries a purge covers are gone. Also returns the store ids of the
/// entry records so removed.
fn rebuild(mut records: Vec<(u64, Found)>) -> (RecoveredLog, Ids, Vec<u64>) {
    records.sort_by_key(|(id, _)| *id);
    let mut entries: BTreeMap<u64, (u64, Entry<Tc>)> = BTreeMap::new();
    let mut state = RaftState::default();
    let mut stale = Vec::new();
    for (id, item) in records {
        match item {
            Found::Entry(e) => {
                let cut = entries.split_off(&e.log_id.index);
                stale.extend(cut.into_values().map(|(id, _)| id));
                entries.insert(e.log_id.index, (id, e));
            }
            Found::State(s) => state = s,
        }
    }
    if let Some(p) = state.purged {
        let rest = entries.split_off(&(p.index + 1));
        let purged = std::mem::replace(&mut entries, rest);
        stale.extend(purged.into_values().map(|(id, _)| id));
    }
    let ids = Ids {
        entries: entries.iter().map(|(&i, (id, _))| (i, *id)).collect(),
    };
    let log = RecoveredLog {
        entries: entries.into_values().map(|(_, e)| e).collect(),
        state,
    };
    (log, ids, stale)
}

impl LogDisk for StoreDisk {
    fn append(&self, group: GroupId, entries: Vec<Entry<Tc>>, done: Durable) {
        let key = log_key(group);
        let last = entries.len();
        // The writer syncs in order and fails every batch after a failed one, so the
        // last entry's answer speaks for all of them.
        let mut done = Some(Done::new(move |id| {
            done(id.map(|_| ()).ok_or_else(|| {
                io::Error::other("message store: raft entries not durable (write or sync failed)")
            }))
        }));
        let mut ids = self.ids();
        let group_ids = ids.entry(group).or_default();
        for (n, e) in entries.into_iter().enumerate() {
            let mut head = Vec::with_capacity(24);
            let id = e.log_id;
            for v in [id.index, id.leader_id.term, id.leader_id.node_id] {
                head.extend_from_slice(&v.to_le_bytes());
            }
            let this = if n + 1 == last { done.take() } else { None };
            let sid = self.write(&key, Bytes::from(head), encode_payload(&e.payload), this);
            group_ids.entries.insert(id.index, sid);
        }
        if let Some(done) = done {
            // No entries: nothing to wait for but what was already sent.
            self.store.flush_then(done);
        }
    }

    fn save_state(&self, group: GroupId, state: RaftState, done: Option<Durable>) {
        let mut body = Vec::with_capacity(super::RAFT_STATE_LEN);
        state.encode(&mut body);
        let done = done.map(|done| {
            Done::new(move |id| {
                done(
                    id.map(|_| ())
                        .ok_or_else(|| io::Error::other("message store: raft state not durable")),
                )
            })
        });
        let key = state_key(group);
        // Without a completion the record still rides the next sync: the store syncs a
        // batch holding any message.
        let id = self.write(&key, Bytes::new(), body, done);
        // The older state records go with the same batch or a later one: a crash keeps
        // the newest at worst beside older ones, and recovery takes the newest.
        self.store.drop_queue_up_to(&key, id - 1);
    }

    fn cut(&self, group: GroupId, from: u64) {
        let key = log_key(group);
        let mut ids = self.ids();
        let Some(group_ids) = ids.get_mut(&group) else {
            return;
        };
        for (_, id) in group_ids.entries.split_off(&from) {
            self.store.ack(&key, id);
        }
    }

    fn purge(&self, group: GroupId, up_to: u64) {
        let mut ids = self.ids();
        let Some(group_ids) = ids.get_mut(&group) else {
            return;
        };
        let rest = group_ids.entries.split_off(&(up_to + 1));
        let gone = std::mem::replace(&mut group_ids.entries, rest);
        if let Some((_, &last)) = gone.last_key_value() {
            self.store.drop_queue_up_to(&log_key(group), last);
        }
    }

    fn recover(&self, group: GroupId) -> RecoveredLog {
        let mut recovered = self.recovered.lock().unwrap_or_else(|e| e.into_inner());
        recovered.remove(&group).unwrap_or_default()
    }
}
