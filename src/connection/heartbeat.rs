//! The heartbeat monitor, on the broker's clock: whether a client went silent for too
//! long, judged as RabbitMQ's monitor does, every interval, giving up after two silent
//! looks in a row (so a client that goes quiet right after connection.open is dropped
//! 3 intervals after tune-ok, not 2).
//!
//! Owned by the connection task, which marks every read (`heard`) and asks on each
//! tick (`missed`). Looks are due at fixed clock times, not counted in ticks: with a
//! manual clock a connection wakes once per move, and a move of three intervals runs
//! the three looks that fell inside it. Never reads the clock itself.

/// The monitor's state; inert until `start`.
#[derive(Debug, Default)]
pub(super) struct Monitor {
    /// When the next look is due (the clock's `now_ms`); 0 until heartbeats are on.
    next_look: u64,
    /// The interval, ms.
    interval: u64,
    /// Something was read since the last look.
    heard: bool,
    /// Looks in a row that found nothing.
    silent: u8,
}

impl Monitor {
    /// Heartbeats of `interval_ms` were negotiated at `now`: the first look is one
    /// interval away (what was read before it, tune-ok and open, counts).
    pub(super) fn start(&mut self, now: u64, interval_ms: u64) {
        self.interval = interval_ms.max(1);
        self.next_look = now.saturating_add(self.interval);
    }

    /// Whether `start` was called.
    pub(super) fn is_on(&self) -> bool {
        self.next_look != 0
    }

    /// Something arrived from the client (or the connection is not being read, so
    /// nothing could).
    #[inline]
    pub(super) fn heard(&mut self) {
        self.heard = true;
    }

    /// Runs the looks due by `now`; true once two in a row found nothing. At most three
    /// looks run (the first may find something, then two silent ones end it).
    pub(super) fn missed(&mut self, now: u64) -> bool {
        while self.next_look != 0 && now >= self.next_look {
            self.silent = if self.heard { 0 } else { self.silent + 1 };
            self.heard = false;
            if self.silent >= 2 {
                return true;
            }
            self.next_look = self.next_look.saturating_add(self.interval);
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::Monitor;

    #[test]
    fn two_silent_looks_in_a_row_end_it_three_intervals_after_start() {
        let mut m = Monitor::default();
        assert!(!m.missed(1_000_000), "inert before start");
        m.heard(); // tune-ok, connection.open
        m.start(1_000, 10_000);
        assert!(!m.missed(20_999), "one look, which heard the handshake");
        assert!(!m.missed(21_000), "first silent look");
        m.heard();
        assert!(!m.missed(31_000), "heard again: the count starts over");
        assert!(!m.missed(41_000));
        assert!(m.missed(51_000), "second silent look in a row");
    }

    #[test]
    fn one_long_step_runs_every_look_inside_it() {
        let mut m = Monitor::default();
        m.heard();
        m.start(1, 60_000);
        assert!(!m.missed(1 + 2 * 60_000), "two intervals: one silent look");
        let mut m = Monitor::default();
        m.heard();
        m.start(1, 60_000);
        assert!(m.missed(1 + 3 * 60_000), "three intervals at once");
    }
}
