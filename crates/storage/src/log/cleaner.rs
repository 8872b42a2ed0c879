//! Log compaction (`cleanup.policy=compact`), as Kafka's `LogCleaner` / `Cleaner` /
//! `LogCleanerManager` / `MemoryRecords.filterTo` do it.
//!
//! # A pass
//!
//! 1. [`Log::cleanable_info`] (under the partition lock, cheap): the cleanable range is
//!    `[first dirty offset, first uncleanable offset)`. The first dirty offset is the cleaner
//!    checkpoint (`cleaner-offset-checkpoint`, kept by the broker), never below the log start.
//!    The first uncleanable offset is the smallest of the active segment's base offset, the last
//!    stable offset (open transactions are never cleaned) and the base of the first segment with
//!    a record newer than `min.compaction.lag.ms`. The dirty ratio is the bytes of the segments
//!    in the cleanable range over those from the log start to its end; a log is due when the
//!    ratio reaches `min.cleanable.dirty.ratio`, when its oldest dirty batch is older than
//!    `max.compaction.lag.ms` (KIP-354), or when a delete horizon it set has passed (KIP-534).
//! 2. [`Log::prepare_clean`] (under the lock, cheap): takes a [`CleanTask`] holding the sealed
//!    segments to clean (their memory maps: sealed segments are immutable), the aborted
//!    transactions and the last batch of each producer.
//! 3. [`CleanTask::run`] (no lock: the heavy part): builds the [`OffsetMap`] (latest offset of
//!    each key) over the dirty range, bounded by `log.cleaner.dedupe.buffer.size`: when the
//!    dirty range has more keys than fit, the pass ends where the map filled up, as Kafka's does.
//!    Then groups the segments from the log start to the end of the map by size
//!    (`groupSegmentsBySize`: a group fits in `segment.bytes` and its indexes in
//!    `segment.index.bytes`), and writes each group, filtered, to `<base>.log.cleaned` with its
//!    `.index.cleaned`, `.timeindex.cleaned` and `.txnindex.cleaned`, all fsynced.
//! 4. [`Log::finish_clean`] (under the lock, short): for each group whose segments are still the
//!    ones the task read (retention, DeleteRecords or a truncation may have replaced them; their
//!    open files are compared by identity), swaps the cleaned segment in with Kafka's protocol:
//!    rename the cleaned files to `.swap`, rename the old segments' files to `.deleted` (unlinked
//!    after `file.delete.delay.ms`), rename the `.swap` files to their final names, with an fsync
//!    of the directory after each step. [`Log::open`] deletes `.cleaned` files and completes a
//!    `.log.swap` (deleting the old segments in its offset range), so a crash at any point
//!    leaves either the old segments or the cleaned one, never both, never neither.
//!
//! # What is kept (Kafka's `filterTo` with the cleaner's filter)
//!
//! - A record is kept if it is past the end of the offset map, or if it is the latest record of
//!   its key in the map and either has a value or is a tombstone whose batch's delete horizon
//!   has not passed. Keyless records are removed (compacted topics refuse them at produce).
//! - Offsets never change: kept records keep their offsets (a compacted log has gaps), a
//!   rewritten batch keeps its base offset, its last offset delta, its producer fields and its
//!   codec; a batch whose records are all kept (and that needs no delete horizon) is copied
//!   byte for byte.
//! - A batch with tombstones (or a transaction marker that may go) gets a delete horizon when it
//!   is first cleaned (KIP-534: attribute bit 6, baseTimestamp = now + `delete.retention.ms`);
//!   the tombstones (the marker) are removed by a pass after the horizon.
//! - Transactions: batches of aborted transactions (from the `.txnindex` entries) are removed;
//!   an ABORT marker is kept while this pass saw batches of its transaction (and indexed in the
//!   cleaned `.txnindex`), a COMMIT marker while its transaction still has batches; otherwise
//!   the marker gets a delete horizon and goes once it passed.
//! - The last batch of each producer (by the producer state) is kept even if it becomes empty,
//!   so producer state (sequence numbers, epochs) survives a reload.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{DefaultHasher, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use rafka_records::{BatchBuilder, BatchView, Compression, TimestampType};

use super::{Log, PendingDelete};
use crate::backend::{Backend, StorageFile};
use crate::batch::{self, Header, BATCH_HEADER_LEN};
use crate::error::{Result, StorageError};
use crate::producer_state::TxnMarker;
use crate::segment::{
    remove_if_exists, segment_path, Segment, SegmentFiles, INDEX_SUFFIX, LOG_SUFFIX, NO_TIMESTAMP,
    TIME_INDEX_SUFFIX,
};
use crate::txn_index::{AbortedTxn, TXN_INDEX_SUFFIX};

/// Kafka's `CleanedFileSuffix`: a cleaned segment being written.
pub(crate) const CLEANED_SUFFIX: &str = ".cleaned";
/// Kafka's `SwapFileSuffix`: a cleaned segment ready to replace the old ones.
pub(crate) const SWAP_SUFFIX: &str = ".swap";

/// Bytes one key takes in the offset map, as Kafka's `SkimpyOffsetMap` counts them: a 16-byte
/// digest of the key and an 8-byte offset.
pub const OFFSET_MAP_ENTRY_BYTES: u64 = 24;

/// Kafka's `log.cleaner.io.buffer.load.factor` default: the map is considered full at 90%.
pub const OFFSET_MAP_LOAD_FACTOR: f64 = 0.9;

/// Output is written in chunks of this size.
const WRITE_CHUNK_BYTES: usize = 1 << 20;

/// The broker-wide cleaner settings a pass needs.
#[derive(Debug, Clone, Copy)]
pub struct CleanerSettings {
    /// Memory for the offset map (`log.cleaner.dedupe.buffer.size` / `log.cleaner.threads`).
    pub dedupe_buffer_bytes: u64,
    /// Largest decompressed batch the cleaner accepts (a larger one is copied unchanged).
    pub max_batch_uncompressed_bytes: usize,
}

impl Default for CleanerSettings {
    fn default() -> Self {
        CleanerSettings {
            dedupe_buffer_bytes: 128 << 20,
            max_batch_uncompressed_bytes: 64 << 20,
        }
    }
}

/// The latest offset of each key in the dirty range (Kafka's `SkimpyOffsetMap`): keys are kept
/// as 128-bit digests, and the number of keys is bounded by the memory it is given at
/// [`OFFSET_MAP_ENTRY_BYTES`] per key and [`OFFSET_MAP_LOAD_FACTOR`].
#[derive(Debug)]
pub struct OffsetMap {
    map: HashMap<u128, i64>,
    max_entries: usize,
    /// The last offset the map covers: records past it are not compared with it.
    latest_offset: i64,
}

