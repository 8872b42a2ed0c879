//! One transactional id: its producer id and epoch, its transaction's state, partitions and
//! timestamps, and the transitions between Kafka's states.
//!
//! Kafka prepares a transition (`TxnTransitMetadata`), writes it to the log and only then applies
//! it, marking the metadata "pending" meanwhile. Here a transition is a new [`TransactionMetadata`]
//! value computed from the current one; the coordinator applies it at once and puts the record
//! in the same output, and the shell writes that record before any reply of the output goes out
//! (or unloads the partition). Kafka's pending state therefore only survives in one place: the
//! marker phase, where Kafka keeps `pendingState = Complete*` for as long as a transaction is in
//! `PrepareCommit` / `PrepareAbort`; the coordinator treats those two states as pending.

use std::collections::BTreeSet;

use crate::records::{PartitionsSchema, TransactionLogValue};
use crate::{TxnError, NO_PRODUCER_EPOCH, NO_PRODUCER_ID};

/// Kafka's transaction states, with Kafka's ids (persisted) and names (DescribeTransactions,
/// ListTransactions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TransactionState {
    /// No transaction in progress (just initialised, or after an InitProducerId).
    Empty,
    /// Partitions have been added; the transaction runs.
    Ongoing,
    /// EndTxn(commit) is persisted; markers are being written.
    PrepareCommit,
    /// EndTxn(abort), a fencing InitProducerId or a timeout is persisted; markers are being
    /// written.
    PrepareAbort,
    /// All commit markers are written.
    CompleteCommit,
    /// All abort markers are written.
    CompleteAbort,
    /// The transactional id is being expired. Never written by Kafka; read if present.
    Dead,
    /// Transient while fencing a producer; never persisted by Kafka (the fence is written as
    /// `PrepareAbort`), read if present.
    PrepareEpochFence,
}

impl TransactionState {
    pub const ALL: [TransactionState; 8] = [
        TransactionState::Empty,
        TransactionState::Ongoing,
        TransactionState::PrepareCommit,
        TransactionState::PrepareAbort,
        TransactionState::CompleteCommit,
        TransactionState::CompleteAbort,
        TransactionState::Dead,
        TransactionState::PrepareEpochFence,
    ];

    /// The id stored in `TransactionLogValue.TransactionStatus`.
    pub fn id(self) -> i8 {
        match self {
            TransactionState::Empty => 0,
            TransactionState::Ongoing => 1,
            TransactionState::PrepareCommit => 2,
            TransactionState::PrepareAbort => 3,
            TransactionState::CompleteCommit => 4,
            TransactionState::CompleteAbort => 5,
            TransactionState::Dead => 6,
            TransactionState::PrepareEpochFence => 7,
        }
    }

    pub fn from_id(id: i8) -> Option<TransactionState> {
        TransactionState::ALL.into_iter().find(|s| s.id() == id)
    }

    /// The name Kafka reports in DescribeTransactions and ListTransactions and accepts as a
    /// ListTransactions state filter.
    pub fn name(self) -> &'static str {
        match self {
            TransactionState::Empty => "Empty",
            TransactionState::Ongoing => "Ongoing",
            TransactionState::PrepareCommit => "PrepareCommit",
            TransactionState::PrepareAbort => "PrepareAbort",
            TransactionState::CompleteCommit => "CompleteCommit",
            TransactionState::CompleteAbort => "CompleteAbort",
            TransactionState::Dead => "Dead",
            TransactionState::PrepareEpochFence => "PrepareEpochFence",
        }
    }

    pub fn from_name(name: &str) -> Option<TransactionState> {
        TransactionState::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Whether an idle transactional id in this state may be expired.
    pub fn is_expiration_allowed(self) -> bool {
        matches!(
            self,
            TransactionState::Empty
                | TransactionState::CompleteCommit
                | TransactionState::CompleteAbort
        )
    }

    /// The states this one may be entered from (Kafka's `validPreviousStates`). The
    /// `Empty`/`Complete*` -> `PrepareAbort` edges (aborting a transaction that added nothing)
    /// are Transactions V2 only; the coordinator takes them only for a V2 client.
    pub fn valid_previous_states(self) -> &'static [TransactionState] {
        use TransactionState::*;
        match self {
            Empty => &[Empty, CompleteCommit, CompleteAbort],
            Ongoing => &[Ongoing, Empty, CompleteCommit, CompleteAbort],
            PrepareCommit => &[Ongoing],
            PrepareAbort => &[
                Ongoing,
                PrepareEpochFence,
                Empty,
                CompleteCommit,
                CompleteAbort,
            ],
            CompleteCommit => &[PrepareCommit],
            CompleteAbort => &[PrepareAbort],
            Dead => &[Empty, CompleteAbort, CompleteCommit],
            PrepareEpochFence => &[Ongoing],
        }
    }

    /// `PrepareCommit` / `PrepareAbort`: markers are being written, and Kafka holds a pending
    /// `Complete*` transition all that time.
    pub fn is_preparing(self) -> bool {
        matches!(
            self,
            TransactionState::PrepareCommit | TransactionState::PrepareAbort
        )
    }
}

