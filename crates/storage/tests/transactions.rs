//! Transactions through the `Log`: transactional batches, end-transaction markers, the first
//! unstable / last stable offset, the `.txnindex` files and READ_COMMITTED lookups, across rolls,
//! restarts (clean and crashed), lost or damaged indexes, truncation and replication. Every
//! suite test runs against the real `FileBackend` and a `FaultyBackend` with short writes.
//!
//! Most checks compare the log with an independent reading of its own batches (`model`): which
//! transactions are open, and which aborted ones the index must hold, with which last stable
//! offsets.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use common::*;
use rafka_records::{batches, BatchBuilder};
use rafka_storage::producer_state::{end_txn_marker_batch, TxnMarker};
use rafka_storage::{AbortedTxn, AppendInfo, AppendOrigin, Backend, Faults, Log, StorageError};

backend_suite!(
    [file_backend, faulty_backend_short_writes]
    markers_close_transactions_and_move_the_first_unstable_offset,
    last_stable_offset_waits_for_the_high_watermark,
    non_transactional_batch_during_a_transaction_is_refused,
    stale_markers_are_refused,
    coordinator_appends_skip_sequence_checks,
    txnindex_file_matches_kafka_format,
    aborted_transactions_across_segments,
    restart_keeps_transactions_and_indexes,
    lost_or_damaged_txnindex_is_rebuilt,
    truncation_drops_aborts_and_reopens_transactions,
    follower_builds_the_same_indexes,
);

/// One transactional batch of producer `pid`: `records` records with sequences from `seq`.
fn tbatch(pid: i64, epoch: i16, seq: i32, records: usize, ts: i64) -> Vec<u8> {
    let mut b = BatchBuilder::new(0)
        .producer(pid, epoch, seq)
        .transactional(true);
    for i in 0..records {
        b = b.record(None, Some(&[b't'; 150]), &[], ts + i as i64);
    }
    b.build()
}

/// One idempotent, non-transactional batch.
fn pbatch(pid: i64, epoch: i16, seq: i32, records: usize) -> Vec<u8> {
    let mut b = BatchBuilder::new(0).producer(pid, epoch, seq);
    for _ in 0..records {
        b = b.record(None, Some(&[b'p'; 150]), &[], 1_000);
    }
    b.build()
}

fn end_txn(log: &mut Log, pid: i64, epoch: i16, commit: bool) -> AppendInfo {
    log.append_txn_marker(pid, epoch, 0, commit, 0, NOW)
        .unwrap()
}

fn all_aborted(log: &Log) -> Vec<AbortedTxn> {
    log.aborted_transactions(log.log_start_offset(), i64::MAX)
}

/// What a plain reading of the log's batches says: the open transactions as (first offset,
/// producer id), oldest first, and the aborted transactions with the last stable offset each
/// abort had (the oldest other open transaction, or the marker's offset + 1).
fn model(log: &Log) -> (Vec<(i64, i64)>, Vec<AbortedTxn>) {
    let mut open: BTreeMap<i64, i64> = BTreeMap::new();
    let mut aborted = Vec::new();
    let mut at = log.log_start_offset();
    while at < log.log_end_offset() {
        let r = log.read(at, 1 << 20, i64::MAX, true).unwrap();
        if r.records.is_empty() {
            // Nothing at or after `at`: a crash kept later (empty) segments, a gap to the end.
            break;
        }
        for b in batches(&r.records) {
            let b = b.unwrap();
            let h = *b.header();
            if !h.has_producer_id() {
                continue;
            }
            if h.is_control() {
                let record = b.records().next().unwrap().unwrap();
                let key = record.key.unwrap();
                let abort = i16::from_be_bytes([key[2], key[3]]) == 0;
                if let Some(first) = open.remove(&h.producer_id) {
                    if abort {
                        aborted.push(AbortedTxn {
                            producer_id: h.producer_id,
                            first_offset: first,
                            last_offset: h.base_offset,
                            last_stable_offset: open
                                .values()
                                .min()
                                .copied()
                                .unwrap_or(h.base_offset + 1),
                        });
                    }
                }
            } else if h.is_transactional() {
                open.entry(h.producer_id).or_insert(h.base_offset);
            }
        }
        assert!(r.next_offset > at);
        at = r.next_offset;
    }
    let mut open: Vec<(i64, i64)> = open.into_iter().map(|(pid, f)| (f, pid)).collect();
    open.sort_unstable();
    (open, aborted)
}

