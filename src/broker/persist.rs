//! Durability glue: the broker's side of the message store and the definitions file.
//!
//! Built by `Broker::open` when the broker has a data directory. Vhosts call
//! `save_definitions` after a change to durable topology; queues hold a `QueueStore`
//! to record what happens to their persistent messages. Disk work happens on the
//! store's writer thread, except the definitions file, which is written (temp file,
//! fsync, rename) by the caller after it released the topology lock: declares are rare
//! and a declare-ok must not come before the object it announces is on disk.

use super::message::Message;
use super::queue::Queue;
use super::vhost::VHost;
use crate::codec::properties as props;
use crate::store::definitions::{self, Definitions, PermissionDef, UserDef, VhostDef};
use crate::store::{queue_key, StoreHandle};
use crate::store::{Done, StoredMessage};
use bytes::Bytes;
use serde_json::{Map, Value};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, Weak};

/// RabbitMQ's salted SHA-256 of "guest" (salt "warr"), as its definitions files hold
/// passwords; written so the file imports into RabbitMQ with the same login.
const GUEST_PASSWORD_HASH: &str = "d2Fycg/mEkHejBhwT2TESLC0I72WJK5djSfz+byMJddMQLtL";

pub struct Persistence {
    pub store: StoreHandle,
    defs_path: PathBuf,
    /// Serialises snapshot-and-write so an older snapshot never lands after a newer one.
    defs_lock: Mutex<()>,
    vhosts: Mutex<Vec<Weak<VHost>>>,
}

impl std::fmt::Debug for Persistence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Persistence")
            .field("defs_path", &self.defs_path)
            .finish()
    }
}

impl Persistence {
    pub fn new(store: StoreHandle, defs_path: PathBuf) -> Arc<Persistence> {
        Arc::new(Persistence {
            store,
            defs_path,
            defs_lock: Mutex::new(()),
            vhosts: Mutex::new(Vec::new()),
        })
    }

    pub fn register(&self, vhost: &Arc<VHost>) {
        self.vhosts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Arc::downgrade(vhost));
    }

    pub fn load_definitions(&self) -> std::io::Result<Definitions> {
        definitions::load(&self.defs_path)
    }

    /// Writes every vhost's durable topology to the definitions file. A failure is
    /// logged: the broker keeps serving, as RabbitMQ does when its disk fills.
    pub fn save_definitions(&self) {
        let _guard = self.defs_lock.lock().unwrap_or_else(|e| e.into_inner());
        let vhosts: Vec<Arc<VHost>> = self
            .vhosts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        let mut defs = Definitions {
            users: vec![UserDef {
                name: "guest".to_owned(),
                password_hash: GUEST_PASSWORD_HASH.to_owned(),
                hashing_algorithm: "rabbit_password_hashing_sha256".to_owned(),
                tags: vec!["administrator".to_owned()],
                limits: Value::Object(Map::new()),
                extra: Map::new(),
            }],
            ..Definitions::default()
        };
        for vhost in &vhosts {
            defs.vhosts.push(VhostDef {
                name: vhost.name.clone(),
                extra: Map::new(),
            });
            defs.permissions.push(PermissionDef {
                user: "guest".to_owned(),
                vhost: vhost.name.clone(),
                configure: ".*".to_owned(),
                write: ".*".to_owned(),
                read: ".*".to_owned(),
                extra: Map::new(),
            });
            vhost.durable_definitions(&mut defs);
        }
        if let Err(e) = definitions::save(&self.defs_path, &defs) {
            tracing::error!(error = %e, path = %self.defs_path.display(), "cannot save definitions");
        }
    }
}

/// A durable queue's handle on the message store.
#[derive(Clone)]
pub struct QueueStore {
    pub store: StoreHandle,
    /// The store's key for this queue (vhost and name).
    pub key: Arc<str>,
}

impl std::fmt::Debug for QueueStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueStore")
            .field("key", &self.key)
            .finish()
    }
}

impl QueueStore {
    pub fn new(store: &StoreHandle, vhost: &str, name: &str) -> QueueStore {
        QueueStore {
            store: store.clone(),
            key: queue_key(vhost, name),
        }
    }
}

/// Writes `msg` to the message store if it is persistent (delivery mode 2) and reached
/// a durable queue, and returns its store id; `done` then fires after the fdatasync.
/// Returns 0 when nothing was stored (`done` is dropped unused and callers confirm at
/// once).
pub fn store_message(msg: &Message, targets: &[Arc<Queue>], done: Option<Done>) -> u64 {
    if props::delivery_mode(msg.properties()) != Some(2) {
        return 0;
    }
    let mut keys = Vec::new();
    let mut store = None;
    for q in targets {
        if let Some(s) = &q.store {
            keys.push(s.key.clone());
            store.get_or_insert(&s.store);
        }
    }
    let Some(store) = store else { return 0 };
    let stored = StoredMessage {
        exchange: msg.exchange().to_owned(),
        routing_key: msg.routing_key().to_owned(),
        // The store keeps its own copy: it writes on another thread, after we moved on.
        properties: Bytes::copy_from_slice(msg.properties()),
        body: Bytes::copy_from_slice(msg.body()),
    };
    store.append(stored, keys, done)
}
