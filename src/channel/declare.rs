//! The exchange and queue classes on a channel: declare, delete, bind, unbind, purge.
//!
//! Called by `Channel::handle_method`; the checks and texts live in the vhost, this file
//! checks access, translates methods to vhost calls (`apply`) and writes the -ok replies
//! (unless nowait). On a cluster node the methods that change what every node shares
//! (exchanges, bindings to them, quorum queues) are proposed to the cluster's log
//! instead, and `apply` runs on every node when the log applies them; the channel waits
//! for its own node's apply before it answers (`replicated`).

use super::{Channel, Ctx, Held};
use crate::access::permissions::{Permission, Resource};
use crate::broker::arguments::QueueType;
use crate::broker::consumer::Outgoing;
use crate::broker::queue::Queue;
use crate::broker::replica::HOME_ARG;
use crate::broker::vhost::{server_generated_name, ExchangeDeclare, QueueDeclare, VHost, REPLY_TO};
use crate::error::Exception;
use amq_protocol::protocol::{exchange as amqp_exchange, queue as amqp_queue, AMQPClass};
use amq_protocol::types::AMQPValue;
use std::borrow::Cow;
use std::sync::Arc;

impl Channel {
    pub(super) fn exchange_method(
        &mut self,
        ctx: &mut Ctx,
        method: amqp_exchange::AMQPMethod,
    ) -> Result<(), Exception> {
        use amqp_exchange::AMQPMethod as X;
        // The access checks here, on the client's node; the change itself in `apply`
        // (on every node of a cluster, through its log).
        let method = match method {
            X::Declare(mut m) => {
                let name = strip_cr_lf(m.exchange.as_str()).into_owned();
                if !m.passive {
                    let kind = m.kind.as_str();
                    self.authorize_exchange_declare(ctx, &name, kind, &m.arguments)?;
                }
                m.exchange = name.into();
                X::Declare(m)
            }
            X::Delete(mut m) => {
                let name = strip_cr_lf(m.exchange.as_str()).into_owned();
                self.authorize_exchange_delete(ctx, &name)?;
                m.exchange = name.into();
                X::Delete(m)
            }
            X::Bind(mut m) => {
                let key = m.routing_key.as_str();
                let (to, from) =
                    self.exchange_binding(ctx, m.destination.as_str(), m.source.as_str(), key)?;
                (m.destination, m.source) = (to.into_owned().into(), from.into_owned().into());
                X::Bind(m)
            }
            X::Unbind(mut m) => {
                let key = m.routing_key.as_str();
                let (to, from) =
                    self.exchange_binding(ctx, m.destination.as_str(), m.source.as_str(), key)?;
                (m.destination, m.source) = (to.into_owned().into(), from.into_owned().into());
                X::Unbind(m)
            }
            other => return Err(unexpected(AMQPClass::Exchange(other))),
        };
        let method = AMQPClass::Exchange(method);
        // Exchanges are the cluster's: every change but a passive declare goes through
        // its log.
        let passive = matches!(&method, AMQPClass::Exchange(X::Declare(m)) if m.passive);
        if ctx.vhost.replicated() && !passive {
            return self.replicate(ctx, method, false);
        }
        let applied = apply(ctx.vhost, &method, ctx.connection, false)?;
        self.answer(ctx, &method, applied);
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
        let mut server_named = false;
        let method = match method {
            // RabbitMQ answers any declare of the direct reply-to pseudo-queue, passive
            // or not, with these fixed counts, before any check (clients probe it so).
            Q::Declare(m) if m.queue.as_str() == REPLY_TO => {
                if !m.nowait {
                    let ok = Q::DeclareOk(amqp_queue::DeclareOk {
                        queue: REPLY_TO.into(),
                        message_count: 0,
                        consumer_count: 1,
                    });
                    ctx.send(self.id, AMQPClass::Queue(ok));
                }
                return Ok(());
            }
            Q::Declare(mut m) => {
                server_named = !m.passive && m.queue.as_str().is_empty();
                // A passive declare of '' names no queue, not the channel's last one:
                // RabbitMQ answers 404 "no queue ''". A server-named queue is named
                // here: the configure permission is checked on this name.
                let name = if server_named {
                    server_generated_name("amq.gen-")
                } else {
                    strip_cr_lf(m.queue.as_str()).into_owned()
                };
                if !m.passive {
                    self.authorize_queue_declare(ctx, &name, server_named, &m.arguments)?;
                }
                m.queue = name.into();
                Q::Declare(m)
            }
            Q::Bind(mut m) => {
                let name = self.queue_name(&strip_cr_lf(m.queue.as_str()))?;
                let source = strip_cr_lf(m.exchange.as_str()).into_owned();
                let key = m.routing_key.as_str();
                self.authorize_binding(ctx, (Resource::Queue, &name), &source, key)?;
                (m.queue, m.exchange) = (name.as_str().into(), source.into());
                Q::Bind(m)
            }
            Q::Unbind(mut m) => {
                let name = self.queue_name(&strip_cr_lf(m.queue.as_str()))?;
                let source = strip_cr_lf(m.exchange.as_str()).into_owned();
                let key = m.routing_key.as_str();
                self.authorize_binding(ctx, (Resource::Queue, &name), &source, key)?;
                (m.queue, m.exchange) = (name.as_str().into(), source.into());
                Q::Unbind(m)
            }
            Q::Purge(mut m) => {
                let name = self.queue_name(m.queue.as_str())?;
                self.authorize(ctx, Resource::Queue, &name, Permission::Read)?;
                m.queue = name.as_str().into();
                Q::Purge(m)
            }
            Q::Delete(mut m) => {
                let name = self.queue_name(&strip_cr_lf(m.queue.as_str()))?;
                self.authorize(ctx, Resource::Queue, &name, Permission::Configure)?;
                m.queue = name.as_str().into();
                Q::Delete(m)
            }
            other => return Err(unexpected(AMQPClass::Queue(other))),
        };
        let mut method = method;
        if ctx.vhost.replicated() && replicated_queue_method(ctx, &mut method) {
            return self.replicate(ctx, AMQPClass::Queue(method), server_named);
        }
        let method = AMQPClass::Queue(method);
        let applied = apply(ctx.vhost, &method, ctx.connection, server_named)?;
        if let Some(queue) = &applied.queue {
            if queue.exclusive_owner == Some(ctx.connection) {
                // Keyed by name: a connection may hold 100,000 of them, and a declare
                // or delete must not scan them all. The live queue of that name
                // replaces one that went away another way (auto-delete, expiry).
                ctx.exclusive_queues
                    .insert(queue.name.as_str().to_owned(), queue.clone());
            }
        }
        if let AMQPClass::Queue(Q::Delete(m)) = &method {
            ctx.exclusive_queues.remove(m.queue.as_str());
        }
        self.answer(ctx, &method, applied);
        Ok(())
    }

