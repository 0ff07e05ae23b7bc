//! [`Transport`]: [`Links`] over TCP. It owns the listener's task and one task per
//! outbound link; dropping it (or [`Transport::shutdown`]) stops them all, which closes
//! every connection, so its peers see it go down.

use std::collections::BTreeMap;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;

use super::frame::{self, Frame, Wire};
use super::handshake::{random, Local};
use super::link::{self, Link};
use super::{all_down, listener, Incoming, LinkError, Links, NodeId, PeerAddr, PeerStates, Timers};
use crate::cluster::identity::Identity;

/// How many received frames may wait for the node before the links stop reading.
const INBOX: usize = 1024;

/// What a [`Transport`] needs: this node, its peers, the cookie and the limits.
#[derive(Clone, Debug)]
pub struct TransportConfig {
    /// This node's name; must be among `peers`.
    pub node: String,
    /// Every member, sorted by name (as `identity::parse_peers` returns them).
    pub peers: Vec<PeerAddr>,
    /// The shared cookie.
    pub cookie: Vec<u8>,
    /// Group 0's cluster id, if this node has applied it.
    pub cluster_id: Option<[u8; 16]>,
    /// The broker's `max_message_size`: frames may be 64 MiB longer.
    pub max_message_size: u64,
    /// Ping, liveness, backoff and handshake timers.
    pub timers: Timers,
}

impl TransportConfig {
    /// The configuration of a node with this identity, with doc 3.2's timers.
    pub fn new(identity: &Identity, max_message_size: u64) -> TransportConfig {
        TransportConfig {
            node: identity.node.clone(),
            peers: identity.peers.clone(),
            cookie: identity.cookie.clone(),
            cluster_id: identity.cluster_id,
            max_message_size,
            timers: Timers::default(),
        }
    }
}

/// The node-to-node transport of one node.
pub struct Transport {
    local: Arc<Local>,
    links: BTreeMap<NodeId, Arc<Link>>,
    states: Arc<watch::Sender<PeerStates>>,
    local_addr: SocketAddr,
    accept: std::sync::Mutex<Option<JoinHandle<()>>>,
    /// Dropped to stop every task of this transport.
    stop: watch::Sender<()>,
}

impl Transport {
    /// Binds this node's own address from the peer list and starts.
    pub async fn bind(cfg: TransportConfig) -> io::Result<(Transport, mpsc::Receiver<Incoming>)> {
        let me = cfg
            .peers
            .iter()
            .find(|p| p.name == cfg.node)
            .ok_or_else(|| not_a_peer(&cfg))?;
        let listener = TcpListener::bind(me.addr.as_str()).await?;
        Transport::start(cfg, listener)
    }

    /// Starts on a listener already bound (tests bind port 0 first to learn the ports).
    /// Returns the transport and the receiver of the frames that arrive for this node.
    pub fn start(
        cfg: TransportConfig,
        listener: TcpListener,
    ) -> io::Result<(Transport, mpsc::Receiver<Incoming>)> {
        let local_addr = listener.local_addr()?;
        let limit = frame::frame_limit(cfg.max_message_size);
        let boot = u64::from_be_bytes(random()?);
        let local = Local::new(
            &cfg.node,
            cfg.peers.clone(),
            &cfg.cookie,
            cfg.cluster_id,
            boot,
            limit,
            cfg.timers,
        )
        .ok_or_else(|| not_a_peer(&cfg))?;
        let local = Arc::new(local);
        let states = Arc::new(watch::Sender::new(all_down(local.id, cfg.peers.len())));
        let (stop, stopped) = watch::channel(());
        let (inbound, inbox) = mpsc::channel(INBOX);
        let accept = tokio::spawn(until_stopped(
            stopped.clone(),
            listener::run(listener, local.clone(), inbound, stopped.clone()),
        ));
        let mut links = BTreeMap::new();
        for (id, peer) in (1..).zip(&cfg.peers).filter(|(id, _)| *id != local.id) {
            let (link, rx) = Link::new(id, peer.clone());
            let task = link::run(local.clone(), link.clone(), rx, states.clone());
            tokio::spawn(until_stopped(stopped.clone(), task));
            links.insert(id, link);
        }
        let transport = Transport {
            local,
            links,
            states,
            local_addr,
            accept: std::sync::Mutex::new(Some(accept)),
            stop,
        };
        Ok((transport, inbox))
    }

    /// The listener's address (its port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.local.id
    }

    /// This run's random boot id, as peers see it in [`super::PeerState::Up`].
    pub fn boot(&self) -> u64 {
        self.local.boot
    }

    /// Records group 0's cluster id once applied: later handshakes present and check it.
    pub fn set_cluster_id(&self, id: [u8; 16]) {
        *self
            .local
            .cluster_id
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(id);
    }

    /// Records that group 0 applied `Meta::Joined { node }`: from now on that node dialling
    /// without a cluster id (an empty data directory) is refused.
    pub fn set_joined(&self, node: NodeId) {
        let mut joined = self.local.joined.lock().unwrap_or_else(|e| e.into_inner());
        joined.insert(node);
    }

    /// Becomes `Some(cluster id)` when a peer refused this node because group 0 records it
    /// as a member and its data directory is empty: the node must stop, with
    /// `identity::lost_data_refusal`'s text.
    pub fn lost_data(&self) -> watch::Receiver<Option<[u8; 16]>> {
        self.local.lost_data.subscribe()
    }

    /// Stops every task and waits until the listener's socket is closed (so that a test
    /// can bind its port again).
    pub async fn shutdown(self) {
        self.stop().await;
    }

    /// What `shutdown` does, through a shared handle (the node's parts all hold one).
    pub async fn stop(&self) {
        let _ = self.stop.send(());
        let accept = self.accept.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(accept) = accept {
            let _ = accept.await;
        }
    }

    fn link(&self, to: NodeId) -> Result<&Link, LinkError> {
        self.links
            .get(&to)
            .map(|l| &**l)
            .ok_or(LinkError::Unknown(to))
    }
}

impl Links for Transport {
    fn send(&self, to: NodeId, f: Frame) {
        let sent = self
            .link(to)
            .and_then(|l| l.send(&Wire::Send(f), self.local.limit));
        if let Err(LinkError::TooLarge) = sent {
            tracing::warn!("cluster frame for node {to} dropped: above the frame limit");
        }
    }

    fn request(
        &self,
        to: NodeId,
        f: Frame,
        timeout: Duration,
    ) -> impl Future<Output = Result<Frame, LinkError>> + Send {
        let link = self.links.get(&to).cloned();
        let limit = self.local.limit;
        async move {
            let link = link.ok_or(LinkError::Unknown(to))?;
            link.request(f, limit, timeout).await
        }
    }

    fn is_up(&self, n: NodeId) -> bool {
        self.link(n).is_ok_and(|l| l.is_up())
    }

    fn watch(&self) -> watch::Receiver<PeerStates> {
        self.states.subscribe()
    }
}

fn not_a_peer(cfg: &TransportConfig) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("node '{}' is not one of its peers", cfg.node),
    )
}

/// Runs `work` until it ends or `stop`'s sender is dropped.
pub(crate) async fn until_stopped(mut stop: watch::Receiver<()>, work: impl Future<Output = ()>) {
    tokio::select! {
        _ = stop.changed() => {}
        _ = work => {}
    }
}
