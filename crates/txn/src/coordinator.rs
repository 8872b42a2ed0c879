//! [`TxnCoordinator`]: every transactional id of the `__transaction_state` partitions this node
//! leads, and Kafka's Transactions V1 and V2 (KIP-890 part 2) protocols over them.
//!
//! Calls that change state take a [`ReplyId`] and return an [`Output`]. State changes apply at
//! once and the records that make them durable are in the same output; the shell writes them
//! before it sends any reply of that output or starts any of its [`WriteMarkers`]. Every reply
//! comes in the output of its own call (nothing is parked, unlike the group coordinator's joins):
//! the ids are there so the shell can route replies the same way for both coordinators.
//!
//! The rules follow Kafka 4.1's `TransactionCoordinator` and `TransactionStateManager`: which
//! state accepts which request, which error each situation gets and in which order the checks
//! run, how epochs are bumped and fenced (with every EndTxn for a Transactions V2 transaction,
//! see [`TxnCoordinator::end_txn_with_version`]), when producer ids rotate, when transactions
//! time out and when transactional ids expire.
//!
//! Producer ids come from a callback given to [`TxnCoordinator::new`]: the coordinator calls it
//! exactly when Kafka's calls `ProducerIdManager.generateProducerId` (a new transactional id, an
//! exhausted epoch, an InitProducerId without transactional id) and never otherwise, so no id
//! is wasted. It may fail (Kafka answers COORDINATOR_LOAD_IN_PROGRESS while its next block of ids
//! is on the way); the error is the reply.

use std::collections::{BTreeMap, HashMap};

use crate::metadata::{is_epoch_exhausted, TransactionMetadata, TransactionState};
use crate::records::{self, TxnLogRecord};
use crate::timers::{TimerKey, Timers};
use crate::{
    partition_for, TransactionVersion, TxnConfig, TxnError, CONSUMER_OFFSETS_TOPIC,
    NO_PRODUCER_EPOCH, NO_PRODUCER_ID,
};

/// Identifies the request a reply belongs to; chosen by the shell.
pub type ReplyId = u64;

/// Records for one `__transaction_state` partition: (key, value), a `None` value is a tombstone.
/// The shell writes each as one batch, with `acks=all`, uncompressed, like Kafka.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Append {
    pub partition: i32,
    pub records: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

#[derive(Debug)]
pub struct PendingReply {
    pub id: ReplyId,
    /// The `__transaction_state` partition whose records this reply depends on; `None` for a
    /// reply that depends on no write (InitProducerId without a transactional id, requests
    /// refused before any lookup).
    pub partition: Option<i32>,
    pub reply: Reply,
}

/// Transaction markers the shell must write: one WriteTxnMarkers entry per data partition
/// leader, with this producer id and epoch, this coordinator epoch and this result. When every
/// partition has its marker (or is gone: a deleted topic), the shell calls
/// [`TxnCoordinator::markers_written`] with the same identifiers; if a partition answers
/// TRANSACTION_COORDINATOR_FENCED or INVALID_PRODUCER_EPOCH it gives up without calling it (a
/// newer coordinator or producer owns the transaction), and retriable errors are retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WriteMarkers {
    /// The `__transaction_state` partition whose record this effect depends on: if that append
    /// failed the shell drops the effect (the record may or may not be in the log; the reload
    /// finds out and asks again), and when the partition is unloaded its marker writes stop.
    pub txn_partition: i32,
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// The leader epoch of `txn_partition` when it was loaded; partition leaders refuse markers
    /// from an older coordinator epoch (TRANSACTION_COORDINATOR_FENCED).
    pub coordinator_epoch: i32,
    pub commit: bool,
    /// (topic, partition), sorted.
    pub partitions: Vec<(String, i32)>,
}

/// What a call produced: write these records, then send these replies and start these marker
/// writes.
#[derive(Debug, Default)]
pub struct Output {
    pub appends: Vec<Append>,
    pub replies: Vec<PendingReply>,
    pub markers: Vec<WriteMarkers>,
}

impl Output {
    fn reply(&mut self, id: ReplyId, partition: Option<i32>, reply: Reply) {
        self.replies.push(PendingReply {
            id,
            partition,
            reply,
        });
    }

    fn append(&mut self, partition: i32, key: Vec<u8>, value: Option<Vec<u8>>) {
        match self.appends.last_mut() {
            Some(a) if a.partition == partition => a.records.push((key, value)),
            _ => self.appends.push(Append {
                partition,
                records: vec![(key, value)],
            }),
        }
    }

    pub fn merge(&mut self, other: Output) {
        for a in other.appends {
            for (k, v) in a.records {
                self.append(a.partition, k, v);
            }
        }
        self.replies.extend(other.replies);
        self.markers.extend(other.markers);
    }

    pub fn is_empty(&self) -> bool {
        self.appends.is_empty() && self.replies.is_empty() && self.markers.is_empty()
    }
}

/// A producer id with its epoch: the InitProducerId answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerIdAndEpoch {
    pub producer_id: i64,
    pub producer_epoch: i16,
}

