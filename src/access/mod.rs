//! Access control: users and their passwords, tags and limits, who may log in from
//! where, and permissions: `permissions` is the broker's table, `pattern` its compiled
//! regular expressions, `cache` the per-channel check every handler calls, `grants` the
//! broker's API to set, clear and list them with rabbitmqctl's errors.
//!
//! The broker owns one `Users` store; the connection handshake asks it to check a login
//! and to admit a connection, the management API and CLI will call its methods, and the
//! definitions writer reads it. This module only declares the parts and the types
//! they share; it does no work.

pub mod attempts;
pub mod bootstrap;
pub(crate) mod cache;
pub(crate) mod grants;
pub mod limits;
pub mod password;
pub(crate) mod pattern;
pub(crate) mod permissions;
pub mod sessions;
pub mod users;

pub use bootstrap::Bootstrap;
pub use users::Users;

use std::fmt;

/// Why a login was refused. Clients are told the same in either case (RabbitMQ's
/// "Login was refused ..." text); the log says which.
#[derive(Debug, PartialEq, Eq)]
pub enum LoginRefused {
    /// Unknown user, wrong or empty password, or a user without a password.
    BadCredentials,
    /// Right password, but the user is in `loopback_users` and the client is remote.
    LoopbackOnly,
}

/// Why a change to the users was refused; `Display` is rabbitmqctl's message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserError {
    AlreadyExists(String),
    NoSuchUser(String),
    EmptyName,
    InvalidLimits(String),
    /// The system's random source failed, so no salt could be made.
    NoRandomness,
}

impl fmt::Display for UserError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UserError::AlreadyExists(user) => write!(f, "User \"{user}\" already exists"),
            UserError::NoSuchUser(user) => write!(f, "User \"{user}\" does not exist"),
            UserError::EmptyName => f.write_str("user cannot be an empty string"),
            UserError::InvalidLimits(text) => f.write_str(text),
            UserError::NoRandomness => {
                f.write_str("the system's random source failed; no password salt was made")
            }
        }
    }
}

impl std::error::Error for UserError {}
