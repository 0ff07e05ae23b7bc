//! The accept loop and graceful shutdown.
//!
//! `start` binds the listener, spawns the accept loop and returns a `Server` with the
//! bound address and a shutdown handle. Shutdown stops accepting, asks every connection
//! to close with 320 CONNECTION_FORCED, and waits (bounded) for them to finish; dropping
//! the `Server` does the same, with the waiting and the last flush left to a task on the
//! runtime it was dropped on (the embedding API's `Drop`, see `embed`). A
//! connection task that panics is logged here by name and the broker goes on (its drop
//! guard released what it held).
//! With `--max-connections`, the loop stops accepting while that many connections are
//! served, as RabbitMQ 3.10's listener does with `connection_max` (Ranch's
//! `max_connections`): further clients wait in the listen backlog, unanswered, until
//! a connection ends. The limit covers the plain and the TLS listener together (a TLS
//! connection counts from accept, through its TLS handshake).

use crate::broker::Broker;
use crate::config::Config;
use crate::connection::{self, Accepted, ConnectionName};
use crate::listen;
use crate::shards::{Detached, Shards};
use crate::tls::Tls;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::{self, JoinError, JoinSet};
use tracing::{error, info, warn};

/// An HTTP listener being served: its (first) address and one task per socket.
pub(crate) type Served = (SocketAddr, Vec<tokio::task::JoinHandle<()>>);

/// A running broker: its addresses, its clock, counters for assertions (see
/// [`Server::counters`]) and its shutdown.
///
/// [`Server::shutdown`] stops it gracefully and waits until it has stopped. Dropping it
/// without that stops it too: it stops accepting at once and asks every connection to
/// close (320 CONNECTION_FORCED); waiting for the connections and the last flush of the
/// message store then run in a task on the tokio runtime it is dropped on (when there is
/// none, or that runtime ends first, the message store still syncs what it was given when
/// the broker's last reference goes, and releases its data directory).
pub struct Server {
    addr: SocketAddr,
    /// The amqps listener's address and TLS configuration, when one is on.
    tls: Option<(SocketAddr, Arc<Tls>)>,
    broker: Arc<Broker>,
    shutdown: watch::Sender<bool>,
    /// Every task that must end before the last flush: the accept loop, housekeeping,
    /// one per HTTP socket. Empty once the broker was told to stop.
    tasks: Vec<tokio::task::JoinHandle<()>>,
    /// The management listener's (first) address, when it is on.
    management: Option<SocketAddr>,
    /// The Prometheus listener's, when it is on.
    prometheus: Option<SocketAddr>,
    /// The clock the broker reads (`Config::clock`).
    pub(crate) clock: crate::clock::Clock,
    /// Who `amqp_url` logs in as, and where (see `embed::handle`).
    pub(crate) login: crate::embed::Login,
    /// This broker's cluster node, when it was started with `--peers`.
    #[cfg(feature = "cluster")]
    cluster: Option<crate::cluster::node::Node>,
}

/// Starts a broker as `config` says and returns once it accepts connections.
///
/// The library's first entry point, kept for applications that build a [`Config`]
/// themselves; [`Server::builder`] starts one with a test's defaults.
pub async fn start(config: Config) -> io::Result<Server> {
    let boot = crate::access::Bootstrap::from_config(&config);
    start_with(config, boot).await
}

