//! Node-to-node frames (docs/clustering.md 3.2): `len u32 (big-endian, of what follows) |
//! kind u8 | postcard payload`.
//!
//! A frame is one [`Wire`] value encoded with postcard: postcard writes an enum's variant
//! index first, as a varint, which is one byte below 128 variants, so that byte is the
//! kind and the rest the payload (a test pins this). [`Frame`] is what the rest of the
//! cluster sends; [`Wire`] adds the handshake, liveness and request correlation around it.
//! The length is checked before the payload is read; a frame that is too long, empty or
//! does not decode is an error that closes the link, never a panic.

use std::io;

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

pub use crate::cluster::{GroupId, META};

/// Frames may be this much longer than the largest message body (Raft batches of up to
/// 1 MiB, snapshot chunks, headers).
pub const FRAME_OVERHEAD: u64 = 64 << 20;

/// The longest frame accepted when messages may be `max_message_size` bytes long.
pub fn frame_limit(max_message_size: u64) -> u32 {
    FRAME_OVERHEAD
        .saturating_add(max_message_size)
        .min(u64::from(u32::MAX)) as u32
}

/// A postcard-encoded value whose type the frame kind implies. The Raft RPCs, commands and
/// replies are openraft's and the cluster modules' types, which this module does not
/// know yet: their owners encode and decode them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Payload(pub Bytes);

impl Payload {
    /// Encodes `value` with postcard.
    pub fn encode<T: Serialize>(value: &T) -> Result<Payload, postcard::Error> {
        postcard::to_stdvec(value).map(|v| Payload(Bytes::from(v)))
    }

    /// Decodes the value [`Payload::encode`] encoded.
    pub fn decode<T: DeserializeOwned>(&self) -> Result<T, postcard::Error> {
        postcard::from_bytes(&self.0)
    }
}

/// What the cluster's modules send each other (doc 3.2's kinds). Responses travel as
/// answers to [`super::Links::request`]; their kinds name what they answer.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Frame {
    /// openraft's `AppendEntriesRequest` and its response.
    AppendEntries {
        group: GroupId,
        rpc: Payload,
    },
    AppendEntriesReply {
        group: GroupId,
        rpc: Payload,
    },
    /// openraft's `VoteRequest` and its response.
    Vote {
        group: GroupId,
        rpc: Payload,
    },
    VoteReply {
        group: GroupId,
        rpc: Payload,
    },
    /// A full snapshot sent to a follower in pieces, and the follower's answer to each.
    SnapshotBegin {
        group: GroupId,
        rpc: Payload,
    },
    SnapshotChunk {
        group: GroupId,
        rpc: Payload,
    },
    SnapshotEnd {
        group: GroupId,
        rpc: Payload,
    },
    SnapshotReply {
        group: GroupId,
        rpc: Payload,
    },
    /// A command for a group whose leader is the receiver (doc 3.5), and its outcome.
    Propose {
        group: GroupId,
        cmd: Payload,
    },
    ProposeResult {
        group: GroupId,
        result: Payload,
    },
    /// Remote consumers of a quorum queue (doc 3.8).
    Deliver {
        group: GroupId,
        body: Payload,
    },
    Resync {
        group: GroupId,
        body: Payload,
    },
    Credit {
        group: GroupId,
        body: Payload,
    },
    /// Classic queues homed on another node (doc 3.10).
    RemotePublish {
        body: Payload,
    },
    RemotePublished {
        body: Payload,
    },
    RemoteConsume {
        body: Payload,
    },
    RemoteSettle {
        body: Payload,
    },
    RemoteGet {
        body: Payload,
    },
    RemotePurge {
        body: Payload,
    },
    /// The sender has applied group 0 up to `index` (doc 3.6).
    MetaApplied {
        index: u64,
    },
    /// A read barrier: the leader's node answers with `get_read_log_id` (doc 3.1).
    ReadIndex {
        group: GroupId,
    },
    ReadIndexReply {
        group: GroupId,
        rpc: Payload,
    },
    /// For `/api/nodes` and `cluster_status` (doc 3.11).
    NodeInfo,
    NodeInfoReply {
        info: Payload,
    },
    /// A quorum queue's counters (doc 3.11).
    QueueStats {
        group: GroupId,
    },
    QueueStatsReply {
        group: GroupId,
        stats: Payload,
    },
    /// The receiver could not answer a request (no handler, or the handler failed).
    Failed {
        reason: String,
    },
}

/// Everything that crosses a node-to-node connection.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Wire {
    /// Dialer to listener, first (see `handshake`).
    Hello(Hello),
    /// Listener to dialer: its nonce and its proof of the cookie.
    Challenge {
        nonce_l: [u8; 32],
        proof_l: Bytes,
    },
    /// Dialer to listener: its proof of the cookie.
    Proof {
        proof_d: Bytes,
    },
    /// Listener to dialer: the link is open; the listener's run.
    Welcome {
        boot: u64,
    },
    /// Listener to dialer: the link is refused, and why.
    Refused(Refusal),
    /// Liveness, every ping interval on an outbound link; the listener answers.
    Ping,
    Pong,
    /// A one-way frame.
    Send(Frame),
    /// A request, answered by a `Response` with the same id on the same connection.
    Request {
        id: u64,
        frame: Frame,
    },
    Response {
        id: u64,
        frame: Frame,
    },
}

