//! queue.declare, lookup, delete and purge on a vhost's topology, a new queue's storage
//! and dead-letter settings, direct reply-to queues, and the x-expires sweep.
//!
//! Called by channels, the management API and the housekeeping sweep through `VHost`.
//! Queue locks are taken under the topology lock only for short reads and for marking a
//! queue deleted; nothing here waits on I/O.

use super::bindings::remove_destination_locked;
use super::{server_generated_name, Declared, QueueDeclare, Topology, VHost, REPLY_PREFIX};
use crate::broker::arguments::{
    assert_args_equivalent, validate_queue_args, validate_queue_type, DeclaredFlags, QueueType,
    COMPARED_QUEUE_ARGS,
};
use crate::broker::deadletter::DeadLetterTarget;
use crate::broker::exchange::Destination;
use crate::broker::policy::Applied;
use crate::broker::queue::{Queue, QueueStore};
use crate::broker::stream_queue::StreamQueue;
use crate::codec::ShortStr;
use crate::error::Exception;
use amq_protocol::types::{AMQPValue, FieldTable};
use std::sync::Arc;

impl VHost {
    /// The dead-letter settings of a new queue, from its arguments.
    pub(super) fn dead_letter_target(&self, arguments: &FieldTable) -> Option<DeadLetterTarget> {
        let text = |key: &str| match arguments.inner().get(key)? {
            AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
            AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
            _ => None,
        };
        Some(DeadLetterTarget {
            exchange: text("x-dead-letter-exchange")?,
            routing_key: text("x-dead-letter-routing-key"),
            sink: self.dead_letters.clone(),
            counted: self.dead_lettered.clone(),
        })
    }

    /// The store handle for a new queue that is durable and not exclusive.
    fn queue_store(&self, name: &str, durable: bool, exclusive: bool) -> Option<QueueStore> {
        let p = self.persist.as_ref().filter(|_| durable && !exclusive)?;
        Some(p.queue_store(&self.name, name))
    }

    /// A new or recovered queue's storage: a stream's log (and no message store: its
    /// entries live in the log), or the message store for a durable classic or quorum
    /// queue. `arguments`: the effective ones (declared, with the policies' settings).
    pub(super) fn queue_engine(
        &self,
        name: &str,
        durable: bool,
        exclusive: bool,
        arguments: &FieldTable,
    ) -> Result<(Option<QueueStore>, Option<Arc<StreamQueue>>), Exception> {
        let stream = crate::broker::stream_queue::open_for(
            self.persist.as_deref().map(|p| p.data_dir()),
            &self.memory,
            self.persist.as_ref().map(|p| p.definitions().clone()),
            &self.name,
            name,
            arguments,
            &self.clock,
        )?;
        match stream {
            Some(s) => Ok((None, Some(s))),
            // A replicated queue's messages live in the cluster's log, and a stub's on
            // its home node: neither is in this node's store.
            None if self.replicated()
                && !exclusive
                && (QueueType::of(arguments) == QueueType::Quorum
                    || self.home_elsewhere(arguments).is_some()) =>
            {
                Ok((None, None))
            }
            None => Ok((self.queue_store(name, durable, exclusive), None)),
        }
    }

    pub fn declare_queue(&self, d: &QueueDeclare, connection: u64) -> Result<Declared, Exception> {
        if d.passive {
            let queue = self.queue(d.name, connection)?;
            queue.touch();
            let (message_count, consumer_count) = queue.counts();
            self.churn(crate::stats::Churn::QueueDeclared);
            return Ok(Declared {
                queue,
                message_count,
                consumer_count,
            });
        }
        let generated;
        let server_named = d.server_named || d.name.is_empty();
        let describe_name = if server_named { "amq.gen-" } else { d.name };
        let describe = self.describe_queue(describe_name);
        validate_queue_args(d.arguments, &describe)?;
        let flags = DeclaredFlags {
            server_named,
            durable: d.durable,
            exclusive: d.exclusive,
            auto_delete: d.auto_delete,
        };
        validate_queue_type(d.arguments, &flags, &describe)?;
        let name = if d.name.is_empty() {
            generated = server_generated_name("amq.gen-");
            generated.as_str()
        } else {
            if !server_named && d.name.starts_with("amq.") {
                return Err(Exception::access_refused(format!(
                    "queue name '{}' contains reserved prefix 'amq.*'",
                    d.name
                )));
            }
            d.name
        };
        let mut topo = self.write();
        self.check_alive(&topo)?;
        if let Some(queue) = topo.queues.get(name) {
            queue.touch();
            let owner = d.exclusive.then_some(connection);
            if queue.exclusive_owner != owner {
                return Err(queue.locked());
            }
            let describe = self.describe_queue(name);
            let fail = |field: &str, received: bool, current: bool| {
                Exception::precondition_failed(format!(
                    "inequivalent arg '{field}' for {describe}: received '{received}' but current is '{current}'"
                ))
            };
            if queue.durable != d.durable {
                return Err(fail("durable", d.durable, queue.durable));
            }
            if queue.auto_delete != d.auto_delete {
                return Err(fail("auto_delete", d.auto_delete, queue.auto_delete));
            }
            assert_args_equivalent(
                &queue.arguments,
                d.arguments,
                &COMPARED_QUEUE_ARGS,
                &describe,
            )?;
            let (message_count, consumer_count) = queue.counts();
            self.churn(crate::stats::Churn::QueueDeclared);
            return Ok(Declared {
                queue: queue.clone(),
                message_count,
                consumer_count,
            });
        }
        self.check_queue_limit(topo.queues.len(), name)?;
        let settings = self.queue_settings(&self.policies(), name, d.arguments);
        let (store, stream) =
            self.queue_engine(name, d.durable, d.exclusive, &settings.effective)?;
        let queue = Queue::new(
            ShortStr::from(name),
            &self.name,
            d.durable,
            d.exclusive.then_some(connection),
            d.auto_delete,
            d.arguments.clone(),
            store,
            stream,
            self.memory.clone(),
            self.clock.clone(),
            settings.dead_letter,
            (settings.applied, &settings.effective),
        );
        self.adopt(&queue, d.exclusive);
        topo.dirty |= queue.persisted();
        if let Some(e) = self.events() {
            e.queue_created(&self.name, &queue);
        }
        topo.queues.insert(name.to_owned(), queue.clone());
        self.churn(crate::stats::Churn::QueueDeclared);
        self.churn(crate::stats::Churn::QueueCreated);
        Ok(Declared {
            queue,
            message_count: 0,
            consumer_count: 0,
        })
    }

