//! A vhost's policies and operator policies: setting and clearing them, applying them
//! at once to every queue and exchange they match (and to new ones at declaration), and
//! their place in the definitions file.
//!
//! Called by the management API (set, clear, list), by declaration in `vhost` (a new
//! queue's or exchange's settings) and by restore and export in `durable`. The set is
//! an `Arc` snapshot behind a `RwLock` taken only to swap or clone it, and always after
//! the topology lock when both are held, so a declaration and a policy change never
//! miss each other: re-application reads the snapshot under the topology lock. Applying
//! is memory work under the topology and queue locks (a queue over a new limit drops
//! its excess through the non-blocking dead-letter send); nothing here does I/O.

use super::{Topology, VHost};
use crate::broker::deadletter::DeadLetterTarget;
use crate::broker::exchange::Exchange;
use crate::broker::policy::validate::{self, Invalid};
use crate::broker::policy::{
    alternate_exchange, effective_queue_arguments, Applied, Policies, Policy, PolicyKind, Target,
};
use crate::store::definitions::Definitions;
use amq_protocol::types::FieldTable;
use serde_json::{json, Value};
use std::borrow::Cow;
use std::sync::Arc;

/// The runtime parameter component RabbitMQ exports operator policies under.
const OPERATOR_COMPONENT: &str = "operator_policy";

/// What a queue gets from the policies at declaration or when they change.
pub(super) struct QueueSettings<'a> {
    pub applied: Applied,
    /// The declared arguments with the policies' settings (borrowed when no policy
    /// applies, the common case: no copy per declaration).
    pub effective: Cow<'a, FieldTable>,
    pub dead_letter: Option<DeadLetterTarget>,
}

impl VHost {
    /// The policies as they are now.
    pub fn policies(&self) -> Arc<Policies> {
        self.policies
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Adds or replaces a policy and applies the change to every queue and exchange;
    /// returns whether one of that name existed.
    pub fn set_policy(&self, kind: PolicyKind, policy: Policy) -> bool {
        let existed = self.change_policies(|p| p.set(kind, policy));
        self.reapply_policies();
        existed
    }

    /// Removes a policy and applies the change; returns whether it existed.
    pub fn clear_policy(&self, kind: PolicyKind, name: &str) -> bool {
        let existed = self.change_policies(|p| p.clear(kind, name));
        if existed {
            self.reapply_policies();
        }
        existed
    }

    fn change_policies(&self, change: impl FnOnce(&mut Policies) -> bool) -> bool {
        let mut guard = self.policies.write().unwrap_or_else(|e| e.into_inner());
        change(Arc::make_mut(&mut guard))
    }

    /// A queue's settings under the current policies (called under the topology lock).
    pub(super) fn queue_settings<'a>(
        &self,
        policies: &Policies,
        name: &str,
        arguments: &'a FieldTable,
    ) -> QueueSettings<'a> {
        let applied = policies.applied(Target::Queue, name);
        let effective = if applied == Applied::default() {
            Cow::Borrowed(arguments)
        } else {
            Cow::Owned(effective_queue_arguments(arguments, &applied))
        };
        QueueSettings {
            dead_letter: self.dead_letter_target(&effective),
            effective,
            applied,
        }
    }

    /// Every queue and exchange takes the policies as they are now; the definitions
    /// file is rewritten (it holds the policies).
    pub(crate) fn reapply_policies(&self) {
        let mut topo = self.write();
        let policies = self.policies();
        apply_to_exchanges(&mut topo, &policies);
        for q in topo.queues.values() {
            let s = self.queue_settings(&policies, &q.name, &q.arguments);
            q.apply_policy(s.applied, &s.effective, s.dead_letter);
        }
        topo.dirty = true;
    }

    /// Appends the policies to `defs`: policies in their section, operator policies as
    /// runtime parameters, as RabbitMQ 3.10.8 exports them.
    pub(super) fn export_policies(&self, defs: &mut Definitions) {
        let policies = self.policies();
        for p in policies.list(PolicyKind::Policy) {
            defs.policies.push(p.to_json(&self.name));
        }
        for p in policies.list(PolicyKind::Operator) {
            defs.parameters.push(json!({
                "vhost": self.name,
                "component": OPERATOR_COMPONENT,
                "name": p.name,
                "value": p.parameter_value(),
            }));
        }
    }

    /// Reads this vhost's policies from the definitions file (before its queues and
    /// exchanges are restored, so they are created with them). Invalid ones are logged
    /// and skipped.
    pub(super) fn restore_policies(&self, defs: &Definitions) {
        let mine = |v: &Value| v.get("vhost").and_then(Value::as_str) == Some(self.name.as_str());
        let name = |v: &Value| v.get("name").and_then(Value::as_str).map(str::to_owned);
        let policies = defs
            .policies
            .iter()
            .filter(|p| mine(p))
            .map(|p| (PolicyKind::Policy, name(p), p));
        let operator = defs
            .parameters
            .iter()
            .filter(|p| {
                mine(p) && p.get("component").and_then(Value::as_str) == Some(OPERATOR_COMPONENT)
            })
            .filter_map(|p| Some((PolicyKind::Operator, name(p), p.get("value")?)));
        for (kind, name, body) in policies.chain(operator) {
            let Some(name) = name else { continue };
            match validate::parse(kind, &name, body) {
                Ok(policy) => {
                    self.change_policies(|p| p.set(kind, policy));
                }
                Err(e) => tracing::warn!(
                    vhost = %self.name,
                    policy = %name,
                    reason = %Invalid::reason(&e, false),
                    "policy in definitions refused"
                ),
            }
        }
    }
}

/// Sets each exchange's policy and alternate exchange from `policies`.
pub(super) fn apply_to_exchanges(topo: &mut Topology, policies: &Policies) {
    for x in topo.exchanges.values_mut() {
        apply_to_exchange(x, policies);
    }
}

/// An exchange's policy name and alternate exchange (its argument, else the policy's).
/// The default exchange takes no policy.
pub(super) fn apply_to_exchange(x: &mut Exchange, policies: &Policies) {
    if x.name.is_empty() {
        return;
    }
    let applied = policies.applied(Target::Exchange, &x.name);
    x.alternate = alternate_exchange(&x.arguments, &applied).map(Arc::from);
    x.policy = applied.policy;
}
