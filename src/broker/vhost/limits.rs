//! A vhost's limits, as RabbitMQ's vhost limits: `max-connections` and `max-queues`, and
//! the count of connections open on the vhost that the first is checked against.
//!
//! Loaded at start from the definitions file, where RabbitMQ keeps them as the runtime
//! parameter of component "vhost-limits" named "limits", and written back with it
//! (`durable`); `VHost::set_limits` changes them at runtime. Checked at connection.open
//! (`admit_connection`, by the connection's handshake) and at queue.declare of a new
//! queue (under the topology lock: plain atomics, no lock of their own). Refusals carry
//! RabbitMQ's codes and texts.

use super::VHost;
use crate::error::Exception;
use serde_json::{Map, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// No limit, in the atomics below.
const UNLIMITED: u64 = u64::MAX;

/// Keys of the "vhost-limits" parameter's value.
const MAX_CONNECTIONS: &str = "max-connections";
const MAX_QUEUES: &str = "max-queues";

/// The limits of one vhost; `None` is no limit (RabbitMQ: absent or negative). 0 is a
/// limit: no connection, or no queue, at all.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VhostLimits {
    pub max_connections: Option<u64>,
    pub max_queues: Option<u64>,
}

impl VhostLimits {
    /// From the value of a "vhost-limits" parameter, e.g. `{"max-queues": 10}`, validated
    /// as RabbitMQ 3.10 validates it (`rabbitmqctl set_vhost_limits`, definitions import):
    /// an object of `max-connections` and `max-queues` with integer values, a negative
    /// one meaning no limit and an absent key no limit. A string, a float (even 3.0), an
    /// array, an object or null as a value, an unknown key, or a value that is not an
    /// object, and RabbitMQ refuses the whole parameter: it is ignored, with a warning,
    /// and the vhost has no limits. (An integer too large for 64 bits reaches us as a
    /// float; RabbitMQ takes it as a limit no one reaches, so it is read as no limit.)
    pub fn from_json(vhost: &str, value: &Value) -> VhostLimits {
        Self::validate(value).unwrap_or_else(|why| {
            tracing::warn!(vhost, value = %value, why, "vhost limits refused, as RabbitMQ refuses them; no limits");
            VhostLimits::default()
        })
    }

    fn validate(value: &Value) -> Result<VhostLimits, String> {
        let Value::Object(map) = value else {
            return Err(format!("limits not a list {value}"));
        };
        let mut limits = VhostLimits::default();
        for (key, v) in map {
            let not_a_number = || format!("{key} should be a number, actually was {v}");
            let limit = match v {
                Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
                    (Some(i), _, _) => u64::try_from(i).ok(),
                    (None, Some(u), _) => Some(u),
                    (None, None, Some(f)) if f.fract() == 0.0 && f.abs() >= i64::MAX as f64 => None,
                    _ => return Err(not_a_number()),
                },
                _ => return Err(not_a_number()),
            };
            match key.as_str() {
                MAX_CONNECTIONS => limits.max_connections = limit,
                MAX_QUEUES => limits.max_queues = limit,
                _ => return Err(format!("Unrecognised terms [{key}] in limits")),
            }
        }
        Ok(limits)
    }

    /// The parameter's value as RabbitMQ writes it; `None` when nothing is limited.
    pub fn to_json(self) -> Option<Value> {
        let mut value = Map::new();
        if let Some(n) = self.max_connections {
            value.insert(MAX_CONNECTIONS.into(), n.into());
        }
        if let Some(n) = self.max_queues {
            value.insert(MAX_QUEUES.into(), n.into());
        }
        (!value.is_empty()).then_some(Value::Object(value))
    }
}

/// A vhost's limits and open connections, inside the `VHost`.
#[derive(Debug)]
pub(super) struct Limits {
    max_connections: AtomicU64,
    max_queues: AtomicU64,
    connections: AtomicU64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_connections: AtomicU64::new(UNLIMITED),
            max_queues: AtomicU64::new(UNLIMITED),
            connections: AtomicU64::new(0),
        }
    }
}

fn load(a: &AtomicU64) -> Option<u64> {
    Some(a.load(Ordering::Relaxed)).filter(|&n| n != UNLIMITED)
}

/// A connection counted against its vhost's max-connections until it is dropped.
#[derive(Debug)]
pub struct ConnectionSlot {
    vhost: Arc<VHost>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.vhost.limits.connections.fetch_sub(1, Ordering::AcqRel);
    }
}

impl VHost {
    pub fn limits(&self) -> VhostLimits {
        VhostLimits {
            max_connections: load(&self.limits.max_connections),
            max_queues: load(&self.limits.max_queues),
        }
    }

    /// Sets the limits (existing connections and queues stay, as in RabbitMQ) and saves
    /// them with the definitions.
    pub fn set_limits(&self, limits: VhostLimits) {
        self.store_limits(limits);
        // The definitions writer picks the change up when the write guard drops.
        self.write().dirty = true;
    }

