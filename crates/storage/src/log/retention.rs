//! The retention half of a log's life, as Kafka's `UnifiedLog` does it for
//! `cleanup.policy=delete`: deleting old segments by log start offset, size and time
//! (`deleteOldSegments`), moving the log start offset on request (DeleteRecords,
//! `maybeIncrementLogStartOffset`), and unlinking deleted segments' files after
//! `file.delete.delay.ms`.

use std::path::PathBuf;
use std::sync::Arc;

use super::{Log, PendingDelete, RetentionResult};
use crate::error::{Result, StorageError};
use crate::segment::{remove_if_exists, Segment};

/// Which of Kafka's three deletion passes is running (for the result and the log line).
#[derive(Debug, Clone, Copy)]
enum Reason {
    LogStart,
    Size,
    Time,
}

impl Log {
    /// Deletes the segments Kafka's `deleteOldSegments` deletes for `cleanup.policy=delete`, in
    /// its order, each pass on what the previous one left:
    ///
    /// 1. segments entirely below the log start offset (the next segment starts at or below it);
    /// 2. with `retention.bytes` set (>= 0) and the log at least that large, the oldest segments
    ///    while the log minus them still holds `retention.bytes` or more;
    /// 3. with `retention.ms` set (>= 0), the oldest segments whose largest timestamp (the
    ///    `.log` file's modification time if no batch has one) is more than `retention.ms` before
    ///    `now_ms`.
    ///
    /// Each pass stops at the first segment it keeps. A segment is only deleted if everything in
    /// it is below `high_watermark` (the next segment's base offset, or the log end for the
    /// active one, is at most the high watermark), so the log start never passes the high
    /// watermark. The active segment is deleted like any other when it qualifies and is not
    /// empty; the log is then first rolled (Kafka keeps at least one segment), leaving one empty
    /// segment at the log end. An empty active segment is never deleted.
    ///
    /// The log start offset moves to the base offset of the first remaining segment (never
    /// backwards: after [`Log::delete_records`] it may already be past it). The deleted segments
    /// leave the log at once; their files are renamed `<name>.deleted` and unlinked
    /// `file.delete.delay.ms` later by [`Log::delete_expired_files`], which this call also runs
    /// for whatever is due (best effort: a failed unlink is logged and retried later). Producer
    /// state follows the log start as Kafka's does (see [`Log::delete_records`]).
    ///
    /// The broker calls this every `log.retention.check.interval.ms` for each log whose
    /// `cleanup.policy` includes `delete`; for a compact-only log, with `retention_ms` and
    /// `retention_bytes` at -1 (only the log start pass then runs, as in Kafka). A failure while
    /// renaming takes the log offline ([`StorageError::Failed`]) like any I/O failure that
    /// leaves the files' state unknown; reopening recovers.
    pub fn delete_old_segments(
        &mut self,
        now_ms: i64,
        high_watermark: i64,
    ) -> Result<RetentionResult> {
        self.check_ok()?;
        // The high watermark cannot be past the log end; a caller's stale value must not let
        // retention take what the log does not have.
        let hw = high_watermark.min(self.log_end_offset());
        let mut result = RetentionResult {
            log_start_offset: self.log_start_offset,
            ..RetentionResult::default()
        };

        let start = self.log_start_offset;
        let n = self.deletable_segments(hw, |_, next| {
            Ok(next.is_some_and(|s| s.base_offset <= start))
        })?;
        self.delete_segments(n, Reason::LogStart, now_ms, &mut result)?;

        let limit = self.config.retention_bytes;
        let size = i64::try_from(self.size_bytes()).unwrap_or(i64::MAX);
        if limit >= 0 && size >= limit {
            let mut excess = size - limit;
            let n = self.deletable_segments(hw, |seg, _| {
                let seg_size = i64::try_from(seg.size).unwrap_or(i64::MAX);
                if excess - seg_size >= 0 {
                    excess -= seg_size;
                    Ok(true)
                } else {
                    Ok(false)
                }
            })?;
            self.delete_segments(n, Reason::Size, now_ms, &mut result)?;
        }

        let retention_ms = self.config.retention_ms;
        if retention_ms >= 0 {
            let n = self.deletable_segments(hw, |seg, _| {
                Ok(now_ms.saturating_sub(seg.largest_timestamp()?) > retention_ms)
            })?;
            self.delete_segments(n, Reason::Time, now_ms, &mut result)?;
        }

        self.delete_expired_files_best_effort(now_ms);
        result.log_start_offset = self.log_start_offset;
        Ok(result)
    }

