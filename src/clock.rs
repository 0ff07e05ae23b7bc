//! The broker's one clock: everything time-based (message TTL and expiry, x-expires,
//! delayed messages, heartbeats, the handshake timeout, statistics sampling) reads it,
//! never the system clock directly, so that tests and `--clock manual` can move time.
//!
//! Two kinds, behind one cheap handle (cloning shares the same time):
//! - real: the system's monotonic clock for intervals and its wall clock for dates;
//! - manual: stands still until told to move (`advance`, `set`). Moving it walks through
//!   every deadline that falls inside the step, in due order: the clock stops at each one
//!   and whatever registered for it (`Timed`) fires before the clock moves on, so a
//!   message that expires into a queue with its own TTL expires again within the same
//!   step, as it would have in real time.
//!
//! Who reads it: the broker (queues, delayed messages, dead letters, statistics, events,
//! traces, streams) and the connection tasks; the broker registers its timed work with a
//! manual clock (`broker::timed`), the connections and the statistics collector watch
//! its moves (`moves`). Moved by tests, `warren ctl clock` and `/api/warren/clock`, which
//! read durations and dates with `text`. It never blocks and takes no lock on the real
//! path: a real clock is one branch in front of the system's clock.

pub mod calendar;
pub mod text;

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::sync::watch;

/// The time a broker reads; `Clock::real()` unless a test or `--clock manual` says.
#[derive(Clone, Debug, Default)]
pub struct Clock {
    manual: Option<Arc<Manual>>,
}

/// Work that falls due at a time on a manual clock: the clock asks for the next due time
/// before it moves, stops there and fires it.
pub(crate) trait Timed: Send + Sync {
    /// The earliest monotonic millisecond (`Clock::now_ms`) at which something is due.
    fn next_due_ms(&self) -> Option<u64>;
    /// Does everything due at or before `now_ms` (monotonic).
    fn fire(&self, now_ms: u64);
    /// Whether work `fire` started is still finishing on another task (dead letters on
    /// their way): the clock waits for it before it looks for the next due time.
    fn busy(&self) -> bool {
        false
    }
}

/// How many times in a row the clock fires at one millisecond before it decides the
/// work there never ends (a dead-letter loop with TTL 0, say) and moves on.
const MAX_FIRES_AT_ONCE: u32 = 10_000;
/// How many times the clock lets other tasks run while fired work finishes before it
/// gives up waiting (a dead-letter task that is not running).
const MAX_BUSY_YIELDS: u32 = 100_000;

/// Why a manual clock refused to move.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClockError {
    /// The clock is the real one: only a manual clock is moved by hand.
    NotManual,
    /// `set` to a time before the clock's current time: it only moves forward.
    Backwards {
        /// Where the clock is, in Unix milliseconds.
        now_unix_ms: i64,
        /// Where it was asked to go.
        to_unix_ms: i64,
    },
}

impl std::fmt::Display for ClockError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClockError::NotManual => write!(
                f,
                "the broker runs on the real clock; only a manual clock (--clock manual) can be moved"
            ),
            ClockError::Backwards {
                now_unix_ms,
                to_unix_ms,
            } => write!(
                f,
                "the clock only moves forward: it is at {} and {} is before that",
                crate::clock::rfc3339(*now_unix_ms),
                crate::clock::rfc3339(*to_unix_ms)
            ),
        }
    }
}

impl std::error::Error for ClockError {}

#[derive(Debug)]
struct Manual {
    /// Unix milliseconds when the clock was made: monotonic time counts from here.
    start_unix_ms: i64,
    /// Where the clock is now, Unix milliseconds; only grows.
    now_unix_ms: AtomicI64,
    /// Moves completed so far (`advance`, `set`), for tasks that act once per move.
    moves: watch::Sender<u64>,
    /// What fires at deadlines; dead entries are dropped as they are found.
    timed: Mutex<Vec<Weak<dyn Timed>>>,
    /// One move at a time: two concurrent `advance` calls must not interleave steps.
    moving: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for dyn Timed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Timed")
    }
}

/// The process's monotonic origin for the real clock (so `now_ms` starts near 1).
fn real_origin() -> Instant {
    static START: OnceLock<Instant> = OnceLock::new();
    *START.get_or_init(Instant::now)
}

/// The system's wall clock in Unix milliseconds (0 if before 1970).
fn system_unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

fn to_unix_ms(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_millis()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_millis()).unwrap_or(i64::MAX),
    }
}

