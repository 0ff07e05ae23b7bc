//! The connections open on a vhost: counted against its max-connections, and each with a
//! signal that makes it close (deleting the vhost closes them all with RabbitMQ's 320).
//!
//! A connection task makes its `CloseSignal` when it starts and registers it with
//! `VHost::admit_connection` at connection.open; the `ConnectionSlot` it gets back takes
//! it off the list when dropped (the connection's release, or its drop guard). The
//! vhost's deletion calls `close_connections`, which refuses later admissions under the
//! same lock, so no connection.open can slip in after the vhost is gone. The list's lock
//! is held for a push, a removal or a take, never across an `.await`; the signals are
//! sent after it is released. It never touches a socket: each connection task reads its
//! own signal in its loop.

use super::VHost;
use crate::error::Exception;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::watch;

/// Asks one connection to close with an exception (320 CONNECTION_FORCED ...). Held by
/// the connection task and, while it is open, by its vhost.
#[derive(Debug)]
pub struct CloseSignal {
    tx: watch::Sender<Option<Exception>>,
}

/// The connection task's end of its `CloseSignal`.
pub type CloseListener = watch::Receiver<Option<Exception>>;

impl CloseSignal {
    pub fn new() -> (Arc<CloseSignal>, CloseListener) {
        let (tx, rx) = watch::channel(None);
        (Arc::new(CloseSignal { tx }), rx)
    }

    /// The connection closes with `e` next time its task runs; the first reason wins.
    pub fn close(&self, e: Exception) {
        self.tx.send_if_modified(|reason| {
            let first = reason.is_none();
            if first {
                *reason = Some(e);
            }
            first
        });
    }
}

/// The registry inside the `VHost`.
#[derive(Debug, Default)]
pub(super) struct Connections {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Set once the vhost is deleted: nothing is admitted any more.
    closed: bool,
    open: HashMap<u64, Arc<CloseSignal>>,
}

impl Connections {
    fn lock(&self) -> MutexGuard<'_, State> {
        // A map insert or removal: consistent even if a holder panicked.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A connection counted against its vhost's max-connections, and reachable by its
/// deletion, until it is dropped.
#[derive(Debug)]
pub struct ConnectionSlot {
    vhost: Arc<VHost>,
    id: u64,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.vhost.connections.lock().open.remove(&self.id);
    }
}

impl VHost {
    /// Connections open on this vhost now.
    pub fn connection_count(&self) -> u64 {
        self.connections.lock().open.len() as u64
    }

    /// connection.open on this vhost by `user` (connection `id`, closed by `signal`): a
    /// slot, or RabbitMQ's NOT_ALLOWED when max-connections are open already, or when
    /// the vhost was deleted since the client looked it up (then, as for any vhost that
    /// does not exist, "not found").
    pub fn admit_connection(
        self: &Arc<Self>,
        user: &str,
        id: u64,
        signal: &Arc<CloseSignal>,
    ) -> Result<ConnectionSlot, Exception> {
        let mut state = self.connections.lock();
        if state.closed {
            return Err(Exception::not_allowed(format!(
                "vhost {} not found",
                self.name
            )));
        }
        self.check_connection_limit(state.open.len(), user)?;
        state.open.insert(id, signal.clone());
        Ok(ConnectionSlot {
            vhost: self.clone(),
            id,
        })
    }

    /// Closes every connection on this vhost with `e` and admits none from now on.
    /// Returns how many were asked to close.
    pub(super) fn close_connections(&self, e: &Exception) -> usize {
        let signals: Vec<Arc<CloseSignal>> = {
            let mut state = self.connections.lock();
            state.closed = true;
            state.open.values().cloned().collect()
        };
        for s in &signals {
            s.close(e.clone());
        }
        signals.len()
    }
}
