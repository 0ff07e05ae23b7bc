//! Opening a stream's directory after a restart or a crash: which segments there are,
//! what each holds, and where the log really ends.
//!
//! Called once by `StreamLog::open`, on the caller's (blocking) thread. For each segment
//! it trusts the index file's good prefix (checked record by record) and reads from the
//! segment only the chunk the last index record points at and whatever follows it: so a
//! clean log costs its index files plus one chunk per segment, and after kill -9 only the
//! last segment's tail is scanned. The first torn or corrupt chunk ends that segment (the
//! file is cut there and the index rewritten); damage that cuts an older segment short
//! ends the whole log there (newer segments are deleted, since offsets must stay
//! consecutive). Every
//! drop is logged with what was lost. Never panics on what it reads.

use super::chunks::{ChunkSource, Next};
use super::format::{decode_header, verify, SEGMENT_HEADER, SEGMENT_MAGIC};
use super::index::{self, read_up_to, IndexRecord, INDEX_MAGIC};
use super::log::Recovered;
use super::segment::{index_path, parse_name, segment_path, FileKind, Segment};
use super::storage::{create_segment_files as create_segment, sync_dir, SegFile};
use std::collections::{BTreeSet, VecDeque};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::Path;

/// Index records written at a time while rebuilding an index.
const INDEX_BATCH: usize = 2048;

pub(crate) fn recover(dir: &Path) -> io::Result<Recovered> {
    std::fs::create_dir_all(dir)?;
    let (bases, indexes) = list(dir)?;
    for orphan in indexes.difference(&bases) {
        std::fs::remove_file(index_path(dir, *orphan))?;
    }
    let bases: Vec<u64> = bases.into_iter().collect();
    if bases.is_empty() {
        let (active, active_index) = create_segment(dir, 0)?;
        return Ok(Recovered {
            segments: VecDeque::from([Segment::empty(0)]),
            active,
            active_index,
        });
    }
    let mut segments = VecDeque::new();
    let mut opened = None;
    for (i, &base) in bases.iter().enumerate() {
        if let Some(prev) = segments.back().map(|s: &Segment| s.end) {
            if prev != base {
                tracing::warn!(dir = %dir.display(), expected = prev, found = base,
                    "stream segments are not consecutive; the log ends at the gap");
                drop_from(dir, &bases[i..])?;
                break;
            }
        }
        let open_rw = |p| OpenOptions::new().read(true).write(true).open(p);
        let file = open_rw(segment_path(dir, base))?;
        let index = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(index_path(dir, base))?;
        // A segment cut short by damage leaves a gap before the next one, which ends
        // the log there (above); bytes merely trailing a complete segment do not.
        segments.push_back(recover_segment(dir, base, &file, &index)?);
        opened = Some((file, index));
    }
    let Some((active, active_index)) = opened else {
        return Err(io::Error::other("stream recovery found no segment"));
    };
    active.sync_data()?;
    active_index.sync_data()?;
    Ok(Recovered {
        segments,
        active,
        active_index,
    })
}

/// Segment and index files in `dir`, by base offset. Other files are left alone.
fn list(dir: &Path) -> io::Result<(BTreeSet<u64>, BTreeSet<u64>)> {
    let (mut segments, mut indexes) = (BTreeSet::new(), BTreeSet::new());
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        match entry.file_name().to_str().and_then(parse_name) {
            Some(FileKind::Segment(b)) => segments.insert(b),
            Some(FileKind::Index(b)) => indexes.insert(b),
            None => false,
        };
    }
    Ok((segments, indexes))
}

/// Deletes segments (and their indexes) past damage, saying what is lost.
fn drop_from(dir: &Path, bases: &[u64]) -> io::Result<()> {
    for &base in bases {
        let path = segment_path(dir, base);
        let bytes = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        tracing::warn!(dir = %dir.display(), segment = base, bytes, "dropping a stream segment after damage");
        std::fs::remove_file(&path)?;
        let _ = std::fs::remove_file(index_path(dir, base));
    }
    sync_dir(dir)
}