    /// Sends the -ok of an applied method (unless the client said nowait) and remembers
    /// a declared queue's name for the methods that name none.
    fn answer(&mut self, ctx: &mut Ctx, method: &AMQPClass, applied: Applied) {
        if let AMQPClass::Queue(amqp_queue::AMQPMethod::DeclareOk(ok)) = &applied.reply {
            self.last_queue = Some(ok.queue.as_str().into());
        }
        if !nowait(method) {
            ctx.send(self.id, applied.reply);
        }
    }

    /// A method the cluster's log must carry: proposed, and the channel waits (holding
    /// what the client sends after it) until this node applied it.
    fn replicate(
        &mut self,
        ctx: &mut Ctx,
        method: AMQPClass,
        server_named: bool,
    ) -> Result<(), Exception> {
        let Some(cluster) = ctx.vhost.cluster() else {
            return Err(Exception::internal_error("no cluster to replicate to"));
        };
        let reply = ctx.handle.outbox.clone();
        let channel = self.id;
        let nowait = nowait(&method);
        cluster.propose_method(
            &ctx.vhost.name,
            &method,
            server_named,
            Box::new(move |result| {
                // A closed outbox: the connection is gone, nobody to answer.
                let _ = reply.send(Outgoing::Replicated {
                    channel,
                    result,
                    nowait,
                });
            }),
        );
        self.waiting_cluster = Some(Held::new());
        Ok(())
    }

