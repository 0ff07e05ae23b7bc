//! The stream log under kill -9: a child process (this test binary run again) appends
//! through the writer thread with synced batches and prints each batch's end once its
//! callback says it is on disk; the parent kills it with SIGKILL mid-run, reopens the
//! log and checks that every entry reported durable is there, whole and in order, and
//! that appends go on from where the recovered log ends. Twice, so a recovered log is
//! itself recovered again. Every wait is bounded.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use warren::testing::stream::{Durability, StartAt, StreamConfig, StreamLog};

const CHILD_ENV: &str = "WARREN_STREAM_LOG_CHILD";
const TEST_NAME: &str = "synced_entries_survive_kill_9_twice";

fn config() -> StreamConfig {
    // Small segments, so the kill can land around a roll-over too.
    StreamConfig {
        max_segment_size_bytes: 64 * 1024,
        ..StreamConfig::default()
    }
}

/// Entry `i`'s bytes: its number, padded to a size that varies with it.
fn entry(i: u64) -> Vec<u8> {
    let mut v = format!("entry-{i}-").into_bytes();
    v.resize(v.len() + (i % 97) as usize, b'x');
    v
}

fn check(dir: &Path, durable: u64) -> u64 {
    let log = StreamLog::open(dir, config()).expect("reopen after kill -9");
    let next = log.next_offset();
    assert!(
        next >= durable,
        "entries reported durable are lost: next {next} < {durable}"
    );
    assert_eq!(log.resolve(StartAt::First), 0);
    let mut r = log.reader(0).expect("reader");
    let mut i = 0;
    while let Some(e) = r.next().expect("read back") {
        assert_eq!(e.offset, i);
        assert_eq!(&e.data[..], &entry(i)[..], "entry {i}");
        i += 1;
    }
    assert_eq!(i, next);
    next
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs the child until it reported at least `until` durable entries, then SIGKILLs it.
/// Returns the highest durable end it reported.
fn run_child_and_kill(dir: &Path, until: u64) -> u64 {
    let exe = std::env::current_exe().expect("test binary");
    let mut child = KillOnDrop(
        Command::new(exe)
            .args(["--exact", TEST_NAME, "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, dir)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child"),
    );
    let stdout = child.0.stdout.take().expect("child stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(n) = line
                .strip_prefix("durable ")
                .and_then(|n| n.parse::<u64>().ok())
            {
                if tx.send(n).is_err() {
                    return;
                }
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut durable = 0;
    while durable < until {
        let left = deadline.saturating_duration_since(Instant::now());
        durable = durable.max(rx.recv_timeout(left).expect("child reports progress"));
    }
    child.0.kill().expect("SIGKILL the child");
    child.0.wait().expect("reap the child");
    // Lines already in the pipe were durable too.
    while let Ok(n) = rx.recv_timeout(Duration::from_millis(200)) {
        durable = durable.max(n);
    }
    durable
}

/// The child: appends batches forever, several in flight, printing durable ends.
fn child(dir: PathBuf) {
    let log = StreamLog::open(&dir, config()).expect("child open");
    let writer = log.spawn_writer().expect("writer");
    let (tx, rx) = mpsc::channel();
    let mut next = log.next_offset();
    let mut in_flight = 0;
    loop {
        while in_flight < 8 {
            let n = 1 + next % 50;
            let batch = (next..next + n)
                .map(|i| (i as i64, entry(i).into()))
                .collect();
            let tx = tx.clone();
            writer.submit(
                batch,
                Durability::Synced,
                Box::new(move |r| {
                    let _ = tx.send(r.expect("append").end);
                }),
            );
            next += n;
            in_flight += 1;
        }
        let end = rx.recv().expect("callback");
        in_flight -= 1;
        println!("durable {end}");
    }
}

#[test]
fn synced_entries_survive_kill_9_twice() {
    if let Some(dir) = std::env::var_os(CHILD_ENV) {
        child(PathBuf::from(dir));
        return;
    }
    let dir = std::env::temp_dir().join(format!("warren-stream-kill9-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let first = run_child_and_kill(&dir, 20_000);
    let recovered = check(&dir, first);
    let second = run_child_and_kill(&dir, recovered + 20_000);
    let last = check(&dir, second);
    eprintln!("durable {first} -> recovered {recovered}; durable {second} -> recovered {last}");
    let _ = std::fs::remove_dir_all(&dir);
}
