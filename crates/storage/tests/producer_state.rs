//! Idempotent-producer state through the `Log`: duplicates, sequence and epoch errors, snapshots,
//! reopen after a clean close or a crash, truncation, follower appends. Every test runs against
//! the real `FileBackend` and a `FaultyBackend` with short writes (which correct callers never
//! notice).
#![allow(clippy::unwrap_used)]

mod common;

use std::fs;
use std::path::Path;
use std::sync::Arc;

use common::*;
use rafka_records::BatchBuilder;
use rafka_storage::{
    AppendInfo, Backend, Log, LogConfig, ProducerInfo, ProducerStateManager, StorageError,
};

backend_suite!(
    [file_backend, faulty_backend_short_writes]
    duplicate_retry_returns_original_offsets,
    out_of_order_and_stale_epoch_are_refused,
    failed_append_changes_nothing,
    state_survives_clean_close,
    crash_without_snapshot_rebuilds_by_replay,
    crash_with_snapshot_older_than_log_end,
    corrupt_snapshot_is_ignored,
    snapshot_past_the_recovered_end_is_deleted,
    clean_open_without_snapshot_starts_empty,
    truncation_rebuilds_state,
    truncate_fully_forgets_producers,
    follower_appends_track_state_and_markers,
    snapshots_follow_rolls_and_only_two_are_kept,
    expiry_and_active_producers,
    snapshot_file_matches_kafka_format,
);

/// One idempotent batch: `records` records with sequences from `seq`, timestamps ts, ts+1, ...
fn pbatch(pid: i64, epoch: i16, seq: i32, records: usize, ts: i64) -> Vec<u8> {
    let mut b = BatchBuilder::new(0).producer(pid, epoch, seq);
    for i in 0..records {
        b = b.record(None, Some(&[b'v'; 200]), &[], ts + i as i64);
    }
    b.build()
}

/// Offsets of the `.snapshot` files in `dir`, ascending.
fn snapshot_offsets(dir: &Path) -> Vec<i64> {
    segment_files(dir, ".snapshot")
        .iter()
        .map(|p| {
            let name = p.file_name().unwrap().to_str().unwrap();
            assert_eq!(name.len(), 20 + ".snapshot".len(), "{name}");
            name[..20].parse().unwrap()
        })
        .collect()
}

fn snapshot_path(dir: &Path, offset: i64) -> std::path::PathBuf {
    dir.join(format!("{offset:020}.snapshot"))
}

fn open_at(dir: &Path, b: &Arc<dyn Backend>, clean: bool) -> Log {
    open(dir, small_config(), b.clone(), clean)
}

/// Appends `n` batches of 2 records from producer `pid` (epoch 0), sequences 0, 2, 4, ...
/// Returns each batch's (first, last) offset.
fn produce(log: &mut Log, pid: i64, n: i32) -> Vec<(i64, i64)> {
    (0..n)
        .map(|i| {
            let info = append(log, pbatch(pid, 0, i * 2, 2, 1_000 + i64::from(i)));
            assert!(!info.duplicate);
            (info.base_offset, info.last_offset)
        })
        .collect()
}

fn assert_duplicate(log: &mut Log, bytes: Vec<u8>, offsets: (i64, i64)) {
    let end = log.log_end_offset();
    let size = log.size_bytes();
    let info = append(log, bytes);
    assert!(info.duplicate, "{info:?}");
    assert_eq!((info.base_offset, info.last_offset), offsets);
    assert_eq!(info.bytes, 0);
    assert_eq!((log.log_end_offset(), log.size_bytes()), (end, size));
}