/// The log's transaction state agrees with [`model`].
fn assert_consistent(log: &Log) -> (Vec<(i64, i64)>, Vec<AbortedTxn>) {
    let (open, aborted) = model(log);
    assert_eq!(
        log.first_unstable_offset(),
        open.first().map(|&(f, _)| f),
        "open transactions {open:?}"
    );
    let mut described: Vec<(i64, i64)> = log
        .active_producers()
        .iter()
        .filter_map(|p| p.current_txn_start_offset.map(|f| (f, p.producer_id)))
        .collect();
    described.sort_unstable();
    assert_eq!(described, open);
    assert_eq!(all_aborted(log), aborted);
    (open, aborted)
}

/// All `.txnindex` files of `dir`, in segment order, concatenated.
fn txnindex_bytes(dir: &Path) -> Vec<u8> {
    segment_files(dir, ".txnindex")
        .iter()
        .flat_map(|p| fs::read(p).unwrap())
        .collect()
}

fn entries_bytes(aborted: &[AbortedTxn]) -> Vec<u8> {
    aborted.iter().flat_map(|t| t.to_bytes()).collect()
}

/// A deterministic mix of plain batches, transactional batches of four producers, commits and
/// aborts (also for producers with nothing open). Sequences continue across calls.
struct Workload {
    rng: u64,
    seqs: [i32; 4],
}

impl Workload {
    fn new(seed: u64) -> Self {
        Workload {
            rng: seed,
            seqs: [0; 4],
        }
    }

    fn next(&mut self, n: u64) -> u64 {
        self.rng = self
            .rng
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.rng >> 33) % n
    }

    fn step(&mut self, log: &mut Log) {
        let pid = self.next(4) as usize;
        match self.next(10) {
            0 | 1 => {
                append(log, batch(1 + self.next(3) as usize, NOW, 100));
            }
            2..=6 => {
                let records = 1 + self.next(3) as usize;
                let bytes = tbatch(pid as i64 + 1, 0, self.seqs[pid], records, NOW);
                self.seqs[pid] += records as i32;
                append(log, bytes);
            }
            _ => {
                let commit = self.next(2) == 0;
                end_txn(log, pid as i64 + 1, 0, commit);
            }
        }
    }

    fn run(&mut self, log: &mut Log, steps: usize) {
        for _ in 0..steps {
            self.step(log);
        }
    }
}

