//! Durability glue: the broker's side of the message store and the definitions file.
//!
//! Built by `Broker::open` when the broker has a data directory. Vhosts call
//! `definitions_changed` when durable topology changed, under their topology write lock
//! (so that no publish can route to a new queue before its change is numbered); queues
//! hold a `QueueStore` (`queue::store`, made here by `queue_store`) to record what
//! happens to their persistent messages. Disk work happens on the store's threads only:
//! messages on the writer thread, the definitions file on the definitions writer
//! (`store::defwriter`), which coalesces a burst of changes into a few rewrites. A
//! confirm for a persistent message waits for both the fdatasync of the message and the
//! definitions generation current when it was routed.

use super::globals::GlobalParameters;
use super::message::Message;
use super::queue::{Queue, QueueStore};
use crate::access::permissions::Permissions;
use crate::access::Users;
use crate::codec::properties as props;
use crate::store::definitions::{self, Definitions};
use crate::store::defwriter::{DefinitionsHandle, DefinitionsWriter};
use crate::store::{queue_key, StoreHandle};
use crate::store::{Done, StoredMessage};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock, Weak};

/// A vhost as the definitions file sees it: its part of the durable topology. `VHost`
/// implements it; the file's writer asks each registered vhost through it (a dyn call
/// per vhost and rewrite, off every hot path), so that this module never names the vhost
/// and sits below it in the broker's chain.
pub trait DurableTopology: Send + Sync {
    /// Appends this vhost's durable part (itself, its exchanges, queues, bindings,
    /// policies) to `defs`.
    fn durable_definitions(&self, defs: &mut Definitions);
}

pub struct Persistence {
    pub store: StoreHandle,
    defs_path: PathBuf,
    defs: DefinitionsWriter,
    vhosts: Arc<Mutex<Vec<Weak<dyn DurableTopology>>>>,
    users: Arc<OnceLock<Weak<Users>>>,
    globals: Arc<OnceLock<Weak<GlobalParameters>>>,
}

impl std::fmt::Debug for Persistence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Persistence")
            .field("defs_path", &self.defs_path)
            .field("defs", &self.defs)
            .finish()
    }
}

impl Persistence {
    /// Starts the definitions writer for `defs_path` (it writes nothing until asked).
    pub fn new(
        store: StoreHandle,
        defs_path: PathBuf,
        permissions: Arc<Permissions>,
    ) -> std::io::Result<Arc<Persistence>> {
        let vhosts: Arc<Mutex<Vec<Weak<dyn DurableTopology>>>> = Arc::default();
        let users: Arc<OnceLock<Weak<Users>>> = Arc::default();
        let globals: Arc<OnceLock<Weak<GlobalParameters>>> = Arc::default();
        let snapshot = {
            let (vhosts, users, globals) = (vhosts.clone(), users.clone(), globals.clone());
            Box::new(move || snapshot(&vhosts, &users, &globals, &permissions))
        };
        let defs = DefinitionsWriter::start(defs_path.clone(), snapshot)?;
        Ok(Arc::new(Persistence {
            store,
            defs_path,
            defs,
            vhosts,
            users,
            globals,
        }))
    }

    /// The user store whose users the file holds (set once, by the broker).
    pub fn register_users(&self, users: &Arc<Users>) {
        let _ = self.users.set(Arc::downgrade(users));
    }

    /// The global parameters the file holds (set once, by the broker).
    pub fn register_globals(&self, globals: &Arc<GlobalParameters>) {
        let _ = self.globals.set(Arc::downgrade(globals));
    }

