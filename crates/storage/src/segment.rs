//! One segment: a `.log` file of back-to-back batches plus its two sparse indexes and its
//! aborted-transaction index.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;

use crate::backend::{Backend, StorageFile};
use crate::batch::{self, Header, BATCH_HEADER_LEN};
use crate::error::{Result, StorageError};
use crate::index::{self, IndexFile, OFFSET_ENTRY_BYTES, TIME_ENTRY_BYTES};
use crate::txn_index::{AbortedTxn, TxnIndex};

/// Kafka's sentinel for "no timestamp".
pub(crate) const NO_TIMESTAMP: i64 = -1;

pub(crate) const LOG_SUFFIX: &str = ".log";
pub(crate) const INDEX_SUFFIX: &str = ".index";
pub(crate) const TIME_INDEX_SUFFIX: &str = ".timeindex";
/// Kafka's `LogFileUtils.DELETED_FILE_SUFFIX`: appended to the names of a deleted segment's files,
/// which are unlinked `file.delete.delay.ms` later (or at the next open).
pub(crate) const DELETED_SUFFIX: &str = ".deleted";

/// `<dir>/<20-digit base offset><suffix>`, Kafka's segment file naming.
pub(crate) fn segment_path(dir: &Path, base_offset: i64, suffix: &str) -> PathBuf {
    dir.join(format!("{base_offset:020}{suffix}"))
}

/// Reads a log file front to back in chunks of at least `chunk` bytes.
struct ChunkReader {
    file_len: u64,
    chunk: usize,
    buf: Vec<u8>,
    buf_start: u64,
}

/// Recovery read size: large enough to make syscalls negligible, small enough to not matter.
const RECOVERY_CHUNK_BYTES: usize = 4 << 20;
/// Read size of a header-only scan of the active segment: many small batches' headers per read,
/// while a large batch costs one small read rather than its whole body.
const HEADER_SCAN_CHUNK_BYTES: usize = 64 << 10;

impl ChunkReader {
    /// The `len` bytes at `pos`, or fewer if the file ends first.
    fn get(&mut self, file: &dyn StorageFile, path: &Path, pos: u64, len: usize) -> Result<&[u8]> {
        let have_end = self.buf_start + self.buf.len() as u64;
        if pos < self.buf_start || pos + len as u64 > have_end {
            let want = len.max(self.chunk) as u64;
            let n = want.min(self.file_len.saturating_sub(pos));
            self.buf.resize(n as usize, 0);
            file.read_exact_at(&mut self.buf, pos)
                .map_err(|e| StorageError::io(path, e))?;
            self.buf_start = pos;
        }
        let from = (pos - self.buf_start) as usize;
        let to = (from + len).min(self.buf.len());
        Ok(&self.buf[from..to])
    }
}

/// What recovering a segment found.
pub(crate) struct RecoveryResult {
    /// Bytes cut off the end of the segment (torn or corrupt tail).
    pub truncated_bytes: u64,
}

#[derive(Debug)]
pub(crate) struct Segment {
    pub base_offset: i64,
    log_path: PathBuf,
    log: Arc<dyn StorageFile>,
    /// Present once the segment is sealed: the whole file, mapped.
    map: Option<Bytes>,
    /// Bytes of valid batches in the `.log`.
    pub size: u64,
    /// One past the last offset in the segment (exact for the active segment; for a sealed
    /// segment loaded without a scan, the next segment's base offset, an upper bound).
    pub next_offset: i64,
    pub max_timestamp: i64,
    /// Last offset of the batch that holds `max_timestamp` (Kafka's "shallow" offset).
    pub offset_of_max_timestamp: i64,
    /// Max timestamp of the first batch, which time-based rolling measures from (as Kafka).
    pub first_batch_timestamp: Option<i64>,
    pub created_ms: i64,
    pub index: IndexFile,
    pub time_index: IndexFile,
    pub txn_index: TxnIndex,
    /// The transaction index is empty because it was lost or the segment was recovered: the
    /// log refills it by replaying producer state over the segment (Kafka rebuilds it while
    /// recovering the segment).
    pub txn_index_stale: bool,
    bytes_since_index_entry: u64,
}

