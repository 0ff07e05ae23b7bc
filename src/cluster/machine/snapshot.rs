//! Snapshots of the cluster's machine (doc 3.4.1): what it holds at one applied entry,
//! so that the log before it can be purged, a restarted node starts from it instead of
//! the log's beginning, and a node too far behind is sent it whole.
//!
//! An image is postcard: every proposer's last batch, every quorum queue's messages with
//! their delivery counts, and the shared definitions (exchanges, quorum queues and their
//! bindings, users, vhosts, permissions, policies) in RabbitMQ's definitions JSON. The
//! current snapshot lives in `<data_dir>/raft/snapshot` (written whole, fsynced, renamed)
//! and is read back from there when asked for: it is never held in memory beside the
//! messages it copies.

use super::{Held, Machine};
use crate::broker::message::Message;
use crate::broker::Broker;
use crate::cluster::{GroupSnapshot, NodeId, PeerAddr, Tc, WireMessage};
use crate::store::definitions::{Definitions, DestinationType};
use bytes::Bytes;
use openraft::storage::{RaftSnapshotBuilder, Snapshot};
use openraft::{LogId, SnapshotMeta, StorageError, StorageIOError, StoredMembership};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

/// One quorum queue's messages.
#[derive(Serialize, Deserialize)]
struct QueueImage {
    vhost: String,
    queue: String,
    /// (id, deliveries, message)
    messages: Vec<(u64, u16, WireMessage)>,
}

/// The machine at one entry.
#[derive(Serialize, Deserialize)]
struct Image {
    proposers: Vec<((NodeId, u64), u64)>,
    queues: Vec<QueueImage>,
    /// RabbitMQ's definitions JSON of what every node shares.
    definitions: Bytes,
}

/// The snapshot file: its meta and its image.
#[derive(Serialize, Deserialize)]
struct File {
    meta: SnapshotMeta<NodeId, PeerAddr>,
    data: GroupSnapshot,
}

