//! From the configuration to a cluster node's parts: the identity checks of doc 3.1 (run
//! for every broker with a data directory, so that a single node refuses a cluster
//! node's directory), the Raft and link timers, and the node's shared half that the
//! broker is built with.

use super::identity::{self, Identity, Start};
use super::node::Shared;
use super::{ClusterConfig, PeerAddr, Timers};
use crate::config::Config;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// The cookie file when `--cluster-cookie-file` is not given.
fn default_cookie() -> PathBuf {
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/".into());
    PathBuf::from(home).join(".warren.cookie")
}

/// `None` for a single node; a cluster node's identity, shared half and settings; or the
/// refusal to start (an `InvalidInput` error with doc 3.1's text).
pub fn identity(config: &Config) -> io::Result<Option<(Identity, Arc<Shared>, ClusterConfig)>> {
    let node = config.node_name.clone().unwrap_or_else(crate::node::name);
    let cookie_file = config
        .cluster_cookie_file
        .clone()
        .unwrap_or_else(default_cookie);
    let start = Start {
        node: &node,
        peers: config.peers.as_deref(),
        cookie_file: &cookie_file,
        data_dir: &config.data_dir,
        in_memory: config.disk_data_dir().is_none(),
    };
    if config.peers.is_some() {
        if let Some(dir) = config.disk_data_dir() {
            std::fs::create_dir_all(dir)?;
        }
    }
    let identity = match identity::resolve(&start) {
        Ok(Some(identity)) => identity,
        Ok(None) => return Ok(None),
        Err(refusal) => return Err(io::Error::new(io::ErrorKind::InvalidInput, refusal)),
    };
    let beat = Duration::from_millis(config.cluster_heartbeat_ms);
    let settings = ClusterConfig {
        node: identity.id,
        peers: (1..)
            .zip(identity.peers.iter().cloned())
            .collect::<Vec<(u64, PeerAddr)>>(),
        cookie: identity.cookie.clone().into(),
        timers: Timers {
            heartbeat: beat,
            election_min: beat * 3,
            election_max: beat * 6,
        },
        link_timers: super::transport::Timers {
            ping: beat.min(Duration::from_millis(500)),
            down_after: (beat * 4).min(Duration::from_secs(2)),
            ..Default::default()
        },
    };
    let shared = Shared::new(&identity);
    Ok(Some((identity, shared, settings)))
}
