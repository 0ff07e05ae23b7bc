//! The mutual handshake that opens a link (docs/clustering.md 3.2). The cookie never
//! crosses the wire: each side proves it holds it with an HMAC-SHA256 over both nonces
//! and both names.
//!
//! ```text
//! dialer   Hello { version, from, to, boot, nonce_d, peers_digest, cluster_id }
//! listener Challenge { nonce_l, proof_l }
//! dialer   Proof { proof_d }
//! listener Welcome { boot } | Refused(reason)
//! ```
//!
//! The listener checks the dialer's proof before anything else it sent, so a node without
//! the cookie learns nothing about the cluster (not even why it is refused, beyond the
//! cookie).

use std::collections::BTreeSet;
use std::sync::Mutex;

use bytes::Bytes;
use ring::{digest, hmac, rand::SecureRandom};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;

use super::frame::{self, FrameError, Hello, Refusal, Wire};
use super::{NodeId, PeerAddr, Timers};
use crate::cluster::identity::{hex, node_id};

/// This protocol's version, in every `Hello`.
pub(crate) const VERSION: u32 = 1;

/// What one node brings to every handshake, and its links' settings.
pub(crate) struct Local {
    pub id: NodeId,
    pub name: String,
    pub peers: Vec<PeerAddr>,
    key: hmac::Key,
    digest: [u8; 32],
    pub boot: u64,
    /// Unknown until this node applies group 0's `Meta::ClusterId`.
    pub cluster_id: Mutex<Option<[u8; 16]>>,
    /// The members group 0 records as joined (`Meta::Joined`): one of them dialling
    /// without a cluster id lost its data.
    pub joined: Mutex<BTreeSet<NodeId>>,
    /// Set when a peer refused this node because it lost its data: the cluster id it was
    /// a member of. The start-up stops the node with `identity::lost_data_refusal`.
    pub lost_data: watch::Sender<Option<[u8; 16]>>,
    pub limit: u32,
    pub timers: Timers,
}

/// Why a handshake did not open a link.
#[derive(Debug)]
pub(crate) enum HandshakeError {
    /// The connection failed, closed or sent something out of turn.
    Frame(FrameError),
    /// The other side is not part of this cluster; the reason, as the log shows it.
    Refused(String),
    /// The dialer is refused because it lost its data directory (a member of this cluster
    /// id): fatal for the dialer, which must stop (`identity::lost_data_refusal`).
    LostData([u8; 16]),
}

impl From<FrameError> for HandshakeError {
    fn from(e: FrameError) -> HandshakeError {
        HandshakeError::Frame(e)
    }
}

/// The two roles sign different messages, so one side's proof never passes for the other's.
#[derive(Clone, Copy)]
enum Role {
    Dialer = b'D' as isize,
    Listener = b'L' as isize,
}

impl Local {
    /// `peers` sorted by name (as `identity::parse_peers` returns them).
    pub fn new(
        name: &str,
        peers: Vec<PeerAddr>,
        cookie: &[u8],
        cluster_id: Option<[u8; 16]>,
        boot: u64,
        limit: u32,
        timers: Timers,
    ) -> Option<Local> {
        Some(Local {
            id: node_id(&peers, name)?,
            name: name.to_owned(),
            digest: peers_digest(&peers),
            peers,
            key: hmac::Key::new(hmac::HMAC_SHA256, cookie),
            boot,
            cluster_id: Mutex::new(cluster_id),
            joined: Mutex::new(BTreeSet::new()),
            lost_data: watch::Sender::new(None),
            limit,
            timers,
        })
    }

