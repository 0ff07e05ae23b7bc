//! Cheap hashers for the maps every message goes through.
//!
//! The standard SipHash costs more than the rest of a lookup for short keys. Channel
//! numbers use a multiplicative hash (a client can only slow its own connection); exchange
//! and queue names use a fast word-at-a-time hash keyed with a random seed per map, so
//! names chosen to collide cannot be prepared in advance.

use std::collections::HashMap;
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};

const K: u64 = 0x9E37_79B9_7F4A_7C15;

/// For maps keyed by channel number.
#[derive(Default)]
pub struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 << 8 | *b as u64).wrapping_mul(K);
        }
    }

    fn write_u16(&mut self, n: u16) {
        self.0 = (n as u64).wrapping_mul(K);
    }
}

pub type IdMap<V> = HashMap<u16, V, BuildHasherDefault<IdHasher>>;

/// For maps keyed by names (exchanges, queues, routing keys).
#[derive(Clone, Debug)]
pub struct NameHash {
    seed: u64,
}

impl Default for NameHash {
    fn default() -> Self {
        NameHash {
            seed: std::collections::hash_map::RandomState::new().hash_one(0x5EED_u64),
        }
    }
}

impl BuildHasher for NameHash {
    type Hasher = NameHasher;
    fn build_hasher(&self) -> NameHasher {
        NameHasher(self.seed)
    }
}

pub struct NameHasher(u64);

impl NameHasher {
    fn mix(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(K);
    }
}

impl Hasher for NameHasher {
    fn finish(&self) -> u64 {
        // Fold the well-mixed high half down: hashbrown takes its tag from the top bits
        // and its bucket from the low ones.
        self.0 ^ (self.0 >> 29)
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.mix(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.mix(u64::from_le_bytes(w) ^ (rest.len() as u64) << 59);
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.mix(n as u64);
    }
}

pub type NameMap<V> = HashMap<String, V, NameHash>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_spread_over_buckets_and_maps_work() {
        let mut m: NameMap<u32> = NameMap::default();
        for i in 0..10_000u32 {
            m.insert(format!("queue.{i}"), i);
        }
        assert!((0..10_000u32).all(|i| m.get(format!("queue.{i}").as_str()) == Some(&i)));
        let h = NameHash::default();
        let tops: std::collections::HashSet<u64> = (0..1000)
            .map(|i| h.hash_one(format!("q{i}")) >> 57)
            .collect();
        assert!(tops.len() > 100, "the top 7 bits vary: {}", tops.len());
        let mut ids: IdMap<u8> = IdMap::default();
        ids.insert(1, 1);
        ids.insert(2047, 2);
        assert_eq!((ids.get(&1), ids.get(&2047)), (Some(&1), Some(&2)));
    }
}
