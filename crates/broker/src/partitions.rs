//! The partitions this node hosts: one [`Partition`] per replica, holding its log, its high
//! watermark and the long-poll waiters an append wakes. [`Partitions`] follows the metadata image:
//! partitions that appear get a log (created or recovered), partitions of deleted topics lose theirs.
//! Each log lives in one of the `log.dirs`: where it was found at startup, or for a new partition
//! the dir with the fewest partitions (`rafka_storage::Placement`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI32, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use rafka_metadata::{MetadataImage, TopicImage};
use rafka_storage::{
    AppendInfo, AppendOrigin, Backend, Log, LogDir, LogDirs, LogDirsError, LogRead, Placement,
    StorageError, TimestampOffset, TopicPartition,
};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::dynamic_config::DynamicBrokerConfig;
use crate::topic_config::TopicSettings;
use rafka_replication::LeaderConfig;

mod replica;
mod replication_wait;
#[cfg(test)]
mod sim;

pub use replica::{ReplicaFetch, ReplicaFetchError, ReplicaRead, Role};
pub use replication_wait::{ReplicationError, ReplicationWait};

struct Inner {
    log: Log,
    settings: TopicSettings,
    /// This replica's part in replication, as the image last said (see [`replica`]).
    role: Role,
}

/// One partition replica hosted here.
pub struct Partition {
    pub topic: Arc<str>,
    pub topic_id: Uuid,
    pub index: i32,
    /// Index of the log dir (in `log.dirs` order) that holds this partition's log.
    pub log_dir: usize,
    inner: Mutex<Inner>,
    /// Consumers never read at or past this offset. On a single node every append is fully
    /// replicated at once, so it follows the log end offset; the replication issue moves it by ISR.
    high_watermark: AtomicI64,
    log_start_offset: AtomicI64,
    leader_epoch: AtomicI32,
    /// Whether the role is leader (set with the role, under the log's lock). Requests are
    /// served as leader only once the role says so, not as soon as the image names this node:
    /// in between, a new leader's state (its epoch start, its high watermark rule) is not set up.
    leading: AtomicBool,
    /// Fetch requests parked until data arrives; each is woken once and then re-registers.
    waiters: Mutex<Vec<Arc<Notify>>>,
    /// A roll leaves sealed segments to fsync; one background flush at a time does it.
    sealed_flush_running: AtomicBool,
}

impl std::fmt::Debug for Partition {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.topic, self.index)
    }
}