/// Every reply the coordinator sends after the records of its call are written.
///
/// An EndTxn reply carries the producer id and epoch the client continues with (EndTxn v5+
/// returns them; a Transactions V2 client adopts them): the bumped epoch after a V2 commit or
/// abort, or the new producer id at epoch 0 when that bump exhausted the epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    InitProducerId(Result<ProducerIdAndEpoch, TxnError>),
    /// For all partitions of the request alike (AddPartitionsToTxn below v4 has one transaction;
    /// Kafka reports its error for each partition).
    AddPartitions(Result<(), TxnError>),
    AddOffsets(Result<(), TxnError>),
    EndTxn(Result<ProducerIdAndEpoch, TxnError>),
}

impl Reply {
    /// The same reply, failed with `error` (used when its records could not be written). Kafka
    /// turns a failed append into NOT_COORDINATOR (not leader, storage error) or
    /// COORDINATOR_NOT_AVAILABLE (not enough replicas, timeout); the shell picks.
    #[must_use]
    pub fn failed(self, error: TxnError) -> Reply {
        match self {
            Reply::InitProducerId(_) => Reply::InitProducerId(Err(error)),
            Reply::AddPartitions(_) => Reply::AddPartitions(Err(error)),
            Reply::AddOffsets(_) => Reply::AddOffsets(Err(error)),
            Reply::EndTxn(_) => Reply::EndTxn(Err(error)),
        }
    }
}

/// A DescribeTransactions entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedTransaction {
    pub transactional_id: String,
    pub state: TransactionState,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub transaction_timeout_ms: i32,
    /// -1 when no transaction has started.
    pub transaction_start_time_ms: i64,
    /// (topic, partitions), sorted.
    pub topics: Vec<(String, Vec<i32>)>,
}

/// A ListTransactions entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedTransaction {
    pub transactional_id: String,
    pub producer_id: i64,
    pub state: TransactionState,
}

/// The ListTransactions answer.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ListedTransactions {
    /// Sorted by transactional id.
    pub transactions: Vec<ListedTransaction>,
    /// State filters that name no state, echoed as Kafka does.
    pub unknown_state_filters: Vec<String>,
}

/// The filters of a ListTransactions request; each one that is set must match.
pub struct ListTransactionsFilter<'a> {
    /// State names (v0+); empty = all states.
    pub states: &'a [String],
    /// Producer ids (v0+); empty = all.
    pub producer_ids: &'a [i64],
    /// Only transactions running longer than this (v1+, KIP-994); negative = no filter.
    pub duration_ms: i64,
    /// The transactional id pattern (v2+, KIP-1152) as a predicate: Kafka 4.1 compiles it with
    /// RE2/J and requires the whole id to match. The shell compiles it (and answers
    /// INVALID_REGULAR_EXPRESSION for a bad one), which keeps a regex engine out of this crate.
    pub transactional_id: Option<&'a dyn Fn(&str) -> bool>,
}

impl Default for ListTransactionsFilter<'_> {
    fn default() -> Self {
        ListTransactionsFilter {
            states: &[],
            producer_ids: &[],
            duration_ms: -1,
            transactional_id: None,
        }
    }
}

impl std::fmt::Debug for ListTransactionsFilter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ListTransactionsFilter")
            .field("states", &self.states)
            .field("producer_ids", &self.producer_ids)
            .field("duration_ms", &self.duration_ms)
            .field("transactional_id", &self.transactional_id.is_some())
            .finish()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Load {
    Loading,
    Loaded,
}

/// One `__transaction_state` partition led here (Kafka's `TxnMetadataCacheEntry`).
#[derive(Debug)]
struct TxnPartition {
    load: Load,
    coordinator_epoch: i32,
    txns: HashMap<String, TransactionMetadata>,
}

/// Source of fresh producer ids; see the module docs.
pub type ProducerIdSource = Box<dyn FnMut() -> Result<i64, TxnError> + Send>;

/// The transactional ids of the `__transaction_state` partitions this node leads.
pub struct TxnCoordinator {
    config: TxnConfig,
    partitions: HashMap<i32, TxnPartition>,
    timers: Timers,
    next_producer_id: ProducerIdSource,
}

impl std::fmt::Debug for TxnCoordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxnCoordinator")
            .field(
                "transactions",
                &self
                    .partitions
                    .values()
                    .map(|p| p.txns.len())
                    .sum::<usize>(),
            )
            .field("partitions", &self.partitions.len())
            .finish()
    }
}

impl TxnCoordinator {
    /// `next_producer_id` hands out fresh producer ids (the shell's block from the controller's
    /// AllocateProducerIds, shared with idempotent producers); see the module docs.
    pub fn new(config: TxnConfig, next_producer_id: ProducerIdSource) -> Self {
        TxnCoordinator {
            config,
            partitions: HashMap::new(),
            timers: Timers::default(),
            next_producer_id,
        }
    }

    pub fn config(&self) -> &TxnConfig {
        &self.config
    }

    /// The `__transaction_state` partition of `transactional_id`.
    pub fn partition_of(&self, transactional_id: &str) -> i32 {
        partition_for(transactional_id, self.config.num_partitions)
    }

    /// Whether `partition` is loaded or loading here.
    pub fn owns_partition(&self, partition: i32) -> bool {
        self.partitions.contains_key(&partition)
    }

    /// Whether this node coordinates `transactional_id` (partition loaded or loading).
    pub fn owns(&self, transactional_id: &str) -> bool {
        self.owns_partition(self.partition_of(transactional_id))
    }

