//! The broker: vhosts and users, shared by every connection.
//!
//! Built once at start and shared as `Arc<Broker>`. It owns no socket and no task; the
//! connection tasks call into it. Users live in its `access::Users` store.
//!
//! The modules below form a one-way chain: each uses only those before it (modules in
//! one group may use each other), so a lower one can be built and tested without the
//! ones above it; `tests/seams.rs` checks this on the source.
//!
//! ```text
//! message, arguments, globals, policy           what a message and an argument are
//! deadletter                                     what a dead letter is (Reason, DeadLetterTarget)
//! memory (+ memory::pagedir)                     the budget, the alarm, the page directory
//! stream                                         the stream log (in memory, its blocks count)
//! records                                        what topology records cost in memory
//! queue + consumer + stream_queue + replica      a queue, its paging, its consumers, dispatch,
//!                                                its way to the cluster's log (replica)
//! exchange                                       exchange kinds and their bindings, routing a key
//! tracer                                         the firehose and message traces
//! persist                                        durability glue: the store, the definitions file
//! vhost + delayed + events                       topology, routing, dead-letter re-routing
//!                                                (vhost::dead_letters), delayed messages, the
//!                                                event exchange (both route back through a vhost)
//! definitions, vhosts, disk                      import/export, the vhost registry, the disk alarm
//! timed                                          what a manual clock fires (the Broker's sweeps)
//! Broker (this file)
//! ```
//!
//! The seams that keep it one-way: a queue dead-letters into the unbounded sink its
//! `DeadLetterTarget` holds (the vhost keeps the receiving end and re-routes); a durable
//! queue holds a `queue::QueueStore` that `Persistence::queue_store` made; the vhost hands
//! a queue its memory accounting and policy settings at construction; the definitions
//! writer asks each vhost for its part through `persist::DurableTopology`. Nothing below
//! the vhost's group names a vhost.

pub mod arguments;
pub mod consumer;
pub mod deadletter;
pub mod definitions;
pub mod delayed;
pub mod disk;
pub mod events;
pub mod exchange;
pub mod globals;
pub mod memory;
pub mod message;
pub mod persist;
pub mod policy;
pub mod queue;
pub mod records;
pub mod replica;
pub mod stream;
pub mod stream_queue;
pub mod timed;
pub mod tracer;
pub mod vhost;
pub mod vhosts;

use crate::access::permissions::Permissions;
use crate::access::{Bootstrap, LoginRefused, Users};
use crate::store::{split_queue_key, StoreHandle};
use memory::pagedir::PageDir;
use memory::Memory;
use message::Message;
use persist::Persistence;
use std::collections::HashMap;
use std::io;
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use vhost::VHost;

/// How long a graceful stop waits for the definitions writer.
const DEFINITIONS_WAIT: std::time::Duration = std::time::Duration::from_secs(10);

#[derive(Debug)]
pub struct Broker {
    vhosts: RwLock<HashMap<String, Arc<VHost>>>,
    users: Arc<Users>,
    next_connection_id: AtomicU64,
    persist: Option<Arc<Persistence>>,
    pub memory: Arc<Memory>,
    disk: Option<disk::DiskMonitor>,
    /// Largest message body accepted (`--max-message-size`).
    pub max_message_size: u64,
    /// SASL mechanisms offered (`--auth-mechanisms`).
    pub auth_mechanisms: Vec<crate::connection::Mechanism>,
    /// What connection.start advertises (`--server-product` and the like).
    pub server_properties: crate::connection::server_properties::ServerProperties,
    /// Who may do what in which vhost (see `access`).
    pub(crate) permissions: Arc<Permissions>,
    /// Global runtime parameters (cluster_name, ...; see `globals`).
    pub globals: Arc<globals::GlobalParameters>,
    /// Logins so far, per protocol (Prometheus).
    pub auth_attempts: crate::access::attempts::AuthAttempts,
    /// Connections, channels and message counters as the management API shows them.
    pub stats: Arc<crate::stats::Stats>,
    /// The event exchange's publisher, with `--event-exchange` only (see `events`).
    pub events: Option<Arc<events::Events>>,
    /// Messages delayed exchanges hold, and the task that routes them when due.
    pub delayed: Arc<delayed::Scheduler>,
    /// The one clock everything time-based reads (`--clock`; see `timed` for what a
    /// manual clock fires).
    pub clock: crate::clock::Clock,
    /// On a cluster node: the Raft log its quorum queues go through (every vhost gets
    /// it; see `replica`).
    replica: Option<Arc<dyn replica::Replica>>,
}