/// Everything needed to build one segment's files.
pub(crate) struct SegmentFiles<'a> {
    pub backend: &'a dyn Backend,
    pub dir: &'a Path,
    pub index_bytes: u32,
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> StorageError + '_ {
    move |e| StorageError::io(path, e)
}

/// Removes a file if present. Unlinking (never truncating) keeps any live map of it valid.
pub(crate) fn remove_if_exists(backend: &dyn Backend, path: &Path) -> Result<()> {
    match backend.remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(StorageError::io(path, e)),
    }
}

/// Creates fresh, empty, active index files for a segment (old files are unlinked, not
/// truncated, because they may be mapped).
fn fresh_indexes(files: &SegmentFiles<'_>, base_offset: i64) -> Result<(IndexFile, IndexFile)> {
    let ip = segment_path(files.dir, base_offset, INDEX_SUFFIX);
    let tp = segment_path(files.dir, base_offset, TIME_INDEX_SUFFIX);
    remove_if_exists(files.backend, &ip)?;
    remove_if_exists(files.backend, &tp)?;
    let ifile = files.backend.open(&ip, true).map_err(io_err(&ip))?;
    let tfile = files.backend.open(&tp, true).map_err(io_err(&tp))?;
    Ok((
        IndexFile::create_active(ip, ifile, OFFSET_ENTRY_BYTES, files.index_bytes)?,
        IndexFile::create_active(tp, tfile, TIME_ENTRY_BYTES, files.index_bytes)?,
    ))
}

impl Segment {
    /// A segment with no batches yet, over files that are already open.
    fn empty(
        base_offset: i64,
        log_path: PathBuf,
        log: Arc<dyn StorageFile>,
        index: IndexFile,
        time_index: IndexFile,
        txn_index: TxnIndex,
        now_ms: i64,
    ) -> Segment {
        Segment {
            base_offset,
            log_path,
            log,
            map: None,
            size: 0,
            next_offset: base_offset,
            max_timestamp: NO_TIMESTAMP,
            offset_of_max_timestamp: -1,
            first_batch_timestamp: None,
            created_ms: now_ms,
            index,
            time_index,
            txn_index,
            txn_index_stale: false,
            bytes_since_index_entry: 0,
        }
    }

    /// A new, empty, active segment.
    pub fn create(files: &SegmentFiles<'_>, base_offset: i64, now_ms: i64) -> Result<Segment> {
        let log_path = segment_path(files.dir, base_offset, LOG_SUFFIX);
        remove_if_exists(files.backend, &log_path)?;
        let log = files
            .backend
            .open(&log_path, true)
            .map_err(io_err(&log_path))?;
        let (index, time_index) = fresh_indexes(files, base_offset)?;
        let txn_index = TxnIndex::create(files.backend, files.dir, base_offset)?;
        Ok(Segment::empty(
            base_offset,
            log_path,
            log,
            index,
            time_index,
            txn_index,
            now_ms,
        ))
    }

    /// Opens an existing segment's `.log` without looking at its indexes yet.
    pub fn open_log(
        files: &SegmentFiles<'_>,
        base_offset: i64,
    ) -> Result<(PathBuf, Arc<dyn StorageFile>, u64)> {
        let log_path = segment_path(files.dir, base_offset, LOG_SUFFIX);
        let log = files
            .backend
            .open(&log_path, false)
            .map_err(io_err(&log_path))?;
        let size = log.len().map_err(io_err(&log_path))?;
        Ok((log_path, log, size))
    }

