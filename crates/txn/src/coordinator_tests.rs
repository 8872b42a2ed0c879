//! The state machine without sockets: time is a number, replies are values, and the log is a
//! vector the harness appends every output's records to, so a reload replays exactly what was
//! written.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;

use super::*;
use crate::records::{decode_record, decode_value, TransactionLogValue};
use crate::TransactionVersion;

const TIMEOUT: i32 = 60_000;
const COORD_EPOCH: i32 = 5;
const FIRST_PID: i64 = 1000;

type Log = Vec<(Vec<u8>, Option<Vec<u8>>)>;

struct Harness {
    c: TxnCoordinator,
    config: TxnConfig,
    log: Log,
    next_pid: Arc<AtomicI64>,
    reply: ReplyId,
}

fn pid_source(next: &Arc<AtomicI64>) -> ProducerIdSource {
    let next = Arc::clone(next);
    Box::new(move || Ok(next.fetch_add(1, Ordering::SeqCst)))
}

impl Harness {
    fn new(config: TxnConfig) -> Self {
        let next_pid = Arc::new(AtomicI64::new(FIRST_PID));
        let mut c = TxnCoordinator::new(config.clone(), pid_source(&next_pid));
        c.begin_load(0, COORD_EPOCH);
        let out = c.finish_load(0, 0);
        assert!(out.is_empty());
        Harness {
            c,
            config,
            log: Vec::new(),
            next_pid,
            reply: 0,
        }
    }

    fn default() -> Self {
        Harness::new(TxnConfig {
            num_partitions: 1,
            ..TxnConfig::default()
        })
    }

    /// Records the output's appends in the log, as a shell whose writes succeed would.
    fn write(&mut self, out: Output) -> Output {
        for a in &out.appends {
            assert_eq!(a.partition, 0);
            self.log.extend(a.records.iter().cloned());
        }
        out
    }

    fn next_reply(&mut self) -> ReplyId {
        self.reply += 1;
        self.reply
    }

    fn init_full(&mut self, now: i64, id: &str, timeout: i32, pid: i64, epoch: i16) -> Output {
        let r = self.next_reply();
        let out = self
            .c
            .init_producer_id(now, r, Some(id), timeout, pid, epoch);
        self.write(out)
    }

    fn init(&mut self, now: i64, id: &str) -> Result<ProducerIdAndEpoch, TxnError> {
        let out = self.init_full(now, id, TIMEOUT, -1, -1);
        init_reply(&out)
    }

    fn add(
        &mut self,
        now: i64,
        id: &str,
        p: ProducerIdAndEpoch,
        parts: &[(&str, i32)],
    ) -> (Result<(), TxnError>, Output) {
        let parts: Vec<(String, i32)> = parts.iter().map(|(t, n)| (t.to_string(), *n)).collect();
        let r = self.next_reply();
        let out = self
            .c
            .add_partitions_to_txn(now, r, id, p.producer_id, p.producer_epoch, &parts);
        let out = self.write(out);
        match only_reply(&out) {
            Reply::AddPartitions(res) => (res, out),
            other => panic!("unexpected {other:?}"),
        }
    }

    fn add_offsets(
        &mut self,
        now: i64,
        id: &str,
        p: ProducerIdAndEpoch,
        partition: i32,
    ) -> Result<(), TxnError> {
        let r = self.next_reply();
        let out = self
            .c
            .add_offsets_to_txn(now, r, id, p.producer_id, p.producer_epoch, partition);
        let out = self.write(out);
        match only_reply(&out) {
            Reply::AddOffsets(res) => res,
            other => panic!("unexpected {other:?}"),
        }
    }

    fn end(
        &mut self,
        now: i64,
        id: &str,
        p: ProducerIdAndEpoch,
        commit: bool,
    ) -> (Result<(), TxnError>, Output) {
        let r = self.next_reply();
        let out = self
            .c
            .end_txn(now, r, id, p.producer_id, p.producer_epoch, commit);
        let out = self.write(out);
        match only_reply(&out) {
            Reply::EndTxn(res) => (res.map(|_| ()), out),
            other => panic!("unexpected {other:?}"),
        }
    }

    /// EndTxn v5+ (Transactions V2): the reply's producer id and epoch.
    fn end_v2(
        &mut self,
        now: i64,
        id: &str,
        p: ProducerIdAndEpoch,
        commit: bool,
    ) -> (Result<ProducerIdAndEpoch, TxnError>, Output) {
        let r = self.next_reply();
        let out = self.c.end_txn_with_version(
            now,
            r,
            id,
            p.producer_id,
            p.producer_epoch,
            commit,
            TransactionVersion::V2,
        );
        let out = self.write(out);
        match only_reply(&out) {
            Reply::EndTxn(res) => (res, out),
            other => panic!("unexpected {other:?}"),
        }
    }

    /// The implicit add of a Produce v12+ (AddPartitionsToTxn v5, not verify-only).
    fn add_v2(
        &mut self,
        now: i64,
        id: &str,
        p: ProducerIdAndEpoch,
        parts: &[(&str, i32)],
    ) -> Result<(), TxnError> {
        let parts: Vec<(String, i32)> = parts.iter().map(|(t, n)| (t.to_string(), *n)).collect();
        let r = self.next_reply();
        let out = self.c.add_partitions_to_txn_with_version(
            now,
            r,
            id,
            p.producer_id,
            p.producer_epoch,
            &parts,
            TransactionVersion::V2,
        );
        let out = self.write(out);
        match only_reply(&out) {
            Reply::AddPartitions(res) => res,
            other => panic!("unexpected {other:?}"),
        }
    }

    fn markers_done(&mut self, now: i64, m: &WriteMarkers) -> Output {
        let out = self.c.markers_written(
            now,
            &m.transactional_id,
            m.producer_id,
            m.producer_epoch,
            m.coordinator_epoch,
        );
        self.write(out)
    }

    fn tick(&mut self, now: i64) -> Output {
        let out = self.c.tick(now);
        self.write(out)
    }

    /// A new coordinator (same producer-id source) loads the log at `coordinator_epoch`.
    fn reload(&mut self, now: i64, coordinator_epoch: i32) -> Output {
        let mut c = TxnCoordinator::new(self.config.clone(), pid_source(&self.next_pid));
        c.begin_load(0, coordinator_epoch);
        for (k, v) in &self.log {
            c.replay(
                0,
                decode_record(k, v.as_deref()).expect("our own records decode"),
            );
        }
        let out = c.finish_load(0, now);
        self.c = c;
        out
    }

    fn state(&self, id: &str) -> TransactionState {
        self.c.transaction(id).expect("known id").state
    }
}

