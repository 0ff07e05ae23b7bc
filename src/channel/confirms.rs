//! Publisher confirms on one channel: sequence numbers, publishes waiting for the
//! message store, and the acks and nacks to write, coalesced.
//!
//! Owned by its channel. Transient publishes are confirmed when they are enqueued;
//! persistent ones when the store's fdatasync covers them, which can be later and out of
//! order. Confirms are written once per batch: a contiguous run from the lowest
//! unanswered sequence number becomes one `multiple` ack, anything else is answered on
//! its own, as RabbitMQ does.

use crate::codec;
use bytes::BytesMut;
use std::collections::{BTreeSet, VecDeque};

#[derive(Debug)]
pub struct Confirms {
    next_seq: u64,
    /// Published and waiting for the message store, in increasing order, with whether the
    /// store answered: answered ones leave from the front. The store answers in about
    /// publish order, so this is a queue (no tree node per publish); an answer out of
    /// order is found by binary search.
    pending: VecDeque<(u64, bool)>,
    /// Entries of `pending` not answered yet.
    waiting: usize,
    /// Settled since the last flush: (sequence number, stored/enqueued).
    ready: Vec<(u64, bool)>,
    /// Every sequence number up to this one has been answered.
    answered_upto: u64,
    /// Sequence numbers answered above `answered_upto` (out of order).
    answered_above: BTreeSet<u64>,
}

impl Default for Confirms {
    fn default() -> Self {
        Confirms {
            next_seq: 1,
            pending: VecDeque::new(),
            waiting: 0,
            ready: Vec::new(),
            answered_upto: 0,
            answered_above: BTreeSet::new(),
        }
    }
}

impl Confirms {
    /// The sequence number of the next publish.
    pub fn next(&mut self) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        seq
    }

    /// The publish is enqueued or unroutable (`ok`), or refused by a queue: answer it
    /// with the next flush.
    pub fn settle_now(&mut self, seq: u64, ok: bool) {
        self.ready.push((seq, ok));
    }

    /// Publishes not answered yet (the management API's messages_unconfirmed).
    pub fn unconfirmed(&self) -> usize {
        self.waiting
    }

    /// The publish waits for the message store.
    pub fn wait_for_store(&mut self, seq: u64) {
        // Sequence numbers only grow, so this is a push at the back.
        match self.pending.back() {
            Some(&(last, _)) if last >= seq => {
                if let Err(at) = self.pending.binary_search_by_key(&seq, |&(s, _)| s) {
                    self.pending.insert(at, (seq, false));
                    self.waiting += 1;
                }
            }
            _ => {
                self.pending.push_back((seq, false));
                self.waiting += 1;
            }
        }
    }

    /// The store answered for `seq`.
    pub fn stored(&mut self, seq: u64, ok: bool) {
        let at = match self.pending.front() {
            Some(&(first, false)) if first == seq => 0,
            _ => match self.pending.binary_search_by_key(&seq, |&(s, _)| s) {
                Ok(at) => at,
                Err(_) => return,
            },
        };
        if std::mem::replace(&mut self.pending[at].1, true) {
            return;
        }
        self.waiting -= 1;
        self.ready.push((seq, ok));
        while self.pending.front().is_some_and(|&(_, answered)| answered) {
            self.pending.pop_front();
        }
    }

    /// Writes the acks and nacks settled since the last flush.
    pub fn flush(&mut self, out: &mut BytesMut, channel: u16) {
        if self.ready.is_empty() {
            return;
        }
        self.ready.sort_unstable();
        // A contiguous run of acks from answered_upto + 1: (first, last).
        let mut run: Option<(u64, u64)> = None;
        for (seq, ok) in std::mem::take(&mut self.ready) {
            if ok && seq == self.answered_upto + 1 {
                self.answered_upto = seq;
                while self.answered_above.remove(&(self.answered_upto + 1)) {
                    self.answered_upto += 1;
                }
                let first = run.map_or(seq, |(first, _)| first);
                run = Some((first, self.answered_upto));
                continue;
            }
            if let Some((first, last)) = run.take() {
                codec::encode_ack(out, channel, last, last > first);
            }
            if ok {
                codec::encode_ack(out, channel, seq, false);
            } else {
                codec::encode_nack(out, channel, seq, false);
            }
            if seq == self.answered_upto + 1 {
                self.answered_upto = seq;
                while self.answered_above.remove(&(self.answered_upto + 1)) {
                    self.answered_upto += 1;
                }
            } else {
                self.answered_above.insert(seq);
            }
        }
        if let Some((first, last)) = run {
            codec::encode_ack(out, channel, last, last > first);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use amq_protocol::frame::{parse_frame, AMQPFrame};
    use amq_protocol::protocol::{basic, AMQPClass};

    fn written(c: &mut Confirms) -> Vec<(bool, u64, bool)> {
        let mut out = BytesMut::new();
        c.flush(&mut out, 1);
        let mut rest: &[u8] = &out;
        let mut v = Vec::new();
        while !rest.is_empty() {
            let Ok((r, frame)) = parse_frame(rest) else {
                panic!("bad frame")
            };
            rest = r;
            match frame {
                AMQPFrame::Method(1, AMQPClass::Basic(basic::AMQPMethod::Ack(a))) => {
                    v.push((true, a.delivery_tag, a.multiple))
                }
                AMQPFrame::Method(1, AMQPClass::Basic(basic::AMQPMethod::Nack(n))) => {
                    v.push((false, n.delivery_tag, n.multiple))
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        v
    }

    #[test]
    fn contiguous_acks_coalesce_and_stored_ones_come_on_their_own() {
        let mut c = Confirms::default();
        let (a, b, p, d) = (c.next(), c.next(), c.next(), c.next());
        c.settle_now(a, true);
        c.settle_now(b, true);
        c.wait_for_store(p);
        c.settle_now(d, true);
        assert_eq!(written(&mut c), vec![(true, 2, true), (true, 4, false)]);
        c.stored(p, true);
        // 3 closes the gap below the already answered 4: one multiple ack covers both.
        assert_eq!(written(&mut c), vec![(true, 4, true)]);
        let e = c.next();
        c.settle_now(e, true);
        assert_eq!(written(&mut c), vec![(true, 5, false)]);
        let (f, g) = (c.next(), c.next());
        c.wait_for_store(f);
        c.settle_now(g, true);
        c.stored(f, false);
        assert_eq!(written(&mut c), vec![(false, 6, false), (true, 7, false)]);
    }

    #[test]
    fn store_answers_out_of_order_and_twice_are_counted_once() {
        let mut c = Confirms::default();
        let seqs: Vec<u64> = (0..5).map(|_| c.next()).collect();
        for &s in &seqs {
            c.wait_for_store(s);
        }
        assert_eq!(c.unconfirmed(), 5);
        c.stored(seqs[2], true);
        c.stored(seqs[2], true);
        c.stored(99, true);
        assert_eq!(c.unconfirmed(), 4);
        assert_eq!(written(&mut c), vec![(true, 3, false)]);
        c.stored(seqs[0], true);
        c.stored(seqs[1], true);
        assert_eq!(written(&mut c), vec![(true, 3, true)]);
        c.stored(seqs[4], false);
        c.stored(seqs[3], true);
        assert_eq!(c.unconfirmed(), 0);
        assert_eq!(written(&mut c), vec![(true, 4, false), (false, 5, false)]);
        assert!(c.pending.is_empty());
    }
}
