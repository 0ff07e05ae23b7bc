//! Where a stream's segment and index files live: a directory on disk, or memory (the
//! broker's in-memory mode, `--in-memory` / `--data-dir none`).
//!
//! `StreamLog` (appends, retention, deletion), `StreamReader` and `ChunkSource` (reads)
//! go through `Home` and `SegFile` instead of the file system, so the in-memory log is
//! the same log: the same chunk format and checks, offsets, sparse index, readers and
//! retention dropping whole segments. Only the bytes' home differs. A memory file is a
//! list of fixed-size blocks (growing it never copies what is written, and wastes at
//! most one block), counted against the broker's memory accounting while it exists, so
//! an in-memory stream raises the memory alarm as queued messages do and gives the
//! memory back when retention or deletion drops its segments. Memory files never fail
//! and have nothing to sync. Locks here are short and memory-only (one per file, one for
//! the list of files); no disk I/O happens for a memory home.

use super::segment::{index_path, segment_path};
use crate::broker::memory::Memory;
use std::collections::BTreeMap;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

/// Bytes per block of a memory file.
const BLOCK: usize = 64 * 1024;

/// Reading at a position, from a file on disk or in memory.
pub(crate) trait ReadAt {
    /// Reads into `buf` from `pos`; 0 at the end.
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize>;
}

impl ReadAt for File {
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        FileExt::read_at(self, buf, pos)
    }
}

/// A segment or index file.
#[derive(Debug)]
pub(crate) enum SegFile {
    Disk(File),
    Memory(Arc<MemFile>),
}

impl SegFile {
    pub(crate) fn write_all_at(&self, buf: &[u8], pos: u64) -> io::Result<()> {
        match self {
            SegFile::Disk(f) => f.write_all_at(buf, pos),
            SegFile::Memory(m) => {
                m.write_at(buf, pos);
                Ok(())
            }
        }
    }

    pub(crate) fn set_len(&self, len: u64) -> io::Result<()> {
        match self {
            SegFile::Disk(f) => f.set_len(len),
            SegFile::Memory(m) => {
                m.set_len(len);
                Ok(())
            }
        }
    }

    /// fdatasync on disk; nothing to do in memory.
    pub(crate) fn sync_data(&self) -> io::Result<()> {
        match self {
            SegFile::Disk(f) => f.sync_data(),
            SegFile::Memory(_) => Ok(()),
        }
    }
}

impl ReadAt for SegFile {
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        match self {
            SegFile::Disk(f) => FileExt::read_at(f, buf, pos),
            SegFile::Memory(m) => Ok(m.read_at(buf, pos)),
        }
    }
}

/// A file in memory: blocks of `BLOCK` bytes and a length.
pub(crate) struct MemFile {
    data: RwLock<MemData>,
    /// Where its blocks are counted (none in unit tests of the log alone).
    memory: Option<Arc<Memory>>,
}

#[derive(Default)]
struct MemData {
    blocks: Vec<Box<[u8]>>,
    len: u64,
}

impl fmt::Debug for MemFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemFile").field("len", &self.len()).finish()
    }
}

impl MemFile {
    fn new(memory: Option<Arc<Memory>>) -> Self {
        MemFile {
            data: RwLock::default(),
            memory,
        }
    }

