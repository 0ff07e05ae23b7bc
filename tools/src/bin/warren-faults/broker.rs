//! The broker under test as a child process: start it on a fixed port of 127.0.0.1 with a
//! data directory, wait for its ready line, stop it gracefully (SIGTERM) or kill it
//! (SIGKILL), and read its resident memory. Only the process this module started is ever
//! signalled, by its pid. Everything here blocks: call it from a plain thread or
//! `spawn_blocking`, never from a runtime worker.

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::amqp::{err, Res};

/// How to start the broker; the same port and data directory on every restart.
#[derive(Clone, Debug)]
pub struct BrokerCmd {
    pub bin: PathBuf,
    pub data_dir: PathBuf,
    pub port: u16,
    /// Extra arguments (e.g. `--disk-free-limit 0`).
    pub extra: Vec<String>,
    /// Its stderr (the log) is appended here.
    pub log: PathBuf,
}

/// A running broker started by us.
pub struct Broker {
    child: Child,
    pub pid: u32,
}

/// A free port outside the kernel's ephemeral range (32768-60999 by default), so a client
/// retrying while the broker is down can never be handed the broker's port as its own
/// source port (a TCP self-connect) and a client's socket never holds the broker's port.
pub fn free_port(seed: u64) -> Res<u16> {
    for i in 0..2000u64 {
        let port = 20_000 + ((seed.wrapping_add(i.wrapping_mul(7919))) % 12_000) as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Err(err("no free port in 20000-31999"))
}

impl BrokerCmd {
    /// Start the broker and wait (up to `patience`) for its ready line. A start that
    /// fails (e.g. the port is briefly still held) is retried a few times.
    pub fn start(&self, patience: Duration) -> Res<Broker> {
        let mut last = err("broker never started");
        for _ in 0..5 {
            match self.start_once(patience) {
                Ok(b) => return Ok(b),
                Err(e) => last = e,
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        Err(last)
    }

    fn start_once(&self, patience: Duration) -> Res<Broker> {
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)?;
        let mut child = Command::new(&self.bin)
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            // Several brokers may run at once: no fixed HTTP ports.
            .args(["--management-port", "0", "--prometheus-port", "0"])
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(&self.extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .map_err(|e| err(format!("cannot run {}: {e}", self.bin.display())))?;
        let started = Instant::now();
        let pid = child.id();
        let (tx, rx) = mpsc::channel();
        if let Some(out) = child.stdout.take() {
            // Reads stdout to its end so the broker never blocks on a full pipe.
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    if line.contains(" ready on amqp://") {
                        let _ = tx.send(());
                    }
                }
            });
        }
        let mut broker = Broker { child, pid };
        let deadline = started + patience;
        loop {
            match rx.recv_timeout(Duration::from_millis(50)) {
                Ok(()) => return Ok(broker),
                Err(mpsc::RecvTimeoutError::Disconnected)
                | Err(mpsc::RecvTimeoutError::Timeout)
                    if !broker.alive() =>
                {
                    return Err(err(format!(
                        "broker exited before its ready line (see {})",
                        self.log.display()
                    )));
                }
                Err(_) if Instant::now() > deadline => {
                    broker.kill();
                    return Err(err(format!("broker not ready within {patience:?}")));
                }
                Err(_) => {}
            }
        }
    }
}

impl Broker {
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, wait up to `patience` for the exit; SIGKILL after that. Returns whether
    /// it stopped on its own and its exit status text.
    pub fn stop(&mut self, patience: Duration) -> (bool, String) {
        // std can only SIGKILL; kill(1) sends the polite signal without unsafe code.
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid.to_string()])
            .status();
        let deadline = Instant::now() + patience;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return (true, status.to_string());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        (false, "killed after SIGTERM timed out".into())
    }

    pub fn rss_kb(&self) -> Option<u64> {
        status_kb(self.pid, "VmRSS:")
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if self.alive() {
            self.kill();
        }
    }
}

/// A field of /proc/PID/status in KiB.
pub fn status_kb(pid: u32, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A small deterministic generator (xorshift64*), seeded and printed by the caller so a
/// failing run can be repeated.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in lo..=hi.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi.saturating_sub(lo) + 1)
    }
}
