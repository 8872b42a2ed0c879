//! [`Log`]: one partition's segments, its leader-epoch cache, its producer state and
//! transactions, recovery, append and read.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use rafka_records::TimestampType;

use crate::backend::{Backend, StorageFile};
use crate::batch::{self, Header, BATCH_HEADER_LEN};
use crate::checkpoint::{self, EpochEntry};
use crate::error::{Result, StorageError};
use crate::producer_state::{
    end_txn_marker_batch, AppendCheck, AppendOrigin, CompletedTxn, DuplicateBatch, ProducerBatch,
    ProducerInfo, ProducerStateManager, TxnMarker,
};
use crate::segment::{
    remove_if_exists, Segment, SegmentFiles, DELETED_SUFFIX, INDEX_SUFFIX, LOG_SUFFIX,
    NO_TIMESTAMP, TIME_INDEX_SUFFIX,
};
use crate::snapshot::{self, SNAPSHOT_SUFFIX};
use crate::txn_index::{AbortedTxn, TXN_INDEX_SUFFIX};
use crate::LEADER_EPOCH_CHECKPOINT_FILE;

pub(crate) mod cleaner;
mod retention;

/// Relative offsets and positions in the indexes are 32-bit; Kafka caps `segment.bytes` at
/// `Int.MaxValue` for the same reason.
const SEGMENT_MAX_BYTES: u64 = i32::MAX as u64;

/// Producer snapshots kept on disk: the newest, and one before it in case the newest was written
/// without fsync (at a roll) and did not survive a crash.
const SNAPSHOTS_TO_KEEP: usize = 2;

/// A control batch is one marker record of a few dozen bytes; a larger one is not a marker worth
/// reading into memory while replaying producer state.
const CONTROL_BATCH_MAX_BYTES: usize = 64 << 10;

/// Per-partition settings, named after Kafka's topic configs (`segment.bytes`, `segment.ms`,
/// `index.interval.bytes`, `segment.index.bytes`, `flush.messages`, `flush.ms`, `retention.ms`,
/// `retention.bytes`, `file.delete.delay.ms`, and the compaction settings).
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// Roll a new segment when the active one would grow past this (`segment.bytes`, 1 GiB).
    pub segment_bytes: u64,
    /// Roll when the active segment's first batch is this much older than the incoming batches
    /// (`segment.ms`, 7 days).
    pub segment_ms: i64,
    /// Bytes of log between offset-index entries (`index.interval.bytes`, 4096).
    pub index_interval_bytes: u32,
    /// Preallocated size of an active segment's indexes; a full index rolls the segment
    /// (`segment.index.bytes`, 10 MiB).
    pub segment_index_bytes: u32,
    /// fsync after this many messages (offsets) since the last flush (`flush.messages`;
    /// `u64::MAX`: never, leave it to the OS and replication, as Kafka's default).
    pub flush_messages: u64,
    /// fsync when this long has passed since the last flush, checked on append and in
    /// [`Log::maybe_flush`] (`flush.ms`; `u64::MAX`: never).
    pub flush_ms: u64,
    /// [`Log::delete_old_segments`] deletes a segment once its largest timestamp is more than
    /// this much older than the time of the check (`retention.ms`, 7 days; negative: no limit).
    pub retention_ms: i64,
    /// [`Log::delete_old_segments`] deletes the oldest segments while the log would still hold
    /// at least this many bytes without them (`retention.bytes`; negative: no limit, Kafka's
    /// default -1).
    pub retention_bytes: i64,
    /// A deleted segment's files are renamed `<name>.deleted` at once and unlinked this much
    /// later by [`Log::delete_expired_files`] (`file.delete.delay.ms`, 60 s), as Kafka does so
    /// that reads in flight are not cut short. This crate's reads do not need the delay (maps and
    /// open files outlive the unlink), so it only mirrors Kafka's visible behaviour.
    pub file_delete_delay_ms: u64,
    /// `cleanup.policy` includes `compact`: the cleaner keeps the latest record per key
    /// ([`Log::cleanable_info`]; default false, Kafka's default policy is `delete`).
    pub compact: bool,
    /// Tombstones and removable transaction markers stay this long after the cleaner first
    /// saw them (their KIP-534 delete horizon; `delete.retention.ms`, 1 day).
    pub delete_retention_ms: i64,
    /// Records younger than this are not compacted (`min.compaction.lag.ms`, 0).
    pub min_compaction_lag_ms: i64,
    /// A log whose oldest uncompacted record is older than this is compacted whatever its
    /// dirty ratio (`max.compaction.lag.ms`, KIP-354; `i64::MAX`: never forced).
    pub max_compaction_lag_ms: i64,
    /// The cleaner takes a log once this share of it is dirty (`min.cleanable.dirty.ratio`,
    /// 0.5).
    pub min_cleanable_dirty_ratio: f64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 60 * 60 * 1000,
            index_interval_bytes: 4096,
            segment_index_bytes: 10 << 20,
            flush_messages: u64::MAX,
            flush_ms: u64::MAX,
            retention_ms: 7 * 24 * 60 * 60 * 1000,
            retention_bytes: -1,
            file_delete_delay_ms: 60_000,
            compact: false,
            delete_retention_ms: 86_400_000,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            min_cleanable_dirty_ratio: 0.5,
        }
    }
}

/// What [`Log::delete_old_segments`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RetentionResult {
    /// Segments deleted because they lie entirely below the log start offset (which
    /// [`Log::delete_records`] or a follower's leader moved).
    pub log_start_breached: usize,
    /// Segments deleted by `retention.bytes`.
    pub size_breached: usize,
    /// Segments deleted by `retention.ms`.
    pub time_breached: usize,
    /// Bytes of batches in the deleted segments.
    pub bytes_deleted: u64,
    /// The active segment was rolled first because every segment was to go (Kafka keeps at
    /// least one segment): the log is now one empty segment at the log end.
    pub rolled: bool,
    /// The log start offset afterwards.
    pub log_start_offset: i64,
}

impl RetentionResult {
    /// Segments deleted for any reason.
    pub fn segments_deleted(&self) -> usize {
        self.log_start_breached + self.size_breached + self.time_breached
    }
}

/// The files of one deleted segment, renamed `.deleted`, waiting for `file.delete.delay.ms`.
#[derive(Debug)]
struct PendingDelete {
    /// When they may be unlinked.
    due_ms: i64,
    /// Their current (`.deleted`) names.
    paths: Vec<PathBuf>,
}

/// What an append did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset of the first record appended (of a duplicate: of the original batch).
    pub base_offset: i64,
    /// Offset of the last record appended (of a duplicate: of the original batch).
    pub last_offset: i64,
    /// Largest batch max timestamp among the appended batches (-1 if none had one).
    pub max_timestamp: i64,
    /// Last offset of the batch holding `max_timestamp` (Kafka's "shallow" offset; -1 if none).
    pub offset_of_max_timestamp: i64,
    /// For batches with timestampType = LogAppendTime, their (broker-assigned) timestamp; this
    /// is what ProduceResponse's `log_append_time_ms` reports. `None` for CreateTime, except for
    /// a duplicate: Kafka then reports the original batch's max timestamp here whatever the
    /// timestamp type, and so does this.
    pub log_append_time_ms: Option<i64>,
    /// The log start offset after the append (ProduceResponse reports it).
    pub log_start_offset: i64,
    /// Bytes written.
    pub bytes: usize,
    /// The append was a retry of a batch already in the log (same producer id, epoch and
    /// sequence range as one of the producer's last five batches): nothing was written and the
    /// offsets are those of the original, which is what the producer must be told.
    pub duplicate: bool,
}

/// Result of [`Log::read`].
#[derive(Debug, Clone)]
pub struct LogRead {
    /// Whole batches, back to back, exactly as stored (zero-copy over a map for sealed segments).
    pub records: Bytes,
    /// One past the last offset of the last batch returned (== the requested offset if empty).
    pub next_offset: i64,
    /// The log start offset at the time of the read.
    pub log_start_offset: i64,
    /// The log end offset at the time of the read.
    pub log_end_offset: i64,
}

