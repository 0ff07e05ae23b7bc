//! The disk alarm: RabbitMQ's `disk_free_limit`. Free space on the data directory's file
//! system is checked about once a second by the server's housekeeping task; below the
//! limit, the memory module's alarm blocks publishers (reason "low on disk") until space
//! comes back. Consumers keep going, so draining queues (and deleting page files) is
//! what frees space.

use super::memory::Memory;
use std::path::{Path, PathBuf};

/// RabbitMQ's default: 50 MB.
pub const DEFAULT_FREE_LIMIT: u64 = 50_000_000;

#[derive(Debug)]
pub struct DiskMonitor {
    path: PathBuf,
    limit: u64,
}

impl DiskMonitor {
    pub fn new(path: &Path, limit: u64) -> DiskMonitor {
        DiskMonitor {
            path: path.to_owned(),
            limit,
        }
    }

    /// Sets or clears the disk alarm on `memory` from the free space now. A file system
    /// that cannot be asked leaves the alarm as it is.
    pub fn check(&self, memory: &Memory) {
        if let Some(free) = free_bytes(&self.path) {
            memory.set_disk_low(free < self.limit, free, self.limit);
        }
    }
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
}
