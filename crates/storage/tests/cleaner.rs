//! Log compaction: what the cleaner keeps, the ranges it cleans, and crash safety of the swap.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::*;
use rafka_records::{batches, BatchBuilder, BatchView, Compression};
use rafka_storage::{
    Backend, CleanableInfo, CleanerSettings, Faults, Log, LogConfig, StorageError,
};

const RETENTION_MS: i64 = 1_000;

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 2048,
        index_interval_bytes: 256,
        segment_index_bytes: 1024,
        compact: true,
        delete_retention_ms: RETENTION_MS,
        min_cleanable_dirty_ratio: 0.5,
        retention_ms: -1,
        file_delete_delay_ms: 0,
        ..LogConfig::default()
    }
}

fn settings() -> CleanerSettings {
    CleanerSettings::default()
}

/// One record `key -> value` (`None`: a tombstone) with timestamp `ts`.
fn kv(key: &str, value: Option<&str>, ts: i64) -> Vec<u8> {
    BatchBuilder::new(0)
        .record(Some(key.as_bytes()), value.map(str::as_bytes), &[], ts)
        .build()
}

type Rec = (i64, Vec<u8>, Option<Vec<u8>>);

/// Every data record in the log as (offset, key, value), control batches skipped.
fn records(log: &Log) -> Vec<Rec> {
    let mut out = Vec::new();
    let mut at = log.log_start_offset();
    let end = log.log_end_offset();
    while at < end {
        let r = log.read(at, 1 << 20, i64::MAX, true).unwrap();
        if r.records.is_empty() {
            break;
        }
        for b in batches(&r.records) {
            let b = b.unwrap();
            b.verify_crc().unwrap();
            let h = *b.header();
            if h.is_control() {
                continue;
            }
            let d = b.decode_records(1 << 24).unwrap();
            for rec in d.iter() {
                let rec = rec.unwrap();
                out.push((
                    rec.offset(h.base_offset),
                    rec.key.unwrap().to_vec(),
                    rec.value.map(<[u8]>::to_vec),
                ));
            }
        }
        at = r.next_offset;
    }
    out
}

/// Batch headers of the whole log.
fn headers(log: &Log) -> Vec<rafka_records::BatchHeader> {
    let mut out = Vec::new();
    let mut at = log.log_start_offset();
    while at < log.log_end_offset() {
        let r = log.read(at, 1 << 20, i64::MAX, true).unwrap();
        if r.records.is_empty() {
            break;
        }
        for b in batches(&r.records) {
            out.push(*b.unwrap().header());
        }
        at = r.next_offset;
    }
    out
}

/// Latest (offset, value) per key.
fn latest(recs: &[Rec]) -> BTreeMap<Vec<u8>, (i64, Option<Vec<u8>>)> {
    let mut m = BTreeMap::new();
    for (o, k, v) in recs {
        m.insert(k.clone(), (*o, v.clone()));
    }
    m
}

/// The invariants of a compacted log against the records it had before: strictly increasing
/// offsets, every record one of the originals (same offset, key, value), and the latest record of
/// every key still there.
fn check_compacted(before: &[Rec], after: &[Rec]) {
    for w in after.windows(2) {
        assert!(w[0].0 < w[1].0, "offsets not strictly increasing: {w:?}");
    }
    let orig: BTreeMap<i64, (&Vec<u8>, &Option<Vec<u8>>)> =
        before.iter().map(|(o, k, v)| (*o, (k, v))).collect();
    for (o, k, v) in after {
        assert_eq!(
            orig.get(o),
            Some(&(k, v)),
            "record at {o} is not an original"
        );
    }
    let want = latest(before);
    let got = latest(after);
    for (k, (o, v)) in &want {
        if v.is_some() {
            assert_eq!(
                got.get(k),
                Some(&(*o, v.clone())),
                "latest of key {k:?} lost"
            );
        }
    }
}

/// Writes `rounds` values for each of `keys` keys, one record per batch, rolling segments.
fn write_rounds(log: &mut Log, keys: usize, rounds: usize, ts0: i64) {
    write_named(log, "key", keys, rounds, ts0);
}

fn write_named(log: &mut Log, prefix: &str, keys: usize, rounds: usize, ts0: i64) {
    for r in 0..rounds {
        for k in 0..keys {
            append(
                log,
                kv(
                    &format!("{prefix}{k}"),
                    Some(&format!("value-{k}-{r}")),
                    ts0 + (r * keys + k) as i64,
                ),
            );
        }
    }
}

fn whole_log(log: &Log, now: i64) -> CleanableInfo {
    log.cleanable_info(None, log.log_end_offset(), now).unwrap()
}