impl std::fmt::Display for TransactionState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Whether `epoch` leaves no room for another bump: clients never get `i16::MAX`, so the
/// coordinator can always fence the holder of `i16::MAX - 1` (Kafka's `isEpochExhausted`).
pub fn is_epoch_exhausted(epoch: i16) -> bool {
    epoch >= i16::MAX - 1
}

/// The state of one transactional id (Kafka's `TransactionMetadata`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionMetadata {
    pub transactional_id: String,
    pub producer_id: i64,
    /// The producer id before the last transition: after a producer-id rotation, the one the
    /// client may still present in a retried InitProducerId (KIP-360). Not persisted by
    /// Kafka 4.1 (-1 after a load).
    pub prev_producer_id: i64,
    /// Transactions V2 only: the producer id an EndTxn that exhausted the epoch allocated; it
    /// becomes the producer id (at epoch 0) when the markers are written. -1 otherwise.
    pub next_producer_id: i64,
    pub producer_epoch: i16,
    /// The epoch before the last InitProducerId bump, so that a retried KIP-360 InitProducerId
    /// gets the same answer. Never persisted (-1 after a load), as in Kafka.
    pub last_producer_epoch: i16,
    pub txn_timeout_ms: i32,
    pub state: TransactionState,
    /// (topic, partition) in the transaction; markers go to each of them.
    pub partitions: BTreeSet<(String, i32)>,
    /// When the first partition was added; -1 when no transaction has started.
    pub txn_start_timestamp_ms: i64,
    pub txn_last_update_timestamp_ms: i64,
    /// The `transaction.version` the client used (0 for every Transactions V1 client, 2 for a
    /// transaction started by Produce v12+ / TxnOffsetCommit v5+ or ended by EndTxn v5+).
    pub client_transaction_version: i16,
}

impl TransactionMetadata {
    /// A transactional id seen for the first time: its producer id, no epoch yet (the first
    /// InitProducerId bump makes it 0).
    pub fn new(transactional_id: &str, producer_id: i64, txn_timeout_ms: i32, now_ms: i64) -> Self {
        TransactionMetadata {
            transactional_id: transactional_id.to_string(),
            producer_id,
            prev_producer_id: NO_PRODUCER_ID,
            next_producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            last_producer_epoch: NO_PRODUCER_EPOCH,
            txn_timeout_ms,
            state: TransactionState::Empty,
            partitions: BTreeSet::new(),
            txn_start_timestamp_ms: -1,
            txn_last_update_timestamp_ms: now_ms,
            client_transaction_version: 0,
        }
    }

    pub fn is_producer_epoch_exhausted(&self) -> bool {
        is_epoch_exhausted(self.producer_epoch)
    }

    /// Whether this transaction follows Transactions V2.
    pub fn is_transaction_v2(&self) -> bool {
        self.client_transaction_version >= crate::TransactionVersion::V2.feature_level()
    }

    /// The base of every transition: same values, `state`, and the current producer id
    /// remembered as the previous one (Kafka's `prepareTransitionTo` does the same). A transition
    /// Kafka would refuse with an `IllegalStateException` is an UNKNOWN_SERVER_ERROR.
    fn transit(&self, state: TransactionState) -> Result<TransactionMetadata, TxnError> {
        if !state.valid_previous_states().contains(&self.state) {
            return Err(TxnError::UnknownServerError);
        }
        let mut next = self.clone();
        next.state = state;
        next.prev_producer_id = self.producer_id;
        Ok(next)
    }