fn duplicate_retry_returns_original_offsets(b: Arc<dyn Backend>) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default(), b, false);
    append(&mut log, batch(3, 0, 10));
    let first = append(&mut log, pbatch(1, 0, 0, 3, 100));
    assert_eq!((first.base_offset, first.last_offset), (3, 5));
    assert!(!first.duplicate);
    let second = append(&mut log, pbatch(1, 0, 3, 2, 200));
    assert_eq!((second.base_offset, second.last_offset), (6, 7));
    let stored = log
        .read(3, 1 << 20, i64::MAX, true)
        .unwrap()
        .records
        .to_vec();

    let mut retry = pbatch(1, 0, 0, 3, 100);
    let untouched = retry.clone();
    let info = log.append(&mut retry, 7, NOW).unwrap();
    assert_eq!(
        info,
        AppendInfo {
            base_offset: 3,
            last_offset: 5,
            max_timestamp: 102,
            offset_of_max_timestamp: 5,
            // Kafka reports the original batch's timestamp here, even for CreateTime.
            log_append_time_ms: Some(102),
            log_start_offset: 0,
            bytes: 0,
            duplicate: true,
        }
    );
    // Nothing was stamped, written, or added to the epoch cache.
    assert_eq!(retry, untouched);
    assert!(log.leader_epoch_entries().iter().all(|e| e.epoch != 7));
    assert_eq!(log.log_end_offset(), 8);
    let now = log
        .read(3, 1 << 20, i64::MAX, true)
        .unwrap()
        .records
        .to_vec();
    assert_eq!(now, stored);

    assert_duplicate(&mut log, pbatch(1, 0, 3, 2, 200), (6, 7));
    // And the producer goes on where it was.
    let next = append(&mut log, pbatch(1, 0, 5, 1, 300));
    assert_eq!((next.base_offset, next.duplicate), (8, false));
}

fn out_of_order_and_stale_epoch_are_refused(b: Arc<dyn Backend>) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default(), b, false);
    append(&mut log, pbatch(1, 0, 0, 2, 0));
    let mut gap = pbatch(1, 0, 5, 1, 0);
    let err = log.append(&mut gap, 0, NOW).unwrap_err();
    assert!(
        matches!(
            err,
            StorageError::OutOfOrderSequence {
                producer_id: 1,
                producer_epoch: 0,
                current_epoch: 0,
                first_sequence: 5,
                expected_sequence: 2,
            }
        ),
        "{err:?}"
    );
    assert!(err
        .to_string()
        .contains("out of order sequence number for producer 1"));
    // A bumped epoch has to start at 0.
    assert!(matches!(
        log.append(&mut pbatch(1, 1, 2, 1, 0), 0, NOW),
        Err(StorageError::OutOfOrderSequence {
            expected_sequence: 0,
            ..
        })
    ));
    assert_eq!(append(&mut log, pbatch(1, 1, 0, 1, 0)).base_offset, 2);
    let err = log.append(&mut pbatch(1, 0, 2, 1, 0), 0, NOW).unwrap_err();
    assert!(
        matches!(
            err,
            StorageError::InvalidProducerEpoch {
                producer_id: 1,
                producer_epoch: 0,
                current_epoch: 1,
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("older than its current epoch 1"));
    assert_eq!(log.log_end_offset(), 3);
    // The log stays usable (these are client errors, not storage failures).
    assert_eq!(append(&mut log, pbatch(1, 1, 1, 1, 0)).base_offset, 3);
}

fn failed_append_changes_nothing(b: Arc<dyn Backend>) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default(), b, false);
    append(&mut log, pbatch(1, 0, 0, 1, 0));
    // Two batches in one append: the first fine, the second out of order: neither goes in.
    let mut two = pbatch(1, 0, 1, 1, 0);
    two.extend(pbatch(1, 0, 9, 1, 0));
    let size = log.size_bytes();
    assert!(matches!(
        log.append(&mut two, 0, NOW),
        Err(StorageError::OutOfOrderSequence { .. })
    ));
    assert_eq!((log.log_end_offset(), log.size_bytes()), (1, size));
    // The state did not move either: sequence 1 is still next.
    assert_eq!(append(&mut log, pbatch(1, 0, 1, 1, 0)).base_offset, 1);
    // Non-idempotent batches are never checked.
    append(&mut log, batch(2, 0, 10));
    append(&mut log, batch(2, 0, 10));
    assert_eq!(log.active_producers().len(), 1);
}