impl OffsetMap {
    /// A map that holds at most `memory_bytes / 24 * 0.9` keys (at least one).
    pub fn with_memory(memory_bytes: u64) -> OffsetMap {
        let slots = memory_bytes / OFFSET_MAP_ENTRY_BYTES;
        let max = (slots as f64 * OFFSET_MAP_LOAD_FACTOR) as usize;
        OffsetMap {
            map: HashMap::new(),
            max_entries: max.max(1),
            latest_offset: -1,
        }
    }

    fn digest(key: &[u8]) -> u128 {
        // Two independent 64-bit SipHashes (fixed keys, so stable across runs): a collision
        // would let one key's record hide another's, so 128 bits, as Kafka's MD5.
        let mut a = DefaultHasher::new();
        a.write(key);
        let mut b = DefaultHasher::new();
        b.write_u8(0x5a);
        b.write(key);
        (u128::from(a.finish()) << 64) | u128::from(b.finish())
    }

    /// Records `offset` as the latest for `key`; `false` (and nothing recorded) if the key is new
    /// and the map is full.
    pub fn put(&mut self, key: &[u8], offset: i64) -> bool {
        let d = Self::digest(key);
        if self.map.len() >= self.max_entries && !self.map.contains_key(&d) {
            return false;
        }
        self.map.insert(d, offset);
        self.latest_offset = offset;
        true
    }

    /// The latest offset recorded for `key`.
    pub fn get(&self, key: &[u8]) -> Option<i64> {
        self.map.get(&Self::digest(key)).copied()
    }

    /// Keys in the map.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether the map is empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// How many keys fit.
    pub fn capacity(&self) -> usize {
        self.max_entries
    }

    /// The last offset covered.
    pub fn latest_offset(&self) -> i64 {
        self.latest_offset
    }

    fn set_latest_offset(&mut self, offset: i64) {
        self.latest_offset = self.latest_offset.max(offset);
    }
}

/// Where a compacted log stands (Kafka's `LogToClean` + `cleanableOffsets`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CleanableInfo {
    /// Start of the dirty range (the cleaner checkpoint, at least the log start).
    pub first_dirty_offset: i64,
    /// End of the cleanable range (exclusive).
    pub first_uncleanable_offset: i64,
    /// Bytes of the segments below the first dirty offset.
    pub clean_bytes: u64,
    /// Bytes of the segments in the cleanable range.
    pub cleanable_bytes: u64,
    /// `max.compaction.lag.ms` has passed for the oldest dirty batch (KIP-354).
    pub must_clean_now: bool,
    /// A delete horizon set by an earlier pass has passed: tombstones or markers may go.
    pub delete_horizon_passed: bool,
    /// The topic's `min.cleanable.dirty.ratio`.
    pub min_cleanable_ratio: f64,
}

impl CleanableInfo {
    /// Kafka's `cleanableRatio`: cleanable bytes over clean + cleanable bytes.
    pub fn dirty_ratio(&self) -> f64 {
        let total = self.clean_bytes + self.cleanable_bytes;
        if total == 0 {
            0.0
        } else {
            self.cleanable_bytes as f64 / total as f64
        }
    }

    /// Whether the cleaner should take this log now (Kafka's `grabFilthiestCompactedLog`
    /// filters, with the delete-horizon fallback).
    pub fn is_due(&self) -> bool {
        (self.cleanable_bytes > 0
            && (self.must_clean_now || self.dirty_ratio() >= self.min_cleanable_ratio))
            || self.delete_horizon_passed
    }
}

/// One sealed segment as a pass sees it.
#[derive(Debug, Clone)]
struct SourceSegment {
    base_offset: i64,
    /// The next segment's base offset.
    next_base: i64,
    bytes: Bytes,
    /// The open `.log`, to check at the swap that the segment is still the same one.
    file: Arc<dyn StorageFile>,
    offset_index_bytes: u64,
    time_index_bytes: u64,
}

/// The work of one pass, taken under the partition lock and run without it. See the module
/// docs.
#[derive(Debug)]
pub struct CleanTask {
    dir: PathBuf,
    backend: Arc<dyn Backend>,
    segments: Vec<SourceSegment>,
    first_dirty_offset: i64,
    first_uncleanable_offset: i64,
    aborted: Vec<AbortedTxn>,
    /// Producer id -> (offset of its last data batch or -1, its epoch).
    last_batches: HashMap<i64, (i64, i16)>,
    segment_bytes: u64,
    segment_index_bytes: u64,
    index_interval_bytes: u32,
    delete_retention_ms: i64,
    /// The log's truncation count when the pass was prepared.
    truncations: u64,
}

/// Counters of a pass (Kafka's `CleanerStats`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CleanerStats {
    /// Bytes read while building the offset map.
    pub map_bytes_read: u64,
    /// Records read while building the offset map.
    pub map_records_read: u64,
    /// Bytes of segments read while cleaning.
    pub bytes_read: u64,
    /// Bytes written to cleaned segments.
    pub bytes_written: u64,
    /// Records read while cleaning.
    pub records_read: u64,
    /// Records kept.
    pub records_retained: u64,
    /// Batches copied byte for byte.
    pub batches_copied: u64,
    /// Batches rewritten (records removed or a delete horizon set).
    pub batches_rewritten: u64,
    /// Batches removed entirely.
    pub batches_removed: u64,
    /// Keys in the offset map.
    pub map_keys: u64,
    /// Groups swapped in (by [`Log::finish_clean`]).
    pub groups_swapped: u64,
    /// Groups dropped because the log changed under the pass.
    pub groups_skipped: u64,
    /// Time spent, ms.
    pub elapsed_ms: u64,
}

/// One cleaned group ready to be swapped in.
#[derive(Debug)]
struct CleanedGroup {
    base_offset: i64,
    /// (base offset, open `.log`) of each segment it replaces, in order.
    sources: Vec<(i64, Arc<dyn StorageFile>)>,
    bytes: u64,
}

/// The result of [`CleanTask::run`], for [`Log::finish_clean`].
#[derive(Debug)]
pub struct CleanOutput {
    dir: PathBuf,
    backend: Arc<dyn Backend>,
    groups: Vec<CleanedGroup>,
    /// The next pass starts here (the cleaner checkpoint).
    pub end_offset: i64,
    /// The latest delete horizon written in this pass (`NO_TIMESTAMP` if none).
    pub latest_delete_horizon_ms: i64,
    /// What the pass did.
    pub stats: CleanerStats,
    /// Where the pass started.
    pub first_dirty_offset: i64,
    truncations: u64,
}

impl CleanOutput {
    /// Deletes the cleaned files (a pass that will not be swapped in).
    pub fn abandon(self) {
        for g in &self.groups {
            remove_group_files(
                self.backend.as_ref(),
                &self.dir,
                g.base_offset,
                CLEANED_SUFFIX,
            );
        }
    }
}