    /// InitProducerId on an idle transactional id: bump the epoch, or (KIP-360) repeat the
    /// previous answer to a retry, or refuse a fenced producer.
    pub fn prepare_increment_producer_epoch(
        &self,
        txn_timeout_ms: i32,
        expected_epoch: Option<i16>,
        now_ms: i64,
    ) -> Result<TransactionMetadata, TxnError> {
        if self.is_producer_epoch_exhausted() {
            // Kafka throws IllegalStateException here; callers rotate the producer id first
            // whenever they can.
            return Err(TxnError::UnknownServerError);
        }
        let mut next = self.transit(TransactionState::Empty)?;
        let bumped = self.producer_epoch + 1;
        match expected_epoch {
            None => {
                // A producer starting from scratch: any previous holder is fenced.
                next.producer_epoch = bumped;
                next.last_producer_epoch = NO_PRODUCER_EPOCH;
            }
            Some(e) if self.producer_epoch == NO_PRODUCER_EPOCH || e == self.producer_epoch => {
                // The current producer recovering from an error: bump, remember where from.
                next.producer_epoch = bumped;
                next.last_producer_epoch = self.producer_epoch;
            }
            Some(e) if e == self.last_producer_epoch => {
                // A retry of a bump that succeeded: answer the same epoch again. A new producer
                // would have reset the last epoch to -1, so this cannot resurrect a zombie.
            }
            Some(_) => return Err(TxnError::ProducerFenced),
        }
        next.txn_timeout_ms = txn_timeout_ms;
        next.partitions.clear();
        next.txn_start_timestamp_ms = -1;
        next.txn_last_update_timestamp_ms = now_ms;
        Ok(next)
    }

    /// InitProducerId when the epoch is exhausted: a new producer id with epoch 0.
    pub fn prepare_producer_id_rotation(
        &self,
        new_producer_id: i64,
        txn_timeout_ms: i32,
        now_ms: i64,
        record_last_epoch: bool,
    ) -> Result<TransactionMetadata, TxnError> {
        let mut next = self.transit(TransactionState::Empty)?;
        next.producer_id = new_producer_id;
        next.producer_epoch = 0;
        next.last_producer_epoch = if record_last_epoch {
            self.producer_epoch
        } else {
            NO_PRODUCER_EPOCH
        };
        next.txn_timeout_ms = txn_timeout_ms;
        next.partitions.clear();
        next.txn_start_timestamp_ms = -1;
        next.txn_last_update_timestamp_ms = now_ms;
        Ok(next)
    }

    /// AddPartitionsToTxn / AddOffsetsToTxn: the transaction starts (its start time is now) or
    /// grows.
    pub fn prepare_add_partitions(
        &self,
        added: &[(String, i32)],
        now_ms: i64,
        client_transaction_version: i16,
    ) -> Result<TransactionMetadata, TxnError> {
        let mut next = self.transit(TransactionState::Ongoing)?;
        if matches!(
            self.state,
            TransactionState::Empty
                | TransactionState::CompleteCommit
                | TransactionState::CompleteAbort
        ) {
            next.txn_start_timestamp_ms = now_ms;
        }
        next.partitions.extend(added.iter().cloned());
        next.txn_last_update_timestamp_ms = now_ms;
        // Transactions V1 requests (AddPartitionsToTxn below v5, AddOffsetsToTxn) say TV 0;
        // the implicit adds of Produce v12+ / TxnOffsetCommit v5+ say TV 2.
        next.client_transaction_version = client_transaction_version;
        Ok(next)
    }

    /// EndTxn: `PrepareCommit` or `PrepareAbort`. Transactions V1 keeps the producer id and
    /// epoch; Transactions V2 bumps the epoch (the markers carry the bumped one, fencing the
    /// transaction's own late batches) and, when `next_producer_id` is not -1 (the epoch was
    /// exhausted), records the producer id the client continues with after the markers.
    pub fn prepare_abort_or_commit(
        &self,
        commit: bool,
        now_ms: i64,
        client_transaction_version: i16,
        next_producer_id: i64,
    ) -> Result<TransactionMetadata, TxnError> {
        let state = if commit {
            TransactionState::PrepareCommit
        } else {
            TransactionState::PrepareAbort
        };
        let mut next = self.transit(state)?;
        next.client_transaction_version = client_transaction_version;
        if next.is_transaction_v2() {
            if self.producer_epoch == i16::MAX {
                // The caller allocates a new producer id at MAX - 1 already; Kafka throws.
                return Err(TxnError::UnknownServerError);
            }
            next.producer_epoch = self.producer_epoch + 1;
            next.last_producer_epoch = self.producer_epoch;
            next.next_producer_id = next_producer_id;
        } else {
            next.next_producer_id = NO_PRODUCER_ID;
        }
        next.txn_last_update_timestamp_ms = now_ms;
        Ok(next)
    }

