//! The shared suite, run against the real `FileBackend` and a `FaultyBackend` with no faults
//! configured (and one with short writes, which correct callers never notice).
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::sync::Arc;

use common::*;
use rafka_records::{BatchBuilder, TimestampType};
use rafka_storage::{Backend, EpochEntry, Log, LogConfig, StorageError};

backend_suite!(
    [file_backend, faulty_backend_no_faults, faulty_backend_short_writes]
    append_read_round_trip,
    many_appends_across_rolls,
    max_bytes_and_kip74,
    read_cut_short_holds_only_its_batches,
    high_watermark_is_exclusive,
    offset_out_of_range,
    reopen_after_clean_close,
    time_index_lookups,
    max_timestamp_lookup,
    segment_ms_roll_by_batch_timestamp,
    segment_ms_roll_by_now_without_timestamps,
    leader_epoch_cache,
    truncating_at_the_log_end_drops_an_empty_epoch,
    append_stamped_checks_offsets,
    truncate_to_active_and_sealed,
    truncate_fully,
    flush_messages_advances_recovery_point,
    log_append_time_reported,
    index_files_preallocated_then_trimmed,
    partition_metadata_round_trip,
    delete_removes_dir_but_keeps_reads_alive,
);

fn append_read_round_trip(b: Arc<dyn Backend>) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default(), b, false);
    assert_eq!(log.log_end_offset(), 0);
    let mut sent = Vec::new();
    for n in [1usize, 3, 7] {
        let mut bt = batch(n, 1000, 20);
        let info = log.append(&mut bt, 5, NOW).unwrap();
        assert_eq!(info.last_offset - info.base_offset + 1, n as i64);
        sent.extend_from_slice(&bt);
    }
    assert_eq!(log.log_end_offset(), 11);
    let r = log.read(0, 1 << 20, i64::MAX, false).unwrap();
    // The stored bytes are exactly the (stamped) bytes we appended.
    assert_eq!(&r.records[..], &sent[..]);
    assert_eq!(
        parse_all(&r.records)
            .iter()
            .map(|x| (x.0, x.1))
            .collect::<Vec<_>>(),
        vec![(0, 0), (1, 3), (4, 10)]
    );
    for v in rafka_records::batches(&r.records) {
        let v = v.unwrap();
        assert_eq!(v.header().partition_leader_epoch, 5);
        v.verify_crc().unwrap();
    }
    assert_eq!(r.next_offset, 11);
    // Several batches in one append: one write, consecutive offsets.
    let mut two = batch(2, 5, 10);
    two.extend_from_slice(&batch(4, 6, 10));
    let info = log.append(&mut two, 5, NOW).unwrap();
    assert_eq!((info.base_offset, info.last_offset), (11, 16));
    assert_eq!(info.max_timestamp, 9);
    assert_eq!(info.offset_of_max_timestamp, 16);
    check_reads(&log, &[(0, 0), (1, 3), (4, 10), (11, 12), (13, 16)]);
    // Empty append is a no-op.
    let info = log.append(&mut [], 5, NOW).unwrap();
    assert_eq!(info.bytes, 0);
    assert_eq!(log.log_end_offset(), 17);
    // Garbage is refused without touching the log.
    let mut junk = vec![0u8; 100];
    assert!(matches!(
        log.append(&mut junk, 5, NOW),
        Err(StorageError::InvalidBatch(_))
    ));
    let mut cut = batch(2, 0, 10);
    cut.pop();
    assert!(matches!(
        log.append(&mut cut, 5, NOW),
        Err(StorageError::InvalidBatch(_))
    ));
    assert_eq!(log.log_end_offset(), 17);
}

fn many_appends_across_rolls(b: Arc<dyn Backend>) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), b.clone(), false);
    let expected = fill(&mut log, 300, 1000);
    assert!(
        log.segment_count() > 5,
        "only {} segments",
        log.segment_count()
    );
    for p in segment_files(dir.path(), ".log") {
        let len = std::fs::metadata(&p).unwrap().len();
        // A segment exceeds segment_bytes only if one append alone is larger.
        assert!(len <= 4096, "{} is {len} bytes", p.display());
    }
    check_reads(&log, &expected);
    // A read never spans segments and returns whole batches up to max_bytes.
    let r = log.read(0, 1 << 20, i64::MAX, false).unwrap();
    assert!(r.records.len() <= 4096);
    log.close().unwrap();
    let log = open(dir.path(), small_config(), b, true);
    assert_eq!(log.log_end_offset(), expected.last().unwrap().1 + 1);
    check_reads(&log, &expected);
}

