//! The definitions writer: one thread that rewrites the definitions file, coalescing every
//! change made while it was busy into the next write.
//!
//! Called by the broker's persistence glue: `request` when durable topology changed (it
//! may be called under the topology lock: it only bumps a number under a short mutex and
//! wakes the thread), `covered` to hold a publisher confirm back until the definitions it
//! depends on are on disk, `wait` at shutdown. The thread takes a snapshot (through the
//! closure it was given), writes it with `definitions::save` (temp file, fsync, rename,
//! directory fsync) and then releases everything that waited for a generation up to the
//! one the snapshot covers. It never runs on a runtime worker and never writes under a
//! topology lock (the snapshot takes the read locks for memory work only).
//!
//! Why generations and not a write per change: a file rewrite costs O(definitions), so a
//! write per declare makes declaring N durable queues O(N^2) (10,000 queues rewrote a
//! file that grew to 2 MB 10,000 times). Here a change only asks for a write with a higher
//! generation; the thread writes whatever is current when it gets to it, so a burst of
//! changes costs a few writes. Writes are paced: after a write the thread waits at least
//! as long as that write took (and at least `MIN_GAP`) before the next one, so a storm of
//! declares can take at most about half of a core for rewrites.
//!
//! What waits for the disk: declare-ok, bind-ok and delete-ok are sent at once (RabbitMQ
//! does not fsync its schema before answering either). A publisher confirm for a
//! persistent message waits for the generation that was current when the message was
//! routed, which covers the queues and bindings it went to: a confirmed message never
//! comes back without its queue after a crash. A graceful stop waits for the last
//! generation. A failed write is logged and retried (every `RETRY` while it fails); what
//! waits for it keeps waiting, as a confirm waits for a disk that is full.

use super::definitions::{self, Definitions};
use super::Done;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// The shortest pause between two writes while changes keep coming.
const MIN_GAP: Duration = Duration::from_millis(5);
/// The longest pause between two writes, however long the last one took.
const MAX_GAP: Duration = Duration::from_millis(250);
/// After a failed write, the next attempt comes this much later.
const RETRY: Duration = Duration::from_secs(1);

/// Builds the definitions to write now; `None` when the broker is being torn down (a
/// partial snapshot must never replace a whole file).
pub type Snapshot = Box<dyn FnMut() -> Option<Definitions> + Send>;

type Waiter = Box<dyn FnOnce() + Send>;

#[derive(Default)]
struct State {
    closed: bool,
    /// Run once `written` reaches their generation; dropped unrun if the writer stops.
    waiters: Vec<(u64, Waiter)>,
}

struct Shared {
    /// The generation the next write must cover: bumped by every change, under `state`
    /// (so the writer cannot miss a wake-up), read without it on the publish path.
    requested: AtomicU64,
    /// Every generation up to this one is on disk. Written under `state`.
    written: AtomicU64,
    state: Mutex<State>,
    wake: Condvar,
    writes: AtomicU64,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Plain numbers and a list: consistent even if a holder panicked.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A cheap handle on the writer: ask for writes, wait for them. Cloned into every durable
/// queue's store handle.
#[derive(Clone)]
pub struct DefinitionsHandle {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for DefinitionsHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DefinitionsHandle")
            .field("requested", &self.current())
            .field("written", &self.shared.written.load(Ordering::SeqCst))
            .finish()
    }
}

impl DefinitionsHandle {
    /// Durable definitions changed: asks for a write and returns the generation that
    /// covers the change. Non-blocking; may be called under the topology lock (and must
    /// be, for a change a publish could see: see `current`).
    pub fn request(&self) -> u64 {
        let s = self.shared.lock();
        let generation = self.shared.requested.fetch_add(1, Ordering::SeqCst) + 1;
        drop(s);
        self.shared.wake.notify_one();
        generation
    }

    /// The generation that covers every change requested so far. A publish that routed
    /// to a queue reads it after the routing, so the queue's own request is included.
    pub fn current(&self) -> u64 {
        self.shared.requested.load(Ordering::SeqCst)
    }

    /// Runs `f` once generation `generation` is on disk: now (on this thread) if it
    /// already is, else on the writer thread after the write. Dropped unrun if the
    /// writer stops first.
    pub fn after(&self, generation: u64, f: impl FnOnce() + Send + 'static) {
        let mut s = self.shared.lock();
        if self.shared.written.load(Ordering::SeqCst) >= generation {
            drop(s);
            f();
        } else if !s.closed {
            s.waiters.push((generation, Box::new(f)));
        }
    }