    fn cluster_id(&self) -> Option<[u8; 16]> {
        *self.cluster_id.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn has_joined(&self, id: NodeId) -> bool {
        let joined = self.joined.lock().unwrap_or_else(|e| e.into_inner());
        joined.contains(&id)
    }

    fn sign(&self, role: Role, hello: &Hello, nonce_l: &[u8; 32]) -> hmac::Tag {
        hmac::sign(&self.key, &proof_input(role, hello, nonce_l))
    }

    fn verify(&self, role: Role, hello: &Hello, nonce_l: &[u8; 32], proof: &[u8]) -> bool {
        // Constant time: ring compares the tags.
        hmac::verify(&self.key, &proof_input(role, hello, nonce_l), proof).is_ok()
    }
}

/// `role | nonce_d | nonce_l | from | to`, names length-prefixed so that no two pairs of
/// names give the same bytes.
fn proof_input(role: Role, hello: &Hello, nonce_l: &[u8; 32]) -> Vec<u8> {
    let mut m = vec![role as u8];
    m.extend_from_slice(&hello.nonce_d);
    m.extend_from_slice(nonce_l);
    for name in [&hello.from, &hello.to] {
        m.extend_from_slice(&(name.len() as u32).to_be_bytes());
        m.extend_from_slice(name.as_bytes());
    }
    m
}

/// SHA-256 of the sorted peer names: two nodes given other `--peers` never link.
fn peers_digest(peers: &[PeerAddr]) -> [u8; 32] {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for p in peers {
        ctx.update(&(p.name.len() as u32).to_be_bytes());
        ctx.update(p.name.as_bytes());
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// Random bytes from the system's generator (nonces, boot ids); fails only if the OS
/// has no entropy source at all.
pub(crate) fn random<const N: usize>() -> std::io::Result<[u8; N]> {
    let mut b = [0u8; N];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| std::io::Error::other("the system's random generator failed"))?;
    Ok(b)
}

/// The dialer's side, on a fresh connection to `to`. Returns the listener's boot.
pub(crate) async fn dial<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    local: &Local,
    to: &PeerAddr,
) -> Result<u64, HandshakeError> {
    let hello = Hello {
        version: VERSION,
        from: local.name.clone(),
        to: to.name.clone(),
        boot: local.boot,
        nonce_d: random().map_err(FrameError::Io)?,
        peers_digest: local.digest,
        cluster_id: local.cluster_id(),
    };
    frame::write(s, &Wire::Hello(hello.clone()), local.limit).await?;
    let (nonce_l, proof_l) = match frame::read(s, local.limit).await? {
        Wire::Challenge { nonce_l, proof_l } => (nonce_l, proof_l),
        other => return Err(out_of_turn(&other)),
    };
    let listener_ok = local.verify(Role::Listener, &hello, &nonce_l, &proof_l);
    // Sent even when the listener's proof failed, so that the listener logs the mismatch
    // too rather than a closed connection.
    let proof_d = Bytes::copy_from_slice(local.sign(Role::Dialer, &hello, &nonce_l).as_ref());
    frame::write(s, &Wire::Proof { proof_d }, local.limit).await?;
    match frame::read(s, local.limit).await? {
        _ if !listener_ok => Err(HandshakeError::Refused("cookie mismatch".into())),
        Wire::Welcome { boot } => Ok(boot),
        Wire::Refused(Refusal::LostData(id)) => Err(HandshakeError::LostData(id)),
        Wire::Refused(r) => Err(HandshakeError::Refused(dialer_reason(&r, local))),
        other => Err(out_of_turn(&other)),
    }
}

/// The listener's side, on an accepted connection. Returns the dialer's id and boot.
pub(crate) async fn accept<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    local: &Local,
) -> Result<(NodeId, u64), HandshakeError> {
    let hello = match frame::read(s, local.limit).await? {
        Wire::Hello(h) => h,
        other => return Err(out_of_turn(&other)),
    };
    let nonce_l = random().map_err(FrameError::Io)?;
    let proof_l = Bytes::copy_from_slice(local.sign(Role::Listener, &hello, &nonce_l).as_ref());
    frame::write(s, &Wire::Challenge { nonce_l, proof_l }, local.limit).await?;
    let proof_d = match frame::read(s, local.limit).await? {
        Wire::Proof { proof_d } => proof_d,
        other => return Err(out_of_turn(&other)),
    };
    let checked = if local.verify(Role::Dialer, &hello, &nonce_l, &proof_d) {
        check_hello(&hello, local)
    } else {
        Err(Refusal::Cookie)
    };
    match checked {
        Ok(id) => {
            let welcome = Wire::Welcome { boot: local.boot };
            frame::write(s, &welcome, local.limit).await?;
            Ok((id, hello.boot))
        }
        Err(refusal) => {
            let reason = listener_reason(&refusal, &hello, local);
            // Best effort: the dialer may already be gone.
            let _ = frame::write(s, &Wire::Refused(refusal), local.limit).await;
            Err(HandshakeError::Refused(reason))
        }
    }
}

