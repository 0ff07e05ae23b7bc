//! A cluster node: its Raft group, the transport to its peers, the proposer that carries
//! this node's commands to the leader, and the consumers it serves for other nodes.
//!
//! [`Shared`] is what the broker sees (the queues' [`Replica`]): a method or a message is
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
use super::{Batch, ClusterConfig, CmdResult, Command, Meta, NodeId, PeerAddr, Reply, Tc, Timers};
use crate::broker::consumer::{
    window_size, ConnectionHandle, Consumer, ConsumerInfo, Credit, Delivery, Outgoing, WRITE_WINDOW,
};
use crate::broker::message::Message;
use crate::broker::queue::{Queue, Queued};
use crate::broker::replica::{HttpAnswer, HttpCall, HttpDone, HttpReplayer, MethodDone, Replica};
use crate::broker::Broker;
use crate::error::{Exception, ReplyCode};
use crate::store::Done;
use amq_protocol::protocol::AMQPClass;
use bytes::Bytes;
use openraft::storage::Snapshot;
use openraft::Raft;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
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
/// Body bytes one entry may carry (besides `MAX_BATCH` commands).
const MAX_BATCH_BYTES: usize = 4 << 20;
/// Proxy connection ids: far above the broker's own connection ids.
const PROXY_IDS: u64 = 1 << 62;

/// What travels between nodes for consumers: mirrored consumers, their deliveries and
/// what their clients settle.
#[derive(Clone, Debug, Serialize, Deserialize)]
enum Mirror {
    /// A consumer on the sender's node: the leader serves it.
    Consume {
        vhost: String,
        queue: String,
        connection: u64,
        channel: u16,
        tag: String,
        prefetch: u32,
        exclusive: bool,
        priority: i64,
    },
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
        exchange: String,
        routing_key: String,
        properties: Bytes,
        body: Bytes,
    },
    /// Deliveries settled for good on the consumer's node.
    Ack {
        vhost: String,
        queue: String,
        ids: Vec<u64>,
    },
    /// Deliveries back to the leader's queue.
    Requeue {
        vhost: String,
        queue: String,
        ids: Vec<u64>,
        redelivered: bool,
    },
}

/// A consumer of a replicated queue on this node.
#[derive(Clone, Debug, PartialEq, Eq)]
struct LocalConsumer {
    vhost: String,
    queue: String,
    connection: u64,
    channel: u16,
    tag: String,
    prefetch: u32,
    exclusive: bool,
    priority: i64,
}

/// A delivery the leader sent to another node's consumer, until it is settled.
struct InFlight {
    consumer: Arc<ConsumerInfo>,
    queue: Arc<Queue>,
    item: Queued,
}

