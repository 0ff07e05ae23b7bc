//! A cluster node's identity at start (docs/clustering.md 3.1): the `--peers` list, the
//! cookie file, `<data_dir>/cluster.json`, and every refusal to start with its exact text.
//!
//! [`resolve`] is what the start-up calls before any listener opens: it returns `None`
//! for a single node, the node's [`Identity`] for a cluster node, or the refusal text
//! that the binary prints as a configuration error (`Error: ...`, exit status 1).

use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

pub use super::{NodeId, PeerAddr};

/// The cookie: 1 to 255 bytes, as RabbitMQ's Erlang cookie.
const COOKIE_MAX: usize = 255;

/// `cluster.json`'s format number; a later format is refused rather than misread.
const FORMAT: u32 = 1;

const CLUSTER_FILE: &str = "cluster.json";

/// What the start-up knows before it decides whether this is a cluster node.
#[derive(Clone, Debug)]
pub struct Start<'a> {
    /// `--node-name`.
    pub node: &'a str,
    /// `--peers` as given, `None` for a single node.
    pub peers: Option<&'a str>,
    /// `--cluster-cookie-file`.
    pub cookie_file: &'a Path,
    /// The data directory (`--data-dir`), whether or not `in_memory` is set.
    pub data_dir: &'a Path,
    /// `--in-memory`: no data directory is used.
    pub in_memory: bool,
}

/// A cluster node's identity, checked against its data directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// This node's name.
    pub node: String,
    /// This node's [`NodeId`].
    pub id: NodeId,
    /// Every member, this node included, sorted by name: `peers[i]` is node `i + 1`.
    pub peers: Vec<PeerAddr>,
    /// The shared secret of the node-to-node handshake.
    pub cookie: Vec<u8>,
    /// Group 0's cluster id once this node has applied it (`Meta::ClusterId`).
    pub cluster_id: Option<[u8; 16]>,
    /// Where `cluster.json` lives.
    pub data_dir: PathBuf,
}

/// `<data_dir>/cluster.json`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct ClusterFile {
    format: u32,
    node: String,
    peers: Vec<String>,
    /// Hex; absent until the node has applied group 0's `Meta::ClusterId`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cluster_id: Option<String>,
}

/// Checks everything doc 3.1 checks at start, in its order, and writes `cluster.json` at
/// a cluster node's first start. Blocking (reads and fsyncs files).
pub fn resolve(start: &Start) -> Result<Option<Identity>, String> {
    let Some(peers) = start.peers else {
        return single_node(start).map(|()| None);
    };
    let peers = parse_peers(peers)?;
    if start.in_memory {
        return Err(
            "--peers needs a data directory: a cluster node keeps its Raft log on disk".into(),
        );
    }
    let id = node_id(&peers, start.node).ok_or_else(|| {
        format!(
            "--node-name '{}' is not one of --peers ({})",
            start.node,
            names(&peers).join(", ")
        )
    })?;
    let cookie = read_cookie(start.cookie_file)?;
    let cluster_id = check_data_dir(start, &peers)?;
    Ok(Some(Identity {
        node: start.node.to_owned(),
        id,
        peers,
        cookie,
        cluster_id,
        data_dir: start.data_dir.to_owned(),
    }))
}

/// A node started without `--peers` must not open a cluster node's directory.
fn single_node(start: &Start) -> Result<(), String> {
    if start.in_memory {
        return Ok(());
    }
    match read_cluster_file(start.data_dir)? {
        Some(file) => Err(format!(
            "data directory '{}' belongs to cluster node '{}'; start it with --node-name {} \
             and the same --peers",
            start.data_dir.display(),
            file.node,
            file.node
        )),
        None => Ok(()),
    }
}

/// Parses `NAME=HOST:PORT,...` into the members sorted by name (so that a node's
/// [`NodeId`] is the same on every node, whatever order each was given).
pub fn parse_peers(list: &str) -> Result<Vec<PeerAddr>, String> {
    let mut peers = Vec::new();
    for entry in list.split(',').map(str::trim) {
        let peer =
            parse_peer(entry).ok_or_else(|| format!("--peers: '{entry}' is not NAME=HOST:PORT"))?;
        if peers.iter().any(|p: &PeerAddr| p.name == peer.name) {
            return Err(format!("--peers: '{}' is listed twice", peer.name));
        }
        peers.push(peer);
    }
    peers.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(peers)
}

fn parse_peer(entry: &str) -> Option<PeerAddr> {
    let (name, addr) = entry.split_once('=')?;
    let (host, port) = addr.rsplit_once(':')?;
    let well_formed = !name.is_empty() && !host.is_empty() && port.parse::<u16>().is_ok();
    well_formed.then(|| PeerAddr {
        name: name.to_owned(),
        addr: addr.to_owned(),
    })
}

/// `name`'s [`NodeId`] among the sorted `peers`.
pub fn node_id(peers: &[PeerAddr], name: &str) -> Option<NodeId> {
    let pos = peers.iter().position(|p| p.name == name)?;
    Some(pos as NodeId + 1)
}

fn names(peers: &[PeerAddr]) -> Vec<&str> {
    peers.iter().map(|p| p.name.as_str()).collect()
}

