//! The aborted-transaction index: `<20-digit base offset>.txnindex` next to each segment, in
//! Kafka's format (`TransactionIndex` / `AbortedTxn`).
//!
//! One entry per ABORT marker written in the segment, in marker order (so with strictly
//! increasing last offsets), each 34 bytes, big-endian:
//!
//! ```text
//! i16 version (0)
//! i64 producer id
//! i64 first offset        of the aborted transaction (may lie in an earlier segment)
//! i64 last offset         the offset of the ABORT marker
//! i64 last stable offset  when the marker was written: the first offset of the oldest other
//!                         open transaction, or the marker's offset + 1 if there was none
//! ```
//!
//! The file is not preallocated (unlike `.index` / `.timeindex`). While the segment is active the
//! entries are mirrored in memory and the new ones are written with one positional write at
//! flush, roll and close, like the other indexes; recovery rebuilds the active segment's entries
//! after a crash anyway. Once sealed the file is mapped and never written again (see `mmap`).
//!
//! Kafka creates the file lazily, at the first abort; this crate creates it (empty) with the
//! segment, so that a missing file means a lost one, which [`crate::Log::open`] rebuilds.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use crate::backend::{Backend, StorageFile};
use crate::error::{Result, StorageError};
use crate::index::{map_or_read, read_all};
use crate::segment::{remove_if_exists, segment_path};

/// Kafka's `LogFileUtils.TXN_INDEX_FILE_SUFFIX`.
pub(crate) const TXN_INDEX_SUFFIX: &str = ".txnindex";
/// Size of one entry (Kafka's `AbortedTxn.TOTAL_SIZE`).
pub const ABORTED_TXN_BYTES: usize = 2 + 8 + 8 + 8 + 8;
/// The only entry version (Kafka's `AbortedTxn.CURRENT_VERSION`).
pub const ABORTED_TXN_VERSION: i16 = 0;

/// One aborted transaction, as the transaction index stores it. Fetch responses at
/// READ_COMMITTED carry `producer_id` and `first_offset` of the ones overlapping the returned
/// records (`FetchResponse.AbortedTransaction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct AbortedTxn {
    /// The producer whose transaction was aborted.
    pub producer_id: i64,
    /// Offset of the transaction's first batch.
    pub first_offset: i64,
    /// Offset of the ABORT marker.
    pub last_offset: i64,
    /// The last stable offset when the marker was written (bounds the search, see
    /// [`crate::Log::aborted_transactions`]).
    pub last_stable_offset: i64,
}

fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

impl AbortedTxn {
    /// The 34-byte index entry.
    pub fn to_bytes(&self) -> [u8; ABORTED_TXN_BYTES] {
        let mut e = [0u8; ABORTED_TXN_BYTES];
        e[0..2].copy_from_slice(&ABORTED_TXN_VERSION.to_be_bytes());
        e[2..10].copy_from_slice(&self.producer_id.to_be_bytes());
        e[10..18].copy_from_slice(&self.first_offset.to_be_bytes());
        e[18..26].copy_from_slice(&self.last_offset.to_be_bytes());
        e[26..34].copy_from_slice(&self.last_stable_offset.to_be_bytes());
        e
    }

    /// Decodes one entry; `None` unless `bytes` is one entry of version 0.
    pub fn from_bytes(bytes: &[u8]) -> Option<AbortedTxn> {
        if bytes.len() != ABORTED_TXN_BYTES
            || i16::from_be_bytes([bytes[0], bytes[1]]) != ABORTED_TXN_VERSION
        {
            return None;
        }
        Some(Self::decode(bytes))
    }

    /// Decodes an entry already known to be whole.
    fn decode(e: &[u8]) -> AbortedTxn {
        AbortedTxn {
            producer_id: be_i64(e, 2),
            first_offset: be_i64(e, 10),
            last_offset: be_i64(e, 18),
            last_stable_offset: be_i64(e, 26),
        }
    }
}

