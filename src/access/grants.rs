//! The broker's in-process API for permissions and topic permissions: set, clear and
//! list, with rabbitmqctl's checks and errors, and forgetting a deleted user or vhost.
//!
//! Called by embedding code, tests, and later the management API and CLI. Every change
//! goes to the permission table (open connections see it at their next operation) and
//! asks the definitions writer for a rewrite; nothing here blocks or does I/O itself.

use super::pattern::InvalidPattern;
use super::permissions::{PermissionEntry, Permissions, TopicPermissionEntry};
use crate::broker::Broker;
use std::fmt;

/// Why a permission change or listing was refused, as rabbitmqctl says it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PermissionError {
    NoSuchUser(String),
    NoSuchVhost(String),
    /// A pattern that does not compile (the pattern).
    InvalidRegex(String),
}

impl fmt::Display for PermissionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PermissionError::NoSuchUser(u) => write!(f, "User {u} does not exist"),
            PermissionError::NoSuchVhost(v) => write!(f, "Virtual host {v} does not exist"),
            PermissionError::InvalidRegex(p) => write!(f, "{}", InvalidPattern(p.clone())),
        }
    }
}

impl std::error::Error for PermissionError {}

impl From<InvalidPattern> for PermissionError {
    fn from(e: InvalidPattern) -> Self {
        PermissionError::InvalidRegex(e.0)
    }
}

impl Broker {
    /// RabbitMQ's order: the user first, then the vhost.
    fn check_user_and_vhost(&self, user: &str, vhost: &str) -> Result<(), PermissionError> {
        self.check_user(user)?;
        self.check_vhost(vhost)
    }

    fn check_user(&self, user: &str) -> Result<(), PermissionError> {
        if self.user_exists(user) {
            Ok(())
        } else {
            Err(PermissionError::NoSuchUser(user.to_owned()))
        }
    }

    fn check_vhost(&self, vhost: &str) -> Result<(), PermissionError> {
        match self.vhost(vhost) {
            Some(_) => Ok(()),
            None => Err(PermissionError::NoSuchVhost(vhost.to_owned())),
        }
    }

    /// The permission table (connection.open and the channels read it).
    pub(crate) fn permissions(&self) -> &Permissions {
        &self.permissions
    }

    /// `rabbitmqctl set_permissions -p VHOST USER CONF WRITE READ`: the patterns are
    /// checked first, then the user, then the vhost.
    pub fn set_permissions(
        &self,
        user: &str,
        vhost: &str,
        configure: &str,
        write: &str,
        read: &str,
    ) -> Result<(), PermissionError> {
        for p in [configure, write, read] {
            super::pattern::Pattern::compile(p)?;
        }
        self.check_user_and_vhost(user, vhost)?;
        self.permissions
            .grant(user, vhost, configure, write, read)?;
        self.definitions_changed();
        Ok(())
    }

    /// `rabbitmqctl clear_permissions -p VHOST USER`.
    pub fn clear_permissions(&self, user: &str, vhost: &str) -> Result<(), PermissionError> {
        self.check_user_and_vhost(user, vhost)?;
        self.permissions.revoke(user, vhost);
        self.definitions_changed();
        Ok(())
    }

    /// Every user's permissions in every vhost.
    pub fn list_permissions(&self) -> Vec<PermissionEntry> {
        self.permissions.list()
    }

    /// `rabbitmqctl list_permissions -p VHOST`.
    pub fn list_vhost_permissions(
        &self,
        vhost: &str,
    ) -> Result<Vec<PermissionEntry>, PermissionError> {
        self.check_vhost(vhost)?;
        Ok(only(self.permissions.list(), |e| e.vhost == vhost))
    }

    /// `rabbitmqctl list_user_permissions USER`.
    pub fn list_user_permissions(
        &self,
        user: &str,
    ) -> Result<Vec<PermissionEntry>, PermissionError> {
        self.check_user(user)?;
        Ok(only(self.permissions.list(), |e| e.user == user))
    }

    /// `rabbitmqctl set_topic_permissions -p VHOST USER EXCHANGE WRITE READ`. The
    /// exchange need not exist (RabbitMQ does not check it either).
    pub fn set_topic_permissions(
        &self,
        user: &str,
        vhost: &str,
        exchange: &str,
        write: &str,
        read: &str,
    ) -> Result<(), PermissionError> {
        Permissions::validate_topic(write, read)?;
        self.check_user_and_vhost(user, vhost)?;
        self.permissions
            .grant_topic(user, vhost, exchange, write, read)?;
        self.definitions_changed();
        Ok(())
    }

    /// `rabbitmqctl clear_topic_permissions -p VHOST USER [EXCHANGE]`: one exchange's,
    /// or all of the user's topic permissions in the vhost. Clearing what is not set is
    /// not an error.
    pub fn clear_topic_permissions(
        &self,
        user: &str,
        vhost: &str,
        exchange: Option<&str>,
    ) -> Result<(), PermissionError> {
        self.check_user_and_vhost(user, vhost)?;
        self.permissions.revoke_topic(user, vhost, exchange);
        self.definitions_changed();
        Ok(())
    }

    /// Every topic permission.
    pub fn list_topic_permissions(&self) -> Vec<TopicPermissionEntry> {
        self.permissions.list_topics()
    }

    /// `rabbitmqctl list_topic_permissions -p VHOST`.
    pub fn list_vhost_topic_permissions(
        &self,
        vhost: &str,
    ) -> Result<Vec<TopicPermissionEntry>, PermissionError> {
        self.check_vhost(vhost)?;
        Ok(only(self.permissions.list_topics(), |e| e.vhost == vhost))
    }

    /// `rabbitmqctl list_user_topic_permissions USER`, or only those in `vhost` (the
    /// management API's per-user-and-vhost listing).
    pub fn list_user_topic_permissions(
        &self,
        user: &str,
        vhost: Option<&str>,
    ) -> Result<Vec<TopicPermissionEntry>, PermissionError> {
        self.check_user(user)?;
        if let Some(v) = vhost {
            self.check_vhost(v)?;
        }
        let listed = self.permissions.list_topics();
        Ok(only(listed, |e| {
            e.user == user && vhost.is_none_or(|v| e.vhost == v)
        }))
    }
}

/// The entries of a listing that `keep` selects.
fn only<T>(mut all: Vec<T>, keep: impl FnMut(&T) -> bool) -> Vec<T> {
    all.retain(keep);
    all
}