fn aborted(dir: &Path) -> StorageError {
    StorageError::io(
        dir,
        std::io::Error::new(std::io::ErrorKind::Interrupted, "cleaning abandoned"),
    )
}

fn group_path(dir: &Path, base: i64, suffix: &str, stage: &str) -> PathBuf {
    segment_path(dir, base, &format!("{suffix}{stage}"))
}

const SEGMENT_SUFFIXES: [&str; 4] = [
    INDEX_SUFFIX,
    TIME_INDEX_SUFFIX,
    TXN_INDEX_SUFFIX,
    LOG_SUFFIX,
];

fn remove_group_files(backend: &dyn Backend, dir: &Path, base: i64, stage: &str) {
    for suffix in SEGMENT_SUFFIXES {
        let p = group_path(dir, base, suffix, stage);
        if let Err(e) = remove_if_exists(backend, &p) {
            tracing::warn!(path = %p.display(), error = %e, "could not remove a cleaner file");
        }
    }
}

/// Kafka's `CleanedTransactionMetadata`: which batches belong to aborted transactions, and
/// which markers may go.
#[derive(Debug, Default)]
struct TxnMetadata {
    /// Aborted transactions not reached yet, by first offset.
    pending: VecDeque<AbortedTxn>,
    /// Producer id -> (its aborted transaction, whether a batch of it was seen).
    ongoing_aborted: HashMap<i64, (AbortedTxn, bool)>,
    ongoing_committed: HashSet<i64>,
    /// Aborted transactions whose marker is kept, for the cleaned `.txnindex`.
    cleaned_index: Vec<AbortedTxn>,
}

impl TxnMetadata {
    fn new(aborted: &[AbortedTxn]) -> TxnMetadata {
        let mut pending: Vec<AbortedTxn> = aborted.to_vec();
        pending.sort_by_key(|t| t.first_offset);
        TxnMetadata {
            pending: pending.into(),
            ..TxnMetadata::default()
        }
    }

    fn consume_up_to(&mut self, offset: i64) {
        while self
            .pending
            .front()
            .is_some_and(|t| t.first_offset <= offset)
        {
            if let Some(t) = self.pending.pop_front() {
                self.ongoing_aborted
                    .entry(t.producer_id)
                    .or_insert((t, false));
            }
        }
    }

    /// A data batch: `true` if it belongs to an aborted transaction (to be removed).
    fn on_batch(&mut self, h: &Header) -> bool {
        self.consume_up_to(h.last_offset());
        if !h.is_transactional() {
            return false;
        }
        match self.ongoing_aborted.get_mut(&h.producer_id) {
            Some((_, seen)) => {
                *seen = true;
                true
            }
            None => {
                self.ongoing_committed.insert(h.producer_id);
                false
            }
        }
    }

    /// A control batch: `true` if its marker may be removed (once its delete horizon passed).
    fn on_control(&mut self, h: &Header, marker: Option<TxnMarker>) -> bool {
        self.consume_up_to(h.last_offset());
        // An empty control batch was emptied by an earlier pass: nothing depends on it.
        let Some(marker) = marker else {
            return true;
        };
        if marker.commit {
            !self.ongoing_committed.remove(&h.producer_id)
        } else {
            match self.ongoing_aborted.remove(&h.producer_id) {
                Some((txn, true)) => {
                    self.cleaned_index.push(txn);
                    false
                }
                _ => true,
            }
        }
    }
}

/// A batch that stays: the bytes to write and the delete horizon they carry, if any.
type Filtered<'b> = (std::borrow::Cow<'b, [u8]>, Option<i64>);

/// Kafka's `BatchRetention`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BatchRetention {
    Delete,
    DeleteEmpty,
    RetainEmpty,
}

/// One record copied out of a batch.
struct OwnedRecord {
    offset_delta: i32,
    timestamp: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

/// The records of a batch (any codec), owned.
fn decode_records(batch: &[u8], max_uncompressed_bytes: usize) -> Result<Vec<OwnedRecord>> {
    let view = BatchView::parse(batch)?;
    let h = *view.header();
    let decoded = view.decode_records(max_uncompressed_bytes)?;
    let mut out = Vec::with_capacity(usize::try_from(h.records_count).unwrap_or(0).min(1 << 16));
    for r in decoded.iter() {
        let r = r?;
        out.push(OwnedRecord {
            offset_delta: r.offset_delta,
            timestamp: if h.timestamp_type() == TimestampType::LogAppendTime {
                h.max_timestamp
            } else {
                r.timestamp(h.base_timestamp)
            },
            key: r.key.map(<[u8]>::to_vec),
            value: r.value.map(<[u8]>::to_vec),
            headers: r
                .headers
                .iter()
                .map(|(k, v)| (k.to_vec(), v.map(<[u8]>::to_vec)))
                .collect(),
        });
    }
    Ok(out)
}

/// Rebuilds a batch with only `records`, keeping everything Kafka's `filterTo` keeps: base
/// offset, last offset delta, producer fields, flags, leader epoch, codec; with a delete horizon
/// when given (KIP-534).
fn rebuild_batch(
    h: &Header,
    records: &[OwnedRecord],
    delete_horizon_ms: Option<i64>,
) -> Result<Vec<u8>> {
    let mut b = BatchBuilder::new(h.base_offset)
        .producer(h.producer_id, h.producer_epoch, h.base_sequence)
        .partition_leader_epoch(h.partition_leader_epoch)
        .transactional(h.is_transactional())
        .control(h.is_control())
        .timestamp_type(h.timestamp_type())
        .last_offset_delta(h.last_offset_delta);
    let codec = h.compression().unwrap_or(Compression::None);
    if codec != Compression::None {
        b = b.compression(codec, None);
    }
    if h.timestamp_type() == TimestampType::LogAppendTime || records.is_empty() {
        // LogAppendTime batches carry the append time; an empty batch keeps its old max
        // timestamp (Kafka's `writeEmptyHeader`).
        b = b.max_timestamp(h.max_timestamp);
    }
    match delete_horizon_ms {
        Some(ms) => b = b.delete_horizon(ms),
        None if records.is_empty() => b = b.timestamp(h.max_timestamp),
        None => {}
    }
    for r in records {
        let headers: Vec<(&[u8], Option<&[u8]>)> = r
            .headers
            .iter()
            .map(|(k, v)| (k.as_slice(), v.as_deref()))
            .collect();
        b = b.record_with_offset_delta(
            r.offset_delta,
            r.key.as_deref(),
            r.value.as_deref(),
            &headers,
            r.timestamp,
        );
    }
    Ok(b.try_build()?)
}

/// Builds the `.log.cleaned` file of a group and its indexes (Kafka's indexing rule: an offset
/// entry for a batch when more than `index.interval.bytes` were written since the last one, a
/// time entry alongside when the max timestamp grew, and a final time entry at the end).
struct CleanedWriter {
    base_offset: i64,
    log: Arc<dyn StorageFile>,
    log_path: PathBuf,
    pos: u64,
    buf: Vec<u8>,
    interval: u64,
    since_index: u64,
    max_timestamp: i64,
    offset_of_max_timestamp: i64,
    offset_index: Vec<u8>,
    time_index: Vec<u8>,
    last_time_entry: Option<i64>,
    batches: u64,
}

impl CleanedWriter {
    fn create(backend: &dyn Backend, dir: &Path, base_offset: i64, interval: u32) -> Result<Self> {
        let log_path = group_path(dir, base_offset, LOG_SUFFIX, CLEANED_SUFFIX);
        remove_if_exists(backend, &log_path)?;
        let log = backend
            .open(&log_path, true)
            .map_err(|e| StorageError::io(&log_path, e))?;
        Ok(CleanedWriter {
            base_offset,
            log,
            log_path,
            pos: 0,
            buf: Vec::new(),
            interval: u64::from(interval),
            since_index: 0,
            max_timestamp: NO_TIMESTAMP,
            offset_of_max_timestamp: -1,
            offset_index: Vec::new(),
            time_index: Vec::new(),
            last_time_entry: None,
            batches: 0,
        })
    }