#[test]
fn keeps_the_latest_value_per_key_with_offsets_and_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config(), file_backend(), false);
    write_rounds(&mut log, 10, 20, NOW - 10_000);
    let before = records(&log);
    let size_before = log.size_bytes();
    let active_base = {
        let info = whole_log(&log, NOW);
        info.first_uncleanable_offset
    };
    assert!(log.segment_count() > 3);
    let out = log
        .clean(None, log.log_end_offset(), &settings(), NOW)
        .unwrap()
        .unwrap();
    assert_eq!(out.end_offset, active_base);
    assert!(out.stats.groups_swapped >= 1);
    let after = records(&log);
    check_compacted(&before, &after);
    // Below the active segment exactly one record per key remains.
    let cleaned: Vec<&Rec> = after.iter().filter(|r| r.0 < active_base).collect();
    let mut keys: Vec<&Vec<u8>> = cleaned.iter().map(|r| &r.1).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), cleaned.len());
    // The active segment is untouched.
    let tail_before: Vec<&Rec> = before.iter().filter(|r| r.0 >= active_base).collect();
    let tail_after: Vec<&Rec> = after.iter().filter(|r| r.0 >= active_base).collect();
    assert_eq!(tail_before, tail_after);
    assert!(
        log.size_bytes() < size_before / 2,
        "{} vs {size_before}",
        log.size_bytes()
    );
    assert_eq!(log.log_end_offset(), before.last().unwrap().0 + 1);
    // Lookups by offset still work across the gaps.
    let r = log.read(1, 1 << 16, i64::MAX, true).unwrap();
    assert!(!r.records.is_empty());
    // Appends continue after the cleaned log.
    let info = append(&mut log, kv("key0", Some("new"), NOW));
    assert_eq!(info.base_offset, before.last().unwrap().0 + 1);
    // And the cleaned log reloads, clean or not.
    log.close().unwrap();
    let log = open(dir.path(), config(), file_backend(), true);
    let mut again = after.clone();
    again.push((info.base_offset, b"key0".to_vec(), Some(b"new".to_vec())));
    assert_eq!(records(&log), again);
    drop(log);
    let log = open(dir.path(), config(), file_backend(), false);
    assert_eq!(records(&log), again);
}

#[test]
fn a_pass_is_a_noop_on_an_already_clean_log_and_checkpoint_drives_the_ratio() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config(), file_backend(), false);
    write_rounds(&mut log, 5, 30, NOW - 10_000);
    let info = whole_log(&log, NOW);
    assert_eq!(info.first_dirty_offset, 0);
    assert!(info.dirty_ratio() > 0.99 && info.is_due());
    let out = log
        .clean(None, log.log_end_offset(), &settings(), NOW)
        .unwrap()
        .unwrap();
    // With the checkpoint at the pass's end, nothing is dirty any more.
    let info = log
        .cleanable_info(Some(out.end_offset), log.log_end_offset(), NOW)
        .unwrap();
    assert_eq!(info.first_dirty_offset, out.end_offset);
    assert_eq!(info.cleanable_bytes, 0);
    assert!(!info.is_due());
    assert!(log
        .clean(Some(out.end_offset), log.log_end_offset(), &settings(), NOW)
        .unwrap()
        .is_none());
    // New dirty data below the ratio is not due; above it is.
    let info_low = CleanableInfo {
        min_cleanable_ratio: 0.99,
        ..info
    };
    assert!(!info_low.is_due());
    write_rounds(&mut log, 5, 30, NOW - 5_000);
    let info = log
        .cleanable_info(Some(out.end_offset), log.log_end_offset(), NOW)
        .unwrap();
    assert!(info.cleanable_bytes > 0 && info.clean_bytes > 0);
    assert!(info.dirty_ratio() > 0.5 && info.dirty_ratio() < 1.0);
    assert!(info.is_due());
    let high = LogConfig {
        min_cleanable_dirty_ratio: 0.999,
        ..config()
    };
    log.set_config(high);
    let info = log
        .cleanable_info(Some(out.end_offset), log.log_end_offset(), NOW)
        .unwrap();
    assert!(!info.is_due());
    // Not compacted at all under cleanup.policy=delete.
    log.set_config(LogConfig {
        compact: false,
        ..config()
    });
    assert!(log
        .cleanable_info(None, log.log_end_offset(), NOW)
        .is_none());
}

