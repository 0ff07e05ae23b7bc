//! Definitions at runtime: the broker's whole state (or one vhost's) in RabbitMQ's
//! definitions format, and a definitions file imported into a running broker, as the
//! management API's `/api/definitions` does them.
//!
//! Called by the management API (off the runtime's workers: an import of thousands of
//! queues is memory work under the topology locks, but a lot of it). An import is
//! checked whole before anything changes, so a refused file changes nothing; then it
//! goes through the paths a start uses for `--definitions`: `users::normalize` for
//! the users, `VHost::restore` for limits, metadata, exchanges, queues and bindings
//! (what exists is kept, as `store::import::merge` keeps it), the permission table for
//! permissions. Policies travel with their vhost (`VHost::durable_definitions` and
//! `restore`); `check_policies` refuses the ones restore would skip.

use super::vhost::{VhostLimits, VhostMetadata};
use super::Broker;
use crate::access::password::Algorithm;
use crate::access::pattern::Pattern;
use crate::access::permissions::Permissions;
use crate::broker::exchange::ExchangeKind;
use crate::broker::policy::validate;
use crate::broker::policy::PolicyKind;
use crate::store::definitions::{Definitions, VHOST_LIMITS};
use crate::store::fieldvalue::typed_table;
use serde_json::{json, Map, Value};
use std::collections::{BTreeSet, HashSet};

/// Why an import was refused: RabbitMQ's 400 reason (a text, or the JSON form of the
/// Erlang term it answers with, e.g. `["no_such_vhost", "v"]`).
#[derive(Clone, Debug, PartialEq)]
pub struct ImportError(pub Value);

impl ImportError {
    fn text(text: impl Into<String>) -> Self {
        ImportError(Value::String(text.into()))
    }
}

/// The component operator policies are kept under, in RabbitMQ's parameters.
const OPERATOR_POLICY: &str = "operator_policy";

impl Broker {
    /// Everything, as `GET /api/definitions` exports it: users, vhosts (with metadata
    /// and limits), permissions, topic permissions, parameters (vhost limits), global
    /// parameters, policies, and the durable exchanges, queues and bindings.
    pub fn export_definitions(&self) -> Definitions {
        let mut defs = Definitions {
            users: self.users.definitions(),
            ..Definitions::default()
        };
        defs.extra.insert("product_name".into(), "warren".into());
        defs.extra
            .insert("product_version".into(), env!("CARGO_PKG_VERSION").into());
        let mut vhosts = self.all_vhosts();
        vhosts.sort_by(|a, b| a.name.cmp(&b.name));
        for v in &vhosts {
            v.exported_definitions(&mut defs);
        }
        self.permissions.export(&mut defs);
        defs.global_parameters = self.globals.definitions();
        defs
    }

    /// Imports `defs` (whole-broker, or already scoped to one vhost by the caller):
    /// checked whole first, then applied.
    pub fn import_definitions(&self, mut defs: Definitions) -> Result<(), ImportError> {
        let existing = self.users.list();
        crate::access::users::normalize(&mut defs, &existing)
            .map_err(|e| ImportError::text(e.to_string()))?;
        self.check_import(&defs)?;
        self.users.import(&defs.users);
        for v in &defs.vhosts {
            let metadata = v
                .extra
                .get("metadata")
                .map(VhostMetadata::from_json)
                .unwrap_or_default();
            if self.create_vhost(&v.name, metadata).is_some() {
                tracing::info!(vhost = v.name, "vhost created by a definitions import");
            }
        }
        let policies = !defs.policies.is_empty()
            || defs
                .parameters
                .iter()
                .any(|p| p.get("component").and_then(Value::as_str) == Some(OPERATOR_POLICY));
        for name in named_vhosts(&defs) {
            if let Some(v) = self.vhost(&name) {
                v.restore(&defs);
                // Restore sets the policies for what it creates; queues and exchanges
                // that were there before the import take them too.
                if policies {
                    v.reapply_policies();
                }
            }
        }
        for p in &defs.permissions {
            if let Err(e) = self.set_permissions(&p.user, &p.vhost, &p.configure, &p.write, &p.read)
            {
                tracing::warn!(user = p.user, vhost = p.vhost, error = %e, "imported permission refused");
            }
        }
        for p in &defs.topic_permissions {
            if let Err(e) =
                self.set_topic_permissions(&p.user, &p.vhost, &p.exchange, &p.write, &p.read)
            {
                tracing::warn!(user = p.user, vhost = p.vhost, error = %e, "imported topic permission refused");
            }
        }
        self.globals.restore(&defs.global_parameters);
        self.definitions_changed();
        Ok(())
    }