    fn rel(&self, offset: i64) -> u32 {
        // Groups span at most i32::MAX offsets (grouping checks it).
        u32::try_from(offset - self.base_offset).unwrap_or(u32::MAX)
    }

    fn push_time(&mut self) {
        if self.max_timestamp == NO_TIMESTAMP
            || self
                .last_time_entry
                .is_some_and(|t| t >= self.max_timestamp)
        {
            return;
        }
        let rel = self.rel(self.offset_of_max_timestamp);
        self.time_index
            .extend_from_slice(&self.max_timestamp.to_be_bytes());
        self.time_index.extend_from_slice(&rel.to_be_bytes());
        self.last_time_entry = Some(self.max_timestamp);
    }

    fn append(&mut self, batch: &[u8], h: &Header) -> Result<()> {
        let pos = self.pos + self.buf.len() as u64;
        if h.max_timestamp > self.max_timestamp {
            self.max_timestamp = h.max_timestamp;
            self.offset_of_max_timestamp = h.last_offset();
        }
        if self.since_index > self.interval && pos <= u64::from(u32::MAX) {
            let rel = self.rel(h.last_offset());
            self.offset_index.extend_from_slice(&rel.to_be_bytes());
            self.offset_index
                .extend_from_slice(&(pos as u32).to_be_bytes());
            self.push_time();
            self.since_index = 0;
        }
        self.since_index += batch.len() as u64;
        self.buf.extend_from_slice(batch);
        self.batches += 1;
        if self.buf.len() >= WRITE_CHUNK_BYTES {
            self.flush_buf()?;
        }
        Ok(())
    }

    fn flush_buf(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.log
            .write_all_at(&self.buf, self.pos)
            .map_err(|e| StorageError::io(&self.log_path, e))?;
        self.pos += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    /// Writes the rest and the three index files, fsyncs all four; returns the log size.
    fn finish(mut self, backend: &dyn Backend, dir: &Path, txns: &[AbortedTxn]) -> Result<u64> {
        self.flush_buf()?;
        self.push_time();
        self.log
            .sync()
            .map_err(|e| StorageError::io(&self.log_path, e))?;
        let txn_bytes: Vec<u8> = txns.iter().flat_map(|t| t.to_bytes()).collect();
        for (suffix, content) in [
            (INDEX_SUFFIX, &self.offset_index),
            (TIME_INDEX_SUFFIX, &self.time_index),
            (TXN_INDEX_SUFFIX, &txn_bytes),
        ] {
            let p = group_path(dir, self.base_offset, suffix, CLEANED_SUFFIX);
            remove_if_exists(backend, &p)?;
            let f = backend
                .open(&p, true)
                .map_err(|e| StorageError::io(&p, e))?;
            f.write_all_at(content, 0)
                .map_err(|e| StorageError::io(&p, e))?;
            f.sync().map_err(|e| StorageError::io(&p, e))?;
        }
        Ok(self.pos)
    }
}

impl CleanTask {
    /// The first offset this pass may clean from.
    pub fn first_dirty_offset(&self) -> i64 {
        self.first_dirty_offset
    }

    /// The end of the cleanable range.
    pub fn first_uncleanable_offset(&self) -> i64 {
        self.first_uncleanable_offset
    }

    /// Runs the pass without the log: builds the offset map, writes and fsyncs the cleaned
    /// segments (`.cleaned` files). `throttle` is called with the bytes of each batch read or
    /// written (`log.cleaner.io.max.bytes.per.second`); it may sleep, and returning `false`
    /// abandons the pass (shutdown). On error the `.cleaned` files written so far are removed.
    pub fn run(
        &self,
        settings: &CleanerSettings,
        now_ms: i64,
        throttle: &mut dyn FnMut(u64) -> bool,
    ) -> Result<CleanOutput> {
        let started = Instant::now();
        let mut stats = CleanerStats::default();
        let mut map = OffsetMap::with_memory(settings.dedupe_buffer_bytes);
        // The clean part below the dirty range is deduplicated already: its records are
        // compared with the map (and kept unless superseded or an expired tombstone) rather
        // than kept blindly as records past the map's end are.
        map.set_latest_offset(self.first_dirty_offset - 1);
        let end_offset = self.build_offset_map(&mut map, settings, &mut stats, throttle)?;
        stats.map_keys = map.len() as u64;
        let groups = self.group_segments(end_offset);
        let mut out = CleanOutput {
            dir: self.dir.clone(),
            backend: Arc::clone(&self.backend),
            groups: Vec::new(),
            end_offset,
            latest_delete_horizon_ms: NO_TIMESTAMP,
            stats: CleanerStats::default(),
            first_dirty_offset: self.first_dirty_offset,
            truncations: self.truncations,
        };
        let mut txns = TxnMetadata::new(&self.aborted);
        for group in groups {
            let base = group[0].base_offset;
            match self.clean_group(
                &group, &map, &mut txns, settings, now_ms, &mut stats, &mut out, throttle,
            ) {
                Ok(bytes) => out.groups.push(CleanedGroup {
                    base_offset: base,
                    sources: group
                        .iter()
                        .map(|s| (s.base_offset, Arc::clone(&s.file)))
                        .collect(),
                    bytes,
                }),
                Err(e) => {
                    remove_group_files(self.backend.as_ref(), &self.dir, base, CLEANED_SUFFIX);
                    out.abandon();
                    return Err(e);
                }
            }
        }
        stats.elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        out.stats = stats;
        Ok(out)
    }

