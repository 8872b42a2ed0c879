//! Retention and DeleteRecords: `Log::delete_old_segments` (log start, size and time passes, the
//! active segment rule, the high watermark bound), the `.deleted` files and their delayed
//! unlink, `Log::delete_records`, producer state and transactions across a moving log start,
//! crashes between the rename and the unlink, and reopening. The shared suite runs against the
//! real `FileBackend`, a `FaultyBackend` without faults and one with short writes; the injected
//! failures follow.
#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, UNIX_EPOCH};

use common::*;
use rafka_records::BatchBuilder;
use rafka_storage::{Backend, Faults, Log, LogConfig, RetentionResult, StorageError};

backend_suite!(
    [file_backend, faulty_backend_no_faults, faulty_backend_short_writes]
    time_retention_deletes_old_sealed_segments,
    size_retention_deletes_oldest_first,
    active_segment_is_rolled_and_deleted_when_past_retention,
    empty_active_segment_is_never_deleted,
    nothing_at_or_above_the_high_watermark_is_deleted,
    time_retention_without_timestamps_uses_the_file_time,
    deleted_files_wait_for_the_delay,
    zero_delay_unlinks_at_once_and_close_unlinks_the_rest,
    reads_taken_before_deletion_stay_valid,
    crash_after_rename_before_unlink,
    crash_in_the_middle_of_a_segment_rename,
    crash_after_everything_expired,
    segments_below_a_checkpointed_log_start_go_at_the_next_check,
    delete_records_semantics,
    delete_records_survives_reopen,
    producer_state_is_kept_when_its_batches_are_deleted,
    transactions_across_a_moving_log_start,
    epochs_and_snapshots_follow_the_log_start,
);

/// Base of the timestamps: batch `j` (offset `j`) of [`fill_segments`] has `T0 + j * 1000`.
const T0: i64 = NOW - 1_000_000;

/// Three ~1.3 KB one-record batches per 4 KiB segment; retention off unless a test sets it.
fn config() -> LogConfig {
    LogConfig {
        retention_ms: -1,
        retention_bytes: -1,
        file_delete_delay_ms: 1000,
        ..small_config()
    }
}

/// [`config`] with time retention `retention_ms`.
fn time_retention(retention_ms: i64) -> LogConfig {
    LogConfig {
        retention_ms,
        ..config()
    }
}

/// [`config`] with size retention `retention_bytes`.
fn size_retention(retention_bytes: i64) -> LogConfig {
    LogConfig {
        retention_bytes,
        ..config()
    }
}

/// [`config`] under which every segment below the high watermark has expired, its `.deleted`
/// files unlinked `file_delete_delay_ms` later.
fn expire_all(file_delete_delay_ms: u64) -> LogConfig {
    LogConfig {
        retention_ms: 0,
        file_delete_delay_ms,
        ..config()
    }
}

fn open_at(dir: &Path, config: LogConfig, b: &Arc<dyn Backend>, start: i64, clean: bool) -> Log {
    open_with(dir, config, b.clone(), 0, start, clean)
}

/// One record of ~1.2 KB with timestamp `ts`.
fn big(ts: i64) -> Vec<u8> {
    BatchBuilder::new(0)
        .record(None, Some(&[b'r'; 1200]), &[], ts)
        .build()
}

/// Appends batches until the log end is `end`; batch at offset j has timestamp `T0 + j * 1000`.
/// With the config above, segment i holds offsets 3i..3i+2.
fn fill_to(log: &mut Log, end: i64, leader_epoch: i32) -> Vec<(i64, i64)> {
    let mut out = Vec::new();
    while log.log_end_offset() < end {
        let j = log.log_end_offset();
        let info = log
            .append(&mut big(T0 + j * 1000), leader_epoch, NOW)
            .unwrap();
        out.push((info.base_offset, info.last_offset));
    }
    out
}

/// Base offsets of the `.log` files in `dir`.
fn bases(dir: &Path) -> Vec<i64> {
    base_offsets(dir, ".log")
}

fn deleted_files(dir: &Path) -> Vec<PathBuf> {
    segment_files(dir, ".deleted")
}

/// The four `.deleted` names of the segment at `base`.
fn deleted_names(dir: &Path, base: i64) -> Vec<PathBuf> {
    ["log", "index", "timeindex", "txnindex"]
        .iter()
        .map(|s| dir.join(format!("{base:020}.{s}.deleted")))
        .collect()
}

fn assert_out_of_range(log: &Log, offset: i64) {
    match log.read(offset, 1 << 20, i64::MAX, true) {
        Err(StorageError::OffsetOutOfRange { requested, .. }) => assert_eq!(requested, offset),
        other => panic!("read at {offset}: {other:?}"),
    }
}

