//! Idempotent and transactional producer state of one partition, kept the way Kafka's
//! `ProducerStateManager` keeps it: per producer id its epoch, the metadata of its last
//! [`NUM_BATCHES_TO_RETAIN`] batches, its last timestamp, the coordinator epoch of its last
//! transaction marker and the first offset of its open transaction.
//!
//! With it the leader answers a retried batch with the offsets it was first written at instead
//! of writing it twice, and refuses batches that skip or repeat sequence numbers or come from a
//! fenced (older) producer epoch.
//!
//! Transactions: a producer's first transactional batch opens its transaction (at that batch's
//! offset), its end-transaction marker (a control batch written for the transaction coordinator)
//! closes it. The manager keeps the open transactions ordered by first offset, which gives the
//! first unstable offset, and reports each transaction a marker closes ([`CompletedTxn`]) with
//! the last stable offset the aborted-transaction index records for it.
//!
//! Sans-IO: [`crate::Log`] feeds it batch headers and keeps its snapshots on disk. The snapshot
//! encoding (Kafka's `ProducerSnapshot` version 1) lives here so it can be checked byte for byte.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use rafka_records::header::increment_sequence;
use rafka_records::{
    BatchBuilder, BatchHeader, BatchView, Compression, TimestampType, NO_SEQUENCE, NO_TIMESTAMP,
};

use crate::error::{Result, StorageError};

/// Batches remembered per producer: the producer allows five in flight, so a retry of any of them
/// can still be recognized (Kafka's `ProducerStateEntry.NUM_BATCHES_TO_RETAIN`).
pub const NUM_BATCHES_TO_RETAIN: usize = 5;
/// Kafka's `RecordBatch.NO_PRODUCER_EPOCH`: an entry that has not seen a batch or marker yet.
pub const NO_PRODUCER_EPOCH: i16 = -1;
const NO_COORDINATOR_EPOCH: i32 = -1;

/// Version of the snapshot format written and read (the only one Kafka has).
pub const SNAPSHOT_VERSION: i16 = 1;
/// Where the CRC-32C sits: right after the i16 version.
const SNAPSHOT_CRC_OFFSET: usize = 2;
/// The CRC covers everything from here (the entry count) to the end of the file.
const SNAPSHOT_ENTRIES_OFFSET: usize = 6;
/// Version, CRC and entry count.
const SNAPSHOT_HEADER_LEN: usize = 10;
/// i64 producer id, i16 epoch, i32 last sequence, i64 last offset, i32 offset delta, i64
/// timestamp, i32 coordinator epoch, i64 current transaction first offset.
pub const SNAPSHOT_ENTRY_LEN: usize = 8 + 2 + 4 + 8 + 4 + 8 + 4 + 8;

/// Kafka's `DefaultRecordBatch.decrementSequence`: sequences wrap from `i32::MAX` to 0, so going
/// back from a small sequence lands near `i32::MAX`. Wrapping arithmetic matches Java's `int`
/// even for the garbage inputs a corrupt entry could hold.
fn decrement_sequence(sequence: i32, decrement: i32) -> i32 {
    if sequence < decrement {
        i32::MAX
            .wrapping_sub(decrement.wrapping_sub(sequence))
            .wrapping_add(1)
    } else {
        sequence - decrement
    }
}

/// Whether `next` is the sequence right after `last` (Kafka's `ProducerAppendInfo.inSequence`).
fn in_sequence(last: i32, next: i32) -> bool {
    i64::from(next) == i64::from(last) + 1 || (next == 0 && last == i32::MAX)
}

/// What is remembered of one appended batch (Kafka's `BatchMetadata`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMetadata {
    /// Sequence of the batch's last record.
    pub last_seq: i32,
    /// Offset of the batch's last record.
    pub last_offset: i64,
    /// Last offset minus first offset (the batch's `lastOffsetDelta`).
    pub offset_delta: i32,
    /// The batch's max timestamp (after a snapshot reload: the producer's last timestamp).
    pub timestamp: i64,
}

impl BatchMetadata {
    /// Sequence of the batch's first record (derived, as in Kafka, from the last one).
    pub fn first_seq(&self) -> i32 {
        decrement_sequence(self.last_seq, self.offset_delta)
    }

    /// Offset of the batch's first record.
    pub fn first_offset(&self) -> i64 {
        self.last_offset
            .saturating_sub(i64::from(self.offset_delta))
    }
}

/// The state of one producer id (Kafka's `ProducerStateEntry`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerStateEntry {
    epoch: i16,
    /// Oldest first; at most [`NUM_BATCHES_TO_RETAIN`], all of the current epoch.
    batches: VecDeque<BatchMetadata>,
    coordinator_epoch: i32,
    last_timestamp: i64,
    current_txn_first_offset: Option<i64>,
}

impl ProducerStateEntry {
    /// A producer id with no history (Kafka's `ProducerStateEntry.empty`).
    fn empty() -> Self {
        ProducerStateEntry {
            epoch: NO_PRODUCER_EPOCH,
            batches: VecDeque::new(),
            coordinator_epoch: NO_COORDINATOR_EPOCH,
            last_timestamp: NO_TIMESTAMP,
            current_txn_first_offset: None,
        }
    }

    /// The same entry without its batches: the starting point of an append's tentative update
    /// (Kafka's `withProducerIdAndBatchMetadata(producerId, Optional.empty())`).
    fn without_batches(&self) -> Self {
        ProducerStateEntry {
            epoch: self.epoch,
            batches: VecDeque::new(),
            coordinator_epoch: self.coordinator_epoch,
            last_timestamp: self.last_timestamp,
            current_txn_first_offset: self.current_txn_first_offset,
        }
    }

    /// Current producer epoch ([`NO_PRODUCER_EPOCH`] if none yet).
    pub fn epoch(&self) -> i16 {
        self.epoch
    }

    /// Sequence of the last record appended in the current epoch ([`NO_SEQUENCE`] if none).
    pub fn last_seq(&self) -> i32 {
        self.batches.back().map_or(NO_SEQUENCE, |b| b.last_seq)
    }

    /// Offset of the last data record appended in the current epoch (-1 if none).
    pub fn last_data_offset(&self) -> i64 {
        self.batches.back().map_or(-1, |b| b.last_offset)
    }

    /// Offset delta of the last batch (0 if none).
    pub fn last_offset_delta(&self) -> i32 {
        self.batches.back().map_or(0, |b| b.offset_delta)
    }

    /// The remembered batches, oldest first.
    pub fn batches(&self) -> impl Iterator<Item = &BatchMetadata> {
        self.batches.iter()
    }

    /// Coordinator epoch of the last transaction marker (-1 if none).
    pub fn coordinator_epoch(&self) -> i32 {
        self.coordinator_epoch
    }

    /// Max timestamp of the last batch, or timestamp of the last marker.
    pub fn last_timestamp(&self) -> i64 {
        self.last_timestamp
    }

    /// First offset of the producer's open transaction.
    pub fn current_txn_first_offset(&self) -> Option<i64> {
        self.current_txn_first_offset
    }

    /// A new epoch forgets the batches of the old one (Kafka's `maybeUpdateProducerEpoch`).
    fn maybe_update_epoch(&mut self, epoch: i16) {
        if self.epoch != epoch {
            self.batches.clear();
            self.epoch = epoch;
        }
    }

    fn push_batch(&mut self, batch: BatchMetadata) {
        if self.batches.len() >= NUM_BATCHES_TO_RETAIN {
            self.batches.pop_front();
        }
        self.batches.push_back(batch);
    }

    fn add_batch(&mut self, epoch: i16, batch: BatchMetadata) {
        self.maybe_update_epoch(epoch);
        self.push_batch(batch);
        self.last_timestamp = batch.timestamp;
    }