fn max_bytes_and_kip74(b: Arc<dyn Backend>) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default(), b, false);
    let mut sizes = Vec::new();
    for _ in 0..5 {
        let mut bt = batch(1, 0, 1000);
        sizes.push(bt.len());
        log.append(&mut bt, 0, NOW).unwrap();
    }
    let one = sizes[0];
    let r = log.read(0, 2 * one + one / 2, i64::MAX, false).unwrap();
    assert_eq!(r.records.len(), 2 * one);
    assert_eq!(r.next_offset, 2);
    let r = log.read(1, 2 * one, i64::MAX, false).unwrap();
    assert_eq!(parse_all(&r.records).len(), 2);
    // First batch larger than max_bytes: whole with min_one_batch (KIP-74), nothing without.
    let r = log.read(2, 10, i64::MAX, true).unwrap();
    assert_eq!(r.records.len(), one);
    assert_eq!(r.next_offset, 3);
    let r = log.read(2, 10, i64::MAX, false).unwrap();
    assert!(r.records.is_empty());
    assert_eq!(r.next_offset, 2);
    let r = log.read(0, 0, i64::MAX, true).unwrap();
    assert_eq!(r.records.len(), one);
}

/// The connection bounds unsent answers by their length, so an answer cut short must not hold
/// the whole read behind it: a small batch followed by one that does not fit the budget.
fn read_cut_short_holds_only_its_batches(b: Arc<dyn Backend>) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default(), b, false);
    let mut small = batch(1, 0, 100);
    let small_len = small.len();
    log.append(&mut small, 0, NOW).unwrap();
    let mut big = batch(100, 0, 1000);
    let big_len = big.len();
    log.append(&mut big, 0, NOW).unwrap();
    // The active segment is read `big_len` deep; the answer is the small batch alone.
    let r = log.read(0, big_len, i64::MAX, false).unwrap();
    assert_eq!((r.records.len(), r.next_offset), (small_len, 1));
    // The answer is now its buffer's only owner, so the conversion keeps that buffer and its
    // capacity shows what the answer kept alive (a slice of the whole read reports `big_len`).
    assert!(Vec::<u8>::from(r.records).capacity() <= 2 * small_len);
    let r = log.read(0, small_len + big_len, i64::MAX, false).unwrap();
    assert_eq!((r.records.len(), r.next_offset), (small_len + big_len, 101));
}

fn high_watermark_is_exclusive(b: Arc<dyn Backend>) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default(), b, false);
    for _ in 0..4 {
        log.append(&mut batch(2, 0, 10), 0, NOW).unwrap(); // offsets 0-1, 2-3, 4-5, 6-7
    }
    let r = log.read(0, 1 << 20, 4, false).unwrap();
    assert_eq!(parse_all(&r.records).len(), 2);
    assert_eq!(r.next_offset, 4);
    // A batch that contains the high watermark is not returned.
    let r = log.read(0, 1 << 20, 5, false).unwrap();
    assert_eq!(r.next_offset, 4);
    let r = log.read(4, 1 << 20, 4, true).unwrap();
    assert!(r.records.is_empty());
    let r = log.read(4, 1 << 20, 5, true).unwrap();
    assert!(r.records.is_empty());
}

