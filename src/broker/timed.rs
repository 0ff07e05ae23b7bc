//! What a manual clock fires: the broker's time-driven work as one `clock::Timed`.
//!
//! With the real clock the housekeeping task (`server`) sweeps queues every 200 ms and
//! the delayed scheduler's task sleeps until its next due time; nothing here runs. With
//! a manual clock (`--clock manual`, tests) those timers would never see time pass, so
//! the clock asks the broker, before each step, when its next work is due (the earliest
//! head-message expiry and x-expires lease of every queue, and the first delayed
//! message), stops there and calls `fire`, which does what the sweep and the delayed
//! task would have done, synchronously and in due order. A message that expires into a
//! dead-letter queue with its own TTL is thus due again within the same `advance`.
//!
//! Registered by `server::start` (held weakly by the clock: a dropped broker is
//! forgotten). Called only by the clock; takes the topology and queue locks briefly,
//! never waits.

use super::Broker;
use crate::clock::Timed;
use std::sync::{Arc, Weak};

impl Timed for Broker {
    fn next_due_ms(&self) -> Option<u64> {
        let delayed = self.delayed.next_due().map(|unix| self.clock.mono_at(unix));
        self.all_vhosts()
            .iter()
            .filter_map(|v| v.next_due())
            .chain(delayed)
            .min()
    }

    fn busy(&self) -> bool {
        self.all_vhosts()
            .iter()
            .any(|v| v.dead_letters_pending() > 0)
    }

    fn fire(&self, _now_ms: u64) {
        // Both read the clock, which stands at this step while the clock fires it.
        self.expire_messages();
        self.delayed.fire(self.clock.unix_ms());
    }
}

impl Broker {
    /// Lets a manual clock fire this broker's timed work (a no-op on the real clock).
    pub fn register_with_clock(self: &Arc<Self>) {
        let me: Weak<dyn Timed> = Arc::downgrade(self) as Weak<Broker>;
        self.clock.register(me);
    }
}