    /// Whether any partition is still loading.
    pub fn is_loading(&self) -> bool {
        self.partitions.values().any(|p| p.load == Load::Loading)
    }

    /// The coordinator epoch `partition` was loaded with.
    pub fn coordinator_epoch(&self, partition: i32) -> Option<i32> {
        self.partitions.get(&partition).map(|p| p.coordinator_epoch)
    }

    /// When `tick` should next run.
    pub fn next_deadline_ms(&self) -> Option<i64> {
        self.timers.next_deadline_ms()
    }

    /// The state of a transactional id of a loaded partition, for tests and diagnostics.
    pub fn transaction(&self, transactional_id: &str) -> Option<&TransactionMetadata> {
        self.partitions
            .get(&self.partition_of(transactional_id))
            .filter(|p| p.load == Load::Loaded)
            .and_then(|p| p.txns.get(transactional_id))
    }

    /// The partition of `transactional_id` if it is loaded here, else the error Kafka answers.
    fn check_coordinator(&self, transactional_id: &str) -> Result<i32, TxnError> {
        let p = self.partition_of(transactional_id);
        match self.partitions.get(&p).map(|e| e.load) {
            Some(Load::Loaded) => Ok(p),
            Some(Load::Loading) => Err(TxnError::CoordinatorLoadInProgress),
            None => Err(TxnError::NotCoordinator),
        }
    }

    fn get(&self, partition: i32, transactional_id: &str) -> Option<&TransactionMetadata> {
        self.partitions
            .get(&partition)
            .and_then(|p| p.txns.get(transactional_id))
    }

    /// Applies `next` and puts its record in `out`, at the value version the cluster's
    /// `transaction.version` calls for.
    fn persist(&mut self, partition: i32, next: TransactionMetadata, out: &mut Output) {
        let key = records::encode_key(&next.transactional_id);
        let value = records::encode_value(
            &next.to_log_value(),
            self.config.transaction_version.log_value_version(),
        );
        out.append(partition, key, Some(value));
        if let Some(p) = self.partitions.get_mut(&partition) {
            p.txns.insert(next.transactional_id.clone(), next);
        }
    }

    fn markers_for(&self, partition: i32, m: &TransactionMetadata) -> WriteMarkers {
        WriteMarkers {
            txn_partition: partition,
            transactional_id: m.transactional_id.clone(),
            producer_id: m.producer_id,
            producer_epoch: m.producer_epoch,
            coordinator_epoch: self.coordinator_epoch(partition).unwrap_or(-1),
            commit: m.state == TransactionState::PrepareCommit,
            partitions: m.partitions.iter().cloned().collect(),
        }
    }

    // ---- loading ---------------------------------------------------------------------------

    /// Starts loading a partition this node now leads, at `coordinator_epoch` (the partition's
    /// leader epoch). Whatever was known about the partition is dropped; its transactional ids
    /// answer COORDINATOR_LOAD_IN_PROGRESS until [`TxnCoordinator::finish_load`].
    pub fn begin_load(&mut self, partition: i32, coordinator_epoch: i32) {
        self.partitions.insert(
            partition,
            TxnPartition {
                load: Load::Loading,
                coordinator_epoch,
                txns: HashMap::new(),
            },
        );
    }

    /// Applies one record read back from a loading partition, in log order: a value replaces
    /// the transactional id's state, a tombstone removes it, other key types are skipped.
    /// Records for a partition that is not loading are ignored (the load was superseded).
    pub fn replay(&mut self, partition: i32, record: TxnLogRecord) {
        let Some(p) = self
            .partitions
            .get_mut(&partition)
            .filter(|p| p.load == Load::Loading)
        else {
            return;
        };
        match record {
            TxnLogRecord::Transaction {
                transactional_id,
                value: Some(v),
            } => {
                let m = TransactionMetadata::from_log_value(&transactional_id, &v);
                p.txns.insert(transactional_id, m);
            }
            TxnLogRecord::Transaction {
                transactional_id,
                value: None,
            } => {
                p.txns.remove(&transactional_id);
            }
            TxnLogRecord::Other { .. } => {}
        }
    }

    /// Ends a load: the partition's transactional ids start serving, and every transaction the
    /// log left in `PrepareCommit` / `PrepareAbort` gets its markers written again (the previous
    /// coordinator may have died half-way), with this coordinator's epoch.
    pub fn finish_load(&mut self, partition: i32, now_ms: i64) -> Output {
        let mut out = Output::default();
        let Some(p) = self.partitions.get_mut(&partition) else {
            return out;
        };
        p.load = Load::Loaded;
        let Some(p) = self.partitions.get(&partition) else {
            return out;
        };
        let mut preparing: Vec<&TransactionMetadata> =
            p.txns.values().filter(|m| m.state.is_preparing()).collect();
        preparing.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        let markers: Vec<WriteMarkers> = preparing
            .into_iter()
            .map(|m| self.markers_for(partition, m))
            .collect();
        out.markers = markers;
        for (key, interval) in [
            (
                TimerKey::AbortTimedOutTransactions,
                self.config.abort_timed_out_transaction_cleanup_interval_ms,
            ),
            (
                TimerKey::RemoveExpiredTransactionalIds,
                self.config.remove_expired_transaction_cleanup_interval_ms,
            ),
        ] {
            if self.timers.deadline(&key).is_none() {
                self.timers.schedule(key, now_ms + interval);
            }
        }
        out
    }

