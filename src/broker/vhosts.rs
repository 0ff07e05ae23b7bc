//! Virtual hosts at runtime: add, list, delete, and their limits, as `rabbitmqctl`
//! (add_vhost, list_vhosts, delete_vhost, set/clear/list_vhost_limits) and the
//! management API do them in RabbitMQ 3.10, with its error texts.
//!
//! The in-process API that the management HTTP API and a CLI call; tests reach it
//! through `Server::broker()`. Every change is saved in the definitions file by the
//! definitions writer (asked for here, never written here). Deleting a vhost closes its
//! connections with 320 CONNECTION_FORCED and drops all it holds, in memory and on disk
//! (see `vhost::teardown`); the call waits until the definitions file and the message
//! store show it, so nothing of the vhost comes back after a restart.

use super::vhost::{VHost, VhostLimits, VhostMetadata};
use super::Broker;
use std::fmt;
use std::sync::Arc;

/// A vhost as `list_vhosts` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VhostInfo {
    pub name: String,
    pub metadata: VhostMetadata,
    /// `None` when no limits were set.
    pub limits: Option<VhostLimits>,
    /// Connections open on it now.
    pub connections: u64,
}

/// Why a vhost operation was refused; `Display` is RabbitMQ's text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VhostError {
    /// "Virtual host 'v' does not exist"
    NotFound(String),
    /// A limits definition RabbitMQ would refuse ("Validation failed ...").
    Validation(String),
    /// clear_vhost_limits on a vhost that has none.
    NoLimits,
    /// add_vhost with a default queue type other than classic, quorum or stream.
    InvalidQueueType,
}

impl fmt::Display for VhostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VhostError::NotFound(name) => write!(f, "Virtual host '{name}' does not exist"),
            VhostError::Validation(detail) => write!(f, "Validation failed\n\n{detail}"),
            VhostError::NoLimits => f.write_str("Parameter does not exist"),
            VhostError::InvalidQueueType => f.write_str("invalid_queue_type"),
        }
    }
}

impl std::error::Error for VhostError {}

impl Broker {
    /// Adds a vhost. As `rabbitmqctl add_vhost`, adding one that exists is not an error
    /// and leaves it (and its metadata) as it was: returns whether it was created.
    pub fn add_vhost(&self, name: &str, metadata: VhostMetadata) -> Result<bool, VhostError> {
        metadata.check().map_err(|_| VhostError::InvalidQueueType)?;
        let created = self.create_vhost(name, metadata).is_some();
        if created {
            self.definitions_changed();
        }
        Ok(created)
    }

    /// Creates `name` unless it exists; the new vhost, or `None`. Not saved here: at
    /// start the definitions are written once everything is restored.
    pub(super) fn create_vhost(&self, name: &str, metadata: VhostMetadata) -> Option<Arc<VHost>> {
        let mut vhosts = self.vhosts.write().unwrap_or_else(|e| e.into_inner());
        if vhosts.contains_key(name) {
            return None;
        }
        let vhost = Arc::new(VHost::new(
            name,
            self.persist.clone(),
            self.memory.clone(),
            self.clock.clone(),
        ));
        vhost.set_metadata(metadata);
        vhost.set_stats(self.stats.clone());
        vhost.set_delayed(self.delayed.clone());
        if let Some(r) = &self.replica {
            vhost.set_replica(r.clone());
        }
        if let Some(p) = &self.persist {
            p.register(&vhost);
        }
        vhost.start_dead_lettering();
        if let Some(e) = &self.events {
            e.attach(&vhost);
        }
        vhosts.insert(name.to_owned(), vhost.clone());
        Some(vhost)
    }

    /// Every vhost, by name.
    pub fn list_vhosts(&self) -> Vec<VhostInfo> {
        let mut all: Vec<VhostInfo> = self.all_vhosts().iter().map(|v| info(v)).collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    pub fn vhost_info(&self, name: &str) -> Option<VhostInfo> {
        self.vhost(name).map(|v| info(&v))
    }

    /// Deletes a vhost: its connections are closed with 320 CONNECTION_FORCED ("vhost
    /// 'v' is deleted"), its queues, exchanges, bindings and messages are dropped, and
    /// it leaves the definitions file. Returns once the definitions file and the message
    /// store show it (or, for a disk that stays full, after the same wait as a graceful
    /// stop). Returns how many connections were closed.
    pub async fn delete_vhost(&self, name: &str) -> Result<usize, VhostError> {
        let vhost = self
            .vhosts
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(name)
            .ok_or_else(|| VhostError::NotFound(name.to_owned()))?;
        // Before the definitions are rewritten without the vhost: its permissions go too.
        self.permissions.forget_vhost(name);
        if let Some(p) = &self.persist {
            p.unregister(&vhost);
        }
        let (closed, queues) = vhost.delete_contents();
        self.delayed.drop_vhost(name);
        tracing::info!(vhost = name, connections = closed, queues, "vhost deleted");
        self.flush().await;
        Ok(closed)
    }

    /// A vhost's limits as set (`list_vhost_limits`); `None` when it has none.
    pub fn vhost_limits(&self, name: &str) -> Result<Option<VhostLimits>, VhostError> {
        Ok(self.existing(name)?.limits())
    }

    /// Sets a vhost's limits from a JSON definition as `set_vhost_limits` takes it,
    /// e.g. `{"max-connections": 10, "max-queues": -1}` (negative: no limit; 0: none
    /// allowed), replacing what was set. Applies to the next connection.open and
    /// queue.declare; what is already open or declared stays.
    pub fn set_vhost_limits(
        &self,
        name: &str,
        definition: &serde_json::Value,
    ) -> Result<(), VhostError> {
        let vhost = self.existing(name)?;
        let limits = VhostLimits::parse(definition).map_err(VhostError::Validation)?;
        vhost.set_limits(Some(limits));
        Ok(())
    }

    /// Removes a vhost's limits (`clear_vhost_limits`).
    pub fn clear_vhost_limits(&self, name: &str) -> Result<(), VhostError> {
        let vhost = self.existing(name)?;
        match vhost.limits() {
            None => Err(VhostError::NoLimits),
            Some(_) => {
                vhost.set_limits(None);
                Ok(())
            }
        }
    }

    fn existing(&self, name: &str) -> Result<Arc<VHost>, VhostError> {
        self.vhost(name)
            .ok_or_else(|| VhostError::NotFound(name.to_owned()))
    }
}

fn info(v: &VHost) -> VhostInfo {
    VhostInfo {
        name: v.name.clone(),
        metadata: v.metadata(),
        limits: v.limits(),
        connections: v.connection_count(),
    }
}
