//! A cluster node: its Raft group, the transport to its peers, the proposer that carries
//! this node's commands to the leader, and the consumers it serves for other nodes.
//!
//! [`Shared`] is what the broker sees (the queues' `Replica`): a method or a message is
//! proposed and answered when the log commits it; what a queue's copy on a node that does
//! not lead would keep (acks, requeues, consumers) goes to the leader over the transport.
//! [`start`] builds the rest once the broker exists and returns the running [`Node`].
//!
//! Who serves: the node whose own entries the log is applying (see `machine`). Its copy
//! of each quorum queue holds the messages; consumers on other nodes are mirrored there
//! as proxy consumers whose deliveries travel to their node, which hands them to the
//! consumer's channel through its own (empty) copy of the queue. An ack on any node
//! settles the leader's copy, which proposes the settlement to the log.

use super::identity::Identity;
use super::machine::{Machine, MAX_BATCH};
use super::network::{FullSnapshot, Network};
use super::transport::{
    Frame, Incoming, Links, Payload, PeerStates, Transport, TransportConfig, META,
};
use super::{
    Batch, ClusterConfig, CmdResult, Command, Meta, NodeId, PeerAddr, Reply, Tc, Timers,
    WireMessage,
};
use crate::broker::consumer::{
    window_size, ConnectionHandle, Consumer, ConsumerInfo, Credit, Delivery, Outgoing, WRITE_WINDOW,
};
use crate::broker::message::Message;
use crate::broker::queue::{Get, Queue, Queued};
use crate::broker::replica::{
    HttpAnswer, HttpCall, HttpDone, HttpReplayer, MethodDone, NodeInfo, PeerInfos, Replica,
};
use crate::broker::Broker;
use crate::error::{Exception, ReplyCode};
use crate::store::Done;
use amq_protocol::protocol::AMQPClass;
use bytes::Bytes;
use openraft::storage::Snapshot;
use openraft::Raft;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::io;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock, Weak};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

/// How long a proposal may wait for a leader and a majority before its publishers get a
/// nack and its declares an error.
const PROPOSAL_DEADLINE: Duration = Duration::from_secs(10);
/// How long one try of a forwarded proposal waits for the leader's answer.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a definitions change waits for the other nodes to apply it before its
/// answer goes anyway (a node that slow is about to be seen as down).
const APPLIED_WAIT: Duration = Duration::from_secs(2);
/// A peer down longer than this is not waited for by a definitions change.
const DOWN_LONG: Duration = Duration::from_secs(5);
/// Body bytes one entry may carry (besides `MAX_BATCH` commands).
const MAX_BATCH_BYTES: usize = 1 << 20;
/// Entries between snapshots: the log before a snapshot (less the last
/// `KEPT_AFTER_SNAPSHOT` entries) is purged, so the log holds at most about this many
/// entries...
const SNAPSHOT_EVERY: u64 = 5000;
/// ... or about this many message bytes (the log keeps its entries in memory until they
/// are purged: a burst of large messages asks for a snapshot sooner).
pub(super) const SNAPSHOT_BYTES: u64 = 64 << 20;
/// Entries kept behind a snapshot, for a follower a moment behind (up to 1 MiB each).
const KEPT_AFTER_SNAPSHOT: u64 = 32;
/// Proxy connection ids: far above the broker's own connection ids.
const PROXY_IDS: u64 = 1 << 62;

/// What travels between nodes for consumers: mirrored consumers, their deliveries and
/// what their clients settle.
#[derive(Clone, Debug, Serialize, Deserialize)]
enum Mirror {
    /// A consumer on the sender's node: the receiver's queue serves it.
    Consume(Wanted),
    Cancel {
        vhost: String,
        queue: String,
        connection: u64,
        channel: u16,
        tag: String,
    },
    /// A delivery to a mirrored consumer.
    Deliver {
        vhost: String,
        queue: String,
        connection: u64,
        channel: u16,
        tag: String,
        id: u64,
        redelivered: bool,
        deliveries: u16,
        msg: WireMessage,
    },
    /// Deliveries settled for good on the consumer's node.
    Ack {
        vhost: String,
        queue: String,
        ids: Vec<u64>,
    },
    /// The leader's link to the receiver came up: send your consumers again (what went
    /// out while it was down was put back, and its consumers dropped).
    Resend,
    /// Deliveries back to the leader's queue.
    Requeue {
        vhost: String,
        queue: String,
        ids: Vec<u64>,
        redelivered: bool,
    },
}

/// basic.get on the leader's queue for another node.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct GetRequest {
    vhost: String,
    queue: String,
    ack: bool,
}

/// The leader's answer to a `GetRequest`.
#[derive(Clone, Debug, Serialize, Deserialize)]
enum GetAnswer {
    Empty,
    Message {
        id: u64,
        redelivered: bool,
        deliveries: u16,
        remaining: u32,
        msg: WireMessage,
    },
}

/// A publish to a classic queue homed on the receiver.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct PublishRequest {
    /// Answered with `RemotePublished` when not 0 (the publisher waits for a confirm).
    id: u64,
    vhost: String,
    queue: String,
    msg: WireMessage,
}

/// A consumer of a replicated queue (or of a stub of another node's queue) on this node.
#[derive(Clone, Debug, PartialEq, Eq)]
struct LocalConsumer {
    /// The node whose queue serves it: `None` for a quorum queue (its leader).
    home: Option<NodeId>,
    wanted: Wanted,
}

/// A consumer as the node that serves its queue needs to know it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Wanted {
    vhost: String,
    queue: String,
    connection: u64,
    channel: u16,
    tag: String,
    prefetch: u32,
    exclusive: bool,
    priority: i64,
}

/// A delivery the leader sent to another node's consumer (or basic.get), until it is
/// settled.
struct InFlight {
    consumer: Option<Arc<ConsumerInfo>>,
    queue: Arc<Queue>,
    item: Queued,
}

/// The consumers this node serves for other nodes (while it leads).
#[derive(Default)]
struct Proxies {
    /// (node, its connection) -> the proxy connection their deliveries go through.
    connections: HashMap<(NodeId, u64), ConnectionHandle>,
    /// (node, message id) -> the delivery.
    in_flight: HashMap<(NodeId, u64), InFlight>,
    /// Proxy consumers: (node, queue, proxy connection id, channel, tag).
    consumers: Vec<(NodeId, Arc<Queue>, u64, u16, String)>,
}

/// A command and who waits for its outcome.
struct Proposal {
    cmd: Meta,
    done: Answer,
}

enum Answer {
    None,
    Method(MethodDone),
    Confirm(Option<Done>),
    Http(HttpDone),
}