fn state_survives_clean_close(b: Arc<dyn Backend>) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open_at(dir.path(), &b, false);
    let p1 = produce(&mut log, 1, 30);
    let p2 = produce(&mut log, 2, 3);
    assert!(log.segment_count() > 2);
    let before = log.active_producers();
    let end = log.log_end_offset();
    log.close().unwrap();
    let snaps = snapshot_offsets(dir.path());
    assert_eq!(snaps.last(), Some(&end));
    assert!(snaps.len() <= 2);

    let mut log = open_at(dir.path(), &b, true);
    assert_eq!(log.active_producers(), before);
    assert_eq!(snapshot_offsets(dir.path()), snaps);
    assert_duplicate(&mut log, pbatch(2, 0, 4, 2, 0), p2[2]);
    assert_duplicate(&mut log, pbatch(1, 0, 58, 2, 0), p1[29]);
    assert!(matches!(
        log.append(&mut pbatch(1, 0, 61, 1, 0), 0, NOW),
        Err(StorageError::OutOfOrderSequence { .. })
    ));
    assert!(!append(&mut log, pbatch(1, 0, 60, 1, 0)).duplicate);
}

fn crash_without_snapshot_rebuilds_by_replay(b: Arc<dyn Backend>) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default(), b.clone(), false);
    let p1 = produce(&mut log, 1, 8);
    let p2 = produce(&mut log, 2, 2);
    append(&mut log, batch(3, 0, 10));
    let before = log.active_producers();
    let end = log.log_end_offset();
    drop(log); // no close: a crash
    assert!(snapshot_offsets(dir.path()).is_empty());

    let mut log = open(dir.path(), LogConfig::default(), b, false);
    assert_eq!(log.active_producers(), before);
    // The rebuilt state is snapshotted at the log end right away.
    assert_eq!(snapshot_offsets(dir.path()), vec![end]);
    // Replay caches up to five batches per producer, like the original appends did.
    for i in 3..8 {
        assert_duplicate(&mut log, pbatch(1, 0, i * 2, 2, 0), p1[i as usize]);
    }
    assert_duplicate(&mut log, pbatch(2, 0, 2, 2, 0), p2[1]);
    assert!(matches!(
        log.append(&mut pbatch(1, 0, 4, 2, 0), 0, NOW),
        Err(StorageError::OutOfOrderSequence { .. })
    ));
}

fn crash_with_snapshot_older_than_log_end(b: Arc<dyn Backend>) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open_at(dir.path(), &b, false);
    let p1 = produce(&mut log, 1, 40);
    let active_base = {
        let snaps = snapshot_offsets(dir.path());
        *snaps.last().unwrap()
    };
    let end = log.log_end_offset();
    assert!(active_base < end, "batches after the last roll");
    let before = log.active_producers();
    drop(log);

    // Unclean, with the recovery point at the active segment: the sealed ones are trusted.
    let mut log = open_with(dir.path(), small_config(), b.clone(), active_base, 0, false);
    assert_eq!(log.active_producers(), before);
    assert_eq!(snapshot_offsets(dir.path()).last(), Some(&end));
    assert_duplicate(&mut log, pbatch(1, 0, 78, 2, 0), p1[39]);
    assert!(!append(&mut log, pbatch(1, 0, 80, 1, 0)).duplicate);
}

fn corrupt_snapshot_is_ignored(b: Arc<dyn Backend>) {
    type Damage = fn(&mut Vec<u8>);
    let damages: [(&str, Damage); 4] = [
        ("flipped byte", |v| v[20] ^= 0x40),
        ("torn", |v| v.truncate(7)),
        ("empty", |v| v.clear()),
        ("bad version", |v| v[1] = 9),
    ];
    for (what, damage) in damages {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open_at(dir.path(), &b, false);
        let p1 = produce(&mut log, 1, 25);
        let before = log.active_producers();
        let end = log.log_end_offset();
        log.close().unwrap();
        let path = snapshot_path(dir.path(), end);
        let mut bytes = fs::read(&path).unwrap();
        damage(&mut bytes);
        fs::write(&path, &bytes).unwrap();

        // Even after a clean shutdown: a snapshot existed, so this is no upgrade; rebuild.
        let mut log = open_at(dir.path(), &b, true);
        assert_eq!(log.active_producers(), before, "{what}");
        // The damaged file was replaced by a good snapshot of the rebuilt state.
        let good = fs::read(&path).unwrap();
        let state = ProducerStateManager::from_snapshot(&good).unwrap();
        assert_eq!(state.active_producers(), before, "{what}");
        assert_duplicate(&mut log, pbatch(1, 0, 48, 2, 0), p1[24]);
    }
}

