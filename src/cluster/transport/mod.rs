//! The node-to-node transport (docs/clustering.md 3.2): tokio TCP, one outbound link per
//! peer (this node's requests and one-way frames), a listener on this node's own address
//! (the peers' links, answered on the same connection), a mutual handshake on the shared
//! cookie, pings for liveness.
//!
//! The rest of the cluster sees it through [`Links`]: [`Transport`] over TCP, and
//! `mem::MemLinks` between nodes of one process (with cut/heal; built for tests and the
//! `test-hooks` feature only). Frames arriving for this node come out of the
//! [`Incoming`] receiver each constructor returns.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::{Duration, Instant};

use tokio::sync::watch;

pub mod frame;
mod handshake;
mod link;
mod listener;
#[cfg(any(test, feature = "test-hooks"))]
pub mod mem;
mod tcp;

pub use crate::cluster::identity::{NodeId, PeerAddr};
pub use frame::{Frame, GroupId, Payload, META};
pub use tcp::{Transport, TransportConfig};

/// What the rest of the cluster uses to reach other nodes.
pub trait Links: Send + Sync + 'static {
    /// Sends a one-way frame; dropped if the link to `to` is down (Raft and the proposer
    /// resend what matters).
    fn send(&self, to: NodeId, f: Frame);
    /// Sends a request and waits for its answer, at most `timeout`.
    fn request(
        &self,
        to: NodeId,
        f: Frame,
        timeout: Duration,
    ) -> impl Future<Output = Result<Frame, LinkError>> + Send;
    /// Whether the link to `n` is up now.
    fn is_up(&self, n: NodeId) -> bool;
    /// Every peer's state, updated as links go up and down.
    fn watch(&self) -> watch::Receiver<PeerStates>;
}

/// Why a request got no answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LinkError {
    /// The link is down (or went down before the answer came): openraft's `Unreachable`.
    Unreachable,
    /// No answer within the timeout: openraft's `Timeout`.
    Timeout,
    /// The frame is above the frame limit.
    TooLarge,
    /// No such peer.
    Unknown(NodeId),
}

impl std::fmt::Display for LinkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LinkError::Unreachable => f.write_str("peer unreachable"),
            LinkError::Timeout => f.write_str("no answer in time"),
            LinkError::TooLarge => f.write_str("frame above the limit"),
            LinkError::Unknown(n) => write!(f, "no peer {n}"),
        }
    }
}

impl std::error::Error for LinkError {}

/// A peer as this node's link to it sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerState {
    /// Linked since `since`; `boot` tells one run of the peer from the next.
    Up { since: Instant, boot: u64 },
    /// Not linked since `since` (or since this node started).
    Down { since: Instant },
}

impl PeerState {
    /// Whether the peer is up.
    pub fn is_up(&self) -> bool {
        matches!(self, PeerState::Up { .. })
    }
}

/// Every other node's state, by [`NodeId`].
pub type PeerStates = BTreeMap<NodeId, PeerState>;

/// A frame for this node, with the way to answer it if it is a request.
#[derive(Debug)]
pub struct Incoming {
    /// The sender.
    pub from: NodeId,
    /// What it sent.
    pub frame: Frame,
    /// `Some` for a request: the sender waits for one answer.
    pub reply: Option<Reply>,
}

/// Answers one request. Dropping it unanswered sends `Frame::Failed`, so the requester
/// learns at once rather than at its timeout.
pub struct Reply(Option<Box<dyn FnOnce(Frame) + Send>>);

impl Reply {
    pub(crate) fn new(answer: impl FnOnce(Frame) + Send + 'static) -> Reply {
        Reply(Some(Box::new(answer)))
    }

    /// Sends the answer.
    pub fn send(mut self, f: Frame) {
        if let Some(answer) = self.0.take() {
            answer(f);
        }
    }
}

impl Drop for Reply {
    fn drop(&mut self) {
        if let Some(answer) = self.0.take() {
            answer(Frame::Failed {
                reason: "request dropped unanswered".into(),
            });
        }
    }
}

impl std::fmt::Debug for Reply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Reply")
    }
}

/// Every peer but `me`, down since now.
fn all_down(me: NodeId, peers: usize) -> PeerStates {
    let since = Instant::now();
    (1..=peers as NodeId)
        .filter(|&n| n != me)
        .map(|n| (n, PeerState::Down { since }))
        .collect()
}

/// The link's timers (doc 3.2's defaults); tests shorten them.
#[derive(Clone, Copy, Debug)]
pub struct Timers {
    /// A ping on each outbound link this often.
    pub ping: Duration,
    /// A link with no frame for this long is down.
    pub down_after: Duration,
    /// The first reconnect delay, doubled up to `backoff_max`.
    pub backoff_min: Duration,
    /// The longest reconnect delay.
    pub backoff_max: Duration,
    /// A handshake not done in this time fails.
    pub handshake: Duration,
}

impl Default for Timers {
    fn default() -> Timers {
        Timers {
            ping: Duration::from_millis(500),
            down_after: Duration::from_secs(2),
            backoff_min: Duration::from_millis(100),
            backoff_max: Duration::from_secs(2),
            handshake: Duration::from_secs(5),
        }
    }
}

#[cfg(test)]
mod bench;
#[cfg(test)]
mod tests;