/// The part of a node the broker and the machine share.
pub struct Shared {
    /// Itself, for the tasks its calls start.
    this: Weak<Shared>,
    pub(super) me: NodeId,
    boot: u64,
    peers: Vec<PeerAddr>,
    broker: OnceLock<Weak<Broker>>,
    serving: AtomicBool,
    /// The leader as the log shows it (0: none yet).
    leader: watch::Sender<NodeId>,
    applied: watch::Sender<u64>,
    proposals: mpsc::UnboundedSender<Proposal>,
    proposals_rx: Mutex<Option<mpsc::UnboundedReceiver<Proposal>>>,
    links: OnceLock<Arc<Transport>>,
    /// This node's API, which replays management writes.
    http: OnceLock<HttpReplayer>,
    /// This node's `/api/nodes` entry, for the other nodes' API.
    info: OnceLock<NodeInfo>,
    /// Message bytes proposed and not answered yet.
    backlog: AtomicU64,
    /// The term of the entries applied last (the API's `warren_raft`).
    term: AtomicU64,
    /// The machine applied `SNAPSHOT_BYTES` of messages since the last snapshot.
    pub(super) snapshot_wanted: tokio::sync::Notify,
    /// Ids of deliveries from classic queues homed here to other nodes.
    next_delivery: AtomicU64,
    /// Publishes to classic queues homed elsewhere waiting for their confirm: id ->
    /// (home, confirm).
    publishes: Mutex<HashMap<u64, (NodeId, Done)>>,
    next_publish: AtomicU64,
    /// basic.gets asked of the leader, by (connection, channel): `None` until answered.
    gets: Mutex<HashMap<(u64, u16), Option<Get>>>,
    /// Messages the log holds per quorum queue (vhost, name), as of the last apply.
    pub(super) counts: Mutex<HashMap<(String, String), u64>>,
    local: Mutex<Vec<LocalConsumer>>,
    proxies: Mutex<Proxies>,
    next_proxy: AtomicU64,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("cluster::Shared")
            .field("me", &self.me)
            .finish()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Shared {
    /// A node with this identity, before its broker exists (the broker is built with it
    /// as its queues' `Replica`).
    pub fn new(identity: &Identity) -> Arc<Shared> {
        let (proposals, rx) = mpsc::unbounded_channel();
        Arc::new_cyclic(|this| Shared {
            this: this.clone(),
            me: identity.id,
            boot: rand_u64(),
            peers: identity.peers.clone(),
            broker: OnceLock::new(),
            serving: AtomicBool::new(false),
            leader: watch::Sender::new(0),
            applied: watch::Sender::new(0),
            proposals,
            proposals_rx: Mutex::new(Some(rx)),
            links: OnceLock::new(),
            http: OnceLock::new(),
            info: OnceLock::new(),
            counts: Mutex::new(HashMap::new()),
            gets: Mutex::new(HashMap::new()),
            backlog: AtomicU64::new(0),
            term: AtomicU64::new(0),
            snapshot_wanted: tokio::sync::Notify::new(),
            next_delivery: AtomicU64::new(1 << 63),
            publishes: Mutex::new(HashMap::new()),
            next_publish: AtomicU64::new(1),
            local: Mutex::new(Vec::new()),
            proxies: Mutex::new(Proxies::default()),
            next_proxy: AtomicU64::new(PROXY_IDS),
        })
    }

    fn weak(&self) -> Weak<Shared> {
        self.this.clone()
    }

    pub(super) fn broker(&self) -> Option<Arc<Broker>> {
        self.broker.get()?.upgrade()
    }

    /// Replays a management API write on this node (503 without the API).
    pub(super) async fn replay(&self, call: HttpCall) -> HttpAnswer {
        match self.http.get() {
            Some(replay) => replay(call).await,
            None => HttpAnswer {
                status: 503,
                content_type: None,
                body: Bytes::from_static(b"this node has no management API"),
            },
        }
    }

    /// This node's name.
    pub fn name(&self) -> &str {
        &self.peers[(self.me - 1) as usize].name
    }

    /// Every node's name, by id order.
    pub fn members(&self) -> Vec<String> {
        self.peers.iter().map(|p| p.name.clone()).collect()
    }

    /// The leader's name, once the log has one.
    pub fn leader_name(&self) -> Option<String> {
        let l = *self.leader.borrow();
        self.peers
            .get((l as usize).checked_sub(1)?)
            .map(|p| p.name.clone())
    }

    /// The names of the nodes this one is linked to, itself included.
    pub fn online(&self) -> Vec<String> {
        let links = self.links.get();
        (1..=self.peers.len() as NodeId)
            .filter(|&n| n == self.me || links.is_some_and(|l| l.is_up(n)))
            .map(|n| self.peers[(n - 1) as usize].name.clone())
            .collect()
    }

    /// The machine applied the log up to `index`.
    pub(super) fn applied(&self, index: u64) {
        self.applied.send_replace(index);
    }

    /// The log shows `leader` leading (no change of who serves here).
    pub(super) fn set_leader(&self, leader: NodeId) {
        let changed = self
            .leader
            .send_if_modified(|l| std::mem::replace(l, leader) != leader);
        if changed {
            let name = (leader as usize)
                .checked_sub(1)
                .and_then(|i| self.peers.get(i))
                .map_or("none", |p| p.name.as_str());
            tracing::info!(
                leader = name,
                term = self.term.load(Ordering::Relaxed),
                "cluster: the log's leader changed"
            );
        }
    }

    /// The term of the entries applied last.
    pub(super) fn set_term(&self, term: u64) {
        self.term.store(term, Ordering::Relaxed);
    }

    /// The log's leader changed to `leader`; this node serves if it is the one.
    pub(super) fn set_serving(&self, serving: bool, leader: NodeId) {
        self.serving.store(serving, Ordering::Release);
        self.set_leader(leader);
        if serving {
            // Every node sends its consumers here now.
            for n in (1..=self.peers.len() as NodeId).filter(|&n| n != self.me) {
                self.send(n, &Mirror::Resend);
            }
        }
        if !serving {
            // Another node serves now: what this one served for others of its quorum
            // queues goes (the new leader has every unsettled message); its classic
            // queues keep theirs.
            let gone = {
                let mut p = lock(&self.proxies);
                let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut p.consumers)
                    .into_iter()
                    .partition(|c| c.1.replica().is_some());
                p.consumers = kept;
                p.in_flight.retain(|_, f| f.queue.replica().is_none());
                gone
            };
            for (_, queue, connection, channel, tag) in gone {
                queue.remove_consumer(connection, channel, &tag);
            }
        }
    }

    fn propose(&self, cmd: Meta, done: Answer) {
        self.backlog
            .fetch_add(cmd_bytes(&cmd) as u64, Ordering::Relaxed);
        if let Err(e) = self.proposals.send(Proposal { cmd, done }) {
            // The node is stopping: nobody will answer.
            fail(e.0.done);
        }
    }

    fn send(&self, to: NodeId, m: &Mirror) {
        if let (Some(links), Ok(body)) = (self.links.get(), Payload::encode(m)) {
            links.send(to, Frame::RemoteConsume { body });
        }
    }

    fn leader(&self) -> NodeId {
        *self.leader.borrow()
    }

