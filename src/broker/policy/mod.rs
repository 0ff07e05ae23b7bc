//! Policies and operator policies: a vhost's named rules (pattern, apply-to, priority,
//! definition) that give queues and exchanges settings their declarations did not, and
//! how RabbitMQ 3.10 picks and merges them.
//!
//! Owned by each vhost (`vhost::policies` sets, clears, re-applies and persists them);
//! read by queue and exchange declaration and by the management API. Pure data work:
//! no lock of its own, no I/O, nothing that touches a queue.
//!
//! What RabbitMQ does, and so this module: the policy of an object is the matching one
//! of highest priority (between equal priorities the name that sorts last wins, as the
//! reference 3.10.8 picks it); the same for operator policies, separately. The two
//! definitions merge key by key, and where both set a key (all operator keys are limits)
//! the smaller value wins. A queue's effective setting then comes from its argument and
//! that merged value: for the limits (expires, message-ttl, max-length,
//! max-length-bytes, delivery-limit) the smaller wins, for the others the argument wins.

pub mod validate;

use crate::access::pattern::Pattern;
use amq_protocol::types::{AMQPValue, FieldTable};
use serde_json::{json, Map, Value};
use std::collections::BTreeMap;

/// A policy set by a policymaker, or an operator policy set by an administrator.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyKind {
    Policy,
    Operator,
}

/// What a policy applies to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ApplyTo {
    Queues,
    Exchanges,
    All,
}

impl ApplyTo {
    pub fn parse(text: &str) -> Option<ApplyTo> {
        match text {
            "queues" => Some(ApplyTo::Queues),
            "exchanges" => Some(ApplyTo::Exchanges),
            "all" => Some(ApplyTo::All),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            ApplyTo::Queues => "queues",
            ApplyTo::Exchanges => "exchanges",
            ApplyTo::All => "all",
        }
    }
}

/// What kind of object a policy is matched against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    Queue,
    Exchange,
}

/// One validated policy.
#[derive(Clone)]
pub struct Policy {
    pub name: String,
    pub pattern: String,
    matcher: Pattern,
    pub apply_to: ApplyTo,
    /// As given (RabbitMQ accepts any number), compared as a float.
    pub priority: serde_json::Number,
    pub definition: Map<String, Value>,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("name", &self.name)
            .field("pattern", &self.pattern)
            .finish_non_exhaustive()
    }
}

impl Policy {
    fn priority(&self) -> f64 {
        self.priority.as_f64().unwrap_or(0.0)
    }

    fn applies(&self, target: Target, name: &str) -> bool {
        let kind = matches!(
            (self.apply_to, target),
            (ApplyTo::All, _)
                | (ApplyTo::Queues, Target::Queue)
                | (ApplyTo::Exchanges, Target::Exchange)
        );
        kind && self.matcher.matches(name)
    }

    /// The policy as the API and the definitions file show it (without vhost).
    pub fn to_json(&self, vhost: &str) -> Value {
        json!({
            "vhost": vhost,
            "name": self.name,
            "pattern": self.pattern,
            "apply-to": self.apply_to.name(),
            "definition": self.definition,
            "priority": self.priority,
        })
    }

    /// The policy as an operator_policy runtime parameter's value (RabbitMQ's export).
    pub fn parameter_value(&self) -> Value {
        json!({
            "pattern": self.pattern,
            "apply-to": self.apply_to.name(),
            "definition": self.definition,
            "priority": self.priority,
        })
    }
}

/// A vhost's policies and operator policies, each by name.
#[derive(Clone, Debug, Default)]
pub struct Policies {
    policies: BTreeMap<String, Policy>,
    operator: BTreeMap<String, Policy>,
}

/// The policies that apply to one object, and their merged definition.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Applied {
    pub policy: Option<String>,
    pub operator_policy: Option<String>,
    /// The policy's definition merged with the operator policy's (`effective_policy_definition`).
    pub definition: Map<String, Value>,
}

impl Applied {
    /// The fields RabbitMQ's management API shows on a queue: `policy`,
    /// `operator_policy` (null when none) and `effective_policy_definition`.
    pub fn queue_fields(&self, into: &mut Map<String, Value>) {
        let name = |n: &Option<String>| n.clone().map_or(Value::Null, Value::String);
        into.insert("policy".into(), name(&self.policy));
        into.insert("operator_policy".into(), name(&self.operator_policy));
        into.insert(
            "effective_policy_definition".into(),
            Value::Object(self.definition.clone()),
        );
    }

