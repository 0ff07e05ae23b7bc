//! Connection churn: connections that lived less than `SHORT_LIVED_MS`, grouped by
//! vhost, peer host, user and client product ("a connection per message").
//!
//! `closed` is called once per connection close (the registry's drop of a
//! registration), never per message. Each group keeps only the close times of its last
//! `MIN_SHORT_LIVED` short-lived connections, so a group is a few hundred bytes however
//! fast the churn; the number of groups is bounded by `MAX_GROUPS`.

use std::collections::{HashMap, VecDeque};

/// A connection closed within a second of opening did one small thing: opening one
/// costs a TCP and an AMQP handshake (several round trips, a login), so doing it per
/// message or per request is the pattern this catches.
pub const SHORT_LIVED_MS: u64 = 1000;

/// Short-lived connections of one group needed within the window to call it churn: a
/// script that connects a few times is fine; ten in a row is a habit.
pub const MIN_SHORT_LIVED: usize = 10;

/// The window, in collector samples (a minute at the default 5 s interval): ten
/// short-lived connections within it is "a high rate".
pub const WINDOW_SAMPLES: u64 = 12;

/// Groups remembered (peer host x user x product x vhost); past it the least recent goes.
const MAX_GROUPS: usize = 100;

/// Who the connections came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Group {
    pub vhost: String,
    pub peer_host: String,
    pub user: String,
    /// The client's `product` property ("" when it sent none).
    pub product: String,
}

/// One group's recent short-lived connections.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Close times (ms since the epoch) of the last `MIN_SHORT_LIVED`, oldest first.
    recent: VecDeque<u64>,
    /// Every short-lived connection of this group so far.
    pub total: u64,
    pub first: u64,
    /// The last one's name and lifetime, as an example.
    pub last_name: String,
    pub last_lifetime_ms: u64,
}

impl Tally {
    /// When the last one closed.
    pub fn last(&self) -> u64 {
        self.recent.back().copied().unwrap_or(0)
    }

    /// Whether `MIN_SHORT_LIVED` of them closed within `window_ms` of `now`.
    fn churning(&self, now: u64, window_ms: u64) -> bool {
        self.recent.len() >= MIN_SHORT_LIVED
            && self
                .recent
                .front()
                .is_some_and(|&t| now.saturating_sub(t) <= window_ms)
    }
}

/// The groups.
#[derive(Debug, Default)]
pub struct ShortLived {
    groups: HashMap<Group, Tally>,
}

impl ShortLived {
    /// A connection of `group` called `name` closed at `now` after `lifetime_ms`.
    pub fn closed(&mut self, group: Group, name: &str, lifetime_ms: u64, now: u64) {
        if lifetime_ms >= SHORT_LIVED_MS {
            return;
        }
        if !self.groups.contains_key(&group) && self.groups.len() >= MAX_GROUPS {
            if let Some(oldest) = self
                .groups
                .iter()
                .min_by_key(|(_, t)| t.last())
                .map(|(g, _)| g.clone())
            {
                self.groups.remove(&oldest);
            }
        }
        let t = self.groups.entry(group).or_default();
        if t.total == 0 {
            t.first = now;
        }
        t.total += 1;
        if t.recent.len() >= MIN_SHORT_LIVED {
            t.recent.pop_front();
        }
        t.recent.push_back(now);
        name.clone_into(&mut t.last_name);
        t.last_lifetime_ms = lifetime_ms;
    }

    /// The groups churning now; groups quiet for a whole window are forgotten.
    pub fn churning(&mut self, now: u64, window_ms: u64) -> Vec<(Group, Tally)> {
        self.groups
            .retain(|_, t| now.saturating_sub(t.last()) <= window_ms);
        self.groups
            .iter()
            .filter(|(_, t)| t.churning(now, window_ms))
            .map(|(g, t)| (g.clone(), t.clone()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(user: &str) -> Group {
        Group {
            vhost: "/".into(),
            peer_host: "127.0.0.1".into(),
            user: user.into(),
            product: "p".into(),
        }
    }

    #[test]
    fn ten_short_lived_connections_within_the_window_are_churn() {
        let mut s = ShortLived::default();
        s.closed(group("long"), "l", SHORT_LIVED_MS, 0);
        for i in 0..MIN_SHORT_LIVED as u64 {
            assert!(s.churning(i, 100).is_empty());
            s.closed(group("u"), "c", 5, i);
        }
        let found = s.churning(20, 100);
        assert_eq!(found.len(), 1);
        assert_eq!((found[0].0.user.as_str(), found[0].1.total), ("u", 10));
        assert!(s.churning(200, 100).is_empty(), "quiet for a window: gone");
    }

    #[test]
    fn at_most_max_groups_are_kept_the_least_recent_making_room() {
        let mut s = ShortLived::default();
        for i in 0..MAX_GROUPS as u64 + 1 {
            s.closed(group(&i.to_string()), "c", 5, i);
        }
        assert_eq!(s.groups.len(), MAX_GROUPS);
        assert!(!s.groups.contains_key(&group("0")), "the least recent went");
    }
}