    /// Waits (at most `APPLIED_WAIT`) until every peer linked now has applied `index`.
    async fn applied_everywhere(&self, index: u64) {
        let Some(links) = self.links.get() else {
            return;
        };
        let deadline = Instant::now() + APPLIED_WAIT;
        let states = links.watch().borrow().clone();
        // A peer down for a while is not waited for; one whose link is only coming up
        // (a cluster starting, a node restarting) is, until the deadline.
        let waited = (1..=self.peers.len() as NodeId).filter(|&n| {
            n != self.me
                && match states.get(&n) {
                    Some(super::transport::PeerState::Down { since }) => {
                        since.elapsed() < DOWN_LONG
                    }
                    _ => true,
                }
        });
        let asks = waited.map(|n| async move {
            while Instant::now() < deadline {
                if links.is_up(n) {
                    let left = deadline.saturating_duration_since(Instant::now());
                    let ask = links.request(n, Frame::MetaApplied { index }, left);
                    if matches!(ask.await, Ok(Frame::MetaApplied { .. })) {
                        return;
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        });
        futures::future::join_all(asks).await;
    }

    /// Sends every consumer of this node to `leader` (it has just become the leader, or
    /// its link came back).
    fn mirror_all(&self, leader: NodeId) {
        let all = lock(&self.local).clone();
        for c in all.iter().filter(|c| c.home.is_none()) {
            self.send(leader, &Mirror::Consume(c.wanted.clone()));
        }
    }

    /// Sends the consumers of queues homed on `home` there again (its link came back).
    fn mirror_home(&self, home: NodeId) {
        let all = lock(&self.local).clone();
        for c in all.iter().filter(|c| c.home == Some(home)) {
            self.send(home, &Mirror::Consume(c.wanted.clone()));
        }
    }

    /// The node whose queue serves a consumer or a settlement: `home`, or the leader.
    fn target(&self, home: Option<NodeId>) -> NodeId {
        home.unwrap_or_else(|| self.leader())
    }

    /// A node's id by its name.
    fn node_of(&self, name: &str) -> Option<NodeId> {
        (1..)
            .zip(&self.peers)
            .find(|(_, p)| p.name == name)
            .map(|(n, _)| n)
    }

    fn send_publish(&self, to: NodeId, req: &PublishRequest) {
        let up = self.links.get().is_some_and(|l| l.is_up(to));
        match Payload::encode(req) {
            Ok(body) if up => {
                if let Some(links) = self.links.get() {
                    links.send(to, Frame::RemotePublish { body });
                }
            }
            // Not sent: a waiting publisher gets its nack now.
            _ => drop(lock(&self.publishes).remove(&req.id)),
        }
    }

    /// The home node answered a publish (`ok`: enqueued, and stored if persistent).
    fn published(&self, id: u64, ok: bool) {
        let done = lock(&self.publishes).remove(&id);
        if let (Some((_, done)), true) = (done, ok) {
            done.complete(1);
        }
    }

    fn forward_ack(&self, to: NodeId, queue: &Queue, id: u64) {
        let m = Mirror::Ack {
            vhost: queue.vhost.clone(),
            queue: queue.name.as_str().to_owned(),
            ids: vec![id],
        };
        self.send(to, &m);
    }

    fn forward_requeue(&self, to: NodeId, queue: &Queue, items: Vec<Queued>, redelivered: bool) {
        let m = Mirror::Requeue {
            vhost: queue.vhost.clone(),
            queue: queue.name.as_str().to_owned(),
            ids: items.iter().map(|i| i.store_id).collect(),
            redelivered,
        };
        self.send(to, &m);
    }

    /// A consumer started here on a queue served by `home` (None: the leader).
    fn add_local(&self, home: Option<NodeId>, queue: &Queue, consumer: &Consumer) {
        if self.is_proxy(consumer.connection.id) {
            return;
        }
        let wanted = Wanted {
            vhost: queue.vhost.clone(),
            queue: queue.name.as_str().to_owned(),
            connection: consumer.connection.id,
            channel: consumer.info.channel,
            tag: consumer.info.tag.as_str().to_owned(),
            prefetch: consumer.info.credit.limit(),
            exclusive: consumer.exclusive,
            priority: consumer.priority,
        };
        if home.is_some() || !self.serves() {
            self.send(self.target(home), &Mirror::Consume(wanted.clone()));
        }
        lock(&self.local).push(LocalConsumer { home, wanted });
    }

    fn remove_local(
        &self,
        home: Option<NodeId>,
        queue: &Queue,
        connection: u64,
        channel: u16,
        tag: &str,
    ) {
        if self.is_proxy(connection) {
            return;
        }
        lock(&self.local).retain(|c| {
            let w = &c.wanted;
            !(w.connection == connection
                && w.channel == channel
                && w.tag == tag
                && w.queue == queue.name.as_str()
                && w.vhost == queue.vhost)
        });
        if home.is_some() || !self.serves() {
            let m = Mirror::Cancel {
                vhost: queue.vhost.clone(),
                queue: queue.name.as_str().to_owned(),
                connection,
                channel,
                tag: tag.to_owned(),
            };
            self.send(self.target(home), &m);
        }
    }

    /// A publish to a classic queue homed here, from another node: enqueued (stored
    /// first if persistent); `answer` gets whether it went in, after the store's sync.
    fn remote_publish(&self, req: PublishRequest, answer: impl FnOnce(bool) + Send + 'static) {
        let Some(q) = self
            .broker()
            .and_then(|b| shared_queue(&b, &req.vhost, &req.queue))
        else {
            // Deleted meanwhile: as a publish routed to a queue that went.
            answer(true);
            return;
        };
        let msg = req.msg.into_message();
        let targets = [q.clone()];
        if crate::broker::persist::will_store(&msg, &targets) {
            let (tx, rx) = tokio::sync::oneshot::channel();
            let done = Done::new(move |id| {
                let _ = tx.send(id.is_some());
            });
            let id = crate::broker::persist::store_message(&msg, &targets, Some(done));
            let enqueued = q.publish(msg, id, 1) != crate::broker::queue::Enqueued::Refused;
            tokio::spawn(async move {
                answer(enqueued && rx.await.unwrap_or(false));
            });
        } else {
            answer(q.publish(msg, 0, 1) != crate::broker::queue::Enqueued::Refused);
        }
    }

    /// A frame about consumers from another node.
    fn mirrored(self: &Arc<Self>, from: NodeId, m: Mirror) {
        let Some(broker) = self.broker() else { return };
        match m {
            Mirror::Consume(Wanted {
                vhost,
                queue,
                connection,
                channel,
                tag,
                prefetch,
                exclusive,
                priority,
            }) => {
                let Some(q) = shared_queue(&broker, &vhost, &queue) else {
                    return;
                };
                let handle = self.proxy(from, connection);
                if q.find_consumer(handle.id, channel, &tag).is_some() {
                    return;
                }
                let prefetch = if prefetch == 0 {
                    WRITE_WINDOW
                } else {
                    prefetch
                };
                let info = ConsumerInfo::new(
                    tag.as_str().into(),
                    channel,
                    false,
                    prefetch,
                    Arc::new(Credit::new(0)),
                );
                let consumer = Consumer {
                    info: Arc::new(info),
                    connection: handle.clone(),
                    exclusive,
                    priority,
                };
                lock(&self.proxies)
                    .consumers
                    .push((from, q.clone(), handle.id, channel, tag));
                if let Err(e) = q.add_consumer(consumer) {
                    tracing::warn!(error = %e.text, "a mirrored consumer was refused");
                }
            }
            Mirror::Cancel {
                vhost,
                queue,
                connection,
                channel,
                tag,
            } => {
                let Some(q) = shared_queue(&broker, &vhost, &queue) else {
                    return;
                };
                let id = lock(&self.proxies)
                    .connections
                    .get(&(from, connection))
                    .map(|h| h.id);
                if let Some(id) = id {
                    q.remove_consumer(id, channel, &tag);
                    lock(&self.proxies)
                        .consumers
                        .retain(|c| !(c.2 == id && c.3 == channel && c.4 == tag));
                }
            }
            Mirror::Deliver {
                vhost,
                queue,
                connection,
                channel,
                tag,
                id,
                redelivered,
                deliveries,
                msg,
            } => {
                let Some(q) = shared_queue(&broker, &vhost, &queue) else {
                    return;
                };
                let item = remote_item(id, redelivered, deliveries, msg);
                let Some((handle, info)) = q.find_consumer(connection, channel, &tag) else {
                    self.send(
                        from,
                        &Mirror::Requeue {
                            vhost,
                            queue,
                            ids: vec![id],
                            redelivered: false,
                        },
                    );
                    return;
                };
                // The leader gave the credit; counted here too, as the connection gives
                // it back on this consumer when it writes and settles.
                info.window.add(1);
                info.sent(window_size(&item));
                if !info.no_ack {
                    info.credit.add(1);
                    info.channel_credit.add(1);
                }
                let delivery = Delivery {
                    consumer: info,
                    queue: q.clone(),
                    item,
                };
                if let Err(failed) = handle.outbox.send(Outgoing::Deliver(delivery)) {
                    if let Outgoing::Deliver(d) = failed.0 {
                        q.unsent(d.item, false);
                    }
                }
            }
            Mirror::Ack { vhost, queue, ids } => {
                let mut unknown = Vec::new();
                for id in ids {
                    let entry = lock(&self.proxies).in_flight.remove(&(from, id));
                    match entry {
                        Some(f) => {
                            if let Some(c) = &f.consumer {
                                c.settled();
                            }
                            f.queue.acked(&f.item);
                            f.queue.dispatch();
                        }
                        None => unknown.push(id),
                    }
                }
                let quorum = shared_queue(&broker, &vhost, &queue)
                    .is_some_and(|q| q.replica().is_some_and(|r| r.serves()));
                if !unknown.is_empty() && quorum {
                    // Delivered by an earlier leader: settled in the log all the same.
                    self.propose(
                        Meta::Settle {
                            vhost,
                            queue,
                            ids: unknown,
                        },
                        Answer::None,
                    );
                }
            }
            Mirror::Resend => {
                if from == self.leader() && !self.serves() {
                    self.mirror_all(from);
                }
                self.mirror_home(from);
            }
            Mirror::Requeue {
                ids, redelivered, ..
            } => {
                for id in ids {
                    let entry = lock(&self.proxies).in_flight.remove(&(from, id));
                    if let Some(f) = entry {
                        if let Some(c) = &f.consumer {
                            c.settled();
                        }
                        if redelivered {
                            f.queue.requeue([f.item]);
                        } else {
                            f.queue.unsent(f.item, true);
                        }
                    }
                }
            }
        }
    }

    /// The proxy connection for `node`'s connection `connection`, started if new: its
    /// deliveries go to that node.
    fn proxy(self: &Arc<Self>, node: NodeId, connection: u64) -> ConnectionHandle {
        let mut p = lock(&self.proxies);
        if let Some(h) = p.connections.get(&(node, connection)) {
            return h.clone();
        }
        let (tx, mut rx) = mpsc::unbounded_channel();
        let id = self.next_proxy.fetch_add(1, Ordering::Relaxed);
        let handle = ConnectionHandle::new(id, tx);
        p.connections.insert((node, connection), handle.clone());
        drop(p);
        let me = Arc::downgrade(self);
        tokio::spawn(async move {
            while let Some(out) = rx.recv().await {
                let Some(shared) = me.upgrade() else { return };
                let Outgoing::Deliver(d) = out else { continue };
                // A quorum queue's messages have their log id; a classic queue's get one
                // for the trip (a transient message has no store id).
                let id = shared.delivery_id(&d.queue, &d.item);
                let m = Mirror::Deliver {
                    vhost: d.queue.vhost.clone(),
                    queue: d.queue.name.as_str().to_owned(),
                    connection,
                    channel: d.consumer.channel,
                    tag: d.consumer.tag.as_str().to_owned(),
                    id,
                    redelivered: d.item.redelivered,
                    deliveries: d.item.deliveries,
                    msg: WireMessage::of(&d.item.msg),
                };
                d.consumer.written(window_size(&d.item));
                if !shared.links.get().is_some_and(|l| l.is_up(node)) {
                    // Nowhere to go: back in the queue, and the node's consumers stop
                    // until its link is up again (then it sends them again: `Resend`).
                    d.consumer.settled();
                    d.queue.unsent(d.item, true);
                    shared.node_down(node);
                    continue;
                }
                lock(&shared.proxies).in_flight.insert(
                    (node, id),
                    InFlight {
                        consumer: Some(d.consumer),
                        queue: d.queue,
                        item: d.item,
                    },
                );
                shared.send(node, &m);
            }
        });
        handle
    }

    /// `node` went down: its consumers stop, and what they had not settled goes back.
    fn node_down(&self, node: NodeId) {
        let (consumers, in_flight) = {
            let mut p = lock(&self.proxies);
            let (gone, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut p.consumers)
                .into_iter()
                .partition(|c| c.0 == node);
            p.consumers = kept;
            p.connections.retain(|k, _| k.0 != node);
            let keys: Vec<_> = p
                .in_flight
                .keys()
                .filter(|k| k.0 == node)
                .copied()
                .collect();
            let flights: Vec<InFlight> =
                keys.iter().filter_map(|k| p.in_flight.remove(k)).collect();
            (gone, flights)
        };
        for (_, queue, connection, channel, tag) in consumers {
            queue.remove_consumer(connection, channel, &tag);
        }
        // Publishes it had not answered: their publishers get a nack.
        lock(&self.publishes).retain(|_, (home, _)| *home != node);
        for f in in_flight {
            if let Some(c) = &f.consumer {
                c.settled();
            }
            f.queue.requeue([f.item]);
        }
    }

    /// basic.get for another node on this node's copy (the leader's).
    fn remote_get(&self, from: NodeId, req: GetRequest) -> GetAnswer {
        let Some(broker) = self.broker() else {
            return GetAnswer::Empty;
        };
        let Some(q) = shared_queue(&broker, &req.vhost, &req.queue) else {
            return GetAnswer::Empty;
        };
        if q.replica().is_some_and(|r| !r.serves()) {
            return GetAnswer::Empty;
        }
        // No page-file wait for a remote getter: its head is read back for the next one.
        let (tx, _rx) = mpsc::unbounded_channel();
        let getter = ConnectionHandle::new(self.next_proxy.fetch_add(1, Ordering::Relaxed), tx);
        let (item, remaining) = match q.get(&getter, 0, req.ack) {
            crate::broker::queue::Get::Message(item, remaining) => (item, remaining),
            _ => return GetAnswer::Empty,
        };
        let id = self.delivery_id(&q, &item);
        let answer = GetAnswer::Message {
            id,
            redelivered: item.redelivered,
            deliveries: item.deliveries,
            remaining,
            msg: WireMessage::of(&item.msg),
        };
        if req.ack {
            lock(&self.proxies).in_flight.insert(
                (from, id),
                InFlight {
                    consumer: None,
                    queue: q,
                    item,
                },
            );
        } else {
            q.settled(&item);
        }
        answer
    }

    /// The id a delivery to another node travels with: a quorum queue's message keeps its
    /// log id; a classic queue's gets one for the trip (a transient one has no store id).
    fn delivery_id(&self, queue: &Queue, item: &Queued) -> u64 {
        match queue.replica() {
            Some(_) => item.store_id,
            None => self.next_delivery.fetch_add(1, Ordering::Relaxed),
        }
    }

    fn is_proxy(&self, connection: u64) -> bool {
        connection >= PROXY_IDS
    }
}

/// A delivery from another node's queue, as this node's copy hands it to a channel (it
/// costs this node's memory accounting nothing: the other node counts it).
fn remote_item(id: u64, redelivered: bool, deliveries: u16, msg: WireMessage) -> Queued {
    Queued {
        seq: id,
        msg: msg.into_message(),
        redelivered,
        store_id: id,
        expires_at: 0,
        priority: 0,
        cost: 0,
        deliveries,
    }
}

/// A queue other nodes reach here: a quorum queue (or a stub of a classic queue homed
/// elsewhere), or a classic queue homed on this node.
fn shared_queue(broker: &Broker, vhost: &str, queue: &str) -> Option<Arc<Queue>> {
    let q = broker.vhost(vhost)?.queue(queue, 0).ok()?;
    let home = crate::broker::arguments::text_arg(&q.arguments, crate::broker::replica::HOME_ARG);
    (q.replica().is_some() || home.is_some()).then_some(q)
}

fn rand_u64() -> u64 {
    let mut b = [0u8; 8];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    u64::from_be_bytes(b)
}

/// A proposal that cannot be made: its publisher gets a nack, its channel an error.
fn fail(done: Answer) {
    match done {
        Answer::Method(done) => done(Err(Exception::new(
            ReplyCode::InternalError,
            "timed out waiting for a majority of the cluster",
        ))),
        Answer::Confirm(done) => drop(done),
        Answer::Http(done) => done(None),
        Answer::None => {}
    }
}

impl Replica for Shared {
    fn propose_http(&self, call: HttpCall, done: HttpDone) {
        let cmd = Meta::Http {
            method: call.method,
            uri: call.uri,
            user: call.user,
            content_type: call.content_type,
            body: call.body,
        };
        self.propose(cmd, Answer::Http(done));
    }

    fn set_http(&self, replayer: HttpReplayer) {
        let _ = self.http.set(replayer);
    }

    fn propose_method(
        &self,
        vhost: &str,
        method: &AMQPClass,
        server_named: bool,
        done: MethodDone,
    ) {
        let Some(bytes) = crate::codec::method_bytes(method) else {
            done(Err(Exception::internal_error("the method did not encode")));
            return;
        };
        self.propose(
            Meta::Method {
                vhost: vhost.to_owned(),
                method: Bytes::from(bytes),
                server_named,
            },
            Answer::Method(done),
        );
    }

    fn enqueue(&self, queue: &Queue, msg: &Message, done: Option<Done>) {
        queue.stats.add(crate::stats::Key::Publish, 1);
        self.propose(
            Meta::Enqueue {
                vhost: queue.vhost.clone(),
                queue: queue.name.as_str().to_owned(),
                msg: WireMessage::of(msg),
            },
            Answer::Confirm(done),
        );
    }

    fn settled(&self, queue: &Queue, id: u64) {
        if self.serves() {
            let cmd = Meta::Settle {
                vhost: queue.vhost.clone(),
                queue: queue.name.as_str().to_owned(),
                ids: vec![id],
            };
            self.propose(cmd, Answer::None);
        } else {
            self.forward_ack(self.leader(), queue, id);
        }
    }

    fn returned(&self, queue: &Queue, id: u64, deliveries: u16) {
        let cmd = Meta::Returned {
            vhost: queue.vhost.clone(),
            queue: queue.name.as_str().to_owned(),
            id,
            deliveries,
        };
        self.propose(cmd, Answer::None);
    }

    fn serves(&self) -> bool {
        self.serving.load(Ordering::Acquire)
    }

    fn backlog(&self) -> u64 {
        self.backlog.load(Ordering::Relaxed)
    }

    fn held(&self, queue: &Queue) -> u64 {
        let key = (queue.vhost.clone(), queue.name.as_str().to_owned());
        lock(&self.counts).get(&key).copied().unwrap_or(0)
    }

    fn placement(&self) -> (Option<String>, Vec<String>, Vec<String>) {
        (self.leader_name(), self.members(), self.online())
    }

    fn term(&self) -> u64 {
        self.term.load(Ordering::Relaxed)
    }

    fn put_back(&self, queue: &Queue, items: Vec<Queued>, redelivered: bool) {
        self.forward_requeue(self.leader(), queue, items, redelivered);
    }

    fn get(&self, queue: &Queue, getter: &ConnectionHandle, channel: u16, ack: bool) -> Get {
        self.ask_get(self.leader(), queue, getter, channel, ack)
    }

    fn node_name(&self) -> String {
        self.name().to_owned()
    }

    fn set_node_info(&self, info: NodeInfo) {
        let _ = self.info.set(info);
    }

    fn peer_infos(&self) -> PeerInfos {
        let links = self.links.get().cloned();
        let peers: Vec<(NodeId, String)> = (1..)
            .zip(&self.peers)
            .filter(|(n, _)| *n != self.me)
            .map(|(n, p)| (n, p.name.clone()))
            .collect();
        Box::pin(async move {
            let asks = peers.into_iter().map(|(n, name)| {
                let links = links.clone();
                async move {
                    let Some(links) = links.filter(|l| l.is_up(n)) else {
                        return (name, false, None);
                    };
                    let answer = links
                        .request(n, Frame::NodeInfo, Duration::from_secs(1))
                        .await;
                    match answer {
                        Ok(Frame::NodeInfoReply { info }) => (name, true, Some(info.0)),
                        _ => (name, true, None),
                    }
                }
            });
            futures::future::join_all(asks).await
        })
    }

    fn stub(&self, home: &str) -> Option<Arc<dyn Replica>> {
        let home = self.node_of(home)?;
        let shared = self.this.upgrade()?;
        Some(Arc::new(Stub { shared, home }))
    }

    fn consumer_added(&self, queue: &Queue, consumer: &Consumer) {
        self.add_local(None, queue, consumer);
    }

    fn consumer_removed(&self, queue: &Queue, connection: u64, channel: u16, tag: &str) {
        self.remove_local(None, queue, connection, channel, tag);
    }
}

impl Shared {
    /// basic.get on a node that does not hold the queue: `to`'s copy is asked.
    fn ask_get(
        &self,
        to: NodeId,
        queue: &Queue,
        getter: &ConnectionHandle,
        channel: u16,
        ack: bool,
    ) -> Get {
        let key = (getter.id, channel);
        {
            let mut gets = lock(&self.gets);
            match gets.remove(&key) {
                Some(Some(answer)) => return answer,
                Some(None) => {
                    // Asked already; the answer is on its way.
                    gets.insert(key, None);
                    return Get::Wait;
                }
                None => {
                    gets.insert(key, None);
                }
            }
        }
        let req = GetRequest {
            vhost: queue.vhost.clone(),
            queue: queue.name.as_str().to_owned(),
            ack,
        };
        let (leader, links, me) = (to, self.links.get().cloned(), self.weak());
        let getter = getter.clone();
        tokio::spawn(async move {
            let answer = match (links, Payload::encode(&req)) {
                (Some(links), Ok(body)) => links
                    .request(leader, Frame::RemoteGet { body }, FORWARD_TIMEOUT)
                    .await
                    .ok(),
                _ => None,
            };
            let got = match answer {
                Some(Frame::RemoteGet { body }) => body.decode::<GetAnswer>().ok(),
                _ => None,
            };
            let get = match got {
                Some(GetAnswer::Message {
                    id,
                    redelivered,
                    deliveries,
                    remaining,
                    msg,
                }) => Get::Message(remote_item(id, redelivered, deliveries, msg), remaining),
                _ => Get::Empty,
            };
            if let Some(me) = me.upgrade() {
                lock(&me.gets).insert(key, Some(get));
            }
            let _ = getter.outbox.send(Outgoing::GetReady { channel });
        });
        Get::Wait
    }
}

/// A classic queue homed on another node, as this node's copy reaches it: publishes,
/// consumers, gets, acks and requeues go to the home node's queue.
#[derive(Debug)]
struct Stub {
    shared: Arc<Shared>,
    home: NodeId,
}

impl Replica for Stub {
    fn propose_http(&self, call: HttpCall, done: HttpDone) {
        self.shared.propose_http(call, done);
    }

    fn set_http(&self, replayer: HttpReplayer) {
        self.shared.set_http(replayer);
    }

    fn propose_method(
        &self,
        vhost: &str,
        method: &AMQPClass,
        server_named: bool,
        done: MethodDone,
    ) {
        self.shared
            .propose_method(vhost, method, server_named, done);
    }

    fn enqueue(&self, queue: &Queue, msg: &Message, done: Option<Done>) {
        queue.stats.add(crate::stats::Key::Publish, 1);
        let mut req = PublishRequest {
            id: 0,
            vhost: queue.vhost.clone(),
            queue: queue.name.as_str().to_owned(),
            msg: WireMessage::of(msg),
        };
        if let Some(done) = done {
            req.id = self.shared.next_publish.fetch_add(1, Ordering::Relaxed);
            lock(&self.shared.publishes).insert(req.id, (self.home, done));
        }
        // One-way and in order: the home answers confirmed ones with `RemotePublished`.
        self.shared.send_publish(self.home, &req);
    }

    fn settled(&self, queue: &Queue, id: u64) {
        self.shared.forward_ack(self.home, queue, id);
    }

    fn returned(&self, _queue: &Queue, _id: u64, _deliveries: u16) {}

    fn serves(&self) -> bool {
        false
    }

    fn node_name(&self) -> String {
        self.shared.node_name()
    }

    fn stub(&self, home: &str) -> Option<Arc<dyn Replica>> {
        self.shared.stub(home)
    }

    fn set_node_info(&self, info: NodeInfo) {
        self.shared.set_node_info(info);
    }

    fn peer_infos(&self) -> PeerInfos {
        self.shared.peer_infos()
    }

    fn backlog(&self) -> u64 {
        0
    }

    fn held(&self, _queue: &Queue) -> u64 {
        0
    }

    fn term(&self) -> u64 {
        0
    }

    fn placement(&self) -> (Option<String>, Vec<String>, Vec<String>) {
        let home = self.shared.peers[(self.home - 1) as usize].name.clone();
        let online = self.shared.online();
        let up = online.contains(&home);
        (
            Some(home.clone()),
            vec![home.clone()],
            if up { vec![home] } else { Vec::new() },
        )
    }

    fn put_back(&self, queue: &Queue, items: Vec<Queued>, redelivered: bool) {
        self.shared
            .forward_requeue(self.home, queue, items, redelivered);
    }

    fn get(&self, queue: &Queue, getter: &ConnectionHandle, channel: u16, ack: bool) -> Get {
        self.shared.ask_get(self.home, queue, getter, channel, ack)
    }

    fn consumer_added(&self, queue: &Queue, consumer: &Consumer) {
        self.shared.add_local(Some(self.home), queue, consumer);
    }

    fn consumer_removed(&self, queue: &Queue, connection: u64, channel: u16, tag: &str) {
        self.shared
            .remove_local(Some(self.home), queue, connection, channel, tag);
    }
}

/// A running cluster node.
pub struct Node {
    pub shared: Arc<Shared>,
    raft: Raft<Tc>,
    transport: Arc<Transport>,
    tasks: Vec<JoinHandle<()>>,
}

impl Node {
    /// The Raft handle (tests elect and wait on it).
    pub fn raft(&self) -> &Raft<Tc> {
        &self.raft
    }

    /// Stops the group and the transport: peers see this node go down.
    pub async fn shutdown(mut self) {
        for t in &self.tasks {
            t.abort();
        }
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
        let _ = self.raft.shutdown().await;
        self.transport.stop().await;
        // What it served for others holds queues (and through them the store): let go
        // now, so that the broker's data directory is free once the broker is.
        let served = std::mem::take(&mut *lock(&self.shared.proxies));
        drop(served);
        lock(&self.shared.local).clear();
    }
}

/// Raft timers and the like for a cluster's group.
fn raft_config(timers: Timers) -> io::Result<Arc<openraft::Config>> {
    let ms = |d: Duration| d.as_millis() as u64;
    let config = openraft::Config {
        cluster_name: "warren".into(),
        heartbeat_interval: ms(timers.heartbeat),
        election_timeout_min: ms(timers.election_min),
        election_timeout_max: ms(timers.election_max),
        snapshot_policy: openraft::SnapshotPolicy::LogsSinceLast(SNAPSHOT_EVERY),
        max_in_snapshot_log_to_keep: KEPT_AFTER_SNAPSHOT,
        max_payload_entries: 64,
        ..Default::default()
    };
    config
        .validate()
        .map(Arc::new)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))
}

/// Starts this node's group once its broker exists: the transport on its own address
/// (or `listener`, bound before), the log in `<data_dir>/raft`, the machine; the first
/// node initializes the group on its first start. Returns once a leader is known.
pub async fn start(
    shared: Arc<Shared>,
    broker: &Arc<Broker>,
    identity: &Identity,
    cluster: &ClusterConfig,
    max_message_size: u64,
    listener: Option<tokio::net::TcpListener>,
) -> io::Result<Node> {
    let _ = shared.broker.set(Arc::downgrade(broker));
    let mut tc = TransportConfig::new(identity, max_message_size);
    tc.timers = cluster.link_timers;
    tc.cookie = cluster.cookie.to_vec();
    let (transport, inbox) = match listener {
        Some(l) => Transport::start(tc, l)?,
        None => Transport::bind(tc).await?,
    };
    let links = Arc::new(transport);
    let _ = shared.links.set(links.clone());
    let disk = super::log::stored::StoreDisk::open(&identity.data_dir.join("raft"))?;
    let log = super::log::GroupLog::open(META, disk);
    let network = Network {
        me: shared.me,
        links: links.clone(),
    };
    let machine = Machine::new(shared.clone(), identity.data_dir.join("raft"))?;
    let raft = Raft::new(
        shared.me,
        raft_config(cluster.timers)?,
        network,
        log,
        machine,
    )
    .await
    .map_err(|e| io::Error::other(e.to_string()))?;
    let mut tasks = Vec::new();
    tasks.push(tokio::spawn(serve(shared.clone(), raft.clone(), inbox)));
    let rx = lock(&shared.proposals_rx).take();
    if let Some(rx) = rx {
        tasks.push(tokio::spawn(propose_loop(shared.clone(), raft.clone(), rx)));
    }
    tasks.push(tokio::spawn(watch_peers(shared.clone(), links.watch())));
    tasks.push(tokio::spawn({
        let (shared, raft) = (shared.clone(), raft.clone());
        async move {
            loop {
                shared.snapshot_wanted.notified().await;
                let _ = raft.trigger().snapshot().await;
            }
        }
    }));
    if shared.me == 1 && !raft.is_initialized().await.unwrap_or(true) {
        let members: BTreeMap<NodeId, PeerAddr> =
            (1..).zip(identity.peers.iter().cloned()).collect();
        if let Err(e) = raft.initialize(members).await {
            tracing::warn!(error = %e, "cluster: initialize");
        }
    }
    let node = Node {
        shared: shared.clone(),
        raft,
        transport: links,
        tasks,
    };
    wait_for_leader(&node).await;
    Ok(node)
}

/// Waits until the log has a leader and this node applied what it had committed when
/// the wait began, logging every 10 s who it is waiting for.
async fn wait_for_leader(node: &Node) {
    let mut metrics = node.raft.metrics();
    let started = Instant::now();
    let mut logged = Instant::now();
    loop {
        let ready = {
            let m = metrics.borrow();
            m.current_leader.is_some()
        };
        if ready {
            break;
        }
        if logged.elapsed() >= Duration::from_secs(10) {
            logged = Instant::now();
            tracing::warn!(
                waited_s = started.elapsed().as_secs(),
                peers = ?node.shared.members(),
                online = ?node.shared.online(),
                "waiting for a majority of the cluster to start"
            );
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), metrics.changed()).await;
    }
    // This node's own apply must have reached the leader's blank entry, so that the
    // definitions replayed before it serves clients...
    let mut leader = node.shared.leader.subscribe();
    let _ = tokio::time::timeout(Duration::from_secs(30), leader.wait_for(|l| *l != 0)).await;
    // ... and what the leader had applied when asked: a client's first publish must not
    // find a queue missing that the cluster declared before this node was up.
    let l = node.raft.metrics().borrow().current_leader;
    if let Some(l) = l.filter(|&l| l != node.shared.me) {
        let ask = node
            .transport
            .request(l, Frame::ReadIndex { group: META }, FORWARD_TIMEOUT);
        if let Ok(Frame::ReadIndexReply { rpc, .. }) = ask.await {
            if let Ok(index) = rpc.decode::<u64>() {
                let mut applied = node.shared.applied.subscribe();
                let _ = tokio::time::timeout(
                    Duration::from_secs(30),
                    applied.wait_for(|&a| a >= index),
                )
                .await;
            }
        }
    }
}