fn only_reply(out: &Output) -> Reply {
    assert_eq!(out.replies.len(), 1, "{out:?}");
    out.replies[0].reply.clone()
}

fn init_reply(out: &Output) -> Result<ProducerIdAndEpoch, TxnError> {
    match only_reply(out) {
        Reply::InitProducerId(r) => r,
        other => panic!("unexpected {other:?}"),
    }
}

/// The values written by `out`, decoded.
fn written(out: &Output) -> Vec<(String, Option<TransactionLogValue>)> {
    out.appends
        .iter()
        .flat_map(|a| a.records.iter())
        .map(|(k, v)| match decode_record(k, v.as_deref()) {
            Ok(TxnLogRecord::Transaction {
                transactional_id,
                value,
            }) => (transactional_id, value),
            other => panic!("unexpected {other:?}"),
        })
        .collect()
}

fn one_written(out: &Output) -> TransactionLogValue {
    let w = written(out);
    assert_eq!(w.len(), 1, "{w:?}");
    w.into_iter().next().and_then(|(_, v)| v).expect("a value")
}

fn pe(producer_id: i64, producer_epoch: i16) -> ProducerIdAndEpoch {
    ProducerIdAndEpoch {
        producer_id,
        producer_epoch,
    }
}

fn parts(v: &TransactionLogValue) -> Vec<(String, i32)> {
    v.partitions
        .iter()
        .flatten()
        .flat_map(|p| p.partition_ids.iter().map(|n| (p.topic.clone(), *n)))
        .collect()
}

// ---- the happy paths ------------------------------------------------------------------------

#[test]
fn commit_path_end_to_end() {
    let mut h = Harness::default();
    let out = h.init_full(10, "t", TIMEOUT, -1, -1);
    let p = init_reply(&out).unwrap();
    assert_eq!(p, pe(FIRST_PID, 0));
    assert_eq!(out.replies[0].partition, Some(0));
    let v = one_written(&out);
    assert_eq!(v.state, TransactionState::Empty);
    assert_eq!(v.partitions, None, "Empty is written with null partitions");
    assert_eq!((v.start_timestamp_ms, v.last_update_timestamp_ms), (-1, 10));
    assert_eq!(v.transaction_timeout_ms, TIMEOUT);

    let (res, out) = h.add(20, "t", p, &[("foo", 1), ("foo", 0)]);
    assert_eq!(res, Ok(()));
    let v = one_written(&out);
    assert_eq!(v.state, TransactionState::Ongoing);
    assert_eq!(
        v.start_timestamp_ms, 20,
        "the transaction starts with its first partition"
    );
    assert_eq!(parts(&v), vec![("foo".into(), 0), ("foo".into(), 1)]);

    assert_eq!(h.add_offsets(30, "t", p, 7), Ok(()));
    let m = h.c.transaction("t").unwrap();
    assert!(m
        .partitions
        .contains(&("__consumer_offsets".to_string(), 7)));
    assert_eq!(m.txn_start_timestamp_ms, 20);

    // Partitions already in the transaction: answered at once, nothing written.
    let (res, out) = h.add(35, "t", p, &[("foo", 0)]);
    assert_eq!(res, Ok(()));
    assert!(out.appends.is_empty());

    let (res, out) = h.end(40, "t", p, true);
    assert_eq!(res, Ok(()));
    let v = one_written(&out);
    assert_eq!(v.state, TransactionState::PrepareCommit);
    assert_eq!(v.start_timestamp_ms, 20);
    assert_eq!(out.markers.len(), 1);
    let m = out.markers[0].clone();
    assert_eq!(
        m,
        WriteMarkers {
            txn_partition: 0,
            transactional_id: "t".into(),
            producer_id: FIRST_PID,
            producer_epoch: 0,
            coordinator_epoch: COORD_EPOCH,
            commit: true,
            partitions: vec![
                ("__consumer_offsets".into(), 7),
                ("foo".into(), 0),
                ("foo".into(), 1)
            ],
        }
    );

    // While the markers are being written, everything from this producer waits.
    assert_eq!(
        h.add(41, "t", p, &[("bar", 0)]).0,
        Err(TxnError::ConcurrentTransactions)
    );
    assert_eq!(
        h.end(41, "t", p, true).0,
        Err(TxnError::ConcurrentTransactions)
    );
    assert_eq!(
        h.end(41, "t", p, false).0,
        Err(TxnError::ConcurrentTransactions)
    );
    assert_eq!(h.init(41, "t"), Err(TxnError::ConcurrentTransactions));
    assert_eq!(h.state("t"), TransactionState::PrepareCommit);

    let out = h.markers_done(50, &m);
    let v = one_written(&out);
    assert_eq!(v.state, TransactionState::CompleteCommit);
    assert_eq!(v.partitions, Some(Vec::new()), "an empty list, not null");
    assert_eq!((v.start_timestamp_ms, v.last_update_timestamp_ms), (20, 50));
    assert_eq!((v.producer_id, v.producer_epoch), (FIRST_PID, 0));

    // A second report of the same markers changes nothing.
    assert!(h.markers_done(51, &m).is_empty());

    // Retries of the EndTxn: same outcome is fine, the other is not.
    let (res, out) = h.end(60, "t", p, true);
    assert_eq!(res, Ok(()));
    assert!(out.appends.is_empty() && out.markers.is_empty());
    assert_eq!(h.end(60, "t", p, false).0, Err(TxnError::InvalidTxnState));

    // The next transaction of the same producer starts afresh.
    let (res, out) = h.add(70, "t", p, &[("bar", 2)]);
    assert_eq!(res, Ok(()));
    let v = one_written(&out);
    assert_eq!(v.start_timestamp_ms, 70);
    assert_eq!(parts(&v), vec![("bar".into(), 2)]);
}

#[test]
fn abort_path() {
    let mut h = Harness::default();
    let p = h.init(0, "t").unwrap();
    assert_eq!(h.add(1, "t", p, &[("foo", 0)]).0, Ok(()));
    let (res, out) = h.end(2, "t", p, false);
    assert_eq!(res, Ok(()));
    assert_eq!(one_written(&out).state, TransactionState::PrepareAbort);
    let m = out.markers[0].clone();
    assert!(!m.commit);
    assert_eq!(m.producer_epoch, 0, "a client abort keeps the epoch (V1)");
    let out = h.markers_done(3, &m);
    assert_eq!(one_written(&out).state, TransactionState::CompleteAbort);
    assert_eq!(h.end(4, "t", p, false).0, Ok(()));
    assert_eq!(h.end(4, "t", p, true).0, Err(TxnError::InvalidTxnState));
    // A new InitProducerId after a completed transaction just bumps.
    assert_eq!(h.init(5, "t"), Ok(pe(FIRST_PID, 1)));
}