/// `start`, with the users, vhosts and definitions to begin from given apart from the
/// configuration (the builder adds its own).
pub(crate) async fn start_with(
    config: Config,
    #[allow(unused_mut)] mut boot: crate::access::Bootstrap,
) -> io::Result<Server> {
    // Settings are checked before anything is opened or created.
    let server_properties = config
        .server_properties()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    config
        .check_build()
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let tls = match config.tls_files() {
        Some(files) => Some(Arc::new(Tls::load(files)?)),
        None if config.tls_port.is_some() => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "--tls-port needs --tls-cert and --tls-key",
            ))
        }
        None => None,
    };
    // A cluster node's identity is checked before anything is opened (doc 3.1).
    #[cfg(feature = "cluster")]
    let cluster = crate::cluster::start::identity(&config)?;
    #[cfg(feature = "cluster")]
    if let Some((_, shared, _)) = &cluster {
        boot.replica = Some(shared.clone());
    }
    let limit = config
        .memory_limit
        .unwrap_or_else(crate::broker::memory::default_limit);
    let mut broker = match config.disk_data_dir() {
        Some(dir) => {
            std::fs::create_dir_all(dir)?;
            Broker::open(
                dir,
                limit,
                config.queue_memory,
                config.disk_free_limit,
                &boot,
            )?
        }
        None => Broker::in_memory(limit, config.queue_memory, &boot)?,
    };
    broker.max_message_size = config.max_message_size;
    broker.auth_mechanisms = config.auth_mechanisms.clone();
    broker.server_properties = server_properties;
    if let Some(events) = &broker.events {
        events.start();
    }
    let broker = Arc::new(broker);
    broker.register_with_clock();
    // The group starts once the broker exists (its machine applies to it), and the node
    // waits for a leader before it opens its listeners.
    #[cfg(all(feature = "cluster", feature = "management"))]
    if let Some(r) = broker.cluster() {
        r.set_http(crate::http::listeners::replayer(&config, &broker));
    }
    #[cfg(feature = "cluster")]
    let cluster = match cluster {
        Some((identity, shared, settings)) => Some(
            crate::cluster::node::start(
                shared,
                &broker,
                &identity,
                &settings,
                config.max_message_size,
                None,
            )
            .await?,
        ),
        None => None,
    };
    let plain = listen::bind_all(&config.bind, config.port).await?;
    let addr = first_addr(&plain)?;
    let tls = match (tls, config.tls_listener_port()) {
        (Some(tls), Some(port)) => Some((listen::bind_all(&config.bind, port).await?, tls)),
        _ => None,
    };
    let tls_addr = match &tls {
        Some((listeners, config)) => Some((first_addr(listeners)?, config.clone())),
        None => None,
    };
    let (shutdown, rx) = watch::channel(false);
    let mut tasks = Vec::new();
    // The HTTP listeners: the one place the `management` feature decides (config's
    // check_build has refused their ports already when it is off).
    #[cfg(feature = "management")]
    let (management, prometheus) = {
        let no_tls = Vec::new();
        let tls_sockets = tls.as_ref().map_or(&no_tls, |(l, _)| l);
        let amqp = [
            (plain.as_slice(), "amqp"),
            (tls_sockets.as_slice(), "amqp/ssl"),
        ];
        let (management, prometheus) =
            crate::http::listeners::start(&config, &broker, amqp, &rx).await?;
        // Their tasks join the others that must end before the last flush.
        let mut addr_of = |served: Option<Served>| {
            served.map(|(addr, served_by)| {
                tasks.extend(served_by);
                addr
            })
        };
        (addr_of(management), addr_of(prometheus))
    };
    #[cfg(not(feature = "management"))]
    let (management, prometheus) = (None, None);
    tasks.push(tokio::spawn(housekeeping(broker.clone(), rx.clone())));
    // After recovery: what fell due while the broker was down is routed now, in order.
    broker.delayed.start();
    // Detached: it ends with the shutdown signal.
    tokio::spawn(crate::stats::collector::run(
        broker.clone(),
        Duration::from_millis(config.stats_interval),
        rx.clone(),
    ));
    let listeners = Listeners { plain, tls };
    let shards = match config.connection_threads {
        0 => None,
        n => Some(Shards::start(usize::from(n))?),
    };
    tasks.push(tokio::spawn(accept(
        listeners,
        broker.clone(),
        config.max_connections,
        shards,
        rx,
    )));
    Ok(Server {
        addr,
        tls: tls_addr,
        broker,
        shutdown,
        tasks,
        management,
        prometheus,
        login: crate::embed::Login::from_config(&config),
        clock: config.clock,
        #[cfg(feature = "cluster")]
        cluster,
    })
}

/// The address of the first of `listeners` (there is always one).
fn first_addr(listeners: &[TcpListener]) -> io::Result<SocketAddr> {
    listeners
        .first()
        .ok_or_else(|| io::Error::new(io::ErrorKind::AddrNotAvailable, "no listener"))?
        .local_addr()
}

/// How often queues drop messages whose TTL passed while nobody consumed them.
const EXPIRY_SWEEP: Duration = Duration::from_millis(200);
/// Resident memory is checked every this many sweeps (once a second).
const RESIDENT_CHECK_EVERY: u32 = 5;
/// How often free disk space is checked (statvfs: a few microseconds). Unpaced
/// publishers write a tmpfs at ~180 MB/s, so a check once a second let them through
/// 94 MiB of headroom; now at most ~18 MB get through between two checks, and ~4 MB
/// near the limit.
const DISK_CHECK: Duration = Duration::from_millis(100);
/// How often while free space is within twice the limit, or a failed write waits for
/// its probe.
const DISK_CHECK_NEAR: Duration = Duration::from_millis(20);