/// A Raft RPC from a peer, on a task of its own: decoded, run on this node's Raft, and
/// its result (openraft's own error included) sent back in `answer`'s frame.
fn rpc_call<Req, Resp, Fut>(
    rpc: Payload,
    reply: Option<super::transport::Reply>,
    answer: impl FnOnce(Payload) -> Frame + Send + 'static,
    run: impl FnOnce(Req) -> Fut + Send + 'static,
) where
    Req: serde::de::DeserializeOwned + Send + 'static,
    Resp: Serialize,
    Fut: std::future::Future<Output = Resp> + Send,
{
    tokio::spawn(async move {
        let result = match rpc.decode::<Req>() {
            Ok(req) => Payload::encode(&run(req).await),
            Err(e) => Err(e),
        };
        if let (Some(reply), Ok(rpc)) = (reply, result) {
            reply.send(answer(rpc));
        }
    });
}

/// Frames from peers: Raft's RPCs, forwarded proposals and mirrored consumers.
async fn serve(shared: Arc<Shared>, raft: Raft<Tc>, mut inbox: mpsc::Receiver<Incoming>) {
    while let Some(incoming) = inbox.recv().await {
        let Incoming { from, frame, reply } = incoming;
        match frame {
            Frame::AppendEntries { group, rpc } => {
                let raft = raft.clone();
                let answer = move |rpc| Frame::AppendEntriesReply { group, rpc };
                rpc_call(rpc, reply, answer, |req| async move {
                    raft.append_entries(req).await
                });
            }
            Frame::Vote { group, rpc } => {
                let raft = raft.clone();
                let answer = move |rpc| Frame::VoteReply { group, rpc };
                rpc_call(
                    rpc,
                    reply,
                    answer,
                    |req| async move { raft.vote(req).await },
                );
            }
            Frame::SnapshotBegin { group, rpc } => {
                let raft = raft.clone();
                tokio::spawn(async move {
                    let Ok(s) = rpc.decode::<FullSnapshot>() else {
                        return;
                    };
                    let snapshot = Snapshot {
                        meta: s.meta,
                        snapshot: Box::new(s.data),
                    };
                    let result = raft
                        .install_full_snapshot(s.vote, snapshot)
                        .await
                        .map_err(openraft::error::RaftError::<NodeId>::Fatal);
                    if let (Some(reply), Ok(rpc)) = (reply, Payload::encode(&result)) {
                        reply.send(Frame::SnapshotReply { group, rpc });
                    }
                });
            }
            Frame::Propose { group, cmd } => {
                let raft = raft.clone();
                tokio::spawn(async move {
                    let result: Result<(u64, Reply), String> = match cmd.decode::<Batch<Meta>>() {
                        Ok(batch) => match raft.client_write(Command::Meta(batch)).await {
                            Ok(r) => Ok((r.log_id.index, r.data)),
                            Err(e) => Err(e.to_string()),
                        },
                        Err(e) => Err(e.to_string()),
                    };
                    if let (Some(reply), Ok(result)) = (reply, Payload::encode(&result)) {
                        reply.send(Frame::ProposeResult { group, result });
                    }
                });
            }
            Frame::RemotePublish { body } => match body.decode::<PublishRequest>() {
                Ok(req) => {
                    let (id, back) = (req.id, shared.clone());
                    shared.remote_publish(req, move |ok| {
                        if id != 0 {
                            if let (Some(links), Ok(body)) =
                                (back.links.get(), Payload::encode(&(id, ok)))
                            {
                                links.send(from, Frame::RemotePublished { body });
                            }
                        }
                    });
                }
                Err(e) => tracing::warn!(from, error = %e, "cluster: bad publish frame"),
            },
            Frame::RemotePublished { body } => match body.decode::<(u64, bool)>() {
                Ok((id, ok)) => shared.published(id, ok),
                Err(e) => tracing::warn!(from, error = %e, "cluster: bad publish answer"),
            },
            Frame::NodeInfo => {
                let info = shared.info.get().and_then(|f| f());
                if let (Some(reply), Some(info)) = (reply, info) {
                    reply.send(Frame::NodeInfoReply {
                        info: Payload(info),
                    });
                }
            }
            Frame::RemoteGet { body } => {
                let answer = match body.decode::<GetRequest>() {
                    Ok(req) => shared.remote_get(from, req),
                    Err(_) => GetAnswer::Empty,
                };
                if let (Some(reply), Ok(body)) = (reply, Payload::encode(&answer)) {
                    reply.send(Frame::RemoteGet { body });
                }
            }
            Frame::ReadIndex { group } => {
                // What this node applied: a node starting waits until it has as much.
                let index = *shared.applied.borrow();
                if let (Some(reply), Ok(rpc)) = (reply, Payload::encode(&index)) {
                    reply.send(Frame::ReadIndexReply { group, rpc });
                }
            }
            Frame::MetaApplied { index } => {
                // Answered once this node applied `index` (or its wait is over).
                let mut applied = shared.applied.subscribe();
                tokio::spawn(async move {
                    let _ =
                        tokio::time::timeout(APPLIED_WAIT, applied.wait_for(|&a| a >= index)).await;
                    if let Some(reply) = reply {
                        reply.send(Frame::MetaApplied { index });
                    }
                });
            }
            Frame::RemoteConsume { body } => match body.decode::<Mirror>() {
                Ok(m) => shared.mirrored(from, m),
                Err(e) => tracing::warn!(from, error = %e, "cluster: bad consumer frame"),
            },
            // Nothing else is asked of a node in phase 1: a request gets `Failed`.
            _ => drop(reply),
        }
    }
}