    /// Fencing an ongoing transaction (a new InitProducerId, or its timeout): Kafka goes through
    /// `PrepareEpochFence` (epoch + 1, never persisted) and then aborts with that epoch as a
    /// coordinator-originated EndTxn, which clears the last epoch. The result is the one record
    /// Kafka writes: `PrepareAbort` with the bumped epoch.
    pub fn prepare_fence_and_abort(&self, now_ms: i64) -> Result<TransactionMetadata, TxnError> {
        let fencing = self.transit(TransactionState::PrepareEpochFence)?;
        let mut next = fencing.transit(TransactionState::PrepareAbort)?;
        // Kafka does not bump past i16::MAX (only reachable through a bug; kept for parity).
        if self.producer_epoch < i16::MAX {
            next.producer_epoch = self.producer_epoch + 1;
        }
        next.last_producer_epoch = NO_PRODUCER_EPOCH;
        next.prev_producer_id = self.producer_id;
        next.next_producer_id = NO_PRODUCER_ID;
        next.txn_last_update_timestamp_ms = now_ms;
        // The transaction keeps its client's version: a V2 transaction fenced by InitProducerId
        // is bumped once here and not again by the abort (KAFKA-19367), and a V1 one stays V1.
        Ok(next)
    }

    /// All markers are written: `CompleteCommit` / `CompleteAbort`, the partitions are done.
    pub fn prepare_complete(&self, now_ms: i64) -> Result<TransactionMetadata, TxnError> {
        let state = match self.state {
            TransactionState::PrepareCommit => TransactionState::CompleteCommit,
            _ => TransactionState::CompleteAbort,
        };
        let mut next = self.transit(state)?;
        if self.is_transaction_v2() && self.next_producer_id != NO_PRODUCER_ID {
            // The epoch overflowed at EndTxn: the markers went out under the old id at
            // i16::MAX, and the producer now continues under the new id at epoch 0.
            next.producer_id = self.next_producer_id;
            next.producer_epoch = 0;
        }
        if self.is_transaction_v2() {
            next.last_producer_epoch = self.producer_epoch;
        }
        next.next_producer_id = NO_PRODUCER_ID;
        next.partitions.clear();
        next.txn_last_update_timestamp_ms = now_ms;
        Ok(next)
    }

    /// The record Kafka 4.1 writes for this state.
    ///
    /// Kafka 4.1's `TransactionLog.valueToBytes` never sets `PreviousProducerId` or
    /// `NextProducerId` (they were only persisted from KAFKA-20310 on), so for a V1 transaction
    /// both stay at their default -1 and, being tagged fields, are not written at all. A V2
    /// transaction writes them (as KAFKA-20310 does): a coordinator that reloads a `PrepareCommit`
    /// whose EndTxn exhausted the epoch must know the producer id it already handed out, and a
    /// retried EndTxn after such a rotation is recognised by the previous id. The partitions are null in
    /// `Empty` and a (possibly empty) list in every other state.
    pub fn to_log_value(&self) -> TransactionLogValue {
        let partitions = if self.state == TransactionState::Empty {
            None
        } else {
            let mut by_topic: Vec<PartitionsSchema> = Vec::new();
            for (topic, partition) in &self.partitions {
                match by_topic.last_mut() {
                    Some(last) if &last.topic == topic => last.partition_ids.push(*partition),
                    _ => by_topic.push(PartitionsSchema {
                        topic: topic.clone(),
                        partition_ids: vec![*partition],
                    }),
                }
            }
            Some(by_topic)
        };
        TransactionLogValue {
            producer_id: self.producer_id,
            previous_producer_id: if self.is_transaction_v2() {
                self.prev_producer_id
            } else {
                NO_PRODUCER_ID
            },
            next_producer_id: if self.is_transaction_v2() {
                self.next_producer_id
            } else {
                NO_PRODUCER_ID
            },
            producer_epoch: self.producer_epoch,
            transaction_timeout_ms: self.txn_timeout_ms,
            state: self.state,
            partitions,
            last_update_timestamp_ms: self.txn_last_update_timestamp_ms,
            start_timestamp_ms: self.txn_start_timestamp_ms,
            client_transaction_version: self.client_transaction_version,
        }
    }