    /// Fills `map` from the dirty range; returns the offset the pass covers up to (exclusive):
    /// the first uncleanable offset, or less if the map filled up.
    fn build_offset_map(
        &self,
        map: &mut OffsetMap,
        settings: &CleanerSettings,
        stats: &mut CleanerStats,
        throttle: &mut dyn FnMut(u64) -> bool,
    ) -> Result<i64> {
        let (start, upper) = (self.first_dirty_offset, self.first_uncleanable_offset);
        let mut txns = TxnMetadata::new(&self.aborted);
        for seg in &self.segments {
            if seg.next_base <= start {
                continue;
            }
            if seg.base_offset >= upper {
                break;
            }
            let mut pos = 0usize;
            while pos + BATCH_HEADER_LEN <= seg.bytes.len() {
                let Ok(h) = batch::parse_header(&seg.bytes[pos..]) else {
                    break;
                };
                let total = batch::total_len(&h);
                let Some(bytes) = seg.bytes.get(pos..pos + total) else {
                    break;
                };
                pos += total;
                if h.last_offset() < start {
                    continue;
                }
                if h.last_offset() >= upper {
                    return Ok(upper);
                }
                stats.map_bytes_read += total as u64;
                if !throttle(total as u64) {
                    return Err(aborted(&self.dir));
                }
                if h.is_control() {
                    txns.on_control(&h, TxnMarker::from_control_batch(bytes));
                } else if !txns.on_batch(&h) {
                    match decode_records(bytes, settings.max_batch_uncompressed_bytes) {
                        Ok(records) => {
                            for r in &records {
                                stats.map_records_read += 1;
                                let offset = h.base_offset + i64::from(r.offset_delta);
                                let Some(key) = &r.key else { continue };
                                if offset < start {
                                    continue;
                                }
                                if !map.put(key, offset) {
                                    // Full: this pass ends before this record.
                                    return Ok(offset.max(start));
                                }
                            }
                        }
                        Err(e) => {
                            // An unreadable batch ends the pass before it: it is kept as is.
                            tracing::warn!(dir = %self.dir.display(), offset = h.base_offset,
                                error = %e, "cleaner cannot read a batch; not cleaning past it");
                            return Ok(h.base_offset.max(start));
                        }
                    }
                }
                map.set_latest_offset(h.last_offset());
            }
        }
        Ok(upper)
    }

    /// Kafka's `groupSegmentsBySize` over the segments below `end_offset`.
    fn group_segments(&self, end_offset: i64) -> Vec<Vec<SourceSegment>> {
        let mut groups: Vec<Vec<SourceSegment>> = Vec::new();
        let segs: Vec<&SourceSegment> = self
            .segments
            .iter()
            .filter(|s| s.base_offset < end_offset)
            .collect();
        let mut i = 0;
        while i < segs.len() {
            let first = segs[i];
            let mut group = vec![first.clone()];
            let mut size = first.bytes.len() as u64;
            let mut oi = first.offset_index_bytes;
            let mut ti = first.time_index_bytes;
            i += 1;
            while i < segs.len() {
                let s = segs[i];
                let fits = size + s.bytes.len() as u64 <= self.segment_bytes
                    && oi + s.offset_index_bytes <= self.segment_index_bytes
                    && ti + s.time_index_bytes <= self.segment_index_bytes
                    && s.next_base - 1 - first.base_offset <= i64::from(i32::MAX);
                if !fits {
                    break;
                }
                size += s.bytes.len() as u64;
                oi += s.offset_index_bytes;
                ti += s.time_index_bytes;
                group.push(s.clone());
                i += 1;
            }
            groups.push(group);
        }
        groups
    }

    #[allow(clippy::too_many_arguments)]
    fn clean_group(
        &self,
        group: &[SourceSegment],
        map: &OffsetMap,
        txns: &mut TxnMetadata,
        settings: &CleanerSettings,
        now_ms: i64,
        stats: &mut CleanerStats,
        out: &mut CleanOutput,
        throttle: &mut dyn FnMut(u64) -> bool,
    ) -> Result<u64> {
        let b = self.backend.as_ref();
        let base = group[0].base_offset;
        let mut w = CleanedWriter::create(b, &self.dir, base, self.index_interval_bytes)?;
        txns.cleaned_index.clear();
        for seg in group {
            let mut pos = 0usize;
            while pos + BATCH_HEADER_LEN <= seg.bytes.len() {
                let Ok(h) = batch::parse_header(&seg.bytes[pos..]) else {
                    break;
                };
                let total = batch::total_len(&h);
                let Some(bytes) = seg.bytes.get(pos..pos + total) else {
                    break;
                };
                pos += total;
                stats.bytes_read += total as u64;
                if !throttle(total as u64) {
                    return Err(aborted(&self.dir));
                }
                if let Some((out_bytes, horizon)) =
                    self.filter_batch(bytes, &h, map, txns, settings, now_ms, stats)?
                {
                    // Only a horizon still ahead makes a later pass worth it: a batch kept past
                    // its horizon (a producer's last batch, kept empty) must not keep the log due.
                    if let Some(hz) = horizon.filter(|&hz| hz > now_ms) {
                        out.latest_delete_horizon_ms = out.latest_delete_horizon_ms.max(hz);
                    }
                    let oh = batch::parse_header(&out_bytes)?;
                    w.append(&out_bytes, &oh)?;
                    stats.bytes_written += out_bytes.len() as u64;
                    if !throttle(out_bytes.len() as u64) {
                        return Err(aborted(&self.dir));
                    }
                }
            }
        }
        let cleaned_txns = std::mem::take(&mut txns.cleaned_index);
        w.finish(b, &self.dir, &cleaned_txns)
    }