/// The consumers this node serves for other nodes (while it leads).
#[derive(Default)]
struct Proxies {
    /// (node, its connection) -> the proxy connection their deliveries go through.
    connections: HashMap<(NodeId, u64), ConnectionHandle>,
    /// The proxies' connection ids (the queue's hooks ignore their consumers).
    ids: HashSet<u64>,
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
        Arc::new(Shared {
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
            local: Mutex::new(Vec::new()),
            proxies: Mutex::new(Proxies::default()),
            next_proxy: AtomicU64::new(PROXY_IDS),
        })
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
        self.leader
            .send_if_modified(|l| std::mem::replace(l, leader) != leader);
    }

    /// The log's leader changed to `leader`; this node serves if it is the one.
    pub(super) fn set_serving(&self, serving: bool, leader: NodeId) {
        self.serving.store(serving, Ordering::Release);
        self.set_leader(leader);
        if !serving {
            // Another node serves now: what this one served for others goes (the new
            // leader has every unsettled message).
            let gone = std::mem::take(&mut *lock(&self.proxies));
            for (_, queue, connection, channel, tag) in gone.consumers {
                queue.remove_consumer(connection, channel, &tag);
            }
        }
    }

    fn propose(&self, cmd: Meta, done: Answer) {
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

    /// Sends every consumer of this node to `leader` (it has just become the leader, or
    /// its link came back).
    fn mirror_all(&self, leader: NodeId) {
        let all = lock(&self.local).clone();
        for c in all {
            self.send(leader, &consume(&c));
        }
    }

    /// A frame about consumers from another node.
    fn mirrored(self: &Arc<Self>, from: NodeId, m: Mirror) {
        let Some(broker) = self.broker() else { return };
        match m {
            Mirror::Consume {
                vhost,
                queue,
                connection,
                channel,
                tag,
                prefetch,
                exclusive,
                priority,
            } => {
                let Some(q) = replicated(&broker, &vhost, &queue) else {
                    return;
                };
                let handle = self.proxy(from, connection, &broker);
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
                let Some(q) = replicated(&broker, &vhost, &queue) else {
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
                exchange,
                routing_key,
                properties,
                body,
            } => {
                let Some(q) = replicated(&broker, &vhost, &queue) else {
                    return;
                };
                let msg = Message::with_body(&exchange, &routing_key, &properties, body);
                let item = Queued {
                    seq: id,
                    msg,
                    redelivered,
                    store_id: id,
                    expires_at: 0,
                    priority: 0,
                    cost: 0,
                    deliveries,
                };
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
                            f.consumer.settled();
                            f.queue.acked(&f.item);
                            f.queue.dispatch();
                        }
                        None => unknown.push(id),
                    }
                }
                if !unknown.is_empty() {
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
            Mirror::Requeue {
                ids, redelivered, ..
            } => {
                for id in ids {
                    let entry = lock(&self.proxies).in_flight.remove(&(from, id));
                    if let Some(f) = entry {
                        f.consumer.settled();
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
    fn proxy(
        self: &Arc<Self>,
        node: NodeId,
        connection: u64,
        broker: &Arc<Broker>,
    ) -> ConnectionHandle {
        let mut p = lock(&self.proxies);
        if let Some(h) = p.connections.get(&(node, connection)) {
            return h.clone();
        }
        let (tx, mut rx) = mpsc::unbounded_channel();
        let id = self.next_proxy.fetch_add(1, Ordering::Relaxed);
        let handle = ConnectionHandle::new(id, tx);
        p.connections.insert((node, connection), handle.clone());
        p.ids.insert(id);
        drop(p);
        let me = Arc::downgrade(self);
        let _ = broker;
        tokio::spawn(async move {
            while let Some(out) = rx.recv().await {
                let Some(shared) = me.upgrade() else { return };
                let Outgoing::Deliver(d) = out else { continue };
                let (msg, id) = (&d.item.msg, d.item.store_id);
                let m = Mirror::Deliver {
                    vhost: d.queue.vhost.clone(),
                    queue: d.queue.name.as_str().to_owned(),
                    connection,
                    channel: d.consumer.channel,
                    tag: d.consumer.tag.as_str().to_owned(),
                    id,
                    redelivered: d.item.redelivered,
                    deliveries: d.item.deliveries,
                    exchange: msg.exchange().to_owned(),
                    routing_key: msg.routing_key().to_owned(),
                    properties: Bytes::copy_from_slice(msg.properties()),
                    body: Bytes::copy_from_slice(msg.body()),
                };
                d.consumer.written(window_size(&d.item));
                lock(&shared.proxies).in_flight.insert(
                    (node, id),
                    InFlight {
                        consumer: d.consumer,
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
        for f in in_flight {
            f.consumer.settled();
            f.queue.requeue([f.item]);
        }
    }

    fn is_proxy(&self, connection: u64) -> bool {
        connection >= PROXY_IDS
    }
}

fn consume(c: &LocalConsumer) -> Mirror {
    Mirror::Consume {
        vhost: c.vhost.clone(),
        queue: c.queue.clone(),
        connection: c.connection,
        channel: c.channel,
        tag: c.tag.clone(),
        prefetch: c.prefetch,
        exclusive: c.exclusive,
        priority: c.priority,
    }
}

fn replicated(broker: &Broker, vhost: &str, queue: &str) -> Option<Arc<Queue>> {
    broker
        .vhost(vhost)?
        .queue(queue, 0)
        .ok()
        .filter(|q| q.replica().is_some())
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
        let (head, body) = msg.shared_parts();
        let _ = head;
        self.propose(
            Meta::Enqueue {
                vhost: queue.vhost.clone(),
                queue: queue.name.as_str().to_owned(),
                exchange: msg.exchange().to_owned(),
                routing_key: msg.routing_key().to_owned(),
                properties: Bytes::copy_from_slice(msg.properties()),
                body,
            },
            Answer::Confirm(done),
        );
    }

    fn settled(&self, queue: &Queue, id: u64) {
        let (vhost, name) = (queue.vhost.clone(), queue.name.as_str().to_owned());
        if self.serves() {
            let cmd = Meta::Settle {
                vhost,
                queue: name,
                ids: vec![id],
            };
            self.propose(cmd, Answer::None);
        } else {
            let m = Mirror::Ack {
                vhost,
                queue: name,
                ids: vec![id],
            };
            self.send(self.leader(), &m);
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

    fn placement(&self) -> (Option<String>, Vec<String>, Vec<String>) {
        (self.leader_name(), self.members(), self.online())
    }

    fn put_back(&self, queue: &Queue, items: Vec<Queued>, redelivered: bool) {
        let m = Mirror::Requeue {
            vhost: queue.vhost.clone(),
            queue: queue.name.as_str().to_owned(),
            ids: items.iter().map(|i| i.store_id).collect(),
            redelivered,
        };
        self.send(self.leader(), &m);
    }

    fn consumer_added(&self, queue: &Queue, consumer: &Consumer) {
        if self.is_proxy(consumer.connection.id) {
            return;
        }
        let c = LocalConsumer {
            vhost: queue.vhost.clone(),
            queue: queue.name.as_str().to_owned(),
            connection: consumer.connection.id,
            channel: consumer.info.channel,
            tag: consumer.info.tag.as_str().to_owned(),
            prefetch: consumer.info.credit.limit(),
            exclusive: consumer.exclusive,
            priority: consumer.priority,
        };
        if !self.serves() {
            self.send(self.leader(), &consume(&c));
        }
        lock(&self.local).push(c);
    }

    fn consumer_removed(&self, queue: &Queue, connection: u64, channel: u16, tag: &str) {
        if self.is_proxy(connection) {
            return;
        }
        lock(&self.local).retain(|c| {
            !(c.connection == connection
                && c.channel == channel
                && c.tag == tag
                && c.queue == queue.name.as_str()
                && c.vhost == queue.vhost)
        });
        if !self.serves() {
            let m = Mirror::Cancel {
                vhost: queue.vhost.clone(),
                queue: queue.name.as_str().to_owned(),
                connection,
                channel,
                tag: tag.to_owned(),
            };
            self.send(self.leader(), &m);
        }
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
        for t in self.tasks.drain(..) {
            t.abort();
        }
        let _ = self.raft.shutdown().await;
        self.transport.stop().await;
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
        snapshot_policy: openraft::SnapshotPolicy::Never,
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
    let machine = Machine::new(shared.clone());
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
    // definitions replayed before it serves clients.
    let mut leader = node.shared.leader.subscribe();
    let _ = tokio::time::timeout(Duration::from_secs(30), leader.wait_for(|l| *l != 0)).await;
}

/// Frames from peers: Raft's RPCs, forwarded proposals and mirrored consumers.
async fn serve(shared: Arc<Shared>, raft: Raft<Tc>, mut inbox: mpsc::Receiver<Incoming>) {
    while let Some(incoming) = inbox.recv().await {
        let Incoming { from, frame, reply } = incoming;
        match frame {
            Frame::AppendEntries { group, rpc } => {
                let raft = raft.clone();
                tokio::spawn(async move {
                    let answer = match rpc.decode() {
                        Ok(req) => Payload::encode(&raft.append_entries(req).await),
                        Err(e) => Err(e),
                    };
                    if let (Some(reply), Ok(rpc)) = (reply, answer) {
                        reply.send(Frame::AppendEntriesReply { group, rpc });
                    }
                });
            }
            Frame::Vote { group, rpc } => {
                let raft = raft.clone();
                tokio::spawn(async move {
                    let answer = match rpc.decode() {
                        Ok(req) => Payload::encode(&raft.vote(req).await),
                        Err(e) => Err(e),
                    };
                    if let (Some(reply), Ok(rpc)) = (reply, answer) {
                        reply.send(Frame::VoteReply { group, rpc });
                    }
                });
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
        }
        was = now.clone();
        let l = *leader.borrow_and_update();
        if l != 0 && l != shared.me && !shared.serves() {
            // Mirrored again on every new link to the leader (its boot tells a new run).
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
            bytes += match &p.cmd {
                Meta::Enqueue { body, .. } | Meta::Http { body, .. } => body.len(),
                _ => 64,
            };
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
        let outcome = submit(&shared, &raft, batch).await;
        match outcome {
            Some((index, reply)) => {
                let _ = tokio::time::timeout(PROPOSAL_DEADLINE, applied.wait_for(|&a| a >= index))
                    .await;
                answer(answers, reply, index);
            }
            None => answers.into_iter().for_each(fail),
        }
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
                match raft.client_write(cmd).await {
                    Ok(r) => return Some((r.log_id.index, r.data)),
                    Err(e) => tracing::debug!(error = %e, "cluster: proposal refused"),
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
