//! Sparse `.index` (offset -> position) and `.timeindex` (timestamp -> offset) files.
//!
//! Both are arrays of fixed-size big-endian entries. While a segment is active its entries live in
//! memory (a `Vec` mirror of the file) and are written to the preallocated file in one positional
//! write at flush, roll and close, not on every append; recovery rebuilds the active segment's
//! indexes after a crash anyway. Once sealed, an index is trimmed, fsynced and memory-mapped.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use crate::backend::StorageFile;
use crate::error::{Result, StorageError};
use crate::mmap;

/// `.index` entry: 4-byte offset relative to the segment base + 4-byte position in the `.log`.
pub(crate) const OFFSET_ENTRY_BYTES: usize = 8;
/// `.timeindex` entry: 8-byte timestamp + 4-byte relative offset.
pub(crate) const TIME_ENTRY_BYTES: usize = 12;

#[derive(Debug)]
enum Data {
    /// Active: the file's entries mirrored in memory; `persisted` bytes of it are in the file.
    Owned { buf: Vec<u8>, persisted: usize },
    /// Sealed: a read-only map of the trimmed file.
    Mapped(Bytes),
}

/// One index file of either kind.
#[derive(Debug)]
pub(crate) struct IndexFile {
    path: PathBuf,
    file: Arc<dyn StorageFile>,
    data: Data,
    entry_bytes: usize,
    /// Entry capacity while active (`segment.index.bytes / entry size`, as Kafka).
    max_entries: usize,
}

fn be_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_be_bytes(a)
}
fn be_i64(b: &[u8]) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    i64::from_be_bytes(a)
}

impl IndexFile {
    /// A fresh, empty, active index (file created or emptied, then preallocated).
    pub fn create_active(
        path: PathBuf,
        file: Arc<dyn StorageFile>,
        entry_bytes: usize,
        index_bytes: u32,
    ) -> Result<Self> {
        let max_entries = (index_bytes as usize / entry_bytes).max(1);
        let mut idx = IndexFile {
            path,
            file,
            data: Data::Owned {
                buf: Vec::new(),
                persisted: 0,
            },
            entry_bytes,
            max_entries,
        };
        idx.preallocate()?;
        Ok(idx)
    }

    /// An active index loaded from `entries` (already validated) that are in the file.
    pub fn open_active(
        path: PathBuf,
        file: Arc<dyn StorageFile>,
        entry_bytes: usize,
        index_bytes: u32,
        entries: Vec<u8>,
    ) -> Result<Self> {
        let persisted = entries.len();
        let mut idx = IndexFile {
            path,
            file,
            data: Data::Owned {
                buf: entries,
                persisted,
            },
            entry_bytes,
            max_entries: (index_bytes as usize / entry_bytes).max(1),
        };
        idx.preallocate()?;
        Ok(idx)
    }

    /// A sealed index over an already trimmed file, given its mapped (or read) content.
    pub fn open_sealed(
        path: PathBuf,
        file: Arc<dyn StorageFile>,
        entry_bytes: usize,
        data: Bytes,
    ) -> Self {
        let usable = data.len() - data.len() % entry_bytes;
        IndexFile {
            path,
            file,
            data: Data::Mapped(data.slice(..usable)),
            entry_bytes,
            max_entries: usable / entry_bytes,
        }
    }

