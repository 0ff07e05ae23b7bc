//! Memory accounting, the paging budget and the memory alarm (RabbitMQ's
//! `vm_memory_high_watermark`).
//!
//! Queues add the cost of every message they hold in memory and subtract it when the
//! message is settled for good (acked, dropped, purged, deleted) or paged out to disk.
//! Above the paging budget, queues keep new messages on disk behind a short head (see
//! `queue::paging`), so a backlog of any length stays near the budget. Above the limit
//! the alarm goes off: connections that publish stop being read (and are told with
//! connection.blocked if they asked for it) until consumers bring usage back under 90%
//! of the limit. Called from queue code under queue locks: everything here is atomic or
//! non-blocking.
//!
//! Records clients create (queues, exchanges, bindings, consumers; see `records`) are
//! counted here too, like messages. They cannot be paged, and RabbitMQ bounds them only
//! with per-vhost limits, so warren goes one step further than RabbitMQ: past 80% of the
//! limit memory is *crowded*, and a connection that creates a record then is held back
//! like a blocked publisher until usage falls under 70%. Held that early, records alone
//! never raise the alarm, nor keep it on: they stay clear of the 90% under which it
//! clears (messages in flight to page files or read back can take the rest for a while,
//! and give it back), so one client declaring in a loop does not block everyone's
//! publishing.
//!
//! What clients hold outside the queues (each connection's read and write buffers and
//! its channels and their unacked tables) is counted too, through one `ClientMemory` per
//! connection: against the paging budget, so a crowd of connections makes queues page
//! sooner instead of the process growing past it. It is not counted towards the alarm,
//! which blocks publishers and would not help against a consumer that stops reading.

pub mod pagedir;
mod process;
mod trim;

use pagedir::PageDir;
pub use process::{default_limit, process_cpu_micros, resident_bytes};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::watch;

/// At most this much of the paging budget is left as headroom (see `Memory::paging`).
const MAX_HEADROOM: u64 = 16 << 20;
/// Past this share of the limit, connections that create records are held back ...
const CROWDED_PERCENT: u64 = 80;
/// ... until usage falls under this share.
const UNCROWDED_PERCENT: u64 = 70;
/// The alarm clears under this share of the limit.
const ALARM_CLEAR_PERCENT: u64 = 90;
// Records held back at `CROWDED_PERCENT` must leave room under the alarm's clearing point,
// or records alone would keep the alarm on (and everyone's publishers blocked) for good.
const _: () = assert!(CROWDED_PERCENT + 10 <= ALARM_CLEAR_PERCENT);
/// Default paging budget: what queued messages may take in memory before queues page.
pub const DEFAULT_QUEUE_MEMORY: u64 = 128 * 1024 * 1024;

pub struct Memory {
    used: AtomicU64,
    limit: u64,
    alarmed: AtomicBool,
    /// Usage went past `CROWDED_PERCENT` of the limit and has not yet fallen under
    /// `UNCROWDED_PERCENT`: connections that create records are held back.
    crowded: AtomicBool,
    alarm: watch::Sender<bool>,
    /// Free disk space is below the limit (see `Broker::check_disk`), or a write to the
    /// disk failed: a second alarm with the same effect on publishers.
    disk_low: AtomicBool,
    /// Writes that failed (message store, page files), counted; the disk alarm stays on
    /// until a probe write started after the last of them succeeds (`disk::DiskMonitor`).
    write_failures: AtomicU64,
    /// The count of `write_failures` that the last successful probe covered.
    write_failures_probed: AtomicU64,
    /// Above this, queues page; with no page directory they never do.
    budget: u64,
    pages: Option<PageDir>,
    /// Other memory that grows with the backlog (the message store's index), counted
    /// against the paging budget too; set once the store is open.
    also_counted: std::sync::OnceLock<Box<dyn Fn() -> u64 + Send + Sync>>,
    /// Bytes held by connections (`ClientMemory`), counted against the paging budget.
    clients: AtomicU64,
    /// The highest `used` plus `clients` since freed memory was last given back.
    peak_since_trim: AtomicU64,
    /// Resident memory right after freed memory was last given back: what is left then
    /// (connection buffers, fragmentation) is not retried until it grows.
    resident_after_trim: AtomicU64,
    /// The process's CPU time (microseconds) at the last resident check and at the
    /// last trim: a process that was busy since its last trim and is quiet now trims
    /// once (see `give_back_freed`).
    cpu_at_check: AtomicU64,
    cpu_at_trim: AtomicU64,
    /// A trim is running on its thread: the next one waits for a later call.
    trimming: AtomicBool,
    /// The last trim thread started (tests join it).
    trim_thread: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// Test builds only (feature `test-hooks`): store answers (`Outgoing::Stored`)
    /// connections took from their outboxes, so a test can prove that a publish whose
    /// confirm waits for no store sends none (issue 16: one per transient confirm piled
    /// up in the outbox, hundreds of MB after a burst, kept by the allocator).
    #[cfg(feature = "test-hooks")]
    store_answers: AtomicU64,
}