#[test]
fn end_txn_without_partitions_is_invalid_txn_state() {
    let mut h = Harness::default();
    let p = h.init(0, "t").unwrap();
    // V1 has no empty transactions: Empty accepts neither commit nor abort.
    assert_eq!(h.end(1, "t", p, true).0, Err(TxnError::InvalidTxnState));
    assert_eq!(h.end(1, "t", p, false).0, Err(TxnError::InvalidTxnState));
    assert_eq!(h.state("t"), TransactionState::Empty);
}

// ---- fencing --------------------------------------------------------------------------------

#[test]
fn zombie_is_fenced_by_a_second_init() {
    let mut h = Harness::default();
    let zombie = h.init(0, "t").unwrap();
    let current = h.init(1, "t").unwrap();
    assert_eq!(current, pe(FIRST_PID, 1), "same producer id, next epoch");
    assert_eq!(
        h.add(2, "t", zombie, &[("foo", 0)]).0,
        Err(TxnError::ProducerFenced)
    );
    assert_eq!(h.end(2, "t", zombie, true).0, Err(TxnError::ProducerFenced));
    assert_eq!(
        h.add_offsets(2, "t", zombie, 3),
        Err(TxnError::ProducerFenced)
    );
    assert_eq!(
        h.add(2, "t", pe(FIRST_PID + 9, 1), &[("foo", 0)]).0,
        Err(TxnError::InvalidProducerIdMapping)
    );
    assert_eq!(
        h.add(2, "other", current, &[("foo", 0)]).0,
        Err(TxnError::InvalidProducerIdMapping),
        "an id that never ran InitProducerId"
    );
    assert_eq!(
        h.end(2, "other", current, true).0,
        Err(TxnError::InvalidProducerIdMapping)
    );
    assert_eq!(h.add(3, "t", current, &[("foo", 0)]).0, Ok(()));
    assert_eq!(h.end(4, "t", current, true).0, Ok(()));
}

#[test]
fn init_during_ongoing_transaction_fences_and_aborts_it() {
    let mut h = Harness::default();
    let old = h.init(0, "t").unwrap();
    assert_eq!(h.add(1, "t", old, &[("foo", 0), ("bar", 3)]).0, Ok(()));

    let out = h.init_full(2, "t", 30_000, -1, -1);
    assert_eq!(init_reply(&out), Err(TxnError::ConcurrentTransactions));
    let v = one_written(&out);
    assert_eq!(v.state, TransactionState::PrepareAbort);
    assert_eq!(
        v.producer_epoch, 1,
        "the fencing bump is persisted with the abort"
    );
    assert_eq!(
        v.transaction_timeout_ms, TIMEOUT,
        "the new timeout waits for the retry"
    );
    assert_eq!(out.markers.len(), 1);
    let m = out.markers[0].clone();
    assert!(!m.commit);
    assert_eq!(m.producer_epoch, 1);
    assert_eq!(m.partitions, vec![("bar".into(), 3), ("foo".into(), 0)]);
    assert_eq!(h.c.transaction("t").unwrap().last_producer_epoch, -1);

    // The old producer is out; the new one waits for the abort to finish.
    assert_eq!(
        h.add(3, "t", old, &[("foo", 0)]).0,
        Err(TxnError::ProducerFenced)
    );
    assert_eq!(h.end(3, "t", old, true).0, Err(TxnError::ProducerFenced));
    assert_eq!(h.init(3, "t"), Err(TxnError::ConcurrentTransactions));

    let out = h.markers_done(4, &m);
    assert_eq!(one_written(&out).state, TransactionState::CompleteAbort);
    let out = h.init_full(5, "t", 30_000, -1, -1);
    assert_eq!(
        init_reply(&out),
        Ok(pe(FIRST_PID, 2)),
        "bumped a second time"
    );
    assert_eq!(one_written(&out).transaction_timeout_ms, 30_000);
}

#[test]
fn timed_out_transaction_is_aborted_with_an_epoch_bump() {
    let mut h = Harness::default();
    let p = h.init(0, "t").unwrap();
    let short = h.init_full(0, "short", 1_000, -1, -1);
    let ps = init_reply(&short).unwrap();
    assert_eq!(h.add(100, "t", p, &[("foo", 0)]).0, Ok(()));
    assert_eq!(h.add(100, "short", ps, &[("foo", 1)]).0, Ok(()));

    // The scan runs every abort interval (10 s): the 1 s transaction goes at the first one,
    // the 60 s one is left alone.
    assert_eq!(h.c.next_deadline_ms(), Some(10_000));
    assert!(h.tick(9_999).is_empty());
    let out = h.tick(10_000);
    let w = written(&out);
    assert_eq!(w.len(), 1);
    assert_eq!(w[0].0, "short");
    let v = w[0].1.clone().unwrap();
    assert_eq!(
        (v.state, v.producer_epoch),
        (TransactionState::PrepareAbort, 1)
    );
    assert_eq!(out.markers.len(), 1);
    assert!(!out.markers[0].commit);
    assert_eq!(out.markers[0].producer_epoch, 1);
    assert!(out.replies.is_empty());
    assert_eq!(h.c.next_deadline_ms(), Some(20_000));

    // The producer finds out at its next request.
    assert_eq!(
        h.end(10_001, "short", ps, true).0,
        Err(TxnError::ProducerFenced)
    );
    let m = out.markers[0].clone();
    assert_eq!(
        one_written(&h.markers_done(10_002, &m)).state,
        TransactionState::CompleteAbort
    );

    // The next scan is an interval after the last one ran. Exactly at start + timeout is not
    // yet past it.
    let out = h.tick(60_100);
    assert!(written(&out).is_empty(), "100 + 60000 is not < 60100");
    assert_eq!(h.c.next_deadline_ms(), Some(70_100));
    let out = h.tick(70_100);
    assert_eq!(written(&out)[0].0, "t");
}

// ---- InitProducerId details -----------------------------------------------------------------

#[test]
fn init_validates_its_request() {
    let mut h = Harness::default();
    for timeout in [0, -1, 15 * 60 * 1000 + 1] {
        let out = h.init_full(0, "t", timeout, -1, -1);
        assert_eq!(init_reply(&out), Err(TxnError::InvalidTransactionTimeout));
        assert!(out.appends.is_empty());
    }
    assert!(init_reply(&h.init_full(0, "t", 15 * 60 * 1000, -1, -1)).is_ok());
    assert_eq!(
        init_reply(&h.init_full(0, "", TIMEOUT, -1, -1)),
        Err(TxnError::InvalidRequest)
    );
    assert_eq!(
        init_reply(&h.init_full(0, "t", TIMEOUT, FIRST_PID, -1)),
        Err(TxnError::InvalidRequest),
        "a producer id without an epoch"
    );
    assert_eq!(
        init_reply(&h.init_full(0, "t", TIMEOUT, -1, 0)),
        Err(TxnError::InvalidRequest)
    );
}

