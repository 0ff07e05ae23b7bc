//! File I/O counters of one broker's message store and page files: what RabbitMQ's node
//! reports as `io_*` and `msg_store_*` (`/api/nodes`, Prometheus' `rabbitmq_io_*`).
//!
//! Counted where the I/O happens, on the store's writer and sync threads and the page
//! files' I/O thread: one relaxed atomic add per system call (a call writes a whole batch),
//! plus a message counter per stored or recovered message. Only completed calls count.
//! Streams are not counted, as RabbitMQ does not count its stream logs here.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Instant;

/// One broker's counters; shared (`Arc`) by the store and the page directory.
#[derive(Debug, Default)]
pub struct IoStats {
    read: Op,
    write: Op,
    sync: Op,
    stored: AtomicU64,
    recovered: AtomicU64,
}

#[derive(Debug, Default)]
struct Op {
    count: AtomicU64,
    bytes: AtomicU64,
    nanos: AtomicU64,
}

impl Op {
    fn timed<T>(&self, bytes: usize, f: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
        let start = Instant::now();
        let result = f()?;
        self.add(bytes, start);
        Ok(result)
    }

    fn add(&self, bytes: usize, start: Instant) {
        self.count.fetch_add(1, Relaxed);
        self.bytes.fetch_add(bytes as u64, Relaxed);
        self.nanos
            .fetch_add(start.elapsed().as_nanos() as u64, Relaxed);
    }

    fn figures(&self) -> OpFigures {
        OpFigures {
            count: self.count.load(Relaxed),
            bytes: self.bytes.load(Relaxed),
            seconds: self.nanos.load(Relaxed) as f64 / 1e9,
        }
    }
}

impl IoStats {
    /// Runs `f`, a read, and counts it and the bytes it returns if it succeeds.
    pub(crate) fn read(&self, f: impl FnOnce() -> io::Result<usize>) -> io::Result<usize> {
        let start = Instant::now();
        let n = f()?;
        self.read.add(n, start);
        Ok(n)
    }

    /// Runs `f`, a write of `bytes` bytes, and counts it if it succeeds.
    pub(crate) fn write<T>(
        &self,
        bytes: usize,
        f: impl FnOnce() -> io::Result<T>,
    ) -> io::Result<T> {
        self.write.timed(bytes, f)
    }

    /// Runs `f`, an fsync or fdatasync, and counts it if it succeeds.
    pub(crate) fn sync<T>(&self, f: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
        self.sync.timed(0, f)
    }

    /// `n` messages written to the message store.
    pub(crate) fn stored(&self, n: u64) {
        self.stored.fetch_add(n, Relaxed);
    }

    /// `n` messages read back from the message store (at recovery).
    pub(crate) fn recovered(&self, n: u64) {
        self.recovered.fetch_add(n, Relaxed);
    }

    pub fn figures(&self) -> IoFigures {
        IoFigures {
            read: self.read.figures(),
            write: self.write.figures(),
            sync: self.sync.figures(),
            msg_store_write: self.stored.load(Relaxed),
            msg_store_read: self.recovered.load(Relaxed),
        }
    }
}

/// A snapshot of [`IoStats`].
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct IoFigures {
    pub read: OpFigures,
    pub write: OpFigures,
    pub sync: OpFigures,
    /// Messages written to the message store.
    pub msg_store_write: u64,
    /// Messages read from the message store.
    pub msg_store_read: u64,
}

/// Completed calls of one kind: how many, their bytes, the time they took in all.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct OpFigures {
    pub count: u64,
    pub bytes: u64,
    pub seconds: f64,
}

impl OpFigures {
    /// Mean time per call in milliseconds, as `/api/nodes` gives `io_*_avg_time`.
    pub fn avg_ms(&self) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            self.seconds * 1000.0 / self.count as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_completed_calls_count() {
        let io = IoStats::default();
        io.write(100, || Ok(())).unwrap();
        io.write(50, || Err::<(), _>(io::Error::other("full")))
            .unwrap_err();
        io.sync(|| Ok(())).unwrap();
        io.read(|| Ok(7)).unwrap();
        io.stored(3);
        io.recovered(2);
        let f = io.figures();
        assert_eq!((f.write.count, f.write.bytes), (1, 100));
        assert_eq!((f.sync.count, f.read.count, f.read.bytes), (1, 1, 7));
        assert_eq!((f.msg_store_write, f.msg_store_read), (3, 2));
        assert!(f.write.avg_ms() >= 0.0 && OpFigures::default().avg_ms() == 0.0);
    }
}