#[test]
fn tombstones_go_only_after_their_delete_horizon() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config(), file_backend(), false);
    write_rounds(&mut log, 6, 5, NOW - 10_000);
    append(&mut log, kv("key1", None, NOW - 5_000));
    append(&mut log, kv("key2", None, NOW - 5_000));
    write_named(&mut log, "fill", 2, 30, NOW - 4_000); // push the tombstones out of the active segment
    let before = records(&log);
    log.clean(None, log.log_end_offset(), &settings(), NOW)
        .unwrap()
        .unwrap();
    let after = records(&log);
    check_compacted(&before, &after);
    let l = latest(&after);
    assert_eq!(
        l.get(&b"key1"[..]).unwrap().1,
        None,
        "tombstone kept before its horizon"
    );
    assert!(
        after.iter().filter(|r| r.1 == b"key1").count() == 1,
        "older values of key1 gone"
    );
    // The tombstones' batches carry the KIP-534 delete horizon.
    let with_horizon: Vec<_> = headers(&log)
        .into_iter()
        .filter(|h| h.has_delete_horizon())
        .collect();
    assert_eq!(with_horizon.len(), 2);
    assert!(with_horizon
        .iter()
        .all(|h| h.base_timestamp == NOW + RETENTION_MS));
    assert_eq!(log.latest_delete_horizon_ms(), NOW + RETENTION_MS);
    // Another pass before the horizon keeps them; the checkpointed log is not due by ratio,
    // but is due once the horizon passed.
    let end = log
        .cleanable_info(None, log.log_end_offset(), NOW)
        .unwrap()
        .first_uncleanable_offset;
    let info = log
        .cleanable_info(Some(end), log.log_end_offset(), NOW)
        .unwrap();
    assert!(!info.delete_horizon_passed);
    let later = NOW + RETENTION_MS;
    let info = log
        .cleanable_info(Some(end), log.log_end_offset(), later)
        .unwrap();
    assert!(info.delete_horizon_passed && info.is_due());
    log.clean(Some(end), log.log_end_offset(), &settings(), later)
        .unwrap()
        .unwrap();
    let gone = records(&log);
    assert!(
        gone.iter().all(|r| r.1 != b"key1" && r.1 != b"key2"),
        "{gone:?}"
    );
    check_compacted(&before, &gone);
    assert_eq!(log.latest_delete_horizon_ms(), -1);
}

#[test]
fn delete_horizons_are_found_again_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config(), file_backend(), false);
    write_rounds(&mut log, 6, 5, NOW - 10_000);
    append(&mut log, kv("key1", None, NOW - 5_000));
    write_named(&mut log, "fill", 2, 30, NOW - 4_000);
    log.clean(None, log.log_end_offset(), &settings(), NOW)
        .unwrap()
        .unwrap();
    let end = log
        .cleanable_info(None, log.log_end_offset(), NOW)
        .unwrap()
        .first_uncleanable_offset;
    log.close().unwrap();
    // The horizon a pass sets lives in memory: after a restart the log is not due by it...
    let mut log = open(dir.path(), config(), file_backend(), true);
    let later = NOW + RETENTION_MS;
    assert_eq!(log.latest_delete_horizon_ms(), -1);
    let info = log
        .cleanable_info(Some(end), log.log_end_offset(), later)
        .unwrap();
    assert!(!info.is_due());
    // ... until it is read back from the batches, and then the tombstone goes.
    let horizon = log
        .sealed_segment_bytes()
        .iter()
        .map(|b| rafka_storage::max_delete_horizon(b))
        .max()
        .unwrap();
    assert_eq!(horizon, NOW + RETENTION_MS);
    log.note_delete_horizon(horizon);
    let info = log
        .cleanable_info(Some(end), log.log_end_offset(), later)
        .unwrap();
    assert!(info.delete_horizon_passed && info.is_due());
    log.clean(Some(end), log.log_end_offset(), &settings(), later)
        .unwrap()
        .unwrap();
    assert!(records(&log).iter().all(|r| r.1 != b"key1"));
}

#[test]
fn min_compaction_lag_keeps_recent_segments_dirty() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        min_compaction_lag_ms: 60_000,
        ..config()
    };
    let mut log = open(dir.path(), cfg, file_backend(), false);
    write_rounds(&mut log, 5, 10, NOW - 120_000); // old enough
    let old_end = log.log_end_offset();
    write_rounds(&mut log, 5, 20, NOW - 1_000); // too recent
    let info = whole_log(&log, NOW);
    assert!(info.first_uncleanable_offset <= old_end + 5, "{info:?}");
    assert!(info.first_uncleanable_offset > 0);
    let before = records(&log);
    let upper = info.first_uncleanable_offset;
    log.clean(None, log.log_end_offset(), &settings(), NOW)
        .unwrap()
        .unwrap();
    let after = records(&log);
    check_compacted(&before, &after);
    let recent_before: Vec<_> = before.iter().filter(|r| r.0 >= upper).collect();
    let recent_after: Vec<_> = after.iter().filter(|r| r.0 >= upper).collect();
    assert_eq!(recent_before, recent_after);
}

