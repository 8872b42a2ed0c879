//! Crash images and injected faults: after each, the log must hold exactly a prefix of what was
//! appended, with every acknowledged-and-flushed batch present, and keep appending correctly.
//! The tests at the end crash a `FaultyBackend` for real (`FaultyBackend::crash`: everything not
//! fsynced is lost), so a flush that forgot an fsync fails them.
#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::*;
use rafka_storage::{Backend, Faults, FaultyBackend, Log, LogConfig, StorageError, StorageFile};

fn last_log(dir: &Path) -> PathBuf {
    segment_files(dir, ".log").pop().unwrap()
}

/// A log of several segments, dropped without close (a crash: indexes untrimmed, tails unwritten).
fn crashed_template(dir: &Path) -> Vec<(i64, i64)> {
    let mut log = open(dir, small_config(), file_backend(), false);
    let expected = fill(&mut log, 40, 0);
    assert!(log.segment_count() >= 3);
    drop(log);
    expected
}

/// After recovery: the log ends right after `good` (whole batches), every good batch reads back,
/// and the next append continues at the right offset.
fn assert_recovered(dir: &Path, good: &[(i64, i64)], recovery_point: i64) {
    let mut log = open_with(
        dir,
        small_config(),
        file_backend(),
        recovery_point,
        0,
        false,
    );
    let end = good.last().map_or(0, |b| b.1 + 1);
    assert_eq!(log.log_end_offset(), end);
    check_reads(&log, good);
    assert!(matches!(
        log.read(end + 1, 100, i64::MAX, true),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    let info = log.append(&mut batch(2, 0, 10), 9, NOW).unwrap();
    assert_eq!(info.base_offset, end);
    log.close().unwrap();
    let log = open(dir, small_config(), file_backend(), true);
    assert_eq!(log.log_end_offset(), end + 2);
    let mut all = good.to_vec();
    all.push((end, end + 1));
    check_reads(&log, &all);
}

/// Batches of `expected` that lie entirely in the first `cut` bytes of the last segment.
fn good_after_cut(template: &Path, expected: &[(i64, i64)], cut: usize) -> Vec<(i64, i64)> {
    let bytes = fs::read(last_log(template)).unwrap();
    let mut pos = 0;
    let mut last_good = None;
    for (_, last, len) in parse_all(&bytes) {
        if pos + len <= cut {
            last_good = Some(last);
        }
        pos += len;
    }
    let first_in_last = parse_all(&bytes)[0].0;
    expected
        .iter()
        .copied()
        .filter(|&(_, l)| l < first_in_last || last_good.is_some_and(|g| l <= g))
        .collect()
}

#[test]
fn segment_cut_mid_batch_at_many_points() {
    let template = tempfile::tempdir().unwrap();
    let expected = crashed_template(template.path());
    let len = fs::metadata(last_log(template.path())).unwrap().len() as usize;
    let last_base = parse_all(&fs::read(last_log(template.path())).unwrap())[0].0;
    let mut cuts: Vec<usize> = (0..len).step_by(11).collect();
    cuts.extend([1, 12, 60, 61, 62, len - 1]);
    for cut in cuts {
        for rp in [0, last_base] {
            let work = tempfile::tempdir().unwrap();
            copy_dir(template.path(), work.path());
            let f = fs::OpenOptions::new()
                .write(true)
                .open(last_log(work.path()))
                .unwrap();
            f.set_len(cut as u64).unwrap();
            let good = good_after_cut(template.path(), &expected, cut);
            assert_recovered(work.path(), &good, rp);
        }
    }
}

#[test]
fn garbage_after_last_batch() {
    for garbage in [
        vec![0u8; 4096],
        vec![0xAB; 100],
        batch(3, 0, 10)[..70].to_vec(),
    ] {
        let work = tempfile::tempdir().unwrap();
        let expected = crashed_template(work.path());
        let mut data = fs::read(last_log(work.path())).unwrap();
        data.extend_from_slice(&garbage);
        fs::write(last_log(work.path()), data).unwrap();
        assert_recovered(work.path(), &expected, 0);
    }
}

fn corrupt_byte(path: &Path, at: usize) {
    let mut data = fs::read(path).unwrap();
    data[at] ^= 0x5A;
    fs::write(path, data).unwrap();
}

#[test]
fn corrupt_byte_in_last_batch() {
    let work = tempfile::tempdir().unwrap();
    let expected = crashed_template(work.path());
    let bytes = fs::read(last_log(work.path())).unwrap();
    let batches = parse_all(&bytes);
    let last_len = batches.last().unwrap().2;
    // A byte inside the CRC'd range of the last batch.
    corrupt_byte(&last_log(work.path()), bytes.len() - last_len + 40);
    assert_recovered(work.path(), &expected[..expected.len() - 1], 0);
}

#[test]
fn corrupt_byte_in_middle_batch_of_sealed_segment() {
    let work = tempfile::tempdir().unwrap();
    let expected = crashed_template(work.path());
    let segs = segment_files(work.path(), ".log");
    let second = &segs[1];
    let bytes = fs::read(second).unwrap();
    let batches = parse_all(&bytes);
    assert!(batches.len() >= 3);
    // Corrupt the third batch of the second segment: it and everything after it goes.
    let at: usize = batches[..2].iter().map(|b| b.2).sum::<usize>() + 30;
    corrupt_byte(second, at);
    let bad_base = batches[2].0;
    let good: Vec<_> = expected
        .iter()
        .copied()
        .filter(|b| b.0 < bad_base)
        .collect();
    assert_recovered(work.path(), &good, 0);
    // The corrupt segment became the active one; the later segments are gone.
    assert_eq!(segment_files(work.path(), ".log").len(), 2);
}

#[test]
fn corruption_before_recovery_point_is_trusted_like_kafka() {
    // Kafka only rescans from the recovery point; earlier segments are trusted. Their indexes are
    // still checked.
    let work = tempfile::tempdir().unwrap();
    let expected = crashed_template(work.path());
    let segs = segment_files(work.path(), ".log");
    let third_base = parse_all(&fs::read(&segs[2]).unwrap())[0].0;
    let log = open_with(
        work.path(),
        small_config(),
        file_backend(),
        third_base,
        0,
        false,
    );
    assert_eq!(log.log_end_offset(), expected.last().unwrap().1 + 1);
}

fn close_cleanly(dir: &Path, config: LogConfig) -> Vec<(i64, i64)> {
    let mut log = open(dir, config, file_backend(), false);
    let expected = fill(&mut log, 60, 1000);
    log.close().unwrap();
    expected
}

fn reopen_clean_and_check(dir: &Path, expected: &[(i64, i64)]) {
    let log = open(dir, small_config(), file_backend(), true);
    assert_eq!(log.log_end_offset(), expected.last().unwrap().1 + 1);
    check_reads(&log, expected);
    // Timestamp lookups go through the time index.
    for (i, &(base, _)) in expected.iter().enumerate() {
        let t = log
            .fetch_offset_by_timestamp(1000 + i as i64 * 10)
            .unwrap()
            .unwrap();
        assert_eq!(t.offset, base, "batch {i}");
    }
    log.close().unwrap();
    // Every index is well-formed again and names real batch starts.
    for p in segment_files(dir, ".index") {
        let raw = fs::read(&p).unwrap();
        assert_eq!(raw.len() % 8, 0);
        let base: i64 = p.file_stem().unwrap().to_str().unwrap().parse().unwrap();
        let log_bytes = fs::read(p.with_extension("log")).unwrap();
        let mut starts = std::collections::HashMap::new();
        let mut pos = 0;
        for (_, last, len) in parse_all(&log_bytes) {
            starts.insert(pos as u32, last);
            pos += len;
        }
        let mut prev = None;
        for e in raw.chunks_exact(8) {
            let rel = u32::from_be_bytes(e[0..4].try_into().unwrap());
            let at = u32::from_be_bytes(e[4..8].try_into().unwrap());
            assert_eq!(
                starts.get(&at),
                Some(&(base + i64::from(rel))),
                "{}",
                p.display()
            );
            assert!(prev < Some(rel));
            prev = Some(rel);
        }
    }
    for p in segment_files(dir, ".timeindex") {
        assert_eq!(fs::metadata(&p).unwrap().len() % 12, 0);
    }
}

#[test]
fn index_deleted_is_rebuilt() {
    let work = tempfile::tempdir().unwrap();
    let expected = close_cleanly(work.path(), small_config());
    let idx = segment_files(work.path(), ".index");
    fs::remove_file(&idx[1]).unwrap();
    fs::remove_file(idx.last().unwrap()).unwrap();
    reopen_clean_and_check(work.path(), &expected);
    assert!(idx[1].exists());
    assert!(fs::metadata(&idx[1]).unwrap().len() > 0);
}

#[test]
fn index_truncated_to_odd_length_is_rebuilt() {
    let work = tempfile::tempdir().unwrap();
    let expected = close_cleanly(work.path(), small_config());
    for p in segment_files(work.path(), ".index") {
        let len = fs::metadata(&p).unwrap().len();
        if len >= 8 {
            fs::OpenOptions::new()
                .write(true)
                .open(&p)
                .unwrap()
                .set_len(len - 3)
                .unwrap();
        }
    }
    reopen_clean_and_check(work.path(), &expected);
}

#[test]
fn index_pointing_past_log_or_out_of_order_is_rebuilt() {
    let work = tempfile::tempdir().unwrap();
    let expected = close_cleanly(work.path(), small_config());
    let idx = segment_files(work.path(), ".index");
    // Entry pointing past the log.
    let mut raw = fs::read(&idx[0]).unwrap();
    assert!(raw.len() >= 16);
    raw[4..8].copy_from_slice(&u32::MAX.to_be_bytes());
    fs::write(&idx[0], &raw).unwrap();
    // Entries out of order.
    let mut raw = fs::read(&idx[1]).unwrap();
    let (a, b) = raw.split_at_mut(8);
    a.swap_with_slice(&mut b[..8]);
    fs::write(&idx[1], &raw).unwrap();
    // Last entry naming the wrong batch in the active segment.
    let p = idx.last().unwrap();
    let mut raw = fs::read(p).unwrap();
    if raw.len() >= 8 {
        let rel = u32::from_be_bytes(raw[0..4].try_into().unwrap());
        raw[0..4].copy_from_slice(&(rel + 1).to_be_bytes());
        fs::write(p, &raw).unwrap();
    }
    reopen_clean_and_check(work.path(), &expected);
}

#[test]
fn timeindex_deleted_is_rebuilt() {
    let work = tempfile::tempdir().unwrap();
    let expected = close_cleanly(work.path(), small_config());
    for p in segment_files(work.path(), ".timeindex") {
        fs::remove_file(p).unwrap();
    }
    reopen_clean_and_check(work.path(), &expected);
}

#[test]
fn segment_deleted_in_the_middle_leaves_a_gap() {
    let work = tempfile::tempdir().unwrap();
    let expected = close_cleanly(work.path(), small_config());
    let segs = segment_files(work.path(), ".log");
    fs::remove_file(&segs[1]).unwrap();
    let next_base = parse_all(&fs::read(&segs[2]).unwrap())[0].0;
    let missing_first = parse_all(&fs::read(&segs[0]).unwrap()).last().unwrap().1 + 1;
    for clean in [true, false] {
        let log = open(work.path(), small_config(), file_backend(), clean);
        assert_eq!(log.log_end_offset(), expected.last().unwrap().1 + 1);
        // Offsets of the lost segment read as the next batch that exists.
        let r = log.read(missing_first, 1 << 20, i64::MAX, true).unwrap();
        assert_eq!(parse_all(&r.records)[0].0, next_base);
        drop(log);
    }
}

#[test]
fn leftover_temp_files_are_removed() {
    let work = tempfile::tempdir().unwrap();
    let expected = close_cleanly(work.path(), small_config());
    fs::write(work.path().join("leader-epoch-checkpoint.tmp"), b"junk").unwrap();
    fs::write(
        work.path().join("00000000000000000000.log.rafka-tmp"),
        b"junk",
    )
    .unwrap();
    fs::write(work.path().join("00000000000000999999.index"), b"orphan").unwrap();
    reopen_clean_and_check(work.path(), &expected);
    assert!(!work.path().join("leader-epoch-checkpoint.tmp").exists());
    assert!(!work.path().join("00000000000000999999.index").exists());
}

// ---- injected faults ----

#[test]
fn failed_fsync_takes_the_log_offline_without_losing_data() {
    let (fb, backend) = faulty();
    let work = tempfile::tempdir().unwrap();
    let mut log = open(work.path(), LogConfig::default(), backend, false);
    let expected = fill(&mut log, 20, 0);
    fb.set_faults(Faults {
        fail_sync: true,
        ..Default::default()
    });
    assert!(matches!(log.flush(), Err(StorageError::Io { .. })));
    assert!(matches!(
        log.append(&mut batch(1, 0, 1), 0, NOW),
        Err(StorageError::Failed(_))
    ));
    assert!(matches!(log.flush(), Err(StorageError::Failed(_))));
    // Reads of what was written still work.
    check_reads(&log, &expected);
    assert!(log.close().is_err());
    // "Restart": everything acknowledged is there.
    assert_recovered(work.path(), &expected, 0);
}

#[test]
fn sealed_flush_outside_the_lock() {
    let (fb, backend) = faulty();
    let work = tempfile::tempdir().unwrap();
    let mut log = open(work.path(), small_config(), backend, false);
    assert!(log.sealed_flush().is_none());
    let expected = fill(&mut log, 60, 0);
    assert!(log.segment_count() > 2);
    // Rolling did not fsync: the recovery point has not moved.
    assert_eq!(log.recovery_point(), 0);
    let job = log.sealed_flush().unwrap();
    let upto = job.upto_offset();
    // Appends may continue while the job runs (here: before it finishes).
    let mut more = expected.clone();
    let i = log.append(&mut batch(1, 0, 10), 0, NOW).unwrap();
    more.push((i.base_offset, i.last_offset));
    let result = job.run();
    log.finish_sealed_flush(job, result).unwrap();
    assert_eq!(log.recovery_point(), upto);
    assert!(upto > 0 && upto < log.log_end_offset());
    check_reads(&log, &more);

    // A failed sealed flush takes the log offline; a restart still has every batch.
    fill(&mut log, 30, 0);
    let job = log.sealed_flush().unwrap();
    fb.set_faults(Faults {
        fail_sync: true,
        ..Default::default()
    });
    let result = job.run();
    assert!(result.is_err());
    assert!(log.finish_sealed_flush(job, result).is_err());
    assert!(matches!(
        log.append(&mut batch(1, 0, 1), 0, NOW),
        Err(StorageError::Failed(_))
    ));
    let end = log.log_end_offset();
    drop(log);
    let log = open_with(work.path(), small_config(), file_backend(), upto, 0, false);
    assert_eq!(log.log_end_offset(), end);
    check_reads(&log, &more);
}

#[test]
fn failed_epoch_checkpoint_fails_the_append_before_writing() {
    let (fb, backend) = faulty();
    let work = tempfile::tempdir().unwrap();
    let mut log = open(work.path(), small_config(), backend, false);
    let i = log.append(&mut batch(2, 0, 200), 1, NOW).unwrap();
    let expected = [(i.base_offset, i.last_offset)];
    fb.set_faults(Faults {
        fail_sync: true,
        ..Default::default()
    });
    // Same epoch: no checkpoint write, no fsync: fine.
    let i = log.append(&mut batch(2, 0, 200), 1, NOW).unwrap();
    let expected2 = [expected[0], (i.base_offset, i.last_offset)];
    // A new epoch needs the checkpoint written first, which fails: nothing is appended.
    let err = log.append(&mut batch(2, 0, 200), 2, NOW).unwrap_err();
    assert!(matches!(err, StorageError::Io { .. }), "{err:?}");
    assert_eq!(log.log_end_offset(), 4);
    assert!(matches!(
        log.append(&mut batch(1, 0, 1), 2, NOW),
        Err(StorageError::Failed(_))
    ));
    drop(log);
    assert_recovered(work.path(), &expected2, 0);
}

#[test]
fn failed_write_is_rolled_back_and_the_log_stays_usable() {
    let (fb, backend) = faulty();
    let work = tempfile::tempdir().unwrap();
    let mut log = open(work.path(), LogConfig::default(), backend, false);
    let mut expected = fill(&mut log, 10, 0);
    let size_before = fs::metadata(last_log(work.path())).unwrap().len();
    let end = log.log_end_offset();
    // The next write fails after 100 of its bytes.
    fb.set_faults(Faults {
        fail_writes_after_bytes: Some(fb.bytes_written() + 100),
        ..Default::default()
    });
    let mut b = batch(5, 0, 200);
    assert!(matches!(
        log.append(&mut b, 0, NOW),
        Err(StorageError::Io { .. })
    ));
    assert_eq!(log.log_end_offset(), end);
    assert_eq!(
        fs::metadata(last_log(work.path())).unwrap().len(),
        size_before
    );
    fb.set_faults(Faults::default());
    let info = log.append(&mut batch(5, 0, 200), 0, NOW).unwrap();
    assert_eq!(info.base_offset, end);
    expected.push((info.base_offset, info.last_offset));
    check_reads(&log, &expected);
    drop(log);
    assert_recovered(work.path(), &expected, 0);
}

#[test]
fn crash_keeps_a_prefix_and_everything_flushed() {
    for crash_after in [1_000u64, 5_000, 9_999, 20_000] {
        let (fb, backend) = faulty();
        let work = tempfile::tempdir().unwrap();
        let mut log = open(work.path(), small_config(), backend, false);
        let flushed = fill(&mut log, 10, 0);
        log.flush().unwrap();
        let rp = log.recovery_point();
        fb.set_faults(Faults {
            crash_after_bytes: Some(fb.bytes_written() + crash_after),
            ..Default::default()
        });
        let mut appended: Vec<(i64, i64, Vec<u8>)> = Vec::new();
        for i in 0..60 {
            let mut b = batch(1 + i % 3, 0, 50 + i * 7);
            let info = log.append(&mut b, 0, NOW).unwrap();
            appended.push((info.base_offset, info.last_offset, b));
        }
        drop(log);
        // Reboot with a healthy disk.
        let log = open_with(work.path(), small_config(), file_backend(), rp, 0, false);
        let end = log.log_end_offset();
        assert!(end > flushed.last().unwrap().1, "flushed data lost");
        check_reads(&log, &flushed);
        let mut kept = 0;
        for (base, last, bytes) in &appended {
            if *last < end {
                let r = log.read(*base, 1 << 20, i64::MAX, true).unwrap();
                assert_eq!(
                    &r.records[..bytes.len()],
                    &bytes[..],
                    "batch at {base} differs"
                );
                kept += 1;
            } else {
                assert!(*base >= end, "log ends inside a batch");
            }
        }
        assert!(
            kept < appended.len(),
            "crash at {crash_after} lost nothing?"
        );
    }
}

// ---- crashes that lose what was not fsynced ----

/// One appended batch: base offset, last offset, and the bytes as written (stamped).
type Appended = (i64, i64, Vec<u8>);

/// Appends `n` batches of 1..=3 records and varying sizes with leader epoch 3 (the epoch `fill`
/// uses, so no epoch checkpoint is written on the way).
fn append_recorded(log: &mut Log, n: usize, salt: usize) -> Vec<Appended> {
    (0..n)
        .map(|i| {
            let mut b = batch(1 + (i + salt) % 3, 0, 40 + (i * 7 + salt * 13) % 200);
            let info = log.append(&mut b, 3, NOW).unwrap();
            (info.base_offset, info.last_offset, b)
        })
        .collect()
}

fn offsets(batches: &[Appended]) -> Vec<(i64, i64)> {
    batches.iter().map(|(b, l, _)| (*b, *l)).collect()
}

/// Reopens the crashed log in `dir` at recovery point `rp` on a healthy disk and checks that it
/// holds all of `durable`, then a prefix of `volatile` byte for byte, and nothing else, and
/// that appending continues right after. Returns how many `volatile` batches survived.
fn assert_prefix_after_crash(
    dir: &Path,
    rp: i64,
    durable: &[(i64, i64)],
    volatile: &[Appended],
) -> usize {
    let mut log = open_with(dir, small_config(), file_backend(), rp, 0, false);
    let end = log.log_end_offset();
    let durable_end = durable.last().map_or(0, |b| b.1 + 1);
    assert!(
        end >= durable_end,
        "flushed data lost: the log ends at {end}, {durable_end} was flushed"
    );
    check_reads(&log, durable);
    let mut kept = 0;
    for (base, last, bytes) in volatile {
        if *last < end {
            let r = log.read(*base, 1 << 20, i64::MAX, true).unwrap();
            assert_eq!(
                &r.records[..bytes.len()],
                &bytes[..],
                "batch at {base} differs"
            );
            kept += 1;
        } else {
            assert!(*base >= end, "the log ends inside the batch at {base}");
        }
    }
    let info = append(&mut log, batch(1, 0, 10));
    assert_eq!(info.base_offset, end);
    kept
}

#[test]
fn a_crash_loses_exactly_what_was_not_flushed() {
    let mut kept_some = false;
    for seed in [
        None,
        Some(0),
        Some(1),
        Some(2),
        Some(3),
        Some(4),
        Some(5),
        Some(6),
    ] {
        let (fb, backend) = faulty();
        let work = tempfile::tempdir().unwrap();
        let mut log = open(work.path(), small_config(), backend, false);
        let durable = append_recorded(&mut log, 25, 0);
        assert!(log.segment_count() >= 2);
        log.flush().unwrap();
        let rp = log.recovery_point();
        assert_eq!(rp, log.log_end_offset());
        // More than a segment's worth: rolls without a flush.
        let volatile = append_recorded(&mut log, 30, 1);
        assert!(log.segment_count() >= 4);
        match seed {
            None => fb.crash().unwrap(),
            Some(s) => fb.crash_with_seed(s).unwrap(),
        }
        drop(log);
        let kept = assert_prefix_after_crash(work.path(), rp, &offsets(&durable), &volatile);
        if seed.is_none() {
            assert_eq!(kept, 0, "a batch that was never fsynced survived the crash");
        }
        kept_some |= kept > 0;
    }
    // Some seed let a part of the unsynced tail reach the disk, so the prefix check above was
    // exercised with more than the flushed batches.
    assert!(kept_some);
}

#[test]
fn a_sealed_flush_makes_the_sealed_segments_durable() {
    let (fb, backend) = faulty();
    let work = tempfile::tempdir().unwrap();
    let mut log = open(work.path(), small_config(), backend, false);
    let appended = append_recorded(&mut log, 60, 0);
    assert!(log.segment_count() > 2);
    let job = log.sealed_flush().unwrap();
    let upto = job.upto_offset();
    let result = job.run();
    log.finish_sealed_flush(job, result).unwrap();
    assert_eq!(log.recovery_point(), upto);
    let mut volatile: Vec<Appended> = appended.iter().filter(|b| b.1 >= upto).cloned().collect();
    let durable: Vec<Appended> = appended.into_iter().filter(|b| b.1 < upto).collect();
    assert!(!volatile.is_empty());
    volatile.extend(append_recorded(&mut log, 10, 1));
    fb.crash().unwrap();
    drop(log);
    let kept = assert_prefix_after_crash(work.path(), upto, &offsets(&durable), &volatile);
    // The active segment was never fsynced: the log ends where the sealed flush stopped.
    assert_eq!(kept, 0);
}

#[test]
fn flush_messages_bounds_what_a_crash_loses() {
    let (fb, backend) = faulty();
    let work = tempfile::tempdir().unwrap();
    let config = LogConfig {
        flush_messages: 5,
        ..small_config()
    };
    let mut log = open(work.path(), config, backend, false);
    let mut appended = Vec::new();
    for i in 0..23 {
        let mut b = batch(1, 0, 100 + i);
        let info = log.append(&mut b, 3, NOW).unwrap();
        appended.push((info.base_offset, info.last_offset, b));
    }
    // Flushed after every fifth record.
    let rp = log.recovery_point();
    assert_eq!(rp, 20);
    fb.crash().unwrap();
    drop(log);
    let durable: Vec<Appended> = appended.iter().filter(|b| b.1 < rp).cloned().collect();
    let volatile: Vec<Appended> = appended.into_iter().filter(|b| b.1 >= rp).collect();
    let kept = assert_prefix_after_crash(work.path(), rp, &offsets(&durable), &volatile);
    assert_eq!(kept, 0);
}

/// A tiny deterministic generator for the workload below (splitmix64).
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Appends with flushes and sealed flushes at seeded points, crashes (keeping seeded parts of
/// the unsynced tails), and checks the image reopened both at the last recovery point and at 0:
/// the same consistent prefix, with everything below the recovery point.
#[test]
fn seeded_crashes_during_a_workload_keep_a_consistent_prefix() {
    for seed in 0..12u64 {
        let mut rng = seed;
        let (fb, backend) = faulty();
        let work = tempfile::tempdir().unwrap();
        let mut log = open(work.path(), small_config(), backend, false);
        let mut appended = Vec::new();
        let steps = 20 + next(&mut rng) % 60;
        for step in 0..steps {
            appended.extend(append_recorded(&mut log, 1, step as usize));
            match next(&mut rng) % 16 {
                0 => log.flush().unwrap(),
                1 | 2 => {
                    if let Some(job) = log.sealed_flush() {
                        let result = job.run();
                        log.finish_sealed_flush(job, result).unwrap();
                    }
                }
                _ => {}
            }
        }
        let rp = log.recovery_point();
        fb.crash_with_seed(next(&mut rng)).unwrap();
        drop(log);
        let durable: Vec<(i64, i64)> = offsets(&appended)
            .into_iter()
            .filter(|b| b.1 < rp)
            .collect();
        let volatile: Vec<Appended> = appended.into_iter().filter(|b| b.1 >= rp).collect();
        let from_zero = tempfile::tempdir().unwrap();
        copy_dir(work.path(), from_zero.path());
        let kept = assert_prefix_after_crash(work.path(), rp, &durable, &volatile);
        // Recovering everything finds the same log: nothing below the recovery point was torn.
        let kept_from_zero = assert_prefix_after_crash(from_zero.path(), 0, &durable, &volatile);
        assert_eq!(kept, kept_from_zero, "seed {seed}");
    }
}

/// A backend that reports fsyncs (of the files whose name ends with `files`, or of directories)
/// as done without doing them, on top of a crashing `FaultyBackend`: the disk as a log that
/// forgot an fsync leaves it.
#[derive(Debug)]
struct SkipSync {
    inner: FaultyBackend,
    files: Option<&'static str>,
    dirs: bool,
}

#[derive(Debug)]
struct SkipSyncFile {
    inner: Arc<dyn StorageFile>,
    skip: bool,
}

impl StorageFile for SkipSyncFile {
    fn read_at(&self, buf: &mut [u8], pos: u64) -> io::Result<usize> {
        self.inner.read_at(buf, pos)
    }
    fn write_at(&self, buf: &[u8], pos: u64) -> io::Result<usize> {
        self.inner.write_at(buf, pos)
    }
    fn len(&self) -> io::Result<u64> {
        self.inner.len()
    }
    fn set_len(&self, len: u64) -> io::Result<()> {
        self.inner.set_len(len)
    }
    fn sync(&self) -> io::Result<()> {
        if self.skip {
            return Ok(());
        }
        self.inner.sync()
    }
    fn std_file(&self) -> Option<&fs::File> {
        self.inner.std_file()
    }
}

impl Backend for SkipSync {
    fn open(&self, path: &Path, create: bool) -> io::Result<Arc<dyn StorageFile>> {
        Ok(Arc::new(SkipSyncFile {
            inner: self.inner.open(path, create)?,
            skip: self
                .files
                .is_some_and(|suffix| path.to_string_lossy().ends_with(suffix)),
        }))
    }
    fn exists(&self, path: &Path) -> io::Result<bool> {
        self.inner.exists(path)
    }
    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.inner.remove_file(path)
    }
    fn remove_dir_all(&self, path: &Path) -> io::Result<()> {
        self.inner.remove_dir_all(path)
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.inner.rename(from, to)
    }
    fn list_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        self.inner.list_dir(path)
    }
    fn is_dir(&self, path: &Path) -> io::Result<bool> {
        self.inner.is_dir(path)
    }
    fn create_dir_all(&self, path: &Path) -> io::Result<()> {
        self.inner.create_dir_all(path)
    }
    fn sync_dir(&self, path: &Path) -> io::Result<()> {
        if self.dirs {
            return Ok(());
        }
        self.inner.sync_dir(path)
    }
}

/// The check the tests above rely on has teeth: with the fsyncs of the `.log` files (or of the
/// directory) gone from `Log::flush`, the same scenario loses flushed batches, so
/// `assert_prefix_after_crash` would fail. (Under `Faults::crash_after_bytes`, which keeps a
/// prefix of all writes, it would not notice.)
#[test]
fn a_log_that_skipped_an_fsync_would_lose_flushed_data() {
    for (files, dirs) in [(Some(".log"), false), (None, true)] {
        let fb = FaultyBackend::new();
        let backend = Arc::new(SkipSync {
            inner: fb.clone(),
            files,
            dirs,
        });
        let work = tempfile::tempdir().unwrap();
        let mut log = open(work.path(), small_config(), backend, false);
        let durable = append_recorded(&mut log, 25, 0);
        log.flush().unwrap();
        let rp = log.recovery_point();
        append_recorded(&mut log, 10, 1);
        fb.crash().unwrap();
        drop(log);
        let durable_end = durable.last().unwrap().1 + 1;
        assert_eq!(rp, durable_end);
        let log = open_with(work.path(), small_config(), file_backend(), rp, 0, false);
        assert!(
            log.log_end_offset() < durable_end,
            "files {files:?} dirs {dirs}: the flushed batches survived without their fsync"
        );
    }
}