impl std::fmt::Debug for Memory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Memory")
            .field("used", &self.used())
            .field("limit", &self.limit)
            .field("budget", &self.budget)
            .field("pages", &self.pages)
            .finish()
    }
}

impl Memory {
    /// Accounting with an alarm at `limit` and no paging (everything stays in memory).
    pub fn new(limit: u64) -> Arc<Memory> {
        Self::with_paging(limit, u64::MAX, None)
    }

    /// Accounting with an alarm at `limit`; above `budget`, queues page to `pages`.
    pub fn with_paging(limit: u64, budget: u64, pages: Option<PageDir>) -> Arc<Memory> {
        let (alarm, _) = watch::channel(false);
        Arc::new(Memory {
            used: AtomicU64::new(0),
            limit,
            alarmed: AtomicBool::new(false),
            crowded: AtomicBool::new(false),
            alarm,
            disk_low: AtomicBool::new(false),
            write_failures: AtomicU64::new(0),
            write_failures_probed: AtomicU64::new(0),
            budget,
            pages,
            also_counted: std::sync::OnceLock::new(),
            clients: AtomicU64::new(0),
            peak_since_trim: AtomicU64::new(0),
            resident_after_trim: AtomicU64::new(0),
            cpu_at_check: AtomicU64::new(0),
            cpu_at_trim: AtomicU64::new(0),
            trimming: AtomicBool::new(false),
            trim_thread: Mutex::new(None),
            #[cfg(feature = "test-hooks")]
            store_answers: AtomicU64::new(0),
        })
    }

    /// Counts `bytes()` against the paging budget as well (once; later calls are
    /// ignored): memory outside the queues that grows with the backlog.
    pub fn count_also(&self, bytes: impl Fn() -> u64 + Send + Sync + 'static) {
        let _ = self.also_counted.set(Box::new(bytes));
    }

    fn also_counted_now(&self) -> u64 {
        self.also_counted.get().map_or(0, |f| f())
    }

    /// Where queues page to, when memory is over the paging budget now. Paging starts
    /// a little below the budget: I/O buffers and the allocator's slack come on top.
    pub fn paging(&self) -> Option<&PageDir> {
        let dir = self.pages.as_ref()?;
        let other = self.also_counted_now() + self.clients();
        let threshold = self.budget - (self.budget / 8).min(MAX_HEADROOM);
        (self.used() + other > threshold).then_some(dir)
    }

    /// The page directory, for a queue that already pages (it keeps paging, to stay in
    /// order, until its tail is read back).
    pub fn page_dir(&self) -> Option<&PageDir> {
        self.pages.as_ref()
    }

    pub fn add(&self, bytes: usize) {
        let used = self.used.fetch_add(bytes as u64, Ordering::Relaxed) + bytes as u64;
        if used > self.limit && !self.alarmed.swap(true, Ordering::AcqRel) {
            tracing::warn!(
                used,
                limit = self.limit,
                "memory alarm set: publishers are blocked"
            );
            self.announce();
        }
        if used > self.limit / 100 * CROWDED_PERCENT && !self.crowded.swap(true, Ordering::AcqRel) {
            tracing::warn!(
                used,
                limit = self.limit,
                "memory crowded: connections that create queues, exchanges or bindings are blocked"
            );
            self.announce();
        }
    }