/// Checks the content of a transaction index against its segment: whole entries of version 0,
/// each with `first <= last`, last offsets strictly increasing and inside
/// `[base_offset, next_offset)`. Kafka's own check (`TransactionIndex.sanityCheck`) only looks at
/// `last >= base`; a file that fails any of these is rebuilt.
pub(crate) fn validate(raw: &[u8], base_offset: i64, next_offset: i64) -> Result<(), String> {
    let chunks = raw.chunks_exact(ABORTED_TXN_BYTES);
    if !chunks.remainder().is_empty() {
        return Err(format!(
            "{} bytes is not a whole number of entries",
            raw.len()
        ));
    }
    let mut prev: Option<i64> = None;
    for (i, e) in chunks.enumerate() {
        let Some(t) = AbortedTxn::from_bytes(e) else {
            return Err(format!("entry {i} has an unknown version"));
        };
        if t.first_offset > t.last_offset
            || t.last_offset < base_offset
            || t.last_offset >= next_offset
            || prev.is_some_and(|p| t.last_offset <= p)
        {
            return Err(format!(
                "entry {i} ({t:?}) is out of order or out of the segment"
            ));
        }
        prev = Some(t.last_offset);
    }
    Ok(())
}

#[derive(Debug)]
enum Data {
    /// Active: entries in memory; the first `persisted` bytes are in the file.
    Owned { buf: Vec<u8>, persisted: usize },
    /// Sealed: a read-only map (or copy) of the file.
    Mapped(Bytes),
}

/// One segment's `.txnindex`.
#[derive(Debug)]
pub(crate) struct TxnIndex {
    path: PathBuf,
    file: Arc<dyn StorageFile>,
    data: Data,
}

impl TxnIndex {
    /// A new, empty index file for the segment at `base_offset` (an old file is unlinked first,
    /// never truncated, because it may be mapped).
    pub fn create(backend: &dyn Backend, dir: &Path, base_offset: i64) -> Result<TxnIndex> {
        let path = segment_path(dir, base_offset, TXN_INDEX_SUFFIX);
        remove_if_exists(backend, &path)?;
        let file = backend
            .open(&path, true)
            .map_err(|e| StorageError::io(&path, e))?;
        Ok(TxnIndex {
            path,
            file,
            data: Data::Owned {
                buf: Vec::new(),
                persisted: 0,
            },
        })
    }