    /// A batch without checks: what both a checked append and a replay do to the entry
    /// (Kafka's `appendDataBatch` / `appendEndTxnMarker` after their checks). For a marker that
    /// closes an open transaction, returns that transaction's first offset.
    fn apply(&mut self, batch: &ProducerBatch) -> Option<i64> {
        let h = &batch.header;
        if h.is_control() {
            // An empty control batch (its transaction was cleaned away) changes nothing.
            let m = batch.marker?;
            self.maybe_update_epoch(h.producer_epoch);
            self.coordinator_epoch = m.coordinator_epoch;
            self.last_timestamp = m.timestamp;
            return self.current_txn_first_offset.take();
        }
        self.add_batch(
            h.producer_epoch,
            BatchMetadata {
                last_seq: h.last_sequence(),
                last_offset: h.last_offset(),
                offset_delta: h.last_offset_delta,
                timestamp: h.max_timestamp,
            },
        );
        // A non-transactional batch while a transaction is open is refused on the leader
        // (`Pending::check_and_apply`); from the log it is taken as is and leaves the
        // transaction open.
        if h.is_transactional() && self.current_txn_first_offset.is_none() {
            self.current_txn_first_offset = Some(h.base_offset);
        }
        None
    }

    /// Folds a tentative update into the committed entry (Kafka's `update(nextEntry)`).
    fn merge(&mut self, next: ProducerStateEntry) {
        self.maybe_update_epoch(next.epoch);
        for b in next.batches {
            self.push_batch(b);
        }
        self.coordinator_epoch = next.coordinator_epoch;
        self.current_txn_first_offset = next.current_txn_first_offset;
        self.last_timestamp = next.last_timestamp;
    }

    /// The cached batch with exactly this sequence range in the current epoch.
    fn find_duplicate(&self, h: &BatchHeader) -> Option<&BatchMetadata> {
        if h.producer_epoch != self.epoch {
            return None;
        }
        let (first, last) = (h.base_sequence, h.last_sequence());
        self.batches
            .iter()
            .find(|b| b.first_seq() == first && b.last_seq == last)
    }
}

/// The parts of an end-transaction marker (the one record of a control batch) that producer
/// state keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxnMarker {
    /// COMMIT (true) or ABORT (false).
    pub commit: bool,
    /// Epoch of the transaction coordinator that wrote it.
    pub coordinator_epoch: i32,
    /// The record's timestamp.
    pub timestamp: i64,
}

/// Control record key: i16 version, i16 type.
const CONTROL_KEY_LEN: usize = 4;
/// End-transaction marker value: i16 version, i32 coordinator epoch.
const MARKER_VALUE_LEN: usize = 6;
const CONTROL_TYPE_ABORT: i16 = 0;
const CONTROL_TYPE_COMMIT: i16 = 1;

fn be_i16(b: &[u8], at: usize) -> Option<i16> {
    Some(i16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn be_i32(b: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

impl TxnMarker {
    /// Reads the end-transaction marker from the first record of a control batch (Kafka's
    /// `EndTransactionMarker.deserialize`: key = i16 version, i16 type with 0 ABORT, 1 COMMIT;
    /// value = i16 version, i32 coordinator epoch; newer versions are read as version 0).
    /// `None` if the batch has no records, is compressed, or does not start with a COMMIT or
    /// ABORT marker; producer state then ignores it, as Kafka does for an empty control batch.
    pub fn from_control_batch(batch: &[u8]) -> Option<TxnMarker> {
        let view = BatchView::parse(batch).ok()?;
        let h = *view.header();
        if !h.is_control() || h.compression() != Some(Compression::None) {
            return None;
        }
        let record = view.records().next()?.ok()?;
        let key = record.key?;
        let value = record.value?;
        if key.len() < CONTROL_KEY_LEN || value.len() < MARKER_VALUE_LEN {
            return None;
        }
        if be_i16(key, 0)? < 0 || be_i16(value, 0)? < 0 {
            return None;
        }
        let commit = match be_i16(key, 2)? {
            CONTROL_TYPE_COMMIT => true,
            CONTROL_TYPE_ABORT => false,
            _ => return None,
        };
        // Kafka's record iterator reports the batch max timestamp for every record of a
        // LogAppendTime batch.
        let timestamp = if h.timestamp_type() == TimestampType::LogAppendTime {
            h.max_timestamp
        } else {
            record.timestamp(h.base_timestamp)
        };
        Some(TxnMarker {
            commit,
            coordinator_epoch: be_i32(value, 2)?,
            timestamp,
        })
    }
}

/// The control batch of an end-transaction marker, as Kafka's
/// `MemoryRecords.withEndTransactionMarker` writes it: magic 2, uncompressed, CreateTime,
/// attributes transactional + control, the producer's id and epoch, base sequence -1, base
/// offset 0 and partition leader epoch -1 (the leader stamps both), and one record at
/// `timestamp` (also the batch's base and max timestamp) without headers whose key is
/// `i16 version 0, i16 type` (0 ABORT, 1 COMMIT) and whose value is
/// `i16 version 0, i32 coordinator epoch`. 78 bytes.
pub fn end_txn_marker_batch(
    producer_id: i64,
    producer_epoch: i16,
    coordinator_epoch: i32,
    commit: bool,
    timestamp: i64,
) -> Vec<u8> {
    let control_type = if commit {
        CONTROL_TYPE_COMMIT
    } else {
        CONTROL_TYPE_ABORT
    };
    let mut key = [0u8; CONTROL_KEY_LEN];
    key[2..4].copy_from_slice(&control_type.to_be_bytes());
    let mut value = [0u8; MARKER_VALUE_LEN];
    value[2..6].copy_from_slice(&coordinator_epoch.to_be_bytes());
    BatchBuilder::new(0)
        .producer(producer_id, producer_epoch, NO_SEQUENCE)
        .transactional(true)
        .control(true)
        .timestamp(timestamp)
        .record(Some(&key), Some(&value), &[], timestamp)
        .build()
}

/// One batch as producer state sees it: its header, carrying the offsets the batch has (or will
/// have) in the log, and for a control batch its marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerBatch {
    /// The batch header with its final `base_offset`.
    pub header: BatchHeader,
    /// For a control batch, its end-transaction marker if it has one.
    pub marker: Option<TxnMarker>,
}

impl ProducerBatch {
    /// A data batch (no marker).
    pub fn data(header: BatchHeader) -> Self {
        ProducerBatch {
            header,
            marker: None,
        }
    }
}

/// Who is appending, which decides the checks (Kafka's `AppendOrigin`; replication and replay
/// are [`ProducerStateManager::update_from_log`], without checks).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOrigin {
    /// A producer (Produce requests): duplicates, epochs, sequences, transaction state.
    Client,
    /// A broker-side coordinator writing for a producer (end-transaction markers, transactional
    /// offset commits): epochs, coordinator epochs and transaction state, but no sequence
    /// numbers and no duplicate detection.
    Coordinator,
}

/// A transaction closed by an end-transaction marker (Kafka's `CompletedTxn`, with the last
/// stable offset it is indexed with).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompletedTxn {
    /// The producer.
    pub producer_id: i64,
    /// Offset of the transaction's first batch.
    pub first_offset: i64,
    /// Offset of the marker.
    pub last_offset: i64,
    /// ABORT (true) or COMMIT (false).
    pub aborted: bool,
    /// Kafka's `ProducerStateManager.lastStableOffset(completedTxn)`: the first offset of the
    /// oldest transaction of another producer still open when the marker was applied, or the
    /// marker's offset + 1 if there is none.
    pub last_stable_offset: i64,
}

/// A completion found while checking an append, before its last stable offset is known.
#[derive(Debug, Clone, Copy)]
struct Completion {
    producer_id: i64,
    first_offset: i64,
    last_offset: i64,
    aborted: bool,
}

/// The batch a retry duplicates: the offsets and timestamp to answer it with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DuplicateBatch {
    /// Offset the original batch's first record got.
    pub first_offset: i64,
    /// Offset the original batch's last record got.
    pub last_offset: i64,
    /// The original batch's max timestamp.
    pub timestamp: i64,
}

/// Outcome of [`ProducerStateManager::check_append`].
#[derive(Debug)]
pub enum AppendCheck {
    /// A batch repeats one already in the log: write nothing and answer with the original.
    Duplicate(DuplicateBatch),
    /// Everything checks out; apply these with [`ProducerStateManager::apply`] once written.
    Append(ProducerUpdates),
}

/// The tentative state changes of a checked append (Kafka's `ProducerAppendInfo` per producer),
/// and the transactions its markers close, in log order.
#[derive(Debug, Default)]
pub struct ProducerUpdates {
    entries: Vec<(i64, ProducerStateEntry)>,
    completed: Vec<Completion>,
}

