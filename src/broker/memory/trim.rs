//! Giving freed memory back to the system (`malloc_trim`): when queued messages and
//! connection buffers fell well below their last peak, when the process holds much more
//! than it accounts for, and once when it goes quiet after work (issue 16: resident
//! memory back near its idle figure after a burst).
//!
//! Called by the broker's housekeeping task (`give_back_freed`, a few times a second)
//! and after recovery (`give_back_now`). Never on the publish path, and the trim itself
//! never on a runtime worker: it runs on a thread of its own.

use super::{process_cpu_micros, resident_bytes, Memory};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// Freed memory is given back to the system after usage fell this much.
const TRIM_AFTER_DROP: u64 = 16 << 20;

/// The process counts as busy since its last trim once it spent this much CPU time ...
const BUSY_CPU_MICROS: u64 = 200_000;
/// ... and as quiet again when a resident check (about once a second) finds it spent
/// less than this since the previous one: then it trims once (see `give_back_freed`).
const QUIET_CPU_MICROS: u64 = 20_000;

impl Memory {
    /// Gives freed memory back to the system once usage fell well below its last peak,
    /// or (with `check_resident`) once the process holds much more than it accounts for,
    /// or (with `check_resident` too) once the process goes quiet after work: glibc keeps
    /// freed memory otherwise, and a drained backlog would stay resident. The last rule
    /// is the one that brings an idle broker back near its idle figure (issue 16): what
    /// a burst leaves behind (allocator free lists, buffers of closed connections,
    /// memory nobody accounts) is often below the other two thresholds, and a baseline
    /// taken while memory was still live hides it from the second. Busy and quiet are
    /// read from the process's CPU time (`getrusage`), never from the publish path.
    /// Called by the broker's housekeeping task, a few times a second. The trim itself
    /// runs on a thread of its own, one at a time: `malloc_trim` walks the whole heap
    /// under the allocator's locks (tens of milliseconds for a large heap), which a
    /// runtime worker must not spend.
    pub fn give_back_freed(self: &Arc<Self>, check_resident: bool) {
        if self.trimming.load(Ordering::Acquire) {
            return;
        }
        // Connections' buffers count too: a thousand connections closing free tens of
        // MB, with too little work for the quiet rule to call the process busy.
        let used = self.used() + self.clients();
        let peak = self
            .peak_since_trim
            .fetch_max(used, Ordering::Relaxed)
            .max(used);
        let dropped = peak.saturating_sub(used) >= TRIM_AFTER_DROP;
        let bloated = check_resident
            && resident_bytes().is_some_and(|rss| {
                let accounted = used + self.also_counted_now();
                rss > accounted + 2 * TRIM_AFTER_DROP
                    && rss > self.resident_after_trim.load(Ordering::Relaxed) + TRIM_AFTER_DROP
            });
        let settled = check_resident && self.quiet_after_work(process_cpu_micros());
        if (dropped || bloated || settled) && !self.trimming.swap(true, Ordering::AcqRel) {
            let me = self.clone();
            let spawned = std::thread::Builder::new()
                .name("warren-trim".into())
                .spawn(move || {
                    me.give_back_now();
                    me.trimming.store(false, Ordering::Release);
                });
            match spawned {
                Ok(t) => *self.trim_thread.lock().unwrap_or_else(|e| e.into_inner()) = Some(t),
                Err(e) => {
                    tracing::debug!(error = %e, "cannot start a thread to give memory back");
                    self.trimming.store(false, Ordering::Release);
                }
            }
        }
    }

    /// Whether the process, at CPU time `cpu` (microseconds), is quiet since the previous
    /// resident check and was busy since its last trim. Records `cpu` as this check's.
    fn quiet_after_work(&self, cpu: Option<u64>) -> bool {
        let Some(cpu) = cpu else { return false };
        let last = self.cpu_at_check.swap(cpu, Ordering::Relaxed);
        let quiet = cpu.saturating_sub(last) < QUIET_CPU_MICROS;
        let worked =
            cpu.saturating_sub(self.cpu_at_trim.load(Ordering::Relaxed)) >= BUSY_CPU_MICROS;
        quiet && worked
    }