#[test]
fn max_compaction_lag_forces_a_pass() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = LogConfig {
        max_compaction_lag_ms: 60_000,
        min_cleanable_dirty_ratio: 0.99,
        ..config()
    };
    let mut log = open(dir.path(), cfg, file_backend(), false);
    write_rounds(&mut log, 5, 20, NOW - 120_000);
    let first = log
        .clean(None, log.log_end_offset(), &settings(), NOW)
        .unwrap()
        .unwrap();
    write_rounds(&mut log, 5, 10, NOW - 100_000);
    let info = log
        .cleanable_info(Some(first.end_offset), log.log_end_offset(), NOW)
        .unwrap();
    assert!(info.dirty_ratio() < 0.99);
    assert!(info.must_clean_now && info.is_due());
    let info = log
        .cleanable_info(Some(first.end_offset), log.log_end_offset(), NOW - 90_000)
        .unwrap();
    assert!(!info.must_clean_now && !info.is_due());
}

#[test]
fn open_transactions_bound_the_cleanable_range() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config(), file_backend(), false);
    write_rounds(&mut log, 5, 5, NOW - 10_000);
    let txn_start = log.log_end_offset();
    let b = BatchBuilder::new(0)
        .producer(42, 0, 0)
        .transactional(true)
        .record(Some(b"key0"), Some(b"in-txn"), &[], NOW - 9_000)
        .build();
    append(&mut log, b);
    write_rounds(&mut log, 5, 20, NOW - 8_000);
    let info = whole_log(&log, NOW);
    assert_eq!(info.first_uncleanable_offset, txn_start);
}

fn txn_batch(pid: i64, seq: i32, keys: &[&str], ts: i64) -> Vec<u8> {
    let mut b = BatchBuilder::new(0)
        .producer(pid, 0, seq)
        .transactional(true);
    for k in keys {
        b = b.record(Some(k.as_bytes()), Some(b"t"), &[], ts);
    }
    b.build()
}

#[test]
fn aborted_transactions_are_removed_and_markers_go_after_their_horizon() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config(), file_backend(), false);
    // Producer 7: an aborted transaction, then a committed one.
    append(&mut log, txn_batch(7, 0, &["a1", "a2"], NOW - 9_000));
    let abort = log
        .append_txn_marker(7, 0, 0, false, 0, NOW - 9_000)
        .unwrap();
    append(&mut log, txn_batch(7, 2, &["c1"], NOW - 9_000));
    let commit = log
        .append_txn_marker(7, 0, 0, true, 0, NOW - 9_000)
        .unwrap();
    write_rounds(&mut log, 4, 30, NOW - 8_000);
    log.on_high_watermark_updated(log.log_end_offset());
    // What a reader sees: the aborted records do not count.
    let before: Vec<Rec> = records(&log)
        .into_iter()
        .filter(|r| r.1 != b"a1" && r.1 != b"a2")
        .collect();
    assert_eq!(log.aborted_transactions(0, log.log_end_offset()).len(), 1);

    log.clean(None, log.log_end_offset(), &settings(), NOW)
        .unwrap()
        .unwrap();
    let after = records(&log);
    assert!(
        after.iter().all(|r| r.1 != b"a1" && r.1 != b"a2"),
        "aborted data removed"
    );
    assert!(after.iter().any(|r| r.1 == b"c1"), "committed data kept");
    let hs = headers(&log);
    let marker = |o: i64| {
        hs.iter()
            .find(|h| h.base_offset == o && h.is_control())
            .copied()
    };
    // The ABORT marker stays while this pass saw its transaction's batches (and is indexed).
    assert!(marker(abort.base_offset).is_some());
    assert!(marker(commit.base_offset).is_some());
    assert_eq!(log.aborted_transactions(0, log.log_end_offset()).len(), 1);

    // Next pass: no batches of the aborted transaction left, so its marker gets a horizon; the
    // COMMIT marker's transaction still has data, so it stays without one.
    log.clean(None, log.log_end_offset(), &settings(), NOW)
        .unwrap()
        .unwrap();
    let hs = headers(&log);
    let m = hs
        .iter()
        .find(|h| h.base_offset == abort.base_offset)
        .unwrap();
    assert!(m.is_control() && m.has_delete_horizon());
    let c = hs
        .iter()
        .find(|h| h.base_offset == commit.base_offset)
        .unwrap();
    assert!(!c.has_delete_horizon());

    // After the horizon the ABORT marker goes.
    let later = NOW + RETENTION_MS;
    log.clean(None, log.log_end_offset(), &settings(), later)
        .unwrap()
        .unwrap();
    let hs = headers(&log);
    assert!(hs.iter().all(|h| h.base_offset != abort.base_offset));
    assert!(hs.iter().any(|h| h.base_offset == commit.base_offset));
    check_compacted(&before, &records(&log));
    // Reload: the same.
    let now_recs = records(&log);
    log.close().unwrap();
    let log = open(dir.path(), config(), file_backend(), false);
    assert_eq!(records(&log), now_recs);
}