/// What an authenticated dialer must agree on with this node; its id if it does.
fn check_hello(hello: &Hello, local: &Local) -> Result<NodeId, Refusal> {
    if hello.version != VERSION {
        return Err(Refusal::Version(VERSION));
    }
    if hello.to != local.name {
        return Err(Refusal::Name(local.name.clone()));
    }
    let from = node_id(&local.peers, &hello.from).filter(|&id| id != local.id);
    let Some(from) = from.filter(|_| hello.peers_digest == local.digest) else {
        return Err(Refusal::Peers);
    };
    match (hello.cluster_id, local.cluster_id()) {
        (Some(theirs), Some(ours)) if theirs != ours => Err(Refusal::ClusterId(ours)),
        (None, Some(ours)) if local.has_joined(from) => Err(Refusal::LostData(ours)),
        _ => Ok(from),
    }
}

/// A refusal as the dialer logs it: `cluster link to N (A) refused: <this>`.
fn dialer_reason(r: &Refusal, local: &Local) -> String {
    match r {
        Refusal::Cookie => "cookie mismatch".into(),
        Refusal::Version(v) => format!("it speaks cluster protocol {v} (ours {VERSION})"),
        Refusal::Peers => "it was started with other --peers".into(),
        Refusal::Name(name) => format!("it answers as {name}"),
        Refusal::ClusterId(theirs) => {
            let ours = local
                .cluster_id()
                .map_or_else(|| "unknown".into(), |id| hex(&id));
            format!("it belongs to cluster {} (ours {ours})", hex(theirs))
        }
        // Not a log line: the dialer stops with identity::lost_data_refusal's text.
        Refusal::LostData(id) => format!("it records this node as a member of cluster {}", hex(id)),
    }
}

/// A refusal as the listener logs it: `cluster link from A refused: <this>`.
fn listener_reason(r: &Refusal, hello: &Hello, local: &Local) -> String {
    match r {
        Refusal::Cookie => "cookie mismatch".into(),
        Refusal::Version(_) => {
            format!(
                "it speaks cluster protocol {} (ours {VERSION})",
                hello.version
            )
        }
        Refusal::Peers => format!("{} was started with other --peers", hello.from),
        Refusal::Name(_) => format!(
            "{} dialled {}, this node is {}",
            hello.from, hello.to, local.name
        ),
        Refusal::ClusterId(ours) => {
            let theirs = hello.cluster_id.map_or_else(String::new, |id| hex(&id));
            format!(
                "{} belongs to cluster {theirs} (ours {})",
                hello.from,
                hex(ours)
            )
        }
        Refusal::LostData(ours) => format!(
            "{} lost its data directory but is a member of cluster {}: it cannot rejoin in \
             phase 1",
            hello.from,
            hex(ours)
        ),
    }
}

fn out_of_turn(w: &Wire) -> HandshakeError {
    let kind = format!("{w:?}");
    let kind = kind
        .split(['(', ' ', '{'])
        .next()
        .unwrap_or_default()
        .to_owned();
    HandshakeError::Frame(FrameError::Io(std::io::Error::other(format!(
        "unexpected {kind} frame during the handshake"
    ))))
}

#[cfg(test)]
mod tests;
