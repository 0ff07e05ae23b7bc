//! Clustering (issue 17, docs/clustering.md): nodes started with `--peers` share one Raft
//! group (openraft) whose log carries the definitions every node shares (exchanges,
//! bindings, quorum queues) and every quorum queue's messages; the node that leads the
//! group serves the quorum queues (`node`, `machine`, `network`).
//!
//! - [`Tc`], openraft's type config: one for every group (group 0 holds definitions,
//!   one group per quorum queue, doc 3.3).
//! - [`Command`], the payload of a log entry: one [`Batch`] of a proposer's commands
//!   (doc 3.5); [`Reply`], what applying it answers.
//! - [`log`]: the Raft log of a group ([`log::GroupLog`], openraft's `RaftLogStorage`).
//! - [`identity`]: a node's identity at start (peers, cookie, cluster.json, refusals).
//! - [`transport`]: the node-to-node links (frames, HMAC handshake, liveness).

pub mod identity;
pub mod log;
mod machine;
mod network;
pub mod node;
pub mod start;
pub mod transport;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A node of the cluster: its index in the sorted peer list, plus one (doc 3.1). 0 is
/// never a node.
pub type NodeId = u64;

/// A Raft group: [`META`], or a quorum queue's (numbered by the metadata machine, never
/// reused, doc 3.3).
pub type GroupId = u64;

/// The metadata group: definitions, on every node.
pub const META: GroupId = 0;

/// A node as openraft's membership records it: its name (`rabbit@host` style) and the
/// address of its cluster listener (`host:port`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PeerAddr {
    /// The node's name, as the management API and `cluster_status` show it.
    pub name: String,
    /// Its cluster listener, `host:port`.
    pub addr: String,
}

/// How this node takes part in the cluster: who it is, who the others are, the shared
/// secret, and the Raft timers (short ones in tests, doc 5.2).
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    /// This node.
    pub node: NodeId,
    /// Every node, this one included, by id.
    pub peers: Vec<(NodeId, PeerAddr)>,
    /// The cookie's bytes (never sent; doc 3.2).
    pub cookie: Bytes,
    /// The Raft timers of its groups.
    pub timers: Timers,
    /// The transport's ping, liveness and reconnect timers.
    pub link_timers: transport::Timers,
}

/// The Raft timers of every group (doc 3.3: 500 ms heartbeats, 1.5-3 s elections).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timers {
    /// Between a leader's heartbeats.
    pub heartbeat: Duration,
    /// A follower that heard nothing for a random time in this range starts an election.
    pub election_min: Duration,
    /// See `election_min`.
    pub election_max: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Timers {
            heartbeat: Duration::from_millis(500),
            election_min: Duration::from_millis(1500),
            election_max: Duration::from_millis(3000),
        }
    }
}

openraft::declare_raft_types!(
    /// openraft's type config for every group of warren.
    pub Tc:
        D = Command,
        R = Reply,
        NodeId = NodeId,
        Node = PeerAddr,
        Entry = openraft::Entry<Tc>,
        SnapshotData = GroupSnapshot,
        AsyncRuntime = openraft::TokioRuntime,
);

/// The commands of one proposer that one log entry carries (doc 3.5): applied once and
/// in order per proposer, whatever resends a leader change causes.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch<T> {
    /// The proposing node and its boot id (random at each start: a restarted node is a
    /// new proposer).
    pub proposer: (NodeId, u64),
    /// This proposer's batch number in the group, from 1, without gaps.
    pub seq: u64,
    /// The commands, applied in this order.
    pub cmds: Vec<T>,
}

/// A command of the cluster's log: a change of the definitions every node shares, or of
/// a quorum queue's messages (phase 1 keeps both in group 0: see `machine`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Meta {
    /// An exchange or queue method (amq-protocol's encoding of the method, access
    /// already checked on the proposing node), applied to the vhost on every node.
    Method {
        vhost: String,
        method: Bytes,
        /// A queue.declare whose name the broker chose.
        server_named: bool,
    },
    /// A message for a quorum queue.
    Enqueue {
        vhost: String,
        queue: String,
        msg: WireMessage,
    },
    /// Messages that left a quorum queue for good (ids: `Queued::store_id`).
    Settle {
        vhost: String,
        queue: String,
        ids: Vec<u64>,
    },
    /// A management API write, replayed by every node's API (see `broker::replica`).
    Http {
        method: String,
        uri: String,
        user: String,
        content_type: Option<String>,
        body: Bytes,
    },
    /// A message came back from a client: its delivery count.
    Returned {
        vhost: String,
        queue: String,
        id: u64,
        deliveries: u16,
    },
}

/// A message as it crosses between nodes and lives in the log: what routing gave it and
/// its raw properties and body (shared with the message it came from, not copied).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireMessage {
    pub exchange: String,
    pub routing_key: String,
    pub properties: Bytes,
    pub body: Bytes,
}

impl WireMessage {
    /// `msg` on its way out.
    pub fn of(msg: &crate::broker::message::Message) -> WireMessage {
        let (_, body) = msg.shared_parts();
        WireMessage {
            exchange: msg.exchange().to_owned(),
            routing_key: msg.routing_key().to_owned(),
            properties: Bytes::copy_from_slice(msg.properties()),
            body,
        }
    }

    /// The broker's message again.
    pub fn into_message(self) -> crate::broker::message::Message {
        crate::broker::message::Message::with_body(
            &self.exchange,
            &self.routing_key,
            &self.properties,
            self.body,
        )
    }

    /// Body bytes (what a batch and the backlog count).
    pub fn body_len(&self) -> usize {
        self.body.len()
    }
}

/// The application payload of a log entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// One proposer's commands.
    Meta(Batch<Meta>),
}

/// What applying an entry answers to its proposer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Reply {
    /// One result per command of the batch, in order.
    Results(Vec<CmdResult>),
    /// The batch was applied before (an older one than the last two kept).
    Duplicate,
    /// A batch of this proposer is missing before this one: resend from the gap.
    OutOfOrder,
}

/// The result of one command, as the leader's apply found it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CmdResult {
    /// A method's -ok reply (amq-protocol's encoding).
    Reply(Bytes),
    /// A method every node refused (the same exception everywhere).
    Refused(WireException),
    /// The API's answer to a replayed write.
    Http {
        status: u16,
        content_type: Option<String>,
        body: Bytes,
    },
    /// A message went into its queue (false: the queue refused it, x-overflow).
    Enqueued(bool),
    /// Nothing to answer.
    Done,
}

/// An AMQP exception carried between nodes: what a channel on the proposing node sends
/// its client (the same code and text as on a single node).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireException {
    /// The AMQP reply code (404, 406...).
    pub code: u16,
    /// The reply text, exactly as a single node words it.
    pub text: String,
    /// The class id of the method that failed.
    pub class: u16,
    /// Its method id.
    pub method: u16,
}

/// A group's snapshot as openraft passes it around (`generic-snapshot-data`): the
/// state machine without message bodies (doc 3.4.1). The bodies a queue still holds are
/// streamed beside it by the transport (doc 3.4.2), not held here.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupSnapshot {
    /// The machine, serialised by its group kind (definitions JSON for group 0,
    /// postcard of the queue machine otherwise).
    pub machine: Bytes,
}