    pub fn sub(&self, bytes: usize) {
        let before = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
                Some(u.saturating_sub(bytes as u64))
            })
            .unwrap_or(0);
        let used = before.saturating_sub(bytes as u64);
        if used < self.limit / 100 * ALARM_CLEAR_PERCENT
            && self.alarmed.load(Ordering::Acquire)
            && self.alarmed.swap(false, Ordering::AcqRel)
        {
            tracing::warn!(used, limit = self.limit, "memory alarm cleared");
            self.announce();
        }
        if used < self.limit / 100 * UNCROWDED_PERCENT
            && self.crowded.load(Ordering::Acquire)
            && self.crowded.swap(false, Ordering::AcqRel)
        {
            tracing::warn!(used, limit = self.limit, "memory no longer crowded");
            self.announce();
        }
    }

    /// Whether a connection that creates records now is held back (see the module
    /// paragraph); connections watch changes through `subscribe`.
    pub fn crowded(&self) -> bool {
        self.crowded.load(Ordering::Acquire)
    }

    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// What connections hold in buffers and unacked tables now (see `ClientMemory`).
    pub fn clients(&self) -> u64 {
        self.clients.load(Ordering::Relaxed)
    }

    /// Test builds only: store answers connections took from their outboxes so far.
    #[cfg(feature = "test-hooks")]
    pub fn store_answers(&self) -> u64 {
        self.store_answers.load(Ordering::Relaxed)
    }

    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Whether an alarm (memory or disk) is on now; connections watch changes through
    /// `subscribe`.
    pub fn alarmed(&self) -> bool {
        self.alarmed.load(Ordering::Acquire) || self.disk_low.load(Ordering::Acquire)
    }

    /// The memory alarm alone (RabbitMQ's `mem_alarm`).
    pub fn memory_alarm(&self) -> bool {
        self.alarmed.load(Ordering::Acquire)
    }

    /// The disk alarm alone (RabbitMQ's `disk_free_alarm`): free space under the limit,
    /// or a failed write not yet probed.
    pub fn disk_alarm(&self) -> bool {
        self.disk_low.load(Ordering::Acquire)
    }

    /// What connection.blocked says, as RabbitMQ 3.10 words it (with both alarms on, disk
    /// is named first whichever went off first).
    pub fn alarm_reason(&self) -> &'static str {
        match (
            self.alarmed.load(Ordering::Acquire),
            self.disk_low.load(Ordering::Acquire),
        ) {
            (true, true) => "low on disk & memory",
            (false, true) => "low on disk",
            _ => "low on memory",
        }
    }

    /// Sets or clears the disk alarm (free space below the limit).
    pub fn set_disk_low(&self, low: bool, free: u64, limit: u64) {
        if self.disk_low.swap(low, Ordering::AcqRel) != low {
            if low {
                tracing::warn!(free, limit, "disk alarm set: publishers are blocked");
            } else {
                tracing::warn!(free, limit, "disk alarm cleared");
            }
            self.announce();
        }
    }

    /// A write to the data directory failed (a full disk): the disk alarm goes on at once,
    /// whatever the free space says, so publishers stop instead of filling memory with
    /// messages the disk refuses. Non-blocking: called from the store's threads.
    pub fn disk_write_failed(&self) {
        self.write_failures.fetch_add(1, Ordering::AcqRel);
        if !self.disk_low.swap(true, Ordering::AcqRel) {
            tracing::warn!(
                "disk alarm set: a write to the data directory failed; publishers are blocked"
            );
            self.announce();
        }
    }

    /// Write failures not yet covered by a successful probe write: `Some(count)` to hand
    /// to `write_probe_succeeded` (the probe must start after this call).
    pub fn unprobed_write_failures(&self) -> Option<u64> {
        let failures = self.write_failures.load(Ordering::Acquire);
        (failures != self.write_failures_probed.load(Ordering::Acquire)).then_some(failures)
    }

    /// A probe write started after `failures` write failures succeeded. The disk alarm
    /// clears if free space is above the limit (`free_ok`) and no write failed since.
    pub fn write_probe_succeeded(&self, failures: u64, free_ok: bool, free: u64, limit: u64) {
        self.write_failures_probed
            .fetch_max(failures, Ordering::AcqRel);
        if free_ok && self.unprobed_write_failures().is_none() {
            self.set_disk_low(false, free, limit);
        }
    }

    fn announce(&self) {
        self.alarm.send_replace(self.alarmed());
    }

    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.alarm.subscribe()
    }
}

