//! Merging a definitions file into the definitions a broker starts from, as RabbitMQ's
//! import does: what the file names is created or updated, what it does not name is
//! kept; importing the same file twice gives the same result as once.
//!
//! Called at start by the access bootstrap (`--definitions`), before the broker
//! restores from the result, so every object comes in through the usual restore paths.
//! Pure data work on two `Definitions` values: no I/O, no broker state.
//!
//! What "updated" means follows RabbitMQ: users, permissions, topic permissions,
//! parameters, global parameters and policies are set to the file's version. Queues,
//! exchanges and vhosts are declared, and declaring one that exists keeps the existing
//! one (RabbitMQ's import does not redeclare a queue with other arguments). A binding
//! is its whole content, so it is added unless the same binding is there.

use super::definitions::Definitions;
use serde_json::Value;
use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet};
use std::hash::Hash;

/// Merges `file` into `into`; see the module doc for what wins where.
pub fn merge(into: &mut Definitions, file: Definitions) {
    let Definitions {
        users,
        vhosts,
        permissions,
        topic_permissions,
        parameters,
        global_parameters,
        policies,
        queues,
        exchanges,
        bindings,
        ..
    } = file;
    upsert(&mut into.users, users, |u| u.name.clone());
    keep_existing(&mut into.vhosts, vhosts, |v| v.name.clone());
    upsert(&mut into.permissions, permissions, |p| {
        (p.user.clone(), p.vhost.clone())
    });
    upsert(&mut into.topic_permissions, topic_permissions, |p| {
        (p.user.clone(), p.vhost.clone(), p.exchange.clone())
    });
    upsert(&mut into.parameters, parameters, |p| {
        fields(p, &["vhost", "component", "name"])
    });
    upsert(&mut into.global_parameters, global_parameters, |p| {
        fields(p, &["name"])
    });
    upsert(&mut into.policies, policies, |p| {
        fields(p, &["vhost", "name"])
    });
    keep_existing(&mut into.queues, queues, |q| {
        (q.vhost.clone(), q.name.clone())
    });
    keep_existing(&mut into.exchanges, exchanges, |e| {
        (e.vhost.clone(), e.name.clone())
    });
    // A binding is its whole content (arguments are JSON, which does not hash): its
    // text is its key.
    keep_existing(&mut into.bindings, bindings, |b| {
        serde_json::to_string(b).unwrap_or_default()
    });
}

/// The string fields that identify an object RabbitMQ's format leaves untyped.
fn fields(v: &Value, keys: &[&str]) -> Vec<Option<String>> {
    keys.iter()
        .map(|k| v.get(*k).and_then(Value::as_str).map(str::to_owned))
        .collect()
}

/// Each incoming item replaces the one with its key, or is added.
fn upsert<T, K: Eq + Hash>(into: &mut Vec<T>, incoming: Vec<T>, key: impl Fn(&T) -> K) {
    let mut at: HashMap<K, usize> = into.iter().enumerate().map(|(i, x)| (key(x), i)).collect();
    for item in incoming {
        match at.entry(key(&item)) {
            Entry::Occupied(e) => into[*e.get()] = item,
            Entry::Vacant(e) => {
                e.insert(into.len());
                into.push(item);
            }
        }
    }
}

/// Each incoming item is added unless one with its key is there.
fn keep_existing<T, K: Eq + Hash>(into: &mut Vec<T>, incoming: Vec<T>, key: impl Fn(&T) -> K) {
    let mut seen: HashSet<K> = into.iter().map(&key).collect();
    for item in incoming {
        if seen.insert(key(&item)) {
            into.push(item);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::definitions::parse;

    #[test]
    fn merge_updates_adds_keeps_and_is_idempotent() {
        let mut base = parse(
            br#"{
            "users": [{"name": "a", "password_hash": "", "tags": ["x"]},
                      {"name": "kept", "password_hash": ""}],
            "vhosts": [{"name": "/"}],
            "queues": [{"name": "q", "vhost": "/", "durable": true, "arguments": {"x-max-length": 1}}],
            "policies": [{"vhost": "/", "name": "p", "pattern": "a", "definition": {}}]
        }"#,
        )
        .expect("base");
        let file = parse(
            br#"{
            "users": [{"name": "a", "password_hash": "", "tags": ["y"]},
                      {"name": "new", "password_hash": ""}],
            "vhosts": [{"name": "/"}, {"name": "v"}],
            "permissions": [{"user": "a", "vhost": "v", "configure": ".*", "write": "", "read": ""}],
            "queues": [{"name": "q", "vhost": "/", "durable": true, "arguments": {"x-max-length": 2}},
                       {"name": "q", "vhost": "v", "durable": true}],
            "bindings": [{"source": "amq.direct", "vhost": "v", "destination": "q",
                          "destination_type": "queue", "routing_key": "k"}],
            "policies": [{"vhost": "/", "name": "p", "pattern": "b", "definition": {}}]
        }"#,
        )
        .expect("file");
        merge(&mut base, file.clone());
        let names: Vec<&str> = base.users.iter().map(|u| u.name.as_str()).collect();
        assert_eq!(names, ["a", "kept", "new"]);
        assert_eq!(base.users[0].tags, ["y"], "a user is updated");
        assert_eq!(base.vhosts.len(), 2);
        assert_eq!(base.queues.len(), 2);
        assert_eq!(
            base.queues[0].arguments["x-max-length"], 1,
            "an existing queue is kept as declared"
        );
        assert_eq!(base.policies.len(), 1);
        assert_eq!(base.policies[0]["pattern"], "b", "a policy is updated");
        let once = base.clone();
        merge(&mut base, file);
        assert_eq!(base, once, "importing twice is importing once");
    }
}
