//! The state machine of the cluster's group: what applying a log entry does on a node.
//!
//! Every node applies the same entries in the same order. A method entry runs
//! `channel::declare::apply` on the node's own vhost (so exchanges, bindings and quorum
//! queues are the same everywhere, with the same answers); a quorum queue's messages are
//! kept here, per queue, as the log made them (enqueued, settled, returned). The node
//! whose own entries are being applied leads: it serves the quorum queues, so its copy of
//! each queue holds the messages and feeds every node's consumers; when leadership moves,
//! the new leader fills its queues from what this machine holds and the old one empties
//! its own (doc 3.7). Applying never blocks and never waits on a connection.
//!
//! Snapshots (`snapshot`) hold the machine and the shared definitions, so the log before
//! them can be purged and a restarted node starts from the last one.

use super::node::Shared;
use super::{Batch, CmdResult, Command, Meta, NodeId, PeerAddr, Reply, Tc, WireException};
use crate::broker::message::Message;
use crate::broker::queue::{Enqueued, Queue};
use crate::broker::replica::HttpCall;
use crate::codec::method_from_bytes;
use crate::error::{Exception, ReplyCode};
use amq_protocol::protocol::{queue as amqp_queue, AMQPClass};
use bytes::Bytes;
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    Entry, EntryPayload, LogId, SnapshotMeta, StorageError, StorageIOError, StoredMembership,
};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Commands one entry may carry: a message's id is its entry's index times this, plus
/// its place in the entry.
pub const MAX_BATCH: usize = 4096;

mod snapshot;

/// A message of a quorum queue as the log holds it, and how often it went out.
struct Held {
    msg: Message,
    deliveries: u16,
}

/// What the machine holds: the last entry applied, the membership, each proposer's last
/// batch, and the messages of every quorum queue.
pub struct Machine {
    shared: Arc<Shared>,
    last: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, PeerAddr>,
    /// Proposer (node, boot) -> its last applied batch number: a batch resent after a
    /// leader change is applied once.
    proposers: HashMap<(NodeId, u64), u64>,
    /// (vhost, queue) -> messages by id, in log order.
    queues: HashMap<(String, String), BTreeMap<u64, Held>>,
    /// Whether this node's queues serve (its own entries are being applied).
    serving: bool,
    /// Where the current snapshot is written (`<data_dir>/raft`).
    dir: std::path::PathBuf,
    /// Snapshots built so far (their ids).
    built: u64,
    /// The current snapshot's meta, if there is one.
    snapshot: Option<SnapshotMeta<NodeId, PeerAddr>>,
    /// Message bytes applied since the last snapshot was asked for.
    since_snapshot: u64,
}

impl Machine {
    /// The machine of a node whose log and snapshot live in `dir`: what the last
    /// snapshot holds, or empty.
    pub fn new(shared: Arc<Shared>, dir: std::path::PathBuf) -> std::io::Result<Machine> {
        let mut m = Machine {
            shared,
            last: None,
            membership: StoredMembership::default(),
            proposers: HashMap::new(),
            queues: HashMap::new(),
            serving: false,
            dir,
            built: 0,
            snapshot: None,
            since_snapshot: 0,
        };
        if let Some((meta, data)) = m.load()? {
            m.restore(&meta, &data)?;
        }
        Ok(m)
    }

    /// The serving node's copies of its queues become what the machine holds.
    fn refill(&self) {
        if !self.serving {
            return;
        }
        let Some(broker) = self.shared.broker() else {
            return;
        };
        for ((vhost, name), held) in &self.queues {
            let Some(q) = local_queue(&broker, vhost, name) else {
                continue;
            };
            q.drop_replica_copy();
            for (&id, h) in held {
                // The node that served before may have delivered it: redelivered.
                q.refill_one(h.msg.clone(), id, h.deliveries);
            }
            q.dispatch();
        }
    }

    /// Leadership as the log shows it: the entries a node proposed as leader are
    /// applied on every node in the same order, so every node switches at the same entry.
    fn lead(&mut self, leader: NodeId) {
        let serving = leader == self.shared.me;
        if serving == self.serving {
            self.shared.set_leader(leader);
            return;
        }
        self.serving = serving;
        if !serving {
            if let Some(broker) = self.shared.broker() {
                for (vhost, name) in self.queues.keys() {
                    if let Some(q) = local_queue(&broker, vhost, name) {
                        q.drop_replica_copy();
                    }
                }
            }
        }
        self.shared.set_serving(serving, leader);
        self.refill();
    }

