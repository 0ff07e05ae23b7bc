//! The in-process broker of the `connection` target and the client side of a session.
//!
//! One broker per fuzzing process (started on first use, on 127.0.0.1:0 with a fresh data
//! directory under the temp dir), driven over real TCP with blocking std sockets from
//! libFuzzer's thread. Each input gets a fresh connection: the session's bytes are
//! written, the write side is shut, and what the broker answers is read until it closes.
//! After each input the broker must still accept and greet a new connection; a broker
//! that keeps a half-closed connection open or stops greeting counts as a crash.

use crate::encode::{self, Args, PROTOCOL_HEADER};
use crate::values::{CLEANUP_EXCHANGES, CLEANUP_QUEUES};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

struct Running {
    addr: SocketAddr,
    // Kept so that the broker and its runtime live as long as the process.
    _server: warren::Server,
    _runtime: tokio::runtime::Runtime,
}

static BROKER: OnceLock<Running> = OnceLock::new();
static SESSIONS: AtomicU64 = AtomicU64::new(0);

/// How long the broker may take to close a connection after the client's FIN. Generous:
/// the machine may be busy; a broker that never closes is what this catches.
const CLOSE_WITHIN: Duration = Duration::from_secs(10);
/// Sessions between two cleanups of the shared queues and exchanges.
const CLEANUP_EVERY: u64 = 64;

fn start() -> Running {
    crate::overflow::remember_fuzzer_thread();
    remove_stale_data_dirs();
    let dir = std::env::temp_dir().join(format!("warren-fuzz-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .on_thread_start(crate::overflow::guard_this_thread)
        .enable_all()
        .build()
        .unwrap_or_else(|e| panic!("fuzz harness: no runtime: {e}"));
    let server = runtime
        .block_on(warren::start(warren::Config::local(&dir)))
        .unwrap_or_else(|e| panic!("fuzz harness: broker did not start: {e}"));
    crate::abort_on_panic();
    Running {
        addr: server.local_addr(),
        _server: server,
        _runtime: runtime,
    }
}

/// Data directories of earlier fuzzing processes that are gone: a crash aborts before
/// any cleanup, and a long run with -fork restarts the broker thousands of times.
fn remove_stale_data_dirs() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.strip_prefix("warren-fuzz-")) else {
            continue;
        };
        if !std::path::Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn addr() -> SocketAddr {
    BROKER.get_or_init(start).addr
}

/// Writes `bytes` on a fresh connection, half-closes it and reads until the broker
/// closes; then checks that the broker still greets a new connection.
pub fn run_session(bytes: &[u8]) {
    exchange(bytes);
    assert_greets();
    if SESSIONS.fetch_add(1, Ordering::Relaxed) % CLEANUP_EVERY == CLEANUP_EVERY - 1 {
        cleanup();
    }
}

/// One connection: write everything (stopping if the broker closed), FIN, read to EOF.
fn exchange(bytes: &[u8]) {
    let mut stream = connect();
    // The broker may stop reading (it closed the connection, or its write buffer is
    // full because nobody reads yet); a write that cannot finish soon is abandoned.
    let _ = stream.set_write_timeout(Some(Duration::from_secs(2)));
    let _ = stream.write_all(bytes);
    let _ = stream.shutdown(Shutdown::Write);
    drain(&mut stream);
}

fn connect() -> TcpStream {
    let stream = TcpStream::connect(addr())
        .unwrap_or_else(|e| panic!("broker refused a connection: {e}"));
    let _ = stream.set_nodelay(true);
    stream
}

/// Reads until EOF (or reset): the broker must close a connection whose client is gone.
/// With WARREN_FUZZ_TRACE set (when reproducing), prints the frames the broker sent.
fn drain(stream: &mut TcpStream) {
    let deadline = Instant::now() + CLOSE_WITHIN;
    let mut buf = [0u8; 65536];
    let trace = std::env::var_os("WARREN_FUZZ_TRACE").is_some();
    let mut received = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "broker kept a connection open {CLOSE_WITHIN:?} after the client's FIN"
        );
        let _ = stream.set_read_timeout(Some(left));
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) if trace => received.extend_from_slice(&buf[..n]),
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                panic!("broker kept a connection open {CLOSE_WITHIN:?} after the client's FIN")
            }
            // Reset: the broker dropped the socket with unread input, which is a close.
            Err(_) => break,
        }
    }
    if trace {
        print_frames(&received);
    }
}

/// The broker's answer, one line per frame: type, channel, and class.method or size.
fn print_frames(mut bytes: &[u8]) {
    while bytes.len() >= 7 {
        let size = u32::from_be_bytes([bytes[3], bytes[4], bytes[5], bytes[6]]) as usize;
        let Some(payload) = bytes.get(7..7 + size) else {
            break;
        };
        let what = match (bytes[0], payload) {
            (1, [c0, c1, m0, m1, rest @ ..]) => {
                let ids = (u16::from_be_bytes([*c0, *c1]), u16::from_be_bytes([*m0, *m1]));
                let text = String::from_utf8_lossy(&rest[..rest.len().min(120)]).into_owned();
                format!("method {}.{} {text:?}", ids.0, ids.1)
            }
            (kind, _) => format!("type {kind}, {size} bytes"),
        };
        eprintln!("<- channel {}: {what}", u16::from_be_bytes([bytes[1], bytes[2]]));
        bytes = &bytes[(8 + size).min(bytes.len())..];
    }
    eprintln!("<- closed");
}

/// A new connection gets connection.start (a method frame on channel 0, class 10 method 10).
fn assert_greets() {
    let mut stream = connect();
    let _ = stream.set_read_timeout(Some(CLOSE_WITHIN));
    let _ = stream.write_all(PROTOCOL_HEADER);
    let mut head = [0u8; 11];
    stream
        .read_exact(&mut head)
        .unwrap_or_else(|e| panic!("broker did not greet a new connection: {e}"));
    assert_eq!(
        &head[..3],
        &[1, 0, 0],
        "broker greeted with something else: {head:?}"
    );
    assert_eq!(&head[7..11], &[0, 10, 0, 10], "greeting is not connection.start");
}

/// Deletes the shared queues and exchanges (nowait, pipelined) so that messages and
/// objects do not pile up over millions of sessions.
fn cleanup() {
    let mut out = Vec::new();
    out.extend_from_slice(PROTOCOL_HEADER);
    let start_ok = Args::default()
        .u32(0)
        .short(b"PLAIN")
        .long(b"\0guest\0guest")
        .short(b"en_US");
    encode::method(&mut out, 0, 10, 11, &start_ok.0);
    encode::method(&mut out, 0, 10, 31, &Args::default().u16(0).u32(131072).u16(0).0);
    encode::method(&mut out, 0, 10, 40, &Args::default().short(b"/").short(b"").u8(0).0);
    encode::method(&mut out, 1, 20, 10, &Args::default().short(b"").0);
    for q in CLEANUP_QUEUES {
        let args = Args::default().u16(0).short(q.as_bytes()).u8(0b100);
        encode::method(&mut out, 1, 50, 40, &args.0);
    }
    for x in CLEANUP_EXCHANGES {
        let args = Args::default().u16(0).short(x.as_bytes()).u8(0b10);
        encode::method(&mut out, 1, 40, 20, &args.0);
    }
    let close = Args::default().u16(200).short(b"bye").u16(0).u16(0);
    encode::method(&mut out, 0, 10, 50, &close.0);
    exchange(&out);
}