    fn data(&self) -> std::sync::RwLockReadGuard<'_, MemData> {
        self.data.read().unwrap_or_else(|e| e.into_inner())
    }

    fn data_mut(&self) -> std::sync::RwLockWriteGuard<'_, MemData> {
        self.data.write().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn len(&self) -> u64 {
        self.data().len
    }

    /// Writes `buf` at `pos`, growing the file (zeros in any gap) as a file would.
    fn write_at(&self, buf: &[u8], pos: u64) {
        let mut d = self.data_mut();
        let end = pos + buf.len() as u64;
        let need = (end as usize).div_ceil(BLOCK);
        let grown = need.saturating_sub(d.blocks.len());
        for _ in 0..grown {
            d.blocks.push(vec![0u8; BLOCK].into_boxed_slice());
        }
        if grown > 0 {
            if let Some(m) = &self.memory {
                m.add(grown * BLOCK);
            }
        }
        let mut at = pos as usize;
        let mut rest = buf;
        while !rest.is_empty() {
            let (block, within) = (at / BLOCK, at % BLOCK);
            let n = rest.len().min(BLOCK - within);
            d.blocks[block][within..within + n].copy_from_slice(&rest[..n]);
            at += n;
            rest = &rest[n..];
        }
        d.len = d.len.max(end);
    }

    /// Copies what the file has from `pos` into `buf`; how many bytes.
    fn read_at(&self, buf: &mut [u8], pos: u64) -> usize {
        let d = self.data();
        let avail = d.len.saturating_sub(pos).min(buf.len() as u64) as usize;
        let mut at = pos as usize;
        let mut done = 0;
        while done < avail {
            let (block, within) = (at / BLOCK, at % BLOCK);
            let n = (avail - done).min(BLOCK - within);
            buf[done..done + n].copy_from_slice(&d.blocks[block][within..within + n]);
            at += n;
            done += n;
        }
        avail
    }

    /// Cuts (or extends with zeros) the file to `len`; freed blocks are given back.
    fn set_len(&self, len: u64) {
        let mut d = self.data_mut();
        let keep = (len as usize).div_ceil(BLOCK);
        if keep < d.blocks.len() {
            let freed = d.blocks.len() - keep;
            d.blocks.truncate(keep);
            if let Some(m) = &self.memory {
                m.sub(freed * BLOCK);
            }
        }
        if len > d.len {
            drop(d);
            // Zeros up to `len`, as ftruncate gives (blocks start zeroed, and cuts
            // zero what they leave behind in their last block).
            self.write_at(&[], len);
            return;
        }
        // Bytes past the new end inside the last block are zeroed, so a later extension
        // reads zeros there as on disk.
        let (block, within) = (len as usize / BLOCK, len as usize % BLOCK);
        if let Some(b) = d.blocks.get_mut(block) {
            b[within..].fill(0);
        }
        d.len = len;
    }
}

impl Drop for MemFile {
    fn drop(&mut self) {
        let blocks = self.data_mut().blocks.len();
        if let Some(m) = &self.memory {
            m.sub(blocks * BLOCK);
        }
    }
}

/// A stream's files by (base offset, is index), in memory.
#[derive(Debug, Default)]
pub(crate) struct MemDir {
    files: Mutex<BTreeMap<(u64, bool), Arc<MemFile>>>,
    memory: Option<Arc<Memory>>,
}

/// Where one stream's files are.
#[derive(Debug)]
pub(crate) enum Home {
    Dir(PathBuf),
    Memory(MemDir),
}

impl fmt::Display for Home {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Home::Dir(dir) => write!(f, "{}", dir.display()),
            Home::Memory(_) => f.write_str("(in memory)"),
        }
    }
}

impl Home {
    /// The directory, for a home on disk.
    pub(crate) fn dir(&self) -> Option<&Path> {
        match self {
            Home::Dir(dir) => Some(dir),
            Home::Memory(_) => None,
        }
    }

    /// Creates an empty segment and its index at `base` (headers written; on disk
    /// synced with their directory).
    pub(crate) fn create_segment(&self, base: u64) -> io::Result<(SegFile, SegFile)> {
        match self {
            Home::Dir(dir) => {
                let (file, index) = create_segment_files(dir, base)?;
                Ok((SegFile::Disk(file), SegFile::Disk(index)))
            }
            Home::Memory(m) => Ok(m.create_segment(base)),
        }
    }

    /// Opens a segment (`index` false) or its index for reading; `NotFound` once
    /// retention or deletion removed it.
    pub(crate) fn open(&self, base: u64, index: bool) -> io::Result<SegFile> {
        match self {
            Home::Dir(dir) => {
                let path = match index {
                    true => index_path(dir, base),
                    false => segment_path(dir, base),
                };
                File::open(path).map(SegFile::Disk)
            }
            Home::Memory(m) => m
                .lock()
                .get(&(base, index))
                .cloned()
                .map(SegFile::Memory)
                .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "segment removed")),
        }
    }

    /// Removes a segment and its index (retention). Readers that have it open keep
    /// reading what they hold; on disk as unlinked files do.
    pub(crate) fn remove_segment(&self, base: u64) -> io::Result<()> {
        match self {
            Home::Dir(dir) => {
                remove_if_there(&segment_path(dir, base))?;
                remove_if_there(&index_path(dir, base))
            }
            Home::Memory(m) => {
                let mut files = m.lock();
                files.remove(&(base, false));
                files.remove(&(base, true));
                Ok(())
            }
        }
    }

    /// Removes every file (and the directory). In memory every file is emptied at once,
    /// so the memory comes back even while a reader or the appender still holds one.
    pub(crate) fn destroy(&self) -> io::Result<()> {
        match self {
            Home::Dir(dir) => match std::fs::remove_dir_all(dir) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            },
            Home::Memory(m) => {
                let files = std::mem::take(&mut *m.lock());
                for f in files.values() {
                    f.set_len(0);
                }
                Ok(())
            }
        }
    }
}