#[test]
fn compressed_batches_are_rewritten_with_their_codec() {
    for codec in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), config(), file_backend(), false);
        let b = BatchBuilder::new(0)
            .compression(codec, None)
            .record(Some(b"x"), Some(b"x0"), &[], NOW - 9_000)
            .record(Some(b"y"), Some(b"y0"), &[(b"h", Some(b"v"))], NOW - 9_000)
            .record(Some(b"z"), Some(b"z0"), &[], NOW - 9_000)
            .build();
        append(&mut log, b);
        append(&mut log, kv("x", Some("x1"), NOW - 8_000));
        append(&mut log, kv("z", None, NOW - 8_000));
        write_rounds(&mut log, 3, 40, NOW - 7_000);
        let before = records(&log);
        log.clean(None, log.log_end_offset(), &settings(), NOW)
            .unwrap()
            .unwrap();
        let after = records(&log);
        check_compacted(&before, &after);
        let first = headers(&log)[0];
        assert_eq!(first.base_offset, 0);
        assert_eq!(
            first.last_offset_delta, 2,
            "original last offset delta kept"
        );
        assert_eq!(first.compression(), Some(codec));
        assert_eq!(first.records_count, 1);
        let r = log.read(0, 1 << 16, i64::MAX, true).unwrap();
        let view = BatchView::parse(&r.records).unwrap();
        view.verify_crc().unwrap();
        let d = view.decode_records(1 << 20).unwrap();
        let recs: Vec<_> = d.iter().map(|r| r.unwrap()).collect();
        assert_eq!(recs.len(), 1);
        assert_eq!(recs[0].key, Some(&b"y"[..]));
        assert_eq!(recs[0].offset_delta, 1);
        assert_eq!(recs[0].headers, vec![(&b"h"[..], Some(&b"v"[..]))]);
    }
}

#[test]
fn a_producers_last_batch_is_kept_empty_and_its_state_survives_reload() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config(), file_backend(), false);
    let b = BatchBuilder::new(0)
        .producer(5, 3, 10)
        .record(Some(b"p"), Some(b"p0"), &[], NOW - 9_000)
        .record(Some(b"q"), Some(b"q0"), &[], NOW - 9_000)
        .build();
    let first = append(&mut log, b);
    append(&mut log, kv("p", Some("p1"), NOW - 8_000));
    append(&mut log, kv("q", Some("q1"), NOW - 8_000));
    write_rounds(&mut log, 3, 40, NOW - 7_000);
    log.clean(None, log.log_end_offset(), &settings(), NOW)
        .unwrap()
        .unwrap();
    let hs = headers(&log);
    let h = hs
        .iter()
        .find(|h| h.base_offset == first.base_offset)
        .expect("kept");
    assert_eq!(h.records_count, 0);
    assert_eq!(h.last_offset_delta, 1);
    assert_eq!(
        (h.producer_id, h.producer_epoch, h.base_sequence),
        (5, 3, 10)
    );
    // Rebuild producer state from the log alone (no snapshots): the producer is still known.
    log.close().unwrap();
    for e in fs::read_dir(dir.path()).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "snapshot") {
            fs::remove_file(p).unwrap();
        }
    }
    let mut log = open(dir.path(), config(), file_backend(), false);
    let p = log
        .active_producers()
        .into_iter()
        .find(|p| p.producer_id == 5)
        .expect("producer kept");
    assert_eq!((p.producer_epoch, p.last_sequence), (3, 11));
    // The next sequence is accepted, a gap is not.
    let gap = BatchBuilder::new(0)
        .producer(5, 3, 13)
        .record(Some(b"p"), Some(b"x"), &[], NOW)
        .build();
    assert!(matches!(
        log.append(&mut gap.clone(), 0, NOW),
        Err(StorageError::OutOfOrderSequence { .. })
    ));
    let next = BatchBuilder::new(0)
        .producer(5, 3, 12)
        .record(Some(b"p"), Some(b"x"), &[], NOW)
        .build();
    log.append(&mut next.clone(), 0, NOW).unwrap();
}