fn time_retention_deletes_old_sealed_segments(b: Arc<dyn Backend>) {
    let dir = tempfile::tempdir().unwrap();
    let retention_ms = 100_000;
    let mut log = open_at(dir.path(), time_retention(retention_ms), &b, 0, false);
    let batches = fill_to(&mut log, 12, 0);
    assert_eq!(bases(dir.path()), vec![0, 3, 6, 9]);
    let end = log.log_end_offset();
    // Segment 1's largest timestamp is T0 + 5000: exactly retention.ms old keeps it (Kafka's
    // test is strictly greater).
    let now = T0 + 5000 + retention_ms;
    let r = log.delete_old_segments(now, end).unwrap();
    assert_eq!(r.time_breached, 1, "{r:?}");
    assert_eq!(log.log_start_offset(), 3);
    let r = log.delete_old_segments(now + 1, end).unwrap();
    assert_eq!(
        r,
        RetentionResult {
            time_breached: 1,
            bytes_deleted: r.bytes_deleted,
            log_start_offset: 6,
            ..RetentionResult::default()
        }
    );
    assert!(r.bytes_deleted > 3 * 1200);
    assert_eq!(r.segments_deleted(), 1);
    assert_eq!(log.log_start_offset(), 6);
    assert_eq!(log.segment_count(), 2);
    assert_eq!(bases(dir.path()), vec![6, 9]);
    for base in [0, 3] {
        for p in deleted_names(dir.path(), base) {
            assert!(p.exists(), "{} missing", p.display());
        }
    }
    assert_out_of_range(&log, 5);
    assert_out_of_range(&log, 0);
    check_reads(&log, &batches[6..]);
    let r = log.read(6, 1 << 20, end, false).unwrap();
    assert_eq!(r.log_start_offset, 6);
    // Nothing else is old enough; appends go on and report the new log start.
    assert_eq!(
        log.delete_old_segments(now + 1, end)
            .unwrap()
            .segments_deleted(),
        0
    );
    let info = log.append(&mut big(T0 + 12_000), 0, NOW).unwrap();
    assert_eq!((info.base_offset, info.log_start_offset), (12, 6));
    // Retention off: nothing goes, however old.
    log.set_config(config());
    let r = log
        .delete_old_segments(i64::MAX, log.log_end_offset())
        .unwrap();
    assert_eq!(r.segments_deleted(), 0);
}

fn size_retention_deletes_oldest_first(b: Arc<dyn Backend>) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open_at(dir.path(), config(), &b, 0, false);
    let batches = fill_to(&mut log, 12, 0);
    let end = log.log_end_offset();
    let seg_len = |base: i64| {
        fs::metadata(dir.path().join(format!("{base:020}.log")))
            .unwrap()
            .len()
    };
    let total = log.size_bytes();
    assert_eq!(total, (0..4).map(|i| seg_len(i * 3)).sum::<u64>());
    let (s0, s1) = (seg_len(0), seg_len(3));

    // One byte short of needing segment 0 gone: nothing goes.
    let limit = (total - s0 + 1) as i64;
    log.set_config(size_retention(limit));
    assert_eq!(
        log.delete_old_segments(NOW, end)
            .unwrap()
            .segments_deleted(),
        0
    );
    // Exactly the size without segment 0: it goes, and only it.
    log.set_config(size_retention((total - s0) as i64));
    let r = log.delete_old_segments(NOW, end).unwrap();
    assert_eq!((r.size_breached, r.bytes_deleted), (1, s0));
    assert_eq!(log.log_start_offset(), 3);
    assert_eq!(log.size_bytes(), total - s0);
    // Down to the active segment's size: both remaining sealed segments go, the active one
    // stays.
    let s2 = seg_len(6);
    log.set_config(size_retention((total - s0 - s1 - s2) as i64));
    let r = log.delete_old_segments(NOW, end).unwrap();
    assert_eq!(r.size_breached, 2);
    assert_eq!(log.log_start_offset(), 9);
    assert_eq!(bases(dir.path()), vec![9]);
    check_reads(&log, &batches[9..]);
    // Time and size together: size first, then time, on what size left.
    let dir2 = tempfile::tempdir().unwrap();
    let mut log = open_at(dir2.path(), config(), &b, 0, false);
    fill_to(&mut log, 12, 0);
    log.set_config(LogConfig {
        retention_bytes: (log.size_bytes() - s0) as i64,
        retention_ms: 1,
        ..config()
    });
    // Old enough for segments 0 and 1 only.
    let r = log.delete_old_segments(T0 + 5000 + 2, 12).unwrap();
    assert_eq!((r.size_breached, r.time_breached), (1, 1), "{r:?}");
    assert_eq!(r.log_start_offset, 6);
}

fn active_segment_is_rolled_and_deleted_when_past_retention(b: Arc<dyn Backend>) {
    // Kafka's rule (`deletableSegments` / `deleteSegments`): the active segment qualifies like
    // any other when everything in it is below the high watermark and it is not empty; the log
    // is then rolled first so that one (empty) segment remains.
    let dir = tempfile::tempdir().unwrap();
    let mut log = open_at(dir.path(), time_retention(1000), &b, 0, false);
    fill_to(&mut log, 2, 0);
    assert_eq!(log.segment_count(), 1);
    let late = T0 + 1000 + 1001;
    // Not all of it below the high watermark: stays.
    let r = log.delete_old_segments(late, 1).unwrap();
    assert_eq!(r, RetentionResult::default());
    assert_eq!(log.log_start_offset(), 0);
    // Fully replicated: rolled, then deleted.
    let r = log.delete_old_segments(late, 2).unwrap();
    assert!(r.rolled);
    assert_eq!((r.time_breached, r.log_start_offset), (1, 2));
    assert_eq!(log.segment_count(), 1);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (2, 2));
    assert_eq!(log.size_bytes(), 0);
    assert_eq!(bases(dir.path()), vec![2]);
    assert_eq!(deleted_files(dir.path()).len(), 4);
    assert_out_of_range(&log, 1);
    // The log goes on at the log end.
    let info = log.append(&mut big(NOW), 0, NOW).unwrap();
    assert_eq!(info.base_offset, 2);
    check_reads(&log, &[(2, 2)]);

    // Several segments, all past retention and replicated: all go, the active one too.
    let dir = tempfile::tempdir().unwrap();
    let mut log = open_at(dir.path(), time_retention(0), &b, 0, false);
    fill_to(&mut log, 8, 0);
    assert_eq!(log.segment_count(), 3);
    // The active segment (6, 7) holds offsets up to 7: a high watermark of 7 keeps it.
    let r = log.delete_old_segments(NOW, 7).unwrap();
    assert_eq!((r.time_breached, r.rolled), (2, false));
    assert_eq!(log.log_start_offset(), 6);
    let r = log.delete_old_segments(NOW, 8).unwrap();
    assert_eq!((r.time_breached, r.rolled), (1, true));
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (8, 8));
    // Size retention of 0 empties a log the same way.
    let dir = tempfile::tempdir().unwrap();
    let mut log = open_at(dir.path(), size_retention(0), &b, 0, false);
    fill_to(&mut log, 5, 0);
    let r = log.delete_old_segments(NOW, 5).unwrap();
    assert_eq!((r.size_breached, r.rolled), (2, true));
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (5, 5));
    log.close().unwrap();
    let log = open_at(dir.path(), config(), &b, 5, true);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (5, 5));
    assert!(deleted_files(dir.path()).is_empty());
}