    /// Kafka's `filterTo` for one batch with the cleaner's filter: `None` if the batch goes,
    /// else the bytes to write and the delete horizon they carry (if any).
    #[allow(clippy::too_many_arguments)]
    fn filter_batch<'b>(
        &self,
        bytes: &'b [u8],
        h: &Header,
        map: &OffsetMap,
        txns: &mut TxnMetadata,
        settings: &CleanerSettings,
        now_ms: i64,
        stats: &mut CleanerStats,
    ) -> Result<Option<Filtered<'b>>> {
        use std::borrow::Cow;
        let control = h.is_control();
        let can_discard = if control {
            txns.on_control(h, TxnMarker::from_control_batch(bytes))
        } else {
            txns.on_batch(h)
        };
        let horizon_passed = h.has_delete_horizon() && h.base_timestamp <= now_ms;
        let discard_records = if control {
            can_discard && horizon_passed
        } else {
            can_discard
        };
        let last_of_producer = h.has_producer_id()
            && self
                .last_batches
                .get(&h.producer_id)
                .is_some_and(|&(last_data_offset, epoch)| {
                    if last_data_offset >= 0 {
                        h.last_offset() == last_data_offset
                    } else {
                        control && h.producer_epoch == epoch
                    }
                });
        let retention = if last_of_producer {
            BatchRetention::RetainEmpty
        } else if discard_records {
            BatchRetention::Delete
        } else {
            BatchRetention::DeleteEmpty
        };
        let marker_for_empty_txn = can_discard && control;
        let existing_horizon = h.has_delete_horizon().then_some(h.base_timestamp);
        if retention == BatchRetention::Delete {
            stats.batches_removed += 1;
            stats.records_read += u64::try_from(h.records_count).unwrap_or(0);
            return Ok(None);
        }
        let records = match decode_records(bytes, settings.max_batch_uncompressed_bytes) {
            Ok(r) => r,
            Err(e) => {
                // Kept whole rather than guessed at: removing records needs to read them.
                tracing::warn!(dir = %self.dir.display(), offset = h.base_offset, error = %e,
                    "cleaner cannot read a batch; keeping it unchanged");
                stats.batches_copied += 1;
                return Ok(Some((Cow::Borrowed(bytes), existing_horizon)));
            }
        };
        stats.records_read += records.len() as u64;
        let total = records.len();
        let mut kept = Vec::with_capacity(total);
        let mut tombstones = false;
        for r in records {
            let keep = !discard_records && (control || self.retain_record(h, &r, map, now_ms));
            if keep {
                tombstones |= !control && r.value.is_none();
                kept.push(r);
            }
        }
        stats.records_retained += kept.len() as u64;
        let needs_horizon = (tombstones || marker_for_empty_txn) && !h.has_delete_horizon();
        if kept.len() == total && !needs_horizon {
            stats.batches_copied += 1;
            return Ok(Some((Cow::Borrowed(bytes), existing_horizon)));
        }
        if kept.is_empty() && retention != BatchRetention::RetainEmpty {
            stats.batches_removed += 1;
            return Ok(None);
        }
        let horizon = if needs_horizon {
            Some(now_ms.saturating_add(self.delete_retention_ms))
        } else {
            existing_horizon
        };
        stats.batches_rewritten += 1;
        let rebuilt = rebuild_batch(h, &kept, horizon)?;
        Ok(Some((Cow::Owned(rebuilt), horizon)))
    }

    /// Kafka's `Cleaner.shouldRetainRecord` for v2 batches.
    fn retain_record(&self, h: &Header, r: &OwnedRecord, map: &OffsetMap, now_ms: i64) -> bool {
        let offset = h.base_offset + i64::from(r.offset_delta);
        if offset > map.latest_offset() {
            return true;
        }
        let Some(key) = &r.key else {
            return false;
        };
        let latest = offset >= map.get(key).unwrap_or(-1);
        let retain_deletes = !h.has_delete_horizon() || now_ms < h.base_timestamp;
        latest && (r.value.is_some() || retain_deletes)
    }
}

impl Log {
    /// Where this log stands for the cleaner, or `None` if its `cleanup.policy` does not include
    /// `compact`. `checkpoint` is the cleaner checkpoint (the previous pass's end), if any;
    /// `high_watermark` bounds the last stable offset.
    pub fn cleanable_info(
        &self,
        checkpoint: Option<i64>,
        high_watermark: i64,
        now_ms: i64,
    ) -> Option<CleanableInfo> {
        if !self.config.compact || self.failed {
            return None;
        }
        let log_start = self.log_start_offset;
        let first_dirty = checkpoint
            .filter(|&c| c >= log_start && c <= self.log_end_offset())
            .unwrap_or(log_start);
        let mut uncleanable = self
            .active()
            .base_offset
            .min(self.last_stable_offset(high_watermark.min(self.log_end_offset())));
        let lag = self.config.min_compaction_lag_ms;
        if lag > 0 {
            let last = self.segments.len() - 1;
            for (i, seg) in self.segments[..last].iter().enumerate() {
                if self.segments[i + 1].base_offset <= first_dirty {
                    // Entirely clean: not part of the dirty range.
                    continue;
                }
                if seg.max_timestamp > now_ms.saturating_sub(lag) {
                    uncleanable = uncleanable.min(seg.base_offset);
                    break;
                }
            }
        }
        let uncleanable = uncleanable.max(first_dirty);
        let mut clean_bytes = 0;
        let mut cleanable_bytes = 0;
        let mut oldest_dirty_ts: Option<i64> = None;
        for (i, seg) in self.segments.iter().enumerate() {
            let next_base = self
                .segments
                .get(i + 1)
                .map_or(self.log_end_offset(), |s| s.base_offset);
            if seg.base_offset < first_dirty {
                clean_bytes += seg.size;
            }
            if seg.base_offset < uncleanable && next_base > first_dirty {
                cleanable_bytes += seg.size;
                if oldest_dirty_ts.is_none() {
                    oldest_dirty_ts = seg.first_batch_timestamp.filter(|&t| t >= 0);
                }
            }
        }
        let max_lag = self.config.max_compaction_lag_ms;
        let must_clean_now = max_lag < i64::MAX
            && oldest_dirty_ts.is_some_and(|t| now_ms.saturating_sub(t) > max_lag);
        Some(CleanableInfo {
            first_dirty_offset: first_dirty,
            first_uncleanable_offset: uncleanable,
            clean_bytes,
            cleanable_bytes,
            must_clean_now,
            delete_horizon_passed: self.latest_delete_horizon_ms != NO_TIMESTAMP
                && self.latest_delete_horizon_ms <= now_ms,
            min_cleanable_ratio: self.config.min_cleanable_dirty_ratio,
        })
    }