    async fn apply_batch(&mut self, index: u64, batch: Batch<Meta>) -> Reply {
        let last = self.proposers.entry(batch.proposer).or_insert(0);
        if batch.seq <= *last {
            return Reply::Duplicate;
        }
        *last = batch.seq;
        let mut results = Vec::with_capacity(batch.cmds.len());
        for (i, cmd) in batch.cmds.into_iter().enumerate() {
            let result = match cmd {
                Meta::Http {
                    method,
                    uri,
                    user,
                    content_type,
                    body,
                } => {
                    let call = HttpCall {
                        method,
                        uri,
                        user,
                        content_type,
                        body,
                    };
                    let answer = self.shared.replay(call).await;
                    self.forget_deleted();
                    CmdResult::Http {
                        status: answer.status,
                        content_type: answer.content_type,
                        body: answer.body,
                    }
                }
                cmd => self.apply_cmd(index * MAX_BATCH as u64 + i as u64, cmd),
            };
            results.push(result);
        }
        Reply::Results(results)
    }

    /// What each queue holds, for the API of a node that does not serve it.
    pub(super) fn publish_counts(&self) {
        let counts = self
            .queues
            .iter()
            .map(|(k, held)| (k.clone(), held.len() as u64))
            .collect();
        *self.shared.counts.lock().unwrap_or_else(|e| e.into_inner()) = counts;
    }

    /// An API write may have deleted quorum queues (or their vhost): their messages go.
    fn forget_deleted(&mut self) {
        let Some(broker) = self.shared.broker() else {
            return;
        };
        self.queues
            .retain(|(vhost, name), _| local_queue(&broker, vhost, name).is_some());
    }

    fn apply_cmd(&mut self, id: u64, cmd: Meta) -> CmdResult {
        let Some(broker) = self.shared.broker() else {
            return CmdResult::Done;
        };
        match cmd {
            Meta::Method {
                vhost,
                method,
                server_named,
            } => self.apply_method(&broker, &vhost, &method, server_named),
            Meta::Enqueue { vhost, queue, msg } => {
                let Some(q) = local_queue(&broker, &vhost, &queue) else {
                    // Deleted after the publish routed to it: nothing to keep.
                    return CmdResult::Enqueued(true);
                };
                self.since_snapshot += msg.body_len() as u64;
                if self.since_snapshot >= super::node::SNAPSHOT_BYTES {
                    self.since_snapshot = 0;
                    self.shared.snapshot_wanted.notify_one();
                }
                let msg = msg.into_message();
                self.queues.entry((vhost, queue)).or_default().insert(
                    id,
                    Held {
                        msg: msg.clone(),
                        deliveries: 0,
                    },
                );
                let enqueued = !self.serving || q.apply_enqueue(msg, id) != Enqueued::Refused;
                CmdResult::Enqueued(enqueued)
            }
            Meta::Settle { vhost, queue, ids } => {
                if let Some(held) = self.queues.get_mut(&(vhost, queue)) {
                    for id in ids {
                        held.remove(&id);
                    }
                }
                CmdResult::Done
            }
            // Replayed by `apply_batch` (it awaits the API).
            Meta::Http { .. } => CmdResult::Done,
            Meta::Returned {
                vhost,
                queue,
                id,
                deliveries,
            } => {
                if let Some(h) = self
                    .queues
                    .get_mut(&(vhost, queue))
                    .and_then(|held| held.get_mut(&id))
                {
                    h.deliveries = h.deliveries.max(deliveries);
                }
                CmdResult::Done
            }
        }
    }