fn offset_out_of_range(b: Arc<dyn Backend>) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default(), b, false);
    log.append(&mut batch(3, 0, 10), 0, NOW).unwrap();
    let r = log.read(3, 100, i64::MAX, true).unwrap();
    assert!(r.records.is_empty());
    assert_eq!((r.log_start_offset, r.log_end_offset), (0, 3));
    match log.read(4, 100, i64::MAX, true) {
        Err(StorageError::OffsetOutOfRange {
            requested: 4,
            log_start: 0,
            log_end: 3,
        }) => {}
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        log.read(-1, 100, i64::MAX, true),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    log.truncate_fully_and_start_at(100, NOW).unwrap();
    assert!(matches!(
        log.read(50, 100, i64::MAX, true),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    assert!(log
        .read(100, 100, i64::MAX, true)
        .unwrap()
        .records
        .is_empty());
}

fn reopen_after_clean_close(b: Arc<dyn Backend>) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), b.clone(), false);
    let expected = fill(&mut log, 60, 0);
    let end = log.log_end_offset();
    let segs = log.segment_count();
    log.close().unwrap();
    let mtimes: Vec<_> = segment_files(dir.path(), ".log")
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .collect();
    let mut log = open(dir.path(), small_config(), b.clone(), true);
    assert_eq!(log.log_end_offset(), end);
    assert_eq!(log.segment_count(), segs);
    assert_eq!(log.recovery_point(), 0); // we passed 0; the broker passes its checkpoint
    check_reads(&log, &expected);
    let info = log.append(&mut batch(2, 0, 10), 3, NOW).unwrap();
    assert_eq!(info.base_offset, end);
    log.close().unwrap();
    // Clean reopen did not rewrite any sealed segment.
    let after: Vec<_> = segment_files(dir.path(), ".log")
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .collect();
    assert_eq!(&after[..mtimes.len() - 1], &mtimes[..mtimes.len() - 1]);
    let log = open(dir.path(), small_config(), b, true);
    assert_eq!(log.log_end_offset(), end + 2);
}

fn time_index_lookups(b: Arc<dyn Backend>) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), b.clone(), false);
    // Timestamps mostly increase, with a few going backwards, across several segments.
    let mut records: Vec<(i64, i64)> = Vec::new(); // (offset, ts)
    for i in 0..200i64 {
        let ts = 10_000 + i * 100 - if i % 7 == 0 { 450 } else { 0 };
        let n = 1 + (i % 3) as usize;
        let mut bt = BatchBuilder::new(0);
        for r in 0..n {
            bt = bt.record(None, Some(&[1u8; 40]), &[], ts + r as i64 * 10);
        }
        let info = log.append(&mut bt.build(), 1, NOW).unwrap();
        for r in 0..n {
            records.push((info.base_offset + r as i64, ts + r as i64 * 10));
        }
    }
    let check = |log: &rafka_storage::Log| {
        for target in (9_000..31_000).step_by(37) {
            let expect = records.iter().find(|&&(_, t)| t >= target).copied();
            let got = log.fetch_offset_by_timestamp(target).unwrap();
            match (expect, got) {
                (None, None) => {}
                (Some((o, t)), Some(g)) => {
                    assert_eq!((g.offset, g.timestamp), (o, t), "target {target}");
                    assert_eq!(g.leader_epoch, Some(1));
                }
                (e, g) => panic!("target {target}: expected {e:?}, got {g:?}"),
            }
        }
    };
    check(&log);
    log.close().unwrap();
    let log = open(dir.path(), small_config(), b, true);
    check(&log);
}

fn max_timestamp_lookup(b: Arc<dyn Backend>) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), b, false);
    assert_eq!(log.max_timestamp().unwrap(), None);
    for i in 0..50i64 {
        let mut bt = BatchBuilder::new(0);
        // The max (99_999) sits in the middle record of batch 20.
        for r in 0..3i64 {
            let ts = if i == 20 && r == 1 { 99_999 } else { 1000 + i };
            bt = bt.record(None, Some(&[0u8; 100]), &[], ts);
        }
        log.append(&mut bt.build(), 0, NOW).unwrap();
    }
    let m = log.max_timestamp().unwrap().unwrap();
    assert_eq!((m.timestamp, m.offset), (99_999, 61));
    // Compressed batches are opaque: the answer is the batch's base offset.
    let mut c = BatchBuilder::new(0)
        .compression_bits(rafka_records::Compression::Lz4)
        .record(None, Some(b"a"), &[], 200_000)
        .record(None, Some(b"b"), &[], 200_001)
        .build();
    rafka_records::update_crc(&mut c).unwrap();
    let info = log.append(&mut c, 0, NOW).unwrap();
    let m = log.max_timestamp().unwrap().unwrap();
    assert_eq!((m.timestamp, m.offset), (200_001, info.base_offset));
    let t = log.fetch_offset_by_timestamp(200_001).unwrap().unwrap();
    assert_eq!(t.offset, info.base_offset);
}

/// A log that rolls once its first batch is `segment.ms` = 1000 old.
fn open_segment_ms_1000(dir: &Path, b: Arc<dyn Backend>) -> Log {
    let config = LogConfig {
        segment_ms: 1000,
        ..LogConfig::default()
    };
    open(dir, config, b, false)
}