/// A lock that a panic elsewhere poisoned still guards consistent data here: every critical
/// section either finishes its log operation or returns an error before touching shared state.
pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Partition {
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark.load(Ordering::Acquire)
    }

    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset.load(Ordering::Acquire)
    }

    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch.load(Ordering::Acquire)
    }

    pub fn settings(&self) -> TopicSettings {
        lock(&self.inner).settings.clone()
    }

    /// Appends validated batches, stamping offsets in place, and wakes parked fetches. After a
    /// segment roll, the sealed segments are fsynced on the blocking pool, outside the lock, and
    /// only then does the recovery point move past them.
    pub fn append(
        self: &Arc<Self>,
        batches: &mut [u8],
        now_ms: i64,
    ) -> Result<AppendInfo, StorageError> {
        self.append_with_origin(batches, AppendOrigin::Client, now_ms)
    }

    /// [`Partition::append`] for a coordinator writing on a producer's behalf (transactional
    /// offset commits): epochs are checked, sequence numbers are not.
    pub fn append_with_origin(
        self: &Arc<Self>,
        batches: &mut [u8],
        origin: AppendOrigin,
        now_ms: i64,
    ) -> Result<AppendInfo, StorageError> {
        let (info, sealed) = {
            let mut inner = lock(&self.inner);
            let info =
                inner
                    .log
                    .append_with_origin(batches, self.leader_epoch(), origin, now_ms)?;
            self.after_leader_append(&mut inner, now_ms);
            (info, self.take_sealed_flush(&mut inner))
        };
        self.wake_waiters();
        self.run_sealed_flush(sealed);
        Ok(info)
    }

    /// The fsync of segments an append sealed, unless one is running already (it then takes
    /// these too, next time).
    fn take_sealed_flush(&self, inner: &mut Inner) -> Option<rafka_storage::SealedFlush> {
        if self.sealed_flush_running.load(Ordering::Acquire) {
            return None;
        }
        let sealed = inner.log.sealed_flush();
        if sealed.is_some() {
            self.sealed_flush_running.store(true, Ordering::Release);
        }
        sealed
    }

    /// Runs a sealed-segment fsync off the caller's task (in line without a runtime, as in the
    /// simulation): rolled segments become durable and the recovery point moves past them, on
    /// leaders and followers alike, as Kafka's roll schedules `flushUptoOffsetExclusive`.
    fn run_sealed_flush(self: &Arc<Self>, sealed: Option<rafka_storage::SealedFlush>) {
        let Some(job) = sealed else {
            return;
        };
        let me = self.clone();
        let work = move || {
            let result = job.run();
            if let Err(e) = lock(&me.inner).log.finish_sealed_flush(job, result) {
                tracing::error!(partition = ?me, error = %e, "fsync of sealed segments failed; log is offline");
            }
            me.sealed_flush_running.store(false, Ordering::Release);
        };
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                handle.spawn_blocking(work);
            }
            Err(_) => work(),
        }
    }

    /// Writes a transaction marker (COMMIT or ABORT control batch) for `producer_id`, as the
    /// leader, and wakes parked fetches (a read_committed fetch may now see more).
    pub fn append_txn_marker(
        self: &Arc<Self>,
        producer_id: i64,
        producer_epoch: i16,
        coordinator_epoch: i32,
        commit: bool,
        now_ms: i64,
    ) -> Result<i64, StorageError> {
        let end = {
            let mut inner = lock(&self.inner);
            inner.log.append_txn_marker(
                producer_id,
                producer_epoch,
                coordinator_epoch,
                commit,
                self.leader_epoch(),
                now_ms,
            )?;
            self.after_leader_append(&mut inner, now_ms);
            inner.log.log_end_offset()
        };
        self.wake_waiters();
        Ok(end)
    }

    /// DeleteRecords: moves the log start offset to `offset` (-1: the high watermark), deleting
    /// the whole segments below it; returns the new log start (the low watermark).
    pub fn delete_records(&self, offset: i64, now_ms: i64) -> Result<i64, StorageError> {
        let mut inner = lock(&self.inner);
        let start = inner
            .log
            .delete_records(offset, self.high_watermark(), now_ms)?;
        self.log_start_offset.store(start, Ordering::Release);
        Ok(start)
    }

    /// Retention: deletes segments past `retention.ms` / `retention.bytes` (and below the log
    /// start), then unlinks deleted files whose `file.delete.delay.ms` is up.
    fn enforce_retention(&self, now_ms: i64, check_retention: bool) -> Result<(), StorageError> {
        let mut inner = lock(&self.inner);
        if check_retention {
            let result = inner
                .log
                .delete_old_segments(now_ms, self.high_watermark())?;
            if result.segments_deleted() > 0 {
                tracing::info!(partition = ?self, segments = result.segments_deleted(),
                    bytes = result.bytes_deleted, log_start_offset = result.log_start_offset,
                    "Deleted segments past retention");
            }
            self.log_start_offset
                .store(inner.log.log_start_offset(), Ordering::Release);
        }
        if inner
            .log
            .next_file_deletion_ms()
            .is_some_and(|t| t <= now_ms)
        {
            inner.log.delete_expired_files(now_ms)?;
        }
        Ok(())
    }

    /// Where this log stands for the cleaner (`None` unless `cleanup.policy` has `compact`).
    pub fn cleanable_info(
        &self,
        checkpoint: Option<i64>,
        now_ms: i64,
    ) -> Option<rafka_storage::CleanableInfo> {
        lock(&self.inner)
            .log
            .cleanable_info(checkpoint, self.high_watermark(), now_ms)
    }

    /// Takes a cleaner pass (cheap: the sealed segments' maps); it runs without the lock.
    pub fn prepare_clean(
        &self,
        info: &rafka_storage::CleanableInfo,
    ) -> Result<Option<rafka_storage::CleanTask>, StorageError> {
        lock(&self.inner).log.prepare_clean(info)
    }

    /// After a restart, finds the delete horizons earlier passes wrote into the log (reading
    /// batch headers outside the lock), so tombstones marked before the restart still go.
    pub fn recover_delete_horizon(&self) {
        let sealed = lock(&self.inner).log.sealed_segment_bytes();
        let horizon = sealed
            .iter()
            .map(|b| rafka_storage::max_delete_horizon(b))
            .max()
            .unwrap_or(-1);
        if horizon >= 0 {
            lock(&self.inner).log.note_delete_horizon(horizon);
        }
    }

    /// Swaps a finished cleaner pass in (renames only, under the lock).
    pub fn finish_clean(
        &self,
        output: rafka_storage::CleanOutput,
        now_ms: i64,
    ) -> Result<rafka_storage::CleanerStats, StorageError> {
        lock(&self.inner).log.finish_clean(output, now_ms)
    }

    /// Producers with state in this partition (DescribeProducers).
    pub fn active_producers(&self) -> Vec<rafka_storage::ProducerInfo> {
        lock(&self.inner).log.active_producers()
    }

    /// Whether the producer has an open transaction here at this epoch (see
    /// `Log::has_ongoing_transaction`).
    pub fn has_ongoing_transaction(&self, producer_id: i64, producer_epoch: i16) -> bool {
        lock(&self.inner)
            .log
            .has_ongoing_transaction(producer_id, producer_epoch)
    }

    /// Kafka's last stable offset: read_committed consumers never read at or past it.
    pub fn last_stable_offset(&self) -> i64 {
        lock(&self.inner)
            .log
            .last_stable_offset(self.high_watermark())
    }

    /// Aborted transactions a read_committed fetch of `[start, upper)` must be told about.
    pub fn aborted_transactions(&self, start: i64, upper: i64) -> Vec<rafka_storage::AbortedTxn> {
        lock(&self.inner).log.aborted_transactions(start, upper)
    }

    /// fsyncs when `flush.ms` says the oldest unflushed data is due.
    fn maybe_flush(&self, now_ms: i64) -> Result<(), StorageError> {
        lock(&self.inner).log.maybe_flush(now_ms)
    }

    /// Reads whole batches from `offset`, never at or past the high watermark.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
    ) -> Result<LogRead, StorageError> {
        self.read_upto(offset, max_bytes, self.high_watermark(), min_one_batch)
    }

    /// Reads whole batches from `offset` up to the log end, past the high watermark: for a
    /// coordinator loading the internal-topic partition it now leads (Kafka's loaders read to
    /// the log end, since a leader never truncates its own log; the answers that depend on
    /// records above the high watermark still wait for replication).
    pub fn read_to_log_end(&self, offset: i64, max_bytes: usize) -> Result<LogRead, StorageError> {
        let inner = lock(&self.inner);
        let end = inner.log.log_end_offset();
        inner.log.read(offset, max_bytes, end, true)
    }

    /// Reads whole batches from `offset`, never at or past `max_offset` (the high watermark or,
    /// for read_committed, the last stable offset).
    pub fn read_upto(
        &self,
        offset: i64,
        max_bytes: usize,
        max_offset: i64,
        min_one_batch: bool,
    ) -> Result<LogRead, StorageError> {
        let inner = lock(&self.inner);
        inner.log.read(
            offset,
            max_bytes,
            max_offset.min(self.high_watermark()),
            min_one_batch,
        )
    }

    pub fn offset_for_timestamp(
        &self,
        timestamp_ms: i64,
    ) -> Result<Option<TimestampOffset>, StorageError> {
        lock(&self.inner)
            .log
            .fetch_offset_by_timestamp(timestamp_ms)
    }

    pub fn max_timestamp(&self) -> Result<Option<TimestampOffset>, StorageError> {
        lock(&self.inner).log.max_timestamp()
    }

    pub fn recovery_point(&self) -> i64 {
        lock(&self.inner).log.recovery_point()
    }

    /// Bytes of all segments (DescribeLogDirs' partition size, Kafka's `UnifiedLog.size`).
    pub fn size_bytes(&self) -> u64 {
        lock(&self.inner).log.size_bytes()
    }

    pub fn log_end_offset(&self) -> i64 {
        lock(&self.inner).log.log_end_offset()
    }

    /// Segments of the log (Kafka's `NumLogSegments` gauge).
    pub fn segment_count(&self) -> usize {
        lock(&self.inner).log.segment_count()
    }

    pub fn register_waiter(&self, waiter: Arc<Notify>) {
        lock(&self.waiters).push(waiter);
    }

    fn wake_waiters(&self) {
        let waiters = std::mem::take(&mut *lock(&self.waiters));
        for w in waiters {
            // notify_one keeps a permit if the fetch is between checks, so no wake-up is lost.
            w.notify_one();
        }
    }

    fn update_settings(&self, settings: TopicSettings) {
        let mut inner = lock(&self.inner);
        inner.log.set_config(settings.log.clone());
        inner.settings = settings;
    }

    fn flush(&self) -> Result<(), StorageError> {
        lock(&self.inner).log.flush()
    }
}