impl ProducerUpdates {
    /// Whether the append touches no producer.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// One producer's checks for one append: the committed entry it started from and the tentative
/// entry its batches build up.
struct Pending {
    producer_id: i64,
    origin: AppendOrigin,
    current_epoch: i16,
    current_last_seq: i32,
    updated: ProducerStateEntry,
}

impl Pending {
    fn new(producer_id: i64, origin: AppendOrigin, current: Option<&ProducerStateEntry>) -> Self {
        let (current_epoch, current_last_seq, updated) = match current {
            Some(e) => (e.epoch, e.last_seq(), e.without_batches()),
            None => (NO_PRODUCER_EPOCH, NO_SEQUENCE, ProducerStateEntry::empty()),
        };
        Pending {
            producer_id,
            origin,
            current_epoch,
            current_last_seq,
            updated,
        }
    }

    /// Kafka's `checkProducerEpoch`: an older epoch is a fenced producer.
    fn check_epoch(&self, epoch: i16) -> Result<()> {
        if epoch < self.updated.epoch {
            return Err(StorageError::InvalidProducerEpoch {
                producer_id: self.producer_id,
                producer_epoch: epoch,
                current_epoch: self.updated.epoch,
            });
        }
        Ok(())
    }

    /// Kafka's `checkSequence` for a client append.
    fn check_sequence(&self, epoch: i16, first_seq: i32) -> Result<()> {
        let out_of_order = |expected| StorageError::OutOfOrderSequence {
            producer_id: self.producer_id,
            producer_epoch: epoch,
            current_epoch: self.updated.epoch,
            first_sequence: first_seq,
            expected_sequence: expected,
        };
        if epoch != self.updated.epoch {
            // A bumped epoch starts over at 0, unless the producer had no epoch at all.
            if first_seq != 0 && self.updated.epoch != NO_PRODUCER_EPOCH {
                return Err(out_of_order(0));
            }
            return Ok(());
        }
        let last_seq = if !self.updated.batches.is_empty() {
            self.updated.last_seq()
        } else if epoch == self.current_epoch {
            self.current_last_seq
        } else {
            NO_SEQUENCE
        };
        // No epoch at all (a new or expired producer, or one whose records were all deleted):
        // any sequence goes (KIP-360).
        if self.current_epoch == NO_PRODUCER_EPOCH || in_sequence(last_seq, first_seq) {
            return Ok(());
        }
        Err(out_of_order(increment_sequence(last_seq, 1).max(0)))
    }

    /// Kafka's `checkCoordinatorEpoch`: a marker from an older coordinator is a zombie's.
    fn check_coordinator_epoch(&self, coordinator_epoch: i32) -> Result<()> {
        if coordinator_epoch < self.updated.coordinator_epoch {
            return Err(StorageError::TransactionCoordinatorFenced {
                producer_id: self.producer_id,
                coordinator_epoch,
                current_coordinator_epoch: self.updated.coordinator_epoch,
            });
        }
        Ok(())
    }

    /// Kafka's `ProducerAppendInfo.append` for the leader: the checks of the batch's kind and
    /// origin, then the update. Returns the transaction a marker closes.
    fn check_and_apply(&mut self, batch: &ProducerBatch) -> Result<Option<Completion>> {
        let h = &batch.header;
        if h.is_control() {
            if let Some(m) = batch.marker {
                // `appendEndTxnMarker`. (KIP-1228, newer than Kafka 4.1, makes a marker of
                // transaction version 2 need an epoch above the current one; WriteTxnMarkers up
                // to v1 carries no transaction version, so this is the check Kafka applies.)
                self.check_epoch(h.producer_epoch)?;
                self.check_coordinator_epoch(m.coordinator_epoch)?;
            }
        } else {
            // `appendDataBatch`.
            self.check_epoch(h.producer_epoch)?;
            if self.origin == AppendOrigin::Client {
                self.check_sequence(h.producer_epoch, h.base_sequence)?;
            }
            if !h.is_transactional() {
                if let Some(txn_first_offset) = self.updated.current_txn_first_offset {
                    return Err(StorageError::InvalidTxnState {
                        producer_id: self.producer_id,
                        offset: h.base_offset,
                        txn_first_offset,
                    });
                }
            }
        }
        let closed = self.updated.apply(batch);
        Ok(closed.map(|first_offset| Completion {
            producer_id: self.producer_id,
            first_offset,
            last_offset: h.base_offset,
            aborted: batch.marker.is_some_and(|m| !m.commit),
        }))
    }
}

/// What DescribeProducers reports about one producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerInfo {
    /// The producer id.
    pub producer_id: i64,
    /// Its current epoch.
    pub producer_epoch: i16,
    /// Sequence of its last record in this partition ([`NO_SEQUENCE`] if none this epoch).
    pub last_sequence: i32,
    /// Its last timestamp.
    pub last_timestamp: i64,
    /// Coordinator epoch of its last transaction marker (-1 if none).
    pub coordinator_epoch: i32,
    /// First offset of its open transaction, if any.
    pub current_txn_start_offset: Option<i64>,
}

/// Producer state of one partition. See the module docs.
///
/// Unbounded like Kafka's: the broker bounds it by expiring idle producers
/// ([`ProducerStateManager::remove_expired`], `producer.id.expiration.ms`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerStateManager {
    producers: BTreeMap<i64, ProducerStateEntry>,
    /// The open transactions as (first offset, producer id), oldest first (Kafka's
    /// `ongoingTxns`); always the `current_txn_first_offset`s of `producers`.
    ongoing: BTreeSet<(i64, i64)>,
}

/// Moves a producer's open transaction in the `ongoing` set from `before` to `after`.
fn track_txn(
    ongoing: &mut BTreeSet<(i64, i64)>,
    producer_id: i64,
    before: Option<i64>,
    after: Option<i64>,
) {
    if before != after {
        if let Some(first) = before {
            ongoing.remove(&(first, producer_id));
        }
        if let Some(first) = after {
            ongoing.insert((first, producer_id));
        }
    }
}

impl ProducerStateManager {
    /// No producers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of producer ids with state.
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    /// Whether no producer has state.
    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// Every producer with state, by producer id (the cleaner keeps each one's last batch).
    pub fn entries(&self) -> impl Iterator<Item = (&i64, &ProducerStateEntry)> {
        self.producers.iter()
    }

    /// The state of one producer id.
    pub fn get(&self, producer_id: i64) -> Option<&ProducerStateEntry> {
        self.producers.get(&producer_id)
    }

    /// Forgets every producer.
    pub fn clear(&mut self) {
        self.producers.clear();
        self.ongoing.clear();
    }

    /// First offset of the oldest open transaction (Kafka's `firstUndecidedOffset`).
    pub fn first_undecided_offset(&self) -> Option<i64> {
        self.ongoing.first().map(|&(first, _)| first)
    }