    pub fn has_queue(&self, name: &str) -> bool {
        self.read().queues.contains_key(name)
    }

    /// Looks a queue up for use by `connection` (exclusive queues of others are locked).
    pub fn queue(&self, name: &str, connection: u64) -> Result<Arc<Queue>, Exception> {
        let queue = self
            .read()
            .queues
            .get(name)
            .cloned()
            .ok_or_else(|| self.no_queue(name))?;
        queue.check_exclusive(connection)?;
        Ok(queue)
    }

    pub fn delete_queue(
        &self,
        name: &str,
        if_unused: bool,
        if_empty: bool,
        connection: u64,
    ) -> Result<u32, Exception> {
        let mut topo = self.write();
        let Some(queue) = topo.queues.get(name).cloned() else {
            return Ok(0);
        };
        queue.check_exclusive(connection)?;
        let (messages, consumers) = queue.counts();
        if if_unused && consumers > 0 {
            return Err(Exception::precondition_failed(format!(
                "{} in use",
                self.describe_queue(name)
            )));
        }
        if if_empty && messages > 0 {
            return Err(Exception::precondition_failed(format!(
                "{} not empty",
                self.describe_queue(name)
            )));
        }
        self.churn(crate::stats::Churn::QueueDeleted);
        if let Some(e) = self.events() {
            self.notify_queue_deleted(e, &topo, &queue, false);
        }
        Ok(remove_queue_locked(&mut topo, &queue))
    }

    /// A hidden queue for a channel's direct reply-to consumer: reachable through the
    /// default exchange by its address, never listed, gone with its consumer.
    pub fn create_reply_queue(&self) -> Arc<Queue> {
        let name = server_generated_name(REPLY_PREFIX);
        let queue = Queue::new(
            ShortStr::from(name.as_str()),
            &self.name,
            false,
            None,
            true,
            FieldTable::default(),
            None,
            None,
            self.memory.clone(),
            self.clock.clone(),
            None,
            (Applied::default(), &FieldTable::default()),
        );
        self.replies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(name, queue.clone());
        queue
    }

    /// Deletes a queue without conditions (its exclusive owner closed, or the last
    /// consumer of an auto-delete queue went). Returns how many messages it dropped.
    pub fn remove_queue(&self, queue: &Arc<Queue>) -> u32 {
        if queue.name.starts_with(REPLY_PREFIX) {
            self.replies
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(queue.name.as_str());
            return queue.mark_deleted();
        }
        let mut topo = self.write();
        match topo.queues.get(queue.name.as_str()) {
            Some(q) if q.id == queue.id => {
                self.churn(crate::stats::Churn::QueueDeleted);
                if let Some(e) = self.events() {
                    self.notify_queue_deleted(e, &topo, queue, true);
                }
                remove_queue_locked(&mut topo, queue)
            }
            _ => 0,
        }
    }

    pub fn purge_queue(&self, name: &str, connection: u64) -> Result<u32, Exception> {
        let queue = self.queue(name, connection)?;
        if queue.stream.is_some() {
            return Err(Exception::not_implemented(format!(
                "queue.purge not supported by stream queues {}",
                self.describe_queue(name)
            )));
        }
        Ok(queue.purge())
    }

    /// When the sweep next has something to do here (`timed`, for a manual clock): the
    /// earliest head-message expiry or x-expires lease of this vhost's queues.
    pub fn next_due(&self) -> Option<u64> {
        let queues: Vec<Arc<Queue>> = self.read().queues.values().cloned().collect();
        queues
            .iter()
            .flat_map(|q| [q.head_due(), q.lease_due()])
            .flatten()
            .min()
    }

    /// The sweep: drops expired messages at the heads of this vhost's queues, and deletes
    /// queues whose x-expires lease ran out.
    pub fn expire_messages(&self) {
        let now = self.clock.now_ms();
        let mut unused = Vec::new();
        for q in self.read().queues.values() {
            q.expire();
            if q.lease_expired(now) {
                unused.push(q.clone());
            }
        }
        for q in unused {
            tracing::debug!(queue = %q.name, "queue expired (x-expires)");
            self.remove_queue(&q);
        }
    }
}

fn remove_queue_locked(topo: &mut Topology, queue: &Arc<Queue>) -> u32 {
    topo.queues.remove(queue.name.as_str());
    topo.dirty |= queue.persisted();
    remove_destination_locked(topo, &Destination::Queue(queue.clone()));
    queue.mark_deleted()
}