fn segment_ms_roll_by_batch_timestamp(b: Arc<dyn Backend>) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open_segment_ms_1000(dir.path(), b);
    log.append(&mut batch(1, 5_000, 10), 0, NOW).unwrap();
    log.append(&mut batch(1, 5_900, 10), 0, NOW + 10_000_000)
        .unwrap();
    assert_eq!(
        log.segment_count(),
        1,
        "the clock does not matter when batches have timestamps"
    );
    log.append(&mut batch(1, 6_001, 10), 0, NOW).unwrap();
    assert_eq!(log.segment_count(), 2);
    let r = log.read(2, 1000, i64::MAX, true).unwrap();
    assert_eq!(parse_all(&r.records)[0].0, 2);
    assert!(dir.path().join("00000000000000000002.log").exists());
}

fn segment_ms_roll_by_now_without_timestamps(b: Arc<dyn Backend>) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open_segment_ms_1000(dir.path(), b);
    log.append(&mut batch(1, -1, 10), 0, NOW).unwrap();
    log.append(&mut batch(1, -1, 10), 0, NOW + 1000).unwrap();
    assert_eq!(log.segment_count(), 1);
    log.append(&mut batch(1, -1, 10), 0, NOW + 1001).unwrap();
    assert_eq!(log.segment_count(), 2);
}

fn leader_epoch_cache(b: Arc<dyn Backend>) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), b.clone(), false);
    log.append(&mut batch(2, 0, 10), 1, NOW).unwrap();
    log.append(&mut batch(2, 0, 10), 1, NOW).unwrap();
    log.append(&mut batch(3, 0, 10), 4, NOW).unwrap();
    log.append(&mut batch(1, 0, 10), 2, NOW).unwrap(); // older epoch: cache unchanged
    let want = [
        EpochEntry {
            epoch: 1,
            start_offset: 0,
        },
        EpochEntry {
            epoch: 4,
            start_offset: 4,
        },
    ];
    assert_eq!(log.leader_epoch_entries(), &want[..]);
    let text = std::fs::read_to_string(dir.path().join("leader-epoch-checkpoint")).unwrap();
    assert_eq!(text, "0\n2\n1 0\n4 4\n");
    log.close().unwrap();
    let mut log = open(dir.path(), small_config(), b, true);
    assert_eq!(log.leader_epoch_entries(), &want[..]);
    // Truncation below an epoch's start drops it.
    log.truncate_to(4, NOW).unwrap();
    assert_eq!(log.leader_epoch_entries(), &want[..1]);
    let text = std::fs::read_to_string(dir.path().join("leader-epoch-checkpoint")).unwrap();
    assert_eq!(text, "0\n1\n1 0\n");
}

/// A replica elected leader (its epoch starts at its log end) and deposed before it wrote
/// anything keeps an epoch entry no batch has. As a follower it fetches with that epoch, the
/// new leader answers with the older epoch ending at this very log end, and the truncation to
/// it must drop the empty entry (Kafka's `truncateTo` always truncates the epoch cache):
/// otherwise the next fetch names the same epoch, gets the same answer, and the follower never
/// fetches again (found by the replication simulation with lagging images).
fn truncating_at_the_log_end_drops_an_empty_epoch(b: Arc<dyn Backend>) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), b.clone(), false);
    log.append(&mut batch(2, 0, 10), 6, NOW).unwrap();
    log.assign_leader_epoch_start(7).unwrap();
    assert_eq!(log.latest_epoch(), Some(7));
    let end = log.log_end_offset();
    log.truncate_to(end, NOW).unwrap();
    assert_eq!(log.log_end_offset(), end);
    assert_eq!(log.latest_epoch(), Some(6));
    log.close().unwrap();
    let log = open(dir.path(), small_config(), b, true);
    assert_eq!(
        log.latest_epoch(),
        Some(6),
        "the checkpoint lost the entry too"
    );
}

