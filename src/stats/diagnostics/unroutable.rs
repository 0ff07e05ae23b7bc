//! Messages published that no binding routed: per (vhost, exchange, routing key,
//! connection) how many, when first and last, and how many asked to be told (mandatory).
//!
//! Filled by the publishing channel on the unroutable path only (`record`); a routed
//! publish never comes here. The table is bounded (`MAX_KEYS`); a new key past the bound
//! drops the key seen least recently. Read on demand by `Diagnostics::findings`, which
//! forgets keys that route now (a binding was added) or whose exchange is gone.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

/// Distinct (vhost, exchange, routing key, connection) keys remembered. A publisher with
/// a fresh routing key per message (ids in keys) would otherwise grow the table without
/// end; a thousand is more than anyone reads, and the newest are the ones that matter.
pub const MAX_KEYS: usize = 1000;

/// A key not seen for this long is history, not a diagnosis (an hour).
pub const KEEP_MS: u64 = 3_600_000;

/// One key's tally.
#[derive(Debug, Clone)]
pub struct Unroutable {
    pub vhost: String,
    pub exchange: String,
    pub routing_key: String,
    pub connection: String,
    /// The channel that published last.
    pub channel: String,
    pub count: u64,
    /// Of which published with mandatory=true (returned to the publisher).
    pub mandatory: u64,
    pub first: u64,
    pub last: u64,
}

impl Unroutable {
    fn is(&self, k: &Key) -> bool {
        self.vhost == k.vhost
            && self.exchange == k.exchange
            && self.routing_key == k.routing_key
            && self.connection == k.connection
    }
}

/// What a publish is tallied under, borrowed (no allocation when the key is known).
pub struct Key<'a> {
    pub vhost: &'a str,
    pub exchange: &'a str,
    pub routing_key: &'a str,
    pub connection: &'a str,
}

impl Key<'_> {
    fn hash(&self) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        (self.vhost, self.exchange, self.routing_key, self.connection).hash(&mut h);
        h.finish()
    }
}

/// The bounded table, by the hash of its key (looked up without building a key).
#[derive(Debug, Default)]
pub struct Table {
    entries: HashMap<u64, Unroutable>,
}

impl Table {
    /// One unroutable publish by `channel`, at `now` (ms since the epoch).
    pub fn record(&mut self, key: &Key, channel: &str, mandatory: bool, now: u64) {
        let hash = key.hash();
        if let Some(e) = self.entries.get_mut(&hash).filter(|e| e.is(key)) {
            e.count += 1;
            e.mandatory += u64::from(mandatory);
            e.last = now;
            if e.channel != channel {
                channel.clone_into(&mut e.channel);
            }
            return;
        }
        // A new key (or, rarely, another key with the same 64-bit hash, which it replaces).
        if !self.entries.contains_key(&hash) && self.entries.len() >= MAX_KEYS {
            // O(MAX_KEYS), only when a new key arrives at a full table.
            if let Some(oldest) = self.entries.iter().min_by_key(|(_, e)| e.last) {
                let oldest = *oldest.0;
                self.entries.remove(&oldest);
            }
        }
        self.entries.insert(
            hash,
            Unroutable {
                vhost: key.vhost.to_owned(),
                exchange: key.exchange.to_owned(),
                routing_key: key.routing_key.to_owned(),
                connection: key.connection.to_owned(),
                channel: channel.to_owned(),
                count: 1,
                mandatory: u64::from(mandatory),
                first: now,
                last: now,
            },
        );
    }

    /// Every key, with the hash `forget` takes; keys older than `KEEP_MS` are dropped.
    pub fn list(&mut self, now: u64) -> Vec<(u64, Unroutable)> {
        self.entries
            .retain(|_, e| now.saturating_sub(e.last) <= KEEP_MS);
        self.entries.iter().map(|(h, e)| (*h, e.clone())).collect()
    }

    /// Forgets keys whose cause is gone.
    pub fn forget(&mut self, hashes: &[u64]) {
        for h in hashes {
            self.entries.remove(h);
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key<'a>(rk: &'a str) -> Key<'a> {
        Key {
            vhost: "/",
            exchange: "x",
            routing_key: rk,
            connection: "c",
        }
    }

    #[test]
    fn tallies_per_key_and_drops_the_least_recent_past_the_bound() {
        let mut t = Table::default();
        t.record(&key("a"), "c (1)", false, 1);
        t.record(&key("a"), "c (2)", true, 2);
        let list = t.list(2);
        assert_eq!(list.len(), 1);
        let e = &list[0].1;
        assert_eq!((e.count, e.mandatory, e.first, e.last), (2, 1, 1, 2));
        assert_eq!(e.channel, "c (2)");
        for i in 0..MAX_KEYS {
            t.record(&key(&format!("k{i}")), "c (1)", false, 10 + i as u64);
        }
        assert_eq!(t.len(), MAX_KEYS);
        assert!(
            t.list(2000).iter().all(|(_, e)| e.routing_key != "a"),
            "the least recent key made room"
        );
        assert!(t.list(KEEP_MS + 5000).is_empty(), "old keys are history");
    }
}
