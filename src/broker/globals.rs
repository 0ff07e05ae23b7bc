//! Global runtime parameters, as RabbitMQ keeps them beside the vhosts: `cluster_name`,
//! `internal_cluster_id` and whatever an operator or an imported definitions file sets
//! (`/api/global-parameters`, the `global_parameters` of a definitions file).
//!
//! Owned by the `Broker`; the management API reads and changes it, the definitions
//! import fills it, and the definitions file keeps it (restored at start, written by
//! the definitions writer's snapshot). Plain values behind one short lock; nothing here
//! routes, blocks or writes.

use serde_json::Value;
use std::collections::BTreeMap;
use std::sync::RwLock;

/// The parameter that names the cluster (`/api/cluster-name`).
pub const CLUSTER_NAME: &str = "cluster_name";
/// The parameter RabbitMQ sets once with a random id.
pub const INTERNAL_CLUSTER_ID: &str = "internal_cluster_id";

#[derive(Debug)]
pub struct GlobalParameters {
    values: RwLock<BTreeMap<String, Value>>,
}

impl Default for GlobalParameters {
    /// With `internal_cluster_id` set, as a RabbitMQ node has it from its first start.
    fn default() -> Self {
        let mut values = BTreeMap::new();
        values.insert(
            INTERNAL_CLUSTER_ID.to_owned(),
            Value::String(format!("rabbitmq-cluster-id-{}", random_id())),
        );
        GlobalParameters {
            values: RwLock::new(values),
        }
    }
}

impl GlobalParameters {
    /// Every parameter, by name.
    pub fn list(&self) -> Vec<(String, Value)> {
        let values = self.values.read().unwrap_or_else(|e| e.into_inner());
        values.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    pub fn get(&self, name: &str) -> Option<Value> {
        let values = self.values.read().unwrap_or_else(|e| e.into_inner());
        values.get(name).cloned()
    }

    /// The parameters a definitions file held (the stored `internal_cluster_id` replaces
    /// the one made at start, so the id stays the same across restarts).
    pub fn restore(&self, stored: &[Value]) {
        let mut values = self.values.write().unwrap_or_else(|e| e.into_inner());
        for p in stored {
            if let (Some(name), Some(value)) =
                (p.get("name").and_then(Value::as_str), p.get("value"))
            {
                values.insert(name.to_owned(), value.clone());
            }
        }
    }

    /// Every parameter as the definitions file holds it: `{"name": .., "value": ..}`.
    pub fn definitions(&self) -> Vec<Value> {
        self.list()
            .into_iter()
            .map(|(name, value)| serde_json::json!({"name": name, "value": value}))
            .collect()
    }

    /// Sets `name`; returns whether it is new.
    pub fn set(&self, name: &str, value: Value) -> bool {
        let mut values = self.values.write().unwrap_or_else(|e| e.into_inner());
        values.insert(name.to_owned(), value).is_none()
    }

    /// Clears `name`; returns whether it was set.
    pub fn clear(&self, name: &str) -> bool {
        let mut values = self.values.write().unwrap_or_else(|e| e.into_inner());
        values.remove(name).is_some()
    }
}

/// 16 random bytes in URL-safe base64, as RabbitMQ's cluster id (a fixed text if the
/// system's random source fails: the id is informational).
fn random_id() -> String {
    use base64::Engine;
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 16];
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        return "warren".to_owned();
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}