/// Peers going down and up: the leader stops serving a node that went down; a node
/// sends its consumers again to a leader it is linked to anew.
async fn watch_peers(shared: Arc<Shared>, mut peers: watch::Receiver<PeerStates>) {
    let mut leader = shared.leader.subscribe();
    let mut was: PeerStates = peers.borrow().clone();
    let mut mirrored_to: Option<(NodeId, Instant)> = None;
    loop {
        let now: PeerStates = peers.borrow_and_update().clone();
        for (&n, state) in &now {
            let before = was.get(&n).is_some_and(|s| s.is_up());
            if before && !state.is_up() {
                shared.node_down(n);
            }
            if !before && state.is_up() {
                // A peer linked anew may have restarted: it gets this node's consumers of
                // its queues again, and is asked for its consumers of this node's.
                shared.mirror_home(n);
                shared.send(n, &Mirror::Resend);
            }
        }
        was = now.clone();
        let l = *leader.borrow_and_update();
        if l != 0 && l != shared.me && !shared.serves() {
            // Mirrored again on every new link to the leader (a link up since another
            // instant is a new connection: the leader may have dropped our consumers).
            let link = now.get(&l).and_then(|s| match s {
                super::transport::PeerState::Up { since, .. } => Some(*since),
                _ => None,
            });
            if let Some(b) = link {
                if mirrored_to != Some((l, b)) {
                    shared.mirror_all(l);
                    mirrored_to = Some((l, b));
                }
            } else {
                mirrored_to = None;
            }
        } else {
            mirrored_to = None;
        }
        tokio::select! {
            r = peers.changed() => if r.is_err() { return },
            r = leader.changed() => if r.is_err() { return },
        }
    }
}