impl Default for Broker {
    fn default() -> Self {
        Self::new()
    }
}

impl Broker {
    /// The message store's and page files' file I/O so far (all zero in memory).
    pub fn io_figures(&self) -> crate::store::iostats::IoFigures {
        self.persist
            .as_ref()
            .map(|p| p.store.io().figures())
            .unwrap_or_default()
    }

    /// On a cluster node: the cluster's log, for what every node shares.
    pub fn cluster(&self) -> Option<&Arc<dyn replica::Replica>> {
        self.replica.as_ref()
    }

    /// On a cluster node: the log's leader, every member and those linked to now.
    pub fn cluster_placement(&self) -> Option<(Option<String>, Vec<String>, Vec<String>)> {
        self.replica.as_ref().map(|r| r.placement())
    }

    /// A broker in memory with RabbitMQ's defaults: vhost `/` and user guest/guest
    /// (loopback only).
    pub fn new() -> Self {
        let boot = Bootstrap::default();
        let defs = boot
            .prepare(crate::store::definitions::Definitions::default())
            .unwrap_or_default();
        Self::from_definitions(Memory::new(memory::default_limit()), &boot, &defs)
    }

    /// A broker that keeps everything in memory and touches no file (the in-memory mode,
    /// `--in-memory` or `--data-dir none`): durable exchanges, queues, bindings, users,
    /// vhosts, policies and persistent messages live until the process ends, publisher
    /// confirms go out at once, stream queues keep their logs in memory, and delayed
    /// messages stay in the scheduler's heap. With no disk to page to, queues never page:
    /// publishers are blocked (the memory alarm, connection.blocked) once queued messages
    /// pass the lower of `memory_limit` and `queue_memory`, until consumers drain them.
    /// `boot` says what to create or import; the only file read is its definitions file.
    pub fn in_memory(memory_limit: u64, queue_memory: u64, boot: &Bootstrap) -> io::Result<Self> {
        let defs = boot.prepare(crate::store::definitions::Definitions::default())?;
        let memory = Memory::new(memory_limit.min(queue_memory));
        Ok(Self::from_definitions(memory, boot, &defs))
    }

    /// A broker without a data directory, holding what `defs` define.
    fn from_definitions(
        memory: Arc<Memory>,
        boot: &Bootstrap,
        defs: &crate::store::definitions::Definitions,
    ) -> Self {
        let permissions: Arc<Permissions> = Arc::default();
        let users = Users::new(
            &defs.users,
            boot.loopback_users.clone(),
            None,
            permissions.clone(),
        );
        let mut broker = Self::build(None, users, memory, permissions, boot.clock.clone());
        broker.restore(boot, defs);
        broker
    }

    /// Creates the event exchange (when asked for), the vhosts and everything in them,
    /// the permissions and the global parameters `defs` hold: before any client comes.
    fn restore(&mut self, boot: &Bootstrap, defs: &crate::store::definitions::Definitions) {
        // Before the vhosts: the exchange exists when bindings to it are restored.
        if boot.event_exchange {
            self.enable_events(&boot.default_vhost);
        }
        for v in &defs.vhosts {
            self.create_vhost(&v.name, vhost::VhostMetadata::default());
        }
        for vhost in self.all_vhosts() {
            vhost.restore(defs);
        }
        self.permissions.restore(defs);
        self.globals.restore(&defs.global_parameters);
    }