fn empty_active_segment_is_never_deleted(b: Arc<dyn Backend>) {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        retention_ms: 0,
        retention_bytes: 0,
        ..config()
    };
    let mut log = open_at(dir.path(), cfg, &b, 0, false);
    let r = log.delete_old_segments(i64::MAX, 0).unwrap();
    assert_eq!(r, RetentionResult::default());
    assert_eq!(bases(dir.path()), vec![0]);
    assert!(deleted_files(dir.path()).is_empty());
    // After everything went, the fresh empty segment stays, check after check.
    fill_to(&mut log, 4, 0);
    let r = log.delete_old_segments(i64::MAX, 4).unwrap();
    assert!(r.rolled);
    for _ in 0..3 {
        let r = log.delete_old_segments(i64::MAX, 4).unwrap();
        assert_eq!(r.segments_deleted(), 0);
        assert!(!r.rolled);
    }
    assert_eq!(bases(dir.path()), vec![4]);
}

fn nothing_at_or_above_the_high_watermark_is_deleted(b: Arc<dyn Backend>) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open_at(dir.path(), time_retention(0), &b, 0, false);
    let batches = fill_to(&mut log, 12, 0);
    // (high watermark, log start afterwards): a segment goes only when the next one starts at
    // or below the high watermark.
    for (hw, start) in [(0, 0), (2, 0), (3, 3), (5, 3), (6, 6), (8, 6), (11, 9)] {
        let r = log.delete_old_segments(NOW, hw).unwrap();
        assert_eq!(log.log_start_offset(), start, "hw {hw}: {r:?}");
        assert!(log.log_start_offset() <= hw);
        check_reads(&log, &batches[start as usize..]);
    }
    // A high watermark past the log end counts as the log end.
    let r = log.delete_old_segments(NOW, i64::MAX).unwrap();
    assert!(r.rolled);
    assert_eq!(log.log_start_offset(), 12);
    // Size retention is bounded the same way.
    let dir = tempfile::tempdir().unwrap();
    let mut log = open_at(dir.path(), size_retention(0), &b, 0, false);
    fill_to(&mut log, 12, 0);
    log.delete_old_segments(NOW, 4).unwrap();
    assert_eq!(log.log_start_offset(), 3);
}

fn time_retention_without_timestamps_uses_the_file_time(b: Arc<dyn Backend>) {
    // Kafka's `largestTimestamp`: without any record timestamp, the `.log` file's mtime.
    let dir = tempfile::tempdir().unwrap();
    let retention_ms = 60_000;
    let mut log = open_at(dir.path(), time_retention(retention_ms), &b, 0, false);
    for _ in 0..7 {
        log.append(&mut big(-1), 0, NOW).unwrap();
    }
    assert_eq!(bases(dir.path()), vec![0, 3, 6]);
    let old = NOW - 10 * retention_ms;
    let f = fs::File::options()
        .write(true)
        .open(dir.path().join(format!("{:020}.log", 0)))
        .unwrap();
    f.set_modified(UNIX_EPOCH + Duration::from_millis(old as u64))
        .unwrap();
    // Segment 1's file was written just now (wall clock, well after NOW): it stays.
    let r = log.delete_old_segments(old + retention_ms + 1, 7).unwrap();
    assert_eq!(r.time_breached, 1, "{r:?}");
    assert_eq!(log.log_start_offset(), 3);
}