    /// Takes the work of a pass over `info`'s range (see the module docs); `None` if there is
    /// no sealed segment to clean.
    pub fn prepare_clean(&self, info: &CleanableInfo) -> Result<Option<CleanTask>> {
        self.check_ok()?;
        let upper = info.first_uncleanable_offset;
        let last = self.segments.len() - 1;
        let mut segments = Vec::new();
        for (i, seg) in self.segments[..last].iter().enumerate() {
            if seg.base_offset >= upper {
                break;
            }
            let Some(bytes) = seg.sealed_bytes() else {
                break;
            };
            segments.push(SourceSegment {
                base_offset: seg.base_offset,
                next_base: self.segments[i + 1].base_offset,
                bytes,
                file: seg.log_file(),
                offset_index_bytes: seg.index.bytes().len() as u64,
                time_index_bytes: seg.time_index.bytes().len() as u64,
            });
        }
        if segments.is_empty() {
            return Ok(None);
        }
        // Every aborted transaction that began below the end of the range, wherever its marker
        // landed (Kafka's `collectAbortedTransactions` from the first segment on).
        let mut aborted: Vec<AbortedTxn> = self
            .segments
            .iter()
            .flat_map(|s| s.txn_index.entries())
            .filter(|t| t.first_offset < upper)
            .collect();
        aborted.sort_by_key(|t| t.first_offset);
        let last_batches = self
            .producers
            .entries()
            .map(|(&pid, e)| (pid, (e.last_data_offset(), e.epoch())))
            .collect();
        Ok(Some(CleanTask {
            dir: self.dir.clone(),
            backend: Arc::clone(&self.backend),
            segments,
            first_dirty_offset: info.first_dirty_offset,
            first_uncleanable_offset: upper,
            aborted,
            last_batches,
            segment_bytes: self.config.segment_bytes.min(super::SEGMENT_MAX_BYTES),
            segment_index_bytes: u64::from(self.config.segment_index_bytes),
            index_interval_bytes: self.config.index_interval_bytes,
            delete_retention_ms: self.config.delete_retention_ms,
            truncations: self.truncations,
        }))
    }

    /// Swaps the cleaned segments of `output` in (see the module docs for the protocol). A
    /// group whose segments are no longer the ones the pass read is dropped (retention or
    /// DeleteRecords removed them), and the whole pass if the log was truncated meanwhile. Returns the stats
    /// with the groups swapped and skipped. A failure part-way takes the log offline
    /// ([`StorageError::Failed`]); reopening completes or rolls back the swap.
    pub fn finish_clean(&mut self, output: CleanOutput, now_ms: i64) -> Result<CleanerStats> {
        let mut stats = output.stats.clone();
        if let Err(e) = self.check_ok() {
            output.abandon();
            return Err(e);
        }
        if output.truncations != self.truncations {
            // The offset map may name records the truncation removed: a key's older record
            // would go with nothing newer left. Kafka aborts cleaning on truncation too.
            tracing::info!(dir = %self.dir.display(), "log truncated during cleaning; dropping the pass");
            stats.groups_skipped += output.groups.len() as u64;
            output.abandon();
            return Ok(stats);
        }
        let b = Arc::clone(&output.backend);
        let mut groups = output.groups.into_iter();
        while let Some(g) = groups.next() {
            let Some(first) = self.unchanged_position(&g) else {
                tracing::info!(dir = %self.dir.display(), base = g.base_offset,
                    "log changed during cleaning; dropping the cleaned segment");
                remove_group_files(b.as_ref(), &output.dir, g.base_offset, CLEANED_SUFFIX);
                stats.groups_skipped += 1;
                continue;
            };
            if let Err(e) = self.swap_group(&g, first, now_ms) {
                self.failed = true;
                for rest in groups {
                    remove_group_files(b.as_ref(), &output.dir, rest.base_offset, CLEANED_SUFFIX);
                }
                return Err(e);
            }
            stats.groups_swapped += 1;
        }
        // The pass re-read every batch with a horizon below its end: what it found ahead is
        // what is left to wait for.
        self.latest_delete_horizon_ms = output.latest_delete_horizon_ms;
        Ok(stats)
    }

    /// The index of the group's first segment if all its segments are still in the log, the
    /// very same files, consecutive and sealed.
    fn unchanged_position(&self, g: &CleanedGroup) -> Option<usize> {
        let first = self
            .segments
            .iter()
            .position(|s| s.base_offset == g.sources[0].0)?;
        let last = self.segments.len() - 1;
        for (k, (base, file)) in g.sources.iter().enumerate() {
            let i = first + k;
            if i >= last {
                return None;
            }
            let seg = &self.segments[i];
            if seg.base_offset != *base || !seg.is_sealed() || !Arc::ptr_eq(&seg.log_file(), file) {
                return None;
            }
        }
        Some(first)
    }

    /// Kafka's `replaceSegments`: `.cleaned` -> `.swap`; old segments -> `.deleted`; `.swap` ->
    /// final names; each step made durable before the next.
    fn swap_group(&mut self, g: &CleanedGroup, first: usize, now_ms: i64) -> Result<()> {
        let b = Arc::clone(&self.backend);
        let dir = self.dir.clone();
        let sync_dir = || b.sync_dir(&dir).map_err(|e| StorageError::io(&dir, e));
        // The `.log` goes last: a `.log.swap` on disk means the whole group is ready.
        for suffix in SEGMENT_SUFFIXES {
            let from = group_path(&dir, g.base_offset, suffix, CLEANED_SUFFIX);
            let to = group_path(&dir, g.base_offset, suffix, SWAP_SUFFIX);
            b.rename(&from, &to)
                .map_err(|e| StorageError::io(&from, e))?;
        }
        sync_dir()?;
        let n = g.sources.len();
        let doomed: Vec<Segment> = self.segments.drain(first..first + n).collect();
        let delay = i64::try_from(self.config.file_delete_delay_ms).unwrap_or(i64::MAX);
        let due_ms = now_ms.saturating_add(delay);
        let mut renamed_all = Ok(());
        for seg in &doomed {
            let mut paths = Vec::with_capacity(4);
            let r = seg.rename_to_deleted(b.as_ref(), &mut paths);
            if !paths.is_empty() {
                self.pending_deletes.push(PendingDelete { due_ms, paths });
            }
            if r.is_err() {
                renamed_all = r;
                break;
            }
        }
        // The old segments stay readable through their maps until dropped; on failure the log
        // goes offline and a reopen finishes the swap from the `.log.swap`.
        if let Err(e) = renamed_all {
            self.segments.splice(first..first, doomed);
            return Err(e);
        }
        sync_dir()?;
        for suffix in SEGMENT_SUFFIXES {
            let from = group_path(&dir, g.base_offset, suffix, SWAP_SUFFIX);
            let to = segment_path(&dir, g.base_offset, suffix);
            b.rename(&from, &to)
                .map_err(|e| StorageError::io(&from, e))?;
        }
        sync_dir()?;
        let upper = self.segments.get(first).map(|s| s.base_offset);
        let files = SegmentFiles {
            backend: b.as_ref(),
            dir: &dir,
            index_bytes: self.config.segment_index_bytes,
        };
        let (lp, lf, len) = Segment::open_log(&files, g.base_offset)?;
        let seg = match Segment::load_trusted(
            &files,
            g.base_offset,
            lp,
            lf,
            len,
            upper,
            false,
            now_ms,
        )? {
            Some(seg) => seg,
            None => {
                tracing::warn!(dir = %dir.display(), base = g.base_offset,
                    "cleaned segment's indexes do not check out; rebuilding them");
                let (lp, lf, len) = Segment::open_log(&files, g.base_offset)?;
                let (mut seg, _) = Segment::recover(
                    &files,
                    g.base_offset,
                    lp,
                    lf,
                    len,
                    self.config.index_interval_bytes,
                    now_ms,
                )?;
                seg.seal()?;
                seg
            }
        };
        debug_assert!(g.bytes == seg.size);
        self.segments.insert(first, seg);
        drop(doomed);
        Ok(())
    }