    /// A broker whose durable topology and persistent messages live in `data_dir`: it
    /// locks the directory, loads the definitions and recovers the stored messages.
    /// Queues page to `<data_dir>/pages` once their messages take more than
    /// `queue_memory`; publishers are blocked above `memory_limit`. `boot` says what
    /// to import, or to create on a first start.
    pub fn open(
        data_dir: &Path,
        memory_limit: u64,
        queue_memory: u64,
        disk_free_limit: u64,
        boot: &Bootstrap,
    ) -> io::Result<Self> {
        // Measured before the store's index and recovery plan exist: they are counted
        // on their own below.
        let baseline = memory::resident_bytes().unwrap_or(0).min(16 << 20);
        let (store, recovered) = StoreHandle::open(data_dir)?;
        let permissions: Arc<Permissions> = Arc::default();
        let persist = Persistence::new(
            store,
            data_dir.join("definitions.json"),
            permissions.clone(),
        )?;
        let defs = boot.prepare(persist.load_definitions()?)?;
        // After the store's lock: a second broker on this directory must not wipe them.
        let pages = PageDir::create(&data_dir.join("pages"), persist.store.io().clone())?;
        let memory = Memory::with_paging(memory_limit, queue_memory, Some(pages));
        // The budget is for the whole process: what it took before any message (code,
        // runtime, buffers; at most 16 MiB, as an application embedding the broker is not
        // the broker), the store's index, which grows with the backlog, and the recovery
        // plan until it is read through count against it besides the messages.
        let recovering = Arc::new(AtomicU64::new(recovered.heap_bytes()));
        memory.count_also({
            let (store, recovering) = (persist.store.clone(), recovering.clone());
            move || baseline + store.index_bytes() + recovering.load(Ordering::Relaxed)
        });
        // A failed store write raises the disk alarm at once (see `disk`). Weak: the
        // memory holds the store (its index is counted), which holds this hook.
        persist.store.on_write_failure({
            let memory = Arc::downgrade(&memory);
            move |_| {
                if let Some(m) = memory.upgrade() {
                    m.disk_write_failed();
                }
            }
        });
        let users = Users::new(
            &defs.users,
            boot.loopback_users.clone(),
            Some(persist.clone()),
            permissions.clone(),
        );
        let mut broker = Self::build(
            Some(persist.clone()),
            users,
            memory,
            permissions,
            boot.clock.clone(),
        );
        broker.disk = Some(disk::DiskMonitor::new(data_dir, disk_free_limit));
        broker.check_disk();
        broker.replica = boot.replica.clone();
        broker.restore(boot, &defs);
        // Each stored queue is looked up once; messages of vhosts or queues that no
        // longer exist are dropped with one warning per queue.
        let mut targets: HashMap<String, Arc<queue::Queue>> = HashMap::new();
        for (key, count) in recovered.queues() {
            let Some((vhost, queue)) = split_queue_key(key) else {
                continue;
            };
            let Some(v) = broker.vhost(vhost) else {
                tracing::warn!(
                    vhost,
                    queue,
                    dropped = count,
                    "stored messages of a vhost that no longer exists"
                );
                // Settled, so that their segments are reclaimed.
                persist.store.drop_queue(&Arc::from(key));
                continue;
            };
            match v.queue(queue, 0) {
                Ok(q) => {
                    targets.insert(key.to_owned(), q);
                }
                Err(e) => {
                    tracing::warn!(
                        vhost,
                        queue,
                        dropped = count,
                        reason = %e.text,
                        "stored messages of a queue that no longer exists"
                    );
                    persist.store.drop_queue(&Arc::from(key));
                }
            }
        }
        let mut held = delayed::recover::Recovering::new(&broker, &persist.store);
        let mut messages = 0usize;
        recovered.stream(|rec, holders| {
            let mut msg: Option<Message> = None;
            for &(key, delivered) in holders {
                if held.take(key, rec) {
                    continue;
                }
                if let Some(q) = targets.get(key) {
                    // One message however many queues hold it; each gets a cheap clone.
                    let m = msg
                        .get_or_insert_with(|| {
                            Message::new(rec.exchange, rec.routing_key, rec.properties, rec.body)
                        })
                        .clone();
                    q.recover_one(m, rec.id, delivered, holders.len());
                    messages += 1;
                }
            }
        });
        recovering.store(0, Ordering::Relaxed);
        // The plan and the read buffers are gone: their memory goes back before clients
        // come.
        broker.memory.give_back_now();
        tracing::info!(
            queues = defs.queues.len(),
            exchanges = defs.exchanges.len(),
            bindings = defs.bindings.len(),
            messages,
            "recovered"
        );
        // Start from what was recovered, in the current format (written by the
        // definitions writer, before any confirm can depend on it).
        persist.definitions_changed();
        Ok(broker)
    }

