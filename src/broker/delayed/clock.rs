//! How delayed messages read the broker's clock: in wall-clock Unix milliseconds,
//! because due times are stored on disk and must mean the same after a restart (the
//! clock's monotonic `now_ms` restarts with the process).
//!
//! Called by the vhost when it holds a message and by the scheduler when it fires.

use crate::clock::Clock;

/// When a message delayed by `delay` ms now is due; far delays saturate (i64::MAX ms is
/// some 292 million years away) instead of overflowing.
pub fn due_after(clock: &Clock, delay: u64) -> i64 {
    clock
        .unix_ms()
        .saturating_add(i64::try_from(delay).unwrap_or(i64::MAX))
}