/// Why this node cannot serve a request for a partition (codes in `errors::unavailable`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unavailable {
    /// The topic has no such partition.
    UnknownPartition,
    /// Another broker leads it, or its log is not open here yet.
    NotLeader,
}

/// A request's `current_leader_epoch` that does not match ours (codes in `errors::epoch`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EpochMismatch {
    /// The client knows a newer epoch than we do.
    Unknown,
    /// The client's epoch is older than ours.
    Fenced,
}

impl Partition {
    /// Checks the epoch a client sent (-1: no check); returns our epoch.
    pub fn check_leader_epoch(&self, current_leader_epoch: i32) -> Result<i32, EpochMismatch> {
        let epoch = self.leader_epoch();
        match current_leader_epoch {
            e if e < 0 || e == epoch => Ok(epoch),
            e if e > epoch => Err(EpochMismatch::Unknown),
            _ => Err(EpochMismatch::Fenced),
        }
    }
}

/// Errors while following the metadata image.
#[derive(Debug, thiserror::Error)]
pub enum PartitionsError {
    #[error("cannot open log for {topic}-{partition}: {source}")]
    Open {
        topic: String,
        partition: i32,
        source: StorageError,
    },
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    #[error(transparent)]
    LogDirs(#[from] LogDirsError),
}

/// What a log dir's files said at startup.
struct DirStart {
    /// Recovery points, log start offsets and high watermarks from the dir's checkpoints.
    recovery_points: HashMap<TopicPartition, i64>,
    log_start_offsets: HashMap<TopicPartition, i64>,
    high_watermarks: HashMap<TopicPartition, i64>,
    /// Whether the dir had its clean-shutdown marker.
    clean_shutdown: bool,
}

/// The per-dir offset checkpoints of every hosted partition, gathered to be written.
struct DirCheckpoints {
    recovery: Vec<Vec<(TopicPartition, i64)>>,
    starts: Vec<Vec<(TopicPartition, i64)>>,
    high_watermarks: Vec<Vec<(TopicPartition, i64)>>,
}

impl DirCheckpoints {
    fn new(dirs: usize) -> Self {
        DirCheckpoints {
            recovery: vec![Vec::new(); dirs],
            starts: vec![Vec::new(); dirs],
            high_watermarks: vec![Vec::new(); dirs],
        }
    }