    /// The cluster applied a method this channel proposed: its answer, then the frames
    /// held behind it.
    pub fn replicated(
        &mut self,
        ctx: &mut Ctx,
        result: Result<AMQPClass, Exception>,
        nowait: bool,
    ) -> Result<Held, Exception> {
        let held = self.waiting_cluster.take().unwrap_or_default();
        let reply = result?;
        if let AMQPClass::Queue(amqp_queue::AMQPMethod::DeclareOk(ok)) = &reply {
            self.last_queue = Some(ok.queue.as_str().into());
        }
        if !nowait {
            ctx.send(self.id, reply);
        }
        Ok(held)
    }
}

/// Whether a queue method changes what every node of the cluster shares: a declare of a
/// quorum queue, or of a classic queue (which then lives on this node: its declare says
/// so in `HOME_ARG`, and every other node keeps a stub of it), never an exclusive one or
/// a stream; or anything else on a queue every node knows.
fn replicated_queue_method(ctx: &Ctx, method: &mut amqp_queue::AMQPMethod) -> bool {
    use amqp_queue::AMQPMethod as Q;
    let name = match method {
        Q::Declare(m) if m.passive || m.exclusive => return false,
        Q::Declare(m) => {
            if ctx.vhost.has_queue(m.queue.as_str()) {
                return false;
            }
            return match QueueType::of(&m.arguments) {
                QueueType::Quorum => true,
                QueueType::Stream => false,
                QueueType::Classic => {
                    let Some(cluster) = ctx.vhost.cluster() else {
                        return false;
                    };
                    let home = AMQPValue::LongString(cluster.node_name().into());
                    m.arguments.insert(HOME_ARG.into(), home);
                    true
                }
            };
        }
        Q::Bind(m) => m.queue.as_str(),
        Q::Unbind(m) => m.queue.as_str(),
        Q::Purge(m) => m.queue.as_str(),
        Q::Delete(m) => m.queue.as_str(),
        _ => return false,
    };
    ctx.vhost.queue(name, ctx.connection).is_ok_and(|q| {
        q.replica().is_some()
            || crate::broker::arguments::text_arg(&q.arguments, HOME_ARG).is_some()
    })
}

fn nowait(method: &AMQPClass) -> bool {
    use amqp_exchange::AMQPMethod as X;
    use amqp_queue::AMQPMethod as Q;
    match method {
        AMQPClass::Exchange(X::Declare(m)) => m.nowait,
        AMQPClass::Exchange(X::Delete(m)) => m.nowait,
        AMQPClass::Exchange(X::Bind(m)) => m.nowait,
        AMQPClass::Exchange(X::Unbind(m)) => m.nowait,
        AMQPClass::Queue(Q::Declare(m)) => m.nowait,
        AMQPClass::Queue(Q::Bind(m)) => m.nowait,
        AMQPClass::Queue(Q::Purge(m)) => m.nowait,
        AMQPClass::Queue(Q::Delete(m)) => m.nowait,
        _ => false,
    }
}

/// What a method did: its -ok reply and, for a queue.declare, the queue.
pub struct Applied {
    pub reply: AMQPClass,
    pub queue: Option<Arc<Queue>>,
}