/// This node's proposals: batched, one batch in flight, to the leader (itself or over
/// the transport), answered once this node applied the batch.
async fn propose_loop(
    shared: Arc<Shared>,
    raft: Raft<Tc>,
    mut rx: mpsc::UnboundedReceiver<Proposal>,
) {
    let mut seq = 0u64;
    let mut applied = shared.applied.subscribe();
    while let Some(first) = rx.recv().await {
        let mut cmds: Vec<Meta> = Vec::new();
        let mut answers: Vec<Answer> = Vec::new();
        let mut bytes = 0usize;
        let mut next = Some(first);
        while let Some(p) = next.take() {
            bytes += cmd_bytes(&p.cmd);
            push(&mut cmds, &mut answers, p);
            if cmds.len() < MAX_BATCH && bytes < MAX_BATCH_BYTES {
                next = rx.try_recv().ok();
            }
        }
        seq += 1;
        let batch = Batch {
            proposer: (shared.me, shared.boot),
            seq,
            cmds,
        };
        let shared_change = batch
            .cmds
            .iter()
            .any(|c| matches!(c, Meta::Method { .. } | Meta::Http { .. }));
        let outcome = submit(&shared, &raft, batch).await;
        match outcome {
            Some((index, reply)) => {
                let _ = tokio::time::timeout(PROPOSAL_DEADLINE, applied.wait_for(|&a| a >= index))
                    .await;
                if shared_change {
                    // Definitions: visible on every node that is up when the answer goes.
                    shared.applied_everywhere(index).await;
                }
                answer(answers, reply, index);
            }
            None => answers.into_iter().for_each(fail),
        }
        shared.backlog.fetch_sub(bytes as u64, Ordering::Relaxed);
    }
}

