//! The broker: vhosts and users, shared by every connection.
//!
//! Built once at start and shared as `Arc<Broker>`. It owns no socket and no task; the
//! connection tasks call into it. Users are checked here (password, and RabbitMQ's rule
//! that `guest` may log in from loopback only).

pub mod arguments;
pub mod consumer;
pub mod exchange;
pub mod message;
pub mod queue;
pub mod vhost;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use vhost::VHost;

#[derive(Debug)]
struct User {
    password: String,
    /// RabbitMQ's `loopback_users`: `guest` may only connect from the local machine.
    loopback_only: bool,
}

#[derive(Debug)]
pub struct Broker {
    vhosts: RwLock<HashMap<String, Arc<VHost>>>,
    users: HashMap<String, User>,
    next_connection_id: AtomicU64,
}

/// Why a login was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum LoginRefused {
    BadCredentials,
    LoopbackOnly,
}

impl Default for Broker {
    fn default() -> Self {
        Self::new()
    }
}

impl Broker {
    /// A broker with RabbitMQ's defaults: vhost `/` and user guest/guest (loopback only).
    pub fn new() -> Self {
        let mut vhosts = HashMap::new();
        vhosts.insert("/".to_owned(), Arc::new(VHost::new("/")));
        let mut users = HashMap::new();
        users.insert(
            "guest".to_owned(),
            User {
                password: "guest".to_owned(),
                loopback_only: true,
            },
        );
        Broker {
            vhosts: RwLock::new(vhosts),
            users,
            next_connection_id: AtomicU64::new(1),
        }
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

    pub fn authenticate(
        &self,
        user: &str,
        password: &str,
        peer: IpAddr,
    ) -> Result<(), LoginRefused> {
        match self.users.get(user) {
            Some(u) if u.password == password => {
                if u.loopback_only && !peer.is_loopback() && !is_mapped_loopback(peer) {
                    Err(LoginRefused::LoopbackOnly)
                } else {
                    Ok(())
                }
            }
            _ => Err(LoginRefused::BadCredentials),
        }
    }
}

fn is_mapped_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
        IpAddr::V4(_) => false,
    }
}