fn deleted_files_wait_for_the_delay(b: Arc<dyn Backend>) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open_at(dir.path(), expire_all(60_000), &b, 0, false);
    fill_to(&mut log, 9, 0);
    let now = NOW + 5;
    log.delete_old_segments(now, 6).unwrap();
    assert_eq!(log.log_start_offset(), 6);
    let mut expected: Vec<PathBuf> = [0, 3]
        .iter()
        .flat_map(|&base| deleted_names(dir.path(), base))
        .collect();
    expected.sort();
    assert_eq!(deleted_files(dir.path()), expected);
    let mut pending = log.pending_deleted_files();
    pending.sort();
    assert_eq!(pending, expected);
    assert_eq!(log.next_file_deletion_ms(), Some(now + 60_000));
    // The original names are gone at once.
    assert_eq!(bases(dir.path()), vec![6]);
    assert!(!dir.path().join(format!("{:020}.index", 0)).exists());
    // Not yet due: nothing happens (also through a retention check).
    assert_eq!(log.delete_expired_files(now + 59_999).unwrap(), 0);
    log.delete_old_segments(now + 59_999, 6).unwrap();
    assert_eq!(deleted_files(dir.path()).len(), 8);
    // Due: all eight go.
    assert_eq!(log.delete_expired_files(now + 60_000).unwrap(), 8);
    assert!(deleted_files(dir.path()).is_empty());
    assert!(log.pending_deleted_files().is_empty());
    assert_eq!(log.next_file_deletion_ms(), None);
    assert_eq!(log.delete_expired_files(i64::MAX).unwrap(), 0);
    // Deletions at different times come due at different times; a retention check runs the
    // due ones.
    fill_to(&mut log, 15, 0);
    log.delete_old_segments(now + 100_000, 10).unwrap();
    assert_eq!(log.log_start_offset(), 9);
    log.delete_old_segments(now + 130_000, 13).unwrap();
    assert_eq!(log.log_start_offset(), 12);
    assert_eq!(deleted_files(dir.path()).len(), 8);
    assert_eq!(log.next_file_deletion_ms(), Some(now + 160_000));
    log.delete_old_segments(now + 160_000, 13).unwrap();
    assert_eq!(
        deleted_files(dir.path()),
        sorted(deleted_names(dir.path(), 9))
    );
    assert_eq!(log.delete_expired_files(now + 190_000).unwrap(), 4);
    assert!(deleted_files(dir.path()).is_empty());
}

fn sorted(mut v: Vec<PathBuf>) -> Vec<PathBuf> {
    v.sort();
    v
}

fn zero_delay_unlinks_at_once_and_close_unlinks_the_rest(b: Arc<dyn Backend>) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open_at(dir.path(), expire_all(0), &b, 0, false);
    fill_to(&mut log, 9, 0);
    log.delete_old_segments(NOW, 4).unwrap();
    assert_eq!(log.log_start_offset(), 3);
    assert!(deleted_files(dir.path()).is_empty());
    assert!(log.pending_deleted_files().is_empty());
    // With a delay, close does not wait for it.
    log.set_config(expire_all(u64::MAX));
    log.delete_old_segments(NOW, 7).unwrap();
    assert_eq!(deleted_files(dir.path()).len(), 4);
    assert_eq!(log.next_file_deletion_ms(), Some(i64::MAX));
    log.close().unwrap();
    assert!(deleted_files(dir.path()).is_empty());
    assert_eq!(bases(dir.path()), vec![6]);
}

fn reads_taken_before_deletion_stay_valid(b: Arc<dyn Backend>) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open_at(dir.path(), expire_all(0), &b, 0, false);
    fill_to(&mut log, 9, 0);
    // Sealed segments hand out slices of their maps.
    let held: Vec<_> = (0..6)
        .map(|o| log.read(o, 1 << 20, i64::MAX, true).unwrap().records)
        .collect();
    let copies: Vec<Vec<u8>> = held.iter().map(|r| r.to_vec()).collect();
    log.delete_old_segments(NOW, 9).unwrap();
    assert_eq!(log.log_start_offset(), 9);
    // Renamed, unlinked, segments dropped: the bytes are still there, unchanged.
    assert!(deleted_files(dir.path()).is_empty());
    assert_eq!(bases(dir.path()), vec![9]);
    // Reuse the disk space the unlinked files held, as new appends would.
    fill_to(&mut log, 20, 0);
    for (h, c) in held.iter().zip(&copies) {
        assert_eq!(&h[..], &c[..]);
        for batch in rafka_records::batches(h) {
            batch.unwrap().verify_crc().unwrap();
        }
    }
}

fn crash_after_rename_before_unlink(b: Arc<dyn Backend>) {
    let template = tempfile::tempdir().unwrap();
    let mut log = open_at(template.path(), expire_all(60_000), &b, 0, false);
    let batches = fill_to(&mut log, 11, 0);
    log.delete_old_segments(NOW, 7).unwrap();
    assert_eq!(log.log_start_offset(), 6);
    // Crash: no close, `.deleted` files left behind.
    drop(log);
    assert_eq!(deleted_files(template.path()).len(), 8);
    // Whether the log start checkpoint was written after the deletion or not, and whether the
    // shutdown counts as clean or not, the reopened log is the same.
    for (checkpointed_start, clean) in [(0, false), (6, false), (0, true), (6, true)] {
        let work = tempfile::tempdir().unwrap();
        copy_dir(template.path(), work.path());
        let mut log = open_at(work.path(), config(), &b, checkpointed_start, clean);
        assert!(deleted_files(work.path()).is_empty());
        assert_eq!(bases(work.path()), vec![6, 9]);
        assert_eq!(log.log_start_offset(), 6);
        assert_eq!(log.log_end_offset(), 11);
        assert!(log.recovery_point() >= 6);
        check_reads(&log, &batches[6..]);
        assert_out_of_range(&log, 5);
        let info = log.append(&mut big(NOW), 0, NOW).unwrap();
        assert_eq!(info.base_offset, 11);
        assert_eq!(info.log_start_offset, 6);
        log.close().unwrap();
        let log = open_at(work.path(), config(), &b, 6, true);
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (6, 12));
    }
}