impl MemDir {
    /// An empty directory in memory, its files counted in `memory` when given.
    pub(crate) fn new(memory: Option<Arc<Memory>>) -> MemDir {
        MemDir {
            files: Mutex::default(),
            memory,
        }
    }

    /// `Home::create_segment`, which cannot fail in memory.
    pub(crate) fn create_segment(&self, base: u64) -> (SegFile, SegFile) {
        let mut files = self.lock();
        let mut make = |is_index: bool, magic: &[u8]| {
            let f = Arc::new(MemFile::new(self.memory.clone()));
            f.write_at(magic, 0);
            files.insert((base, is_index), f.clone());
            SegFile::Memory(f)
        };
        let file = make(false, &super::format::SEGMENT_MAGIC);
        let index = make(true, &super::index::INDEX_MAGIC);
        (file, index)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(u64, bool), Arc<MemFile>>> {
        self.files.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn remove_if_there(path: &Path) -> io::Result<()> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Creates an empty segment file and its index at `base` in `dir` (headers written,
/// directory synced).
pub(crate) fn create_segment_files(dir: &Path, base: u64) -> io::Result<(File, File)> {
    let open = |p: PathBuf| {
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(p)
    };
    let file = open(segment_path(dir, base))?;
    file.write_all_at(&super::format::SEGMENT_MAGIC, 0)?;
    let index = open(index_path(dir, base))?;
    index.write_all_at(&super::index::INDEX_MAGIC, 0)?;
    file.sync_data()?;
    index.sync_data()?;
    sync_dir(dir)?;
    Ok((file, index))
}

pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_memory_file_reads_back_what_was_written_across_blocks_and_counts_its_blocks() {
        let memory = Memory::new(u64::MAX);
        let f = MemFile::new(Some(memory.clone()));
        let data: Vec<u8> = (0..BLOCK * 2 + 10).map(|i| i as u8).collect();
        f.write_at(&data[..5], 0);
        f.write_at(&data[5..], 5);
        assert_eq!(f.len(), data.len() as u64);
        assert_eq!(memory.used(), 3 * BLOCK as u64);
        let mut back = vec![0u8; data.len() + 100];
        assert_eq!(f.read_at(&mut back, 0), data.len());
        assert_eq!(&back[..data.len()], &data[..]);
        let mut mid = vec![0u8; 20];
        assert_eq!(f.read_at(&mut mid, BLOCK as u64 - 10), 20);
        assert_eq!(&mid[..], &data[BLOCK - 10..BLOCK + 10]);
        assert_eq!(f.read_at(&mut mid, data.len() as u64 + 1), 0);
        f.set_len(BLOCK as u64 - 1);
        assert_eq!(memory.used(), BLOCK as u64, "freed blocks are given back");
        f.set_len(BLOCK as u64 + 2);
        let mut tail = [9u8; 3];
        assert_eq!(f.read_at(&mut tail, BLOCK as u64 - 1), 3);
        assert_eq!(tail, [0, 0, 0], "an extension reads zeros, as on disk");
        drop(f);
        assert_eq!(memory.used(), 0, "a dropped file gives its blocks back");
    }

    #[test]
    fn a_memory_home_removes_segments_and_empties_everything_when_destroyed() {
        let memory = Memory::new(u64::MAX);
        let home = Home::Memory(MemDir::new(Some(memory.clone())));
        let (seg, _index) = home.create_segment(0).expect("create");
        seg.write_all_at(b"more", 8).expect("write");
        home.create_segment(7).expect("create");
        assert!(home.open(0, false).is_ok() && home.open(7, true).is_ok());
        home.remove_segment(7).expect("remove");
        let gone = home.open(7, false).expect_err("removed");
        assert_eq!(gone.kind(), io::ErrorKind::NotFound);
        home.destroy().expect("destroy");
        assert_eq!(memory.used(), 0, "held files are emptied too");
        assert!(home.open(0, false).is_err());
    }
}