    /// Drops a partition (no longer led here, or its log failed). Nothing is parked, so there
    /// is nothing to answer; the shell stops the marker writes of this partition's
    /// [`WriteMarkers`] (the next leader writes them again after its load).
    pub fn unload_partition(&mut self, partition: i32) {
        self.partitions.remove(&partition);
    }

    // ---- InitProducerId --------------------------------------------------------------------

    /// InitProducerId. `transactional_id` `None` is an idempotent producer: a fresh producer id
    /// with epoch 0, nothing persisted. Otherwise (KIP-98, KIP-360): a new transactional id gets
    /// a fresh producer id and epoch 0; a known one gets its epoch bumped (fencing the previous
    /// holder), or a new producer id when the epoch is exhausted; an ongoing transaction is first
    /// aborted with a fencing epoch bump and the answer is CONCURRENT_TRANSACTIONS, so the client
    /// retries once the abort is complete. `expected_producer_id` / `expected_producer_epoch`
    /// are the request's KIP-360 fields, -1 / -1 when absent.
    pub fn init_producer_id(
        &mut self,
        now_ms: i64,
        reply: ReplyId,
        transactional_id: Option<&str>,
        transaction_timeout_ms: i32,
        expected_producer_id: i64,
        expected_producer_epoch: i16,
    ) -> Output {
        let mut out = Output::default();
        let fail = |out: &mut Output, partition: Option<i32>, e: TxnError| {
            out.reply(reply, partition, Reply::InitProducerId(Err(e)));
        };
        // KafkaApis: both or neither.
        let expected = match (expected_producer_id, expected_producer_epoch) {
            (NO_PRODUCER_ID, NO_PRODUCER_EPOCH) => None,
            (NO_PRODUCER_ID, _) | (_, NO_PRODUCER_EPOCH) => {
                fail(&mut out, None, TxnError::InvalidRequest);
                return out;
            }
            (producer_id, producer_epoch) => Some(ProducerIdAndEpoch {
                producer_id,
                producer_epoch,
            }),
        };
        let Some(id) = transactional_id else {
            let result = (self.next_producer_id)().map(|producer_id| ProducerIdAndEpoch {
                producer_id,
                producer_epoch: 0,
            });
            out.reply(reply, None, Reply::InitProducerId(result));
            return out;
        };
        if id.is_empty() {
            // The Java producer refuses an empty id itself; Kafka answers others the same way.
            fail(&mut out, None, TxnError::InvalidRequest);
            return out;
        }
        if transaction_timeout_ms <= 0 || transaction_timeout_ms > self.config.max_timeout_ms {
            fail(&mut out, None, TxnError::InvalidTransactionTimeout);
            return out;
        }
        let p = match self.check_coordinator(id) {
            Ok(p) => p,
            Err(e) => {
                fail(&mut out, Some(self.partition_of(id)), e);
                return out;
            }
        };
        let m = match self.get(p, id) {
            Some(m) => m.clone(),
            None => match (self.next_producer_id)() {
                Ok(pid) => TransactionMetadata::new(id, pid, transaction_timeout_ms, now_ms),
                Err(e) => {
                    fail(&mut out, Some(p), e);
                    return out;
                }
            },
        };
        match self.prepare_init_producer_id(&m, transaction_timeout_ms, expected, now_ms) {
            Err(e) => fail(&mut out, Some(p), e),
            Ok(next) if next.state == TransactionState::PrepareAbort => {
                // The fence: abort first, let the client come back for its epoch.
                let markers = self.markers_for(p, &next);
                self.persist(p, next, &mut out);
                out.markers.push(markers);
                fail(&mut out, Some(p), TxnError::ConcurrentTransactions);
            }
            Ok(next) => {
                let answer = ProducerIdAndEpoch {
                    producer_id: next.producer_id,
                    producer_epoch: next.producer_epoch,
                };
                self.persist(p, next, &mut out);
                out.reply(reply, Some(p), Reply::InitProducerId(Ok(answer)));
            }
        }
        out
    }