    pub fn register<V: DurableTopology + 'static>(&self, vhost: &Arc<V>) {
        let vhost: Weak<V> = Arc::downgrade(vhost);
        let vhost: Weak<dyn DurableTopology> = vhost;
        self.vhosts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(vhost);
    }

    /// A deleted vhost leaves the definitions file with the next write (asked for here).
    pub fn unregister<V: DurableTopology + 'static>(&self, vhost: &Arc<V>) {
        self.vhosts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|v| !std::ptr::addr_eq(v.as_ptr(), Arc::as_ptr(vhost)));
        self.definitions_changed();
    }

    pub fn load_definitions(&self) -> std::io::Result<Definitions> {
        definitions::load(&self.defs_path)
    }

    /// Durable topology changed: the definitions writer will rewrite the file soon.
    /// Non-blocking; called under the topology write lock.
    pub fn definitions_changed(&self) {
        self.defs.handle().request();
    }

    /// The data directory (where the definitions file lives), for stream logs.
    pub fn data_dir(&self) -> &std::path::Path {
        self.defs_path.parent().unwrap_or(std::path::Path::new("."))
    }

    /// The definitions writer, for waiting on it.
    pub fn definitions(&self) -> &DefinitionsHandle {
        self.defs.handle()
    }

    /// The store handle of durable queue `name` of `vhost`.
    pub fn queue_store(&self, vhost: &str, name: &str) -> QueueStore {
        QueueStore {
            store: self.store.clone(),
            key: queue_key(vhost, name),
            definitions: self.definitions().clone(),
        }
    }
}

/// Every vhost's durable topology, as the definitions file holds it. `None` if a vhost
/// is already gone (the broker is being dropped): a partial file must not be written.
fn snapshot(
    vhosts: &Mutex<Vec<Weak<dyn DurableTopology>>>,
    users: &OnceLock<Weak<Users>>,
    globals: &OnceLock<Weak<GlobalParameters>>,
    permissions: &Permissions,
) -> Option<Definitions> {
    let vhosts: Vec<Arc<dyn DurableTopology>> = vhosts
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .map(Weak::upgrade)
        .collect::<Option<_>>()?;
    let users = users.get()?.upgrade()?.definitions();
    let mut defs = Definitions {
        users,
        ..Definitions::default()
    };
    for vhost in &vhosts {
        vhost.durable_definitions(&mut defs);
    }
    permissions.export(&mut defs);
    if let Some(g) = globals.get().and_then(Weak::upgrade) {
        defs.global_parameters = g.definitions();
    }
    Some(defs)
}

/// Writes `msg` to the message store if it is persistent (delivery mode 2) and reached
/// a durable queue, and returns its store id; `done` then fires after the fdatasync and
/// once the definitions current now (which hold `targets` and the bindings that led
/// there) are on disk. Returns 0 when nothing was stored (`done` is dropped unused and
/// callers confirm at once).
/// Whether `store_message` will write this message: persistent, and at least one target
/// queue keeps its messages in the store.
pub fn will_store(msg: &Message, targets: &[Arc<Queue>]) -> bool {
    props::delivery_mode(msg.properties()) == Some(2) && targets.iter().any(|q| q.store.is_some())
}

pub fn store_message(msg: &Message, targets: &[Arc<Queue>], done: Option<Done>) -> u64 {
    if props::delivery_mode(msg.properties()) != Some(2) {
        return 0;
    }
    let mut keys = Vec::new();
    let mut store = None;
    for q in targets {
        if let Some(s) = &q.store {
            keys.push(s.key.clone());
            store.get_or_insert(s);
        }
    }
    let Some(store) = store else { return 0 };
    let done = done.map(|d| store.definitions.cover(d));
    store
        .store
        .append(record(msg, msg.exchange().to_owned()), keys, done)
}

/// The store record of `msg`, under `exchange` (for a delayed message, a name that carries its due time).
/// It shares the message's allocations (no copy of properties or body): the store writes
/// on another thread, after the publisher moved on, and the bytes never change.
pub fn record(msg: &Message, exchange: String) -> StoredMessage {
    let (properties, body) = msg.shared_parts();
    StoredMessage {
        exchange,
        routing_key: msg.routing_key().to_owned(),
        properties,
        body,
    }
}
