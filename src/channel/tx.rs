//! Transactions on a channel: tx.select, commit and rollback.
//!
//! Called by `Channel::dispatch`. While a channel is transactional, publishes are routed
//! at once (so a missing exchange fails at once, as in RabbitMQ) but enqueued only at
//! commit, and acks / nacks / rejects are taken out of the unacked set at once but
//! applied only at commit; a rollback discards the publishes and puts the settled
//! deliveries back as unacked.

use super::{Channel, Ctx, Transaction};
use crate::broker::persist::store_message;
use crate::error::Exception;
use amq_protocol::protocol::{tx as amqp_tx, AMQPClass};

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
                T::SelectOk(amqp_tx::SelectOk {})
            }
            T::Commit(_) => {
                let tx = self.tx.as_mut().ok_or_else(not_transactional)?;
                let work = std::mem::take(tx);
                let mut stored = None;
                for (msg, queues) in work.publishes {
                    let store_id = store_message(&msg, &queues, None);
                    if store_id != 0 {
                        stored = queues
                            .iter()
                            .find_map(|q| q.store.as_ref().map(|s| s.store.clone()));
                    }
                    let sharers = queues.len();
                    for queue in queues {
                        queue.publish(msg.clone(), store_id, sharers);
                    }
                }
                // commit-ok promises the persistent publishes are on disk. Blocking this
                // worker for one fdatasync is the price of transactions, as in RabbitMQ.
                if let Some(store) = stored {
                    store.flush_blocking().map_err(|e| {
                        Exception::internal_error(format!("message store failed: {e}"))
                    })?;
                }
                // Applied outside the transaction: `settle` would only buffer them again.
                let tx = self.tx.take();
                for (entries, how) in work.settles {
                    self.settle(entries, how);
                }
                self.tx = tx;
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
}

fn not_transactional() -> Exception {
    Exception::precondition_failed("channel is not transactional")
}
