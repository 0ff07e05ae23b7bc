//! A vhost's limits, as RabbitMQ's vhost limits: `max-connections` (checked against the
//! vhost's connection registry, `connections`) and `max-queues`.
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
use std::sync::Mutex;

/// No limit, in the atomics below.
const UNLIMITED: u64 = u64::MAX;

/// Keys of the "vhost-limits" parameter's value.
const MAX_CONNECTIONS: &str = "max-connections";
const MAX_QUEUES: &str = "max-queues";

/// The limits of one vhost, as they were set (RabbitMQ keeps `-1` as `-1`). Absent or
/// negative is no limit; 0 is a limit: no connection, or no queue, at all.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct VhostLimits {
    pub max_connections: Option<i64>,
    pub max_queues: Option<i64>,
}

impl VhostLimits {
    /// From the value of a "vhost-limits" parameter in a definitions file, validated as
    /// RabbitMQ 3.10 validates an import (the checks of `parse`): a value that is not an
    /// integer (a string, a float even 3.0, an array, an object, null, a boolean), an
    /// unknown key or a value that is not an object refuses the whole parameter: `None`,
    /// with a warning, and the vhost has no limits. Negative or absent is no limit.
    pub fn from_json(vhost: &str, value: &Value) -> Option<VhostLimits> {
        Self::parse(value)
            .map_err(|why| {
                tracing::warn!(vhost, value = %value, why, "vhost limits refused, as RabbitMQ refuses them; no limits");
            })
            .ok()
    }

    /// A limits definition given at runtime (`rabbitmqctl set_vhost_limits`), checked as
    /// RabbitMQ 3.10 checks it. The error is RabbitMQ's text after "Validation failed".
    pub fn parse(value: &Value) -> Result<VhostLimits, String> {
        let Value::Object(map) = value else {
            // RabbitMQ crashes here (badmap); a plain sentence is kinder.
            return Err(format!(
                "limits must be a JSON object, actually was {value}"
            ));
        };
        let unknown: Vec<String> = map
            .iter()
            .filter(|(k, _)| *k != MAX_CONNECTIONS && *k != MAX_QUEUES)
            .map(|(k, v)| format!("{{<<\"{k}\">>,{}}}", erlang_term(v)))
            .collect();
        if !unknown.is_empty() {
            return Err(format!(
                "Unrecognised terms [{}] in limits",
                unknown.join(",")
            ));
        }
        let limit = |key: &str| match map.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) if n.as_i64().is_some() => Ok(n.as_i64()),
            Some(other) => Err(format!(
                "{key} should be a number, actually was {}",
                erlang_term(other)
            )),
        };
        Ok(VhostLimits {
            max_connections: limit(MAX_CONNECTIONS)?,
            max_queues: limit(MAX_QUEUES)?,
        })
    }

    /// The parameter's value as RabbitMQ writes it (`{}` when set to nothing).
    pub fn to_json(self) -> Value {
        let mut value = Map::new();
        if let Some(n) = self.max_connections {
            value.insert(MAX_CONNECTIONS.into(), n.into());
        }
        if let Some(n) = self.max_queues {
            value.insert(MAX_QUEUES.into(), n.into());
        }
        Value::Object(value)
    }

    /// The vhost's `limits` in an exported definitions file: `[["max-queues", 10]]`.
    pub fn to_pairs(self) -> Value {
        let pairs = [
            (MAX_CONNECTIONS, self.max_connections),
            (MAX_QUEUES, self.max_queues),
        ];
        Value::Array(
            pairs
                .into_iter()
                .filter_map(|(k, v)| Some(Value::Array(vec![k.into(), v?.into()])))
                .collect(),
        )
    }
}

/// A JSON value as Erlang prints the term RabbitMQ decoded it into, for its messages.
fn erlang_term(v: &Value) -> String {
    match v {
        Value::String(s) => format!("<<\"{s}\">>"),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(erlang_term).collect::<Vec<_>>().join(",")
        ),
        Value::Object(map) => format!(
            "#{{{}}}",
            map.iter()
                .map(|(k, v)| format!("<<\"{k}\">> => {}", erlang_term(v)))
                .collect::<Vec<_>>()
                .join(",")
        ),
        other => other.to_string(),
    }
}

/// A vhost's limits, inside the `VHost`: as set (for listing and the definitions file),
/// and as enforced (atomics, read without a lock at connection.open and queue.declare).
#[derive(Debug)]
pub(super) struct Limits {
    /// `None`: no "vhost-limits" parameter at all (RabbitMQ tells the two apart: clearing
    /// limits that were never set is an error, and `{}` is exported as it was set).
    set: Mutex<Option<VhostLimits>>,
    max_connections: AtomicU64,
    max_queues: AtomicU64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            set: Mutex::new(None),
            max_connections: AtomicU64::new(UNLIMITED),
            max_queues: AtomicU64::new(UNLIMITED),
        }
    }
}

/// A limit as enforced: negative and absent are no limit.
fn enforced(limit: Option<i64>) -> u64 {
    limit
        .and_then(|n| u64::try_from(n).ok())
        .unwrap_or(UNLIMITED)
}