    /// Loads a segment whose `.log` is trusted (clean shutdown, before the recovery point) using
    /// its index files. Returns `Ok(None)` if an index is missing or does not match the log, in
    /// which case the caller recovers the segment instead.
    #[allow(clippy::too_many_arguments)]
    pub fn load_trusted(
        files: &SegmentFiles<'_>,
        base_offset: i64,
        log_path: PathBuf,
        log: Arc<dyn StorageFile>,
        size: u64,
        upper_bound_offset: Option<i64>,
        active: bool,
        now_ms: i64,
    ) -> Result<Option<Segment>> {
        let ip = segment_path(files.dir, base_offset, INDEX_SUFFIX);
        let tp = segment_path(files.dir, base_offset, TIME_INDEX_SUFFIX);
        let b = files.backend;
        if !b.exists(&ip).map_err(io_err(&ip))? || !b.exists(&tp).map_err(io_err(&tp))? {
            return Ok(None);
        }
        let ifile = b.open(&ip, false).map_err(io_err(&ip))?;
        let tfile = b.open(&tp, false).map_err(io_err(&tp))?;
        let existing_txn_index = TxnIndex::open_existing(b, files.dir, base_offset, active)?;
        let found_txn_index = existing_txn_index.is_some();
        let txn_index = match existing_txn_index {
            Some(t) => t,
            None => TxnIndex::create(b, files.dir, base_offset)?,
        };
        // Relative offsets are u32; without a next segment the bound is the format's.
        let rel_limit = match upper_bound_offset {
            Some(u) => u64::try_from(u - base_offset).unwrap_or(0),
            None => u64::from(u32::MAX) + 1,
        };
        // Indexes of the active segment will be written again, so they are read, never mapped.
        let (iraw, traw) = if active {
            (
                Bytes::from(index::read_all(&ip, ifile.as_ref())?),
                Bytes::from(index::read_all(&tp, tfile.as_ref())?),
            )
        } else {
            (
                index::map_or_read(&ip, ifile.as_ref())?,
                index::map_or_read(&tp, tfile.as_ref())?,
            )
        };
        if !index::offset_index_valid(&iraw, rel_limit, size)
            || !index::time_index_valid(&traw, rel_limit)
        {
            return Ok(None);
        }
        let (index, time_index) = if active {
            (
                IndexFile::open_active(
                    ip,
                    ifile,
                    OFFSET_ENTRY_BYTES,
                    files.index_bytes,
                    iraw.to_vec(),
                )?,
                IndexFile::open_active(
                    tp,
                    tfile,
                    TIME_ENTRY_BYTES,
                    files.index_bytes,
                    traw.to_vec(),
                )?,
            )
        } else {
            (
                IndexFile::open_sealed(ip, ifile, OFFSET_ENTRY_BYTES, iraw),
                IndexFile::open_sealed(tp, tfile, TIME_ENTRY_BYTES, traw),
            )
        };
        let mut seg = Segment {
            base_offset,
            log_path,
            log,
            map: None,
            size,
            next_offset: upper_bound_offset.unwrap_or(base_offset),
            max_timestamp: NO_TIMESTAMP,
            offset_of_max_timestamp: -1,
            first_batch_timestamp: None,
            created_ms: now_ms,
            index,
            time_index,
            txn_index,
            txn_index_stale: false,
            bytes_since_index_entry: 0,
        };
        if let Some((ts, rel)) = seg.time_index.last_time_entry() {
            seg.max_timestamp = ts;
            seg.offset_of_max_timestamp = base_offset + i64::from(rel);
        }
        if !active {
            seg.map = Some(index::map_or_read(&seg.log_path, seg.log.as_ref())?);
        }
        let first_header = seg.header_at(0)?;
        if size > 0 && first_header.is_none() {
            return Ok(None);
        }
        seg.first_batch_timestamp = first_header.map(|h| h.max_timestamp);
        // Sealing always leaves a time entry if any batch has a timestamp.
        if seg.time_index.entries() == 0
            && first_header.is_some_and(|h| h.max_timestamp != NO_TIMESTAMP)
        {
            return Ok(None);
        }
        // The last offset-index entry must name the batch at its position (Kafka indexes a
        // batch's last offset at the batch's start).
        let (mut pos, last_rel) = match seg.index.entries().checked_sub(1) {
            Some(i) => {
                let (rel, p) = seg.index.offset_entry(i);
                (u64::from(p), Some(rel))
            }
            None => (0, None),
        };
        if let Some(rel) = last_rel {
            match seg.header_at(pos)? {
                Some(h) if h.last_offset() == base_offset + i64::from(rel) => {}
                _ => return Ok(None),
            }
        }
        if !active {
            seg.check_txn_index(files, found_txn_index)?;
            return Ok(Some(seg));
        }
        // The active segment: find the end by walking headers from the last index entry; a
        // header that does not parse means the log is not what the index says: recover.
        while pos < size {
            let Some(h) = seg.header_at(pos)? else {
                return Ok(None);
            };
            if h.base_offset < seg.next_offset {
                return Ok(None);
            }
            seg.next_offset = h.last_offset() + 1;
            if h.max_timestamp > seg.max_timestamp {
                seg.max_timestamp = h.max_timestamp;
                seg.offset_of_max_timestamp = h.last_offset();
            }
            pos += batch::total_len(&h) as u64;
        }
        if seg.offset_of_max_timestamp >= seg.next_offset {
            return Ok(None);
        }
        seg.bytes_since_index_entry = size
            - last_rel.map_or(0, |_| {
                seg.index
                    .entries()
                    .checked_sub(1)
                    .map_or(0, |i| u64::from(seg.index.offset_entry(i).1))
            });
        seg.check_txn_index(files, found_txn_index)?;
        Ok(Some(seg))
    }