    /// Gives freed memory back to the system now, on the calling thread (after recovery,
    /// before clients come, and on `give_back_freed`'s thread).
    pub fn give_back_now(&self) {
        let used = self.used() + self.clients();
        self.peak_since_trim.store(used, Ordering::Relaxed);
        if let Some(cpu) = process_cpu_micros() {
            self.cpu_at_trim.store(cpu, Ordering::Relaxed);
        }
        // Brokers in one process share one allocator: one trim walks the heap for all,
        // and a second at the same time would only wait for the allocator's locks.
        static TRIMMING_PROCESS: AtomicBool = AtomicBool::new(false);
        if !TRIMMING_PROCESS.swap(true, Ordering::AcqRel) {
            #[cfg(all(target_os = "linux", target_env = "gnu"))]
            // SAFETY: malloc_trim only walks the allocator's own free lists.
            unsafe {
                libc::malloc_trim(0);
            }
            TRIMMING_PROCESS.store(false, Ordering::Release);
        }
        let resident = resident_bytes().unwrap_or(0);
        self.resident_after_trim.store(resident, Ordering::Relaxed);
        tracing::debug!(used, resident, "gave freed memory back");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::memory::ClientMemory;

    #[test]
    fn a_process_that_goes_quiet_after_work_trims_once() {
        let m = Memory::new(u64::MAX);
        assert!(!m.quiet_after_work(None), "no CPU time, no rule");
        assert!(!m.quiet_after_work(Some(0)), "no work since the last trim");
        assert!(!m.quiet_after_work(Some(900_000)), "busy now");
        assert!(!m.quiet_after_work(Some(1_800_000)), "still busy");
        assert!(m.quiet_after_work(Some(1_805_000)), "quiet after work");
        m.cpu_at_trim.store(1_805_000, Ordering::Relaxed); // what the trim records
        assert!(
            !m.quiet_after_work(Some(1_810_000)),
            "quiet, but trimmed since"
        );
        assert!(
            !m.quiet_after_work(Some(1_900_000)),
            "a little work, not busy"
        );
        assert!(!m.quiet_after_work(Some(2_100_000)), "busy again");
        assert!(
            m.quiet_after_work(Some(2_101_000)),
            "and quiet again: one more trim"
        );
        let cpu = process_cpu_micros().expect("getrusage works here");
        assert!(process_cpu_micros().unwrap() >= cpu);
    }

    fn take_trim_thread(m: &Memory) -> Option<std::thread::JoinHandle<()>> {
        m.trim_thread.lock().unwrap().take()
    }

    #[test]
    fn freed_memory_is_given_back_on_a_thread_of_its_own_one_trim_at_a_time() {
        let m = Memory::new(u64::MAX);
        m.add(64 << 20);
        m.give_back_freed(false);
        assert!(take_trim_thread(&m).is_none(), "nothing was freed yet");
        m.sub(64 << 20);
        // A trim is already running: this call leaves it alone and starts none.
        m.trimming.store(true, Ordering::Release);
        m.give_back_freed(false);
        assert!(take_trim_thread(&m).is_none());
        m.trimming.store(false, Ordering::Release);
        m.give_back_freed(false);
        let trim = take_trim_thread(&m).expect("a trim thread started");
        assert_eq!(trim.thread().name(), Some("warren-trim"));
        assert_ne!(trim.thread().id(), std::thread::current().id());
        trim.join().unwrap();
        assert!(
            !m.trimming.load(Ordering::Acquire),
            "done: the next may start"
        );
        assert_eq!(
            m.peak_since_trim.load(Ordering::Relaxed),
            0,
            "the peak restarts from usage at the trim"
        );
        m.give_back_freed(false);
        assert!(take_trim_thread(&m).is_none(), "no new drop, no new trim");
    }

    #[test]
    fn connections_that_close_give_their_buffers_back() {
        let m = Memory::new(u64::MAX);
        let mut clients: Vec<ClientMemory> =
            (0..1000).map(|_| ClientMemory::new(m.clone())).collect();
        for c in &mut clients {
            c.set(32 << 10);
        }
        m.give_back_freed(false);
        assert!(take_trim_thread(&m).is_none(), "nothing was freed yet");
        clients.truncate(600);
        m.give_back_freed(false);
        assert!(
            take_trim_thread(&m).is_none(),
            "12.5 MB freed: under the threshold"
        );
        clients.clear();
        m.give_back_freed(false);
        let trim = take_trim_thread(&m).expect("31 MB of connection buffers freed: a trim");
        trim.join().unwrap();
        m.give_back_freed(false);
        assert!(take_trim_thread(&m).is_none(), "no new drop, no new trim");
    }
}
