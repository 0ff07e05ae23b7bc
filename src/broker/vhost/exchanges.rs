//! exchange.declare and exchange.delete on a vhost's topology, with RabbitMQ's
//! equivalence checks and reply texts.
//!
//! Called by channels and the management API through `VHost`; takes the topology write
//! lock for the change itself and never holds it across an `.await`.

use super::bindings::remove_destination_locked;
use super::{canonical_exchange, policies, ExchangeDeclare, VHost};
use crate::broker::arguments::assert_args_equivalent;
use crate::broker::exchange::{Destination, Exchange, ExchangeKind};
use crate::error::Exception;
use std::sync::Arc;

impl VHost {
    pub fn declare_exchange(&self, d: &ExchangeDeclare) -> Result<(), Exception> {
        let name = d.name;
        if d.passive {
            if name.is_empty() {
                return Err(Self::default_exchange_refused());
            }
            return if self.read().exchanges.contains_key(name) {
                Ok(())
            } else {
                Err(self.no_exchange(name))
            };
        }
        let kind = ExchangeKind::parse(d.kind)
            .ok_or_else(|| crate::broker::exchange::unknown_type::refusal(d.kind))?;
        if name.is_empty() {
            return Err(Self::default_exchange_refused());
        }
        let mut topo = self.write();
        self.check_alive(&topo)?;
        if let Some(x) = topo.exchanges.get(name) {
            let fail = |field: &str,
                        received: &dyn std::fmt::Display,
                        current: &dyn std::fmt::Display| {
                Exception::precondition_failed(format!(
                    "inequivalent arg '{field}' for {}: received '{received}' but current is '{current}'",
                    self.describe_exchange(name)
                ))
            };
            if x.kind != kind {
                return Err(fail("type", &kind.name(), &x.kind.name()));
            }
            if x.durable != d.durable {
                return Err(fail("durable", &d.durable, &x.durable));
            }
            if x.auto_delete != d.auto_delete {
                return Err(fail("auto_delete", &d.auto_delete, &x.auto_delete));
            }
            if x.internal != d.internal {
                return Err(fail("internal", &d.internal, &x.internal));
            }
            return assert_args_equivalent(
                &x.arguments,
                d.arguments,
                &["alternate-exchange"],
                &self.describe_exchange(name),
            );
        }
        if name.starts_with("amq.") {
            return Err(Exception::access_refused(format!(
                "exchange name '{name}' contains reserved prefix 'amq.*'"
            )));
        }
        // RabbitMQ checks the alternate exchange's type before the exchange type's own
        // argument checks.
        crate::broker::arguments::validate_alternate_exchange(
            d.arguments,
            &self.describe_exchange(name),
        )?;
        kind.validate(d.arguments)?;
        topo.dirty |= d.durable;
        let mut x = Exchange::new(
            name,
            kind,
            d.durable,
            d.auto_delete,
            d.internal,
            d.arguments.clone(),
        )
        .charged(&self.memory);
        policies::apply_to_exchange(&mut x, &self.policies());
        if let Some(e) = self.events() {
            e.exchange_created(&self.name, &x);
        }
        topo.exchanges.insert(name.to_owned(), x);
        Ok(())
    }

    pub fn delete_exchange(&self, name: &str, if_unused: bool) -> Result<(), Exception> {
        if name.is_empty() {
            return Err(Self::default_exchange_refused());
        }
        if name.starts_with("amq.") {
            return Err(Exception::access_refused(format!(
                "deletion of system {} not allowed",
                self.describe_exchange(name)
            )));
        }
        let mut topo = self.write();
        match topo.exchanges.get(name) {
            None => Ok(()),
            Some(x) if if_unused && x.has_bindings() => Err(Exception::precondition_failed(
                format!("{} in use", self.describe_exchange(name)),
            )),
            Some(x) => {
                if let Some(e) = self.events() {
                    self.notify_exchange_deleted(e, &topo, x);
                }
                let delayed = x.kind == ExchangeKind::Delayed;
                topo.dirty |= x.durable;
                if delayed {
                    self.drop_held(name);
                }
                topo.exchanges.remove(name);
                remove_destination_locked(&mut topo, &Destination::Exchange(Arc::from(name)));
                drop(topo);
                self.tracing.exchange_deleted(name);
                Ok(())
            }
        }
    }

    /// The kind of exchange `name` and whether it is internal, if it exists.
    pub fn exchange_kind(&self, name: &str) -> Option<(ExchangeKind, bool)> {
        let topo = self.read();
        let x = topo.exchanges.get(canonical_exchange(name))?;
        Some((x.kind, x.internal))
    }
}