    /// Everything an import could refuse, before anything changes.
    fn check_import(&self, defs: &Definitions) -> Result<(), ImportError> {
        let mut vhosts: HashSet<String> =
            self.all_vhosts().iter().map(|v| v.name.clone()).collect();
        for v in &defs.vhosts {
            if v.name.is_empty() {
                return Err(ImportError::text("vhost name cannot be empty"));
            }
            if let Some(m) = v.extra.get("metadata") {
                VhostMetadata::from_json(m)
                    .check()
                    .map_err(|e| ImportError(json!([e, v.name])))?;
            }
            vhosts.insert(v.name.clone());
        }
        let vhost = |name: &str| -> Result<(), ImportError> {
            if vhosts.contains(name) {
                Ok(())
            } else {
                Err(ImportError(json!(["no_such_vhost", name])))
            }
        };
        let mut users: HashSet<String> = self.users.list().into_iter().map(|u| u.name).collect();
        for u in &defs.users {
            if u.name.is_empty() {
                return Err(ImportError::text("user cannot be an empty string"));
            }
            if !u.password_hash.is_empty() && Algorithm::from_name(&u.hashing_algorithm).is_none() {
                return Err(ImportError::text(format!(
                    "user {}: unknown hashing algorithm {}",
                    u.name, u.hashing_algorithm
                )));
            }
            let mut scratch = Map::new();
            match &u.limits {
                Value::Object(m) if m.is_empty() => {}
                limits => crate::access::limits::set(&mut scratch, limits)
                    .map_err(|e| ImportError::text(format!("user {}: {e}", u.name)))?,
            }
            users.insert(u.name.clone());
        }
        let user = |name: &str| -> Result<(), ImportError> {
            if users.contains(name) {
                Ok(())
            } else {
                Err(ImportError(json!(["no_such_user", name])))
            }
        };
        for p in &defs.permissions {
            user(&p.user)?;
            vhost(&p.vhost)?;
            for pattern in [&p.configure, &p.write, &p.read] {
                Pattern::compile(pattern).map_err(|e| ImportError::text(e.to_string()))?;
            }
        }
        for p in &defs.topic_permissions {
            user(&p.user)?;
            vhost(&p.vhost)?;
            Permissions::validate_topic(&p.write, &p.read)
                .map_err(|e| ImportError::text(e.to_string()))?;
        }
        for q in &defs.queues {
            vhost(&q.vhost)?;
        }
        for x in &defs.exchanges {
            vhost(&x.vhost)?;
            let Some(kind) = ExchangeKind::parse(&x.kind) else {
                return Err(ImportError::text(format!(
                    "invalid type '{}' for exchange '{}' in vhost '{}'",
                    x.kind, x.name, x.vhost
                )));
            };
            // A plugin kind's arguments, checked as exchange.declare checks them.
            kind.validate(&typed_table(&x.arguments, &x.extra))
                .map_err(|e| {
                    ImportError::text(format!(
                        "exchange '{}' in vhost '{}': {}",
                        x.name, x.vhost, e.text
                    ))
                })?;
        }
        for b in &defs.bindings {
            vhost(&b.vhost)?;
        }
        for p in &defs.policies {
            vhost(p.get("vhost").and_then(Value::as_str).unwrap_or(""))?;
        }
        for p in &defs.parameters {
            let field = |k: &str| p.get(k).and_then(Value::as_str).unwrap_or("");
            vhost(field("vhost"))?;
            match field("component") {
                VHOST_LIMITS => {
                    let value = p.get("value").unwrap_or(&Value::Null);
                    VhostLimits::parse(value)
                        .map_err(|e| ImportError::text(format!("Validation failed\n\n{e}\n")))?;
                }
                OPERATOR_POLICY => {}
                other => {
                    return Err(ImportError::text(format!(
                        "Validation failed\n\ncomponent {other} not found\n"
                    )))
                }
            }
        }
        for p in &defs.global_parameters {
            if p.get("name").and_then(Value::as_str).is_none() {
                return Err(ImportError::text("a global parameter without a name"));
            }
        }
        self.check_policies(defs)
    }

    /// Policies and operator policies (in `defs.policies` and the "operator_policy"
    /// parameters) checked as `VHost::restore` will set them, with the policies'
    /// validation texts.
    fn check_policies(&self, defs: &Definitions) -> Result<(), ImportError> {
        let name = |v: &Value| {
            v.get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned()
        };
        let operator = defs
            .parameters
            .iter()
            .filter(|p| p.get("component").and_then(Value::as_str) == Some(OPERATOR_POLICY))
            .map(|p| {
                let value = p.get("value").unwrap_or(&Value::Null);
                (PolicyKind::Operator, name(p), value)
            });
        let policies = defs
            .policies
            .iter()
            .map(|p| (PolicyKind::Policy, name(p), p));
        for (kind, name, body) in policies.chain(operator) {
            validate::parse(kind, &name, body).map_err(|e| ImportError::text(e.reason(false)))?;
        }
        Ok(())
    }
}

/// Every vhost an import touches, once each.
fn named_vhosts(defs: &Definitions) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = defs.vhosts.iter().map(|v| v.name.clone()).collect();
    names.extend(defs.queues.iter().map(|q| q.vhost.clone()));
    names.extend(defs.exchanges.iter().map(|x| x.vhost.clone()));
    names.extend(defs.bindings.iter().map(|b| b.vhost.clone()));
    names.extend(
        defs.parameters
            .iter()
            .chain(&defs.policies)
            .filter_map(|p| p.get("vhost").and_then(Value::as_str).map(str::to_owned)),
    );
    names
}
