//! Connection threads (`--connection-threads N`): N threads, each running a
//! single-threaded tokio runtime, on which the accept loop places connections in turn.
//!
//! Why: on the shared work-stealing runtime a connection's task runs on whichever worker
//! polled the socket's readiness or stole it, so a publisher and its queue's consumer
//! connection hop between cores on every wake-up (on 16 cores one pair ran at half its
//! 2-core rate: each hop is a cold cache and a cross-core wake). Here a connection stays
//! on the thread it was given for its whole life: its socket is registered with that
//! thread's own I/O driver, its timers with that thread's timer, and the only cross-thread
//! step left is the outbox send from a queue to a consumer on another thread.
//!
//! Created by `server::start_with` when the configuration asks for it, owned by the
//! `Server` and the accept loop; the threads end when the last owner drops it (their
//! runtimes then drop whatever task is still on them). The accept loop, HTTP, the store
//! and housekeeping stay on the caller's runtime. Nothing here blocks a runtime worker:
//! the threads are plain `std::thread`s, and dropping only signals them.

use crate::connection::Accepted;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// Threads that serve connections, each with its own single-threaded runtime.
pub(crate) struct Shards {
    handles: Vec<Handle>,
    /// Dropping these lets each thread's `block_on` return, which ends the thread.
    _stops: Vec<oneshot::Sender<()>>,
    next: AtomicUsize,
}

impl Shards {
    /// Starts `n` threads (at least one), each with a runtime that has I/O and timers.
    pub(crate) fn start(n: usize) -> io::Result<Shards> {
        let mut handles = Vec::with_capacity(n);
        let mut stops = Vec::with_capacity(n);
        for i in 0..n.max(1) {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            handles.push(runtime.handle().clone());
            let (stop, stopped) = oneshot::channel::<()>();
            stops.push(stop);
            std::thread::Builder::new()
                .name(format!("warren-conn-{i}"))
                .spawn(move || {
                    // Ends when the sender is dropped; tasks still here are dropped with
                    // the runtime, which runs their drop guards.
                    let _ = runtime.block_on(stopped);
                })?;
        }
        Ok(Shards {
            handles,
            _stops: stops,
            next: AtomicUsize::new(0),
        })
    }

    /// The runtime the next connection goes to: round robin, so the two ends of a
    /// publisher -> queue -> consumer pair opened one after the other land on two
    /// threads and run side by side.
    pub(crate) fn next(&self) -> &Handle {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        &self.handles[i]
    }
}

/// A socket taken off the accepting runtime's I/O driver, to be registered with another's.
pub(crate) enum Detached {
    Plain(std::net::TcpStream),
    Tls(std::net::TcpStream, tokio_rustls::TlsAcceptor),
}

impl Detached {
    /// Takes an accepted socket off the current runtime's driver (it stays open and
    /// non-blocking).
    pub(crate) fn from(accepted: Accepted) -> io::Result<Detached> {
        Ok(match accepted {
            Accepted::Plain(tcp) => Detached::Plain(tcp.into_std()?),
            Accepted::Tls(tcp, acceptor) => Detached::Tls(tcp.into_std()?, acceptor),
        })
    }

    /// Registers the socket with the runtime this runs on: call it on the target thread.
    pub(crate) fn attach(self) -> io::Result<Accepted> {
        Ok(match self {
            Detached::Plain(tcp) => Accepted::Plain(tokio::net::TcpStream::from_std(tcp)?),
            Detached::Tls(tcp, acceptor) => {
                Accepted::Tls(tokio::net::TcpStream::from_std(tcp)?, acceptor)
            }
        })
    }
}