    fn build(
        persist: Option<Arc<Persistence>>,
        users: Users,
        memory: Arc<Memory>,
        permissions: Arc<Permissions>,
        clock: crate::clock::Clock,
    ) -> Self {
        let users = Arc::new(users);
        let globals: Arc<globals::GlobalParameters> = Arc::default();
        if let Some(p) = &persist {
            p.register_users(&users);
            p.register_globals(&globals);
        }
        let delayed = delayed::Scheduler::new(memory.clone(), clock.clone());
        Broker {
            vhosts: RwLock::new(HashMap::new()),
            users,
            next_connection_id: AtomicU64::new(1),
            persist,
            memory,
            disk: None,
            max_message_size: crate::channel::MAX_MESSAGE_SIZE,
            auth_mechanisms: vec![
                crate::connection::Mechanism::Plain,
                crate::connection::Mechanism::Amqplain,
            ],
            server_properties: Default::default(),
            permissions,
            globals,
            auth_attempts: Default::default(),
            stats: Arc::new(crate::stats::Stats::with_clock(clock.clone())),
            events: None,
            delayed,
            clock,
            replica: None,
        }
    }

    /// The cluster's name as connection.start advertises it: the `cluster_name`
    /// parameter when set (rabbitmqctl set_cluster_name, the HTTP API), else "warren".
    pub fn cluster_name(&self) -> String {
        match self.globals.get(globals::CLUSTER_NAME) {
            Some(serde_json::Value::String(name)) => name,
            _ => "warren".to_owned(),
        }
    }

    /// Turns the event exchange on (`--event-exchange`): `amq.rabbitmq.event` is declared
    /// in `vhost` (now, or when it is created) and every vhost reports its events.
    /// Call before the broker is shared; `Events::start` then starts publishing.
    pub fn enable_events(&mut self, vhost: &str) -> Arc<events::Events> {
        let node = crate::node::name();
        let events = events::Events::new(vhost, &node, self.clock.clone());
        for v in self.all_vhosts() {
            events.attach(&v);
        }
        self.events = Some(events.clone());
        events
    }

    /// Whether `name` is a user (set_permissions refuses unknown users).
    pub fn user_exists(&self, name: &str) -> bool {
        self.users.get(name).is_some()
    }

    /// Users, vhosts or permissions changed: the definitions file will be rewritten.
    pub(crate) fn definitions_changed(&self) {
        if let Some(p) = &self.persist {
            p.definitions_changed();
        }
    }

    /// Every vhost now, for the statistics collector.
    pub fn vhost_list(&self) -> Vec<Arc<VHost>> {
        self.all_vhosts()
    }