    /// DeleteRecords: moves the log start offset up to `offset` (-1: the high watermark) and
    /// deletes the segments that lie entirely below it; returns the log start offset afterwards
    /// (the partition's low watermark on a single replica).
    ///
    /// Kafka's `maybeIncrementLogStartOffset` (and `Partition.deleteRecordsOnLeader`): an offset
    /// above the high watermark, or negative other than -1, is refused with
    /// [`StorageError::LogStartOffsetOutOfRange`] (OFFSET_OUT_OF_RANGE) and changes nothing; an
    /// offset at or below the current log start changes nothing either (the log start never
    /// moves backwards). The segment containing the new log start stays whole, but reads below
    /// the log start are refused with [`StorageError::OffsetOutOfRange`] from then on; the
    /// broker's log-start checkpoint ([`Log::log_start_offset`], passed back to [`Log::open`])
    /// keeps that across restarts.
    ///
    /// Kafka leaves the segments below the new start to the next retention check; this deletes
    /// them at once, exactly as [`Log::delete_old_segments`]' first pass would (files renamed
    /// `.deleted`, unlinked after `file.delete.delay.ms`), and runs the unlinks that are due.
    ///
    /// As in Kafka (since KIP-360), producer state is *not* cut at the log start: producers whose
    /// batches were all deleted keep their epoch and sequence (so fencing and duplicate detection
    /// keep working) until `producer.id.expiration.ms` expires them. What does follow the log
    /// start: closed transactions whose marker is below it no longer hold back the last stable
    /// offset, snapshots at or below it are deleted, the first unstable offset is never below
    /// it, and the leader epoch cache is folded to start at it.
    pub fn delete_records(&mut self, offset: i64, high_watermark: i64, now_ms: i64) -> Result<i64> {
        self.check_ok()?;
        let hw = high_watermark.min(self.log_end_offset());
        let target = if offset == -1 { hw } else { offset };
        if target < 0 || target > hw {
            return Err(StorageError::LogStartOffsetOutOfRange {
                requested: target,
                high_watermark: hw,
            });
        }
        // Only the epoch checkpoint can fail here, and that takes the log offline by itself.
        self.increment_log_start(target)?;
        let start = self.log_start_offset;
        let n = self.deletable_segments(hw, |_, next| {
            Ok(next.is_some_and(|s| s.base_offset <= start))
        })?;
        let mut result = RetentionResult::default();
        self.delete_segments(n, Reason::LogStart, now_ms, &mut result)?;
        self.delete_expired_files_best_effort(now_ms);
        Ok(self.log_start_offset)
    }

    /// Unlinks the files of deleted segments whose `file.delete.delay.ms` has passed by `now_ms`
    /// (Kafka's scheduled `delete-file` task); returns how many files went. The broker calls it
    /// periodically (its flush or retention tick; [`Log::next_file_deletion_ms`] says when the
    /// next is due). A failed unlink keeps the file pending for the next call and returns the
    /// error; the log stays usable (the file is no longer part of it). [`Log::close`] unlinks
    /// everything still pending; after a crash, [`Log::open`] removes leftover `.deleted` files.
    pub fn delete_expired_files(&mut self, now_ms: i64) -> Result<usize> {
        let backend = Arc::clone(&self.backend);
        let mut removed = 0;
        let mut error = None;
        self.pending_deletes.retain_mut(|p| {
            if p.due_ms > now_ms || error.is_some() {
                return true;
            }
            while let Some(path) = p.paths.last() {
                match remove_if_exists(backend.as_ref(), path) {
                    Ok(()) => {
                        removed += 1;
                        p.paths.pop();
                    }
                    Err(e) => {
                        error = Some(e);
                        return true;
                    }
                }
            }
            false
        });
        match error {
            Some(e) => Err(e),
            None => Ok(removed),
        }
    }

    /// When the next deleted segment's files become due for [`Log::delete_expired_files`].
    pub fn next_file_deletion_ms(&self) -> Option<i64> {
        self.pending_deletes.iter().map(|p| p.due_ms).min()
    }

    /// Names of the `.deleted` files waiting for [`Log::delete_expired_files`].
    pub fn pending_deleted_files(&self) -> Vec<PathBuf> {
        self.pending_deletes
            .iter()
            .flat_map(|p| p.paths.iter().cloned())
            .collect()
    }

    pub(super) fn delete_expired_files_best_effort(&mut self, now_ms: i64) {
        if let Err(e) = self.delete_expired_files(now_ms) {
            tracing::warn!(dir = %self.dir.display(), error = %e,
                "could not unlink a deleted segment file; will retry");
        }
    }

