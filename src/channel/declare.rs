//! The exchange and queue classes on a channel: declare, delete, bind, unbind, purge.
//!
//! Called by `Channel::handle_method`; the checks and texts live in the vhost, this file
//! translates methods to vhost calls and writes the -ok replies (unless nowait).

use super::{Channel, Ctx};
use crate::access::permissions::{Permission, Resource};
use crate::broker::vhost::{server_generated_name, ExchangeDeclare, QueueDeclare, REPLY_TO};
use crate::error::Exception;
use amq_protocol::protocol::{exchange as amqp_exchange, queue as amqp_queue, AMQPClass};
use std::borrow::Cow;

impl Channel {
    pub(super) fn exchange_method(
        &mut self,
        ctx: &mut Ctx,
        method: amqp_exchange::AMQPMethod,
    ) -> Result<(), Exception> {
        use amqp_exchange::AMQPMethod as X;
        let (reply, nowait) = match method {
            X::Declare(m) => {
                let name = strip_cr_lf(m.exchange.as_str());
                if !m.passive {
                    let kind = m.kind.as_str();
                    self.authorize_exchange_declare(ctx, &name, kind, &m.arguments)?;
                }
                ctx.vhost.declare_exchange(&ExchangeDeclare {
                    name: &name,
                    kind: m.kind.as_str(),
                    passive: m.passive,
                    durable: m.durable,
                    auto_delete: m.auto_delete,
                    internal: m.internal,
                    arguments: &m.arguments,
                })?;
                (X::DeclareOk(amqp_exchange::DeclareOk {}), m.nowait)
            }
            X::Delete(m) => {
                let name = strip_cr_lf(m.exchange.as_str());
                self.authorize_exchange_delete(ctx, &name)?;
                ctx.vhost.delete_exchange(&name, m.if_unused)?;
                (X::DeleteOk(amqp_exchange::DeleteOk {}), m.nowait)
            }
            X::Bind(m) => {
                let key = m.routing_key.as_str();
                let (to, from) =
                    self.exchange_binding(ctx, m.destination.as_str(), m.source.as_str(), key)?;
                ctx.vhost.bind_exchange(&to, &from, key, &m.arguments)?;
                (X::BindOk(amqp_exchange::BindOk {}), m.nowait)
            }
            X::Unbind(m) => {
                let key = m.routing_key.as_str();
                let (to, from) =
                    self.exchange_binding(ctx, m.destination.as_str(), m.source.as_str(), key)?;
                ctx.vhost.unbind_exchange(&to, &from, key, &m.arguments)?;
                (X::UnbindOk(amqp_exchange::UnbindOk {}), m.nowait)
            }
            other => return Err(unexpected(AMQPClass::Exchange(other))),
        };
        if !nowait {
            ctx.send(self.id, AMQPClass::Exchange(reply));
        }
        Ok(())
    }