impl VHost {
    /// The limits as they were set; `None` when they never were (or were cleared).
    pub fn limits(&self) -> Option<VhostLimits> {
        *self.limits.set.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets (or with `None` clears) the limits, and saves them with the definitions.
    /// They apply to the next connection.open and queue.declare; connections and queues
    /// already there stay, as in RabbitMQ. Returns what was set before.
    pub fn set_limits(&self, limits: Option<VhostLimits>) -> Option<VhostLimits> {
        let before = self.store_limits(limits);
        // The definitions writer picks the change up when the write guard drops.
        self.write().dirty = true;
        before
    }

    pub(super) fn store_limits(&self, set: Option<VhostLimits>) -> Option<VhostLimits> {
        let before = std::mem::replace(
            &mut *self.limits.set.lock().unwrap_or_else(|e| e.into_inner()),
            set,
        );
        let limits = set.unwrap_or_default();
        let store = |a: &AtomicU64, n: Option<i64>| a.store(enforced(n), Ordering::Relaxed);
        store(&self.limits.max_connections, limits.max_connections);
        store(&self.limits.max_queues, limits.max_queues);
        before
    }

    /// Whether `user` may open one more connection while `open` are: RabbitMQ's
    /// NOT_ALLOWED when max-connections are open already.
    pub(super) fn check_connection_limit(&self, open: usize, user: &str) -> Result<(), Exception> {
        let max = self.limits.max_connections.load(Ordering::Relaxed);
        if open as u64 >= max {
            return Err(Exception::not_allowed(format!(
                "access to vhost '{}' refused for user '{user}': connection limit ({max}) is reached",
                self.name
            )));
        }
        Ok(())
    }

    /// Whether one more queue, `name`, may be declared while `queues` exist.
    pub(super) fn check_queue_limit(&self, queues: usize, name: &str) -> Result<(), Exception> {
        match self.limits.max_queues.load(Ordering::Relaxed) {
            max if queues as u64 >= max => Err(Exception::precondition_failed(format!(
                "cannot declare queue '{name}': queue limit in vhost '{}' ({max}) is reached",
                self.name
            ))),
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::CloseSignal;
    use super::*;
    use serde_json::json;
    use std::sync::Arc;

    #[test]
    fn limits_read_and_write_as_rabbitmq_exports_them() {
        let read = |v: Value| VhostLimits::from_json("v", &v).expect("valid limits");
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
            json!({"max-connections": 1, "max-queues": 2})
        );
        assert_eq!(
            both.to_pairs(),
            json!([["max-connections", 1], ["max-queues", 2]])
        );
        // Negative is kept as set (and is no limit).
        let odd = read(json!({"max-connections": -1, "max-queues": 0}));
        assert_eq!(odd.max_connections, Some(-1));
        assert_eq!(enforced(odd.max_connections), UNLIMITED);
        assert_eq!(enforced(odd.max_queues), 0);
        assert_eq!(VhostLimits::default().to_json(), json!({}));
    }

    #[test]
    fn runtime_limits_are_checked_with_rabbitmq_texts() {
        let parse = |v: Value| VhostLimits::parse(&v);
        assert_eq!(
            parse(json!({"max-queues": -5})),
            Ok(VhostLimits {
                max_connections: None,
                max_queues: Some(-5)
            })
        );
        assert_eq!(
            parse(json!({"foo": 1})),
            Err("Unrecognised terms [{<<\"foo\">>,1}] in limits".to_owned())
        );
        assert_eq!(
            parse(json!({"max-queues": "x"})),
            Err("max-queues should be a number, actually was <<\"x\">>".to_owned())
        );
        assert_eq!(
            parse(json!({"max-queues": 1.5})),
            Err("max-queues should be a number, actually was 1.5".to_owned())
        );
        assert_eq!(
            parse(json!({"max-connections": true})),
            Err("max-connections should be a number, actually was true".to_owned())
        );
    }

    #[test]
    fn malformed_limits_are_refused_whole_as_rabbitmq_refuses_them() {
        let read = |v: Value| VhostLimits::from_json("v", &v);
        // Each value RabbitMQ 3.10's set_vhost_limits and import refuse, beside a good key
        // that goes with it: the whole parameter is refused.
        for bad in [
            json!("10"),
            json!(2.5),
            json!(3.0),
            json!({"a": 1}),
            json!([1]),
            json!(null),
            json!(true),
        ] {
            assert_eq!(read(json!({"max-connections": 5, "max-queues": bad})), None);
        }
        assert_eq!(
            read(json!({"max-connections": 5, "foo": 1})),
            None,
            "unknown key"
        );
        assert_eq!(read(json!(7)), None, "not an object");
        assert_eq!(read(json!([1])), None);
        assert_eq!(
            read(json!({})),
            Some(VhostLimits::default()),
            "absent: no limit"
        );
        let only = read(json!({"max-queues": 4})).unwrap();
        assert_eq!((only.max_connections, only.max_queues), (None, Some(4)));
        let negative = read(json!({"max-queues": -5, "max-connections": -1})).unwrap();
        assert_eq!(
            enforced(negative.max_queues),
            UNLIMITED,
            "negative: no limit"
        );
        assert_eq!(enforced(negative.max_connections), UNLIMITED);
    }

    #[test]
    fn connections_are_counted_until_their_slot_drops() {
        let vhost = Arc::new(VHost::new(
            "v",
            None,
            crate::broker::memory::Memory::new(u64::MAX),
            crate::clock::Clock::real(),
        ));
        let (signal, _listener) = CloseSignal::new();
        let first = vhost.admit_connection("guest", 1, &signal);
        assert!(first.is_ok(), "no limit yet");
        vhost.set_limits(Some(VhostLimits {
            max_connections: Some(1),
            max_queues: Some(0),
        }));
        let refused = vhost
            .admit_connection("guest", 2, &signal)
            .err()
            .map(|e| e.text);
        assert_eq!(
            refused.as_deref(),
            Some("NOT_ALLOWED - access to vhost 'v' refused for user 'guest': connection limit (1) is reached")
        );
        drop(first);
        assert_eq!(vhost.connection_count(), 0);
        assert!(vhost.admit_connection("guest", 3, &signal).is_ok());
        assert_eq!(vhost.connection_count(), 0, "the slot was dropped at once");
        assert!(vhost.check_queue_limit(0, "q").is_err());
    }
}