/// Answer of a timestamp lookup (ListOffsets).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimestampOffset {
    /// The timestamp found.
    pub timestamp: i64,
    /// The offset found.
    pub offset: i64,
    /// The batch's partition leader epoch, if it has one.
    pub leader_epoch: Option<i32>,
}

/// fsyncs of sealed segments, detached from the log so they can run outside its lock. See
/// [`Log::sealed_flush`].
#[derive(Debug)]
pub struct SealedFlush {
    files: Vec<(PathBuf, Arc<dyn crate::StorageFile>)>,
    dir: PathBuf,
    backend: Arc<dyn Backend>,
    upto_offset: i64,
}

impl SealedFlush {
    /// The recovery point this flush establishes.
    pub fn upto_offset(&self) -> i64 {
        self.upto_offset
    }

    /// fsyncs the files, then the directory (which holds the new segments' names).
    pub fn run(&self) -> Result<()> {
        for (path, f) in &self.files {
            f.sync().map_err(|e| StorageError::io(path, e))?;
        }
        self.backend
            .sync_dir(&self.dir)
            .map_err(|e| StorageError::io(&self.dir, e))
    }
}

/// The batches of `bytes` (whole, already summarized) that carry a producer id, for producer
/// state. With `first_offset`, the headers get the offsets the leader is about to stamp
/// (consecutive from it); otherwise they keep their own.
fn producer_batches(bytes: &[u8], first_offset: Option<i64>) -> Vec<ProducerBatch> {
    let mut out = Vec::new();
    let mut next = first_offset;
    let mut pos = 0;
    while pos < bytes.len() {
        // Already parsed by `summarize`; a failure here cannot happen but must not panic.
        let Ok(mut header) = batch::parse_header(&bytes[pos..]) else {
            break;
        };
        let total = batch::total_len(&header);
        if let Some(offset) = next {
            header.base_offset = offset;
            next = Some(header.next_offset());
        }
        if header.has_producer_id() {
            let marker = if header.is_control() {
                bytes
                    .get(pos..pos + total)
                    .and_then(TxnMarker::from_control_batch)
            } else {
                None
            };
            out.push(ProducerBatch { header, marker });
        }
        pos += total;
    }
    out
}

/// Structural summary of the batches handed to an append.
struct Summary {
    bytes: usize,
    offsets: i64,
    first_base_offset: i64,
    last_offset: i64,
    max_timestamp: i64,
}

/// Walks the batch headers of `bytes` (whole batches only). With `stamped`, checks that the given
/// offsets increase and start at or after `min_base`.
fn summarize(bytes: &[u8], stamped: Option<i64>) -> Result<Summary> {
    let mut s = Summary {
        bytes: bytes.len(),
        offsets: 0,
        first_base_offset: -1,
        last_offset: -1,
        max_timestamp: NO_TIMESTAMP,
    };
    let mut pos = 0;
    let mut expected = stamped;
    while pos < bytes.len() {
        let h = batch::parse_header(&bytes[pos..])?;
        let total = batch::total_len(&h);
        if pos + total > bytes.len() {
            return Err(StorageError::InvalidBatch(format!(
                "batch at byte {pos} claims {total} bytes but only {} remain",
                bytes.len() - pos
            )));
        }
        if let Some(min) = expected {
            if h.base_offset < min {
                return Err(StorageError::NonMonotonicOffset {
                    first_offset: h.base_offset,
                    expected: min,
                });
            }
            expected = Some(h.last_offset() + 1);
        }
        if s.first_base_offset < 0 {
            s.first_base_offset = h.base_offset;
        }
        s.last_offset = h.last_offset();
        s.offsets += i64::from(h.last_offset_delta) + 1;
        s.max_timestamp = s.max_timestamp.max(h.max_timestamp);
        pos += total;
    }
    Ok(s)
}

/// A partition log in Kafka's on-disk layout. See the crate docs for the files.
///
/// Not internally synchronized: the broker wraps each `Log` in a mutex. `Send + Sync`.
#[derive(Debug)]
pub struct Log {
    dir: PathBuf,
    config: LogConfig,
    backend: Arc<dyn Backend>,
    /// Sorted by base offset, never empty; the last one is active (unmapped, written to), the
    /// others are sealed (mapped, immutable).
    segments: Vec<Segment>,
    log_start_offset: i64,
    recovery_point: i64,
    epochs: Vec<EpochEntry>,
    last_flush_ms: i64,
    /// Set when a write or fsync failed in a way that leaves the files' state unknown.
    failed: bool,
    /// Idempotent/transactional producer state as of the log end.
    producers: ProducerStateManager,
    /// Offsets of the producer snapshots on disk, ascending, all in (log start, log end].
    snapshots: Vec<i64>,
    /// Snapshots written at a roll without fsync (Kafka keeps that fsync off the produce path
    /// too); the next flush or sealed flush syncs them.
    unsynced_snapshots: Vec<(i64, PathBuf, Arc<dyn StorageFile>)>,
    /// Transactions closed by a marker that may not be replicated yet, first offset -> marker
    /// offset (Kafka's `unreplicatedTxns`): they hold the last stable offset back until the high
    /// watermark passes their marker ([`Log::on_high_watermark_updated`]).
    unreplicated_txns: BTreeMap<i64, i64>,
    /// Deleted segments' files waiting to be unlinked, in deletion order.
    pending_deletes: Vec<PendingDelete>,
    /// The latest delete horizon the cleaner wrote (Kafka's `latestDeleteHorizon`, in memory
    /// only): once it passes, the log is worth a pass even if not dirty.
    latest_delete_horizon_ms: i64,
    /// Counts truncations: a cleaner pass prepared before one is dropped whole (its offset map
    /// may hold records the truncation removed, which must not make older ones go).
    truncations: u64,
}

