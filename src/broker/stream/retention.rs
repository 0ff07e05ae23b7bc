//! Which of a stream's oldest segments retention deletes, as RabbitMQ's log (osiris)
//! decides it: first `max_length_bytes` (while the segments together are larger, drop the
//! oldest), then `max_age` (while the oldest segment's newest chunk is older than
//! `now - max_age`, drop it). Whole segments only, and never the last (active) one.
//!
//! Called by `StreamLog::enforce_retention` under its metadata lock: a pure function
//! over sizes and timestamps, no I/O.

use super::StreamConfig;

/// How many segments, oldest first, to delete. `segments` are (bytes, newest chunk
/// timestamp) oldest first, the last one active.
pub(crate) fn segments_to_delete(
    segments: &[(u64, Option<i64>)],
    config: &StreamConfig,
    now_ms: i64,
) -> usize {
    let mut gone = 0;
    if let Some(max) = config.max_length_bytes {
        let mut total: u64 = segments.iter().map(|(size, _)| size).sum();
        while segments.len() - gone > 1 && total > max {
            total -= segments[gone].0;
            gone += 1;
        }
    }
    if let Some(age) = config.max_age {
        let age_ms = i64::try_from(age.as_millis()).unwrap_or(i64::MAX);
        let cutoff = now_ms.saturating_sub(age_ms);
        while segments.len() - gone > 1 && segments[gone].1.is_none_or(|ts| ts < cutoff) {
            gone += 1;
        }
    }
    gone
}