fn markers_close_transactions_and_move_the_first_unstable_offset(b: Arc<dyn Backend>) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), Default::default(), b, false);
    append(&mut log, batch(3, 0, 10));
    assert_eq!(log.first_unstable_offset(), None);
    assert!(!log.has_ongoing_transaction(1, 0));
    assert_eq!(append(&mut log, tbatch(1, 0, 0, 2, 100)).base_offset, 3);
    assert_eq!(log.first_unstable_offset(), Some(3));
    assert!(log.has_ongoing_transaction(1, 0));
    // Another epoch's transaction is not this one.
    assert!(!log.has_ongoing_transaction(1, 1));
    assert_eq!(append(&mut log, tbatch(2, 0, 0, 2, 100)).base_offset, 5);
    // More of producer 1's transaction does not move its start.
    append(&mut log, tbatch(1, 0, 2, 1, 100));
    assert_eq!(log.first_unstable_offset(), Some(3));

    let info = log.append_txn_marker(1, 0, 4, true, 7, NOW).unwrap();
    assert_eq!((info.base_offset, info.last_offset), (8, 8));
    assert!(!log.has_ongoing_transaction(1, 0));
    assert_eq!(log.first_unstable_offset(), Some(5));
    // The marker is Kafka's control batch, stamped like any batch.
    let r = log.read(8, 1 << 20, i64::MAX, true).unwrap();
    let mut want = end_txn_marker_batch(1, 0, 4, true, NOW);
    rafka_records::stamp_batches(&mut want, 8, 7).unwrap();
    assert_eq!(r.records.to_vec(), want);
    let view = rafka_records::BatchView::parse_exact(&r.records).unwrap();
    view.verify_crc().unwrap();
    let h = view.header();
    assert!(h.is_control() && h.is_transactional());
    assert_eq!(
        (h.producer_id, h.producer_epoch, h.base_sequence),
        (1, 0, -1)
    );
    assert_eq!(
        TxnMarker::from_control_batch(&r.records).map(|m| (m.commit, m.coordinator_epoch)),
        Some((true, 4))
    );
    let p1 = log.active_producers()[0];
    assert_eq!(
        (
            p1.coordinator_epoch,
            p1.current_txn_start_offset,
            p1.last_timestamp
        ),
        (4, None, NOW)
    );
    assert!(all_aborted(&log).is_empty(), "a commit is not indexed");

    assert_eq!(end_txn(&mut log, 2, 0, false).base_offset, 9);
    assert_eq!(log.first_unstable_offset(), None);
    assert_eq!(
        all_aborted(&log),
        vec![AbortedTxn {
            producer_id: 2,
            first_offset: 5,
            last_offset: 9,
            last_stable_offset: 10,
        }]
    );
    // Markers without an open transaction (a retried WriteTxnMarkers, or a producer never seen
    // here) are written all the same, and index nothing.
    assert_eq!(end_txn(&mut log, 2, 0, false).base_offset, 10);
    let info = log.append_txn_marker(77, 3, 9, false, 7, NOW).unwrap();
    assert_eq!(info.base_offset, 11);
    assert_eq!(all_aborted(&log).len(), 1);
    let p77 = log.active_producers()[2];
    assert_eq!(
        (p77.producer_id, p77.producer_epoch, p77.coordinator_epoch),
        (77, 3, 9)
    );
    assert_consistent(&log);
}

fn last_stable_offset_waits_for_the_high_watermark(b: Arc<dyn Backend>) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), Default::default(), b, false);
    append(&mut log, batch(2, NOW, 10));
    assert_eq!(log.last_stable_offset(2), 2);
    append(&mut log, tbatch(1, 0, 0, 2, 0)); // 2..=3
    append(&mut log, tbatch(2, 0, 0, 1, 0)); // 4
                                             // Open transactions hold the LSO at their start, never above the high watermark.
    assert_eq!(log.last_stable_offset(1), 1);
    assert_eq!(log.last_stable_offset(5), 2);
    end_txn(&mut log, 1, 0, true); // 5
    assert_eq!(log.first_unstable_offset(), Some(4));
    // Decided, but its marker is not below the high watermark yet: still unstable (Kafka).
    assert_eq!(log.last_stable_offset(5), 2);
    assert_eq!(log.last_stable_offset(6), 4);
    end_txn(&mut log, 2, 0, false); // 6
    assert_eq!(log.first_unstable_offset(), None);
    assert_eq!(log.last_stable_offset(5), 2);
    assert_eq!(log.last_stable_offset(6), 4);
    assert_eq!(log.last_stable_offset(7), 7);
    log.on_high_watermark_updated(6);
    // Transaction 1 is forgotten (its marker is replicated); transaction 2 is not.
    assert_eq!(log.last_stable_offset(5), 4);
    assert_eq!(log.last_stable_offset(6), 4);
    log.on_high_watermark_updated(7);
    assert_eq!(log.last_stable_offset(6), 6);
}