fn append_stamped_checks_offsets(b: Arc<dyn Backend>) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), b, false);
    let mk = |base: i64, n: usize, epoch: i32| {
        let mut bt = BatchBuilder::new(base).partition_leader_epoch(epoch);
        for _ in 0..n {
            bt = bt.record(None, Some(b"v"), &[], 7);
        }
        bt.build()
    };
    log.append_stamped(&mk(0, 3, 2), NOW).unwrap();
    let mut two = mk(3, 1, 2);
    two.extend_from_slice(&mk(10, 2, 3)); // a gap, as compaction leaves
    let info = log.append_stamped(&two, NOW).unwrap();
    assert_eq!((info.base_offset, info.last_offset), (3, 11));
    assert_eq!(log.log_end_offset(), 12);
    assert_eq!(
        log.leader_epoch_entries(),
        &[
            EpochEntry {
                epoch: 2,
                start_offset: 0
            },
            EpochEntry {
                epoch: 3,
                start_offset: 10
            }
        ]
    );
    assert!(matches!(
        log.append_stamped(&mk(11, 1, 3), NOW),
        Err(StorageError::NonMonotonicOffset {
            first_offset: 11,
            expected: 12
        })
    ));
    let mut bad = mk(20, 2, 3);
    bad.extend_from_slice(&mk(21, 1, 3));
    assert!(matches!(
        log.append_stamped(&bad, NOW),
        Err(StorageError::NonMonotonicOffset { .. })
    ));
    assert_eq!(log.log_end_offset(), 12);
    // Offsets in the gap read as the next batch.
    let r = log.read(5, 1000, i64::MAX, true).unwrap();
    assert_eq!(parse_all(&r.records)[0].0, 10);
}

fn truncate_to_active_and_sealed(b: Arc<dyn Backend>) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), b.clone(), false);
    let expected = fill(&mut log, 120, 0);
    // Into the middle of a batch in the active segment: the whole batch goes.
    let (base, last) = expected[expected.len() - 2];
    let mid = if last > base { base + 1 } else { base };
    log.truncate_to(mid, NOW).unwrap();
    assert_eq!(log.log_end_offset(), base);
    // Take a read of a sealed segment, then truncate into that segment: the old bytes stay valid.
    let (b2, _) = expected[10];
    let held = log.read(0, 1 << 20, i64::MAX, true).unwrap();
    let held_copy = held.records.to_vec();
    log.truncate_to(b2, NOW).unwrap();
    assert_eq!(log.log_end_offset(), b2);
    assert_eq!(&held.records[..], &held_copy[..]);
    check_reads(&log, &expected[..10]);
    assert!(matches!(
        log.read(b2 + 1, 10, i64::MAX, true),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    let info = log.append(&mut batch(2, 0, 10), 3, NOW).unwrap();
    assert_eq!(info.base_offset, b2);
    let mut exp: Vec<_> = expected[..10].to_vec();
    exp.push((b2, b2 + 1));
    let more = fill(&mut log, 50, 0);
    exp.extend(more);
    check_reads(&log, &exp);
    log.close().unwrap();
    let log = open(dir.path(), small_config(), b.clone(), true);
    check_reads(&log, &exp);
    drop(log);
    let log = open(dir.path(), small_config(), b, false);
    check_reads(&log, &exp);
}

fn truncate_fully(b: Arc<dyn Backend>) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), small_config(), b.clone(), false);
    fill(&mut log, 100, 0);
    log.truncate_fully_and_start_at(1000, NOW).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (1000, 1000));
    assert_eq!(log.segment_count(), 1);
    assert_eq!(segment_files(dir.path(), ".log").len(), 1);
    let info = log.append(&mut batch(1, 0, 10), 0, NOW).unwrap();
    assert_eq!(info.base_offset, 1000);
    log.close().unwrap();
    let log = open_with(dir.path(), small_config(), b, 1000, 1000, true);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (1000, 1001));
}

fn flush_messages_advances_recovery_point(b: Arc<dyn Backend>) {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        flush_messages: 5,
        ..LogConfig::default()
    };
    let mut log = open(dir.path(), config, b.clone(), false);
    log.append(&mut batch(3, 0, 10), 0, NOW).unwrap();
    assert_eq!(log.recovery_point(), 0);
    log.append(&mut batch(3, 0, 10), 0, NOW).unwrap();
    assert_eq!(log.recovery_point(), 6);
    let dir2 = tempfile::tempdir().unwrap();
    let config = LogConfig {
        flush_ms: 1000,
        ..LogConfig::default()
    };
    let mut log = open(dir2.path(), config, b, false);
    log.append(&mut batch(1, 0, 10), 0, NOW + 999).unwrap();
    assert_eq!(log.recovery_point(), 0);
    log.append(&mut batch(1, 0, 10), 0, NOW + 1000).unwrap();
    assert_eq!(log.recovery_point(), 2);
    log.append(&mut batch(1, 0, 10), 0, NOW + 1500).unwrap();
    log.maybe_flush(NOW + 1999).unwrap();
    assert_eq!(log.recovery_point(), 2);
    log.maybe_flush(NOW + 2000).unwrap();
    assert_eq!(log.recovery_point(), 3);
}

