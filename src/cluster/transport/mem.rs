//! [`MemLinks`]: [`Links`] between nodes of one process, without sockets, for the tests of
//! the modules above the transport. [`MemLinks::cut`] and [`MemLinks::heal`] make and mend
//! partitions: a cut pair's frames and answers are lost, as on a broken network, and both
//! sides' watches show each other down.

use std::collections::BTreeSet;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, oneshot, watch};

use super::{Frame, Incoming, LinkError, Links, NodeId, PeerState, PeerStates, Reply};

/// How many frames may wait in a node's inbox; beyond, frames are dropped (a lossy link).
const INBOX: usize = 4096;

/// One node's end of an in-process network.
#[derive(Clone)]
pub struct MemLinks {
    me: NodeId,
    net: Arc<Net>,
}

struct Net {
    inboxes: Vec<mpsc::Sender<Incoming>>,
    /// Each node's view of the others, `states[i]` for node `i + 1`.
    states: Vec<watch::Sender<PeerStates>>,
    /// Cut pairs, smaller id first.
    cut: Mutex<BTreeSet<(NodeId, NodeId)>>,
}

impl MemLinks {
    /// A network of nodes `1..=n`, every pair linked; each node's links and inbox.
    pub fn new(n: usize) -> Vec<(MemLinks, mpsc::Receiver<Incoming>)> {
        let (inboxes, receivers): (Vec<_>, Vec<_>) = (0..n).map(|_| mpsc::channel(INBOX)).unzip();
        let since = Instant::now();
        let states = (1..=n as NodeId)
            .map(|me| {
                let all = (1..=n as NodeId).filter(|&p| p != me);
                watch::Sender::new(all.map(|p| (p, PeerState::Up { since, boot: 0 })).collect())
            })
            .collect();
        let net = Arc::new(Net {
            inboxes,
            states,
            cut: Mutex::new(BTreeSet::new()),
        });
        let links = (1..).map(|me| MemLinks {
            me,
            net: net.clone(),
        });
        links.zip(receivers).collect()
    }

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.me
    }

    /// Breaks the link between `a` and `b`, both ways.
    pub fn cut(&self, a: NodeId, b: NodeId) {
        self.net.cut().insert(pair(a, b));
        self.net.show(
            a,
            b,
            PeerState::Down {
                since: Instant::now(),
            },
        );
    }

    /// Mends the link between `a` and `b`.
    pub fn heal(&self, a: NodeId, b: NodeId) {
        self.net.cut().remove(&pair(a, b));
        self.net.show(
            a,
            b,
            PeerState::Up {
                since: Instant::now(),
                boot: 0,
            },
        );
    }

    /// The inbox of `to`, if `to` exists and is reachable from this node.
    fn reach(&self, to: NodeId) -> Result<&mpsc::Sender<Incoming>, LinkError> {
        let inbox = to
            .checked_sub(1)
            .and_then(|i| self.net.inboxes.get(i as usize))
            .filter(|_| to != self.me)
            .ok_or(LinkError::Unknown(to))?;
        if self.net.is_cut(self.me, to) {
            return Err(LinkError::Unreachable);
        }
        Ok(inbox)
    }
}

impl Net {
    fn cut(&self) -> MutexGuard<'_, BTreeSet<(NodeId, NodeId)>> {
        self.cut.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn is_cut(&self, a: NodeId, b: NodeId) -> bool {
        self.cut().contains(&pair(a, b))
    }

    /// Shows `a` and `b` to each other as `state`.
    fn show(&self, a: NodeId, b: NodeId, state: PeerState) {
        for (me, peer) in [(a, b), (b, a)] {
            if let Some(s) = self.states.get(me as usize - 1) {
                s.send_modify(|s| {
                    s.insert(peer, state);
                });
            }
        }
    }
}

fn pair(a: NodeId, b: NodeId) -> (NodeId, NodeId) {
    (a.min(b), a.max(b))
}

impl Links for MemLinks {
    fn send(&self, to: NodeId, f: Frame) {
        if let Ok(inbox) = self.reach(to) {
            let _ = inbox.try_send(Incoming {
                from: self.me,
                frame: f,
                reply: None,
            });
        }
    }

    fn request(
        &self,
        to: NodeId,
        f: Frame,
        timeout: Duration,
    ) -> impl Future<Output = Result<Frame, LinkError>> + Send {
        let (tx, rx) = oneshot::channel();
        let (me, net) = (self.me, self.net.clone());
        // An answer sent after the pair was cut is lost: the requester times out.
        let reply = Reply::new(move |answer| {
            if !net.is_cut(me, to) {
                let _ = tx.send(answer);
            }
        });
        let sent = self.reach(to).and_then(|inbox| {
            let incoming = Incoming {
                from: me,
                frame: f,
                reply: Some(reply),
            };
            inbox.try_send(incoming).map_err(|_| LinkError::Unreachable)
        });
        async move {
            sent?;
            match tokio::time::timeout(timeout, rx).await {
                Ok(Ok(answer)) => Ok(answer),
                // Lost (answered across a cut) or never answered in time.
                Ok(Err(_)) | Err(_) => Err(LinkError::Timeout),
            }
        }
    }

    fn is_up(&self, n: NodeId) -> bool {
        self.reach(n).is_ok()
    }

    fn watch(&self) -> watch::Receiver<PeerStates> {
        self.net.states[self.me as usize - 1].subscribe()
    }
}