    /// The latest delete horizon the cleaner wrote into this log (`-1` if none pending).
    pub fn latest_delete_horizon_ms(&self) -> i64 {
        self.latest_delete_horizon_ms
    }

    /// The sealed segments' bytes (cheap clones of their maps), for [`max_delete_horizon`]
    /// outside whatever lock guards the log.
    pub fn sealed_segment_bytes(&self) -> Vec<Bytes> {
        self.segments
            .iter()
            .filter_map(|s| s.sealed_bytes())
            .collect()
    }

    /// Takes a delete horizon found in the log's batches. The horizon a pass sets is kept in
    /// memory only (as Kafka's `latestDeleteHorizon`); after a restart, a log whose tombstones
    /// were marked but not yet removed would otherwise wait for new dirt before they go.
    pub fn note_delete_horizon(&mut self, horizon_ms: i64) {
        self.latest_delete_horizon_ms = self.latest_delete_horizon_ms.max(horizon_ms);
    }

    /// One whole pass in place (prepare, run, finish) for callers that hold the log anyway
    /// (tests, tools). `None` if the log is not due or has nothing to clean.
    pub fn clean(
        &mut self,
        checkpoint: Option<i64>,
        high_watermark: i64,
        settings: &CleanerSettings,
        now_ms: i64,
    ) -> Result<Option<CleanOutcome>> {
        let Some(info) = self.cleanable_info(checkpoint, high_watermark, now_ms) else {
            return Ok(None);
        };
        if !info.is_due() {
            return Ok(None);
        }
        self.clean_range(&info, settings, now_ms)
    }

    /// [`Log::clean`] over a given range, whether due or not.
    pub fn clean_range(
        &mut self,
        info: &CleanableInfo,
        settings: &CleanerSettings,
        now_ms: i64,
    ) -> Result<Option<CleanOutcome>> {
        let Some(task) = self.prepare_clean(info)? else {
            return Ok(None);
        };
        let output = task.run(settings, now_ms, &mut |_| true)?;
        let end_offset = output.end_offset;
        let stats = self.finish_clean(output, now_ms)?;
        Ok(Some(CleanOutcome { end_offset, stats }))
    }
}

/// What [`Log::clean`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct CleanOutcome {
    /// The new cleaner checkpoint.
    pub end_offset: i64,
    /// Counters.
    pub stats: CleanerStats,
}

/// Completes interrupted swaps in a partition directory before it is loaded (Kafka's
/// `LogLoader` swap handling): for each `<base>.log.swap`, the segments whose base offset lies
/// in the swap's offset range (`[base, its next offset)`, and `base` itself) are deleted and the
/// swap becomes `<base>.log`, with its indexes left to be rebuilt. Other `.swap` files (indexes
/// of a group whose `.log` had not been renamed yet, or of one already completed) are removed.
/// Returns whether anything changed.
pub(crate) fn complete_swaps(b: &dyn Backend, dir: &Path, names: &[String]) -> Result<bool> {
    let log_swap = format!("{LOG_SUFFIX}{SWAP_SUFFIX}");
    let mut changed = false;
    let mut swaps: Vec<i64> = names
        .iter()
        .filter_map(|n| super::parse_segment_name(n, &log_swap))
        .collect();
    swaps.sort_unstable();
    let bases: Vec<i64> = names
        .iter()
        .filter_map(|n| super::parse_segment_name(n, LOG_SUFFIX))
        .collect();
    for base in swaps {
        let path = group_path(dir, base, LOG_SUFFIX, SWAP_SUFFIX);
        let next = swap_next_offset(b, &path, base)?;
        tracing::info!(dir = %dir.display(), base, next_offset = next,
            "completing an interrupted cleaner swap");
        for &old in &bases {
            if old == base || (old > base && old < next) {
                for suffix in [
                    LOG_SUFFIX,
                    INDEX_SUFFIX,
                    TIME_INDEX_SUFFIX,
                    TXN_INDEX_SUFFIX,
                ] {
                    remove_if_exists(b, &segment_path(dir, old, suffix))?;
                }
            }
        }
        // The indexes are rebuilt from the log by the load that follows.
        for suffix in [INDEX_SUFFIX, TIME_INDEX_SUFFIX, TXN_INDEX_SUFFIX] {
            remove_if_exists(b, &segment_path(dir, base, suffix))?;
        }
        let to = segment_path(dir, base, LOG_SUFFIX);
        b.rename(&path, &to)
            .map_err(|e| StorageError::io(&path, e))?;
        changed = true;
    }
    for n in names {
        if n.ends_with(SWAP_SUFFIX) && !n.ends_with(&log_swap) {
            remove_if_exists(b, &dir.join(n))?;
            changed = true;
        }
    }
    if changed {
        b.sync_dir(dir).map_err(|e| StorageError::io(dir, e))?;
    }
    Ok(changed)
}

/// One past the last offset of the last whole batch in a swap file (its base if it has none).
fn swap_next_offset(b: &dyn Backend, path: &Path, base: i64) -> Result<i64> {
    let f = b.open(path, false).map_err(|e| StorageError::io(path, e))?;
    let len = f.len().map_err(|e| StorageError::io(path, e))?;
    let mut pos = 0u64;
    let mut next = base;
    let mut buf = [0u8; BATCH_HEADER_LEN];
    while pos + BATCH_HEADER_LEN as u64 <= len {
        f.read_exact_at(&mut buf, pos)
            .map_err(|e| StorageError::io(path, e))?;
        let Ok(h) = batch::parse_header(&buf) else {
            break;
        };
        let total = batch::total_len(&h) as u64;
        if pos + total > len {
            break;
        }
        next = next.max(h.next_offset());
        pos += total;
    }
    Ok(next)
}

/// The largest KIP-534 delete horizon among the batches in `bytes` (a sealed segment), or
/// `NO_TIMESTAMP` if no batch carries one. Reads batch headers only; stops at the first batch
/// that does not parse (recovery has already cut a torn tail).
pub fn max_delete_horizon(bytes: &[u8]) -> i64 {
    rafka_records::batches(bytes)
        .map_while(Result::ok)
        .filter(|b| b.header().has_delete_horizon())
        .map(|b| b.header().base_timestamp)
        .max()
        .unwrap_or(NO_TIMESTAMP)
}