    /// After a trusted load: keeps the transaction index if it was found and fits the segment's
    /// offsets, otherwise replaces it with an empty one marked stale (to be rebuilt).
    fn check_txn_index(&mut self, files: &SegmentFiles<'_>, found: bool) -> Result<()> {
        if found {
            match crate::txn_index::validate(
                self.txn_index.bytes(),
                self.base_offset,
                self.next_offset,
            ) {
                Ok(()) => return Ok(()),
                Err(reason) => {
                    tracing::warn!(path = %self.txn_index.path().display(), %reason,
                        "transaction index invalid; rebuilding");
                }
            }
        } else {
            tracing::warn!(path = %self.txn_index.path().display(),
                "transaction index missing; rebuilding");
        }
        // Left unsealed (in memory) until the log has refilled it, even in a sealed segment.
        self.txn_index = TxnIndex::create(files.backend, files.dir, self.base_offset)?;
        self.txn_index_stale = true;
        Ok(())
    }

    /// Walks every batch from position 0 verifying CRCs, truncates the `.log` at the first torn
    /// or corrupt batch, and rebuilds both indexes from scratch. The returned segment is active;
    /// the caller seals it if it is not the last.
    pub fn recover(
        files: &SegmentFiles<'_>,
        base_offset: i64,
        log_path: PathBuf,
        log: Arc<dyn StorageFile>,
        file_len: u64,
        index_interval_bytes: u32,
        now_ms: i64,
    ) -> Result<(Segment, RecoveryResult)> {
        let (index, time_index) = fresh_indexes(files, base_offset)?;
        // Rebuilt by the log, which has the producer state this segment starts with.
        let txn_index = TxnIndex::create(files.backend, files.dir, base_offset)?;
        let mut seg = Segment::empty(
            base_offset,
            log_path,
            log,
            index,
            time_index,
            txn_index,
            now_ms,
        );
        seg.txn_index_stale = true;
        let mut reader = ChunkReader {
            file_len,
            chunk: RECOVERY_CHUNK_BYTES,
            buf: Vec::new(),
            buf_start: 0,
        };
        let mut pos = 0u64;
        while pos < file_len {
            let hdr_bytes = reader.get(seg.log.as_ref(), &seg.log_path, pos, BATCH_HEADER_LEN)?;
            let h = match batch::parse_header(hdr_bytes) {
                Ok(h) => h,
                Err(e) => {
                    tracing::warn!(path = %seg.log_path.display(), pos, ?e, "recovery: bad batch header; truncating");
                    break;
                }
            };
            let total = batch::total_len(&h);
            if pos + total as u64 > file_len {
                // Torn tail; also keeps a corrupt length from making us read far.
                tracing::warn!(path = %seg.log_path.display(), pos, "recovery: batch runs past the end of the file; truncating");
                break;
            }
            let whole = reader.get(seg.log.as_ref(), &seg.log_path, pos, total)?;
            match batch::parse_verified(whole) {
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(path = %seg.log_path.display(), pos, ?e, "recovery: torn or corrupt batch; truncating");
                    break;
                }
            }
            let rel = h.last_offset() - base_offset;
            if h.base_offset < seg.next_offset || !(0..=i64::from(i32::MAX)).contains(&rel) {
                tracing::warn!(path = %seg.log_path.display(), pos, base = h.base_offset, "recovery: batch offset out of order; truncating");
                break;
            }
            seg.account_batch(pos, &h, index_interval_bytes);
            pos += total as u64;
        }
        seg.size = pos;
        let truncated_bytes = file_len - pos;
        if truncated_bytes > 0 {
            seg.log.set_len(pos).map_err(io_err(&seg.log_path))?;
        }
        Ok((seg, RecoveryResult { truncated_bytes }))
    }

    /// Updates indexes and bookkeeping for a batch written at `pos` (Kafka's rule: an index entry
    /// for a batch goes in when more than `index_interval_bytes` were written since the last one;
    /// the entry names the batch's last offset and its start position).
    pub fn account_batch(&mut self, pos: u64, h: &Header, index_interval_bytes: u32) {
        if self.first_batch_timestamp.is_none() {
            self.first_batch_timestamp = Some(h.max_timestamp);
        }
        if h.max_timestamp > self.max_timestamp {
            self.max_timestamp = h.max_timestamp;
            self.offset_of_max_timestamp = h.last_offset();
        }
        if self.bytes_since_index_entry > u64::from(index_interval_bytes)
            && pos <= u64::from(u32::MAX)
        {
            // Offsets and positions fit: rolling keeps both within i32 range.
            let rel = (h.last_offset() - self.base_offset) as u32;
            self.index.push_offset(rel, pos as u32);
            if self.max_timestamp != NO_TIMESTAMP {
                let trel = (self.offset_of_max_timestamp - self.base_offset) as u32;
                self.time_index.maybe_push_time(self.max_timestamp, trel);
            }
            self.bytes_since_index_entry = 0;
        }
        self.bytes_since_index_entry += batch::total_len(h) as u64;
        self.next_offset = h.last_offset() + 1;
    }

    /// The whole mapped `.log` of a sealed segment (immutable, so the cleaner can read it
    /// without the log's lock); `None` for the active segment.
    pub fn sealed_bytes(&self) -> Option<Bytes> {
        self.map
            .as_ref()
            .map(|m| m.slice(..(self.size as usize).min(m.len())))
    }

    /// The open `.log` (its identity tells the cleaner the segment was not replaced).
    pub fn log_file(&self) -> Arc<dyn StorageFile> {
        Arc::clone(&self.log)
    }

    pub fn is_sealed(&self) -> bool {
        self.map.is_some()
    }

    /// Appends the final time-index entry (Kafka does this when a segment becomes inactive and
    /// on close) so the last entry carries the segment's max timestamp.
    fn push_final_time_entry(&mut self) {
        if self.max_timestamp != NO_TIMESTAMP {
            let rel = (self.offset_of_max_timestamp - self.base_offset) as u32;
            self.time_index.maybe_push_time(self.max_timestamp, rel);
        }
    }

    /// Writes pending index entries to the index files.
    pub fn write_index_tails(&mut self) -> Result<()> {
        self.index.write_tail()?;
        self.time_index.write_tail()?;
        self.txn_index.write_tail()
    }

    /// fsyncs the log and the three indexes.
    pub fn sync(&mut self) -> Result<()> {
        self.write_index_tails()?;
        self.log.sync().map_err(io_err(&self.log_path))?;
        self.index.sync()?;
        self.time_index.sync()?;
        self.txn_index.sync()
    }

    /// Close of the active segment: final time entry, indexes trimmed to size, fsync.
    pub fn close_active(&mut self) -> Result<()> {
        if self.is_sealed() {
            return Ok(());
        }
        self.push_final_time_entry();
        self.index.trim()?;
        self.time_index.trim()?;
        self.txn_index.write_tail()?;
        self.log.sync().map_err(io_err(&self.log_path))?;
        self.index.sync()?;
        self.time_index.sync()?;
        self.txn_index.sync()
    }

    /// The four files with their paths, for an fsync outside the log's lock (sealed only).
    pub fn files_for_sync(&self) -> [(PathBuf, Arc<dyn StorageFile>); 4] {
        [
            (self.log_path.clone(), Arc::clone(&self.log)),
            (
                self.index.path().to_path_buf(),
                Arc::clone(self.index.file()),
            ),
            (
                self.time_index.path().to_path_buf(),
                Arc::clone(self.time_index.file()),
            ),
            (
                self.txn_index.path().to_path_buf(),
                Arc::clone(self.txn_index.file()),
            ),
        ]
    }

    /// Makes the segment immutable: final time entry, indexes written and trimmed, and all four
    /// files mapped. Nothing writes to these files afterwards (see `mmap`). Not fsynced here: a
    /// 1 GiB fsync does not belong on the produce path; see `Log::sealed_flush`.
    pub fn seal(&mut self) -> Result<()> {
        if self.is_sealed() {
            return Ok(());
        }
        self.push_final_time_entry();
        self.index.seal()?;
        self.time_index.seal()?;
        // A stale transaction index is sealed by the log once it has been rebuilt.
        if !self.txn_index_stale {
            self.txn_index.seal()?;
        }
        self.map = Some(index::map_or_read(&self.log_path, self.log.as_ref())?);
        Ok(())
    }

    /// `len` bytes at `pos` (clamped to the segment): a slice of the map, or one positional read.
    pub fn bytes_at(&self, pos: u64, len: u64) -> Result<Bytes> {
        let end = (pos + len).min(self.size);
        if pos >= end {
            return Ok(Bytes::new());
        }
        if let Some(map) = &self.map {
            // The map can be longer than `size` never, shorter only if the file shrank, which
            // the sealed-file contract rules out; clamp anyway rather than panic.
            let end = (end as usize).min(map.len());
            let pos = (pos as usize).min(end);
            return Ok(map.slice(pos..end));
        }
        Ok(Bytes::from(self.read_vec(pos, end)?))
    }

    /// Bytes `pos..end` of the log file, with one positional read.
    fn read_vec(&self, pos: u64, end: u64) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; (end - pos) as usize];
        self.log
            .read_exact_at(&mut buf, pos)
            .map_err(io_err(&self.log_path))?;
        Ok(buf)
    }

    /// Up to `len` bytes at `pos` (clamped to the segment), cut to the first `keep(bytes)` of them,
    /// holding at most about twice the kept bytes.
    ///
    /// A sealed segment hands out a slice of its map, which costs nothing to keep. The active
    /// segment is read into a heap buffer of `len` bytes, and a slice of it keeps all of it alive.
    /// The connection bounds its unsent answers by their length, so an answer must not hold much
    /// more than it counts: a fetch of 1 MiB whose second batch does not fit answers with the first
    /// one, and used to hold the whole 1 MiB for it. A read that is mostly cut away is therefore
    /// copied out (copying less than half of what was read); one that is mostly kept is sliced
    /// (shrinking the buffer in place instead made the allocator return and refault its pages on
    /// every fetch: three times the consume CPU).
    pub fn batches_at(
        &self,
        pos: u64,
        len: u64,
        keep: impl FnOnce(&[u8]) -> usize,
    ) -> Result<Bytes> {
        if self.map.is_some() {
            let data = self.bytes_at(pos, len)?;
            let kept = keep(&data).min(data.len());
            return Ok(data.slice(..kept));
        }
        let end = (pos + len).min(self.size);
        if pos >= end {
            return Ok(Bytes::new());
        }
        let buf = self.read_vec(pos, end)?;
        let kept = keep(&buf).min(buf.len());
        if kept < buf.len() / 2 {
            return Ok(Bytes::copy_from_slice(&buf[..kept]));
        }
        Ok(Bytes::from(buf).slice(..kept))
    }

    /// The batch header at `pos`, `None` at or past the end or if it does not parse.
    pub fn header_at(&self, pos: u64) -> Result<Option<Header>> {
        if pos + BATCH_HEADER_LEN as u64 > self.size {
            return Ok(None);
        }
        let parsed = if let Some(map) = &self.map {
            let p = pos as usize;
            map.get(p..p + BATCH_HEADER_LEN).map(batch::parse_header)
        } else {
            let mut buf = [0u8; BATCH_HEADER_LEN];
            self.log
                .read_exact_at(&mut buf, pos)
                .map_err(io_err(&self.log_path))?;
            Some(batch::parse_header(&buf))
        };
        Ok(match parsed {
            Some(Ok(h)) if pos + batch::total_len(&h) as u64 <= self.size => Some(h),
            _ => None,
        })
    }

    /// Calls `f` with the position and header of each batch, from the first one whose last offset
    /// is >= `offset` to the end of the segment or until `f` returns `false`. Only headers are
    /// read: from the map when sealed, in small chunks from the active file. Stops quietly at a
    /// header that does not parse (recovery has already cut the log there).
    pub fn scan_headers(
        &self,
        offset: i64,
        mut f: impl FnMut(u64, &Header) -> Result<bool>,
    ) -> Result<()> {
        let mut pos = self.index_position(offset);
        let mut reader = ChunkReader {
            file_len: self.size,
            chunk: HEADER_SCAN_CHUNK_BYTES,
            buf: Vec::new(),
            buf_start: 0,
        };
        while pos + BATCH_HEADER_LEN as u64 <= self.size {
            let parsed = match &self.map {
                Some(map) => {
                    let p = pos as usize;
                    map.get(p..p + BATCH_HEADER_LEN).map(batch::parse_header)
                }
                None => Some(batch::parse_header(reader.get(
                    self.log.as_ref(),
                    &self.log_path,
                    pos,
                    BATCH_HEADER_LEN,
                )?)),
            };
            let Some(Ok(h)) = parsed else {
                break;
            };
            let total = batch::total_len(&h) as u64;
            if pos + total > self.size {
                break;
            }
            if h.last_offset() >= offset && !f(pos, &h)? {
                break;
            }
            pos += total;
        }
        Ok(())
    }

    /// Position of the offset index entry at or before `offset` (0 if none).
    fn index_position(&self, offset: i64) -> u64 {
        let rel = offset - self.base_offset;
        if rel < 0 {
            return 0;
        }
        let rel = u32::try_from(rel).unwrap_or(u32::MAX);
        self.index
            .lookup_offset(rel)
            .map_or(0, |(_, p)| u64::from(p))
    }

    /// The first batch whose last offset is >= `offset` (the batch containing `offset`, or the
    /// next one after a gap), with its position.
    pub fn find_batch(&self, offset: i64) -> Result<Option<(u64, Header)>> {
        let mut pos = self.index_position(offset);
        while let Some(h) = self.header_at(pos)? {
            if h.last_offset() >= offset {
                return Ok(Some((pos, h)));
            }
            pos += batch::total_len(&h) as u64;
        }
        Ok(None)
    }

    /// The first batch at or after `start_offset` whose max timestamp is >= `timestamp`.
    pub fn find_batch_by_timestamp(
        &self,
        timestamp: i64,
        start_offset: i64,
    ) -> Result<Option<(u64, Header)>> {
        let from_offset = match self.time_index.lookup_time(timestamp) {
            Some((_, rel)) => (self.base_offset + i64::from(rel)).max(start_offset),
            None => start_offset,
        };
        let mut pos = self.index_position(from_offset);
        while let Some(h) = self.header_at(pos)? {
            if h.max_timestamp >= timestamp && h.last_offset() >= start_offset {
                return Ok(Some((pos, h)));
            }
            pos += batch::total_len(&h) as u64;
        }
        Ok(None)
    }

    /// Appends already laid out batches at the end with one positional write. On failure the file
    /// is cut back to its old size so a retry starts clean; `Err(true)` if even that failed.
    pub fn write(&mut self, bytes: &[u8]) -> std::result::Result<(), (StorageError, bool)> {
        if let Err(e) = self.log.write_all_at(bytes, self.size) {
            let err = StorageError::io(&self.log_path, e);
            let restored = self.log.set_len(self.size).is_ok();
            return Err((err, !restored));
        }
        Ok(())
    }

    pub fn add_size(&mut self, n: u64) {
        self.size += n;
    }

    /// Removes everything from the first batch with last offset >= `offset`. Only for the active
    /// (unmapped) segment; a sealed one is first rewritten by the log.
    pub fn truncate_active_to(&mut self, offset: i64, index_interval_bytes: u32) -> Result<()> {
        let cut = match self.find_batch(offset)? {
            Some((pos, _)) => pos,
            None => return Ok(()),
        };
        // Re-derive all bookkeeping from the kept prefix: truncation is rare, correctness first.
        self.log.set_len(cut).map_err(io_err(&self.log_path))?;
        let mut headers = Vec::new();
        let mut pos = 0;
        self.size = cut;
        while let Some(h) = self.header_at(pos)? {
            headers.push((pos, h));
            pos += batch::total_len(&h) as u64;
        }
        self.index.truncate_entries(0);
        self.time_index.truncate_entries(0);
        self.next_offset = self.base_offset;
        self.max_timestamp = NO_TIMESTAMP;
        self.offset_of_max_timestamp = -1;
        self.first_batch_timestamp = None;
        self.bytes_since_index_entry = 0;
        for (p, h) in &headers {
            self.account_batch(*p, h, index_interval_bytes);
        }
        self.txn_index.truncate_to(self.next_offset)
    }

    /// Turns a sealed segment back into a writable one holding only its first `keep_bytes`:
    /// the kept prefix is written to a new file renamed over the old one (the mapped inode is
    /// never modified), then indexes are rebuilt.
    pub fn unseal_truncated(
        &self,
        files: &SegmentFiles<'_>,
        keep_bytes: u64,
        index_interval_bytes: u32,
        now_ms: i64,
    ) -> Result<Segment> {
        let prefix = self.bytes_at(0, keep_bytes)?;
        let tmp = segment_path(files.dir, self.base_offset, ".log.rafka-tmp");
        remove_if_exists(files.backend, &tmp)?;
        let f = files.backend.open(&tmp, true).map_err(io_err(&tmp))?;
        f.write_all_at(&prefix, 0).map_err(io_err(&tmp))?;
        f.sync().map_err(io_err(&tmp))?;
        drop(f);
        files
            .backend
            .rename(&tmp, &self.log_path)
            .map_err(io_err(&self.log_path))?;
        files
            .backend
            .sync_dir(files.dir)
            .map_err(io_err(files.dir))?;
        let base = self.base_offset;
        let (log_path, log, len) = Segment::open_log(files, base)?;
        let (mut seg, _) = Segment::recover(
            files,
            base,
            log_path,
            log,
            len,
            index_interval_bytes,
            now_ms,
        )?;
        // The aborted transactions whose markers were kept stay indexed (Kafka's
        // `TransactionIndex.truncateTo`); the rest of the state needs no rebuild.
        let kept: Vec<AbortedTxn> = self
            .txn_index
            .entries()
            .take_while(|t| t.last_offset < seg.next_offset)
            .collect();
        for t in kept {
            seg.txn_index.push(t);
        }
        seg.txn_index_stale = false;
        Ok(seg)
    }

    /// The largest timestamp in the segment, which time retention measures from (Kafka's
    /// `LogSegment.largestTimestamp`): the max timestamp of its batches, or, when none has one,
    /// the `.log` file's last modification time.
    pub fn largest_timestamp(&self) -> Result<i64> {
        if self.max_timestamp >= 0 {
            return Ok(self.max_timestamp);
        }
        self.log.modified_ms().map_err(io_err(&self.log_path))
    }

    /// Renames the segment's files to `<name>.deleted` (Kafka's `changeFileSuffixes("",
    /// ".deleted")`: `.log`, `.index`, `.timeindex`, `.txnindex`, in that order), pushing each new
    /// name onto `renamed` as it goes so that a failure part-way still reports what was renamed.
    /// A file that is already gone is skipped. Renaming leaves live maps and open handles valid
    /// (see `mmap`).
    pub fn rename_to_deleted(
        &self,
        backend: &dyn Backend,
        renamed: &mut Vec<PathBuf>,
    ) -> Result<()> {
        for path in [
            self.log_path.as_path(),
            self.index.path(),
            self.time_index.path(),
            self.txn_index.path(),
        ] {
            let mut to = path.as_os_str().to_owned();
            to.push(DELETED_SUFFIX);
            let to = PathBuf::from(to);
            match backend.rename(path, &to) {
                Ok(()) => renamed.push(to),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(StorageError::io(path, e)),
            }
        }
        Ok(())
    }

    /// Unlinks the segment's files. Live maps and open handles stay valid (see `mmap`), so the
    /// in-memory segment keeps serving reads until it is dropped.
    pub fn delete_files(&self, backend: &dyn Backend) -> Result<()> {
        remove_if_exists(backend, &self.log_path)?;
        remove_if_exists(backend, self.index.path())?;
        remove_if_exists(backend, self.time_index.path())?;
        remove_if_exists(backend, self.txn_index.path())
    }
}