fn non_transactional_batch_during_a_transaction_is_refused(b: Arc<dyn Backend>) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), Default::default(), b, false);
    append(&mut log, tbatch(1, 0, 0, 2, 0));
    let (end, size) = (log.log_end_offset(), log.size_bytes());
    let err = log.append(&mut pbatch(1, 0, 2, 1), 0, NOW).unwrap_err();
    assert!(
        matches!(
            err,
            StorageError::InvalidTxnState {
                producer_id: 1,
                offset: 2,
                txn_first_offset: 0,
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("non-transactional"));
    assert_eq!((log.log_end_offset(), log.size_bytes()), (end, size));
    // Opening and breaking a transaction in one append writes nothing either.
    let mut two = tbatch(2, 0, 0, 1, 0);
    two.extend(pbatch(2, 0, 1, 1));
    assert!(matches!(
        log.append(&mut two, 0, NOW),
        Err(StorageError::InvalidTxnState { producer_id: 2, .. })
    ));
    assert_eq!((log.log_end_offset(), log.size_bytes()), (end, size));
    assert_eq!(log.first_unstable_offset(), Some(0));
    // The transaction goes on, and after its marker plain batches are fine again.
    append(&mut log, tbatch(1, 0, 2, 1, 0));
    end_txn(&mut log, 1, 0, true);
    assert_eq!(append(&mut log, pbatch(1, 0, 3, 1)).base_offset, 4);
    assert_consistent(&log);
}

fn stale_markers_are_refused(b: Arc<dyn Backend>) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), Default::default(), b, false);
    append(&mut log, tbatch(1, 5, 0, 1, 0));
    let end = log.log_end_offset();
    let err = log.append_txn_marker(1, 4, 0, false, 0, NOW).unwrap_err();
    assert!(
        matches!(
            err,
            StorageError::InvalidProducerEpoch {
                producer_id: 1,
                producer_epoch: 4,
                current_epoch: 5,
            }
        ),
        "{err:?}"
    );
    assert_eq!(log.log_end_offset(), end);
    assert_eq!(log.first_unstable_offset(), Some(0));
    log.append_txn_marker(1, 5, 3, false, 0, NOW).unwrap();
    append(&mut log, tbatch(1, 5, 1, 1, 0));
    // A coordinator older than the one that wrote the last marker is a zombie.
    let err = log.append_txn_marker(1, 5, 2, true, 0, NOW).unwrap_err();
    assert!(
        matches!(
            err,
            StorageError::TransactionCoordinatorFenced {
                producer_id: 1,
                coordinator_epoch: 2,
                current_coordinator_epoch: 3,
            }
        ),
        "{err:?}"
    );
    assert_eq!(log.first_unstable_offset(), Some(2));
    // A bumped producer epoch (as the coordinator writes it when it fences a producer) is
    // fine, and fences the old epoch's batches.
    log.append_txn_marker(1, 6, 3, false, 0, NOW).unwrap();
    assert!(matches!(
        log.append(&mut tbatch(1, 5, 2, 1, 0), 0, NOW),
        Err(StorageError::InvalidProducerEpoch { .. })
    ));
    let (_, aborted) = assert_consistent(&log);
    assert_eq!(aborted.len(), 2);
}

fn coordinator_appends_skip_sequence_checks(b: Arc<dyn Backend>) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), Default::default(), b, false);
    // Transactional offset commits: the group coordinator writes them without sequences.
    for _ in 0..2 {
        let mut bytes = tbatch(4, 2, -1, 1, 0);
        let info = log
            .append_with_origin(&mut bytes, 0, AppendOrigin::Coordinator, NOW)
            .unwrap();
        assert!(!info.duplicate);
    }
    assert_eq!(log.log_end_offset(), 2);
    assert!(matches!(
        log.append_with_origin(
            &mut tbatch(4, 1, -1, 1, 0),
            0,
            AppendOrigin::Coordinator,
            NOW
        ),
        Err(StorageError::InvalidProducerEpoch { .. })
    ));
    end_txn(&mut log, 4, 2, true);
    assert_consistent(&log);
}

