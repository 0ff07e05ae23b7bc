//! Transactions on a channel: tx.select, commit and rollback.
//!
//! Called by `Channel::dispatch`. While a channel is transactional, publishes are routed
//! at once (so a missing exchange fails at once, as in RabbitMQ) but enqueued (or, when
//! unroutable and mandatory, returned) only at commit, and acks / nacks / rejects are taken out of the unacked set at once but
//! applied only at commit; a rollback discards the publishes and puts the settled
//! deliveries back as unacked.
//!
//! commit-ok promises that the transaction's persistent messages are on disk, so a commit
//! that stored any is answered only after the fdatasync that covers them. The connection
//! task never waits for it: the store calls back through the connection's outbox
//! (`Outgoing::Stored` with the commit's number). Meanwhile the channel holds every later
//! frame the client sends on it, and the connection handles them after commit-ok, in
//! order: a client that pipelines past tx.commit still gets its replies in order, and
//! the connection's other channels carry on.

use super::{Channel, Ctx, Transaction};
use crate::broker::persist::{store_message, will_store};
use crate::broker::stream_queue::split_done;
use crate::codec::Frame;
use crate::error::Exception;
use amq_protocol::protocol::{tx as amqp_tx, AMQPClass};
use std::collections::VecDeque;

/// Frames held behind a commit, each with its size on the wire.
pub type Held = VecDeque<(Frame, usize)>;

/// A commit waiting for the message store.
#[derive(Debug)]
pub(super) struct PendingCommit {
    /// Which commit of this channel (the store's answer names it).
    number: u64,
    held: Held,
}

impl Channel {
    pub(super) fn tx_method(
        &mut self,
        ctx: &mut Ctx,
        method: amqp_tx::AMQPMethod,
    ) -> Result<(), Exception> {
        use amqp_tx::AMQPMethod as T;
        let reply = match method {
            T::Select(_) => {
                if self.confirms.is_some() {
                    return Err(Exception::precondition_failed(
                        "cannot switch from confirm to tx mode",
                    ));
                }
                self.tx.get_or_insert_with(Transaction::default);
                self.stats.set(crate::stats::Gauge::Transactional, 1);
                T::SelectOk(amqp_tx::SelectOk {})
            }
            T::Commit(_) => {
                let tx = self.tx.as_mut().ok_or_else(not_transactional)?;
                let work = std::mem::take(tx);
                // What commit-ok waits for: the store's flush if a message was stored,
                // and the cluster's log for each message to a replicated queue.
                let store = work
                    .publishes
                    .iter()
                    .filter(|(msg, queues)| will_store(msg, queues))
                    .find_map(|(_, queues)| queues.iter().find_map(|q| q.store.clone()));
                let replicated: usize = work
                    .publishes
                    .iter()
                    .map(|(_, queues)| queues.iter().filter(|q| q.replica().is_some()).count())
                    .sum();
                let mut waits = Vec::new();
                let mut number = None;
                if store.is_some() || replicated > 0 {
                    self.commits += 1;
                    number = Some(self.commits);
                    let done = ctx.answer_from_store(self.id, self.commits);
                    // Like a confirm, commit-ok also waits for the definitions that hold
                    // the queues and bindings these messages went through.
                    let done = match &store {
                        Some(s) => s.definitions.cover(done),
                        None => done,
                    };
                    waits = match replicated {
                        0 => vec![done],
                        n => split_done(done, n + usize::from(store.is_some())),
                    };
                }
                let store_wait = store.as_ref().and_then(|_| waits.pop());
                for (msg, queues) in work.publishes {
                    if queues.is_empty() {
                        self.send_return(ctx, &msg);
                        continue;
                    }
                    let store_id = store_message(&msg, &queues, None);
                    let sharers = queues.len();
                    for queue in queues {
                        if queue.replica().is_some() {
                            queue.stream_publish(&msg, waits.pop());
                        } else {
                            queue.publish(msg.clone(), store_id, sharers);
                        }
                    }
                }
                // Applied outside the transaction: `settle` would only buffer them again.
                let tx = self.tx.take();
                for (entries, how) in work.settles {
                    self.settle(entries, how);
                }
                self.tx = tx;
                if let Some(number) = number {
                    if let (Some(store), Some(wait)) = (store, store_wait) {
                        // One flush covers the appends above and the acks they settled.
                        store.store.flush_then(wait);
                    }
                    self.commit = Some(PendingCommit {
                        number,
                        held: Held::new(),
                    });
                    return Ok(());
                }
                T::CommitOk(amqp_tx::CommitOk {})
            }
            T::Rollback(_) => {
                let tx = self.tx.as_mut().ok_or_else(not_transactional)?;
                let work = std::mem::take(tx);
                for (entries, _) in work.settles {
                    self.unacked.restore(entries);
                }
                T::RollbackOk(amqp_tx::RollbackOk {})
            }
            other => {
                return Err(Exception::command_invalid(format!(
                    "method {}.{} is not one a client sends",
                    90,
                    AMQPClass::Tx(other).get_amqp_method_id()
                )))
            }
        };
        ctx.send(self.id, AMQPClass::Tx(reply));
        Ok(())
    }

    /// A commit waits for the store (or a basic.get for a page file, see `basic`):
    /// frames for this channel must be held.
    pub fn is_waiting(&self) -> bool {
        self.commit.is_some() || self.waiting_get.is_some() || self.waiting_cluster.is_some()
    }

    /// Keeps a frame until the pending commit (or basic.get) is answered.
    pub fn hold(&mut self, frame: Frame, size: usize) {
        if let Some(c) = &mut self.commit {
            c.held.push_back((frame, size));
        } else if let Some((_, held)) = &mut self.waiting_get {
            held.push_back((frame, size));
        } else if let Some(held) = &mut self.waiting_cluster {
            held.push_back((frame, size));
        }
    }

    /// The store answered for commit `number`: commit-ok, then the frames held behind it
    /// go back to the connection. Only one commit can be pending (every later frame of
    /// the channel is held), so another number is stale and ignored.
    pub(super) fn committed(
        &mut self,
        ctx: &mut Ctx,
        number: u64,
        ok: bool,
    ) -> Result<Held, Exception> {
        match self.commit.take() {
            Some(c) if c.number == number => {
                if !ok {
                    return Err(Exception::internal_error(
                        "message store failed; the transaction's persistent messages may \
                         not be on disk",
                    )
                    .on(90, 20));
                }
                ctx.send(
                    self.id,
                    AMQPClass::Tx(amqp_tx::AMQPMethod::CommitOk(amqp_tx::CommitOk {})),
                );
                Ok(c.held)
            }
            other => {
                self.commit = other;
                Ok(Held::new())
            }
        }
    }
}

fn not_transactional() -> Exception {
    Exception::precondition_failed("channel is not transactional")
}