fn crash_in_the_middle_of_a_segment_rename(b: Arc<dyn Backend>) {
    // Retention renamed segment 0 whole, then only segment 3's `.log`, and the broker died.
    let dir = tempfile::tempdir().unwrap();
    let mut log = open_at(dir.path(), config(), &b, 0, false);
    let batches = fill_to(&mut log, 10, 0);
    log.close().unwrap();
    for s in ["log", "index", "timeindex", "txnindex"] {
        let p = dir.path().join(format!("{:020}.{s}", 0));
        fs::rename(&p, format!("{}.deleted", p.display())).unwrap();
    }
    let p = dir.path().join(format!("{:020}.log", 3));
    fs::rename(&p, format!("{}.deleted", p.display())).unwrap();
    for clean in [true, false] {
        let log = open_at(dir.path(), config(), &b, 0, clean);
        assert_eq!(log.log_start_offset(), 6);
        assert_eq!(log.log_end_offset(), 10);
        check_reads(&log, &batches[6..]);
        drop(log);
        assert!(deleted_files(dir.path()).is_empty());
        // Segment 3's indexes went with its log.
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert!(
            names
                .iter()
                .all(|n| !n.starts_with(&format!("{:020}.", 3)) || n.ends_with(".snapshot")),
            "{names:?}"
        );
    }
}

fn segments_below_a_checkpointed_log_start_go_at_the_next_check(b: Arc<dyn Backend>) {
    // The log start checkpoint reached the disk but the renames did not (no directory fsync):
    // the old segments are back, below the log start. Reads there are refused, and the next
    // check deletes them by Kafka's log start rule, whatever the retention settings.
    let dir = tempfile::tempdir().unwrap();
    let mut log = open_at(dir.path(), config(), &b, 0, false);
    let batches = fill_to(&mut log, 11, 0);
    log.close().unwrap();
    let mut log = open_at(dir.path(), config(), &b, 7, false);
    assert_eq!(log.log_start_offset(), 7);
    assert_out_of_range(&log, 6);
    check_reads(&log, &batches[7..]);
    let r = log.delete_old_segments(NOW, 11).unwrap();
    assert_eq!((r.log_start_breached, r.log_start_offset), (2, 7), "{r:?}");
    assert_eq!(log.segment_count(), 2);
    assert_eq!(bases(dir.path()), vec![6, 9]);
    // Segment 6 holds the log start: it stays.
    assert_eq!(
        log.delete_old_segments(NOW, 11).unwrap().segments_deleted(),
        0
    );
    check_reads(&log, &batches[7..]);
}

fn delete_records_semantics(b: Arc<dyn Backend>) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open_at(dir.path(), config(), &b, 0, false);
    let batches = fill_to(&mut log, 12, 0);
    let hw = 10;
    // Inside segment 3: segment 0 goes, segment 3 stays whole but reads below 4 are refused.
    assert_eq!(log.delete_records(4, hw, NOW).unwrap(), 4);
    assert_eq!(log.log_start_offset(), 4);
    assert_eq!(bases(dir.path()), vec![3, 6, 9]);
    assert_eq!(deleted_files(dir.path()).len(), 4);
    assert_out_of_range(&log, 3);
    check_reads(&log, &batches[4..]);
    let r = log.read(4, 1 << 20, hw, false).unwrap();
    assert_eq!(parse_all(&r.records)[0].0, 4);
    assert_eq!(r.log_start_offset, 4);
    // Never backwards, and not an error.
    assert_eq!(log.delete_records(2, hw, NOW).unwrap(), 4);
    assert_eq!(log.delete_records(4, hw, NOW).unwrap(), 4);
    assert_eq!(log.log_start_offset(), 4);
    // Above the high watermark: refused, nothing changes.
    match log.delete_records(hw + 1, hw, NOW) {
        Err(e @ StorageError::LogStartOffsetOutOfRange { .. }) => {
            let msg = e.to_string();
            assert!(
                msg.contains("11") && msg.contains("high watermark 10"),
                "{msg}"
            );
        }
        other => panic!("{other:?}"),
    }
    // A high watermark past the log end counts as the log end.
    assert!(matches!(
        log.delete_records(13, i64::MAX, NOW),
        Err(StorageError::LogStartOffsetOutOfRange {
            requested: 13,
            high_watermark: 12
        })
    ));
    // Negative offsets other than -1 are refused too (Kafka: OFFSET_OUT_OF_RANGE).
    assert!(matches!(
        log.delete_records(-2, hw, NOW),
        Err(StorageError::LogStartOffsetOutOfRange { .. })
    ));
    assert_eq!(log.log_start_offset(), 4);
    assert_eq!(bases(dir.path()), vec![3, 6, 9]);
    // -1 means the high watermark; a segment boundary deletes the segment below it.
    assert_eq!(log.delete_records(-1, 6, NOW).unwrap(), 6);
    assert_eq!(bases(dir.path()), vec![6, 9]);
    assert_eq!(log.delete_records(-1, hw, NOW).unwrap(), 10);
    assert_eq!(bases(dir.path()), vec![9]);
    assert_out_of_range(&log, 9);
    check_reads(&log, &batches[10..]);
    // Up to the log end: the active segment stays (the log start rule never takes it), empty
    // of readable records.
    assert_eq!(log.delete_records(-1, 12, NOW).unwrap(), 12);
    assert_eq!(bases(dir.path()), vec![9]);
    let r = log.read(12, 1 << 20, 12, true).unwrap();
    assert!(r.records.is_empty());
    assert_out_of_range(&log, 11);
    // The log start offset is what appends report, and the log goes on.
    let info = log.append(&mut big(NOW), 0, NOW).unwrap();
    assert_eq!((info.base_offset, info.log_start_offset), (12, 12));
    check_reads(&log, &[(12, 12)]);
    // That append rolled: the segment at 9 now lies wholly below the log start, and the next
    // check's log start pass deletes it (without moving the log start back).
    assert_eq!(bases(dir.path()), vec![9, 12]);
    let r = log.delete_old_segments(NOW, 13).unwrap();
    assert_eq!((r.log_start_breached, r.log_start_offset), (1, 12));
    assert_eq!(bases(dir.path()), vec![12]);
    // An empty log: -1 with a high watermark of 0 is a no-op.
    let dir = tempfile::tempdir().unwrap();
    let mut log = open_at(dir.path(), config(), &b, 0, false);
    assert_eq!(log.delete_records(-1, 0, NOW).unwrap(), 0);
    assert!(log.delete_records(1, 0, NOW).is_err());
}

