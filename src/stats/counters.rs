//! The message counters RabbitMQ's `message_stats` shows, as one fixed array per object
//! (channel, queue, vhost, overall), and the snapshot arithmetic the collector and the
//! JSON need.
//!
//! A channel's counters have one writer, its connection task: `Counters::bump` is a
//! relaxed load and store on the channel's own cache line, never a locked instruction
//! shared with other publishers. A queue's counters are bumped by whoever works on the
//! queue (`Counters::add`, one relaxed add beside the queue lock the work already took).
//! Readers (the collector, the API) read relaxed snapshots: a count may lag one batch.

use std::sync::atomic::{AtomicU64, Ordering};

/// Each counter, as its `message_stats` key names it (`deliver_get` is derived).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub enum Key {
    Publish,
    Confirm,
    ReturnUnroutable,
    DropUnroutable,
    Deliver,
    DeliverNoAck,
    Get,
    GetNoAck,
    GetEmpty,
    Ack,
    Redeliver,
}

/// How many counters an object has.
pub const KEYS: usize = 11;

/// The JSON names, in `Key` order.
pub const NAMES: [&str; KEYS] = [
    "publish",
    "confirm",
    "return_unroutable",
    "drop_unroutable",
    "deliver",
    "deliver_no_ack",
    "get",
    "get_no_ack",
    "get_empty",
    "ack",
    "redeliver",
];

/// The live counters of one object.
#[derive(Debug, Default)]
pub struct Counters([AtomicU64; KEYS]);

impl Counters {
    /// One more `key`, by this object's only writer (a channel's connection task): a
    /// plain load and store, no read-modify-write shared with anyone.
    #[inline]
    pub fn bump(&self, key: Key, n: u64) {
        let c = &self.0[key as usize];
        c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
    }

    /// One more `key`, from any task (queues: several channels work on one queue).
    #[inline]
    pub fn add(&self, key: Key, n: u64) {
        self.0[key as usize].fetch_add(n, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Counts {
        Counts(std::array::from_fn(|i| self.0[i].load(Ordering::Relaxed)))
    }
}

/// A snapshot of counters, summed freely.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts(pub [u64; KEYS]);

impl Counts {
    pub fn get(&self, key: Key) -> u64 {
        self.0[key as usize]
    }

    pub fn add(&mut self, other: &Counts) {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a = a.wrapping_add(b);
        }
    }

    /// deliver + deliver_no_ack + get + get_no_ack, RabbitMQ's `deliver_get`.
    pub fn deliver_get(&self) -> u64 {
        [Key::Deliver, Key::DeliverNoAck, Key::Get, Key::GetNoAck]
            .iter()
            .map(|&k| self.get(k))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bumps_and_adds_show_in_snapshots_and_sums() {
        let c = Counters::default();
        c.bump(Key::Publish, 2);
        c.add(Key::Deliver, 3);
        c.bump(Key::GetNoAck, 1);
        let s = c.snapshot();
        assert_eq!((s.get(Key::Publish), s.deliver_get()), (2, 4));
        let mut total = Counts::default();
        total.add(&s);
        total.add(&s);
        assert_eq!(total.get(Key::Deliver), 6);
        assert_eq!(NAMES[Key::Redeliver as usize], "redeliver");
    }
}