    /// The policy value of `key`, if the merged definition sets it.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.definition.get(key)
    }
}

/// The queue settings a policy can give, as the x- argument each one stands for, and
/// whether the smaller of argument and policy wins (else the argument wins).
const QUEUE_KEYS: [(&str, &str, bool); 10] = [
    ("expires", "x-expires", true),
    ("message-ttl", "x-message-ttl", true),
    ("max-length", "x-max-length", true),
    ("max-length-bytes", "x-max-length-bytes", true),
    ("delivery-limit", "x-delivery-limit", true),
    ("dead-letter-exchange", "x-dead-letter-exchange", false),
    (
        "dead-letter-routing-key",
        "x-dead-letter-routing-key",
        false,
    ),
    ("overflow", "x-overflow", false),
    ("queue-mode", "x-queue-mode", false),
    // Streams' retention by age (a string such as "7D"); only streams read it.
    ("max-age", "x-max-age", false),
];

impl Policies {
    fn map(&self, kind: PolicyKind) -> &BTreeMap<String, Policy> {
        match kind {
            PolicyKind::Policy => &self.policies,
            PolicyKind::Operator => &self.operator,
        }
    }

    /// Sets (adds or replaces) a policy; returns whether it existed.
    pub fn set(&mut self, kind: PolicyKind, policy: Policy) -> bool {
        let map = match kind {
            PolicyKind::Policy => &mut self.policies,
            PolicyKind::Operator => &mut self.operator,
        };
        map.insert(policy.name.clone(), policy).is_some()
    }

    /// Removes a policy; returns whether it existed.
    pub fn clear(&mut self, kind: PolicyKind, name: &str) -> bool {
        match kind {
            PolicyKind::Policy => self.policies.remove(name).is_some(),
            PolicyKind::Operator => self.operator.remove(name).is_some(),
        }
    }

    pub fn get(&self, kind: PolicyKind, name: &str) -> Option<&Policy> {
        self.map(kind).get(name)
    }

    /// Every policy of `kind`, by name.
    pub fn list(&self, kind: PolicyKind) -> impl Iterator<Item = &Policy> {
        self.map(kind).values()
    }

    pub fn is_empty(&self) -> bool {
        self.policies.is_empty() && self.operator.is_empty()
    }

    /// The policy of `kind` that applies to the object: highest priority; between
    /// equals, the name that sorts last.
    fn pick(&self, kind: PolicyKind, target: Target, name: &str) -> Option<&Policy> {
        // Names iterate in order, so `>=` keeps the last of equal priorities.
        self.map(kind)
            .values()
            .filter(|p| p.applies(target, name))
            .fold(None, |best: Option<&Policy>, p| match best {
                Some(b) if b.priority() > p.priority() => Some(b),
                _ => Some(p),
            })
    }

    /// The policies that apply to a queue or exchange named `name`, merged.
    pub fn applied(&self, target: Target, name: &str) -> Applied {
        if self.is_empty() {
            return Applied::default();
        }
        let policy = self.pick(PolicyKind::Policy, target, name);
        let operator = self.pick(PolicyKind::Operator, target, name);
        let mut definition = policy.map(|p| p.definition.clone()).unwrap_or_default();
        for (key, op) in operator.iter().flat_map(|p| &p.definition) {
            let merged = match definition.get(key) {
                Some(own) => smaller(own, op).clone(),
                None => op.clone(),
            };
            definition.insert(key.clone(), merged);
        }
        Applied {
            policy: policy.map(|p| p.name.clone()),
            operator_policy: operator.map(|p| p.name.clone()),
            definition,
        }
    }
}

/// The smaller of two numbers (the first when either is not a number).
fn smaller<'a>(a: &'a Value, b: &'a Value) -> &'a Value {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) if y < x => b,
        _ => a,
    }
}

/// A queue's effective arguments: its own, with what `applied` gives filled in or,
/// for the limits, lowered. Settings are then read from these as from arguments.
pub fn effective_queue_arguments(arguments: &FieldTable, applied: &Applied) -> FieldTable {
    let mut out = arguments.clone();
    for (key, arg, min) in QUEUE_KEYS {
        let Some(value) = applied.get(key) else {
            continue;
        };
        let value = match value {
            Value::String(s) => AMQPValue::LongString(s.as_str().into()),
            Value::Number(n) => match n.as_i64() {
                Some(i) => AMQPValue::LongLongInt(i),
                None => continue,
            },
            _ => continue,
        };
        let own = out.inner().get(arg).and_then(super::arguments::as_int);
        let replace = match (own, &value) {
            (None, _) if !out.inner().contains_key(arg) => true,
            (Some(own), AMQPValue::LongLongInt(p)) if min => i128::from(*p) < own,
            _ => false,
        };
        if replace {
            out.insert(arg.into(), value);
        }
    }
    out
}

