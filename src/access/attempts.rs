//! Login attempts counted per protocol, succeeded and failed, for the
//! `rabbitmq_auth_attempts_*` metrics. A login is rare next to a message, so plain
//! atomics shared by every connection are fine here.

use std::sync::atomic::{AtomicU64, Ordering};

/// Where a login came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Protocol {
    /// connection.start-ok on the AMQP listeners.
    Amqp,
    /// Basic auth on the management API.
    Http,
}

impl Protocol {
    /// The `protocol` label RabbitMQ gives it.
    pub fn label(self) -> &'static str {
        match self {
            Protocol::Amqp => "amqp091",
            Protocol::Http => "http",
        }
    }
}

/// Succeeded and failed logins per protocol.
#[derive(Debug, Default)]
pub struct AuthAttempts {
    /// [amqp succeeded, amqp failed, http succeeded, http failed]
    counts: [AtomicU64; 4],
}

impl AuthAttempts {
    fn slot(protocol: Protocol, ok: bool) -> usize {
        let base = match protocol {
            Protocol::Amqp => 0,
            Protocol::Http => 2,
        };
        base + usize::from(!ok)
    }

    pub fn record(&self, protocol: Protocol, ok: bool) {
        self.counts[Self::slot(protocol, ok)].fetch_add(1, Ordering::Relaxed);
    }

    /// (succeeded, failed) logins over `protocol` so far.
    pub fn get(&self, protocol: Protocol) -> (u64, u64) {
        let read = |ok| self.counts[Self::slot(protocol, ok)].load(Ordering::Relaxed);
        (read(true), read(false))
    }
}