    /// The open transactions as (first offset, producer id), oldest first.
    pub fn ongoing_transactions(&self) -> impl Iterator<Item = (i64, i64)> + '_ {
        self.ongoing.iter().copied()
    }

    /// First offset of the oldest open transaction of a producer other than `producer_id`
    /// (Kafka's `findNextIncompleteTxn`).
    fn first_ongoing_of_others(&self, producer_id: i64) -> Option<i64> {
        self.ongoing
            .iter()
            .find(|&&(_, pid)| pid != producer_id)
            .map(|&(first, _)| first)
    }

    /// Checks the batches of one client append, in order, as Kafka's leader does
    /// (`UnifiedLog.analyzeAndValidateProducerState` with origin CLIENT). Batches without a
    /// producer id are not looked at.
    ///
    /// A batch whose epoch and sequence range match one of the producer's cached batches makes
    /// the whole append a [`AppendCheck::Duplicate`] (Kafka answers the request with that batch's
    /// offsets and writes nothing). Otherwise the first batch with an older epoch fails with
    /// [`StorageError::InvalidProducerEpoch`], the first out of sequence with
    /// [`StorageError::OutOfOrderSequence`]; the state is unchanged either way.
    pub fn check_append(&self, batches: &[ProducerBatch]) -> Result<AppendCheck> {
        self.check_append_with_origin(batches, AppendOrigin::Client)
    }

    /// [`ProducerStateManager::check_append`] for the given origin. Besides the checks above:
    /// a non-transactional batch from a producer with an open transaction fails with
    /// [`StorageError::InvalidTxnState`]; a marker with an older producer epoch with
    /// [`StorageError::InvalidProducerEpoch`], one with an older coordinator epoch with
    /// [`StorageError::TransactionCoordinatorFenced`]. [`AppendOrigin::Coordinator`] skips
    /// duplicate detection and sequence checks, as Kafka does for its coordinators' writes.
    pub fn check_append_with_origin(
        &self,
        batches: &[ProducerBatch],
        origin: AppendOrigin,
    ) -> Result<AppendCheck> {
        let mut pending: Vec<Pending> = Vec::new();
        let mut completed = Vec::new();
        for batch in batches {
            let h = &batch.header;
            if !h.has_producer_id() {
                continue;
            }
            let current = self.producers.get(&h.producer_id);
            if origin == AppendOrigin::Client && !h.is_control() {
                if let Some(dup) = current.and_then(|e| e.find_duplicate(h)) {
                    return Ok(AppendCheck::Duplicate(DuplicateBatch {
                        first_offset: dup.first_offset(),
                        last_offset: dup.last_offset,
                        timestamp: dup.timestamp,
                    }));
                }
            }
            // One request normally holds one batch; a linear search stays cheap.
            let i = match pending.iter().position(|p| p.producer_id == h.producer_id) {
                Some(i) => i,
                None => {
                    pending.push(Pending::new(h.producer_id, origin, current));
                    pending.len() - 1
                }
            };
            if let Some(c) = pending[i].check_and_apply(batch)? {
                completed.push(c);
            }
        }
        Ok(AppendCheck::Append(ProducerUpdates {
            entries: pending
                .into_iter()
                .map(|p| (p.producer_id, p.updated))
                .collect(),
            completed,
        }))
    }

    /// Commits the updates of a checked append once its batches are in the log, and returns the
    /// transactions its markers closed, in log order.
    ///
    /// As on Kafka's leader, every producer's update goes in first and then each closed
    /// transaction is completed in turn, so its last stable offset sees the transactions opened
    /// anywhere in the append and those closed later in it as still open.
    pub fn apply(&mut self, updates: ProducerUpdates) -> Vec<CompletedTxn> {
        for (producer_id, updated) in updates.entries {
            let entry = self
                .producers
                .entry(producer_id)
                .or_insert_with(ProducerStateEntry::empty);
            let before = entry.current_txn_first_offset;
            entry.merge(updated);
            track_txn(
                &mut self.ongoing,
                producer_id,
                before,
                entry.current_txn_first_offset,
            );
        }
        let completed = &updates.completed;
        completed
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let closed_later = completed[i + 1..]
                    .iter()
                    .filter(|d| d.producer_id != c.producer_id)
                    .map(|d| d.first_offset)
                    .min();
                let lso = match (self.first_ongoing_of_others(c.producer_id), closed_later) {
                    (Some(a), Some(b)) => a.min(b),
                    (a, b) => a.or(b).unwrap_or(c.last_offset + 1),
                };
                CompletedTxn {
                    producer_id: c.producer_id,
                    first_offset: c.first_offset,
                    last_offset: c.last_offset,
                    aborted: c.aborted,
                    last_stable_offset: lso,
                }
            })
            .collect()
    }

    /// Applies a batch that is already in the log, without checks: replay at recovery and
    /// batches copied from the leader. Batches without a producer id are ignored. Returns the
    /// transaction a marker closed, if any, its last stable offset computed as Kafka's segment
    /// recovery does (right after this batch).
    pub fn update_from_log(&mut self, batch: &ProducerBatch) -> Option<CompletedTxn> {
        let h = &batch.header;
        if !h.has_producer_id() || (h.is_control() && batch.marker.is_none()) {
            return None;
        }
        let entry = self
            .producers
            .entry(h.producer_id)
            .or_insert_with(ProducerStateEntry::empty);
        let before = entry.current_txn_first_offset;
        let closed = entry.apply(batch);
        let after = entry.current_txn_first_offset;
        track_txn(&mut self.ongoing, h.producer_id, before, after);
        let first_offset = closed?;
        let last_offset = h.base_offset;
        Some(CompletedTxn {
            producer_id: h.producer_id,
            first_offset,
            last_offset,
            aborted: batch.marker.is_some_and(|m| !m.commit),
            last_stable_offset: self
                .first_ongoing_of_others(h.producer_id)
                .unwrap_or(last_offset + 1),
        })
    }

    /// Drops producers idle for at least `producer_id_expiration_ms` (by their last timestamp)
    /// that have no open transaction (Kafka's `removeExpiredProducers`). Returns how many went.
    pub fn remove_expired(&mut self, now_ms: i64, producer_id_expiration_ms: i64) -> usize {
        let before = self.producers.len();
        self.producers.retain(|_, e| {
            e.current_txn_first_offset.is_some()
                || now_ms.saturating_sub(e.last_timestamp) < producer_id_expiration_ms
        });
        before - self.producers.len()
    }

    /// Every producer with state, by producer id.
    pub fn active_producers(&self) -> Vec<ProducerInfo> {
        self.producers
            .iter()
            .map(|(&producer_id, e)| ProducerInfo {
                producer_id,
                producer_epoch: e.epoch,
                last_sequence: e.last_seq(),
                last_timestamp: e.last_timestamp,
                coordinator_epoch: e.coordinator_epoch,
                current_txn_start_offset: e.current_txn_first_offset,
            })
            .collect()
    }

    /// Encodes the state as Kafka's producer snapshot, version 1 (`ProducerSnapshot.json`, no
    /// flexible versions), all big-endian:
    ///
    /// ```text
    /// i16 version = 1
    /// u32 CRC-32C of every byte after this field
    /// i32 entry count
    /// per producer: i64 producer id, i16 epoch, i32 last sequence, i64 last offset,
    ///               i32 offset delta, i64 timestamp, i32 coordinator epoch,
    ///               i64 current transaction first offset (-1 if none)
    /// ```
    ///
    /// Like Kafka only the last batch of each producer is kept (last sequence, offset and delta
    /// of that batch, -1/-1/0 if none), with the producer's last timestamp. Entries are in
    /// producer-id order.
    pub fn to_snapshot(&self) -> Vec<u8> {
        // A map with more than i32::MAX producers would need hundreds of GiB; the count cannot
        // overflow in practice, and `take` keeps the file self-consistent if it ever did.
        let count = i32::try_from(self.producers.len()).unwrap_or(i32::MAX);
        let n = usize::try_from(count).unwrap_or(0);
        let mut buf = Vec::with_capacity(SNAPSHOT_HEADER_LEN + n * SNAPSHOT_ENTRY_LEN);
        buf.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
        buf.extend_from_slice(&0u32.to_be_bytes());
        buf.extend_from_slice(&count.to_be_bytes());
        for (&producer_id, e) in self.producers.iter().take(n) {
            buf.extend_from_slice(&producer_id.to_be_bytes());
            buf.extend_from_slice(&e.epoch.to_be_bytes());
            buf.extend_from_slice(&e.last_seq().to_be_bytes());
            buf.extend_from_slice(&e.last_data_offset().to_be_bytes());
            buf.extend_from_slice(&e.last_offset_delta().to_be_bytes());
            buf.extend_from_slice(&e.last_timestamp.to_be_bytes());
            buf.extend_from_slice(&e.coordinator_epoch.to_be_bytes());
            buf.extend_from_slice(&e.current_txn_first_offset.unwrap_or(-1).to_be_bytes());
        }
        let crc = crc32c::crc32c(&buf[SNAPSHOT_ENTRIES_OFFSET..]);
        buf[SNAPSHOT_CRC_OFFSET..SNAPSHOT_ENTRIES_OFFSET].copy_from_slice(&crc.to_be_bytes());
        buf
    }

    /// Decodes a snapshot written by [`ProducerStateManager::to_snapshot`] or by Kafka. The
    /// error says why the bytes are not a valid snapshot (the caller then ignores the file and
    /// rebuilds from the log, as Kafka does with a `CorruptSnapshotException`).
    pub fn from_snapshot(bytes: &[u8]) -> std::result::Result<Self, String> {
        let mut r = Reader { buf: bytes, pos: 0 };
        let short = || format!("{} bytes is too short for a snapshot", bytes.len());
        let version = r.i16().ok_or_else(short)?;
        if version != SNAPSHOT_VERSION {
            return Err(format!("unknown snapshot version {version}"));
        }
        let stored_crc = r.u32().ok_or_else(short)?;
        let count = r.i32().ok_or_else(short)?;
        let count = usize::try_from(count).map_err(|_| format!("negative entry count {count}"))?;
        // Checked before allocating anything: the count must account for every byte.
        let expected_len = count
            .checked_mul(SNAPSHOT_ENTRY_LEN)
            .and_then(|n| n.checked_add(SNAPSHOT_HEADER_LEN));
        if expected_len != Some(bytes.len()) {
            return Err(format!(
                "{count} entries need {} bytes, the file has {}",
                expected_len.map_or_else(|| "too many".to_string(), |n| n.to_string()),
                bytes.len()
            ));
        }
        let crc = crc32c::crc32c(&bytes[SNAPSHOT_ENTRIES_OFFSET..]);
        if crc != stored_crc {
            return Err(format!(
                "CRC mismatch: stored {stored_crc:#010x}, computed {crc:#010x}"
            ));
        }
        let mut producers = BTreeMap::new();
        for _ in 0..count {
            let (producer_id, entry) = read_entry(&mut r).ok_or_else(short)??;
            // A repeated producer id: the later entry wins, as in Kafka's map.
            producers.insert(producer_id, entry);
        }
        let ongoing = producers
            .iter()
            .filter_map(|(&pid, e)| e.current_txn_first_offset.map(|first| (first, pid)))
            .collect();
        Ok(ProducerStateManager { producers, ongoing })
    }
}