fn txnindex_file_matches_kafka_format(b: Arc<dyn Backend>) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = open(dir.path(), Default::default(), b, false);
    append(&mut log, batch(2, NOW, 10)); // 0..=1
    append(&mut log, tbatch(7, 0, 0, 1, NOW)); // 2
    append(&mut log, tbatch(9, 0, 0, 2, NOW)); // 3..=4
    end_txn(&mut log, 7, 0, false); // 5: producer 9 still open from 3
    end_txn(&mut log, 9, 0, false); // 6: nothing open any more
    log.close().unwrap();
    let bytes = fs::read(dir.path().join("00000000000000000000.txnindex")).unwrap();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    // Kafka's AbortedTxn, version 0: version, producer id, first, last, last stable offset.
    let golden = [
        "0000",
        "0000000000000007",
        "0000000000000002",
        "0000000000000005",
        "0000000000000003",
        "0000",
        "0000000000000009",
        "0000000000000003",
        "0000000000000006",
        "0000000000000007",
    ]
    .concat();
    assert_eq!(hex, golden);
}

/// Runs the workload on small segments; returns the log.
fn busy_log(dir: &Path, b: &Arc<dyn Backend>, seed: u64, steps: usize) -> Log {
    let mut log = open(dir, small_config(), b.clone(), false);
    Workload::new(seed).run(&mut log, steps);
    assert!(log.segment_count() > 5, "{}", log.segment_count());
    log
}

fn aborted_transactions_across_segments(b: Arc<dyn Backend>) {
    let dir = tempfile::tempdir().unwrap();
    let log = busy_log(dir.path(), &b, 7, 300);
    let (_, aborted) = assert_consistent(&log);
    assert!(aborted.len() > 10, "{}", aborted.len());
    assert!(
        aborted.iter().any(|t| log
            .aborted_transactions(t.last_offset, t.last_offset + 1)
            .len()
            == 1),
        "lookups find single aborts"
    );
    let end = log.log_end_offset();
    let check = |log: &Log| {
        for start in (0..end).step_by(7) {
            for upper in [start + 1, start + 5, start + 40, end] {
                let want: Vec<AbortedTxn> = aborted
                    .iter()
                    .filter(|t| t.last_offset >= start && t.first_offset < upper)
                    .copied()
                    .collect();
                assert_eq!(
                    log.aborted_transactions(start, upper),
                    want,
                    "[{start}, {upper})"
                );
            }
        }
    };
    check(&log);
    // Each segment has its file; together they hold every abort in order.
    let segments = segment_files(dir.path(), ".log").len();
    assert_eq!(segment_files(dir.path(), ".txnindex").len(), segments);
    log.close().unwrap();
    assert_eq!(txnindex_bytes(dir.path()), entries_bytes(&aborted));
    let log = open(dir.path(), small_config(), b, true);
    check(&log);
}