    /// Kafka's `prepareInitProducerIdTransit`, checks in Kafka's order.
    fn prepare_init_producer_id(
        &mut self,
        m: &TransactionMetadata,
        transaction_timeout_ms: i32,
        expected: Option<ProducerIdAndEpoch>,
        now_ms: i64,
    ) -> Result<TransactionMetadata, TxnError> {
        if m.state.is_preparing() {
            // Kafka's pending Complete* transition: checked before anything else.
            return Err(TxnError::ConcurrentTransactions);
        }
        if let Some(e) = expected {
            // Fence unless the metadata is brand new (recovering from UNKNOWN_PRODUCER_ID), the
            // id is the current one (the epoch is checked below), or it is the previous one and
            // its epoch was exhausted: a retry of a rotation whose answer was lost.
            let valid = m.producer_epoch == NO_PRODUCER_EPOCH
                || e.producer_id == m.producer_id
                || (e.producer_id == m.prev_producer_id && is_epoch_exhausted(e.producer_epoch));
            if !valid {
                return Err(TxnError::ProducerFenced);
            }
        }
        match m.state {
            TransactionState::Empty
            | TransactionState::CompleteCommit
            | TransactionState::CompleteAbort => {
                let rotate = m.is_producer_epoch_exhausted()
                    && expected.is_none_or(|e| e.producer_epoch == m.producer_epoch);
                if rotate {
                    let new_id = (self.next_producer_id)()?;
                    m.prepare_producer_id_rotation(
                        new_id,
                        transaction_timeout_ms,
                        now_ms,
                        expected.is_some(),
                    )
                } else {
                    m.prepare_increment_producer_epoch(
                        transaction_timeout_ms,
                        expected.map(|e| e.producer_epoch),
                        now_ms,
                    )
                }
            }
            // The bumped epoch is never returned: the client retries and gets a second bump (or,
            // if this one exhausted the epoch, a new producer id).
            TransactionState::Ongoing => m.prepare_fence_and_abort(now_ms),
            // Never entered (or never stored) by this coordinator; Kafka throws.
            TransactionState::PrepareCommit
            | TransactionState::PrepareAbort
            | TransactionState::Dead
            | TransactionState::PrepareEpochFence => Err(TxnError::UnknownServerError),
        }
    }

    // ---- AddPartitionsToTxn / AddOffsetsToTxn -----------------------------------------------

    /// AddPartitionsToTxn (below v4, or one transaction of v4+ that is not verify-only): adds
    /// the partitions to the producer's transaction, starting it if need be. The broker checks
    /// authorization and that the partitions exist first, as Kafka's `KafkaApis` does.
    pub fn add_partitions_to_txn(
        &mut self,
        now_ms: i64,
        reply: ReplyId,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[(String, i32)],
    ) -> Output {
        self.add_partitions_to_txn_with_version(
            now_ms,
            reply,
            transactional_id,
            producer_id,
            producer_epoch,
            partitions,
            TransactionVersion::V0,
        )
    }

    /// AddPartitionsToTxn for a transaction of `client_transaction_version`: V0 for
    /// AddPartitionsToTxn below v5, V2 for v5+ (what Kafka's partition leaders send for the
    /// implicit add of a Produce v12+ or TxnOffsetCommit v5+; rafka's leaders call this
    /// directly). The transaction records the version, which decides how its EndTxn goes.
    #[allow(clippy::too_many_arguments)]
    pub fn add_partitions_to_txn_with_version(
        &mut self,
        now_ms: i64,
        reply: ReplyId,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[(String, i32)],
        client_transaction_version: TransactionVersion,
    ) -> Output {
        let mut out = Output::default();
        let (p, result) = self.add_to_txn(
            now_ms,
            transactional_id,
            producer_id,
            producer_epoch,
            partitions,
            client_transaction_version.feature_level(),
            &mut out,
        );
        out.reply(reply, p, Reply::AddPartitions(result));
        out
    }

    /// AddOffsetsToTxn: adds the group's `__consumer_offsets` partition (`offsets_partition`,
    /// which the broker computes from the group id) to the transaction, so the EndTxn markers
    /// settle the offsets committed with TxnOffsetCommit.
    pub fn add_offsets_to_txn(
        &mut self,
        now_ms: i64,
        reply: ReplyId,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        offsets_partition: i32,
    ) -> Output {
        let mut out = Output::default();
        let partitions = [(CONSUMER_OFFSETS_TOPIC.to_string(), offsets_partition)];
        let (p, result) = self.add_to_txn(
            now_ms,
            transactional_id,
            producer_id,
            producer_epoch,
            &partitions,
            0,
            &mut out,
        );
        out.reply(reply, p, Reply::AddOffsets(result));
        out
    }

    #[allow(clippy::too_many_arguments)]
    fn add_to_txn(
        &mut self,
        now_ms: i64,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[(String, i32)],
        client_transaction_version: i16,
        out: &mut Output,
    ) -> (Option<i32>, Result<(), TxnError>) {
        if transactional_id.is_empty() {
            return (None, Err(TxnError::InvalidRequest));
        }
        let p = match self.check_coordinator(transactional_id) {
            Ok(p) => p,
            Err(e) => return (Some(self.partition_of(transactional_id)), Err(e)),
        };
        let next = match self.get(p, transactional_id) {
            None => Err(TxnError::InvalidProducerIdMapping),
            Some(m) if m.producer_id != producer_id => Err(TxnError::InvalidProducerIdMapping),
            Some(m) if m.producer_epoch != producer_epoch => Err(TxnError::ProducerFenced),
            Some(m) if m.state.is_preparing() => Err(TxnError::ConcurrentTransactions),
            Some(m)
                if m.state == TransactionState::Ongoing
                    && partitions.iter().all(|tp| m.partitions.contains(tp)) =>
            {
                // Nothing new: answer at once, nothing to write.
                return (Some(p), Ok(()));
            }
            Some(m) => m.prepare_add_partitions(partitions, now_ms, client_transaction_version),
        };
        match next {
            Ok(next) => {
                self.persist(p, next, out);
                (Some(p), Ok(()))
            }
            Err(e) => (Some(p), Err(e)),
        }
    }