/// Reads the cookie: present, private to its owner, 1-255 bytes once a trailing newline
/// is dropped (an editor's newline must not make two nodes' cookies differ).
pub fn read_cookie(path: &Path) -> Result<Vec<u8>, String> {
    let shown = path.display();
    let meta = fs::metadata(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => format!(
            "cluster cookie file '{shown}' not found: every node of a cluster needs the same cookie"
        ),
        _ => format!("cluster cookie file '{shown}' cannot be read: {e}"),
    })?;
    if meta.permissions().mode() & 0o077 != 0 {
        return Err(format!(
            "cluster cookie file '{shown}' must be readable by its owner only (chmod 600)"
        ));
    }
    let mut cookie =
        fs::read(path).map_err(|e| format!("cluster cookie file '{shown}' cannot be read: {e}"))?;
    for end in [b'\n', b'\r'] {
        if cookie.last() == Some(&end) {
            cookie.pop();
        }
    }
    match cookie.len() {
        0 => Err(format!(
            "cluster cookie file '{shown}' is empty: every node of a cluster needs the same cookie"
        )),
        n if n > COOKIE_MAX => Err(format!(
            "cluster cookie file '{shown}' holds {n} bytes; a cookie is 1 to {COOKIE_MAX} bytes"
        )),
        _ => Ok(cookie),
    }
}

/// Checks `cluster.json` against the flags, or writes it on an empty directory. Returns the
/// cluster id it records.
fn check_data_dir(start: &Start, peers: &[PeerAddr]) -> Result<Option<[u8; 16]>, String> {
    let dir = start.data_dir.display();
    let Some(file) = read_cluster_file(start.data_dir)? else {
        if holds_single_node_data(start.data_dir) {
            return Err(format!(
                "data directory '{dir}' holds a single-node broker's data; start a cluster \
                 node on an empty directory and import the definitions"
            ));
        }
        let file = ClusterFile {
            format: FORMAT,
            node: start.node.to_owned(),
            peers: names(peers).iter().map(|n| n.to_string()).collect(),
            cluster_id: None,
        };
        write_cluster_file(start.data_dir, &file)?;
        return Ok(None);
    };
    if file.node != start.node {
        return Err(format!(
            "data directory '{dir}' belongs to node '{}', not to '{}' (--node-name)",
            file.node, start.node
        ));
    }
    if file.peers != names(peers) {
        return Err(format!(
            "--peers names ({}) but data directory '{dir}' belongs to a cluster of ({}); \
             phase 1 cannot change membership",
            names(peers).join(", "),
            file.peers.join(", ")
        ));
    }
    match &file.cluster_id {
        None => Ok(None),
        Some(hex) => parse_cluster_id(hex).map(Some).ok_or_else(|| {
            format!(
                "'{}' holds a malformed cluster_id",
                start.data_dir.join(CLUSTER_FILE).display()
            )
        }),
    }
}

/// The definitions file or a message segment: a single node has run here.
fn holds_single_node_data(dir: &Path) -> bool {
    if dir.join("definitions.json").exists() {
        return true;
    }
    let Ok(entries) = fs::read_dir(dir.join("msgs")) else {
        return false;
    };
    entries
        .flatten()
        .any(|e| e.path().extension().is_some_and(|x| x == "seg"))
}

fn read_cluster_file(dir: &Path) -> Result<Option<ClusterFile>, String> {
    let path = dir.join(CLUSTER_FILE);
    let text = match fs::read(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("'{}' cannot be read: {e}", path.display())),
    };
    let file: ClusterFile = serde_json::from_slice(&text)
        .map_err(|e| format!("'{}' is not a cluster file: {e}", path.display()))?;
    if file.format != FORMAT {
        return Err(format!(
            "'{}' has format {}; this warren reads format {FORMAT}",
            path.display(),
            file.format
        ));
    }
    Ok(Some(file))
}

fn write_cluster_file(dir: &Path, file: &ClusterFile) -> Result<(), String> {
    let path = dir.join(CLUSTER_FILE);
    let mut json = serde_json::to_vec(file).map_err(|e| e.to_string())?;
    json.push(b'\n');
    fs::create_dir_all(dir)
        .and_then(|()| write_atomic(&path, &json))
        .map_err(|e| format!("'{}' cannot be written: {e}", path.display()))
}

/// Replaces `path` with `bytes` so that a crash leaves the old file or the new one: temp
/// file, fsync, rename, fsync of the directory (which makes the rename durable).
// TODO(issue 17): the same steps as store::definitions::save; one helper once
// store/atomic.rs (i17log) lands.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = path.with_extension("json.tmp");
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)?;
    f.write_all(bytes)?;
    f.sync_all()?;
    drop(f);
    fs::rename(&tmp, path)?;
    File::open(dir)?.sync_all()
}

impl Identity {
    /// Records group 0's cluster id in `cluster.json` when this node applies it.
    pub fn record_cluster_id(&mut self, id: [u8; 16]) -> Result<(), String> {
        let file = ClusterFile {
            format: FORMAT,
            node: self.node.clone(),
            peers: names(&self.peers).iter().map(|n| n.to_string()).collect(),
            cluster_id: Some(hex(&id)),
        };
        write_cluster_file(&self.data_dir, &file)?;
        self.cluster_id = Some(id);
        Ok(())
    }

    /// The peer names sorted, as the handshake digests them.
    pub fn names(&self) -> Vec<&str> {
        names(&self.peers)
    }
}

/// The text a member that lost its data directory exits with, once a peer refused its
/// handshake because group 0 records it as joined.
pub fn lost_data_refusal(data_dir: &Path, node: &str, cluster_id: &[u8; 16]) -> String {
    format!(
        "data directory '{}' is empty but {node} was already a member of cluster {}: a \
         member that lost its data cannot rejoin in phase 1 (its vote could help elect a \
         leader that lacks confirmed messages)",
        data_dir.display(),
        hex(cluster_id)
    )
}

/// Lower-case hex, as `cluster.json` and the logs show a cluster id.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

fn parse_cluster_id(text: &str) -> Option<[u8; 16]> {
    let mut id = [0u8; 16];
    if text.len() != 32 || !text.is_ascii() {
        return None;
    }
    for (i, b) in id.iter_mut().enumerate() {
        *b = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(id)
}

#[cfg(test)]
mod tests;