/// The dialer's opening: who it is, whom it dialled, and what it believes the cluster is.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hello {
    pub version: u32,
    pub from: String,
    pub to: String,
    pub boot: u64,
    pub nonce_d: [u8; 32],
    pub peers_digest: [u8; 32],
    pub cluster_id: Option<[u8; 16]>,
}

/// Why a listener refused a handshake.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Refusal {
    /// The dialer's proof does not match this node's cookie.
    Cookie,
    /// The dialer speaks another version of this protocol; the listener's.
    Version(u32),
    /// The dialer was given another peer list (or is not in this node's).
    Peers,
    /// The dialer dialled another name; the listener's own.
    Name(String),
    /// The dialer belongs to another cluster; the listener's cluster id.
    ClusterId([u8; 16]),
    /// The dialer presents no cluster id but group 0 records it as a member of this
    /// cluster (the listener's id): it lost its data directory and must not vote.
    LostData([u8; 16]),
}

/// `Wire::Ping` and `Wire::Pong` as frames, ready to write (a test checks them).
pub const PING: [u8; 5] = [0, 0, 0, 1, 5];
pub const PONG: [u8; 5] = [0, 0, 0, 1, 6];

/// Why a frame could not be read or written.
#[derive(Debug)]
pub enum FrameError {
    /// The connection failed or closed.
    Io(io::Error),
    /// The length field is above the limit.
    TooLong { len: u32, limit: u32 },
    /// The length field is zero: no kind byte.
    Empty,
    /// The bytes are not a frame of a known kind.
    Malformed(postcard::Error),
}

impl std::fmt::Display for FrameError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameError::Io(e) => write!(f, "{e}"),
            FrameError::TooLong { len, limit } => {
                write!(f, "frame of {len} bytes is above the limit of {limit}")
            }
            FrameError::Empty => f.write_str("empty frame"),
            FrameError::Malformed(e) => write!(f, "malformed frame: {e}"),
        }
    }
}

impl From<io::Error> for FrameError {
    fn from(e: io::Error) -> FrameError {
        FrameError::Io(e)
    }
}

/// `wire` as a frame, length included; refused when above `limit` (the peer would close
/// the link on it). The size is counted first, so a frame too long is refused without
/// being copied, and the bodies are then copied whole into a buffer of the right size.
pub fn encode(wire: &Wire, limit: u32) -> Result<Vec<u8>, FrameError> {
    let size = postcard::ser_flavors::Size::default();
    let len: usize = postcard::serialize_with_flavor(wire, size).map_err(FrameError::Malformed)?;
    if len > limit as usize {
        return Err(FrameError::TooLong {
            len: u32::try_from(len).unwrap_or(u32::MAX),
            limit,
        });
    }
    let mut buf = vec![0u8; 4 + len];
    buf[..4].copy_from_slice(&(len as u32).to_be_bytes());
    postcard::to_slice(wire, &mut buf[4..]).map_err(FrameError::Malformed)?;
    Ok(buf)
}

/// Decodes what follows a frame's length field: every byte must belong to the value.
pub fn decode(body: &[u8]) -> Result<Wire, FrameError> {
    if body.is_empty() {
        return Err(FrameError::Empty);
    }
    match postcard::take_from_bytes(body) {
        Ok((wire, [])) => Ok(wire),
        Ok(_) => Err(FrameError::Malformed(
            postcard::Error::DeserializeBadEncoding,
        )),
        Err(e) => Err(FrameError::Malformed(e)),
    }
}

/// Reads one frame. The length is checked before the payload is awaited, so a peer cannot
/// make this node buffer more than `limit` bytes.
pub async fn read<R: AsyncRead + Unpin>(r: &mut R, limit: u32) -> Result<Wire, FrameError> {
    let len = r.read_u32().await?;
    if len > limit {
        return Err(FrameError::TooLong { len, limit });
    }
    // Grown as bytes arrive: a length alone does not make this node allocate the limit.
    let mut body = Vec::with_capacity((len as usize).min(64 << 10));
    let got = r.take(u64::from(len)).read_to_end(&mut body).await?;
    if got < len as usize {
        return Err(FrameError::Io(io::ErrorKind::UnexpectedEof.into()));
    }
    decode(&body)
}

/// Writes one frame.
pub async fn write<W: AsyncWrite + Unpin>(
    w: &mut W,
    wire: &Wire,
    limit: u32,
) -> Result<(), FrameError> {
    let buf = encode(wire, limit)?;
    w.write_all(&buf).await?;
    Ok(())
}

#[cfg(test)]
mod tests;