impl Log {
    /// Opens (creating if new) the partition log in `dir`.
    ///
    /// Without `clean_shutdown` the segments from the one containing `recovery_point` on are
    /// recovered: every batch is CRC-checked, the log is truncated at the first torn or corrupt
    /// batch (later segments are deleted), and indexes are rebuilt. With `clean_shutdown` the
    /// indexes are still checked and rebuilt if missing or inconsistent.
    ///
    /// Producer state is then loaded from the newest valid snapshot at or below the log end and
    /// brought up to the log end by replaying batch headers from there (from the log start
    /// without a snapshot). A corrupt snapshot is deleted and the next older one tried.
    ///
    /// `log_start_offset` is the broker's `log-start-offset-checkpoint` entry (0 if none): the
    /// log start is the larger of it and the first segment's base offset, so a start that
    /// DeleteRecords put inside a segment survives the restart. Files left by an interrupted
    /// deletion (`.deleted`, indexes without their `.log`) are removed first.
    pub fn open(
        dir: PathBuf,
        config: LogConfig,
        backend: Arc<dyn Backend>,
        recovery_point: i64,
        log_start_offset: i64,
        clean_shutdown: bool,
        now_ms: i64,
    ) -> Result<Log> {
        let b = backend.as_ref();
        b.create_dir_all(&dir)
            .map_err(|e| StorageError::io(&dir, e))?;
        let mut names = b.list_dir(&dir).map_err(|e| StorageError::io(&dir, e))?;
        // A cleaner swap interrupted by a crash is completed first (`.log.swap` replaces the
        // segments in its range); `.cleaned` files are removed below with the other leftovers.
        if cleaner::complete_swaps(b, &dir, &names)? {
            names = b.list_dir(&dir).map_err(|e| StorageError::io(&dir, e))?;
        }
        let mut bases = Vec::new();
        let mut snapshots = Vec::new();
        for name in &names {
            let path = dir.join(name);
            if [".tmp", ".rafka-tmp", DELETED_SUFFIX, ".cleaned", ".swap"]
                .iter()
                .any(|s| name.ends_with(s))
            {
                // Leftovers of an interrupted atomic write, of Kafka's cleaner, or of segments
                // retention deleted (`.deleted`, not unlinked yet): never live data.
                tracing::info!(path = %path.display(), "removing leftover temporary file");
                remove_if_exists(b, &path)?;
            } else if let Some(base) = parse_segment_name(name, LOG_SUFFIX) {
                bases.push(base);
            } else if let Some(offset) = parse_segment_name(name, SNAPSHOT_SUFFIX) {
                snapshots.push(offset);
            }
        }
        snapshots.sort_unstable();
        for name in &names {
            let base = parse_segment_name(name, INDEX_SUFFIX)
                .or_else(|| parse_segment_name(name, TIME_INDEX_SUFFIX))
                .or_else(|| parse_segment_name(name, TXN_INDEX_SUFFIX));
            if let Some(base) = base {
                if !bases.contains(&base) {
                    remove_if_exists(b, &dir.join(name))?;
                }
            }
        }
        bases.sort_unstable();

        let files = SegmentFiles {
            backend: b,
            dir: &dir,
            index_bytes: config.segment_index_bytes,
        };
        let recover_from = if clean_shutdown {
            bases.len()
        } else {
            bases
                .partition_point(|&base| base <= recovery_point)
                .saturating_sub(1)
        };
        let mut segments: Vec<Segment> = Vec::with_capacity(bases.len());
        let mut n = bases.len();
        let mut i = 0;
        while i < n {
            let base = bases[i];
            let upper = if i + 1 < n { Some(bases[i + 1]) } else { None };
            let active = i + 1 == n;
            let mut loaded = None;
            if i < recover_from {
                let (lp, lf, len) = Segment::open_log(&files, base)?;
                loaded = Segment::load_trusted(&files, base, lp, lf, len, upper, active, now_ms)?;
                if loaded.is_none() {
                    tracing::warn!(dir = %dir.display(), base, "index missing or inconsistent; rebuilding");
                }
            }
            let seg = match loaded {
                Some(seg) => seg,
                None => {
                    let (lp, lf, len) = Segment::open_log(&files, base)?;
                    let (mut seg, result) = Segment::recover(
                        &files,
                        base,
                        lp,
                        lf,
                        len,
                        config.index_interval_bytes,
                        now_ms,
                    )?;
                    let overlaps = upper.is_some_and(|u| seg.next_offset > u);
                    if result.truncated_bytes > 0 || overlaps {
                        tracing::warn!(dir = %dir.display(), base, truncated_bytes = result.truncated_bytes,
                            "recovery truncated the log; deleting later segments");
                        for &later in &bases[i + 1..n] {
                            delete_segment_files(b, &dir, later)?;
                        }
                        n = i + 1;
                    }
                    if i + 1 < n {
                        seg.seal()?;
                    }
                    seg
                }
            };
            segments.push(seg);
            i += 1;
        }

        let mut log_start_offset = log_start_offset.max(0);
        if let Some(first) = segments.first() {
            log_start_offset = log_start_offset.max(first.base_offset);
        }
        let log_end = segments.last().map(|s| s.next_offset);
        if log_end.is_none_or(|end| end < log_start_offset) {
            // No data, or the log start checkpoint is past everything we have: start fresh at
            // the log start offset, as Kafka's loader does.
            for seg in segments.drain(..) {
                seg.delete_files(b)?;
            }
            segments.push(Segment::create(&files, log_start_offset, now_ms)?);
        }

        let mut log = Log {
            epochs: checkpoint::read_epoch_checkpoint(b, &dir.join(LEADER_EPOCH_CHECKPOINT_FILE))?,
            dir,
            config,
            backend,
            segments,
            log_start_offset,
            recovery_point: 0,
            last_flush_ms: now_ms,
            failed: false,
            producers: ProducerStateManager::new(),
            snapshots,
            unsynced_snapshots: Vec::new(),
            unreplicated_txns: BTreeMap::new(),
            pending_deletes: Vec::new(),
            latest_delete_horizon_ms: NO_TIMESTAMP,
            truncations: 0,
        };
        let end = log.log_end_offset();
        log.recovery_point = recovery_point.clamp(log.log_start_offset, end);
        log.reconcile_epochs()?;
        log.load_producer_state(clean_shutdown)?;
        Ok(log)
    }

    /// Producer state at open (Kafka's `rebuildProducerState` from the log loader), and the
    /// transaction indexes that need rebuilding (those of recovered segments and missing or
    /// invalid ones; Kafka rebuilds them while recovering a segment).
    fn load_producer_state(&mut self, clean_shutdown: bool) -> Result<()> {
        let had_snapshots = !self.snapshots.is_empty();
        let (start, end) = (self.log_start_offset, self.log_end_offset());
        self.delete_snapshots_durably(|offset| offset > end || offset <= start)?;
        let rebuild_from = self
            .segments
            .iter()
            .filter(|s| s.txn_index_stale)
            .map(|s| s.base_offset)
            .min();
        // The replay must start at or before the first segment whose transaction index it
        // refills: that needs the transactions open at the segment's start.
        let target = rebuild_from.map_or(end, |base| base.min(end));
        if clean_shutdown && !had_snapshots {
            // A clean shutdown always leaves a snapshot at the log end; none at all means the
            // log was written before producer state was kept. Kafka skips the scan then (its
            // upgrade path) and so does this: producers start unknown, which they are allowed
            // to be. Stale transaction indexes are still rebuilt by a scan, whose producer state
            // is then dropped, as Kafka's segment recovery uses a throwaway state too.
            tracing::info!(dir = %self.dir.display(), "no producer snapshot after a clean shutdown; starting with empty producer state");
            if rebuild_from.is_some() {
                let from = self.load_snapshot_at_or_below(target)?;
                self.replay_producers(from, end, true)?;
            }
            self.producers.clear();
            self.unreplicated_txns.clear();
        } else {
            let newest = self.snapshots.iter().rev().copied().find(|&o| o <= end);
            let from = self.load_snapshot_at_or_below(target)?;
            self.replay_producers(from, end, true)?;
            if newest.is_some_and(|n| n > from) {
                // The replay started further back than the newest snapshot to refill transaction
                // indexes. Its state can lack producers the newest snapshot has: retention keeps
                // producers whose batches it deleted (KIP-360), and a replay from the log start
                // cannot see those. So, like Kafka's loader (whose segment recovery uses a
                // throwaway state), take the state from the newest valid snapshot and replay
                // from there. A torn one is deleted here and an older one (or the replay just
                // done, again) is used.
                self.unreplicated_txns.clear();
                let from = self.load_snapshot_at_or_below(end)?;
                self.replay_producers(from, end, false)?;
            }
        }
        self.finish_txn_index_rebuild()?;
        self.take_snapshot(end, true)?;
        self.prune_snapshots()
    }

    /// Seals and fsyncs the transaction indexes the replay refilled (the active segment's stays
    /// in memory and is written at the next flush, like its other indexes).
    fn finish_txn_index_rebuild(&mut self) -> Result<()> {
        let mut synced = false;
        for seg in &mut self.segments {
            if !seg.txn_index_stale {
                continue;
            }
            seg.txn_index_stale = false;
            if seg.is_sealed() {
                seg.txn_index.seal()?;
                seg.txn_index.sync()?;
                synced = true;
            }
        }
        if synced {
            self.backend
                .sync_dir(&self.dir)
                .map_err(|e| StorageError::io(&self.dir, e))?;
        }
        Ok(())
    }

    /// Replaces the producer state with the newest valid snapshot at or below `target` and
    /// returns its offset; with none, empties it and returns the log start offset. Corrupt
    /// snapshots are deleted.
    fn load_snapshot_at_or_below(&mut self, target: i64) -> Result<i64> {
        while let Some(offset) = self.snapshots.iter().rev().copied().find(|&o| o <= target) {
            match snapshot::read(self.backend.as_ref(), &self.dir, offset)? {
                Ok(state) => {
                    tracing::debug!(dir = %self.dir.display(), offset, producers = state.len(), "loaded producer snapshot");
                    self.producers = state;
                    return Ok(offset);
                }
                Err(reason) => {
                    tracing::warn!(dir = %self.dir.display(), offset, %reason,
                        "ignoring corrupt producer snapshot; rebuilding from the log");
                    self.delete_snapshots(|o| o == offset)?;
                }
            }
        }
        self.producers.clear();
        Ok(self.log_start_offset)
    }