/// One connection's share of `Memory::clients`: set to what it holds whenever that may
/// have changed (one atomic add when it did), taken back when dropped, whichever way the
/// connection ends.
#[derive(Debug)]
pub struct ClientMemory {
    memory: Arc<Memory>,
    bytes: u64,
}

impl ClientMemory {
    pub fn new(memory: Arc<Memory>) -> Self {
        ClientMemory { memory, bytes: 0 }
    }

    pub fn set(&mut self, bytes: u64) {
        if bytes > self.bytes {
            self.memory
                .clients
                .fetch_add(bytes - self.bytes, Ordering::Relaxed);
        } else if bytes < self.bytes {
            self.memory
                .clients
                .fetch_sub(self.bytes - bytes, Ordering::Relaxed);
        }
        self.bytes = bytes;
    }
}

#[cfg(feature = "test-hooks")]
impl ClientMemory {
    /// Test builds only: the connection took a store answer from its outbox.
    pub fn store_answer(&self) {
        self.memory.store_answers.fetch_add(1, Ordering::Relaxed);
    }
}

impl Drop for ClientMemory {
    fn drop(&mut self) {
        self.set(0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alarm_sets_above_the_limit_and_clears_below_ninety_percent() {
        let m = Memory::new(1000);
        let rx = m.subscribe();
        m.add(900);
        assert!(!m.alarmed());
        m.add(200);
        assert!(m.alarmed() && *rx.borrow());
        m.sub(150);
        assert!(m.alarmed(), "950 is above 90%");
        m.sub(100);
        assert!(!m.alarmed() && !*rx.borrow());
        m.sub(10_000);
        assert_eq!(m.used(), 0);
    }

    #[test]
    fn crowded_from_eighty_percent_until_under_seventy() {
        let m = Memory::new(1000);
        let mut rx = m.subscribe();
        m.add(800);
        assert!(!m.crowded());
        m.add(10);
        assert!(m.crowded() && !m.alarmed());
        assert!(rx.has_changed().unwrap(), "connections are woken");
        rx.borrow_and_update();
        m.sub(100);
        assert!(m.crowded(), "710 is above 70%");
        m.sub(20);
        assert!(!m.crowded() && rx.has_changed().unwrap());
    }

    #[test]
    fn client_memory_counts_until_dropped() {
        let m = Memory::new(1000);
        let mut a = ClientMemory::new(m.clone());
        let mut b = ClientMemory::new(m.clone());
        a.set(300);
        b.set(200);
        a.set(100);
        assert_eq!(m.clients(), 300);
        assert_eq!(m.used(), 0, "messages are counted apart");
        drop(a);
        assert_eq!(m.clients(), 200);
        drop(b);
        assert_eq!(m.clients(), 0);
    }

    #[test]
    fn blocked_reasons_are_rabbitmqs() {
        let m = Memory::new(100);
        m.add(200);
        assert_eq!(m.alarm_reason(), "low on memory");
        m.set_disk_low(true, 1, 2);
        assert_eq!(m.alarm_reason(), "low on disk & memory");
        m.sub(200);
        assert_eq!(m.alarm_reason(), "low on disk");
        m.set_disk_low(false, 3, 2);
        assert!(!m.alarmed());
    }
}
