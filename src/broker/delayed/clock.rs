//! The one clock delayed messages read: wall-clock Unix milliseconds, because due times
//! are stored on disk and must mean the same after a restart (the monotonic `now_ms`
//! of the queues restarts from zero).
//!
//! Called by the vhost when it holds a message and by the scheduler when it fires.
//! Kept in one function so that a manual clock (issue 15) can replace it.

/// Milliseconds since the Unix epoch (0 if the system clock is before it).
pub fn now_unix_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// When a message delayed by `delay` ms now is due; far delays saturate (i64::MAX ms is
/// some 292 million years away) instead of overflowing.
pub fn due_after(delay: u64) -> i64 {
    now_unix_ms().saturating_add(i64::try_from(delay).unwrap_or(i64::MAX))
}