/// One segment: its good index prefix, then its chunks from the last indexed one on;
/// cut after its last good chunk.
fn recover_segment(dir: &Path, base: u64, file: &File, index: &File) -> io::Result<Segment> {
    let len = file.metadata()?.len();
    let mut magic = [0u8; 8];
    if read_up_to(file, &mut magic, 0)? < magic.len() || magic != SEGMENT_MAGIC {
        tracing::warn!(dir = %dir.display(), segment = base, bytes = len, "stream segment without a header; emptied");
        file.set_len(0)?;
        file.write_all_at(&SEGMENT_MAGIC, 0)?;
        reset_index(index)?;
        return Ok(Segment::empty(base));
    }
    let mut seg = Segment::empty(base);
    let mut prev: Option<IndexRecord> = None;
    let mut stopped = false;
    index::load(index, base, |r| {
        if stopped {
            return;
        }
        let fits = r.pos + super::format::CHUNK_HEADER as u64 <= len;
        match prev {
            None if r.pos != SEGMENT_HEADER || !fits => stopped = true,
            Some(p) if r.pos <= p.pos || !fits => stopped = true,
            Some(p) => seg.add_chunk(&p, r.pos - p.pos),
            None => {}
        }
        if !stopped {
            prev = Some(r);
        }
    })?;
    // The last indexed chunk must be there, whole and as the index says; otherwise the
    // index is not to be trusted and the segment is read from its start.
    let resume = match prev {
        Some(p) => match chunk_len_at(file, &p, len)? {
            Some(total) => {
                seg.add_chunk(&p, total);
                Some(p.pos + total)
            }
            None => None,
        },
        None => None,
    };
    let (from, kept) = match resume {
        Some(pos) => (pos, seg.records),
        None => {
            seg = Segment::empty(base);
            (SEGMENT_HEADER, 0)
        }
    };
    let (end, why) = scan(file, from, len, &mut seg, index, kept)?;
    if end < len {
        tracing::warn!(dir = %dir.display(), segment = base, at_offset = seg.end, bytes_dropped = len - end,
            reason = why.unwrap_or("torn write"), "stream log cut at damage");
        file.set_len(end)?;
        file.sync_data()?;
    }
    Ok(seg)
}

/// The length of the chunk `r` points at, if it is there whole, checks, and matches `r`.
fn chunk_len_at(file: &File, r: &IndexRecord, len: u64) -> io::Result<Option<u64>> {
    let mut head = [0u8; super::format::CHUNK_HEADER];
    if read_up_to(file, &mut head, r.pos)? < head.len() {
        return Ok(None);
    }
    let Ok(h) = decode_header(&head) else {
        return Ok(None);
    };
    if h.first_offset != r.first_offset || h.count != r.count || r.pos + h.total_len() > len {
        return Ok(None);
    }
    let mut whole = vec![0u8; h.total_len() as usize];
    file.read_exact_at(&mut whole, r.pos)?;
    Ok(verify(&h, &whole).ok().map(|_| h.total_len()))
}

/// Reads chunks from `from` to the end of the file, adding them to `seg` and to the
/// index (after its first `kept` records). Returns where the good chunks end and why
/// reading stopped before the file's end.
fn scan(
    file: &File,
    from: u64,
    len: u64,
    seg: &mut Segment,
    index: &File,
    kept: u64,
) -> io::Result<(u64, Option<&'static str>)> {
    let mut source = ChunkSource::new(SegFile::Disk(file.try_clone()?), from);
    let mut out = Vec::new();
    let mut written = kept;
    if kept == 0 {
        reset_index(index)?;
    } else {
        index.set_len(index::record_pos(kept))?;
    }
    let mut why = None;
    loop {
        match source.next_chunk(len, 0)? {
            Next::Chunk(h, at, _) if h.first_offset == seg.end => {
                let r = IndexRecord::of(&h, at);
                seg.add_chunk(&r, h.total_len());
                r.encode(&mut out);
                if out.len() >= INDEX_BATCH * index::RECORD {
                    index.write_all_at(&out, index::record_pos(written))?;
                    written += (out.len() / index::RECORD) as u64;
                    out.clear();
                }
            }
            Next::Chunk(..) => {
                why = Some("chunk offset out of sequence");
                break;
            }
            Next::Bad(reason) => {
                why = Some(reason);
                break;
            }
            Next::End => break,
        }
    }
    index.write_all_at(&out, index::record_pos(written))?;
    Ok((seg.size, why))
}

/// Empties an index file (its header only).
fn reset_index(index: &File) -> io::Result<()> {
    index.set_len(0)?;
    index.write_all_at(&INDEX_MAGIC, 0)
}