    /// Every vhost now (a copy: the map's lock is not held while they are used).
    fn all_vhosts(&self) -> Vec<Arc<VHost>> {
        self.vhosts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// The TTL sweep over every vhost.
    pub fn expire_messages(&self) {
        for v in self.all_vhosts() {
            v.expire_messages();
        }
    }

    /// Sets or clears the disk alarm from the free space on the data directory now.
    /// Returns whether the disk is near trouble, so the caller checks again soon.
    pub fn check_disk(&self) -> bool {
        self.disk.as_ref().is_some_and(|d| d.check(&self.memory))
    }

    /// Free bytes on the data directory's file system now (None: in memory only, or the
    /// file system does not say).
    pub fn disk_free(&self) -> Option<u64> {
        self.disk.as_ref().and_then(disk::DiskMonitor::free)
    }

    /// Bytes handed to the disk threads and not yet written (persistent messages for the
    /// store, page-file chunks): when the disk falls behind, publishers are read more
    /// slowly (see the connection loop).
    pub fn store_backlog(&self) -> u64 {
        let pages = self.memory.page_dir().map_or(0, PageDir::in_flight);
        let log = self.replica.as_ref().map_or(0, |r| r.backlog());
        pages + log + self.persist.as_ref().map_or(0, |p| p.store.queued_bytes())
    }

    /// Waits until every persistent message and settlement so far is on disk, and the
    /// definitions as they are now (for at most `DEFINITIONS_WAIT`: a disk that stays
    /// full must not stop a shutdown).
    pub async fn flush(&self) {
        // Purges settle paged persistent messages on the page I/O thread: their acks
        // must reach the store before its last flush.
        self.page_io_done().await;
        if let Some(p) = &self.persist {
            if let Err(e) = p.store.flush().await {
                tracing::error!(error = %e, "message store failed before shutdown");
            }
            match tokio::time::timeout(DEFINITIONS_WAIT, p.definitions().wait()).await {
                Ok(Ok(())) => {}
                _ => tracing::error!("definitions not written before shutdown; see the log"),
            }
        }
    }

    /// Test builds only (feature `test-hooks`): holds the message store's writer, as a
    /// disk that does not answer would, until the returned sender is used or dropped.
    /// Everything sent to the store meanwhile (commits, confirms) waits behind it.
    #[cfg(feature = "test-hooks")]
    pub fn hold_store(&self) -> std::sync::mpsc::Sender<()> {
        let (release, held) = std::sync::mpsc::channel::<()>();
        if let Some(p) = &self.persist {
            // A flush's callback runs on the writer thread: it blocks it.
            p.store.flush_then(crate::store::Done::new(move |_| {
                let _ = held.recv();
            }));
        }
        release
    }

    /// Resolves once the page I/O thread has done everything it was given so far (page
    /// writes, deletes, purged tails settled).
    pub async fn page_io_done(&self) {
        if let Some(dir) = self.memory.page_dir() {
            dir.idle().await;
        }
    }

    /// How many times the definitions file was written since start (a metric; tests
    /// check that a burst of declares is coalesced).
    pub fn definitions_writes(&self) -> u64 {
        self.persist
            .as_ref()
            .map_or(0, |p| p.definitions().writes())
    }

    pub fn vhost(&self, name: &str) -> Option<Arc<VHost>> {
        self.vhosts
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(name)
            .cloned()
    }

    pub fn next_connection_id(&self) -> u64 {
        self.next_connection_id.fetch_add(1, Ordering::Relaxed)
    }

    /// The users: logins, and the in-process API the management API and CLI call.
    pub fn users(&self) -> &Arc<Users> {
        &self.users
    }

    pub fn authenticate(
        &self,
        user: &str,
        password: &str,
        peer: IpAddr,
    ) -> Result<(), LoginRefused> {
        self.users.authenticate(user, password, peer)
    }

    /// A login without a password (SASL EXTERNAL: the verified TLS certificate names
    /// the user): the user must exist; the loopback rule still applies.
    pub fn authenticate_external(&self, user: &str, peer: IpAddr) -> Result<(), LoginRefused> {
        self.users.authenticate_external(user, peer)
    }
}