#[test]
fn a_small_offset_map_cleans_in_several_passes() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config(), file_backend(), false);
    write_rounds(&mut log, 40, 4, NOW - 10_000);
    let before = records(&log);
    // Room for 10 keys: 10 / 0.9 * 24 bytes.
    let small = CleanerSettings {
        dedupe_buffer_bytes: 267,
        ..settings()
    };
    let upper = whole_log(&log, NOW).first_uncleanable_offset;
    let mut checkpoint = None;
    let mut passes = 0;
    loop {
        let info = log
            .cleanable_info(checkpoint, log.log_end_offset(), NOW)
            .unwrap();
        if info.first_dirty_offset >= upper {
            break;
        }
        let out = log.clean_range(&info, &small, NOW).unwrap().unwrap();
        assert!(out.end_offset > info.first_dirty_offset, "progress");
        assert!(out.stats.map_keys <= 10);
        checkpoint = Some(out.end_offset);
        passes += 1;
        assert!(passes < 100);
    }
    assert!(passes > 2, "{passes}");
    let after = records(&log);
    check_compacted(&before, &after);
    let cleaned: Vec<_> = after.iter().filter(|r| r.0 < upper).collect();
    assert!(cleaned.len() <= 40, "{}", cleaned.len());
}

#[test]
fn small_cleaned_segments_are_merged_with_rebuilt_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config(), file_backend(), false);
    write_rounds(&mut log, 4, 60, NOW - 10_000);
    let segs = log.segment_count();
    assert!(segs > 5);
    log.clean(None, log.log_end_offset(), &settings(), NOW)
        .unwrap()
        .unwrap();
    // The first pass groups by the old sizes; a second pass merges the small cleaned segments.
    log.clean(None, log.log_end_offset(), &settings(), NOW)
        .unwrap()
        .unwrap();
    assert!(log.segment_count() <= 3, "{} segments", log.segment_count());
    let recs = records(&log);
    // Every offset that is present can be looked up exactly (index over gaps).
    for (o, _, _) in &recs {
        let r = log.read(*o, 1, i64::MAX, true).unwrap();
        let b = BatchView::parse(&r.records).unwrap();
        assert!(b.header().base_offset <= *o && *o <= b.header().last_offset());
    }
    let by_time = log
        .fetch_offset_by_timestamp(NOW - 10_000)
        .unwrap()
        .unwrap();
    assert_eq!(by_time.offset, recs[0].0);
    // Reopen without a clean shutdown: the indexes written by the cleaner are the ones a
    // rebuild would make.
    log.close().unwrap();
    let index_files = |d: &Path| -> BTreeMap<PathBuf, Vec<u8>> {
        fs::read_dir(d)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| {
                p.extension()
                    .is_some_and(|x| x == "index" || x == "timeindex")
            })
            .map(|p| (p.clone(), fs::read(&p).unwrap()))
            .collect()
    };
    let written = index_files(dir.path());
    for p in written.keys() {
        fs::remove_file(p).unwrap();
    }
    let log = open(dir.path(), config(), file_backend(), true);
    assert_eq!(records(&log), recs);
    log.close().unwrap();
    assert_eq!(index_files(dir.path()), written);
}

// ---- crash safety ----

/// A log of several sealed segments that a pass cleans as one group (segment.bytes raised after
/// writing), with the cleaned files written but not swapped in. Returns the records before,
/// the sealed segments' bases and the group's base.
fn prepared(
    dir: &Path,
    b: Arc<dyn Backend>,
) -> (Log, Vec<Rec>, Vec<i64>, rafka_storage::CleanOutput) {
    let mut log = open(dir, config(), b, false);
    write_rounds(&mut log, 6, 40, NOW - 10_000);
    append(&mut log, kv("key3", None, NOW - 5_000));
    write_rounds(&mut log, 2, 20, NOW - 4_000);
    log.flush().unwrap();
    log.set_config(LogConfig {
        segment_bytes: 1 << 20,
        ..config()
    });
    let before = records(&log);
    let info = whole_log(&log, NOW);
    let sealed: Vec<i64> = log_bases(dir)
        .into_iter()
        .filter(|&b| b < info.first_uncleanable_offset)
        .collect();
    assert!(sealed.len() > 3);
    let task = log.prepare_clean(&info).unwrap().unwrap();
    let out = task.run(&settings(), NOW, &mut |_| true).unwrap();
    (log, before, sealed, out)
}