    /// Applies every batch with a producer id whose offsets reach `[from, to)` to the producer
    /// state, reading only batch headers (and the few bytes of control batches). The
    /// transactions the markers close are remembered as unreplicated, and with
    /// `refill_txn_indexes` the aborted ones are indexed in the segments whose transaction index
    /// is being rebuilt.
    fn replay_producers(&mut self, from: i64, to: i64, refill_txn_indexes: bool) -> Result<()> {
        if from >= to {
            return Ok(());
        }
        let first = self.segment_index_for(from);
        let Log {
            segments,
            producers,
            unreplicated_txns,
            ..
        } = self;
        for seg in &mut segments[first..] {
            if seg.base_offset >= to {
                break;
            }
            let mut aborted = Vec::new();
            let reading: &Segment = seg;
            reading.scan_headers(from, |pos, h| {
                if h.base_offset >= to {
                    return Ok(false);
                }
                if h.has_producer_id() {
                    let marker = if h.is_control() {
                        read_marker(reading, pos, h)?
                    } else {
                        None
                    };
                    let batch = ProducerBatch { header: *h, marker };
                    if let Some(c) = producers.update_from_log(&batch) {
                        unreplicated_txns.insert(c.first_offset, c.last_offset);
                        if c.aborted && refill_txn_indexes && reading.txn_index_stale {
                            aborted.push(aborted_txn(&c));
                        }
                    }
                }
                Ok(true)
            })?;
            for t in aborted {
                seg.txn_index.push(t);
            }
        }
        Ok(())
    }

    /// Writes a snapshot of the producer state named `offset` unless one at or past it exists
    /// (or, with none, the log start is at or past it: the state there is empty by definition).
    /// Without `sync` the file is fsynced by the next flush. A failure leaves no partial file
    /// under the final name, so it does not take the log offline.
    fn take_snapshot(&mut self, offset: i64, sync: bool) -> Result<()> {
        let newest = self
            .snapshots
            .last()
            .copied()
            .unwrap_or(self.log_start_offset);
        if newest >= offset {
            return Ok(());
        }
        let f = snapshot::write(
            self.backend.as_ref(),
            &self.dir,
            offset,
            &self.producers,
            sync,
        )?;
        self.snapshots.push(offset);
        if !sync {
            let path = snapshot::snapshot_path(&self.dir, offset);
            self.unsynced_snapshots.push((offset, path, f));
        }
        self.prune_snapshots()
    }

    /// Keeps only the newest [`SNAPSHOTS_TO_KEEP`] snapshots.
    fn prune_snapshots(&mut self) -> Result<()> {
        let excess = self.snapshots.len().saturating_sub(SNAPSHOTS_TO_KEEP);
        if excess == 0 {
            return Ok(());
        }
        let cutoff = self.snapshots[excess - 1];
        self.delete_snapshots(|offset| offset <= cutoff)
    }

    /// [`Log::delete_snapshots`], then an fsync of the directory if anything went. For snapshots
    /// past the log end (or of a log emptied by truncation): they describe batches the log no
    /// longer has and must not come back after a crash once other batches take those offsets.
    fn delete_snapshots_durably(&mut self, doomed: impl Fn(i64) -> bool) -> Result<()> {
        let before = self.snapshots.len();
        self.delete_snapshots(doomed)?;
        if self.snapshots.len() < before {
            self.backend
                .sync_dir(&self.dir)
                .map_err(|e| StorageError::io(&self.dir, e))?;
        }
        Ok(())
    }

    /// Deletes the snapshots whose offset matches. A snapshot stays listed until its file is
    /// gone, so a failed delete is retried by the next truncation or open rather than forgotten
    /// (a forgotten stale snapshot could later be loaded as if it described the new log).
    fn delete_snapshots(&mut self, doomed: impl Fn(i64) -> bool) -> Result<()> {
        let mut result = Ok(());
        let backend = Arc::clone(&self.backend);
        let dir = self.dir.clone();
        self.snapshots.retain(|&offset| {
            if !doomed(offset) || result.is_err() {
                return true;
            }
            match snapshot::delete(backend.as_ref(), &dir, offset) {
                Ok(()) => false,
                Err(e) => {
                    result = Err(e);
                    true
                }
            }
        });
        let listed = &self.snapshots;
        self.unsynced_snapshots
            .retain(|(offset, _, _)| listed.contains(offset));
        result
    }

    /// Drops epoch entries that start at or past the log end, and folds entries before the log
    /// start into one starting at the log start (Kafka's truncateFromEnd / truncateFromStart).
    fn reconcile_epochs(&mut self) -> Result<()> {
        let end = self.log_end_offset();
        let start = self.log_start_offset;
        let before = self.epochs.clone();
        self.epochs.retain(|e| e.start_offset < end);
        let below = self
            .epochs
            .iter()
            .filter(|e| e.start_offset < start)
            .count();
        if below > 0 {
            let mut keep = self.epochs[below - 1];
            keep.start_offset = start;
            self.epochs.drain(..below);
            self.epochs.insert(0, keep);
        }
        if self.epochs != before {
            self.write_epochs()?;
        }
        Ok(())
    }

    fn write_epochs(&mut self) -> Result<()> {
        let path = self.dir.join(LEADER_EPOCH_CHECKPOINT_FILE);
        checkpoint::write_epoch_checkpoint(self.backend.as_ref(), &path, &self.epochs).inspect_err(
            |_| {
                self.failed = true;
            },
        )
    }

    fn check_ok(&self) -> Result<()> {
        if self.failed {
            return Err(StorageError::Failed(self.dir.clone()));
        }
        Ok(())
    }

