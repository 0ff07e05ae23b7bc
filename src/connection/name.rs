//! A connection's name for the log lines written outside its task: the accept loop
//! names the connection whose task panicked with it.
//!
//! Made by the accept loop before the task starts; the task adds the user and vhost once
//! the client has logged in. Shared by `Arc`; no lock (the login is set once).

use std::fmt;
use std::net::SocketAddr;
use std::sync::OnceLock;

#[derive(Debug)]
pub struct ConnectionName {
    pub id: u64,
    pub peer: SocketAddr,
    /// (user, vhost), once connection.open succeeded.
    login: OnceLock<(String, String)>,
}

impl ConnectionName {
    pub fn new(id: u64, peer: SocketAddr) -> ConnectionName {
        ConnectionName {
            id,
            peer,
            login: OnceLock::new(),
        }
    }

    pub(super) fn logged_in(&self, user: &str, vhost: &str) {
        let _ = self.login.set((user.to_owned(), vhost.to_owned()));
    }
}

impl fmt::Display for ConnectionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "connection {} from {}", self.id, self.peer)?;
        match self.login.get() {
            Some((user, vhost)) => write!(f, " (user '{user}', vhost '{vhost}')"),
            None => write!(f, " (before login)"),
        }
    }
}