fn restart_keeps_transactions_and_indexes(b: Arc<dyn Backend>) {
    for seed in [1, 2, 3] {
        let dir = tempfile::tempdir().unwrap();
        let mut log = open(dir.path(), small_config(), b.clone(), false);
        let mut w = Workload::new(seed);
        w.run(&mut log, 250);
        let before = assert_consistent(&log);
        assert!(!before.0.is_empty(), "some transactions stay open");
        let producers = log.active_producers();
        // Clean.
        log.close().unwrap();
        assert_eq!(txnindex_bytes(dir.path()), entries_bytes(&before.1));
        let mut log = open(dir.path(), small_config(), b.clone(), true);
        assert_eq!(assert_consistent(&log), before);
        assert_eq!(log.active_producers(), producers);
        // More, then a crash: nothing closed, the active segment's new index entries never
        // written; with the recovery point at 0 every segment is recovered and its index
        // rebuilt.
        w.run(&mut log, 80);
        let before = assert_consistent(&log);
        let producers = log.active_producers();
        drop(log);
        let log = open(dir.path(), small_config(), b.clone(), false);
        assert_eq!(assert_consistent(&log), before);
        assert_eq!(log.active_producers(), producers);
        log.close().unwrap();
        assert_eq!(txnindex_bytes(dir.path()), entries_bytes(&before.1));
    }
    // A crash with a recovery point: the sealed segments below it are trusted, the rest rebuilt
    // from the newest snapshot below the first recovered segment.
    let dir = tempfile::tempdir().unwrap();
    let mut log = busy_log(dir.path(), &b, 4, 200);
    log.flush().unwrap();
    let recovery_point = log.recovery_point();
    // New producers (ids 100..=102), so their sequences start anywhere.
    let mut seqs = [0i32; 3];
    for i in 0..60usize {
        let p = i % 3;
        let pid = 100 + p as i64;
        if i % 4 == 3 {
            end_txn(&mut log, pid, 0, i % 8 == 3);
        } else {
            append(&mut log, tbatch(pid, 0, seqs[p], 2, NOW));
            seqs[p] += 2;
        }
    }
    let before = assert_consistent(&log);
    drop(log);
    let log = open_with(dir.path(), small_config(), b, recovery_point, 0, false);
    assert_eq!(assert_consistent(&log), before);
}

fn lost_or_damaged_txnindex_is_rebuilt(b: Arc<dyn Backend>) {
    let dir = tempfile::tempdir().unwrap();
    let log = busy_log(dir.path(), &b, 11, 300);
    let before = assert_consistent(&log);
    log.close().unwrap();
    let good = txnindex_bytes(dir.path());
    let files = segment_files(dir.path(), ".txnindex");
    let with_entries: Vec<&PathBuf> = files
        .iter()
        .filter(|p| fs::metadata(p).unwrap().len() > 0)
        .collect();
    assert!(with_entries.len() >= 4, "{with_entries:?}");
    // Deleted, torn, an unknown version, and entries of another segment.
    fs::remove_file(with_entries[0]).unwrap();
    let torn = fs::read(with_entries[1]).unwrap();
    fs::write(with_entries[1], &torn[..torn.len() - 3]).unwrap();
    let mut version = fs::read(with_entries[2]).unwrap();
    version[1] = 1;
    fs::write(with_entries[2], &version).unwrap();
    fs::copy(with_entries[2], with_entries[3]).unwrap();
    // And one for a segment that does not exist.
    let orphan = dir.path().join("00000000000099999999.txnindex");
    fs::write(&orphan, &good[..34]).unwrap();

    let log = open(dir.path(), small_config(), b.clone(), true);
    assert_eq!(assert_consistent(&log), before);
    assert!(!orphan.exists());
    log.close().unwrap();
    assert_eq!(txnindex_bytes(dir.path()), good);
    // The active segment's, too.
    fs::remove_file(files.last().unwrap()).unwrap();
    let log = open(dir.path(), small_config(), b, true);
    assert_eq!(assert_consistent(&log), before);
    log.close().unwrap();
    assert_eq!(txnindex_bytes(dir.path()), good);
}