    /// Opens the existing index of a segment: read into memory for the active segment, mapped
    /// for a sealed one. `Ok(None)` if there is no file. The caller checks the content against
    /// the segment with [`validate`].
    pub fn open_existing(
        backend: &dyn Backend,
        dir: &Path,
        base_offset: i64,
        active: bool,
    ) -> Result<Option<TxnIndex>> {
        let path = segment_path(dir, base_offset, TXN_INDEX_SUFFIX);
        if !backend
            .exists(&path)
            .map_err(|e| StorageError::io(&path, e))?
        {
            return Ok(None);
        }
        let file = backend
            .open(&path, false)
            .map_err(|e| StorageError::io(&path, e))?;
        let data = if active {
            let buf = read_all(&path, file.as_ref())?;
            Data::Owned {
                persisted: buf.len(),
                buf,
            }
        } else {
            Data::Mapped(map_or_read(&path, file.as_ref())?)
        };
        Ok(Some(TxnIndex { path, file, data }))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file handle (to fsync a sealed index outside the log's lock).
    pub fn file(&self) -> &Arc<dyn StorageFile> {
        &self.file
    }

    pub fn bytes(&self) -> &[u8] {
        match &self.data {
            Data::Owned { buf, .. } => buf,
            Data::Mapped(b) => b,
        }
    }

    pub fn len(&self) -> usize {
        self.bytes().len() / ABORTED_TXN_BYTES
    }

    pub fn get(&self, i: usize) -> AbortedTxn {
        AbortedTxn::decode(&self.bytes()[i * ABORTED_TXN_BYTES..(i + 1) * ABORTED_TXN_BYTES])
    }

    pub fn entries(&self) -> impl Iterator<Item = AbortedTxn> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }

    /// Adds an entry (active only). Last offsets must increase, as Kafka requires; an entry that
    /// does not is dropped with a warning (it cannot come from a log whose offsets increase).
    pub fn push(&mut self, txn: AbortedTxn) {
        let last = self.len().checked_sub(1).map(|i| self.get(i).last_offset);
        if last.is_some_and(|l| l >= txn.last_offset) {
            tracing::warn!(path = %self.path.display(), ?txn, "aborted transaction out of order; not indexed");
            return;
        }
        match &mut self.data {
            Data::Owned { buf, .. } => buf.extend_from_slice(&txn.to_bytes()),
            Data::Mapped(_) => {
                tracing::warn!(path = %self.path.display(), ?txn, "aborted transaction for a sealed segment; not indexed");
            }
        }
    }

    /// Drops the entries whose marker is at or past `offset` (active only; Kafka's
    /// `TransactionIndex.truncateTo`), shortening the file if they were written.
    pub fn truncate_to(&mut self, offset: i64) -> Result<()> {
        let keep = self
            .entries()
            .take_while(|t| t.last_offset < offset)
            .count();
        if let Data::Owned { buf, persisted } = &mut self.data {
            buf.truncate(keep * ABORTED_TXN_BYTES);
            if *persisted > buf.len() {
                self.file
                    .set_len(buf.len() as u64)
                    .map_err(|e| StorageError::io(&self.path, e))?;
                *persisted = buf.len();
            }
        }
        Ok(())
    }

    /// Writes the entries not yet in the file with one positional write.
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

    /// Writes the tail and maps the file: the segment stops being active (no fsync here).
    pub fn seal(&mut self) -> Result<()> {
        if matches!(self.data, Data::Owned { .. }) {
            self.write_tail()?;
            self.data = Data::Mapped(map_or_read(&self.path, self.file.as_ref())?);
        }
        Ok(())
    }

    /// Kafka's `TransactionIndex.collectAbortedTxns`: appends to `out` the entries with
    /// `last_offset >= start_offset` and `first_offset < upper_bound_offset`, and returns `true`
    /// (the search is complete) as soon as an entry's last stable offset reaches the upper bound:
    /// no transaction aborted later can have started below it.
    pub fn collect(
        &self,
        start_offset: i64,
        upper_bound_offset: i64,
        out: &mut Vec<AbortedTxn>,
    ) -> bool {
        // Entries before the first one ending at or after `start_offset` never match, and (with
        // `start_offset < upper_bound_offset`) never end the search either: their last stable
        // offset is at most their last offset + 1 <= `start_offset`. Skip them by binary search.
        let n = self.len();
        let (mut lo, mut hi) = (0, n);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.get(mid).last_offset < start_offset {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        for i in lo..n {
            let t = self.get(i);
            if t.first_offset < upper_bound_offset {
                out.push(t);
            }
            if t.last_stable_offset >= upper_bound_offset {
                return true;
            }
        }
        false
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn txn(pid: i64, first: i64, last: i64, lso: i64) -> AbortedTxn {
        AbortedTxn {
            producer_id: pid,
            first_offset: first,
            last_offset: last,
            last_stable_offset: lso,
        }
    }

    #[test]
    fn entry_bytes_match_kafka_layout() {
        let t = txn(0x0102_0304_0506_0708, 10, 300, 11);
        let b = t.to_bytes();
        let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
        assert_eq!(
            hex,
            [
                "0000",             // version 0
                "0102030405060708", // producer id
                "000000000000000a", // first offset 10
                "000000000000012c", // last offset 300
                "000000000000000b", // last stable offset 11
            ]
            .concat()
        );
        assert_eq!(AbortedTxn::from_bytes(&b), Some(t));
        let mut v1 = b;
        v1[1] = 1;
        assert_eq!(AbortedTxn::from_bytes(&v1), None);
        assert_eq!(AbortedTxn::from_bytes(&b[..33]), None);
    }

    #[test]
    fn validation() {
        let raw: Vec<u8> = [txn(1, 5, 10, 11), txn(2, 8, 12, 13)]
            .iter()
            .flat_map(|t| t.to_bytes())
            .collect();
        assert!(validate(&raw, 10, 13).is_ok());
        assert!(validate(&[], 10, 10).is_ok());
        assert!(
            validate(&raw, 11, 13).is_err(),
            "last offset below the base"
        );
        assert!(validate(&raw, 10, 12).is_err(), "last offset past the end");
        assert!(validate(&raw[..40], 10, 13).is_err(), "torn");
        let mut swapped = raw[34..].to_vec();
        swapped.extend_from_slice(&raw[..34]);
        assert!(validate(&swapped, 10, 13).is_err(), "out of order");
        let backwards = txn(1, 11, 10, 11).to_bytes();
        assert!(validate(&backwards, 10, 13).is_err(), "first after last");
    }
}
