//! A replicated (quorum) queue's way out to the cluster: what a queue on a cluster node
//! tells the Raft log instead of keeping to itself (docs/clustering.md 3.7).
//!
//! On a node started with `--peers`, every quorum queue holds a `Replica` (the cluster
//! module implements it; this layer only names it, so a queue never depends on the
//! cluster). A message for the queue is proposed to the log and only enters the queue of
//! the node that leads when the log applies it; what leaves the queue for good (acked,
//! rejected, expired, dropped) is proposed as settled; a requeue on a node that does not
//! lead goes to the leader, whose queue serves every node's consumers. Every call is a
//! non-blocking send: queues call in under their own lock.

use super::consumer::ConnectionHandle;
use super::consumer::Consumer;
use super::message::Message;
use super::queue::{Get, Queue, Queued};
use crate::error::Exception;
use crate::store::Done;
use amq_protocol::protocol::AMQPClass;
use std::fmt::Debug;

/// A management API write (users, vhosts, permissions, policies, parameters, objects,
/// imports), replayed by every node's own API when the cluster's log applies it.
#[derive(Clone, Debug)]
pub struct HttpCall {
    pub method: String,
    pub uri: String,
    /// The user the proposing node authenticated.
    pub user: String,
    pub content_type: Option<String>,
    pub body: bytes::Bytes,
}

/// What the API answered to a replayed write.
#[derive(Clone, Debug)]
pub struct HttpAnswer {
    pub status: u16,
    pub content_type: Option<String>,
    pub body: bytes::Bytes,
}

/// A proposed write's answer (this node's apply), or `None` without a majority.
pub type HttpDone = Box<dyn FnOnce(Option<HttpAnswer>) + Send>;

/// Replays a write on this node's API (set by the management listener's start).
pub type HttpReplayer = std::sync::Arc<
    dyn Fn(HttpCall) -> std::pin::Pin<Box<dyn std::future::Future<Output = HttpAnswer> + Send>>
        + Send
        + Sync,
>;

/// The argument a cluster node adds to a classic queue it declares (non-exclusive): the
/// node that holds it. Every other node keeps a stub that reaches it.
pub const HOME_ARG: &str = "x-warren-home";

/// What a proposed exchange or queue method answers: its -ok reply once this node
/// applied it, or the exception every node's apply raised.
pub type MethodDone = Box<dyn FnOnce(Result<AMQPClass, Exception>) + Send>;

/// The cluster's side of one node's replicated queues.
pub trait Replica: Send + Sync + Debug {
    /// Proposes an exchange or queue method of `vhost` (access already checked; a
    /// queue.declare's name was chosen by the broker if `server_named`).
    fn propose_method(&self, vhost: &str, method: &AMQPClass, server_named: bool, done: MethodDone);
    /// Proposes a management API write; `done` gets this node's answer once it applied
    /// it.
    fn propose_http(&self, call: HttpCall, done: HttpDone);
    /// How this node replays management API writes.
    fn set_http(&self, replayer: HttpReplayer);
    /// Proposes `msg` for `queue`; `done` (a publisher's confirm) completes once the log
    /// committed it on a majority, and is dropped (a nack) if it cannot be.
    fn enqueue(&self, queue: &Queue, msg: &Message, done: Option<Done>);
    /// These messages left `queue` for good (their ids are `Queued::store_id`).
    fn settled(&self, queue: &Queue, id: u64);
    /// A message of `queue` came back from a client: it was delivered `deliveries` times.
    fn returned(&self, queue: &Queue, id: u64, deliveries: u16);
    /// The leader's name, every member's, and those this node is linked to now (the
    /// management API's `leader`, `members` and `online`).
    fn placement(&self) -> (Option<String>, Vec<String>, Vec<String>);
    /// This node's name.
    fn node_name(&self) -> String;
    /// The way to a classic queue homed on node `home` (declared there): a stub here
    /// that passes publishes, consumers, gets and acks to the home node's queue.
    fn stub(&self, home: &str) -> Option<std::sync::Arc<dyn Replica>>;
    /// Bytes of messages proposed and not yet committed (publishers are read no faster
    /// than the log commits, as with the store's backlog).
    fn backlog(&self) -> u64;
    /// How many messages the log holds for `queue` (what a node that does not serve
    /// shows for it: its own copy is empty).
    fn held(&self, queue: &Queue) -> u64;
    /// Whether this node's copy of the queue is the one that serves (this node leads).
    fn serves(&self) -> bool;
    /// On a node that does not serve: `items` go back to the leader's queue
    /// (`redelivered`: a client saw them).
    fn put_back(&self, queue: &Queue, items: Vec<Queued>, redelivered: bool);
    /// basic.get on a node that does not serve: the leader's queue is asked; `Wait` until
    /// its answer is here (`getter` is told to ask again, `Outgoing::GetReady`).
    fn get(&self, queue: &Queue, getter: &ConnectionHandle, channel: u16, ack: bool) -> Get;
    /// A consumer started on this node's copy of `queue`.
    fn consumer_added(&self, queue: &Queue, consumer: &Consumer);
    /// A consumer of this node's copy of `queue` stopped.
    fn consumer_removed(&self, queue: &Queue, connection: u64, channel: u16, tag: &str);
}
