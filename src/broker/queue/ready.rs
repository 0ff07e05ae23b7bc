//! A queue's ready messages in order, per priority level: a head in memory and, behind
//! it, a tail paged to disk once memory is over the paging budget.
//!
//! Owned by `QueueState` and used under the queue lock. Keeps the memory accounting true
//! as messages move: a message paged out is subtracted, one read back is added again.
//! Order holds because a level with a non-empty tail appends there, and requeued
//! messages (which were at the head once) are older than anything in the tail.

use super::browse::Part;
use super::paging::Tail;
use super::Queued;
use super::{read_back_waker, Queue};
use crate::broker::memory::Memory;
use std::collections::VecDeque;
use std::sync::{Arc, Weak};

/// A level keeps new messages in memory, even over budget, while its head is shorter than
/// this: consumers that keep up are served without a round trip through a page file.
const HEAD_MIN: usize = 64;

#[derive(Debug, Default)]
struct Level {
    head: VecDeque<Queued>,
    tail: Tail,
}

#[derive(Debug)]
pub(super) struct Ready {
    /// One level per priority (x-max-priority + 1 of them; one for other queues), each
    /// in sequence order; the highest non-empty level is the head of the queue.
    levels: Vec<Level>,
    /// Messages and their body bytes, paged ones included (x-max-length, -bytes).
    len: usize,
    pub(super) bytes: u64,
    /// Of those, the ones in the message store (persistent in a durable queue).
    stored: usize,
    stored_bytes: u64,
    memory: Arc<Memory>,
    /// x-queue-mode lazy: page past `HEAD_MIN` even under the memory budget.
    lazy: bool,
    /// The queue, for the `Wake` a level's tail gets when it starts paging (made then:
    /// most queues never page, and a queue record should stay small).
    me: Weak<Queue>,
}

impl Ready {
    pub(super) fn new(levels: usize, memory: Arc<Memory>, lazy: bool, me: Weak<Queue>) -> Ready {
        Ready {
            levels: (0..levels.max(1)).map(|_| Level::default()).collect(),
            len: 0,
            bytes: 0,
            stored: 0,
            stored_bytes: 0,
            memory,
            lazy,
            me,
        }
    }

