//! The `x-random` exchange (RabbitMQ's random-exchange plugin): each message goes to one
//! of the exchange's bindings, picked uniformly at random; binding keys are ignored.
//!
//! Called by `Exchange::route` (mod.rs) under the topology read lock, once per message
//! published to such an exchange. The generator is per thread (xorshift64*, seeded once
//! from the standard library's per-process random keys): no lock, no shared atomic, no
//! system call per message. It must never be used where unpredictability matters.

use super::Destination;
use std::cell::Cell;
use std::hash::{BuildHasher, Hasher};

thread_local! {
    static STATE: Cell<u64> = Cell::new(seed());
}

fn seed() -> u64 {
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(0x9e37_79b9_7f4a_7c15);
    // xorshift must not start at zero.
    h.finish() | 1
}

/// A number in [0, n) for n > 0.
fn below(n: usize) -> usize {
    STATE.with(|s| {
        let mut x = s.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        s.set(x);
        // The high bits of the multiplied state are the good ones; scaling (not modulo)
        // keeps the choice unbiased to within 2^-64 per binding.
        let r = x.wrapping_mul(0x2545_f491_4f6c_dd1d);
        ((u128::from(r) * n as u128) >> 64) as usize
    })
}

/// Reports one of `bindings` (none when there are none).
pub fn route(bindings: &[Destination], out: &mut dyn FnMut(&Destination)) {
    match bindings {
        [] => {}
        [only] => out(only),
        many => out(&many[below(many.len())]),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn picks_every_index_and_never_past_the_end() {
        let mut seen = [0u32; 5];
        for _ in 0..5_000 {
            seen[super::below(5)] += 1;
        }
        assert!(seen.iter().all(|&n| n > 700), "{seen:?}");
    }
}