fn log_bases(dir: &Path) -> Vec<i64> {
    let mut v: Vec<i64> = fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| {
            let n = e.unwrap().file_name().into_string().unwrap();
            n.strip_suffix(".log").and_then(|s| s.parse().ok())
        })
        .collect();
    v.sort_unstable();
    v
}

fn name(dir: &Path, base: i64, suffix: &str) -> PathBuf {
    dir.join(format!("{base:020}{suffix}"))
}

fn ren(from: PathBuf, to: PathBuf) {
    fs::rename(&from, &to)
        .unwrap_or_else(|e| panic!("{} -> {}: {e}", from.display(), to.display()));
}

const SUFFIXES: [&str; 4] = [".index", ".timeindex", ".txnindex", ".log"];

/// Simulates a crash after `step` steps of the swap (done by hand, as `finish_clean` would have
/// got that far), then reopens and checks the log.
fn crash_at_step(step: usize) {
    let dir = tempfile::tempdir().unwrap();
    let (log, before, sealed, out) = prepared(dir.path(), file_backend());
    let d = dir.path();
    let base = sealed[0];
    // Crash: the process dies with the log open (no close).
    std::mem::forget(out);
    drop(log);
    // Step 1..=4: the cleaned files renamed to .swap one by one (indexes first, .log last).
    for (i, s) in SUFFIXES.iter().enumerate() {
        if step > i {
            ren(
                name(d, base, &format!("{s}.cleaned")),
                name(d, base, &format!("{s}.swap")),
            );
        }
    }
    // Step 5..: the old segments renamed to .deleted, one segment per step.
    for (i, &old) in sealed.iter().enumerate() {
        if step > 4 + i {
            for s in SUFFIXES {
                let p = name(d, old, s);
                if p.exists() {
                    ren(p, name(d, old, &format!("{s}.deleted")));
                }
            }
        }
    }
    // Then the .swap files renamed to their final names (indexes first, .log last).
    let after_old = 4 + sealed.len();
    for (i, s) in SUFFIXES.iter().enumerate() {
        if step > after_old + i {
            ren(name(d, base, &format!("{s}.swap")), name(d, base, s));
        }
    }
    let log = open(d, config(), file_backend(), false);
    let after = records(&log);
    check_compacted(&before, &after);
    let swapped = step >= 4;
    if swapped {
        assert!(
            after.len() < before.len(),
            "step {step}: the swap completed"
        );
    } else {
        assert_eq!(after, before, "step {step}: nothing changed");
    }
    let leftovers: Vec<String> = fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".cleaned") || n.ends_with(".swap") || n.ends_with(".deleted"))
        .collect();
    assert!(leftovers.is_empty(), "step {step}: {leftovers:?}");
    // The reopened log works: a further pass and a reload agree.
    let mut log = log;
    log.clean(None, log.log_end_offset(), &settings(), NOW)
        .unwrap();
    let again = records(&log);
    check_compacted(&before, &again);
    log.close().unwrap();
    let log = open(d, config(), file_backend(), true);
    assert_eq!(records(&log), again);
}

#[test]
fn crash_at_every_step_of_the_swap_leaves_a_consistent_log() {
    let dir = tempfile::tempdir().unwrap();
    let (_, _, sealed, out) = prepared(dir.path(), file_backend());
    out.abandon();
    let steps = 4 + sealed.len() + 4;
    for step in 0..=steps {
        crash_at_step(step);
    }
}

#[test]
fn a_crash_while_writing_cleaned_files_loses_nothing() {
    // The machine dies part-way through writing the cleaned segment (page cache lost).
    for limit in [100u64, 5_000, 20_000] {
        let dir = tempfile::tempdir().unwrap();
        let (fb, b) = faulty();
        let mut log = open(dir.path(), config(), b, false);
        write_rounds(&mut log, 6, 40, NOW - 10_000);
        log.flush().unwrap();
        let before = records(&log);
        let info = whole_log(&log, NOW);
        let task = log.prepare_clean(&info).unwrap().unwrap();
        fb.set_faults(Faults {
            crash_after_bytes: Some(fb.bytes_written() + limit),
            ..Faults::default()
        });
        // The process dies before any rename (a crash stops the program too).
        let out = task.run(&settings(), NOW, &mut |_| true);
        std::mem::forget(out);
        std::mem::forget(log);
        let log = open(dir.path(), config(), file_backend(), false);
        assert_eq!(records(&log), before, "limit {limit}");
    }
}

