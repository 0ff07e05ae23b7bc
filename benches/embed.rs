//! What an embedded broker costs a test suite: how long `Server::builder().start()` takes
//! in-process (median and p90 of 100 starts, each followed by a graceful shutdown), and
//! the resident memory each extra idle broker adds (50 started side by side, RSS delta /
//! 50, measured in a fresh child process per mode); in memory (the builder's default)
//! and with a data directory, for comparison.
//!
//! `cargo bench --bench embed` (a release build). Not a test: nothing asserts on speed.
//! Linux only for the memory figure (it reads /proc/self/statm).

use std::time::{Duration, Instant};
use warren::{Builder, Server};

const STARTS: usize = 100;
const SIDE_BY_SIDE: usize = 50;

/// Marks the child process that measures memory for one mode (`in-memory` or
/// `data-directory`): each gets a fresh heap, which earlier brokers' freed memory would
/// otherwise fill and hide.
const CHILD: &str = "--embed-memory";

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let root = std::env::temp_dir().join(format!("warren-bench-embed-{}", std::process::id()));
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == CHILD) {
        let on_disk = args.get(at + 1).is_some_and(|m| m == "data-directory");
        let result = memory_per_broker(&root, on_disk).await;
        let _ = std::fs::remove_dir_all(&root);
        println!("{}", result? / 1024);
        return Ok(());
    }
    // One start first: the runtime's workers and lazily built statics are the
    // process's, not a broker's.
    Server::builder().start().await?.shutdown().await;
    for (label, mode) in [
        ("in memory", "in-memory"),
        ("data directory", "data-directory"),
    ] {
        let on_disk = mode == "data-directory";
        let mut times = Vec::with_capacity(STARTS);
        for i in 0..STARTS {
            let b = builder(&root, on_disk, i);
            let began = Instant::now();
            let server = b.start().await?;
            times.push(began.elapsed());
            server.shutdown().await;
        }
        times.sort();
        let (median, p90) = (times[STARTS / 2], times[STARTS * 9 / 10]);
        let child = std::process::Command::new(std::env::current_exe()?)
            .args([CHILD, mode])
            .output()?;
        let kib = String::from_utf8_lossy(&child.stdout).trim().to_owned();
        println!(
            "{label}: start median {:.2} ms, p90 {:.2} ms ({STARTS} starts); \
             {kib} KiB resident per extra idle broker ({SIDE_BY_SIDE} side by side)",
            ms(median),
            ms(p90),
        );
    }
    let _ = std::fs::remove_dir_all(&root);
    Ok(())
}

/// A builder in memory, or on a directory of its own under `root`.
fn builder(root: &std::path::Path, on_disk: bool, i: usize) -> Builder {
    match on_disk {
        true => Server::builder().data_dir(root.join(format!("broker-{i}"))),
        false => Server::builder(),
    }
}

/// Resident bytes each of `SIDE_BY_SIDE` idle brokers adds, in a process that ran one
/// broker before (runtime and statics warm).
async fn memory_per_broker(root: &std::path::Path, on_disk: bool) -> std::io::Result<u64> {
    builder(root, on_disk, 0).start().await?.shutdown().await;
    let before = resident_bytes();
    let mut brokers = Vec::with_capacity(SIDE_BY_SIDE);
    for i in 0..SIDE_BY_SIDE {
        brokers.push(builder(root, on_disk, 1 + i).start().await?);
    }
    // Let each broker's tasks run once (their first ticks allocate what they keep).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = resident_bytes();
    for b in brokers {
        b.shutdown().await;
    }
    Ok(after.saturating_sub(before) / SIDE_BY_SIDE as u64)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Resident memory of this process, from /proc (0 where there is none).
fn resident_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf only reads a system constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * u64::try_from(page).unwrap_or(4096)
}