    /// The verify-only form of AddPartitionsToTxn (v4+, KIP-890 part 1: a partition leader
    /// asking whether a transactional produce belongs to the ongoing transaction). Per
    /// partition: none if it is in the transaction, TRANSACTION_ABORTABLE if not; an error for
    /// the whole transaction otherwise. Reads only.
    pub fn verify_partitions_in_txn(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[(String, i32)],
    ) -> Result<Vec<(String, i32, Option<TxnError>)>, TxnError> {
        if transactional_id.is_empty() {
            return Err(TxnError::InvalidRequest);
        }
        let p = self.check_coordinator(transactional_id)?;
        match self.get(p, transactional_id) {
            None => Err(TxnError::InvalidProducerIdMapping),
            Some(m) if m.producer_id != producer_id => Err(TxnError::InvalidProducerIdMapping),
            Some(m) if m.producer_epoch != producer_epoch => Err(TxnError::ProducerFenced),
            Some(m) if m.state.is_preparing() => Err(TxnError::ConcurrentTransactions),
            Some(m) => Ok(partitions
                .iter()
                .map(|(topic, partition)| {
                    let error = (!m.partitions.contains(&(topic.clone(), *partition)))
                        .then_some(TxnError::TransactionAbortable);
                    (topic.clone(), *partition, error)
                })
                .collect()),
        }
    }

    // ---- EndTxn ----------------------------------------------------------------------------

    /// EndTxn v0-v4 (a Transactions V1 client); see [`TxnCoordinator::end_txn_with_version`].
    pub fn end_txn(
        &mut self,
        now_ms: i64,
        reply: ReplyId,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
    ) -> Output {
        self.end_txn_with_version(
            now_ms,
            reply,
            transactional_id,
            producer_id,
            producer_epoch,
            commit,
            TransactionVersion::V0,
        )
    }

    /// EndTxn, with the client's transaction version (V2 for EndTxn v5+), following Kafka 4.1's
    /// `endTransaction`.
    ///
    /// From `Ongoing`: `PrepareCommit` / `PrepareAbort` is persisted, the reply is sent once it
    /// is written, and the output carries the [`WriteMarkers`] that complete the transaction. A
    /// V2 client's EndTxn bumps the epoch (the markers carry the bumped epoch, and the reply
    /// returns it); when the epoch was exhausted a new producer id is allocated, recorded as the
    /// next producer id, and returned at epoch 0. While the markers are being written any EndTxn
    /// gets CONCURRENT_TRANSACTIONS.
    ///
    /// Retries: a V1 transaction needs the same epoch, so a retry after the markers gets no
    /// error for the same outcome and INVALID_TXN_STATE for the other; `Empty` is
    /// INVALID_TXN_STATE (a V1 transaction needs partitions to end). A V2 transaction's epoch
    /// moved on, so a retry is recognised by the previous epoch (or, after a rotation, the
    /// previous producer id at `i16::MAX - 1`); the same epoch as the coordinator's is the
    /// client's next EndTxn, and an abort of a transaction that added nothing (`Empty`,
    /// `Complete*`) is written as `PrepareAbort` and `CompleteAbort` with a bumped epoch and no
    /// markers.
    #[allow(clippy::too_many_arguments)]
    pub fn end_txn_with_version(
        &mut self,
        now_ms: i64,
        reply: ReplyId,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        client_transaction_version: TransactionVersion,
    ) -> Output {
        let mut out = Output::default();
        if transactional_id.is_empty() {
            out.reply(reply, None, Reply::EndTxn(Err(TxnError::InvalidRequest)));
            return out;
        }
        let p = match self.check_coordinator(transactional_id) {
            Ok(p) => p,
            Err(e) => {
                let p = self.partition_of(transactional_id);
                out.reply(reply, Some(p), Reply::EndTxn(Err(e)));
                return out;
            }
        };
        let client_v2 = client_transaction_version.supports_epoch_bump();
        let Some(m) = self.get(p, transactional_id).cloned() else {
            out.reply(
                reply,
                Some(p),
                Reply::EndTxn(Err(TxnError::InvalidProducerIdMapping)),
            );
            return out;
        };
        let current = ProducerIdAndEpoch {
            producer_id: m.producer_id,
            producer_epoch: m.producer_epoch,
        };
        let txn_v2 = m.is_transaction_v2();
        // A V2 client retrying an EndTxn whose bump exhausted the epoch: the id rotated.
        let retry_on_overflow = txn_v2
            && m.prev_producer_id == producer_id
            && producer_epoch == i16::MAX - 1
            && m.producer_epoch == 0;
        // A V2 client retrying an EndTxn that bumped the epoch.
        let retry_on_bump = txn_v2 && i32::from(m.producer_epoch) == i32::from(producer_epoch) + 1;
        let is_retry = retry_on_bump || retry_on_overflow;
        let valid_epoch = if txn_v2 {
            match m.state {
                TransactionState::PrepareCommit | TransactionState::PrepareAbort => retry_on_bump,
                TransactionState::CompleteCommit | TransactionState::CompleteAbort => {
                    is_retry || producer_epoch == m.producer_epoch
                }
                _ => producer_epoch == m.producer_epoch,
            }
        } else {
            // Clients never bump the epoch themselves under V1: strict equality.
            producer_epoch == m.producer_epoch
        };
        let result: Result<Option<TransactionMetadata>, TxnError> =
            if m.producer_id != producer_id && !retry_on_overflow {
                Err(TxnError::InvalidProducerIdMapping)
            } else if !valid_epoch {
                Err(TxnError::ProducerFenced)
            } else if m.state.is_preparing() {
                // The markers of the previous EndTxn are still being written (Kafka's pending
                // Complete* transition), whichever outcome this one asks for.
                Err(TxnError::ConcurrentTransactions)
            } else {
                let tv = client_transaction_version.feature_level();
                match m.state {
                    TransactionState::Ongoing => {
                        let next_pid = if client_v2 && m.is_producer_epoch_exhausted() {
                            (self.next_producer_id)()
                        } else {
                            Ok(NO_PRODUCER_ID)
                        };
                        next_pid.and_then(|next_pid| {
                            m.prepare_abort_or_commit(commit, now_ms, tv, next_pid)
                                .map(Some)
                        })
                    }
                    TransactionState::CompleteCommit if commit => {
                        if is_retry || !txn_v2 {
                            Ok(None)
                        } else {
                            Err(TxnError::InvalidTxnState)
                        }
                    }
                    TransactionState::CompleteAbort if !commit && (is_retry || !txn_v2) => Ok(None),
                    TransactionState::Empty
                    | TransactionState::CompleteCommit
                    | TransactionState::CompleteAbort
                        if !commit && client_v2 && !is_retry =>
                    {
                        // V2: aborting a transaction that added nothing still bumps the epoch.
                        m.prepare_abort_or_commit(false, now_ms, tv, NO_PRODUCER_ID)
                            .map(Some)
                    }
                    TransactionState::CompleteCommit
                    | TransactionState::CompleteAbort
                    | TransactionState::Empty => Err(TxnError::InvalidTxnState),
                    // Never stored by this coordinator (Prepare* is handled above); Kafka throws.
                    TransactionState::PrepareCommit
                    | TransactionState::PrepareAbort
                    | TransactionState::Dead
                    | TransactionState::PrepareEpochFence => Err(TxnError::UnknownServerError),
                }
            };
        match result {
            Ok(Some(next)) => {
                let answer = if next.next_producer_id != NO_PRODUCER_ID {
                    ProducerIdAndEpoch {
                        producer_id: next.next_producer_id,
                        producer_epoch: 0,
                    }
                } else {
                    ProducerIdAndEpoch {
                        producer_id: next.producer_id,
                        producer_epoch: next.producer_epoch,
                    }
                };
                if next.partitions.is_empty() {
                    // Nothing to mark: complete at once, as Kafka's marker manager does for a
                    // transaction without partitions.
                    let complete = next.prepare_complete(now_ms);
                    self.persist(p, next, &mut out);
                    if let Ok(complete) = complete {
                        self.persist(p, complete, &mut out);
                    }
                } else {
                    let markers = self.markers_for(p, &next);
                    self.persist(p, next, &mut out);
                    out.markers.push(markers);
                }
                out.reply(reply, Some(p), Reply::EndTxn(Ok(answer)));
            }
            Ok(None) => out.reply(reply, Some(p), Reply::EndTxn(Ok(current))),
            Err(e) => out.reply(reply, Some(p), Reply::EndTxn(Err(e))),
        }
        out
    }