fn truncation_drops_aborts_and_reopens_transactions(b: Arc<dyn Backend>) {
    let dir = tempfile::tempdir().unwrap();
    let mut log = busy_log(dir.path(), &b, 5, 300);
    let (_, aborted) = assert_consistent(&log);
    let n = aborted.len();
    assert!(n > 10);
    // An abort in the active segment, then further back into sealed ones.
    for t in [aborted[n - 1], aborted[n / 2], aborted[2]] {
        log.truncate_to(t.last_offset, NOW).unwrap();
        assert_eq!(log.log_end_offset(), t.last_offset);
        let (open, now_aborted) = assert_consistent(&log);
        assert!(
            open.contains(&(t.first_offset, t.producer_id)),
            "{t:?} open again"
        );
        assert!(now_aborted.iter().all(|a| a.last_offset < t.last_offset));
        // The abort goes in again where it was.
        let info = end_txn(&mut log, t.producer_id, 0, false);
        assert_eq!(info.base_offset, t.last_offset);
        let (_, again) = assert_consistent(&log);
        assert_eq!(again.last(), Some(&t));
        log.truncate_to(t.last_offset, NOW).unwrap();
    }
    let before = assert_consistent(&log);
    // Survives a crash and a clean restart, files included.
    drop(log);
    let log = open(dir.path(), small_config(), b.clone(), false);
    assert_eq!(assert_consistent(&log), before);
    log.close().unwrap();
    assert_eq!(txnindex_bytes(dir.path()), entries_bytes(&before.1));
    assert_eq!(
        segment_files(dir.path(), ".txnindex").len(),
        segment_files(dir.path(), ".log").len(),
        "deleted segments took their .txnindex along"
    );
    let log = open(dir.path(), small_config(), b, true);
    assert_eq!(assert_consistent(&log), before);
}

fn follower_builds_the_same_indexes(b: Arc<dyn Backend>) {
    let leader_dir = tempfile::tempdir().unwrap();
    let follower_dir = tempfile::tempdir().unwrap();
    let leader = busy_log(leader_dir.path(), &b, 13, 250);
    let mut follower = open(follower_dir.path(), small_config(), b.clone(), false);
    // Small fetches, several batches each, as replication copies them.
    replicate(&leader, &mut follower, 2_000);
    let want = assert_consistent(&leader);
    assert_eq!(assert_consistent(&follower), want);
    assert_eq!(
        follower.first_unstable_offset(),
        leader.first_unstable_offset()
    );
    leader.close().unwrap();
    follower.close().unwrap();
    assert_eq!(
        txnindex_bytes(follower_dir.path()),
        txnindex_bytes(leader_dir.path())
    );
}

/// Machine crashes at many points of a transactional workload, with the recovery point from
/// the last flush: what survives is a prefix of the log, and its transaction state (open
/// transactions, aborted index, rebuilt from snapshots and replay) matches that prefix.
#[test]
fn crash_images_keep_transactions() {
    /// The first part of the workload, on small segments, then a flush.
    fn flushed_start(dir: &Path, backend: Arc<dyn Backend>) -> (Log, Workload) {
        let mut log = open(dir, small_config(), backend, false);
        let mut w = Workload::new(21);
        w.run(&mut log, 60);
        log.flush().unwrap();
        (log, w)
    }

    // A dry run measures the bytes the workload writes.
    let dry = tempfile::tempdir().unwrap();
    let (counter, backend) = faulty();
    let (mut log, mut w) = flushed_start(dry.path(), backend);
    let flushed_at = counter.bytes_written();
    w.run(&mut log, 120);
    let total = counter.bytes_written();
    drop(log);

    for k in 0..12 {
        let limit = flushed_at + (total - flushed_at) * k / 11;
        let dir = tempfile::tempdir().unwrap();
        let (crashing, backend) = faulty();
        let (mut log, mut w) = flushed_start(dir.path(), backend);
        let recovery_point = log.recovery_point();
        crashing.set_faults(Faults {
            crash_after_bytes: Some(limit),
            ..Default::default()
        });
        w.run(&mut log, 120);
        drop(log);

        for rp in [recovery_point, 0] {
            let image = tempfile::tempdir().unwrap();
            copy_dir(dir.path(), image.path());
            let log = open_with(image.path(), small_config(), file_backend(), rp, 0, false);
            assert!(log.log_end_offset() >= recovery_point);
            let state = assert_consistent(&log);
            log.close().unwrap();
            assert_eq!(
                txnindex_bytes(image.path()),
                entries_bytes(&state.1),
                "k={k} rp={rp}"
            );
        }
    }
}