/// What a command counts in a batch's size and in the backlog.
fn cmd_bytes(cmd: &Meta) -> usize {
    match cmd {
        Meta::Enqueue { msg, .. } => msg.body_len(),
        Meta::Http { body, .. } => body.len(),
        _ => 64,
    }
}

/// Adds a proposal to a batch: settlements of one queue in a row become one command.
fn push(cmds: &mut Vec<Meta>, answers: &mut Vec<Answer>, p: Proposal) {
    if let (
        Some(Meta::Settle {
            vhost: v1,
            queue: q1,
            ids,
        }),
        Meta::Settle {
            vhost,
            queue,
            ids: more,
        },
        Answer::None,
    ) = (cmds.last_mut(), &p.cmd, &p.done)
    {
        if *v1 == *vhost && *q1 == *queue {
            ids.extend_from_slice(more);
            return;
        }
    }
    cmds.push(p.cmd);
    answers.push(p.done);
}

/// Proposes `batch` until a leader commits it or the deadline passes.
async fn submit(shared: &Shared, raft: &Raft<Tc>, batch: Batch<Meta>) -> Option<(u64, Reply)> {
    let deadline = Instant::now() + PROPOSAL_DEADLINE;
    let payload = Payload::encode(&batch).ok()?;
    let mut command = Some(Command::Meta(batch));
    while Instant::now() < deadline {
        let leader = raft.metrics().borrow().current_leader;
        match leader {
            Some(l) if l == shared.me => {
                let cmd = command.clone()?;
                // A leader cut off from its majority never commits: bounded by the
                // deadline (a batch that commits after all is applied once, `Duplicate`).
                let left = deadline.saturating_duration_since(Instant::now());
                match tokio::time::timeout(left, raft.client_write(cmd)).await {
                    Ok(Ok(r)) => return Some((r.log_id.index, r.data)),
                    Ok(Err(e)) => tracing::debug!(error = %e, "cluster: proposal refused"),
                    Err(_) => return None,
                }
            }
            Some(l) => {
                let links = shared.links.get()?;
                let frame = Frame::Propose {
                    group: META,
                    cmd: payload.clone(),
                };
                if let Ok(Frame::ProposeResult { result, .. }) =
                    links.request(l, frame, FORWARD_TIMEOUT).await
                {
                    match result.decode::<Result<(u64, Reply), String>>() {
                        Ok(Ok(done)) => return Some(done),
                        Ok(Err(e)) => tracing::debug!(error = %e, "cluster: leader refused"),
                        Err(_) => {}
                    }
                }
            }
            None => {}
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        command = command.take();
    }
    None
}

/// Answers each proposal of a committed batch.
fn answer(answers: Vec<Answer>, reply: Reply, index: u64) {
    let results = match reply {
        Reply::Results(r) => r,
        // Applied before (a resend after a leader change): every part was done.
        _ => Vec::new(),
    };
    let mut results = results.into_iter();
    for a in answers {
        let r = results.next();
        match a {
            Answer::None => {}
            Answer::Confirm(done) => match r {
                Some(CmdResult::Enqueued(false)) => drop(done),
                _ => {
                    if let Some(d) = done {
                        d.complete(index.max(1));
                    }
                }
            },
            Answer::Http(done) => done(match r {
                Some(CmdResult::Http {
                    status,
                    content_type,
                    body,
                }) => Some(HttpAnswer {
                    status,
                    content_type,
                    body,
                }),
                _ => Some(HttpAnswer {
                    status: 500,
                    content_type: None,
                    body: Bytes::from_static(b"the cluster applied this write before"),
                }),
            }),
            Answer::Method(done) => done(match r {
                Some(CmdResult::Reply(bytes)) => crate::codec::method_from_bytes(&bytes)
                    .ok_or_else(|| Exception::internal_error("a reply did not decode")),
                Some(CmdResult::Refused(w)) => Err(exception(w)),
                _ => Err(Exception::internal_error(
                    "the cluster applied this method before; its outcome is not known",
                )),
            }),
        }
    }
}

fn exception(w: super::WireException) -> Exception {
    let code = ReplyCode::from_u16(w.code).unwrap_or(ReplyCode::InternalError);
    Exception {
        code,
        text: w.text,
        class_id: w.class,
        method_id: w.method,
    }
}