#[test]
fn init_without_transactional_id_is_an_idempotent_producer() {
    let mut h = Harness::default();
    let r = h.next_reply();
    let out = h.c.init_producer_id(0, r, None, 0, -1, -1);
    assert_eq!(init_reply(&out), Ok(pe(FIRST_PID, 0)));
    assert_eq!(out.replies[0].partition, None);
    assert!(out.appends.is_empty());
    assert_eq!(
        h.init(0, "t"),
        Ok(pe(FIRST_PID + 1, 0)),
        "ids are not reused"
    );
}

#[test]
fn producer_id_source_errors_are_the_answer() {
    let config = TxnConfig {
        num_partitions: 1,
        ..TxnConfig::default()
    };
    let mut c = TxnCoordinator::new(
        config,
        Box::new(|| Err(TxnError::CoordinatorLoadInProgress)),
    );
    c.begin_load(0, 0);
    c.finish_load(0, 0);
    let out = c.init_producer_id(0, 1, Some("t"), TIMEOUT, -1, -1);
    assert_eq!(init_reply(&out), Err(TxnError::CoordinatorLoadInProgress));
    assert!(out.appends.is_empty());
    assert!(c.transaction("t").is_none());
}

#[test]
fn kip360_expected_epoch_checks() {
    let mut h = Harness::default();
    assert_eq!(h.init(0, "t"), Ok(pe(FIRST_PID, 0)));
    // The current producer recovers: bump, remembering epoch 0.
    let out = h.init_full(1, "t", TIMEOUT, FIRST_PID, 0);
    assert_eq!(init_reply(&out), Ok(pe(FIRST_PID, 1)));
    assert_eq!(h.c.transaction("t").unwrap().last_producer_epoch, 0);
    // Its retry (the answer was lost) gets the same epoch, and the record is written again.
    let out = h.init_full(2, "t", TIMEOUT, FIRST_PID, 0);
    assert_eq!(init_reply(&out), Ok(pe(FIRST_PID, 1)));
    assert_eq!(one_written(&out).producer_epoch, 1);
    // Any other epoch, or another producer id, is a zombie.
    assert_eq!(
        init_reply(&h.init_full(3, "t", TIMEOUT, FIRST_PID, 7)),
        Err(TxnError::ProducerFenced)
    );
    assert_eq!(
        init_reply(&h.init_full(3, "t", TIMEOUT, FIRST_PID + 50, 1)),
        Err(TxnError::ProducerFenced)
    );
    // Recovering with the current epoch works; a fresh producer resets the last epoch.
    assert_eq!(
        init_reply(&h.init_full(4, "t", TIMEOUT, FIRST_PID, 1)),
        Ok(pe(FIRST_PID, 2))
    );
    assert_eq!(h.init(5, "t"), Ok(pe(FIRST_PID, 3)));
    assert_eq!(h.c.transaction("t").unwrap().last_producer_epoch, -1);
    assert_eq!(
        init_reply(&h.init_full(6, "t", TIMEOUT, FIRST_PID, 2)),
        Err(TxnError::ProducerFenced),
        "the fresh producer fenced epoch 2 for good"
    );
    // An id the coordinator forgot (expired) takes any expected producer id: new id, epoch 0.
    assert_eq!(
        init_reply(&h.init_full(7, "gone", TIMEOUT, 42, 3)),
        Ok(pe(FIRST_PID + 1, 0))
    );
}

/// A transactional id whose state is `epoch` with no transaction, as if loaded from the log.
fn at_epoch(h: &mut Harness, id: &str, producer_id: i64, epoch: i16, state: TransactionState) {
    let value = TransactionLogValue {
        producer_id,
        previous_producer_id: -1,
        next_producer_id: -1,
        producer_epoch: epoch,
        transaction_timeout_ms: TIMEOUT,
        state,
        partitions: if state == TransactionState::Empty {
            None
        } else {
            Some(vec![crate::records::PartitionsSchema {
                topic: "foo".into(),
                partition_ids: vec![0],
            }])
        },
        last_update_timestamp_ms: 0,
        start_timestamp_ms: if state == TransactionState::Empty {
            -1
        } else {
            0
        },
        client_transaction_version: 0,
    };
    h.log.push((
        records::encode_key(id),
        Some(records::encode_value(&value, 1)),
    ));
    h.reload(0, COORD_EPOCH);
}

#[test]
fn exhausted_epoch_rotates_the_producer_id() {
    let mut h = Harness::default();
    at_epoch(
        &mut h,
        "t",
        7,
        i16::MAX - 2,
        TransactionState::CompleteCommit,
    );
    assert_eq!(
        h.init(1, "t"),
        Ok(pe(7, i16::MAX - 1)),
        "the last epoch a client gets"
    );
    let out = h.init_full(2, "t", TIMEOUT, -1, -1);
    assert_eq!(init_reply(&out), Ok(pe(FIRST_PID, 0)), "a new producer id");
    let m = h.c.transaction("t").unwrap();
    assert_eq!((m.prev_producer_id, m.last_producer_epoch), (7, -1));

    // KIP-360 rotation with an expected epoch records it, so the retry is recognised.
    let mut h = Harness::default();
    at_epoch(&mut h, "t", 7, i16::MAX - 1, TransactionState::Empty);
    let out = h.init_full(1, "t", TIMEOUT, 7, i16::MAX - 1);
    assert_eq!(init_reply(&out), Ok(pe(FIRST_PID, 0)));
    assert_eq!(
        h.c.transaction("t").unwrap().last_producer_epoch,
        i16::MAX - 1
    );
    let out = h.init_full(2, "t", TIMEOUT, 7, i16::MAX - 1);
    assert_eq!(
        init_reply(&out),
        Ok(pe(FIRST_PID, 0)),
        "the retry gets the rotated id again, not a third one"
    );
    // The previous id with a non-exhausted epoch is a zombie.
    assert_eq!(
        init_reply(&h.init_full(3, "t", TIMEOUT, 7, 5)),
        Err(TxnError::ProducerFenced)
    );
}

