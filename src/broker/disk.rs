//! The disk alarm: RabbitMQ's `disk_free_limit`. Free space on the data directory's file
//! system is checked by the server's housekeeping task every 100 ms, and every 20 ms
//! while it is within twice the limit or a write has failed (statvfs: cheap); below the
//! limit, the memory module's alarm blocks publishers (reason "low on disk") until space
//! comes back. Consumers keep going, so draining queues (and deleting page files) is
//! what frees space.
//!
//! A failed write (the message store or a page file, `Memory::disk_write_failed`) sets
//! the same alarm at once: a fast publisher can fill the headroom between two checks, and
//! with `--disk-free-limit 0` the check never fires. That alarm clears only once free
//! space is above the limit again and a probe write of [`PROBE_BYTES`] (written,
//! fdatasynced and removed on a blocking thread, never on a runtime worker) succeeds.

use super::memory::Memory;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

/// RabbitMQ's default: 50 MB.
pub const DEFAULT_FREE_LIMIT: u64 = 50_000_000;

/// What a probe writes: one of the store's write chunks, so a disk that takes it can
/// take the next batch.
pub const PROBE_BYTES: usize = 1 << 20;

/// The probe's file in the data directory.
const PROBE_FILE: &str = "disk-probe";

#[derive(Debug)]
pub struct DiskMonitor {
    path: PathBuf,
    limit: u64,
    /// A probe write is running.
    probing: Arc<AtomicBool>,
}

impl DiskMonitor {
    pub fn new(path: &Path, limit: u64) -> DiskMonitor {
        DiskMonitor {
            path: path.to_owned(),
            limit,
            probing: Arc::default(),
        }
    }

    /// Free bytes on the monitored file system now.
    pub fn free(&self) -> Option<u64> {
        free_bytes(&self.path)
    }

    /// Sets or clears the disk alarm on `memory` from the free space now (after a write
    /// failure, clearing waits for a probe write). A file system that cannot be asked
    /// leaves the alarm as it is. Returns whether the disk is near trouble (free space
    /// within twice the limit, or a write failure not yet probed): check again soon.
    pub fn check(&self, memory: &Arc<Memory>) -> bool {
        let Some(free) = free_bytes(&self.path) else {
            return false;
        };
        let low = free < self.limit;
        let unprobed = memory.unprobed_write_failures();
        match unprobed {
            _ if low => memory.set_disk_low(true, free, self.limit),
            None => memory.set_disk_low(false, free, self.limit),
            Some(failures) => self.probe(memory, failures, free),
        }
        unprobed.is_some() || free / 2 < self.limit
    }

    /// Starts a probe write unless one runs; on success it clears the alarm.
    fn probe(&self, memory: &Arc<Memory>, failures: u64, free: u64) {
        if self.probing.swap(true, Ordering::AcqRel) {
            return;
        }
        let (path, limit) = (self.path.join(PROBE_FILE), self.limit);
        let (memory, probing) = (memory.clone(), self.probing.clone());
        let work = move || {
            match probe_write(&path) {
                Ok(()) => memory.write_probe_succeeded(failures, true, free, limit),
                Err(e) => tracing::debug!(error = %e, "disk probe write failed"),
            }
            probing.store(false, Ordering::Release);
        };
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => drop(rt.spawn_blocking(work)),
            Err(_) => work(), // not on a runtime (tests, start-up): this thread may block
        }
    }
}

/// Writes `PROBE_BYTES` to `path`, fdatasyncs and removes it; the file is gone after an
/// error too.
fn probe_write(path: &Path) -> std::io::Result<()> {
    let written = std::fs::File::create(path).and_then(|mut f| {
        f.write_all(&vec![0u8; PROBE_BYTES])?;
        f.sync_data()
    });
    let removed = std::fs::remove_file(path);
    written.and(removed)
}

/// Bytes available to this (unprivileged) process on the file system holding `path`.
pub fn free_bytes(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c_path` is a valid NUL-terminated string and `st` points to writable
    // memory of the right type; statvfs fills it when it returns 0.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so it initialised `st`.
    let st = unsafe { st.assume_init() };
    // The field types differ between platforms (u64 here, u32 or c_ulong elsewhere).
    #[allow(clippy::unnecessary_cast)]
    Some((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_space_is_read_and_sets_and_clears_the_alarm() {
        let dir = std::env::temp_dir();
        let free = free_bytes(&dir).expect("statvfs on the temp dir");
        assert!(free > 0);
        let memory = Memory::new(u64::MAX);
        let rx = memory.subscribe();
        DiskMonitor::new(&dir, u64::MAX).check(&memory);
        assert!(memory.alarmed() && *rx.borrow());
        assert_eq!(memory.alarm_reason(), "low on disk");
        DiskMonitor::new(&dir, 1).check(&memory);
        assert!(!memory.alarmed() && !*rx.borrow());
        assert_eq!(free_bytes(Path::new("/no/such/dir")), None);
    }

    #[test]
    fn a_write_failure_sets_the_alarm_until_a_probe_write_succeeds() {
        let dir = std::env::temp_dir().join(format!("warren-disk-probe-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let memory = Memory::new(u64::MAX);
        let rx = memory.subscribe();
        let ok = DiskMonitor::new(&dir, 0);
        assert!(!ok.check(&memory), "plenty of space, no failure: not near");

        memory.disk_write_failed();
        assert!(memory.alarmed() && *rx.borrow(), "set at once");
        assert_eq!(memory.alarm_reason(), "low on disk");
        // Free space alone does not clear it: the probe must be written. A regular file
        // in place of the directory makes statvfs work and the probe fail.
        let file = dir.join("not-a-dir");
        std::fs::write(&file, b"x").expect("file");
        assert!(
            DiskMonitor::new(&file, 0).check(&memory),
            "checked again soon"
        );
        assert!(memory.alarmed(), "the probe failed: still on");

        assert!(ok.check(&memory), "this check ran the probe");
        assert!(!memory.alarmed() && !*rx.borrow(), "cleared by the probe");
        assert!(!dir.join(PROBE_FILE).exists(), "the probe file is removed");
        assert!(!ok.check(&memory));
        // Near the limit means checking more often.
        let free = free_bytes(&dir).expect("statvfs");
        assert!(DiskMonitor::new(&dir, free / 2 + free / 4).check(&memory));
        assert!(!memory.alarmed());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