fn from_unix_ms(ms: i64) -> SystemTime {
    if ms >= 0 {
        UNIX_EPOCH + Duration::from_millis(ms as u64)
    } else {
        UNIX_EPOCH - Duration::from_millis(ms.unsigned_abs())
    }
}

/// `ms` Unix milliseconds as an RFC 3339 UTC date, e.g. `2026-12-05T11:08:03.000Z`.
pub fn rfc3339(ms: i64) -> String {
    let d = calendar::civil(ms.div_euclid(1000));
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        d.year,
        d.month,
        d.day,
        d.hour,
        d.minute,
        d.second,
        ms.rem_euclid(1000)
    )
}

impl Clock {
    /// The system's clocks.
    pub fn real() -> Clock {
        Clock { manual: None }
    }

    /// A clock that stands at the current wall-clock time until moved.
    pub fn manual() -> Clock {
        Clock::manual_at(SystemTime::now())
    }

    /// A clock that stands at `at` until moved.
    pub fn manual_at(at: SystemTime) -> Clock {
        let start = to_unix_ms(at);
        let (moves, _) = watch::channel(0);
        Clock {
            manual: Some(Arc::new(Manual {
                start_unix_ms: start,
                now_unix_ms: AtomicI64::new(start),
                moves,
                timed: Mutex::new(Vec::new()),
                moving: tokio::sync::Mutex::new(()),
            })),
        }
    }

    /// Whether this is a manual clock.
    pub fn is_manual(&self) -> bool {
        self.manual.is_some()
    }

    /// Milliseconds on a monotonic clock, starting at 1 (0 can then mean "never").
    pub fn now_ms(&self) -> u64 {
        match &self.manual {
            None => real_origin().elapsed().as_millis() as u64 + 1,
            Some(m) => m.mono_ms(m.now_unix_ms.load(Ordering::Acquire)),
        }
    }

    /// Wall-clock Unix milliseconds (what dates on the wire and on disk use).
    pub fn unix_ms(&self) -> i64 {
        match &self.manual {
            None => system_unix_ms(),
            Some(m) => m.now_unix_ms.load(Ordering::Acquire),
        }
    }

    /// Wall-clock time.
    pub fn now(&self) -> SystemTime {
        from_unix_ms(self.unix_ms())
    }

    /// Wall-clock Unix milliseconds as a `u64` (0 before 1970), as statistics keep them.
    pub fn unix_ms_u64(&self) -> u64 {
        u64::try_from(self.unix_ms()).unwrap_or(0)
    }

    /// The wall-clock Unix millisecond at monotonic millisecond `mono` (`now_ms` time),
    /// for showing a monotonic time as a date.
    pub(crate) fn unix_at(&self, mono: u64) -> i64 {
        let ago = i64::try_from(self.now_ms().saturating_sub(mono)).unwrap_or(i64::MAX);
        self.unix_ms().saturating_sub(ago)
    }

    /// The monotonic millisecond (`now_ms` time) at wall-clock Unix millisecond `unix`:
    /// when a date stored as Unix ms falls due on this clock.
    pub(crate) fn mono_at(&self, unix: i64) -> u64 {
        let ahead = unix.saturating_sub(self.unix_ms());
        let now = self.now_ms();
        if ahead >= 0 {
            now.saturating_add(ahead as u64)
        } else {
            now.saturating_sub(ahead.unsigned_abs())
        }
    }

    /// Registers work that falls due on this clock (a no-op on the real clock, where
    /// the work's own timers fire it). Held weakly: dropping it unregisters it.
    pub(crate) fn register(&self, timed: Weak<dyn Timed>) {
        if let Some(m) = &self.manual {
            lock(&m.timed).push(timed);
        }
    }

    /// On a manual clock, a receiver that sees each completed move (`advance`, `set`);
    /// None on the real clock. For work that must look once a move is over: the
    /// connections' heartbeat monitor, statistics sampling.
    pub(crate) fn moves(&self) -> Option<watch::Receiver<u64>> {
        self.manual.as_ref().map(|m| m.moves.subscribe())
    }

    /// Moves a manual clock forward by `by`, firing everything that falls due on the
    /// way, in due order; returns the new time.
    pub async fn advance(&self, by: Duration) -> Result<SystemTime, ClockError> {
        let m = self.manual.as_ref().ok_or(ClockError::NotManual)?;
        let _one = m.moving.lock().await;
        let by = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        let to = m.now_unix_ms.load(Ordering::Acquire).saturating_add(by);
        m.walk_to(to).await;
        Ok(from_unix_ms(to))
    }