fn snapshot_past_the_recovered_end_is_deleted(b: Arc<dyn Backend>) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default(), b.clone(), false);
    let p1 = produce(&mut log, 1, 4);
    let end = log.log_end_offset();
    log.close().unwrap();
    assert_eq!(snapshot_offsets(dir.path()), vec![end]);
    // A crash tore the last batch after the snapshot was written.
    let seg = segment_files(dir.path(), ".log").pop().unwrap();
    let len = fs::metadata(&seg).unwrap().len();
    fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len(len - 5)
        .unwrap();

    let mut log = open(dir.path(), LogConfig::default(), b, false);
    assert_eq!(log.log_end_offset(), p1[3].0);
    assert_eq!(snapshot_offsets(dir.path()), vec![p1[3].0]);
    let state = log.active_producers();
    assert_eq!(state[0].last_sequence, 5);
    // The lost batch is no duplicate: it is written again, at the same offsets.
    let info = append(&mut log, pbatch(1, 0, 6, 2, 0));
    assert_eq!(
        (info.duplicate, info.base_offset, info.last_offset),
        (false, p1[3].0, p1[3].1)
    );
}

fn clean_open_without_snapshot_starts_empty(b: Arc<dyn Backend>) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default(), b.clone(), false);
    produce(&mut log, 1, 3);
    let end = log.log_end_offset();
    drop(log);
    // A log from before producer state was kept, shut down cleanly: like Kafka's upgrade path,
    // no scan; producers start unknown (and are accepted at any sequence).
    let mut log = open(dir.path(), LogConfig::default(), b, true);
    assert!(log.active_producers().is_empty());
    assert_eq!(snapshot_offsets(dir.path()), vec![end]);
    assert!(!append(&mut log, pbatch(1, 0, 100, 1, 0)).duplicate);
}

fn truncation_rebuilds_state(b: Arc<dyn Backend>) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open_at(dir.path(), &b, false);
    let p1 = produce(&mut log, 1, 60);
    produce(&mut log, 2, 2);
    assert!(log.segment_count() > 4);

    // Into the active segment or a sealed one, past or before the newest snapshot.
    for cut in [55usize, 30, 12] {
        let end = p1[cut].0;
        log.truncate_to(end + 1, NOW).unwrap();
        assert_eq!(log.log_end_offset(), end);
        let snaps = snapshot_offsets(dir.path());
        assert!(snaps.iter().all(|&s| s <= end), "{snaps:?} past {end}");
        let state = log.active_producers();
        assert_eq!(state.len(), 1, "producer 2 went with its batches");
        assert_eq!(state[0].last_sequence, cut as i32 * 2 - 1);
        assert_duplicate(
            &mut log,
            pbatch(1, 0, (cut as i32 - 1) * 2, 2, 0),
            p1[cut - 1],
        );
        // The next batch is new again, and lands where it was.
        let info = append(
            &mut log,
            pbatch(1, 0, cut as i32 * 2, 2, 1_000 + cut as i64),
        );
        assert_eq!((info.duplicate, info.base_offset), (false, p1[cut].0));
        log.truncate_to(end, NOW).unwrap();
    }
    // The rebuilt state survives a crash and a clean close alike.
    let before = log.active_producers();
    drop(log);
    let log = open_at(dir.path(), &b, false);
    assert_eq!(log.active_producers(), before);
    log.close().unwrap();
    let mut log = open_at(dir.path(), &b, true);
    assert_eq!(log.active_producers(), before);
    // Producer 2 is unknown again: its old first batch is simply new.
    assert!(!append(&mut log, pbatch(2, 0, 0, 2, 0)).duplicate);
}

fn truncate_fully_forgets_producers(b: Arc<dyn Backend>) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open_at(dir.path(), &b, false);
    produce(&mut log, 1, 30);
    assert!(!snapshot_offsets(dir.path()).is_empty());
    log.truncate_fully_and_start_at(5_000, NOW).unwrap();
    assert!(log.active_producers().is_empty());
    assert!(snapshot_offsets(dir.path()).is_empty());
    assert_eq!(append(&mut log, pbatch(1, 0, 7, 1, 0)).base_offset, 5_000);
    log.close().unwrap();
    let log = open_with(dir.path(), small_config(), b, 5_000, 5_000, true);
    assert_eq!(log.active_producers()[0].last_sequence, 7);
}