/// Applies an exchange or queue method (names already checked and stripped, access
/// already granted) to `vhost` for `connection`: what a channel does on a single node,
/// and what every node of a cluster does when its log applies the method.
/// `server_named`: a queue.declare's name was chosen by the broker.
pub fn apply(
    vhost: &VHost,
    method: &AMQPClass,
    connection: u64,
    server_named: bool,
) -> Result<Applied, Exception> {
    use amqp_exchange::AMQPMethod as X;
    use amqp_queue::AMQPMethod as Q;
    let reply = |reply| Applied { reply, queue: None };
    Ok(match method {
        AMQPClass::Exchange(X::Declare(m)) => {
            vhost.declare_exchange(&ExchangeDeclare {
                name: m.exchange.as_str(),
                kind: m.kind.as_str(),
                passive: m.passive,
                durable: m.durable,
                auto_delete: m.auto_delete,
                internal: m.internal,
                arguments: &m.arguments,
            })?;
            reply(AMQPClass::Exchange(X::DeclareOk(
                amqp_exchange::DeclareOk {},
            )))
        }
        AMQPClass::Exchange(X::Delete(m)) => {
            vhost.delete_exchange(m.exchange.as_str(), m.if_unused)?;
            reply(AMQPClass::Exchange(X::DeleteOk(amqp_exchange::DeleteOk {})))
        }
        AMQPClass::Exchange(X::Bind(m)) => {
            let (to, from, key) = (
                m.destination.as_str(),
                m.source.as_str(),
                m.routing_key.as_str(),
            );
            vhost.bind_exchange(to, from, key, &m.arguments)?;
            reply(AMQPClass::Exchange(X::BindOk(amqp_exchange::BindOk {})))
        }
        AMQPClass::Exchange(X::Unbind(m)) => {
            let (to, from, key) = (
                m.destination.as_str(),
                m.source.as_str(),
                m.routing_key.as_str(),
            );
            vhost.unbind_exchange(to, from, key, &m.arguments)?;
            reply(AMQPClass::Exchange(X::UnbindOk(amqp_exchange::UnbindOk {})))
        }
        AMQPClass::Queue(Q::Declare(m)) => {
            let declared = vhost.declare_queue(
                &QueueDeclare {
                    name: m.queue.as_str(),
                    passive: m.passive,
                    durable: m.durable,
                    exclusive: m.exclusive,
                    auto_delete: m.auto_delete,
                    arguments: &m.arguments,
                    server_named,
                },
                connection,
            )?;
            let queue = declared.queue;
            Applied {
                reply: AMQPClass::Queue(Q::DeclareOk(amqp_queue::DeclareOk {
                    queue: queue.name.as_str().into(),
                    message_count: declared.message_count,
                    consumer_count: declared.consumer_count,
                })),
                queue: Some(queue),
            }
        }
        AMQPClass::Queue(Q::Bind(m)) => {
            let (name, source) = (m.queue.as_str(), m.exchange.as_str());
            vhost.bind_queue(
                name,
                source,
                m.routing_key.as_str(),
                &m.arguments,
                connection,
            )?;
            reply(AMQPClass::Queue(Q::BindOk(amqp_queue::BindOk {})))
        }
        AMQPClass::Queue(Q::Unbind(m)) => {
            let (name, source) = (m.queue.as_str(), m.exchange.as_str());
            vhost.unbind_queue(name, source, m.routing_key.as_str(), &m.arguments)?;
            reply(AMQPClass::Queue(Q::UnbindOk(amqp_queue::UnbindOk {})))
        }
        AMQPClass::Queue(Q::Purge(m)) => {
            let message_count = vhost.purge_queue(m.queue.as_str(), connection)?;
            reply(AMQPClass::Queue(Q::PurgeOk(amqp_queue::PurgeOk {
                message_count,
            })))
        }
        AMQPClass::Queue(Q::Delete(m)) => {
            let message_count =
                vhost.delete_queue(m.queue.as_str(), m.if_unused, m.if_empty, connection)?;
            reply(AMQPClass::Queue(Q::DeleteOk(amqp_queue::DeleteOk {
                message_count,
            })))
        }
        other => return Err(unexpected(other.clone())),
    })
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