    /// exchange.bind / unbind: the destination and source names (CR/LF stripped) once
    /// the access checks passed.
    fn exchange_binding<'a>(
        &mut self,
        ctx: &Ctx,
        destination: &'a str,
        source: &'a str,
        key: &str,
    ) -> Result<(Cow<'a, str>, Cow<'a, str>), Exception> {
        let (to, from) = (strip_cr_lf(destination), strip_cr_lf(source));
        self.authorize_binding(ctx, (Resource::Exchange, &to), &from, key)?;
        Ok((to, from))
    }

    pub(super) fn queue_method(
        &mut self,
        ctx: &mut Ctx,
        method: amqp_queue::AMQPMethod,
    ) -> Result<(), Exception> {
        use amqp_queue::AMQPMethod as Q;
        let (reply, nowait) = match method {
            // RabbitMQ answers any declare of the direct reply-to pseudo-queue, passive
            // or not, with these fixed counts, before any check (clients probe it so).
            Q::Declare(m) if m.queue.as_str() == REPLY_TO => (
                Q::DeclareOk(amqp_queue::DeclareOk {
                    queue: REPLY_TO.into(),
                    message_count: 0,
                    consumer_count: 1,
                }),
                m.nowait,
            ),
            Q::Declare(m) => {
                let generated;
                let given = strip_cr_lf(m.queue.as_str());
                let server_named = !m.passive && m.queue.as_str().is_empty();
                // A passive declare of '' names no queue, not the channel's last one:
                // RabbitMQ answers 404 "no queue ''".
                let name = if server_named {
                    // Named here: the configure permission is checked on this name.
                    generated = server_generated_name("amq.gen-");
                    generated.as_str()
                } else {
                    &given
                };
                if !m.passive {
                    self.authorize_queue_declare(ctx, name, server_named, &m.arguments)?;
                }
                let declared = ctx.vhost.declare_queue(
                    &QueueDeclare {
                        name,
                        passive: m.passive,
                        durable: m.durable,
                        exclusive: m.exclusive,
                        auto_delete: m.auto_delete,
                        arguments: &m.arguments,
                        server_named,
                    },
                    ctx.connection,
                )?;
                let queue = declared.queue;
                if queue.exclusive_owner == Some(ctx.connection) {
                    // Keyed by name: a connection may hold 100,000 of them, and a declare
                    // or delete must not scan them all. The live queue of that name
                    // replaces one that went away another way (auto-delete, expiry).
                    ctx.exclusive_queues
                        .insert(queue.name.as_str().to_owned(), queue.clone());
                }
                self.last_queue = Some(queue.name.clone());
                (
                    Q::DeclareOk(amqp_queue::DeclareOk {
                        queue: queue.name.as_str().into(),
                        message_count: declared.message_count,
                        consumer_count: declared.consumer_count,
                    }),
                    m.nowait,
                )
            }
            Q::Bind(m) => {
                let name = self.queue_name(&strip_cr_lf(m.queue.as_str()))?;
                let (source, key) = (strip_cr_lf(m.exchange.as_str()), m.routing_key.as_str());
                self.authorize_binding(ctx, (Resource::Queue, &name), &source, key)?;
                ctx.vhost.bind_queue(
                    &name,
                    &source,
                    m.routing_key.as_str(),
                    &m.arguments,
                    ctx.connection,
                )?;
                (Q::BindOk(amqp_queue::BindOk {}), m.nowait)
            }
            Q::Unbind(m) => {
                let name = self.queue_name(&strip_cr_lf(m.queue.as_str()))?;
                let (source, key) = (strip_cr_lf(m.exchange.as_str()), m.routing_key.as_str());
                self.authorize_binding(ctx, (Resource::Queue, &name), &source, key)?;
                ctx.vhost
                    .unbind_queue(&name, &source, m.routing_key.as_str(), &m.arguments)?;
                (Q::UnbindOk(amqp_queue::UnbindOk {}), false)
            }
            Q::Purge(m) => {
                let name = self.queue_name(m.queue.as_str())?;
                self.authorize(ctx, Resource::Queue, &name, Permission::Read)?;
                let message_count = ctx.vhost.purge_queue(&name, ctx.connection)?;
                (Q::PurgeOk(amqp_queue::PurgeOk { message_count }), m.nowait)
            }
            Q::Delete(m) => {
                let name = self.queue_name(&strip_cr_lf(m.queue.as_str()))?;
                self.authorize(ctx, Resource::Queue, &name, Permission::Configure)?;
                let message_count =
                    ctx.vhost
                        .delete_queue(&name, m.if_unused, m.if_empty, ctx.connection)?;
                ctx.exclusive_queues.remove(name.as_str());
                (
                    Q::DeleteOk(amqp_queue::DeleteOk { message_count }),
                    m.nowait,
                )
            }
            other => return Err(unexpected(AMQPClass::Queue(other))),
        };
        if !nowait {
            ctx.send(self.id, AMQPClass::Queue(reply));
        }
        Ok(())
    }
}

/// RabbitMQ strips CR and LF from the exchange and queue names of declare, delete, bind
/// and unbind (not of publish, consume, get or purge): "a\nb" declares, finds and
/// deletes "ab". A name without them is borrowed as it is.
fn strip_cr_lf(name: &str) -> Cow<'_, str> {
    if name.contains(['\r', '\n']) {
        Cow::Owned(name.replace(['\r', '\n'], ""))
    } else {
        Cow::Borrowed(name)
    }
}

fn unexpected(class: AMQPClass) -> Exception {
    Exception::command_invalid(format!(
        "method {}.{} is not one a client sends",
        class.get_amqp_class_id(),
        class.get_amqp_method_id()
    ))
}