/// A commit (or abort) marker as the transaction coordinator writes it.
fn marker(base: i64, pid: i64, epoch: i16, commit: bool, coordinator_epoch: i32) -> Vec<u8> {
    let mut value = vec![0, 0];
    value.extend_from_slice(&coordinator_epoch.to_be_bytes());
    BatchBuilder::new(base)
        .producer(pid, epoch, -1)
        .transactional(true)
        .control(true)
        .record(Some(&[0, 0, 0, u8::from(commit)]), Some(&value), &[], 5_000)
        .build()
}

fn follower_appends_track_state_and_markers(b: Arc<dyn Backend>) {
    let leader_dir = tempfile::tempdir().unwrap();
    let follower_dir = tempfile::tempdir().unwrap();
    let mut leader = open_at(leader_dir.path(), &b, false);
    let mut follower = open_at(follower_dir.path(), &b, false);
    let p1 = produce(&mut leader, 1, 20);
    append(&mut leader, batch(2, 0, 10));
    let txn = BatchBuilder::new(0)
        .producer(9, 4, 0)
        .transactional(true)
        .record(None, Some(b"in a transaction"), &[], 4_000)
        .build();
    let txn_info = append(&mut leader, txn);
    // Copy everything to the follower, as replication would.
    replicate(&leader, &mut follower, 1 << 20);
    assert_eq!(follower.active_producers(), leader.active_producers());
    let open_txn = follower
        .active_producers()
        .into_iter()
        .find(|p| p.producer_id == 9)
        .unwrap();
    assert_eq!(
        open_txn.current_txn_start_offset,
        Some(txn_info.base_offset)
    );

    // The coordinator's commit marker closes the transaction and records its epoch.
    let end = follower.log_end_offset();
    follower
        .append_stamped(&marker(end, 9, 4, true, 17), NOW)
        .unwrap();
    let want = ProducerInfo {
        producer_id: 9,
        producer_epoch: 4,
        last_sequence: 0,
        last_timestamp: 5_000,
        coordinator_epoch: 17,
        current_txn_start_offset: None,
    };
    let find = |log: &Log| {
        log.active_producers()
            .into_iter()
            .find(|p| p.producer_id == 9)
            .unwrap()
    };
    assert_eq!(find(&follower), want);
    // Replay after a crash reads the marker back from the log.
    drop(follower);
    let mut follower = open_at(follower_dir.path(), &b, false);
    assert_eq!(find(&follower), want);
    // The follower becomes leader: a producer retry is answered from the replicated state.
    assert_duplicate(&mut follower, pbatch(1, 0, 38, 2, 0), p1[19]);
}

fn snapshots_follow_rolls_and_only_two_are_kept(b: Arc<dyn Backend>) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open_at(dir.path(), &b, false);
    let mut seen_rolls = 0;
    let mut segments = log.segment_count();
    for i in 0..80 {
        append(&mut log, pbatch(1, 0, i * 2, 2, 0));
        let snaps = snapshot_offsets(dir.path());
        assert!(snaps.len() <= 2, "{snaps:?}");
        if log.segment_count() > segments {
            segments = log.segment_count();
            seen_rolls += 1;
            // The roll's snapshot is named after the new segment's base offset.
            let base = base_offset_of(&segment_files(dir.path(), ".log").pop().unwrap());
            assert_eq!(snaps.last(), Some(&base));
            let state = ProducerStateManager::from_snapshot(
                &fs::read(snapshot_path(dir.path(), base)).unwrap(),
            )
            .unwrap();
            // It holds the state before the batch that started the new segment.
            assert_eq!(state.active_producers()[0].last_sequence, i * 2 - 1);
        }
    }
    assert!(seen_rolls > 3);
    // The fsync of roll snapshots rides along with the sealed-segment flush.
    let flush = log.sealed_flush().unwrap();
    let result = flush.run();
    log.finish_sealed_flush(flush, result).unwrap();
    log.flush().unwrap();
}