/// One snapshot entry; the outer `None` if the bytes run out, the inner error if the entry
/// cannot be right.
fn read_entry(
    r: &mut Reader<'_>,
) -> Option<std::result::Result<(i64, ProducerStateEntry), String>> {
    let producer_id = r.i64()?;
    let epoch = r.i16()?;
    let last_seq = r.i32()?;
    let last_offset = r.i64()?;
    let offset_delta = r.i32()?;
    let timestamp = r.i64()?;
    let coordinator_epoch = r.i32()?;
    let txn_first_offset = r.i64()?;
    let mut batches = VecDeque::new();
    // Kafka restores a batch only for entries that have a data offset.
    if last_offset >= 0 {
        if offset_delta < 0 {
            return Some(Err(format!(
                "producer {producer_id}: negative offset delta {offset_delta}"
            )));
        }
        batches.push_back(BatchMetadata {
            last_seq,
            last_offset,
            offset_delta,
            timestamp,
        });
    }
    Some(Ok((
        producer_id,
        ProducerStateEntry {
            epoch,
            batches,
            coordinator_epoch,
            last_timestamp: timestamp,
            current_txn_first_offset: (txn_first_offset >= 0).then_some(txn_first_offset),
        },
    )))
}

/// Big-endian reads from a byte slice; `None` past the end.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        let end = self.pos.checked_add(N)?;
        let b = self.buf.get(self.pos..end)?.try_into().ok()?;
        self.pos = end;
        Some(b)
    }
    fn i16(&mut self) -> Option<i16> {
        self.take().map(i16::from_be_bytes)
    }
    fn i32(&mut self) -> Option<i32> {
        self.take().map(i32::from_be_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_be_bytes)
    }
    fn i64(&mut self) -> Option<i64> {
        self.take().map(i64::from_be_bytes)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use rafka_records::BatchBuilder;

    use super::*;

    const TRANSACTIONAL: i16 = 0x10;
    const CONTROL: i16 = 0x20;

    /// A header as it sits in the log: `records` records from `base_offset`, sequences from
    /// `seq`, max timestamp `ts`.
    fn hdr(pid: i64, epoch: i16, seq: i32, base_offset: i64, records: i32, ts: i64) -> BatchHeader {
        BatchHeader {
            base_offset,
            batch_length: rafka_records::MIN_BATCH_LENGTH,
            partition_leader_epoch: 0,
            magic: 2,
            crc: 0,
            attributes: 0,
            last_offset_delta: records - 1,
            base_timestamp: ts,
            max_timestamp: ts,
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
            records_count: records,
        }
    }

    fn data(h: BatchHeader) -> ProducerBatch {
        ProducerBatch::data(h)
    }

    fn marker(pid: i64, epoch: i16, offset: i64, coordinator_epoch: i32, ts: i64) -> ProducerBatch {
        let mut h = hdr(pid, epoch, -1, offset, 1, ts);
        h.attributes = CONTROL | TRANSACTIONAL;
        ProducerBatch {
            header: h,
            marker: Some(TxnMarker {
                commit: true,
                coordinator_epoch,
                timestamp: ts,
            }),
        }
    }

    /// Checks and, if accepted, applies (what the log does around its write).
    fn append(m: &mut ProducerStateManager, batches: &[ProducerBatch]) -> Result<AppendCheck> {
        let check = m.check_append(batches)?;
        match check {
            AppendCheck::Append(u) => {
                m.apply(u);
                Ok(AppendCheck::Append(ProducerUpdates::default()))
            }
            dup => Ok(dup),
        }
    }

    fn accepted(m: &mut ProducerStateManager, h: BatchHeader) {
        match append(m, &[data(h)]) {
            Ok(AppendCheck::Append(_)) => {}
            other => panic!("expected the batch to be accepted: {other:?}"),
        }
    }

    fn out_of_order(r: Result<AppendCheck>) -> i32 {
        match r {
            Err(StorageError::OutOfOrderSequence {
                expected_sequence, ..
            }) => expected_sequence,
            other => panic!("expected OutOfOrderSequence: {other:?}"),
        }
    }

    fn duplicate(r: Result<AppendCheck>) -> DuplicateBatch {
        match r {
            Ok(AppendCheck::Duplicate(d)) => d,
            other => panic!("expected a duplicate: {other:?}"),
        }
    }

    #[test]
    fn unknown_producer_is_accepted_at_any_sequence() {
        let mut m = ProducerStateManager::new();
        accepted(&mut m, hdr(1, 0, 17, 0, 3, 100));
        let e = m.get(1).unwrap();
        assert_eq!((e.epoch(), e.last_seq(), e.last_data_offset()), (0, 19, 2));
        assert_eq!(e.last_timestamp(), 100);
        assert_eq!(e.coordinator_epoch(), -1);
        // From then on, sequences must follow.
        assert_eq!(
            out_of_order(m.check_append(&[data(hdr(1, 0, 21, 3, 1, 0))])),
            20
        );
        accepted(&mut m, hdr(1, 0, 20, 3, 1, 101));
    }

    #[test]
    fn gaps_and_overlaps_are_out_of_order() {
        let mut m = ProducerStateManager::new();
        accepted(&mut m, hdr(1, 0, 0, 0, 5, 0));
        for seq in [6, 100, 4, 1, -1] {
            assert_eq!(
                out_of_order(m.check_append(&[data(hdr(1, 0, seq, 5, 1, 0))])),
                5
            );
        }
        // A batch that overlaps a cached one without matching its range is not a duplicate.
        assert_eq!(
            out_of_order(m.check_append(&[data(hdr(1, 0, 0, 5, 3, 0))])),
            5
        );
        assert_eq!(m.get(1).unwrap().last_seq(), 4);
    }

    #[test]
    fn retry_of_any_of_the_last_five_batches_is_a_duplicate() {
        let mut m = ProducerStateManager::new();
        for i in 0..6 {
            accepted(
                &mut m,
                hdr(9, 2, i * 2, 100 + i64::from(i) * 2, 2, 1000 + i64::from(i)),
            );
        }
        assert_eq!(m.get(9).unwrap().batches().count(), NUM_BATCHES_TO_RETAIN);
        for i in 1..6 {
            // Offsets in the retry are whatever the log would have given it now.
            let d = duplicate(m.check_append(&[data(hdr(9, 2, i * 2, 500, 2, 0))]));
            let first = 100 + i64::from(i) * 2;
            assert_eq!(
                d,
                DuplicateBatch {
                    first_offset: first,
                    last_offset: first + 1,
                    timestamp: 1000 + i64::from(i),
                }
            );
        }
        // The oldest batch fell out of the cache: its retry is just out of order.
        assert_eq!(
            out_of_order(m.check_append(&[data(hdr(9, 2, 0, 500, 2, 0))])),
            12
        );
        // Same range in another epoch is no duplicate.
        assert_eq!(
            out_of_order(m.check_append(&[data(hdr(9, 3, 10, 500, 2, 0))])),
            0
        );
    }

    #[test]
    fn older_epoch_is_fenced() {
        let mut m = ProducerStateManager::new();
        accepted(&mut m, hdr(1, 5, 0, 0, 1, 0));
        match m.check_append(&[data(hdr(1, 4, 1, 1, 1, 0))]) {
            Err(StorageError::InvalidProducerEpoch {
                producer_id: 1,
                producer_epoch: 4,
                current_epoch: 5,
            }) => {}
            other => panic!("{other:?}"),
        }
        // Even a retry of a batch of the old epoch: the epoch check comes first.
        assert!(matches!(
            m.check_append(&[data(hdr(1, 4, 0, 1, 1, 0))]),
            Err(StorageError::InvalidProducerEpoch { .. })
        ));
    }

    #[test]
    fn bumped_epoch_must_start_at_zero() {
        let mut m = ProducerStateManager::new();
        accepted(&mut m, hdr(1, 0, 0, 0, 3, 0));
        assert_eq!(
            out_of_order(m.check_append(&[data(hdr(1, 1, 3, 3, 1, 0))])),
            0
        );
        accepted(&mut m, hdr(1, 1, 0, 3, 2, 0));
        let e = m.get(1).unwrap();
        assert_eq!((e.epoch(), e.last_seq()), (1, 1));
        // The old epoch's batches are forgotten.
        assert_eq!(e.batches().count(), 1);
    }

    #[test]
    fn entry_without_epoch_accepts_a_bump_at_any_sequence() {
        let mut m = ProducerStateManager::new();
        // A batch with no epoch, applied from the log (e.g. written by an old client).
        m.update_from_log(&data(hdr(1, NO_PRODUCER_EPOCH, 3, 0, 1, 0)));
        assert_eq!(m.get(1).unwrap().epoch(), NO_PRODUCER_EPOCH);
        accepted(&mut m, hdr(1, 0, 42, 1, 1, 0));
        assert_eq!(m.get(1).unwrap().last_seq(), 42);
    }

    #[test]
    fn sequence_wraps_from_max_to_zero() {
        let mut m = ProducerStateManager::new();
        accepted(&mut m, hdr(1, 0, i32::MAX - 1, 0, 2, 0));
        assert_eq!(m.get(1).unwrap().last_seq(), i32::MAX);
        assert_eq!(
            out_of_order(m.check_append(&[data(hdr(1, 0, 1, 2, 1, 0))])),
            0
        );
        // A batch that itself wraps: first seq MAX-1 is derived back from last seq 0.
        let mut w = ProducerStateManager::new();
        accepted(&mut w, hdr(2, 0, i32::MAX - 1, 0, 3, 7));
        assert_eq!(w.get(2).unwrap().last_seq(), 0);
        let b = *w.get(2).unwrap().batches().next().unwrap();
        assert_eq!(b.first_seq(), i32::MAX - 1);
        let d = duplicate(w.check_append(&[data(hdr(2, 0, i32::MAX - 1, 9, 3, 0))]));
        assert_eq!((d.first_offset, d.last_offset), (0, 2));
        accepted(&mut w, hdr(2, 0, 1, 3, 1, 0));
        accepted(&mut m, hdr(1, 0, 0, 2, 1, 0));
    }

    #[test]
    fn after_a_marker_bumped_the_epoch_the_sequence_starts_at_zero() {
        let mut m = ProducerStateManager::new();
        accepted(&mut m, hdr(1, 0, 0, 0, 3, 0));
        m.update_from_log(&marker(1, 1, 3, 7, 50));
        let e = m.get(1).unwrap();
        assert_eq!(
            (e.epoch(), e.last_seq(), e.coordinator_epoch()),
            (1, NO_SEQUENCE, 7)
        );
        assert_eq!(e.last_timestamp(), 50);
        assert_eq!(
            out_of_order(m.check_append(&[data(hdr(1, 1, 3, 4, 1, 0))])),
            0
        );
        accepted(&mut m, hdr(1, 1, 0, 4, 1, 0));
    }

    #[test]
    fn batches_of_one_append_are_checked_against_each_other_and_applied_together() {
        let mut m = ProducerStateManager::new();
        accepted(&mut m, hdr(1, 0, 0, 0, 1, 0));
        // Second batch continues the first, third does not: nothing is applied.
        let r = m.check_append(&[
            data(hdr(1, 0, 1, 1, 2, 0)),
            data(hdr(1, 0, 3, 3, 1, 0)),
            data(hdr(1, 0, 9, 4, 1, 0)),
        ]);
        assert_eq!(out_of_order(r), 4);
        assert_eq!(m.get(1).unwrap().last_seq(), 0);
        let two = [data(hdr(1, 0, 1, 1, 2, 0)), data(hdr(1, 0, 3, 3, 1, 0))];
        assert!(matches!(append(&mut m, &two), Ok(AppendCheck::Append(_))));
        let e = m.get(1).unwrap();
        assert_eq!(
            (e.last_seq(), e.last_data_offset(), e.batches().count()),
            (3, 3, 3)
        );
        // A bump inside one append: later batches are checked against the new epoch.
        let bump = [data(hdr(1, 1, 0, 4, 1, 0)), data(hdr(1, 0, 4, 5, 1, 0))];
        assert!(matches!(
            m.check_append(&bump),
            Err(StorageError::InvalidProducerEpoch {
                current_epoch: 1,
                ..
            })
        ));
    }

    #[test]
    fn batches_without_producer_id_are_not_tracked() {
        let mut m = ProducerStateManager::new();
        let none = [data(hdr(-1, -1, -1, 0, 3, 0))];
        match m.check_append(&none).unwrap() {
            AppendCheck::Append(u) => assert!(u.is_empty()),
            AppendCheck::Duplicate(d) => panic!("{d:?}"),
        }
        m.update_from_log(&none[0]);
        assert!(m.is_empty());
    }

    #[test]
    fn transactions_open_with_a_transactional_batch_and_close_with_a_marker() {
        let mut m = ProducerStateManager::new();
        let mut t = hdr(4, 0, 0, 10, 2, 0);
        t.attributes = TRANSACTIONAL;
        accepted(&mut m, t);
        assert_eq!(m.get(4).unwrap().current_txn_first_offset(), Some(10));
        let mut t2 = hdr(4, 0, 2, 12, 1, 0);
        t2.attributes = TRANSACTIONAL;
        accepted(&mut m, t2);
        assert_eq!(m.get(4).unwrap().current_txn_first_offset(), Some(10));
        // A marker from the leader path is checked for its producer and coordinator epochs only.
        assert!(matches!(
            append(&mut m, &[marker(4, 0, 13, 3, 9)]),
            Ok(AppendCheck::Append(_))
        ));
        let e = m.get(4).unwrap();
        assert_eq!(e.current_txn_first_offset(), None);
        assert_eq!((e.coordinator_epoch(), e.last_seq()), (3, 2));
        // A control batch without a marker changes nothing.
        let mut empty = marker(4, 9, 14, 99, 0);
        empty.marker = None;
        m.update_from_log(&empty);
        assert_eq!(m.get(4).unwrap().epoch(), 0);
    }

    fn txn(pid: i64, epoch: i16, seq: i32, base_offset: i64, records: i32) -> ProducerBatch {
        let mut h = hdr(pid, epoch, seq, base_offset, records, 0);
        h.attributes = TRANSACTIONAL;
        data(h)
    }

    fn abort(pid: i64, epoch: i16, offset: i64, coordinator_epoch: i32) -> ProducerBatch {
        let mut b = marker(pid, epoch, offset, coordinator_epoch, 0);
        if let Some(m) = &mut b.marker {
            m.commit = false;
        }
        b
    }

    /// Checks and applies; the completed transactions.
    fn completed(m: &mut ProducerStateManager, batches: &[ProducerBatch]) -> Vec<CompletedTxn> {
        match m.check_append(batches).unwrap() {
            AppendCheck::Append(u) => m.apply(u),
            AppendCheck::Duplicate(d) => panic!("{d:?}"),
        }
    }

    #[test]
    fn non_transactional_batch_during_a_transaction_is_refused() {
        let mut m = ProducerStateManager::new();
        completed(&mut m, &[txn(1, 0, 0, 10, 2)]);
        match m.check_append(&[data(hdr(1, 0, 2, 12, 1, 0))]) {
            Err(StorageError::InvalidTxnState {
                producer_id: 1,
                offset: 12,
                txn_first_offset: 10,
            }) => {}
            other => panic!("{other:?}"),
        }
        // The sequence is checked first, as in Kafka.
        assert_eq!(
            out_of_order(m.check_append(&[data(hdr(1, 0, 7, 12, 1, 0))])),
            2
        );
        // Inside one append too: the second batch finds the transaction the first one opened.
        let fresh = ProducerStateManager::new();
        assert!(matches!(
            fresh.check_append(&[txn(2, 0, 0, 0, 1), data(hdr(2, 0, 1, 1, 1, 0))]),
            Err(StorageError::InvalidTxnState { .. })
        ));
        assert!(fresh.is_empty());
        // From the log, it is taken as is and the transaction stays open.
        m.update_from_log(&data(hdr(1, 0, 2, 12, 1, 0)));
        assert_eq!(m.first_undecided_offset(), Some(10));
        // After the marker, non-transactional batches are fine again.
        completed(&mut m, &[marker(1, 0, 13, 0, 0)]);
        completed(&mut m, &[data(hdr(1, 0, 3, 14, 1, 0))]);
        assert_eq!(m.first_undecided_offset(), None);
    }

    #[test]
    fn markers_check_producer_and_coordinator_epochs() {
        let mut m = ProducerStateManager::new();
        completed(&mut m, &[txn(1, 5, 0, 0, 1)]);
        completed(&mut m, &[marker(1, 5, 1, 3, 0)]);
        completed(&mut m, &[txn(1, 5, 1, 2, 1)]);
        match m.check_append(&[marker(1, 4, 3, 3, 0)]) {
            Err(StorageError::InvalidProducerEpoch {
                producer_id: 1,
                producer_epoch: 4,
                current_epoch: 5,
            }) => {}
            other => panic!("{other:?}"),
        }
        match m.check_append(&[marker(1, 5, 3, 2, 0)]) {
            Err(StorageError::TransactionCoordinatorFenced {
                producer_id: 1,
                coordinator_epoch: 2,
                current_coordinator_epoch: 3,
            }) => {}
            other => panic!("{other:?}"),
        }
        assert_eq!(m.first_undecided_offset(), Some(2));
        // A newer coordinator and a bumped producer epoch are fine; the bump fences the old
        // epoch's data.
        let done = completed(&mut m, &[abort(1, 6, 3, 4)]);
        assert_eq!(
            done,
            vec![CompletedTxn {
                producer_id: 1,
                first_offset: 2,
                last_offset: 3,
                aborted: true,
                last_stable_offset: 4,
            }]
        );
        assert!(matches!(
            m.check_append(&[data(hdr(1, 5, 2, 4, 1, 0))]),
            Err(StorageError::InvalidProducerEpoch { .. })
        ));
        // Replication takes a stale marker as is (Kafka only logs it).
        m.update_from_log(&marker(1, 2, 4, 0, 0));
        assert_eq!(m.get(1).unwrap().coordinator_epoch(), 0);
    }

    #[test]
    fn marker_without_open_transaction_completes_nothing() {
        let mut m = ProducerStateManager::new();
        assert!(completed(&mut m, &[abort(8, 2, 0, 1)]).is_empty());
        let e = m.get(8).unwrap();
        assert_eq!((e.epoch(), e.coordinator_epoch()), (2, 1));
        assert_eq!(m.update_from_log(&abort(8, 2, 1, 1)), None);
    }

    #[test]
    fn coordinator_origin_skips_sequences_and_duplicates() {
        let mut m = ProducerStateManager::new();
        let offsets = [txn(3, 1, -1, 0, 1)];
        for _ in 0..2 {
            match m
                .check_append_with_origin(&offsets, AppendOrigin::Coordinator)
                .unwrap()
            {
                AppendCheck::Append(u) => {
                    m.apply(u);
                }
                AppendCheck::Duplicate(d) => panic!("{d:?}"),
            }
        }
        assert!(matches!(
            m.check_append_with_origin(&[txn(3, 0, -1, 1, 1)], AppendOrigin::Coordinator),
            Err(StorageError::InvalidProducerEpoch { .. })
        ));
        assert!(matches!(
            m.check_append_with_origin(&[data(hdr(3, 1, -1, 1, 1, 0))], AppendOrigin::Coordinator),
            Err(StorageError::InvalidTxnState { .. })
        ));
    }

    #[test]
    fn last_stable_offsets_of_completed_transactions() {
        let mut m = ProducerStateManager::new();
        completed(&mut m, &[txn(1, 0, 0, 10, 1)]);
        completed(&mut m, &[txn(2, 0, 0, 11, 1)]);
        completed(&mut m, &[txn(3, 0, 0, 12, 1)]);
        assert_eq!(
            m.ongoing_transactions().collect::<Vec<_>>(),
            vec![(10, 1), (11, 2), (12, 3)]
        );
        // The oldest other open transaction.
        let c = completed(&mut m, &[abort(2, 0, 13, 0)]);
        assert_eq!((c[0].first_offset, c[0].last_stable_offset), (11, 10));
        let c = completed(&mut m, &[abort(1, 0, 14, 0)]);
        assert_eq!(c[0].last_stable_offset, 12);
        // None left: the marker's offset + 1.
        let c = completed(&mut m, &[marker(3, 0, 15, 0, 0)]);
        assert_eq!((c[0].aborted, c[0].last_stable_offset), (false, 16));
        assert_eq!(m.first_undecided_offset(), None);

        // Several markers in one leader append: Kafka completes them one after the other with
        // every update already applied, so later ones still count as open.
        completed(&mut m, &[txn(1, 0, 1, 20, 1), txn(2, 0, 1, 21, 1)]);
        let c = completed(
            &mut m,
            &[abort(1, 0, 22, 0), abort(2, 0, 23, 0), txn(3, 0, 1, 25, 1)],
        );
        assert_eq!(
            c.iter()
                .map(|c| (c.producer_id, c.last_stable_offset))
                .collect::<Vec<_>>(),
            vec![(1, 21), (2, 25)]
        );
        assert_eq!(m.first_undecided_offset(), Some(25));
        // Replayed batch by batch, as Kafka's recovery does.
        let mut r = ProducerStateManager::new();
        r.update_from_log(&txn(1, 0, 1, 20, 1));
        r.update_from_log(&txn(2, 0, 1, 21, 1));
        let a = r.update_from_log(&abort(1, 0, 22, 0)).unwrap();
        let b = r.update_from_log(&abort(2, 0, 23, 0)).unwrap();
        assert_eq!((a.last_stable_offset, b.last_stable_offset), (21, 24));
        // The open set is restored from a snapshot.
        let back = ProducerStateManager::from_snapshot(&m.to_snapshot()).unwrap();
        assert_eq!(back.first_undecided_offset(), Some(25));
        assert_eq!(back.active_producers(), m.active_producers());
    }

    #[test]
    fn end_txn_marker_batch_is_kafkas() {
        let bytes = end_txn_marker_batch(1000, 3, 7, true, 1_700_000_000_000);
        // Kafka's MemoryRecords.withEndTransactionMarker, field by field.
        let mut want = unhex(
            "
            0000000000000000 00000042 ffffffff 02 00000000
            0030 00000000 0000018bcfe56800 0000018bcfe56800
            00000000000003e8 0003 ffffffff 00000001
            20 00 00 00 08 00000001 0c 0000 00000007 00",
        );
        let crc = crc32c::crc32c(&want[21..]);
        want[17..21].copy_from_slice(&crc.to_be_bytes());
        assert_eq!(bytes.len(), 78);
        assert_eq!(bytes, want);
        assert_eq!(
            TxnMarker::from_control_batch(&bytes),
            Some(TxnMarker {
                commit: true,
                coordinator_epoch: 7,
                timestamp: 1_700_000_000_000,
            })
        );
        let abort = end_txn_marker_batch(1000, 3, -1, false, 5);
        let m = TxnMarker::from_control_batch(&abort).unwrap();
        assert_eq!((m.commit, m.coordinator_epoch, m.timestamp), (false, -1, 5));
    }

    #[test]
    fn expiry_spares_open_transactions() {
        let mut m = ProducerStateManager::new();
        accepted(&mut m, hdr(1, 0, 0, 0, 1, 1_000));
        accepted(&mut m, hdr(2, 0, 0, 1, 1, 5_000));
        let mut t = hdr(3, 0, 0, 2, 1, 1_000);
        t.attributes = TRANSACTIONAL;
        accepted(&mut m, t);
        assert_eq!(m.remove_expired(1_999, 1_000), 0);
        // Kafka expires at exactly the expiration time (>=).
        assert_eq!(m.remove_expired(2_000, 1_000), 1);
        assert!(m.get(1).is_none() && m.get(3).is_some());
        // Once forgotten, any sequence goes again.
        accepted(&mut m, hdr(1, 0, 77, 3, 1, 2_000));
        assert_eq!(m.remove_expired(i64::MAX, 1_000), 2);
        assert_eq!(m.len(), 1);
    }

    #[test]
    fn update_from_log_applies_without_checks() {
        let mut m = ProducerStateManager::new();
        m.update_from_log(&data(hdr(1, 5, 0, 0, 1, 0)));
        m.update_from_log(&data(hdr(1, 5, 10, 1, 1, 0)));
        // An older epoch from the leader is taken as is (Kafka only warns on replication).
        m.update_from_log(&data(hdr(1, 3, 4, 2, 1, 0)));
        let info = m.active_producers();
        assert_eq!(info.len(), 1);
        assert_eq!(
            info[0],
            ProducerInfo {
                producer_id: 1,
                producer_epoch: 3,
                last_sequence: 4,
                last_timestamp: 0,
                coordinator_epoch: -1,
                current_txn_start_offset: None,
            }
        );
    }

    /// Hex to bytes, ignoring spaces (golden data below is written field by field).
    fn unhex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    fn golden_state() -> ProducerStateManager {
        let mut m = ProducerStateManager::new();
        // 1000: a plain idempotent producer, last batch sequences 10..=14 at offsets 50..=54.
        m.update_from_log(&data(hdr(1000, 3, 10, 50, 5, 1_700_000_000_123)));
        // 7: a transaction open since offset 60.
        let mut t = hdr(7, 0, 0, 60, 1, 1_700_000_000_200);
        t.attributes = TRANSACTIONAL;
        m.update_from_log(&data(t));
        // 42: only a marker (epoch bumped to 2 by it), so no batch.
        m.update_from_log(&marker(42, 2, 61, 9, 1_700_000_000_300));
        m
    }

    /// Kafka's `ProducerSnapshot` v1, written out by hand; the CRC was checked with Java's
    /// `java.util.zip.CRC32C` (what Kafka's `Crc32C` uses) over bytes 6.. .
    const GOLDEN: &str = "
        0001 5b9315da 00000003
        0000000000000007 0000 00000000 000000000000003c 00000000 0000018bcfe568c8 ffffffff 000000000000003c
        000000000000002a 0002 ffffffff ffffffffffffffff 00000000 0000018bcfe5692c 00000009 ffffffffffffffff
        00000000000003e8 0003 0000000e 0000000000000036 00000004 0000018bcfe5687b ffffffff ffffffffffffffff";

    #[test]
    fn snapshot_bytes_match_kafka_format() {
        let bytes = golden_state().to_snapshot();
        assert_eq!(bytes.len(), SNAPSHOT_HEADER_LEN + 3 * SNAPSHOT_ENTRY_LEN);
        assert_eq!(bytes, unhex(GOLDEN));
    }

    #[test]
    fn snapshot_round_trip_keeps_the_last_batch() {
        let m = ProducerStateManager::from_snapshot(&unhex(GOLDEN)).unwrap();
        assert_eq!(m.active_producers(), golden_state().active_producers());
        let e = m.get(1000).unwrap();
        assert_eq!(
            e.batches().copied().collect::<Vec<_>>(),
            vec![BatchMetadata {
                last_seq: 14,
                last_offset: 54,
                offset_delta: 4,
                timestamp: 1_700_000_000_123,
            }]
        );
        assert_eq!(m.get(42).unwrap().batches().count(), 0);
        assert_eq!(m.get(7).unwrap().current_txn_first_offset(), Some(60));
        // The reloaded last batch still answers its retry.
        let d = duplicate(m.check_append(&[data(hdr(1000, 3, 10, 99, 5, 0))]));
        assert_eq!((d.first_offset, d.last_offset), (50, 54));
        assert_eq!(m.to_snapshot(), unhex(GOLDEN));
        let empty = ProducerStateManager::new().to_snapshot();
        assert_eq!(
            ProducerStateManager::from_snapshot(&empty).unwrap(),
            ProducerStateManager::new()
        );
    }

    #[test]
    fn corrupt_snapshots_are_refused() {
        let good = unhex(GOLDEN);
        let mut flipped = good.clone();
        flipped[40] ^= 1;
        let mut bad_crc = good.clone();
        bad_crc[3] ^= 1;
        let mut version = good.clone();
        version[1] = 2;
        let mut negative = good.clone();
        negative[6..10].copy_from_slice(&(-1i32).to_be_bytes());
        let mut huge = good.clone();
        huge[6..10].copy_from_slice(&i32::MAX.to_be_bytes());
        let mut longer = good.clone();
        longer.push(0);
        for (name, bytes) in [
            ("flipped", flipped),
            ("bad crc", bad_crc),
            ("version", version),
            ("negative count", negative),
            ("huge count", huge),
            ("trailing byte", longer),
            ("truncated", good[..good.len() - 1].to_vec()),
            ("header only", good[..7].to_vec()),
            ("empty", Vec::new()),
        ] {
            assert!(
                ProducerStateManager::from_snapshot(&bytes).is_err(),
                "{name}"
            );
        }
    }

    #[test]
    fn markers_are_read_from_control_batches() {
        let commit = BatchBuilder::new(5)
            .producer(3, 1, -1)
            .transactional(true)
            .control(true)
            .record(Some(&[0, 0, 0, 1]), Some(&[0, 0, 0, 0, 0, 9]), &[], 1234)
            .build();
        assert_eq!(
            TxnMarker::from_control_batch(&commit),
            Some(TxnMarker {
                commit: true,
                coordinator_epoch: 9,
                timestamp: 1234,
            })
        );
        let abort = BatchBuilder::new(5)
            .producer(3, 1, -1)
            .control(true)
            .record(Some(&[0, 0, 0, 0]), Some(&[0, 1, 0, 0, 0, 2, 0xff]), &[], 7)
            .build();
        assert_eq!(
            TxnMarker::from_control_batch(&abort).map(|m| (m.commit, m.coordinator_epoch)),
            Some((false, 2))
        );
        // Not markers: a data batch, another control type, a short value, no records.
        let data_batch = BatchBuilder::new(0)
            .record(Some(&[0, 0, 0, 1]), Some(&[0, 0, 0, 0, 0, 9]), &[], 0)
            .build();
        let leader_change = BatchBuilder::new(0)
            .control(true)
            .record(Some(&[0, 0, 0, 2]), Some(&[0, 0, 0, 0, 0, 9]), &[], 0)
            .build();
        let short = BatchBuilder::new(0)
            .control(true)
            .record(Some(&[0, 0, 0, 1]), Some(&[0, 0, 0]), &[], 0)
            .build();
        let empty = BatchBuilder::new(0).control(true).build();
        for b in [data_batch, leader_change, short, empty] {
            assert_eq!(TxnMarker::from_control_batch(&b), None);
        }
    }
}
