//! Deleting a vhost's contents: its connections are closed with RabbitMQ's 320, its
//! queues (with their messages, stored and paged), exchanges and bindings are dropped,
//! and nothing can be declared, bound or published on it afterwards.
//!
//! Called once by `Broker::delete_vhost`, after the vhost left the broker's map and the
//! definitions writer's list. Memory work under the topology lock; the message store and
//! the page files are told to forget the queues by messages to their own threads
//! (`Queue::mark_deleted`), never written to here.

use super::{Topology, VHost};
use crate::error::{Exception, ReplyCode};

impl VHost {
    /// What a connection on this vhost, or an operation still under way on one, gets
    /// once the vhost is deleted (RabbitMQ 3.10.8's text).
    pub fn deleted_exception(&self) -> Exception {
        Exception::new(
            ReplyCode::ConnectionForced,
            format!("vhost '{}' is deleted", self.name),
        )
    }

    /// Refuses a change or a publish on a deleted vhost, with the 320 its connections
    /// are closed with anyway (an operation under way when the vhost went).
    pub(super) fn check_alive(&self, topo: &Topology) -> Result<(), Exception> {
        if topo.deleted {
            Err(self.deleted_exception())
        } else {
            Ok(())
        }
    }

    /// Closes every connection on the vhost and drops everything in it. Returns
    /// (connections closed, queues deleted).
    pub(crate) fn delete_contents(&self) -> (usize, usize) {
        // First the connections, as RabbitMQ: their consumers get no basic.cancel for
        // the queues that go next (their tasks read the close signal first).
        let closed = self.close_connections(&self.deleted_exception());
        let (queues, exchanges) = {
            let mut topo = self.write();
            topo.deleted = true;
            // Not `dirty`: the vhost already left the definitions writer's list.
            let queues: Vec<_> = topo.queues.drain().map(|(_, q)| q).collect();
            (queues, std::mem::take(&mut topo.exchanges))
        };
        // Bindings hold queues: gone with their exchanges.
        drop(exchanges);
        let replies: Vec<_> = self
            .replies
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain()
            .map(|(_, q)| q)
            .collect();
        let deleted = queues.len();
        for _ in 0..deleted {
            self.churn(crate::stats::Churn::QueueDeleted);
        }
        for q in queues.into_iter().chain(replies) {
            // Drops ready and paged messages; stored ones are settled in the store.
            q.mark_deleted();
        }
        (closed, deleted)
    }
}
