//! One outbound link: this node's connection to one peer, dialled and kept (reconnect with
//! backoff), which carries this node's requests and one-way frames and brings back the
//! peer's answers. Its task is the only writer of the connection, so frames leave in the
//! order they were sent.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, watch};

use super::frame::{self, Frame, Wire};
use super::handshake::{self, HandshakeError, Local};
use super::{LinkError, NodeId, PeerAddr, PeerState, PeerStates};

/// The handle the transport keeps on one outbound link.
pub(crate) struct Link {
    pub id: NodeId,
    pub peer: PeerAddr,
    /// Encoded frames for the link's task (encoded by the sender, so that a frame above
    /// the limit is refused to its sender rather than closing the link).
    tx: mpsc::UnboundedSender<Vec<u8>>,
    /// Requests waiting for their answers, by request id.
    pending: Mutex<HashMap<u64, oneshot::Sender<Frame>>>,
    next_id: AtomicU64,
    up: AtomicBool,
}

impl Link {
    /// A link to `peer` and the receiver its task drains.
    pub fn new(id: NodeId, peer: PeerAddr) -> (Arc<Link>, mpsc::UnboundedReceiver<Vec<u8>>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let link = Link {
            id,
            peer,
            tx,
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            up: AtomicBool::new(false),
        };
        (Arc::new(link), rx)
    }

    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    /// Queues `wire` if the link is up; a frame for a link that is down is dropped.
    pub fn send(&self, wire: &Wire, limit: u32) -> Result<(), LinkError> {
        if !self.is_up() {
            return Err(LinkError::Unreachable);
        }
        let bytes = frame::encode(wire, limit).map_err(|_| LinkError::TooLarge)?;
        self.tx.send(bytes).map_err(|_| LinkError::Unreachable)
    }

    /// Sends `f` as a request and waits for its answer.
    pub async fn request(
        &self,
        f: Frame,
        limit: u32,
        timeout: Duration,
    ) -> Result<Frame, LinkError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.pending().insert(id, tx);
        if let Err(e) = self.send(&Wire::Request { id, frame: f }, limit) {
            self.pending().remove(&id);
            return Err(e);
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(answer)) => Ok(answer),
            // The link went down: its pending requests were dropped.
            Ok(Err(_)) => Err(LinkError::Unreachable),
            Err(_) => {
                self.pending().remove(&id);
                Err(LinkError::Timeout)
            }
        }
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<Frame>>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An answer arrived; one for a request that timed out is dropped.
    fn complete(&self, id: u64, f: Frame) {
        if let Some(tx) = self.pending().remove(&id) {
            let _ = tx.send(f);
        }
    }

    /// Marks the link up or down, in its flag and in the transport's peer table.
    fn set(&self, states: &watch::Sender<PeerStates>, state: PeerState) {
        self.up.store(state.is_up(), Ordering::Release);
        if !state.is_up() {
            // Their answers can no longer come: the requesters learn it now.
            self.pending().clear();
        }
        states.send_modify(|s| {
            s.insert(self.id, state);
        });
    }
}

/// The link's task: dial, handshake, serve until the connection fails, back off, again.
/// Runs until the transport stops it.
pub(crate) async fn run(
    local: Arc<Local>,
    link: Arc<Link>,
    mut rx: mpsc::UnboundedReceiver<Vec<u8>>,
    states: Arc<watch::Sender<PeerStates>>,
) {
    let timers = local.timers;
    let mut backoff = timers.backoff_min;
    let mut last_refusal = None;
    loop {
        match connect(&local, &link.peer).await {
            Ok((stream, boot)) => {
                last_refusal = None;
                backoff = timers.backoff_min;
                // Frames queued for the previous connection are stale.
                while rx.try_recv().is_ok() {}
                link.set(
                    &states,
                    PeerState::Up {
                        since: Instant::now(),
                        boot,
                    },
                );
                tracing::info!("cluster link to {} ({}) up", link.peer.name, link.peer.addr);
                let why = serve(stream, &local, &link, &mut rx).await;
                link.set(
                    &states,
                    PeerState::Down {
                        since: Instant::now(),
                    },
                );
                tracing::info!(
                    "cluster link to {} ({}) down: {why}",
                    link.peer.name,
                    link.peer.addr
                );
            }
            Err(HandshakeError::Refused(reason)) => {
                if last_refusal.as_ref() != Some(&reason) {
                    tracing::warn!(
                        "cluster link to {} ({}) refused: {reason}",
                        link.peer.name,
                        link.peer.addr
                    );
                    last_refusal = Some(reason);
                }
            }
            Err(HandshakeError::LostData(id)) => {
                tracing::error!(
                    "cluster link to {} ({}) refused: this node lost its data directory but \
                     was a member of cluster {}",
                    link.peer.name,
                    link.peer.addr,
                    crate::cluster::identity::hex(&id)
                );
                local.lost_data.send_replace(Some(id));
            }
            Err(HandshakeError::Frame(e)) => {
                tracing::debug!(
                    "cluster link to {} ({}): {e}",
                    link.peer.name,
                    link.peer.addr
                );
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(timers.backoff_max);
    }
}

/// Dials `peer` and runs the handshake, within the handshake timeout.
async fn connect(local: &Local, peer: &PeerAddr) -> Result<(TcpStream, u64), HandshakeError> {
    let open = async {
        let mut s = TcpStream::connect(peer.addr.as_str())
            .await
            .map_err(frame::FrameError::Io)?;
        s.set_nodelay(true).map_err(frame::FrameError::Io)?;
        let boot = handshake::dial(&mut s, local, peer).await?;
        Ok((s, boot))
    };
    tokio::time::timeout(local.timers.handshake, open)
        .await
        .unwrap_or_else(|_| Err(timed_out("handshake")))
}

fn timed_out(what: &str) -> HandshakeError {
    let e = std::io::Error::new(std::io::ErrorKind::TimedOut, format!("{what} timed out"));
    HandshakeError::Frame(frame::FrameError::Io(e))
}

/// Writes queued frames and pings, reads answers and pongs, until the connection fails or
/// stays silent for `down_after`. Returns why it ended.
async fn serve(
    stream: TcpStream,
    local: &Local,
    link: &Link,
    rx: &mut mpsc::UnboundedReceiver<Vec<u8>>,
) -> String {
    let (mut rd, mut wr) = stream.into_split();
    let timers = local.timers;
    let reader = async {
        loop {
            let wire = tokio::time::timeout(timers.down_after, frame::read(&mut rd, local.limit))
                .await
                .map_err(|_| format!("no frame for {:?}", timers.down_after))?
                .map_err(|e| e.to_string())?;
            match wire {
                Wire::Response { id, frame } => link.complete(id, frame),
                Wire::Pong => {}
                other => return Err::<(), _>(format!("unexpected frame {other:?}")),
            }
        }
    };
    let writer = async {
        let mut tick = tokio::time::interval(timers.ping);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let bytes = tokio::select! {
                b = rx.recv() => match b {
                    Some(b) => b,
                    None => return Err::<(), _>("transport stopped".to_owned()),
                },
                _ = tick.tick() => frame::PING.to_vec(),
            };
            wr.write_all(&bytes).await.map_err(|e| e.to_string())?;
        }
    };
    let ended = tokio::select! {
        r = reader => r,
        w = writer => w,
    };
    ended.err().unwrap_or_default()
}