#[test]
fn kafka_quirk_retry_of_the_bump_to_an_exhausted_epoch_is_unknown_server_error() {
    // Kafka's prepareIncrementProducerEpoch throws IllegalStateException when the epoch is
    // exhausted and the expected epoch is not the current one, even for a legitimate retry.
    let mut h = Harness::default();
    at_epoch(&mut h, "t", 7, i16::MAX - 2, TransactionState::Empty);
    let out = h.init_full(1, "t", TIMEOUT, 7, i16::MAX - 2);
    assert_eq!(init_reply(&out), Ok(pe(7, i16::MAX - 1)));
    let out = h.init_full(2, "t", TIMEOUT, 7, i16::MAX - 2);
    assert_eq!(init_reply(&out), Err(TxnError::UnknownServerError));
}

#[test]
fn fencing_at_the_last_epoch_reaches_max_then_rotates() {
    let mut h = Harness::default();
    at_epoch(&mut h, "t", 7, i16::MAX - 1, TransactionState::Ongoing);
    let out = h.init_full(1, "t", TIMEOUT, -1, -1);
    assert_eq!(init_reply(&out), Err(TxnError::ConcurrentTransactions));
    assert_eq!(out.markers[0].producer_epoch, i16::MAX);
    let m = out.markers[0].clone();
    h.markers_done(2, &m);
    assert_eq!(h.init(3, "t"), Ok(pe(FIRST_PID, 0)));
}

// ---- verify, describe, list -----------------------------------------------------------------

#[test]
fn verify_only_answers_per_partition() {
    let mut h = Harness::default();
    let p = h.init(0, "t").unwrap();
    let ask = |h: &Harness, p: ProducerIdAndEpoch| {
        h.c.verify_partitions_in_txn(
            "t",
            p.producer_id,
            p.producer_epoch,
            &[("foo".into(), 0), ("foo".into(), 1)],
        )
    };
    assert_eq!(
        ask(&h, p),
        Ok(vec![
            ("foo".into(), 0, Some(TxnError::TransactionAbortable)),
            ("foo".into(), 1, Some(TxnError::TransactionAbortable)),
        ])
    );
    assert_eq!(h.add(1, "t", p, &[("foo", 0)]).0, Ok(()));
    assert_eq!(
        ask(&h, p),
        Ok(vec![
            ("foo".into(), 0, None),
            ("foo".into(), 1, Some(TxnError::TransactionAbortable)),
        ])
    );
    assert_eq!(ask(&h, pe(FIRST_PID, 1)), Err(TxnError::ProducerFenced));
    assert_eq!(ask(&h, pe(1, 0)), Err(TxnError::InvalidProducerIdMapping));
    assert_eq!(h.end(2, "t", p, true).0, Ok(()));
    assert_eq!(ask(&h, p), Err(TxnError::ConcurrentTransactions));
    assert_eq!(
        h.c.verify_partitions_in_txn("nobody", 1, 0, &[]),
        Err(TxnError::InvalidProducerIdMapping)
    );
    assert_eq!(
        h.c.verify_partitions_in_txn("", 1, 0, &[]),
        Err(TxnError::InvalidRequest)
    );
}