    fn apply_method(
        &mut self,
        broker: &crate::broker::Broker,
        vhost: &str,
        method: &[u8],
        server_named: bool,
    ) -> CmdResult {
        use amqp_queue::AMQPMethod as Q;
        let Some(method) = method_from_bytes(method) else {
            return refused(Exception::internal_error(
                "a replicated method did not decode",
            ));
        };
        let Some(v) = broker.vhost(vhost) else {
            return refused(Exception::new(
                ReplyCode::NotFound,
                format!("no vhost '{vhost}'"),
            ));
        };
        let key = |name: &str| (vhost.to_owned(), name.to_owned());
        let applied = match crate::channel::declare::apply(&v, &method, 0, server_named) {
            Ok(applied) => applied,
            Err(e) => return refused(e),
        };
        let mut reply = applied.reply;
        match (&method, &mut reply) {
            (AMQPClass::Queue(Q::Declare(_)), AMQPClass::Queue(Q::DeclareOk(ok)))
                if applied
                    .queue
                    .as_ref()
                    .is_some_and(|q| q.replica().is_some()) =>
            {
                let held = self.queues.entry(key(ok.queue.as_str())).or_default();
                ok.message_count = held.len() as u32;
            }
            (AMQPClass::Queue(Q::Purge(m)), AMQPClass::Queue(Q::PurgeOk(ok))) => {
                if let Some(held) = self.queues.get_mut(&key(m.queue.as_str())) {
                    ok.message_count = held.len() as u32;
                    held.clear();
                }
            }
            (AMQPClass::Queue(Q::Delete(m)), AMQPClass::Queue(Q::DeleteOk(ok))) => {
                if let Some(held) = self.queues.remove(&key(m.queue.as_str())) {
                    ok.message_count = held.len() as u32;
                }
            }
            _ => {}
        }
        match crate::codec::method_bytes(&reply) {
            Some(bytes) => CmdResult::Reply(Bytes::from(bytes)),
            None => refused(Exception::internal_error("a reply did not encode")),
        }
    }
}

fn refused(e: Exception) -> CmdResult {
    CmdResult::Refused(WireException {
        code: e.code as u16,
        text: e.text,
        class: e.class_id,
        method: e.method_id,
    })
}

/// This node's copy of a quorum queue.
fn local_queue(broker: &crate::broker::Broker, vhost: &str, name: &str) -> Option<Arc<Queue>> {
    broker.vhost(vhost)?.queue(name, 0).ok().filter(|q| {
        q.replica().is_some()
            && crate::broker::arguments::QueueType::of(&q.arguments)
                == crate::broker::arguments::QueueType::Quorum
    })
}

impl RaftStateMachine<Tc> for Machine {
    type SnapshotBuilder = snapshot::Builder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId<NodeId>>, StoredMembership<NodeId, PeerAddr>), StorageError<NodeId>>
    {
        Ok((self.last, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Reply>, StorageError<NodeId>>
    where
        I: IntoIterator<Item = Entry<Tc>> + Send,
        I::IntoIter: Send,
    {
        let mut replies = Vec::new();
        for e in entries {
            self.last = Some(e.log_id);
            self.shared.set_term(e.log_id.leader_id.term);
            self.lead(e.log_id.leader_id.node_id);
            let reply = match e.payload {
                EntryPayload::Blank => Reply::Results(Vec::new()),
                EntryPayload::Membership(m) => {
                    self.membership = StoredMembership::new(Some(e.log_id), m);
                    Reply::Results(Vec::new())
                }
                EntryPayload::Normal(Command::Meta(batch)) => {
                    self.apply_batch(e.log_id.index, batch).await
                }
            };
            replies.push(reply);
        }
        self.publish_counts();
        self.shared.applied(self.last.map_or(0, |l| l.index));
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> snapshot::Builder {
        self.builder()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<super::GroupSnapshot>, StorageError<NodeId>> {
        Ok(Box::default())
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<NodeId, PeerAddr>,
        snapshot: Box<super::GroupSnapshot>,
    ) -> Result<(), StorageError<NodeId>> {
        let error = |e: std::io::Error| StorageIOError::write_snapshot(Some(meta.signature()), &e);
        self.save(meta, &snapshot).map_err(error)?;
        self.restore(meta, &snapshot).map_err(error)?;
        self.shared.applied(self.last.map_or(0, |l| l.index));
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<Tc>>, StorageError<NodeId>> {
        let loaded = self
            .load()
            .map_err(|e| StorageIOError::read_snapshot(None, &e))?;
        Ok(loaded.map(|(meta, data)| Snapshot {
            meta,
            snapshot: Box::new(data),
        }))
    }
}
