//! A recent-history exchange's kept messages delivered to a binding just added to it.
//!
//! Called by `VHost::bind_queue` and `VHost::bind_exchange` after the topology lock is
//! released; never called with a lock held. The messages go out as the plugin sends
//! them: to the new queue, or routed on through the new destination exchange, oldest
//! first. A persistent message bound for a durable queue is written to the store like a
//! publish (no confirm waits on it).

use super::{Routing, VHost};
use crate::broker::exchange::Destination;
use crate::broker::message::Message;
use crate::broker::persist::store_message;

impl VHost {
    pub(super) fn replay(&self, dest: &Destination, messages: Vec<Message>) {
        let mut targets = Vec::new();
        for msg in messages {
            targets.clear();
            match dest {
                Destination::Queue(q) => targets.push(q.clone()),
                // A destination exchange deleted meanwhile routes nowhere; RabbitMQ's
                // plugin closes the connection with an internal error here instead.
                Destination::Exchange(name) => {
                    let _ = self.route_as(name, &msg, &[], &mut targets, Routing::Replay);
                }
            }
            let store_id = store_message(&msg, &targets, None);
            let sharers = targets.len();
            for q in targets.drain(..) {
                q.publish(msg.clone(), store_id, sharers);
            }
        }
    }
}