    /// The markers of a [`WriteMarkers`] effect are all written: the transaction moves to
    /// `CompleteCommit` / `CompleteAbort`, persisted. A report that no longer matches (the
    /// partition was unloaded or reloaded at another coordinator epoch, the producer moved on,
    /// the transaction is not preparing) is ignored, as Kafka ignores markers of a superseded
    /// coordinator epoch.
    pub fn markers_written(
        &mut self,
        now_ms: i64,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        coordinator_epoch: i32,
    ) -> Output {
        let mut out = Output::default();
        let Ok(p) = self.check_coordinator(transactional_id) else {
            return out;
        };
        if self.coordinator_epoch(p) != Some(coordinator_epoch) {
            return out;
        }
        let next = match self.get(p, transactional_id) {
            Some(m)
                if m.producer_id == producer_id
                    && m.producer_epoch == producer_epoch
                    && m.state.is_preparing() =>
            {
                m.prepare_complete(now_ms)
            }
            _ => return out,
        };
        if let Ok(next) = next {
            self.persist(p, next, &mut out);
        }
        out
    }

    // ---- admin -----------------------------------------------------------------------------

    /// DescribeTransactions for one transactional id.
    pub fn describe_transaction(
        &self,
        transactional_id: &str,
    ) -> Result<DescribedTransaction, TxnError> {
        if transactional_id.is_empty() {
            return Err(TxnError::InvalidRequest);
        }
        let p = self.check_coordinator(transactional_id)?;
        let m = self
            .get(p, transactional_id)
            .filter(|m| m.state != TransactionState::Dead)
            .ok_or(TxnError::TransactionalIdNotFound)?;
        let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for (topic, partition) in &m.partitions {
            topics.entry(topic).or_default().push(*partition);
        }
        Ok(DescribedTransaction {
            transactional_id: m.transactional_id.clone(),
            state: m.state,
            producer_id: m.producer_id,
            producer_epoch: m.producer_epoch,
            transaction_timeout_ms: m.txn_timeout_ms,
            transaction_start_time_ms: m.txn_start_timestamp_ms,
            topics: topics
                .into_iter()
                .map(|(t, ps)| (t.to_string(), ps))
                .collect(),
        })
    }