    /// Wraps a message store completion so it also waits for the generation current
    /// now: a confirm is sent once both the message and the definitions it needs are on
    /// disk. Unwrapped when they already are (the usual case: no allocation, no lock).
    /// A store failure passes through at once (the caller nacks).
    pub fn cover(&self, done: Done) -> Done {
        let generation = self.current();
        if self.shared.written.load(Ordering::SeqCst) >= generation {
            return done;
        }
        let me = self.clone();
        Done::new(move |id| {
            if let Some(id) = id {
                me.after(generation, move || done.complete(id));
            }
            // On failure `done` drops here, which reports the failure.
        })
    }

    /// Waits until every change requested so far is on disk. Err if the writer stopped.
    pub async fn wait(&self) -> Result<(), oneshot::error::RecvError> {
        let (tx, rx) = oneshot::channel();
        self.after(self.current(), move || {
            let _ = tx.send(());
        });
        rx.await
    }

    /// Files written so far (a metric; tests count rewrites with it).
    pub fn writes(&self) -> u64 {
        self.shared.writes.load(Ordering::Relaxed)
    }
}

/// Owns the writer thread. Dropping it stops the thread without a last write (changes
/// not written by then are lost, as in a crash: a graceful stop `wait`s first).
pub struct DefinitionsWriter {
    handle: DefinitionsHandle,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for DefinitionsWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.handle.fmt(f)
    }
}

impl DefinitionsWriter {
    /// Starts the thread that writes `path` from `snapshot` whenever asked.
    pub fn start(path: PathBuf, snapshot: Snapshot) -> std::io::Result<DefinitionsWriter> {
        let shared = Arc::new(Shared {
            requested: AtomicU64::new(0),
            written: AtomicU64::new(0),
            state: Mutex::new(State::default()),
            wake: Condvar::new(),
            writes: AtomicU64::new(0),
        });
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("warren-definitions".into())
                .spawn(move || run(&shared, &path, snapshot))?
        };
        Ok(DefinitionsWriter {
            handle: DefinitionsHandle { shared },
            thread: Some(thread),
        })
    }

    pub fn handle(&self) -> &DefinitionsHandle {
        &self.handle
    }
}

impl Drop for DefinitionsWriter {
    fn drop(&mut self) {
        self.handle.shared.lock().closed = true;
        self.handle.shared.wake.notify_one();
        if let Some(t) = self.thread.take() {
            // The last owner can go on the writer thread itself (its snapshot held the
            // last reference to a vhost): it must not wait for itself.
            if t.thread().id() != std::thread::current().id() {
                let _ = t.join();
            }
        }
    }
}

