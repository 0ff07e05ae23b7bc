//! Trends: a value of one object followed over the collector's samples, for the
//! diagnostics that are about something growing (a queue's ready messages with no
//! consumer, a no-prefetch consumer's unacked messages, a connection's channels).
//!
//! Updated once per collector tick (`Trends::update`), never per message. Only
//! candidate objects are followed (a queue without consumers and with messages, a
//! channel with a manual-ack consumer and no prefetch, a connection with at least
//! `LEAK_TRACK_FROM` channels); an object that stops being one is dropped, and at most
//! `MAX_TRACKED` are followed at once.

use std::collections::HashMap;

/// A value must have grown at this many samples, with no fall in between, to be called
/// growing: one rise is a burst; two in a row is a trend.
pub const MIN_RISES: u32 = 2;

/// Growth that stopped this many samples ago (a minute at the default 5 s interval) is
/// no longer reported: a queue that filled once and now holds steady is not growing.
pub const QUIET_SAMPLES: u32 = 12;

/// Objects followed at once, all kinds together (~100 bytes each). Past it, new
/// candidates wait until followed ones stop being candidates.
pub const MAX_TRACKED: usize = 10_000;

/// A connection is followed from this many channels on: below, even a leak is harmless.
pub const LEAK_TRACK_FROM: u64 = 10;

/// A connection with at least this many channels, still growing, is leaking them (most
/// clients use one to a few channels per thread; hundreds that keep coming are opened
/// and never closed).
pub const LEAK_MIN_CHANNELS: u64 = 100;

/// A no-prefetch consumer is reported once this many messages wait for its acks: below
/// it the consumer keeps up; above it, with no limit, it would take the whole queue.
pub const NO_PREFETCH_MIN_UNACKED: u64 = 50;

/// What is followed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    /// (vhost, queue): ready messages of a queue without consumers.
    Queue(String, String),
    /// A channel's name: unacked messages of a channel with a no-prefetch consumer.
    Channel(String),
    /// A connection's name: its channel count.
    Connection(String),
}

/// One followed value.
#[derive(Debug, Clone)]
pub struct Trend {
    /// The value where the current growth began, and when (ms since the epoch).
    pub low: u64,
    pub since: u64,
    pub last: u64,
    /// Samples at which it grew since `low`.
    pub rises: u32,
    /// Samples since it last grew.
    pub quiet: u32,
}

impl Trend {
    fn new(value: u64, now: u64) -> Self {
        Trend {
            low: value,
            since: now,
            last: value,
            rises: 0,
            quiet: 0,
        }
    }

    /// The next sample; any fall starts over from it.
    fn push(&mut self, value: u64, now: u64) {
        if value < self.last {
            *self = Trend::new(value, now);
        } else if value > self.last {
            self.rises += 1;
            self.quiet = 0;
            self.last = value;
        } else {
            self.quiet = self.quiet.saturating_add(1);
        }
    }

    /// Grew at `MIN_RISES` samples without falling, and lately.
    pub fn growing(&self) -> bool {
        self.rises >= MIN_RISES && self.quiet < QUIET_SAMPLES
    }
}

/// Every followed object.
#[derive(Debug, Default)]
pub struct Trends {
    followed: HashMap<Subject, Trend>,
}

impl Trends {
    /// One sample: the candidates now with their values. Objects no longer candidates
    /// are dropped; new ones start (up to `MAX_TRACKED`).
    pub fn update(&mut self, candidates: Vec<(Subject, u64)>, now: u64) {
        let mut old = std::mem::take(&mut self.followed);
        for (subject, value) in candidates {
            match old.remove(&subject) {
                Some(mut t) => {
                    t.push(value, now);
                    self.followed.insert(subject, t);
                }
                None if self.followed.len() + old.len() < MAX_TRACKED => {
                    self.followed.insert(subject, Trend::new(value, now));
                }
                None => {}
            }
        }
    }

    pub fn get(&self, subject: &Subject) -> Option<&Trend> {
        self.followed.get(subject)
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.followed.len()
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.followed.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_without_a_fall_and_lately_is_growing() {
        let q = Subject::Queue("/".into(), "q".into());
        let mut t = Trends::default();
        for (i, v) in [1, 2, 2, 3].into_iter().enumerate() {
            t.update(vec![(q.clone(), v)], i as u64);
        }
        let trend = t.get(&q).expect("followed");
        assert!(trend.growing());
        assert_eq!((trend.low, trend.last, trend.since), (1, 3, 0));
        t.update(vec![(q.clone(), 2)], 9);
        assert!(
            !t.get(&q).expect("followed").growing(),
            "a fall starts over"
        );
        for v in [3, 4] {
            t.update(vec![(q.clone(), v)], 10);
        }
        assert!(t.get(&q).expect("followed").growing());
        for _ in 0..QUIET_SAMPLES {
            t.update(vec![(q.clone(), 4)], 11);
        }
        assert!(!t.get(&q).expect("followed").growing(), "growth stopped");
        t.update(vec![], 12);
        assert!(t.is_empty(), "no longer a candidate: dropped");
    }

    #[test]
    fn at_most_max_tracked_objects_are_followed() {
        let mut t = Trends::default();
        let many = |n: usize| {
            (0..n)
                .map(|i| (Subject::Channel(i.to_string()), 1))
                .collect()
        };
        t.update(many(MAX_TRACKED + 5), 0);
        assert_eq!(t.len(), MAX_TRACKED);
        t.update(many(MAX_TRACKED + 5), 1);
        assert_eq!(t.len(), MAX_TRACKED, "followed ones stay, new ones wait");
    }
}