/// Timed work of the whole broker: the TTL sweep, giving freed memory back, the disk
/// alarm.
async fn housekeeping(broker: Arc<Broker>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(EXPIRY_SWEEP);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut n = 0u32;
    let mut disk_check = tokio::time::Instant::now();
    loop {
        tokio::select! {
            _ = shutdown.changed() => break,
            _ = tick.tick() => {
                broker.expire_messages();
                n = n.wrapping_add(1);
                broker.memory.give_back_freed(n.is_multiple_of(RESIDENT_CHECK_EVERY));
            }
            _ = tokio::time::sleep_until(disk_check) => {
                let near = broker.check_disk();
                disk_check = tokio::time::Instant::now()
                    + if near { DISK_CHECK_NEAR } else { DISK_CHECK };
            }
        }
    }
}

/// The listeners one accept loop serves: a socket per bound address.
struct Listeners {
    plain: Vec<TcpListener>,
    tls: Option<(Vec<TcpListener>, Arc<Tls>)>,
}

impl Listeners {
    /// The next client on any listener, with the TLS acceptor for one on an amqps
    /// socket (the configuration current at accept time). Cancel-safe: every accept is.
    async fn accept(&self) -> io::Result<(Accepted, SocketAddr)> {
        let tls = async {
            match &self.tls {
                Some((listeners, tls)) => {
                    let (stream, peer) = accept_any(listeners).await?;
                    Ok((Accepted::Tls(stream, tls.acceptor()), peer))
                }
                None => std::future::pending().await,
            }
        };
        let plain = async {
            let (stream, peer) = accept_any(&self.plain).await?;
            Ok((Accepted::Plain(stream), peer))
        };
        tokio::select! {
            accepted = plain => accepted,
            accepted = tls => accepted,
        }
    }
}

/// The next client on any of `listeners`; one listener (the usual case) needs no
/// allocation.
async fn accept_any(listeners: &[TcpListener]) -> io::Result<(TcpStream, SocketAddr)> {
    let (stream, peer) = match listeners {
        [] => std::future::pending().await,
        [one] => one.accept().await,
        many => {
            let accepts = many.iter().map(|l| Box::pin(l.accept()));
            futures::future::select_all(accepts).await.0
        }
    }?;
    Ok((stream, listen::canonical(peer)))
}

