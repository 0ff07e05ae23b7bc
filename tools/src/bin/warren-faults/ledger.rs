//! The kill -9 test's books: every message id a publisher sent, whether the broker
//! confirmed or nacked it, every delivery of it (in which broker lifetime, "epoch", and
//! with which redelivered flag) and every ack the consumer sent, grouped in batches. At
//! the end `verdict` decides, for each id, whether it was lost or duplicated.
//!
//! What an ack proves: AMQP never acknowledges an ack, so the consumer follows each ack
//! with a basic.qos on the same channel; the broker handles a channel's frames in order,
//! so qos-ok proves the ack was handled ("processed"). warren's store does not sync for
//! acks alone but the next sync covers them, so an ack is "synced" once some publisher's
//! message, written after that qos-ok arrived, was confirmed in the same epoch. Only a
//! synced ack forbids the message from coming back after a kill; an ack still on the
//! wire, or handled but not yet synced, allows one more delivery in a later epoch.

use std::collections::HashMap;
use std::time::Instant;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum PubState {
    Sent,
    Confirmed,
    Nacked,
}

#[derive(Clone, Copy, Debug)]
struct Delivery {
    epoch: u32,
    redelivered: bool,
    /// When it arrived: warren queues the store's "delivered" mark before writing it.
    at: Instant,
    /// The ack batch that covered it, if one was sent.
    batch: Option<usize>,
}

struct Batch {
    epoch: u32,
    processed: Option<Instant>,
}

#[derive(Default)]
struct Entry {
    state: Option<PubState>,
    deliveries: Vec<Delivery>,
}

/// Message ids: publisher number in the top 16 bits, its sequence number below.
pub fn message_id(publisher: u32, seq: u64) -> u64 {
    ((publisher as u64) << 48) | (seq & ((1 << 48) - 1))
}

#[derive(Default)]
pub struct Ledger {
    entries: HashMap<u64, Entry>,
    batches: Vec<Batch>,
    /// Per epoch: the latest send time of a message the broker confirmed.
    synced_until: HashMap<u32, Instant>,
    pub sent: u64,
    pub deliveries: u64,
    pub corrupt: u64,
    pub unknown_ids: u64,
    pub blocked: u64,
}

/// The outcome, with every figure the report prints.
#[derive(Default, Debug)]
pub struct Verdict {
    pub sent: u64,
    pub confirmed: u64,
    pub nacked: u64,
    pub unconfirmed: u64,
    pub deliveries: u64,
    pub lost: u64,
    pub duplicated: u64,
    /// Second deliveries explained by the kill: the first was never acked, its ack was in
    /// flight, or its ack was handled but not yet synced.
    pub redelivered_unacked: u64,
    pub redelivered_ack_in_flight: u64,
    pub redelivered_ack_unsynced: u64,
    /// Redeliveries without the redelivered flag (informative: after a restart RabbitMQ
    /// sets it only for messages it knows were delivered).
    pub redelivery_flag_missing: u64,
    /// ... of which the first delivery's "delivered" mark had been synced (a message
    /// written after it arrived was confirmed): the broker knew and still did not say.
    pub redelivery_flag_missing_synced: u64,
    pub corrupt: u64,
    pub unknown_ids: u64,
    pub examples: Vec<String>,
}

impl Ledger {
    pub fn sent(&mut self, id: u64) {
        self.sent += 1;
        self.entries.entry(id).or_default().state = Some(PubState::Sent);
    }

    /// The broker confirmed (or nacked) `id`, which was written at `sent_at` in `epoch`.
    pub fn settled(&mut self, id: u64, ok: bool, epoch: u32, sent_at: Instant) {
        if let Some(e) = self.entries.get_mut(&id) {
            e.state = Some(if ok {
                PubState::Confirmed
            } else {
                PubState::Nacked
            });
        }
        if ok {
            let t = self.synced_until.entry(epoch).or_insert(sent_at);
            if *t < sent_at {
                *t = sent_at;
            }
        }
    }

    pub fn delivered(&mut self, id: u64, epoch: u32, redelivered: bool) {
        self.deliveries += 1;
        match self.entries.get_mut(&id) {
            Some(e) if e.state.is_some() => e.deliveries.push(Delivery {
                epoch,
                redelivered,
                at: Instant::now(),
                batch: None,
            }),
            _ => self.unknown_ids += 1,
        }
    }

    /// An ack covering `ids` (each one's latest delivery) was written; returns its batch.
    pub fn ack_sent(&mut self, ids: &[u64], epoch: u32) -> usize {
        let b = self.batches.len();
        self.batches.push(Batch {
            epoch,
            processed: None,
        });
        for id in ids {
            if let Some(d) = self
                .entries
                .get_mut(id)
                .and_then(|e| e.deliveries.last_mut())
            {
                d.batch = Some(b);
            }
        }
        b
    }

    /// The qos-ok that follows batch `b` arrived.
    pub fn ack_processed(&mut self, b: usize, at: Instant) {
        if let Some(batch) = self.batches.get_mut(b) {
            batch.processed = Some(at);
        }
    }

    pub fn confirmed(&self) -> u64 {
        self.entries
            .values()
            .filter(|e| e.state == Some(PubState::Confirmed))
            .count() as u64
    }

    /// Whether ack batch `b` is on disk: handled, then covered by a later sync.
    fn synced(&self, b: usize) -> bool {
        let Some(batch) = self.batches.get(b) else {
            return false;
        };
        match (batch.processed, self.synced_until.get(&batch.epoch)) {
            (Some(p), Some(s)) => p < *s,
            _ => false,
        }
    }

    /// Judge every id. `final_epoch` is the lifetime that ended gracefully after the drain.
    pub fn verdict(&self) -> Verdict {
        let mut v = Verdict {
            sent: self.sent,
            deliveries: self.deliveries,
            corrupt: self.corrupt,
            unknown_ids: self.unknown_ids,
            ..Verdict::default()
        };
        let note = |v: &mut Verdict, s: String| {
            if v.examples.len() < 10 {
                v.examples.push(s);
            }
        };
        for (id, e) in &self.entries {
            match e.state {
                Some(PubState::Confirmed) => v.confirmed += 1,
                Some(PubState::Nacked) => v.nacked += 1,
                _ => v.unconfirmed += 1,
            }
            let last_acked = e.deliveries.last().is_some_and(|d| d.batch.is_some());
            if e.state == Some(PubState::Confirmed) && !last_acked {
                v.lost += 1;
                note(
                    &mut v,
                    format!("lost {id:#x}: confirmed, deliveries {:?}", e.deliveries),
                );
            }
            for pair in e.deliveries.windows(2) {
                let (a, b) = (pair[0], pair[1]);
                if !b.redelivered {
                    v.redelivery_flag_missing += 1;
                    if self.synced_until.get(&a.epoch).is_some_and(|s| a.at < *s) {
                        v.redelivery_flag_missing_synced += 1;
                    }
                }
                let explained = b.epoch > a.epoch
                    && match a.batch {
                        None => {
                            v.redelivered_unacked += 1;
                            true
                        }
                        Some(x) if self.synced(x) => false,
                        Some(x) if self.batches[x].processed.is_some() => {
                            v.redelivered_ack_unsynced += 1;
                            true
                        }
                        Some(_) => {
                            v.redelivered_ack_in_flight += 1;
                            true
                        }
                    };
                if !explained {
                    v.duplicated += 1;
                    note(
                        &mut v,
                        format!("duplicated {id:#x}: deliveries {:?}", e.deliveries),
                    );
                }
            }
        }
        v
    }
}