#[test]
fn failed_renames_take_the_log_offline_and_reopen_recovers() {
    for fault in [0, 1] {
        let dir = tempfile::tempdir().unwrap();
        let (fb, b) = faulty();
        let mut log = open(dir.path(), config(), b, false);
        write_rounds(&mut log, 6, 40, NOW - 10_000);
        log.flush().unwrap();
        let before = records(&log);
        let info = whole_log(&log, NOW);
        let task = log.prepare_clean(&info).unwrap().unwrap();
        let out = task.run(&settings(), NOW, &mut |_| true).unwrap();
        fb.set_faults(Faults {
            fail_renames: fault == 0,
            fail_sync: fault == 1,
            ..Faults::default()
        });
        assert!(log.finish_clean(out, NOW).is_err());
        // Offline until reopened.
        assert!(matches!(
            log.append(&mut kv("k", Some("v"), NOW), 0, NOW),
            Err(StorageError::Failed(_))
        ));
        // Reads keep working from the maps.
        let during = records(&log);
        check_compacted(&before, &during);
        std::mem::forget(log);
        fb.set_faults(Faults::default());
        let log = open(dir.path(), config(), file_backend(), false);
        check_compacted(&before, &records(&log));
    }
}

#[test]
fn a_pass_is_dropped_when_retention_replaced_its_segments() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(
        dir.path(),
        LogConfig {
            segment_bytes: 1 << 20,
            ..config()
        },
        file_backend(),
        false,
    );
    log.set_config(config());
    write_rounds(&mut log, 6, 40, NOW - 10_000);
    let info = whole_log(&log, NOW);
    let task = log.prepare_clean(&info).unwrap().unwrap();
    let out = task.run(&settings(), NOW, &mut |_| true).unwrap();
    // Meanwhile DeleteRecords removes the first segments.
    let hw = log.log_end_offset();
    log.delete_records(100, hw, NOW).unwrap();
    let before = records(&log);
    let stats = log.finish_clean(out, NOW).unwrap();
    assert!(stats.groups_skipped >= 1);
    check_compacted(&before, &records(&log));
    assert!(records(&log).iter().all(|r| r.0 >= 100));
    let leftovers = fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            let n = e.as_ref().unwrap().file_name().into_string().unwrap();
            n.ends_with(".cleaned") || n.ends_with(".swap")
        })
        .count();
    assert_eq!(leftovers, 0);
}

#[test]
fn appends_and_rolls_during_a_pass_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config(), file_backend(), false);
    write_rounds(&mut log, 8, 30, NOW - 10_000);
    let info = whole_log(&log, NOW);
    let task = log.prepare_clean(&info).unwrap().unwrap();
    // The pass runs without the log: the log keeps taking appends, and rolls.
    let segments_before = log.segment_count();
    write_named(&mut log, "late", 8, 30, NOW - 1_000);
    assert!(log.segment_count() > segments_before);
    let before = records(&log);
    let out = task.run(&settings(), NOW, &mut |_| true).unwrap();
    let stats = log.finish_clean(out, NOW).unwrap();
    assert_eq!(stats.groups_skipped, 0);
    let after = records(&log);
    check_compacted(&before, &after);
    // Everything appended during the pass is there, untouched.
    let late_before: Vec<_> = before.iter().filter(|r| r.1.starts_with(b"late")).collect();
    let late_after: Vec<_> = after.iter().filter(|r| r.1.starts_with(b"late")).collect();
    assert_eq!(late_before, late_after);
    log.close().unwrap();
    let log = open(dir.path(), config(), file_backend(), false);
    assert_eq!(records(&log), after);
}

#[test]
fn a_truncation_during_a_pass_drops_the_swap() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), config(), file_backend(), false);
    write_rounds(&mut log, 8, 30, NOW - 10_000);
    let info = whole_log(&log, NOW);
    let task = log.prepare_clean(&info).unwrap().unwrap();
    // A follower-style truncation into the sealed part replaces the segment it cuts.
    log.truncate_to(info.first_uncleanable_offset / 2, NOW)
        .unwrap();
    let before = records(&log);
    let out = task.run(&settings(), NOW, &mut |_| true).unwrap();
    let stats = log.finish_clean(out, NOW).unwrap();
    assert!(stats.groups_skipped >= 1);
    assert_eq!(
        stats.groups_swapped, 0,
        "the whole pass goes: its map saw truncated records"
    );
    assert_eq!(records(&log), before);
    let leftovers = fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| {
            let n = e.as_ref().unwrap().file_name().into_string().unwrap();
            n.ends_with(".cleaned") || n.ends_with(".swap")
        })
        .count();
    assert_eq!(leftovers, 0);
}
