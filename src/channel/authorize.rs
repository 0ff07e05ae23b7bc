//! Which permission each AMQP operation needs, as RabbitMQ 3.10's channel asks for them,
//! and in the same order relative to its other checks (so the same reply comes first).
//!
//! Called by the channel's handlers before they change anything; every check goes
//! through the channel's `AccessCache`. Passive declares, direct reply-to and what the
//! broker does on its own (dead-lettering, alternate exchanges and exchange-to-exchange
//! routing of a publish) need no permission: RabbitMQ checks the client's operation
//! only.

use super::{Channel, Ctx};
use crate::access::cache::Who;
use crate::access::permissions::{Permission, Resource};
use crate::broker::exchange::ExchangeKind;
use crate::broker::vhost::VHost;
use crate::codec::Publish;
use crate::error::Exception;
use amq_protocol::types::{AMQPValue, FieldTable};

/// A string argument (alternate-exchange, x-dead-letter-exchange) naming an exchange;
/// other types are the declare's own error to report. (The management API's declares
/// ask the same.)
pub(crate) fn exchange_argument<'a>(arguments: &'a FieldTable, key: &str) -> Option<&'a str> {
    match arguments.inner().get(key)? {
        AMQPValue::LongString(s) => std::str::from_utf8(s.as_bytes()).ok(),
        AMQPValue::ShortString(s) => Some(s.as_str()),
        _ => None,
    }
}

impl Channel {
    /// The one access check: may this connection's user do `permission` on `name`?
    pub(super) fn authorize(
        &mut self,
        ctx: &Ctx,
        resource: Resource,
        name: &str,
        permission: Permission,
    ) -> Result<(), Exception> {
        self.access.check(&who(ctx), resource, name, permission)
    }

    /// Topic authorisation of a routing or binding key on `exchange`, when it is a topic
    /// exchange (an internal one is refused by the route before this would matter).
    fn authorize_topic(
        &mut self,
        ctx: &Ctx,
        exchange: &str,
        key: &str,
        permission: Permission,
    ) -> Result<(), Exception> {
        self.access
            .check_topic(&who(ctx), exchange, key, permission, || {
                ctx.vhost
                    .exchange_kind(exchange)
                    .is_some_and(|(kind, internal)| kind == ExchangeKind::Topic && !internal)
            })
    }

    /// basic.publish: write on the exchange (the default one as `amq.default`), then
    /// topic write on the routing key. The hot path: a publish to the same exchange as
    /// the last one allowed, permissions unchanged, is not checked again.
    pub(super) fn authorize_publish(
        &mut self,
        ctx: &Ctx,
        publish: &Publish,
    ) -> Result<(), Exception> {
        let sent = publish.exchange.as_bytes();
        if self.access.publish_allowed(ctx.permissions, sent) {
            return Ok(());
        }
        let exchange = publish.exchange.as_str();
        self.authorize(ctx, Resource::Exchange, exchange, Permission::Write)?;
        let key = publish.routing_key.as_str();
        self.authorize_topic(ctx, exchange, key, Permission::Write)?;
        self.access.allowed_publish(sent, exchange);
        Ok(())
    }

    /// queue.bind / unbind and exchange.bind / unbind: write on the destination, then
    /// the default exchange refused, read on the source, topic read on the key.
    pub(super) fn authorize_binding(
        &mut self,
        ctx: &Ctx,
        destination: (Resource, &str),
        source: &str,
        key: &str,
    ) -> Result<(), Exception> {
        let (kind, name) = destination;
        self.authorize(ctx, kind, name, Permission::Write)?;
        if source.is_empty() || (kind == Resource::Exchange && name.is_empty()) {
            return Err(VHost::default_exchange_refused());
        }
        self.authorize(ctx, Resource::Exchange, source, Permission::Read)?;
        self.authorize_topic(ctx, source, key, Permission::Read)
    }

    /// queue.declare (not passive) of `name` (already generated if server-named, then
    /// `server_named`): configure on it, unless the name is reserved (the declare
    /// refuses that first); for a new queue with a dead-letter exchange, read on the
    /// queue and write on that exchange.
    pub(super) fn authorize_queue_declare(
        &mut self,
        ctx: &Ctx,
        name: &str,
        server_named: bool,
        arguments: &FieldTable,
    ) -> Result<(), Exception> {
        if !server_named && name.starts_with("amq.") {
            return Ok(());
        }
        self.authorize(ctx, Resource::Queue, name, Permission::Configure)?;
        if let Some(dlx) = exchange_argument(arguments, "x-dead-letter-exchange") {
            if !ctx.vhost.has_queue(name) {
                self.authorize(ctx, Resource::Queue, name, Permission::Read)?;
                self.authorize(ctx, Resource::Exchange, dlx, Permission::Write)?;
            }
        }
        Ok(())
    }

    /// exchange.declare (not passive): configure on the exchange, after the type and
    /// default-exchange checks (left to the declare); for a new exchange with an
    /// alternate exchange, read on it and write on the alternate.
    pub(super) fn authorize_exchange_declare(
        &mut self,
        ctx: &Ctx,
        name: &str,
        kind: &str,
        arguments: &FieldTable,
    ) -> Result<(), Exception> {
        if ExchangeKind::parse(kind).is_none() || name.is_empty() {
            return Ok(());
        }
        self.authorize(ctx, Resource::Exchange, name, Permission::Configure)?;
        if let Some(ae) = exchange_argument(arguments, "alternate-exchange") {
            if !name.starts_with("amq.") && ctx.vhost.exchange_kind(name).is_none() {
                self.authorize(ctx, Resource::Exchange, name, Permission::Read)?;
                self.authorize(ctx, Resource::Exchange, ae, Permission::Write)?;
            }
        }
        Ok(())
    }

    /// exchange.delete: configure, after the default and `amq.*` refusals (left to the
    /// delete).
    pub(super) fn authorize_exchange_delete(
        &mut self,
        ctx: &Ctx,
        name: &str,
    ) -> Result<(), Exception> {
        if name.is_empty() || name.starts_with("amq.") {
            return Ok(());
        }
        self.authorize(ctx, Resource::Exchange, name, Permission::Configure)
    }
}

fn who<'a>(ctx: &'a Ctx) -> Who<'a> {
    Who {
        permissions: ctx.permissions,
        user: ctx.user,
        vhost: &ctx.vhost.name,
    }
}