    pub(super) fn store_limits(&self, limits: VhostLimits) {
        let store =
            |a: &AtomicU64, n: Option<u64>| a.store(n.unwrap_or(UNLIMITED), Ordering::Relaxed);
        store(&self.limits.max_connections, limits.max_connections);
        store(&self.limits.max_queues, limits.max_queues);
    }

    /// Connections open on this vhost now.
    pub fn connection_count(&self) -> u64 {
        self.limits.connections.load(Ordering::Acquire)
    }

    /// connection.open on this vhost by `user`: a slot, or RabbitMQ's NOT_ALLOWED when
    /// max-connections are open already.
    pub fn admit_connection(self: &Arc<Self>, user: &str) -> Result<ConnectionSlot, Exception> {
        let max = self.limits.max_connections.load(Ordering::Relaxed);
        self.limits
            .connections
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < max).then_some(n + 1))
            .map_err(|_| {
                Exception::not_allowed(format!(
                    "access to vhost '{}' refused for user '{user}': connection limit ({max}) is reached",
                    self.name
                ))
            })?;
        Ok(ConnectionSlot {
            vhost: self.clone(),
        })
    }

    /// Whether one more queue, `name`, may be declared while `queues` exist.
    pub(super) fn check_queue_limit(&self, queues: usize, name: &str) -> Result<(), Exception> {
        match load(&self.limits.max_queues) {
            Some(max) if queues as u64 >= max => Err(Exception::precondition_failed(format!(
                "cannot declare queue '{name}': queue limit in vhost '{}' ({max}) is reached",
                self.name
            ))),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn limits_read_and_write_as_rabbitmq_exports_them() {
        let read = |v: Value| VhostLimits::from_json("v", &v);
        let both = read(json!({"max-connections": 1, "max-queues": 2}));
        assert_eq!(
            both,
            VhostLimits {
                max_connections: Some(1),
                max_queues: Some(2)
            }
        );
        assert_eq!(
            both.to_json(),
            Some(json!({"max-connections": 1, "max-queues": 2}))
        );
        // Negative is no limit; 0 is a limit; other types are ignored.
        let odd = read(json!({"max-connections": -1, "max-queues": 0}));
        assert_eq!(odd.max_connections, None);
        assert_eq!(odd.max_queues, Some(0));
        assert_eq!(VhostLimits::default().to_json(), None);
    }

    #[test]
    fn malformed_limits_are_refused_whole_as_rabbitmq_refuses_them() {
        let read = |v: Value| VhostLimits::from_json("v", &v);
        let none = VhostLimits::default();
        // Each value RabbitMQ 3.10's set_vhost_limits and import refuse, beside a good key
        // that goes with it.
        for bad in [
            json!("10"),
            json!(2.5),
            json!(3.0),
            json!({"a": 1}),
            json!([1]),
            json!(null),
            json!(true),
        ] {
            assert_eq!(read(json!({"max-connections": 5, "max-queues": bad})), none);
        }
        assert_eq!(
            read(json!({"max-connections": 5, "foo": 1})),
            none,
            "unknown key"
        );
        assert_eq!(read(json!(7)), none, "not an object");
        assert_eq!(read(json!([1])), none);
        assert_eq!(read(json!({})), none, "absent keys: no limit");
        let only = read(json!({"max-queues": 4}));
        assert_eq!((only.max_connections, only.max_queues), (None, Some(4)));
        let negative = read(json!({"max-queues": -5, "max-connections": -1}));
        assert_eq!(negative, none, "negative: no limit");
        let huge: Value = serde_json::from_str(r#"{"max-queues": 99999999999999999999}"#).unwrap();
        assert_eq!(read(huge), none, "beyond 64 bits: no one reaches it");
    }

    #[test]
    fn connections_are_counted_until_their_slot_drops() {
        let vhost = Arc::new(VHost::new(
            "v",
            None,
            crate::broker::memory::Memory::new(u64::MAX),
        ));
        let first = vhost.admit_connection("guest");
        assert!(first.is_ok(), "no limit yet");
        vhost.set_limits(VhostLimits {
            max_connections: Some(1),
            max_queues: Some(0),
        });
        let refused = vhost.admit_connection("guest").err().map(|e| e.text);
        assert_eq!(
            refused.as_deref(),
            Some("NOT_ALLOWED - access to vhost 'v' refused for user 'guest': connection limit (1) is reached")
        );
        drop(first);
        assert_eq!(vhost.connection_count(), 0);
        assert!(vhost.admit_connection("guest").is_ok());
        assert_eq!(vhost.connection_count(), 0, "the slot was dropped at once");
        assert!(vhost.check_queue_limit(0, "q").is_err());
    }
}
