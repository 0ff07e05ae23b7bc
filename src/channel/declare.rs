//! The exchange and queue classes on a channel: declare, delete, bind, unbind, purge.
//!
//! Called by `Channel::handle_method`; the checks and texts live in the vhost, this file
//! translates methods to vhost calls and writes the -ok replies (unless nowait).

use super::{Channel, Ctx};
use crate::access::permissions::{Permission, Resource};
use crate::broker::vhost::{server_generated_name, ExchangeDeclare, QueueDeclare, REPLY_TO};
use crate::error::Exception;
use amq_protocol::protocol::{exchange as amqp_exchange, queue as amqp_queue, AMQPClass};

impl Channel {
    pub(super) fn exchange_method(
        &mut self,
        ctx: &mut Ctx,
        method: amqp_exchange::AMQPMethod,
    ) -> Result<(), Exception> {
        use amqp_exchange::AMQPMethod as X;
        let (reply, nowait) = match method {
            X::Declare(m) => {
                if !m.passive {
                    let (name, kind) = (m.exchange.as_str(), m.kind.as_str());
                    self.authorize_exchange_declare(ctx, name, kind, &m.arguments)?;
                }
                ctx.vhost.declare_exchange(&ExchangeDeclare {
                    name: m.exchange.as_str(),
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
                self.authorize_exchange_delete(ctx, m.exchange.as_str())?;
                ctx.vhost
                    .delete_exchange(m.exchange.as_str(), m.if_unused)?;
                (X::DeleteOk(amqp_exchange::DeleteOk {}), m.nowait)
            }
            X::Bind(m) => {
                let destination = (Resource::Exchange, m.destination.as_str());
                let (source, key) = (m.source.as_str(), m.routing_key.as_str());
                self.authorize_binding(ctx, destination, source, key)?;
                ctx.vhost.bind_exchange(
                    m.destination.as_str(),
                    m.source.as_str(),
                    m.routing_key.as_str(),
                    &m.arguments,
                )?;
                (X::BindOk(amqp_exchange::BindOk {}), m.nowait)
            }
            X::Unbind(m) => {
                let destination = (Resource::Exchange, m.destination.as_str());
                let (source, key) = (m.source.as_str(), m.routing_key.as_str());
                self.authorize_binding(ctx, destination, source, key)?;
                ctx.vhost.unbind_exchange(
                    m.destination.as_str(),
                    m.source.as_str(),
                    m.routing_key.as_str(),
                    &m.arguments,
                )?;
                (X::UnbindOk(amqp_exchange::UnbindOk {}), m.nowait)
            }
            other => return Err(unexpected(AMQPClass::Exchange(other))),
        };
        if !nowait {
            ctx.send(self.id, AMQPClass::Exchange(reply));
        }
        Ok(())
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
                let server_named = !m.passive && m.queue.as_str().is_empty();
                // A passive declare of '' names no queue, not the channel's last one:
                // RabbitMQ answers 404 "no queue ''".
                let name = if server_named {
                    // Named here: the configure permission is checked on this name.
                    generated = server_generated_name("amq.gen-");
                    generated.as_str()
                } else {
                    m.queue.as_str()
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
                let name = self.queue_name(m.queue.as_str())?;
                let (source, key) = (m.exchange.as_str(), m.routing_key.as_str());
                self.authorize_binding(ctx, (Resource::Queue, &name), source, key)?;
                ctx.vhost.bind_queue(
                    &name,
                    m.exchange.as_str(),
                    m.routing_key.as_str(),
                    &m.arguments,
                    ctx.connection,
                )?;
                (Q::BindOk(amqp_queue::BindOk {}), m.nowait)
            }
            Q::Unbind(m) => {
                let name = self.queue_name(m.queue.as_str())?;
                let (source, key) = (m.exchange.as_str(), m.routing_key.as_str());
                self.authorize_binding(ctx, (Resource::Queue, &name), source, key)?;
                ctx.vhost.unbind_queue(
                    &name,
                    m.exchange.as_str(),
                    m.routing_key.as_str(),
                    &m.arguments,
                )?;
                (Q::UnbindOk(amqp_queue::UnbindOk {}), false)
            }
            Q::Purge(m) => {
                let name = self.queue_name(m.queue.as_str())?;
                self.authorize(ctx, Resource::Queue, &name, Permission::Read)?;
                let message_count = ctx.vhost.purge_queue(&name, ctx.connection)?;
                (Q::PurgeOk(amqp_queue::PurgeOk { message_count }), m.nowait)
            }
            Q::Delete(m) => {
                let name = self.queue_name(m.queue.as_str())?;
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

fn unexpected(class: AMQPClass) -> Exception {
    Exception::command_invalid(format!(
        "method {}.{} is not one a client sends",
        class.get_amqp_class_id(),
        class.get_amqp_method_id()
    ))
}