    /// Moves a manual clock forward to `to`, as `advance` does; refused if `to` is
    /// before the clock's time.
    pub async fn set(&self, to: SystemTime) -> Result<SystemTime, ClockError> {
        let m = self.manual.as_ref().ok_or(ClockError::NotManual)?;
        let _one = m.moving.lock().await;
        let (now, to) = (m.now_unix_ms.load(Ordering::Acquire), to_unix_ms(to));
        if to < now {
            return Err(ClockError::Backwards {
                now_unix_ms: now,
                to_unix_ms: to,
            });
        }
        m.walk_to(to).await;
        Ok(from_unix_ms(to))
    }
}

impl Manual {
    fn mono_ms(&self, unix_ms: i64) -> u64 {
        (unix_ms.saturating_sub(self.start_unix_ms)).max(0) as u64 + 1
    }

    /// Steps to each deadline up to `to` (Unix ms) in turn, firing what is due there.
    async fn walk_to(&self, to: i64) {
        let target = self.mono_ms(to);
        let (mut last_step, mut repeats) = (0, 0u32);
        loop {
            let timed: Vec<Arc<dyn Timed>> = {
                let mut list = lock(&self.timed);
                list.retain(|t| t.strong_count() > 0);
                list.iter().filter_map(Weak::upgrade).collect()
            };
            let next = timed.iter().filter_map(|t| t.next_due_ms()).min();
            let now = self.mono_ms(self.now_unix_ms.load(Ordering::Acquire));
            let mut step = match next {
                Some(due) if due <= target => due.max(now),
                _ => target,
            };
            repeats = if step == last_step { repeats + 1 } else { 0 };
            if repeats > MAX_FIRES_AT_ONCE {
                tracing::warn!(
                    "work due on the manual clock keeps falling due at the same time; \
                     moving on to the end of the step"
                );
                step = target;
            }
            last_step = step;
            let step_unix = self.start_unix_ms.saturating_add((step - 1) as i64);
            self.now_unix_ms.store(
                step_unix.max(self.now_unix_ms.load(Ordering::Acquire)),
                Ordering::Release,
            );
            for t in &timed {
                t.fire(step);
            }
            // What fired finishes before the next step (dead letters routed at this time).
            tokio::task::yield_now().await;
            let mut yields = 0;
            while timed.iter().any(|t| t.busy()) && yields < MAX_BUSY_YIELDS {
                tokio::task::yield_now().await;
                yields += 1;
            }
            if step >= target {
                break;
            }
        }
        // Exactly `to`, even where a millisecond rounding left it short.
        self.now_unix_ms.fetch_max(to, Ordering::AcqRel);
        self.moves.send_modify(|n| *n += 1);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_are_rfc3339() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc3339(1_796_468_883_001), "2026-12-05T11:08:03.001Z");
        assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
    }

    struct Due(Mutex<Vec<u64>>, Mutex<Vec<u64>>);
    impl Timed for Due {
        fn next_due_ms(&self) -> Option<u64> {
            lock(&self.0).iter().copied().min()
        }
        fn fire(&self, now: u64) {
            let mut due = lock(&self.0);
            let (fired, left): (Vec<u64>, Vec<u64>) = due.iter().partition(|d| **d <= now);
            *due = left;
            lock(&self.1).extend(fired.iter().map(|_| now));
        }
    }

    #[tokio::test]
    async fn manual_clock_stops_at_each_deadline_in_order() {
        let clock = Clock::manual_at(UNIX_EPOCH + Duration::from_secs(1000));
        assert_eq!(clock.now_ms(), 1);
        let due: Arc<Due> = Arc::new(Due(Mutex::new(vec![5001, 2001]), Mutex::default()));
        clock.register(Arc::downgrade(&(due.clone() as Arc<dyn Timed>)));
        clock
            .advance(Duration::from_secs(10))
            .await
            .expect("manual");
        assert_eq!(*lock(&due.1), [2001, 5001]);
        assert_eq!(clock.now_ms(), 10_001);
        assert_eq!(clock.unix_ms(), 1_010_000);
        let back = clock.set(UNIX_EPOCH).await;
        assert!(matches!(back, Err(ClockError::Backwards { .. })));
        assert_eq!(
            Clock::real().advance(Duration::ZERO).await,
            Err(ClockError::NotManual)
        );
    }
}
