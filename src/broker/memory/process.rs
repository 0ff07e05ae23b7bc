//! What the system says about this process and machine: resident memory, CPU time spent,
//! total memory (for the default alarm limit).
//!
//! Read by `Memory` (whether to give freed memory back), the broker at start (its
//! resident baseline) and the management API and Prometheus (`mem_used`). Each call
//! reads /proc or asks the kernel once: never call these per message.

/// RabbitMQ's default high watermark: 40% of the machine's memory.
const DEFAULT_FRACTION: f64 = 0.4;

/// This process's resident memory now (from /proc/self/statm), if the system says.
pub fn resident_bytes() -> Option<u64> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok().filter(|&p| p > 0)?)
}

/// CPU time the whole process spent so far (user and system), in microseconds.
pub fn process_cpu_micros() -> Option<u64> {
    // SAFETY: getrusage writes the struct we pass and nothing else.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        if libc::getrusage(libc::RUSAGE_SELF, &mut usage) != 0 {
            return None;
        }
        usage
    };
    let micros = |t: libc::timeval| {
        u64::try_from(t.tv_sec).unwrap_or(0) * 1_000_000 + u64::try_from(t.tv_usec).unwrap_or(0)
    };
    Some(micros(usage.ru_utime) + micros(usage.ru_stime))
}

/// 40% of the machine's memory (from /proc/meminfo), or 1 GiB where that is unknown.
pub fn default_limit() -> u64 {
    let total_kb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse::<u64>().ok())
        });
    match total_kb {
        Some(kb) => (kb as f64 * 1024.0 * DEFAULT_FRACTION) as u64,
        None => 1 << 30,
    }
}