fn expiry_and_active_producers(b: Arc<dyn Backend>) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default(), b, false);
    append(&mut log, pbatch(1, 0, 0, 1, 10_000));
    append(&mut log, pbatch(2, 3, 0, 4, 50_000));
    assert_eq!(
        log.active_producers(),
        vec![
            ProducerInfo {
                producer_id: 1,
                producer_epoch: 0,
                last_sequence: 0,
                last_timestamp: 10_000,
                coordinator_epoch: -1,
                current_txn_start_offset: None,
            },
            ProducerInfo {
                producer_id: 2,
                producer_epoch: 3,
                last_sequence: 3,
                last_timestamp: 50_003,
                coordinator_epoch: -1,
                current_txn_start_offset: None,
            },
        ]
    );
    assert_eq!(log.expire_producers(20_000, 10_001), 0);
    assert_eq!(log.expire_producers(20_000, 10_000), 1);
    assert_eq!(log.active_producers().len(), 1);
    // Forgotten: any sequence is accepted, and the retry of its old batch is no duplicate.
    assert!(!append(&mut log, pbatch(1, 0, 0, 1, 10_000)).duplicate);
}

fn snapshot_file_matches_kafka_format(b: Arc<dyn Backend>) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), LogConfig::default(), b, false);
    let info = append(&mut log, pbatch(1000, 3, 10, 5, 1_700_000_000_119));
    assert_eq!((info.base_offset, info.last_offset), (0, 4));
    log.close().unwrap();
    let bytes = fs::read(dir.path().join("00000000000000000005.snapshot")).unwrap();
    // Kafka's ProducerSnapshot v1 by hand; CRC-32C over bytes 6.. checked with Java's CRC32C.
    let golden = [
        "0001",             // version
        "d58ad17a",         // CRC-32C
        "00000001",         // one producer
        "00000000000003e8", // producer id 1000
        "0003",             // epoch 3
        "0000000e",         // last sequence 14
        "0000000000000004", // last offset 4
        "00000004",         // offset delta 4
        "0000018bcfe5687b", // timestamp 1_700_000_000_123 (the batch max)
        "ffffffff",         // coordinator epoch -1
        "ffffffffffffffff", // no open transaction
    ]
    .concat();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, golden);
}

/// A machine crash in the middle of a roll's snapshot (written without fsync): the torn file
/// is found corrupt at the next open and the state is rebuilt without it.
#[test]
fn torn_roll_snapshot_after_a_crash() {
    use rafka_storage::{Faults, FaultyBackend};

    // A dry run finds the append that rolls and the bytes written before it.
    let dry = tempfile::tempdir().unwrap();
    let (counter, backend) = faulty();
    let mut log = open(dry.path(), small_config(), backend, false);
    let mut rolled_at = None;
    for i in 0..40 {
        let before = counter.bytes_written();
        let segments = log.segment_count();
        append(&mut log, pbatch(1, 0, i * 2, 2, 0));
        if log.segment_count() > segments {
            rolled_at = Some((i, before));
            break;
        }
    }
    let (roll_batch, bytes_before) = rolled_at.unwrap();
    drop(log);

    // The same appends again, with the "power" going out 13 bytes into the snapshot.
    let dir = tempfile::tempdir().unwrap();
    let crashing = FaultyBackend::new();
    crashing.set_faults(Faults {
        crash_after_bytes: Some(bytes_before + 13),
        ..Default::default()
    });
    let mut log = open(dir.path(), small_config(), Arc::new(crashing), false);
    let mut offsets = Vec::new();
    for i in 0..=roll_batch {
        let info = append(&mut log, pbatch(1, 0, i * 2, 2, 0));
        offsets.push((info.base_offset, info.last_offset));
    }
    drop(log);
    let roll_base = offsets[roll_batch as usize].0;
    assert_eq!(
        fs::metadata(snapshot_path(dir.path(), roll_base))
            .unwrap()
            .len(),
        13
    );

    // Reboot.
    let mut log = open(dir.path(), small_config(), file_backend(), false);
    assert_eq!(log.log_end_offset(), roll_base);
    let state = log.active_producers();
    assert_eq!(state[0].last_sequence, roll_batch * 2 - 1);
    let good = ProducerStateManager::from_snapshot(
        &fs::read(snapshot_path(dir.path(), roll_base)).unwrap(),
    )
    .unwrap();
    assert_eq!(good.active_producers(), state);
    assert_duplicate(
        &mut log,
        pbatch(1, 0, (roll_batch - 1) * 2, 2, 0),
        offsets[roll_batch as usize - 1],
    );
}