fn io_error(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// The definitions every node shares: all but exclusive queues, streams and classic
/// queues declared before the node joined (and the bindings to them), which stay on their
/// node.
fn shared_definitions(broker: &Broker) -> Definitions {
    let mut defs = broker.export_definitions();
    let quorum = |args: &serde_json::Value| {
        args.get("x-queue-type").and_then(|t| t.as_str()) == Some("quorum")
    };
    defs.queues.retain(|q| quorum(&q.arguments));
    let kept: std::collections::HashSet<(String, String)> = defs
        .queues
        .iter()
        .map(|q| (q.vhost.clone(), q.name.clone()))
        .collect();
    defs.bindings.retain(|b| {
        b.destination_type != DestinationType::Queue
            || kept.contains(&(b.vhost.clone(), b.destination.clone()))
    });
    defs
}

/// A queue's messages as a builder holds them: (vhost, queue, [(id, deliveries, message)]).
type QueueCopy = (String, String, Vec<(u64, u16, Message)>);

/// Takes the machine's state now (cheap: messages are shared), to encode off its task.
pub struct Builder {
    last: Option<LogId<NodeId>>,
    membership: StoredMembership<NodeId, PeerAddr>,
    proposers: Vec<((NodeId, u64), u64)>,
    queues: Vec<QueueCopy>,
    definitions: Option<Definitions>,
    path: PathBuf,
    built: u64,
}

impl Machine {
    pub(super) fn builder(&mut self) -> Builder {
        self.built += 1;
        let queues = self
            .queues
            .iter()
            .map(|((v, q), held)| {
                let msgs = held
                    .iter()
                    .map(|(&id, h)| (id, h.deliveries, h.msg.clone()))
                    .collect();
                (v.clone(), q.clone(), msgs)
            })
            .collect();
        Builder {
            last: self.last,
            membership: self.membership.clone(),
            proposers: self.proposers.iter().map(|(k, v)| (*k, *v)).collect(),
            queues,
            definitions: self.shared.broker().map(|b| shared_definitions(&b)),
            path: self.snapshot_path(),
            built: self.built,
        }
    }

    pub(super) fn snapshot_path(&self) -> PathBuf {
        self.dir.join("snapshot")
    }

    /// Makes the machine what `data` holds as of `meta` (a snapshot received, or the
    /// one on disk at start).
    pub(super) fn restore(
        &mut self,
        meta: &SnapshotMeta<NodeId, PeerAddr>,
        data: &GroupSnapshot,
    ) -> std::io::Result<()> {
        let image: Image = postcard::from_bytes(&data.machine).map_err(io_error)?;
        if let Some(broker) = self.shared.broker() {
            let defs = crate::store::definitions::parse(&image.definitions).map_err(io_error)?;
            if let Err(e) = broker.import_definitions(defs) {
                tracing::warn!(reason = %e.0, "cluster snapshot: definitions not imported");
            }
        }
        self.proposers = image.proposers.into_iter().collect();
        self.queues = HashMap::new();
        for q in image.queues {
            let held: BTreeMap<u64, Held> = q
                .messages
                .into_iter()
                .map(|(id, deliveries, msg)| {
                    let msg = msg.into_message();
                    (id, Held { msg, deliveries })
                })
                .collect();
            self.queues.insert((q.vhost, q.queue), held);
        }
        self.last = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        self.snapshot = Some(meta.clone());
        self.publish_counts();
        // Who led at the snapshot's last entry serves (a leader that restarts keeps its
        // term without a new entry); whoever serves refills its copies from it.
        self.serving = false;
        match meta.last_log_id {
            Some(last) => self.lead(last.leader_id.node_id),
            None => self.refill(),
        }
        Ok(())
    }

    /// Writes a received snapshot as the current one.
    pub(super) fn save(
        &self,
        meta: &SnapshotMeta<NodeId, PeerAddr>,
        data: &GroupSnapshot,
    ) -> std::io::Result<()> {
        let file = File {
            meta: meta.clone(),
            data: data.clone(),
        };
        let bytes = postcard::to_stdvec(&file).map_err(io_error)?;
        std::fs::create_dir_all(&self.dir)?;
        crate::cluster::identity::write_atomic(&self.snapshot_path(), &bytes)
    }

    /// The current snapshot, read from its file.
    pub(super) fn load(
        &self,
    ) -> std::io::Result<Option<(SnapshotMeta<NodeId, PeerAddr>, GroupSnapshot)>> {
        match std::fs::read(self.snapshot_path()) {
            Ok(bytes) => {
                let file: File = postcard::from_bytes(&bytes).map_err(io_error)?;
                Ok(Some((file.meta, file.data)))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }
}

impl RaftSnapshotBuilder<Tc> for Builder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<Tc>, StorageError<NodeId>> {
        let definitions = match &self.definitions {
            Some(d) => Bytes::from(
                serde_json::to_vec(d)
                    .map_err(|e| StorageIOError::read_state_machine(&io_error(e)))?,
            ),
            None => Bytes::from_static(b"{}"),
        };
        let image = Image {
            proposers: std::mem::take(&mut self.proposers),
            queues: std::mem::take(&mut self.queues)
                .into_iter()
                .map(|(vhost, queue, msgs)| QueueImage {
                    vhost,
                    queue,
                    messages: msgs
                        .into_iter()
                        .map(|(id, deliveries, m)| (id, deliveries, WireMessage::of(&m)))
                        .collect(),
                })
                .collect(),
            definitions,
        };
        let machine = postcard::to_stdvec(&image)
            .map_err(|e| StorageIOError::read_state_machine(&io_error(e)))?;
        let meta = SnapshotMeta {
            last_log_id: self.last,
            last_membership: self.membership.clone(),
            snapshot_id: format!("{}-{}", self.last.map_or(0, |l| l.index), self.built),
        };
        let data = GroupSnapshot {
            machine: Bytes::from(machine),
        };
        let file = File {
            meta: meta.clone(),
            data: data.clone(),
        };
        let path = self.path.clone();
        let written = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            let bytes = postcard::to_stdvec(&file).map_err(io_error)?;
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            crate::cluster::identity::write_atomic(&path, &bytes)
        })
        .await
        .map_err(io_error)
        .and_then(|r| r);
        written.map_err(|e| StorageIOError::write_snapshot(Some(meta.signature()), &e))?;
        Ok(Snapshot {
            meta,
            snapshot: Box::new(data),
        })
    }
}
