//! Held messages past the memory budget: their bytes go to one spill file in the page
//! directory, and only their heap entries stay in memory.
//!
//! Used by the scheduler under its lock, so nothing here touches the disk on the
//! caller's thread: writes, reads and the truncation are jobs for the page directory's
//! I/O thread, which runs them in order, so a read queued after a write finds its bytes.
//! A write that fails (a full disk) keeps the bytes in memory, in this file's own map,
//! until they are read: a held message is never lost to a full disk. Like page files,
//! the spill file is a cache (the page directory is wiped at start): persistent held
//! messages are in the message store as well. The file is emptied each time no spilled
//! message is left in it.

use crate::broker::memory::pagedir::PageDir;
use crate::broker::message::Message;
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use tokio::sync::oneshot;

/// Where one spilled message's bytes are in the spill file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Spilled {
    pub at: u64,
    pub len: u32,
}

/// The spill file's state shared with the I/O thread's jobs.
#[derive(Debug, Default)]
struct Shared {
    file: Option<File>,
    /// Bytes whose write failed, by offset, until read.
    unwritten: HashMap<u64, Vec<u8>>,
}

/// The scheduler's side: the next offset and how many spilled messages are live.
#[derive(Debug)]
pub struct Spill {
    path: PathBuf,
    shared: Arc<Mutex<Shared>>,
    end: u64,
    live: u64,
}

fn lock(m: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Spill {
    pub fn new(dir: &PageDir) -> Spill {
        Spill {
            path: dir.path().join("delayed.spill"),
            shared: Arc::default(),
            end: 0,
            live: 0,
        }
    }

    /// Hands `msg`'s bytes to the I/O thread; where they will be.
    pub fn write(&mut self, dir: &PageDir, msg: &Message) -> Option<Spilled> {
        let len = u32::try_from(msg.size()).ok()?;
        let at = self.end;
        self.end += u64::from(len);
        self.live += 1;
        let (shared, path, msg) = (self.shared.clone(), self.path.clone(), msg.clone());
        dir.background(move || {
            let mut s = lock(&shared);
            if s.file.is_none() {
                s.file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .open(&path)
                    .ok();
            }
            let (head, body) = msg.raw_parts();
            let written = s.file.as_ref().map(|f| {
                f.write_all_at(head, at)?;
                f.write_all_at(body, at + head.len() as u64)
            });
            if !matches!(written, Some(Ok(()))) {
                s.unwritten.insert(at, [head, body].concat());
            }
        });
        Some(Spilled { at, len })
    }

    /// Reads `which` back on the I/O thread (after every write queued so far), in order;
    /// a message that cannot be read back is `None`. Empties the file when these were
    /// the last ones in it.
    pub fn read(
        &mut self,
        dir: &PageDir,
        which: Vec<Spilled>,
    ) -> oneshot::Receiver<Vec<Option<Message>>> {
        let (tx, rx) = oneshot::channel();
        self.live = self.live.saturating_sub(which.len() as u64);
        let shared = self.shared.clone();
        dir.background(move || {
            let mut s = lock(&shared);
            let out = which.iter().map(|w| read_one(&mut s, *w)).collect();
            let _ = tx.send(out);
        });
        self.empty_if_unused(dir);
        rx
    }

    /// Spilled messages were dropped (their exchange or vhost deleted).
    pub fn forget(&mut self, dir: &PageDir, dropped: u64) {
        self.live = self.live.saturating_sub(dropped);
        self.empty_if_unused(dir);
    }

    fn empty_if_unused(&mut self, dir: &PageDir) {
        if self.live > 0 || self.end == 0 {
            return;
        }
        self.end = 0;
        let shared = self.shared.clone();
        dir.background(move || {
            let mut s = lock(&shared);
            s.unwritten.clear();
            if let Some(f) = &s.file {
                if f.set_len(0).is_err() {
                    // Cannot shrink it: start a new file on the next write.
                    s.file = None;
                }
            }
        });
    }
}

fn read_one(s: &mut Shared, w: Spilled) -> Option<Message> {
    if let Some(bytes) = s.unwritten.remove(&w.at) {
        return Message::from_raw(&bytes);
    }
    let mut buf = vec![0u8; w.len as usize];
    s.file.as_ref()?.read_exact_at(&mut buf, w.at).ok()?;
    Message::from_raw(&buf)
}