/// The writer thread: wait for a request, pace, snapshot, write, release the waiters.
fn run(shared: &Shared, path: &std::path::Path, mut snapshot: Snapshot) {
    let mut not_before = Instant::now();
    let mut failing = false;
    loop {
        {
            let mut s = shared.lock();
            let pending = |sh: &Shared| {
                sh.requested.load(Ordering::SeqCst) > sh.written.load(Ordering::SeqCst)
            };
            while !s.closed && !pending(shared) {
                s = shared.wake.wait(s).unwrap_or_else(|e| e.into_inner());
            }
            if s.closed {
                break;
            }
            // Pacing: changes that arrive meanwhile join this write.
            let now = Instant::now();
            if not_before > now {
                let (g, _) = shared
                    .wake
                    .wait_timeout(s, not_before - now)
                    .unwrap_or_else(|e| e.into_inner());
                if g.closed {
                    break;
                }
            }
        }
        // Read after the pause, before the snapshot: the snapshot then shows at least
        // every change up to `target` (each change is made before it is requested).
        let target = shared.requested.load(Ordering::SeqCst);
        let Some(defs) = snapshot() else {
            // Torn down: stop for good, so that nothing waits for a write that never
            // comes (later waiters are dropped at once: their confirms become nacks).
            shared.lock().closed = true;
            break;
        };
        let started = Instant::now();
        match definitions::save(path, &defs) {
            Ok(()) => {
                drop(defs);
                shared.writes.fetch_add(1, Ordering::Relaxed);
                if failing {
                    failing = false;
                    tracing::info!(path = %path.display(), "definitions written again");
                }
                let took = started.elapsed();
                not_before = Instant::now() + took.clamp(MIN_GAP, MAX_GAP);
                let ready = {
                    let mut s = shared.lock();
                    let written = shared
                        .written
                        .fetch_max(target, Ordering::SeqCst)
                        .max(target);
                    let (ready, waiting) = std::mem::take(&mut s.waiters)
                        .into_iter()
                        .partition(|(g, _)| *g <= written);
                    s.waiters = waiting;
                    ready
                };
                for (_, f) in ready {
                    f();
                }
            }
            Err(e) => {
                if !failing {
                    failing = true;
                    tracing::error!(error = %e, path = %path.display(), "cannot save definitions; retrying");
                }
                not_before = Instant::now() + RETRY;
            }
        }
    }
    // Stopping: whatever still waits is dropped unrun (a confirm becomes a nack).
    let waiters = std::mem::take(&mut shared.lock().waiters);
    drop(waiters);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;

    fn temp_path(name: &str) -> PathBuf {
        let d =
            std::env::temp_dir().join(format!("warren-defwriter-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).expect("temp dir");
        d.join("definitions.json")
    }

    /// A writer whose snapshots each wait for a go from the test, and report how many
    /// queues they held.
    fn gated(
        path: &std::path::Path,
    ) -> (DefinitionsWriter, mpsc::Sender<usize>, mpsc::Receiver<()>) {
        let (go_tx, go_rx) = mpsc::channel::<usize>();
        let (took_tx, took_rx) = mpsc::channel::<()>();
        let snapshot: Snapshot = Box::new(move || {
            let _ = took_tx.send(());
            let queues = go_rx.recv().ok()?;
            let mut d = Definitions::default();
            for i in 0..queues {
                d.queues.push(definitions::QueueDef::new(
                    "/",
                    &format!("q{i}"),
                    true,
                    false,
                    serde_json::json!({}),
                ));
            }
            Some(d)
        });
        let w = DefinitionsWriter::start(path.to_owned(), snapshot).expect("start");
        (w, go_tx, took_rx)
    }

    #[test]
    fn changes_made_during_a_write_are_coalesced_into_the_next_one() {
        let path = temp_path("coalesce");
        let (w, go, took) = gated(&path);
        let h = w.handle().clone();
        assert_eq!(h.request(), 1);
        took.recv().expect("the first snapshot started");
        // While the first write is under way, 100 more changes arrive.
        for _ in 0..100 {
            h.request();
        }
        let (done_tx, done_rx) = mpsc::channel();
        h.after(101, move || done_tx.send(()).expect("send"));
        go.send(1).expect("go");
        took.recv().expect("a second snapshot for the 100 changes");
        assert!(
            done_rx.try_recv().is_err(),
            "generation 101 is not written yet"
        );
        go.send(2).expect("go");
        done_rx.recv().expect("written after the second write");
        assert_eq!(h.writes(), 2, "101 changes, 2 writes");
        assert_eq!(definitions::load(&path).expect("load").queues.len(), 2);
    }

    #[test]
    fn a_confirm_waits_for_the_definitions_current_when_it_was_covered() {
        let path = temp_path("cover");
        let (w, go, took) = gated(&path);
        let h = w.handle().clone();
        let (tx, rx) = mpsc::channel();
        let done = |tx: mpsc::Sender<Option<u64>>| Done::new(move |id| tx.send(id).expect("send"));
        // Nothing pending: the completion is not held back.
        h.cover(done(tx.clone())).complete(7);
        assert_eq!(rx.try_recv(), Ok(Some(7)));
        h.request();
        let held = h.cover(done(tx.clone()));
        held.complete(8); // the message store's fsync
        took.recv().expect("snapshot");
        assert!(
            rx.try_recv().is_err(),
            "held until the definitions are written"
        );
        go.send(1).expect("go");
        assert_eq!(rx.recv(), Ok(Some(8)));
        // A store failure passes through at once, as a nack.
        h.request();
        drop(h.cover(done(tx.clone())));
        assert_eq!(rx.recv(), Ok(None));
        // Stopping the writer before the write drops what waits: nacks, not silence.
        let held = h.cover(done(tx));
        held.complete(9);
        drop(go);
        drop(w);
        assert_eq!(rx.recv(), Ok(None));
        assert_eq!(h.writes(), 1);
    }

    #[test]
    fn a_torn_down_broker_writes_no_partial_file() {
        let path = temp_path("teardown");
        std::fs::write(&path, b"{}").expect("write");
        let w = DefinitionsWriter::start(path.clone(), Box::new(|| None)).expect("start");
        w.handle().request();
        drop(w);
        assert_eq!(std::fs::read(&path).expect("read"), b"{}");
    }
}