fn delete_records_survives_reopen(b: Arc<dyn Backend>) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open_at(dir.path(), config(), &b, 0, false);
    let batches = fill_to(&mut log, 12, 0);
    assert_eq!(log.delete_records(7, 12, NOW).unwrap(), 7);
    // The broker checkpoints `log_start_offset()` and hands it back to `open`.
    let start = log.log_start_offset();
    log.close().unwrap();
    assert!(deleted_files(dir.path()).is_empty());
    for clean in [true, false] {
        let mut log = open_at(dir.path(), config(), &b, start, clean);
        assert_eq!(log.log_start_offset(), 7);
        assert_eq!(log.log_end_offset(), 12);
        assert_out_of_range(&log, 6);
        check_reads(&log, &batches[7..]);
        assert_eq!(log.fetch_offset_by_timestamp(0).unwrap().unwrap().offset, 7);
        assert_eq!(log.delete_records(5, 12, NOW).unwrap(), 7);
        log.close().unwrap();
    }
    // Crash right after DeleteRecords, before close: the same.
    let mut log = open_at(dir.path(), config(), &b, start, true);
    assert_eq!(log.delete_records(10, 12, NOW).unwrap(), 10);
    drop(log);
    let log = open_at(dir.path(), config(), &b, 10, false);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (10, 12));
    assert!(deleted_files(dir.path()).is_empty());
    check_reads(&log, &batches[10..]);
}

/// An idempotent (or transactional) one-record ~1.3 KB batch.
fn pbatch(pid: i64, epoch: i16, seq: i32, transactional: bool) -> Vec<u8> {
    pbatch_at(pid, epoch, seq, transactional, T0)
}

fn pbatch_at(pid: i64, epoch: i16, seq: i32, transactional: bool, ts: i64) -> Vec<u8> {
    BatchBuilder::new(0)
        .producer(pid, epoch, seq)
        .transactional(transactional)
        .record(None, Some(&[b'p'; 1200]), &[], ts)
        .build()
}

fn snapshot_offsets(dir: &Path) -> Vec<i64> {
    base_offsets(dir, ".snapshot")
}

fn pids(log: &Log) -> Vec<i64> {
    log.active_producers()
        .iter()
        .map(|p| p.producer_id)
        .collect()
}

fn producer_state_is_kept_when_its_batches_are_deleted(b: Arc<dyn Backend>) {
    // Kafka since KIP-360 (KAFKA-7190): moving the log start does not forget producers, so a
    // producer whose batches all went keeps its fencing and duplicate detection; only
    // `producer.id.expiration.ms` forgets it.
    let dir = tempfile::tempdir().unwrap();
    let mut log = open_at(dir.path(), config(), &b, 0, false);
    let first = append(&mut log, pbatch(1, 5, 0, false)); // offset 0
    fill_to(&mut log, 3, 0);
    append(&mut log, pbatch(2, 0, 0, false)); // offset 3
    fill_to(&mut log, 6, 0);
    append(&mut log, pbatch(2, 0, 1, false)); // offset 6
    fill_to(&mut log, 10, 0);
    assert_eq!(bases(dir.path()), vec![0, 3, 6, 9]);
    assert_eq!(log.delete_records(7, 10, NOW).unwrap(), 7);
    assert_eq!(pids(&log), vec![1, 2]);
    // Snapshots stay within (log start, log end].
    let snaps = snapshot_offsets(dir.path());
    assert!(!snaps.is_empty());
    assert!(snaps.iter().all(|&o| o > 7), "{snaps:?}");
    // A retry of the deleted batch is still recognized, with its original offsets.
    let mut retry = pbatch(1, 5, 0, false);
    let dup = log.append(&mut retry, 0, NOW).unwrap();
    assert!(dup.duplicate);
    assert_eq!(dup.base_offset, first.base_offset);
    assert_eq!(log.log_end_offset(), 10);
    // A zombie with an older epoch is still fenced; the producer's next batch follows on.
    assert!(matches!(
        log.append(&mut pbatch(1, 4, 1, false), 0, NOW),
        Err(StorageError::InvalidProducerEpoch { .. })
    ));
    assert!(matches!(
        log.append(&mut pbatch(1, 5, 3, false), 0, NOW),
        Err(StorageError::OutOfOrderSequence { .. })
    ));
    let info = append(&mut log, pbatch_at(1, 5, 1, false, NOW));
    assert_eq!(info.base_offset, 10);
    // Expiry still forgets idle producers.
    assert_eq!(log.expire_producers(NOW, 1000), 1);
    assert_eq!(pids(&log), vec![1]);

    // State survives a clean restart and a crash alike.
    let dir = tempfile::tempdir().unwrap();
    let mut log = open_at(dir.path(), config(), &b, 0, false);
    append(&mut log, pbatch(1, 5, 0, false));
    append(&mut log, pbatch(2, 0, 0, false));
    fill_to(&mut log, 10, 0);
    log.delete_old_segments(NOW, 10).unwrap(); // retention off: nothing
    log.set_config(time_retention(0));
    log.delete_old_segments(NOW, 6).unwrap();
    assert_eq!(log.log_start_offset(), 6);
    assert_eq!(pids(&log), vec![1, 2]);
    // Crash: the roll snapshot at 9, above the log start, carries the state. (Without a snapshot
    // above the log start, a crash forgets producers whose batches are gone, as in Kafka, whose
    // loader deletes snapshots at or below the log start.)
    assert_eq!(snapshot_offsets(dir.path()), vec![9]);
    drop(log);
    let log = open_at(dir.path(), config(), &b, 6, false);
    assert_eq!(pids(&log), vec![1, 2]);
    log.close().unwrap();
    let mut log = open_at(dir.path(), config(), &b, 6, true);
    assert_eq!(pids(&log), vec![1, 2]);
    assert!(
        log.append(&mut pbatch(2, 0, 0, false), 0, NOW)
            .unwrap()
            .duplicate
    );
}