    /// A policy changed x-queue-mode: from the next push on.
    pub(super) fn set_lazy(&mut self, lazy: bool) {
        self.lazy = lazy;
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    pub(super) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Counts `item` in and returns its level's index.
    fn count_in(&mut self, item: &Queued) -> usize {
        self.len += 1;
        self.bytes += item.msg.body().len() as u64;
        if item.store_id != 0 {
            self.stored += 1;
            self.stored_bytes += item.msg.body().len() as u64;
        }
        (item.priority as usize).min(self.levels.len() - 1)
    }

    /// Messages in the message store and their body bytes.
    pub(super) fn stored(&self) -> (u64, u64) {
        (self.stored as u64, self.stored_bytes)
    }

    /// Messages on disk (in tails) and their body bytes: all of them, and those not in
    /// the message store.
    pub(super) fn paged(&self) -> ((u64, u64), (u64, u64)) {
        let (mut all, mut transient) = ((0, 0), (0, 0));
        for tail in self.levels.iter().map(|l| &l.tail) {
            let (n, b) = tail.transient();
            all = (all.0 + tail.len() as u64, all.1 + tail.body_bytes());
            transient = (transient.0 + n as u64, transient.1 + b);
        }
        (all, transient)
    }

    /// Appends a new message: to disk if its level already pages (to stay in order), or
    /// if memory is over budget (or the queue is lazy) and the level's head is long
    /// enough; else to memory. A level that starts paging also moves its head beyond
    /// `HEAD_MIN` to disk, so what queues hold in memory falls back under the budget
    /// instead of staying at the level it had reached.
    pub(super) fn push_back(&mut self, item: Queued) {
        let i = self.count_in(&item);
        let level = &mut self.levels[i];
        let dir = if level.tail.is_empty() {
            let pages = match self.lazy {
                true => self.memory.page_dir(),
                false => self.memory.paging(),
            };
            let dir = pages.filter(|_| level.head.len() >= HEAD_MIN);
            if let Some(dir) = dir {
                let mut freed = 0;
                for moved in level.head.drain(HEAD_MIN..) {
                    freed += moved.cost();
                    level
                        .tail
                        .push(&moved, dir, &self.memory, &|| read_back_waker(&self.me));
                }
                self.memory.sub(freed);
            }
            dir
        } else {
            self.memory.page_dir()
        };
        match dir {
            Some(dir) => {
                level
                    .tail
                    .push(&item, dir, &self.memory, &|| read_back_waker(&self.me));
                self.memory.sub(item.cost());
            }
            None => level.head.push_back(item),
        }
    }

    /// A message given back before anything else of its level (a failed delivery).
    pub(super) fn push_front(&mut self, item: Queued) {
        let i = self.count_in(&item);
        self.levels[i].head.push_front(item);
    }

    /// Puts a requeued message back at the place its sequence number gives it. It was in
    /// the head before, so it is older than the whole tail and goes back into the head.
    pub(super) fn insert_in_order(&mut self, item: Queued) {
        let i = self.count_in(&item);
        let head = &mut self.levels[i].head;
        // Requeues are usually of the oldest messages: search from the front.
        let at = head.partition_point(|q| q.seq < item.seq);
        head.insert(at, item);
    }

    /// The highest non-empty level, its head refilled from its tail if it ran dry (and
    /// still empty if the tail waits for a read-back: the queue waits with it, so that
    /// order holds).
    fn top(&mut self) -> Option<&mut Level> {
        let level = self
            .levels
            .iter_mut()
            .rev()
            .find(|l| !l.head.is_empty() || !l.tail.is_empty())?;
        if level.head.is_empty() {
            let n = level.tail.refill(&mut level.head);
            // Read back, each copy is an allocation of its own: its full cost counts.
            let cost: usize = level.head.iter().rev().take(n).map(Queued::cost).sum();
            self.memory.add(cost);
        }
        Some(level)
    }

    pub(super) fn front(&mut self) -> Option<&Queued> {
        self.top()?.head.front()
    }

    pub(super) fn pop_front(&mut self) -> Option<Queued> {
        let item = self.top()?.head.pop_front()?;
        self.len -= 1;
        self.bytes -= item.msg.body().len() as u64;
        if item.store_id != 0 {
            self.stored -= 1;
            self.stored_bytes -= item.msg.body().len() as u64;
        }
        Some(item)
    }

    /// Messages `from..from + take` in delivery order, for a browse to read later off
    /// the queue lock: copies of those in memory (a copy is a reference count), views
    /// of the paged ones. Changes nothing: no refill, no paging, no accounting.
    pub(super) fn view(&self, from: usize, take: usize) -> Vec<Part> {
        let end = from.saturating_add(take);
        let mut parts = Vec::new();
        let mut at = 0;
        for level in self.levels.iter().rev() {
            if at >= end {
                break;
            }
            let h = level.head.len();
            if from < at + h {
                let first = from.saturating_sub(at);
                let upto = (end - at).min(h);
                let items = level.head.range(first..upto).cloned().collect();
                parts.push(Part::Memory(at + first, items));
            }
            at += h;
            let t = level.tail.len();
            if from < at + t && at < end {
                let skip = from.saturating_sub(at);
                let upto = (end - at).min(t);
                parts.push(Part::Paged(at, level.tail.view(skip, upto - skip)));
            }
            at += t;
        }
        parts
    }

    /// Everything: the in-memory messages head first, and the paged tails (dropping a
    /// tail deletes its files; `Tail::drain` reads it back).
    pub(super) fn take_all(&mut self) -> (VecDeque<Queued>, Vec<Tail>) {
        self.len = 0;
        self.bytes = 0;
        self.stored = 0;
        self.stored_bytes = 0;
        let mut all = VecDeque::new();
        let mut tails = Vec::new();
        for level in self.levels.iter_mut().rev() {
            all.append(&mut level.head);
            if !level.tail.is_empty() {
                tails.push(std::mem::take(&mut level.tail));
            }
        }
        (all, tails)
    }
}