    fn preallocate(&mut self) -> Result<()> {
        // Kafka preallocates active indexes to their maximum size (rounded to whole entries).
        let len = (self.max_entries * self.entry_bytes) as u64;
        self.file
            .set_len(len)
            .map_err(|e| StorageError::io(&self.path, e))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn bytes(&self) -> &[u8] {
        match &self.data {
            Data::Owned { buf, .. } => buf,
            Data::Mapped(b) => b,
        }
    }

    pub fn entries(&self) -> usize {
        self.bytes().len() / self.entry_bytes
    }

    pub fn is_full(&self) -> bool {
        self.entries() >= self.max_entries
    }

    fn entry(&self, i: usize) -> &[u8] {
        &self.bytes()[i * self.entry_bytes..(i + 1) * self.entry_bytes]
    }

    /// Appends raw entry bytes (active only; dropped when full, which only makes the index sparser).
    fn push(&mut self, entry: &[u8]) {
        let full = self.is_full();
        if let Data::Owned { buf, .. } = &mut self.data {
            if !full {
                buf.extend_from_slice(entry);
            }
        }
    }

    /// Drops entries from index `n` on (active only).
    pub fn truncate_entries(&mut self, n: usize) {
        let eb = self.entry_bytes;
        if let Data::Owned { buf, persisted } = &mut self.data {
            buf.truncate(n * eb);
            *persisted = (*persisted).min(buf.len());
        }
    }

    /// Writes entries not yet in the file with one positional write.
    pub fn write_tail(&mut self) -> Result<()> {
        if let Data::Owned { buf, persisted } = &mut self.data {
            if *persisted < buf.len() {
                self.file
                    .write_all_at(&buf[*persisted..], *persisted as u64)
                    .map_err(|e| StorageError::io(&self.path, e))?;
                *persisted = buf.len();
            }
        }
        Ok(())
    }

    pub fn sync(&self) -> Result<()> {
        self.file
            .sync()
            .map_err(|e| StorageError::io(&self.path, e))
    }

    /// Writes the tail and trims the file to its entries (no fsync).
    pub fn trim(&mut self) -> Result<()> {
        self.write_tail()?;
        if let Data::Owned { buf, .. } = &self.data {
            self.file
                .set_len(buf.len() as u64)
                .map_err(|e| StorageError::io(&self.path, e))?;
        }
        Ok(())
    }

    /// The file handle (to fsync a sealed index outside the log's lock).
    pub fn file(&self) -> &Arc<dyn StorageFile> {
        &self.file
    }

    /// Trims and maps the index: the segment stops being active. No fsync here: the sealed files
    /// are fsynced by the next flush, off the append path.
    pub fn seal(&mut self) -> Result<()> {
        self.trim()?;
        if matches!(self.data, Data::Owned { .. }) {
            let data = map_or_read(&self.path, self.file.as_ref())?;
            self.max_entries = data.len() / self.entry_bytes;
            self.data = Data::Mapped(data);
        }
        Ok(())
    }

    // ---- offset index ----

    pub fn offset_entry(&self, i: usize) -> (u32, u32) {
        let e = self.entry(i);
        (be_u32(&e[0..4]), be_u32(&e[4..8]))
    }

    pub fn push_offset(&mut self, rel_offset: u32, position: u32) {
        let mut e = [0u8; OFFSET_ENTRY_BYTES];
        e[0..4].copy_from_slice(&rel_offset.to_be_bytes());
        e[4..8].copy_from_slice(&position.to_be_bytes());
        self.push(&e);
    }

    /// The last entry whose relative offset is <= `rel_offset`.
    pub fn lookup_offset(&self, rel_offset: u32) -> Option<(u32, u32)> {
        let n = self.entries();
        // First entry with offset > target; the answer is the one before it.
        let idx = partition_point(n, |i| self.offset_entry(i).0 <= rel_offset);
        idx.checked_sub(1).map(|i| self.offset_entry(i))
    }

    // ---- time index ----

    pub fn time_entry(&self, i: usize) -> (i64, u32) {
        let e = self.entry(i);
        (be_i64(&e[0..8]), be_u32(&e[8..12]))
    }

    pub fn last_time_entry(&self) -> Option<(i64, u32)> {
        self.entries().checked_sub(1).map(|i| self.time_entry(i))
    }

    /// Appends a time entry if `timestamp` is larger than the last one (Kafka's `maybeAppend`).
    pub fn maybe_push_time(&mut self, timestamp: i64, rel_offset: u32) {
        if let Some((last_ts, _)) = self.last_time_entry() {
            if timestamp <= last_ts {
                return;
            }
        }
        let mut e = [0u8; TIME_ENTRY_BYTES];
        e[0..8].copy_from_slice(&timestamp.to_be_bytes());
        e[8..12].copy_from_slice(&rel_offset.to_be_bytes());
        self.push(&e);
    }

    /// The last entry whose timestamp is <= `timestamp`.
    pub fn lookup_time(&self, timestamp: i64) -> Option<(i64, u32)> {
        let n = self.entries();
        let idx = partition_point(n, |i| self.time_entry(i).0 <= timestamp);
        idx.checked_sub(1).map(|i| self.time_entry(i))
    }
}

fn partition_point(n: usize, pred: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (0usize, n);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if pred(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

/// Reads a whole (index) file with one positional read; used for files that are about to be
/// written again, which must not be mapped.
pub(crate) fn read_all(path: &Path, file: &dyn StorageFile) -> Result<Vec<u8>> {
    let len = file.len().map_err(|e| StorageError::io(path, e))?;
    let len =
        usize::try_from(len).map_err(|_| StorageError::corrupt(path, "file too large to read"))?;
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, 0)
        .map_err(|e| StorageError::io(path, e))?;
    Ok(buf)
}

/// Maps a sealed file, or reads it whole when the backend has no OS file to map.
pub(crate) fn map_or_read(path: &Path, file: &dyn StorageFile) -> Result<Bytes> {
    match file.std_file() {
        Some(f) => mmap::map_sealed(f).map_err(|e| StorageError::io(path, e)),
        None => read_all(path, file).map(Bytes::from),
    }
}

/// Checks the raw entries of an offset index against the segment they index: whole entries,
/// strictly increasing offsets and positions, offsets below `rel_limit` (exclusive) and positions
/// inside the log. Kafka never writes an entry at position 0 (the first entry comes after at
/// least `index.interval.bytes` of log), so a zero position means preallocated, unwritten space.
pub(crate) fn offset_index_valid(raw: &[u8], rel_limit: u64, log_bytes: u64) -> bool {
    if !raw.chunks_exact(OFFSET_ENTRY_BYTES).remainder().is_empty() {
        return false;
    }
    let mut prev: Option<(u32, u32)> = None;
    for e in raw.chunks_exact(OFFSET_ENTRY_BYTES) {
        let (rel, pos) = (be_u32(&e[0..4]), be_u32(&e[4..8]));
        if pos == 0 || u64::from(pos) >= log_bytes || u64::from(rel) >= rel_limit {
            return false;
        }
        if let Some((pr, pp)) = prev {
            if rel <= pr || pos <= pp {
                return false;
            }
        }
        prev = Some((rel, pos));
    }
    true
}

/// Checks a time index: whole entries, strictly increasing timestamps, non-decreasing offsets
/// below `rel_limit`.
pub(crate) fn time_index_valid(raw: &[u8], rel_limit: u64) -> bool {
    if !raw.chunks_exact(TIME_ENTRY_BYTES).remainder().is_empty() {
        return false;
    }
    let mut prev: Option<(i64, u32)> = None;
    for e in raw.chunks_exact(TIME_ENTRY_BYTES) {
        let (ts, rel) = (be_i64(&e[0..8]), be_u32(&e[8..12]));
        if u64::from(rel) >= rel_limit {
            return false;
        }
        if let Some((pt, pr)) = prev {
            if ts <= pt || rel < pr {
                return false;
            }
        }
        prev = Some((ts, rel));
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entries(v: &[(u32, u32)]) -> Vec<u8> {
        v.iter()
            .flat_map(|(r, p)| r.to_be_bytes().into_iter().chain(p.to_be_bytes()))
            .collect()
    }

    #[test]
    fn offset_index_validation() {
        assert!(offset_index_valid(&[], 10, 100));
        assert!(offset_index_valid(&entries(&[(1, 10), (5, 50)]), 10, 100));
        assert!(!offset_index_valid(
            &entries(&[(1, 10), (5, 50)])[..12],
            10,
            100
        ));
        assert!(!offset_index_valid(&entries(&[(5, 10), (1, 50)]), 10, 100));
        assert!(!offset_index_valid(&entries(&[(1, 50), (5, 10)]), 10, 100));
        assert!(!offset_index_valid(&entries(&[(1, 10), (5, 100)]), 10, 100));
        assert!(!offset_index_valid(&entries(&[(1, 10), (10, 50)]), 10, 100));
        // Preallocated zeros after real entries.
        assert!(!offset_index_valid(&entries(&[(1, 10), (0, 0)]), 10, 100));
    }

    #[test]
    fn time_index_validation() {
        let t = |v: &[(i64, u32)]| -> Vec<u8> {
            v.iter()
                .flat_map(|(ts, r)| ts.to_be_bytes().into_iter().chain(r.to_be_bytes()))
                .collect()
        };
        assert!(time_index_valid(&t(&[(5, 0), (9, 3)]), 10));
        assert!(!time_index_valid(&t(&[(9, 0), (5, 3)]), 10));
        assert!(!time_index_valid(&t(&[(5, 3), (9, 2)]), 10));
        assert!(!time_index_valid(&t(&[(5, 10)]), 10));
        assert!(!time_index_valid(&t(&[(5, 0), (0, 0)]), 10));
        assert!(!time_index_valid(&t(&[(5, 0)])[..7], 10));
    }

    #[test]
    fn partition_point_finds_floor_entry() {
        let v = [2u32, 3, 3, 7];
        assert_eq!(partition_point(v.len(), |i| v[i] <= 1), 0);
        assert_eq!(partition_point(v.len(), |i| v[i] <= 3), 3);
        assert_eq!(partition_point(v.len(), |i| v[i] <= 9), 4);
    }
}