fn transactions_across_a_moving_log_start(b: Arc<dyn Backend>) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open_at(dir.path(), config(), &b, 0, false);
    append(&mut log, pbatch(7, 0, 0, true)); // offset 0: pid 7's transaction opens
    fill_to(&mut log, 3, 0);
    append(&mut log, pbatch(8, 0, 0, true)); // offset 3: pid 8's transaction opens
    fill_to(&mut log, 7, 0);
    assert_eq!(log.first_unstable_offset(), Some(0));
    // An abort of pid 8 lands in segment 6; its transaction started in segment 3.
    let abort = log.append_txn_marker(8, 0, 1, false, 0, NOW).unwrap();
    assert_eq!(abort.base_offset, 7);
    fill_to(&mut log, 11, 0);
    assert_eq!(bases(dir.path()), vec![0, 3, 6, 10]);
    // Retention past the open transaction's start: the transaction stays open, the first
    // unstable offset and the last stable offset do not go below the log start.
    log.set_config(time_retention(0));
    log.delete_old_segments(NOW, 6).unwrap();
    assert_eq!(log.log_start_offset(), 6);
    assert!(log.has_ongoing_transaction(7, 0));
    assert_eq!(log.first_unstable_offset(), Some(6));
    assert_eq!(log.last_stable_offset(11), 6);
    // The abort's index entry lives in segment 6 and stays, first offset and all.
    let aborted = log.aborted_transactions(6, 11);
    assert_eq!(aborted.len(), 1);
    assert_eq!(
        (
            aborted[0].producer_id,
            aborted[0].first_offset,
            aborted[0].last_offset
        ),
        (8, 3, 7)
    );
    // Closing the transaction frees the last stable offset.
    log.append_txn_marker(7, 0, 1, true, 0, NOW).unwrap();
    assert_eq!(log.first_unstable_offset(), None);
    log.on_high_watermark_updated(log.log_end_offset());
    assert_eq!(log.last_stable_offset(12), 12);
    // All of it survives a restart.
    log.close().unwrap();
    let log = open_at(dir.path(), config(), &b, 6, true);
    assert_eq!(log.log_start_offset(), 6);
    assert_eq!(log.aborted_transactions(6, 12), aborted);
    assert_eq!(log.first_unstable_offset(), None);
    assert_eq!(pids(&log), vec![7, 8]);
    // Deleting the segment with the abort takes its index with it.
    let mut log = log;
    log.delete_records(10, 12, NOW).unwrap();
    assert_eq!(log.log_start_offset(), 10);
    assert!(log.aborted_transactions(10, 12).is_empty());
    assert!(!dir.path().join(format!("{:020}.txnindex", 6)).exists());
    assert!(dir
        .path()
        .join(format!("{:020}.txnindex.deleted", 6))
        .exists());
}

fn epochs_and_snapshots_follow_the_log_start(b: Arc<dyn Backend>) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open_at(dir.path(), config(), &b, 0, false);
    fill_to(&mut log, 4, 1);
    fill_to(&mut log, 8, 2);
    fill_to(&mut log, 10, 3);
    let starts = |log: &Log| -> Vec<(i32, i64)> {
        log.leader_epoch_entries()
            .iter()
            .map(|e| (e.epoch, e.start_offset))
            .collect()
    };
    assert_eq!(starts(&log), vec![(1, 0), (2, 4), (3, 8)]);
    log.delete_records(5, 10, NOW).unwrap();
    // Kafka's truncateFromStart: the entry covering the log start now starts there.
    assert_eq!(starts(&log), vec![(2, 5), (3, 8)]);
    assert!(snapshot_offsets(dir.path()).iter().all(|&o| o > 5));
    log.set_config(time_retention(0));
    log.delete_old_segments(NOW, 9).unwrap();
    assert_eq!(log.log_start_offset(), 9);
    assert_eq!(starts(&log), vec![(3, 9)]);
    assert!(snapshot_offsets(dir.path()).iter().all(|&o| o > 9));
    // The recovery point never stays below the log start.
    assert!(log.recovery_point() >= 9);
    log.close().unwrap();
    let log = open_at(dir.path(), config(), &b, 9, true);
    assert_eq!(starts(&log), vec![(3, 9)]);
    let raw = fs::read_to_string(dir.path().join("leader-epoch-checkpoint")).unwrap();
    assert_eq!(raw, "0\n1\n3 9\n");
}