    /// The metadata a loaded record stands for (Kafka's `TransactionLog.readTxnRecordValue`):
    /// the last epoch is unknown after a load, and the partitions of an `Empty` record are
    /// ignored. A non-`Empty` record with null partitions (Kafka never writes one) loads with
    /// none, where Kafka's loader would fail.
    pub fn from_log_value(transactional_id: &str, v: &TransactionLogValue) -> Self {
        let partitions = if v.state == TransactionState::Empty {
            BTreeSet::new()
        } else {
            v.partitions
                .iter()
                .flatten()
                .flat_map(|p| p.partition_ids.iter().map(|id| (p.topic.clone(), *id)))
                .collect()
        };
        TransactionMetadata {
            transactional_id: transactional_id.to_string(),
            producer_id: v.producer_id,
            prev_producer_id: v.previous_producer_id,
            next_producer_id: v.next_producer_id,
            producer_epoch: v.producer_epoch,
            last_producer_epoch: NO_PRODUCER_EPOCH,
            txn_timeout_ms: v.transaction_timeout_ms,
            state: v.state,
            partitions,
            txn_start_timestamp_ms: v.start_timestamp_ms,
            txn_last_update_timestamp_ms: v.last_update_timestamp_ms,
            client_transaction_version: v.client_transaction_version,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_names_round_trip() {
        for s in TransactionState::ALL {
            assert_eq!(TransactionState::from_id(s.id()), Some(s));
            assert_eq!(TransactionState::from_name(s.name()), Some(s));
        }
        assert_eq!(TransactionState::from_id(8), None);
        assert_eq!(TransactionState::from_id(-1), None);
        assert_eq!(
            TransactionState::from_name("ongoing"),
            None,
            "names are exact"
        );
    }

    #[test]
    fn kip360_epoch_rules() {
        let mut m = TransactionMetadata::new("t", 7, 1000, 0);
        // New id: -1 -> 0 whether or not an expected epoch is given.
        let a = m.prepare_increment_producer_epoch(1000, None, 1).unwrap();
        assert_eq!((a.producer_epoch, a.last_producer_epoch), (0, -1));
        let b = m
            .prepare_increment_producer_epoch(1000, Some(5), 1)
            .unwrap();
        assert_eq!((b.producer_epoch, b.last_producer_epoch), (0, -1));

        m.producer_epoch = 3;
        m.last_producer_epoch = 2;
        let bump = m
            .prepare_increment_producer_epoch(1000, Some(3), 1)
            .unwrap();
        assert_eq!((bump.producer_epoch, bump.last_producer_epoch), (4, 3));
        let retry = m
            .prepare_increment_producer_epoch(1000, Some(2), 1)
            .unwrap();
        assert_eq!((retry.producer_epoch, retry.last_producer_epoch), (3, 2));
        assert_eq!(
            m.prepare_increment_producer_epoch(1000, Some(1), 1),
            Err(TxnError::ProducerFenced)
        );
        let fresh = m.prepare_increment_producer_epoch(1000, None, 1).unwrap();
        assert_eq!((fresh.producer_epoch, fresh.last_producer_epoch), (4, -1));

        m.producer_epoch = i16::MAX - 1;
        assert_eq!(
            m.prepare_increment_producer_epoch(1000, None, 1),
            Err(TxnError::UnknownServerError)
        );
    }

    #[test]
    fn invalid_transitions_are_refused() {
        let m = TransactionMetadata::new("t", 7, 1000, 0);
        assert_eq!(
            m.prepare_abort_or_commit(true, 1, 0, -1),
            Err(TxnError::UnknownServerError),
            "Empty -> PrepareCommit is not an edge"
        );
        assert_eq!(
            m.prepare_fence_and_abort(1),
            Err(TxnError::UnknownServerError)
        );
        let ongoing = m
            .prepare_add_partitions(&[("a".into(), 0)], 5, 0)
            .expect("Empty -> Ongoing");
        assert_eq!(ongoing.txn_start_timestamp_ms, 5);
        let more = ongoing
            .prepare_add_partitions(&[("b".into(), 1)], 9, 0)
            .expect("Ongoing -> Ongoing");
        assert_eq!(more.txn_start_timestamp_ms, 5, "start time stays");
        assert_eq!(more.partitions.len(), 2);
        assert_eq!(more.prepare_complete(10), Err(TxnError::UnknownServerError));
    }
}