    fn files(&self) -> SegmentFiles<'_> {
        SegmentFiles {
            backend: self.backend.as_ref(),
            dir: &self.dir,
            index_bytes: self.config.segment_index_bytes,
        }
    }

    fn active(&self) -> &Segment {
        // `segments` is never empty (open and every truncation keep one).
        &self.segments[self.segments.len() - 1]
    }

    /// The partition directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The current config.
    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// Replaces the config; size and index limits apply from the next roll on.
    pub fn set_config(&mut self, config: LogConfig) {
        self.config = config;
    }

    /// First offset still in the log.
    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    /// The next offset to be assigned.
    pub fn log_end_offset(&self) -> i64 {
        self.active().next_offset
    }

    /// Everything below this offset is known to be fsynced.
    pub fn recovery_point(&self) -> i64 {
        self.recovery_point
    }

    /// Number of segments (at least one).
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// Total bytes of batches in all segments.
    pub fn size_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.size).sum()
    }

    /// The leader epoch cache, oldest first.
    pub fn leader_epoch_entries(&self) -> &[EpochEntry] {
        &self.epochs
    }

    /// The latest leader epoch in the cache.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.epochs.last().map(|e| e.epoch)
    }

    /// Writes `partition.metadata` with the topic id.
    pub fn write_partition_metadata(&self, topic_id: &[u8; 16]) -> Result<()> {
        checkpoint::write_partition_metadata(self.backend.as_ref(), &self.dir, topic_id)
    }

    /// Reads the topic id from `partition.metadata`, if present.
    pub fn read_partition_metadata(&self) -> Result<Option<[u8; 16]>> {
        checkpoint::read_partition_metadata(self.backend.as_ref(), &self.dir)
    }

    /// Appends whole, already validated v2 batches as the leader: stamps each batch's
    /// `baseOffset` (consecutive from the log end) and `partitionLeaderEpoch` in place, rolls if
    /// needed, and writes them with one positional write.
    ///
    /// Batches with a producer id are first checked against the producer state, all before
    /// anything is stamped or written: a retry of one of the producer's last five batches makes
    /// the append a no-op answered with the original offsets ([`AppendInfo::duplicate`]); an
    /// older producer epoch fails it with [`StorageError::InvalidProducerEpoch`], a sequence
    /// that does not follow with [`StorageError::OutOfOrderSequence`], a non-transactional batch
    /// from a producer with an open transaction with [`StorageError::InvalidTxnState`]. A
    /// transactional batch opens its producer's transaction if none is open.
    pub fn append(
        &mut self,
        batches: &mut [u8],
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo> {
        self.append_with_origin(batches, leader_epoch, AppendOrigin::Client, now_ms)
    }

    /// [`Log::append`] on behalf of `origin`. [`AppendOrigin::Coordinator`] is for batches a
    /// broker-side coordinator writes for a producer (Kafka's `AppendOrigin.COORDINATOR`, e.g.
    /// transactional offset commits, end-transaction markers): producer epochs and transaction
    /// state are checked, sequence numbers and duplicates are not. A control batch carrying an
    /// end-transaction marker is checked and applied as [`Log::append_txn_marker`] describes.
    pub fn append_with_origin(
        &mut self,
        batches: &mut [u8],
        leader_epoch: i32,
        origin: AppendOrigin,
        now_ms: i64,
    ) -> Result<AppendInfo> {
        self.check_ok()?;
        let s = summarize(batches, None)?;
        let base = self.log_end_offset();
        if s.bytes == 0 {
            return Ok(self.empty_append_info(base));
        }
        let producer_batches = producer_batches(batches, Some(base));
        let updates = if producer_batches.is_empty() {
            None
        } else {
            match self
                .producers
                .check_append_with_origin(&producer_batches, origin)?
            {
                AppendCheck::Duplicate(dup) => return Ok(self.duplicate_append_info(dup)),
                AppendCheck::Append(updates) => Some(updates),
            }
        };
        self.maybe_roll(
            base,
            base + s.offsets - 1,
            s.bytes as u64,
            s.max_timestamp,
            now_ms,
        )?;
        rafka_records::stamp_batches(batches, base, leader_epoch)?;
        // The epoch cache is updated before the data is written (as Kafka does), so a failed
        // checkpoint write fails the append before anything reaches the log.
        self.maybe_assign_epoch(leader_epoch, base)?;
        let info = self.write_batches(batches)?;
        if let Some(updates) = updates {
            let completed = self.producers.apply(updates);
            self.complete_txns(&completed);
        }
        self.after_append(now_ms)?;
        Ok(info)
    }

    /// Writes an end-transaction marker for `producer_id` as the leader (WriteTxnMarkers): a
    /// control batch built exactly as Kafka's `MemoryRecords.withEndTransactionMarker` builds it
    /// (see [`end_txn_marker_batch`]), stamped and appended like any batch.
    ///
    /// Kafka's checks for markers (`ProducerAppendInfo.appendEndTxnMarker`, origin
    /// COORDINATOR): a producer epoch older than the producer's current one fails with
    /// [`StorageError::InvalidProducerEpoch`], a coordinator epoch older than that of the
    /// producer's last marker with [`StorageError::TransactionCoordinatorFenced`]; nothing is
    /// written then. Otherwise the marker ends the producer's open transaction; an ABORT adds the
    /// transaction to the aborted-transaction index of the segment the marker lands in. A marker
    /// for a producer without an open transaction (or without any state) is written all the
    /// same, as Kafka does, and only updates the producer's epochs.
    pub fn append_txn_marker(
        &mut self,
        producer_id: i64,
        producer_epoch: i16,
        coordinator_epoch: i32,
        commit: bool,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<AppendInfo> {
        let mut batch = end_txn_marker_batch(
            producer_id,
            producer_epoch,
            coordinator_epoch,
            commit,
            now_ms,
        );
        self.append_with_origin(&mut batch, leader_epoch, AppendOrigin::Coordinator, now_ms)
    }

    /// Bookkeeping of the transactions an append's markers closed (in log order): the aborted
    /// ones go into the transaction index of the segment holding their marker, and all of them
    /// wait for the high watermark (Kafka's `updateTxnIndex` + `completeTxn`).
    fn complete_txns(&mut self, completed: &[CompletedTxn]) {
        for c in completed {
            if c.aborted {
                let i = self.segment_index_for(c.last_offset);
                self.segments[i].txn_index.push(aborted_txn(c));
            }
            self.unreplicated_txns.insert(c.first_offset, c.last_offset);
        }
    }

    /// First offset of the oldest open transaction, if any (at least the log start offset); the
    /// broker's last stable offset is `min(high watermark, this)`. Kafka calls this the first
    /// *undecided* offset; its first *unstable* offset also counts transactions whose marker is
    /// not below the high watermark yet, which [`Log::last_stable_offset`] does.
    pub fn first_unstable_offset(&self) -> Option<i64> {
        self.producers
            .first_undecided_offset()
            .map(|first| first.max(self.log_start_offset))
    }

    /// Whether `producer_id` has an open transaction at `producer_epoch` in this partition
    /// (Kafka's `hasOngoingTransaction`): a leader skips transaction verification (KIP-890) for
    /// such a producer, since the coordinator already vouched for this transaction here. The
    /// epoch matters: a Transactions V2 producer bumps it per transaction, and its next
    /// transaction must be verified even while the last one's marker is still on its way.
    pub fn has_ongoing_transaction(&self, producer_id: i64, producer_epoch: i16) -> bool {
        self.producers
            .get(producer_id)
            .is_some_and(|e| e.current_txn_first_offset().is_some() && e.epoch() == producer_epoch)
    }

    /// Kafka's last stable offset for this high watermark (`UnifiedLog.lastStableOffset`): the
    /// high watermark, held back to the first offset of the oldest transaction that is open or
    /// whose marker is at or above the high watermark (not known to be replicated), but never
    /// below the log start offset.
    pub fn last_stable_offset(&self, high_watermark: i64) -> i64 {
        let undecided = self.producers.first_undecided_offset();
        // Keyed by first offset, so the first match is the oldest.
        let unreplicated = self
            .unreplicated_txns
            .iter()
            .find(|&(_, &last)| last >= high_watermark)
            .map(|(&first, _)| first);
        let first_unstable = match (undecided, unreplicated) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        match first_unstable.map(|f| f.max(self.log_start_offset)) {
            Some(f) if f < high_watermark => f,
            _ => high_watermark,
        }
    }

    /// Forgets the closed transactions whose marker is below `high_watermark` (Kafka's
    /// `ProducerStateManager.onHighWatermarkUpdated`); the broker calls it when the high
    /// watermark moves, which keeps that list short. [`Log::last_stable_offset`] is right
    /// without it.
    pub fn on_high_watermark_updated(&mut self, high_watermark: i64) {
        self.unreplicated_txns
            .retain(|_, last| *last >= high_watermark);
    }

    /// The aborted transactions a READ_COMMITTED fetch from `start_offset` needs, for records
    /// below `upper_bound_offset` (exclusive; e.g. the returned read's `next_offset`): Kafka's
    /// `collectAbortedTransactions`. Every transaction index entry whose marker is at or after
    /// `start_offset` and whose first offset is below `upper_bound_offset`, from the segment
    /// holding `start_offset` on, in marker order; the search stops at the first entry whose
    /// last stable offset reaches `upper_bound_offset`, as no later abort can concern the range.
    pub fn aborted_transactions(
        &self,
        start_offset: i64,
        upper_bound_offset: i64,
    ) -> Vec<AbortedTxn> {
        let mut out = Vec::new();
        for seg in &self.segments[self.segment_index_for(start_offset)..] {
            if seg
                .txn_index
                .collect(start_offset, upper_bound_offset, &mut out)
            {
                break;
            }
        }
        out
    }

    /// Appends batches that already carry their offsets and leader epochs (a follower copying
    /// the leader, or an internal writer). Offsets must not go below the log end and must
    /// increase; gaps are allowed (compacted topics replicate with gaps). Producer state follows
    /// the batches without checks (the leader made them), transactions included: markers close
    /// transactions and aborted ones are indexed, as on the leader.
    pub fn append_stamped(&mut self, batches: &[u8], now_ms: i64) -> Result<AppendInfo> {
        self.check_ok()?;
        let s = summarize(batches, Some(self.log_end_offset()))?;
        if s.bytes == 0 {
            return Ok(self.empty_append_info(self.log_end_offset()));
        }
        self.maybe_roll(
            s.first_base_offset,
            s.last_offset,
            s.bytes as u64,
            s.max_timestamp,
            now_ms,
        )?;
        if s.last_offset - self.active().base_offset > i64::from(i32::MAX) {
            return Err(StorageError::InvalidBatch(
                "offsets of one append span more than 2^31".into(),
            ));
        }
        let mut pos = 0;
        while pos < batches.len() {
            let h = batch::parse_header(&batches[pos..])?;
            self.maybe_assign_epoch(h.partition_leader_epoch, h.base_offset)?;
            pos += batch::total_len(&h);
        }
        let info = self.write_batches(batches)?;
        let mut completed = Vec::new();
        for b in producer_batches(batches, None) {
            completed.extend(self.producers.update_from_log(&b));
        }
        self.complete_txns(&completed);
        self.after_append(now_ms)?;
        Ok(info)
    }

    fn empty_append_info(&self, base: i64) -> AppendInfo {
        AppendInfo {
            base_offset: base,
            last_offset: base - 1,
            max_timestamp: NO_TIMESTAMP,
            offset_of_max_timestamp: -1,
            log_append_time_ms: None,
            log_start_offset: self.log_start_offset,
            bytes: 0,
            duplicate: false,
        }
    }

    /// The answer to a retried batch: the original's offsets, as Kafka gives them (including its
    /// timestamp as the log append time, whatever the timestamp type).
    fn duplicate_append_info(&self, dup: DuplicateBatch) -> AppendInfo {
        AppendInfo {
            base_offset: dup.first_offset,
            last_offset: dup.last_offset,
            max_timestamp: dup.timestamp,
            offset_of_max_timestamp: dup.last_offset,
            log_append_time_ms: Some(dup.timestamp),
            log_start_offset: self.log_start_offset,
            bytes: 0,
            duplicate: true,
        }
    }

    /// Writes `bytes` (stamped) at the end of the active segment and does the bookkeeping.
    fn write_batches(&mut self, bytes: &[u8]) -> Result<AppendInfo> {
        let interval = self.config.index_interval_bytes;
        let seg_idx = self.segments.len() - 1;
        let seg = &mut self.segments[seg_idx];
        let start = seg.size;
        if let Err((e, broken)) = seg.write(bytes) {
            self.failed |= broken;
            return Err(e);
        }
        let mut info = AppendInfo {
            base_offset: -1,
            last_offset: -1,
            max_timestamp: NO_TIMESTAMP,
            offset_of_max_timestamp: -1,
            log_append_time_ms: None,
            log_start_offset: self.log_start_offset,
            bytes: bytes.len(),
            duplicate: false,
        };
        let mut pos = 0;
        while pos < bytes.len() {
            // Already parsed by `summarize`; a failure here cannot happen but must not panic.
            let Ok(h) = batch::parse_header(&bytes[pos..]) else {
                break;
            };
            seg.account_batch(start + pos as u64, &h, interval);
            if info.base_offset < 0 {
                info.base_offset = h.base_offset;
            }
            info.last_offset = h.last_offset();
            if h.max_timestamp > info.max_timestamp {
                info.max_timestamp = h.max_timestamp;
                info.offset_of_max_timestamp = h.last_offset();
            }
            if h.timestamp_type() == TimestampType::LogAppendTime
                && info.log_append_time_ms.is_none()
            {
                info.log_append_time_ms = Some(h.max_timestamp);
            }
            pos += batch::total_len(&h);
        }
        seg.add_size(bytes.len() as u64);
        Ok(info)
    }

    /// A new leader's epoch starts at its log end (Kafka's `maybeAssignEpochStartOffset` in
    /// `makeLeader`): its history then ends every older epoch where the follower's copy must
    /// end, before the leader has written anything in the new epoch. Without it a follower
    /// holding records of an epoch the new leader never saw gets an undefined answer and cannot
    /// truncate until the leader appends.
    pub fn assign_leader_epoch_start(&mut self, epoch: i32) -> Result<()> {
        let end = self.log_end_offset();
        self.maybe_assign_epoch(epoch, end)
    }

    /// Records `epoch` starting at `offset` if it is newer than the latest cached epoch.
    fn maybe_assign_epoch(&mut self, epoch: i32, offset: i64) -> Result<()> {
        if epoch < 0 {
            return Ok(());
        }
        match self.epochs.last() {
            Some(last) if last.epoch >= epoch => {
                if last.epoch > epoch {
                    tracing::warn!(dir = %self.dir.display(), epoch, latest = last.epoch,
                        "append with an older leader epoch; epoch cache unchanged");
                }
                Ok(())
            }
            _ => {
                self.epochs.push(EpochEntry {
                    epoch,
                    start_offset: offset,
                });
                self.write_epochs()
            }
        }
    }

    fn after_append(&mut self, now_ms: i64) -> Result<()> {
        let unflushed = u64::try_from(self.log_end_offset() - self.recovery_point).unwrap_or(0);
        if unflushed >= self.config.flush_messages || self.flush_due(now_ms) {
            self.flush()?;
            self.last_flush_ms = now_ms;
        }
        Ok(())
    }

    fn flush_due(&self, now_ms: i64) -> bool {
        let since = u64::try_from(now_ms.saturating_sub(self.last_flush_ms)).unwrap_or(0);
        since >= self.config.flush_ms
    }

    /// Flushes if `flush.ms` has passed since the last flush; for the broker's periodic tick.
    pub fn maybe_flush(&mut self, now_ms: i64) -> Result<()> {
        if self.flush_due(now_ms) && self.recovery_point < self.log_end_offset() {
            self.flush()?;
            self.last_flush_ms = now_ms;
        }
        Ok(())
    }

    /// Rolls a new active segment if the incoming batches would not fit (Kafka's
    /// `LogSegment.shouldRoll`: size, time since the first batch, full index, relative offset
    /// overflow).
    fn maybe_roll(
        &mut self,
        first_offset: i64,
        last_offset: i64,
        bytes: u64,
        max_timestamp: i64,
        now_ms: i64,
    ) -> Result<()> {
        let seg = self.active();
        let limit = self.config.segment_bytes.min(SEGMENT_MAX_BYTES);
        let size_roll = seg.size > 0 && seg.size + bytes > limit;
        let waited_ms = match seg.first_batch_timestamp {
            Some(t) if t >= 0 => max_timestamp.saturating_sub(t),
            _ => now_ms.saturating_sub(seg.created_ms),
        };
        let time_roll = seg.size > 0 && waited_ms > self.config.segment_ms;
        let index_full = seg.size > 0 && (seg.index.is_full() || seg.time_index.is_full());
        let overflow = last_offset - seg.base_offset > i64::from(i32::MAX);
        if size_roll || time_roll || index_full || overflow {
            self.roll(first_offset.max(self.log_end_offset()), now_ms)?;
        }
        Ok(())
    }

    /// Seals the active segment and starts a new one at `new_base`. The sealed segment is not
    /// fsynced here (Kafka also flushes it asynchronously after a roll): the recovery point stays
    /// until [`Log::flush`] or a [`SealedFlush`] covers it.
    ///
    /// A producer snapshot named `new_base` goes with every roll, as in Kafka, so that recovery
    /// can start from the last segments instead of the log start. It is not fsynced here either.
    fn roll(&mut self, new_base: i64, now_ms: i64) -> Result<()> {
        let active = self.active();
        if active.size == 0 && active.base_offset == new_base {
            return Ok(());
        }
        // Nothing lies between the log end and `new_base`, so the current state is the state
        // at `new_base`.
        self.take_snapshot(new_base, false)?;
        let new = Segment::create(&self.files(), new_base, now_ms)?;
        let last = self.segments.len() - 1;
        if let Err(e) = self.segments[last].seal() {
            self.failed = true;
            // Best effort: a leftover empty segment is harmless (recovery keeps or rebuilds it).
            let _ = new.delete_files(self.backend.as_ref());
            return Err(e);
        }
        self.segments.push(new);
        Ok(())
    }

    /// The fsync work that would move the recovery point up to the active segment's base offset,
    /// packaged so it can run *without* holding the log's lock: sealed segments are immutable,
    /// so syncing them cannot race with appends. `None` if there is nothing to do.
    ///
    /// The broker takes one after an append that rolled (or on a timer), runs it on a blocking
    /// thread, then hands the result to [`Log::finish_sealed_flush`].
    pub fn sealed_flush(&self) -> Option<SealedFlush> {
        let upto_offset = self.active().base_offset;
        if upto_offset <= self.recovery_point || self.failed {
            return None;
        }
        let last = self.segments.len() - 1;
        let files = self.segments[..last]
            .iter()
            .filter(|s| s.next_offset > self.recovery_point)
            .flat_map(|s| s.files_for_sync())
            .chain(
                self.unsynced_snapshots
                    .iter()
                    .filter(|(offset, _, _)| *offset <= upto_offset)
                    .map(|(_, path, f)| (path.clone(), Arc::clone(f))),
            )
            .collect();
        Some(SealedFlush {
            files,
            dir: self.dir.clone(),
            backend: Arc::clone(&self.backend),
            upto_offset,
        })
    }

    /// Records the outcome of a [`SealedFlush`]: on success the recovery point moves up to what
    /// it covered; on failure the log goes offline (see [`Log::flush`]).
    pub fn finish_sealed_flush(&mut self, flush: SealedFlush, result: Result<()>) -> Result<()> {
        match result {
            Ok(()) => {
                let end = self.log_end_offset();
                self.recovery_point = self.recovery_point.max(flush.upto_offset.min(end));
                self.unsynced_snapshots
                    .retain(|(offset, _, _)| *offset > flush.upto_offset);
                Ok(())
            }
            Err(e) => {
                self.failed = true;
                Err(e)
            }
        }
    }

    /// fsyncs every segment that may hold data past the recovery point (log and indexes), then
    /// moves the recovery point to the log end. A failed fsync takes the log offline
    /// ([`StorageError::Failed`] from then on): after a failed fsync the kernel may have dropped
    /// the dirty pages, so nothing written since the last good flush can be trusted.
    pub fn flush(&mut self) -> Result<()> {
        self.check_ok()?;
        let recovery_point = self.recovery_point;
        let last = self.segments.len() - 1;
        for (i, seg) in self.segments.iter_mut().enumerate() {
            if i == last || seg.next_offset > recovery_point {
                if let Err(e) = seg.sync() {
                    self.failed = true;
                    return Err(e);
                }
            }
        }
        for (_, path, f) in &self.unsynced_snapshots {
            if let Err(e) = f.sync() {
                self.failed = true;
                return Err(StorageError::io(path, e));
            }
        }
        // Segment files created since the last flush are durable only once their directory
        // entries are.
        if let Err(e) = self.backend.sync_dir(&self.dir) {
            self.failed = true;
            return Err(StorageError::io(&self.dir, e));
        }
        self.recovery_point = self.log_end_offset();
        self.unsynced_snapshots.clear();
        Ok(())
    }

    fn segment_index_for(&self, offset: i64) -> usize {
        self.segments
            .partition_point(|s| s.base_offset <= offset)
            .saturating_sub(1)
    }

    /// Reads whole batches starting with the one that contains `start_offset`.
    ///
    /// `max_offset` is exclusive (the high watermark): batches whose last offset reaches it are
    /// not returned. At most `max_bytes` are returned, except that with `min_one_batch` the first
    /// batch comes whole even if larger (KIP-74). A read never spans two segments: it ends at the
    /// end of the segment the start offset is in, like Kafka's.
    pub fn read(
        &self,
        start_offset: i64,
        max_bytes: usize,
        max_offset: i64,
        min_one_batch: bool,
    ) -> Result<LogRead> {
        let log_end = self.log_end_offset();
        if start_offset < self.log_start_offset || start_offset > log_end {
            return Err(StorageError::OffsetOutOfRange {
                requested: start_offset,
                log_start: self.log_start_offset,
                log_end,
            });
        }
        let mut out = LogRead {
            records: Bytes::new(),
            next_offset: start_offset,
            log_start_offset: self.log_start_offset,
            log_end_offset: log_end,
        };
        if start_offset == log_end || start_offset >= max_offset {
            return Ok(out);
        }
        for seg in &self.segments[self.segment_index_for(start_offset)..] {
            let Some((pos, first)) = seg.find_batch(start_offset)? else {
                continue;
            };
            let first_len = batch::total_len(&first);
            if first.last_offset() >= max_offset || (first_len > max_bytes && !min_one_batch) {
                return Ok(out);
            }
            let budget = max_bytes.max(first_len) as u64;
            let next_offset = &mut out.next_offset;
            // Whole batches only, below max_offset.
            let records = seg.batches_at(pos, budget.min(seg.size - pos), |data| {
                let mut end = 0usize;
                while end + BATCH_HEADER_LEN <= data.len() {
                    let Ok(h) = batch::parse_header(&data[end..]) else {
                        break;
                    };
                    if end + batch::total_len(&h) > data.len() || h.last_offset() >= max_offset {
                        break;
                    }
                    end += batch::total_len(&h);
                    *next_offset = h.last_offset() + 1;
                }
                end
            })?;
            out.records = records;
            return Ok(out);
        }
        Ok(out)
    }

    /// The first record with a timestamp >= `timestamp` (ListOffsets by time).
    ///
    /// Like Kafka: the first segment whose max timestamp is >= the target, then the time and
    /// offset indexes to a start position, then the first batch whose max timestamp is >= the
    /// target. For uncompressed batches the records are walked and the first record with a
    /// timestamp >= the target is returned, as Kafka does. Kafka also decompresses compressed
    /// batches to find the exact record; storage never decompresses, so for a compressed batch
    /// this returns the batch's base offset and max timestamp: a consumer seeking there sees
    /// every record Kafka's answer would give, plus possibly a few earlier ones of the same batch.
    pub fn fetch_offset_by_timestamp(&self, timestamp: i64) -> Result<Option<TimestampOffset>> {
        let start = self.log_start_offset;
        for seg in &self.segments[self.segment_index_for(start)..] {
            if seg.max_timestamp < timestamp {
                continue;
            }
            let Some((pos, h)) = seg.find_batch_by_timestamp(timestamp, start)? else {
                continue;
            };
            let epoch = (h.partition_leader_epoch >= 0).then_some(h.partition_leader_epoch);
            if let Some(records) = self.record_timestamps(seg, pos, &h)? {
                if let Some(&(offset, ts)) =
                    records.iter().find(|&&(o, t)| t >= timestamp && o >= start)
                {
                    return Ok(Some(TimestampOffset {
                        timestamp: ts,
                        offset,
                        leader_epoch: epoch,
                    }));
                }
            }
            return Ok(Some(TimestampOffset {
                timestamp: h.max_timestamp,
                offset: h.base_offset.max(start),
                leader_epoch: epoch,
            }));
        }
        Ok(None)
    }

    /// The largest timestamp in the log and the offset of the (first) record carrying it, for
    /// ListOffsets MAX_TIMESTAMP (KIP-734). As in [`Log::fetch_offset_by_timestamp`], compressed
    /// batches answer with their base offset instead of the exact record.
    pub fn max_timestamp(&self) -> Result<Option<TimestampOffset>> {
        let mut best: Option<&Segment> = None;
        for seg in &self.segments {
            if seg.max_timestamp != NO_TIMESTAMP
                && best.is_none_or(|b| seg.max_timestamp > b.max_timestamp)
            {
                best = Some(seg);
            }
        }
        let Some(seg) = best else {
            return Ok(None);
        };
        let ts = seg.max_timestamp;
        let Some((mut pos, _)) = seg.find_batch(seg.offset_of_max_timestamp)? else {
            return Ok(None);
        };
        // The shallow offset names the batch; walk back is never needed, but scan forward in case
        // the index bookkeeping was approximate.
        while let Some(h) = seg.header_at(pos)? {
            if h.max_timestamp == ts {
                let epoch = (h.partition_leader_epoch >= 0).then_some(h.partition_leader_epoch);
                let offset = self
                    .record_timestamps(seg, pos, &h)?
                    .and_then(|r| r.iter().find(|&&(_, t)| t == ts).map(|&(o, _)| o))
                    .unwrap_or(h.base_offset);
                return Ok(Some(TimestampOffset {
                    timestamp: ts,
                    offset,
                    leader_epoch: epoch,
                }));
            }
            pos += batch::total_len(&h) as u64;
        }
        Ok(None)
    }

    fn record_timestamps(
        &self,
        seg: &Segment,
        pos: u64,
        h: &Header,
    ) -> Result<Option<Vec<(i64, i64)>>> {
        if batch::is_compressed(h) {
            return Ok(None);
        }
        let bytes = seg.bytes_at(pos, batch::total_len(h) as u64)?;
        Ok(batch::record_timestamps(&bytes))
    }

    /// Removes every batch with offsets >= `offset` (a follower truncating to the leader). A
    /// batch that straddles `offset` goes whole, as in Kafka, so the new log end may be lower
    /// than `offset`. Truncating below the first segment empties the log and restarts it at
    /// `offset`.
    pub fn truncate_to(&mut self, offset: i64, now_ms: i64) -> Result<()> {
        self.check_ok()?;
        if offset >= self.log_end_offset() {
            // No batch goes, but an epoch this replica started as leader and never wrote in
            // (deposed first) must: the new leader answered for the epoch before it, and a
            // follower that kept naming the empty one would get that answer forever (Kafka's
            // `truncateTo` truncates the epoch cache in this case too).
            return self.reconcile_epochs();
        }
        self.truncations += 1;
        if offset < self.segments[0].base_offset {
            return self.truncate_fully_and_start_at(offset, now_ms);
        }
        let r = self.truncate_inner(offset, now_ms);
        if r.is_err() {
            self.failed = true;
        }
        r
    }

    fn truncate_inner(&mut self, offset: i64, now_ms: i64) -> Result<()> {
        let interval = self.config.index_interval_bytes;
        // `segments` never becomes empty: the first segment's base is <= offset.
        while self.segments.len() > 1 && self.active().base_offset >= offset {
            if let Some(seg) = self.segments.pop() {
                seg.delete_files(self.backend.as_ref())?;
            }
        }
        let last = self.segments.len() - 1;
        if self.segments[last].is_sealed() {
            let seg = &self.segments[last];
            let keep = seg.find_batch(offset)?.map_or(seg.size, |(pos, _)| pos);
            // On failure the old (mapped) segment stays in place, still readable; the caller
            // takes the log offline and a reopen recovers from what is on disk.
            let fresh = seg.unseal_truncated(&self.files(), keep, interval, now_ms)?;
            self.segments[last] = fresh;
        } else {
            self.segments[last].truncate_active_to(offset, interval)?;
        }
        // Truncation is rare, so it is made durable at once: a power loss must never bring
        // back records that were cut because they diverged from the leader (under an epoch
        // history that no longer lists them, they would pass for the leader's).
        self.segments[last].sync()?;
        self.sync_dir()?;
        self.after_truncate()?;
        self.rebuild_producer_state()
    }

    /// Producer state for a log that just lost its tail (Kafka's `truncateAndReload`):
    /// snapshots past the new end go, then the newest remaining one plus a replay gives the
    /// state at the new end.
    fn rebuild_producer_state(&mut self) -> Result<()> {
        let (start, end) = (self.log_start_offset, self.log_end_offset());
        self.delete_snapshots_durably(|offset| offset > end || offset <= start)?;
        self.unreplicated_txns.retain(|_, last| *last < end);
        // As in Kafka: with no producers before the truncation, a prefix of the same log has
        // none either (short of ones already expired), so skip the reload and the scan.
        if self.producers.is_empty() {
            return Ok(());
        }
        // Open transactions come back with the state: one whose marker was cut off is open
        // again, and holds the first unstable offset back again.
        let from = self.load_snapshot_at_or_below(end)?;
        self.replay_producers(from, end, false)
    }

    fn sync_dir(&self) -> Result<()> {
        self.backend
            .sync_dir(&self.dir)
            .map_err(|e| StorageError::io(&self.dir, e))
    }

    fn after_truncate(&mut self) -> Result<()> {
        let end = self.log_end_offset();
        self.recovery_point = self.recovery_point.min(end);
        self.log_start_offset = self.log_start_offset.min(end);
        self.reconcile_epochs()
    }

    /// Deletes all data and restarts the log empty at `offset` (log start = log end = `offset`).
    pub fn truncate_fully_and_start_at(&mut self, offset: i64, now_ms: i64) -> Result<()> {
        self.check_ok()?;
        self.truncations += 1;
        let r = (|| {
            for seg in &self.segments {
                seg.delete_files(self.backend.as_ref())?;
            }
            // The old segments stay in memory (files unlinked) until the new one exists, so the
            // log is never without an active segment.
            let fresh = Segment::create(&self.files(), offset, now_ms)?;
            self.segments = vec![fresh];
            self.log_start_offset = offset;
            self.recovery_point = offset;
            self.producers.clear();
            self.unreplicated_txns.clear();
            self.delete_snapshots_durably(|_| true)?;
            self.epochs.clear();
            self.write_epochs()?;
            self.sync_dir()
        })();
        if r.is_err() {
            self.failed = true;
        }
        r
    }

    /// Flushes, writes a producer snapshot at the log end (so the next open needs no replay),
    /// writes the active segment's final time-index entry and trims its indexes to their real
    /// size (so the next open loads them without recovery). Afterwards the recovery point equals
    /// the log end offset; the broker writes its checkpoints with that value.
    ///
    /// Deleted segments' `.deleted` files still waiting for `file.delete.delay.ms` are unlinked
    /// now (best effort: the next open removes any that remain).
    pub fn close(mut self) -> Result<()> {
        self.flush()?;
        let end = self.log_end_offset();
        self.take_snapshot(end, true)?;
        let last = self.segments.len() - 1;
        self.segments[last].close_active()?;
        self.delete_expired_files_best_effort(i64::MAX);
        Ok(())
    }

    /// Forgets producers idle for at least `producer_id_expiration_ms` (by their last batch or
    /// marker timestamp) that have no open transaction; a later batch of theirs is accepted at
    /// any sequence. The broker calls this periodically (Kafka: `producer.id.expiration.ms`,
    /// checked every `producer.id.expiration.check.interval.ms`). Returns how many went.
    pub fn expire_producers(&mut self, now_ms: i64, producer_id_expiration_ms: i64) -> usize {
        self.producers
            .remove_expired(now_ms, producer_id_expiration_ms)
    }

    /// Every producer with state in this partition, by producer id (DescribeProducers).
    pub fn active_producers(&self) -> Vec<ProducerInfo> {
        self.producers.active_producers()
    }

    /// Removes the partition directory and everything in it. Maps handed out by earlier reads
    /// stay valid (files are unlinked, not truncated).
    pub fn delete(self) -> Result<()> {
        let dir = self.dir.clone();
        let backend = Arc::clone(&self.backend);
        drop(self);
        backend
            .remove_dir_all(&dir)
            .map_err(|e| StorageError::io(&dir, e))
    }
}

/// The end-transaction marker of the control batch at `pos`, if it has one.
fn read_marker(seg: &Segment, pos: u64, h: &Header) -> Result<Option<TxnMarker>> {
    let total = batch::total_len(h);
    if total > CONTROL_BATCH_MAX_BYTES {
        tracing::warn!(
            offset = h.base_offset,
            bytes = total,
            "control batch too large to be a transaction marker; ignored"
        );
        return Ok(None);
    }
    let bytes = seg.bytes_at(pos, total as u64)?;
    Ok(TxnMarker::from_control_batch(&bytes))
}

/// Parses `<20 digits><suffix>`.
fn parse_segment_name(name: &str, suffix: &str) -> Option<i64> {
    let stem = name.strip_suffix(suffix)?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// The transaction index entry of an aborted transaction.
fn aborted_txn(c: &CompletedTxn) -> AbortedTxn {
    AbortedTxn {
        producer_id: c.producer_id,
        first_offset: c.first_offset,
        last_offset: c.last_offset,
        last_stable_offset: c.last_stable_offset,
    }
}

fn delete_segment_files(backend: &dyn Backend, dir: &Path, base: i64) -> Result<()> {
    for suffix in [
        LOG_SUFFIX,
        INDEX_SUFFIX,
        TIME_INDEX_SUFFIX,
        TXN_INDEX_SUFFIX,
    ] {
        remove_if_exists(backend, &crate::segment::segment_path(dir, base, suffix))?;
    }
    Ok(())
}