/// An exchange's alternate exchange: its argument, else the policy's.
pub fn alternate_exchange(arguments: &FieldTable, applied: &Applied) -> Option<String> {
    match arguments.inner().get("alternate-exchange") {
        Some(AMQPValue::LongString(s)) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        Some(AMQPValue::ShortString(s)) => Some(s.as_str().to_owned()),
        _ => applied
            .get("alternate-exchange")
            .and_then(Value::as_str)
            .map(str::to_owned),
    }
}

#[cfg(test)]
mod tests {
    use super::validate::parse;
    use super::*;

    fn policy(name: &str, pattern: &str, priority: i64, def: Value) -> Policy {
        let body = json!({"pattern": pattern, "priority": priority, "definition": def});
        parse(PolicyKind::Policy, name, &body).expect("valid")
    }

    #[test]
    fn highest_priority_wins_and_ties_go_to_the_last_name() {
        let mut set = Policies::default();
        set.set(
            PolicyKind::Policy,
            policy("b", "^q", 0, json!({"max-length": 7})),
        );
        set.set(
            PolicyKind::Policy,
            policy("d", "^q", 0, json!({"max-length": 5})),
        );
        set.set(
            PolicyKind::Policy,
            policy("a", "^q", 0, json!({"max-length": 8})),
        );
        assert_eq!(
            set.applied(Target::Queue, "q1").policy.as_deref(),
            Some("d")
        );
        set.set(
            PolicyKind::Policy,
            policy("a", "^q", 1, json!({"max-length": 8})),
        );
        assert_eq!(
            set.applied(Target::Queue, "q1").policy.as_deref(),
            Some("a")
        );
        assert_eq!(set.applied(Target::Queue, "x").policy, None);
    }

    #[test]
    fn operator_limits_merge_by_minimum_and_arguments_take_precedence() {
        let mut set = Policies::default();
        set.set(
            PolicyKind::Policy,
            policy(
                "p",
                "",
                0,
                json!({"max-length": 10, "message-ttl": 100, "dead-letter-exchange": "pol"}),
            ),
        );
        let op = json!({"pattern": ".*", "definition": {"max-length": 3, "expires": 5000}});
        set.set(
            PolicyKind::Operator,
            parse(PolicyKind::Operator, "o", &op).expect("valid"),
        );
        let applied = set.applied(Target::Queue, "q");
        assert_eq!(
            Value::Object(applied.definition.clone()),
            json!({"max-length": 3, "message-ttl": 100, "dead-letter-exchange": "pol", "expires": 5000})
        );
        let mut args = FieldTable::default();
        args.insert("x-max-length".into(), AMQPValue::LongInt(2));
        args.insert("x-message-ttl".into(), AMQPValue::LongInt(500));
        args.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString("arg".into()),
        );
        let eff = effective_queue_arguments(&args, &applied);
        let get = |k: &str| eff.inner().get(k).cloned();
        assert_eq!(get("x-max-length"), Some(AMQPValue::LongInt(2)));
        assert_eq!(get("x-message-ttl"), Some(AMQPValue::LongLongInt(100)));
        assert_eq!(
            get("x-dead-letter-exchange"),
            Some(AMQPValue::LongString("arg".into()))
        );
        assert_eq!(get("x-expires"), Some(AMQPValue::LongLongInt(5000)));
    }

    #[test]
    fn the_api_fields_read_as_the_references() {
        let mut q = Map::new();
        Applied::default().queue_fields(&mut q);
        assert_eq!(
            Value::Object(q),
            json!({"policy": null, "operator_policy": null, "effective_policy_definition": {}})
        );
        let applied = Applied {
            policy: Some("p".into()),
            operator_policy: Some("o".into()),
            definition: json!({"max-length": 3})
                .as_object()
                .cloned()
                .unwrap_or_default(),
        };
        let mut q = Map::new();
        applied.queue_fields(&mut q);
        assert_eq!(
            Value::Object(q),
            json!({"policy": "p", "operator_policy": "o",
                   "effective_policy_definition": {"max-length": 3}})
        );
    }
}