    fn add(&mut self, p: &Partition, recovery_point: i64) {
        let tp = TopicPartition::new(p.topic.to_string(), p.index);
        let d = p.log_dir.min(self.recovery.len() - 1);
        self.recovery[d].push((tp.clone(), recovery_point));
        self.starts[d].push((tp.clone(), p.log_start_offset()));
        self.high_watermarks[d].push((tp, p.high_watermark()));
    }

    fn write_logs(&self, dirs: &LogDirs) -> Result<(), PartitionsError> {
        for (d, dir) in dirs.dirs().iter().enumerate() {
            dir.write_recovery_points(&self.recovery[d])?;
            dir.write_log_start_offsets(&self.starts[d])?;
        }
        Ok(())
    }

    fn write_high_watermarks(&self, dirs: &LogDirs) -> Result<(), PartitionsError> {
        for (d, dir) in dirs.dirs().iter().enumerate() {
            dir.write_high_watermarks(&self.high_watermarks[d])?;
        }
        Ok(())
    }
}

/// Every partition replica hosted on this node.
pub struct Partitions {
    node_id: i32,
    log_dirs: LogDirs,
    backend: Arc<dyn Backend>,
    /// Topic settings fall back to broker values, which follow dynamic broker configs.
    broker: Arc<DynamicBrokerConfig>,
    by_id: RwLock<HashMap<(Uuid, i32), Arc<Partition>>>,
    /// Per log dir, in `log.dirs` order.
    dir_start: Vec<DirStart>,
    /// Which dir holds each partition directory, and where new ones go.
    placement: Mutex<Placement>,
    /// Serializes reconciles (so two image changes never open the same log twice) and holds the
    /// `last_applied_index` of the newest image applied: callers read their image before they
    /// get the lock, and an older image applied after a newer one would undo its changes (a
    /// topic config altered while another reconcile was opening 50 offsets partitions went back
    /// to its old value until the next change).
    reconcile_lock: Mutex<u64>,
}

impl Partitions {
    /// Reads every log dir's checkpoints and finds the partition directories in them (a
    /// partition in two dirs fails). `clean_shutdown[i]`: whether dir `i` had its marker.
    pub fn open(
        node_id: i32,
        log_dirs: LogDirs,
        backend: Arc<dyn Backend>,
        broker: Arc<DynamicBrokerConfig>,
        clean_shutdown: &[bool],
    ) -> Result<Self, PartitionsError> {
        let mut dir_start = Vec::with_capacity(log_dirs.len());
        for (i, d) in log_dirs.dirs().iter().enumerate() {
            dir_start.push(DirStart {
                recovery_points: d.read_recovery_points()?,
                log_start_offsets: d.read_log_start_offsets()?,
                high_watermarks: d.read_high_watermarks()?,
                clean_shutdown: clean_shutdown.get(i).copied().unwrap_or(false),
            });
        }
        let placement = Placement::new(log_dirs.len(), log_dirs.locate_partitions()?);
        Ok(Partitions {
            node_id,
            log_dirs,
            backend,
            broker,
            by_id: RwLock::new(HashMap::new()),
            dir_start,
            placement: Mutex::new(placement),
            reconcile_lock: Mutex::new(0),
        })
    }

    /// The log dirs, in `log.dirs` order (a partition's `log_dir` indexes this).
    pub fn log_dirs(&self) -> &[LogDir] {
        self.log_dirs.dirs()
    }

    fn dir(&self, index: usize) -> &LogDir {
        // Indexes come from `Placement`, which only hands out indexes below the dir count.
        &self.log_dirs.dirs()[index.min(self.log_dirs.len() - 1)]
    }

    pub fn get(&self, topic_id: &Uuid, partition: i32) -> Option<Arc<Partition>> {
        self.by_id
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(*topic_id, partition))
            .cloned()
    }

    /// The partition of `topic` this node leads, or why it cannot serve it.
    pub fn leader(
        &self,
        topic: &TopicImage,
        partition: i32,
    ) -> Result<Arc<Partition>, Unavailable> {
        let p = self.named_leader(topic, partition)?;
        if p.leading.load(Ordering::Acquire) {
            Ok(p)
        } else {
            Err(Unavailable::NotLeader)
        }
    }

    /// The hosted partition the image names this node leader of, whether or not its role has
    /// caught up yet. For the coordinators' loads only: they run when the image changes, maybe
    /// before the reconcile that sets the role, and would otherwise wait for the next change;
    /// their writes go through the log's own leader checks.
    pub fn named_leader(
        &self,
        topic: &TopicImage,
        partition: i32,
    ) -> Result<Arc<Partition>, Unavailable> {
        let image = topic
            .partition(partition)
            .ok_or(Unavailable::UnknownPartition)?;
        if image.leader != self.node_id {
            return Err(Unavailable::NotLeader);
        }
        self.get(&topic.topic_id, partition)
            .ok_or(Unavailable::NotLeader)
    }

