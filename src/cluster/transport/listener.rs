//! The listener: accepts the peers' outbound links on this node's own address, runs the
//! listener's side of the handshake, answers pings, and hands every frame to the node
//! (requests with a [`Reply`] that answers on the same connection).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

use super::frame::{self, Frame, Wire};
use super::handshake::{self, HandshakeError, Local};
use super::{Incoming, NodeId, Reply};

/// Refusals already logged, so that a peer retrying every 2 s is logged once.
type Logged = Arc<Mutex<HashSet<String>>>;

/// Accepts connections until the transport stops (`stop`'s sender dropped).
pub(crate) async fn run(
    listener: TcpListener,
    local: Arc<Local>,
    inbound: mpsc::Sender<Incoming>,
    stop: watch::Receiver<()>,
) {
    let logged = Logged::default();
    loop {
        let (stream, addr) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) => {
                // Out of descriptors and the like: the peers retry; a pause rather than a
                // loop spinning on the same error.
                tracing::warn!("cluster listener: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        let conn = serve(stream, addr, local.clone(), inbound.clone(), logged.clone());
        tokio::spawn(super::tcp::until_stopped(stop.clone(), conn));
    }
}

/// One peer's connection, from the handshake to its end.
async fn serve(
    mut stream: TcpStream,
    addr: SocketAddr,
    local: Arc<Local>,
    inbound: mpsc::Sender<Incoming>,
    logged: Logged,
) {
    let _ = stream.set_nodelay(true);
    let opened = tokio::time::timeout(
        local.timers.handshake,
        handshake::accept(&mut stream, &local),
    );
    let from = match opened.await {
        Ok(Ok((from, _boot))) => from,
        Ok(Err(HandshakeError::Refused(reason))) => {
            let key = format!("{} {reason}", addr.ip());
            if logged.lock().unwrap_or_else(|e| e.into_inner()).insert(key) {
                tracing::warn!("cluster link from {addr} refused: {reason}");
            }
            return;
        }
        // A listener refuses with the reason; only a dialer learns it lost its data.
        Ok(Err(e @ (HandshakeError::Frame(_) | HandshakeError::LostData(_)))) => {
            tracing::debug!("cluster link from {addr}: {e:?}");
            return;
        }
        Err(_) => {
            tracing::debug!("cluster link from {addr}: handshake timed out");
            return;
        }
    };
    if let Err(why) = relay(stream, from, &local, inbound).await {
        tracing::debug!("cluster link from {addr} closed: {why}");
    }
}

/// Reads frames for the node and writes answers and pongs, until either side fails.
async fn relay(
    stream: TcpStream,
    from: NodeId,
    local: &Local,
    inbound: mpsc::Sender<Incoming>,
) -> Result<(), String> {
    let (mut rd, mut wr) = stream.into_split();
    let (tx, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let limit = local.limit;
    let writer = async {
        while let Some(bytes) = rx.recv().await {
            wr.write_all(&bytes).await.map_err(|e| e.to_string())?;
        }
        Ok(())
    };
    let reader = async {
        loop {
            let wire = tokio::time::timeout(local.timers.down_after, frame::read(&mut rd, limit))
                .await
                .map_err(|_| format!("no frame for {:?}", local.timers.down_after))?
                .map_err(|e| e.to_string())?;
            let (frame, reply) = match wire {
                Wire::Ping => {
                    let _ = tx.send(frame::PONG.to_vec());
                    continue;
                }
                Wire::Send(frame) => (frame, None),
                Wire::Request { id, frame } => (frame, Some(answer(id, tx.clone(), limit))),
                other => return Err(format!("unexpected frame {other:?}")),
            };
            let incoming = Incoming { from, frame, reply };
            hand_over(&inbound, incoming, &tx, local).await?;
        }
    };
    tokio::select! {
        r = reader => r,
        w = writer => w,
    }
}

/// Gives a frame to the node. Waiting for room stops reading the socket, so a slow node
/// slows its peers' links (backpressure); meanwhile a pong every ping interval tells the
/// dialer that this node is alive, only busy, so it does not declare the link down.
async fn hand_over(
    inbound: &mpsc::Sender<Incoming>,
    incoming: Incoming,
    tx: &mpsc::UnboundedSender<Vec<u8>>,
    local: &Local,
) -> Result<(), String> {
    let send = inbound.send(incoming);
    tokio::pin!(send);
    loop {
        tokio::select! {
            sent = &mut send => return sent.map_err(|_| "node stopped".to_owned()),
            _ = tokio::time::sleep(local.timers.ping) => {
                let _ = tx.send(frame::PONG.to_vec());
            }
        }
    }
}

/// The [`Reply`] for request `id`: its answer goes back on this connection.
fn answer(id: u64, tx: mpsc::UnboundedSender<Vec<u8>>, limit: u32) -> Reply {
    Reply::new(move |frame| {
        let bytes = frame::encode(&Wire::Response { id, frame }, limit).or_else(|_| {
            let reason = "answer above the frame limit".to_owned();
            let failed = Wire::Response {
                id,
                frame: Frame::Failed { reason },
            };
            frame::encode(&failed, limit)
        });
        if let Ok(bytes) = bytes {
            let _ = tx.send(bytes);
        }
    })
}