    /// ListTransactions over every partition led here. While any partition is loading the
    /// answer is COORDINATOR_LOAD_IN_PROGRESS, as in Kafka (a producer-id filter cannot tell
    /// which partitions matter).
    ///
    /// The duration filter keeps transactions with `now - start > duration`, computed from the
    /// start timestamp whatever the state, as Kafka 4.1 does, so an `Empty` transactional id
    /// (start -1) always passes it.
    pub fn list_transactions(
        &self,
        now_ms: i64,
        filter: &ListTransactionsFilter<'_>,
    ) -> Result<ListedTransactions, TxnError> {
        if self.is_loading() {
            return Err(TxnError::CoordinatorLoadInProgress);
        }
        let mut states = Vec::new();
        let mut unknown_state_filters = Vec::new();
        for name in filter.states {
            match TransactionState::from_name(name) {
                Some(s) => states.push(s),
                None => unknown_state_filters.push(name.clone()),
            }
        }
        let include = |m: &TransactionMetadata| {
            // Dead is transient: the id is on its way out.
            m.state != TransactionState::Dead
                && (filter.producer_ids.is_empty() || filter.producer_ids.contains(&m.producer_id))
                && (filter.states.is_empty() || states.contains(&m.state))
                && (filter.duration_ms < 0
                    || now_ms.saturating_sub(m.txn_start_timestamp_ms) > filter.duration_ms)
                && filter
                    .transactional_id
                    .is_none_or(|matches| matches(&m.transactional_id))
        };
        let mut transactions: Vec<ListedTransaction> = self
            .partitions
            .values()
            .flat_map(|p| p.txns.values())
            .filter(|m| include(m))
            .map(|m| ListedTransaction {
                transactional_id: m.transactional_id.clone(),
                producer_id: m.producer_id,
                state: m.state,
            })
            .collect();
        transactions.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        Ok(ListedTransactions {
            transactions,
            unknown_state_filters,
        })
    }

    // ---- time ------------------------------------------------------------------------------

    /// Runs everything due at `now_ms`.
    pub fn tick(&mut self, now_ms: i64) -> Output {
        let mut out = Output::default();
        while let Some(key) = self.timers.pop_due(now_ms) {
            let interval = match key {
                TimerKey::AbortTimedOutTransactions => {
                    self.abort_timed_out_transactions(now_ms, &mut out);
                    self.config.abort_timed_out_transaction_cleanup_interval_ms
                }
                TimerKey::RemoveExpiredTransactionalIds => {
                    self.remove_expired_transactional_ids(now_ms, &mut out);
                    self.config.remove_expired_transaction_cleanup_interval_ms
                }
            };
            // At least 1 ms, so a zero interval cannot spin this loop.
            self.timers.schedule(key, now_ms + interval.max(1));
        }
        out
    }

    /// Loaded (partition, id) pairs whose metadata satisfies `pred`, in a stable order.
    fn select(&self, pred: impl Fn(&TransactionMetadata) -> bool) -> Vec<(i32, String)> {
        let mut ids: Vec<(i32, String)> = self
            .partitions
            .iter()
            .filter(|(_, p)| p.load == Load::Loaded)
            .flat_map(|(n, p)| {
                p.txns
                    .values()
                    .filter(|m| pred(m))
                    .map(move |m| (*n, m.transactional_id.clone()))
            })
            .collect();
        ids.sort();
        ids
    }

    /// Kafka's `abortTimedOutTransactions`: an `Ongoing` transaction older than its timeout is
    /// fenced (epoch + 1, so the producer's next request gets PRODUCER_FENCED) and aborted.
    fn abort_timed_out_transactions(&mut self, now_ms: i64, out: &mut Output) {
        let due = self.select(|m| {
            m.state == TransactionState::Ongoing
                && m.txn_start_timestamp_ms
                    .saturating_add(i64::from(m.txn_timeout_ms))
                    < now_ms
        });
        for (p, id) in due {
            let Some(Ok(next)) = self.get(p, &id).map(|m| m.prepare_fence_and_abort(now_ms)) else {
                continue;
            };
            let markers = self.markers_for(p, &next);
            self.persist(p, next, out);
            out.markers.push(markers);
        }
    }

    /// Kafka's `removeExpiredTransactionalIds`: an id with no transaction in progress and no
    /// update for `transactional.id.expiration.ms` is forgotten, with a tombstone. A producer
    /// that comes back later is a new producer (new producer id, epoch 0).
    fn remove_expired_transactional_ids(&mut self, now_ms: i64, out: &mut Output) {
        let expiration = self.config.transactional_id_expiration_ms;
        let expired = self.select(|m| {
            m.state.is_expiration_allowed()
                && m.txn_last_update_timestamp_ms <= now_ms.saturating_sub(expiration)
        });
        for (p, id) in expired {
            if let Some(part) = self.partitions.get_mut(&p) {
                part.txns.remove(&id);
            }
            out.append(p, records::encode_key(&id), None);
        }
    }
}

#[cfg(test)]
#[path = "coordinator_tests.rs"]
mod tests;
