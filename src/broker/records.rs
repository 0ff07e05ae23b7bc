//! What the records clients create (queues, exchanges, bindings, consumers) cost in the
//! memory accounting, and the charge each record holds there.
//!
//! A client can create records in unbounded numbers (a loop of exclusive queue declares
//! reaches two million queues in ten seconds), so they are counted like queued messages:
//! they raise the memory alarm and make queues page sooner. An exchange holds a
//! `RecordCharge` set to what it and its bindings take now and given back when dropped;
//! a queue, many and small, counts its record and consumers itself and gives them back
//! in its `Drop`.
//!
//! The connection that created a record learns it through a per-thread counter
//! (`created_here`): a frame is handled synchronously on one runtime thread, so the
//! counter moves between before and after the frame only for records that frame created,
//! and redeclaring what exists (a consumer coming to drain a backlog) creates nothing.
//! Such a connection is held back while memory is crowded (see `Memory::crowded`).
//! Called under the topology and queue locks: nothing here blocks.

use super::memory::Memory;
use amq_protocol::types::FieldTable;
use std::cell::Cell;
use std::sync::Arc;

/// A queue: its struct, state and ready levels, its name twice (topology map and the
/// queue), the vhost's name, map entries, its statistics counters and unacked count.
/// Measured: ~990 B of resident memory per queue with 100,000 queues held
/// (benches/faults/scale.sh, 2026-12-05, with the management statistics).
pub const QUEUE_BYTES: u64 = 990;
/// An exchange with its route table, before any binding.
pub const EXCHANGE_BYTES: u64 = 400;
/// A binding: its entry in the exchange's list and in the route table.
pub const BINDING_BYTES: u64 = 160;
/// A consumer: its shared info, credits and place in the queue's ring.
pub const CONSUMER_BYTES: u64 = 240;
/// Each argument of a record, on top of its name's bytes.
const ARGUMENT_BYTES: u64 = 96;

thread_local! {
    static CREATED: Cell<u64> = const { Cell::new(0) };
}

/// How many records were created or grew on this thread so far: compare the value before
/// and after handling one frame.
pub fn created_here() -> u64 {
    CREATED.with(Cell::get)
}

/// Bytes of a name and an argument table, on top of a record's fixed size.
pub fn named(name: &str, arguments: &FieldTable) -> u64 {
    name.len() as u64
        + arguments
            .inner()
            .keys()
            .map(|k| k.as_str().len() as u64 + ARGUMENT_BYTES)
            .sum::<u64>()
}

/// A record that takes `bytes` was created by the frame being handled: counted in
/// `memory` (its owner gives them back when it drops, as `Queue` does).
pub fn created(memory: &Memory, bytes: u64) {
    memory.add(bytes as usize);
    CREATED.with(|c| c.set(c.get() + 1));
}

/// One record's share of the accounted memory (`Memory::add` / `sub`).
#[derive(Debug)]
pub struct RecordCharge {
    memory: Arc<Memory>,
    bytes: u64,
}

impl RecordCharge {
    /// A record that takes `bytes` now, created by the frame being handled.
    pub fn new(memory: Arc<Memory>, bytes: u64) -> Self {
        let mut charge = RecordCharge { memory, bytes: 0 };
        charge.set(bytes, true);
        charge
    }

    /// The record takes `bytes` now; `created` when it grew because the client created
    /// something (a binding), not when it only serves one (a consumer).
    pub fn set(&mut self, bytes: u64, created: bool) {
        if bytes > self.bytes && created {
            self::created(&self.memory, bytes - self.bytes);
        } else if bytes > self.bytes {
            self.memory.add((bytes - self.bytes) as usize);
        } else if bytes < self.bytes {
            self.memory.sub((self.bytes - bytes) as usize);
        }
        self.bytes = bytes;
    }
}

impl Drop for RecordCharge {
    fn drop(&mut self) {
        self.set(0, false);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_charge_counts_until_dropped_and_tells_this_thread_what_was_created() {
        let m = Memory::new(u64::MAX);
        let before = created_here();
        let mut a = RecordCharge::new(m.clone(), 1000);
        assert_eq!((m.used(), created_here()), (1000, before + 1));
        a.set(1500, false);
        assert_eq!((m.used(), created_here()), (1500, before + 1));
        a.set(1200, true);
        assert_eq!((m.used(), created_here()), (1200, before + 1), "shrinking");
        a.set(1300, true);
        assert_eq!(created_here(), before + 2);
        drop(a);
        assert_eq!(m.used(), 0);
        let other = std::thread::spawn(created_here).join().unwrap();
        assert_eq!(other, 0, "the counter is per thread");
    }

    #[test]
    fn queues_exchanges_and_bindings_are_counted_until_they_go() {
        use crate::broker::vhost::{ExchangeDeclare, QueueDeclare, VHost};
        let m = Memory::new(u64::MAX);
        let vhost = VHost::new("v", None, m.clone(), crate::clock::Clock::real());
        let empty = m.used();
        assert!(
            empty >= 7 * EXCHANGE_BYTES,
            "the predeclared exchanges count"
        );
        let args = FieldTable::default();
        let before = created_here();
        vhost
            .declare_exchange(&ExchangeDeclare {
                name: "x",
                kind: "direct",
                passive: false,
                durable: false,
                auto_delete: false,
                internal: false,
                arguments: &args,
            })
            .unwrap();
        let q = QueueDeclare {
            name: "q",
            passive: false,
            durable: false,
            exclusive: false,
            auto_delete: false,
            server_named: false,
            arguments: &args,
        };
        vhost.declare_queue(&q, 1).unwrap();
        vhost.bind_queue("q", "x", "k", &args, 1).unwrap();
        assert_eq!(created_here(), before + 3, "exchange, queue, binding");
        assert!(m.used() >= empty + EXCHANGE_BYTES + QUEUE_BYTES + BINDING_BYTES);
        vhost.declare_queue(&q, 1).unwrap();
        vhost.bind_queue("q", "x", "k", &args, 1).unwrap();
        assert_eq!(created_here(), before + 3, "redeclaring creates nothing");
        vhost.delete_queue("q", false, false, 1).unwrap();
        vhost.delete_exchange("x", false).unwrap();
        assert_eq!(m.used(), empty, "all given back");
    }
}