    pub fn all(&self) -> Vec<Arc<Partition>> {
        self.by_id
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Opens one partition's log in the dir that holds it (a new one: the dir with the fewest
    /// partitions), returning the log and that dir's index. A directory left by an earlier topic
    /// of the same name (its `partition.metadata` names another topic id) is deleted first: that
    /// data is not ours.
    fn open_log(
        &self,
        tp: &TopicPartition,
        topic_id: Uuid,
        settings: &TopicSettings,
        now_ms: i64,
    ) -> Result<(Log, usize), StorageError> {
        let mut dir_index = lock(&self.placement).place(tp);
        let mut dir = self.dir(dir_index).partition_path(tp);
        let start = &self.dir_start[dir_index.min(self.dir_start.len() - 1)];
        let mut recovery_point = start.recovery_points.get(tp).copied().unwrap_or(0);
        let mut log_start = start.log_start_offsets.get(tp).copied().unwrap_or(0);
        let mut clean = start.clean_shutdown;
        if dir.exists() {
            let stored = rafka_storage::read_partition_metadata(self.backend.as_ref(), &dir)?;
            if stored.is_some_and(|id| id != *topic_id.as_bytes()) {
                tracing::warn!(dir = %dir.display(), "Log dir belongs to a deleted topic of the same name; removing it");
                self.dir(dir_index)
                    .delete_partition_dir(tp, uuid::Uuid::new_v4().as_bytes())?;
                // The new topic's partition is a new partition: placed afresh.
                let mut placement = lock(&self.placement);
                placement.remove(tp);
                dir_index = placement.place(tp);
                dir = self.dir(dir_index).partition_path(tp);
                recovery_point = 0;
                log_start = 0;
                clean = true;
            }
        }
        let log = Log::open(
            dir,
            settings.log.clone(),
            self.backend.clone(),
            recovery_point,
            log_start,
            clean,
            now_ms,
        )?;
        if log.read_partition_metadata()?.is_none() {
            log.write_partition_metadata(topic_id.as_bytes())?;
        }
        Ok((log, dir_index))
    }

    /// Makes the hosted partitions match `image`: opens (recovering if needed) logs for new
    /// replicas of this node, applies config changes, and deletes the logs of removed topics.
    pub fn reconcile(&self, image: &MetadataImage, now_ms: i64) -> Result<(), PartitionsError> {
        let mut newest_applied = lock(&self.reconcile_lock);
        if image.last_applied_index < *newest_applied {
            // A newer image is in effect already, and it holds everything this one does.
            return Ok(());
        }
        *newest_applied = image.last_applied_index;
        let mut wanted: HashMap<(Uuid, i32), ()> = HashMap::new();
        let broker = self.broker.current(image);
        for topic in image.topics() {
            let settings = TopicSettings::resolve(&broker, &topic.configs);
            for (&index, p) in &topic.partitions {
                if !p.replicas.contains(&self.node_id) {
                    continue;
                }
                wanted.insert((topic.topic_id, index), ());
                let leader_config = LeaderConfig {
                    replica_lag_time_max_ms: broker.replica.lag_time_max_ms,
                    min_insync_replicas: usize::try_from(settings.min_insync_replicas.max(1))
                        .unwrap_or(1),
                };
                if let Some(existing) = self.get(&topic.topic_id, index) {
                    existing
                        .leader_epoch
                        .store(p.leader_epoch, Ordering::Release);
                    // Topic and dynamic broker config changes apply to open logs at once.
                    if existing.settings() != settings {
                        existing.update_settings(settings.clone());
                    }
                    if existing.apply_partition_image(self.node_id, p, leader_config, now_ms) {
                        existing.wake_waiters();
                    }
                    continue;
                }
                let tp = TopicPartition::new(topic.name.clone(), index);
                let (mut log, log_dir) = self
                    .open_log(&tp, topic.topic_id, &settings, now_ms)
                    .map_err(|source| PartitionsError::Open {
                        topic: topic.name.clone(),
                        partition: index,
                        source,
                    })?;
                // A single replica has everything in its log replicated, so the markers in it
                // count. A replicated one starts from its checkpointed high watermark, never
                // past its log end (a crash may have cut the log below it), as Kafka's
                // `Partition.createLog` does; the ISR (on the leader) or the leader's answers
                // (on a follower) move it on from there.
                let hw = if p.replicas.len() <= 1 {
                    log.log_end_offset()
                } else {
                    self.dir_start[log_dir.min(self.dir_start.len() - 1)]
                        .high_watermarks
                        .get(&tp)
                        .copied()
                        .unwrap_or(0)
                        .clamp(log.log_start_offset(), log.log_end_offset())
                };
                log.on_high_watermark_updated(hw);
                let partition = Arc::new(Partition {
                    topic: Arc::from(topic.name.as_str()),
                    topic_id: topic.topic_id,
                    index,
                    log_dir,
                    high_watermark: AtomicI64::new(hw),
                    log_start_offset: AtomicI64::new(log.log_start_offset()),
                    leader_epoch: AtomicI32::new(p.leader_epoch),
                    inner: Mutex::new(Inner {
                        log,
                        settings: settings.clone(),
                        role: Role::unassigned(),
                    }),
                    waiters: Mutex::new(Vec::new()),
                    sealed_flush_running: AtomicBool::new(false),
                    leading: AtomicBool::new(false),
                });
                tracing::info!(
                    partition = %format!("{}-{}", topic.name, index),
                    log_end_offset = partition.high_watermark(),
                    dir = %self.dir(log_dir).path().display(),
                    "Loaded partition log"
                );
                partition.apply_partition_image(self.node_id, p, leader_config, now_ms);
                self.by_id
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert((topic.topic_id, index), partition);
            }
        }
        let removed: Vec<Arc<Partition>> = {
            let mut map = self.by_id.write().unwrap_or_else(|e| e.into_inner());
            let gone: Vec<(Uuid, i32)> = map
                .keys()
                .filter(|k| !wanted.contains_key(k))
                .copied()
                .collect();
            gone.iter().filter_map(|k| map.remove(k)).collect()
        };
        for p in removed {
            tracing::info!(partition = %format!("{}-{}", p.topic, p.index), "Deleting log of removed partition");
            p.wake_waiters();
            let tp = TopicPartition::new(p.topic.to_string(), p.index);
            let log_dir = p.log_dir;
            lock(&self.placement).remove(&tp);
            match Arc::try_unwrap(p) {
                Ok(p) => {
                    let inner = p.inner.into_inner().unwrap_or_else(|e| e.into_inner());
                    inner.log.delete()?;
                }
                Err(_) => {
                    // A request still holds it. The log is already unreachable for new
                    // requests, and unlinked files stay readable for holders of mapped segments,
                    // so the directory goes now, through the log dir's deletion path.
                    self.dir(log_dir)
                        .delete_partition_dir(&tp, uuid::Uuid::new_v4().as_bytes())?;
                }
            }
        }
        Ok(())
    }

    /// Writes the recovery-point and log-start checkpoints of every log dir, each listing the
    /// partitions in that dir.
    pub fn checkpoint(&self) -> Result<(), PartitionsError> {
        let mut files = DirCheckpoints::new(self.log_dirs.len());
        for p in self.all() {
            files.add(&p, p.recovery_point());
        }
        files.write_logs(&self.log_dirs)
    }

    /// Writes every log dir's `replication-offset-checkpoint` (Kafka writes it every
    /// `replica.high.watermark.checkpoint.interval.ms` and at shutdown): a restarted replica
    /// starts from it instead of its log start, so consumers of a restarted cluster read at
    /// once what was committed before.
    pub fn checkpoint_high_watermarks(&self) -> Result<(), PartitionsError> {
        let mut files = DirCheckpoints::new(self.log_dirs.len());
        for p in self.all() {
            files.add(&p, 0);
        }
        files.write_high_watermarks(&self.log_dirs)
    }

    /// Every log dir's `cleaner-offset-checkpoint`, merged (a partition lives in one dir).
    pub fn read_cleaner_checkpoints(&self) -> Result<HashMap<TopicPartition, i64>, StorageError> {
        let mut all = HashMap::new();
        for dir in self.log_dirs.dirs() {
            all.extend(dir.read_cleaner_offsets()?);
        }
        Ok(all)
    }

    /// Writes each log dir's `cleaner-offset-checkpoint` with the entries of the partitions in
    /// that dir (entries of partitions no dir holds any more are dropped).
    pub fn write_cleaner_checkpoints(
        &self,
        entries: &[(TopicPartition, i64)],
    ) -> Result<(), StorageError> {
        let mut per_dir: Vec<Vec<(TopicPartition, i64)>> = vec![Vec::new(); self.log_dirs.len()];
        {
            let placement = lock(&self.placement);
            for (tp, offset) in entries {
                if let Some(d) = placement.dir_of(tp).and_then(|d| per_dir.get_mut(d)) {
                    d.push((tp.clone(), *offset));
                }
            }
        }
        for (dir, entries) in self.log_dirs.dirs().iter().zip(&per_dir) {
            dir.write_cleaner_offsets(entries)?;
        }
        Ok(())
    }

    /// Records in every log dir that its logs were flushed and checkpointed, so the next start
    /// skips recovery, with the broker epoch the node shut down in (its next registration
    /// sends it as the previous broker epoch: KIP-966).
    pub fn write_clean_shutdown_marker(&self, broker_epoch: i64) -> Result<(), StorageError> {
        for dir in self.log_dirs.dirs() {
            dir.mark_clean_shutdown(broker_epoch)?;
        }
        Ok(())
    }

    /// Runs the time-based flush (`flush.ms`) of every log.
    /// Runs retention on every partition (when `check_retention`) and unlinks deleted files
    /// that are due.
    pub fn enforce_retention(&self, now_ms: i64, check_retention: bool) {
        for p in self.all() {
            if let Err(e) = p.enforce_retention(now_ms, check_retention) {
                tracing::error!(partition = ?p, error = %e, "retention failed");
            }
        }
    }

    /// Forgets idempotent producers idle for longer than `producer.id.expiration.ms`.
    pub fn expire_producers(&self, now_ms: i64, expiration_ms: i64) {
        for p in self.all() {
            let n = lock(&p.inner).log.expire_producers(now_ms, expiration_ms);
            if n > 0 {
                tracing::debug!(partition = ?p, expired = n, "expired idle producer ids");
            }
        }
    }

    pub fn flush_due(&self, now_ms: i64) {
        for p in self.all() {
            if let Err(e) = p.maybe_flush(now_ms) {
                tracing::error!(partition = ?p, error = %e, "scheduled flush failed");
            }
        }
    }

    /// Clean shutdown: flushes and closes every log (trimming preallocated indexes), then writes
    /// the checkpoints. A log some request still holds is flushed instead of closed.
    pub fn close_all(&self) -> Result<(), PartitionsError> {
        let parts: Vec<Arc<Partition>> = {
            let mut map = self.by_id.write().unwrap_or_else(|e| e.into_inner());
            map.drain().map(|(_, p)| p).collect()
        };
        let mut files = DirCheckpoints::new(self.log_dirs.len());
        for p in parts {
            match Arc::try_unwrap(p) {
                Ok(p) => {
                    let end = lock(&p.inner).log.log_end_offset();
                    files.add(&p, end);
                    let inner = p.inner.into_inner().unwrap_or_else(|e| e.into_inner());
                    inner.log.close()?;
                }
                Err(p) => {
                    p.flush()?;
                    files.add(&p, p.recovery_point());
                }
            }
        }
        files.write_logs(&self.log_dirs)?;
        files.write_high_watermarks(&self.log_dirs)
    }

    /// Removes partition directories the image does not know (a crash between committing a
    /// topic deletion and removing its files leaves them) and finishes pending `-delete` dirs.
    pub fn remove_orphans(&self, image: &MetadataImage) -> Result<(), PartitionsError> {
        for dir in self.log_dirs.dirs() {
            dir.remove_deleted_partition_dirs()?;
            for (tp, _) in dir.partition_dirs()? {
                if tp.topic == rafka_storage::METADATA_TOPIC {
                    continue;
                }
                let known = image.topic_by_name(&tp.topic).is_some_and(|t| {
                    t.partition(tp.partition)
                        .is_some_and(|p| p.replicas.contains(&self.node_id))
                });
                if !known {
                    tracing::warn!(partition = %tp.dir_name(), dir = %dir.path().display(), "Removing log of a partition the metadata does not know");
                    dir.delete_partition_dir(&tp, uuid::Uuid::new_v4().as_bytes())?;
                    lock(&self.placement).remove(&tp);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rafka_metadata::{MetadataRecord, PartitionRecord};

    pub(crate) fn partitions(dir: &std::path::Path) -> Partitions {
        let backend: Arc<dyn Backend> = Arc::new(rafka_storage::FileBackend);
        let log_dirs = LogDirs::new(&[dir.to_path_buf()], backend.clone()).expect("dirs");
        log_dirs.create_all().expect("create");
        let (config, _) =
            crate::config::BrokerConfig::from_props(&Default::default()).expect("config");
        let broker = Arc::new(DynamicBrokerConfig::new(Arc::new(config)));
        Partitions::open(1, log_dirs, backend, broker, &[true]).expect("open")
    }

    fn retention_bytes(image: &MetadataImage, index: u64, value: &str) -> MetadataImage {
        let mut next = image.clone();
        let topic_id = image.topic_by_name("t").expect("topic").topic_id;
        next.apply_record(&MetadataRecord::TopicConfig {
            topic_id,
            key: "retention.bytes".into(),
            value: Some(value.into()),
        });
        next.last_applied_index = index;
        next
    }

    /// Callers read their image before they take the reconcile lock, so an image can arrive
    /// after a newer one; applying it would undo the newer one's config change for good.
    #[test]
    fn an_older_image_never_undoes_a_newer_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let parts = partitions(dir.path());
        let topic_id = Uuid::new_v4();
        let created = leader_image(topic_id, 0, 5);
        parts.reconcile(&created, 0).expect("created");
        let altered = retention_bytes(&created, 7, "50000");
        parts.reconcile(&altered, 0).expect("altered");
        let p = parts.get(&topic_id, 0).expect("hosted");
        assert_eq!(p.settings().log.retention_bytes, 50000);

        parts.reconcile(&created, 0).expect("stale image");
        assert_eq!(p.settings().log.retention_bytes, 50000);

        // The same index again (a retry) and newer ones still apply.
        parts.reconcile(&altered, 0).expect("same image");
        parts
            .reconcile(&retention_bytes(&altered, 9, "60000"), 0)
            .expect("newer");
        assert_eq!(p.settings().log.retention_bytes, 60000);
    }

    /// Node 1 alone leads at `leader_epoch`.
    fn leader_image(topic_id: Uuid, leader_epoch: i32, index: u64) -> MetadataImage {
        partition_image(topic_id, vec![1], 1, leader_epoch, index)
    }

    /// Topic `t` with one partition, every replica in sync, as of log index `index`.
    pub(crate) fn partition_image(
        topic_id: Uuid,
        replicas: Vec<i32>,
        leader: i32,
        leader_epoch: i32,
        index: u64,
    ) -> MetadataImage {
        let mut image = MetadataImage::empty("c");
        image.apply_record(&MetadataRecord::Topic {
            name: "t".into(),
            topic_id,
        });
        image.apply_record(&MetadataRecord::Partition(PartitionRecord {
            topic_id,
            partition: 0,
            isr: replicas.clone(),
            replicas,
            leader,
            leader_epoch,
            partition_epoch: leader_epoch,
            elr: Vec::new(),
            last_known_elr: Vec::new(),
        }));
        image.last_applied_index = index;
        image
    }

    fn append_one(p: &Arc<Partition>) {
        let mut batch = rafka_records::BatchBuilder::new(0)
            .record(Some(b"k"), Some(b"v"), &[], 0)
            .build();
        p.append(&mut batch, 0).expect("append");
    }

    /// OffsetForLeaderEpoch on a leader: an older epoch ends where the next one starts, the
    /// leader's own epoch at the log end even before it wrote (Kafka's cache gets the epoch
    /// when the replica becomes leader), and an epoch the log never saw is UNDEFINED.
    #[test]
    fn end_offset_for_epoch_follows_kafkas_rule() {
        use rafka_replication::EpochEndOffset;
        let dir = tempfile::tempdir().expect("tempdir");
        let parts = partitions(dir.path());
        let topic_id = Uuid::new_v4();
        parts
            .reconcile(&leader_image(topic_id, 0, 1), 0)
            .expect("created");
        let p = parts.get(&topic_id, 0).expect("hosted");
        append_one(&p);
        append_one(&p);
        let at = |epoch, end_offset| EpochEndOffset { epoch, end_offset };
        assert_eq!(p.end_offset_for_epoch(0), at(0, 2));

        parts
            .reconcile(&leader_image(topic_id, 2, 2), 0)
            .expect("new epoch");
        assert_eq!(p.end_offset_for_epoch(0), at(0, 2));
        assert_eq!(p.end_offset_for_epoch(1), at(0, 2));
        assert_eq!(p.end_offset_for_epoch(2), at(2, 2));
        assert_eq!(p.end_offset_for_epoch(3), EpochEndOffset::UNDEFINED);

        append_one(&p);
        assert_eq!(p.end_offset_for_epoch(0), at(0, 2));
        assert_eq!(p.end_offset_for_epoch(2), at(2, 3));
        assert_eq!(p.end_offset_for_epoch(-1), EpochEndOffset::UNDEFINED);
    }

    /// Node 1 follows node 2 at leader epoch 3.
    fn follower_image(topic_id: Uuid) -> MetadataImage {
        partition_image(topic_id, vec![2, 1], 2, 3, 1)
    }

    /// `replication-offset-checkpoint`: a restarted replica starts from the high watermark it
    /// checkpointed, and never from one past its log end (a crash may have cut the log).
    #[test]
    fn a_restarted_replica_starts_from_its_checkpointed_high_watermark() {
        let dir = tempfile::tempdir().expect("tempdir");
        let topic_id = Uuid::new_v4();
        let image = follower_image(topic_id);
        let parts = partitions(dir.path());
        parts.reconcile(&image, 0).expect("created");
        let p = parts.get(&topic_id, 0).expect("hosted");
        for offset in 0..3 {
            let batch = rafka_records::BatchBuilder::new(offset)
                .partition_leader_epoch(3)
                .record(Some(b"k"), Some(b"v"), &[], 0)
                .build();
            p.append_as_follower(3, &batch, 2, 0, 0).expect("append");
        }
        assert_eq!((p.high_watermark(), p.log_end_offset()), (2, 3));
        drop(p);
        parts.close_all().expect("close");
        let file = dir
            .path()
            .join(rafka_storage::REPLICATION_OFFSET_CHECKPOINT_FILE);
        assert_eq!(
            std::fs::read_to_string(&file).expect("checkpoint"),
            "0\n1\nt 0 2\n",
            "Kafka's offset checkpoint format"
        );

        let parts = partitions(dir.path());
        parts.reconcile(&image, 0).expect("reopened");
        let p = parts.get(&topic_id, 0).expect("hosted");
        assert_eq!(p.high_watermark(), 2);
        drop(p);

        // A checkpoint past the log end (the tail was lost) is cut to the log end.
        std::fs::write(&file, "0\n1\nt 0 10\n").expect("write");
        drop(parts);
        let parts = partitions(dir.path());
        parts.reconcile(&image, 0).expect("reopened");
        let p = parts.get(&topic_id, 0).expect("hosted");
        assert_eq!(p.high_watermark(), 3);
    }
}