fn log_append_time_reported(b: Arc<dyn Backend>) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default(), b, false);
    let mut bt = BatchBuilder::new(0)
        .timestamp_type(TimestampType::LogAppendTime)
        .record(None, Some(b"v"), &[], 5)
        .build();
    rafka_records::set_log_append_time(&mut bt, 123_456).unwrap();
    let info = log.append(&mut bt, 0, NOW).unwrap();
    assert_eq!(info.log_append_time_ms, Some(123_456));
    let info = log.append(&mut batch(1, 5, 1), 0, NOW).unwrap();
    assert_eq!(info.log_append_time_ms, None);
    // Records of a LogAppendTime batch carry the batch timestamp.
    let t = log.fetch_offset_by_timestamp(100_000).unwrap().unwrap();
    assert_eq!((t.offset, t.timestamp), (0, 123_456));
}

fn index_files_preallocated_then_trimmed(b: Arc<dyn Backend>) {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        index_interval_bytes: 100,
        segment_bytes: 1 << 20,
        ..LogConfig::default()
    };
    let mut log = open(dir.path(), config.clone(), b.clone(), false);
    let idx = dir.path().join("00000000000000000000.index");
    let tidx = dir.path().join("00000000000000000000.timeindex");
    assert_eq!(std::fs::metadata(&idx).unwrap().len(), 10 << 20);
    assert_eq!(
        std::fs::metadata(&tidx).unwrap().len(),
        (10 << 20) / 12 * 12
    );
    for i in 0..20 {
        log.append(&mut batch(2, i * 10, 100), 0, NOW).unwrap();
    }
    log.close().unwrap();
    let ilen = std::fs::metadata(&idx).unwrap().len();
    assert!(ilen > 0 && ilen < 20 * 8, "{ilen}");
    assert_eq!(ilen % 8, 0);
    let raw = std::fs::read(&idx).unwrap();
    // Entries: relative offset, position; the first entry is past position 0.
    let pos0 = u32::from_be_bytes(raw[4..8].try_into().unwrap());
    assert!(pos0 > 100);
    let tlen = std::fs::metadata(&tidx).unwrap().len();
    assert!(tlen > 0);
    assert_eq!(tlen % 12, 0);
    let traw = std::fs::read(&tidx).unwrap();
    let n = traw.len();
    let last_ts = i64::from_be_bytes(traw[n - 12..n - 4].try_into().unwrap());
    let last_rel = u32::from_be_bytes(traw[n - 4..].try_into().unwrap());
    assert_eq!((last_ts, last_rel), (191, 39));
}

fn partition_metadata_round_trip(b: Arc<dyn Backend>) {
    let dir = tempfile::tempdir().unwrap();
    let log = open(dir.path(), LogConfig::default(), b, false);
    assert_eq!(log.read_partition_metadata().unwrap(), None);
    let id = [0u8, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15];
    log.write_partition_metadata(&id).unwrap();
    assert_eq!(log.read_partition_metadata().unwrap(), Some(id));
    let text = std::fs::read_to_string(dir.path().join("partition.metadata")).unwrap();
    assert_eq!(text, "version: 0\ntopic_id: AAECAwQFBgcICQoLDA0ODw\n");
}

fn delete_removes_dir_but_keeps_reads_alive(b: Arc<dyn Backend>) {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("t-0");
    let mut log = open(&dir, small_config(), b, false);
    fill(&mut log, 100, 0);
    let held = log.read(0, 1 << 20, i64::MAX, true).unwrap();
    let copy = held.records.to_vec();
    log.delete().unwrap();
    assert!(!dir.exists());
    assert_eq!(&held.records[..], &copy[..]);
}

// ---- tests that need a specific backend ----

#[test]
fn short_writes_are_completed() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(
        dir.path(),
        LogConfig::default(),
        faulty_backend_short_writes(),
        false,
    );
    let mut bt = batch(10, 0, 1000);
    log.append(&mut bt, 0, NOW).unwrap();
    let r = log.read(0, 1 << 20, i64::MAX, true).unwrap();
    assert_eq!(&r.records[..], &bt[..]);
}

#[test]
fn log_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<rafka_storage::Log>();
    assert_send_sync::<rafka_storage::LogDir>();
}