    /// How many segments, oldest first, Kafka's `deletableSegments` would hand over: it walks
    /// from the oldest while `predicate(segment, next segment)` holds and everything in the
    /// segment is below the high watermark (`hw >= next base offset`, or the log end for the
    /// active segment), and stops at an empty active segment. The predicate is only asked about
    /// segments below the high watermark (the size pass counts on that).
    fn deletable_segments(
        &self,
        hw: i64,
        mut predicate: impl FnMut(&Segment, Option<&Segment>) -> Result<bool>,
    ) -> Result<usize> {
        let end = self.log_end_offset();
        let mut n = 0;
        for (i, seg) in self.segments.iter().enumerate() {
            let next = self.segments.get(i + 1);
            let upper = next.map_or(end, |s| s.base_offset);
            let last_and_empty = next.is_none() && seg.size == 0;
            if last_and_empty || hw < upper || !predicate(seg, next)? {
                break;
            }
            n += 1;
        }
        Ok(n)
    }

    /// Deletes the `n` oldest segments (Kafka's `deleteSegments`): rolls first if that is all of
    /// them, moves the log start to the first remaining segment, takes the segments out of the
    /// log and renames their files `.deleted` for [`Log::delete_expired_files`].
    fn delete_segments(
        &mut self,
        n: usize,
        reason: Reason,
        now_ms: i64,
        result: &mut RetentionResult,
    ) -> Result<()> {
        if n == 0 {
            return Ok(());
        }
        if n == self.segments.len() {
            // A log always has an active segment: start the empty one at the log end first. A
            // failed roll leaves the log as it was (or offline, if sealing failed).
            let end = self.log_end_offset();
            self.roll(end, now_ms)?;
            result.rolled = true;
        }
        let r = self.remove_segments(n, reason, now_ms, result);
        if r.is_err() {
            // The segments may be half renamed, the epoch checkpoint half written: like Kafka's
            // offline log dir, refuse further work until a reopen reconciles memory and disk
            // (which removes `.deleted` files and orphan indexes and derives the log start from
            // what is left).
            self.failed = true;
        }
        r
    }

    fn remove_segments(
        &mut self,
        n: usize,
        reason: Reason,
        now_ms: i64,
        result: &mut RetentionResult,
    ) -> Result<()> {
        // Kafka moves the log start before the segments leave, so no lookup ever sees a log
        // start inside a missing segment.
        let new_start = self.segments[n].base_offset;
        self.increment_log_start(new_start)?;
        let doomed: Vec<Segment> = self.segments.drain(..n).collect();
        let bytes: u64 = doomed.iter().map(|s| s.size).sum();
        tracing::info!(
            dir = %self.dir.display(),
            reason = ?reason,
            segments = ?doomed.iter().map(|s| s.base_offset).collect::<Vec<_>>(),
            bytes,
            log_start_offset = self.log_start_offset,
            "deleting segments"
        );
        match reason {
            Reason::LogStart => result.log_start_breached += n,
            Reason::Size => result.size_breached += n,
            Reason::Time => result.time_breached += n,
        }
        result.bytes_deleted += bytes;
        let delay = i64::try_from(self.config.file_delete_delay_ms).unwrap_or(i64::MAX);
        let due_ms = now_ms.saturating_add(delay);
        for seg in doomed {
            let mut paths = Vec::with_capacity(4);
            let renamed = seg.rename_to_deleted(self.backend.as_ref(), &mut paths);
            // Whatever was renamed is pending even on failure, so it still gets unlinked.
            if !paths.is_empty() {
                self.pending_deletes.push(PendingDelete { due_ms, paths });
            }
            renamed?;
            // Dropping the segment closes its files and drops the log's reference to its maps;
            // `Bytes` handed out by earlier reads keep their maps (and so the inodes) alive.
        }
        Ok(())
    }

    /// Kafka's `maybeIncrementLogStartOffset` after its high watermark check: moves the log start
    /// up to `new_start` if that is higher, and brings what depends on it along.
    fn increment_log_start(&mut self, new_start: i64) -> Result<()> {
        if new_start <= self.log_start_offset {
            return Ok(());
        }
        tracing::info!(dir = %self.dir.display(), from = self.log_start_offset, to = new_start,
            "incrementing the log start offset");
        self.log_start_offset = new_start;
        // Kafka's `updateLogStartOffset`: nothing below the log start needs recovering.
        self.recovery_point = self.recovery_point.max(new_start);
        // Kafka's `onLogStartOffsetIncremented`: transactions whose marker is below the log
        // start no longer hold the last stable offset back. Producers themselves stay (KIP-360).
        self.unreplicated_txns.retain(|_, last| *last >= new_start);
        // Snapshots stay within (log start, log end], as `open` keeps them. These describe a
        // prefix of this same log, so they need not go durably, and one that cannot be removed
        // now stays listed: open and truncation delete those at or below the log start before
        // loading any, so it is retried there rather than worth taking the log offline.
        if let Err(e) = self.delete_snapshots(|offset| offset <= new_start) {
            tracing::warn!(dir = %self.dir.display(), error = %e,
                "could not delete a producer snapshot below the log start; will retry");
        }
        // Kafka's `leaderEpochCache.truncateFromStart`.
        self.reconcile_epochs()
    }
}