#[test]
fn describe_and_list_with_filters() {
    let mut h = Harness::default();
    let a = h.init(0, "app-a").unwrap();
    let b = h.init(0, "app-b").unwrap();
    let _c = h.init(0, "other").unwrap();
    assert_eq!(
        h.add(1_000, "app-a", a, &[("foo", 1), ("foo", 0), ("bar", 2)])
            .0,
        Ok(())
    );
    assert_eq!(h.add(5_000, "app-b", b, &[("foo", 3)]).0, Ok(()));
    assert_eq!(h.end(6_000, "app-b", b, true).0, Ok(()));

    let d = h.c.describe_transaction("app-a").unwrap();
    assert_eq!(
        d,
        DescribedTransaction {
            transactional_id: "app-a".into(),
            state: TransactionState::Ongoing,
            producer_id: a.producer_id,
            producer_epoch: 0,
            transaction_timeout_ms: TIMEOUT,
            transaction_start_time_ms: 1_000,
            topics: vec![("bar".into(), vec![2]), ("foo".into(), vec![0, 1])],
        }
    );
    assert_eq!(
        h.c.describe_transaction("nobody"),
        Err(TxnError::TransactionalIdNotFound)
    );
    assert_eq!(h.c.describe_transaction(""), Err(TxnError::InvalidRequest));

    let ids = |l: ListedTransactions| -> Vec<String> {
        l.transactions
            .into_iter()
            .map(|t| t.transactional_id)
            .collect()
    };
    let all =
        h.c.list_transactions(10_000, &ListTransactionsFilter::default())
            .unwrap();
    assert_eq!(ids(all.clone()), vec!["app-a", "app-b", "other"]);
    assert_eq!(all.transactions[1].state, TransactionState::PrepareCommit);

    let states = vec!["Ongoing".to_string(), "Bogus".to_string()];
    let l =
        h.c.list_transactions(
            10_000,
            &ListTransactionsFilter {
                states: &states,
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(l.unknown_state_filters, vec!["Bogus"]);
    assert_eq!(ids(l), vec!["app-a"]);

    let pids = [b.producer_id];
    let l = h.c.list_transactions(
        10_000,
        &ListTransactionsFilter {
            producer_ids: &pids,
            ..Default::default()
        },
    );
    assert_eq!(ids(l.unwrap()), vec!["app-b"]);

    // Running longer than 7 s at t=10 s: app-a (started at 1 s) but not app-b (5 s); the
    // Empty "other" (start -1) passes too, as in Kafka.
    let l = h.c.list_transactions(
        10_000,
        &ListTransactionsFilter {
            duration_ms: 7_000,
            ..Default::default()
        },
    );
    assert_eq!(ids(l.unwrap()), vec!["app-a", "other"]);

    let pattern = |id: &str| id.starts_with("app-");
    let l = h.c.list_transactions(
        10_000,
        &ListTransactionsFilter {
            transactional_id: Some(&pattern),
            ..Default::default()
        },
    );
    assert_eq!(ids(l.unwrap()), vec!["app-a", "app-b"]);
}

#[test]
fn dead_records_are_hidden() {
    let mut h = Harness::default();
    at_epoch(&mut h, "t", 7, 3, TransactionState::Dead);
    assert_eq!(
        h.c.describe_transaction("t"),
        Err(TxnError::TransactionalIdNotFound)
    );
    let l =
        h.c.list_transactions(0, &ListTransactionsFilter::default())
            .unwrap();
    assert!(l.transactions.is_empty());
}

// ---- ownership and loading ------------------------------------------------------------------

#[test]
fn not_coordinator_and_load_in_progress() {
    let config = TxnConfig {
        num_partitions: 2,
        ..TxnConfig::default()
    };
    let mut c = TxnCoordinator::new(config, Box::new(|| Ok(1)));
    // "txn-1" hashes to partition 0 of 2 (110810510 is even); nothing is loaded yet.
    assert_eq!(c.partition_of("txn-1"), 0);
    let p = pe(1, 0);
    let check = |c: &mut TxnCoordinator, e: TxnError| {
        assert_eq!(
            init_reply(&c.init_producer_id(0, 1, Some("txn-1"), TIMEOUT, -1, -1)),
            Err(e)
        );
        let out = c.add_partitions_to_txn(0, 2, "txn-1", 1, 0, &[("foo".into(), 0)]);
        assert_eq!(only_reply(&out), Reply::AddPartitions(Err(e)));
        let out = c.add_offsets_to_txn(0, 3, "txn-1", 1, 0, 0);
        assert_eq!(only_reply(&out), Reply::AddOffsets(Err(e)));
        let out = c.end_txn(0, 4, "txn-1", p.producer_id, p.producer_epoch, true);
        assert_eq!(only_reply(&out), Reply::EndTxn(Err(e)));
        assert_eq!(c.describe_transaction("txn-1"), Err(e));
        assert_eq!(c.verify_partitions_in_txn("txn-1", 1, 0, &[]), Err(e));
    };
    check(&mut c, TxnError::NotCoordinator);
    assert!(!c.owns("txn-1"));

    c.begin_load(0, 3);
    assert!(c.owns("txn-1") && c.is_loading());
    check(&mut c, TxnError::CoordinatorLoadInProgress);
    assert_eq!(
        c.list_transactions(0, &ListTransactionsFilter::default()),
        Err(TxnError::CoordinatorLoadInProgress)
    );
    c.finish_load(0, 0);
    assert_eq!(c.coordinator_epoch(0), Some(3));
    assert!(init_reply(&c.init_producer_id(0, 1, Some("txn-1"), TIMEOUT, -1, -1)).is_ok());

    c.unload_partition(0);
    check(&mut c, TxnError::NotCoordinator);
    assert!(c.transaction("txn-1").is_none());
}

#[test]
fn reload_restores_producer_epoch_and_state() {
    let mut h = Harness::default();
    h.init(0, "t").unwrap();
    let p = h.init(1, "t").unwrap();
    assert_eq!(h.add(2, "t", p, &[("foo", 0), ("foo", 1)]).0, Ok(()));
    h.init(3, "idle").unwrap();

    let out = h.reload(10, COORD_EPOCH + 1);
    assert!(out.markers.is_empty(), "nothing was preparing");
    let m = h.c.transaction("t").unwrap();
    assert_eq!((m.producer_id, m.producer_epoch), (FIRST_PID, 1));
    assert_eq!(m.state, TransactionState::Ongoing);
    assert_eq!(m.txn_start_timestamp_ms, 2);
    assert_eq!(m.partitions.len(), 2);
    assert_eq!(m.last_producer_epoch, -1, "never persisted");
    assert_eq!(h.state("idle"), TransactionState::Empty);

    // The same producer carries on after the coordinator moved.
    let (res, out) = h.end(11, "t", p, true);
    assert_eq!(res, Ok(()));
    assert_eq!(out.markers[0].coordinator_epoch, COORD_EPOCH + 1);
    // And the zombie is still a zombie.
    assert_eq!(
        h.add(12, "t", pe(FIRST_PID, 0), &[("foo", 0)]).0,
        Err(TxnError::ProducerFenced)
    );
}

#[test]
fn reload_in_prepare_commit_writes_the_markers_again() {
    let mut h = Harness::default();
    let p = h.init(0, "t").unwrap();
    assert_eq!(h.add(1, "t", p, &[("foo", 0)]).0, Ok(()));
    let (_, out) = h.end(2, "t", p, true);
    let stale = out.markers[0].clone();
    // Another transaction was aborted by its producer and is also mid-way.
    let q = h.init(3, "u").unwrap();
    assert_eq!(h.add(3, "u", q, &[("bar", 4)]).0, Ok(()));
    assert_eq!(h.end(4, "u", q, false).0, Ok(()));

    let out = h.reload(100, COORD_EPOCH + 1);
    assert_eq!(out.markers.len(), 2);
    assert_eq!(
        out.markers[0],
        WriteMarkers {
            coordinator_epoch: COORD_EPOCH + 1,
            ..stale.clone()
        }
    );
    assert_eq!(out.markers[1].transactional_id, "u");
    assert!(!out.markers[1].commit);
    assert!(out.appends.is_empty() && out.replies.is_empty());
    assert_eq!(h.init(101, "t"), Err(TxnError::ConcurrentTransactions));

    // The previous coordinator's report arrives late: ignored.
    assert!(h.markers_done(102, &stale).is_empty());
    assert_eq!(h.state("t"), TransactionState::PrepareCommit);
    let fresh = out.markers[0].clone();
    let done = h.markers_done(103, &fresh);
    assert_eq!(one_written(&done).state, TransactionState::CompleteCommit);
}

#[test]
fn replay_applies_tombstones_and_skips_other_records() {
    let mut h = Harness::default();
    h.init(0, "a").unwrap();
    h.init(0, "b").unwrap();
    h.log.push((records::encode_key("a"), None));
    h.log.push((vec![0, 9, 0, 1, b'x'], Some(vec![1, 2, 3])));
    h.reload(0, COORD_EPOCH);
    assert!(h.c.transaction("a").is_none());
    assert!(h.c.transaction("b").is_some());
    // Records for a partition that is not loading are ignored.
    h.c.replay(
        0,
        TxnLogRecord::Transaction {
            transactional_id: "b".into(),
            value: None,
        },
    );
    assert!(h.c.transaction("b").is_some());
}

#[test]
fn expired_transactional_ids_are_tombstoned() {
    let mut h = Harness::new(TxnConfig {
        num_partitions: 1,
        transactional_id_expiration_ms: 50_000,
        remove_expired_transaction_cleanup_interval_ms: 60_000,
        abort_timed_out_transaction_cleanup_interval_ms: 1_000_000,
        ..TxnConfig::default()
    });
    h.init(0, "idle").unwrap();
    let p = h.init(0, "busy").unwrap();
    let out = h.init_full(0, "long", 900_000, -1, -1);
    let l = init_reply(&out).unwrap();
    assert_eq!(h.add(5_000, "long", l, &[("foo", 0)]).0, Ok(()));
    h.init(20_000, "recent").unwrap();
    assert_eq!(h.add(1, "busy", p, &[("foo", 1)]).0, Ok(()));
    let (_, out) = h.end(2, "busy", p, true);
    h.markers_done(3, &out.markers[0].clone());

    let out = h.tick(60_000);
    let w = written(&out);
    // Idle since 0 and 3 ms: expired; "recent" (20 s) is not; an ongoing transaction never is.
    assert_eq!(
        w,
        vec![("busy".to_string(), None), ("idle".to_string(), None)]
    );
    assert!(h.c.transaction("idle").is_none());
    assert!(h.c.transaction("long").is_some());
    assert!(h.c.transaction("recent").is_some());
    assert_eq!(
        h.c.describe_transaction("idle"),
        Err(TxnError::TransactionalIdNotFound)
    );
    // Coming back later is being new.
    let next = h.init(61_000, "idle").unwrap();
    assert_eq!(next.producer_epoch, 0);
    assert!(next.producer_id > p.producer_id);
    // And the tombstone wins after a reload too.
    h.reload(62_000, COORD_EPOCH);
    assert!(h.c.transaction("busy").is_none());
}

// ---- record versions and the shell contract -------------------------------------------------

#[test]
fn value_version_follows_the_transaction_version() {
    for (tv, version) in [(TransactionVersion::V0, 0), (TransactionVersion::V1, 1)] {
        let mut h = Harness::new(TxnConfig {
            num_partitions: 1,
            transaction_version: tv,
            ..TxnConfig::default()
        });
        let out = h.init_full(0, "t", TIMEOUT, -1, -1);
        let (_, Some(value)) = &out.appends[0].records[0] else {
            panic!("a value");
        };
        assert_eq!(&value[..2], &i16::to_be_bytes(version));
        assert_eq!(decode_value(value).unwrap().0, version);
        // V1 clients write no tagged fields at all: the value ends with an empty tag section.
        if version == 1 {
            assert_eq!(value.last(), Some(&0));
        }
    }
}

#[test]
fn failed_replies_keep_their_kind() {
    let r = Reply::InitProducerId(Ok(pe(1, 0))).failed(TxnError::NotCoordinator);
    assert_eq!(r, Reply::InitProducerId(Err(TxnError::NotCoordinator)));
    assert_eq!(
        Reply::EndTxn(Ok(ProducerIdAndEpoch {
            producer_id: 1,
            producer_epoch: 0
        }))
        .failed(TxnError::CoordinatorNotAvailable),
        Reply::EndTxn(Err(TxnError::CoordinatorNotAvailable))
    );
}

#[test]
fn an_unwritten_prepare_is_redone_from_the_log() {
    // The shell's append of PrepareCommit fails: it answers the client with an error, drops the
    // markers and unloads; the reload finds the transaction still Ongoing and the client's retry
    // of EndTxn succeeds.
    let mut h = Harness::default();
    let p = h.init(0, "t").unwrap();
    assert_eq!(h.add(1, "t", p, &[("foo", 0)]).0, Ok(()));
    let r = h.next_reply();
    let lost =
        h.c.end_txn(2, r, "t", p.producer_id, p.producer_epoch, true);
    assert_eq!(lost.markers.len(), 1);
    h.c.unload_partition(0);
    let out = h.reload(3, COORD_EPOCH + 1);
    assert!(out.markers.is_empty());
    assert_eq!(h.state("t"), TransactionState::Ongoing);
    assert_eq!(h.end(4, "t", p, true).0, Ok(()));
}

// ---- Transactions V2 (KIP-890 part 2) --------------------------------------------------------

#[test]
fn v2_end_txn_bumps_the_epoch_and_markers_carry_it() {
    let mut h = Harness::default();
    let p = h.init(0, "t").unwrap();
    assert_eq!(p, pe(FIRST_PID, 0));
    // Produce v12: the leader adds the partitions; no AddPartitionsToTxn from the client.
    h.add_v2(1, "t", p, &[("a", 0), ("a", 1)]).unwrap();
    h.add_v2(2, "t", p, &[("__consumer_offsets", 7)]).unwrap();
    let m = h.c.transaction("t").unwrap();
    assert_eq!(m.state, TransactionState::Ongoing);
    assert_eq!(m.client_transaction_version, 2);
    assert_eq!(m.txn_start_timestamp_ms, 1);
    let (res, out) = h.end_v2(3, "t", p, true);
    assert_eq!(
        res,
        Ok(pe(FIRST_PID, 1)),
        "the reply returns the bumped epoch"
    );
    let v = one_written(&out);
    assert_eq!(v.state, TransactionState::PrepareCommit);
    assert_eq!(v.producer_epoch, 1);
    assert_eq!(v.client_transaction_version, 2);
    assert_eq!(out.markers.len(), 1);
    let mk = out.markers[0].clone();
    assert_eq!(mk.producer_epoch, 1, "markers go out with the bumped epoch");
    assert!(mk.commit);
    assert_eq!(mk.partitions.len(), 3);
    // Retry while the markers are written: recognised by the previous epoch.
    let (res, _) = h.end_v2(4, "t", p, true);
    assert_eq!(res, Err(TxnError::ConcurrentTransactions));
    // The old epoch is not a producer that may add partitions any more.
    assert_eq!(
        h.add_v2(4, "t", p, &[("a", 2)]),
        Err(TxnError::ProducerFenced)
    );
    let out = h.markers_done(5, &mk);
    let v = one_written(&out);
    assert_eq!(v.state, TransactionState::CompleteCommit);
    assert_eq!((v.producer_id, v.producer_epoch), (FIRST_PID, 1));
    // A retry of the commit after completion: no error, the current id and epoch.
    let (res, out) = h.end_v2(6, "t", p, true);
    assert_eq!(res, Ok(pe(FIRST_PID, 1)));
    assert!(out.appends.is_empty());
    // The retried commit asked as an abort is the wrong outcome.
    let (res, _) = h.end_v2(6, "t", p, false);
    assert_eq!(res, Err(TxnError::InvalidTxnState));
    // A commit at the new epoch with nothing added is INVALID_TXN_STATE.
    let p1 = pe(FIRST_PID, 1);
    let (res, _) = h.end_v2(6, "t", p1, true);
    assert_eq!(res, Err(TxnError::InvalidTxnState));
    // Next transaction at the new epoch, aborted: bumped again.
    h.add_v2(7, "t", p1, &[("a", 0)]).unwrap();
    assert_eq!(h.c.transaction("t").unwrap().txn_start_timestamp_ms, 7);
    let (res, out) = h.end_v2(8, "t", p1, false);
    assert_eq!(res, Ok(pe(FIRST_PID, 2)));
    assert_eq!(out.markers[0].producer_epoch, 2);
    assert!(!out.markers[0].commit);
    let mk = out.markers[0].clone();
    h.markers_done(9, &mk);
    assert_eq!(h.state("t"), TransactionState::CompleteAbort);
    // A zombie at epoch 0 is fenced.
    let (res, _) = h.end_v2(10, "t", pe(FIRST_PID, 0), true);
    assert_eq!(res, Err(TxnError::ProducerFenced));
}

#[test]
fn v2_abort_of_an_empty_transaction_bumps_without_markers() {
    let mut h = Harness::default();
    let p = h.init(0, "t").unwrap();
    let (res, out) = h.end_v2(1, "t", p, false);
    assert_eq!(res, Ok(pe(FIRST_PID, 1)));
    assert!(out.markers.is_empty());
    let states: Vec<TransactionState> = written(&out)
        .into_iter()
        .map(|(_, v)| v.unwrap().state)
        .collect();
    assert_eq!(
        states,
        vec![
            TransactionState::PrepareAbort,
            TransactionState::CompleteAbort
        ]
    );
    // The same from a V1 client is INVALID_TXN_STATE, as before.
    let mut h = Harness::default();
    let p = h.init(0, "t").unwrap();
    assert_eq!(h.end(1, "t", p, false).0, Err(TxnError::InvalidTxnState));
}

#[test]
fn v2_epoch_overflow_hands_out_the_next_producer_id() {
    let mut h = Harness::default();
    h.init(0, "t").unwrap();
    // Bring the epoch to the last one a client may hold.
    let mut m = h.c.transaction("t").unwrap().clone();
    m.producer_epoch = i16::MAX - 1;
    h.log.push((
        records::encode_key("t"),
        Some(records::encode_value(&m.to_log_value(), 1)),
    ));
    assert!(h.reload(1, COORD_EPOCH + 1).is_empty());
    let old = pe(FIRST_PID, i16::MAX - 1);
    h.add_v2(2, "t", old, &[("a", 0)]).unwrap();
    let (res, out) = h.end_v2(3, "t", old, true);
    let new_pid = FIRST_PID + 1;
    assert_eq!(res, Ok(pe(new_pid, 0)), "the next producer id at epoch 0");
    let v = one_written(&out);
    assert_eq!((v.producer_id, v.producer_epoch), (FIRST_PID, i16::MAX));
    assert_eq!(v.next_producer_id, new_pid, "persisted as a tagged field");
    let mk = out.markers[0].clone();
    assert_eq!((mk.producer_id, mk.producer_epoch), (FIRST_PID, i16::MAX));
    // A crash before the markers: the reload knows the next id and resends the markers.
    let out = h.reload(4, COORD_EPOCH + 2);
    assert_eq!(out.markers.len(), 1);
    let mk = out.markers[0].clone();
    assert_eq!(mk.producer_epoch, i16::MAX);
    assert_eq!(h.c.transaction("t").unwrap().next_producer_id, new_pid);
    let out = h.markers_done(5, &mk);
    let v = one_written(&out);
    assert_eq!(v.state, TransactionState::CompleteCommit);
    assert_eq!((v.producer_id, v.producer_epoch), (new_pid, 0));
    assert_eq!(v.previous_producer_id, FIRST_PID);
    // A retry of the EndTxn whose answer was lost: recognised by the previous id.
    let (res, _) = h.end_v2(6, "t", old, true);
    assert_eq!(res, Ok(pe(new_pid, 0)));
    // The client continues under the new id.
    h.add_v2(7, "t", pe(new_pid, 0), &[("a", 0)]).unwrap();
    assert_eq!(h.end_v2(8, "t", pe(new_pid, 0), true).0, Ok(pe(new_pid, 1)));
    // Only one id was allocated for the rotation.
    assert_eq!(h.next_pid.load(Ordering::SeqCst), new_pid + 1);
}

#[test]
fn v2_init_producer_id_during_a_transaction_bumps_once() {
    let mut h = Harness::default();
    let p = h.init(0, "t").unwrap();
    h.add_v2(1, "t", p, &[("a", 0)]).unwrap();
    let out = h.init_full(2, "t", TIMEOUT, -1, -1);
    assert_eq!(init_reply(&out), Err(TxnError::ConcurrentTransactions));
    let v = one_written(&out);
    assert_eq!(v.state, TransactionState::PrepareAbort);
    assert_eq!(
        v.producer_epoch, 1,
        "one bump for fence and abort (KAFKA-19367)"
    );
    assert_eq!(out.markers[0].producer_epoch, 1);
    let mk = out.markers[0].clone();
    h.markers_done(3, &mk);
    assert_eq!(h.state("t"), TransactionState::CompleteAbort);
    assert_eq!(h.init(4, "t"), Ok(pe(FIRST_PID, 2)));
    // The fenced producer's EndTxn at epoch 0 is refused.
    assert_eq!(h.end_v2(5, "t", p, true).0, Err(TxnError::ProducerFenced));
}

#[test]
fn v2_state_survives_a_reload_with_its_tagged_fields() {
    let mut h = Harness::default();
    let p = h.init(0, "t").unwrap();
    h.add_v2(1, "t", p, &[("a", 0), ("b", 3)]).unwrap();
    let before = h.c.transaction("t").unwrap().clone();
    // The Ongoing record is a v1 value whose ClientTransactionVersion tag says 2.
    let (_, raw) = h.log.last().unwrap().clone();
    let (version, v) = decode_value(raw.as_deref().unwrap()).unwrap();
    assert_eq!((version, v.client_transaction_version), (1, 2));
    assert!(h.reload(2, COORD_EPOCH + 1).is_empty());
    let after = h.c.transaction("t").unwrap();
    assert_eq!(after.state, TransactionState::Ongoing);
    assert_eq!(after.partitions, before.partitions);
    assert_eq!(after.client_transaction_version, 2);
    // It ends as a V2 transaction after the reload.
    assert_eq!(h.end_v2(3, "t", p, false).0, Ok(pe(FIRST_PID, 1)));
}

#[test]
fn v1_clients_are_unchanged_next_to_v2() {
    let mut h = Harness::default();
    let p = h.init(0, "t").unwrap();
    h.add(1, "t", p, &[("a", 0)]).0.unwrap();
    let (res, out) = h.end(2, "t", p, true);
    res.unwrap();
    let v = one_written(&out);
    assert_eq!(v.producer_epoch, 0, "V1 EndTxn keeps the epoch");
    assert_eq!(v.client_transaction_version, 0);
    assert_eq!(v.next_producer_id, -1);
    assert_eq!(
        v.previous_producer_id, -1,
        "Kafka 4.1 writes no tags for V1"
    );
    assert_eq!(out.markers[0].producer_epoch, 0);
}