async fn accept(
    listeners: Listeners,
    broker: Arc<Broker>,
    max_connections: Option<usize>,
    shards: Option<Shards>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    // Each running connection's name, to log which one a panicked task served.
    let mut names: HashMap<task::Id, Arc<ConnectionName>> = HashMap::new();
    loop {
        let room = max_connections.is_none_or(|max| connections.len() < max);
        tokio::select! {
            _ = shutdown.changed() => break,
            accepted = listeners.accept(), if room => match accepted {
                Ok((accepted, peer)) => {
                    let name = Arc::new(ConnectionName::new(broker.next_connection_id(), peer));
                    let id = spawn(&mut connections, shards.as_ref(), accepted, name.clone(), broker.clone(), shutdown.clone());
                    if let Some(id) = id {
                        names.insert(id, name);
                    }
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off rather than spin.
                    warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            Some(joined) = connections.join_next_with_id(), if !connections.is_empty() => {
                ended(&mut names, joined);
            }
        }
    }
    drop(listeners);
    let drain = async {
        while let Some(joined) = connections.join_next_with_id().await {
            ended(&mut names, joined);
        }
    };
    if tokio::time::timeout(Duration::from_secs(5), drain)
        .await
        .is_err()
    {
        warn!("connections did not close in time; aborting them");
        connections.abort_all();
    }
}

/// Starts a connection's task: on the caller's runtime, or with connection threads on
/// the next one of them, its socket moved to that thread's I/O driver first.
fn spawn(
    connections: &mut JoinSet<()>,
    shards: Option<&Shards>,
    accepted: Accepted,
    name: Arc<ConnectionName>,
    broker: Arc<Broker>,
    shutdown: watch::Receiver<bool>,
) -> Option<task::Id> {
    let Some(shards) = shards else {
        let serve = connection::serve(accepted, name, broker, shutdown);
        return Some(connections.spawn(serve).id());
    };
    let detached = match Detached::from(accepted) {
        Ok(detached) => detached,
        Err(e) => {
            warn!(error = %e, "cannot move a connection to its thread");
            return None;
        }
    };
    let serve = async move {
        match detached.attach() {
            Ok(accepted) => connection::serve(accepted, name, broker, shutdown).await,
            Err(e) => warn!(error = %e, "cannot move a connection to its thread"),
        }
    };
    Some(connections.spawn_on(serve, shards.next()).id())
}

/// A connection task ended. A panic is logged with the connection's name; its drop guard
/// has already given back what it held, and the broker goes on.
fn ended(
    names: &mut HashMap<task::Id, Arc<ConnectionName>>,
    joined: Result<(task::Id, ()), JoinError>,
) {
    let id = match &joined {
        Ok((id, ())) => *id,
        Err(e) => e.id(),
    };
    let name = names.remove(&id);
    let Err(e) = joined else { return };
    if !e.is_panic() {
        return; // aborted at shutdown
    }
    let payload = e.into_panic();
    let message = payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(not a string)");
    let name = name.map_or_else(|| "an unknown connection".to_owned(), |n| n.to_string());
    error!(connection = %name, panic = message, "connection task panicked; its resources were released");
}

impl Server {
    /// The address the broker listens on (with the real port when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The amqps listener's address, when TLS is configured.
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls.as_ref().map(|(addr, _)| *addr)
    }

    /// Reads the TLS certificate, key and CA files again (on SIGHUP): connections
    /// accepted afterwards use them, open ones keep theirs. On error (logged by the
    /// caller) the running configuration stays. Without TLS there is nothing to do.
    pub async fn reload_tls(&self) -> io::Result<()> {
        match &self.tls {
            Some((_, tls)) => tls.reload().await,
            None => Ok(()),
        }
    }

    /// The management API's address, when its listener is on.
    pub fn management_addr(&self) -> Option<SocketAddr> {
        self.management
    }

    /// The Prometheus listener's address, when it is on.
    pub fn prometheus_addr(&self) -> Option<SocketAddr> {
        self.prometheus
    }

    /// This broker's cluster node, when it was started with `--peers` (tests look at
    /// its leader and members).
    #[cfg(feature = "cluster")]
    #[doc(hidden)]
    pub fn cluster(&self) -> Option<&crate::cluster::node::Node> {
        self.cluster.as_ref()
    }

    /// The broker itself, for warren's own tests. Not an API.
    #[doc(hidden)]
    pub fn broker(&self) -> &Arc<Broker> {
        &self.broker
    }

    /// Closes every connection with CONNECTION_FORCED, waits for them to end and for
    /// everything persistent to be on disk.
    pub async fn shutdown(mut self) {
        let tasks = self.stop();
        #[cfg(feature = "cluster")]
        if let Some(node) = self.cluster.take() {
            node.shutdown().await;
        }
        finish(tasks, self.broker.clone()).await;
    }

    /// Tells every task to stop (once): returns the tasks to wait for.
    fn stop(&mut self) -> Vec<tokio::task::JoinHandle<()>> {
        let _ = self.shutdown.send(true);
        // Nothing is routed from now on: held persistent messages stay in the store.
        self.broker.delayed.stop();
        std::mem::take(&mut self.tasks)
    }
}

/// Waits for the broker's tasks to end (the accept loop closes its connections first),
/// then for the last flush.
async fn finish(tasks: Vec<tokio::task::JoinHandle<()>>, broker: Arc<Broker>) {
    for task in tasks {
        let _ = task.await;
    }
    broker.flush().await;
    info!("stopped");
}

impl Drop for Server {
    /// Stops the broker unless `shutdown` did: see the type's documentation.
    fn drop(&mut self) {
        if self.tasks.is_empty() {
            return;
        }
        let tasks = self.stop();
        // The signal's sender lives until the tasks end: a connection waiting for its
        // close-ok would read a dropped sender as a new signal, again and again.
        let signal = std::mem::replace(&mut self.shutdown, watch::channel(true).0);
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let broker = self.broker.clone();
            runtime.spawn(async move {
                finish(tasks, broker).await;
                drop(signal);
            });
        }
    }
}