// ---- injected faults ----

#[test]
fn failed_rename_takes_the_log_offline_and_reopen_recovers() {
    let (fb, b) = faulty();
    let dir = tempfile::tempdir().unwrap();
    let mut log = open_at(dir.path(), time_retention(0), &b, 0, false);
    // No leader epochs, so moving the log start writes no epoch checkpoint (also a rename).
    let batches = fill_to(&mut log, 11, -1);
    fb.set_faults(Faults {
        fail_renames: true,
        ..Default::default()
    });
    let err = log.delete_old_segments(NOW, 7).unwrap_err();
    assert!(matches!(err, StorageError::Io { .. }), "{err:?}");
    assert!(matches!(
        log.append(&mut big(NOW), 0, NOW),
        Err(StorageError::Failed(_))
    ));
    assert!(matches!(
        log.delete_old_segments(NOW, 7),
        Err(StorageError::Failed(_))
    ));
    assert!(matches!(
        log.delete_records(8, 11, NOW),
        Err(StorageError::Failed(_))
    ));
    let start_in_memory = log.log_start_offset();
    assert_eq!(start_in_memory, 6);
    drop(log);
    // Restart on a healthy disk, with or without the moved log start checkpointed.
    for start in [0, start_in_memory] {
        let work = tempfile::tempdir().unwrap();
        copy_dir(dir.path(), work.path());
        let fresh = file_backend();
        let mut log = open_at(work.path(), time_retention(0), &fresh, start, false);
        assert_eq!(log.log_start_offset(), start);
        assert_eq!(log.log_end_offset(), 11);
        check_reads(&log, &batches[start as usize..]);
        log.delete_old_segments(NOW, 7).unwrap();
        assert_eq!(log.log_start_offset(), 6);
        assert_eq!(bases(work.path()), vec![6, 9]);
        check_reads(&log, &batches[6..]);
    }
}

#[test]
fn failed_unlink_is_retried() {
    let (fb, b) = faulty();
    let dir = tempfile::tempdir().unwrap();
    let mut log = open_at(dir.path(), expire_all(0), &b, 0, false);
    let batches = fill_to(&mut log, 11, 0);
    fb.set_faults(Faults {
        fail_removes: true,
        ..Default::default()
    });
    // The unlinks (and the removal of snapshots below the new log start) fail; retention itself
    // succeeds and the log stays usable.
    let r = log.delete_old_segments(NOW, 7).unwrap();
    assert_eq!(r.time_breached, 2);
    assert_eq!(log.pending_deleted_files().len(), 8);
    assert_eq!(deleted_files(dir.path()).len(), 8);
    assert!(matches!(
        log.delete_expired_files(NOW),
        Err(StorageError::Io { .. })
    ));
    let info = log.append(&mut big(NOW), 0, NOW).unwrap();
    assert_eq!(info.base_offset, 11);
    check_reads(&log, &batches[6..]);
    fb.set_faults(Faults::default());
    assert_eq!(log.delete_expired_files(NOW).unwrap(), 8);
    assert!(deleted_files(dir.path()).is_empty());
    // The stale snapshots are retried by the next open (or truncation).
    log.close().unwrap();
    let log = open_at(dir.path(), config(), &b, 6, true);
    assert!(snapshot_offsets(dir.path()).iter().all(|&o| o > 6));
    check_reads(&log, &batches[6..]);
}

#[test]
fn failed_epoch_checkpoint_takes_the_log_offline() {
    let (fb, b) = faulty();
    let dir = tempfile::tempdir().unwrap();
    let mut log = open_at(dir.path(), config(), &b, 0, false);
    let batches = fill_to(&mut log, 11, 4);
    fb.set_faults(Faults {
        fail_sync: true,
        ..Default::default()
    });
    assert!(log.delete_records(7, 11, NOW).is_err());
    assert!(matches!(
        log.delete_records(8, 11, NOW),
        Err(StorageError::Failed(_))
    ));
    drop(log);
    fb.set_faults(Faults::default());
    let log = open_at(dir.path(), config(), &b, 0, false);
    assert_eq!(log.log_start_offset(), 0);
    check_reads(&log, &batches);
}

fn crash_after_everything_expired(b: Arc<dyn Backend>) {
    // The roll that precedes deleting every segment leaves a fresh empty segment at the log end;
    // a crash before anything is unlinked or checkpointed reopens as that empty log.
    let dir = tempfile::tempdir().unwrap();
    let mut log = open_at(dir.path(), time_retention(0), &b, 0, false);
    fill_to(&mut log, 5, 0);
    let r = log.delete_old_segments(NOW, 5).unwrap();
    assert!(r.rolled);
    drop(log);
    for (start, clean) in [(0, false), (5, false), (0, true)] {
        let mut log = open_at(dir.path(), config(), &b, start, clean);
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (5, 5));
        assert!(deleted_files(dir.path()).is_empty());
        let info = log.append(&mut big(NOW), 0, NOW).unwrap();
        assert_eq!(info.base_offset, 5);
        log.truncate_to(5, NOW).unwrap();
        drop(log);
    }
}
